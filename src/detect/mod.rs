//! Person proposals: where in a full camera frame people may be.
//!
//! A camera sees whole scenes. Before crops reach the models, a proposer turns each frame into
//! [`Proposal`]s: boxes that may hold one person each, with a confidence (used to rank and
//! suppress them; the pipeline keeps the boxes). The proposers share the
//! box geometry here: [`iou`] (also what the tracker associates by) and greedy non-maximum
//! suppression ([`nms`]). A user's own ONNX detector runs through [`yolo`]; its failures are
//! [`DetectError`]s. A fixed camera's moving people come from [`motion`]. [`Proposer`] is the
//! choice a run makes: the whole frame, fixed regions, the synthetic camera's truth, motion or a
//! detector. [`match_boxes`] scores proposals against hand-made boxes.

use std::path::PathBuf;

use crate::preprocess::{Framing, PreprocessError, Region};
use crate::source::Frame;

pub mod motion;
pub mod yolo;

/// A detector that cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The file cannot be read.
    #[error("cannot read detector {path}: {source}")]
    Io {
        /// The detector file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an ONNX model.
    #[error("detector {path} is not an ONNX model: {reason}")]
    NotOnnx {
        /// The detector file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The graph's inputs or outputs are not in the layout the detector reads.
    #[error("detector {path}: {problem}")]
    Layout {
        /// The detector file.
        path: PathBuf,
        /// What the layout should be and what was found.
        problem: String,
    },
    /// tract cannot prepare or run the graph.
    #[error("detector {path}: tract failed: {message}")]
    Tract {
        /// The detector file.
        path: PathBuf,
        /// tract's error chain.
        message: String,
    },
    /// A setting is out of range.
    #[error("invalid detector setting: {0}")]
    Config(String),
    /// The frame cannot be resized into the detector's input (an empty frame).
    #[error("cannot letterbox the frame: {0}")]
    Frame(#[from] PreprocessError),
}

/// A box that may hold a person.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// The box, in frame pixels (inside the frame).
    pub region: Region,
    /// Confidence in `[0, 1]` (a detector's class score; for motion, the share of moving pixels
    /// in the box).
    pub score: f32,
}

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &Region, b: &Region) -> f32 {
    // In u64, as a box may end past u32::MAX; the union in u128, as two areas may pass u64::MAX.
    let span = |start: u32, len: u32| (u64::from(start), u64::from(start) + u64::from(len));
    let ((ax0, ax1), (bx0, bx1)) = (span(a.x, a.width), span(b.x, b.width));
    let ((ay0, ay1), (by0, by1)) = (span(a.y, a.height), span(b.y, b.height));
    let w = ax1.min(bx1).saturating_sub(ax0.max(bx0));
    let h = ay1.min(by1).saturating_sub(ay0.max(by0));
    let inter = u128::from(w * h);
    let area = |r: &Region| u128::from(u64::from(r.width) * u64::from(r.height));
    let union = area(a) + area(b) - inter;
    if union == 0 {
        0.0
    } else {
        (inter as f64 / union as f64) as f32
    }
}

/// Greedy non-maximum suppression: keeps the proposals in decreasing score order, dropping each
/// one whose IoU with an already kept proposal exceeds `max_iou`. Returns them best first.
pub fn nms(mut proposals: Vec<Proposal>, max_iou: f32) -> Vec<Proposal> {
    proposals.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Proposal> = Vec::with_capacity(proposals.len());
    for p in proposals {
        if kept.iter().all(|k| iou(&k.region, &p.region) <= max_iou) {
            kept.push(p);
        }
    }
    kept
}

/// How predicted boxes compare with true ones (see [`match_boxes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoxMatch {
    /// Predicted boxes matched to a true box.
    pub true_positives: usize,
    /// Predicted boxes left without a true box.
    pub false_positives: usize,
    /// True boxes left without a predicted box.
    pub false_negatives: usize,
}

