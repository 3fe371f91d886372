//! The [`MultiTaskNet`] (and the [`PreDetectorNet`]) as one ONNX graph, following the mapping documented in the model's
//! modules: the ResNet backbone (BatchNorms folded into the convolutions), `v` = global average
//! pool of `layer4`, the attribute heads of the network's variant, the re-ID head (BatchNorm1d
//! folded into its `Gemm`) and the optional person head.
//!
//! Graph outputs, in this order: `embedding` `[N, D]`, `attr_<name>` `[N, classes]` in
//! [`ATTRIBUTES`] order, then `person` `[N, 1]` when the network has that head. The batch
//! dimension is the symbol `N`.
//!
//! The 12 attribute branches read the same tensor, so their first layers are merged: the
//! baseline's `fc1` layers into one `Gemm`, the convolutional branches' `conv` + `bn` into one
//! `Conv` (followed by one `Relu` and one pool); a `Slice` per branch takes its channels back.

use candle_nn::Linear;
use edge_reid::attributes::ATTRIBUTES;
use edge_reid::card::{ModelCard, CARD_KEY};
use tract_onnx::pb;

use super::graph::{Dim, GraphBuilder};
use super::layers::ConvSpec;
use super::{ExportError, Precision, EMBEDDING, INPUT, PERSON};
use crate::model::heads::{AttributeHeads, ConvBranch, SaHead, SelfAttention};
use crate::model::layers::Conv;
use crate::model::mobilenet::{InvertedResidual, MobileNetV2};
use crate::model::resnet::{BasicBlock, ResNet};
use crate::model::PreDetectorNet;
use crate::model::{BackboneNet, BranchPool, MultiTaskNet, NetConfig, BRANCH_GRID};

/// The batch dimension's symbol.
const BATCH: &str = "N";

fn batch() -> Dim {
    Dim::Symbolic(BATCH.to_string())
}

/// A model convolution's parameters.
fn spec(conv: &Conv) -> ConvSpec<'_> {
    ConvSpec {
        weight: &conv.weight,
        bias: conv.bias.as_ref(),
        stride: conv.cfg.stride,
        padding: conv.cfg.padding,
        groups: conv.cfg.groups,
    }
}

/// The whole network as an ONNX model carrying `card` (which describes it) in its metadata, with
/// half-float weights when `precision` says so.
pub(super) fn build(
    net: &MultiTaskNet,
    card: &ModelCard,
    precision: Precision,
) -> Result<pb::ModelProto, ExportError> {
    let cfg = net.config();
    let mut g = GraphBuilder::new("edge_reid").half_weights(precision == Precision::Half);
    let image = image_input(&mut g, (cfg.input_height, cfg.input_width))?;
    let (layer3, layer4) = match &net.backbone {
        BackboneNet::ResNet(resnet) => backbone(&mut g, resnet, &image)?,
        BackboneNet::MobileNetV2(mobilenet) => mobilenet_backbone(&mut g, mobilenet, &image)?,
    };
    let v = g.global_avg_pool("v", &layer4);

    let reid = &net.reid;
    let embedding = match &reid.bn {
        Some(bn) => {
            let y = g.linear("reid.fc", &v, &[(&reid.fc, Some(bn))])?;
            g.leaky_relu(EMBEDDING, &y, reid.negative_slope)
        }
        None => g.linear(EMBEDDING, &v, &[(&reid.fc, None)])?,
    };
    g.output(
        &embedding,
        EMBEDDING,
        &[batch(), Dim::Fixed(cfg.embedding_dim)],
    )?;

    let logits = attribute_heads(&mut g, &net.attributes, &layer3, cfg, &v)?;
    for (attribute, value) in ATTRIBUTES.iter().zip(&logits) {
        g.output(
            value,
            &attribute.output_name(),
            &[batch(), Dim::Fixed(attribute.classes())],
        )?;
    }

    if let Some(person) = &net.person {
        let logit = g.linear(PERSON, &v, &[(person, None)])?;
        g.output(&logit, PERSON, &[batch(), Dim::Fixed(1)])?;
    }

    g.metadata(CARD_KEY, &card.to_json());
    Ok(g.finish())
}

