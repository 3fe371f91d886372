//! Exact top-k search of a [`Gallery`]: one pass over the embedding slab, one dot product per
//! row against precomputed per-row terms, the closest embedding of each identity, the `K` closest
//! identities kept in a bounded list.
//!
//! Euclidean ranking uses `|q|^2 + |g|^2 - 2 q.g` with `|g|^2` precomputed; the reported distances
//! of the matches are then recomputed as `sqrt(sum((q - g)^2))`, which the expanded form loses to
//! cancellation near zero. Cosine uses `1 - q.g / (|q| |g|)` with `1 / |g|` precomputed (norms
//! clamped to 1e-12 as in [`crate::distance::cosine_distances`]).

use super::{Gallery, GalleryError};
use crate::distance::DistanceMetric;
use crate::distance::{dot, squared_l2};

/// One search result: an identity and the distance of its closest embedding to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match<'a> {
    /// The identity's name.
    pub name: &'a str,
    /// Distance (by the gallery's metric) from the query to the identity's closest embedding.
    pub distance: f32,
}

/// The precomputed term of one row: `|g|^2` for Euclidean, `1 / max(|g|, 1e-12)` for cosine.
pub(super) fn row_term(metric: DistanceMetric, row: &[f32]) -> f32 {
    let squared_norm = dot(row, row);
    match metric {
        DistanceMetric::Euclidean => squared_norm,
        DistanceMetric::Cosine => 1.0 / squared_norm.sqrt().max(1e-12),
    }
}

/// The closest row of one identity, scored by the metric's ranking score.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    identity: usize,
    row: usize,
}

/// Adds an identity's candidate to `top` (sorted by increasing score; on a tie the identity
/// offered first stays first) if it is among the `K` best so far.
fn offer<const K: usize>(top: &mut heapless::Vec<Candidate, K>, candidate: Candidate) {
    let at = top.partition_point(|t| t.score <= candidate.score);
    if at == K {
        return;
    }
    if top.is_full() {
        top.pop();
    }
    let inserted = top.insert(at, candidate).is_ok();
    debug_assert!(inserted, "room was made above");
}

