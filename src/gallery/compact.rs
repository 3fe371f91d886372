//! The gallery's compact copy for search: every row as `i8` codes with a scale of its own, and
//! what bounds the rounding, so that one pass over a quarter of the bytes decides which rows can
//! be among the closest and only those are scored in f32 ([`super::search`]).
//!
//! A vector `v` is stored as codes `c = round(v / s)` with `s = max|v_i| / 127`, so `v ≈ s c`;
//! with it the norms `|v - s c|` (the rounding) and `|s c|`, both rounded up. For a query `q` and
//! a row `g` coded the same way, `q.g = s_q s_g (c_q.c_g) + q.(g - s_g c_g) + (q - s_q c_q).(s_g
//! c_g)`, so by Cauchy-Schwarz `q.g` lies within `|q| |g - ĝ| + |q - q̂| |ĝ|` of the integer
//! product's value. [`Code::dot_interval`] widens that by what f32 arithmetic can add (the
//! integer product's conversion and scaling, and the summation error of
//! [`crate::distance::dot`], at most `dim * 2^-24 * |q| |g|` whatever its order), so the f32 dot
//! product that the exact search computes lies inside the interval it returns.

/// A row's codes' scale and error terms (the codes are stored apart).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Code {
    /// `s`: the vector is about `s * codes`.
    scale: f32,
    /// `|v - s c|`, rounded up.
    error: f32,
    /// `|s c|`, rounded up.
    norm: f32,
}

/// The `f64` `x` as the smallest f32 at or above it.
fn up(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) < x {
        y.next_up()
    } else {
        y
    }
}

/// The square root of a sum of squares summed in f64, rounded up to f32 (the root in f64 is
/// within 2^-52 relative: a margin of 2^-40 covers it).
fn root_up(sum: f64) -> f32 {
    up(sum.sqrt() * (1.0 + 2f64.powi(-40)))
}

impl Code {
    /// Codes `v` into `codes` (as long as `v`) and returns its terms, with `|v|` rounded up. `v`
    /// must be finite.
    pub(super) fn quantize(v: &[f32], codes: &mut [i8]) -> (Code, f32) {
        debug_assert_eq!(v.len(), codes.len());
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = max / 127.0;
        let (mut error, mut norm, mut exact_norm) = (0.0f64, 0.0f64, 0.0f64);
        for (&x, c) in v.iter().zip(codes.iter_mut()) {
            *c = if scale > 0.0 {
                // In f64: `x / scale` cannot overflow; the clamp only catches the rounding of `scale`.
                (f64::from(x) / f64::from(scale))
                    .round()
                    .clamp(-127.0, 127.0) as i8
            } else {
                0
            };
            let stored = f64::from(scale) * f64::from(*c);
            error += (f64::from(x) - stored).powi(2);
            norm += stored * stored;
            exact_norm += f64::from(x).powi(2);
        }
        let code = Code {
            scale,
            error: root_up(error),
            norm: root_up(norm),
        };
        (code, root_up(exact_norm))
    }
}

/// A query coded for the first pass, with the terms of its intervals that do not depend on the
/// row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct QueryCode {
    codes: Vec<i8>,
    code: Code,
    /// `|q|`, rounded up.
    exact_norm: f32,
    /// `γ_dim |q|`: the f32 dot product's rounding is at most this times `|g|`.
    rounding: f32,
    /// What underflow can lose, as a normal number (operations on subnormal numbers are slow).
    floor: f32,
}

impl QueryCode {
    /// Codes the finite query `q`.
    pub(super) fn new(q: &[f32]) -> QueryCode {
        let mut codes = vec![0; q.len()];
        let (code, exact_norm) = Code::quantize(q, &mut codes);
        let n = q.len() as f32;
        // γ_n = n u / (1 - n u) <= n u (1 + 2 n u), u = 2^-24 = f32::EPSILON / 2.
        let gamma = n * (1.0 + n * f32::EPSILON) * (f32::EPSILON / 2.0);
        QueryCode {
            codes,
            code,
            exact_norm,
            rounding: gamma * exact_norm,
            floor: (n + 16.0) * f32::MIN_POSITIVE,
        }
    }

