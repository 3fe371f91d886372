//! The CPU convolution behind [`super::layers::Conv`]: im2col and one matrix product per band of
//! output rows, forward and backward, as a candle custom op.
//!
//! candle 0.11's own CPU `conv2d` is slow to train: its input gradient is `conv_transpose2d`, a
//! naive loop of short dot products, and its weight gradient a convolution whose kernel is the
//! whole gradient image, run with as much parallelism as the layer has input channels. Here each
//! image's patches are gathered a band of output rows at a time into a small column matrix
//! (`[c * kh * kw, rows * wo]`, zero where the kernel overhangs the padding), which stays in
//! cache for the matrix product:
//! - forward: `y = W · col`, written straight into the `[cout, ho, wo]` output;
//! - backward: `dW += dy · colᵀ` and `dx += col2im(Wᵀ · dy)`, with the columns gathered again
//!   rather than kept, so training holds no more memory than candle's convolution does.
//!
//! Images run in parallel on rayon's pool (the one candle uses), each band's product on one
//! thread. Any stride `(sh, sw)` is handled in the gather, so a `(2, 1)` convolution computes only
//! the rows it keeps.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements of one band's column matrix to aim for (1 MiB): of 2^14..2^20, the fastest training
/// step on the 2-core development machine (ResNet18 15% faster than with 2^16, the small backbone
/// the same), big enough for efficient matrix products and still mostly in cache.
const BAND_ELEMENTS: usize = 1 << 18;

/// `x` (`[n, c, h, w]`, f32, on the CPU) convolved with `weight` (`[cout, c, kh, kw]`) at
/// `stride` (rows, columns) with `padding` zeros on every side; `[n, cout, ho, wo]`, with a
/// backward pass for both inputs.
pub(crate) fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: (usize, usize),
    padding: usize,
) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Conv2d { stride, padding })
}

/// Shapes of one convolution: input `[n, c, h, w]`, weight `[cout, c, kh, kw]`, output
/// `[n, cout, ho, wo]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    pad: usize,
    ho: usize,
    wo: usize,
}

