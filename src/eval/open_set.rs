//! Open-set identification: how far a gallery match may be before the person is "unknown".
//!
//! A camera box meets people who are not in its gallery. The runtime names the nearest enrolled
//! identity only when it lies within an *unknown distance*; this module measures what a threshold
//! does and picks one on validation data.
//!
//! Every query plays two roles against a gallery (Market protocol: gallery images of the query's
//! identity taken by the query's camera are ignored):
//! - **known person**: *identified* when its nearest gallery image has its identity and lies
//!   within the threshold (queries with no image of their identity left are skipped);
//! - **stranger**: its own identity taken out of the gallery, *rejected* when the nearest
//!   remaining image lies beyond the threshold.
//!
//! How hard both are depends on how many people the gallery holds: a stranger is more likely to
//! resemble one of 500 enrolled people than one of 10. The rates are therefore measured for
//! galleries of a given number of identities ([`GallerySize`]): the expectation over every
//! gallery of that size drawn from the set's identities (the known person's own identity always
//! among them), computed exactly from each query's nearest image per identity. A camera box
//! typically knows a handful of people, so [`CALIBRATION_GALLERY`] identities is the size the
//! exported models are calibrated for. Distractor images (identity 0) count as one identity.
//!
//! [`calibrate_unknown_distance`] picks the threshold with the best mean of the two rates
//! (balanced open-set accuracy), the operating point the model card records.

use std::collections::HashMap;
use std::fmt;

use crate::card::GallerySize;
use crate::eval::metrics::MetricsError;

/// The gallery size, in identities, that exported models calibrate their unknown distance for.
pub const CALIBRATION_GALLERY: usize = 10;

/// What one threshold does on a query set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenSetRates {
    /// The threshold: matches farther than this are unknown.
    pub max_distance: f32,
    /// The gallery size the rates are for.
    pub gallery: GallerySize,
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
            "unknown distance {:.4} ({}): {:.2}% of {} known queries identified, {:.2}% of {} strangers rejected",
            self.max_distance,
            self.gallery,
            100.0 * self.identified,
            self.known_queries,
            100.0 * self.rejected,
            self.stranger_queries
        )
    }
}

/// `C(a, k) / C(n, k)`: the chance that `k` identities drawn from `n` all come from a given `a`.
fn all_drawn_from(a: usize, n: usize, k: usize) -> f64 {
    if a < k {
        0.0
    } else if a == n {
        1.0
    } else {
        (0..k).map(|i| (a - i) as f64 / (n - i) as f64).product()
    }
}

/// One query's distances.
struct Query {
    /// Its nearest valid image of its own identity (not taken by the query's camera).
    own: Option<f32>,
    /// The nearest image of each other identity of the gallery, ascending.
    others: Vec<f32>,
}

impl Query {
    /// Other identities drawn with its own in a gallery of `size`: `size - 1`, at most all.
    fn companions(&self, size: GallerySize) -> usize {
        let n = self.others.len();
        match size {
            GallerySize::All => n,
            GallerySize::Identities(g) => g.saturating_sub(1).min(n),
        }
    }

    /// Identities drawn in a gallery of `size` without its own: `size`, at most all.
    fn strangers_gallery(&self, size: GallerySize) -> usize {
        let n = self.others.len();
        match size {
            GallerySize::All => n,
            GallerySize::Identities(g) => g.min(n),
        }
    }

    /// Other identities farther than `d`.
    fn farther(&self, d: f32) -> usize {
        self.others.len() - self.others.partition_point(|&o| o <= d)
    }
}

