//! Events: what the runtime tells the world, one JSON object per line (JSON Lines).
//!
//! Three kinds, told apart by the `event` field (the README documents the schema):
//! - `observation`: one person crop seen in one frame, with its box, attributes, person score and
//!   identity (or `null` for unknown): image files, fixed regions (`--roi`), `--no-track`;
//! - `track`: a person followed over the frames of a stream, with a stable track id and a
//!   `status`: `new` (confirmed), `update` (its appearance was measured again), `end` (gone); the
//!   attributes are averaged over the track and the identity decided on its averaged embedding;
//! - `summary`: the closing line of a run, with frame and crop counts and milliseconds per stage.
//!
//! [`text`] writes the same events as lines a person reads at a terminal.

pub mod text;

use std::io::Write;
use std::time::SystemTime;

use heapless::Vec as BoundedVec;
use serde::Serialize;

use crate::attributes::NUM_ATTRIBUTES;

/// Most gallery candidates an observation lists.
pub const MAX_CANDIDATES: usize = 5;

/// A box in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BoxPx {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl From<crate::preprocess::Region> for BoxPx {
    fn from(r: crate::preprocess::Region) -> Self {
        BoxPx {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
        }
    }
}

impl From<BoxPx> for crate::preprocess::Region {
    fn from(b: BoxPx) -> Self {
        crate::preprocess::Region {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }
    }
}

/// One attribute's predicted label and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeValue {
    /// Attribute name (`age`, `gender`, ...).
    pub name: String,
    /// Predicted label (`teenager`, `female`, ...).
    pub label: String,
    /// Softmax probability of that label.
    pub score: f32,
}

/// A gallery identity and its distance to the observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityMatch {
    /// Enrolled name.
    pub name: String,
    /// Distance by the model card's metric.
    pub distance: f32,
}

/// One person crop in one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// RFC 3339 UTC time the frame was processed.
    pub time: String,
    /// Source description (device path, file, `stdin`, `synthetic`).
    pub camera: String,
    /// Frame number in the stream (0-based).
    pub frame: u64,
    /// Crop number within the frame (0-based).
    pub crop: usize,
    /// Where the crop is in the frame.
    #[serde(rename = "box")]
    pub bbox: BoxPx,
    /// Probability that the crop shows a person: the pre-detector's or the model's person head when
    /// present, else the confidence-based score (see `pipeline`).
    pub person_score: f32,
    /// The attributes, in schema order.
    pub attributes: BoundedVec<AttributeValue, NUM_ATTRIBUTES>,
    /// The closest enrolled identity within the unknown threshold, or `null`.
    pub identity: Option<IdentityMatch>,
    /// The nearest gallery identities, closest first (within or beyond the threshold).
    pub candidates: BoundedVec<IdentityMatch, MAX_CANDIDATES>,
}

/// What happened to a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackStatus {
    /// Confirmed: seen in enough consecutive frames.
    New,
    /// Its crop was recognised again (attributes and identity refreshed).
    Update,
    /// Not seen for long enough, or the stream ended.
    End,
}

/// A person followed over frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackEvent {
    /// RFC 3339 UTC time the frame was processed.
    pub time: String,
    /// Source description.
    pub camera: String,
    /// Frame number of the event (0-based; for `end`, the frame the track ended at).
    pub frame: u64,
    /// Track id, stable for the track's life and never reused within a run.
    pub track: u64,
    /// What happened.
    pub status: TrackStatus,
    /// The track's last box.
    #[serde(rename = "box")]
    pub bbox: BoxPx,
    /// The mean person score of the track's recognised crops (see [`Observation::person_score`]).
    pub person_score: f32,
    /// Frame the track was first seen in.
    pub first_frame: u64,
    /// Frames the track was matched in.
    pub frames_seen: u32,
    /// The attributes (schema order), from the class probabilities averaged over the track.
    pub attributes: BoundedVec<AttributeValue, NUM_ATTRIBUTES>,
    /// The closest known identity of the track's averaged embedding within the unknown distance
    /// (a gallery name, or `anon-N` with auto-enrollment), or `null`.
    pub identity: Option<IdentityMatch>,
    /// The nearest identities, closest first (within or beyond the distance).
    pub candidates: BoundedVec<IdentityMatch, MAX_CANDIDATES>,
}

