//! Multi-object tracking: person boxes over a stream become tracks with stable ids.
//!
//! A [`Tracker`] knows nothing of models or galleries. Each frame, [`Tracker::step`] gets the
//! frame's person boxes and a `recognize` callback, which it calls at most once with the indices
//! of the boxes whose [`Appearance`] (embedding, attribute probabilities, person score) it needs;
//! it returns the [`TrackChange`]s of the frame.
//!
//! # Association, per frame
//! 1. **Overlap, uncontested.** The IoU ([`crate::detect::iou`]) of every track in sight (seen in
//!    the last [`TrackerConfig::max_misses`] frames) at its predicted box (its last box moved at
//!    its smoothed velocity, [`Track::predicted`]) with every box;
//!    pairs at or above [`TrackerConfig::min_iou`] are candidates. A track and a box that are
//!    each other's only candidate match at once.
//! 2. **Appearance.** Every other box is embedded (it is needed anyway to start a track), and the
//!    tracks left (contested ones, tracks missed in recent frames, lost ones) are matched to these
//!    boxes by the distance between the track's embedding and the box's, in the model card's metric
//!    ([`TrackerConfig::metric`], the one its unknown distance is in): an optimal assignment
//!    (Hungarian algorithm, [`pathfinding`]'s `kuhn_munkres`), pairs farther than
//!    [`TrackerConfig::max_embedding_distance`] excluded, in a cascade by age as in DeepSORT: the
//!    tracks seen in the last frame first, then those unseen for two frames, and so on. This keeps
//!    the id through an occlusion, where two people meet and turn back (where the predicted
//!    overlap prefers the swap; the crossing test shows it), and for a person who leaves and comes
//!    back within [`TrackerConfig::max_lost`] frames; the cascade keeps a stale track from taking
//!    the box of the track that followed it a frame ago (without it, two tracks of one person took
//!    the box in turns).
//! 3. **Overlap, optimal.** Tracks and boxes still left are matched by an optimal assignment on
//!    cost `1 - IoU`, pairs below `min_iou` excluded. Their appearance did not match, so the box's
//!    appearance is not added to the track.
//! 4. **Refresh.** A track matched in step 1 whose last appearance is
//!    [`TrackerConfig::embed_every`] frames old has its box embedded too (in the same single
//!    `recognize` call), and takes that appearance.
//! 5. **Life cycle.** Boxes left start tentative tracks. A tentative track missed once dies
//!    silently; one matched in [`TrackerConfig::confirm_hits`] frames is confirmed
//!    ([`Change::New`]). A confirmed track unmatched for [`TrackerConfig::max_lost`] frames ends
//!    ([`Change::End`]). [`Change::Update`] says a confirmed track took a new appearance this frame
//!    (on a refresh, every `embed_every` frames, and whenever it is matched by appearance: found
//!    again after a miss, or while its overlap is contested), so events stay readable at 10-30 fps.
//!
//! The model runs on new boxes, on refreshes, and on contested boxes every frame (people close
//! together or crossing): that is where appearance is worth its cost.
//!
//! Frame numbers should increase from call to call; misses and refresh ages are measured in frame
//! numbers, so a gap counts as missed frames.
//!
//! # A track's appearance
//! The embedding is the running mean of the L2-normalised embeddings the track received, returned
//! L2-normalised and then scaled to the mean norm of the raw embeddings, so distances stay
//! comparable with gallery entries and the model card's unknown distance (both on raw
//! embeddings). The attribute probabilities and the person score are running means of the values
//! received.
//!
//! Ids start at 1 and never repeat within a tracker; tentative tracks that die take their id with
//! them, so confirmed ids may skip numbers.

mod assign;

use thiserror::Error;

use crate::detect::iou;
use crate::distance::{dot, DistanceMetric};
use crate::preprocess::Region;
use assign::assign;

/// Tracker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// An overlap (IoU) below this is no match. Default 0.2: motion boxes of small people change
    /// shape from frame to frame (on vtest.avi, 0.3 gave 101 tracks, 0.2 58, 0.1 45).
    pub min_iou: f32,
    /// How embeddings are compared: the model card's metric, the one its unknown distance is in.
    pub metric: DistanceMetric,
    /// Appearance re-association gate: the largest distance (in [`Self::metric`]) between a track's
    /// embedding and a box's for them to match by appearance, on the model's raw embeddings.
    /// Set it from the model card's unknown distance where it has one (same-person distances lie
    /// below it); the default 1.0 suits Euclidean embeddings of norm about 1.
    pub max_embedding_distance: f32,
    /// Frames a track must be matched in before it is confirmed (reported as new). Default 3.
    pub confirm_hits: u32,
    /// Frames an unseen track stays *in sight*: its box is predicted and matched by overlap.
    /// Unseen longer, a confirmed track is *lost*: found again by appearance only. Default 20.
    pub max_misses: u32,
    /// Frames a confirmed track may go unseen in all (in sight, then lost); it ends on the last
    /// of them. Default 60, so that people who step out of view for a few seconds come back
    /// under their id.
    pub max_lost: u32,
    /// A matched track's box is embedded again once its last appearance is this many frames old.
    /// Default 5.
    pub embed_every: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            min_iou: 0.2,
            metric: DistanceMetric::Euclidean,
            max_embedding_distance: 1.0,
            confirm_hits: 3,
            max_misses: 20,
            max_lost: 60,
            embed_every: 5,
        }
    }
}