    /// The codes.
    pub(super) fn codes(&self) -> &[i8] {
        &self.codes
    }

    /// An interval `[lo, hi]` that holds the f32 dot product ([`crate::distance::dot`]) of the
    /// query and a row, given the row's terms and the product of their codes ([`idot`]).
    ///
    /// Its half width: the two coding terms; the f32 dot product's own rounding, `γ_dim |q| |g|`
    /// with `|g| <= |ĝ| + |g - ĝ|`; 2^-21 of `|product|` for the conversion and two
    /// multiplications that made it (3 units of 2^-24 at most); [`QueryCode::floor`] for what
    /// underflow loses in both (at most `dim + 4` halves of the smallest subnormal); and 2^-16 of
    /// the whole for this computation's own roundings and those of `product -/+ width`.
    #[cfg(test)]
    fn dot_interval(&self, row: &Code, codes_dot: i32) -> (f32, f32) {
        self.interval(row.scale, row.error, row.norm, codes_dot)
    }

    /// [`QueryCode::dot_interval`] for each row of a block of [`BLOCK`] rows, from their products.
    #[inline(always)]
    pub(super) fn block_intervals(
        &self,
        rows: &Block<'_>,
        codes_dot: &[i32; BLOCK],
    ) -> ([f32; BLOCK], [f32; BLOCK]) {
        let (mut lo, mut hi) = ([0.0; BLOCK], [0.0; BLOCK]);
        for j in 0..BLOCK {
            (lo[j], hi[j]) =
                self.interval(rows.scale[j], rows.error[j], rows.norm[j], codes_dot[j]);
        }
        (lo, hi)
    }

    #[inline(always)]
    fn interval(&self, scale: f32, error: f32, norm: f32, codes_dot: i32) -> (f32, f32) {
        let product = self.code.scale * scale * codes_dot as f32;
        let coding = self.exact_norm * error + self.code.error * norm;
        let summation = self.rounding * (norm + error);
        let width = (coding + summation + product.abs() * (1.0 / (1 << 21) as f32) + self.floor)
            * (1.0 + 1.0 / (1 << 16) as f32);
        (product - width, product + width)
    }
}

/// `sum(a * b)` of two equally long code vectors, exact: `|a_i b_i| <= 127^2`, and the
/// gallery's dimensions ([`super::MAX_DIM`]) keep the sum within `i32`.
#[inline(always)]
pub(super) fn idot(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(i16::from(x) * i16::from(y)))
        .sum()
}

/// [`idot`] with AVX2, 32 codes per step: `|a|` (unsigned) times `b` with `a`'s sign, summed in
/// pairs to i16 (at most `2 * 127^2 < 2^15`: codes are never -128), then to i32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn idot_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    assert_eq!(a.len(), b.len());
    let steps = a.len() / 32;
    let ones = _mm256_set1_epi16(1);
    let mut sum = _mm256_setzero_si256();
    for step in 0..steps {
        // SAFETY: bytes `32 * step .. 32 * (step + 1)` lie in both slices.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().add(32 * step).cast()),
                _mm256_loadu_si256(b.as_ptr().add(32 * step).cast()),
            )
        };
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, ones));
    }
    let half = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let quarter = _mm_add_epi32(half, _mm_unpackhi_epi64(half, half));
    let total = _mm_add_epi32(quarter, _mm_shuffle_epi32::<1>(quarter));
    _mm_cvtsi128_si32(total) + idot(&a[32 * steps..], &b[32 * steps..])
}

/// Rows per step of the first pass: their bounds are computed side by side.
pub(super) const BLOCK: usize = 8;

