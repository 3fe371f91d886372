//! Running an exported file with tract (the deployment runtime) and comparing its outputs with the
//! candle network's.

use std::path::Path;

use candle_core::{Device, Tensor};
use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue,
    Tensor as TractTensor,
};

use super::fold::to_vec;
use super::ExportError;

/// Loads `path` with tract for the exact shape of `input`, runs it on `input` and returns the
/// outputs in graph order as candle tensors.
pub fn run_tract(path: &Path, input: &Tensor) -> Result<Vec<Tensor>, ExportError> {
    let tract = |e: tract_onnx::prelude::TractError| ExportError::Tract {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    };
    let dims = input.dims().to_vec();
    let x = TractTensor::from_shape(&dims, &to_vec(input)?).map_err(tract)?;
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, InferenceFact::dt_shape(DatumType::F32, &*dims)))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(tract)?;
    let outputs = model.run(tvec!(x.into_tvalue())).map_err(tract)?;
    outputs
        .iter()
        .map(|o| {
            let view = o.to_plain_array_view::<f32>().map_err(tract)?;
            let shape = view.shape().to_vec();
            Ok(Tensor::from_iter(view.iter().copied(), &Device::Cpu)?.reshape(shape)?)
        })
        .collect()
}

/// The largest absolute difference between the candle output `expected` and the exported
/// file's `actual` output called `output` (infinite where either is NaN); a shape mismatch is an
/// error.
pub fn max_abs_diff(
    path: &Path,
    output: &str,
    expected: &Tensor,
    actual: &Tensor,
) -> Result<f32, ExportError> {
    if expected.dims() != actual.dims() {
        return Err(ExportError::Mismatch {
            path: path.to_path_buf(),
            what: format!("output {output:?}"),
            detail: format!(
                "has shape {:?}, the network gives {:?}",
                actual.dims(),
                expected.dims()
            ),
        });
    }
    Ok(to_vec(expected)?
        .iter()
        .zip(to_vec(actual)?)
        .map(|(e, a)| {
            let d = (e - a).abs();
            if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f32::max))
}

/// Test support: runs `tests/reference/ort_run.py` (onnxruntime, after `onnx.checker`) on an
/// exported file.
#[cfg(test)]
pub(crate) mod ort {
    use std::path::Path;
    use std::process::Command;

    use candle_core::{Device, Tensor};

    use crate::export::fold::to_vec;

    /// The outputs of onnxruntime in graph order and the checker's verdict, or `None` (with a
    /// printed notice) when python3 or onnxruntime is not installed; under CI (`$CI` set), which
    /// installs them, that fails the test instead.
    pub fn run(model: &Path, input: &Tensor) -> Option<(String, Vec<Tensor>)> {
        let probe = Command::new("python3")
            .args(["-c", "import onnxruntime"])
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 with onnxruntime is missing: CI must have it"
            );
            eprintln!(
                "NOTICE: python3 with onnxruntime is not available, onnxruntime check skipped"
            );
            return None;
        }
        let raw = model.with_extension("input.f32");
        let bytes: Vec<u8> = to_vec(input)
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(&raw, bytes).unwrap();
        let shape: Vec<String> = input.dims().iter().map(|d| d.to_string()).collect();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/ort_run.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(model)
            .arg(&raw)
            .arg(shape.join(","))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ort_run.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let outputs = json["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let shape: Vec<usize> = serde_json::from_value(o["shape"].clone()).unwrap();
                let data: Vec<f32> = serde_json::from_value(o["data"].clone()).unwrap();
                Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
            })
            .collect();
        Some((json["checker"].as_str().unwrap().to_string(), outputs))
    }
}