/// What the model says about one box.
#[derive(Debug, Clone, PartialEq)]
pub struct Appearance {
    /// The re-ID embedding, raw (as the model outputs it).
    pub embedding: Vec<f32>,
    /// Attribute class probabilities, concatenated in the card's order.
    pub probabilities: Vec<f32>,
    /// How sure the screening is that the box is a person, in [0, 1].
    pub person_score: f32,
}

/// What happened to a track in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The track was confirmed.
    New,
    /// The confirmed track took a new appearance.
    Update,
    /// The confirmed track ended (unseen for too long, or the stream ended).
    End,
}

/// One track's change in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackChange {
    /// The track ([`Tracker::track`] finds it until the next call to the tracker).
    pub id: u64,
    /// What happened.
    pub change: Change,
}

/// Appearances that break the `recognize` contract (the frame is then not applied).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrackError {
    /// Not one appearance per requested box.
    #[error("recognize returned {got} appearances for {asked} boxes")]
    AppearanceCount {
        /// Boxes requested.
        asked: usize,
        /// Appearances returned.
        got: usize,
    },
    /// An empty embedding.
    #[error("box {index}: the embedding is empty")]
    EmptyEmbedding {
        /// The box's index in the frame.
        index: usize,
    },
    /// A vector whose length differs from the tracker's earlier ones.
    #[error("box {index}: {what} of length {got}, expected {expected}")]
    Length {
        /// The box's index in the frame.
        index: usize,
        /// `"embedding"` or `"attribute probabilities"`.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length of the others.
        expected: usize,
    },
    /// A NaN or infinite value.
    #[error("box {index}: the {what} holds a value that is not finite")]
    NotFinite {
        /// The box's index in the frame.
        index: usize,
        /// `"embedding"` or `"attribute probabilities"`.
        what: &'static str,
    },
}

/// One tracked person.
#[derive(Debug, Clone)]
pub struct Track {
    id: u64,
    region: Region,
    /// Smoothed motion of the box centre, pixels per frame (x, y).
    velocity: (f32, f32),
    first_frame: u64,
    last_frame: u64,
    hits: u32,
    confirmed: bool,
    appearances: u32,
    last_appearance: u64,
    /// Running mean of the L2-normalised embeddings.
    direction: Vec<f32>,
    /// Running mean of the raw embeddings' norms.
    mean_norm: f32,
    embedding: Vec<f32>,
    probabilities: Vec<f32>,
    person_score: f32,
}

impl Track {
    /// A tentative track seen first in `frame`.
    fn start(id: u64, frame: u64, region: Region, appearance: &Appearance) -> Self {
        let mut track = Self {
            id,
            region,
            velocity: (0.0, 0.0),
            first_frame: frame,
            last_frame: frame,
            hits: 1,
            confirmed: false,
            appearances: 0,
            last_appearance: frame,
            direction: vec![0.0; appearance.embedding.len()],
            mean_norm: 0.0,
            embedding: Vec::new(),
            probabilities: vec![0.0; appearance.probabilities.len()],
            person_score: 0.0,
        };
        track.add_appearance(frame, appearance);
        track
    }

    /// Matched in `frame` to `region`.
    fn hit(&mut self, frame: u64, region: Region) {
        let centre = |r: Region| {
            (
                r.x as f32 + r.width as f32 / 2.0,
                r.y as f32 + r.height as f32 / 2.0,
            )
        };
        let (old, new) = (centre(self.region), centre(region));
        let frames = frame.saturating_sub(self.last_frame).max(1) as f32;
        let step = ((new.0 - old.0) / frames, (new.1 - old.1) / frames);
        // The first step is taken as it is; later ones are smoothed (box centres jitter).
        let keep = if self.hits == 1 { 0.0 } else { 0.5 };
        self.velocity = (
            keep * self.velocity.0 + (1.0 - keep) * step.0,
            keep * self.velocity.1 + (1.0 - keep) * step.1,
        );
        self.region = region;
        self.last_frame = frame;
        self.hits = self.hits.saturating_add(1);
    }

