//! Market-1501 layout data for training: image records and attribute annotations (CSV and Lin et
//! al.'s MAT file, both from [`edge_reid::dataset::market`], re-exported here), the identity-disjoint
//! validation split, the P x K batch sampler, augmentation and a threaded batch loader.
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

mod augment;
mod loader;
mod sampler;
mod split;

use std::path::PathBuf;

pub use augment::Augment;
pub use edge_reid::dataset::market::{
    csv_row, list_folder, AttributeTable, EvaluationSplit, MarketDataset, MarketError, Record,
    CSV_HEADER,
};
pub use loader::{in_order, Batch, BatchLoader, LoaderConfig, NO_IDENTITY};
pub use sampler::{PkConfig, PkSampler};
pub use split::{query_gallery, split_train_val, QueryGallery, TrainVal};

/// Why data could not be loaded, split or sampled. Every variant names the file, row or setting.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The Market-1501 layout or its annotations could not be read.
    #[error(transparent)]
    Market(#[from] MarketError),
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
pub(crate) fn mix_seed(seed: u64, stream: u64) -> u64 {
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
