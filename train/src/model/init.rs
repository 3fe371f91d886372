//! Seeded initialisation: a `VarBuilder` backend that draws every new variable from its own
//! generator, seeded by the run's seed and the variable's name. candle's CPU generator cannot be
//! seeded, so without this two runs with the same `--seed` start from different weights; with it
//! they are the same run, whatever order the blocks are built in.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};
use rand_pcg::Pcg64;

use crate::data::mix_seed;

/// A `VarBuilder` that creates its variables in `varmap`, drawn as `Init` asks from a generator
/// seeded by `seed` and the variable's full name (existing variables are returned as they are).
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, device: &Device) -> VarBuilder<'static> {
    let backend = SeededVars {
        varmap: varmap.clone(),
        seed,
    };
    VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone())
}

struct SeededVars {
    varmap: VarMap,
    seed: u64,
}

impl candle_nn::var_builder::SimpleBackend for SeededVars {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let mut vars = self.varmap.data().lock().unwrap();
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("shape mismatch for {name}: {:?} != {shape:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = draw(&init, &shape, mix_seed(self.seed, fnv1a(name)))?;
        let tensor = Tensor::from_vec(values, &shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: a seeded initialisation needs the variable's shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().unwrap().contains_key(name)
    }
}

/// The values of a new variable, as candle's `Init::var` defines them.
fn draw(init: &Init, shape: &Shape, seed: u64) -> Result<Vec<f32>> {
    let n = shape.elem_count();
    let mut rng = Pcg64::seed_from_u64(seed);
    let bad = |e: &dyn std::fmt::Display| candle_core::Error::Msg(format!("initialisation: {e}"));
    let uniform = |lo: f64, up: f64, rng: &mut Pcg64| -> Result<Vec<f32>> {
        let d = Uniform::new(lo, up).map_err(|e| bad(&e))?;
        Ok((0..n).map(|_| d.sample(rng) as f32).collect())
    };
    let normal = |mean: f64, std: f64, rng: &mut Pcg64| -> Result<Vec<f32>> {
        let d = Normal::new(mean, std).map_err(|e| bad(&e))?;
        Ok((0..n).map(|_| d.sample(rng) as f32).collect())
    };
    match *init {
        Init::Const(v) => Ok(vec![v as f32; n]),
        Init::Uniform { lo, up } => uniform(lo, up, &mut rng),
        Init::Randn { mean, stdev } => normal(mean, stdev, &mut rng),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(-bound, bound, &mut rng)
                }
                NormalOrUniform::Normal => normal(0., std, &mut rng),
            }
        }
    }
}

/// FNV-1a of a variable's name: a stable stream number for its generator.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(vm: &VarMap, name: &str) -> Vec<f32> {
        let vars = vm.data().lock().unwrap();
        vars[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn the_same_seed_draws_the_same_weights_in_any_order_and_another_seed_does_not() {
        let kaiming = candle_nn::init::DEFAULT_KAIMING_NORMAL;
        let build = |seed, order: [&str; 2]| {
            let vm = VarMap::new();
            let vb = seeded_var_builder(&vm, seed, &Device::Cpu);
            for name in order {
                vb.get_with_hints((64, 32, 3, 3), name, kaiming).unwrap();
            }
            vm
        };
        let (a, b, c) = (
            build(7, ["x", "y"]),
            build(7, ["y", "x"]),
            build(8, ["x", "y"]),
        );
        assert_eq!(values(&a, "x"), values(&b, "x"));
        assert_eq!(values(&a, "y"), values(&b, "y"));
        assert_ne!(values(&a, "x"), values(&a, "y"));
        assert_ne!(values(&a, "x"), values(&c, "x"));
        // Drawn as candle draws them: Kaiming normal, fan-in 32 * 9, gain sqrt(2).
        let x = values(&a, "x");
        let std = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let expected = (2f32 / 288.).sqrt();
        assert!((std / expected - 1.).abs() < 0.03, "{std} vs {expected}");
        // An existing variable is returned, not drawn again; a new shape for it is an error.
        let vb = seeded_var_builder(&a, 9, &Device::Cpu);
        let again = vb.get_with_hints((64, 32, 3, 3), "x", kaiming).unwrap();
        assert_eq!(again.flatten_all().unwrap().to_vec1::<f32>().unwrap(), x);
        assert!(vb.get_with_hints((2, 2), "x", kaiming).is_err());
    }
}
