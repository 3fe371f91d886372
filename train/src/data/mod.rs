//! Market-1501 layout data for training: image records, attribute annotations (CSV and Lin et al.'s
//! MAT file), the identity-disjoint validation split, the P x K batch sampler, augmentation and a
//! threaded batch loader.
//!
//! Everything here is plain Rust (no candle): batches come out as `f32` NCHW buffers with their
//! labels, normalised by [`edge_reid::preprocess`] exactly as the runtime normalises crops.
//!
//! ```no_run
//! # fn main() -> Result<(), edge_reid_train::data::DataError> {
//! use edge_reid_train::data::*;
//! let ds = MarketDataset::open("market".as_ref())?;
//! let split = split_train_val(&ds.train, 0.3, 7)?;
//! let sampler = PkSampler::new(&split.train, PkConfig::default())?;
//! let config = LoaderConfig {
//!     augment: Some(Augment::default()),
//!     ..LoaderConfig::default()
//! };
//! let loader = BatchLoader::new(&split.train, &ds.attributes, sampler.epoch(0), config)?;
//! for batch in loader {
//!     let batch = batch?;
//!     assert_eq!(batch.images.len(), batch.n * 3 * batch.height * batch.width);
//! }
//! # Ok(())
//! # }
//! ```

mod annotations;
mod augment;
mod loader;
mod market;
pub mod mat;
mod sampler;
mod split;

use std::path::PathBuf;

pub use annotations::{csv_row, AttributeTable, CSV_HEADER};
pub use augment::Augment;
pub use loader::{Batch, BatchLoader, LoaderConfig, NO_IDENTITY};
pub use market::{list_folder, EvaluationSplit, MarketDataset, Record};
pub use sampler::{PkConfig, PkSampler};
pub use split::{query_gallery, split_train_val, QueryGallery, TrainVal};

/// Why data could not be loaded, split or sampled. Every variant names the file, row or setting.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A folder the dataset layout requires is missing.
    #[error("{path} is missing: a Market-1501 root needs bounding_box_train/ (and, for evaluation, query/ and bounding_box_test/ together)")]
    MissingFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A `.jpg` whose name is not `PPPP_cCsS_FFFFFF_BB.jpg`.
    #[error("{path}: not a Market-1501 image name (PPPP_cCsS_FFFFFF_BB.jpg): {reason}")]
    BadFileName {
        /// The file.
        path: PathBuf,
        /// What is wrong with the name.
        reason: String,
    },
    /// Neither attribute file exists under the dataset root.
    #[error("{root} has neither market_attribute.mat nor annotations_train.csv")]
    NoAnnotations {
        /// The dataset root.
        root: PathBuf,
    },
    /// A malformed row of an annotation CSV.
    #[error("{path}:{line}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The MAT file could not be parsed.
    #[error(transparent)]
    Mat(#[from] mat::MatError),
    /// The MAT file parsed but a field does not hold what Lin et al.'s layout has.
    #[error("{path}: field {field}: {reason}")]
    MatContent {
        /// The file.
        path: PathBuf,
        /// Dotted field path (`market_attribute.train.age`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A person image whose identity has no attribute annotation.
    #[error("{path}: identity {identity} has no attribute annotation")]
    MissingAttributes {
        /// An image of that identity.
        path: PathBuf,
        /// The identity.
        identity: i32,
    },
    /// A split, sampler or loader setting that cannot work with the data given.
    #[error("invalid {setting}: {reason}")]
    InvalidSetting {
        /// The setting (`val_fraction`, `k`, `workers`, ...).
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// An image could not be decoded.
    #[error("decoding image {path}: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// A decoded image could not be preprocessed.
    #[error("preprocessing {path}: {source}")]
    Preprocess {
        /// The file.
        path: PathBuf,
        /// The preprocessing error.
        source: edge_reid::preprocess::PreprocessError,
    },
    /// A loader worker stopped without delivering a batch (it panicked).
    #[error("a loader worker stopped before delivering batch {batch}")]
    WorkerStopped {
        /// Index of the batch that never came.
        batch: usize,
    },
}

/// A well-mixed 64-bit seed from a base seed and a stream number (SplitMix64 finaliser), so that
/// per-epoch and per-sample generators are independent yet reproducible.
fn mix_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A record of a file that need not exist, for tests.
#[cfg(test)]
fn test_record(identity: i32, camera: u8, frame: u32) -> Record {
    Record {
        path: PathBuf::from(format!("{identity}_c{camera}_{frame}.jpg")),
        identity,
        camera,
        sequence: 1,
        frame,
    }
}
