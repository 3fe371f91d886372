//! The multi-task network of the paper (section 3): a ResNet backbone (or the light MobileNetV2 of
//! `mobilenet.rs`), 12 attribute heads
//! (baseline, ConvHead or self-attention), a re-ID embedding head and an optional person-vs-junk
//! head, as candle blocks.
//!
//! Each block is a struct with `new(cfg, vb)` and `forward_t(x, train)` (`train` selects batch
//! statistics and running-statistics updates in every batch norm; validation and export use
//! `false`). The backbone's variables carry torchvision's names at the root of the `VarBuilder`,
//! the heads live under `attr.`, `sa.`, `reid.` and `person`.
//!
//! For the ONNX exporter every block's variables and hyper-parameters are `pub(crate)` fields, and
//! every operation maps to a standard ONNX operator: see the `//!` headers of `layers.rs`,
//! `resnet.rs` and `heads.rs`. At the top: `v` = `GlobalAveragePool` + `Flatten` of `layer4`; the
//! outputs are `embedding` (re-ID head), `attr_<name>` (one per attribute) and `person`.

mod cpu_conv;
mod cpu_depthwise;
mod cpu_norm;
mod cpu_pool;
pub(crate) mod heads;
pub mod init;
pub(crate) mod layers;
pub(crate) mod mobilenet;
mod pre_detector;
mod pretrained;
pub(crate) mod resnet;
#[cfg(test)]
mod torch_reference;

use candle_core::{Device, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use heads::{AttributeHeads, HeadWidths, ReidHead};
use layers::{dense, global_avg_pool};
use mobilenet::MobileNetV2;
use resnet::{Features, ResNet};

pub use pre_detector::PreDetectorNet;
pub use pretrained::{load_pretrained, PretrainedError};

/// Which backbone the network uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backbone {
    /// torchvision's ResNet18 (stage widths 64/128/256/512, two blocks per stage); loads
    /// ImageNet weights.
    Resnet18,
    /// The same structure with widths 16/32/64/128 and one block per stage, for tests and CPU runs.
    Small,
    /// Widths 8/16/32/64 and one block per stage: the pre-detector's backbone (a few MFLOPs per
    /// crop).
    Tiny,
    /// A light edge backbone: MobileNetV2 at width 0.75 in the ResNet's four stages (0.26 GMACs
    /// per 128x64 crop with the `sa` heads, against ResNet18's 2.71); no ImageNet weights.
    Mobilenetv2,
}

impl Backbone {
    /// Output channels of `layer1`..`layer4` (for a ResNet `layer1`'s is also the stem's).
    pub fn stage_widths(self) -> [usize; 4] {
        match self {
            Self::Resnet18 => [64, 128, 256, 512],
            Self::Small => [16, 32, 64, 128],
            Self::Tiny => [8, 16, 32, 64],
            Self::Mobilenetv2 => MobileNetV2::stage_widths(),
        }
    }
}

/// The backbone network a [`Backbone`] names.
#[derive(Debug, Clone)]
pub(crate) enum BackboneNet {
    /// The ResNets.
    ResNet(ResNet),
    /// The light backbone.
    MobileNetV2(MobileNetV2),
}

impl BackboneNet {
    /// Creates the backbone's variables at the root of `vb`.
    pub(crate) fn new(backbone: Backbone, vb: VarBuilder) -> Result<Self> {
        Ok(match backbone {
            Backbone::Mobilenetv2 => Self::MobileNetV2(MobileNetV2::new(vb)?),
            _ => Self::ResNet(ResNet::new(backbone, vb)?),
        })
    }

    /// Runs the backbone on `[N, 3, H, W]` images.
    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Features> {
        match self {
            Self::ResNet(net) => net.forward_t(x, train),
            Self::MobileNetV2(net) => net.forward_t(x, train),
        }
    }

    /// The device the variables live on.
    pub(crate) fn device(&self) -> &Device {
        match self {
            Self::ResNet(net) => net.conv1.weight.device(),
            Self::MobileNetV2(net) => net.stem.0.weight.device(),
        }
    }
}

/// Which attribute heads the network uses (paper section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// 12 dense branches on the global embedding `v`.
    Baseline,
    /// 12 convolutional branches on `layer3`.
    #[serde(rename = "convhead")]
    #[value(name = "convhead")]
    ConvHead,
    /// Convolutional branches whose embeddings attend to each other and to `v`.
    Sa,
}

