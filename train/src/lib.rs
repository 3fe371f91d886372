//! edge-reid-train: the paper's multi-task network (ResNet18 backbone, 12 attribute heads, a re-ID
//! embedding, an optional person-vs-junk head) trained with candle on Market-1501 layout data, and
//! exported to one ONNX file the `edge-reid` runtime runs.

pub mod data;
pub mod export;
pub mod loss;
pub mod model;
pub mod synth;