/// A gallery coded for the first pass, in slab order, in arrays read front to back. The arrays
/// are padded with zero rows to a whole number of [`BLOCK`]s.
#[derive(Debug, Default)]
pub(super) struct Compact {
    /// Row-major `[rows, dim]` codes.
    codes: Vec<i8>,
    /// Per row, its [`Code`]'s terms and its metric term (the gallery's, copied here).
    scale: Vec<f32>,
    error: Vec<f32>,
    norm: Vec<f32>,
    term: Vec<f32>,
    /// Where each identity's rows end (the row after its last), in order.
    pub ends: Vec<usize>,
    /// Rows, without the padding.
    pub len: usize,
    /// Rows coded so far.
    coded: usize,
    dim: usize,
}

/// A chunk of exactly [`BLOCK`] values as an array.
fn whole(chunk: &[f32]) -> &[f32; BLOCK] {
    chunk.try_into().expect("chunks of BLOCK values")
}

/// [`BLOCK`] rows of a [`Compact`].
pub(super) struct Block<'a> {
    /// Row-major `[BLOCK, dim]` codes.
    pub codes: &'a [i8],
    scale: &'a [f32; BLOCK],
    error: &'a [f32; BLOCK],
    norm: &'a [f32; BLOCK],
    /// The rows' metric terms.
    pub term: &'a [f32; BLOCK],
}

impl Compact {
    /// A compact copy of rows whose metric terms are `terms`, of identities with
    /// `rows_per_identity` rows each, in slab order, before any row is coded ([`Compact::code`]).
    pub fn new(
        terms: &[f32],
        rows_per_identity: impl Iterator<Item = usize>,
        dim: usize,
    ) -> Compact {
        let len = terms.len();
        let padded = len.next_multiple_of(BLOCK);
        let mut term = vec![0.0; padded];
        term[..len].copy_from_slice(terms);
        let ends = rows_per_identity
            .scan(0, |end, rows| {
                *end += rows;
                Some(*end)
            })
            .collect();
        Compact {
            codes: vec![0; padded * dim],
            scale: vec![0.0; padded],
            error: vec![0.0; padded],
            norm: vec![0.0; padded],
            term,
            ends,
            len,
            coded: 0,
            dim,
        }
    }

    /// Codes the next rows (row-major `[n, dim]`), after those coded before.
    pub fn code(&mut self, rows: &[f32]) {
        let first = self.coded;
        let codes = self.codes[first * self.dim..].chunks_exact_mut(self.dim);
        for (i, (row, codes)) in rows.chunks_exact(self.dim).zip(codes).enumerate() {
            let (code, _) = Code::quantize(row, codes);
            self.scale[first + i] = code.scale;
            self.error[first + i] = code.error;
            self.norm[first + i] = code.norm;
        }
        self.coded += rows.len() / self.dim;
        debug_assert!(
            self.coded <= self.len,
            "more rows coded than the gallery has"
        );
    }

    /// Asks the CPU to bring the codes of the block that starts at row `first` into its caches,
    /// if there is such a block (a hint: the first pass computes while they arrive, and reaches
    /// them about twice as fast at a million rows).
    #[inline(always)]
    pub fn prefetch(&self, first: usize) {
        let start = first * self.dim;
        let Some(codes) = self.codes.get(start..start + BLOCK * self.dim) else {
            return;
        };
        #[cfg(target_arch = "x86_64")]
        for line in codes.chunks(64) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch loads nothing into the program and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = codes;
    }

    /// The first row of `identity`.
    pub fn first_row_of(&self, identity: usize) -> usize {
        identity.checked_sub(1).map_or(0, |i| self.ends[i])
    }