/// One output row's worth of one column-matrix row: `wo` values starting at `col` in the band's
/// column matrix, of which the columns `valid` read the image from `x` on with a step of the
/// column stride (`x` is `None` when none of them reads the image: all padding).
struct Segment {
    col: usize,
    x: Option<usize>,
    valid: Range<usize>,
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], stride: (usize, usize), pad: usize) -> Result<Self> {
        let (&[n, c, h, w], &[cout, cin, kh, kw]) = (x, weight) else {
            candle_core::bail!(
                "conv2d takes [n, c, h, w] and [cout, c, kh, kw], got {x:?} and {weight:?}"
            );
        };
        if cin != c || [c, h, w, cout, kh, kw].contains(&0) {
            candle_core::bail!("conv2d: weight {weight:?} does not fit input {x:?}");
        }
        if stride.0 == 0 || stride.1 == 0 {
            candle_core::bail!("conv2d: stride {stride:?} must be positive");
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            candle_core::bail!(
                "conv2d: kernel {kh}x{kw} is larger than the padded input {x:?} (padding {pad})"
            );
        }
        Ok(Self {
            n,
            c,
            h,
            w,
            cout,
            kh,
            kw,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride.0 + 1,
            wo: (w + 2 * pad - kw) / stride.1 + 1,
        })
    }

    /// Rows of the column matrix (and columns of the flattened weight).
    fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }

    fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    fn output_len(&self) -> usize {
        self.cout * self.ho * self.wo
    }

    /// The bands of output rows, each small enough for [`BAND_ELEMENTS`] where a single row is.
    fn bands(&self) -> impl Iterator<Item = Range<usize>> {
        // As few bands as fit, of heights differing by at most one row.
        let max_rows = (BAND_ELEMENTS / (self.patch() * self.wo)).clamp(1, self.ho);
        let (ho, count) = (self.ho, self.ho.div_ceil(max_rows));
        (0..count).map(move |b| b * ho / count..(b + 1) * ho / count)
    }

    /// Elements of the largest band's column matrix.
    fn band_len(&self) -> usize {
        self.bands().map(|b| b.len()).max().unwrap_or(0) * self.wo * self.patch()
    }

    /// Calls `f` on each segment of the column matrix of output rows `band`, row by row.
    fn for_each_segment(&self, band: Range<usize>, mut f: impl FnMut(Segment)) {
        let (sh, sw) = self.stride;
        let width = band.len() * self.wo;
        let mut r = 0;
        for ch in 0..self.c {
            for i in 0..self.kh {
                for j in 0..self.kw {
                    // Output columns whose input column `ox * sw + j - pad` lies in the image.
                    let lo = self.pad.saturating_sub(j).div_ceil(sw);
                    let hi = match (self.w + self.pad).checked_sub(j + 1) {
                        Some(last) => (last / sw + 1).min(self.wo),
                        None => 0,
                    };
                    let valid = lo.min(hi)..hi;
                    for (k, oy) in band.clone().enumerate() {
                        let iy = (oy * sh + i).checked_sub(self.pad);
                        f(Segment {
                            col: r * width + k * self.wo,
                            x: iy.filter(|&iy| iy < self.h && !valid.is_empty()).map(|iy| {
                                (ch * self.h + iy) * self.w + valid.start * sw + j - self.pad
                            }),
                            valid: valid.clone(),
                        });
                    }
                    r += 1;
                }
            }
        }
    }

    /// Gathers the patches of output rows `band` of one image `x` (`[c, h, w]`) into `col`.
    fn im2col(&self, x: &[f32], band: Range<usize>, col: &mut [f32]) {
        let sw = self.stride.1;
        self.for_each_segment(band, |s| {
            let seg = &mut col[s.col..s.col + self.wo];
            let Some(start) = s.x else {
                seg.fill(0.);
                return;
            };
            seg[..s.valid.start].fill(0.);
            seg[s.valid.end..].fill(0.);
            let dst = &mut seg[s.valid];
            if sw == 1 {
                dst.copy_from_slice(&x[start..start + dst.len()]);
            } else {
                for (d, v) in dst.iter_mut().zip(x[start..].iter().step_by(sw)) {
                    *d = *v;
                }
            }
        });
    }

    /// Adds the column matrix `col` of output rows `band` back onto the image `dx` it was
    /// gathered from (the adjoint of [`Geometry::im2col`]).
    fn col2im(&self, col: &[f32], band: Range<usize>, dx: &mut [f32]) {
        let sw = self.stride.1;
        self.for_each_segment(band, |s| {
            let Some(start) = s.x else { return };
            let src = &col[s.col + s.valid.start..s.col + s.valid.end];
            if sw == 1 {
                for (d, v) in dx[start..start + src.len()].iter_mut().zip(src) {
                    *d += *v;
                }
            } else {
                for (d, v) in dx[start..].iter_mut().step_by(sw).zip(src) {
                    *d += *v;
                }
            }
        });
    }

    /// One image: `y` (`[cout, ho, wo]`) = `weight` convolved with `x` (`[c, h, w]`).
    fn forward_image(&self, x: &[f32], weight: &[f32], y: &mut [f32], col: &mut [f32]) {
        let (patch, plane) = (self.patch(), self.ho * self.wo);
        for band in self.bands() {
            let width = band.len() * self.wo;
            let col = &mut col[..patch * width];
            self.im2col(x, band.clone(), col);
            matmul(
                &mut y[band.start * self.wo..],
                plane,
                Mat::row_major(weight, self.cout, patch),
                Mat::row_major(col, patch, width),
                false,
            );
        }
    }

    /// One image's share of the backward pass: adds its weight gradient to `dw` and, when `dx`
    /// is given, writes its input gradient there (`gy` is the output gradient `[cout, ho, wo]`).
    fn backward_image(
        &self,
        x: &[f32],
        weight: &[f32],
        gy: &[f32],
        mut dx: Option<&mut [f32]>,
        dw: &mut [f32],
        buffers: &mut (Vec<f32>, Vec<f32>),
    ) {
        let (patch, plane) = (self.patch(), self.ho * self.wo);
        for band in self.bands() {
            let width = band.len() * self.wo;
            let col = &mut buffers.0[..patch * width];
            self.im2col(x, band.clone(), col);
            let gy_band = Mat {
                data: &gy[band.start * self.wo..],
                rows: self.cout,
                cols: width,
                rs: plane,
                cs: 1,
            };
            // dW [cout, patch] += dy [cout, width] · colᵀ [width, patch]
            let col_t = Mat {
                data: col,
                rows: width,
                cols: patch,
                rs: 1,
                cs: width,
            };
            matmul(dw, patch, gy_band, col_t, true);
            if let Some(dx) = dx.as_deref_mut() {
                // dcol [patch, width] = Wᵀ [patch, cout] · dy [cout, width]
                let w_t = Mat {
                    data: weight,
                    rows: patch,
                    cols: self.cout,
                    rs: 1,
                    cs: patch,
                };
                let dcol = &mut buffers.1[..patch * width];
                matmul(dcol, width, w_t, gy_band, false);
                self.col2im(dcol, band, dx);
            }
        }
    }
}

