//! The per-crop work: crops -> optional pre-detector -> the attribute + re-ID model.
//!
//! [`Recognizer`] turns image regions into [`Recognition`]s (attributes, embedding, person score),
//! batching crops into the model's planned batch and reusing its input buffers from call to call.
//! A stream with tracking screens every proposal with the pre-detector ([`Recognizer::screen`])
//! and runs the main model only on the boxes the tracker asks for ([`Recognizer::describe`]).
//!
//! The person score of a crop is, in order of preference: the pre-detector's probability, the
//! model's own person head, or (the paper's first idea for spotting junk) the model's confidence:
//! the mean over the attributes of the top class probability rescaled so that a uniform guess
//! scores 0 and a certain one 1. Junk crops have no clear attributes, so they score low.

use std::time::Instant;

use image::RgbImage;

use super::PipelineError;
use crate::attributes::NUM_ATTRIBUTES;
use crate::card::{ModelCard, Task};
use crate::distance::DistanceMetric;
use crate::events::StageMillis;
use crate::model::{sigmoid, Model, Outputs};
use crate::preprocess::{Framing, Preprocessor, Region};

/// What the model says about one crop.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// The crop's region in its image.
    pub region: Region,
    /// Probability that the crop shows a person (see the module doc).
    pub person_score: f32,
    /// Whether the crop was dropped: as junk by the pre-detector, or because the main model's
    /// outputs for it held NaN or infinite values (then there are no attributes and no embedding).
    pub dropped: bool,
    /// Per attribute (card order): the predicted class and its probability.
    pub attributes: heapless::Vec<(usize, f32), NUM_ATTRIBUTES>,
    /// Every class probability, attribute after attribute in card order (what a track averages).
    pub probabilities: Vec<f32>,
    /// The re-ID embedding.
    pub embedding: Vec<f32>,
}

impl Recognition {
    /// A recognition of `region` with nothing measured yet.
    fn new(region: Region) -> Self {
        Self {
            region,
            person_score: f32::NAN,
            dropped: false,
            attributes: heapless::Vec::new(),
            probabilities: Vec::new(),
            embedding: Vec::new(),
        }
    }
}

/// The most probable class and its probability (the first on a tie).
pub fn top_class(probabilities: &[f32]) -> (usize, f32) {
    probabilities
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::MIN), |b, (c, p)| if p > b.1 { (c, p) } else { b })
}

/// Time spent per stage and crops counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Milliseconds per stage.
    pub ms: StageMillis,
    /// Crops cut.
    pub crops: u64,
    /// Crops dropped by the pre-detector.
    pub dropped: u64,
    /// Crops dropped because the main model's outputs for them were not finite.
    pub non_finite: u64,
}

pub(super) fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A region of an image to recognise, and how it is framed.
type Crop<'a> = (&'a RgbImage, Region, Framing);

/// `regions` of `image` as person boxes.
fn person_boxes<'a>(image: &'a RgbImage, regions: &[Region]) -> Vec<Crop<'a>> {
    regions
        .iter()
        .map(|&r| (image, r, Framing::PersonBox))
        .collect()
}

/// A model with its preprocessor and a reusable input buffer (as long as the most crops seen at
/// once).
struct Stage {
    model: Model,
    pre: Preprocessor,
    input: Vec<f32>,
}

impl Stage {
    fn new(model: Model) -> Result<Self, PipelineError> {
        let pre = Preprocessor::from_spec(&model.card().input)
            .map_err(|e| PipelineError::Role(format!("model input: {e}")))?;
        Ok(Self {
            model,
            pre,
            input: Vec::new(),
        })
    }

    /// Runs the model over `crops` (an image and a region of it each) in batches, side by side
    /// where there are several and several threads ([`Model::run_crops`]), calling
    /// `each(index, outputs, i)` for every crop.
    fn run(
        &mut self,
        crops: &[Crop],
        ms_pre: &mut f64,
        ms_model: &mut f64,
        mut each: impl FnMut(usize, &Outputs, usize),
    ) -> Result<(), PipelineError> {
        let slot = self.pre.slot_len();
        let started = Instant::now();
        self.input.resize(crops.len() * slot, 0.0);
        for (&(image, region, framing), out) in crops.iter().zip(self.input.chunks_exact_mut(slot))
        {
            self.pre
                .crop_into(image, region, framing, out)
                .map_err(|source| PipelineError::Crop { region, source })?;
        }
        *ms_pre += millis(started);
        let started = Instant::now();
        let outputs = self.model.run_crops(&self.input, crops.len())?;
        *ms_model += millis(started);
        let batch = self.model.batch();
        for k in 0..crops.len() {
            each(k, &outputs[k / batch], k % batch);
        }
        Ok(())
    }
}

/// Crops to recognitions.
pub struct Recognizer {
    main: Stage,
    pre_detector: Option<Stage>,
    junk_threshold: f32,
    stats: Stats,
}

