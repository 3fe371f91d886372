//! Evaluation metrics shared by the training crate's `eval` and the runtime's `eval` command.
//!
//! - Re-ID: [`eval_market1501`], torchreid's Market-1501 protocol (CMC, mAP) plus mINP, over a
//!   query x gallery distance matrix (from [`crate::distance::distance_matrix`]).
//! - Attributes: [`attribute_report`], per-attribute accuracy, balanced accuracy and the
//!   most-frequent-class baseline.
//! - [`Report`]: the paper's Table 1 ([`AttributeReport`]'s `Display`) and Table 2
//!   ([`RankingMetrics`]' `Display`) as both `eval` commands print them.

use std::cmp::Ordering;
use std::fmt;

use crate::attributes::{AttributeLabels, ATTRIBUTES, UNLABELLED};
use crate::distance::DistanceError;

/// The identity Market-1501 gives junk images. Junk is not part of the gallery: drop it (and never
/// use it as a query) before evaluating; [`eval_market1501`] refuses it.
pub const JUNK_ID: i32 = -1;

/// Inputs the metrics cannot be computed on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    /// A slice does not have the length the others imply.
    #[error("{what} has {found} values, expected {expected}")]
    Length {
        /// Which input.
        what: &'static str,
        /// Its length.
        found: usize,
        /// The length the other inputs imply.
        expected: usize,
    },
    /// Embeddings that are not a `[rows, dim]` matrix.
    #[error(transparent)]
    Distance(#[from] DistanceError),
    /// A distance is NaN (a broken embedding).
    #[error("distance between query {query} and gallery entry {gallery} is NaN")]
    NanDistance {
        /// Query index.
        query: usize,
        /// Gallery index.
        gallery: usize,
    },
    /// A junk image (identity -1) among the queries or the gallery.
    #[error("{set} entry {index} is junk (identity -1): drop junk images before evaluating")]
    Junk {
        /// `query` or `gallery`.
        set: &'static str,
        /// Index in that set.
        index: usize,
    },
    /// No query has a match in the gallery from another camera.
    #[error("none of the {num_query} queries has a match in the gallery from another camera")]
    NoValidQuery {
        /// Number of queries.
        num_query: usize,
    },
    /// A query set on which no unknown distance can be chosen.
    #[error("no unknown distance can be calibrated: {identified} queries identified, {strangers} with another identity in the gallery (both must be > 0)")]
    NoOpenSet {
        /// Queries whose nearest gallery image is their own identity.
        identified: usize,
        /// Queries with another identity in the gallery.
        strangers: usize,
    },
    /// A label set without rows.
    #[error("the {set} label set is empty")]
    EmptyLabels {
        /// `predicted`, `truth` or `reference`.
        set: &'static str,
    },
    /// A class index outside an attribute's labels.
    #[error("{set} row {row}: class {class} of attribute {attribute:?} is out of range (it has {classes} classes)")]
    ClassOutOfRange {
        /// `predicted`, `truth` or `reference`.
        set: &'static str,
        /// Row index in that set.
        row: usize,
        /// Attribute name.
        attribute: &'static str,
        /// The class index found.
        class: u8,
        /// Number of classes of the attribute.
        classes: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Re-ID ranking
// ---------------------------------------------------------------------------------------------

/// Re-ID scores of one query set against one gallery; `Display` prints the paper's Table 2
/// (percentages).
#[derive(Debug, Clone, PartialEq)]
pub struct RankingMetrics {
    /// Cumulative matching characteristic: `cmc[k]` is the share of valid queries with a true match
    /// among their first `k + 1` results. Length `min(max_rank, gallery size)`.
    pub cmc: Vec<f64>,
    /// Mean over valid queries of the non-interpolated average precision.
    pub map: f64,
    /// Mean inverse negative penalty (Ye et al. 2021): positives / rank of the hardest positive.
    pub minp: f64,
    /// Queries with at least one true match from another camera (the others are skipped).
    pub num_valid_queries: usize,
}

impl RankingMetrics {
    /// CMC at rank `k` (1-based: `rank(1)` is rank-1 accuracy); `None` past the computed ranks.
    pub fn rank(&self, k: usize) -> Option<f64> {
        k.checked_sub(1).and_then(|i| self.cmc.get(i).copied())
    }
}

/// Market-1501 evaluation with torchreid's semantics (`torchreid/metrics/rank.py`,
/// `eval_market1501`).
///
/// `distmat` is row-major `[q_pids.len(), g_pids.len()]`. Per query, the gallery is sorted by
/// increasing distance (ties keep gallery order; torchreid's unstable quicksort may order ties
/// differently), gallery entries with the query's identity *and* camera are dropped, and a query
/// left with no true match is skipped. CMC is truncated at `max_rank` (at most the gallery size,
/// as torchreid does); a valid query with fewer remaining entries than that counts as matched at
/// the ranks past its list (torchreid fails on that case). AP is non-interpolated (the mean
/// precision at each true match).
///
/// Junk (identity [`JUNK_ID`]) must be dropped by the caller beforehand (it is not part of
/// Market's gallery; distractors, identity 0, stay); it is refused here.
pub fn eval_market1501(
    distmat: &[f32],
    q_pids: &[i32],
    g_pids: &[i32],
    q_camids: &[u8],
    g_camids: &[u8],
    max_rank: usize,
) -> Result<RankingMetrics, MetricsError> {
    let (nq, ng) = (q_pids.len(), g_pids.len());
    let expect = |what, found: usize, expected: usize| {
        if found == expected {
            Ok(())
        } else {
            Err(MetricsError::Length {
                what,
                found,
                expected,
            })
        }
    };
    expect("query cameras", q_camids.len(), nq)?;
    expect("gallery cameras", g_camids.len(), ng)?;
    expect("distance matrix", distmat.len(), nq * ng)?;
    let junk = |set, pids: &[i32]| match pids.iter().position(|&p| p == JUNK_ID) {
        Some(index) => Err(MetricsError::Junk { set, index }),
        None => Ok(()),
    };
    junk("query", q_pids)?;
    junk("gallery", g_pids)?;
    if let Some(i) = distmat.iter().position(|d| d.is_nan()) {
        return Err(MetricsError::NanDistance {
            query: i / ng,
            gallery: i % ng,
        });
    }

    let max_rank = max_rank.min(ng);
    // Number of valid queries whose first true match is at (0-based) rank r, r < max_rank.
    let mut first_hits = vec![0usize; max_rank];
    let (mut ap_sum, mut inp_sum, mut num_valid) = (0.0f64, 0.0f64, 0usize);
    let mut order: Vec<usize> = Vec::with_capacity(ng);
    for q in 0..nq {
        let row = &distmat[q * ng..(q + 1) * ng];
        order.clear();
        order.extend(0..ng);
        // No NaN (checked above): `partial_cmp` is total here; the index makes the order stable.
        order.sort_unstable_by(|&a, &b| {
            row[a]
                .partial_cmp(&row[b])
                .unwrap_or(Ordering::Equal)
                .then(a.cmp(&b))
        });
        let (pid, cam) = (q_pids[q], q_camids[q]);
        let mut rank = 0usize; // position among the kept entries
        let (mut hits, mut precision_sum, mut first, mut last) = (0usize, 0.0f64, None, 0usize);
        for &g in &order {
            if g_pids[g] == pid && g_camids[g] == cam {
                continue;
            }
            if g_pids[g] == pid {
                hits += 1;
                precision_sum += hits as f64 / (rank + 1) as f64;
                first.get_or_insert(rank);
                last = rank;
            }
            rank += 1;
        }
        let Some(first) = first else { continue };
        num_valid += 1;
        ap_sum += precision_sum / hits as f64;
        inp_sum += hits as f64 / (last + 1) as f64;
        if let Some(slot) = first_hits.get_mut(first) {
            *slot += 1;
        }
    }
    if num_valid == 0 {
        return Err(MetricsError::NoValidQuery { num_query: nq });
    }
    let n = num_valid as f64;
    let cmc = first_hits
        .iter()
        .scan(0usize, |acc, &h| {
            *acc += h;
            Some(*acc as f64 / n)
        })
        .collect();
    Ok(RankingMetrics {
        cmc,
        map: ap_sum / n,
        minp: inp_sum / n,
        num_valid_queries: num_valid,
    })
}

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

/// One row of the paper's Table 1: the scores of one attribute task, all in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeScores {
    /// Attribute name.
    pub name: &'static str,
    /// Class predicted by the most-frequent-class baseline (commonest in the reference labels).
    pub majority_class: usize,
    /// Accuracy of the most-frequent-class baseline on the ground truth.
    pub mfc: f64,
    /// Accuracy of the predictions.
    pub accuracy: f64,
    /// Mean recall over the classes present in the ground truth (scikit-learn's
    /// `balanced_accuracy_score`).
    pub balanced_accuracy: f64,
    /// Ground-truth rows that label this attribute (not [`UNLABELLED`]). With none, the scores
    /// are 0, print as `-`, and are left out of the report's means.
    pub labelled: usize,
}

/// Attribute recognition scores over the 12 tasks, with their averages; `Display` prints the
/// paper's Table 1 (percentages).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeReport {
    /// One row per attribute, in [`ATTRIBUTES`] order.
    pub rows: Vec<AttributeScores>,
    /// Mean of the per-attribute baseline accuracies (over the attributes the truth labels, as
    /// are the other means; 0 when it labels none).
    pub mean_mfc: f64,
    /// Mean of the per-attribute accuracies.
    pub mean_accuracy: f64,
    /// Mean of the per-attribute balanced accuracies.
    pub mean_balanced_accuracy: f64,
}

