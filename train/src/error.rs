//! The training crate's error type: every failure names the file, setting or stage it concerns.

use std::path::{Path, PathBuf};

/// Errors of training, evaluation, prediction and export.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A run file is not valid JSON.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A run's `state.json` contradicts itself.
    #[error("{path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint cannot be written or read.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Settings that cannot work together.
    #[error("{0}")]
    Setting(String),
    /// Dataset problems.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Loss computation problems (for example a batch without a valid triplet).
    #[error(transparent)]
    Loss(#[from] crate::loss::LossError),
    /// Loading pretrained weights.
    #[error(transparent)]
    Pretrained(#[from] crate::model::PretrainedError),
    /// Export problems.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// Drawing the training curve.
    #[error(transparent)]
    Curve(#[from] crate::curve::CurveError),
    /// A tensor operation failed.
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl From<edge_reid::dataset::market::MarketError> for TrainError {
    fn from(e: edge_reid::dataset::market::MarketError) -> Self {
        Self::Data(e.into())
    }
}

impl TrainError {
    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