/// The confidence-based person score: mean over attributes of `(p_max - 1/C) / (1 - 1/C)`.
pub fn confidence_score(top: &[(usize, f32)], classes: &[usize]) -> f32 {
    if top.is_empty() {
        return 0.0;
    }
    let sum: f32 = top
        .iter()
        .zip(classes)
        .map(|(&(_, p), &c)| {
            let uniform = 1.0 / c as f32;
            ((p - uniform) / (1.0 - uniform)).clamp(0.0, 1.0)
        })
        .sum();
    sum / top.len() as f32
}

impl Recognizer {
    /// A recognizer over `model` (an `ar_reid` model with an embedding) and an optional
    /// `pre_detector` (a `pre_detector` model); crops the pre-detector scores below
    /// `junk_threshold` are dropped.
    pub fn new(
        model: Model,
        pre_detector: Option<Model>,
        junk_threshold: f32,
    ) -> Result<Self, PipelineError> {
        let card = model.card();
        if card.task != Task::ArReid || card.embedding.is_none() {
            return Err(PipelineError::Role(
                "the main model must be an ar_reid model with an embedding output".into(),
            ));
        }
        if let Some(p) = &pre_detector {
            if p.card().task != Task::PreDetector || p.card().person.is_none() {
                return Err(PipelineError::Role(
                    "the pre-detector must be a pre_detector model with a person output".into(),
                ));
            }
        }
        Ok(Self {
            main: Stage::new(model)?,
            pre_detector: pre_detector.map(Stage::new).transpose()?,
            junk_threshold,
            stats: Stats::default(),
        })
    }

    /// The main model's card.
    pub fn card(&self) -> &ModelCard {
        self.main.model.card()
    }

    /// The main model.
    pub fn model(&self) -> &Model {
        &self.main.model
    }

    /// How the main model's embeddings are compared (its card's metric).
    pub fn metric(&self) -> DistanceMetric {
        // `new` refused a main model without an embedding.
        self.card()
            .embedding
            .as_ref()
            .map_or(DistanceMetric::Euclidean, |e| e.metric)
    }

    /// Time and counts so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Recognises `regions` of `image`, each framed as `framing` says.
    pub fn recognize(
        &mut self,
        image: &RgbImage,
        regions: &[Region],
        framing: Framing,
    ) -> Result<Vec<Recognition>, PipelineError> {
        let crops: Vec<Crop> = regions.iter().map(|&r| (image, r, framing)).collect();
        self.recognize_crops(&crops)
    }

    /// Recognises each of `images` as a picture of a person ([`Framing::Picture`]), batching
    /// crops of different images into one model run.
    pub fn recognize_images(
        &mut self,
        images: &[RgbImage],
    ) -> Result<Vec<Recognition>, PipelineError> {
        let crops: Vec<Crop> = images
            .iter()
            .map(|i| (i, Region::full(i), Framing::Picture))
            .collect();
        self.recognize_crops(&crops)
    }

    /// Keeps the person boxes `regions` of `image` the pre-detector takes for persons (all of
    /// them without a pre-detector), counting them as crops and the others as dropped; with a
    /// pre-detector, also the kept regions' person scores.
    pub fn screen(
        &mut self,
        image: &RgbImage,
        regions: &[Region],
    ) -> Result<(Vec<Region>, Option<Vec<f32>>), PipelineError> {
        let crops = person_boxes(image, regions);
        self.stats.crops += crops.len() as u64;
        Ok(match self.pre_detector_scores(&crops)? {
            None => (regions.to_vec(), None),
            Some(scores) => {
                let (kept, scores): (Vec<Region>, Vec<f32>) = regions
                    .iter()
                    .zip(scores)
                    .filter(|&(_, s)| s >= self.junk_threshold)
                    .map(|(&r, s)| (r, s))
                    .unzip();
                self.stats.dropped += (regions.len() - kept.len()) as u64;
                (kept, Some(scores))
            }
        })
    }

    /// Runs the main model alone over the person boxes `regions` of `image` (crops already
    /// screened); the person score is the model's person head, else the confidence-based score.
    pub fn describe(
        &mut self,
        image: &RgbImage,
        regions: &[Region],
    ) -> Result<Vec<Recognition>, PipelineError> {
        let crops = person_boxes(image, regions);
        let mut results: Vec<Recognition> = regions.iter().map(|&r| Recognition::new(r)).collect();
        let all: Vec<usize> = (0..results.len()).collect();
        self.describe_into(&crops, &all, &mut results, true)?;
        Ok(results)
    }

    /// Recognises regions of possibly different images.
    fn recognize_crops(&mut self, crops: &[Crop]) -> Result<Vec<Recognition>, PipelineError> {
        self.stats.crops += crops.len() as u64;
        let mut results: Vec<Recognition> =
            crops.iter().map(|&(_, r, _)| Recognition::new(r)).collect();
        let scores = self.pre_detector_scores(crops)?;
        if let Some(scores) = &scores {
            for (r, &s) in results.iter_mut().zip(scores) {
                r.person_score = s;
                r.dropped = s < self.junk_threshold;
            }
            self.stats.dropped += results.iter().filter(|r| r.dropped).count() as u64;
        }
        let kept: Vec<usize> = (0..results.len())
            .filter(|&i| !results[i].dropped)
            .collect();
        let kept_crops: Vec<Crop> = kept.iter().map(|&i| crops[i]).collect();
        self.describe_into(&kept_crops, &kept, &mut results, scores.is_none())?;
        Ok(results)
    }

