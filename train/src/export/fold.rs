//! BatchNorm folding: an eval-mode BatchNorm after a convolution or a linear layer is a per-channel
//! affine map `y = x * scale + shift` with `scale = gamma / sqrt(var + eps)` and
//! `shift = beta - mean * scale`, so it merges into the layer before it:
//! `W'[o, ..] = W[o, ..] * scale[o]`, `b'[o] = b[o] * scale[o] + shift[o]`.
//!
//! Both a conv weight `[O, I, kh, kw]` and a linear weight `[O, I]` keep the output channel first,
//! so one fold serves both. The arithmetic runs in f64 and rounds once to f32.

use candle_core::{DType, Tensor};
use candle_nn::BatchNorm;

use super::ExportError;

/// A layer's weight and bias, flattened row-major, with the weight's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightBias {
    /// Weight shape, output channels first.
    pub dims: Vec<usize>,
    /// Weight values.
    pub weight: Vec<f32>,
    /// Bias, one per output channel.
    pub bias: Vec<f32>,
}

/// Reads a tensor as a flat f32 vector.
pub fn to_vec(t: &Tensor) -> Result<Vec<f32>, ExportError> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

impl WeightBias {
    /// A layer's weight and optional bias (zeros when absent).
    pub fn new(what: &str, weight: &Tensor, bias: Option<&Tensor>) -> Result<Self, ExportError> {
        let dims = weight.dims().to_vec();
        let out = *dims.first().ok_or_else(|| {
            ExportError::Graph(format!("{what}: weight is a scalar, not a layer weight"))
        })?;
        let bias = match bias {
            Some(b) => to_vec(b)?,
            None => vec![0.0; out],
        };
        if bias.len() != out {
            return Err(ExportError::Graph(format!(
                "{what}: bias has {} values for {out} output channels",
                bias.len()
            )));
        }
        Ok(WeightBias {
            dims,
            weight: to_vec(weight)?,
            bias,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.bias.len()
    }

    /// Folds the eval-mode BatchNorm that follows this layer into it.
    pub fn fold(self, what: &str, bn: &BatchNorm) -> Result<Self, ExportError> {
        let (scale, shift) = bn_affine(what, bn)?;
        self.fold_affine(what, &scale, &shift)
    }

    /// Folds a per-channel affine map `y = x * scale + shift` into this layer.
    fn fold_affine(self, what: &str, scale: &[f64], shift: &[f64]) -> Result<Self, ExportError> {
        let out = self.out_channels();
        if scale.len() != out || shift.len() != out {
            return Err(ExportError::Graph(format!(
                "{what}: BatchNorm has {} channels, the layer before it {out}",
                scale.len()
            )));
        }
        let per_channel = self.weight.len() / out.max(1);
        let weight = self
            .weight
            .iter()
            .enumerate()
            .map(|(i, w)| (f64::from(*w) * scale[i / per_channel]) as f32)
            .collect();
        let bias = self
            .bias
            .iter()
            .zip(scale.iter().zip(shift))
            .map(|(b, (s, t))| (f64::from(*b) * s + t) as f32)
            .collect();
        Ok(WeightBias {
            dims: self.dims,
            weight,
            bias,
        })
    }
}

/// An eval-mode BatchNorm as `(scale, shift)` per channel.
fn bn_affine(what: &str, bn: &BatchNorm) -> Result<(Vec<f64>, Vec<f64>), ExportError> {
    let mean = to_vec(bn.running_mean())?;
    let var = to_vec(bn.running_var())?;
    let (gamma, beta) = match bn.weight_and_bias() {
        Some((w, b)) => (to_vec(w)?, to_vec(b)?),
        None => (vec![1.0; mean.len()], vec![0.0; mean.len()]),
    };
    if [var.len(), gamma.len(), beta.len()]
        .iter()
        .any(|n| *n != mean.len())
    {
        return Err(ExportError::Graph(format!(
            "{what}: BatchNorm parameters disagree in length (mean {}, var {}, weight {}, bias {})",
            mean.len(),
            var.len(),
            gamma.len(),
            beta.len()
        )));
    }
    let eps = bn.eps();
    let scale: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| f64::from(*g) / (f64::from(*v) + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean.iter().zip(&scale))
        .map(|(b, (m, s))| f64::from(*b) - f64::from(*m) * s)
        .collect();
    Ok((scale, shift))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn folds_batchnorm_into_weight_and_bias() {
        let dev = Device::Cpu;
        // Two output channels, weight [2, 1, 1, 2].
        let w = Tensor::new(&[1f32, 2., 3., 4.], &dev)
            .unwrap()
            .reshape((2, 1, 1, 2))
            .unwrap();
        let b = Tensor::new(&[0.5f32, -1.], &dev).unwrap();
        let bn = BatchNorm::new(
            2,
            Tensor::new(&[1f32, -2.], &dev).unwrap(), // mean
            Tensor::new(&[3f32, 0.], &dev).unwrap(),  // var
            Tensor::new(&[2f32, 1.], &dev).unwrap(),  // gamma
            Tensor::new(&[0.25f32, 4.], &dev).unwrap(), // beta
            1.0,                                      // eps
        )
        .unwrap();
        let folded = WeightBias::new("t", &w, Some(&b))
            .unwrap()
            .fold("t", &bn)
            .unwrap();
        // Channel 0: scale 2 / sqrt(3 + 1) = 1, shift 0.25 - 1 * 1 = -0.75.
        // Channel 1: scale 1 / sqrt(0 + 1) = 1, shift 4 - (-2) * 1 = 6.
        assert_eq!(folded.weight, [1., 2., 3., 4.]);
        assert_eq!(folded.bias, [0.5 - 0.75, -1. + 6.]);

        // No affine part: scale 1 / sqrt(var + 1) = (0.25, 0.5), shift -mean * scale = (0, 0).
        let bn = BatchNorm::new_no_bias(
            2,
            Tensor::new(&[0f32, 0.], &dev).unwrap(),
            Tensor::new(&[15f32, 3.], &dev).unwrap(),
            1.0,
        )
        .unwrap();
        let folded = WeightBias::new("t", &w, None)
            .unwrap()
            .fold("t", &bn)
            .unwrap();
        assert_eq!(folded.weight, [0.25, 0.5, 1.5, 2.]);
        assert_eq!(folded.bias, [0., 0.]);
    }

    #[test]
    fn refuses_a_batchnorm_of_the_wrong_width() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
        let ones = Tensor::ones(2, DType::F32, &dev).unwrap();
        let bn = BatchNorm::new(2, ones.clone(), ones.clone(), ones.clone(), ones, 1e-5).unwrap();
        let err = WeightBias::new("head.fc", &w, None)
            .unwrap()
            .fold("head.fc", &bn)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("head.fc") && err.contains("2 channels"),
            "{err}"
        );
    }
}
