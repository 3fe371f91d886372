//! The CPU depthwise convolution behind [`super::layers::Conv`] with one group per channel, forward
//! and backward, as a candle custom op.
//!
//! candle 0.11 runs a grouped `conv2d` as one convolution per group and concatenates them, which
//! for a depthwise layer (a group per channel) is a hundred tiny convolutions and as many slow
//! backward passes. Here each `(image, channel)` plane is one task: the output accumulates the
//! `k * k` shifted rows of the input, each scaled by one kernel value, which runs as contiguous
//! multiply-adds over a row when the column stride is 1.
//! - forward: `y[i, j] = sum over (a, b) of w[a, b] * x[i * sh + a - p, j * sw + b - p]`;
//! - backward: `dx` scatters `w[a, b] * dy` back the same way, `dw[a, b]` sums `dy * x` over the
//!   plane, per image, and the images' sums are added in order (the result does not depend on
//!   scheduling).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_conv::{f32_data, split_gradients};

/// `x` (`[n, c, h, w]`, f32, on the CPU) convolved channel by channel with `weight`
/// (`[c, 1, kh, kw]`) at `stride` (rows, columns) with `padding` zeros on every side;
/// `[n, c, ho, wo]`, with a backward pass for both inputs.
pub(crate) fn depthwise_conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: (usize, usize),
    padding: usize,
) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Depthwise { stride, padding })
}

/// Shapes of one depthwise convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], stride: (usize, usize), pad: usize) -> Result<Self> {
        let (&[n, c, h, w], &[wc, one, kh, kw]) = (x, weight) else {
            candle_core::bail!("depthwise conv2d: input {x:?} or weight {weight:?} is not 4-d");
        };
        if wc != c || one != 1 {
            candle_core::bail!(
                "depthwise conv2d: weight {weight:?} does not match input {x:?} (expected \
                 [{c}, 1, kh, kw])"
            );
        }
        if stride.0 == 0 || stride.1 == 0 || h + 2 * pad < kh || w + 2 * pad < kw {
            candle_core::bail!(
                "depthwise conv2d: kernel {kh}x{kw} with stride {stride:?} and padding {pad} \
                 does not fit a {h}x{w} input"
            );
        }
        Ok(Self {
            n,
            c,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride.0 + 1,
            wo: (w + 2 * pad - kw) / stride.1 + 1,
        })
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    fn out_plane(&self) -> usize {
        self.ho * self.wo
    }

    /// Calls `f(a, b, i, iy, js, ix0)` for every kernel tap `(a, b)` and output row `i` whose
    /// input row `iy` is inside the image: output columns `js` read input columns
    /// `ix0, ix0 + sw, ...`.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize, usize, (usize, usize), usize)) {
        let (sh, sw) = self.stride;
        for a in 0..self.kh {
            for i in 0..self.ho {
                let Some(iy) = (i * sh + a).checked_sub(self.pad).filter(|&y| y < self.h) else {
                    continue;
                };
                for b in 0..self.kw {
                    // Columns j with 0 <= j * sw + b - pad < w.
                    let first = self.pad.saturating_sub(b).div_ceil(sw);
                    let end = (self.w + self.pad)
                        .saturating_sub(b)
                        .div_ceil(sw)
                        .min(self.wo);
                    if first < end {
                        f(a, b, i, iy, (first, end), first * sw + b - self.pad);
                    }
                }
            }
        }
    }

    /// One plane's output from its input and kernel.
    fn forward_plane(&self, x: &[f32], k: &[f32], y: &mut [f32]) {
        let sw = self.stride.1;
        self.for_each_tap(|a, b, i, iy, (first, end), ix| {
            let wv = k[a * self.kw + b];
            let row = &x[iy * self.w..(iy + 1) * self.w];
            let out = &mut y[i * self.wo + first..i * self.wo + end];
            for (o, xv) in out.iter_mut().zip(row[ix..].iter().step_by(sw)) {
                *o += wv * xv;
            }
        });
    }

    /// One plane's input gradient (added to `dx`, when asked for) and kernel gradient (into `dk`).
    fn backward_plane(
        &self,
        x: &[f32],
        k: &[f32],
        dy: &[f32],
        mut dx: Option<&mut [f32]>,
        dk: &mut [f32],
    ) {
        let sw = self.stride.1;
        self.for_each_tap(|a, b, i, iy, (first, end), ix| {
            let tap = a * self.kw + b;
            let grad = &dy[i * self.wo + first..i * self.wo + end];
            let row = &x[iy * self.w..(iy + 1) * self.w];
            dk[tap] += grad
                .iter()
                .zip(row[ix..].iter().step_by(sw))
                .map(|(g, xv)| g * xv)
                .sum::<f32>();
            if let Some(dx) = dx.as_deref_mut() {
                let row = &mut dx[iy * self.w..(iy + 1) * self.w];
                for (d, g) in row[ix..].iter_mut().step_by(sw).zip(grad) {
                    *d += k[tap] * g;
                }
            }
        });
    }
}

