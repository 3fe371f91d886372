//! Frames to events: person boxes -> optional pre-detector -> the attribute + re-ID model ->
//! identity, with the time of each stage.
//!
//! [`Pipeline`] takes stream frames and a [`Proposer`] that finds the person boxes in them.
//! - Without tracking, every box of every frame becomes one `observation` event
//!   ([`Recognizer::recognize`], then the gallery).
//! - With tracking ([`Pipeline::with_tracking`]), the pre-detector screens the boxes, a
//!   [`crate::track::Tracker`] associates them with tracks and asks for the model only where it
//!   needs an appearance, and tracks become `track` events: `new`, `update`, `end`
//!   ([`tracking`]).
//!
//! Identities come from the gallery and the unknown distance (`--max-distance`, else the model
//! card's); with auto-enrollment, also from the anonymous people met during the run
//! ([`identities`]).

mod identities;
mod recognizer;
mod tracking;

use std::time::{Instant, SystemTime};

use heapless::Vec as BoundedVec;
use image::RgbImage;

pub use recognizer::{confidence_score, top_class, Recognition, Recognizer, Stats};
pub use tracking::{KeptCrop, KEPT_CROPS, KEPT_ENDED};

use crate::annotate::Label;
use crate::attributes::NUM_ATTRIBUTES;
use crate::card::AttributeSpec;
use crate::detect::{DetectError, Proposer};
use crate::events::text::short_attributes;
use crate::events::{rfc3339, AttributeValue, Event, Observation, Summary, TrackEvent};
use crate::gallery::{Gallery, GalleryError};
use crate::model::ModelError;
use crate::preprocess::{PreprocessError, Region};
use crate::source::Frame;
use crate::track::{TrackError, TrackerConfig};
use identities::Identities;
use recognizer::millis;
use tracking::Tracking;

/// Why a frame could not be processed.
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
    /// The person detector failed.
    #[error("detector: {0}")]
    Detect(#[from] DetectError),
    /// The model's appearances broke the tracker's contract.
    #[error("tracker: {0}")]
    Track(#[from] TrackError),
}

/// What a frame produced: observations (no tracking) or track events.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// One box of one frame.
    Observation(Observation),
    /// A track's news.
    Track(TrackEvent),
}

impl Output {
    /// The event to write.
    pub fn event(&self) -> Event<'_> {
        match self {
            Output::Observation(o) => Event::Observation(o),
            Output::Track(t) => Event::Track(t),
        }
    }
}

/// The attributes of a crop or a track from its class probabilities (attribute after attribute
/// in card order): each attribute's most probable label.
fn attribute_values(
    specs: &[AttributeSpec],
    probabilities: &[f32],
) -> BoundedVec<AttributeValue, NUM_ATTRIBUTES> {
    let mut rest = probabilities;
    let mut values = BoundedVec::new();
    for spec in specs {
        let n = spec.labels.len().min(rest.len());
        let (these, tail) = rest.split_at(n);
        rest = tail;
        let (class, score) = top_class(these);
        // At most NUM_ATTRIBUTES are reported (the standard schema's count).
        let _ = values.push(AttributeValue {
            name: spec.name.clone(),
            label: spec.labels.get(class).cloned().unwrap_or_default(),
            score,
        });
    }
    values
}

/// Frames to events.
pub struct Pipeline {
    recognizer: Recognizer,
    identities: Identities,
    proposer: Proposer,
    tracking: Option<Tracking>,
    frames: u64,
    last_frame: u64,
    observations: u64,
    capture_ms: f64,
    output_ms: f64,
    proposals_ms: f64,
    tracking_ms: f64,
}

impl Pipeline {
    /// A pipeline finding boxes with `proposer` and matching against `gallery` (none: every
    /// identity is unknown). Matches farther than `max_distance` are unknown; without it, the
    /// model card's unknown distance applies, and with neither every observation is named after
    /// its nearest identity.
    pub fn new(
        recognizer: Recognizer,
        gallery: Option<Gallery>,
        proposer: Proposer,
        max_distance: Option<f32>,
    ) -> Self {
        let max_distance = max_distance.or_else(|| {
            let embedding = recognizer.card().embedding.as_ref();
            embedding.and_then(|e| e.unknown_distance)
        });
        Self {
            recognizer,
            identities: Identities::new(gallery, max_distance),
            proposer,
            tracking: None,
            frames: 0,
            last_frame: 0,
            observations: 0,
            capture_ms: 0.0,
            output_ms: 0.0,
            proposals_ms: 0.0,
            tracking_ms: 0.0,
        }
    }

    /// Tracks people over frames (see the module doc). The appearance gate of `cfg` is replaced
    /// by the unknown distance where there is a finite one. With `auto_enroll`, unknown confirmed
    /// tracks become anonymous identities for the rest of the run; that needs a finite unknown
    /// distance (else every newcomer would be the nearest anonymous person), so it is refused
    /// without one.
    pub fn with_tracking(
        mut self,
        mut cfg: TrackerConfig,
        auto_enroll: bool,
    ) -> Result<Self, PipelineError> {
        cfg.metric = self.recognizer.metric();
        let finite = self.identities.max_distance().filter(|d| d.is_finite());
        if let Some(d) = finite {
            cfg.max_embedding_distance = d;
        }
        if auto_enroll {
            if finite.is_none() {
                return Err(PipelineError::Role(
                    "auto-enrollment needs a finite unknown distance: the model card has none, \
                     so give --max-distance"
                        .into(),
                ));
            }
            self.identities.enable_anonymous(cfg.metric);
        }
        self.tracking = Some(Tracking::new(cfg));
        Ok(self)
    }

