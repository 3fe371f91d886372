//! The per-crop work of the runtime: crops -> optional pre-detector -> the attribute + re-ID model
//! -> gallery match -> observation events, with the time of each stage.
//!
//! [`Recognizer`] turns image regions into [`Recognition`]s (attributes, embedding, person score),
//! batching crops into the model's planned batch and reusing its input buffers from call to call.
//! [`Pipeline`] adds the gallery and makes [`Observation`] events out of stream frames.
//!
//! The person score of a crop is, in order of preference: the pre-detector's probability, the
//! model's own person head, or (the paper's first idea for spotting junk) the model's confidence:
//! the mean over the attributes of the top class probability rescaled so that a uniform guess
//! scores 0 and a certain one 1. Junk crops have no clear attributes, so they score low.

use std::time::{Instant, SystemTime};

use image::RgbImage;

use crate::attributes::NUM_ATTRIBUTES;
use crate::card::{ModelCard, Task};
use crate::events::{
    rfc3339, AttributeValue, BoxPx, IdentityMatch, Observation, StageMillis, Summary,
    MAX_CANDIDATES,
};
use crate::gallery::{Gallery, GalleryError};
use crate::model::{sigmoid, Model, ModelError, Outputs};
use crate::preprocess::{PreprocessError, Preprocessor, Region};

/// Why a crop could not be recognised.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The model failed.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// A crop could not be cut (for example a region outside the frame).
    #[error("crop {region:?}: {source}")]
    Crop {
        /// The region.
        region: Region,
        /// The cause.
        source: PreprocessError,
    },
    /// A model does not fit its role.
    #[error("{0}")]
    Role(String),
    /// The gallery refused a search.
    #[error("gallery: {0}")]
    Gallery(#[from] GalleryError),
}

/// What the model says about one crop.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// The crop's region in its image.
    pub region: Region,
    /// Probability that the crop shows a person (see the module doc).
    pub person_score: f32,
    /// Whether the pre-detector dropped the crop as junk (then there are no attributes and no
    /// embedding).
    pub dropped: bool,
    /// Per attribute (card order): the predicted class and its probability.
    pub attributes: heapless::Vec<(usize, f32), NUM_ATTRIBUTES>,
    /// Every class probability, attribute after attribute in card order (what a track averages).
    pub probabilities: Vec<f32>,
    /// The re-ID embedding.
    pub embedding: Vec<f32>,
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
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A model with its preprocessor and a reusable input buffer.
struct Stage {
    model: Model,
    pre: Preprocessor,
    input: Vec<f32>,
}

impl Stage {
    fn new(model: Model) -> Result<Self, PipelineError> {
        let pre = Preprocessor::from_spec(&model.card().input)
            .map_err(|e| PipelineError::Role(format!("model input: {e}")))?;
        let input = vec![0.0; model.batch() * pre.slot_len()];
        Ok(Self { model, pre, input })
    }