/// A matrix inside a slice: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`, on the calling thread; `dst` is
/// row-major with row stride `dst_rs`.
fn matmul(dst: &mut [f32], dst_rs: usize, lhs: Mat, rhs: Mat, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(rhs.rows == k && lhs.in_bounds() && rhs.in_bounds());
    assert!(m == 0 || n == 0 || (m - 1) * dst_rs + n - 1 < dst.len());
    // SAFETY: the assertions keep every element gemm reads or writes inside its slice, and `dst`
    // is borrowed mutably, so it cannot overlap `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// The contiguous f32 data of a custom op's CPU tensor argument (`what`, e.g. "conv2d: input").
pub(super) fn f32_data<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what} is {:?}, not f32", storage.dtype());
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what} is not contiguous");
    };
    Ok(&data[start..end])
}

/// The convolution op: arguments `x`, `weight`.
struct Conv2d {
    stride: (usize, usize),
    padding: usize,
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "im2col-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl.dims(), wl.dims(), self.stride, self.padding)?;
        let (x, weight) = (
            f32_data(xs, xl, "conv2d: input")?,
            f32_data(ws, wl, "conv2d: weight")?,
        );
        let mut y = vec![0f32; g.n * g.output_len()];
        y.par_chunks_mut(g.output_len())
            .zip(x.par_chunks(g.image_len()))
            .for_each_init(
                || vec![0f32; g.band_len()],
                |col, (y, x)| g.forward_image(x, weight, y, col),
            );
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // The network's input needs no gradient: skip the input half of the work for it.
        let op = Conv2dGrad {
            stride: self.stride,
            padding: self.padding,
            input_grad: x.track_op(),
        };
        split_gradients(
            &grad.contiguous()?.apply_op3_no_bwd(x, weight, &op)?,
            x,
            weight,
        )
    }
}

/// The input gradient (when `x` needs one) and the weight gradient out of a gradient op's
/// flattened result, which holds them in that order.
pub(super) fn split_gradients(
    grads: &Tensor,
    x: &Tensor,
    weight: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let nx = if x.track_op() { x.elem_count() } else { 0 };
    let dw = grads
        .narrow(0, nx, weight.elem_count())?
        .reshape(weight.shape())?;
    let dx = match x.track_op() {
        true => Some(grads.narrow(0, 0, nx)?.reshape(x.shape())?),
        false => None,
    };
    Ok((dx, Some(dw)))
}

/// The convolution's gradients: arguments `dy`, `x`, `weight`; the result is the input gradient
/// (when asked for) followed by the weight gradient, flattened.
struct Conv2dGrad {
    stride: (usize, usize),
    padding: usize,
    input_grad: bool,
}

impl CustomOp3 for Conv2dGrad {
    fn name(&self) -> &'static str {
        "im2col-conv2d-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl.dims(), wl.dims(), self.stride, self.padding)?;
        if gl.dims() != [g.n, g.cout, g.ho, g.wo] {
            candle_core::bail!(
                "conv2d backward: gradient {:?} does not match output {:?}",
                gl.dims(),
                [g.n, g.cout, g.ho, g.wo]
            );
        }
        let gy = f32_data(gs, gl, "conv2d: output gradient")?;
        let (x, weight) = (
            f32_data(xs, xl, "conv2d: input")?,
            f32_data(ws, wl, "conv2d: weight")?,
        );
        let nx = if self.input_grad { x.len() } else { 0 };
        let mut out = vec![0f32; nx + weight.len()];
        let (dx, dw) = out.split_at_mut(nx);
        // A fixed split of the images (one group per thread) with a weight gradient each, summed
        // in order below: the result does not depend on scheduling.
        let per_group = g.n.div_ceil(rayon::current_num_threads()).max(1);
        let groups = g.n.div_ceil(per_group);
        let dx_parts: Vec<Option<&mut [f32]>> = if self.input_grad {
            dx.chunks_mut(per_group * g.image_len()).map(Some).collect()
        } else {
            (0..groups).map(|_| None).collect()
        };
        let partial: Vec<Vec<f32>> = dx_parts
            .into_par_iter()
            .enumerate()
            .map(|(group, mut dx_part)| {
                let mut dw = vec![0f32; weight.len()];
                let mut buffers = (vec![0f32; g.band_len()], vec![0f32; g.band_len()]);
                let first = group * per_group;
                for i in 0..per_group.min(g.n - first) {
                    let image = first + i;
                    let dx = dx_part
                        .as_deref_mut()
                        .map(|d| &mut d[i * g.image_len()..(i + 1) * g.image_len()]);
                    g.backward_image(
                        &x[image * g.image_len()..(image + 1) * g.image_len()],
                        weight,
                        &gy[image * g.output_len()..(image + 1) * g.output_len()],
                        dx,
                        &mut dw,
                        &mut buffers,
                    );
                }
                dw
            })
            .collect();
        for part in partial {
            for (total, v) in dw.iter_mut().zip(part) {
                *total += v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(nx + weight.len())))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    pub(in crate::model) fn wave(n: usize, a: f64, b: f64) -> Vec<f32> {
        (0..n).map(|i| ((i as f64 * a + b).sin()) as f32).collect()
    }