/// How the convolutional attribute branches (ConvHead and Sa) turn their `layer3` map into the
/// features of their dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BranchPool {
    /// The paper's "densely connected layer on top of the flattened ... feature maps", with the
    /// map first average-pooled to a fixed [`BRANCH_GRID`] so that the layer's size does not grow
    /// with the input (for 128x64 crops `layer3` is 16x16: 4x4 windows).
    Grid,
    /// Global average pooling of the map (one value per channel): how runs before the grid were
    /// built.
    Global,
}

/// The cells (rows, columns) [`BranchPool::Grid`] pools a branch's map to.
pub const BRANCH_GRID: (usize, usize) = (4, 4);

/// Everything that fixes the network's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Backbone.
    pub backbone: Backbone,
    /// Attribute heads.
    pub head: HeadKind,
    /// Width of the re-ID embedding.
    pub embedding_dim: usize,
    /// Whether the network has a person-vs-junk logit.
    pub person_head: bool,
    /// Input height in pixels.
    pub input_height: usize,
    /// Input width in pixels.
    pub input_width: usize,
    /// How the ConvHead and Sa branches pool their maps (configs from before it: global).
    #[serde(default = "global_pool")]
    pub branch_pool: BranchPool,
    /// Whether the embedding goes through BatchNorm and LeakyReLU, which the paper adds to the
    /// baseline (configs from before it: always).
    #[serde(default = "always")]
    pub embedding_norm: bool,
}

fn global_pool() -> BranchPool {
    BranchPool::Global
}

fn always() -> bool {
    true
}

impl NetConfig {
    /// The paper's network for `backbone` and `head` at `input_height x input_width`: branches on
    /// the pooled grid, the embedding's BatchNorm and LeakyReLU for the baseline only.
    pub fn paper(
        backbone: Backbone,
        head: HeadKind,
        embedding_dim: usize,
        person_head: bool,
        (input_height, input_width): (usize, usize),
    ) -> Self {
        Self {
            backbone,
            head,
            embedding_dim,
            person_head,
            input_height,
            input_width,
            branch_pool: BranchPool::Grid,
            embedding_norm: head == HeadKind::Baseline,
        }
    }

    /// The `layer3` map's size (rows, columns) for this input: conv1 halves the rows, each
    /// later stage's first block halves both (rounding up, as padded stride-2 convolutions do).
    pub fn layer3_size(&self) -> (usize, usize) {
        let half = |n: usize| n.div_ceil(2);
        (
            half(half(half(self.input_height))),
            half(half(self.input_width)),
        )
    }
}

impl Default for NetConfig {
    /// The paper's network: ResNet18, baseline heads, 128-d embedding, 128x64 input.
    fn default() -> Self {
        Self::paper(
            Backbone::Resnet18,
            HeadKind::Baseline,
            128,
            false,
            (128, 64),
        )
    }
}

/// What the network computes for a batch.
#[derive(Debug, Clone)]
pub struct NetOutput {
    /// Re-ID embeddings, `[N, embedding_dim]`.
    pub embedding: Tensor,
    /// Attribute logits in [`edge_reid::attributes::ATTRIBUTES`] order, each `[N, classes]`.
    pub attributes: Vec<Tensor>,
    /// Person-vs-junk logits `[N, 1]`, when the network has that head.
    pub person: Option<Tensor>,
}

/// The multi-task network.
#[derive(Debug, Clone)]
pub struct MultiTaskNet {
    pub(crate) cfg: NetConfig,
    pub(crate) backbone: BackboneNet,
    pub(crate) attributes: AttributeHeads,
    pub(crate) reid: ReidHead,
    pub(crate) person: Option<Linear>,
}

