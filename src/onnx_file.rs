//! Reading an ONNX file for tract, shared by the model loader ([`crate::model`]) and the person
//! detector ([`crate::detect::yolo`]): the parsed protobuf with its graph, and the graph's one real
//! input (a graph input that is not an initializer) with its declared shape, and the graph handed
//! to tract with its half-float weights widened once (see [`OnnxFile::into_tract_model`]).

use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::prelude::{f16, Framework, InferenceModel, TractResult};

/// `ONNX TensorProto.DataType.FLOAT`.
pub(crate) const ONNX_FLOAT: i32 = 1;
/// `ONNX TensorProto.DataType.FLOAT16`.
pub(crate) const ONNX_FLOAT16: i32 = 10;

/// Why a file could not be read as ONNX; the callers add the path and their own error type.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The file cannot be read.
    Io(std::io::Error),
    /// The bytes are not an ONNX model with a graph: what is wrong.
    NotOnnx(String),
}

/// A parsed ONNX model that holds a graph.
pub(crate) struct OnnxFile {
    proto: pb::ModelProto,
}

/// The graph's one input.
pub(crate) struct GraphInput<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its declared dimensions (`None` for a symbolic one), or `None` when the graph declares no
    /// shape. The element type is f32 (checked).
    pub dims: Option<Vec<Option<i64>>>,
}

impl OnnxFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let bytes = std::fs::read(path).map_err(ReadError::Io)?;
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| ReadError::NotOnnx(format!("{e:#}")))?;
        let Some(graph) = &proto.graph else {
            return Err(ReadError::NotOnnx("it holds no graph".into()));
        };
        if let Some(name) = unproduced_output(graph) {
            return Err(ReadError::NotOnnx(format!(
                "graph output {name:?} is produced by no node"
            )));
        }
        Ok(OnnxFile { proto })
    }

    /// The parsed model, for its metadata.
    pub fn proto(&self) -> &pb::ModelProto {
        &self.proto
    }

    /// The model as tract analyses it, with every `Cast` to float of a half-float initializer
    /// replaced by the f32 initializer it computes (exports with `--half` store their weights so).
    /// tract's constant folding leaves such a cast in the plan because it doubles the constant's
    /// memory, so each run would widen every weight again (about a quarter of the shipped model's
    /// time per crop); widened here once, the plan is an f32 export's. [`OnnxFile::digest`] is of
    /// the file as stored (take it first: the file is consumed, so that its weights are not copied
    /// once more while tract reads them).
    pub fn into_tract_model(mut self) -> TractResult<InferenceModel> {
        if let Some(graph) = &mut self.proto.graph {
            fold_half_casts(graph);
        }
        tract_onnx::onnx().model_for_proto_model(&self.proto)
    }

    /// The graph.
    pub fn graph(&self) -> &pb::GraphProto {
        self.proto
            .graph
            .as_ref()
            .expect("OnnxFile::read refuses a model without a graph")
    }

    /// SHA-256 of what computes the outputs: the graph (nodes, weights, inputs, outputs, as protobuf
    /// bytes without the graph's and the nodes' doc strings) and the opsets, then `extra`. Metadata (the model card with
    /// its training summary), producer and doc strings do not count, so the same weights
    /// exported elsewhere or with another card digest the same, and retrained ones do not.
    pub fn digest(&self, extra: &[u8]) -> [u8; 32] {
        let mut graph = self.graph().clone();
        graph.doc_string.clear();
        for node in &mut graph.node {
            node.doc_string.clear();
        }
        let mut hash = Sha256::new();
        hash.update(b"edge-reid graph digest 1\0");
        for opset in &self.proto.opset_import {
            hash.update(opset.encode_to_vec());
        }
        hash.update(graph.encode_to_vec());
        hash.update(extra);
        hash.finalize().into()
    }

    /// The graph's only input that is not an initializer, which must be f32 where the graph
    /// declares its type. Returns the problem otherwise.
    pub fn sole_input(&self) -> Result<GraphInput<'_>, String> {
        let graph = self.graph();
        let constants: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !constants.contains(&i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "the graph must have exactly one input, it has {names:?}"
            ));
        };
        let Some(pb::type_proto::Value::TensorType(tensor)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Ok(GraphInput {
                name: &input.name,
                dims: None,
            });
        };
        if tensor.elem_type != ONNX_FLOAT {
            return Err(format!(
                "input {:?} has ONNX element type {}, not float (1)",
                input.name, tensor.elem_type
            ));
        }
        let dims = tensor.shape.as_ref().map(|shape| {
            shape
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(Dim::DimValue(v)) => Some(v),
                    _ => None,
                })
                .collect()
        });
        Ok(GraphInput {
            name: &input.name,
            dims,
        })
    }
}