    /// Folds `a` into the running means.
    fn add_appearance(&mut self, frame: u64, a: &Appearance) {
        self.appearances = self.appearances.saturating_add(1);
        self.last_appearance = frame;
        let n = self.appearances as f32;
        let norm = dot(&a.embedding, &a.embedding).sqrt();
        let inv_norm = if norm > 0.0 { norm.recip() } else { 0.0 };
        for (m, x) in self.direction.iter_mut().zip(&a.embedding) {
            *m += (x * inv_norm - *m) / n;
        }
        self.mean_norm += (norm - self.mean_norm) / n;
        for (m, p) in self.probabilities.iter_mut().zip(&a.probabilities) {
            *m += (p - *m) / n;
        }
        self.person_score += (a.person_score - self.person_score) / n;
        let direction_norm = dot(&self.direction, &self.direction).sqrt();
        let scale = if direction_norm > 0.0 {
            self.mean_norm / direction_norm
        } else {
            0.0
        };
        self.embedding = self.direction.iter().map(|d| d * scale).collect();
    }

    /// The track id (from 1).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The last box matched to the track.
    pub fn region(&self) -> Region {
        self.region
    }

    /// Where the track's box should be in `frame`: its last box moved at its smoothed velocity
    /// (constant-velocity prediction; what overlap is measured against after missed frames).
    pub fn predicted(&self, frame: u64) -> Region {
        let frames = frame.saturating_sub(self.last_frame) as f32;
        let shift = |at: u32, v: f32| (at as f32 + v * frames).round().max(0.0) as u32;
        Region {
            x: shift(self.region.x, self.velocity.0),
            y: shift(self.region.y, self.velocity.1),
            ..self.region
        }
    }

    /// The frame the track started in.
    pub fn first_frame(&self) -> u64 {
        self.first_frame
    }

    /// The last frame the track was matched in.
    pub fn last_frame(&self) -> u64 {
        self.last_frame
    }

    /// Frames the track was matched in.
    pub fn hits(&self) -> u32 {
        self.hits
    }

    /// Whether the track is confirmed (has been reported as new).
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// The track's embedding: the normalised mean direction of the embeddings it received, at
    /// their mean norm. Every track has one (a track starts from an embedded box).
    pub fn embedding(&self) -> &[f32] {
        &self.embedding
    }

    /// The mean of the attribute probabilities the track received.
    pub fn probabilities(&self) -> &[f32] {
        &self.probabilities
    }

    /// The mean of the person scores the track received.
    pub fn person_score(&self) -> f32 {
        self.person_score
    }

    /// How many appearances the track received.
    pub fn appearances(&self) -> u32 {
        self.appearances
    }

    /// The frame of the last appearance the track received (with the box [`Track::region`] if
    /// it is [`Track::last_frame`]).
    pub fn last_appearance(&self) -> u64 {
        self.last_appearance
    }
}

/// A track's box in the frame being associated.
#[derive(Debug, Clone, Copy)]
struct Match {
    /// The box's index.
    index: usize,
    /// Whether the track takes the box's appearance.
    take_appearance: bool,
}

/// Matches the `eligible` tracks and the boxes that no match holds yet by an optimal assignment
/// on `score(track, box)` (see [`assign`]).
fn match_left(
    matches: &mut [Option<Match>],
    box_free: &mut [bool],
    eligible: impl Fn(usize) -> bool,
    score: impl Fn(usize, usize) -> Option<f32>,
    take_appearance: bool,
) {
    let tracks: Vec<usize> = (0..matches.len())
        .filter(|&t| matches[t].is_none() && eligible(t))
        .collect();
    let boxes: Vec<usize> = (0..box_free.len()).filter(|&b| box_free[b]).collect();
    let scores: Vec<Vec<Option<f32>>> = tracks
        .iter()
        .map(|&t| boxes.iter().map(|&b| score(t, b)).collect())
        .collect();
    for (i, j) in assign(tracks.len(), boxes.len(), |i, j| scores[i][j]) {
        matches[tracks[i]] = Some(Match {
            index: boxes[j],
            take_appearance,
        });
        box_free[boxes[j]] = false;
    }
}

/// Tracks person boxes over a stream (see the module documentation).
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    /// Live tracks, tentative and confirmed, in id order.
    tracks: Vec<Track>,
    /// Tracks ended by the last call, kept so that [`Tracker::track`] finds them until the next.
    ended: Vec<Track>,
    next_id: u64,
    /// Lengths of the embeddings and probability vectors seen so far.
    lengths: Option<(usize, usize)>,
}

