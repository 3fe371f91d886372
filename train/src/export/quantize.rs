//! int8 copies of exported models in the standard QDQ form, which any ONNX runtime loads: each
//! `Conv` reads its input through `QuantizeLinear` -> `DequantizeLinear` (int8, one symmetric
//! scale per tensor: the largest magnitude seen on calibration images over 127) and its weights
//! through `DequantizeLinear` of int8 weights (one symmetric scale per output channel). The rest
//! stays f32: biases, `Gemm` and `MatMul`, pooling, residual sums. A runtime may fuse the pairs
//! into an int8 convolution (onnxruntime does, and then rounds a little differently); tract 0.23
//! computes the rounded values in f32.
//!
//! Half-float files (`export --half`) are widened first: the quantiser reads f32 weights.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use edge_reid::card::{Int8Spec, ModelCard, CARD_KEY};
use prost::Message;
use tract_onnx::pb;

use super::graph::attr_int;
use super::ExportError;

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;
const FLOAT16: i32 = pb::tensor_proto::DataType::Float16 as i32;
const INT8: i32 = pb::tensor_proto::DataType::Int8 as i32;

/// The operators quantised.
pub const OPERATORS: [&str; 1] = ["Conv"];

/// The largest int8 level of the symmetric scales (-128 is not used, so that the range is the
/// same on both sides).
const LEVELS: f32 = 127.0;

/// Makes an int8 copy of `model` (a file written by `export`, card included), calibrated on
/// `images` (each `[3, height, width]`, preprocessed as the card says) and described on its card by
/// `calibration`. `path` names the model in errors.
pub fn quantize(
    mut model: pb::ModelProto,
    images: &[Vec<f32>],
    calibration: &str,
    path: &Path,
) -> Result<pb::ModelProto, ExportError> {
    let graph_error = |m: String| ExportError::Graph(format!("{}: {m}", path.display()));
    let mut card = card_of(&model).map_err(graph_error)?;
    let size = (card.input.height, card.input.width);
    if card.int8.is_some() {
        return Err(graph_error("it is an int8 copy already".into()));
    }
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| graph_error("no graph".into()))?;
    widen_half(graph).map_err(graph_error)?;
    let inputs: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    // The convolutions' inputs, in order of first use; the graph's own input is measured on
    // the images, the others by running the model.
    let mut activations: Vec<String> = Vec::new();
    for node in graph.node.iter().filter(|n| n.op_type == "Conv") {
        if !activations.contains(&node.input[0]) {
            activations.push(node.input[0].clone());
        }
    }
    let inner: Vec<String> = activations
        .iter()
        .filter(|a| !inputs.contains(a.as_str()))
        .cloned()
        .collect();
    let measured = ranges(&model, &inner, images, size, path)?;
    let mut range: HashMap<String, f32> = inner.into_iter().zip(measured).collect();
    let image_range = images.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    for a in &activations {
        range.entry(a.clone()).or_insert(image_range);
    }
    let graph = model.graph.as_mut().expect("checked above");
    rewrite(graph, &range).map_err(graph_error)?;
    card.int8 = Some(Int8Spec {
        operators: OPERATORS.map(String::from).to_vec(),
        calibration: calibration.to_string(),
    });
    card.check()?;
    for entry in model
        .metadata_props
        .iter_mut()
        .filter(|e| e.key == CARD_KEY)
    {
        entry.value = card.to_json();
    }
    Ok(model)
}

/// The card in `model`'s metadata.
pub fn card_of(model: &pb::ModelProto) -> Result<ModelCard, String> {
    let json = model
        .metadata_props
        .iter()
        .find(|e| e.key == CARD_KEY)
        .ok_or("no model card: not a file written by edge-reid-train export")?;
    ModelCard::from_json(&json.value).map_err(|e| e.to_string())
}