    /// Runs the model over `crops` (an image and a region of it each) in batches, calling
    /// `each(index, outputs, i)` for every crop.
    fn run(
        &mut self,
        crops: &[(&RgbImage, Region)],
        ms_pre: &mut f64,
        ms_model: &mut f64,
        mut each: impl FnMut(usize, &Outputs, usize),
    ) -> Result<(), PipelineError> {
        let slot = self.pre.slot_len();
        for (chunk_index, chunk) in crops.chunks(self.model.batch()).enumerate() {
            let started = Instant::now();
            for (&(image, region), out) in chunk.iter().zip(self.input.chunks_exact_mut(slot)) {
                self.pre
                    .crop_into(image, region, out)
                    .map_err(|source| PipelineError::Crop { region, source })?;
            }
            *ms_pre += millis(started);
            let started = Instant::now();
            let outputs = self
                .model
                .run(&self.input[..chunk.len() * slot], chunk.len())?;
            *ms_model += millis(started);
            for i in 0..chunk.len() {
                each(chunk_index * self.model.batch() + i, &outputs, i);
            }
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

    /// Time and counts so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Recognises `regions` of `image`.
    pub fn recognize(
        &mut self,
        image: &RgbImage,
        regions: &[Region],
    ) -> Result<Vec<Recognition>, PipelineError> {
        let crops: Vec<(&RgbImage, Region)> = regions.iter().map(|&r| (image, r)).collect();
        self.recognize_crops(&crops)
    }

    /// Recognises each of `images` as one whole-image crop, batching crops of different images
    /// into one model run.
    pub fn recognize_images(
        &mut self,
        images: &[RgbImage],
    ) -> Result<Vec<Recognition>, PipelineError> {
        let crops: Vec<(&RgbImage, Region)> = images.iter().map(|i| (i, Region::full(i))).collect();
        self.recognize_crops(&crops)
    }

    /// Recognises regions of possibly different images.
    fn recognize_crops(
        &mut self,
        crops: &[(&RgbImage, Region)],
    ) -> Result<Vec<Recognition>, PipelineError> {
        self.stats.crops += crops.len() as u64;
        let mut results: Vec<Recognition> = crops
            .iter()
            .map(|&(_, region)| Recognition {
                region,
                person_score: f32::NAN,
                dropped: false,
                attributes: heapless::Vec::new(),
                probabilities: Vec::new(),
                embedding: Vec::new(),
            })
            .collect();
        let classes: Vec<usize> = self
            .card()
            .attributes
            .iter()
            .map(|a| a.labels.len())
            .collect();
        let ms = &mut self.stats.ms;
        if let Some(pre) = &mut self.pre_detector {
            let mut pre_ms = 0.0;
            pre.run(crops, &mut ms.preprocess, &mut pre_ms, |i, out, j| {
                results[i].person_score = out.person_logit(j).map_or(0.0, sigmoid);
            })?;
            ms.pre_detector += pre_ms;
            for r in &mut results {
                r.dropped = r.person_score < self.junk_threshold;
            }
            self.stats.dropped += results.iter().filter(|r| r.dropped).count() as u64;
        }
        let kept: Vec<usize> = (0..results.len())
            .filter(|&i| !results[i].dropped)
            .collect();
        let kept_crops: Vec<(&RgbImage, Region)> = kept.iter().map(|&i| crops[i]).collect();
        let has_pre = self.pre_detector.is_some();
        let main = &mut self.main;
        main.run(
            &kept_crops,
            &mut ms.preprocess,
            &mut ms.model,
            |k, out, j| {
                let r = &mut results[kept[k]];
                for a in 0..classes.len() {
                    let probs = out.attribute_probabilities(j, a).unwrap_or_default();
                    let best = probs
                        .iter()
                        .copied()
                        .enumerate()
                        .fold((0, f32::MIN), |b, (c, p)| if p > b.1 { (c, p) } else { b });
                    // The card holds at most NUM_ATTRIBUTES attributes in the standard schema; extra
                    // ones are not reported.
                    let _ = r.attributes.push(best);
                    r.probabilities.extend_from_slice(&probs);
                }
                r.embedding = out.embedding(j).unwrap_or_default().to_vec();
                if !has_pre {
                    r.person_score = match out.person_logit(j) {
                        Some(logit) => sigmoid(logit),
                        None => confidence_score(&r.attributes, &classes),
                    };
                }
            },
        )?;
        Ok(results)
    }

    /// Adds gallery search time.
    fn add_gallery_ms(&mut self, ms: f64) {
        self.stats.ms.gallery += ms;
    }
}

/// Where crops come from in a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum CropMode {
    /// The whole frame is one crop.
    WholeFrame,
    /// Fixed regions (`--roi x,y,w,h`); regions outside a frame are clipped to it.
    Regions(Vec<Region>),
    /// The boxes the synthetic camera reports for the people it drew.
    Truth,
}

/// Frames to observation events.
pub struct Pipeline {
    recognizer: Recognizer,
    gallery: Option<Gallery>,
    crops: CropMode,
    max_distance: Option<f32>,
    frames: u64,
    observations: u64,
    capture_ms: f64,
    output_ms: f64,
}

/// Clips `r` to an image of `width` x `height`; `None` when nothing is left.
fn clip(r: Region, width: u32, height: u32) -> Option<Region> {
    let x0 = r.x.min(width);
    let y0 = r.y.min(height);
    let x1 = r.x.saturating_add(r.width).min(width);
    let y1 = r.y.saturating_add(r.height).min(height);
    (x1 > x0 && y1 > y0).then(|| Region {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    })
}

impl Pipeline {
    /// A pipeline matching against `gallery` (none: every identity is unknown). Matches farther
    /// than `max_distance` are unknown; without it, the model card's unknown distance applies, and
    /// with neither every observation is named after its nearest identity.
    pub fn new(
        recognizer: Recognizer,
        gallery: Option<Gallery>,
        crops: CropMode,
        max_distance: Option<f32>,
    ) -> Self {
        let max_distance = max_distance.or_else(|| {
            let embedding = recognizer.card().embedding.as_ref();
            embedding.and_then(|e| e.unknown_distance)
        });
        Self {
            recognizer,
            gallery,
            crops,
            max_distance,
            frames: 0,
            observations: 0,
            capture_ms: 0.0,
            output_ms: 0.0,
        }
    }

