//! Open-set identification: how far a gallery match may be before the person is "unknown".
//!
//! A camera box meets people who are not in its gallery. The runtime names the nearest enrolled
//! identity only when it lies within an *unknown distance*; this module measures what a threshold
//! does and picks one on validation data.
//!
//! Every query plays two roles against the gallery (Market protocol: gallery images of the
//! query's identity taken by the query's camera are ignored):
//! - **known person**: *identified* when its nearest gallery image has its identity and lies
//!   within the threshold (queries with no image of their identity left are skipped);
//! - **stranger**: its own identity taken out of the gallery, *rejected* when the nearest
//!   remaining image lies beyond the threshold.
//!
//! [`calibrate_unknown_distance`] picks the threshold with the best mean of the two rates
//! (balanced open-set accuracy), the operating point the model card records.

use std::fmt;

use crate::metrics::MetricsError;

/// What one threshold does on a query set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenSetRates {
    /// The threshold: matches farther than this are unknown.
    pub max_distance: f32,
    /// Share of known-person queries named correctly (nearest is theirs and within the threshold).
    pub identified: f64,
    /// Share of stranger queries left unknown (nearest other identity beyond the threshold).
    pub rejected: f64,
    /// Queries that played the known person.
    pub known_queries: usize,
    /// Queries that played the stranger.
    pub stranger_queries: usize,
}

impl OpenSetRates {
    /// Mean of the identification and rejection rates.
    pub fn balanced(&self) -> f64 {
        0.5 * (self.identified + self.rejected)
    }
}

impl fmt::Display for OpenSetRates {
    /// One line, rates in percent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown distance {:.4}: {:.2}% of {} known queries identified, {:.2}% of {} strangers rejected",
            self.max_distance,
            100.0 * self.identified,
            self.known_queries,
            100.0 * self.rejected,
            self.stranger_queries
        )
    }
}

/// Per query: the nearest valid gallery image of its own identity and of any other identity.
struct Nearest {
    own: Option<f32>,
    other: Option<f32>,
}

impl Nearest {
    /// The distance at which the query is identified: its own identity is nearest (strictly).
    fn hit(&self) -> Option<f32> {
        self.own
            .filter(|&own| self.other.is_none_or(|other| own < other))
    }
}

fn nearest(
    distmat: &[f32],
    q_pids: &[i32],
    g_pids: &[i32],
    q_camids: &[u8],
    g_camids: &[u8],
) -> Result<Vec<Nearest>, MetricsError> {
    let (nq, ng) = (q_pids.len(), g_pids.len());
    for (what, found, expected) in [
        ("query cameras", q_camids.len(), nq),
        ("gallery cameras", g_camids.len(), ng),
        ("distance matrix", distmat.len(), nq * ng),
    ] {
        if found != expected {
            return Err(MetricsError::Length {
                what,
                found,
                expected,
            });
        }
    }
    if let Some(i) = distmat.iter().position(|d| d.is_nan()) {
        return Err(MetricsError::NanDistance {
            query: i / ng,
            gallery: i % ng,
        });
    }
    let min = |a: Option<f32>, d: f32| Some(a.map_or(d, |a| a.min(d)));
    Ok((0..nq)
        .map(|q| {
            let mut n = Nearest {
                own: None,
                other: None,
            };
            for (g, &d) in distmat[q * ng..(q + 1) * ng].iter().enumerate() {
                if g_pids[g] != q_pids[q] {
                    n.other = min(n.other, d);
                } else if g_camids[g] != q_camids[q] {
                    n.own = min(n.own, d);
                }
            }
            n
        })
        .collect())
}

/// The sorted distances that decide the rates at any threshold.
struct Decisions {
    /// Per known query identified at some threshold: the distance of its (nearest) match.
    hits: Vec<f32>,
    /// Per stranger query: the distance of the nearest other identity.
    others: Vec<f32>,
    /// Queries with their identity in the gallery.
    known: usize,
}

impl Decisions {
    fn new(nearest: &[Nearest]) -> Self {
        let mut hits: Vec<f32> = nearest.iter().filter_map(Nearest::hit).collect();
        let mut others: Vec<f32> = nearest.iter().filter_map(|n| n.other).collect();
        hits.sort_by(f32::total_cmp);
        others.sort_by(f32::total_cmp);
        Self {
            hits,
            others,
            known: nearest.iter().filter(|n| n.own.is_some()).count(),
        }
    }

    fn rates(&self, max_distance: f32) -> OpenSetRates {
        let within = |sorted: &[f32]| sorted.partition_point(|&d| d <= max_distance);
        let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
        OpenSetRates {
            max_distance,
            identified: share(within(&self.hits), self.known),
            rejected: share(self.others.len() - within(&self.others), self.others.len()),
            known_queries: self.known,
            stranger_queries: self.others.len(),
        }
    }
}

