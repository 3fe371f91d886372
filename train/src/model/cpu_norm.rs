//! The CPU training-mode batch norm behind [`super::layers::batch_norm_t`], as one candle custom
//! op with its backward pass.
//!
//! candle-nn's `BatchNorm::forward_train` builds the function from about ten tensor operations
//! (a transposed copy, two means, broadcast subtract, divide, multiply and add, a transpose back),
//! each with its own backward and its own full-size buffers; they took about a quarter of a
//! training step of the small backbone (RESULTS.md, "Training speed"). Here the batch's
//! per-channel mean and variance come from two passes over `x`, the output from a third, and the
//! backward from the textbook formula (two more). The ReLU after it and a residual sum before
//! that ReLU (a ResNet block's; a MobileNet block's sum has no ReLU) are part of the op, which
//! saves their own full-size passes and buffers forward and back:
//!
//!   x̂ = (x - μ) / sqrt(σ² + ε),  y = relu(γ x̂ + β + r),  dz = dy · [y > 0] (dy without ReLU),
//!   dr = dz,  dβ = Σ dz,  dγ = Σ dz x̂,  dx = γ / (N sqrt(σ² + ε)) · (N dz - dβ - x̂ dγ),
//!
//! sums over the `N = n · h · w` values of a channel. Statistics are accumulated in f64.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::cpu_conv::f32_data;

/// `x` (`[n, c, ...]`, f32, on the CPU) normalised per channel with the batch's statistics, then
/// scaled by `weight` and shifted by `bias` (both `[c]`), plus `residual` (`x`'s shape) when
/// given, then through a ReLU when `relu` is set (a ResNet block's sum has one, a MobileNet's
/// linear bottleneck none);
/// also the batch's mean and biased variance per channel, for the running statistics.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    residual: Option<&Tensor>,
    relu: bool,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let x = x.contiguous()?;
    let g = Geometry::of(x.dims())?;
    let (mean, var) = {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("batch_norm_train: input is not on the CPU");
        };
        g.stats(f32_data(cpu, layout, "batch norm: input")?)
    };
    let op = BatchNorm {
        mean: mean.iter().map(|&m| m as f32).collect(),
        inv_std: var.iter().map(|v| (1. / (v + eps).sqrt()) as f32).collect(),
        relu,
    };
    let affine = Tensor::stack(&[weight, bias], 0)?;
    let y = match residual {
        Some(r) => x.apply_op3(&affine, &r.contiguous()?, op)?,
        None => x.apply_op2(&affine, op)?,
    };
    let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    Ok((y, f32s(mean), f32s(var)))
}

/// Shape of the input: `n` images of `c` channels of `plane` values each.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    plane: usize,
}

impl Geometry {
    fn of(dims: &[usize]) -> Result<Self> {
        let &[n, c, ref rest @ ..] = dims else {
            candle_core::bail!("batch norm takes [n, c, ...], got {dims:?}");
        };
        let plane = rest.iter().product();
        if n * c * plane == 0 {
            candle_core::bail!("batch norm of an empty tensor {dims:?}");
        }
        Ok(Self { n, c, plane })
    }

    /// Values per channel in the batch.
    fn count(&self) -> usize {
        self.n * self.plane
    }

    /// Plane `index` (image `index / c`, channel `index % c`) of `data`.
    fn plane<'a>(&self, data: &'a [f32], index: usize) -> &'a [f32] {
        &data[index * self.plane..][..self.plane]
    }

    /// The planes of channel `ch`, image by image.
    fn planes<'a>(&self, data: &'a [f32], ch: usize) -> impl Iterator<Item = &'a [f32]> {
        let g = *self;
        (0..g.n).map(move |i| g.plane(data, i * g.c + ch))
    }

    /// Mean and biased variance of every channel (two passes, f64).
    fn stats(&self, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let count = self.count() as f64;
        (0..self.c)
            .into_par_iter()
            .map(|ch| {
                let sum: f64 = self
                    .planes(x, ch)
                    .map(|p| p.iter().map(|&v| v as f64).sum::<f64>())
                    .sum();
                let mean = sum / count;
                let squares: f64 = self
                    .planes(x, ch)
                    .map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                    .sum();
                (mean, squares / count)
            })
            .unzip()
    }

    /// `f(index, out_plane)` for every plane of `out` (see [`Self::plane`]), images in parallel.
    fn for_each_plane(&self, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
        out.par_chunks_mut(self.c * self.plane)
            .enumerate()
            .for_each(|(i, out)| {
                for (ch, out) in out.chunks_mut(self.plane).enumerate() {
                    f(i * self.c + ch, out)
                }
            });
    }
}

/// The contiguous f32 data of a per-channel argument, which must hold `len` values.
fn per_channel<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
    len: usize,
) -> Result<&'a [f32]> {
    let data = f32_data(storage, layout, &format!("batch norm: {what}"))?;
    if data.len() != len {
        candle_core::bail!("batch norm: {what} has {} values, not {len}", data.len());
    }
    Ok(data)
}

/// The forward op, arguments `x`, `[weight; bias]` (`[2, c]`) and optionally the residual, with
/// the batch's statistics.
struct BatchNorm {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    relu: bool,
}

