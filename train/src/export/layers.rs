//! Network layers as ONNX nodes: each method reads a layer's parameters (eval mode), folds a
//! following BatchNorm into it where there is one, and wires the matching standard ONNX operator.
//!
//! | layer | ONNX |
//! |---|---|
//! | convolution (+ BatchNorm) | `Conv`, the BatchNorm folded into weight and bias |
//! | linear (+ BatchNorm1d) on `[N, C]` | `Gemm` (`transB = 1`), the BatchNorm folded |
//! | linear on `[N, T, C]` tokens | `MatMul` by the transposed weight, then `Add` |
//! | layer norm | `LayerNormalization` over the last axis |
//! | ReLU, LeakyReLU, max-pool, global average pool, softmax, ... | the operator of that name |
//!
//! Parallel branches reading the same input (the 12 attribute branches) can be given together to
//! [`GraphBuilder::conv`] and [`GraphBuilder::linear`]: they become one operator whose output
//! channels are the branches' in order, which runtimes execute as one larger matrix product;
//! [`GraphBuilder::channels`] then takes each branch's part.

use candle_core::Tensor;
use candle_nn::{BatchNorm, Linear};

use super::fold::{to_vec, WeightBias};
use super::graph::{attr_float, attr_int, attr_ints, GraphBuilder};
use super::ExportError;

/// A convolution's parameters: square or rectangular kernel, no dilation, dense or depthwise.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec<'a> {
    /// `[out, in, kh, kw]`.
    pub weight: &'a Tensor,
    /// `[out]`, if any.
    pub bias: Option<&'a Tensor>,
    /// Stride as (rows, columns).
    pub stride: (usize, usize),
    /// Zero padding on all four sides.
    pub padding: usize,
    /// 1, or the channels of a depthwise convolution.
    pub groups: usize,
}

/// Weights and biases of parallel layers, each with its BatchNorm folded in, stacked along the
/// output channels.
fn stacked(
    name: &str,
    layers: impl Iterator<Item = Result<WeightBias, ExportError>>,
) -> Result<WeightBias, ExportError> {
    let mut all: Option<WeightBias> = None;
    for layer in layers {
        let layer = layer?;
        match all.as_mut() {
            None => all = Some(layer),
            Some(all) => {
                if all.dims[1..] != layer.dims[1..] {
                    return Err(ExportError::Graph(format!(
                        "{name}: parallel layers of weight shapes {:?} and {:?} cannot be merged",
                        all.dims, layer.dims
                    )));
                }
                all.dims[0] += layer.dims[0];
                all.weight.extend(layer.weight);
                all.bias.extend(layer.bias);
            }
        }
    }
    all.ok_or_else(|| ExportError::Graph(format!("{name}: no layer given")))
}

/// A layer's weight and bias, with its following BatchNorm folded in.
fn folded(
    name: &str,
    weight: &Tensor,
    bias: Option<&Tensor>,
    bn: Option<&BatchNorm>,
) -> Result<WeightBias, ExportError> {
    let wb = WeightBias::new(name, weight, bias)?;
    match bn {
        Some(bn) => wb.fold(name, bn),
        None => Ok(wb),
    }
}

impl GraphBuilder {
    /// An f32 initializer holding a candle tensor.
    pub fn tensor(&mut self, hint: &str, t: &Tensor) -> Result<String, ExportError> {
        self.initializer(hint, t.dims(), &to_vec(t)?)
    }

    /// Weight and bias initializers named `name.weight`, `name.bias`.
    fn weight_bias(&mut self, name: &str, wb: &WeightBias) -> Result<[String; 2], ExportError> {
        Ok([
            self.initializer(&format!("{name}.weight"), &wb.dims, &wb.weight)?,
            self.initializer(&format!("{name}.bias"), &[wb.bias.len()], &wb.bias)?,
        ])
    }

    /// Convolutions (each with its optional following BatchNorm folded in) on `x` as one `Conv`;
    /// they must agree in kernel, stride and padding.
    pub fn conv(
        &mut self,
        name: &str,
        x: &str,
        convs: &[(ConvSpec, Option<&BatchNorm>)],
    ) -> Result<String, ExportError> {
        let Some((first, _)) = convs.first() else {
            return Err(ExportError::Graph(format!("{name}: no convolution given")));
        };
        if let Some((c, _)) = convs
            .iter()
            .find(|(c, _)| (c.stride, c.padding) != (first.stride, first.padding))
        {
            return Err(ExportError::Graph(format!(
                "{name}: parallel convolutions with strides {:?} / {:?} and paddings {} / {}",
                first.stride, c.stride, first.padding, c.padding
            )));
        }
        if first.groups != 1 && convs.len() > 1 {
            return Err(ExportError::Graph(format!(
                "{name}: depthwise convolutions cannot be merged"
            )));
        }
        let wb = stacked(
            name,
            convs
                .iter()
                .map(|(c, bn)| folded(name, c.weight, c.bias, *bn)),
        )?;
        let &[_, _, kh, kw] = wb.dims.as_slice() else {
            return Err(ExportError::Graph(format!(
                "{name}: conv weight has shape {:?}, expected [O, I, kh, kw]",
                wb.dims
            )));
        };
        let [w, b] = self.weight_bias(name, &wb)?;
        let p = first.padding as i64;
        let mut attributes = vec![
            attr_ints("kernel_shape", &[kh as i64, kw as i64]),
            attr_ints("strides", &[first.stride.0 as i64, first.stride.1 as i64]),
            attr_ints("pads", &[p, p, p, p]),
        ];
        if first.groups != 1 {
            attributes.push(attr_int("group", first.groups as i64));
        }
        Ok(self.node(name, "Conv", &[x, &w, &b], attributes))
    }

