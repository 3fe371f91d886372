//! The heads on top of the backbone (paper section 3): the 12 attribute heads in their three
//! variants, the re-ID embedding head and the person-vs-junk head.
//!
//! `v` is the global average pool of `layer4` (`[N, C4]`); `layer3` is the last block's output of
//! the third stage (after batch norm, residual add and ReLU). Widths scale with the backbone
//! ([`HeadWidths`]); for ResNet18: C3 = 256, C4 = 512, hidden = token = 128, branch = 64.
//!
//! Variable names and ONNX mapping (opset 17):
//! - Baseline, per attribute `attr.<name>.fc1` `[hidden, C4]` -> ReLU -> `attr.<name>.fc2`
//!   `[classes, hidden]`: `Gemm`, `Relu`, `Gemm`. Two layers rather than one so that each branch
//!   learns its own features from `v`, as the paper's "attribute-specific branches" intend.
//! - ConvHead, per attribute on `layer3`: `attr.<name>.conv` (3x3, stride 1, padding 1, no bias)
//!   -> `attr.<name>.bn` -> ReLU -> pool -> `attr.<name>.fc` `[classes, features]`: `Conv`,
//!   `BatchNormalization` (foldable), `Relu`, the pool, `Gemm`. The pool is the paper's flattened
//!   map ([`BranchPool::Grid`]): average-pooled to [`BRANCH_GRID`] cells first (`AveragePool`
//!   with kernel = stride, then `Flatten`), since flattening the whole `[branch, H/8, W/4]` map
//!   would give 12 dense layers of `branch*H*W/32` inputs each; `features` = `branch * 16`. Or
//!   global ([`BranchPool::Global`]: `GlobalAveragePool` + `Flatten`, `features` = `branch`).
//! - Sa: the same convolutional branches, whose `attr.<name>.fc` outputs a token `w_i` of width
//!   `token`; `sa.v_proj` projects `v` to a token; the 13 tokens `[v', w_1..w_12]` (`Unsqueeze` /
//!   `Reshape` + `Concat` on axis 1 to `[N, 13, token]`) go through two-head self-attention
//!   `sa.attention.{q,k,v,out}` (`MatMul` + `Add` for each projection, `Reshape` `[N,13,2,token/2]`,
//!   `Transpose` `[0,2,1,3]`, `MatMul` with the transposed keys, `Mul` by `1/sqrt(token/2)`,
//!   `Softmax(axis=-1)`, `MatMul`, `Transpose` back, `Reshape` `[N,13,token]`, output projection),
//!   a residual `Add` of the tokens, `sa.norm` (`LayerNormalization`), then per attribute the
//!   attended `w_i` (`Gather`/`Slice` on axis 1) through `attr.<name>.out` `[classes, token]`. The
//!   residual keeps each branch's own evidence when attention spreads the weights; the paper's text
//!   (attention -> layer norm -> dense) is read as the standard post-norm transformer layer.
//! - re-ID head: `reid.fc` `[D, C4]` (`Gemm`), then, where the config says so (the paper: for
//!   the baseline), `reid.bn` (BatchNorm1d) -> LeakyReLU(0.01): `BatchNormalization` (or folded
//!   into the `Gemm`), `LeakyRelu`.
//! - person head: `person` `[1, C4]`: `Gemm`.

use candle_core::{Module, ModuleT, Result, Tensor, D};
use candle_nn::{BatchNorm, Init, Linear, VarBuilder};
use edge_reid::attributes::ATTRIBUTES;

use super::layers::{
    batch_norm_t, dense, dense_with, global_avg_pool, split_channels, stacked_batch_norm_relu_t,
    torch_uniform, Conv, ConvConfig, LayerNorm,
};
use super::resnet::{batch_norm, Features};
use super::{Backbone, BranchPool, HeadKind, BRANCH_GRID};

/// Number of heads of the Sa variant's self-attention (the paper's "two-head attention layer").
pub(crate) const ATTENTION_HEADS: usize = 2;

/// Negative slope of the re-ID head's LeakyReLU (torch's default).
pub(crate) const REID_LEAKY_SLOPE: f64 = 0.01;

