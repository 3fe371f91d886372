//! Streams with tracking: screened boxes -> [`Tracker`] -> `track` events.
//!
//! The tracker asks for the model only where it needs an appearance (new boxes, contested ones,
//! refreshes every few frames); each `new`, `update` and `end` becomes a [`TrackEvent`] whose
//! attributes come from the class probabilities averaged over the track and whose identity is
//! decided on the track's averaged embedding. With auto-enrollment, a confirmed track that matches
//! nobody becomes an anonymous identity, and that identity follows the track's embedding.

use std::collections::{HashMap, VecDeque};

use image::imageops::{self, FilterType};
use image::RgbImage;

use super::identities::Identities;
use super::recognizer::Recognizer;
use super::{attribute_values, PipelineError};
use crate::annotate::Label;
use crate::card::AttributeSpec;
use crate::events::text::short_attributes;
use crate::events::{IdentityMatch, TrackEvent, TrackStatus};
use crate::preprocess::Region;
use crate::track::{Appearance, Change, Track, TrackChange, TrackError, Tracker, TrackerConfig};

/// Why a tracker step was not taken.
enum Attempt {
    Failed(PipelineError),
    /// Boxes (indices) whose model outputs were not finite.
    Unusable(Vec<usize>),
}

impl From<PipelineError> for Attempt {
    fn from(e: PipelineError) -> Self {
        Attempt::Failed(e)
    }
}

impl From<TrackError> for Attempt {
    fn from(e: TrackError) -> Self {
        Attempt::Failed(e.into())
    }
}

/// The items of `items` whose index `keep` accepts.
fn retain_indices<T: Copy>(items: &[T], keep: impl Fn(&usize) -> bool) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(i))
        .map(|(_, &t)| t)
        .collect()
}

/// A tracker and what the pipeline remembers of its tracks.
pub(super) struct Tracking {
    tracker: Tracker,
    memory: Memory,
}

/// Crops kept per track: the best by person score.
pub const KEPT_CROPS: usize = 4;

/// Ended tracks whose crops are kept (the most recent).
pub const KEPT_ENDED: usize = 32;

/// Largest kept crop, width and height: larger crops are scaled down to fit.
const KEPT_SIZE: (u32, u32) = (128, 256);

/// A crop of a track that the model described, kept in memory (never written unless asked):
/// for enrolling the track's person and for its snapshot.
#[derive(Debug, Clone)]
pub struct KeptCrop {
    /// The frame it is from.
    pub frame: u64,
    /// Its person score.
    pub person_score: f32,
    /// The crop, at most 128x256.
    pub image: RgbImage,
    /// Its embedding.
    pub embedding: Vec<f32>,
}

/// What the pipeline remembers of the tracks.
#[derive(Default)]
struct Memory {
    /// Per live confirmed track: its anonymous name and its label's lines.
    tracks: HashMap<u64, Shown>,
    /// Tracks confirmed so far.
    confirmed: u64,
    /// Per live confirmed track, its best crops, best first.
    kept: HashMap<u64, Vec<KeptCrop>>,
    /// The crops of the last [`KEPT_ENDED`] ended tracks, oldest first.
    ended: VecDeque<(u64, Vec<KeptCrop>)>,
}

#[derive(Default)]
struct Shown {
    anonymous: Option<String>,
    lines: Vec<String>,
}

impl Tracking {
    pub(super) fn new(cfg: TrackerConfig) -> Self {
        Self {
            tracker: Tracker::new(cfg),
            memory: Memory::default(),
        }
    }

    /// Tracks confirmed so far.
    pub(super) fn confirmed(&self) -> u64 {
        self.memory.confirmed
    }

