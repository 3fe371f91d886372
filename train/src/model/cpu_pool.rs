//! The CPU 3x3, stride-1, padding-1 max-pool behind [`super::layers::max_pool_3x3`], as a candle
//! custom op with a backward pass (candle's own max-pool has none unless kernel == stride).
//!
//! Same function and gradient as torch's `MaxPool2d(3, stride=1, padding=1)`: the padding never
//! wins, and each output's gradient goes to the first maximum of its window in row-major order
//! (a NaN counts as a maximum). Planes run in parallel on rayon's pool.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `x` (`[n, c, h, w]`, f32, on the CPU) max-pooled over 3x3 windows with stride 1 and
/// padding 1, with a backward pass.
pub(crate) fn max_pool_3x3(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool3x3)
}

/// Folds `(value, index)` into the running first maximum `best` as torch scans a window
/// (`val > max || isnan(val)` replaces).
fn scan(best: (f32, usize), (v, i): (f32, usize)) -> (f32, usize) {
    if v > best.0 || v.is_nan() {
        (v, i)
    } else {
        best
    }
}

/// For every position of the `h x w` plane `x`, the index of the first maximum of the 3x3 window
/// centred there in torch's row-major scan, written to `argmax`. Found separably: the first
/// maximum of each row's 1x3 window into `rows`, then the scan of the three rows' results in
/// order, which ends where the scan of all nine values does.
fn window_argmax(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &mut [(f32, usize)],
    argmax: &mut [usize],
) {
    for (r, (row, x)) in rows.chunks_exact_mut(w).zip(x.chunks_exact(w)).enumerate() {
        for (c, best) in row.iter_mut().enumerate() {
            let cols = c.saturating_sub(1)..(c + 2).min(w);
            let first = (f32::NEG_INFINITY, r * w + cols.start);
            *best = cols.fold(first, |b, j| scan(b, (x[j], r * w + j)));
        }
    }
    for (r, out) in argmax.chunks_exact_mut(w).enumerate() {
        let window = r.saturating_sub(1)..(r + 2).min(h);
        for (c, out) in out.iter_mut().enumerate() {
            let first = (f32::NEG_INFINITY, rows[window.start * w + c].1);
            *out = window
                .clone()
                .fold(first, |b, i| scan(b, rows[i * w + c]))
                .1;
        }
    }
}

/// The larger of `a` and `b`, NaN when either is.
fn max_nan(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// The `[n, c, h, w]` dims and contiguous f32 data of a CPU tensor argument.
fn planes<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<(&'a [f32], (usize, usize))> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("max_pool_3x3 expects f32, got {:?}", storage.dtype());
    };
    let (Some((start, end)), &[_, _, h, w]) = (layout.contiguous_offsets(), layout.dims()) else {
        candle_core::bail!(
            "max_pool_3x3 expects a contiguous [n, c, h, w] tensor, got {:?}",
            layout.dims()
        );
    };
    if h == 0 || w == 0 {
        candle_core::bail!("max_pool_3x3: empty planes {:?}", layout.dims());
    }
    Ok((&data[start..end], (h, w)))
}

/// The pool op.
struct MaxPool3x3;

impl CustomOp1 for MaxPool3x3 {
    fn name(&self) -> &'static str {
        "max-pool-3x3"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, (h, w)) = planes(storage, layout)?;
        // The value of the window's first maximum is its NaN-propagating maximum, taken
        // separably: over each row's 3 neighbours, then over 3 such rows.
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .for_each_init(
                || vec![0f32; h * w],
                |rows, (y, x)| {
                    for (r, x) in rows.chunks_exact_mut(w).zip(x.chunks_exact(w)) {
                        for (c, v) in r.iter_mut().enumerate() {
                            *v = x[c.saturating_sub(1)..(c + 2).min(w)]
                                .iter()
                                .fold(f32::NEG_INFINITY, |m, &v| max_nan(m, v));
                        }
                    }
                    for (i, out) in y.chunks_exact_mut(w).enumerate() {
                        out.copy_from_slice(&rows[i * w..(i + 1) * w]);
                        for other in [i.wrapping_sub(1), i + 1].into_iter().filter(|&j| j < h) {
                            for (o, v) in out.iter_mut().zip(&rows[other * w..(other + 1) * w]) {
                                *o = max_nan(*o, *v);
                            }
                        }
                    }
                },
            );
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?.apply_op2_no_bwd(x, &MaxPool3x3Grad)?,
        ))
    }
}