/// Each query's distances (see [`Query`]), after checking the inputs' lengths and values.
fn queries(
    distmat: &[f32],
    q_pids: &[i32],
    g_pids: &[i32],
    q_camids: &[u8],
    g_camids: &[u8],
) -> Result<Vec<Query>, MetricsError> {
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
    let mut index: HashMap<i32, usize> = HashMap::new();
    for &pid in g_pids {
        let next = index.len();
        index.entry(pid).or_insert(next);
    }
    let identity: Vec<usize> = g_pids.iter().map(|p| index[p]).collect();
    Ok((0..nq)
        .map(|q| {
            let own_identity = index.get(&q_pids[q]).copied();
            let mut nearest = vec![f32::INFINITY; index.len()];
            let mut seen = vec![false; index.len()];
            for (g, &d) in distmat[q * ng..(q + 1) * ng].iter().enumerate() {
                if g_pids[g] == q_pids[q] && g_camids[g] == q_camids[q] {
                    continue;
                }
                let i = identity[g];
                nearest[i] = nearest[i].min(d);
                seen[i] = true;
            }
            let own = own_identity.filter(|&i| seen[i]).map(|i| nearest[i]);
            let mut others: Vec<f32> = (0..index.len())
                .filter(|&i| seen[i] && Some(i) != own_identity)
                .map(|i| nearest[i])
                .collect();
            others.sort_by(f32::total_cmp);
            Query { own, others }
        })
        .collect())
}

/// The precomputed decisions of a query set for one gallery size.
struct Decisions<'a> {
    queries: &'a [Query],
    size: GallerySize,
    /// Per known query that can be identified, ascending by distance: the distance of its own
    /// match and the chance that every other identity of its gallery is farther.
    hits: Vec<(f32, f64)>,
    /// Running sums of the hits' chances.
    cumulative: Vec<f64>,
    /// Queries with their identity in the gallery.
    known: usize,
    /// Queries with another identity in the gallery.
    strangers: usize,
}

impl<'a> Decisions<'a> {
    fn new(queries: &'a [Query], size: GallerySize) -> Self {
        let mut hits: Vec<(f32, f64)> = queries
            .iter()
            .filter_map(|q| {
                let own = q.own?;
                // Strictly nearer than every other identity drawn.
                let chance = all_drawn_from(q.farther(own), q.others.len(), q.companions(size));
                (chance > 0.0).then_some((own, chance))
            })
            .collect();
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        let cumulative = hits
            .iter()
            .scan(0.0, |sum, &(_, chance)| {
                *sum += chance;
                Some(*sum)
            })
            .collect();
        Self {
            queries,
            size,
            hits,
            cumulative,
            known: queries.iter().filter(|q| q.own.is_some()).count(),
            strangers: queries.iter().filter(|q| !q.others.is_empty()).count(),
        }
    }

    fn rates(&self, max_distance: f32) -> OpenSetRates {
        let share = |x: f64, of: usize| if of == 0 { 0.0 } else { x / of as f64 };
        let within = self.hits.partition_point(|&(d, _)| d <= max_distance);
        let identified = if within == 0 {
            0.0
        } else {
            self.cumulative[within - 1]
        };
        let rejected: f64 = self
            .queries
            .iter()
            .filter(|q| !q.others.is_empty())
            .map(|q| {
                all_drawn_from(
                    q.farther(max_distance),
                    q.others.len(),
                    q.strangers_gallery(self.size),
                )
            })
            .sum();
        OpenSetRates {
            max_distance,
            gallery: self.size,
            identified: share(identified, self.known),
            rejected: share(rejected, self.strangers),
            known_queries: self.known,
            stranger_queries: self.strangers,
        }
    }
}

/// The open-set rates of `max_distance` for galleries of `size` on a query set (`distmat`
/// row-major `[queries, gallery]`, as for [`crate::eval::metrics::eval_market1501`]).
pub fn open_set_rates(
    distmat: &[f32],
    q_pids: &[i32],
    g_pids: &[i32],
    q_camids: &[u8],
    g_camids: &[u8],
    size: GallerySize,
    max_distance: f32,
) -> Result<OpenSetRates, MetricsError> {
    let q = queries(distmat, q_pids, g_pids, q_camids, g_camids)?;
    Ok(Decisions::new(&q, size).rates(max_distance))
}