/// Replaces each `Cast(to = FLOAT)` node whose input is a FLOAT16 initializer by an f32
/// initializer named after its output; a half-float initializer left unused is dropped (with its
/// graph input entry, which IR version 3 files carry). Initializers whose data is not inline
/// (external, or of the wrong length) are left for tract to judge.
fn fold_half_casts(graph: &mut pb::GraphProto) {
    let is_float_cast = |node: &pb::NodeProto| {
        node.op_type == "Cast"
            && matches!(node.domain.as_str(), "" | "ai.onnx")
            && node.input.len() == 1
            && node.output.len() == 1
            && node
                .attribute
                .iter()
                .any(|a| a.name == "to" && a.i == i64::from(ONNX_FLOAT))
    };
    let mut folded = Vec::new();
    graph.node.retain(|node| {
        if !is_float_cast(node) {
            return true;
        }
        let Some(half) = graph
            .initializer
            .iter()
            .find(|t| t.name == node.input[0] && t.data_type == ONNX_FLOAT16)
        else {
            return true;
        };
        let Some(values) = half_values(half) else {
            return true;
        };
        folded.push(pb::TensorProto {
            name: node.output[0].clone(),
            dims: half.dims.clone(),
            data_type: ONNX_FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        false
    });
    if folded.is_empty() {
        return;
    }
    let used = |name: &str, graph: &pb::GraphProto| {
        graph.node.iter().any(|n| n.input.iter().any(|i| i == name))
            || graph.output.iter().any(|o| o.name == name)
    };
    let unused: Vec<String> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == ONNX_FLOAT16 && !used(&t.name, graph))
        .map(|t| t.name.clone())
        .collect();
    graph.initializer.retain(|t| !unused.contains(&t.name));
    graph.input.retain(|i| !unused.contains(&i.name));
    graph.initializer.extend(folded);
}

/// The values of a FLOAT16 initializer stored inline (`raw_data` little-endian, or one value per
/// `int32_data` entry), widened to f32; `None` when their count does not match the dimensions.
fn half_values(tensor: &pb::TensorProto) -> Option<Vec<f32>> {
    let count = tensor
        .dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))?;
    let bits: Vec<u16> = if !tensor.raw_data.is_empty() {
        if tensor.raw_data.len() != count.checked_mul(2)? {
            return None;
        }
        let pairs = tensor.raw_data.chunks_exact(2);
        pairs.map(|b| u16::from_le_bytes([b[0], b[1]])).collect()
    } else {
        tensor.int32_data.iter().map(|&v| v as u16).collect()
    };
    (bits.len() == count).then(|| {
        bits.into_iter()
            .map(|b| f16::from_bits(b).to_f32())
            .collect()
    })
}

/// A graph output that no node, input or initializer produces (tract-onnx panics on one).
fn unproduced_output(graph: &pb::GraphProto) -> Option<&str> {
    let produced = |name: &str| {
        graph
            .node
            .iter()
            .any(|n| n.output.iter().any(|o| o == name))
            || graph.input.iter().any(|i| i.name == name)
            || graph.initializer.iter().any(|t| t.name == name)
    };
    graph
        .output
        .iter()
        .map(|o| o.name.as_str())
        .find(|name| !produced(name))
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tract_onnx::prelude::*;

    use super::*;
    use crate::onnx_test_graph::{model, node, value_info};

    /// A weight of 2^20 + 3 values: as f32 it is past tract's constant-folding budget (4 MiB).
    const LEN: usize = (1 << 20) + 3;

    /// `y = x + Cast(w)` and `z = x * w2` with `w` stored as half floats (in `raw_data`, or in
    /// `int32_data` with `int32`), and `w2` the same half floats cast by a second node.
    fn half_graph(int32: bool) -> Vec<u8> {
        let values: Vec<f16> = (0..LEN)
            .map(|i| f16::from_f32((i % 1000) as f32 / 7.0))
            .collect();
        let mut w = pb::TensorProto {
            name: "w.f16".into(),
            dims: vec![1, LEN as i64],
            data_type: ONNX_FLOAT16,
            ..Default::default()
        };
        if int32 {
            w.int32_data = values.iter().map(|v| i32::from(v.to_bits())).collect();
        } else {
            w.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        }
        let to_float = pb::AttributeProto {
            name: "to".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: i64::from(ONNX_FLOAT),
            ..Default::default()
        };
        let dims = [Dim::DimValue(1), Dim::DimValue(LEN as i64)];
        let graph = pb::GraphProto {
            node: vec![
                node("Cast", &["w.f16"], "w", vec![to_float.clone()]),
                node("Cast", &["w.f16"], "w2", vec![to_float]),
                node("Add", &["x", "w"], "y", vec![]),
                node("Mul", &["x", "w2"], "z", vec![]),
            ],
            initializer: vec![w],
            input: vec![value_info("x", &dims)],
            output: vec![value_info("y", &dims), value_info("z", &dims)],
            ..Default::default()
        };
        model(graph).encode_to_vec()
    }

    #[test]
    fn half_float_weights_are_widened_once_not_per_run() {
        let dir = tempfile::tempdir().unwrap();
        for int32 in [false, true] {
            let path = dir.path().join("half.onnx");
            std::fs::write(&path, half_graph(int32)).unwrap();
            let file = OnnxFile::read(&path).unwrap();
            let plan = file
                .into_tract_model()
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .unwrap();
            let ops: Vec<String> = plan
                .model()
                .nodes()
                .iter()
                .map(|n| n.op.name().into())
                .collect();
            assert!(!ops.iter().any(|op| op.contains("Cast")), "{ops:?}");

            let x = Tensor::from_shape(&[1, LEN], &vec![2.0f32; LEN]).unwrap();
            let out = plan.run(tvec!(x.into())).unwrap();
            let values = |i: usize| {
                out[i]
                    .try_as_plain_ram()
                    .unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .to_vec()
            };
            let (y, z) = (values(0), values(1));
            for i in [0, 6, 999, LEN - 1] {
                let w = f16::from_f32((i % 1000) as f32 / 7.0).to_f32();
                assert_eq!((y[i], z[i]), (2.0 + w, 2.0 * w), "int32_data: {int32}");
            }
        }
    }

    #[test]
    fn a_half_float_initializer_of_the_wrong_length_is_left_to_tract() {
        let mut proto = pb::ModelProto::decode(half_graph(false).as_slice()).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        graph.initializer[0].raw_data.push(0);
        let before = graph.clone();
        fold_half_casts(graph);
        assert_eq!(*graph, before);
    }
}