impl MultiTaskNet {
    /// Creates the network's variables in `vb` (a `VarMap`-backed builder for training, or one
    /// reading a checkpoint).
    pub fn new(cfg: &NetConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.embedding_dim == 0 {
            candle_core::bail!("embedding_dim must be at least 1");
        }
        if cfg.input_height == 0 || cfg.input_width == 0 {
            candle_core::bail!(
                "input size {}x{} is empty",
                cfg.input_height,
                cfg.input_width
            );
        }
        let conv_head = matches!(cfg.head, HeadKind::ConvHead | HeadKind::Sa);
        let (rows, cols) = cfg.layer3_size();
        if conv_head
            && cfg.branch_pool == BranchPool::Grid
            && (rows % BRANCH_GRID.0 != 0 || cols % BRANCH_GRID.1 != 0)
        {
            candle_core::bail!(
                "input size {}x{} (WxH) gives a {cols}x{rows} layer3 map, which a {}x{} grid does \
                 not divide: use a height that is a multiple of 32 and a width of 16, or \
                 --branch-pool global",
                cfg.input_width,
                cfg.input_height,
                BRANCH_GRID.1,
                BRANCH_GRID.0
            );
        }
        let widths = HeadWidths::new(cfg.backbone);
        Ok(Self {
            cfg: *cfg,
            backbone: BackboneNet::new(cfg.backbone, vb.clone())?,
            attributes: AttributeHeads::new(cfg.head, &widths, cfg.branch_pool, vb.clone())?,
            reid: ReidHead::new(
                &widths,
                cfg.embedding_dim,
                cfg.embedding_norm,
                vb.pp("reid"),
            )?,
            person: if cfg.person_head {
                Some(dense(widths.global, 1, vb.pp("person"))?)
            } else {
                None
            },
        })
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Runs the network on normalised `[N, 3, input_height, input_width]` images. `train` uses
    /// batch statistics in the batch norms and updates their running statistics (N >= 2 then).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<NetOutput> {
        let (_, c, h, w) = x.dims4()?;
        if (c, h, w) != (3, self.cfg.input_height, self.cfg.input_width) {
            candle_core::bail!(
                "input is {:?}, the network takes [N, 3, {}, {}]",
                x.dims(),
                self.cfg.input_height,
                self.cfg.input_width
            );
        }
        let features = self.backbone.forward_t(x, train)?;
        let v = global_avg_pool(&features.layer4)?;
        Ok(NetOutput {
            embedding: self.reid.forward_t(&v, train)?,
            attributes: self.attributes.forward_t(&features, &v, train)?,
            person: self
                .person
                .as_ref()
                .map(|p| p.forward_t(&v, train))
                .transpose()?,
        })
    }
}