impl BoxMatch {
    /// Share of predicted boxes that are right (1 when nothing was predicted).
    pub fn precision(&self) -> f32 {
        share(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Share of true boxes found (1 when there were none).
    pub fn recall(&self) -> f32 {
        share(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
}

impl std::ops::AddAssign for BoxMatch {
    fn add_assign(&mut self, other: BoxMatch) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
    }
}

fn share(part: usize, whole: usize) -> f32 {
    if whole == 0 {
        1.0
    } else {
        part as f32 / whole as f32
    }
}

/// Matches predicted boxes to true ones one-to-one, greedily by decreasing IoU (the usual
/// detection benchmark rule): a pair counts when its IoU is at least `min_iou` and neither box
/// is taken yet.
pub fn match_boxes(predicted: &[Region], truth: &[Region], min_iou: f32) -> BoxMatch {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (p, pr) in predicted.iter().enumerate() {
        for (t, tr) in truth.iter().enumerate() {
            let overlap = iou(pr, tr);
            if overlap >= min_iou && overlap > 0.0 {
                pairs.push((overlap, p, t));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut predicted_taken = vec![false; predicted.len()];
    let mut truth_taken = vec![false; truth.len()];
    let mut true_positives = 0;
    for (_, p, t) in pairs {
        if !predicted_taken[p] && !truth_taken[t] {
            predicted_taken[p] = true;
            truth_taken[t] = true;
            true_positives += 1;
        }
    }
    BoxMatch {
        true_positives,
        false_positives: predicted.len() - true_positives,
        false_negatives: truth.len() - true_positives,
    }
}

/// Where the person boxes of a frame come from.
pub enum Proposer {
    /// The whole frame is one box (image files: each is one person crop).
    WholeFrame,
    /// Fixed regions (`--roi x,y,w,h`), clipped to each frame.
    Regions(Vec<Region>),
    /// The boxes the synthetic camera reports for the people it drew.
    Truth,
    /// Background subtraction, for fixed cameras.
    Motion(Box<motion::MotionDetector>),
    /// A user's YOLO detector (`--detector FILE.onnx`).
    Detector(Box<yolo::YoloDetector>),
}

impl Proposer {
    /// How the boxes it proposes are framed for the model: the whole frame (an image file) and
    /// a user's fixed regions as pictures, the rest as tight person boxes.
    pub fn framing(&self) -> Framing {
        match self {
            Proposer::WholeFrame | Proposer::Regions(_) => Framing::Picture,
            Proposer::Truth | Proposer::Motion(_) | Proposer::Detector(_) => Framing::PersonBox,
        }
    }

    /// The boxes of `frame`, inside it.
    pub fn propose(&mut self, frame: &Frame) -> Result<Vec<Region>, DetectError> {
        let (w, h) = frame.image.dimensions();
        Ok(match self {
            Proposer::WholeFrame => vec![Region::full(&frame.image)],
            Proposer::Regions(rs) => rs.iter().filter_map(|&r| clip(r, w, h)).collect(),
            Proposer::Truth => frame
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
            Proposer::Motion(m) => m
                .detect(&frame.image)
                .into_iter()
                .map(|p| p.region)
                .collect(),
            Proposer::Detector(d) => d
                .detect(&frame.image)?
                .into_iter()
                .map(|p| p.region)
                .collect(),
        })
    }
}

/// Clips `r` to an image of `width` x `height`; `None` when nothing is left.
pub fn clip(r: Region, width: u32, height: u32) -> Option<Region> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u32, y: u32, width: u32, height: u32) -> Region {
        Region {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn iou_of_overlapping_disjoint_and_empty_boxes() {
        // 10x10 boxes offset by 5 in x: intersection 50, union 150.
        assert!((iou(&r(0, 0, 10, 10), &r(5, 0, 10, 10)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&r(0, 0, 10, 10), &r(0, 0, 10, 10)), 1.0);
        assert_eq!(iou(&r(0, 0, 10, 10), &r(10, 0, 10, 10)), 0.0);
        assert_eq!(iou(&r(3, 3, 0, 0), &r(3, 3, 0, 0)), 0.0);
        // A box inside another: the small area over the large one.
        assert!((iou(&r(0, 0, 10, 10), &r(2, 2, 5, 5)) - 0.25).abs() < 1e-6);
        // Boxes that end past u32::MAX (the library takes any box): no overflow.
        let far = u32::MAX - 5;
        assert!((iou(&r(far, far, 10, 10), &r(far + 5, far, 10, 10)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&r(u32::MAX, 0, u32::MAX, 1), &r(0, 0, 1, 1)), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_each_overlapping_group() {
        let p = |region, score| Proposal { region, score };
        let kept = nms(
            vec![
                p(r(0, 0, 10, 20), 0.6),
                p(r(1, 0, 10, 20), 0.9),
                p(r(50, 0, 10, 20), 0.5),
                p(r(5, 0, 10, 20), 0.7),
            ],
            0.5,
        );
        // (1,0) beats (0,0) (IoU 0.82); (5,0) overlaps (1,0) by 6/14 = 0.43 and stays.
        let xs: Vec<u32> = kept.iter().map(|k| k.region.x).collect();
        assert_eq!(xs, [1, 5, 50]);
    }

    #[test]
    fn match_boxes_pairs_one_to_one_by_best_iou() {
        let truth = [r(0, 0, 10, 20), r(100, 0, 10, 20), r(200, 0, 10, 20)];
        let predicted = [
            // Both overlap truth 0: (1,0) by 18/22 = 0.82 and (3,0) by 14/26 = 0.54; only the
            // better one takes it, the other is a false positive.
            r(3, 0, 10, 20),
            r(1, 0, 10, 20),
            // Overlaps truth 1 by 0.33: below the bar, a false positive.
            r(105, 0, 10, 20),
        ];
        let m = match_boxes(&predicted, &truth, 0.5);
        assert_eq!(
            m,
            BoxMatch {
                true_positives: 1,
                false_positives: 2,
                false_negatives: 2,
            }
        );
        assert!((m.precision() - 1.0 / 3.0).abs() < 1e-6);
        assert!((m.recall() - 1.0 / 3.0).abs() < 1e-6);
        // The same boxes count at a lower bar.
        let m = match_boxes(&predicted, &truth, 0.3);
        assert_eq!(
            (m.true_positives, m.false_positives, m.false_negatives),
            (2, 1, 1)
        );
    }

    #[test]
    fn match_boxes_greedy_order_is_by_iou_not_by_input_order() {
        // Prediction 0 overlaps truth 0 (0.54) and truth 1 (0.67); prediction 1 is truth 1
        // (1.0) and overlaps truth 0 by only 0.33. Greedy by IoU gives truth 1 to prediction 1
        // first, then truth 0 to prediction 0: two matches (taking each prediction's best in
        // input order would leave prediction 1 without one).
        let truth = [r(0, 0, 10, 20), r(5, 0, 10, 20)];
        let predicted = [r(3, 0, 10, 20), r(5, 0, 10, 20)];
        let m = match_boxes(&predicted, &truth, 0.5);
        assert_eq!(m.true_positives, 2);
        let empty = match_boxes(&[], &[], 0.5);
        assert_eq!((empty.precision(), empty.recall()), (1.0, 1.0));
        let mut total = m;
        total += match_boxes(&[r(50, 50, 5, 5)], &[], 0.5);
        assert_eq!((total.true_positives, total.false_positives), (2, 1));
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