    /// The pre-detector's person probability of each crop; `None` without a pre-detector.
    fn pre_detector_scores(&mut self, crops: &[Crop]) -> Result<Option<Vec<f32>>, PipelineError> {
        let Some(pre) = &mut self.pre_detector else {
            return Ok(None);
        };
        let mut scores = vec![0.0; crops.len()];
        let ms = &mut self.stats.ms;
        pre.run(
            crops,
            &mut ms.preprocess,
            &mut ms.pre_detector,
            |i, out, j| {
                scores[i] = out.person_logit(j).map_or(0.0, sigmoid);
            },
        )?;
        Ok(Some(scores))
    }

    /// Runs the main model over `crops`, filling `results[into[k]]` from crop `k`; with
    /// `person_score`, also sets the person score from the model (person head or confidence).
    fn describe_into(
        &mut self,
        crops: &[Crop],
        into: &[usize],
        results: &mut [Recognition],
        person_score: bool,
    ) -> Result<(), PipelineError> {
        let classes: Vec<usize> = self
            .card()
            .attributes
            .iter()
            .map(|a| a.labels.len())
            .collect();
        let Stats { ms, non_finite, .. } = &mut self.stats;
        self.main
            .run(crops, &mut ms.preprocess, &mut ms.model, |k, out, j| {
                let r = &mut results[into[k]];
                for a in 0..classes.len() {
                    let probs = out.attribute_probabilities(j, a).unwrap_or_default();
                    let best = top_class(&probs);
                    // Never full: a card holds at most NUM_ATTRIBUTES attributes (ModelCard::check).
                    let _ = r.attributes.push(best);
                    r.probabilities.extend_from_slice(&probs);
                }
                r.embedding = out.embedding(j).unwrap_or_default().to_vec();
                let logit = out.person_logit(j);
                // A crop the model cannot describe in numbers fails alone, not the run.
                if r.embedding
                    .iter()
                    .chain(&r.probabilities)
                    .chain(&logit)
                    .any(|v| !v.is_finite())
                {
                    *non_finite += 1;
                    *r = Recognition {
                        dropped: true,
                        ..Recognition::new(r.region)
                    };
                    return;
                }
                if person_score {
                    r.person_score = match logit {
                        Some(logit) => sigmoid(logit),
                        None => confidence_score(&r.attributes, &classes),
                    };
                }
            })
    }

    /// Adds gallery search time.
    pub(super) fn add_gallery_ms(&mut self, ms: f64) {
        self.stats.ms.gallery += ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_score_is_zero_for_uniform_and_one_for_certain_predictions() {
        let classes = [2, 4];
        assert!(confidence_score(&[(0, 0.5), (3, 0.25)], &classes).abs() < 1e-6);
        assert!((confidence_score(&[(1, 1.0), (2, 1.0)], &classes) - 1.0).abs() < 1e-6);
        let mid = confidence_score(&[(1, 0.75), (2, 0.25)], &classes);
        assert!((mid - 0.25).abs() < 1e-6, "{mid}");
    }

    /// Crops of different images batched into one model run come back in order, each as it is
    /// alone in a batch of one.
    #[test]
    fn images_batched_together_match_one_by_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/models/small-64x32.onnx"
        );
        let images: Vec<RgbImage> = (0..3u8)
            .map(|k| {
                RgbImage::from_fn(20 + 7 * u32::from(k), 50, |x, y| {
                    image::Rgb([(x * 9) as u8 ^ (k * 80), (y * 5) as u8, k * 60 + (x as u8)])
                })
            })
            .collect();
        let mut batched = Recognizer::new(Model::load(path, 2).unwrap(), None, 0.0).unwrap();
        let together = batched.recognize_images(&images).unwrap();
        assert_eq!(batched.stats().crops, 3);
        let mut single = Recognizer::new(Model::load(path, 1).unwrap(), None, 0.0).unwrap();
        assert_eq!(together.len(), 3);
        for (image, got) in images.iter().zip(&together) {
            let want = single
                .recognize(image, &[Region::full(image)], Framing::Picture)
                .unwrap();
            assert_eq!(got.region, want[0].region);
            assert_eq!(got.attributes.len(), NUM_ATTRIBUTES);
            // Every attribute's softmax, one after the other; its top class is the one reported.
            let mut probabilities = got.probabilities.as_slice();
            for (spec, &(class, p)) in batched.card().attributes.iter().zip(&got.attributes) {
                let (these, rest) = probabilities.split_at(spec.labels.len());
                assert!((these.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                assert_eq!(these[class], p);
                probabilities = rest;
            }
            assert!(probabilities.is_empty());
            for (g, w) in got.embedding.iter().zip(&want[0].embedding) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
            assert!((got.person_score - want[0].person_score).abs() < 1e-5);
        }
        // Different images give different embeddings (the order is not a constant).
        assert_ne!(together[0].embedding, together[1].embedding);
    }
}