    /// The identity that holds `row`.
    pub fn identity_of(&self, row: usize) -> usize {
        self.ends.partition_point(|&end| end <= row)
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> impl Iterator<Item = Block<'_>> {
        self.codes
            .chunks_exact(BLOCK * self.dim)
            .zip(self.scale.chunks_exact(BLOCK))
            .zip(self.error.chunks_exact(BLOCK))
            .zip(self.norm.chunks_exact(BLOCK))
            .zip(self.term.chunks_exact(BLOCK))
            .map(move |((((codes, scale), error), norm), term)| Block {
                codes,
                scale: whole(scale),
                error: whole(error),
                norm: whole(norm),
                term: whole(term),
            })
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::distance::dot;

    /// The f32 dot product lies in the interval, for vectors of every kind: random, of large and
    /// tiny norm, nearly parallel, with one dominant dimension, zero.
    #[test]
    fn the_interval_holds_the_f32_dot_product() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(11);
        let mut widest = 0.0f32;
        for dim in [1, 7, 128, 2048] {
            for case in 0..400 {
                let scale = [1.0, 1e-30, 1e17, 3.7][case % 4];
                let v = |rng: &mut rand_pcg::Pcg64Mcg| -> Vec<f32> {
                    (0..dim)
                        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
                        .collect()
                };
                let q = v(&mut rng);
                let mut g = match case % 5 {
                    0 => q.iter().map(|x| x * 0.999).collect(),
                    1 => vec![0.0; dim],
                    _ => v(&mut rng),
                };
                if case % 7 == 0 {
                    g[0] = 1e4 * scale;
                }
                let mut gc = vec![0; dim];
                let (gk, _) = Code::quantize(&g, &mut gc);
                let query = QueryCode::new(&q);
                let (lo, hi) = query.dot_interval(&gk, idot(query.codes(), &gc));
                let exact = dot(&q, &g);
                assert!(
                    lo <= exact && exact <= hi,
                    "dim {dim} case {case}: {exact} outside [{lo}, {hi}]"
                );
                if scale == 1.0 && dim == 128 && case % 5 > 1 && case % 7 != 0 {
                    widest = widest.max(hi - lo);
                }
            }
        }
        // Useful as well as sound: for random vectors uniform in [-1, 1]^128 (|q|, |g| about 6.5,
        // their dot products with a standard deviation of 3.8) the interval is a fifth of that.
        assert!(widest < 0.8, "{widest}");
    }

    #[test]
    fn codes_round_to_the_nearest_step() {
        let v = [0.5, -1.27, 0.0, 0.004];
        let mut c = [0; 4];
        let (k, norm) = Code::quantize(&v, &mut c);
        assert!((1.3648868..1.364887).contains(&norm), "{norm}");
        assert_eq!(c, [50, -127, 0, 0]);
        assert_eq!(k.scale, 1.27 / 127.0);
        assert!(k.error > 0.004 && k.error < 0.0045, "{}", k.error);
        assert_eq!(idot(&c, &c), 50 * 50 + 127 * 127);
    }

    /// The AVX2 product is the plain one, at the extremes and over lengths with and without a
    /// tail.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_product_is_the_plain_one() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(4);
        for len in [0, 1, 31, 32, 33, 128, 200, 4096] {
            let random = |rng: &mut rand_pcg::Pcg64Mcg| -> Vec<i8> {
                (0..len).map(|_| rng.random_range(-127..=127)).collect()
            };
            let (a, b) = (random(&mut rng), random(&mut rng));
            let extreme = vec![127; len];
            let opposite = vec![-127; len];
            for (x, y) in [
                (&a, &b),
                (&extreme, &extreme),
                (&extreme, &opposite),
                (&opposite, &b),
            ] {
                // SAFETY: the CPU has AVX2 (checked above).
                assert_eq!(unsafe { idot_avx2(x, y) }, idot(x, y), "length {len}");
            }
        }
        let (zero, _) = Code::quantize(&[0.0; 3], &mut [0; 3]);
        assert_eq!((zero.scale, zero.error, zero.norm), (0.0, 0.0, 0.0));
    }
}
