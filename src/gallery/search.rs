//! Exact top-k search of a [`Gallery`]: the closest embedding of each identity, the `K` closest
//! identities kept in a bounded list, found in two passes.
//!
//! The first pass scans the gallery's compact copy ([`super::compact`]: `i8` codes, a quarter of
//! the f32 bytes) and gives every row an interval that holds its f32 score. An identity's score
//! is at most the least upper end of its rows, so the `K`-th smallest of those bounds every
//! identity in the answer; rows whose lower end is above it cannot be in it. The second pass
//! scores the remaining rows in f32 exactly as a full scan would and keeps the same `K`: the
//! answer is the f32 answer, bit for bit, not an approximation. A batch of queries (one frame's
//! people) shares the first pass: each row's codes are read once for all of them.
//!
//! Euclidean ranking uses `|q|^2 + |g|^2 - 2 q.g` with `|g|^2` precomputed; the reported distances
//! of the matches are then recomputed as `sqrt(sum((q - g)^2))`, which the expanded form loses to
//! cancellation near zero. Cosine uses `1 - q.g / (|q| |g|)` with `1 / |g|` precomputed (norms
//! clamped to 1e-12 as in [`crate::distance::cosine_distances`]).

#[cfg(target_arch = "x86_64")]
use super::compact::idot_avx2;
use super::compact::{idot, Compact, QueryCode, BLOCK};
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

/// The ranking score of a row (lower is closer) from its dot product with the query `qg`, the
/// row's term and the query's: the squared distance for Euclidean, the distance for cosine. It
/// never increases with `qg` (every f32 operation in it is monotonic), so an interval of `qg`
/// maps to one of the score.
#[inline(always)]
fn score(metric: DistanceMetric, q_term: f32, qg: f32, term: f32) -> f32 {
    match metric {
        DistanceMetric::Euclidean => (q_term + term - 2.0 * qg).max(0.0),
        DistanceMetric::Cosine => 1.0 - qg * q_term * term,
    }
}

/// How far ahead of the first pass the codes are fetched: 4 KB for dimension 128.
const PREFETCH_ROWS: usize = 4 * BLOCK;

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

/// One query of a search, prepared.
struct Query<'q> {
    values: &'q [f32],
    /// The metric's term of the query ([`row_term`]).
    term: f32,
    /// Its codes for the first pass.
    code: QueryCode,
    /// The largest ranking score an answer may have (from `max_distance`).
    limit: f32,
    /// The largest distance an answer may have (`max_distance`, or infinity).
    max_distance: f32,
}

impl<'q> Query<'q> {
    /// Prepares `values` (a finite vector) for a search by `metric` within `max_distance`.
    fn new(
        values: &'q [f32],
        metric: DistanceMetric,
        max_distance: Option<f32>,
    ) -> Result<Self, GalleryError> {
        let term = row_term(metric, values);
        if values.iter().any(|v| !v.is_finite()) || !term.is_finite() {
            return Err(GalleryError::NonFinite { what: "query" });
        }
        let max_distance = max_distance.unwrap_or(f32::INFINITY);
        let limit = match metric {
            DistanceMetric::Euclidean if max_distance < 0.0 => -1.0,
            DistanceMetric::Euclidean => max_distance * max_distance,
            DistanceMetric::Cosine => max_distance,
        };
        Ok(Query {
            values,
            term,
            code: QueryCode::new(values),
            limit,
            max_distance,
        })
    }
}

/// The first pass's state for one query.
struct Bounds<const K: usize> {
    /// The least upper ends of the best `K` identities so far, increasing.
    upper: heapless::Vec<f32, K>,
    /// What no identity of the answer scores above: the query's limit, and the `K`-th least
    /// upper end once there are `K`.
    threshold: f32,
    /// The least upper end of the rows read of the current identity.
    least_upper: f32,
    /// Rows whose lower end was at most the threshold when they were read, with that lower end.
    rows: Vec<(usize, f32)>,
}

impl<const K: usize> Bounds<K> {
    fn new(limit: f32) -> Self {
        Bounds {
            upper: heapless::Vec::new(),
            threshold: limit,
            least_upper: f32::INFINITY,
            rows: Vec::new(),
        }
    }