/// The geometry of a convolution of input `x` by `weight` and their data.
fn operands<'a>(
    (xs, xl): (&'a CpuStorage, &Layout),
    (ws, wl): (&'a CpuStorage, &Layout),
    stride: (usize, usize),
    padding: usize,
) -> Result<(Geometry, &'a [f32], &'a [f32])> {
    Ok((
        Geometry::new(xl.dims(), wl.dims(), stride, padding)?,
        f32_data(xs, xl, "depthwise conv2d: input")?,
        f32_data(ws, wl, "depthwise conv2d: weight")?,
    ))
}

/// The depthwise op: arguments `x`, `weight`.
struct Depthwise {
    stride: (usize, usize),
    padding: usize,
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, x, weight) = operands((xs, xl), (ws, wl), self.stride, self.padding)?;
        let taps = g.kh * g.kw;
        let mut y = vec![0f32; g.n * g.c * g.out_plane()];
        y.par_chunks_mut(g.out_plane())
            .zip(x.par_chunks(g.plane()))
            .enumerate()
            .for_each(|(p, (y, x))| {
                let c = p % g.c;
                g.forward_plane(x, &weight[c * taps..(c + 1) * taps], y)
            });
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.c, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = DepthwiseGrad {
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

/// The depthwise convolution's gradients: arguments `dy`, `x`, `weight`; the result is the input
/// gradient (when asked for) followed by the weight gradient, flattened.
struct DepthwiseGrad {
    stride: (usize, usize),
    padding: usize,
    input_grad: bool,
}

impl CustomOp3 for DepthwiseGrad {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad"
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
        let (g, x, weight) = operands((xs, xl), (ws, wl), self.stride, self.padding)?;
        if gl.dims() != [g.n, g.c, g.ho, g.wo] {
            candle_core::bail!(
                "depthwise conv2d backward: gradient {:?} does not match output {:?}",
                gl.dims(),
                [g.n, g.c, g.ho, g.wo]
            );
        }
        let dy = f32_data(gs, gl, "depthwise conv2d: output gradient")?;
        let taps = g.kh * g.kw;
        let planes = g.n * g.c;
        let nx = if self.input_grad { x.len() } else { 0 };
        let mut out = vec![0f32; nx + weight.len()];
        let (dx, dw) = out.split_at_mut(nx);
        // One kernel gradient per plane, summed over the images below.
        let mut dk = vec![0f32; planes * taps];
        let dx_planes: Vec<Option<&mut [f32]>> = if self.input_grad {
            dx.chunks_mut(g.plane()).map(Some).collect()
        } else {
            (0..planes).map(|_| None).collect()
        };
        dk.par_chunks_mut(taps)
            .zip(dx_planes)
            .enumerate()
            .for_each(|(p, (dk, dx))| {
                let c = p % g.c;
                g.backward_plane(
                    &x[p * g.plane()..(p + 1) * g.plane()],
                    &weight[c * taps..(c + 1) * taps],
                    &dy[p * g.out_plane()..(p + 1) * g.out_plane()],
                    dx,
                    dk,
                );
            });
        for image in dk.chunks(g.c * taps) {
            for (d, v) in dw.iter_mut().zip(image) {
                *d += v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(nx + weight.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::super::cpu_conv::tests::{max_diff, wave};
    use super::*;
    use candle_core::{Device, Var};

    /// Forward, input gradient and weight gradient against candle's grouped `conv2d` (one group
    /// per channel), for the kernels, strides and paddings a MobileNet uses and odd sizes.
    #[test]
    fn matches_candle_grouped_conv2d_with_gradients() -> Result<()> {
        let dev = Device::Cpu;
        // (n, c, k, stride, pad, h, w)
        let cases = [
            (2, 3, 3, 1, 1, 7, 5),
            (2, 4, 3, 2, 1, 9, 7),
            (3, 2, 3, 2, 1, 8, 6),
            (1, 5, 5, 1, 2, 6, 6),
            (2, 2, 3, 1, 0, 5, 4),
        ];
        for (n, c, k, s, p, h, w) in cases {
            let x = Var::from_vec(wave(n * c * h * w, 0.37, 0.1), (n, c, h, w), &dev)?;
            let wt = Var::from_vec(wave(c * k * k, 0.91, 0.5), (c, 1, k, k), &dev)?;
            let got = depthwise_conv2d(&x, &wt, (s, s), p)?;
            let want = x.conv2d(&wt, p, s, 1, c)?;
            let case = format!("{:?}", (n, c, k, s, p, h, w));
            assert!(max_diff(&got, &want) < 1e-5, "forward {case}");
            // A loss that weighs every output differently.
            let weights = Tensor::from_vec(wave(got.elem_count(), 0.23, 0.7), got.shape(), &dev)?;
            let g_got = (got * &weights)?.sum_all()?.backward()?;
            let g_want = (want * &weights)?.sum_all()?.backward()?;
            for (var, what) in [(&x, "input"), (&wt, "weight")] {
                let (a, b) = (g_got.get(var).unwrap(), g_want.get(var).unwrap());
                assert!(max_diff(a, b) < 1e-4, "{what} gradient {case}");
            }
        }
        Ok(())
    }

    #[test]
    fn refuses_mismatched_shapes() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 5, 5), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 1, 3, 3), candle_core::DType::F32, &dev).unwrap();
        let err = depthwise_conv2d(&x, &w, (1, 1), 1).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }
}
