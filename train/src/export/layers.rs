//! candle-nn layers as ONNX nodes: each method reads a layer's parameters (eval mode), folds a
//! following BatchNorm into it where there is one, and wires the matching standard ONNX operator.
//!
//! | candle | ONNX |
//! |---|---|
//! | `Conv2d` (+ `BatchNorm`) | `Conv` with the BatchNorm folded into weight and bias |
//! | `Linear` (+ `BatchNorm1d`) on `[N, C]` | `Gemm` (`transB = 1`), BatchNorm folded |
//! | `Linear` on `[N, T, C]` | `MatMul` with the transposed weight, then `Add` |
//! | `LayerNorm` | `LayerNormalization` over the last axis |
//! | ReLU, LeakyReLU, max-pool, global average pool, softmax, ... | the operator of that name |

use candle_core::Tensor;
use candle_nn::{BatchNorm, Conv2d, LayerNorm, Linear};

use super::fold::{to_vec, WeightBias};
use super::graph::{attr_float, attr_int, attr_ints, GraphBuilder};
use super::ExportError;

impl GraphBuilder {
    /// An f32 initializer holding a candle tensor.
    pub fn tensor(&mut self, hint: &str, t: &Tensor) -> Result<String, ExportError> {
        self.initializer(hint, t.dims(), &to_vec(t)?)
    }

    /// A convolution (with its optional following BatchNorm folded in) with `strides` `[sh, sw]`;
    /// padding, dilation and groups come from the layer's config.
    pub fn conv(
        &mut self,
        name: &str,
        x: &str,
        conv: &Conv2d,
        bn: Option<&BatchNorm>,
        strides: [usize; 2],
    ) -> Result<String, ExportError> {
        let mut wb = WeightBias::new(name, conv.weight(), conv.bias())?;
        if let Some(bn) = bn {
            wb = wb.fold(name, bn)?;
        }
        let &[_, _, kh, kw] = wb.dims.as_slice() else {
            return Err(ExportError::Graph(format!(
                "{name}: conv weight has shape {:?}, expected [O, I, kh, kw]",
                wb.dims
            )));
        };
        let cfg = conv.config();
        let p = cfg.padding as i64;
        let d = cfg.dilation as i64;
        let w = self.initializer(&format!("{name}.weight"), &wb.dims, &wb.weight)?;
        let b = self.initializer(&format!("{name}.bias"), &[wb.bias.len()], &wb.bias)?;
        Ok(self.node(
            name,
            "Conv",
            &[x, &w, &b],
            vec![
                attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                attr_ints("strides", &[strides[0] as i64, strides[1] as i64]),
                attr_ints("pads", &[p, p, p, p]),
                attr_ints("dilations", &[d, d]),
                attr_int("group", cfg.groups as i64),
            ],
        ))
    }

    /// A linear layer on `[N, C]` as `Gemm`, with its optional following BatchNorm1d folded in.
    pub fn linear(
        &mut self,
        name: &str,
        x: &str,
        linear: &Linear,
        bn: Option<&BatchNorm>,
    ) -> Result<String, ExportError> {
        let mut wb = WeightBias::new(name, linear.weight(), linear.bias())?;
        if let Some(bn) = bn {
            wb = wb.fold(name, bn)?;
        }
        let w = self.initializer(&format!("{name}.weight"), &wb.dims, &wb.weight)?;
        let b = self.initializer(&format!("{name}.bias"), &[wb.bias.len()], &wb.bias)?;
        Ok(self.node(name, "Gemm", &[x, &w, &b], vec![attr_int("transB", 1)]))
    }