    /// Largest difference between `got` and `want`, relative to `want`'s largest magnitude when
    /// that is over 1 (sums of thousands of terms differ by more than 1e-4 from summation order
    /// alone).
    pub(in crate::model) fn max_diff(got: &Tensor, want: &Tensor) -> f32 {
        assert_eq!(got.dims(), want.dims());
        let max_abs = |t: Tensor| t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>();
        let diff = (got - want).and_then(max_abs).expect("difference");
        diff / max_abs(want.clone()).expect("magnitude").max(1.)
    }

    /// candle's own convolution, with a `(sh, sw)` stride as stride 1 then keeping every
    /// `sh`-th row and `sw`-th column (exact: output `(i, j)` of a strided convolution is output
    /// `(i * sh, j * sw)` of the stride-1 one).
    fn reference(x: &Tensor, w: &Tensor, stride: (usize, usize), pad: usize) -> Result<Tensor> {
        if stride.0 == stride.1 {
            return x.conv2d(w, pad, stride.0, 1, 1);
        }
        let y = x.conv2d(w, pad, 1, 1, 1)?;
        let keep = |dim: usize, step: usize| {
            Tensor::arange_step(0u32, y.dim(dim)? as u32, step as u32, x.device())
        };
        y.index_select(&keep(2, stride.0)?, 2)?
            .index_select(&keep(3, stride.1)?, 3)
    }

    /// Forward, input gradient and weight gradient of [`conv2d`] against candle's `conv2d`, for
    /// the kernels, strides and paddings the network uses and a few more, on odd sizes. (With a
    /// square stride s > 1, candle's own backward mis-sizes the input gradient unless
    /// `h + 2p - k` and `w + 2p - k` leave the same remainder mod s, so those cases do.)
    #[test]
    fn matches_candle_conv2d_with_gradients() -> Result<()> {
        let dev = Device::Cpu;
        // (c, cout, k, stride, pad, h, w)
        let cases = [
            (3, 4, 7, (2, 1), 3, 11, 6),
            (3, 4, 7, (1, 1), 3, 9, 7),
            (2, 3, 3, (1, 1), 1, 7, 5),
            (2, 3, 3, (2, 2), 1, 7, 5),
            (2, 3, 3, (2, 1), 0, 8, 5),
            (3, 2, 1, (2, 2), 0, 7, 5),
            (3, 2, 1, (1, 1), 0, 4, 3),
            (2, 3, 3, (1, 2), 3, 5, 6),
            (1, 2, 7, (2, 2), 1, 9, 9),
            // Big enough for several bands of output rows.
            (16, 2, 7, (1, 1), 3, 21, 20),
            (256, 2, 3, (2, 2), 1, 32, 16),
        ];
        for (i, &(c, cout, k, stride, pad, h, w)) in cases.iter().enumerate() {
            let what = format!("case {i}: c {c} cout {cout} k {k} stride {stride:?} pad {pad}");
            let g = Geometry::new(&[2, c, h, w], &[cout, c, k, k], stride, pad)?;
            assert_eq!(g.bands().count() > 1, i >= 9, "{what}: bands");
            let x = Var::from_vec(wave(2 * c * h * w, 0.37, i as f64), (2, c, h, w), &dev)?;
            let wt = Var::from_vec(wave(cout * c * k * k, 0.11, 0.5), (cout, c, k, k), &dev)?;
            let want = reference(&x, &wt, stride, pad)?;
            let got = conv2d(&x, &wt, stride, pad)?;
            assert!(max_diff(&got, &want) <= 1e-4, "{what}: forward");
            let g = Tensor::from_vec(wave(want.elem_count(), 0.7, 0.3), want.shape(), &dev)?;
            let want_grads = (want * &g)?.sum_all()?.backward()?;
            let got_grads = (got * &g)?.sum_all()?.backward()?;
            for (name, var) in [("input", x.as_tensor()), ("weight", wt.as_tensor())] {
                let (a, b) = (got_grads.get(var), want_grads.get(var));
                let diff = max_diff(a.expect("gradient"), b.expect("reference gradient"));
                assert!(diff <= 1e-4, "{what}: {name} gradient differs by {diff}");
            }
        }
        Ok(())
    }