/// Checks that every class index of a label set is within its attribute's labels ([`UNLABELLED`]
/// allowed where `unlabelled` is).
fn check_classes(
    set: &'static str,
    labels: &[AttributeLabels],
    unlabelled: bool,
) -> Result<(), MetricsError> {
    if labels.is_empty() {
        return Err(MetricsError::EmptyLabels { set });
    }
    for (row, l) in labels.iter().enumerate() {
        for (a, &class) in ATTRIBUTES.iter().zip(l) {
            if usize::from(class) >= a.classes() && !(unlabelled && class == UNLABELLED) {
                return Err(MetricsError::ClassOutOfRange {
                    set,
                    row,
                    attribute: a.name,
                    class,
                    classes: a.classes(),
                });
            }
        }
    }
    Ok(())
}

/// Scores attribute predictions against the ground truth, row by row (`predicted[i]` is the
/// prediction for `truth[i]`). The most-frequent-class baseline predicts, for each attribute, the
/// class commonest in `reference` (e.g. the training labels; the lowest class index on a tie) and
/// is scored on `truth`. [`UNLABELLED`] entries of `truth` and `reference` (multicolour clothing)
/// are left out of that attribute's scores and counts; an attribute no row of `truth` labels is
/// left out of the means (see [`AttributeScores::labelled`]).
pub fn attribute_report(
    predicted: &[AttributeLabels],
    truth: &[AttributeLabels],
    reference: &[AttributeLabels],
) -> Result<AttributeReport, MetricsError> {
    check_classes("predicted", predicted, false)?;
    check_classes("truth", truth, true)?;
    check_classes("reference", reference, true)?;
    if predicted.len() != truth.len() {
        return Err(MetricsError::Length {
            what: "predicted labels",
            found: predicted.len(),
            expected: truth.len(),
        });
    }
    let rows: Vec<AttributeScores> = ATTRIBUTES
        .iter()
        .enumerate()
        .map(|(a, attr)| {
            let mut reference_counts = vec![0usize; attr.classes()];
            for r in reference.iter().filter(|r| r[a] != UNLABELLED) {
                reference_counts[usize::from(r[a])] += 1;
            }
            // First maximum: the lowest class index wins a tie.
            let majority_class = reference_counts
                .iter()
                .enumerate()
                .fold(
                    (0, 0),
                    |best, (c, &k)| if k > best.1 { (c, k) } else { best },
                )
                .0;
            // Per true class: (count, correctly predicted).
            let mut per_class = vec![(0usize, 0usize); attr.classes()];
            let (mut correct, mut mfc_correct) = (0usize, 0usize);
            let labelled = predicted
                .iter()
                .zip(truth)
                .filter(|(_, t)| t[a] != UNLABELLED);
            let mut n = 0usize;
            for (p, t) in labelled {
                n += 1;
                let slot = &mut per_class[usize::from(t[a])];
                slot.0 += 1;
                if p[a] == t[a] {
                    slot.1 += 1;
                    correct += 1;
                }
                if usize::from(t[a]) == majority_class {
                    mfc_correct += 1;
                }
            }
            let recalls: Vec<f64> = per_class
                .iter()
                .filter(|(count, _)| *count > 0)
                .map(|&(count, hit)| hit as f64 / count as f64)
                .collect();
            let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
            AttributeScores {
                name: attr.name,
                majority_class,
                mfc: share(mfc_correct),
                accuracy: share(correct),
                balanced_accuracy: recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
                labelled: n,
            }
        })
        .collect();
    let scored = rows.iter().filter(|r| r.labelled > 0);
    let count = scored.clone().count().max(1) as f64;
    let mean = |f: fn(&AttributeScores) -> f64| scored.clone().map(f).sum::<f64>() / count;
    Ok(AttributeReport {
        mean_mfc: mean(|r| r.mfc),
        mean_accuracy: mean(|r| r.accuracy),
        mean_balanced_accuracy: mean(|r| r.balanced_accuracy),
        rows,
    })
}