    /// Matches against `gallery` from the next frame on (a gallery changed while running: by
    /// gallery sync, or `enroll` on the same file). Tracks keep the names they have until they
    /// are identified again.
    pub fn set_gallery(&mut self, gallery: Gallery) {
        self.identities.set_gallery(gallery);
    }

    /// Recognises each of `images` as a picture of one person, with the run's models (see
    /// [`Recognizer::recognize_images`]; a picture the pre-detector drops has no embedding).
    pub fn recognize_images(
        &mut self,
        images: &[RgbImage],
    ) -> Result<Vec<Recognition>, PipelineError> {
        self.recognizer.recognize_images(images)
    }

    /// Adds time spent reading frames and writing events (measured by the caller).
    pub fn add_io_ms(&mut self, capture: f64, output: f64) {
        self.capture_ms += capture;
        self.output_ms += output;
    }

    /// The events of one frame from `camera`.
    pub fn process(&mut self, frame: &Frame, camera: &str) -> Result<Vec<Output>, PipelineError> {
        self.frames += 1;
        self.last_frame = frame.index;
        let started = Instant::now();
        let regions = self.proposer.propose(frame)?;
        self.proposals_ms += millis(started);
        let time = rfc3339(SystemTime::now());
        match &mut self.tracking {
            None => self.observe(frame, &regions, &time, camera),
            Some(tracking) => {
                let (boxes, scores) = self.recognizer.screen(&frame.image, &regions)?;
                let started = Instant::now();
                let before = self.recognizer.stats().ms;
                let events = tracking.step(
                    frame.index,
                    &frame.image,
                    &boxes,
                    scores.as_deref(),
                    &mut self.recognizer,
                    &mut self.identities,
                )?;
                let after = self.recognizer.stats().ms;
                let model = (after.preprocess - before.preprocess) + (after.model - before.model);
                self.tracking_ms += millis(started) - model;
                Ok(stamp(events, &time, camera))
            }
        }
    }

    /// The events that close the stream: every live track ends (none without tracking).
    pub fn finish(&mut self, camera: &str) -> Result<Vec<Output>, PipelineError> {
        let Some(tracking) = &mut self.tracking else {
            return Ok(Vec::new());
        };
        let events = tracking.finish(self.last_frame, &self.recognizer, &mut self.identities)?;
        Ok(stamp(events, &rfc3339(SystemTime::now()), camera))
    }

    /// The confirmed tracks seen in the frame last processed, with their boxes, in no particular
    /// order (none without tracking): what `--mot` writes.
    pub fn tracks_in_view(&self) -> Vec<(u64, Region)> {
        self.tracking
            .as_ref()
            .map_or_else(Vec::new, |t| t.in_view(self.last_frame))
    }

    /// The best crops kept of a live or recently ended track (see [`KEPT_CROPS`] and
    /// [`KEPT_ENDED`]), best first; `None` for a track not kept (or without tracking).
    pub fn kept_crops(&self, track: u64) -> Option<&[KeptCrop]> {
        self.tracking.as_ref()?.kept_crops(track)
    }

    /// Labels for an annotated picture of the frame last processed: its tracks, or the
    /// observations it produced (`outputs`).
    pub fn labels(&self, outputs: &[Output]) -> Vec<Label> {
        match &self.tracking {
            Some(tracking) => tracking.labels(self.last_frame),
            None => outputs
                .iter()
                .filter_map(|o| match o {
                    Output::Observation(o) => Some(o),
                    Output::Track(_) => None,
                })
                .map(|o| Label {
                    region: o.bbox.into(),
                    key: o.crop as u64,
                    lines: vec![
                        o.identity
                            .as_ref()
                            .map_or("?".to_string(), |m| m.name.clone()),
                        short_attributes(&o.attributes),
                    ],
                })
                .collect(),
        }
    }

