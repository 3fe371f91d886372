//! The model card: the JSON stored in an exported ONNX file's `edge_reid.card` metadata property.
//!
//! It is the contract between the training crate (which writes it at export) and the runtime (which
//! reads everything it needs from it: input size and normalisation, which outputs carry which
//! attribute, the embedding and its metric, the person-vs-junk output).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attributes::{ATTRIBUTES, NUM_ATTRIBUTES};
use crate::distance::DistanceMetric;

/// Metadata key under which the card is stored in the ONNX file.
pub const CARD_KEY: &str = "edge_reid.card";

/// The card format this build writes and reads.
pub const CARD_FORMAT_VERSION: u32 = 1;

/// The longest input side a card may ask for (person crops are a few hundred pixels).
pub const MAX_INPUT_SIDE: usize = 4096;

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Attribute recognition and a re-ID embedding (optionally a person-vs-junk logit too).
    ArReid,
    /// A small person-vs-junk classifier run before the main model.
    PreDetector,
}

/// Channel order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
}

/// The network input: `[N, 3, height, width]` f32, fed as `(pixel / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Graph input name.
    pub name: String,
    /// Crop height in pixels.
    pub height: usize,
    /// Crop width in pixels.
    pub width: usize,
    /// Per-channel mean, in channel order, on the `[0, 1]` scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in channel order, on the `[0, 1]` scale.
    pub std: [f32; 3],
    /// Channel order.
    pub channel_order: ChannelOrder,
}

/// One attribute output: `[N, labels.len()]` logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeSpec {
    /// Attribute name (see [`crate::attributes`]).
    pub name: String,
    /// Graph output name.
    pub output: String,
    /// Labels in class-index order.
    pub labels: Vec<String>,
}

/// The re-ID embedding output: `[N, dim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    /// Graph output name.
    pub output: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Metric to compare embeddings with.
    pub metric: DistanceMetric,
    /// Gallery matches farther than this are unknown people: the threshold with the best balanced
    /// open-set accuracy on the validation split for galleries of
    /// [`EmbeddingSpec::unknown_gallery`] people ([`crate::eval::open_set`]), set at export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_distance: Option<f32>,
    /// The gallery size, in identities, the unknown distance was calibrated for (absent: the
    /// whole validation gallery, as in cards written before this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_gallery: Option<usize>,
}

impl EmbeddingSpec {
    /// The gallery size [`EmbeddingSpec::unknown_distance`] was calibrated for.
    pub fn unknown_gallery_size(&self) -> GallerySize {
        self.unknown_gallery
            .map_or(GallerySize::All, GallerySize::Identities)
    }
}

/// How many identities the gallery holds when measuring open-set rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GallerySize {
    /// Every identity of the set's gallery.
    All,
    /// Galleries of this many identities (at least 1) drawn from the set's gallery; a set with
    /// fewer identities is used whole.
    Identities(usize),
}

impl fmt::Display for GallerySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GallerySize::All => f.write_str("the whole gallery"),
            GallerySize::Identities(n) => write!(f, "galleries of {n} people"),
        }
    }
}

/// The person-vs-junk output: `[N, 1]` logit, positive means person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonSpec {
    /// Graph output name.
    pub output: String,
}

/// What the model was trained on and how it scored on validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Dataset description (path or name, number of identities and images).
    pub data: String,
    /// Backbone (`resnet18`, `small`, `mobilenetv2`).
    pub backbone: String,
    /// Attribute head (`baseline`, `convhead`, `sa`), empty for a pre-detector.
    pub head: String,
    /// Epochs trained (of the kept checkpoint).
    pub epochs: usize,
    /// Validation metrics by name (`attr_accuracy`, `balanced_accuracy`, `mfc_accuracy`, `map`,
    /// `rank1`, `rank5`, `rank10`, `person_accuracy`, ...), all in `[0, 1]`.
    pub validation: BTreeMap<String, f64>,
}

/// How an int8 copy of a model was made (`edge-reid-train quantize`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Int8Spec {
    /// The operators quantised, in the standard QDQ form (`QuantizeLinear` and `DequantizeLinear`
    /// around the float operator): int8 weights with a symmetric scale per output channel, int8
    /// inputs with one symmetric scale per tensor. Other operators compute in f32.
    pub operators: Vec<String>,
    /// What the inputs' ranges were calibrated on.
    pub calibration: String,
}

