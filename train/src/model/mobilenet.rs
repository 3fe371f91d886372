//! The light edge backbone ([`Backbone::Mobilenetv2`]): torchvision's MobileNetV2 (inverted
//! residuals with linear bottlenecks) at width 0.75, laid out as the ResNet's four stages so that the
//! same heads read it.
//!
//! Where it departs from MobileNetV2: the stem is a 3x3 convolution of stride (2,1) (the paper's
//! stem for 128x64 crops halves the rows only) and the 24-channel stage keeps stride 1 (as the
//! ResNet's stem pool does), so `layer3` is `[N, 72, H/8, W/4]` and `layer4` `[N, 512, H/16, W/8]`,
//! the ResNet's sizes; the last 1x1 convolution widens to 512 (MobileNetV2: 1280) and the
//! activations are ReLU (MobileNetV2: ReLU6, which only matters for fixed-point hardware). With
//! the `sa` heads 0.26 GMACs per 128x64 crop, against 2.71 for the paper's ResNet18 (counted from
//! the exported graphs by `benches/compare.py`).
//!
//! Variables: `conv1`, `bn1` (stem); `layer<s>.<i>.expand.{0,1}` (1x1 conv and batch norm, absent
//! at expansion 1), `.dw.{0,1}` (3x3 depthwise), `.project.{0,1}` (1x1, no ReLU); `conv_last`,
//! `bn_last`. ONNX mapping: each convolution a `Conv` (`group` = channels for the depthwise ones)
//! with its batch norm folded in, `Relu`, the residual sum an `Add`.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, VarBuilder};

use super::layers::{batch_norm_add_t, batch_norm_relu_t, batch_norm_t, Conv, ConvConfig};
use super::resnet::{batch_norm, stages_t, Features};

/// `(expansion, output channels, blocks, stride of the first block)` of each of MobileNetV2's
/// stages at width 0.75, grouped into the four stages the heads read.
const STAGES: [&[(usize, usize, usize, usize)]; 4] = [
    &[(1, 16, 1, 1), (6, 24, 2, 1)],
    &[(6, 24, 3, 2)],
    &[(6, 48, 4, 2), (6, 72, 3, 1)],
    &[(6, 120, 3, 2), (6, 240, 1, 1)],
];

/// Channels of the stem.
const STEM: usize = 24;

/// Channels of the last 1x1 convolution, the width of `v`.
const LAST: usize = 512;

/// A convolution and the batch norm after it.
type ConvBn = (Conv, BatchNorm);

fn conv_bn(cfg: ConvConfig, vb: VarBuilder) -> Result<ConvBn> {
    Ok((
        Conv::new(cfg, vb.pp("0"))?,
        batch_norm(cfg.out_channels, vb.pp("1"))?,
    ))
}

/// `relu(bn(conv(x)))`.
fn conv_bn_relu((conv, bn): &ConvBn, x: &Tensor, train: bool) -> Result<Tensor> {
    batch_norm_relu_t(bn, &conv.forward(x)?, None, train)
}

/// MobileNetV2's inverted residual: 1x1 expansion, 3x3 depthwise, 1x1 linear projection, and the
/// input added when the shape is kept.
#[derive(Debug, Clone)]
pub(crate) struct InvertedResidual {
    /// To `expansion * in` channels, with ReLU; none at expansion 1.
    pub(crate) expand: Option<ConvBn>,
    /// 3x3 depthwise at the block's stride, with ReLU.
    pub(crate) dw: ConvBn,
    /// Back to `out` channels, no ReLU.
    pub(crate) project: ConvBn,
    /// Whether the input is added (stride 1 and `in == out`).
    pub(crate) residual: bool,
}

impl InvertedResidual {
    fn new(
        cin: usize,
        cout: usize,
        expansion: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let hidden = cin * expansion;
        let expand = if expansion == 1 {
            None
        } else {
            Some(conv_bn(
                ConvConfig::new(cin, hidden, 1, 1, 0),
                vb.pp("expand"),
            )?)
        };
        Ok(Self {
            expand,
            dw: conv_bn(ConvConfig::depthwise(hidden, 3, stride), vb.pp("dw"))?,
            project: conv_bn(ConvConfig::new(hidden, cout, 1, 1, 0), vb.pp("project"))?,
            residual: stride == 1 && cin == cout,
        })
    }
}

impl ModuleT for InvertedResidual {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = match &self.expand {
            Some(expand) => conv_bn_relu(expand, x, train)?,
            None => x.clone(),
        };
        let y = conv_bn_relu(&self.dw, &y, train)?;
        let (conv, bn) = &self.project;
        let y = conv.forward(&y)?;
        match self.residual {
            true => batch_norm_add_t(bn, &y, x, train),
            false => batch_norm_t(bn, &y, train),
        }
    }
}

/// The backbone: stem, four stages of inverted residuals, the last 1x1 convolution.
#[derive(Debug, Clone)]
pub(crate) struct MobileNetV2 {
    /// 3x3, stride (2,1), padding 1, and its batch norm.
    pub(crate) stem: ConvBn,
    /// `layer1`..`layer4`.
    pub(crate) layers: [Vec<InvertedResidual>; 4],
    /// 1x1 to [`LAST`] channels and its batch norm.
    pub(crate) last: ConvBn,
}

impl MobileNetV2 {
    /// Output channels of `layer1`..`layer3` and of the last convolution.
    pub(crate) fn stage_widths() -> [usize; 4] {
        let last_of = |s: usize| STAGES[s][STAGES[s].len() - 1].1;
        [last_of(0), last_of(1), last_of(2), LAST]
    }

    /// Creates the backbone's variables at the root of `vb`.
    pub(crate) fn new(vb: VarBuilder) -> Result<Self> {
        let stem = ConvConfig {
            stride: (2, 1),
            ..ConvConfig::new(3, STEM, 3, 1, 1)
        };
        let mut cin = STEM;
        let mut stage = |index: usize| -> Result<Vec<InvertedResidual>> {
            let vb = vb.pp(format!("layer{}", index + 1));
            let mut blocks = Vec::new();
            for &(expansion, cout, n, stride) in STAGES[index] {
                for b in 0..n {
                    let s = if b == 0 { stride } else { 1 };
                    let i = blocks.len();
                    blocks.push(InvertedResidual::new(cin, cout, expansion, s, vb.pp(i))?);
                    cin = cout;
                }
            }
            Ok(blocks)
        };
        let layers = [stage(0)?, stage(1)?, stage(2)?, stage(3)?];
        let last = ConvConfig::new(cin, LAST, 1, 1, 0);
        Ok(Self {
            stem: (
                Conv::new(stem, vb.pp("conv1"))?,
                batch_norm(STEM, vb.pp("bn1"))?,
            ),
            layers,
            last: (
                Conv::new(last, vb.pp("conv_last"))?,
                batch_norm(LAST, vb.pp("bn_last"))?,
            ),
        })
    }

    /// Runs the backbone on `[N, 3, H, W]` images.
    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Features> {
        let y = conv_bn_relu(&self.stem, x, train)?;
        let Features { layer3, layer4 } = stages_t(&self.layers, &y, train)?;
        let layer4 = conv_bn_relu(&self.last, &layer4, train)?;
        Ok(Features { layer3, layer4 })
    }
}
