//! Small layers the network needs where candle's own either lacks an option, has no backward
//! pass or trains slowly: a convolution with a (height, width) stride, dense or depthwise, the
//! 3x3 stride-1 max-pool,
//! global average pooling and a differentiable layer norm; and the initialisation of the heads'
//! layers as PyTorch's defaults have it ([`torch_uniform`], [`dense`]).
//!
//! On the CPU (f32) the convolution, the max-pool and the training-mode batch norm run as the
//! custom ops of `cpu_conv` (`cpu_depthwise` for a depthwise one), `cpu_pool` and `cpu_norm`;
//! elsewhere (CUDA) as candle's own operations.
//!
//! ONNX mapping (opset 17), for the exporter:
//! - [`Conv`]: one `Conv` node, `kernel_shape=[k,k]`, `strides=[sh,sw]`, `pads=[p,p,p,p]`
//!   (`group=c` for a depthwise one), inputs `weight` `[out,in/groups,k,k]` and `bias` when
//!   present. candle's `conv2d` only has a single stride,
//!   so off the CPU a stride `(2,1)` runs as stride 1 followed by keeping every other row; that is
//!   the same function.
//! - [`max_pool_3x3`]: `MaxPool`, `kernel_shape=[3,3]`, `strides=[1,1]`, `pads=[1,1,1,1]`.
//! - [`global_avg_pool`]: `GlobalAveragePool` then `Flatten(axis=1)` (`[N,C,H,W]` to `[N,C]`).
//! - [`LayerNorm`]: `LayerNormalization(axis=-1, epsilon)` with `weight` as scale and `bias` as B.

use candle_core::{DType, Module, ModuleT, Result, Tensor, Var};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{BatchNorm, Init, Linear, VarBuilder};

/// PyTorch's default initialisation of `nn.Linear` and `nn.Conv2d` weights and biases: uniform in
/// `±1/sqrt(fan_in)` (Kaiming uniform with `a = sqrt(5)`). The heads use it; candle-nn's `linear`
/// draws weights Kaiming normal with gain `sqrt(2)` instead, about 2.4 times larger, and the
/// network learned markedly slower with it (RESULTS.md, "The trainer against PyTorch's").
pub(crate) fn torch_uniform(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A dense layer `[out_dim, in_dim]` with a bias, initialised as PyTorch's `nn.Linear`.
pub(crate) fn dense(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let init = torch_uniform(in_dim);
    dense_with(in_dim, out_dim, init, init, vb)
}

/// A dense layer `[out_dim, in_dim]` whose `weight` and `bias` are drawn from the given inits.
pub(crate) fn dense_with(
    in_dim: usize,
    out_dim: usize,
    weight: Init,
    bias: Init,
    vb: VarBuilder,
) -> Result<Linear> {
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", weight)?;
    let bias = vb.get_with_hints(out_dim, "bias", bias)?;
    Ok(Linear::new(weight, Some(bias)))
}

use super::{cpu_conv, cpu_depthwise, cpu_norm, cpu_pool};

/// Hyper-parameters of one 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvConfig {
    /// Input channels.
    pub(crate) in_channels: usize,
    /// Output channels.
    pub(crate) out_channels: usize,
    /// Square kernel side.
    pub(crate) kernel: usize,
    /// Stride as (rows, columns).
    pub(crate) stride: (usize, usize),
    /// Zero padding on all four sides.
    pub(crate) padding: usize,
    /// Whether the convolution has a bias (torchvision's ResNet convolutions have none).
    pub(crate) bias: bool,
    /// 1, or `in_channels` (= `out_channels`) for a depthwise convolution.
    pub(crate) groups: usize,
}

impl ConvConfig {
    /// A bias-free `k x k` convolution with a square stride, as in torchvision's ResNet.
    pub(crate) fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride: (stride, stride),
            padding,
            bias: false,
            groups: 1,
        }
    }

    /// A bias-free depthwise `k x k` convolution (one group per channel) with a square stride, as
    /// in torchvision's MobileNetV2.
    pub(crate) fn depthwise(channels: usize, kernel: usize, stride: usize) -> Self {
        Self {
            groups: channels,
            ..Self::new(channels, channels, kernel, stride, kernel / 2)
        }
    }
}