/// The card stored in every exported model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Card format version, [`CARD_FORMAT_VERSION`].
    pub format_version: u32,
    /// What the model does.
    pub task: Task,
    /// The input tensor.
    pub input: InputSpec,
    /// Attribute outputs (empty for a pre-detector).
    pub attributes: Vec<AttributeSpec>,
    /// The embedding output, if any.
    pub embedding: Option<EmbeddingSpec>,
    /// The person-vs-junk output, if any.
    pub person: Option<PersonSpec>,
    /// Training summary.
    pub training: TrainingSummary,
    /// Present in an int8 copy; absent where the weights are f32 (or half floats computed in f32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<Int8Spec>,
}

/// A card that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The JSON does not parse as a card.
    #[error("model card is not valid JSON for this format: {0}")]
    Json(#[from] serde_json::Error),
    /// A card from another format version.
    #[error("model card format version {found} is not supported (this build reads version {CARD_FORMAT_VERSION})")]
    Version {
        /// The version found in the card.
        found: u32,
    },
    /// The card contradicts itself.
    #[error("model card is inconsistent: {0}")]
    Inconsistent(String),
}

/// ImageNet mean, the normalisation torchvision backbones are trained with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl ModelCard {
    /// The attribute specs of the standard 12-task schema, with outputs named `attr_<name>`.
    pub fn standard_attributes() -> Vec<AttributeSpec> {
        ATTRIBUTES
            .iter()
            .map(|a| AttributeSpec {
                name: a.name.to_string(),
                output: a.output_name(),
                labels: a.labels.iter().map(|l| l.to_string()).collect(),
            })
            .collect()
    }

    /// Parses and checks a card.
    pub fn from_json(json: &str) -> Result<Self, CardError> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| CardError::Inconsistent("no format_version".into()))?;
        if version != u64::from(CARD_FORMAT_VERSION) {
            return Err(CardError::Version {
                found: version as u32,
            });
        }
        let card: ModelCard = serde_json::from_value(value)?;
        card.check()?;
        Ok(card)
    }

    /// Serialises the card (compact JSON, as stored in the model).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a card always serialises")
    }

    /// Checks the card's internal consistency (not against a graph: that is the loader's job).
    pub fn check(&self) -> Result<(), CardError> {
        let bad = |m: String| Err(CardError::Inconsistent(m));
        let (h, w) = (self.input.height, self.input.width);
        if h == 0 || w == 0 || h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE {
            return bad(format!(
                "input size {h}x{w} is not between 1x1 and {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}"
            ));
        }
        if self.attributes.len() > NUM_ATTRIBUTES {
            return bad(format!(
                "{} attributes: edge-reid reports at most the {NUM_ATTRIBUTES} of its schema",
                self.attributes.len()
            ));
        }
        if self.input.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad(format!(
                "input std {:?} must be finite and positive",
                self.input.std
            ));
        }
        // A number too large for f32 (1e40) reads as infinity.
        if self.input.mean.iter().any(|m| !m.is_finite()) {
            return bad(format!("input mean {:?} must be finite", self.input.mean));
        }
        let mut outputs: Vec<&str> = self.attributes.iter().map(|a| a.output.as_str()).collect();
        outputs.extend(self.embedding.iter().map(|e| e.output.as_str()));
        outputs.extend(self.person.iter().map(|p| p.output.as_str()));
        let mut sorted = outputs.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("output {:?} is named twice", w[0]));
        }
        if let Some(a) = self.attributes.iter().find(|a| a.labels.len() < 2) {
            return bad(format!("attribute {:?} has fewer than two labels", a.name));
        }
        match self.task {
            Task::ArReid => {
                if self.embedding.as_ref().is_none_or(|e| e.dim == 0) {
                    return bad("an ar_reid model needs an embedding output with dim > 0".into());
                }
                let embedding = self.embedding.as_ref();
                if let Some(d) = embedding.and_then(|e| e.unknown_distance) {
                    if !(d.is_finite() && d > 0.0) {
                        return bad(format!("unknown distance {d} must be finite and positive"));
                    }
                }
                match embedding.map(|e| (e.unknown_distance, e.unknown_gallery)) {
                    Some((_, Some(0))) => {
                        return bad("the unknown distance's gallery size must be at least 1".into())
                    }
                    Some((None, Some(n))) => {
                        return bad(format!(
                            "a gallery size ({n}) is given for an unknown distance the card lacks"
                        ))
                    }
                    _ => {}
                }
            }
            Task::PreDetector => {
                if self.person.is_none() {
                    return bad("a pre_detector model needs a person output".into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> ModelCard {
        ModelCard {
            format_version: CARD_FORMAT_VERSION,
            task: Task::ArReid,
            input: InputSpec {
                name: "image".into(),
                height: 128,
                width: 64,
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
                channel_order: ChannelOrder::Rgb,
            },
            attributes: ModelCard::standard_attributes(),
            embedding: Some(EmbeddingSpec {
                output: "embedding".into(),
                dim: 128,
                metric: DistanceMetric::Euclidean,
                unknown_distance: Some(0.75),
                unknown_gallery: Some(10),
            }),
            person: None,
            training: TrainingSummary::default(),
            int8: None,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let mut c = card();
        // Metrics keep every bit (serde_json's default float parser is off by one ulp for some
        // values; the card needs its `float_roundtrip` feature).
        let hard = [
            0.44999999999999996,
            0.1 + 0.2,
            0.6227182539682539,
            f64::MIN_POSITIVE,
        ];
        for (i, v) in hard.into_iter().enumerate() {
            c.training.validation.insert(format!("m{i}"), v);
        }
        let json = c.to_json();
        assert!(json.contains("\"task\":\"ar_reid\""), "{json}");
        assert_eq!(ModelCard::from_json(&json).unwrap(), c);
    }

    #[test]
    fn reads_cards_written_before_the_unknown_distance_and_its_gallery_size() {
        let mut c = card();
        let embedding = c.embedding.as_mut().unwrap();
        assert_eq!(
            embedding.unknown_gallery_size(),
            GallerySize::Identities(10)
        );
        let json = c.to_json().replace(",\"unknown_gallery\":10", "");
        assert!(!json.contains("unknown_gallery"), "{json}");
        let embedding = c.embedding.as_mut().unwrap();
        embedding.unknown_gallery = None;
        assert_eq!(ModelCard::from_json(&json).unwrap(), c);
        assert_eq!(
            c.embedding.as_ref().unwrap().unknown_gallery_size(),
            GallerySize::All
        );
        let json = json.replace(",\"unknown_distance\":0.75", "");
        assert!(!json.contains("unknown_distance"), "{json}");
        c.embedding.as_mut().unwrap().unknown_distance = None;
        assert_eq!(ModelCard::from_json(&json).unwrap(), c);
    }

    #[test]
    fn refuses_other_versions_and_inconsistent_cards() {
        let json = card()
            .to_json()
            .replace("\"format_version\":1", "\"format_version\":7");
        assert!(matches!(
            ModelCard::from_json(&json),
            Err(CardError::Version { found: 7 })
        ));

        let mut c = card();
        c.attributes[1].output = "attr_age".into();
        let err = ModelCard::from_json(&c.to_json()).unwrap_err().to_string();
        assert!(err.contains("\"attr_age\" is named twice"), "{err}");

        let mut c = card();
        c.embedding = None;
        assert!(ModelCard::from_json(&c.to_json()).is_err());

        let mut c = card();
        c.input.height = 4_000_000_000;
        let err = ModelCard::from_json(&c.to_json()).unwrap_err().to_string();
        assert!(
            err.contains("input size 4000000000x64 is not between"),
            "{err}"
        );

        let mut c = card();
        let mut extra = c.attributes[0].clone();
        extra.output = "attr_extra".into();
        c.attributes.push(extra);
        let err = ModelCard::from_json(&c.to_json()).unwrap_err().to_string();
        assert!(err.contains("13 attributes"), "{err}");

        let mut c = card();
        c.embedding.as_mut().unwrap().unknown_distance = Some(-1.0);
        let err = ModelCard::from_json(&c.to_json()).unwrap_err().to_string();
        assert!(
            err.contains("unknown distance -1 must be finite and positive"),
            "{err}"
        );
        // Numbers past f32's range read as infinity (found by the model_card fuzz target).
        for (field, json) in [
            ("mean", card().to_json().replacen("0.485", "4e85", 1)),
            ("std", card().to_json().replacen("0.229", "4e85", 1)),
        ] {
            let err = ModelCard::from_json(&json).unwrap_err().to_string();
            assert!(err.contains(&format!("input {field} [inf")), "{err}");
        }
        let mut c = card();
        c.embedding.as_mut().unwrap().unknown_gallery = Some(0);
        let err = ModelCard::from_json(&c.to_json()).unwrap_err().to_string();
        assert!(err.contains("gallery size must be at least 1"), "{err}");
        c.embedding.as_mut().unwrap().unknown_distance = None;
        c.embedding.as_mut().unwrap().unknown_gallery = Some(5);
        let err = ModelCard::from_json(&c.to_json()).unwrap_err().to_string();
        assert!(err.contains("gallery size (5)"), "{err}");

        assert!(matches!(
            ModelCard::from_json("{\"format_version\":1}"),
            Err(CardError::Json(_))
        ));
    }
}
