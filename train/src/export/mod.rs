//! ONNX export: the network written as a standard opset-17 ONNX file that any runtime loads,
//! built from `tract_onnx::pb` messages and encoded with prost, BatchNorm folded into the layer
//! before it, the model card in the `edge_reid.card` metadata property, and every export checked
//! by running the file with tract against the candle forward pass.
//!
//! - [`graph`]: a small ONNX graph builder (initializers, nodes, typed inputs and outputs, opset,
//!   metadata).
//! - [`fold`]: BatchNorm folding into convolution and linear weights.
//! - [`layers`]: candle-nn layers as ONNX nodes.
//! - [`check`]: running an exported file with tract and comparing with candle.

pub mod check;
pub mod fold;
pub mod graph;
pub mod layers;

use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;

/// What can go wrong while exporting or checking a model.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A candle operation failed while reading the network.
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
    /// The exported file does not reproduce the candle network.
    #[error("{path}: output {output:?} {detail}")]
    Mismatch {
        /// The exported file.
        path: PathBuf,
        /// The graph output that differs.
        output: String,
        /// How it differs.
        detail: String,
    },
}

/// Encodes `model` and writes it to `path` atomically: a temporary file in the same directory,
/// synced, then renamed over `path`, so a reader never sees a half-written model.
pub fn write_model(model: &pb::ModelProto, path: &Path) -> Result<(), ExportError> {
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(&model.encode_to_vec())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
    use candle_nn::{VarBuilder, VarMap};

    use super::graph::{Dim, GraphBuilder};
    use super::layers::ConvSpec;
    use super::*;

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
        write_model(&net.export().unwrap(), &path).unwrap();

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

    #[test]
    fn write_model_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, b"old").unwrap();
        let mut g = GraphBuilder::new("g");
        g.metadata("k", "v");
        let model = g.finish();
        write_model(&model, &path).unwrap();
        let back = pb::ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
        assert_eq!(back, model);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let err = write_model(&model, &dir.path().join("missing/m.onnx")).unwrap_err();
        assert!(err.to_string().contains("missing/m.onnx"), "{err}");
    }
}