    /// One frame's screened `boxes` of `image`, with the pre-detector's person scores where
    /// there is one (else the main model's): the tracks' changes as events (without time and
    /// camera, which the caller sets).
    pub(super) fn step(
        &mut self,
        frame: u64,
        image: &RgbImage,
        boxes: &[Region],
        scores: Option<&[f32]>,
        recognizer: &mut Recognizer,
        identities: &mut Identities,
    ) -> Result<Vec<TrackEvent>, PipelineError> {
        let (mut boxes, mut scores) = (boxes.to_vec(), scores.map(<[f32]>::to_vec));
        // The boxes described this frame, with their appearances' embedding and person score.
        let mut described: Vec<(Region, Vec<f32>, f32)> = Vec::new();
        // A box the model cannot describe (non-finite outputs) leaves the frame and the step is
        // taken again without it: the tracker is unchanged by a failed step. Each retry has fewer
        // boxes, so this ends.
        let changes = loop {
            described.clear();
            let step = self.tracker.step(frame, &boxes, |wanted: &[usize]| {
                let regions: Vec<Region> = wanted.iter().map(|&i| boxes[i]).collect();
                let recognitions = recognizer.describe(image, &regions)?;
                let unusable: Vec<usize> = wanted
                    .iter()
                    .zip(&recognitions)
                    .filter(|(_, r)| r.dropped)
                    .map(|(&i, _)| i)
                    .collect();
                if !unusable.is_empty() {
                    return Err(Attempt::Unusable(unusable));
                }
                let appearances: Vec<Appearance> = recognitions
                    .into_iter()
                    .zip(wanted)
                    .map(|(r, &i)| Appearance {
                        embedding: r.embedding,
                        probabilities: r.probabilities,
                        person_score: scores.as_ref().map_or(r.person_score, |s| s[i]),
                    })
                    .collect();
                described.extend(
                    regions
                        .iter()
                        .zip(&appearances)
                        .map(|(&r, a)| (r, a.embedding.clone(), a.person_score)),
                );
                Ok(appearances)
            });
            match step {
                Ok(changes) => break changes,
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Unusable(unusable)) => {
                    let keep = |i: &usize| !unusable.contains(i);
                    boxes = retain_indices(&boxes, keep);
                    scores = scores.map(|s| retain_indices(&s, keep));
                }
            }
        };
        let events = self.events(frame, changes, &recognizer.card().attributes, identities)?;
        self.keep_crops(frame, image, &described);
        Ok(events)
    }

    /// Keeps the crops of the confirmed tracks that received an appearance in `frame`, if they
    /// are among their best.
    fn keep_crops(&mut self, frame: u64, image: &RgbImage, described: &[(Region, Vec<f32>, f32)]) {
        let fresh = self
            .tracker
            .tracks()
            .filter(|t| t.confirmed() && t.last_frame() == frame && t.last_appearance() == frame);
        for track in fresh {
            let Some((region, embedding, score)) =
                described.iter().find(|(r, _, _)| *r == track.region())
            else {
                continue;
            };
            let kept = self.memory.kept.entry(track.id()).or_default();
            let at = kept.partition_point(|k| k.person_score >= *score);
            if at >= KEPT_CROPS {
                continue;
            }
            kept.insert(
                at,
                KeptCrop {
                    frame,
                    person_score: *score,
                    image: kept_image(image, *region),
                    embedding: embedding.clone(),
                },
            );
            kept.truncate(KEPT_CROPS);
        }
    }

    /// The kept crops of a live or recently ended track, best first.
    pub(super) fn kept_crops(&self, track: u64) -> Option<&[KeptCrop]> {
        self.memory.kept.get(&track).map(Vec::as_slice).or_else(|| {
            self.memory
                .ended
                .iter()
                .find(|(id, _)| *id == track)
                .map(|(_, crops)| crops.as_slice())
        })
    }

    /// Ends every live track (the stream ended after `frame`).
    pub(super) fn finish(
        &mut self,
        frame: u64,
        recognizer: &Recognizer,
        identities: &mut Identities,
    ) -> Result<Vec<TrackEvent>, PipelineError> {
        let changes = self.tracker.finish();
        self.events(frame, changes, &recognizer.card().attributes, identities)
    }

    /// The events of `changes` (of tracks the tracker still finds).
    fn events(
        &mut self,
        frame: u64,
        changes: Vec<TrackChange>,
        specs: &[AttributeSpec],
        identities: &mut Identities,
    ) -> Result<Vec<TrackEvent>, PipelineError> {
        let changed: Vec<(&Track, Change)> = changes
            .iter()
            .filter_map(|c| Some((self.tracker.track(c.id)?, c.change)))
            .collect();
        let embeddings: Vec<&[f32]> = changed.iter().map(|(t, _)| t.embedding()).collect();
        let matches = identities.gallery_matches(&embeddings)?;
        changed
            .into_iter()
            .zip(&matches)
            .map(|((track, change), gallery)| {
                self.memory
                    .event(frame, track, change, specs, identities, gallery)
            })
            .collect()
    }

    /// The confirmed tracks seen in `frame`.
    fn seen(&self, frame: u64) -> impl Iterator<Item = &Track> {
        self.tracker
            .tracks()
            .filter(move |t| t.confirmed() && t.last_frame() == frame)
    }

    /// The confirmed tracks seen in `frame`: id and box.
    pub(super) fn in_view(&self, frame: u64) -> Vec<(u64, Region)> {
        self.seen(frame).map(|t| (t.id(), t.region())).collect()
    }

    /// Labels of the confirmed tracks seen in `frame`.
    pub(super) fn labels(&self, frame: u64) -> Vec<Label> {
        self.seen(frame)
            .filter_map(|t| {
                let shown = self.memory.tracks.get(&t.id())?;
                Some(Label {
                    region: t.region(),
                    key: t.id(),
                    lines: shown.lines.clone(),
                })
            })
            .collect()
    }
}