// ---------------------------------------------------------------------------------------------
// The printed tables
// ---------------------------------------------------------------------------------------------

/// Table 1's three score columns, in percent.
fn percentages([mfc, accuracy, balanced]: [f64; 3]) -> String {
    format!(
        "{:>8.2} {:>8.2} {:>9.2}",
        100.0 * mfc,
        100.0 * accuracy,
        100.0 * balanced
    )
}

impl fmt::Display for AttributeReport {
    /// The paper's Table 1 (with balanced accuracy), in percent, one line per attribute and the
    /// average, each ending in a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Table 1: attribute recognition accuracy (%)")?;
        writeln!(
            f,
            "{:<12} {:>8} {:>8} {:>9}",
            "attribute", "MFC", "acc", "balanced"
        )?;
        for r in &self.rows {
            if r.labelled == 0 {
                writeln!(f, "{:<12} {:>8} {:>8} {:>9}", r.name, "-", "-", "-")?;
            } else {
                let scores = [r.mfc, r.accuracy, r.balanced_accuracy];
                writeln!(f, "{:<12} {}", r.name, percentages(scores))?;
            }
        }
        let means = [
            self.mean_mfc,
            self.mean_accuracy,
            self.mean_balanced_accuracy,
        ];
        writeln!(f, "{:<12} {}", "average", percentages(means))
    }
}

