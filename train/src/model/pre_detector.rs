//! The pre-detector's network: a [`Backbone::Tiny`] ResNet (the main network's stem and blocks),
//! global average pooling and one person-vs-junk logit. Trained by [`crate::pre_detector`].

use candle_core::{ModuleT, Result as CandleResult, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::global_avg_pool;
use super::resnet::ResNet;
use super::Backbone;

/// The person-vs-junk network: a tiny ResNet, global average pool, one logit.
#[derive(Debug, Clone)]
pub struct PreDetectorNet {
    pub(crate) input: (usize, usize),
    pub(crate) backbone: ResNet,
    pub(crate) person: Linear,
}

impl PreDetectorNet {
    /// Creates the variables in `vb` for `input_height` x `input_width` crops.
    pub fn new(input_height: usize, input_width: usize, vb: VarBuilder) -> CandleResult<Self> {
        if input_height == 0 || input_width == 0 {
            candle_core::bail!("input size {input_height}x{input_width} is empty");
        }
        let [.., global] = Backbone::Tiny.stage_widths();
        Ok(Self {
            input: (input_height, input_width),
            backbone: ResNet::new(Backbone::Tiny, vb.clone())?,
            person: super::layers::dense(global, 1, vb.pp("person"))?,
        })
    }

    /// Input `(height, width)`.
    pub fn input_size(&self) -> (usize, usize) {
        self.input
    }

    /// Person logits `[N, 1]` for normalised `[N, 3, H, W]` images.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if (c, h, w) != (3, self.input.0, self.input.1) {
            candle_core::bail!(
                "input is {:?}, the pre-detector takes [N, 3, {}, {}]",
                x.dims(),
                self.input.0,
                self.input.1
            );
        }
        let features = self.backbone.forward_t(x, train)?;
        self.person
            .forward_t(&global_avg_pool(&features.layer4)?, train)
    }
}
