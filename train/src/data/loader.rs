//! A threaded batch loader: decodes images, resizes and normalises them with the runtime's
//! [`Preprocessor`], augments them (training only) on worker threads, and delivers batches in order.
//!
//! Batch `b` is built by worker `b % workers` and sent over that worker's bounded channel, so the
//! training thread reads batches in order with at most one finished batch waiting per worker.
//! Augmentation draws from a generator seeded by (seed, batch, position), so the output does not
//! depend on the number of workers. An error (a corrupt image) is delivered in place of its batch and
//! ends the iteration. Dropping the loader stops the workers (each finishes the batch in hand).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use edge_reid::attributes::{AttributeLabels, NUM_ATTRIBUTES};
use edge_reid::preprocess::{Framing, Preprocessor, Region};
use rand::SeedableRng;
use rand_pcg::Pcg64;

use super::{mix_seed, AttributeTable, Augment, DataError, Record};

/// The dense identity of a non-person record (junk, distractor) in [`Batch::identities`].
pub const NO_IDENTITY: u32 = u32::MAX;

/// Loader settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Crop height.
    pub height: usize,
    /// Crop width.
    pub width: usize,
    /// Per-channel mean on the `[0, 1]` scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation on the `[0, 1]` scale.
    pub std: [f32; 3],
    /// Augmentation for training; `None` for validation and evaluation.
    pub augment: Option<Augment>,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Augmentation seed; give each epoch its own (e.g. `seed + epoch`).
    pub seed: u64,
}

impl Default for LoaderConfig {
    /// 128 x 64 crops, ImageNet mean and std, no augmentation, two workers, seed 0.
    fn default() -> Self {
        LoaderConfig {
            height: 128,
            width: 64,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            augment: None,
            workers: 2,
            seed: 0,
        }
    }
}