/// An initializer's values as f32: stored as f32, or half floats widened.
fn values(t: &pb::TensorProto) -> Result<Vec<f32>, String> {
    match t.data_type {
        FLOAT if t.raw_data.is_empty() => Ok(t.float_data.clone()),
        FLOAT => Ok(t
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        FLOAT16 => Ok(t
            .raw_data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()),
        other => Err(format!(
            "initializer {:?} is of ONNX type {other}, not f32 or f16",
            t.name
        )),
    }
}

/// An initializer of `values` (f32 or int8 bytes) named `name`, of shape `dims`.
fn initializer(name: &str, dims: &[i64], data_type: i32, raw_data: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type,
        raw_data,
        ..Default::default()
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Replaces each `Cast` to f32 of a half-float initializer with the widened initializer.
fn widen_half(graph: &mut pb::GraphProto) -> Result<(), String> {
    let halves: HashMap<String, pb::TensorProto> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == FLOAT16)
        .map(|t| (t.name.clone(), t.clone()))
        .collect();
    let mut kept = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let to_float = node
            .attribute
            .iter()
            .any(|a| a.name == "to" && a.i == i64::from(FLOAT));
        match halves.get(&node.input[0]) {
            Some(t) if node.op_type == "Cast" && to_float => {
                let widened = f32_bytes(&values(t)?);
                let name = &node.output[0];
                graph
                    .initializer
                    .push(initializer(name, &t.dims, FLOAT, widened));
            }
            _ => kept.push(node),
        }
    }
    graph.node = kept;
    drop_unused_initializers(graph);
    Ok(())
}

/// Removes the initializers no node reads.
fn drop_unused_initializers(graph: &mut pb::GraphProto) {
    let used: HashSet<String> = graph.node.iter().flat_map(|n| n.input.clone()).collect();
    graph.initializer.retain(|t| used.contains(&t.name));
}

/// The largest magnitude of each of `tensors` (values inside `model`) over `images`, each
/// `[3, height, width]`, running the model with tract.
fn ranges(
    model: &pb::ModelProto,
    tensors: &[String],
    images: &[Vec<f32>],
    (height, width): (usize, usize),
    path: &Path,
) -> Result<Vec<f32>, ExportError> {
    use tract_onnx::prelude::*;

    let tract = |e: TractError| ExportError::Tract {
        path: PathBuf::from(path),
        message: format!("calibrating: {e:#}"),
    };
    let bytes = model.encode_to_vec();
    let mut inference = tract_onnx::onnx()
        .model_for_read(&mut bytes.as_slice())
        .map_err(tract)?;
    let shape = [1, 3, height, width];
    inference
        .set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
        .map_err(tract)?;
    let names: Vec<&str> = tensors.iter().map(String::as_str).collect();
    inference.select_outputs_by_name(&names).map_err(tract)?;
    let plan = inference
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(tract)?;
    let mut max = vec![0f32; tensors.len()];
    for image in images {
        let input = Tensor::from_shape(&shape, image).map_err(tract)?;
        let outputs = plan.run(tvec!(input.into())).map_err(tract)?;
        for (m, out) in max.iter_mut().zip(&outputs) {
            let plain = out.try_as_plain_ram().map_err(tract)?;
            let values = plain.as_slice::<f32>().map_err(tract)?;
            *m = values.iter().fold(*m, |m, v| m.max(v.abs()));
        }
    }
    Ok(max)
}

/// A name not in `names` (which then holds it), from `base`.
fn fresh(names: &mut HashSet<String>, base: String) -> String {
    let mut name = base.clone();
    let mut n = 1;
    while names.contains(&name) {
        n += 1;
        name = format!("{base}#{n}");
    }
    names.insert(name.clone());
    name
}

/// The symmetric scale of values whose largest magnitude is `max` (1 for all zeros).
fn scale_of(max: f32) -> f32 {
    if max > 0.0 {
        max / LEVELS
    } else {
        1.0
    }
}