/// The pool's input gradient: arguments `dy`, `x`.
struct MaxPool3x3Grad;

impl CustomOp2 for MaxPool3x3Grad {
    fn name(&self) -> &'static str {
        "max-pool-3x3-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, (h, w)) = planes(xs, xl)?;
        let (gy, _) = planes(gs, gl)?;
        if gl.dims() != xl.dims() {
            candle_core::bail!(
                "max_pool_3x3 backward: gradient {:?} does not match input {:?}",
                gl.dims(),
                xl.dims()
            );
        }
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(gy.par_chunks(h * w)))
            .for_each_init(
                || (vec![(0f32, 0usize); h * w], vec![0usize; h * w]),
                |(rows, argmax), (dx, (x, gy))| {
                    window_argmax(x, (h, w), rows, argmax);
                    for (&i, g) in argmax.iter().zip(gy) {
                        dx[i] += g;
                    }
                },
            );
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The separable argmax against the nine-value scan torch does (`max_pool2d_with_indices`:
    /// row-major, `val > max || isnan(val)` replaces), on planes full of ties, NaNs and
    /// infinities, including one- and two-wide planes.
    #[test]
    fn separable_argmax_is_the_row_major_scan() {
        let values = [0., 1., 2., f32::NAN, f32::NEG_INFINITY];
        for (h, w) in [(5, 7), (1, 4), (3, 1), (2, 2), (6, 3)] {
            for seed in 0..50u64 {
                let x: Vec<f32> = (0..h * w)
                    .map(|i| {
                        let r = (i as u64 + 1).wrapping_mul(seed * 2654435761 + 97) >> 7;
                        values[(r % 5) as usize]
                    })
                    .collect();
                let (mut rows, mut argmax) = (vec![(0., 0); h * w], vec![0; h * w]);
                window_argmax(&x, (h, w), &mut rows, &mut argmax);
                for (i, &got) in argmax.iter().enumerate() {
                    let (r, c) = (i / w, i % w);
                    let mut best = (
                        f32::NEG_INFINITY,
                        r.saturating_sub(1) * w + c.saturating_sub(1),
                    );
                    for i in r.saturating_sub(1)..(r + 2).min(h) {
                        for j in c.saturating_sub(1)..(c + 2).min(w) {
                            best = scan(best, (x[i * w + j], i * w + j));
                        }
                    }
                    assert_eq!(got, best.1, "{h}x{w} seed {seed} at {i}: {x:?}");
                }
            }
        }
    }

    // Ties and NaN against torch (the network's other max-pool test, `stem_matches_torch`, has
    // no ties). Values from:
    //
    // import torch
    // x = torch.tensor([[1., 1., 0., 2.], [1., 1., 0., 2.], [float('nan'), 0., 3., 3.]])
    // x = x.reshape(1, 1, 3, 4).requires_grad_()
    // y = torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1)
    // y.backward(torch.arange(12.).reshape(1, 1, 3, 4) + 1)
    // print(y.flatten().tolist(), x.grad.flatten().tolist())
    #[test]
    fn ties_and_nan_follow_torch() -> Result<()> {
        let dev = Device::Cpu;
        let x = [1., 1., 0., 2., 1., 1., 0., 2., f32::NAN, 0., 3., 3.];
        let x = Var::from_vec(x.to_vec(), (1, 1, 3, 4), &dev)?;
        let y = max_pool_3x3(&x)?;
        let got: Vec<f32> = y.flatten_all()?.to_vec1()?;
        let nan = f32::NAN;
        let want = [1., 1., 2., 2., nan, nan, 3., 3., nan, nan, 3., 3.];
        for (g, w) in got.iter().zip(want) {
            assert!(g == &w || (g.is_nan() && w.is_nan()), "{got:?}");
        }
        let g = Tensor::arange(1f32, 13., &dev)?.reshape((1, 1, 3, 4))?;
        let grads = (y * g)?.sum_all()?.backward()?;
        let dx: Vec<f32> = grads.get(&x).expect("gradient").flatten_all()?.to_vec1()?;
        assert_eq!(dx, [3., 0., 0., 7., 0., 0., 0., 0., 30., 0., 38., 0.]);
        Ok(())
    }
}