/// A 2-D convolution with a possibly different stride on rows and columns, dense or depthwise.
///
/// Variables: `weight` `[out, in / groups, k, k]` and, when configured, `bias` `[out]` (zeros).
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    /// Hyper-parameters.
    pub(crate) cfg: ConvConfig,
    /// Kernel, `[out, in, k, k]`.
    pub(crate) weight: Tensor,
    /// Bias, `[out]`.
    pub(crate) bias: Option<Tensor>,
}

impl Conv {
    /// Creates the convolution's variables under `vb`, the weight Kaiming normal with fan-out, as
    /// torchvision initialises ResNet.
    pub(crate) fn new(cfg: ConvConfig, vb: VarBuilder) -> Result<Self> {
        let init = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ReLU,
        };
        Self::with_init(cfg, init, vb)
    }

    /// Creates the convolution's variables under `vb`, the weight drawn from `init`.
    pub(crate) fn with_init(cfg: ConvConfig, init: Init, vb: VarBuilder) -> Result<Self> {
        if cfg.groups != 1 && (cfg.groups != cfg.in_channels || cfg.groups != cfg.out_channels) {
            candle_core::bail!(
                "a convolution of {} to {} channels in {} groups: only dense and depthwise ones \
                 are supported",
                cfg.in_channels,
                cfg.out_channels,
                cfg.groups
            );
        }
        let shape = (
            cfg.out_channels,
            cfg.in_channels / cfg.groups,
            cfg.kernel,
            cfg.kernel,
        );
        let weight = vb.get_with_hints(shape, "weight", init)?;
        let bias = if cfg.bias {
            Some(vb.get_with_hints(cfg.out_channels, "bias", Init::Const(0.))?)
        } else {
            None
        };
        Ok(Self { cfg, weight, bias })
    }
}

/// Keeps every `step`-th index of dimension `dim`, starting at 0.
fn subsample(x: &Tensor, dim: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return Ok(x.clone());
    }
    let len = x.dim(dim)? as u32;
    let index = Tensor::arange_step(0u32, len, step as u32, x.device())?;
    x.index_select(&index, dim)
}

