//! ONNX export: the network written as a standard opset-17 ONNX file that any runtime loads,
//! built from `tract_onnx::pb` messages and encoded with prost, BatchNorm folded into the layer
//! before it, the model card in the `edge_reid.card` metadata property, and every export checked
//! by running the file with tract against the candle forward pass (eval mode).
//!
//! - [`export_run`] exports a training run's checkpoint; [`export_onnx`] writes a network and
//!   its card; [`verify`] checks a written file.
//! - [`graph`]: a small ONNX graph builder (initializers, nodes, typed inputs and outputs, opset,
//!   metadata).
//! - `fold`: BatchNorm folding into convolution and linear weights.
//! - [`layers`]: network layers as ONNX nodes.
//! - `net`: the [`MultiTaskNet`] as one graph.
//! - [`quantize`]: int8 copies of exported files (QDQ form, calibrated on images).
//! - `check` (tests): running a hand-built file with tract and comparing with candle.

#[cfg(test)]
mod check;
pub(crate) mod fold;
pub mod graph;
pub mod layers;
mod net;
pub mod quantize;

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use clap::ValueEnum;
use edge_reid::attributes::ATTRIBUTES;
use edge_reid::card::{
    ChannelOrder, EmbeddingSpec, InputSpec, ModelCard, PersonSpec, Task, TrainingSummary,
    CARD_FORMAT_VERSION,
};
use prost::Message;
use tract_onnx::pb;

use crate::evaluate::{eval_net, Split};
use crate::loss::EMBEDDING_METRIC;
use crate::model::{MultiTaskNet, NetConfig, PreDetectorNet};
use crate::run::{RunDir, Trainable};
use crate::TrainError;
use edge_reid::card::GallerySize;
use edge_reid::model::Model;
use fold::to_vec;

/// Name of the graph input.
const INPUT: &str = "image";
/// Name of the embedding output.
const EMBEDDING: &str = "embedding";
/// Name of the person-vs-junk output.
const PERSON: &str = "person";

/// The largest absolute difference tolerated between the candle network and the exported file.
pub const TOLERANCE: f32 = 1e-4;

/// With half-float weights: the largest difference tolerated, relative to the output's largest
/// magnitude (at least 1). Rounding every weight to 11 significant bits moves outputs by a few
/// parts in 10^4 of their scale; this leaves a margin and still catches any wrong wiring.
pub const HALF_TOLERANCE: f32 = 1e-2;

/// How an exported file stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32, checked within [`TOLERANCE`].
    Full,
    /// IEEE half floats cast to f32 on load (half the file), checked within [`HALF_TOLERANCE`].
    Half,
}

impl Precision {
    /// The difference tolerated on an output whose largest magnitude is `scale`.
    fn tolerance(self, scale: f32) -> f32 {
        match self {
            Precision::Full => TOLERANCE,
            Precision::Half => HALF_TOLERANCE * scale.max(1.0),
        }
    }
}

/// Random images [`export_onnx`] checks the written file on.
const CHECK_SAMPLES: usize = 2;

