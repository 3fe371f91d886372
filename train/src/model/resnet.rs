//! The ResNet backbone: torchvision's ResNet18 (BasicBlock, four stages) with the paper's stem for
//! 128x64 crops (conv1 stride (2,1), max-pool stride 1), or the same structure narrower and with one
//! block per stage ([`Backbone::Small`]). Variable names are torchvision's (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer2.0.downsample.0`, ...), so its ResNet18 weights load as they are.
//!
//! ONNX mapping: each convolution is a `Conv` (see [`super::layers`]), each batch norm a
//! `BatchNormalization` (or folded into the convolution before it), `relu` a `Relu`, the residual
//! sum an `Add`; the stem's pool is `MaxPool` 3x3 stride 1 padding 1.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, VarBuilder};

use super::layers::{batch_norm_relu_t, batch_norm_t, max_pool_3x3, Conv, ConvConfig};
use super::Backbone;

/// torch's `BatchNorm2d` defaults: epsilon 1e-5, momentum 0.1, learned scale and shift.
pub(crate) fn batch_norm(features: usize, vb: VarBuilder) -> Result<BatchNorm> {
    candle_nn::batch_norm(features, BatchNormConfig::default(), vb)
}

/// Shape of one residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockConfig {
    /// Input channels.
    pub(crate) in_channels: usize,
    /// Output channels.
    pub(crate) out_channels: usize,
    /// Stride of the first convolution (and of the downsample path).
    pub(crate) stride: usize,
}

/// torchvision's `BasicBlock`: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, where the
/// shortcut is `downsample.1(downsample.0(x))` (1x1 conv + batch norm) when the shape changes.
#[derive(Debug, Clone)]
pub(crate) struct BasicBlock {
    /// 3x3, stride `cfg.stride`.
    pub(crate) conv1: Conv,
    /// After `conv1`.
    pub(crate) bn1: BatchNorm,
    /// 3x3, stride 1.
    pub(crate) conv2: Conv,
    /// After `conv2`.
    pub(crate) bn2: BatchNorm,
    /// `downsample.0` (1x1 conv) and `downsample.1` (batch norm).
    pub(crate) downsample: Option<(Conv, BatchNorm)>,
}

impl BasicBlock {
    /// Creates the block's variables under `vb` (e.g. `layer2.0`).
    pub(crate) fn new(cfg: &BlockConfig, vb: VarBuilder) -> Result<Self> {
        let (cin, cout, s) = (cfg.in_channels, cfg.out_channels, cfg.stride);
        let downsample = if s != 1 || cin != cout {
            let vb = vb.pp("downsample");
            Some((
                Conv::new(ConvConfig::new(cin, cout, 1, s, 0), vb.pp("0"))?,
                batch_norm(cout, vb.pp("1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: Conv::new(ConvConfig::new(cin, cout, 3, s, 1), vb.pp("conv1"))?,
            bn1: batch_norm(cout, vb.pp("bn1"))?,
            conv2: Conv::new(ConvConfig::new(cout, cout, 3, 1, 1), vb.pp("conv2"))?,
            bn2: batch_norm(cout, vb.pp("bn2"))?,
            downsample,
        })
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = batch_norm_relu_t(&self.bn1, &self.conv1.forward(x)?, None, train)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => batch_norm_t(bn, &conv.forward(x)?, train)?,
            None => x.clone(),
        };
        batch_norm_relu_t(&self.bn2, &self.conv2.forward(&y)?, Some(&shortcut), train)
    }
}

/// The feature maps the heads read.
#[derive(Debug, Clone)]
pub(crate) struct Features {
    /// Output of `layer3` (ends with batch norm + ReLU), `[N, C3, H/8, W/4]`.
    pub(crate) layer3: Tensor,
    /// Output of `layer4`, `[N, C4, H/16, W/8]`.
    pub(crate) layer4: Tensor,
}

/// The backbone: stem (`conv1`, `bn1`, ReLU, max-pool) and `layer1`..`layer4`.
#[derive(Debug, Clone)]
pub(crate) struct ResNet {
    /// 7x7, stride (2,1), padding 3, 3 input channels.
    pub(crate) conv1: Conv,
    /// After `conv1`.
    pub(crate) bn1: BatchNorm,
    /// `layer1`..`layer4`, each a list of blocks.
    pub(crate) layers: [Vec<BasicBlock>; 4],
}

/// First-level variable names of the backbone; everything else in the model belongs to the heads.
pub(crate) const BACKBONE_PREFIXES: [&str; 6] =
    ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"];

impl ResNet {
    /// Creates the backbone's variables at the root of `vb` with torchvision names.
    pub(crate) fn new(backbone: Backbone, vb: VarBuilder) -> Result<Self> {
        let blocks = match backbone {
            Backbone::Resnet18 => 2,
            Backbone::Small | Backbone::Tiny => 1,
            Backbone::Mobilenetv2 => candle_core::bail!("{backbone:?} is not a ResNet"),
        };
        let widths = backbone.stage_widths();
        let stem = ConvConfig {
            stride: (2, 1),
            ..ConvConfig::new(3, widths[0], 7, 1, 3)
        };
        let mut in_channels = widths[0];
        let mut stage = |index: usize| -> Result<Vec<BasicBlock>> {
            let vb = vb.pp(format!("layer{}", index + 1));
            (0..blocks)
                .map(|b| {
                    let cfg = BlockConfig {
                        in_channels,
                        out_channels: widths[index],
                        stride: if b == 0 && index > 0 { 2 } else { 1 },
                    };
                    in_channels = widths[index];
                    BasicBlock::new(&cfg, vb.pp(b))
                })
                .collect()
        };
        let layers = [stage(0)?, stage(1)?, stage(2)?, stage(3)?];
        Ok(Self {
            conv1: Conv::new(stem, vb.pp("conv1"))?,
            bn1: batch_norm(widths[0], vb.pp("bn1"))?,
            layers,
        })
    }

    /// Runs the backbone on `[N, 3, H, W]` images.
    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Features> {
        let y = batch_norm_relu_t(&self.bn1, &self.conv1.forward(x)?, None, train)?;
        stages_t(&self.layers, &max_pool_3x3(&y)?, train)
    }
}

/// The stem's output `x` through four stages of blocks: `layer3` and `layer4`.
pub(crate) fn stages_t<B: ModuleT>(
    layers: &[Vec<B>; 4],
    x: &Tensor,
    train: bool,
) -> Result<Features> {
    let stage = |i: usize, x: Tensor| {
        layers[i]
            .iter()
            .try_fold(x, |y, block| block.forward_t(&y, train))
    };
    let layer3 = stage(2, stage(1, stage(0, x.clone())?)?)?;
    let layer4 = stage(3, layer3.clone())?;
    Ok(Features { layer3, layer4 })
}