/// Whether `x` runs through the CPU custom ops rather than candle's own operations.
fn on_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (sh, sw) = self.cfg.stride;
        let (p, groups) = (self.cfg.padding, self.cfg.groups);
        let y = if on_cpu(x) && groups > 1 {
            cpu_depthwise::depthwise_conv2d(x, &self.weight, self.cfg.stride, p)?
        } else if on_cpu(x) {
            cpu_conv::conv2d(x, &self.weight, self.cfg.stride, p)?
        } else if sh == sw {
            x.conv2d(&self.weight, p, sh, 1, groups)?
        } else {
            // Output row i of a stride-sh convolution is row i * sh of the stride-1 one (same for
            // columns), so the subsampled stride-1 result is exactly the strided convolution.
            let y = x.conv2d(&self.weight, p, 1, 1, groups)?;
            subsample(&subsample(&y, 2, sh)?, 3, sw)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Max over 3x3 windows with stride 1 and padding 1 (torch `MaxPool2d(3, stride=1, padding=1)`).
pub(crate) fn max_pool_3x3(x: &Tensor) -> Result<Tensor> {
    if on_cpu(x) {
        cpu_pool::max_pool_3x3(x)
    } else {
        max_pool_3x3_shifted(x)
    }
}

/// [`max_pool_3x3`] from candle operations, for devices without the CPU op: candle's max-pool
/// backward needs kernel == stride, so this is the max over shifted views, separably: rows first,
/// then columns. The borders are padded by repeating the edge, which for a max is the same as
/// torch's `-inf` padding (the edge value is already in every border window).
fn max_pool_3x3_shifted(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let rows = x.pad_with_same(2, 1, 1)?;
    let rows = rows
        .narrow(2, 0, h)?
        .maximum(&rows.narrow(2, 1, h)?)?
        .maximum(&rows.narrow(2, 2, h)?)?;
    let cols = rows.pad_with_same(3, 1, 1)?;
    cols.narrow(3, 0, w)?
        .maximum(&cols.narrow(3, 1, w)?)?
        .maximum(&cols.narrow(3, 2, w)?)
}

/// `bn` applied to `x` (`[n, c, ...]`). In training mode on the CPU this is the fused op of
/// `cpu_norm`, with the running statistics updated as candle-nn and torch do (momentum, unbiased
/// batch variance); otherwise candle-nn's `BatchNorm`.
pub(crate) fn batch_norm_t(bn: &BatchNorm, x: &Tensor, train: bool) -> Result<Tensor> {
    normalise(&[bn], x, train, None, false)
}

/// `bn(x) + residual` (a linear bottleneck's sum), as [`batch_norm_t`] with the sum in the same
/// op.
pub(crate) fn batch_norm_add_t(
    bn: &BatchNorm,
    x: &Tensor,
    residual: &Tensor,
    train: bool,
) -> Result<Tensor> {
    normalise(&[bn], x, train, Some(residual), false)
}

/// `relu(bn(x) + residual)`, or `relu(bn(x))` without a residual, as [`batch_norm_t`] with the
/// sum and the ReLU in the same op.
pub(crate) fn batch_norm_relu_t(
    bn: &BatchNorm,
    x: &Tensor,
    residual: Option<&Tensor>,
    train: bool,
) -> Result<Tensor> {
    normalise(&[bn], x, train, residual, true)
}

/// `relu` of several batch norms side by side: the first's channels of `x` through the first,
/// the next ones through the next, and so on (one op for all of them on the CPU).
pub(crate) fn stacked_batch_norm_relu_t(
    bns: &[&BatchNorm],
    x: &Tensor,
    train: bool,
) -> Result<Tensor> {
    normalise(bns, x, train, None, true)
}

fn normalise(
    bns: &[&BatchNorm],
    x: &Tensor,
    train: bool,
    residual: Option<&Tensor>,
    relu: bool,
) -> Result<Tensor> {
    let affine: Option<(Vec<_>, Vec<_>)> = bns.iter().map(|bn| bn.weight_and_bias()).collect();
    let Some((weights, biases)) = affine.filter(|_| train && on_cpu(x)) else {
        let y = match bns {
            [bn] => bn.forward_t(x, train)?,
            _ => {
                let channels = bns.iter().map(|bn| bn.running_mean().elem_count());
                let parts = split_channels(x, channels)?
                    .iter()
                    .zip(bns)
                    .map(|(x, bn)| bn.forward_t(x, train))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&parts, 1)?
            }
        };
        let y = match residual {
            Some(r) => (y + r)?,
            None => y,
        };
        return if relu { y.relu() } else { Ok(y) };
    };
    let (weight, bias) = match bns {
        [_] => (weights[0].clone(), biases[0].clone()),
        _ => (Tensor::cat(&weights, 0)?, Tensor::cat(&biases, 0)?),
    };
    let eps = bns[0].eps();
    if bns.iter().any(|bn| bn.eps() != eps) {
        candle_core::bail!("stacked batch norms with different epsilons");
    }
    let (y, mean, var) = cpu_norm::batch_norm_train(x, &weight, &bias, eps, residual, relu)?;
    // running = (1 - momentum) running + momentum scale batch, per batch norm on its channels.
    let update = |running: &Tensor, batch: &[f32], momentum: f64, scale: f64| -> Result<()> {
        let batch = Tensor::from_slice(batch, running.shape(), running.device())?;
        let updated = ((running * (1. - momentum))? + (batch * (momentum * scale))?)?;
        Var::from_tensor(running)?.set(&updated)
    };
    let count = (x.elem_count() / x.dim(1)?) as f64;
    let mut start = 0;
    for bn in bns {
        let channels = start..start + bn.running_mean().elem_count();
        let momentum = bn.momentum();
        update(bn.running_mean(), &mean[channels.clone()], momentum, 1.)?;
        let unbiased = count / (count - 1.);
        update(bn.running_var(), &var[channels.clone()], momentum, unbiased)?;
        start = channels.end;
    }
    Ok(y)
}

/// `x` (`[n, c, ...]`) cut along the channels into consecutive parts of the given sizes.
pub(crate) fn split_channels(
    x: &Tensor,
    sizes: impl IntoIterator<Item = usize>,
) -> Result<Vec<Tensor>> {
    let mut start = 0;
    sizes
        .into_iter()
        .map(|c| {
            start += c;
            x.narrow(1, start - c, c)
        })
        .collect()
}

/// Global average pooling, `[N, C, H, W]` to `[N, C]`.
pub(crate) fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean((2, 3))
}

