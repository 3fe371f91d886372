//! edge-reid: person attribute recognition and re-identification at the edge.
//!
//! The runtime, in the order data flows through it: [`source`] (camera, files, stdin, synthetic
//! camera) -> [`detect`] (person boxes) -> [`track`] -> [`preprocess`] and [`model`] (tract on CPU,
//! run per crop by [`pipeline`]) -> [`gallery`] (identities, compared with [`distance`]) ->
//! [`events`] (and [`store`] to keep them searchable, [`mqtt`] to a broker, [`fleet`] to share the
//! gallery through it, [`metrics`] for Prometheus, [`web`] for a browser, [`annotate`] for drawn
//! frames, [`mot`] for tracks in the MOTChallenge format). [`card`] and [`attributes`] are the
//! model's contract; [`atomic_file`] the crash-safe writes; [`picture`] the bounded decoding of
//! pictures. `fuzzing` (built only for `cargo fuzz` and the tests) holds the properties the fuzz
//! targets in `fuzz/` check.
//!
//! Shared with the training crate but never run on a camera: [`dataset`] (the Market-1501 layout
//! and annotations, the synthetic renderer) and [`eval`] (metrics, open-set rates, evaluation).
//! This crate never depends on candle.

pub mod annotate;
pub mod atomic_file;
pub mod attributes;
pub mod backoff;
pub mod card;
pub mod dataset;
pub mod detect;
pub mod distance;
pub mod eval;
pub mod events;
pub mod fleet;
/// Built for `cargo fuzz` (which sets `--cfg fuzzing`) and for the tests that replay its finds.
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod gallery;
pub mod http;
pub mod metrics;
pub mod model;
pub mod mot;
pub mod mqtt;
mod onnx_file;
#[cfg(test)]
mod onnx_test_graph;
pub mod picture;
pub mod pipeline;
pub mod preprocess;
pub mod source;
pub mod store;
pub mod track;
pub mod web;