/// Milliseconds spent per stage over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageMillis {
    /// Reading and decoding frames.
    pub capture: f64,
    /// Finding person boxes in frames (motion or a detector).
    pub proposals: f64,
    /// Associating boxes with tracks and deciding their identities (model time not included).
    pub tracking: f64,
    /// Cropping, resizing and normalising.
    pub preprocess: f64,
    /// The pre-detector.
    pub pre_detector: f64,
    /// The attribute + re-ID model.
    pub model: f64,
    /// Gallery search.
    pub gallery: f64,
    /// Writing events.
    pub output: f64,
}

impl StageMillis {
    /// The stages by name (as in the JSON), in pipeline order.
    pub fn stages(&self) -> [(&'static str, f64); 8] {
        [
            ("capture", self.capture),
            ("proposals", self.proposals),
            ("tracking", self.tracking),
            ("preprocess", self.preprocess),
            ("pre_detector", self.pre_detector),
            ("model", self.model),
            ("gallery", self.gallery),
            ("output", self.output),
        ]
    }

    /// All stages together.
    pub fn total(&self) -> f64 {
        self.stages().iter().map(|&(_, v)| v).sum()
    }

    /// The time spent since `earlier`, stage by stage.
    pub fn minus(&self, earlier: &StageMillis) -> StageMillis {
        StageMillis {
            capture: self.capture - earlier.capture,
            proposals: self.proposals - earlier.proposals,
            tracking: self.tracking - earlier.tracking,
            preprocess: self.preprocess - earlier.preprocess,
            pre_detector: self.pre_detector - earlier.pre_detector,
            model: self.model - earlier.model,
            gallery: self.gallery - earlier.gallery,
            output: self.output - earlier.output,
        }
    }
}

/// The closing line of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Frames read.
    pub frames: u64,
    /// Frames or image files skipped because they could not be read or decoded (counted by the
    /// reader of the source, not the pipeline).
    pub unreadable: u64,
    /// Crops cut.
    pub crops: u64,
    /// Crops the pre-detector dropped as junk.
    pub dropped: u64,
    /// Crops skipped because the model's outputs for them held NaN or infinite values.
    pub non_finite: u64,
    /// Observations emitted.
    pub observations: u64,
    /// Tracks confirmed.
    pub tracks: u64,
    /// Total milliseconds per stage.
    pub ms: StageMillis,
    /// Mean milliseconds per frame, all stages.
    pub ms_per_frame: f64,
}

/// Any event, tagged by `event` (borrowed: events are written, not kept).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// An observation.
    Observation(&'a Observation),
    /// A track's news.
    Track(&'a TrackEvent),
    /// The end-of-run summary.
    Summary(&'a Summary),
}

impl Event<'_> {
    /// The event as one line of JSON (as [`EventWriter`] writes it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }
}

/// Formats a time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Writes events as JSON Lines and flushes each line, so a reader sees every event as it happens.
pub struct EventWriter<W: Write> {
    out: W,
}

impl<W: Write> EventWriter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one event as one line.
    pub fn write(&mut self, event: &Event) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_object_per_line_with_the_documented_fields() {
        let mut attributes = BoundedVec::new();
        attributes
            .push(AttributeValue {
                name: "gender".into(),
                label: "female".into(),
                score: 0.75,
            })
            .unwrap();
        let observation = Observation {
            time: rfc3339(SystemTime::UNIX_EPOCH),
            camera: "synthetic".into(),
            frame: 3,
            crop: 1,
            bbox: BoxPx {
                x: 1,
                y: 2,
                width: 64,
                height: 128,
            },
            person_score: 0.5,
            attributes,
            identity: None,
            candidates: BoundedVec::new(),
        };
        let mut buf = Vec::new();
        let mut w = EventWriter::new(&mut buf);
        w.write(&Event::Observation(&observation)).unwrap();
        w.write(&Event::Summary(&Summary {
            frames: 4,
            unreadable: 0,
            crops: 8,
            dropped: 1,
            non_finite: 0,
            observations: 7,
            tracks: 0,
            ms: StageMillis::default(),
            ms_per_frame: 2.5,
        }))
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let o = &lines[0];
        assert_eq!(o["event"], "observation");
        assert_eq!(o["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(o["box"]["height"], 128);
        assert_eq!(o["attributes"][0]["label"], "female");
        assert!(o["identity"].is_null());
        assert_eq!(lines[1]["event"], "summary");
        assert_eq!(lines[1]["ms"]["model"], 0.0);
    }
}
