//! Reading an ONNX file for tract, shared by the model loader ([`crate::model`]) and the person
//! detector ([`crate::detect::yolo`]): the parsed protobuf with its graph, and the graph's one real
//! input (a graph input that is not an initializer) with its declared shape.

use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::prelude::Framework;

/// `ONNX TensorProto.DataType.FLOAT`.
pub(crate) const ONNX_FLOAT: i32 = 1;

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

    /// The parsed model, for tract's `model_for_proto_model` and the metadata.
    pub fn proto(&self) -> &pb::ModelProto {
        &self.proto
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
