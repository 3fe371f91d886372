//! Loading torchvision's ImageNet ResNet18 weights (`--pretrained FILE`, `.safetensors` or the
//! `.pth` torchvision publishes) into the backbone's variables of a `VarMap`.
//!
//! The classifier (`fc.*`) and the batch norms' `num_batches_tracked` counters are ignored; every
//! other tensor must be a backbone variable of the same shape, and every backbone variable must be
//! in the file. Nothing is written unless the whole file fits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::resnet::BACKBONE_PREFIXES;
use super::Backbone;

/// Why pretrained weights could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    /// The weights are ResNet18's; other backbones have other shapes.
    #[error("pretrained weights are torchvision ResNet18 weights and do not fit the {0:?} backbone; use the resnet18 backbone or train from scratch")]
    Backbone(Backbone),
    /// The file name does not say which format it is.
    #[error("{path}: unknown weight file type, expected .safetensors, .pth or .pt")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or parsed.
    #[error("{path}: cannot read weights: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: candle_core::Error,
    },
    /// Backbone variables the file does not have.
    #[error("{path}: missing backbone tensors: {}", names.join(", "))]
    Missing {
        /// The file.
        path: PathBuf,
        /// Missing variable names, sorted.
        names: Vec<String>,
    },
    /// A tensor whose shape differs from its variable's.
    #[error("{path}: tensor {name} has shape {found:?}, the backbone's variable has {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// The variable's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A tensor that is not a ResNet18 backbone variable (another architecture's file).
    #[error("{path}: tensor {name} is not a ResNet18 backbone variable")]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
    },
    /// Converting or storing a tensor failed.
    #[error("setting {name}: {source}")]
    Set {
        /// Variable name.
        name: String,
        /// What went wrong.
        source: candle_core::Error,
    },
}

/// Whether a variable belongs to the backbone (its first name component is torchvision's).
fn is_backbone_variable(name: &str) -> bool {
    let first = name.split('.').next().unwrap_or(name);
    BACKBONE_PREFIXES.contains(&first)
}

/// Whether a file tensor is deliberately not loaded.
fn is_ignored(name: &str) -> bool {
    name.starts_with("fc.") || name.ends_with(".num_batches_tracked")
}

fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, PretrainedError> {
    let read_err = |source| PretrainedError::Read {
        path: path.to_path_buf(),
        source,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => candle_core::safetensors::load(path, &Device::Cpu)
            .map(|m| m.into_iter().collect())
            .map_err(read_err),
        Some("pth" | "pt") => candle_core::pickle::read_all(path).map_err(read_err),
        _ => Err(PretrainedError::Format {
            path: path.to_path_buf(),
        }),
    }
}

