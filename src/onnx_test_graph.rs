//! Tests' ONNX graph pieces: the protobuf messages of a tiny graph, built with `tract_onnx::pb`
//! (the model loader's and the YOLO detector's tests write their own small models with these).

use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::tensor_shape_proto::Dimension;

use crate::onnx_file::ONNX_FLOAT;

/// An f32 initializer.
pub fn float_tensor(name: &str, dims: &[usize], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: ONNX_FLOAT,
        float_data: data,
        ..Default::default()
    }
}

/// An f32 graph input or output of shape `dims`.
pub fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(d.clone()),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: ONNX_FLOAT,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A node named after its one output.
pub fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

/// An opset-17 model around `graph`.
pub fn model(graph: pb::GraphProto) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "edge-reid tests".into(),
        graph: Some(graph),
        ..Default::default()
    }
}