/// The pre-detector as an ONNX model carrying `card`: backbone, global average pool, `person`
/// `[N, 1]`.
pub(super) fn build_pre_detector(
    net: &PreDetectorNet,
    card: &ModelCard,
) -> Result<pb::ModelProto, ExportError> {
    let mut g = GraphBuilder::new("edge_reid_pre_detector");
    let image = image_input(&mut g, net.input_size())?;
    let (_, layer4) = backbone(&mut g, &net.backbone, &image)?;
    let v = g.global_avg_pool("v", &layer4);
    let logit = g.linear(PERSON, &v, &[(&net.person, None)])?;
    g.output(&logit, PERSON, &[batch(), Dim::Fixed(1)])?;
    g.metadata(CARD_KEY, &card.to_json());
    Ok(g.finish())
}

/// The graph input `image` `[N, 3, height, width]`.
fn image_input(
    g: &mut GraphBuilder,
    (height, width): (usize, usize),
) -> Result<String, ExportError> {
    g.input(
        INPUT,
        &[
            batch(),
            Dim::Fixed(3),
            Dim::Fixed(height),
            Dim::Fixed(width),
        ],
    )
}

/// Stem and `layer1`..`layer4`; returns the outputs of `layer3` and `layer4`.
fn backbone(
    g: &mut GraphBuilder,
    resnet: &ResNet,
    image: &str,
) -> Result<(String, String), ExportError> {
    let x = g.conv("conv1", image, &[(spec(&resnet.conv1), Some(&resnet.bn1))])?;
    let x = g.relu("relu", &x);
    // The model's stem pool: 3x3, stride 1, padding 1.
    let x = g.max_pool("maxpool", &x, 3, 1, 1);
    stages(g, &resnet.layers, x, basic_block)
}

/// The stem's output `x` through four stages, each block exported by `block` under its name
/// (`layer<s>.<i>`); returns the outputs of `layer3` and `layer4`.
fn stages<B>(
    g: &mut GraphBuilder,
    layers: &[Vec<B>; 4],
    x: String,
    block: impl Fn(&mut GraphBuilder, &str, &B, &str) -> Result<String, ExportError>,
) -> Result<(String, String), ExportError> {
    let mut stage = |index: usize, x: String| {
        let mut blocks = layers[index].iter().enumerate();
        blocks.try_fold(x, |x, (i, b)| {
            block(g, &format!("layer{}.{i}", index + 1), b, &x)
        })
    };
    let layer3 = (0..3).try_fold(x, |x, index| stage(index, x))?;
    let layer4 = stage(3, layer3.clone())?;
    Ok((layer3, layer4))
}

/// The light backbone's stem, `layer1`..`layer4` and last convolution; returns the outputs of
/// `layer3` and of the last convolution.
fn mobilenet_backbone(
    g: &mut GraphBuilder,
    net: &MobileNetV2,
    image: &str,
) -> Result<(String, String), ExportError> {
    let (conv, bn) = &net.stem;
    let x = g.conv("conv1", image, &[(spec(conv), Some(bn))])?;
    let x = g.relu("relu", &x);
    let (layer3, y) = stages(g, &net.layers, x, inverted_residual)?;
    let (conv, bn) = &net.last;
    let y = g.conv("conv_last", &y, &[(spec(conv), Some(bn))])?;
    Ok((layer3, g.relu("relu_last", &y)))
}

