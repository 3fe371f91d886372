//! Optimal assignment (the Hungarian algorithm) of tracks to boxes with excluded pairs.
//!
//! [`pathfinding`]'s `kuhn_munkres` maximises a sum of integer weights and needs rows <= columns:
//! scores are scaled to integers and the matrix is transposed when it has more rows.

use pathfinding::prelude::{kuhn_munkres, Matrix};

/// Score resolution: scores are compared to 1e-6.
const SCALE: f64 = 1e6;

/// Largest score kept apart from the others (larger scores, infinity included, count as this), so
/// that weights stay far from overflow.
const MAX_SCORE: f64 = 1e6;

/// The allowed pairs of an assignment of `rows` to `columns` that maximises the total score of
/// its allowed pairs. `score(r, c)` is `None` for a pair that may not match, else its score
/// (higher is better; below 0 counts as 0).
pub(super) fn assign(
    rows: usize,
    columns: usize,
    score: impl Fn(usize, usize) -> Option<f32>,
) -> Vec<(usize, usize)> {
    if rows == 0 || columns == 0 {
        return Vec::new();
    }
    // An allowed pair weighs one unit (1e-6 of score) more than an excluded one, so an allowed
    // pair of score 0 is still preferred to leaving its row and column unmatched.
    let weight = |r: usize, c: usize| match score(r, c) {
        Some(s) => 1 + (f64::from(s).clamp(0.0, MAX_SCORE) * SCALE).round() as i64,
        None => 0,
    };
    let transpose = rows > columns;
    let weights = if transpose {
        Matrix::from_fn(columns, rows, |(c, r)| weight(r, c))
    } else {
        Matrix::from_fn(rows, columns, |(r, c)| weight(r, c))
    };
    let (_, assigned) = kuhn_munkres(&weights);
    assigned
        .into_iter()
        .enumerate()
        .map(|(i, j)| if transpose { (j, i) } else { (i, j) })
        .filter(|&(r, c)| score(r, c).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut pairs: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
        pairs.sort();
        pairs
    }

    #[test]
    fn maximises_the_total_where_greedy_would_not() {
        // Greedy takes (0, 0) = 0.9 first and leaves row 1 with nothing allowed; the optimum is
        // (0, 1) + (1, 0) = 0.8 + 0.85.
        let s = [[Some(0.9), Some(0.8)], [Some(0.85), None]];
        assert_eq!(sorted(assign(2, 2, |r, c| s[r][c])), [(0, 1), (1, 0)]);
    }

    #[test]
    fn transposes_more_rows_than_columns_and_drops_excluded_pairs() {
        // Three rows, two columns: row 1 is left out; row 2 can only take an excluded pair.
        let s = [[Some(0.5), None], [Some(0.4), Some(0.1)], [None, None]];
        assert_eq!(sorted(assign(3, 2, |r, c| s[r][c])), [(0, 0), (1, 1)]);
        let t = |r: usize, c: usize| s[c][r];
        assert_eq!(sorted(assign(2, 3, t)), [(0, 0), (1, 1)]);
        assert!(assign(0, 3, t).is_empty());
        assert!(assign(2, 0, t).is_empty());
    }

    #[test]
    fn infinite_scores_neither_overflow_nor_win_by_their_size() {
        let s = [
            [Some(f32::INFINITY), Some(2e6)],
            [Some(f32::INFINITY), None],
        ];
        assert_eq!(sorted(assign(2, 2, |r, c| s[r][c])), [(0, 1), (1, 0)]);
    }
}