/// Widths of the heads, derived from the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadWidths {
    /// Channels of `layer3`.
    pub(crate) layer3: usize,
    /// Channels of `layer4`, the width of `v`.
    pub(crate) global: usize,
    /// Hidden width of the baseline's dense branches.
    pub(crate) hidden: usize,
    /// Channels of each convolutional branch.
    pub(crate) branch: usize,
    /// Width of the Sa variant's tokens.
    pub(crate) token: usize,
}

impl HeadWidths {
    /// The widths for `backbone`: a quarter of the stage it reads from.
    pub(crate) fn new(backbone: Backbone) -> Self {
        let [_, _, c3, c4] = backbone.stage_widths();
        Self {
            layer3: c3,
            global: c4,
            hidden: c4 / 4,
            branch: c3 / 4,
            token: c4 / 4,
        }
    }
}

/// A baseline attribute branch on `v`: `fc2(relu(fc1(v)))`.
#[derive(Debug, Clone)]
pub(crate) struct DenseBranch {
    /// `[hidden, C4]`.
    pub(crate) fc1: Linear,
    /// `[classes, hidden]`.
    pub(crate) fc2: Linear,
}

impl DenseBranch {
    /// Creates `fc1` and `fc2` under `vb` (`attr.<name>`).
    pub(crate) fn new(widths: &HeadWidths, classes: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: dense(widths.global, widths.hidden, vb.pp("fc1"))?,
            fc2: dense(widths.hidden, classes, vb.pp("fc2"))?,
        })
    }
}

impl Module for DenseBranch {
    fn forward(&self, v: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(v)?.relu()?)
    }
}

/// A convolutional attribute branch on `layer3`: `fc(pool(relu(bn(conv(x)))))`.
#[derive(Debug, Clone)]
pub(crate) struct ConvBranch {
    /// 3x3, stride 1, padding 1, no bias, `C3 -> branch`.
    pub(crate) conv: Conv,
    /// After `conv`.
    pub(crate) bn: BatchNorm,
    /// How the map is pooled before `fc`.
    pub(crate) pool: BranchPool,
    /// `[out, features]`: class logits (ConvHead) or the token `w_i` (Sa).
    pub(crate) fc: Linear,
}

impl ConvBranch {
    /// Creates the branch under `vb` (`attr.<name>`), ending in `out` features.
    pub(crate) fn new(
        widths: &HeadWidths,
        pool: BranchPool,
        out: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let features = match pool {
            BranchPool::Grid => widths.branch * BRANCH_GRID.0 * BRANCH_GRID.1,
            BranchPool::Global => widths.branch,
        };
        Ok(Self {
            conv: Conv::with_init(
                ConvConfig::new(widths.layer3, widths.branch, 3, 1, 1),
                torch_uniform(widths.layer3 * 9),
                vb.pp("conv"),
            )?,
            bn: batch_norm(widths.branch, vb.pp("bn"))?,
            pool,
            fc: dense(features, out, vb.pp("fc"))?,
        })
    }
}

/// What the convolutional branches give their dense layers, `[N, features]` each, computed for
/// all branches at once: they share their input, so their convolutions run as one over the stacked
/// kernels, their batch norms and ReLUs as one over the stacked channels, and one pooling (the
/// same function: each of these acts on its own output channels).
fn branch_features(branches: &[ConvBranch], x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
    let Some(first) = branches.first() else {
        return Ok(Vec::new());
    };
    if branches
        .iter()
        .any(|b| b.conv.bias.is_some() || b.pool != first.pool)
    {
        candle_core::bail!("attribute branches differ in bias or pooling");
    }
    let channels = || branches.iter().map(|b| b.conv.cfg.out_channels);
    let weights: Vec<&Tensor> = branches.iter().map(|b| &b.conv.weight).collect();
    let conv = Conv {
        cfg: ConvConfig {
            out_channels: channels().sum(),
            ..first.conv.cfg
        },
        weight: Tensor::cat(&weights, 0)?,
        bias: None,
    };
    let bns: Vec<&BatchNorm> = branches.iter().map(|b| &b.bn).collect();
    let y = stacked_batch_norm_relu_t(&bns, &conv.forward(x)?, train)?;
    let pooled = match first.pool {
        BranchPool::Global => global_avg_pool(&y)?.unsqueeze(2)?,
        BranchPool::Grid => {
            let (_, _, h, w) = y.dims4()?;
            y.avg_pool2d((h / BRANCH_GRID.0, w / BRANCH_GRID.1))?
                .flatten_from(2)?
        }
    };
    split_channels(&pooled, channels())?
        .iter()
        .map(|p| p.flatten_from(1))
        .collect()
}