/// A batch's images as an `[n, 3, height, width]` tensor on `device` (taken out of the batch,
/// which keeps its labels).
pub(crate) fn images(
    batch: &mut crate::data::Batch,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(
        std::mem::take(&mut batch.images),
        (batch.n, 3, batch.height, batch.width),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{attribute_loss, person_loss, triplet_loss, KendallWeights, TripletMining};
    use candle_core::{DType, Device};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
    use edge_reid::attributes::ATTRIBUTES;

    const HEADS: [HeadKind; 3] = [HeadKind::Baseline, HeadKind::ConvHead, HeadKind::Sa];

    fn tiny(backbone: Backbone, head: HeadKind) -> NetConfig {
        NetConfig::paper(backbone, head, 8, true, (32, 16))
    }

    fn build(cfg: &NetConfig) -> (VarMap, MultiTaskNet) {
        let vm = VarMap::new();
        let net = MultiTaskNet::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
            .expect("network");
        (vm, net)
    }

    /// A deterministic `[n, 3, 32, 16]` batch.
    fn images(n: usize) -> Tensor {
        let v = (0..n * 3 * 32 * 16)
            .map(|i| ((i as f32) * 0.013).sin() + ((i / 512) as f32 * 0.7).cos())
            .collect();
        Tensor::from_vec(v, (n, 3, 32, 16), &Device::Cpu).expect("images")
    }

    /// The backbone starts as torchvision initialises ResNet and MobileNetV2 (convolutions
    /// Kaiming normal with fan-out, batch norms 1 and 0), the heads as PyTorch's layers do: `nn.Linear` and
    /// `nn.Conv2d` uniform in +-1/sqrt(fan_in), `nn.MultiheadAttention`'s q, k, v Xavier uniform
    /// over their stacked [3d, d] matrix with zero biases (the formulas of PyTorch's docs).
    #[test]
    fn variables_start_as_torchvision_and_pytorch_initialise_them() {
        let uniform = |bound: f64| (bound, bound / 3f64.sqrt());
        let variants = HEADS
            .map(|head| (Backbone::Small, head))
            .into_iter()
            .chain([(Backbone::Mobilenetv2, HeadKind::Sa)]);
        for (backbone, head) in variants {
            let cfg = NetConfig::paper(backbone, head, 128, true, (128, 64));
            let (vm, _) = build(&cfg);
            let data = vm.data().lock().unwrap();
            for (name, var) in data.iter() {
                let dims = var.dims().to_vec();
                let values = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let in_proj = ["q", "k", "v"]
                    .iter()
                    .any(|p| name.contains(&format!("attention.{p}.")));
                // (largest magnitude, standard deviation); None: a constant. A normal draw is
                // bounded at 7 sigma (about 1e-11 per value past it).
                let expected: Option<(f64, f64)> = match dims.as_slice() {
                    [out, _, k, _] if !name.starts_with("attr.") => {
                        let std = (2.0 / (out * k * k) as f64).sqrt();
                        Some((7.0 * std, std))
                    }
                    [_, fan_in, k, _] => Some(uniform(1.0 / ((fan_in * k * k) as f64).sqrt())),
                    [d, _] if in_proj => Some(uniform((6.0 / (4 * d) as f64).sqrt())),
                    [_, fan_in] => Some(uniform(1.0 / (*fan_in as f64).sqrt())),
                    // The bias of a dense layer (not the attention's, which start at zero).
                    [_] if !name.contains("attention") => name
                        .strip_suffix("bias")
                        .and_then(|layer| data.get(&format!("{layer}weight")))
                        .filter(|weight| weight.rank() == 2)
                        .map(|weight| uniform(1.0 / (weight.dims()[1] as f64).sqrt())),
                    _ => None,
                };
                let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
                let std = (values
                    .iter()
                    .map(|&v| (v as f64 - mean).powi(2))
                    .sum::<f64>()
                    / values.len() as f64)
                    .sqrt();
                let largest = values.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
                match expected {
                    Some((bound, want)) => {
                        // Drawn in f32: a draw at the bound may round just past it.
                        let bound_f32 = bound * (1.0 + f32::EPSILON as f64);
                        assert!(largest <= bound_f32, "{name}: |w| {largest} > {bound}");
                        if values.len() >= 100 {
                            // 8 standard errors of a sample std (at most sqrt(0.5 / n) relative,
                            // for a normal draw): never by chance, yet far from 2.4x or 0.
                            let tolerance = 8.0 * (0.5 / values.len() as f64).sqrt();
                            let ratio = std / want;
                            assert!(
                                (ratio - 1.0).abs() < tolerance,
                                "{name}: std {std}, expected {want}"
                            );
                        }
                    }
                    None => assert_eq!(std, 0.0, "{name} should start constant"),
                }
            }
        }
    }

    #[test]
    fn output_and_feature_shapes_for_every_variant() {
        for backbone in [Backbone::Small, Backbone::Resnet18, Backbone::Mobilenetv2] {
            let [_, _, c3, c4] = backbone.stage_widths();
            for head in HEADS {
                let (_, net) = build(&tiny(backbone, head));
                let x = images(2);
                let features = net.backbone.forward_t(&x, false).unwrap();
                // conv1 stride (2,1) halves rows only, the max-pool keeps the size.
                assert_eq!(features.layer3.dims(), &[2, c3, 4, 4]);
                assert_eq!(features.layer4.dims(), &[2, c4, 2, 2]);
                let out = net.forward_t(&x, false).unwrap();
                assert_eq!(out.embedding.dims(), &[2, 8], "{backbone:?} {head:?}");
                assert_eq!(out.attributes.len(), 12);
                for (a, logits) in ATTRIBUTES.iter().zip(&out.attributes) {
                    assert_eq!(logits.dims(), &[2, a.classes()], "{}", a.name);
                }
                assert_eq!(out.person.expect("person head").dims(), &[2, 1]);
            }
        }
    }

    #[test]
    fn names_follow_torchvision_and_wrong_inputs_are_refused() {
        let cfg = NetConfig {
            person_head: false,
            ..tiny(Backbone::Small, HeadKind::Sa)
        };
        let (vm, net) = build(&cfg);
        let vars = vm.data().lock().unwrap();
        for name in [
            "conv1.weight",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "layer2.0.downsample.0.weight",
            "layer4.0.downsample.1.bias",
            "attr.downcolor.conv.weight",
            "attr.age.out.weight",
            "sa.attention.q.weight",
            "sa.norm.bias",
            "reid.fc.weight",
        ] {
            assert!(vars.contains_key(name), "{name}");
        }
        // The paper's Sa network has no BatchNorm on the embedding.
        assert!(!vars.keys().any(|k| k.starts_with("reid.bn")));
        assert!(!vars.contains_key("layer1.0.downsample.0.weight"));
        assert!(!vars.keys().any(|k| k.starts_with("person")));
        drop(vars);
        assert!(net.forward_t(&images(2), false).unwrap().person.is_none());
        let wrong = Tensor::zeros((2, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
        let err = net.forward_t(&wrong, false).unwrap_err().to_string();
        assert!(err.contains("[N, 3, 32, 16]"), "{err}");
    }

    #[test]
    fn an_input_the_grid_does_not_divide_is_refused_with_the_way_out() {
        // 48x16 (HxW): layer3 is 6x4.
        let cfg = NetConfig::paper(Backbone::Small, HeadKind::Sa, 8, false, (48, 16));
        assert_eq!(cfg.layer3_size(), (6, 4));
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let err = MultiTaskNet::new(&cfg, vb.clone()).unwrap_err().to_string();
        assert!(
            err.contains("4x6 layer3 map") && err.contains("--branch-pool global"),
            "{err}"
        );
        let global = NetConfig {
            branch_pool: BranchPool::Global,
            ..cfg
        };
        assert!(MultiTaskNet::new(&global, vb).is_ok());
    }

    /// The full objective on a 2 x 2 batch: Kendall(attributes, triplet) + person.
    fn objective(
        net: &MultiTaskNet,
        kendall: &KendallWeights,
        x: &Tensor,
        targets: &Tensor,
    ) -> Tensor {
        let out = net.forward_t(x, true).unwrap();
        let l_ar = attribute_loss(&out.attributes, targets).unwrap();
        let l_id = triplet_loss(&out.embedding, &[0, 0, 1, 1], 0.3, TripletMining::All).unwrap();
        let person_t = Tensor::new(&[[1f32], [1.], [0.], [1.]], x.device()).unwrap();
        let l_p = person_loss(&out.person.unwrap(), &person_t).unwrap();
        (kendall.combine(&l_ar, &l_id).unwrap() + l_p).unwrap()
    }

    #[test]
    fn training_steps_reduce_the_loss_and_update_batch_norm() {
        let dev = &Device::Cpu;
        let x = images(4);
        let t: Vec<u32> = (0..4)
            .flat_map(|r| ATTRIBUTES.iter().map(move |a| (r % a.classes()) as u32))
            .collect();
        let targets = Tensor::from_vec(t, (4, 12), dev).unwrap();
        let variants = HEADS
            .map(|head| (Backbone::Small, head))
            .into_iter()
            .chain([(Backbone::Mobilenetv2, HeadKind::Sa)]);
        for (backbone, head) in variants {
            let (vm, net) = build(&tiny(backbone, head));
            let kendall =
                KendallWeights::new(VarBuilder::from_varmap(&vm, DType::F32, dev)).unwrap();
            let params = ParamsAdamW {
                lr: 1e-3,
                weight_decay: 0.0,
                ..Default::default()
            };
            let mut opt = AdamW::new(vm.all_vars(), params).unwrap();
            let eval_before = net.forward_t(&x, false).unwrap().embedding;
            let mut losses = Vec::new();
            for step in 0..8 {
                let loss = objective(&net, &kendall, &x, &targets);
                losses.push(loss.to_scalar::<f32>().unwrap());
                let grads = loss.backward().unwrap();
                if step == 0 {
                    // Every learned variable gets a gradient (running statistics are not learned).
                    for (name, var) in vm.data().lock().unwrap().iter() {
                        let learned =
                            !name.ends_with("running_mean") && !name.ends_with("running_var");
                        assert_eq!(grads.get(var).is_some(), learned, "{head:?} {name}");
                    }
                }
                opt.step(&grads).unwrap();
            }
            assert!(
                losses[7] < 0.9 * losses[0],
                "{backbone:?} {head:?}: the loss did not go down: {losses:?}"
            );
            assert_ne!(kendall.s_ar().unwrap(), 0.0, "s_ar is learned");
            let vars = vm.data().lock().unwrap();
            let first_bn = match backbone {
                Backbone::Mobilenetv2 => "layer1.0.dw.1",
                _ => "layer1.0.bn1",
            };
            let running: Vec<f32> = vars[&format!("{first_bn}.running_mean")].to_vec1().unwrap();
            assert!(
                running.iter().any(|v| v.abs() > 1e-4),
                "running mean updated"
            );
            drop(vars);
            // Eval mode uses the running statistics, which training moved.
            let eval_after = net.forward_t(&x, false).unwrap().embedding;
            let change = (eval_after - eval_before)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap();
            assert!(change.to_scalar::<f32>().unwrap() > 1e-3);
        }
    }
}