    /// Linear layers (each with its optional following BatchNorm1d folded in) on `[N, C]` as one
    /// `Gemm`.
    pub fn linear(
        &mut self,
        name: &str,
        x: &str,
        linears: &[(&Linear, Option<&BatchNorm>)],
    ) -> Result<String, ExportError> {
        let wb = stacked(
            name,
            linears
                .iter()
                .map(|(l, bn)| folded(name, l.weight(), l.bias(), *bn)),
        )?;
        if wb.dims.len() != 2 {
            return Err(ExportError::Graph(format!(
                "{name}: linear weight has shape {:?}, expected [out, in]",
                wb.dims
            )));
        }
        let [w, b] = self.weight_bias(name, &wb)?;
        Ok(self.node(name, "Gemm", &[x, &w, &b], vec![attr_int("transB", 1)]))
    }

    /// A linear layer on `[N, T, C]` tokens as `MatMul` by the transposed weight, then `Add`.
    pub fn token_linear(
        &mut self,
        name: &str,
        x: &str,
        linear: &Linear,
    ) -> Result<String, ExportError> {
        let w = self.tensor(&format!("{name}.weight_t"), &linear.weight().t()?)?;
        let y = self.node(&format!("{name}.matmul"), "MatMul", &[x, &w], vec![]);
        match linear.bias() {
            Some(bias) => {
                let b = self.tensor(&format!("{name}.bias"), bias)?;
                Ok(self.node(name, "Add", &[&y, &b], vec![]))
            }
            None => Ok(y),
        }
    }

    /// `LayerNormalization` over the last axis with scale `weight`, shift `bias` and `eps`.
    pub fn layer_norm(
        &mut self,
        name: &str,
        x: &str,
        weight: &Tensor,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<String, ExportError> {
        let mut inputs = vec![
            x.to_string(),
            self.tensor(&format!("{name}.weight"), weight)?,
        ];
        if let Some(bias) = bias {
            inputs.push(self.tensor(&format!("{name}.bias"), bias)?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node(
            name,
            "LayerNormalization",
            &inputs,
            vec![attr_int("axis", -1), attr_float("epsilon", eps as f32)],
        ))
    }

    /// Entries `start..end` of axis 1, the channels of `[N, C, ...]` (a `Slice`).
    pub fn channels(&mut self, name: &str, x: &str, start: usize, end: usize) -> String {
        let starts = self.ints(&format!("{name}.starts"), &[1], &[start as i64]);
        let ends = self.ints(&format!("{name}.ends"), &[1], &[end as i64]);
        let axes = self.ints(&format!("{name}.axes"), &[1], &[1]);
        self.node(name, "Slice", &[x, &starts, &ends, &axes], vec![])
    }

    /// Entry `index` of `axis`, dropping that axis (a `Gather` with a scalar index).
    pub fn take(&mut self, name: &str, x: &str, axis: i64, index: usize) -> String {
        let i = self.ints(&format!("{name}.index"), &[], &[index as i64]);
        self.node(name, "Gather", &[x, &i], vec![attr_int("axis", axis)])
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

    /// Global average pooling of `[N, C, H, W]` to `[N, C]` (`GlobalAveragePool`, `Flatten`).
    pub fn global_avg_pool(&mut self, name: &str, x: &str) -> String {
        let pooled = self.node(&format!("{name}.pool"), "GlobalAveragePool", &[x], vec![]);
        self.flatten(name, &pooled)
    }

    /// `AveragePool` of `[N, C, H, W]` over `kernel` (rows, columns) windows with the same
    /// stride, no padding.
    pub fn avg_pool(&mut self, name: &str, x: &str, kernel: (usize, usize)) -> String {
        let k = [kernel.0 as i64, kernel.1 as i64];
        self.node(
            name,
            "AveragePool",
            &[x],
            vec![attr_ints("kernel_shape", &k), attr_ints("strides", &k)],
        )
    }

    /// `Flatten(axis=1)`: `[N, ...]` to `[N, rest]`.
    pub fn flatten(&mut self, name: &str, x: &str) -> String {
        self.node(name, "Flatten", &[x], vec![attr_int("axis", 1)])
    }

    /// `Softmax` along `axis`.
    pub fn softmax(&mut self, name: &str, x: &str, axis: i64) -> String {
        self.node(name, "Softmax", &[x], vec![attr_int("axis", axis)])
    }

    /// `Reshape` to `shape` (`0` copies the input's dimension, `-1` is inferred).
    pub fn reshape(&mut self, name: &str, x: &str, shape: &[i64]) -> String {
        let shape = self.ints(&format!("{name}.shape"), &[shape.len()], shape);
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