/// `project(relu(dw(relu(expand(x))))) (+ x)`, BatchNorms folded.
fn inverted_residual(
    g: &mut GraphBuilder,
    name: &str,
    block: &InvertedResidual,
    x: &str,
) -> Result<String, ExportError> {
    let mut y = x.to_string();
    let with_relu = block.expand.iter().map(|cb| ("expand", cb));
    for (part, (conv, bn)) in with_relu.chain([("dw", &block.dw)]) {
        let z = g.conv(&format!("{name}.{part}"), &y, &[(spec(conv), Some(bn))])?;
        y = g.relu(&format!("{name}.{part}.relu"), &z);
    }
    let (conv, bn) = &block.project;
    let y = g.conv(&format!("{name}.project"), &y, &[(spec(conv), Some(bn))])?;
    Ok(match block.residual {
        true => g.node(&format!("{name}.add"), "Add", &[&y, x], vec![]),
        false => y,
    })
}

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, BatchNorms folded.
fn basic_block(
    g: &mut GraphBuilder,
    name: &str,
    block: &BasicBlock,
    x: &str,
) -> Result<String, ExportError> {
    let y = g.conv(
        &format!("{name}.conv1"),
        x,
        &[(spec(&block.conv1), Some(&block.bn1))],
    )?;
    let y = g.relu(&format!("{name}.relu1"), &y);
    let y = g.conv(
        &format!("{name}.conv2"),
        &y,
        &[(spec(&block.conv2), Some(&block.bn2))],
    )?;
    let shortcut = match &block.downsample {
        Some((conv, bn)) => g.conv(&format!("{name}.downsample"), x, &[(spec(conv), Some(bn))])?,
        None => x.to_string(),
    };
    let sum = g.node(&format!("{name}.add"), "Add", &[&y, &shortcut], vec![]);
    Ok(g.relu(name, &sum))
}

/// The 12 attribute logits `[N, classes]`, in [`ATTRIBUTES`] order.
fn attribute_heads(
    g: &mut GraphBuilder,
    heads: &AttributeHeads,
    layer3: &str,
    cfg: &NetConfig,
    v: &str,
) -> Result<Vec<String>, ExportError> {
    match heads {
        AttributeHeads::Baseline(branches) => {
            let fc1: Vec<_> = branches.iter().map(|b| (&b.fc1, None)).collect();
            let hidden = g.linear("attr.fc1", v, &fc1)?;
            let hidden = g.relu("attr.fc1.relu", &hidden);
            let mut start = 0;
            branches
                .iter()
                .zip(&ATTRIBUTES)
                .map(|(b, a)| {
                    let width = b.fc1.weight().dim(0)?;
                    let name = format!("attr.{}", a.name);
                    let h = g.channels(&format!("{name}.hidden"), &hidden, start, start + width);
                    start += width;
                    g.linear(&a.output_name(), &h, &[(&b.fc2, None)])
                })
                .collect()
        }
        AttributeHeads::ConvHead(branches) => {
            let pooled = conv_branches(g, branches, layer3, cfg)?;
            branches
                .iter()
                .zip(&ATTRIBUTES)
                .zip(pooled)
                .map(|((b, a), p)| g.linear(&a.output_name(), &p, &[(&b.fc, None)]))
                .collect()
        }
        AttributeHeads::Sa(head) => sa_head(g, head, layer3, cfg, v),
    }
}

/// The convolutional branches up to their pooled features: one merged `Conv` (BatchNorms folded),
/// `Relu`, the pool of `cfg` (global: `[N, 12 * branch]`; grid: `AveragePool` of the `layer3`
/// map to `[N, 12 * branch, 4, 4]`), then each branch's channels, flattened: `[N, features]`.
fn conv_branches(
    g: &mut GraphBuilder,
    branches: &[ConvBranch],
    layer3: &str,
    cfg: &NetConfig,
) -> Result<Vec<String>, ExportError> {
    let convs: Vec<_> = branches
        .iter()
        .map(|b| (spec(&b.conv), Some(&b.bn)))
        .collect();
    let maps = g.conv("attr.conv", layer3, &convs)?;
    let maps = g.relu("attr.conv.relu", &maps);
    let pool = cfg.branch_pool;
    let pooled = match pool {
        BranchPool::Global => g.global_avg_pool("attr.pool", &maps),
        BranchPool::Grid => {
            let (rows, cols) = cfg.layer3_size();
            let kernel = (rows / BRANCH_GRID.0, cols / BRANCH_GRID.1);
            g.avg_pool("attr.pool", &maps, kernel)
        }
    };
    let mut start = 0;
    let pooled = branches
        .iter()
        .zip(&ATTRIBUTES)
        .map(|(b, a)| {
            let width = b.conv.cfg.out_channels;
            let name = format!("attr.{}.pool", a.name);
            let p = g.channels(&name, &pooled, start, start + width);
            start += width;
            match pool {
                BranchPool::Global => p,
                BranchPool::Grid => g.flatten(&format!("{name}.flat"), &p),
            }
        })
        .collect();
    Ok(pooled)
}

