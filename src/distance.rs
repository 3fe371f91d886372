//! Embedding distances, one definition for every place that compares embeddings: the tracker's
//! appearance cost, the gallery search, the runtime's identification and the evaluation.
//!
//! The model card names the metric ([`DistanceMetric`]); everything that compares embeddings of one
//! model takes it from there, so the unknown distance calibrated at export means the same thing in
//! the tracker's gate, the gallery and `eval`.

use serde::{Deserialize, Serialize};

/// How embeddings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistanceMetric {
    /// Euclidean (L2) distance between raw embeddings, as the triplet loss was trained with.
    Euclidean,
    /// `1 - cos(a, b)`.
    Cosine,
}

/// A distance threshold that is not a positive number (or `inf`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a positive distance (or inf)")]
pub struct ParseDistanceError {
    /// The text given.
    pub text: String,
}

/// Parses a distance threshold (`--max-distance`): positive, or `inf` for no limit.
pub fn parse_threshold(text: &str) -> Result<f32, ParseDistanceError> {
    match text.trim().parse::<f32>() {
        Ok(d) if d > 0.0 => Ok(d),
        _ => Err(ParseDistanceError {
            text: text.to_string(),
        }),
    }
}

impl DistanceMetric {
    /// The distance between two equally long embeddings (cosine: norms clamped as in
    /// [`cosine_distances`]).
    pub fn between(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            DistanceMetric::Euclidean => squared_l2(a, b).sqrt(),
            DistanceMetric::Cosine => {
                let norms = (dot(a, a).sqrt().max(1e-12)) * (dot(b, b).sqrt().max(1e-12));
                1.0 - dot(a, b) / norms
            }
        }
    }
}

/// Embeddings that are not a `[rows, dim]` matrix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DistanceError {
    /// Embedding dimension 0.
    #[error("embedding dimension must be at least 1")]
    ZeroDim,
    /// An embedding matrix whose length is not a whole number of rows.
    #[error("{what} have {len} values, not a multiple of the dimension {dim}")]
    PartialRow {
        /// Which embeddings.
        what: &'static str,
        /// Their length.
        len: usize,
        /// The embedding dimension.
        dim: usize,
    },
}

/// Number of rows of a row-major `[rows, dim]` embedding matrix.
fn rows(what: &'static str, data: &[f32], dim: usize) -> Result<usize, DistanceError> {
    if dim == 0 {
        return Err(DistanceError::ZeroDim);
    }
    if !data.len().is_multiple_of(dim) {
        return Err(DistanceError::PartialRow {
            what,
            len: data.len(),
            dim,
        });
    }
    Ok(data.len() / dim)
}

/// Lanes of independent accumulators: lets the compiler vectorise the inner loops.
const LANES: usize = 8;

/// `sum((a - b)^2)` of two equally long vectors.
pub fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `sum(a * b)` of two equally long vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Applies `f` to every (query row, gallery row) pair, row-major `[num_query, num_gallery]`.
fn pairwise(
    query: &[f32],
    gallery: &[f32],
    dim: usize,
    f: impl Fn(&[f32], &[f32]) -> f32,
) -> Result<Vec<f32>, DistanceError> {
    let nq = rows("query embeddings", query, dim)?;
    let ng = rows("gallery embeddings", gallery, dim)?;
    let mut out = Vec::with_capacity(nq * ng);
    for q in query.chunks_exact(dim) {
        out.extend(gallery.chunks_exact(dim).map(|g| f(q, g)));
    }
    Ok(out)
}

/// Euclidean distances between row-major `[nq, dim]` queries and `[ng, dim]` gallery
/// embeddings, as a row-major `[nq, ng]` matrix.
pub fn euclidean_distances(
    query: &[f32],
    gallery: &[f32],
    dim: usize,
) -> Result<Vec<f32>, DistanceError> {
    pairwise(query, gallery, dim, |a, b| squared_l2(a, b).sqrt())
}

/// Cosine distances `1 - cos(q, g)`, laid out as [`euclidean_distances`]. Norms are
/// clamped to at least 1e-12 as `torch.nn.functional.normalize` does, so a zero vector is at
/// distance 1 from everything.
pub fn cosine_distances(
    query: &[f32],
    gallery: &[f32],
    dim: usize,
) -> Result<Vec<f32>, DistanceError> {
    let nq = rows("query embeddings", query, dim)?;
    rows("gallery embeddings", gallery, dim)?;
    let inv_norm = |v: &[f32]| 1.0 / dot(v, v).sqrt().max(1e-12);
    let g_inv: Vec<f32> = gallery.chunks_exact(dim).map(inv_norm).collect();
    let mut out = Vec::with_capacity(nq * g_inv.len());
    for q in query.chunks_exact(dim) {
        let q_inv = inv_norm(q);
        out.extend(
            gallery
                .chunks_exact(dim)
                .zip(&g_inv)
                .map(|(g, gi)| 1.0 - dot(q, g) * q_inv * gi),
        );
    }
    Ok(out)
}

/// The distance matrix a model card's metric asks for: Euclidean or cosine.
pub fn distance_matrix(
    query: &[f32],
    gallery: &[f32],
    dim: usize,
    metric: DistanceMetric,
) -> Result<Vec<f32>, DistanceError> {
    match metric {
        DistanceMetric::Euclidean => euclidean_distances(query, gallery, dim),
        DistanceMetric::Cosine => cosine_distances(query, gallery, dim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_by_hand() {
        let q = [3.0, 4.0];
        let g = [0.0, 0.0, 3.0, 4.0, -3.0, -4.0];
        assert_eq!(
            euclidean_distances(&q, &g, 2).unwrap(),
            vec![5.0, 0.0, 10.0]
        );
        // A zero vector is at cosine distance 1, as with torch's normalize.
        assert_eq!(cosine_distances(&q, &g, 2).unwrap(), vec![1.0, 0.0, 2.0]);
        assert_eq!(
            distance_matrix(&q, &g, 2, DistanceMetric::Cosine).unwrap(),
            cosine_distances(&q, &g, 2).unwrap()
        );
        // 2 queries x 0 gallery: an empty matrix.
        assert!(euclidean_distances(&[1.0; 4], &[], 2).unwrap().is_empty());
        assert_eq!(
            cosine_distances(&q, &g[..5], 2).unwrap_err(),
            DistanceError::PartialRow {
                what: "gallery embeddings",
                len: 5,
                dim: 2
            }
        );
        assert_eq!(
            euclidean_distances(&q, &g, 0).unwrap_err(),
            DistanceError::ZeroDim
        );
    }

    #[test]
    fn between_is_the_matrix_entry() {
        let (a, b) = ([3.0, 4.0, 0.0], [0.0, 1.0, -2.0]);
        for metric in [DistanceMetric::Euclidean, DistanceMetric::Cosine] {
            let want = distance_matrix(&a, &b, 3, metric).unwrap()[0];
            assert!((metric.between(&a, &b) - want).abs() < 1e-6, "{metric:?}");
        }
        assert_eq!(DistanceMetric::Cosine.between(&[0.0; 2], &[1.0, 0.0]), 1.0);
    }
}