impl Gallery {
    /// The (at most) `K` identities closest to `query`, closest first, each once with the
    /// distance of its closest embedding. With `max_distance`, identities farther than it are left
    /// out: an empty result means the query is unknown. Ties keep enrollment order.
    pub fn search<const K: usize>(
        &self,
        query: &[f32],
        max_distance: Option<f32>,
    ) -> Result<heapless::Vec<Match<'_>, K>, GalleryError> {
        let dim = self.space.dim();
        if query.len() != dim {
            return Err(GalleryError::QueryDimension {
                len: query.len(),
                dim,
            });
        }
        let metric = self.space.metric();
        let q_term = row_term(metric, query);
        if query.iter().any(|v| !v.is_finite()) || !q_term.is_finite() {
            return Err(GalleryError::NonFinite { what: "query" });
        }
        if max_distance.is_some_and(f32::is_nan) {
            return Err(GalleryError::NanThreshold);
        }
        let limit = max_distance.unwrap_or(f32::INFINITY);
        let mut top: heapless::Vec<Candidate, K> = match metric {
            DistanceMetric::Euclidean => {
                let squared_limit = if limit < 0.0 { -1.0 } else { limit * limit };
                let mut top = self.scan(query, squared_limit, |qg, g2| {
                    (q_term + g2 - 2.0 * qg).max(0.0)
                });
                for c in top.iter_mut() {
                    let row = &self.embeddings[c.row * dim..(c.row + 1) * dim];
                    c.score = squared_l2(query, row).sqrt();
                }
                top.retain(|c| c.score <= limit);
                top
            }
            DistanceMetric::Cosine => {
                self.scan(query, limit, |qg, g_inv| 1.0 - qg * q_term * g_inv)
            }
        };
        top.sort_unstable_by(|a, b| {
            a.score
                .total_cmp(&b.score)
                .then(a.identity.cmp(&b.identity))
        });
        Ok(top
            .iter()
            .map(|c| Match {
                name: &self.identities[c.identity].name,
                distance: c.score,
            })
            .collect())
    }

    /// The `K` best identities by `score(q.g, term)` (lower is better) that score at most
    /// `limit`.
    fn scan<const K: usize>(
        &self,
        query: &[f32],
        limit: f32,
        score: impl Fn(f32, f32) -> f32,
    ) -> heapless::Vec<Candidate, K> {
        let dim = self.space.dim();
        let mut top = heapless::Vec::new();
        if K == 0 {
            return top;
        }
        let mut start = 0;
        for (identity, ident) in self.identities.iter().enumerate() {
            let end = start + ident.rows;
            let rows = self.embeddings[start * dim..end * dim].chunks_exact(dim);
            let mut best = Candidate {
                score: f32::INFINITY,
                identity,
                row: start,
            };
            for (row, (g, &term)) in (start..).zip(rows.zip(&self.terms[start..end])) {
                let s = score(dot(query, g), term);
                if s < best.score {
                    best.score = s;
                    best.row = row;
                }
            }
            start = end;
            if best.score <= limit {
                offer(&mut top, best);
            }
        }
        top
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::distance::distance_matrix;
    use crate::gallery::{EmbeddingSpace, ModelFingerprint};

    /// Dimension 13: not a multiple of the dot product's 8 lanes, so the tail is exercised.
    const DIM: usize = 13;
    const K: usize = 4;

    /// A gallery of 30 identities with 1 to 4 random embeddings each; returns it with the names
    /// and embeddings per identity.
    fn random_gallery(
        dir: &std::path::Path,
        metric: DistanceMetric,
        rng: &mut impl Rng,
    ) -> (Gallery, Vec<(String, Vec<f32>)>) {
        let space = EmbeddingSpace::new(DIM, metric, ModelFingerprint([9; 32])).unwrap();
        let mut g = Gallery::create(&dir.join(format!("{metric:?}.bin")), space).unwrap();
        let mut enrolled: Vec<(String, Vec<f32>)> = Vec::new();
        for i in 0..30 {
            let n = rng.random_range(1..=4);
            let values: Vec<f32> = (0..n * DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
            // Some identities are enrolled in two calls.
            let name = format!("id{}", i % 25);
            g.enroll(&name, &values).unwrap();
            match enrolled.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.extend(values),
                None => enrolled.push((name, values)),
            }
        }
        (g, enrolled)
    }

    /// Brute force: every distance from `distance::distance_matrix`, the minimum per identity,
    /// sorted, the first `K` within `max_distance`.
    fn reference(
        enrolled: &[(String, Vec<f32>)],
        query: &[f32],
        metric: DistanceMetric,
        max_distance: f32,
    ) -> Vec<(String, f32)> {
        let mut best: Vec<(String, f32)> = enrolled
            .iter()
            .map(|(name, values)| {
                let d = distance_matrix(query, values, DIM, metric).unwrap();
                (name.clone(), d.into_iter().fold(f32::INFINITY, f32::min))
            })
            .collect();
        best.sort_by(|a, b| a.1.total_cmp(&b.1));
        best.retain(|(_, d)| *d <= max_distance);
        best.truncate(K);
        best
    }

    #[test]
    fn matches_brute_force_for_both_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        for metric in [DistanceMetric::Euclidean, DistanceMetric::Cosine] {
            let (g, enrolled) = random_gallery(dir.path(), metric, &mut rng);
            assert_eq!(g.identities(), 25);
            let mut unknown = 0;
            for q in 0..20 {
                let query: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
                // No threshold, one that keeps the closest three, one that keeps none.
                let all = reference(&enrolled, &query, metric, f32::INFINITY);
                let thresholds = [None, Some(all[2].1 + 1e-4), Some(all[0].1 - 1e-4)];
                for max_distance in thresholds {
                    let want = reference(
                        &enrolled,
                        &query,
                        metric,
                        max_distance.unwrap_or(f32::INFINITY),
                    );
                    let got = g.search::<K>(&query, max_distance).unwrap();
                    unknown += usize::from(got.is_empty());
                    assert_eq!(
                        got.len(),
                        want.len(),
                        "{metric:?} query {q} {max_distance:?}"
                    );
                    for (m, (name, d)) in got.iter().zip(&want) {
                        assert_eq!(m.name, name, "{metric:?} query {q}");
                        assert!(
                            (m.distance - d).abs() <= 1e-6,
                            "{metric:?} query {q}: {} vs {d}",
                            m.distance
                        );
                    }
                }
            }
            assert!(
                unknown >= 5,
                "{metric:?}: the threshold never made a query unknown"
            );
        }
    }

    #[test]
    fn reports_exact_euclidean_distances_near_zero() {
        let dir = tempfile::tempdir().unwrap();
        let space = EmbeddingSpace::new(DIM, DistanceMetric::Euclidean, ModelFingerprint([1; 32]));
        let mut g = Gallery::create(&dir.path().join("g.bin"), space.unwrap()).unwrap();
        // Large norms: |q|^2 + |g|^2 - 2 q.g cancels to noise of about 1e-2 here.
        let enrolled: Vec<f32> = (0..DIM).map(|i| 100.0 + i as f32).collect();
        g.enroll("near", &enrolled).unwrap();
        let mut query = enrolled.clone();
        query[3] += 1e-3;
        let want = ((query[3] as f64) - (enrolled[3] as f64)).abs() as f32;
        let got = g.search::<1>(&query, Some(2e-3)).unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            (got[0].distance - want).abs() < 1e-6,
            "{} vs {want}",
            got[0].distance
        );
        assert!(g.search::<1>(&query, Some(5e-4)).unwrap().is_empty());
        assert_eq!(g.search::<1>(&enrolled, None).unwrap()[0].distance, 0.0);
    }

    #[test]
    fn refuses_bad_queries_and_handles_edges() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let (g, _) = random_gallery(dir.path(), DistanceMetric::Cosine, &mut rng);
        let query = vec![0.5; DIM];
        assert!(matches!(
            g.search::<K>(&query[1..], None),
            Err(GalleryError::QueryDimension { len: 12, dim: DIM })
        ));
        let mut nan = query.clone();
        nan[0] = f32::NAN;
        assert!(matches!(
            g.search::<K>(&nan, None),
            Err(GalleryError::NonFinite { .. })
        ));
        assert!(matches!(
            g.search::<K>(&query, Some(f32::NAN)),
            Err(GalleryError::NanThreshold)
        ));
        assert!(g.search::<0>(&query, None).unwrap().is_empty());
        assert!(g.search::<K>(&query, Some(-1.0)).unwrap().is_empty());
        // More room than identities: every identity once.
        let all = g.search::<64>(&query, None).unwrap();
        assert_eq!(all.len(), 25);
        assert!(all.windows(2).all(|w| w[0].distance <= w[1].distance));
        // A zero query is at cosine distance 1 from everything.
        let zero = g.search::<K>(&[0.0; DIM], None).unwrap();
        assert!(zero.iter().all(|m| m.distance == 1.0));
    }
}