impl Memory {
    /// The event of `change` to `track`, whose embedding's nearest gallery people are `gallery`,
    /// updating what the pipeline remembers of it.
    fn event(
        &mut self,
        frame: u64,
        track: &Track,
        change: Change,
        specs: &[AttributeSpec],
        identities: &mut Identities,
        gallery: &[IdentityMatch],
    ) -> Result<TrackEvent, PipelineError> {
        let shown = self.tracks.entry(track.id()).or_default();
        let embedding = track.embedding();
        if let Some(name) = &shown.anonymous {
            identities.remember(Some(name), embedding);
        }
        let mut identified = identities.identify(embedding, gallery)?;
        if identified.identity.is_none() && change != Change::End {
            if let Some(name) = identities.remember(None, embedding) {
                shown.anonymous = Some(name);
                identified = identities.identify(embedding, gallery)?;
            }
        }
        let attributes = attribute_values(specs, track.probabilities());
        let status = match change {
            Change::New => {
                self.confirmed += 1;
                TrackStatus::New
            }
            Change::Update => TrackStatus::Update,
            Change::End => TrackStatus::End,
        };
        let name = identified
            .identity
            .as_ref()
            .map_or("?", |m| m.name.as_str());
        shown.lines = vec![
            format!("#{} {name}", track.id()),
            short_attributes(&attributes),
        ];
        if change == Change::End {
            self.tracks.remove(&track.id());
            if let Some(crops) = self.kept.remove(&track.id()) {
                self.ended.push_back((track.id(), crops));
                if self.ended.len() > KEPT_ENDED {
                    self.ended.pop_front();
                }
            }
        }
        Ok(TrackEvent {
            time: String::new(),
            camera: String::new(),
            frame,
            track: track.id(),
            status,
            bbox: track.region().into(),
            person_score: track.person_score(),
            first_frame: track.first_frame(),
            frames_seen: track.hits(),
            attributes,
            identity: identified.identity,
            candidates: identified.candidates,
        })
    }
}

/// The crop of `region` in `image`, scaled down to fit [`KEPT_SIZE`].
fn kept_image(image: &RgbImage, region: Region) -> RgbImage {
    let x = region.x.min(image.width().saturating_sub(1));
    let y = region.y.min(image.height().saturating_sub(1));
    let width = region.width.clamp(1, image.width() - x);
    let height = region.height.clamp(1, image.height() - y);
    let crop = imageops::crop_imm(image, x, y, width, height).to_image();
    let scale = (KEPT_SIZE.0 as f32 / width as f32)
        .min(KEPT_SIZE.1 as f32 / height as f32)
        .min(1.0);
    if scale >= 1.0 {
        return crop;
    }
    let (w, h) = (
        ((width as f32 * scale).round() as u32).max(1),
        ((height as f32 * scale).round() as u32).max(1),
    );
    imageops::resize(&crop, w, h, FilterType::Triangle)
}