impl fmt::Display for RankingMetrics {
    /// The paper's Table 2 (mAP, with CMC rank-1/5/10), in percent, each line ending in a
    /// newline. Ranks past the gallery size print as 100 (every valid query is matched by then).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Table 2: re-identification ({} valid queries)",
            self.num_valid_queries
        )?;
        let rank = |k| 100.0 * self.rank(k).unwrap_or(1.0);
        writeln!(
            f,
            "{:>8} {:>8} {:>8} {:>8}",
            "mAP", "rank-1", "rank-5", "rank-10"
        )?;
        writeln!(
            f,
            "{:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            100.0 * self.map,
            rank(1),
            rank(5),
            rank(10)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::NUM_ATTRIBUTES;
    use crate::distance::{cosine_distances, distance_matrix, euclidean_distances, DistanceMetric};
    use serde::Deserialize;

    /// One case of `tests/fixtures/metrics_market1501.json`, written by
    /// `tests/reference/metrics_reference.py` (torchreid's `eval_market1501` and
    /// `compute_distance_matrix`; see the script for how to run it).
    #[derive(Deserialize)]
    struct ReidCase {
        name: String,
        q_pids: Vec<i32>,
        g_pids: Vec<i32>,
        q_camids: Vec<u8>,
        g_camids: Vec<u8>,
        max_rank: usize,
        cmc: Vec<f64>,
        map: f64,
        minp: f64,
        num_valid_queries: usize,
        distmat: Option<Vec<f32>>,
        dim: Option<usize>,
        metric: Option<String>,
        query_features: Option<Vec<f32>>,
        gallery_features: Option<Vec<f32>>,
        squared_euclidean: Option<Vec<f32>>,
        euclidean: Option<Vec<f32>>,
        cosine: Option<Vec<f32>>,
    }

    #[derive(Deserialize)]
    struct ReidFixture {
        cases: Vec<ReidCase>,
    }

    fn assert_close(name: &str, what: &str, got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{name}: {what} length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "{name}: {what}[{i}] = {g}, torchreid {w}"
            );
        }
    }

    #[test]
    fn market1501_matches_torchreid() {
        let fixture: ReidFixture =
            serde_json::from_str(include_str!("../../tests/fixtures/metrics_market1501.json"))
                .unwrap();
        assert_eq!(fixture.cases.len(), 6);
        for c in &fixture.cases {
            let distmat = match &c.distmat {
                Some(d) => d.clone(),
                None => {
                    // Embedding cases: our distance matrices against torchreid's (float64).
                    let (q, g) = (c.query_features.as_ref(), c.gallery_features.as_ref());
                    let (q, g, dim) = (q.unwrap(), g.unwrap(), c.dim.unwrap());
                    let eu = euclidean_distances(q, g, dim).unwrap();
                    let sq: Vec<f32> = eu.iter().map(|d| d * d).collect();
                    assert_close(
                        &c.name,
                        "squared",
                        &sq,
                        c.squared_euclidean.as_ref().unwrap(),
                        1e-4,
                    );
                    assert_close(
                        &c.name,
                        "euclidean",
                        &eu,
                        c.euclidean.as_ref().unwrap(),
                        1e-5,
                    );
                    let co = cosine_distances(q, g, dim).unwrap();
                    assert_close(&c.name, "cosine", &co, c.cosine.as_ref().unwrap(), 1e-5);
                    // torchreid ranked by squared distances; plain Euclidean ranks the same.
                    let metric = match c.metric.as_deref() {
                        Some("euclidean") => DistanceMetric::Euclidean,
                        Some("cosine") => DistanceMetric::Cosine,
                        m => panic!("{}: unknown metric {m:?}", c.name),
                    };
                    distance_matrix(q, g, dim, metric).unwrap()
                }
            };
            let m = eval_market1501(
                &distmat,
                &c.q_pids,
                &c.g_pids,
                &c.q_camids,
                &c.g_camids,
                c.max_rank,
            )
            .unwrap();
            assert_eq!(m.num_valid_queries, c.num_valid_queries, "{}", c.name);
            assert_eq!(m.cmc.len(), c.cmc.len(), "{}", c.name);
            for (k, (got, want)) in m.cmc.iter().zip(&c.cmc).enumerate() {
                assert!(
                    (got - want).abs() < 1e-6,
                    "{}: cmc[{k}] {got} vs {want}",
                    c.name
                );
            }
            assert!(
                (m.map - c.map).abs() < 1e-6,
                "{}: mAP {} vs {}",
                c.name,
                m.map,
                c.map
            );
            assert!(
                (m.minp - c.minp).abs() < 1e-6,
                "{}: mINP {} vs {}",
                c.name,
                m.minp,
                c.minp
            );
        }
    }

    #[test]
    fn hand_computed_query() {
        // Query identity 1, camera 1. Gallery by distance: (1, cam 1) dropped, then 2, 1, 0, 1:
        // hits at kept ranks 2 and 4, AP = (1/2 + 2/4) / 2, INP = 2 / 4. Five gallery entries
        // with four kept: rank 5 counts as matched.
        let d = [0.1, 0.2, 0.3, 0.4, 0.5];
        let m = eval_market1501(&d, &[1], &[1, 2, 1, 0, 1], &[1], &[1, 2, 2, 3, 3], 50).unwrap();
        assert_eq!(m.cmc, vec![0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(m.rank(1), Some(0.0));
        assert_eq!(m.rank(2), Some(1.0));
        assert_eq!(m.rank(6), None);
        assert_eq!(m.rank(0), None);
        assert!((m.map - 0.5).abs() < 1e-12);
        assert!((m.minp - 0.5).abs() < 1e-12);
        assert_eq!(m.num_valid_queries, 1);
    }

    #[test]
    fn ties_keep_gallery_order() {
        let m = eval_market1501(&[0.5, 0.5], &[1], &[2, 1], &[1], &[2, 2], 2).unwrap();
        assert_eq!(m.cmc, vec![0.0, 1.0]);
        let m = eval_market1501(&[0.5, 0.5], &[1], &[1, 2], &[1], &[2, 2], 2).unwrap();
        assert_eq!(m.cmc, vec![1.0, 1.0]);
        // -0.0 and 0.0 are a tie too.
        let m = eval_market1501(&[0.0, -0.0], &[1], &[1, 2], &[1], &[2, 2], 1).unwrap();
        assert_eq!(m.cmc, vec![1.0]);
    }

    #[test]
    fn refuses_bad_ranking_inputs() {
        use MetricsError::*;
        let e = |d: &[f32], qp: &[i32], gp: &[i32], qc: &[u8], gc: &[u8]| {
            eval_market1501(d, qp, gp, qc, gc, 5).unwrap_err()
        };
        assert_eq!(
            e(&[0.1, 0.2], &[1], &[1, -1], &[1], &[2, 2]),
            Junk {
                set: "gallery",
                index: 1
            }
        );
        assert_eq!(
            e(&[0.1, f32::NAN], &[1], &[1, 2], &[1], &[2, 2]),
            NanDistance {
                query: 0,
                gallery: 1
            }
        );
        assert_eq!(
            e(&[0.1], &[1], &[1, 2], &[1], &[2, 2]),
            Length {
                what: "distance matrix",
                found: 1,
                expected: 2
            }
        );
        assert_eq!(
            e(&[0.1, 0.2], &[1], &[1, 2], &[1], &[2]),
            Length {
                what: "gallery cameras",
                found: 1,
                expected: 2
            }
        );
        // The only match is in the query's camera.
        assert_eq!(
            e(&[0.1, 0.2], &[1], &[1, 2], &[1], &[1, 2]),
            NoValidQuery { num_query: 1 }
        );
        let msg = e(&[0.1, 0.2], &[-1], &[1, 2], &[1], &[1, 2]).to_string();
        assert!(msg.contains("query entry 0 is junk"), "{msg}");
    }

    /// `tests/fixtures/metrics_attributes.json`, written by `tests/reference/metrics_reference.py`
    /// (scikit-learn's `accuracy_score` and `balanced_accuracy_score`, numpy for the baseline).
    #[derive(Deserialize)]
    struct AttributeFixture {
        predicted: Vec<AttributeLabels>,
        truth: Vec<AttributeLabels>,
        reference: Vec<AttributeLabels>,
        rows: Vec<AttributeRow>,
        mean_mfc: f64,
        mean_accuracy: f64,
        mean_balanced_accuracy: f64,
    }

    #[derive(Deserialize)]
    struct AttributeRow {
        majority_class: usize,
        mfc: f64,
        accuracy: f64,
        balanced_accuracy: f64,
    }

    #[test]
    fn attributes_match_sklearn() {
        let f: AttributeFixture =
            serde_json::from_str(include_str!("../../tests/fixtures/metrics_attributes.json"))
                .unwrap();
        let r = attribute_report(&f.predicted, &f.truth, &f.reference).unwrap();
        assert_eq!(r.rows.len(), NUM_ATTRIBUTES);
        for (got, want) in r.rows.iter().zip(&f.rows) {
            assert_eq!(got.majority_class, want.majority_class, "{}", got.name);
            assert!((got.mfc - want.mfc).abs() < 1e-9, "{}", got.name);
            assert!((got.accuracy - want.accuracy).abs() < 1e-9, "{}", got.name);
            assert!(
                (got.balanced_accuracy - want.balanced_accuracy).abs() < 1e-9,
                "{}: balanced {} vs sklearn {}",
                got.name,
                got.balanced_accuracy,
                want.balanced_accuracy
            );
        }
        assert!((r.mean_mfc - f.mean_mfc).abs() < 1e-9);
        assert!((r.mean_accuracy - f.mean_accuracy).abs() < 1e-9);
        assert!((r.mean_balanced_accuracy - f.mean_balanced_accuracy).abs() < 1e-9);
        let table = r.to_string();
        assert_eq!(table.lines().count(), 15, "{table}");
        assert!(
            table.lines().nth(11).unwrap().starts_with("gender"),
            "{table}"
        );
        assert!(
            table.ends_with(&format!("{:.2}\n", 100.0 * f.mean_balanced_accuracy)),
            "{table}"
        );
    }

    #[test]
    fn attributes_by_hand_and_bad_labels() {
        // Gender (index 9) only; every other attribute is class 0 everywhere.
        let row = |gender: u8| {
            let mut l = [0u8; NUM_ATTRIBUTES];
            l[9] = gender;
            l
        };
        let truth = [row(0), row(0), row(0), row(1)];
        let predicted = [row(0), row(0), row(0), row(0)];
        // The reference has one male and one female: the tie goes to class 0.
        let reference = [row(1), row(0)];
        let r = attribute_report(&predicted, &truth, &reference).unwrap();
        let g = &r.rows[9];
        assert_eq!((g.name, g.majority_class), ("gender", 0));
        assert_eq!((g.mfc, g.accuracy, g.balanced_accuracy), (0.75, 0.75, 0.5));
        // Reference all female: the baseline says female.
        let r = attribute_report(&predicted, &truth, &[row(1)]).unwrap();
        assert_eq!(r.rows[9].mfc, 0.25);
        assert_eq!(r.rows[0].balanced_accuracy, 1.0);

        let mut bad = row(0);
        bad[10] = 8; // upcolor has 8 classes
        let err = attribute_report(&predicted, &[truth[0], bad, truth[2], truth[3]], &reference)
            .unwrap_err();
        assert_eq!(
            err,
            MetricsError::ClassOutOfRange {
                set: "truth",
                row: 1,
                attribute: "upcolor",
                class: 8,
                classes: 8
            }
        );
        assert_eq!(
            attribute_report(&predicted, &truth, &[]).unwrap_err(),
            MetricsError::EmptyLabels { set: "reference" }
        );
        assert!(matches!(
            attribute_report(&predicted[..3], &truth, &reference),
            Err(MetricsError::Length {
                found: 3,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn unlabelled_colours_are_left_out_of_their_attribute() {
        let row = |up: u8| {
            let mut l = [0u8; NUM_ATTRIBUTES];
            l[10] = up;
            l
        };
        // Without the unlabelled rows: truth [2, 3, 3], predicted [2, 2, 3].
        let truth = [row(2), row(UNLABELLED), row(3), row(3), row(UNLABELLED)];
        let predicted = [row(2), row(5), row(2), row(3), row(2)];
        let reference = [row(UNLABELLED), row(UNLABELLED), row(3), row(UNLABELLED)];
        let r = attribute_report(&predicted, &truth, &reference).unwrap();
        let up = &r.rows[10];
        assert_eq!(
            up.majority_class, 3,
            "the unlabelled reference rows do not count"
        );
        assert!((up.accuracy - 2.0 / 3.0).abs() < 1e-12, "{}", up.accuracy);
        assert!((up.mfc - 2.0 / 3.0).abs() < 1e-12, "{}", up.mfc);
        assert!((up.balanced_accuracy - 0.75).abs() < 1e-12);
        // The other attributes keep every row.
        assert_eq!(r.rows[9].accuracy, 1.0);
        // A model never predicts "unlabelled".
        let err = attribute_report(&truth, &truth, &reference).unwrap_err();
        assert!(
            matches!(
                err,
                MetricsError::ClassOutOfRange {
                    set: "predicted",
                    ..
                }
            ),
            "{err}"
        );
        // No row labelled: 0, not NaN, left out of the means (the 11 others score 100%) and
        // printed as `-`.
        let none = [row(UNLABELLED)];
        let r = attribute_report(&[row(0)], &none, &reference).unwrap();
        let up = &r.rows[10];
        assert_eq!(
            (up.accuracy, up.balanced_accuracy, up.labelled),
            (0.0, 0.0, 0)
        );
        assert_eq!(
            (r.mean_accuracy, r.mean_balanced_accuracy, r.mean_mfc),
            (1.0, 1.0, 1.0)
        );
        let text = r.to_string();
        let line = text.lines().find(|l| l.starts_with("upcolor")).unwrap();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            ["upcolor", "-", "-", "-"]
        );
    }
}