    /// Ends the current identity: its least upper end joins the best `K` if it is among them.
    #[inline(always)]
    fn end_identity(&mut self, limit: f32) {
        let least = std::mem::replace(&mut self.least_upper, f32::INFINITY);
        if K == 0
            || self
                .upper
                .last()
                .is_some_and(|&kth| self.upper.is_full() && least >= kth)
        {
            return;
        }
        let at = self.upper.partition_point(|&u| u <= least);
        if self.upper.is_full() {
            self.upper.pop();
        }
        let inserted = self.upper.insert(at, least).is_ok();
        debug_assert!(inserted, "room was made above");
        if let Some(&kth) = self.upper.last().filter(|_| self.upper.is_full()) {
            self.threshold = kth.min(limit);
        }
    }
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
        if query.len() != self.space.dim() {
            return Err(GalleryError::QueryDimension {
                len: query.len(),
                dim: self.space.dim(),
            });
        }
        let mut answers = self.search_batch::<K>(query, max_distance)?;
        Ok(answers.pop().expect("one answer per query"))
    }

    /// [`Gallery::search`] for each row of the row-major `queries` (`[n, dim]`), in one pass over
    /// the gallery: one answer per query, in order.
    pub fn search_batch<const K: usize>(
        &self,
        queries: &[f32],
        max_distance: Option<f32>,
    ) -> Result<Vec<heapless::Vec<Match<'_>, K>>, GalleryError> {
        let dim = self.space.dim();
        if !queries.len().is_multiple_of(dim) {
            return Err(GalleryError::QueryDimension {
                len: queries.len(),
                dim,
            });
        }
        if max_distance.is_some_and(f32::is_nan) {
            return Err(GalleryError::NanThreshold);
        }
        let metric = self.space.metric();
        let queries = queries
            .chunks_exact(dim)
            .map(|values| Query::new(values, metric, max_distance))
            .collect::<Result<Vec<_>, _>>()?;
        if K == 0 {
            return Ok(queries.iter().map(|_| heapless::Vec::new()).collect());
        }
        let compact = match self.compact.get() {
            Some(compact) => compact,
            None => {
                let rows = self.identities.iter().map(|i| i.rows);
                let mut compact = Compact::new(&self.terms, rows, dim);
                self.for_each_run(|run| compact.code(run))?;
                self.compact.get_or_init(|| compact)
            }
        };
        let bounds = self.first_pass::<K>(compact, &queries);
        self.rows_unchanged()?;
        let answers = queries
            .iter()
            .zip(bounds)
            .map(|(query, bounds)| self.second_pass::<K>(compact, query, bounds))
            .collect();
        // After the reads: a file changed meanwhile explains a failed one.
        self.rows_unchanged()?;
        answers
    }

    /// Reads every row's codes once and, per query, bounds the answer's scores and keeps the
    /// rows that may be in it. Compiled twice: for the CPU the build targets, and with AVX2 for
    /// a CPU found to have it (the integer products then take 16 codes per instruction).
    fn first_pass<const K: usize>(
        &self,
        compact: &Compact,
        queries: &[Query<'_>],
    ) -> Vec<Bounds<K>> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, the only feature the function is compiled for.
            return unsafe { self.first_pass_avx2::<K>(compact, queries) };
        }
        self.first_pass_inline::<K>(compact, queries, idot)
    }

    /// [`Gallery::first_pass`] with AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn first_pass_avx2<const K: usize>(
        &self,
        compact: &Compact,
        queries: &[Query<'_>],
    ) -> Vec<Bounds<K>> {
        // The closure inherits the function's AVX2.
        let product = |a: &[i8], b: &[i8]| idot_avx2(a, b);
        self.first_pass_inline::<K>(compact, queries, product)
    }

    /// The body of [`Gallery::first_pass`], inlined into each version of it.
    #[inline(always)]
    fn first_pass_inline<const K: usize>(
        &self,
        compact: &Compact,
        queries: &[Query<'_>],
        product: impl Fn(&[i8], &[i8]) -> i32,
    ) -> Vec<Bounds<K>> {
        let dim = self.space.dim();
        let metric = self.space.metric();
        let mut bounds: Vec<Bounds<K>> = queries.iter().map(|q| Bounds::new(q.limit)).collect();
        let mut ends = compact.ends.iter();
        let mut end = ends.next();
        // Per query, the lower and upper ends of the current block's scores.
        let mut scores = vec![([0.0; BLOCK], [0.0; BLOCK]); queries.len()];
        for (first, block) in (0..).step_by(BLOCK).zip(compact.blocks()) {
            compact.prefetch(first + PREFETCH_ROWS);
            for (query, (lower, upper)) in queries.iter().zip(scores.iter_mut()) {
                let mut dots = [0; BLOCK];
                for (d, codes) in dots.iter_mut().zip(block.codes.chunks_exact(dim)) {
                    *d = product(query.code.codes(), codes);
                }
                let (lo, hi) = query.code.block_intervals(&block, &dots);
                for j in 0..BLOCK {
                    lower[j] = score(metric, query.term, hi[j], block.term[j]);
                    upper[j] = score(metric, query.term, lo[j], block.term[j]);
                }
            }
            for (j, row) in (first..compact.len.min(first + BLOCK)).enumerate() {
                for (b, (lower, upper)) in bounds.iter_mut().zip(&scores) {
                    if lower[j] <= b.threshold {
                        b.rows.push((row, lower[j]));
                    }
                    b.least_upper = b.least_upper.min(upper[j]);
                }
                while end == Some(&(row + 1)) {
                    for (query, b) in queries.iter().zip(bounds.iter_mut()) {
                        b.end_identity(query.limit);
                    }
                    end = ends.next();
                }
            }
        }
        bounds
    }

    /// Scores the rows the first pass kept in f32, read from the file, as a full scan would, and
    /// returns the answer.
    fn second_pass<const K: usize>(
        &self,
        compact: &Compact,
        query: &Query<'_>,
        bounds: Bounds<K>,
    ) -> Result<heapless::Vec<Match<'_>, K>, GalleryError> {
        let metric = self.space.metric();
        let threshold = bounds.threshold;
        let mut top: heapless::Vec<Candidate, K> = heapless::Vec::new();
        let (mut identity, mut end) = (0, 0);
        let mut best: Option<Candidate> = None;
        let mut g = vec![0.0; self.space.dim()];
        let read = |identity: usize, row: usize, g: &mut [f32]| {
            let first = compact.first_row_of(identity);
            self.rows
                .read(identity, row - first, g)
                .map_err(|e| self.read_error(e))
        };
        let rows = bounds.rows.iter().filter(|&&(_, lower)| lower <= threshold);
        for &(row, _) in rows {
            if row >= end {
                if let Some(b) = best.take().filter(|b| b.score <= query.limit) {
                    offer(&mut top, b);
                }
                identity = compact.identity_of(row);
                end = compact.ends[identity];
            }
            read(identity, row, &mut g)?;
            let s = score(metric, query.term, dot(query.values, &g), self.terms[row]);
            if best.is_none_or(|b| s < b.score) {
                best = Some(Candidate {
                    score: s,
                    identity,
                    row,
                });
            }
        }
        if let Some(b) = best.filter(|b| b.score <= query.limit) {
            offer(&mut top, b);
        }
        if metric == DistanceMetric::Euclidean {
            for c in top.iter_mut() {
                read(c.identity, c.row, &mut g)?;
                c.score = squared_l2(query.values, &g).sqrt();
            }
            top.retain(|c| c.score <= query.max_distance);
        }
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

    /// The full f32 scan: every row scored, as the second pass scores what the first keeps.
    fn full_scan<const K: usize>(
        g: &Gallery,
        values: &[f32],
        max: Option<f32>,
    ) -> Vec<(String, u32)> {
        let query = Query::new(values, g.space.metric(), max).unwrap();
        let rows = (0..g.len()).map(|r| (r, f32::NEG_INFINITY)).collect();
        let bounds = Bounds::<K> {
            rows,
            ..Bounds::new(query.limit)
        };
        let rows = g.identities.iter().map(|i| i.rows);
        let mut compact = Compact::new(&g.terms, rows, g.space.dim());
        compact.code(&g.embeddings().unwrap());
        let answer = g.second_pass::<K>(&compact, &query, bounds).unwrap();
        answer
            .iter()
            .map(|m| (m.name.to_string(), m.distance.to_bits()))
            .collect()
    }

    fn answer(matches: &[Match<'_>]) -> Vec<(String, u32)> {
        matches
            .iter()
            .map(|m| (m.name.to_string(), m.distance.to_bits()))
            .collect()
    }

    /// Galleries made to be hard for the first pass: identities that are small perturbations of
    /// one vector (scores closer together than its intervals are wide), exact duplicates across
    /// identities (ties, which keep enrollment order), zero rows, large and tiny norms. The
    /// answer is the full f32 scan's, bit for bit, alone and in batches, for both metrics, with
    /// and without a threshold.
    #[test]
    fn the_two_passes_give_the_full_scans_answer_bit_for_bit() {
        const DIM: usize = 24;
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        for (case, metric) in [DistanceMetric::Euclidean, DistanceMetric::Cosine]
            .into_iter()
            .cycle()
            .take(8)
            .enumerate()
        {
            let space = EmbeddingSpace::new(DIM, metric, ModelFingerprint([2; 32])).unwrap();
            let path = dir.path().join(format!("{case}.bin"));
            let mut g = Gallery::create(&path, space).unwrap();
            let norm = [1.0, 1e-6, 300.0, 1.0][case / 2];
            let centre: Vec<f32> = (0..DIM)
                .map(|_| rng.random_range(-1.0..1.0) * norm)
                .collect();
            let mut batch: Vec<(String, Vec<f32>)> = Vec::new();
            for i in 0..120 {
                let rows = rng.random_range(1..=3);
                let spread = [1e-4, 1e-2, 1.0][i % 3] * norm;
                let values: Vec<f32> = match i % 10 {
                    // A duplicate of an earlier identity's rows.
                    7 => batch[i - 5].1.clone(),
                    8 => vec![0.0; DIM],
                    _ => (0..rows * DIM)
                        .map(|k| centre[k % DIM] + rng.random_range(-1.0..1.0) * spread)
                        .collect(),
                };
                batch.push((format!("p{i}"), values));
            }
            g.enroll_batch(batch.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
                .unwrap();
            let mut queries = Vec::new();
            for (q, (_, enrolled)) in batch.iter().enumerate().take(12) {
                let query: Vec<f32> = match q % 4 {
                    0 => enrolled[..DIM].to_vec(),
                    1 => centre.clone(),
                    2 => vec![0.0; DIM],
                    _ => centre
                        .iter()
                        .map(|c| c + rng.random_range(-1e-3..1e-3) * norm)
                        .collect(),
                };
                queries.extend_from_slice(&query);
            }
            let closest = full_scan::<3>(&g, &queries[..DIM], None);
            let threshold = f32::from_bits(closest[1].1);
            for max in [None, Some(threshold), Some(threshold * 1.5), Some(0.0)] {
                let batched = g.search_batch::<3>(&queries, max).unwrap();
                for (values, got) in queries.chunks_exact(DIM).zip(&batched) {
                    let want = full_scan::<3>(&g, values, max);
                    assert_eq!(answer(got), want, "case {case} {metric:?} {max:?}");
                    assert_eq!(answer(&g.search::<3>(values, max).unwrap()), want);
                }
                let many = g.search_batch::<40>(&queries, max).unwrap();
                for (values, got) in queries.chunks_exact(DIM).zip(&many) {
                    assert_eq!(answer(got), full_scan::<40>(&g, values, max));
                }
            }
        }
    }

    /// The first pass keeps few rows: for random vectors, a small part of the gallery is scored
    /// in f32.
    #[test]
    fn the_first_pass_leaves_few_rows_to_score() {
        const DIM: usize = 128;
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(8);
        let space = EmbeddingSpace::new(DIM, DistanceMetric::Euclidean, ModelFingerprint([3; 32]));
        let mut g = Gallery::create(&dir.path().join("g.bin"), space.unwrap()).unwrap();
        let values: Vec<f32> = (0..4000 * DIM)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let names: Vec<String> = (0..400).map(|i| format!("p{i}")).collect();
        let pairs = names
            .iter()
            .map(String::as_str)
            .zip(values.chunks(10 * DIM));
        g.enroll_batch(pairs).unwrap();
        let rows = g.identities.iter().map(|i| i.rows);
        let mut compact = Compact::new(&g.terms, rows, DIM);
        compact.code(&g.embeddings().unwrap());
        let values: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
        let query = Query::new(&values, DistanceMetric::Euclidean, None).unwrap();
        let bounds = g.first_pass::<5>(&compact, std::slice::from_ref(&query));
        let threshold = bounds[0].threshold;
        let kept = bounds[0].rows.iter().filter(|r| r.1 <= threshold).count();
        // The first five identities are all kept while there is no bound yet (50 rows).
        assert!(kept < 120, "{kept} of 4000 rows scored in f32");
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