/// Loads torchvision ResNet18 weights from `path` into the backbone variables of `varmap` (a
/// `MultiTaskNet` built with `backbone` in it) and returns how many tensors were set. Head
/// variables keep their values.
pub fn load_pretrained(
    varmap: &VarMap,
    backbone: Backbone,
    path: &Path,
) -> Result<usize, PretrainedError> {
    if backbone != Backbone::Resnet18 {
        return Err(PretrainedError::Backbone(backbone));
    }
    let tensors = read_tensors(path)?;
    let vars = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut updates = HashMap::new();
    for (name, tensor) in tensors {
        if is_ignored(&name) {
            continue;
        }
        let var = vars
            .get(&name)
            .filter(|_| is_backbone_variable(&name))
            .ok_or_else(|| PretrainedError::Unexpected {
                path: path.to_path_buf(),
                name: name.clone(),
            })?;
        if var.dims() != tensor.dims() {
            return Err(PretrainedError::Shape {
                path: path.to_path_buf(),
                name,
                expected: var.dims().to_vec(),
                found: tensor.dims().to_vec(),
            });
        }
        updates.insert(name, (var, tensor));
    }
    let mut missing: Vec<String> = vars
        .keys()
        .filter(|n| is_backbone_variable(n) && !updates.contains_key(*n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(PretrainedError::Missing {
            path: path.to_path_buf(),
            names: missing,
        });
    }
    for (name, (var, tensor)) in &updates {
        tensor
            .to_dtype(var.dtype())
            .and_then(|t| t.to_device(var.device()))
            .and_then(|t| var.set(&t))
            .map_err(|source| PretrainedError::Set {
                name: name.clone(),
                source,
            })?;
    }
    Ok(updates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MultiTaskNet, NetConfig};
    use candle_core::DType;
    use candle_nn::VarBuilder;

    /// A ResNet18 network's variables (baseline heads, 32x16 input: only shapes matter here).
    fn resnet18_vars() -> VarMap {
        let vm = VarMap::new();
        let cfg = NetConfig {
            input_height: 32,
            input_width: 16,
            ..NetConfig::default()
        };
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        MultiTaskNet::new(&cfg, vb).expect("network");
        vm
    }

    fn var(vm: &VarMap, name: &str) -> Vec<f32> {
        let vars = vm.data().lock().expect("lock");
        vars[name]
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values")
    }

    /// torchvision-style contents for every backbone variable, fresh random values, plus the
    /// `fc` classifier and a `num_batches_tracked` counter that must be ignored.
    fn torchvision_like(vm: &VarMap) -> HashMap<String, Tensor> {
        let vars = vm.data().lock().expect("lock");
        let mut file: HashMap<String, Tensor> = vars
            .iter()
            .filter(|(n, _)| is_backbone_variable(n))
            .map(|(n, v)| {
                let t = Tensor::rand(-1f32, 1f32, v.shape(), &Device::Cpu).expect("rand");
                (n.clone(), t)
            })
            .collect();
        let dev = &Device::Cpu;
        file.insert(
            "fc.weight".into(),
            Tensor::ones((10, 512), DType::F32, dev).unwrap(),
        );
        file.insert("fc.bias".into(), Tensor::ones(10, DType::F32, dev).unwrap());
        let counter = Tensor::new(7i64, dev).unwrap();
        file.insert("layer1.0.bn1.num_batches_tracked".into(), counter);
        file
    }

    fn assert_loaded(vm: &VarMap, file: &HashMap<String, Tensor>, head_before: &[f32]) {
        for (name, t) in file {
            if is_ignored(name) {
                continue;
            }
            let want: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(var(vm, name), want, "{name}");
        }
        assert_eq!(
            var(vm, "reid.fc.weight"),
            head_before,
            "heads are untouched"
        );
    }

    #[test]
    fn safetensors_values_land_in_backbone_variables() {
        let vm = resnet18_vars();
        let file = torchvision_like(&vm);
        assert_eq!(
            file.len(),
            100 + 3,
            "torchvision ResNet18 has 100 such tensors"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resnet18.safetensors");
        candle_core::safetensors::save(&file, &path).unwrap();
        let head = var(&vm, "reid.fc.weight");
        assert_eq!(
            load_pretrained(&vm, Backbone::Resnet18, &path).unwrap(),
            100
        );
        assert_loaded(&vm, &file, &head);
    }

    // The .pth is written by torch itself from the same tensors (through an .npz), so this reads
    // torch's zip + pickle format; skipped with a notice where python3 with torch is missing.
    #[test]
    fn pth_written_by_torch_loads() {
        let vm = resnet18_vars();
        let file = torchvision_like(&vm);
        let dir = tempfile::tempdir().unwrap();
        let npz = dir.path().join("w.npz");
        let pth = dir.path().join("resnet18.pth");
        Tensor::write_npz(&file.iter().collect::<Vec<_>>(), &npz).unwrap();
        let script = "import sys, numpy as np, torch\n\
                      d = np.load(sys.argv[1])\n\
                      torch.save({k: torch.from_numpy(d[k]) for k in d.files}, sys.argv[2])";
        let status = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&npz)
            .arg(&pth)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("NOTICE: python3 with torch unavailable, .pth loading not tested");
            return;
        }
        let head = var(&vm, "reid.fc.weight");
        assert_eq!(load_pretrained(&vm, Backbone::Resnet18, &pth).unwrap(), 100);
        assert_loaded(&vm, &file, &head);
    }

    fn save_one(dir: &Path, name: &str, t: Tensor) -> PathBuf {
        let path = dir.join("w.safetensors");
        candle_core::safetensors::save(&HashMap::from([(name.to_string(), t)]), &path).unwrap();
        path
    }

    #[test]
    fn errors_name_the_problem_and_write_nothing() {
        let vm = resnet18_vars();
        let dir = tempfile::tempdir().unwrap();
        let before = var(&vm, "conv1.weight");
        let dev = &Device::Cpu;

        let small = save_one(
            dir.path(),
            "conv1.weight",
            Tensor::zeros(1, DType::F32, dev).unwrap(),
        );
        let err = load_pretrained(&vm, Backbone::Small, &small).unwrap_err();
        assert!(
            matches!(err, PretrainedError::Backbone(Backbone::Small)),
            "{err}"
        );

        let wrong = Tensor::zeros((64, 3, 3, 3), DType::F32, dev).unwrap();
        let path = save_one(dir.path(), "conv1.weight", wrong);
        match load_pretrained(&vm, Backbone::Resnet18, &path).unwrap_err() {
            PretrainedError::Shape { name, found, .. } => {
                assert_eq!((name.as_str(), found), ("conv1.weight", vec![64, 3, 3, 3]))
            }
            e => panic!("{e}"),
        }

        let right = Tensor::zeros((64, 3, 7, 7), DType::F32, dev).unwrap();
        let path = save_one(dir.path(), "conv1.weight", right);
        match load_pretrained(&vm, Backbone::Resnet18, &path).unwrap_err() {
            PretrainedError::Missing { names, .. } => {
                assert_eq!(names.len(), 99);
                assert!(names.contains(&"layer4.1.bn2.running_var".to_string()));
                assert!(!names.contains(&"conv1.weight".to_string()));
            }
            e => panic!("{e}"),
        }

        let extra = Tensor::zeros((64, 64, 3, 3), DType::F32, dev).unwrap();
        let path = save_one(dir.path(), "layer1.2.conv1.weight", extra);
        let err = load_pretrained(&vm, Backbone::Resnet18, &path).unwrap_err();
        assert!(err.to_string().contains("layer1.2.conv1.weight"), "{err}");

        let err = load_pretrained(&vm, Backbone::Resnet18, &dir.path().join("w.bin")).unwrap_err();
        assert!(matches!(err, PretrainedError::Format { .. }), "{err}");

        assert_eq!(
            var(&vm, "conv1.weight"),
            before,
            "a failed load writes nothing"
        );
    }
}