impl Tracker {
    /// A tracker with no tracks.
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg,
            tracks: Vec::new(),
            ended: Vec::new(),
            next_id: 1,
            lengths: None,
        }
    }

    /// One frame: `boxes` are this frame's person proposals. Calls `recognize(&indices)` at most
    /// once, with the increasing indices of the boxes whose appearance the tracker needs, and
    /// expects one [`Appearance`] per index back, in order (the caller crops those boxes and runs
    /// the model). Returns the frame's changes in id order.
    ///
    /// An error from `recognize` is returned unchanged, and appearances that break the contract
    /// (count, lengths, non-finite values) are a [`TrackError`] converted to `E`; either way the
    /// tracker is left as it was before the call.
    pub fn step<E: From<TrackError>>(
        &mut self,
        frame: u64,
        boxes: &[Region],
        recognize: impl FnOnce(&[usize]) -> Result<Vec<Appearance>, E>,
    ) -> Result<Vec<TrackChange>, E> {
        let cfg = self.cfg;
        // Frames since each track was last seen.
        let ages: Vec<u64> = self
            .tracks
            .iter()
            .map(|t| frame.saturating_sub(t.last_frame))
            .collect();
        // 1. Uncontested overlaps (tracks in sight only).
        let overlap: Vec<Vec<Option<f32>>> = self
            .tracks
            .iter()
            .zip(&ages)
            .map(|(t, &age)| {
                let predicted = t.predicted(frame);
                let in_sight = age < u64::from(cfg.max_misses);
                boxes
                    .iter()
                    .map(|b| {
                        let v = iou(&predicted, b);
                        (in_sight && v > 0.0 && v >= cfg.min_iou).then_some(v)
                    })
                    .collect()
            })
            .collect();
        let box_candidates: Vec<usize> = (0..boxes.len())
            .map(|b| overlap.iter().filter(|row| row[b].is_some()).count())
            .collect();
        let mut matches: Vec<Option<Match>> = vec![None; self.tracks.len()];
        let mut box_free = vec![true; boxes.len()];
        let mut refresh = vec![false; boxes.len()];
        for (t, row) in overlap.iter().enumerate() {
            let mut candidates = row.iter().enumerate().filter(|(_, v)| v.is_some());
            if let (Some((b, _)), None) = (candidates.next(), candidates.next()) {
                if box_candidates[b] == 1 {
                    let age = frame.saturating_sub(self.tracks[t].last_appearance);
                    refresh[b] = age >= u64::from(cfg.embed_every);
                    matches[t] = Some(Match {
                        index: b,
                        take_appearance: refresh[b],
                    });
                    box_free[b] = false;
                }
            }
        }

        // The one recognize call: boxes left, and boxes of tracks due for a refresh (4).
        let indices: Vec<usize> = (0..boxes.len())
            .filter(|&b| box_free[b] || refresh[b])
            .collect();
        let mut appearances: Vec<Option<Appearance>> = vec![None; boxes.len()];
        let mut lengths = self.lengths;
        if !indices.is_empty() {
            let got = recognize(&indices)?;
            lengths = self.check(&indices, &got)?;
            for (&b, a) in indices.iter().zip(got) {
                appearances[b] = Some(a);
            }
        }

        // 2. Appearance, in a cascade by age.
        let gate = cfg.max_embedding_distance;
        let tracks = &self.tracks;
        let closeness = |t: usize, b: usize| {
            let a: &Appearance = appearances[b].as_ref()?;
            let d = cfg.metric.between(&tracks[t].embedding, &a.embedding);
            // Closer is better whatever the gate (an infinite gate must not flatten the scores).
            (d <= gate).then_some(1.0 / (1.0 + d))
        };
        let mut stages = ages.clone();
        stages.sort_unstable();
        stages.dedup();
        for stage in stages {
            let of_stage = |t: usize| ages[t] == stage;
            match_left(&mut matches, &mut box_free, of_stage, closeness, true);
        }
        // 3. Optimal overlap for what is left.
        let overlap_score = |t: usize, b: usize| overlap[t][b];
        match_left(&mut matches, &mut box_free, |_| true, overlap_score, false);

        // Nothing above has changed the tracker.
        self.lengths = lengths;
        Ok(self.apply(frame, boxes, &matches, &appearances, &box_free))
    }

    /// Life cycle (5): applies a frame's matches; boxes no track matched start tracks.
    fn apply(
        &mut self,
        frame: u64,
        boxes: &[Region],
        matches: &[Option<Match>],
        appearances: &[Option<Appearance>],
        box_free: &[bool],
    ) -> Vec<TrackChange> {
        let cfg = self.cfg;
        self.ended.clear();
        let mut changes = Vec::new();
        let mut live = Vec::with_capacity(self.tracks.len() + boxes.len());
        for (mut track, m) in std::mem::take(&mut self.tracks).into_iter().zip(matches) {
            let Some(m) = *m else {
                if !track.confirmed {
                    // A tentative track missed once dies silently.
                } else if frame.saturating_sub(track.last_frame) >= u64::from(cfg.max_lost) {
                    changes.push(TrackChange {
                        id: track.id,
                        change: Change::End,
                    });
                    self.ended.push(track);
                } else {
                    live.push(track);
                }
                continue;
            };
            track.hit(frame, boxes[m.index]);
            let appearance = appearances[m.index].as_ref().filter(|_| m.take_appearance);
            if let Some(a) = appearance {
                track.add_appearance(frame, a);
            }
            if !track.confirmed && track.hits >= cfg.confirm_hits {
                track.confirmed = true;
                changes.push(TrackChange {
                    id: track.id,
                    change: Change::New,
                });
            } else if track.confirmed && appearance.is_some() {
                changes.push(TrackChange {
                    id: track.id,
                    change: Change::Update,
                });
            }
            live.push(track);
        }
        for b in (0..boxes.len()).filter(|&b| box_free[b]) {
            let Some(a) = &appearances[b] else { continue };
            let mut track = Track::start(self.next_id, frame, boxes[b], a);
            self.next_id += 1;
            if track.hits >= cfg.confirm_hits {
                track.confirmed = true;
                changes.push(TrackChange {
                    id: track.id,
                    change: Change::New,
                });
            }
            live.push(track);
        }
        self.tracks = live;
        changes
    }

    /// Checks `got` against the `recognize` contract; returns the embedding and probability
    /// lengths (the tracker's, else those of the first appearance; none with no appearances).
    fn check(
        &self,
        indices: &[usize],
        got: &[Appearance],
    ) -> Result<Option<(usize, usize)>, TrackError> {
        if got.len() != indices.len() {
            return Err(TrackError::AppearanceCount {
                asked: indices.len(),
                got: got.len(),
            });
        }
        let first = |a: &Appearance| (a.embedding.len(), a.probabilities.len());
        let Some((embedding, probabilities)) = self.lengths.or_else(|| got.first().map(first))
        else {
            return Ok(None);
        };
        for (&index, a) in indices.iter().zip(got) {
            if a.embedding.is_empty() {
                return Err(TrackError::EmptyEmbedding { index });
            }
            for (what, values, expected) in [
                ("embedding", &a.embedding, embedding),
                ("attribute probabilities", &a.probabilities, probabilities),
            ] {
                if values.len() != expected {
                    return Err(TrackError::Length {
                        index,
                        what,
                        got: values.len(),
                        expected,
                    });
                }
                if !values.iter().all(|v| v.is_finite()) {
                    return Err(TrackError::NotFinite { index, what });
                }
            }
        }
        Ok(Some((embedding, probabilities)))
    }

    /// Ends every live confirmed track (end of stream); tentative tracks are dropped silently.
    pub fn finish(&mut self) -> Vec<TrackChange> {
        let (ended, _tentative): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| t.confirmed);
        self.ended = ended;
        self.ended
            .iter()
            .map(|t| TrackChange {
                id: t.id,
                change: Change::End,
            })
            .collect()
    }

    /// The live track `id`, or one the last call ended.
    pub fn track(&self, id: u64) -> Option<&Track> {
        self.tracks.iter().chain(&self.ended).find(|t| t.id == id)
    }

    /// The live tracks, tentative and confirmed, in id order.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Change::{End, New, Update};

    /// What a test's `recognize` fails with: the model, or the tracker's contract check.
    #[derive(Debug, PartialEq)]
    enum TestError {
        Model,
        Track(TrackError),
    }

    impl From<TrackError> for TestError {
        fn from(e: TrackError) -> Self {
            Self::Track(e)
        }
    }

    const A: [f32; 2] = [1.0, 0.0];
    const B: [f32; 2] = [0.0, 1.0];

    /// A `width` x 40 box at column `x`.
    fn at(x: u32, width: u32) -> Region {
        Region {
            x,
            y: 0,
            width,
            height: 40,
        }
    }

    fn appearance(embedding: &[f32]) -> Appearance {
        Appearance {
            embedding: embedding.to_vec(),
            probabilities: vec![0.5, 0.5],
            person_score: 1.0,
        }
    }

    fn ch(id: u64, change: Change) -> TrackChange {
        TrackChange { id, change }
    }

    /// One frame of `people` (box, embedding): its changes, and the indices `recognize` was
    /// called with (`None`: not called).
    fn frame(
        tracker: &mut Tracker,
        number: u64,
        people: &[(Region, [f32; 2])],
    ) -> (Vec<TrackChange>, Option<Vec<usize>>) {
        let boxes: Vec<Region> = people.iter().map(|p| p.0).collect();
        let mut asked = None;
        let changes = tracker
            .step(number, &boxes, |indices: &[usize]| {
                asked = Some(indices.to_vec());
                Ok::<_, TestError>(indices.iter().map(|&i| appearance(&people[i].1)).collect())
            })
            .unwrap();
        (changes, asked)
    }

    /// A walks right and B left, 4 px a frame in 20 px wide boxes, B's box listed first after
    /// they cross (between frames 7 and 8). A box's IoU with the same person's box of the frame
    /// before is 0.67; A's box of frame 7 and B's of frame 8 are the same box (IoU 1): the last
    /// boxes alone would swap them at frame 8, the predicted ones do not. Returns the tracker and
    /// the (frame, change) events.
    fn crossing(cfg: TrackerConfig) -> (Tracker, Vec<(u64, TrackChange)>) {
        let mut tracker = Tracker::new(cfg);
        let mut events = Vec::new();
        for t in 0..=15u32 {
            let (a, b) = ((at(4 * t, 20), A), (at(60 - 4 * t, 20), B));
            let people = if t < 8 { [a, b] } else { [b, a] };
            let (changes, _) = frame(&mut tracker, t.into(), &people);
            events.extend(changes.into_iter().map(|c| (u64::from(t), c)));
        }
        (tracker, events)
    }

    #[test]
    fn crossing_people_keep_their_ids_by_appearance() {
        let cfg = TrackerConfig {
            min_iou: 0.3,
            max_embedding_distance: 0.5,
            ..TrackerConfig::default()
        };
        let (tracker, events) = crossing(cfg);
        let both = |t, c| [(t, ch(1, c)), (t, ch(2, c))];
        // New on the third frame; updates every 5 frames when uncontested (5, 13) and on every
        // contested frame (7 and 8: the predicted boxes overlap both people), where the boxes are
        // matched by appearance.
        let expected: Vec<_> = [
            (2, New),
            (5, Update),
            (7, Update),
            (8, Update),
            (13, Update),
        ]
        .into_iter()
        .flat_map(|(t, c)| both(t, c))
        .collect();
        assert_eq!(events, expected);
        let a = tracker.track(1).unwrap();
        assert_eq!((a.region().x, a.hits(), a.appearances()), (60, 16, 5));
        assert_eq!(a.embedding(), A);
        assert_eq!(tracker.track(2).unwrap().region().x, 0);
        assert_eq!(tracker.tracks().count(), 2);

        // Control: the same crossing blind (a gate no distance passes) is followed by the
        // predicted motion alone.
        let blind = TrackerConfig {
            max_embedding_distance: -1.0,
            ..cfg
        };
        let (tracker, _) = crossing(blind);
        assert_eq!(tracker.track(1).unwrap().region().x, 60);

        // Two people who meet and turn back: the predicted motion carries each track on across
        // the other, so blind matching swaps the ids; appearance keeps them.
        let meeting = |cfg| {
            let mut tracker = Tracker::new(cfg);
            for t in 0..=15u32 {
                let x = 4 * t.min(16 - t);
                let (changes, _) = frame(
                    &mut tracker,
                    t.into(),
                    &[(at(x, 20), A), (at(60 - x, 20), B)],
                );
                assert!(changes.iter().all(|c| c.change != End), "{changes:?}");
            }
            tracker
        };
        assert_eq!(meeting(cfg).track(1).unwrap().region().x, 4);
        assert_eq!(meeting(blind).track(1).unwrap().region().x, 56);
    }

    #[test]
    fn occlusion_keeps_the_id_a_one_frame_box_is_no_track_and_a_track_ends_once() {
        let cfg = TrackerConfig {
            max_embedding_distance: 0.5,
            max_misses: 3,
            max_lost: 10,
            ..TrackerConfig::default()
        };
        let mut tracker = Tracker::new(cfg);
        let mut events = Vec::new();
        for t in 0..=25u32 {
            // B stands still; A walks, is hidden in frames 5 to 8, comes back at frame 9 where its
            // box no longer overlaps its last one, and is gone from frame 10.
            let mut people = Vec::new();
            if t <= 4 || t == 9 {
                people.push((at(4 * t, 20), A));
            }
            people.push((at(300, 20), B));
            if t == 3 {
                // A false box, far from both in place and appearance (distances 0.89 and 0.63).
                people.push((at(500, 20), [0.6, 0.8]));
            }
            let (changes, _) = frame(&mut tracker, t.into(), &people);
            if t == 19 {
                let ended = tracker
                    .track(1)
                    .expect("an ended track is readable until the next call");
                assert_eq!((ended.last_frame(), ended.first_frame()), (9, 0));
            }
            if t == 20 {
                assert!(tracker.track(1).is_none());
            }
            events.extend(changes.into_iter().map(|c| (u64::from(t), c)));
        }
        // A is found again at frame 9 (lost since frame 7) by appearance (an update), then ends
        // 10 frames later.
        let expected = [
            (2, ch(1, New)),
            (2, ch(2, New)),
            (5, ch(2, Update)),
            (9, ch(1, Update)),
            (10, ch(2, Update)),
            (15, ch(2, Update)),
            (19, ch(1, End)),
            (20, ch(2, Update)),
            (25, ch(2, Update)),
        ];
        assert_eq!(events, expected);
        assert!(tracker.track(3).is_none());
        assert_eq!(tracker.finish(), [ch(2, End)]);
        assert_eq!(tracker.track(2).unwrap().last_frame(), 25);
        assert_eq!(tracker.finish(), []);
        // Ids never repeat: 3 went to the false box.
        frame(&mut tracker, 26, &[(at(0, 20), A)]);
        assert_eq!(tracker.tracks().map(Track::id).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn a_lost_track_is_found_by_appearance_only() {
        let run = |max_misses| {
            let cfg = TrackerConfig {
                max_embedding_distance: 0.5,
                max_misses,
                max_lost: 10,
                ..TrackerConfig::default()
            };
            let mut tracker = Tracker::new(cfg);
            for t in 0..=9u32 {
                // A stands at x 0 until frame 4 and is back at x 200 in frame 9; from frame 8
                // someone else (B) stands where A stood.
                let people: &[(Region, [f32; 2])] = match t {
                    0..=4 => &[(at(0, 20), A)],
                    5..=7 => &[],
                    8 => &[(at(0, 20), B)],
                    _ => &[(at(0, 20), B), (at(200, 20), A)],
                };
                frame(&mut tracker, t.into(), people);
            }
            tracker
        };
        // Lost from frame 7: B gets a track of its own and A's track finds A again.
        let tracker = run(3);
        assert_eq!(tracker.track(1).unwrap().region().x, 200);
        assert_eq!(tracker.track(2).unwrap().region().x, 0);
        // Control: still in sight at frame 8, A's track takes B's box by its overlap.
        let tracker = run(5);
        assert_eq!(tracker.track(1).unwrap().region().x, 0);
    }

    #[test]
    fn a_box_goes_to_the_track_seen_last_before_an_older_closer_one() {
        // P (A) at x 0 and Q (C, 0.32 from A) at x 10: their boxes overlap both tracks, so every
        // frame is matched by appearance. P is gone from frame 5; in frame 6 Q's box looks like P.
        let c = [0.95, 0.312];
        let mut tracker = Tracker::new(TrackerConfig {
            max_embedding_distance: 0.5,
            ..TrackerConfig::default()
        });
        for t in 0..=6u32 {
            let people: &[(Region, [f32; 2])] = match t {
                0..=4 => &[(at(0, 20), A), (at(10, 20), c)],
                5 => &[(at(10, 20), c)],
                _ => &[(at(10, 20), A)],
            };
            frame(&mut tracker, t.into(), people);
        }
        // Q's track, seen in frame 5, keeps the box; P's (unseen since frame 4) does not take it.
        let (p, q) = (tracker.track(1).unwrap(), tracker.track(2).unwrap());
        assert_eq!((p.last_frame(), q.last_frame()), (4, 6));
    }

    #[test]
    fn recognize_is_asked_only_for_new_boxes_and_tracks_due_a_refresh() {
        let cfg = TrackerConfig {
            confirm_hits: 2,
            embed_every: 3,
            ..TrackerConfig::default()
        };
        let mut tracker = Tracker::new(cfg);
        let (p, q) = ((at(0, 20), A), (at(100, 20), B));
        // Per frame: the indices asked for, and the changes. Q arrives at frame 4, listed first.
        let expected: [(Option<&[usize]>, &[TrackChange]); 8] = [
            (Some(&[0]), &[]),
            (None, &[ch(1, New)]),
            (None, &[]),
            (Some(&[0]), &[ch(1, Update)]),
            (Some(&[0]), &[]),
            (None, &[ch(2, New)]),
            (Some(&[1]), &[ch(1, Update)]),
            (Some(&[0]), &[ch(2, Update)]),
        ];
        for (t, (asked, changes)) in expected.into_iter().enumerate() {
            let people = if t < 4 { vec![p] } else { vec![q, p] };
            let got = frame(&mut tracker, t as u64, &people);
            assert_eq!(
                got,
                (changes.to_vec(), asked.map(<[usize]>::to_vec)),
                "frame {t}"
            );
        }
    }

    #[test]
    fn optimal_overlap_keeps_ids_where_greedy_would_swap_them() {
        // 10 px wide boxes on one row, so IoU = (10 - s) / (10 + s) for a shift s. Tracks at 10
        // and 14; boxes at 11 and 8. IoU: track 1 with 11: 0.82, with 8: 0.67; track 2 with 11:
        // 0.54, with 8: 0.25 (below 0.3). Greedy gives 11 to track 1 (its best, the best pair)
        // and leaves track 2 and box 8 apart; the optimum pairs 1 with 8 and 2 with 11.
        let cfg = TrackerConfig {
            max_embedding_distance: -1.0, // appearance never decides
            confirm_hits: 1,
            ..TrackerConfig::default()
        };
        let mut tracker = Tracker::new(cfg);
        let (changes, _) = frame(&mut tracker, 0, &[(at(10, 10), A), (at(14, 10), B)]);
        assert_eq!(changes, [ch(1, New), ch(2, New)]);
        let (changes, asked) = frame(&mut tracker, 1, &[(at(11, 10), B), (at(8, 10), A)]);
        assert_eq!((changes, asked), (vec![], Some(vec![0, 1])));
        let xs: Vec<(u64, u32)> = tracker.tracks().map(|t| (t.id(), t.region().x)).collect();
        assert_eq!(xs, [(1, 8), (2, 11)]);
    }

    #[test]
    fn a_track_averages_normalised_embeddings_at_their_mean_norm_and_probabilities() {
        // numpy: v = np.array([[3., 0], [0, 1], [0, 2]]); n = np.linalg.norm(v, axis=1)
        //        m = (v / n[:, None]).mean(0); m / np.linalg.norm(m) * n.mean()
        //        -> [0.89442719, 1.78885438]
        let cfg = TrackerConfig {
            embed_every: 1,
            ..TrackerConfig::default()
        };
        let mut tracker = Tracker::new(cfg);
        let seen = [
            ([3.0, 0.0], [0.2, 0.8], 0.9),
            ([0.0, 1.0], [0.4, 0.6], 0.6),
            ([0.0, 2.0], [0.9, 0.1], 0.6),
        ];
        for (t, (embedding, probabilities, person_score)) in seen.into_iter().enumerate() {
            let a = Appearance {
                embedding: embedding.to_vec(),
                probabilities: probabilities.to_vec(),
                person_score,
            };
            let asked = tracker.step(t as u64, &[at(0, 20)], |indices: &[usize]| {
                assert_eq!(indices, [0]);
                Ok::<_, TestError>(vec![a])
            });
            asked.unwrap();
            if t == 0 {
                assert_eq!(tracker.track(1).unwrap().embedding(), [3.0, 0.0]);
            }
        }
        let track = tracker.track(1).unwrap();
        assert_eq!(track.appearances(), 3);
        let close = |got: &[f32], want: &[f32]| {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6)
        };
        assert!(
            close(track.embedding(), &[0.894_427_2, 1.788_854_4]),
            "{track:?}"
        );
        assert!(close(track.probabilities(), &[0.5, 0.5]), "{track:?}");
        assert!((track.person_score() - 0.7).abs() < 1e-6, "{track:?}");
    }

    #[test]
    fn errors_pass_through_and_leave_the_tracker_as_it_was() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        frame(&mut tracker, 0, &[(at(0, 20), A)]);
        let boxes = [at(0, 20), at(100, 20)];
        let mut step = |reply: Result<Vec<Appearance>, TestError>| {
            tracker.step(1, &boxes, |indices: &[usize]| {
                assert_eq!(indices, [1]);
                reply
            })
        };
        let bad = |embedding: &[f32]| Ok(vec![appearance(embedding)]);
        assert_eq!(step(Err(TestError::Model)), Err(TestError::Model));
        let count = TrackError::AppearanceCount { asked: 1, got: 0 };
        assert_eq!(step(Ok(vec![])), Err(TestError::Track(count)));
        let length = TrackError::Length {
            index: 1,
            what: "embedding",
            got: 3,
            expected: 2,
        };
        assert_eq!(step(bad(&[0.0, 1.0, 0.0])), Err(TestError::Track(length)));
        let nan = TrackError::NotFinite {
            index: 1,
            what: "embedding",
        };
        assert_eq!(step(bad(&[f32::NAN, 1.0])), Err(TestError::Track(nan)));
        let empty = TrackError::EmptyEmbedding { index: 1 };
        assert_eq!(step(bad(&[])), Err(TestError::Track(empty)));
        // None of these changed anything: the frame goes through now, ids and hits as if first.
        assert_eq!(step(bad(&B)), Ok(vec![]));
        let tracks: Vec<(u64, u32)> = tracker.tracks().map(|t| (t.id(), t.hits())).collect();
        assert_eq!(tracks, [(1, 2), (2, 1)]);
    }
}