/// Rewrites every `Conv` of `graph` in the QDQ form, its input's range taken from `range`.
fn rewrite(graph: &mut pb::GraphProto, range: &HashMap<String, f32>) -> Result<(), String> {
    let mut names: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().chain(&n.input).cloned())
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .chain(graph.input.iter().map(|i| i.name.clone()))
        .collect();
    let weights: HashMap<String, pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t.clone()))
        .collect();
    let mut dequantized: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(graph.node.len() * 2);
    let qdq = |op: &str, inputs: [&str; 3], output: &str, axis: Option<i64>| pb::NodeProto {
        name: output.to_string(),
        op_type: op.to_string(),
        input: inputs.map(String::from).to_vec(),
        output: vec![output.to_string()],
        attribute: axis.map(|a| attr_int("axis", a)).into_iter().collect(),
        ..Default::default()
    };
    for mut node in std::mem::take(&mut graph.node) {
        if node.op_type != "Conv" {
            nodes.push(node);
            continue;
        }
        let x = node.input[0].clone();
        if !dequantized.contains_key(&x) {
            let scale = fresh(&mut names, format!("{x}.scale"));
            let zero = fresh(&mut names, format!("{x}.zero"));
            let q = fresh(&mut names, format!("{x}.int8"));
            let dq = fresh(&mut names, format!("{x}.dequantized"));
            let s = scale_of(range[&x]);
            graph
                .initializer
                .push(initializer(&scale, &[], FLOAT, f32_bytes(&[s])));
            graph
                .initializer
                .push(initializer(&zero, &[], INT8, vec![0]));
            nodes.push(qdq("QuantizeLinear", [&x, &scale, &zero], &q, None));
            nodes.push(qdq("DequantizeLinear", [&q, &scale, &zero], &dq, None));
            dequantized.insert(x.clone(), dq);
        }
        let w = &node.input[1];
        let t = weights
            .get(w)
            .ok_or_else(|| format!("the weights of {:?} are not an initializer", node.name))?;
        let values = values(t)?;
        let channels = *t.dims.first().ok_or("a weight without dimensions")? as usize;
        let per_channel = values.len() / channels.max(1);
        let scales: Vec<f32> = values
            .chunks(per_channel.max(1))
            .map(|c| scale_of(c.iter().fold(0f32, |m, v| m.max(v.abs()))))
            .collect();
        let codes: Vec<u8> = values
            .chunks(per_channel.max(1))
            .zip(&scales)
            .flat_map(|(c, s)| {
                c.iter()
                    .map(move |v| (v / s).round().clamp(-LEVELS, LEVELS) as i8 as u8)
            })
            .collect();
        let (q, scale, zero, dq) = (
            fresh(&mut names, format!("{w}.int8")),
            fresh(&mut names, format!("{w}.scale")),
            fresh(&mut names, format!("{w}.zero")),
            fresh(&mut names, format!("{w}.dequantized")),
        );
        let c = [channels as i64];
        graph
            .initializer
            .push(initializer(&q, &t.dims, INT8, codes));
        graph
            .initializer
            .push(initializer(&scale, &c, FLOAT, f32_bytes(&scales)));
        graph
            .initializer
            .push(initializer(&zero, &c, INT8, vec![0; channels]));
        nodes.push(qdq("DequantizeLinear", [&q, &scale, &zero], &dq, Some(0)));
        node.input[0] = dequantized[&x].clone();
        node.input[1] = dq;
        nodes.push(node);
    }
    graph.node = nodes;
    drop_unused_initializers(graph);
    Ok(())
}

/// The largest difference tolerated between an int8 copy and its source on calibration images,
/// relative to each output's largest magnitude: int8 rounding moves outputs by a few percent of
/// their scale; a wrong wiring moves them by their whole scale.
pub const INT8_TOLERANCE: f32 = 0.25;

/// Images the written copy is checked on against its source.
const CHECK_IMAGES: usize = 8;

/// What [`quantize_file`] wrote.
#[derive(Debug)]
pub struct Quantized {
    /// The copy's card.
    pub card: ModelCard,
    /// The largest difference from the source on the check images, relative to each output's
    /// largest magnitude.
    pub difference: f32,
}

