//! edge-reid: person attribute recognition and re-identification at the edge.
//!
//! The runtime side of the project (tract on CPU) and the pieces the training crate shares with it:
//! the attribute schema, the model card, the Market-1501 layout and annotations, the evaluation
//! metrics and the synthetic person renderer.
//! This crate never depends on candle.

pub mod annotate;
pub mod atomic_file;
pub mod attributes;
pub mod card;
pub mod detect;
pub mod evaluate;
pub mod events;
pub mod gallery;
pub mod market;
pub mod metrics;
pub mod model;
mod onnx_file;
#[cfg(test)]
mod onnx_test_graph;
pub mod open_set;
pub mod pipeline;
pub mod preprocess;
pub mod source;
pub mod synth;
pub mod track;