    /// A strided (here transposed) input gives the same result, and an input that is not a
    /// variable gets no gradient while the weight still does.
    #[test]
    fn strided_inputs_and_constant_inputs() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(wave(2 * 3 * 7 * 5, 0.29, 0.0), (3, 2, 7, 5), &dev)?;
        let x = x.transpose(0, 1)?;
        assert!(!x.is_contiguous());
        let wt = Var::from_vec(wave(4 * 3 * 9, 0.13, 1.0), (4, 3, 3, 3), &dev)?;
        let want = x.conv2d(&wt, 1, 2, 1, 1)?;
        let got = conv2d(&x, &wt, (2, 2), 1)?;
        assert!(max_diff(&got, &want) <= 1e-4);
        let want_grads = want.sum_all()?.backward()?;
        let got_grads = got.sum_all()?.backward()?;
        let dw = got_grads.get(&wt).expect("weight gradient");
        assert!(max_diff(dw, want_grads.get(&wt).expect("reference")) <= 1e-4);
        assert!(got_grads.get(&x).is_none());
        Ok(())
    }

    /// Per-layer timings (median of 3, ms) of this convolution and candle's on the small
    /// backbone's convolutions at batch 64 and 128x64 input, forward and forward + backward:
    ///
    ///     cargo test --release -p edge-reid-train --lib conv_layer_timings -- --ignored --nocapture
    #[test]
    #[ignore = "timing table, not a check"]
    fn conv_layer_timings() -> Result<()> {
        let dev = Device::Cpu;
        let time = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
            f()?;
            let mut t = (0..3)
                .map(|_| {
                    let start = std::time::Instant::now();
                    f().map(|()| start.elapsed().as_secs_f64() * 1e3)
                })
                .collect::<Result<Vec<_>>>()?;
            t.sort_by(f64::total_cmp);
            Ok(t[1])
        };
        println!(
            "{:<26} {:>10} {:>10} {:>10} {:>10}",
            "layer (c->cout k s p hxw)", "candle fwd", "f+b", "im2col fwd", "f+b"
        );
        // (c, cout, k, stride, pad, h, w) of the small backbone (ResNet18: 4x the channels).
        let layers = [
            (3, 16, 7, (2, 1), 3, 128, 64),
            (16, 16, 3, (1, 1), 1, 64, 64),
            (16, 32, 3, (2, 2), 1, 64, 64),
            (16, 32, 1, (2, 2), 0, 64, 64),
            (32, 32, 3, (1, 1), 1, 32, 32),
            (32, 64, 3, (2, 2), 1, 32, 32),
            (64, 64, 3, (1, 1), 1, 16, 16),
            (64, 128, 3, (2, 2), 1, 16, 16),
            (128, 128, 3, (1, 1), 1, 8, 8),
        ];
        for (c, cout, k, stride, pad, h, w) in layers {
            let x = Var::randn(0f32, 1., (64, c, h, w), &dev)?;
            let wt = Var::randn(0f32, 1., (cout, c, k, k), &dev)?;
            let ours = || conv2d(&x, &wt, stride, pad);
            let theirs = || reference(&x, &wt, stride, pad);
            let train = |f: &dyn Fn() -> Result<Tensor>| -> Result<()> {
                f()?.sum_all()?.backward().map(|_| ())
            };
            println!(
                "{:<26} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                format!("{c}->{cout} k{k} s{stride:?} p{pad} {h}x{w}"),
                time(&|| theirs().map(|_| ()))?,
                time(&|| train(&theirs))?,
                time(&|| ours().map(|_| ()))?,
                time(&|| train(&ours))?,
            );
        }
        Ok(())
    }

    #[test]
    fn refuses_mismatched_shapes() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 4, 4), candle_core::DType::F32, &dev).expect("x");
        let w = Tensor::zeros((2, 2, 3, 3), candle_core::DType::F32, &dev).expect("w");
        let err = conv2d(&x, &w, (1, 1), 1).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
        let w = Tensor::zeros((2, 3, 7, 7), candle_core::DType::F32, &dev).expect("w");
        let err = conv2d(&x, &w, (1, 1), 1).unwrap_err().to_string();
        assert!(err.contains("larger than the padded input"), "{err}");
    }
}