/// Writes an int8 copy of the exported model `source` to `out`, calibrated on `count` images of
/// `data`'s training split (`bounding_box_train/`, drawn at random with seed 0, preprocessed as
/// the runtime preprocesses a whole image), checked against `source` on some of them within
/// [`INT8_TOLERANCE`] before it is renamed into place (a failed check leaves no file).
pub fn quantize_file(
    source: &Path,
    data: &Path,
    count: usize,
    out: &Path,
) -> Result<Quantized, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    let bytes = std::fs::read(source).map_err(io(source))?;
    let model = pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| ExportError::Graph(format!("{}: not an ONNX file: {e}", source.display())))?;
    let card =
        card_of(&model).map_err(|e| ExportError::Graph(format!("{}: {e}", source.display())))?;
    let folder = data.join("bounding_box_train");
    let images = calibration_images(&folder, &card, count)?;
    let calibration = format!("{} images of {} (seed 0)", images.len(), folder.display());
    let quantized = quantize(model, &images, &calibration, source)?;
    let mut difference = 0.0;
    super::write_checked(&quantized, out, |tmp| {
        difference = compare_files(source, tmp, &images[..images.len().min(CHECK_IMAGES)])?;
        Ok(difference)
    })?;
    Ok(Quantized {
        card: card_of(&quantized).map_err(ExportError::Graph)?,
        difference,
    })
}

/// `count` JPEG images of `folder`, drawn at random (seed 0), as the runtime feeds a whole image
/// to a model of `card`: each `[3, height, width]`.
fn calibration_images(
    folder: &Path,
    card: &ModelCard,
    count: usize,
) -> Result<Vec<Vec<f32>>, ExportError> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    let io = |source| ExportError::Io {
        path: folder.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    paths.retain(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")));
    paths.sort();
    if paths.is_empty() {
        return Err(ExportError::Graph(format!(
            "{}: no .jpg images to calibrate on",
            folder.display()
        )));
    }
    paths.shuffle(&mut rand_pcg::Pcg64::seed_from_u64(0));
    let pre = edge_reid::preprocess::Preprocessor::from_spec(&card.input)
        .map_err(|e| ExportError::Graph(format!("preprocessing: {e}")))?;
    paths
        .iter()
        .take(count.max(1))
        .map(|path| {
            let image = edge_reid::picture::open(path)
                .map_err(|e| ExportError::Graph(format!("{}: {e}", path.display())))?;
            let mut out = vec![0.0; pre.slot_len()];
            let region = edge_reid::preprocess::Region::full(&image);
            pre.resize_into(&image, region, &mut out)
                .map_err(|e| ExportError::Graph(format!("{}: {e}", path.display())))?;
            Ok(out)
        })
        .collect()
}

/// The largest difference between the outputs of the models `a` and `b` (loaded by the runtime)
/// on `images`, relative to each of `a`'s outputs' largest magnitude.
fn compare_files(a: &Path, b: &Path, images: &[Vec<f32>]) -> Result<f32, ExportError> {
    let n = images.len();
    let run = |path: &Path| {
        let tract = |e: edge_reid::model::ModelError| ExportError::Tract {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let model = edge_reid::model::Model::load(path, n).map_err(tract)?;
        let outputs = model.run(&images.concat(), n).map_err(tract)?;
        let attributes = model.card().attributes.len();
        // Per output: every crop's values.
        let mut values: Vec<Vec<f32>> = (0..attributes)
            .map(|k| {
                (0..n)
                    .flat_map(|i| outputs.attribute_logits(i, k).unwrap_or(&[]).to_vec())
                    .collect()
            })
            .collect();
        values.push(outputs.embeddings().unwrap_or(&[]).to_vec());
        values.push((0..n).filter_map(|i| outputs.person_logit(i)).collect());
        Ok::<_, ExportError>(values)
    };
    let (want, got) = (run(a)?, run(b)?);
    let mut worst = 0f32;
    for (w, g) in want.iter().zip(&got) {
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let d = w.iter().zip(g).fold(0f32, |m, (w, g)| {
            let d = (w - g).abs();
            if d.is_nan() {
                f32::INFINITY
            } else {
                m.max(d)
            }
        });
        worst = worst.max(d / scale);
    }
    if worst > INT8_TOLERANCE {
        return Err(super::mismatch(
            b,
            "int8 copy",
            format!(
                "differs from {} by {worst:.3} of an output's scale (tolerance {INT8_TOLERANCE})",
                a.display()
            ),
        ));
    }
    Ok(worst)
}