/// Batches of at most `size` consecutive indices covering `0..len` in order (for scoring, where
/// every record is seen once and outputs line up with the records).
pub fn in_order(len: usize, size: usize) -> Vec<Vec<usize>> {
    (0..len)
        .collect::<Vec<_>>()
        .chunks(size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// One batch, ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `n x 3 x height x width` normalised pixels.
    pub images: Vec<f32>,
    /// Number of images.
    pub n: usize,
    /// Crop height.
    pub height: usize,
    /// Crop width.
    pub width: usize,
    /// Attribute labels per image (all zeros where `person` is false: mask them out).
    pub attributes: Vec<AttributeLabels>,
    /// Dense identity per image: the index of its identity among the person identities of the
    /// loader's records in ascending order, [`NO_IDENTITY`] where `person` is false.
    pub identities: Vec<u32>,
    /// Whether each image shows an identified person (not junk or a distractor).
    pub person: Vec<bool>,
}

/// What a worker needs to know about one record.
struct Item {
    path: PathBuf,
    attributes: AttributeLabels,
    identity: u32,
}

/// Iterator over the batches of one pass, built on worker threads.
pub struct BatchLoader {
    receivers: Vec<Receiver<Result<Batch, DataError>>>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    next: usize,
    total: usize,
    identities: usize,
    finished: bool,
}

impl BatchLoader {
    /// Starts loading `batches` (lists of indices into `records`, e.g. from
    /// [`super::PkSampler::epoch`]). Every person record needs attributes in `attributes`.
    pub fn new(
        records: &[Record],
        attributes: &AttributeTable,
        batches: Vec<Vec<usize>>,
        config: LoaderConfig,
    ) -> Result<Self, DataError> {
        let invalid = |setting, reason| DataError::InvalidSetting { setting, reason };
        let pre = Preprocessor::new(config.height, config.width, config.mean, config.std)
            .map_err(|e| invalid("preprocessing", e.to_string()))?;
        if let Some(augment) = &config.augment {
            augment.check()?;
        }
        if config.workers == 0 {
            return Err(invalid("workers", "at least one worker is needed".into()));
        }
        for (b, batch) in batches.iter().enumerate() {
            if batch.is_empty() {
                return Err(invalid("batches", format!("batch {b} is empty")));
            }
            if let Some(i) = batch.iter().find(|i| **i >= records.len()) {
                let reason = format!("batch {b} refers to record {i} of {}", records.len());
                return Err(invalid("batches", reason));
            }
        }
        let mut dense = BTreeMap::new();
        for record in records.iter().filter(|r| r.is_person()) {
            dense.insert(record.identity, 0);
        }
        for (index, slot) in dense.values_mut().enumerate() {
            *slot = index as u32;
        }
        let items = records
            .iter()
            .map(|record| {
                let (attributes, identity) = match dense.get(&record.identity) {
                    Some(identity) => (attributes.labels_for(record)?, *identity),
                    None => ([0; NUM_ATTRIBUTES], NO_IDENTITY),
                };
                Ok(Item {
                    path: record.path.clone(),
                    attributes,
                    identity,
                })
            })
            .collect::<Result<Arc<[Item]>, DataError>>()?;

        let total = batches.len();
        let batches: Arc<[Vec<usize>]> = batches.into();
        let stop = Arc::new(AtomicBool::new(false));
        let count = config.workers.min(total);
        let mut receivers = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for worker in 0..count {
            let (sender, receiver) = sync_channel(1);
            let job = Worker {
                items: Arc::clone(&items),
                batches: Arc::clone(&batches),
                pre: pre.clone(),
                augment: config.augment,
                seed: config.seed,
                stop: Arc::clone(&stop),
            };
            receivers.push(receiver);
            workers.push(std::thread::spawn(move || job.run(worker, count, sender)));
        }
        Ok(BatchLoader {
            receivers,
            workers,
            stop,
            next: 0,
            total,
            identities: dense.len(),
            finished: false,
        })
    }

    /// Number of distinct person identities among the records (the range of the dense identities).
    pub fn num_identities(&self) -> usize {
        self.identities
    }
}

impl Iterator for BatchLoader {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished || self.next >= self.total {
            return None;
        }
        let batch = self.next;
        self.next += 1;
        let received = self.receivers[batch % self.receivers.len()].recv();
        match received {
            Ok(Ok(done)) => Some(Ok(done)),
            Ok(Err(error)) => {
                self.finished = true;
                Some(Err(error))
            }
            Err(_) => {
                self.finished = true;
                Some(Err(DataError::WorkerStopped { batch }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.finished {
            0
        } else {
            self.total - self.next
        };
        (0, Some(left))
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the channels wakes workers blocked on a full one.
        self.receivers.clear();
        for worker in self.workers.drain(..) {
            // A worker that panicked has already reported it as `WorkerStopped`.
            let _ = worker.join();
        }
    }
}

/// One worker thread's share of the job.
struct Worker {
    items: Arc<[Item]>,
    batches: Arc<[Vec<usize>]>,
    pre: Preprocessor,
    augment: Option<Augment>,
    seed: u64,
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// Builds batches `worker, worker + count, ...` and sends them, until done, stopped or failed.
    fn run(self, worker: usize, count: usize, sender: SyncSender<Result<Batch, DataError>>) {
        for b in (worker..self.batches.len()).step_by(count) {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let batch = self.build(b);
            let failed = batch.is_err();
            if sender.send(batch).is_err() || failed {
                return;
            }
        }
    }

    fn build(&self, b: usize) -> Result<Batch, DataError> {
        let indices = &self.batches[b];
        let slot = self.pre.slot_len();
        let mut images = vec![0.0; indices.len() * slot];
        for (position, (index, out)) in indices
            .iter()
            .zip(images.chunks_exact_mut(slot))
            .enumerate()
        {
            let path = &self.items[*index].path;
            let preprocess = |source| DataError::Preprocess {
                path: path.clone(),
                source,
            };
            let image = image::open(path)
                .map_err(|source| DataError::Image {
                    path: path.clone(),
                    source,
                })?
                .into_rgb8();
            self.pre
                .crop_into(&image, Region::full(&image), Framing::Picture, out)
                .map_err(preprocess)?;
            if let Some(augment) = &self.augment {
                let stream = mix_seed(b as u64, position as u64);
                let mut rng = Pcg64::seed_from_u64(mix_seed(self.seed, stream));
                augment
                    .apply(&self.pre, out, &mut rng)
                    .map_err(preprocess)?;
            }
        }
        let items = indices.iter().map(|i| &self.items[*i]);
        Ok(Batch {
            images,
            n: indices.len(),
            height: self.pre.height(),
            width: self.pre.width(),
            attributes: items.clone().map(|item| item.attributes).collect(),
            identities: items.clone().map(|item| item.identity).collect(),
            person: items.map(|item| item.identity != NO_IDENTITY).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{MarketError, CSV_HEADER};
    use image::RgbImage;

    /// A tempdir with `0003` x2, `0009` x2 and one junk image (12 x 6 JPEGs) and their attributes.
    fn dataset() -> (tempfile::TempDir, Vec<Record>, AttributeTable) {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "0003_c1s1_000001_01.jpg",
            "0003_c2s1_000002_01.jpg",
            "0009_c1s1_000003_01.jpg",
            "-1_c3s1_000004_01.jpg",
            "0009_c4s1_000005_01.jpg",
        ];
        let mut records = Vec::new();
        for (n, name) in names.iter().enumerate() {
            let image = RgbImage::from_fn(6, 12, |x, y| {
                image::Rgb([(x * 40) as u8, (y * 20) as u8, (n * 50) as u8])
            });
            let path = dir.path().join(name);
            image.save(&path).unwrap();
            records.push(Record::from_path(&path).unwrap());
        }
        let csv = dir.path().join("a.csv");
        let row = |id| format!("{id},2,1,1,1,2,1,2,1,1,1,1,1,1,1,1,1,2,1,2,1,1,1,1,1,1,1,1");
        std::fs::write(&csv, format!("{CSV_HEADER}\n{}\n{}\n", row(3), row(9))).unwrap();
        (dir, records, AttributeTable::from_csv(&csv).unwrap())
    }

    fn config(workers: usize, augment: Option<Augment>) -> LoaderConfig {
        LoaderConfig {
            height: 8,
            width: 4,
            augment,
            workers,
            seed: 5,
            ..LoaderConfig::default()
        }
    }

    fn load(
        records: &[Record],
        table: &AttributeTable,
        batches: &[Vec<usize>],
        config: LoaderConfig,
    ) -> Vec<Batch> {
        let loader = BatchLoader::new(records, table, batches.to_vec(), config).unwrap();
        loader.map(Result::unwrap).collect()
    }

    #[test]
    fn delivers_preprocessed_batches_in_order_with_labels() {
        let (_dir, records, table) = dataset();
        let batches = vec![vec![0, 3, 2], vec![4], vec![1, 1], vec![2, 0]];
        let loader = BatchLoader::new(&records, &table, batches.clone(), config(3, None)).unwrap();
        assert_eq!(loader.num_identities(), 2);
        let loaded: Vec<Batch> = loader.map(Result::unwrap).collect();
        assert_eq!(loaded.len(), 4);
        let cfg = config(1, None);
        let pre = Preprocessor::new(cfg.height, cfg.width, cfg.mean, cfg.std).unwrap();
        let attributes = [1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 6, 0];
        for (batch, indices) in loaded.iter().zip(&batches) {
            assert_eq!((batch.n, batch.height, batch.width), (indices.len(), 8, 4));
            assert_eq!(batch.images.len(), indices.len() * 96);
            for (slot, index) in batch.images.chunks(96).zip(indices) {
                let image = image::open(&records[*index].path).unwrap().into_rgb8();
                let mut want = vec![0.0; 96];
                pre.crop_into(&image, Region::full(&image), Framing::Picture, &mut want)
                    .unwrap();
                assert_eq!(slot, want.as_slice());
            }
            for (i, index) in indices.iter().enumerate() {
                let (identity, person) = match records[*index].identity {
                    3 => (0, true),
                    9 => (1, true),
                    _ => (NO_IDENTITY, false),
                };
                assert_eq!(batch.identities[i], identity);
                assert_eq!(batch.person[i], person);
                let want = if person { attributes } else { [0; 12] };
                assert_eq!(batch.attributes[i], want);
            }
        }
        assert_eq!(loaded[2].images[..96], loaded[2].images[96..]);
    }

    #[test]
    fn augmentation_is_seeded_and_independent_of_workers() {
        let (_dir, records, table) = dataset();
        let batches = vec![vec![0, 1, 2, 3], vec![4, 0], vec![1, 2, 3]];
        let augment = Some(Augment::default());
        let one = load(&records, &table, &batches, config(1, augment));
        let three = load(&records, &table, &batches, config(3, augment));
        assert_eq!(one, three);
        let plain = load(&records, &table, &batches, config(2, None));
        assert_ne!(one, plain);
        let reseeded = load(
            &records,
            &table,
            &batches,
            LoaderConfig {
                seed: 6,
                ..config(2, augment)
            },
        );
        assert_ne!(one, reseeded);
    }

    #[test]
    fn a_corrupt_image_is_an_error_naming_it() {
        let (dir, mut records, table) = dataset();
        let path = dir.path().join("0009_c6s1_000009_01.jpg");
        std::fs::write(&path, b"\xff\xd8 definitely not a jpeg").unwrap();
        records.push(Record::from_path(&path).unwrap());
        let batches = vec![vec![0], vec![1, 5], vec![2], vec![3]];
        let mut loader = BatchLoader::new(&records, &table, batches, config(2, None)).unwrap();
        assert!(loader.next().unwrap().is_ok());
        let err = loader.next().unwrap().unwrap_err();
        assert!(matches!(err, DataError::Image { .. }), "{err}");
        assert!(err.to_string().contains("0009_c6s1_000009_01.jpg"), "{err}");
        assert!(loader.next().is_none());
    }

    #[test]
    fn bad_inputs_are_errors_and_dropping_early_stops_the_workers() {
        let (_dir, records, table) = dataset();
        let new = |batches: Vec<Vec<usize>>, table: &AttributeTable, workers| {
            BatchLoader::new(&records, table, batches, config(workers, None))
        };
        let err = new(vec![vec![0, 5]], &table, 1).err().unwrap();
        assert!(
            err.to_string().contains("batch 0 refers to record 5 of 5"),
            "{err}"
        );
        assert!(new(vec![vec![]], &table, 1).is_err());
        assert!(new(vec![vec![0]], &table, 0).is_err());
        let err = new(vec![vec![0]], &AttributeTable::default(), 1)
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                DataError::Market(MarketError::MissingAttributes { identity: 3, .. })
            ),
            "{err}"
        );

        // Many batches, two workers with full channels: dropping must not hang.
        let mut loader = new(vec![vec![0, 1, 2, 3, 4]; 64], &table, 2).unwrap();
        assert!(loader.next().unwrap().is_ok());
        drop(loader);
        assert_eq!(new(Vec::new(), &table, 2).unwrap().count(), 0);
    }
}