/// The open-set rates of `max_distance` on a query set (`distmat` row-major `[queries, gallery]`,
/// as for [`crate::metrics::eval_market1501`]).
pub fn open_set_rates(
    distmat: &[f32],
    q_pids: &[i32],
    g_pids: &[i32],
    q_camids: &[u8],
    g_camids: &[u8],
    max_distance: f32,
) -> Result<OpenSetRates, MetricsError> {
    let n = nearest(distmat, q_pids, g_pids, q_camids, g_camids)?;
    Ok(Decisions::new(&n).rates(max_distance))
}

/// The threshold with the best balanced open-set accuracy on a query set, and its rates.
///
/// The balanced accuracy only rises at the match distances of identified queries, so those are
/// the candidates, with one threshold below every distance (everyone unknown: balanced 0.5, the
/// choice for a model too weak to beat it). The one chosen is moved halfway to the next stranger
/// distance above it, which keeps its rates and leaves a margin on both sides; it is always
/// positive. Fails when the set has no identified query or no stranger.
pub fn calibrate_unknown_distance(
    distmat: &[f32],
    q_pids: &[i32],
    g_pids: &[i32],
    q_camids: &[u8],
    g_camids: &[u8],
) -> Result<OpenSetRates, MetricsError> {
    let n = nearest(distmat, q_pids, g_pids, q_camids, g_camids)?;
    let decisions = Decisions::new(&n);
    if decisions.hits.is_empty() || decisions.others.is_empty() {
        return Err(MetricsError::NoOpenSet {
            identified: decisions.hits.len(),
            strangers: decisions.others.len(),
        });
    }
    let positive = |t: f32| t.max(f32::MIN_POSITIVE);
    let below_all = 0.5 * decisions.hits[0].min(decisions.others[0]);
    // On a tie the last candidate wins: a hit over everyone-unknown.
    let best = std::iter::once(below_all)
        .chain(decisions.hits.iter().copied())
        .map(|t| decisions.rates(positive(t)))
        .max_by(|a, b| a.balanced().total_cmp(&b.balanced()))
        .expect("there are candidates");
    // No hit lies between the best and the next stranger distance (it would be better still).
    let next = decisions.others[decisions
        .others
        .partition_point(|&d| d <= best.max_distance)..]
        .first();
    Ok(next.map_or(best, |&next| {
        decisions.rates(positive(0.5 * (best.max_distance + next)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two identities in the gallery (1 and 2, each seen by camera 2) and a distractor (0).
    /// Queries from camera 1: identity 1 (near its match), identity 2 (nearer the distractor than
    /// its own image), identity 3 (a stranger: not in the gallery).
    const G_PIDS: [i32; 3] = [1, 2, 0];
    const G_CAMS: [u8; 3] = [2, 2, 2];
    const Q_PIDS: [i32; 3] = [1, 2, 3];
    const Q_CAMS: [u8; 3] = [1, 1, 1];
    #[rustfmt::skip]
    const DISTMAT: [f32; 9] = [
        0.2, 0.9, 0.7,
        0.8, 0.5, 0.4,
        0.6, 0.3, 0.9,
    ];

    fn rates(t: f32) -> OpenSetRates {
        open_set_rates(&DISTMAT, &Q_PIDS, &G_PIDS, &Q_CAMS, &G_CAMS, t).unwrap()
    }

    #[test]
    fn counts_each_query_as_known_person_and_as_stranger() {
        // Known: queries 1 and 2 (identity 3 is not enrolled); only query 1 is nearest its own.
        // Strangers: nearest other identity at 0.7, 0.4 and 0.3.
        let r = rates(0.35);
        assert_eq!((r.known_queries, r.stranger_queries), (2, 3));
        assert_eq!((r.identified, r.rejected), (0.5, 2.0 / 3.0));
        assert_eq!((rates(0.1).identified, rates(0.1).rejected), (0.0, 1.0));
        assert_eq!((rates(0.2).identified, rates(0.2).rejected), (0.5, 1.0));
        assert_eq!((rates(0.7).identified, rates(0.7).rejected), (0.5, 0.0));
    }

    #[test]
    fn a_same_camera_image_of_the_query_is_ignored() {
        // Query 1's own image at 0.2 is from its own camera: it is no longer a hit, and its
        // nearest other identity (0.7) is unchanged.
        let cams = [1, 2, 2];
        let r = open_set_rates(&DISTMAT, &Q_PIDS, &G_PIDS, &Q_CAMS, &cams, 0.25).unwrap();
        assert_eq!((r.known_queries, r.identified, r.rejected), (1, 0.0, 1.0));
    }

    #[test]
    fn calibration_keeps_the_best_hit_and_moves_halfway_to_the_next_stranger() {
        // The only hit is at 0.2 (balanced 0.75); the next stranger distance above is 0.3.
        let c = calibrate_unknown_distance(&DISTMAT, &Q_PIDS, &G_PIDS, &Q_CAMS, &G_CAMS).unwrap();
        assert!((c.max_distance - 0.25).abs() < 1e-6, "{c:?}");
        assert_eq!((c.identified, c.rejected), (0.5, 1.0));
    }

    #[test]
    fn calibration_is_the_best_threshold_of_a_brute_force_sweep() {
        // A seeded random query set: 40 queries, 60 gallery images over 15 identities.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let g_pids: Vec<i32> = (0..60).map(|i| (i % 15) + 1).collect();
        let g_cams: Vec<u8> = (0..60).map(|_| (next() % 6) as u8 + 1).collect();
        let q_pids: Vec<i32> = (0..40).map(|_| (next() % 20) as i32 + 1).collect();
        let q_cams: Vec<u8> = (0..40).map(|_| (next() % 6) as u8 + 1).collect();
        let distmat: Vec<f32> = (0..40 * 60)
            .map(|i| {
                let (q, g) = (i / 60, i % 60);
                let base = if q_pids[q] == g_pids[g] { 0.8 } else { 1.2 };
                base + (next() % 1000) as f32 / 1000.0
            })
            .collect();
        let c = calibrate_unknown_distance(&distmat, &q_pids, &g_pids, &q_cams, &g_cams).unwrap();
        let mut sweep: Vec<f32> = distmat.clone();
        sweep.extend(distmat.iter().map(|d| d + 5e-4));
        for t in sweep {
            let r = open_set_rates(&distmat, &q_pids, &g_pids, &q_cams, &g_cams, t).unwrap();
            assert!(
                r.balanced() <= c.balanced() + 1e-12,
                "{t}: {r:?} beats {c:?}"
            );
        }
        // The rates follow the definition, query by query.
        let (mut known, mut identified, mut strangers, mut rejected) = (0, 0, 0, 0);
        for q in 0..40 {
            let valid = |g: usize| !(g_pids[g] == q_pids[q] && g_cams[g] == q_cams[q]);
            let row = |own: bool| {
                (0..60)
                    .filter(|&g| valid(g) && (g_pids[g] == q_pids[q]) == own)
                    .map(|g| distmat[q * 60 + g])
                    .fold(f32::INFINITY, f32::min)
            };
            let (own, other) = (row(true), row(false));
            if own.is_finite() {
                known += 1;
                identified += usize::from(own < other && own <= c.max_distance);
            }
            strangers += 1;
            rejected += usize::from(other > c.max_distance);
        }
        assert!(known > 0 && identified > 0 && rejected > 0);
        assert_eq!(c.known_queries, known);
        assert_eq!(c.stranger_queries, strangers);
        assert_eq!(c.identified, identified as f64 / known as f64);
        assert_eq!(c.rejected, rejected as f64 / strangers as f64);
    }

    #[test]
    fn a_model_too_weak_to_beat_everyone_unknown_gets_a_threshold_below_every_distance() {
        // Four enrolled people; only query 1 is nearest its own image (0.5), the others are
        // nearer somebody else (0.1, 0.2, 0.3): at 0.5, 25% identified and 25% of strangers
        // rejected; below every distance, none identified and all rejected (balanced 0.5).
        let pids = [1, 2, 3, 4];
        let (q_cams, g_cams) = ([1; 4], [2; 4]);
        #[rustfmt::skip]
        let distmat = [
            0.5, 0.6, 0.7, 0.8,
            0.1, 0.9, 0.95, 0.99,
            0.97, 0.2, 0.9, 0.98,
            0.96, 0.97, 0.3, 0.9,
        ];
        let c = calibrate_unknown_distance(&distmat, &pids, &pids, &q_cams, &g_cams).unwrap();
        // Halfway between 0.05 (below everything) and the nearest stranger distance, 0.1.
        assert!((c.max_distance - 0.075).abs() < 1e-6, "{c:?}");
        assert_eq!((c.identified, c.rejected), (0.0, 1.0));
    }

    #[test]
    fn refuses_a_set_without_hits_and_a_bad_matrix() {
        let far = [0.9f32, 0.1, 0.1, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1];
        let e = calibrate_unknown_distance(&far, &Q_PIDS, &G_PIDS, &Q_CAMS, &G_CAMS).unwrap_err();
        assert!(
            matches!(
                e,
                MetricsError::NoOpenSet {
                    identified: 0,
                    strangers: 3
                }
            ),
            "{e}"
        );
        let mut nan = DISTMAT;
        nan[4] = f32::NAN;
        let e = open_set_rates(&nan, &Q_PIDS, &G_PIDS, &Q_CAMS, &G_CAMS, 0.5).unwrap_err();
        assert_eq!(
            e,
            MetricsError::NanDistance {
                query: 1,
                gallery: 1
            }
        );
        let e = open_set_rates(&DISTMAT[..8], &Q_PIDS, &G_PIDS, &Q_CAMS, &G_CAMS, 0.5);
        assert!(matches!(
            e,
            Err(MetricsError::Length {
                what: "distance matrix",
                ..
            })
        ));
    }
}