    /// Adds time spent reading frames and writing events (measured by the caller).
    pub fn add_io_ms(&mut self, capture: f64, output: f64) {
        self.capture_ms += capture;
        self.output_ms += output;
    }

    /// The regions to crop in a frame.
    fn regions(&self, frame: &crate::source::Frame) -> Vec<Region> {
        let (w, h) = frame.image.dimensions();
        match &self.crops {
            CropMode::WholeFrame => vec![Region::full(&frame.image)],
            CropMode::Regions(rs) => rs.iter().filter_map(|&r| clip(r, w, h)).collect(),
            CropMode::Truth => frame
                .truth
                .iter()
                .filter_map(|t| {
                    let r = Region {
                        x: t.x,
                        y: t.y,
                        width: t.width,
                        height: t.height,
                    };
                    clip(r, w, h)
                })
                .collect(),
        }
    }

    /// The observations of one frame from `camera`.
    pub fn process(
        &mut self,
        frame: &crate::source::Frame,
        camera: &str,
    ) -> Result<Vec<Observation>, PipelineError> {
        self.frames += 1;
        let regions = self.regions(frame);
        let recognitions = self.recognizer.recognize(&frame.image, &regions)?;
        let time = rfc3339(SystemTime::now());
        let card = self.recognizer.card();
        let mut gallery_ms = 0.0;
        let mut observations = Vec::new();
        for (crop, r) in recognitions.into_iter().enumerate() {
            if r.dropped {
                continue;
            }
            let started = Instant::now();
            let candidates = match &self.gallery {
                Some(g) if !g.is_empty() => g
                    .search::<MAX_CANDIDATES>(&r.embedding, None)?
                    .iter()
                    .map(|m| IdentityMatch {
                        name: m.name.to_string(),
                        distance: m.distance,
                    })
                    .collect(),
                _ => heapless::Vec::new(),
            };
            gallery_ms += millis(started);
            let identity = candidates
                .first()
                .filter(|m| self.max_distance.is_none_or(|d| m.distance <= d))
                .cloned();
            let attributes = card
                .attributes
                .iter()
                .zip(&r.attributes)
                .map(|(spec, &(class, score))| AttributeValue {
                    name: spec.name.clone(),
                    label: spec.labels.get(class).cloned().unwrap_or_default(),
                    score,
                })
                .collect();
            observations.push(Observation {
                time: time.clone(),
                camera: camera.to_string(),
                frame: frame.index,
                crop,
                bbox: BoxPx {
                    x: r.region.x,
                    y: r.region.y,
                    width: r.region.width,
                    height: r.region.height,
                },
                person_score: r.person_score,
                attributes,
                identity,
                candidates,
            });
        }
        self.recognizer.add_gallery_ms(gallery_ms);
        self.observations += observations.len() as u64;
        Ok(observations)
    }

    /// The end-of-run summary.
    pub fn summary(&self) -> Summary {
        let stats = self.recognizer.stats();
        let mut ms = stats.ms;
        ms.capture = self.capture_ms;
        ms.output = self.output_ms;
        let total =
            ms.capture + ms.preprocess + ms.pre_detector + ms.model + ms.gallery + ms.output;
        Summary {
            frames: self.frames,
            crops: stats.crops,
            dropped: stats.dropped,
            observations: self.observations,
            ms,
            ms_per_frame: if self.frames == 0 {
                0.0
            } else {
                total / self.frames as f64
            },
        }
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
            let want = single.recognize(image, &[Region::full(image)]).unwrap();
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

    #[test]
    fn regions_are_clipped_to_the_frame() {
        let r = |x, y, width, height| Region {
            x,
            y,
            width,
            height,
        };
        assert_eq!(clip(r(10, 10, 100, 100), 50, 40), Some(r(10, 10, 40, 30)));
        assert_eq!(clip(r(60, 0, 10, 10), 50, 40), None);
        assert_eq!(clip(r(0, 0, 50, 40), 50, 40), Some(r(0, 0, 50, 40)));
    }
}