    /// A linear layer on `[N, T, C]` (tokens) as `MatMul` by the transposed weight, then `Add`.
    pub fn token_linear(
        &mut self,
        name: &str,
        x: &str,
        linear: &Linear,
    ) -> Result<String, ExportError> {
        let wt = linear.weight().t()?;
        let w = self.tensor(&format!("{name}.weight_t"), &wt)?;
        let y = self.node(&format!("{name}.matmul"), "MatMul", &[x, &w], vec![]);
        match linear.bias() {
            Some(bias) => {
                let b = self.tensor(&format!("{name}.bias"), bias)?;
                Ok(self.node(name, "Add", &[&y, &b], vec![]))
            }
            None => Ok(y),
        }
    }

    /// `LayerNormalization` over the last axis.
    pub fn layer_norm(
        &mut self,
        name: &str,
        x: &str,
        ln: &LayerNorm,
    ) -> Result<String, ExportError> {
        if !ln.remove_mean() {
            return Err(ExportError::Graph(format!(
                "{name}: an RMS norm is not a LayerNormalization"
            )));
        }
        let scale = self.tensor(&format!("{name}.weight"), ln.weight())?;
        let mut inputs = vec![x.to_string(), scale];
        if let Some(bias) = ln.bias() {
            inputs.push(self.tensor(&format!("{name}.bias"), bias)?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node(
            name,
            "LayerNormalization",
            &inputs,
            vec![attr_int("axis", -1), attr_float("epsilon", ln.eps() as f32)],
        ))
    }

    /// `Relu`.
    pub fn relu(&mut self, name: &str, x: &str) -> String {
        self.node(name, "Relu", &[x], vec![])
    }

    /// `LeakyRelu` with slope `alpha` below zero.
    pub fn leaky_relu(&mut self, name: &str, x: &str, alpha: f64) -> String {
        self.node(
            name,
            "LeakyRelu",
            &[x],
            vec![attr_float("alpha", alpha as f32)],
        )
    }

    /// Square `MaxPool` (padding counts as minus infinity, as in PyTorch).
    pub fn max_pool(
        &mut self,
        name: &str,
        x: &str,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> String {
        let (k, s, p) = (kernel as i64, stride as i64, pad as i64);
        self.node(
            name,
            "MaxPool",
            &[x],
            vec![
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("strides", &[s, s]),
                attr_ints("pads", &[p, p, p, p]),
            ],
        )
    }

    /// Global average pooling of `[N, C, H, W]` to `[N, C]`.
    pub fn global_avg_pool(&mut self, name: &str, x: &str) -> String {
        let pooled = self.node(&format!("{name}.pool"), "GlobalAveragePool", &[x], vec![]);
        self.flatten(name, &pooled)
    }

    /// `[N, ...]` to `[N, prod(...)]`.
    pub fn flatten(&mut self, name: &str, x: &str) -> String {
        self.node(name, "Flatten", &[x], vec![attr_int("axis", 1)])
    }

    /// `Softmax` along `axis`.
    pub fn softmax(&mut self, name: &str, x: &str, axis: i64) -> String {
        self.node(name, "Softmax", &[x], vec![attr_int("axis", axis)])
    }

    /// `Reshape` to `shape` (`0` copies the input's dimension, `-1` is inferred).
    pub fn reshape(&mut self, name: &str, x: &str, shape: &[i64]) -> String {
        let shape = self.ints(&format!("{name}.shape"), shape);
        self.node(name, "Reshape", &[x, &shape], vec![])
    }

    /// `Transpose` by `perm`.
    pub fn transpose(&mut self, name: &str, x: &str, perm: &[i64]) -> String {
        self.node(name, "Transpose", &[x], vec![attr_ints("perm", perm)])
    }

    /// `Concat` along `axis`.
    pub fn concat(&mut self, name: &str, xs: &[&str], axis: i64) -> String {
        self.node(name, "Concat", xs, vec![attr_int("axis", axis)])
    }

    /// Elementwise product with the scalar `factor`.
    pub fn scale(&mut self, name: &str, x: &str, factor: f32) -> Result<String, ExportError> {
        let f = self.initializer(&format!("{name}.factor"), &[], &[factor])?;
        Ok(self.node(name, "Mul", &[x, &f], vec![]))
    }
}