impl BatchNorm {
    fn forward(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (affine, al): (&CpuStorage, &Layout),
        residual: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::of(xl.dims())?;
        let x = f32_data(xs, xl, "batch norm: input")?;
        let (weight, bias) = per_channel(affine, al, "weight and bias", 2 * g.c)?.split_at(g.c);
        let residual = match residual {
            Some((rs, rl)) if rl.dims() == xl.dims() => {
                Some(f32_data(rs, rl, "batch norm: residual")?)
            }
            Some((_, rl)) => candle_core::bail!(
                "batch norm: residual {:?} does not match input {:?}",
                rl.dims(),
                xl.dims()
            ),
            None => None,
        };
        let mut y = vec![0f32; x.len()];
        g.for_each_plane(&mut y, |index, y| {
            let ch = index % g.c;
            let scale = weight[ch] * self.inv_std[ch];
            let shift = bias[ch] - self.mean[ch] * scale;
            for (y, &x) in y.iter_mut().zip(g.plane(x, index)) {
                *y = x * scale + shift;
            }
            if let Some(r) = residual {
                for (y, &r) in y.iter_mut().zip(g.plane(r, index)) {
                    *y += r;
                }
            }
            if self.relu {
                for y in y.iter_mut() {
                    *y = y.max(0.);
                }
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// Gradients of `x`, `[weight; bias]` and the residual (when `residual`).
    fn backward(
        &self,
        x: &Tensor,
        affine: &Tensor,
        y: &Tensor,
        grad: &Tensor,
        residual: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let op = BatchNormGrad {
            mean: self.mean.clone(),
            inv_std: self.inv_std.clone(),
            weight: affine.get(0)?.to_vec1()?,
            relu: self.relu,
            residual,
        };
        let grads = grad.contiguous()?.apply_op3_no_bwd(x, y, &op)?;
        let (n, c) = (x.elem_count(), affine.dim(1)?);
        let dx = grads.narrow(0, 0, n)?.reshape(x.shape())?;
        let dz = match residual {
            true => Some(grads.narrow(0, n, n)?.reshape(x.shape())?),
            false => None,
        };
        let daffine = grads
            .narrow(0, if residual { 2 * n } else { n }, 2 * c)?
            .reshape((2, c))?;
        Ok((dx, daffine, dz))
    }
}

impl CustomOp2 for BatchNorm {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a: &CpuStorage,
        al: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((xs, xl), (a, al), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, daffine, _) = self.backward(x, affine, y, grad, false)?;
        Ok((Some(dx), Some(daffine)))
    }
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "batch-norm-add-relu-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a: &CpuStorage,
        al: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((xs, xl), (a, al), Some((rs, rl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        _residual: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, daffine, dz) = self.backward(x, affine, y, grad, true)?;
        Ok((Some(dx), Some(daffine), dz))
    }
}

/// The gradients, arguments `dy`, `x`, `y`; the result is `dx`, then (with a residual) the
/// residual's gradient, then `dweight` and `dbias`, flattened into one vector.
struct BatchNormGrad {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    weight: Vec<f32>,
    relu: bool,
    residual: bool,
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "batch-norm-train-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::of(xl.dims())?;
        if gl.dims() != xl.dims() || yl.dims() != xl.dims() {
            candle_core::bail!(
                "batch norm backward: gradient {:?} or output {:?} does not match input {:?}",
                gl.dims(),
                yl.dims(),
                xl.dims()
            );
        }
        let (dy, x) = (
            f32_data(gs, gl, "batch norm: gradient")?,
            f32_data(xs, xl, "batch norm: input")?,
        );
        let y = f32_data(ys, yl, "batch norm: output")?;
        let n = x.len();
        let mut out = vec![0f32; if self.residual { 2 * n } else { n } + 2 * g.c];
        let (dx, rest) = out.split_at_mut(n);
        let (dres, daffine) = rest.split_at_mut(if self.residual { n } else { 0 });
        // The gradient before the ReLU (dz, also the residual's): dy where the output is positive.
        let mut masked = Vec::new();
        let dz: &[f32] = if self.relu {
            let dz = if self.residual {
                dres
            } else {
                masked.resize(n, 0.);
                &mut masked[..]
            };
            dz.par_iter_mut()
                .zip(dy.par_iter().zip(y))
                .with_min_len(1 << 14)
                .for_each(|(dz, (&dy, &y))| *dz = if y > 0. { dy } else { 0. });
            dz
        } else {
            // Without a ReLU the residual's gradient is dy itself.
            if self.residual {
                dres.copy_from_slice(dy);
            }
            dy
        };
        // dβ and dγ per channel: Σ dz and Σ dz x̂.
        let (dbias, dweight): (Vec<f64>, Vec<f64>) = (0..g.c)
            .into_par_iter()
            .map(|ch| {
                let (mean, inv_std) = (self.mean[ch], self.inv_std[ch]);
                g.planes(dz, ch)
                    .zip(g.planes(x, ch))
                    .fold((0f64, 0f64), |(sum, dot), (dz, x)| {
                        let (s, d) = dz.iter().zip(x).fold((0f32, 0f32), |(s, d), (&dz, &x)| {
                            (s + dz, d + dz * (x - mean) * inv_std)
                        });
                        (sum + s as f64, dot + d as f64)
                    })
            })
            .unzip();
        let count = g.count() as f32;
        g.for_each_plane(dx, |index, dx| {
            // dx = k (dz - dβ/N - x̂ dγ/N), k = γ / sqrt(σ² + ε).
            let ch = index % g.c;
            let (mean, inv_std) = (self.mean[ch], self.inv_std[ch]);
            let k = self.weight[ch] * inv_std;
            let (db, dg) = (dbias[ch] as f32 / count, dweight[ch] as f32 / count);
            let (x, dz) = (g.plane(x, index), g.plane(dz, index));
            for ((dx, &x), &dz) in dx.iter_mut().zip(x).zip(dz) {
                *dx = k * (dz - db - (x - mean) * inv_std * dg);
            }
        });
        let (dw, db) = daffine.split_at_mut(g.c);
        for (ch, (dw, db)) in dw.iter_mut().zip(db).enumerate() {
            (*dw, *db) = (dweight[ch] as f32, dbias[ch] as f32);
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}
