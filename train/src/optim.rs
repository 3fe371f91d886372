//! Adam with decoupled weight decay (AdamW, Loshchilov & Hutter), two parameter groups, and a state
//! that can be saved and restored so `--resume` continues exactly where a run stopped.
//!
//! candle-nn's `AdamW` keeps its moments private and applies one weight decay to every variable; the
//! paper's recipe wants none on BatchNorm parameters, biases and the two Kendall weights, and resuming
//! needs the moments. Which variables decay is decided by name (see [`decays`]).

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use candle_nn::VarMap;

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (changed every step by the schedule).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay for the variables [`decays`] selects (0 disables it).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 3e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 5e-4,
        }
    }
}

/// Whether a variable gets weight decay: the weights of convolutions and dense layers (two or more
/// dimensions) do; norm scales and shifts, biases, running statistics and the Kendall weights (one
/// dimension or none) do not, whatever the layer is named.
pub fn decays(var: &Tensor) -> bool {
    var.rank() >= 2
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
    decay: bool,
}

/// The optimizer. Variables without a gradient in a step (running statistics, frozen parts) are left
/// untouched, moments included.
pub struct Adam {
    slots: Vec<Slot>,
    step: usize,
    /// Current hyper-parameters; the training loop sets `lr` from its schedule.
    pub config: AdamConfig,
}

impl Adam {
    /// Optimises every float variable of `varmap`.
    pub fn new(varmap: &VarMap, config: AdamConfig) -> Result<Self> {
        let data = varmap.data().lock().expect("var map lock poisoned");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let slots = names
            .into_iter()
            .filter(|name| !name.ends_with("running_mean") && !name.ends_with("running_var"))
            .map(|name| {
                let var = data[name].clone();
                Ok(Slot {
                    name: name.clone(),
                    m: Var::zeros(var.shape(), var.dtype(), var.device())?,
                    v: Var::zeros(var.shape(), var.dtype(), var.device())?,
                    decay: decays(&var),
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            step: 0,
            config,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// One Adam step on the gradients in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        for slot in &self.slots {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let m = ((slot.m.as_tensor() * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((slot.v.as_tensor() * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + c.eps)?)?;
            let mut theta = slot.var.as_tensor().clone();
            if slot.decay && c.weight_decay > 0.0 {
                theta = (theta * (1.0 - c.lr * c.weight_decay))?;
            }
            slot.var.set(&(theta - (update * c.lr)?)?)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
        }
        Ok(())
    }

    /// Saves the moments and the step count (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for slot in &self.slots {
            tensors.insert(format!("m.{}", slot.name), slot.m.as_tensor().clone());
            tensors.insert(format!("v.{}", slot.name), slot.v.as_tensor().clone());
        }
        let step = Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?;
        tensors.insert("step".into(), step);
        candle_core::safetensors::save(&tensors, path)
    }

    /// Restores what [`Adam::save`] wrote. Every variable must be present with the same shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = self
            .slots
            .first()
            .map(|s| s.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let tensors = candle_core::safetensors::load(path, &device)?;
        let get = |key: String| {
            tensors.get(&key).cloned().ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: no tensor {key}", path.display()))
            })
        };
        for slot in &self.slots {
            slot.m
                .set(&get(format!("m.{}", slot.name))?.to_dtype(DType::F32)?)?;
            slot.v
                .set(&get(format!("v.{}", slot.name))?.to_dtype(DType::F32)?)?;
        }
        let step = get("step".into())?
            .to_device(&candle_core::Device::Cpu)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        self.step = match step.as_slice() {
            [step] => *step as usize,
            other => {
                return Err(candle_core::Error::Msg(format!(
                    "{}: the step count holds {} values, not one",
                    path.display(),
                    other.len()
                )))
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn decay_selection_follows_dimensions() {
        let var = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
        assert!(decays(&var(&[8, 3, 3, 3])), "a convolution");
        assert!(decays(&var(&[8, 1, 3, 3])), "a depthwise convolution");
        assert!(decays(&var(&[10, 16])), "a dense layer");
        assert!(
            !decays(&var(&[8])),
            "a batch norm's scale, whatever its name"
        );
        assert!(!decays(&var(&[])), "a Kendall weight");
    }

    /// Two Adam steps on f(x) = sum(x^2) / 2 from x = [1, -2], lr 0.1, no decay. Reference (PyTorch):
    /// ```python
    /// import torch
    /// x = torch.tensor([1.0, -2.0], requires_grad=True)
    /// opt = torch.optim.Adam([x], lr=0.1)
    /// for _ in range(2):
    ///     opt.zero_grad(); (x.pow(2).sum() / 2).backward(); opt.step()
    /// print(x.tolist())  # [0.8004122376441956, -1.8001664876937866]
    /// ```
    #[test]
    fn matches_pytorch_adam_and_round_trips_state() {
        let varmap = VarMap::new();
        let x = varmap
            .get(
                2,
                "x.bias",
                candle_nn::Init::Const(0.0),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        let x = Var::from_tensor(&x).unwrap();
        x.set(&Tensor::new(&[1f32, -2.0], &Device::Cpu).unwrap())
            .unwrap();
        let config = AdamConfig {
            lr: 0.1,
            weight_decay: 0.0,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(&varmap, config).unwrap();
        let loss = |x: &Var| (x.as_tensor().sqr().unwrap().sum_all().unwrap() / 2.0).unwrap();
        adam.step(&loss(&x).backward().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("optim.safetensors");
        adam.save(&state).unwrap();
        let mut resumed = Adam::new(&varmap, config).unwrap();
        resumed.load(&state).unwrap();
        assert_eq!(resumed.steps(), 1);
        resumed.step(&loss(&x).backward().unwrap()).unwrap();
        let got = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!((got[0] - 0.800_412_2).abs() < 1e-6, "{got:?}");
        assert!((got[1] + 1.800_166_5).abs() < 1e-6, "{got:?}");

        // A file whose step count is not one value is an error naming it, not a panic.
        let mut tensors = candle_core::safetensors::load(&state, &Device::Cpu).unwrap();
        for bad in [vec![], vec![1u32, 2]] {
            let n = bad.len();
            tensors.insert(
                "step".into(),
                Tensor::from_vec(bad, n, &Device::Cpu).unwrap(),
            );
            candle_core::safetensors::save(&tensors, &state).unwrap();
            let err = resumed.load(&state).unwrap_err().to_string();
            assert!(err.contains(&format!("holds {n} values")), "{err}");
            assert!(err.contains("optim.safetensors"), "{err}");
        }
    }
}