/// The Sa head: tokens `[v', w_1..w_12]`, two-head self-attention with a residual, LayerNorm,
/// one classifier per attended `w_i`.
fn sa_head(
    g: &mut GraphBuilder,
    head: &SaHead,
    layer3: &str,
    cfg: &NetConfig,
    v: &str,
) -> Result<Vec<String>, ExportError> {
    let token = head.v_proj.weight().dim(0)?;
    let count = head.branches.len() + 1;
    let pooled = conv_branches(g, &head.branches, layer3, cfg)?;
    let v_token = g.linear("sa.v_proj", v, &[(&head.v_proj, None)])?;
    let mut tokens = vec![g.reshape("sa.v_proj.token", &v_token, &[0, 1, token as i64])];
    for ((b, a), p) in head.branches.iter().zip(&ATTRIBUTES).zip(pooled) {
        let name = format!("attr.{}.fc", a.name);
        let w = g.linear(&name, &p, &[(&b.fc, None)])?;
        tokens.push(g.reshape(&format!("{name}.token"), &w, &[0, 1, token as i64]));
    }
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let tokens = g.concat("sa.tokens", &tokens, 1);

    let attended = self_attention(g, &head.attention, &tokens, count, token)?;
    let residual = g.node("sa.residual", "Add", &[&tokens, &attended], vec![]);
    let norm = &head.norm;
    let normed = g.layer_norm(
        "sa.norm",
        &residual,
        &norm.weight,
        Some(&norm.bias),
        norm.eps,
    )?;

    head.classifiers
        .iter()
        .zip(&ATTRIBUTES)
        .enumerate()
        .map(|(i, (c, a))| {
            let w = g.take(&format!("attr.{}.attended", a.name), &normed, 1, i + 1);
            g.linear(&a.output_name(), &w, &[(c, None)])
        })
        .collect()
}

/// Multi-head self-attention over `[N, count, token]` tokens, as the model computes it.
fn self_attention(
    g: &mut GraphBuilder,
    att: &SelfAttention,
    tokens: &str,
    count: usize,
    token: usize,
) -> Result<String, ExportError> {
    let heads = att.heads;
    let head_dim = token / heads;
    // A projection of the tokens, [N, T, token] -> [N, heads, T, head_dim] (`perm` [0, 2, 1, 3]),
    // or [N, heads, head_dim, T] for the keys ([0, 2, 3, 1]).
    let mut split = |name: &str, linear: &Linear, perm: &[i64]| -> Result<String, ExportError> {
        let y = g.token_linear(name, tokens, linear)?;
        let shape = [0, count as i64, heads as i64, head_dim as i64];
        let y = g.reshape(&format!("{name}.heads"), &y, &shape);
        Ok(g.transpose(&format!("{name}.split"), &y, perm))
    };
    let q = split("sa.attention.q", &att.q, &[0, 2, 1, 3])?;
    let kt = split("sa.attention.k", &att.k, &[0, 2, 3, 1])?;
    let values = split("sa.attention.v", &att.v, &[0, 2, 1, 3])?;
    let scores = g.node("sa.attention.scores", "MatMul", &[&q, &kt], vec![]);
    let scores = g.scale(
        "sa.attention.scaled",
        &scores,
        (1.0 / (head_dim as f64).sqrt()) as f32,
    )?;
    let weights = g.softmax("sa.attention.weights", &scores, -1);
    let mixed = g.node("sa.attention.mixed", "MatMul", &[&weights, &values], vec![]);
    let mixed = g.transpose("sa.attention.merge", &mixed, &[0, 2, 1, 3]);
    let mixed = g.reshape(
        "sa.attention.merged",
        &mixed,
        &[0, count as i64, token as i64],
    );
    g.token_linear("sa.attention.out", &mixed, &att.out)
}
