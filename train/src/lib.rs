//! edge-reid-train: the paper's multi-task network (ResNet18 backbone, 12 attribute heads, a re-ID
//! embedding, an optional person-vs-junk head) trained with candle on Market-1501 layout data, and
//! exported to one ONNX file the `edge-reid` runtime runs.
//!
//! The pipeline, one module per stage: [`synth`] renders a synthetic dataset, [`data`] reads a
//! Market-1501 layout (images, attributes, split, P x K sampling, augmentation, batch loading),
//! [`model`] is the network, [`loss`] its losses, [`run`] a run's folder (config, state,
//! checkpoints), [`fit`] trains it ([`optim`], [`schedule`], [`history`], [`curve`]), [`evaluate`]
//! scores it, [`predict`] writes the course's submission files and [`export`] writes the ONNX file;
//! [`pre_detector`] trains the small person-vs-junk model. [`malloc`] tunes the allocator for
//! training.

pub mod curve;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod fit;
pub mod history;
pub mod loss;
pub mod malloc;
pub mod model;
pub mod optim;
pub mod pre_detector;
pub mod predict;
pub mod run;
pub mod schedule;
pub mod synth;

pub use error::TrainError;