/// The convolutional branches' outputs: each branch's dense layer on its features.
fn conv_branches(branches: &[ConvBranch], x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
    branch_features(branches, x, train)?
        .iter()
        .zip(branches)
        .map(|(f, b)| b.fc.forward(f))
        .collect()
}

/// Multi-head self-attention over `[N, T, d]` tokens (candle has no such module).
#[derive(Debug, Clone)]
pub(crate) struct SelfAttention {
    /// Number of heads; `d` is a multiple of it.
    pub(crate) heads: usize,
    /// Query projection `[d, d]`.
    pub(crate) q: Linear,
    /// Key projection `[d, d]`.
    pub(crate) k: Linear,
    /// Value projection `[d, d]`.
    pub(crate) v: Linear,
    /// Output projection `[d, d]`.
    pub(crate) out: Linear,
}

impl SelfAttention {
    /// Creates the four projections under `vb` (`sa.attention`).
    pub(crate) fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        if heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!("attention width {dim} is not a multiple of {heads} heads");
        }
        // As nn.MultiheadAttention: q, k, v Xavier uniform over their stacked [3d, d] matrix,
        // the output projection as nn.Linear, every bias zero.
        let bound = (6.0 / (4 * dim) as f64).sqrt();
        let xavier = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let projection =
            |name: &str, init: Init| dense_with(dim, dim, init, Init::Const(0.), vb.pp(name));
        Ok(Self {
            heads,
            q: projection("q", xavier)?,
            k: projection("k", xavier)?,
            v: projection("v", xavier)?,
            out: projection("out", torch_uniform(dim))?,
        })
    }
}