    /// One observation per box, each matched against the gallery.
    fn observe(
        &mut self,
        frame: &Frame,
        regions: &[Region],
        time: &str,
        camera: &str,
    ) -> Result<Vec<Output>, PipelineError> {
        let framing = self.proposer.framing();
        let recognitions = self.recognizer.recognize(&frame.image, regions, framing)?;
        let started = Instant::now();
        let kept: Vec<&[f32]> = recognitions
            .iter()
            .filter(|r| !r.dropped)
            .map(|r| r.embedding.as_slice())
            .collect();
        let mut matches = self.identities.gallery_matches(&kept)?.into_iter();
        let mut gallery_ms = millis(started);
        let mut observations = Vec::new();
        for (crop, r) in recognitions.into_iter().enumerate() {
            if r.dropped {
                continue;
            }
            let started = Instant::now();
            let gallery = matches.next().expect("one answer per kept crop");
            let identified = self.identities.identify(&r.embedding, &gallery)?;
            gallery_ms += millis(started);
            let attributes = attribute_values(&self.recognizer.card().attributes, &r.probabilities);
            observations.push(Output::Observation(Observation {
                time: time.to_string(),
                camera: camera.to_string(),
                frame: frame.index,
                crop,
                bbox: r.region.into(),
                person_score: r.person_score,
                attributes,
                identity: identified.identity,
                candidates: identified.candidates,
            }));
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
        ms.proposals = self.proposals_ms;
        ms.tracking = self.tracking_ms;
        let total = ms.total();
        Summary {
            frames: self.frames,
            unreadable: 0,
            crops: stats.crops,
            dropped: stats.dropped,
            non_finite: stats.non_finite,
            observations: self.observations,
            tracks: self.tracking.as_ref().map_or(0, Tracking::confirmed),
            ms,
            ms_per_frame: if self.frames == 0 {
                0.0
            } else {
                total / self.frames as f64
            },
        }
    }
}

/// Sets the time and camera of track events.
fn stamp(events: Vec<TrackEvent>, time: &str, camera: &str) -> Vec<Output> {
    events
        .into_iter()
        .map(|mut e| {
            e.time = time.to_string();
            e.camera = camera.to_string();
            Output::Track(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tract_onnx::pb;

    use std::time::Duration;

    use super::*;
    use crate::events::{BoxPx, TrackStatus};
    use crate::model::Model;
    use crate::onnx_test_graph::node;
    use crate::source::TruthBox;

    /// The small test model with its embedding scaled by `log(mean of the input)`: NaN for a
    /// crop darker than the normalisation mean, finite for a bright one.
    fn nan_when_dark(dir: &std::path::Path) -> Model {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/models/small-64x32.onnx"
        );
        let mut proto = pb::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        for n in &mut graph.node {
            for o in &mut n.output {
                if o == "embedding" {
                    *o = "raw_embedding".into();
                }
            }
        }
        let axes = pb::AttributeProto {
            name: "axes".into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints: vec![1, 2, 3],
            ..Default::default()
        };
        graph.node.extend([
            node("ReduceMean", &["image"], "brightness", vec![axes]),
            node("Log", &["brightness"], "log_brightness", vec![]),
            node("Flatten", &["log_brightness"], "scale", vec![]),
            pb::NodeProto {
                name: "scaled_embedding".into(),
                ..node("Mul", &["raw_embedding", "scale"], "embedding", vec![])
            },
        ]);
        let file = dir.join("nan-when-dark.onnx");
        std::fs::write(&file, proto.encode_to_vec()).unwrap();
        Model::load(&file, 2).unwrap()
    }

    /// A frame with a black person box on the left and a white one on the right.
    fn frame(index: u64) -> Frame {
        let mut image = RgbImage::from_pixel(200, 160, image::Rgb([255, 255, 255]));
        for y in 20..140 {
            for x in 10..70 {
                image.put_pixel(x, y, image::Rgb([0, 0, 0]));
            }
        }
        let person = |identity, x| TruthBox {
            identity,
            x,
            y: 20,
            width: 60,
            height: 120,
        };
        Frame {
            image,
            index,
            timestamp: Duration::from_millis(index * 100),
            truth: vec![person(1, 10), person(2, 120)],
        }
    }

    #[test]
    fn a_crop_with_non_finite_outputs_is_skipped_and_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        for track in [false, true] {
            let recognizer = Recognizer::new(nan_when_dark(dir.path()), None, 0.0).unwrap();
            let mut pipeline = Pipeline::new(recognizer, None, Proposer::Truth, None);
            if track {
                pipeline = pipeline
                    .with_tracking(TrackerConfig::default(), false)
                    .unwrap();
            }
            let mut outputs = Vec::new();
            for i in 0..6 {
                outputs.extend(pipeline.process(&frame(i), "test").unwrap());
            }
            outputs.extend(pipeline.finish("test").unwrap());
            let summary = pipeline.summary();
            assert_eq!(
                summary.non_finite, 6,
                "track {track}: the dark box, every frame"
            );
            let regions: Vec<BoxPx> = outputs
                .iter()
                .map(|o| match o {
                    Output::Observation(o) => o.bbox,
                    Output::Track(t) => t.bbox,
                })
                .collect();
            assert!(!regions.is_empty(), "track {track}: the bright box goes on");
            assert!(
                regions.iter().all(|b| b.x == 120),
                "track {track}: only the bright box: {regions:?}"
            );
            if track {
                let statuses: Vec<TrackStatus> = outputs
                    .iter()
                    .filter_map(|o| match o {
                        Output::Track(t) => Some(t.status),
                        Output::Observation(_) => None,
                    })
                    .collect();
                assert_eq!(statuses.first(), Some(&TrackStatus::New));
                assert_eq!(statuses.last(), Some(&TrackStatus::End));
                assert_eq!(summary.tracks, 1);
            } else {
                assert_eq!(summary.observations, 6);
            }
        }
    }
}