/// The threshold with the best balanced open-set accuracy for galleries of `size` on a query
/// set, and its rates.
///
/// The balanced accuracy only rises at the match distances of identifiable queries, so those are
/// the candidates, with one threshold below every distance (everyone unknown: balanced 0.5, the
/// choice for a model too weak to beat it). The one chosen is moved halfway to the next stranger
/// distance above it, which keeps its rates and leaves a margin on both sides; it is always
/// positive. Fails when the set has no identifiable query or no stranger.
pub fn calibrate_unknown_distance(
    distmat: &[f32],
    q_pids: &[i32],
    g_pids: &[i32],
    q_camids: &[u8],
    g_camids: &[u8],
    size: GallerySize,
) -> Result<OpenSetRates, MetricsError> {
    let q = queries(distmat, q_pids, g_pids, q_camids, g_camids)?;
    let decisions = Decisions::new(&q, size);
    let nearest_other = q
        .iter()
        .filter_map(|q| q.others.first().copied())
        .min_by(f32::total_cmp);
    let (Some(first_hit), Some(nearest_other)) = (decisions.hits.first(), nearest_other) else {
        return Err(MetricsError::NoOpenSet {
            identified: decisions.hits.len(),
            strangers: decisions.strangers,
        });
    };
    let positive = |t: f32| t.max(f32::MIN_POSITIVE);
    let below_all = 0.5 * first_hit.0.min(nearest_other);
    // On a tie the last candidate wins: a hit over everyone-unknown.
    let best = std::iter::once(below_all)
        .chain(decisions.hits.iter().map(|&(d, _)| d))
        .map(|t| decisions.rates(positive(t)))
        .max_by(|a, b| a.balanced().total_cmp(&b.balanced()))
        .expect("there are candidates");
    // No hit lies between the best and the next stranger distance (it would be better still).
    let next = q
        .iter()
        .filter_map(|q| {
            let above = q.others.partition_point(|&o| o <= best.max_distance);
            q.others.get(above).copied()
        })
        .min_by(f32::total_cmp);
    Ok(next.map_or(best, |next| {
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

    /// The rates on the example, its gallery taken by cameras `g_cams`.
    fn rates_with(g_cams: &[u8], size: GallerySize, t: f32) -> OpenSetRates {
        open_set_rates(&DISTMAT, &Q_PIDS, &G_PIDS, &Q_CAMS, g_cams, size, t).unwrap()
    }

    fn rates(t: f32) -> OpenSetRates {
        rates_with(&G_CAMS, GallerySize::All, t)
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

        // Galleries of one person. Known: query 1 (own 0.2) and query 2 (own 0.5), each with its
        // own identity alone, so identified whenever the threshold reaches its own match.
        let one = GallerySize::Identities(1);
        assert_eq!(rates_with(&G_CAMS, one, 0.55).identified, 1.0);
        let r = rates_with(&G_CAMS, one, 0.45);
        assert_eq!(r.identified, 0.5);
        // Strangers facing one other identity, rejected at 0.45 when it lies farther: query 1
        // (0.9, 0.7) always, query 2 (0.8, 0.4) half the time, query 3 (0.6, 0.3, 0.9) 2 in 3.
        assert_eq!(r.rejected, (1.0 + 0.5 + 2.0 / 3.0) / 3.0);
    }

    #[test]
    fn a_same_camera_image_of_the_query_is_ignored() {
        // Query 1's own image at 0.2 is from its own camera: it is no longer a hit, and its
        // nearest other identity (0.7) is unchanged.
        let cams = [1, 2, 2];
        let r = rates_with(&cams, GallerySize::All, 0.25);
        assert_eq!((r.known_queries, r.identified, r.rejected), (1, 0.0, 1.0));
    }

    #[test]
    fn calibration_keeps_the_best_hit_and_moves_halfway_to_the_next_stranger() {
        // The only hit is at 0.2 (balanced 0.75); the next stranger distance above is 0.3.
        let c = calibrate_unknown_distance(
            &DISTMAT,
            &Q_PIDS,
            &G_PIDS,
            &Q_CAMS,
            &G_CAMS,
            GallerySize::All,
        )
        .unwrap();
        assert!((c.max_distance - 0.25).abs() < 1e-6, "{c:?}");
        assert_eq!((c.identified, c.rejected), (0.5, 1.0));
    }

    /// A seeded random query set: 40 queries (identities 1 to 20) against 60 gallery images of
    /// identities 1 to 15, own images nearer on average.
    struct RandomSet {
        q_pids: Vec<i32>,
        q_cams: Vec<u8>,
        g_pids: Vec<i32>,
        g_cams: Vec<u8>,
        distmat: Vec<f32>,
    }

    impl RandomSet {
        const QUERIES: usize = 40;
        const GALLERY: usize = 60;

        fn new() -> Self {
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
            RandomSet {
                q_pids,
                q_cams,
                g_pids,
                g_cams,
                distmat,
            }
        }

        fn rates(&self, size: GallerySize, t: f32) -> OpenSetRates {
            let s = self;
            open_set_rates(
                &s.distmat, &s.q_pids, &s.g_pids, &s.q_cams, &s.g_cams, size, t,
            )
            .unwrap()
        }

        fn calibrate(&self, size: GallerySize) -> OpenSetRates {
            let s = self;
            calibrate_unknown_distance(&s.distmat, &s.q_pids, &s.g_pids, &s.q_cams, &s.g_cams, size)
                .unwrap()
        }

        /// Query `q`'s nearest valid image of its own identity (Market protocol) and of each
        /// other gallery identity, worked out directly from the matrix.
        fn own_and_others(&self, q: usize) -> (Option<f32>, Vec<f32>) {
            let mut ids: Vec<i32> = self.g_pids.clone();
            ids.sort_unstable();
            ids.dedup();
            let nearest = |pid: i32| {
                (0..Self::GALLERY)
                    .filter(|&g| self.g_pids[g] == pid)
                    .filter(|&g| !(pid == self.q_pids[q] && self.g_cams[g] == self.q_cams[q]))
                    .map(|g| self.distmat[q * Self::GALLERY + g])
                    .reduce(f32::min)
            };
            let own = nearest(self.q_pids[q]);
            let others = ids
                .into_iter()
                .filter(|&pid| pid != self.q_pids[q])
                .filter_map(nearest)
                .collect();
            (own, others)
        }
    }

    /// Every `k`-subset of `items`.
    fn subsets<T: Copy>(items: &[T], k: usize) -> Vec<Vec<T>> {
        if k == 0 {
            return vec![Vec::new()];
        }
        if items.len() < k {
            return Vec::new();
        }
        let mut with: Vec<Vec<T>> = subsets(&items[1..], k - 1);
        for s in &mut with {
            s.insert(0, items[0]);
        }
        with.extend(subsets(&items[1..], k));
        with
    }

    #[test]
    fn rates_for_a_gallery_size_average_over_every_gallery_of_that_size() {
        // The definition, gallery by gallery: each known query against its own identity plus
        // every choice of `size - 1` others, each stranger against every choice of `size`.
        let set = RandomSet::new();
        for (size, t) in [(1, 1.3), (3, 1.25), (3, 1.5), (5, 1.4), (14, 1.3)] {
            let (mut known, mut identified, mut strangers, mut rejected) = (0, 0.0, 0, 0.0);
            for q in 0..RandomSet::QUERIES {
                let (own, others) = set.own_and_others(q);
                if let Some(own) = own {
                    let drawn = subsets(&others, (size - 1).min(others.len()));
                    let hits = drawn
                        .iter()
                        .filter(|g| own <= t && g.iter().all(|&o| own < o))
                        .count();
                    known += 1;
                    identified += hits as f64 / drawn.len() as f64;
                }
                let drawn = subsets(&others, size.min(others.len()));
                strangers += 1;
                rejected += drawn.iter().filter(|g| g.iter().all(|&o| o > t)).count() as f64
                    / drawn.len() as f64;
            }
            let r = set.rates(GallerySize::Identities(size), t);
            assert_eq!((r.known_queries, r.stranger_queries), (known, strangers));
            assert!(
                (r.identified - identified / known as f64).abs() < 1e-12,
                "size {size}: {r:?}"
            );
            assert!(
                (r.rejected - rejected / strangers as f64).abs() < 1e-12,
                "size {size}: {r:?}"
            );
            // Not a trivial case (the whole gallery of 14 others rejects nobody at 1.3).
            assert!(r.identified > 0.0, "size {size}: {r:?}");
            assert!(r.rejected > 0.0 || size == 14, "size {size}: {r:?}");
        }
        // Galleries larger than the set's are the whole gallery.
        assert_eq!(
            set.rates(GallerySize::Identities(100), 1.3),
            OpenSetRates {
                gallery: GallerySize::Identities(100),
                ..set.rates(GallerySize::All, 1.3)
            }
        );
    }

    #[test]
    fn smaller_galleries_identify_and_reject_more_at_the_same_distance() {
        let set = RandomSet::new();
        let (small, large) = (
            set.rates(GallerySize::Identities(2), 1.4),
            set.rates(GallerySize::Identities(10), 1.4),
        );
        assert!(small.identified > large.identified, "{small:?} {large:?}");
        assert!(small.rejected > large.rejected, "{small:?} {large:?}");
    }

    #[test]
    fn calibration_is_the_best_threshold_of_a_brute_force_sweep() {
        let set = RandomSet::new();
        for size in [GallerySize::All, GallerySize::Identities(3)] {
            let c = set.calibrate(size);
            assert_eq!(c.gallery, size);
            let mut sweep: Vec<f32> = set.distmat.clone();
            sweep.extend(set.distmat.iter().map(|d| d + 5e-4));
            for t in sweep {
                let r = set.rates(size, t);
                assert!(
                    r.balanced() <= c.balanced() + 1e-12,
                    "{t}: {r:?} beats {c:?}"
                );
            }
            assert!(c.identified > 0.0 && c.rejected > 0.0, "{c:?}");
        }
        // For the whole gallery the rates follow the definition, query by query.
        let c = set.calibrate(GallerySize::All);
        let (mut known, mut identified, mut strangers, mut rejected) = (0, 0, 0, 0);
        for q in 0..RandomSet::QUERIES {
            let (own, others) = set.own_and_others(q);
            let other = others.into_iter().fold(f32::INFINITY, f32::min);
            if let Some(own) = own {
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
        let c =
            calibrate_unknown_distance(&distmat, &pids, &pids, &q_cams, &g_cams, GallerySize::All)
                .unwrap();
        // Halfway between 0.05 (below everything) and the nearest stranger distance, 0.1.
        assert!((c.max_distance - 0.075).abs() < 1e-6, "{c:?}");
        assert_eq!((c.identified, c.rejected), (0.0, 1.0));
    }

    #[test]
    fn refuses_a_set_without_hits_and_a_bad_matrix() {
        let far = [0.9f32, 0.1, 0.1, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1];
        let e =
            calibrate_unknown_distance(&far, &Q_PIDS, &G_PIDS, &Q_CAMS, &G_CAMS, GallerySize::All)
                .unwrap_err();
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
        let on = |distmat: &[f32]| {
            open_set_rates(
                distmat,
                &Q_PIDS,
                &G_PIDS,
                &Q_CAMS,
                &G_CAMS,
                GallerySize::All,
                0.5,
            )
        };
        let mut nan = DISTMAT;
        nan[4] = f32::NAN;
        assert_eq!(
            on(&nan).unwrap_err(),
            MetricsError::NanDistance {
                query: 1,
                gallery: 1
            }
        );
        assert!(matches!(
            on(&DISTMAT[..8]),
            Err(MetricsError::Length {
                what: "distance matrix",
                ..
            })
        ));
    }
}