/// Layer normalisation over the last dimension, with a backward pass (candle-nn's fused
/// `LayerNorm` has none for contiguous inputs, so gradients would silently stop there).
///
/// Variables: `weight` `[d]` (ones), `bias` `[d]` (zeros).
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    /// Scale, `[d]`.
    pub(crate) weight: Tensor,
    /// Shift, `[d]`.
    pub(crate) bias: Tensor,
    /// Added to the variance.
    pub(crate) eps: f64,
}

impl LayerNorm {
    /// Creates a layer norm over `dim` features (epsilon 1e-5, as torch).
    pub(crate) fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.))?,
            eps: 1e-5,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() != DType::F32 && x.dtype() != DType::F64 {
            candle_core::bail!("layer norm expects f32 or f64 input, got {:?}", x.dtype());
        }
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    /// Deterministic test values, the same formula as the torch script below.
    fn wave(n: usize, a: f64, b: f64) -> Vec<f32> {
        (0..n).map(|i| ((i as f64 * a + b).sin()) as f32).collect()
    }

    fn close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol, "index {i}: got {g}, want {w}");
        }
    }

    /// The fused training-mode batch norm against candle-nn's, built from candle's own tensor
    /// operations: output, the gradients of input, scale, shift and residual, and the running
    /// statistics after each of four steps (alone, with a ReLU, with a residual and a ReLU, with a
    /// residual alone), for a 4-D input (BatchNorm2d), a 2-D one (BatchNorm1d) and a transposed
    /// one. Eval mode is candle-nn's in both.
    #[test]
    fn batch_norm_t_matches_candle_nn() -> Result<()> {
        let dev = Device::Cpu;
        let shapes: [&[usize]; 3] = [&[3, 5, 4, 7], &[6, 9], &[2, 3, 1, 5]];
        for (case, dims) in shapes.iter().enumerate() {
            let c = dims[1];
            let new_bn = || -> Result<(BatchNorm, Var, Var)> {
                let weight = Var::from_vec(wave(c, 0.9, 0.4), c, &dev)?;
                let bias = Var::from_vec(wave(c, 0.5, 1.1), c, &dev)?;
                let stats = |v: f32| Tensor::full(v, c, &dev);
                let bn = BatchNorm::new(
                    c,
                    stats(0.1)?,
                    stats(2.0)?,
                    weight.as_tensor().clone(),
                    bias.as_tensor().clone(),
                    1e-5,
                )?;
                Ok((bn, weight, bias))
            };
            let (ours, ours_w, ours_b) = new_bn()?;
            let (theirs, theirs_w, theirs_b) = new_bn()?;
            let n: usize = dims.iter().product();
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            let residual = Var::from_vec(wave(n, 0.23, 0.9), *dims, &dev)?;
            let r = residual.as_tensor();
            let steps = [
                "alone",
                "with a ReLU",
                "with a residual and a ReLU",
                "with a residual",
            ];
            for (step, fused) in steps.into_iter().enumerate() {
                let what = format!("case {case} {dims:?}, step {step}, {fused}");
                let data = wave(n, 0.37, step as f64)
                    .iter()
                    .map(|v| 3. * v + 1.)
                    .collect();
                let leaf = match case {
                    2 => Var::from_vec(data, (1, 3, 2, 5), &dev)?,
                    _ => Var::from_vec(data, *dims, &dev)?,
                };
                let x = match case {
                    2 => leaf.transpose(0, 2)?,
                    _ => leaf.as_tensor().clone(),
                };
                assert_eq!(x.is_contiguous(), case != 2);
                let (got, want) = match step {
                    0 => (batch_norm_t(&ours, &x, true)?, theirs.forward_t(&x, true)?),
                    1 => (
                        batch_norm_relu_t(&ours, &x, None, true)?,
                        theirs.forward_t(&x, true)?.relu()?,
                    ),
                    2 => (
                        batch_norm_relu_t(&ours, &x, Some(r), true)?,
                        (theirs.forward_t(&x, true)? + r)?.relu()?,
                    ),
                    _ => (
                        batch_norm_add_t(&ours, &x, r, true)?,
                        (theirs.forward_t(&x, true)? + r)?,
                    ),
                };
                assert_eq!(
                    flat(&want)?.iter().any(|&v| v < 0.),
                    step == 0 || step == 3,
                    "{what}: a ReLU where there should be none, or none where there should be"
                );
                assert!(
                    step == 0 || step == 3 || flat(&want)?.contains(&0.),
                    "{what}: no ReLU at work"
                );
                close(&flat(&got)?, &flat(&want)?, 1e-5);
                let g = Tensor::from_vec(wave(n, 0.7, 0.3), *dims, &dev)?;
                let got_grads = (&got * &g)?.sum_all()?.backward()?;
                let want_grads = (&want * &g)?.sum_all()?.backward()?;
                for (name, a, b) in [
                    ("input", leaf.as_tensor(), leaf.as_tensor()),
                    ("weight", ours_w.as_tensor(), theirs_w.as_tensor()),
                    ("bias", ours_b.as_tensor(), theirs_b.as_tensor()),
                    ("residual", r, r),
                ] {
                    let (a, b) = (got_grads.get(a), want_grads.get(b));
                    if name == "residual" && step < 2 {
                        assert!(a.is_none() && b.is_none(), "{what}: a residual gradient");
                        continue;
                    }
                    let a = a.unwrap_or_else(|| panic!("{what}: no {name} gradient"));
                    let b = b.unwrap_or_else(|| panic!("{what}: no reference {name} gradient"));
                    assert_eq!(a.dims(), b.dims(), "{what}: {name} gradient shape");
                    close(&flat(a)?, &flat(b)?, 2e-4);
                }
                close(
                    &flat(ours.running_mean())?,
                    &flat(theirs.running_mean())?,
                    1e-6,
                );
                close(
                    &flat(ours.running_var())?,
                    &flat(theirs.running_var())?,
                    1e-5,
                );
                let eval = batch_norm_t(&ours, &x, false)?;
                close(&flat(&eval)?, &flat(&theirs.forward_t(&x, false)?)?, 1e-5);
            }
        }
        Ok(())
    }

    // The ResNet stem as modified by the paper (conv 7x7 stride (2,1) padding 3, then max-pool
    // 3x3 stride 1 padding 1) against torch, on an odd height so the last row is exercised.
    // Values and the gradient of sum(out * wave) w.r.t. the input come from:
    //
    // import torch, math
    // def wave(n, a, b): return torch.tensor([math.sin(i * a + b) for i in range(n)])
    // x = wave(2*9*5, 0.37, 0.1).reshape(1, 2, 9, 5).requires_grad_()
    // w = wave(3*2*7*7, 0.11, 0.5).reshape(3, 2, 7, 7)
    // b = wave(3, 1.3, 0.2)
    // y = torch.nn.functional.conv2d(x, w, b, stride=(2, 1), padding=3)
    // y = torch.nn.functional.max_pool2d(y, 3, stride=1, padding=1)
    // g = wave(y.numel(), 0.7, 0.3).reshape(y.shape)
    // (y * g).sum().backward()
    // print(list(y.shape)); print([round(v, 5) for v in y.flatten().tolist()])
    // print([round(v, 5) for v in x.grad.flatten().tolist()])
    #[test]
    fn stem_matches_torch() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_vec(wave(90, 0.37, 0.1), (1, 2, 9, 5), &dev)?;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let cfg = ConvConfig {
            in_channels: 2,
            out_channels: 3,
            kernel: 7,
            stride: (2, 1),
            padding: 3,
            bias: true,
            groups: 1,
        };
        let mut conv = Conv::new(cfg, vb)?;
        conv.weight = Tensor::from_vec(wave(294, 0.11, 0.5), (3, 2, 7, 7), &dev)?;
        conv.bias = Some(Tensor::from_vec(wave(3, 1.3, 0.2), 3, &dev)?);
        let y = max_pool_3x3(&conv.forward(x.as_tensor())?)?;
        assert_eq!(y.dims(), &[1, 3, 5, 5]);
        close(&y.flatten_all()?.to_vec1()?, &STEM_OUT, 1e-4);
        let g = Tensor::from_vec(wave(75, 0.7, 0.3), y.shape(), &dev)?;
        let grads = (y * g)?.sum_all()?.backward()?;
        let dx = grads.get(x.as_tensor()).expect("input gradient");
        close(&dx.flatten_all()?.to_vec1()?, &STEM_GRAD, 1e-4);
        Ok(())
    }

    const STEM_OUT: [f32; 75] = [
        1.04572, 1.69517, 2.32652, 3.0023, 3.0023, 2.25622, 2.25622, 2.32652, 3.0023, 3.0023,
        2.25622, 2.25622, 1.79659, 1.34944, 0.88838, 2.25622, 2.25622, 1.79659, 1.34944, 0.88838,
        -0.14547, -0.06801, 0.01267, 0.17576, 0.17576, 6.64086, 6.64086, 6.64086, 6.3759, 6.04593,
        6.64086, 6.64086, 6.64086, 6.3759, 6.04593, 1.74184, 1.75812, 1.76521, 1.76521, 1.76521,
        5.77242, 6.14114, 6.44768, 6.44768, 6.44768, 5.77242, 6.14114, 6.44768, 6.44768, 6.44768,
        0.51827, 0.51827, 0.37487, 0.305, 0.2355, 0.54879, 1.01827, 1.47948, 2.05252, 2.05252,
        0.54879, 1.01827, 1.47948, 2.05252, 2.05252, 3.38686, 3.38686, 2.85142, 2.23911, 2.05252,
        3.38686, 3.38686, 2.85142, 2.23911, 1.60379,
    ];
    const STEM_GRAD: [f32; 90] = [
        1.62767, 1.77471, 1.62049, 1.44668, -0.4113, 0.12351, -0.36889, -0.62763, -0.87878,
        -0.73779, -1.45793, -1.9197, -2.06726, -2.18983, -0.8414, -3.61671, -4.34161, -4.20868,
        -4.02487, -2.09983, -1.86386, -2.85043, -2.65122, -2.41996, -1.17375, -0.07428, -1.4055,
        -1.24606, -1.07156, -0.81238, 1.87307, 0.88432, 0.84949, 0.80439, -0.25601, 0.44523,
        0.44787, 0.35641, 0.26064, -0.12942, -1.36378, 0.05985, 0.03823, 0.01616, -0.00952,
        1.41973, 2.13098, 2.17993, 2.20252, 1.10414, 1.8083, 1.62076, 1.41581, 1.19374, -0.11368,
        0.39557, -0.07399, -0.33751, -0.59695, -0.67718, -3.64351, -3.4791, -3.7625, -4.00042,
        -2.87211, -2.93267, -3.07855, -3.18964, -3.26217, -1.57503, -0.88663, -1.95239, -1.96616,
        -1.95617, -0.79593, 2.18092, 0.76369, 0.81622, 0.85888, -0.22135, 2.01764, 0.91063,
        0.88779, 0.85422, -0.26367, -0.13517, 0.18834, 0.179, 0.16749, 0.51733,
    ];

    // torch: F.layer_norm(x, (4,), w, b) with x = wave(8, 0.9, 0.0).reshape(2, 4),
    // w = wave(4, 0.5, 1.0), b = wave(4, 0.3, 2.0); gradient of sum(y * wave(8, 0.7, 0.3)).
    // print(y.flatten().tolist(), x.grad.flatten().tolist())
    #[test]
    fn layer_norm_matches_torch_with_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_vec(wave(8, 0.9, 0.0), (2, 4), &dev)?;
        let ln = LayerNorm {
            weight: Tensor::from_vec(wave(4, 0.5, 1.0), 4, &dev)?,
            bias: Tensor::from_vec(wave(4, 0.3, 2.0), 4, &dev)?,
            eps: 1e-5,
        };
        let y = ln.forward(x.as_tensor())?;
        close(&y.flatten_all()?.to_vec1()?, &LN_OUT, 1e-4);
        let g = Tensor::from_vec(wave(8, 0.7, 0.3), (2, 4), &dev)?;
        let grads = (y * g)?.sum_all()?.backward()?;
        let dx = grads.get(x.as_tensor()).expect("input gradient");
        close(&dx.flatten_all()?.to_vec1()?, &LN_GRAD, 1e-4);
        Ok(())
    }

    const LN_OUT: [f32; 8] = [
        -0.32824, 1.38282, 1.5628, 0.04786, 1.13648, -0.40479, -0.03791, 1.13218,
    ];
    const LN_GRAD: [f32; 8] = [
        0.12695, 0.18435, -0.02065, -0.29065, 1.33502, 0.05888, -0.85083, -0.54306,
    ];
}
