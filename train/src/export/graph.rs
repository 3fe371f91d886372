//! A small builder for ONNX models: initializers, nodes with attributes, typed graph inputs and
//! outputs, opset and metadata, producing the `tract_onnx::pb` messages that prost encodes.
//!
//! Value names are kept unique: a name already taken gets a numeric suffix, so callers can name
//! values after the layer that makes them (`layer1.0.conv1`) without bookkeeping.

use std::collections::HashSet;

use tract_onnx::pb;

use super::ExportError;

/// The ONNX operator set the exporter targets (default domain).
pub const OPSET_VERSION: i64 = 17;

/// The IR version that goes with opset 17 (ONNX 1.12).
pub const IR_VERSION: i64 = 8;

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named symbolic size (the batch dimension `N`).
    Symbolic(String),
}

/// Builds one ONNX graph and wraps it in a model.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: pb::GraphProto,
    names: HashSet<String>,
    metadata: Vec<pb::StringStringEntryProto>,
    /// Store weight initializers as IEEE half floats (see [`GraphBuilder::half_weights`]).
    half: bool,
}

/// Initializers smaller than this stay f32 under [`GraphBuilder::half_weights`] (biases and
/// scalars: too small to matter for the file size, and a `Cast` each would only add nodes).
const HALF_MIN_VALUES: usize = 256;

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: pb::GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            names: HashSet::new(),
            metadata: Vec::new(),
            half: false,
        }
    }

    /// Stores the f32 initializers of at least [`HALF_MIN_VALUES`] values as FLOAT16 followed by
    /// a `Cast` to FLOAT: half the file, the same f32 arithmetic at run time (runtimes fold the
    /// casts when they load the model), weights rounded to 11 significant bits.
    pub fn half_weights(mut self, half: bool) -> Self {
        self.half = half;
        self
    }

    /// Reserves a value name: `hint` itself if free, else `hint_1`, `hint_2`, ...
    fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        let mut n = 0;
        while self.names.contains(&name) {
            n += 1;
            name = format!("{hint}_{n}");
        }
        self.names.insert(name.clone());
        name
    }

    /// Declares an f32 graph input called exactly `name`.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> Result<String, ExportError> {
        if !self.names.insert(name.to_string()) {
            return Err(ExportError::Graph(format!("input name {name:?} is taken")));
        }
        self.graph.input.push(value_info(name, dims));
        Ok(name.to_string())
    }

    /// Adds an f32 initializer of shape `dims` holding `data` (row-major).
    pub fn initializer(
        &mut self,
        hint: &str,
        dims: &[usize],
        data: &[f32],
    ) -> Result<String, ExportError> {
        let expected: usize = dims.iter().product();
        if expected != data.len() {
            return Err(ExportError::Graph(format!(
                "initializer {hint:?} of shape {dims:?} needs {expected} values, got {}",
                data.len()
            )));
        }
        let dims = dims.iter().map(|d| *d as i64).collect();
        if self.half && data.len() >= HALF_MIN_VALUES {
            if let Some(v) = data.iter().find(|v| half::f16::from_f32(**v).is_infinite()) {
                return Err(ExportError::Graph(format!(
                    "initializer {hint:?} holds {v}, beyond half-float range: export without --half"
                )));
            }
            let stored = self.fresh(&format!("{hint}.f16"));
            self.graph.initializer.push(pb::TensorProto {
                name: stored.clone(),
                dims,
                data_type: pb::tensor_proto::DataType::Float16 as i32,
                raw_data: data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
                ..Default::default()
            });
            let to_float = attr_int("to", pb::tensor_proto::DataType::Float as i64);
            return Ok(self.node(hint, "Cast", &[&stored], vec![to_float]));
        }
        let name = self.fresh(hint);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims,
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(name)
    }

    /// Adds an int64 initializer of shape `dims` (`[]` for a scalar): shapes for `Reshape`,
    /// indices, slice bounds.
    pub fn ints(&mut self, hint: &str, dims: &[usize], data: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "{hint}");
        let name = self.fresh(hint);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds a node of `op` (default domain) on `inputs`; its single output is named after `hint`
    /// and returned.
    pub fn node(
        &mut self,
        hint: &str,
        op: &str,
        inputs: &[&str],
        attributes: Vec<pb::AttributeProto>,
    ) -> String {
        let output = self.fresh(hint);
        self.graph.node.push(pb::NodeProto {
            name: output.clone(),
            op_type: op.to_string(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            output: vec![output.clone()],
            attribute: attributes,
            ..Default::default()
        });
        output
    }

    /// Declares `value` as the f32 graph output `name`, through an `Identity` node when `value` is
    /// named otherwise.
    pub fn output(&mut self, value: &str, name: &str, dims: &[Dim]) -> Result<(), ExportError> {
        if value != name {
            if self.names.contains(name) {
                return Err(ExportError::Graph(format!("output name {name:?} is taken")));
            }
            self.node(name, "Identity", &[value], vec![]);
        }
        if self.graph.output.iter().any(|o| o.name == name) {
            return Err(ExportError::Graph(format!(
                "output {name:?} is declared twice"
            )));
        }
        self.graph.output.push(value_info(name, dims));
        Ok(())
    }

    /// Adds a metadata property to the model.
    pub fn metadata(&mut self, key: &str, value: &str) {
        self.metadata.push(pb::StringStringEntryProto {
            key: key.to_string(),
            value: value.to_string(),
        });
    }

    /// The finished model: IR version 8, opset 17, this crate as producer.
    pub fn finish(self) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET_VERSION,
            }],
            producer_name: env!("CARGO_PKG_NAME").to_string(),
            producer_version: env!("CARGO_PKG_VERSION").to_string(),
            graph: Some(self.graph),
            metadata_props: self.metadata,
            ..Default::default()
        }
    }
}

/// An f32 tensor value info.
fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => Value::DimValue(*n as i64),
                Dim::Symbolic(s) => Value::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An `INT` attribute.
pub fn attr_int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// An `INTS` attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A `FLOAT` attribute.
pub fn attr_float(name: &str, value: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_unique_and_outputs_keep_their_names() {
        let mut g = GraphBuilder::new("t");
        let x = g
            .input("x", &[Dim::Symbolic("N".into()), Dim::Fixed(2)])
            .unwrap();
        assert!(g.input("x", &[]).is_err());
        let a = g.node("relu", "Relu", &[&x], vec![]);
        let b = g.node("relu", "Relu", &[&a], vec![]);
        assert_eq!((a.as_str(), b.as_str()), ("relu", "relu_1"));
        g.output(&b, "y", &[Dim::Symbolic("N".into()), Dim::Fixed(2)])
            .unwrap();
        assert!(g.output(&a, "relu", &[]).is_ok());
        assert!(g.output(&a, "y", &[]).is_err(), "y is taken");
        assert!(g.initializer("w", &[2, 2], &[1.0; 3]).is_err());
        let m = g.finish();
        let graph = m.graph.unwrap();
        assert_eq!(graph.node.last().unwrap().op_type, "Identity");
        let outs: Vec<_> = graph.output.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(outs, ["y", "relu"]);
        assert_eq!(m.opset_import[0].version, 17);
    }
}