/// What can go wrong while exporting or checking a model.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A candle operation failed while reading or running the network.
    #[error("reading the network: {0}")]
    Candle(#[from] candle_core::Error),
    /// The network cannot be written as this graph (a shape or parameter that does not fit).
    #[error("building the ONNX graph: {0}")]
    Graph(String),
    /// The card built for the model is inconsistent.
    #[error("model card: {0}")]
    Card(#[from] edge_reid::card::CardError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// tract could not load or run the exported file.
    #[error("{path}: tract: {message}")]
    Tract {
        /// The exported file.
        path: PathBuf,
        /// tract's error chain.
        message: String,
    },
    /// The exported file does not reproduce the network or does not match its card.
    #[error("{path}: {what} {detail}")]
    Mismatch {
        /// The exported file.
        path: PathBuf,
        /// The output or part of the file that differs.
        what: String,
        /// How it differs.
        detail: String,
    },
}

/// The card describing a network of `cfg` fed with `(pixel / 255 - mean) / std`, with the
/// embedding's calibrated unknown distance and the gallery size it was calibrated for, if any; the
/// training summary's backbone and head are set from `cfg`.
pub fn model_card(
    cfg: &NetConfig,
    mut training: TrainingSummary,
    mean: [f32; 3],
    std: [f32; 3],
    unknown: Option<(f32, GallerySize)>,
) -> ModelCard {
    let cli_name = |v: Option<clap::builder::PossibleValue>| {
        v.map(|v| v.get_name().to_string()).unwrap_or_default()
    };
    training.backbone = cli_name(cfg.backbone.to_possible_value());
    training.head = cli_name(cfg.head.to_possible_value());
    ModelCard {
        format_version: CARD_FORMAT_VERSION,
        task: Task::ArReid,
        input: input_spec(cfg.input_height, cfg.input_width, mean, std),
        attributes: ModelCard::standard_attributes(),
        embedding: Some(EmbeddingSpec {
            output: EMBEDDING.to_string(),
            dim: cfg.embedding_dim,
            metric: EMBEDDING_METRIC,
            unknown_distance: unknown.map(|(d, _)| d),
            unknown_gallery: unknown.and_then(|(_, size)| match size {
                GallerySize::All => None,
                GallerySize::Identities(n) => Some(n),
            }),
        }),
        person: cfg.person_head.then(|| PersonSpec {
            output: PERSON.to_string(),
        }),
        training,
        int8: None,
    }
}

/// The input of an exported model: `image`, RGB, fed as `(pixel / 255 - mean) / std`.
fn input_spec(height: usize, width: usize, mean: [f32; 3], std: [f32; 3]) -> InputSpec {
    InputSpec {
        name: INPUT.to_string(),
        height,
        width,
        mean,
        std,
        channel_order: ChannelOrder::Rgb,
    }
}

/// Exports `net` to `path` with its card (see [`model_card`]) and returns the card.
///
/// The file is written next to `path` under a temporary name, checked with [`verify`] on random
/// images, and only then renamed to `path`: a failed export leaves no file and an earlier model at
/// `path` untouched.
pub fn export_onnx(
    net: &MultiTaskNet,
    training: TrainingSummary,
    mean: [f32; 3],
    std: [f32; 3],
    unknown: Option<(f32, GallerySize)>,
    precision: Precision,
    path: &Path,
) -> Result<ModelCard, ExportError> {
    let card = model_card(net.config(), training, mean, std, unknown);
    card.check()?;
    let model = net::build(net, &card, precision)?;
    write_checked(&model, path, |tmp| {
        verify(net, tmp, CHECK_SAMPLES, precision)
    })?;
    Ok(card)
}

/// The card of a pre-detector for `height` x `width` crops: task `pre_detector`, one `person`
/// output, no attributes and no embedding.
pub fn pre_detector_card(
    (height, width): (usize, usize),
    training: TrainingSummary,
    mean: [f32; 3],
    std: [f32; 3],
) -> ModelCard {
    ModelCard {
        format_version: CARD_FORMAT_VERSION,
        task: Task::PreDetector,
        input: input_spec(height, width, mean, std),
        attributes: Vec::new(),
        embedding: None,
        person: Some(PersonSpec {
            output: PERSON.to_string(),
        }),
        training,
        int8: None,
    }
}

/// Exports a pre-detector to `path` like [`export_onnx`] (temporary file, checked against the
/// candle network within [`TOLERANCE`], then renamed) and returns its card.
pub fn export_pre_detector_onnx(
    net: &PreDetectorNet,
    training: TrainingSummary,
    mean: [f32; 3],
    std: [f32; 3],
    path: &Path,
) -> Result<ModelCard, ExportError> {
    let card = pre_detector_card(net.input_size(), training, mean, std);
    card.check()?;
    let model = net::build_pre_detector(net, &card)?;
    write_checked(&model, path, |tmp| {
        let (height, width) = net.input_size();
        let (model, x) = load_for_check(tmp, (height, width), CHECK_SAMPLES)?;
        let actual = model
            .run(&to_vec(&x)?, CHECK_SAMPLES)
            .map_err(|e| mismatch(tmp, "run", e.to_string()))?;
        let got = (0..CHECK_SAMPLES)
            .filter_map(|i| actual.person_logit(i))
            .collect();
        compare(
            tmp,
            vec![(PERSON.to_string(), net.forward_t(&x, false)?, got)],
            Precision::Full,
        )
    })?;
    Ok(card)
}

/// Writes `model` to a temporary file next to `path`, runs `check` on it, and renames it to `path`
/// only if the check passes; on failure the temporary file is removed.
fn write_checked(
    model: &pb::ModelProto,
    path: &Path,
    check: impl FnOnce(&Path) -> Result<f32, ExportError>,
) -> Result<(), ExportError> {
    let tmp = temp_path(path)?;
    let result = write_synced(model, &tmp)
        .and_then(|()| check(&tmp))
        .and_then(|_| {
            std::fs::rename(&tmp, path).map_err(|source| ExportError::Io {
                path: path.to_path_buf(),
                source,
            })
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn mismatch(path: &Path, what: &str, detail: String) -> ExportError {
    ExportError::Mismatch {
        path: path.to_path_buf(),
        what: what.to_string(),
        detail,
    }
}

/// Loads `path` with the runtime's loader for `n` crops and draws `n` random `height` x `width`
/// images to check it on.
fn load_for_check(
    path: &Path,
    (height, width): (usize, usize),
    n: usize,
) -> Result<(Model, Tensor), ExportError> {
    let model = Model::load(path, n).map_err(|e| ExportError::Tract {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let x = Tensor::randn(0f32, 1., (n, 3, height, width), &candle_core::Device::Cpu)?;
    Ok((model, x))
}

/// Checks an exported file against `net`: the runtime's own loader ([`edge_reid::model::Model`])
/// accepts it (its card parses and matches the graph), the card describes this network, and the
/// file run by tract on `samples` random images agrees with the candle network (eval mode) within
/// the tolerance of `precision` on every output. Returns the largest difference.
pub fn verify(
    net: &MultiTaskNet,
    path: &Path,
    samples: usize,
    precision: Precision,
) -> Result<f32, ExportError> {
    let n = samples.max(1);
    let cfg = net.config();
    let (model, x) = load_for_check(path, (cfg.input_height, cfg.input_width), n)?;
    let card = model.card();
    let described = (
        card.input.height,
        card.input.width,
        card.embedding.as_ref().map(|e| e.dim),
        card.attributes.len(),
        card.person.is_some(),
    );
    let network = (
        cfg.input_height,
        cfg.input_width,
        Some(cfg.embedding_dim),
        ATTRIBUTES.len(),
        cfg.person_head,
    );
    if described != network {
        return Err(mismatch(
            path,
            "card",
            format!(
                "describes (height, width, embedding, attributes, person) = {described:?}, \
                 the network is {network:?}"
            ),
        ));
    }

    let x = x.to_device(net.backbone.device())?;
    let expected = net.forward_t(&x, false)?;
    let actual = model
        .run(&to_vec(&x)?, n)
        .map_err(|e| mismatch(path, "run", e.to_string()))?;
    let mut pairs: Vec<(String, Tensor, Vec<f32>)> = vec![(
        EMBEDDING.to_string(),
        expected.embedding,
        actual.embeddings().unwrap_or_default().to_vec(),
    )];
    for (a, logits) in expected.attributes.into_iter().enumerate() {
        let got = (0..n)
            .flat_map(|i| actual.attribute_logits(i, a).unwrap_or_default().to_vec())
            .collect();
        pairs.push((ATTRIBUTES[a].output_name(), logits, got));
    }
    if let Some(person) = expected.person {
        let got = (0..n).filter_map(|i| actual.person_logit(i)).collect();
        pairs.push((PERSON.to_string(), person, got));
    }
    compare(path, pairs, precision)
}

/// Compares each `(output, expected, actual)` and returns the largest difference, or a mismatch
/// naming the first output that differs by more than the tolerance of `precision` or has the
/// wrong length.
fn compare(
    path: &Path,
    pairs: Vec<(String, Tensor, Vec<f32>)>,
    precision: Precision,
) -> Result<f32, ExportError> {
    let mut worst = 0f32;
    for (name, e, a) in pairs {
        let e = to_vec(&e)?;
        if e.len() != a.len() {
            return Err(mismatch(
                path,
                &format!("output {name:?}"),
                format!("has {} values, the network gives {}", a.len(), e.len()),
            ));
        }
        let d = e
            .iter()
            .zip(&a)
            .map(|(e, a)| (e - a).abs())
            .fold(
                0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            );
        let tolerance = precision.tolerance(e.iter().fold(0f32, |m, v| m.max(v.abs())));
        if d > tolerance {
            return Err(mismatch(
                path,
                &format!("output {name:?}"),
                format!("differs from the network by {d} (tolerance {tolerance})"),
            ));
        }
        worst = worst.max(d);
    }
    Ok(worst)
}

/// A temporary name next to `path`, in the same directory so that a rename replaces `path`
/// atomically.
fn temp_path(path: &Path) -> Result<PathBuf, ExportError> {
    let name = path.file_name().ok_or_else(|| ExportError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Encodes `model` into a new file at `path` and syncs it to disk.
fn write_synced(model: &pb::ModelProto, path: &Path) -> Result<(), ExportError> {
    std::fs::File::create(path)
        .and_then(|mut f| {
            f.write_all(&model.encode_to_vec())?;
            f.sync_all()
        })
        .map_err(|source| ExportError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Exports a run's checkpoint (`best.safetensors` or `last.safetensors`) to `out`, with a card
/// carrying that epoch's validation metrics; the file is verified against the network.
///
/// The card's unknown distance is calibrated on the run's validation split (the checkpoint is run
/// over it once, with `workers` decoding threads), and its open-set rates join the card's
/// validation metrics as `open_set_identified` and `open_set_rejected`. Where the run's dataset
/// folder is gone (exporting on another machine), the card has no unknown distance.
pub fn export_run(
    run: &RunDir,
    checkpoint: &Path,
    out: &Path,
    precision: Precision,
    workers: usize,
) -> Result<ModelCard, TrainError> {
    let cfg = run.read_config()?;
    let state = run.read_state()?;
    let epoch = if checkpoint == run.best() {
        state.best_epoch
    } else {
        state.epoch
    };
    let t = Trainable::load(&cfg.net, checkpoint, &Device::Cpu)?;
    let mut summary = state.summary(&cfg, epoch);
    let open_set = if cfg.data.is_dir() {
        eval_net(&cfg, &t.net, &cfg.data, Split::Validation, workers)
            .map_err(|e| {
                TrainError::Setting(format!(
                    "calibrating the unknown distance on the validation split of {}: {e}",
                    cfg.data.display()
                ))
            })?
            .open_set
    } else {
        None
    };
    if let Some(rates) = &open_set {
        summary
            .validation
            .insert("open_set_identified".into(), rates.identified);
        summary
            .validation
            .insert("open_set_rejected".into(), rates.rejected);
    }
    Ok(export_onnx(
        &t.net,
        summary,
        cfg.mean,
        cfg.std,
        open_set.map(|r| (r.max_distance, r.gallery)),
        precision,
        out,
    )?)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
    use candle_nn::{VarBuilder, VarMap};

    use edge_reid::card::{IMAGENET_MEAN, IMAGENET_STD};

    use super::graph::{Dim, GraphBuilder};
    use super::layers::ConvSpec;
    use super::*;
    use crate::model::{Backbone, BranchPool, HeadKind};
    use edge_reid::card::CARD_KEY;
    use tract_onnx::prelude::Framework;

    /// Small candle layers covering every emitter: conv + BN with stride (2, 1), ReLU, 3x3
    /// stride-1 max-pool, two parallel 1x1 conv + BN merged into one `Conv` for a residual, global
    /// average pool, Gemm + BatchNorm1d, LeakyReLU, and single-head attention over two tokens
    /// (from two merged linears) with LayerNorm.
    struct Tiny {
        conv1: candle_nn::Conv2d,
        bn1: candle_nn::BatchNorm,
        conv2: [candle_nn::Conv2d; 2],
        bn2: [candle_nn::BatchNorm; 2],
        fc: candle_nn::Linear,
        bn_fc: candle_nn::BatchNorm,
        tok: [candle_nn::Linear; 2],
        q: candle_nn::Linear,
        k: candle_nn::Linear,
        v: candle_nn::Linear,
        ln: candle_nn::LayerNorm,
    }

    impl Tiny {
        fn new(vb: VarBuilder) -> candle_core::Result<Self> {
            let c1 = candle_nn::Conv2dConfig {
                padding: 1,
                ..Default::default()
            };
            let c2 = |i| candle_nn::conv2d_no_bias(4, 4, 1, Default::default(), vb.pp(i));
            let bn = |c, p: &str| candle_nn::batch_norm(c, 1e-5, vb.pp(p));
            Ok(Tiny {
                conv1: candle_nn::conv2d(3, 4, 3, c1, vb.pp("conv1"))?,
                bn1: bn(4, "bn1")?,
                conv2: [c2("conv2a")?, c2("conv2b")?],
                bn2: [bn(4, "bn2a")?, bn(4, "bn2b")?],
                fc: candle_nn::linear(4, 6, vb.pp("fc"))?,
                bn_fc: bn(6, "bn_fc")?,
                tok: [
                    candle_nn::linear(4, 6, vb.pp("tok_a"))?,
                    candle_nn::linear(4, 6, vb.pp("tok_b"))?,
                ],
                q: candle_nn::linear(6, 6, vb.pp("q"))?,
                k: candle_nn::linear(6, 6, vb.pp("k"))?,
                v: candle_nn::linear_no_bias(6, 6, vb.pp("v"))?,
                ln: candle_nn::layer_norm(6, 1e-5, vb.pp("ln"))?,
            })
        }

        /// Returns (embedding [N, 6], attended tokens [N, 2, 6], second token [N, 6]).
        fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<[Tensor; 3]> {
            let h = self.conv1.forward(x)?;
            let rows: Vec<u32> = (0..h.dim(2)? as u32).step_by(2).collect();
            let rows = Tensor::new(rows.as_slice(), x.device())?;
            let h = h
                .index_select(&rows, 2)?
                .apply_t(&self.bn1, train)?
                .relu()?;
            // After ReLU, zero padding is the same as -inf padding for a max-pool.
            let h = h.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
            let h = h.max_pool2d_with_stride(3, 1)?;
            let ra = self.conv2[0].forward(&h)?.apply_t(&self.bn2[0], train)?;
            let rb = self.conv2[1].forward(&h)?.apply_t(&self.bn2[1], train)?;
            let h = (h + ra + rb)?.relu()?;
            let pooled = h.mean(D::Minus1)?.mean(D::Minus1)?;
            let emb = self.fc.forward(&pooled)?.apply_t(&self.bn_fc, train)?;
            let emb = candle_nn::ops::leaky_relu(&emb, 0.1)?;
            let tokens = Tensor::stack(
                &[self.tok[0].forward(&pooled)?, self.tok[1].forward(&pooled)?],
                1,
            )?;
            let (q, k, v) = (
                self.q.forward(&tokens)?,
                self.k.forward(&tokens)?,
                self.v.forward(&tokens)?,
            );
            let scores = (q.matmul(&k.t()?)? * (1.0 / 6f64.sqrt()))?;
            let att = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
            let att = self.ln.forward(&att)?;
            let second = att.i((.., 1))?;
            Ok([emb, att, second])
        }

        fn export(&self) -> Result<pb::ModelProto, ExportError> {
            let n = || Dim::Symbolic("N".into());
            fn spec(c: &candle_nn::Conv2d, stride: (usize, usize)) -> ConvSpec<'_> {
                ConvSpec {
                    weight: c.weight(),
                    bias: c.bias(),
                    stride,
                    padding: c.config().padding,
                    groups: 1,
                }
            }
            let mut g = GraphBuilder::new("tiny");
            let x = g.input("image", &[n(), Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(6)])?;
            let h = g.conv("conv1", &x, &[(spec(&self.conv1, (2, 1)), Some(&self.bn1))])?;
            let h = g.relu("relu1", &h);
            let h = g.max_pool("maxpool", &h, 3, 1, 1);
            let r = g.conv(
                "conv2",
                &h,
                &[
                    (spec(&self.conv2[0], (1, 1)), Some(&self.bn2[0])),
                    (spec(&self.conv2[1], (1, 1)), Some(&self.bn2[1])),
                ],
            )?;
            let ra = g.channels("conv2a", &r, 0, 4);
            let rb = g.channels("conv2b", &r, 4, 8);
            let h = g.node("add", "Add", &[&h, &ra], vec![]);
            let h = g.node("add", "Add", &[&h, &rb], vec![]);
            let h = g.relu("relu2", &h);
            let pooled = g.global_avg_pool("gap", &h);
            let emb = g.linear("fc", &pooled, &[(&self.fc, Some(&self.bn_fc))])?;
            let emb = g.leaky_relu("embedding", &emb, 0.1);
            g.output(&emb, "embedding", &[n(), Dim::Fixed(6)])?;
            let ab = g.linear(
                "tok",
                &pooled,
                &[(&self.tok[0], None), (&self.tok[1], None)],
            )?;
            let a = g.channels("tok_a", &ab, 0, 6);
            let a = g.reshape("tok_a.token", &a, &[0, 1, 6]);
            let b = g.channels("tok_b", &ab, 6, 12);
            let b = g.reshape("tok_b.token", &b, &[0, 1, 6]);
            let tokens = g.concat("tokens", &[&a, &b], 1);
            let q = g.token_linear("q", &tokens, &self.q)?;
            let k = g.token_linear("k", &tokens, &self.k)?;
            let v = g.token_linear("v", &tokens, &self.v)?;
            let kt = g.transpose("kt", &k, &[0, 2, 1]);
            let scores = g.node("scores", "MatMul", &[&q, &kt], vec![]);
            let scores = g.scale("scores.scaled", &scores, 1.0 / 6f32.sqrt())?;
            let att = g.softmax("att", &scores, -1);
            let att = g.node("attended", "MatMul", &[&att, &v], vec![]);
            let ln = &self.ln;
            let out = g.layer_norm("ln", &att, ln.weight(), ln.bias(), ln.eps())?;
            g.output(&out, "tokens_out", &[n(), Dim::Fixed(2), Dim::Fixed(6)])?;
            let second = g.take("second", &out, 1, 1);
            g.output(&second, "second", &[n(), Dim::Fixed(6)])?;
            Ok(g.finish())
        }
    }

    #[test]
    fn tiny_graph_matches_candle_in_tract() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let net = Tiny::new(VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        // A few training-mode passes on shifted inputs move the BN running stats away from 0 / 1.
        for i in 0..3 {
            let x = (Tensor::randn(0f32, 2., (4, 3, 8, 6), &dev).unwrap() + i as f64).unwrap();
            net.forward_t(&x, true).unwrap();
        }
        for bn in [&net.bn1, &net.bn2[1], &net.bn_fc] {
            let mean = bn.running_mean().to_vec1::<f32>().unwrap();
            assert!(mean.iter().any(|m| m.abs() > 0.05), "{mean:?}");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.onnx");
        write_synced(&net.export().unwrap(), &path).unwrap();

        let x = Tensor::randn(0f32, 1., (3, 3, 8, 6), &dev).unwrap();
        let expected = net.forward_t(&x, false).unwrap();
        let outs = check::run_tract(&path, &x).unwrap();
        let names = ["embedding", "tokens_out", "second"];
        assert_eq!(outs.len(), 3);
        for ((name, e), o) in names.iter().zip(&expected).zip(&outs) {
            let d = check::max_abs_diff(&path, name, e, o).unwrap();
            assert!(d < 1e-4, "{name}: candle vs tract {d}");
        }
        // The comparison can fail: a wrong input gives different outputs.
        let [other, _, _] = net.forward_t(&x.neg().unwrap(), false).unwrap();
        assert!(check::max_abs_diff(&path, "embedding", &other, &outs[0]).unwrap() > 1e-3);
        let err = check::max_abs_diff(&path, "embedding", &other.i(0..2).unwrap(), &outs[0]);
        assert!(err.unwrap_err().to_string().contains("shape"));

        if let Some((checker, ort)) = check::ort::run(&path, &x) {
            eprintln!("onnx checker: {checker}");
            assert_eq!(ort.len(), 3);
            for ((name, t), o) in names.iter().zip(&outs).zip(&ort) {
                let d = check::max_abs_diff(&path, name, t, o).unwrap();
                assert!(d < 1e-4, "{name}: tract vs onnxruntime {d}");
            }
        }
    }

    fn small_net(head: HeadKind, backbone: Backbone, person_head: bool) -> MultiTaskNet {
        net_of(&NetConfig::paper(backbone, head, 8, person_head, (32, 16)))
    }

    fn net_of(cfg: &NetConfig) -> MultiTaskNet {
        let vm = VarMap::new();
        let dev = Device::Cpu;
        let net = MultiTaskNet::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        // Training-mode passes on shifted inputs move every BatchNorm's running statistics.
        let shape = (4, 3, cfg.input_height, cfg.input_width);
        for i in 0..2 {
            let x = (Tensor::randn(0f32, 1.5, shape, &dev).unwrap() + i as f64).unwrap();
            net.forward_t(&x, true).unwrap();
        }
        let vars = vm.data().lock().unwrap();
        let last_bn = match cfg.backbone {
            Backbone::Mobilenetv2 => "layer4.0.dw.1",
            _ => "layer4.0.bn2",
        };
        let mean = vars[&format!("{last_bn}.running_mean")]
            .to_vec1::<f32>()
            .unwrap();
        assert!(mean.iter().any(|m| m.abs() > 0.01), "{mean:?}");
        drop(vars);
        net
    }

    fn summary() -> TrainingSummary {
        TrainingSummary {
            data: "synthetic".into(),
            epochs: 3,
            validation: [("map".to_string(), 0.5)].into_iter().collect(),
            ..Default::default()
        }
    }

    /// [`export_onnx`] with the test summary and ImageNet normalisation.
    fn export(
        net: &MultiTaskNet,
        unknown: Option<(f32, GallerySize)>,
        precision: Precision,
        path: &Path,
    ) -> Result<ModelCard, ExportError> {
        export_onnx(
            net,
            summary(),
            IMAGENET_MEAN,
            IMAGENET_STD,
            unknown,
            precision,
            path,
        )
    }

    /// Exports `net`, checks the card in the file and candle against tract (on another batch size
    /// than the export's own check), then tract against onnxruntime.
    fn export_and_check(net: &MultiTaskNet) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        let unknown = (0.5, GallerySize::Identities(10));
        let card = export(net, Some(unknown), Precision::Full, &path).unwrap();
        let embedding = card.embedding.as_ref().unwrap();
        assert_eq!(embedding.unknown_distance, Some(0.5));
        assert_eq!(embedding.unknown_gallery, Some(10));
        let cfg = net.config();
        assert_eq!(
            card.training.backbone,
            format!("{:?}", cfg.backbone).to_lowercase()
        );
        assert_eq!(card.person.is_some(), cfg.person_head);

        let proto = tract_onnx::onnx().proto_model_for_path(&path).unwrap();
        assert_eq!(proto.opset_import[0].version, 17);
        let json = &proto
            .metadata_props
            .iter()
            .find(|p| p.key == CARD_KEY)
            .unwrap()
            .value;
        assert_eq!(ModelCard::from_json(json).unwrap(), card);
        let ops: Vec<&str> = proto
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert!(!ops.contains(&"BatchNormalization"), "BatchNorm is folded");
        assert!(
            !ops.contains(&"Identity"),
            "outputs are named by their nodes"
        );

        let diff = verify(net, &path, 3, Precision::Full).unwrap();
        assert!(diff < TOLERANCE, "{diff}");

        tract_agrees_with_onnxruntime(&path, (cfg.input_height, cfg.input_width));
    }

    /// Runs the file at `path` with tract and (where Python has it) onnxruntime after
    /// `onnx.checker` on the same random `height` x `width` images; the outputs agree within 1e-4.
    fn tract_agrees_with_onnxruntime(path: &Path, size: (usize, usize)) {
        tract_agrees_with_onnxruntime_within(path, size, 0.0);
    }

    /// [`tract_agrees_with_onnxruntime`] within 1e-4 plus `relative` of each output's largest
    /// magnitude.
    fn tract_agrees_with_onnxruntime_within(
        path: &Path,
        (height, width): (usize, usize),
        relative: f32,
    ) {
        let x = Tensor::randn(0f32, 1., (3, 3, height, width), &Device::Cpu).unwrap();
        let tract = check::run_tract(path, &x).unwrap();
        if let Some((checker, ort)) = check::ort::run(path, &x) {
            eprintln!("onnx checker: {checker}");
            assert_eq!(ort.len(), tract.len());
            for (i, (t, o)) in tract.iter().zip(&ort).enumerate() {
                let d = check::max_abs_diff(path, &i.to_string(), t, o).unwrap();
                let scale = to_vec(t).unwrap().iter().fold(0f32, |m, v| m.max(v.abs()));
                let tolerance = 1e-4 + relative * scale;
                assert!(
                    d < tolerance,
                    "output {i}: tract vs onnxruntime {d} (scale {scale})"
                );
            }
        }
    }

    /// Half-float weights: about half the file, still within [`HALF_TOLERANCE`] of the
    /// network, and standard ONNX that onnxruntime runs like tract (within 1e-4 of each other).
    #[test]
    fn exports_half_weights() {
        let net = small_net(HeadKind::Sa, Backbone::Small, false);
        let dir = tempfile::tempdir().unwrap();
        let size = |precision, name: &str| {
            let path = dir.path().join(name);
            export(&net, None, precision, &path).unwrap();
            (path.clone(), std::fs::metadata(&path).unwrap().len())
        };
        let (_, full) = size(Precision::Full, "full.onnx");
        let (path, half) = size(Precision::Half, "half.onnx");
        assert!((half as f64) < 0.6 * full as f64, "{half} vs {full} bytes");
        // Within HALF_TOLERANCE of each output's scale (verify refuses more), but not exact.
        let diff = verify(&net, &path, 3, Precision::Half).unwrap();
        assert!(diff > 0.0, "the weights were rounded");
        tract_agrees_with_onnxruntime(&path, (32, 16));
    }

    /// An int8 copy of a half-float export: every convolution reads an int8 input and int8
    /// weights with a scale per output channel through the standard QDQ pairs, nothing half-float
    /// is left, the card says int8, the copy is within [`quantize::INT8_TOLERANCE`] of its source
    /// on the calibration images (its own check) and onnxruntime runs it as tract does.
    #[test]
    fn quantizes_an_export_to_int8() {
        use std::collections::HashMap;

        let net = small_net(HeadKind::Sa, Backbone::Small, false);
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("half.onnx");
        export(&net, None, Precision::Half, &source).unwrap();
        let data = dir.path().join("data");
        let train = data.join("bounding_box_train");
        std::fs::create_dir_all(&train).unwrap();
        for i in 0..6u32 {
            let picture = image::RgbImage::from_fn(16, 32, |x, y| {
                image::Rgb([
                    (x * 13 + i * 40) as u8,
                    (y * 7) as u8,
                    ((x + y) * 5 + i) as u8,
                ])
            });
            picture
                .save(train.join(format!("{i:04}_c1s1_000001_00.jpg")))
                .unwrap();
        }
        let out = dir.path().join("int8.onnx");
        let q = quantize::quantize_file(&source, &data, 4, &out).unwrap();
        assert!(q.difference > 0.0, "the copy is rounded");
        assert_eq!(q.card.int8.as_ref().unwrap().operators, ["Conv"]);

        let proto = tract_onnx::onnx().proto_model_for_path(&out).unwrap();
        let graph = proto.graph.as_ref().unwrap();
        let made_by: HashMap<&str, &pb::NodeProto> = graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
            .collect();
        let initializers: HashMap<&str, &pb::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let int8 = pb::tensor_proto::DataType::Int8 as i32;
        let convs: Vec<_> = graph.node.iter().filter(|n| n.op_type == "Conv").collect();
        assert!(convs.len() > 4, "{}", convs.len());
        for conv in convs {
            let x = made_by[conv.input[0].as_str()];
            assert_eq!(x.op_type, "DequantizeLinear", "{}", conv.name);
            assert_eq!(made_by[x.input[0].as_str()].op_type, "QuantizeLinear");
            let w = made_by[conv.input[1].as_str()];
            assert_eq!(w.op_type, "DequantizeLinear", "{}", conv.name);
            let (codes, scales) = (
                initializers[w.input[0].as_str()],
                initializers[w.input[1].as_str()],
            );
            assert_eq!(codes.data_type, int8);
            assert_eq!(scales.dims, [codes.dims[0]], "a scale per output channel");
            assert!(w.attribute.iter().any(|a| a.name == "axis" && a.i == 0));
        }
        assert!(graph.node.iter().all(|n| n.op_type != "Cast"));
        let half = pb::tensor_proto::DataType::Float16 as i32;
        assert!(graph.initializer.iter().all(|t| t.data_type != half));
        // The same rounded values, except that a value within a rounding error of the middle
        // between two int8 levels may go to either: one level of one input moves an output by
        // up to about 1% of its scale (seen: 0.7%); a wrong scale or axis moves it by all of it.
        tract_agrees_with_onnxruntime_within(&out, (32, 16), 0.02);

        let err =
            quantize::quantize_file(&out, &data, 4, &dir.path().join("again.onnx")).unwrap_err();
        assert!(err.to_string().contains("int8 copy already"), "{err}");
    }

    #[test]
    fn exports_the_pre_detector() {
        let vm = VarMap::new();
        let net = PreDetectorNet::new(
            32,
            16,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pre.onnx");
        let card =
            export_pre_detector_onnx(&net, summary(), IMAGENET_MEAN, IMAGENET_STD, &path).unwrap();
        assert_eq!(card.task, Task::PreDetector);
        assert!(card.attributes.is_empty() && card.embedding.is_none());

        let model = Model::load(&path, 2).unwrap();
        assert_eq!(model.card(), &card);
        let x = Tensor::randn(0f32, 1., (2, 3, 32, 16), &Device::Cpu).unwrap();
        let out = model.run(&to_vec(&x).unwrap(), 2).unwrap();
        let expected = to_vec(&net.forward_t(&x, false).unwrap()).unwrap();
        for (i, e) in expected.iter().enumerate() {
            let got = out.person_logit(i).unwrap();
            assert!(
                (got - e).abs() < TOLERANCE,
                "crop {i}: tract {got}, candle {e}"
            );
        }
        assert!(std::fs::metadata(&path).unwrap().len() < 1_000_000);
        tract_agrees_with_onnxruntime(&path, (32, 16));
    }

    #[test]
    fn exports_baseline_heads() {
        export_and_check(&small_net(HeadKind::Baseline, Backbone::Small, true));
    }

    #[test]
    fn exports_convhead() {
        export_and_check(&small_net(HeadKind::ConvHead, Backbone::Small, true));
    }

    #[test]
    fn exports_self_attention_heads() {
        export_and_check(&small_net(HeadKind::Sa, Backbone::Small, false));
    }

    #[test]
    fn exports_a_pooled_grid_and_the_earlier_variants() {
        // 64x32: layer3 is 8x8, pooled by 2x2 windows to the 4x4 grid.
        let grid = NetConfig::paper(Backbone::Small, HeadKind::ConvHead, 8, false, (64, 32));
        export_and_check(&net_of(&grid));
        // Global pooling and the embedding's BatchNorm + LeakyReLU on Sa, as runs before them.
        let earlier = NetConfig {
            branch_pool: BranchPool::Global,
            embedding_norm: true,
            ..NetConfig::paper(Backbone::Small, HeadKind::Sa, 8, true, (32, 16))
        };
        export_and_check(&net_of(&earlier));
    }

    #[test]
    fn exports_resnet18() {
        export_and_check(&small_net(HeadKind::Sa, Backbone::Resnet18, true));
    }

    /// The light backbone: its depthwise convolutions become `Conv`s with `group` = channels.
    #[test]
    fn exports_the_light_backbone() {
        for head in [HeadKind::Baseline, HeadKind::Sa] {
            export_and_check(&small_net(head, Backbone::Mobilenetv2, true));
        }
    }

    #[test]
    fn verify_refuses_another_network_and_export_replaces_atomically() {
        let net = small_net(HeadKind::Baseline, Backbone::Small, false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, b"old").unwrap();
        export(&net, None, Precision::Full, &path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");

        let other = small_net(HeadKind::Baseline, Backbone::Small, false);
        let err = verify(&other, &path, 2, Precision::Full)
            .unwrap_err()
            .to_string();
        assert!(err.contains("differs from the network"), "{err}");
        let with_person = small_net(HeadKind::Baseline, Backbone::Small, true);
        let err = verify(&with_person, &path, 2, Precision::Full)
            .unwrap_err()
            .to_string();
        assert!(err.contains("12, false), the network is"), "{err}");

        let missing = dir.path().join("missing/model.onnx");
        let err = export(&net, None, Precision::Full, &missing);
        assert!(err.unwrap_err().to_string().contains("missing/"));
    }
}