impl Module for SelfAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, t, d) = x.dims3()?;
        let head_dim = d / self.heads;
        let split = |p: &Linear| -> Result<Tensor> {
            p.forward(x)?
                .reshape((n, t, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(&self.q)?, split(&self.k)?, split(&self.v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (head_dim as f64).sqrt())?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let y = weights.matmul(&v)?.transpose(1, 2)?.reshape((n, t, d))?;
        self.out.forward(&y)
    }
}

/// The Sa variant: convolutional branches giving tokens, self-attention with the global token,
/// layer norm, one classifier per attribute.
#[derive(Debug, Clone)]
pub(crate) struct SaHead {
    /// One branch per attribute, each ending in a token.
    pub(crate) branches: Vec<ConvBranch>,
    /// `v` to a token, `[token, C4]`.
    pub(crate) v_proj: Linear,
    /// Two-head self-attention over the 13 tokens.
    pub(crate) attention: SelfAttention,
    /// Applied to `tokens + attention(tokens)`.
    pub(crate) norm: LayerNorm,
    /// One per attribute, `[classes, token]`, on its attended token.
    pub(crate) classifiers: Vec<Linear>,
}

impl SaHead {
    /// Creates the head: branches under `attr.<name>`, the rest under `sa`.
    pub(crate) fn new(widths: &HeadWidths, pool: BranchPool, vb: VarBuilder) -> Result<Self> {
        let mut branches = Vec::with_capacity(ATTRIBUTES.len());
        let mut classifiers = Vec::with_capacity(ATTRIBUTES.len());
        for a in &ATTRIBUTES {
            let vb = vb.pp("attr").pp(a.name);
            branches.push(ConvBranch::new(widths, pool, widths.token, vb.clone())?);
            classifiers.push(dense(widths.token, a.classes(), vb.pp("out"))?);
        }
        let sa = vb.pp("sa");
        Ok(Self {
            branches,
            v_proj: dense(widths.global, widths.token, sa.pp("v_proj"))?,
            attention: SelfAttention::new(widths.token, ATTENTION_HEADS, sa.pp("attention"))?,
            norm: LayerNorm::new(widths.token, sa.pp("norm"))?,
            classifiers,
        })
    }

    fn forward_t(&self, layer3: &Tensor, v: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let mut tokens = vec![self.v_proj.forward(v)?];
        tokens.extend(conv_branches(&self.branches, layer3, train)?);
        let tokens = Tensor::stack(&tokens, 1)?;
        let attended = self
            .norm
            .forward(&(&tokens + self.attention.forward(&tokens)?)?)?;
        self.classifiers
            .iter()
            .enumerate()
            .map(|(i, c)| c.forward(&attended.narrow(1, i + 1, 1)?.squeeze(1)?))
            .collect()
    }
}

/// The 12 attribute heads, in [`ATTRIBUTES`] order, in one of the paper's three variants.
#[derive(Debug, Clone)]
pub(crate) enum AttributeHeads {
    /// Dense branches on `v`.
    Baseline(Vec<DenseBranch>),
    /// Convolutional branches on `layer3`.
    ConvHead(Vec<ConvBranch>),
    /// Convolutional branches + self-attention with `v`.
    Sa(SaHead),
}

impl AttributeHeads {
    /// Creates the heads of `kind`.
    pub(crate) fn new(
        kind: HeadKind,
        widths: &HeadWidths,
        pool: BranchPool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let branch_vb = |name: &str| vb.pp("attr").pp(name);
        Ok(match kind {
            HeadKind::Baseline => Self::Baseline(
                ATTRIBUTES
                    .iter()
                    .map(|a| DenseBranch::new(widths, a.classes(), branch_vb(a.name)))
                    .collect::<Result<_>>()?,
            ),
            HeadKind::ConvHead => Self::ConvHead(
                ATTRIBUTES
                    .iter()
                    .map(|a| ConvBranch::new(widths, pool, a.classes(), branch_vb(a.name)))
                    .collect::<Result<_>>()?,
            ),
            HeadKind::Sa => Self::Sa(SaHead::new(widths, pool, vb)?),
        })
    }

    /// The 12 logit tensors `[N, classes]`.
    pub(crate) fn forward_t(
        &self,
        features: &Features,
        v: &Tensor,
        train: bool,
    ) -> Result<Vec<Tensor>> {
        match self {
            Self::Baseline(branches) => branches.iter().map(|b| b.forward(v)).collect(),
            Self::ConvHead(branches) => conv_branches(branches, &features.layer3, train),
            Self::Sa(head) => head.forward_t(&features.layer3, v, train),
        }
    }
}

/// The re-ID head: `fc(v)`, or `leaky_relu(bn(fc(v)))` with the embedding's normalisation.
#[derive(Debug, Clone)]
pub(crate) struct ReidHead {
    /// `[D, C4]`.
    pub(crate) fc: Linear,
    /// BatchNorm1d over the `D` features, then LeakyReLU, when configured.
    pub(crate) bn: Option<BatchNorm>,
    /// LeakyReLU's negative slope.
    pub(crate) negative_slope: f64,
}

impl ReidHead {
    /// Creates `fc` and, with `norm`, `bn` under `vb` (`reid`).
    pub(crate) fn new(widths: &HeadWidths, dim: usize, norm: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc: dense(widths.global, dim, vb.pp("fc"))?,
            bn: norm.then(|| batch_norm(dim, vb.pp("bn"))).transpose()?,
            negative_slope: REID_LEAKY_SLOPE,
        })
    }
}

impl ModuleT for ReidHead {
    fn forward_t(&self, v: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.fc.forward(v)?;
        match &self.bn {
            Some(bn) => {
                candle_nn::ops::leaky_relu(&batch_norm_t(bn, &y, train)?, self.negative_slope)
            }
            None => Ok(y),
        }
    }
}
