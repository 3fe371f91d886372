//! The P x K batch sampler of the triplet loss: P identities per batch, K images each.
//!
//! An epoch covers every image about once, as torchreid's `RandomIdentitySampler` does: each
//! identity's images are shuffled and cut into chunks of K (an identity with fewer than K images
//! gives one chunk of all its images repeated at random up to K; a last incomplete chunk is
//! dropped), and each batch takes one chunk from each of P distinct identities among those with
//! the most chunks left (ties drawn at random). When fewer than P identities have chunks left, the batch is topped up with
//! fresh chunks of other identities, so every batch has exactly P x K persons and an epoch has
//! `total chunks / P` batches. Optionally a few non-person records (junk, distractors) follow the
//! P x K persons in each batch for the person-vs-junk head.

use rand::seq::{index, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use super::{mix_seed, DataError, Record};

/// Sampler settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkConfig {
    /// Identities per batch.
    pub p: usize,
    /// Images per identity (at least 2: a triplet needs a positive).
    pub k: usize,
    /// Non-person records appended to each batch (0 for none).
    pub junk: usize,
    /// Seed; with the epoch number it fixes every batch.
    pub seed: u64,
}

impl Default for PkConfig {
    /// P = 16, K = 4, no junk, seed 0.
    fn default() -> Self {
        PkConfig {
            p: 16,
            k: 4,
            junk: 0,
            seed: 0,
        }
    }
}

/// Draws P x K batches of record indices.
#[derive(Debug, Clone)]
pub struct PkSampler {
    /// Record indices per person identity, in ascending identity order.
    identities: Vec<Vec<usize>>,
    /// Indices of the non-person records.
    junk: Vec<usize>,
    config: PkConfig,
}

impl PkSampler {
    /// A sampler over `records` (indices in the batches refer to this slice).
    pub fn new(records: &[Record], config: PkConfig) -> Result<Self, DataError> {
        let invalid = |setting, reason: String| Err(DataError::InvalidSetting { setting, reason });
        if config.k < 2 {
            return invalid("k", format!("K = {} but a triplet needs K >= 2", config.k));
        }
        let mut by_identity = std::collections::BTreeMap::<i32, Vec<usize>>::new();
        let mut junk = Vec::new();
        for (i, record) in records.iter().enumerate() {
            if record.is_person() {
                by_identity.entry(record.identity).or_default().push(i);
            } else {
                junk.push(i);
            }
        }
        if config.p == 0 || config.p > by_identity.len() {
            let reason = format!(
                "P = {} with {} person identities",
                config.p,
                by_identity.len()
            );
            return invalid("p", reason);
        }
        if config.junk > 0 && junk.is_empty() {
            let reason = format!("{} junk images per batch but none in the data", config.junk);
            return invalid("junk", reason);
        }
        Ok(PkSampler {
            identities: by_identity.into_values().collect(),
            junk,
            config,
        })
    }

    /// Records per batch: `P * K + junk`, persons first.
    pub fn batch_size(&self) -> usize {
        self.config.p * self.config.k + self.config.junk
    }

    /// Chunks of K images an identity with `n` images gives per epoch.
    fn chunks(&self, n: usize) -> usize {
        (n / self.config.k).max(1)
    }

    /// Batches per epoch: all identities' chunks divided by P.
    pub fn batches_per_epoch(&self) -> usize {
        let chunks: usize = self.identities.iter().map(|i| self.chunks(i.len())).sum();
        (chunks / self.config.p).max(1)
    }

    /// The batches of epoch `epoch`, deterministic for the seed and epoch. Each batch holds P
    /// identities' K images (grouped, identity by identity), then the junk records.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let PkConfig { p, k, junk, seed } = self.config;
        let mut rng = Pcg64::seed_from_u64(mix_seed(seed, epoch));
        // Each identity's chunks for this epoch, as a stack.
        let mut chunks: Vec<Vec<Vec<usize>>> = self
            .identities
            .iter()
            .map(|images| {
                if images.len() >= k {
                    let mut shuffled = images.clone();
                    shuffled.shuffle(&mut rng);
                    shuffled.chunks_exact(k).map(<[usize]>::to_vec).collect()
                } else {
                    let mut chunk = Vec::with_capacity(k);
                    pick(images, k, &mut rng, &mut chunk);
                    vec![chunk]
                }
            })
            .collect();
        let mut junk_order = self.junk.clone();
        let mut junk_next = junk_order.len();
        let total = self.batches_per_epoch();
        let mut batches = Vec::with_capacity(total);
        for _ in 0..total {
            let mut ready: Vec<usize> = (0..chunks.len())
                .filter(|&i| !chunks[i].is_empty())
                .collect();
            // Identities with the most chunks left go first (ties in random order), so that
            // chunks run out together and the epoch uses every chunk when it can.
            ready.shuffle(&mut rng);
            ready.sort_by_key(|&i| std::cmp::Reverse(chunks[i].len()));
            ready.truncate(p);
            if ready.len() < p {
                let mut others: Vec<usize> =
                    (0..chunks.len()).filter(|i| !ready.contains(i)).collect();
                others.shuffle(&mut rng);
                ready.extend(others.into_iter().take(p - ready.len()));
            }
            let mut batch = Vec::with_capacity(self.batch_size());
            for identity in ready {
                match chunks[identity].pop() {
                    Some(chunk) => batch.extend(chunk),
                    None => pick(&self.identities[identity], k, &mut rng, &mut batch),
                }
            }
            for _ in 0..junk {
                if junk_next == junk_order.len() {
                    junk_order.shuffle(&mut rng);
                    junk_next = 0;
                }
                batch.push(junk_order[junk_next]);
                junk_next += 1;
            }
            batches.push(batch);
        }
        batches
    }
}

/// Appends `k` of `images` to `batch`: distinct ones when there are enough, else all of them in a
/// random order followed by random repeats.
fn pick(images: &[usize], k: usize, rng: &mut Pcg64, batch: &mut Vec<usize>) {
    if images.len() >= k {
        batch.extend(
            index::sample(rng, images.len(), k)
                .into_iter()
                .map(|i| images[i]),
        );
    } else {
        let start = batch.len();
        batch.extend_from_slice(images);
        batch[start..].shuffle(rng);
        batch.extend((images.len()..k).map(|_| images[rng.random_range(0..images.len())]));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::data::test_record;

    /// Identities 1-10 with 1-5 images each, then three junk images.
    fn records() -> Vec<Record> {
        let mut records = Vec::new();
        for id in 1..=10 {
            for frame in 0..(id % 5 + 1) as u32 {
                records.push(test_record(id, 1, frame));
            }
        }
        records.extend((0..3).map(|f| test_record(-1, 2, f)));
        records
    }

    #[test]
    fn batches_hold_p_identities_with_k_images_each() {
        let records = records();
        let config = PkConfig {
            p: 4,
            k: 3,
            junk: 2,
            seed: 9,
        };
        let sampler = PkSampler::new(&records, config).unwrap();
        let batches = sampler.epoch(0);
        // One chunk of 3 per identity (10 chunks), 4 per batch.
        assert_eq!(batches.len(), 2);
        assert_eq!(sampler.batches_per_epoch(), 2);
        let mut seen = BTreeSet::new();
        for batch in &batches {
            assert_eq!(batch.len(), sampler.batch_size());
            assert_eq!(batch.len(), 14);
            let (persons, junk) = batch.split_at(12);
            assert!(junk.iter().all(|i| records[*i].identity == -1));
            let mut ids = BTreeSet::new();
            for group in persons.chunks(3) {
                let id = records[group[0]].identity;
                assert!(
                    group.iter().all(|i| records[*i].identity == id),
                    "{group:?}"
                );
                let available = records.iter().filter(|r| r.identity == id).count();
                let distinct: BTreeSet<usize> = group.iter().copied().collect();
                assert_eq!(distinct.len(), available.min(3), "identity {id}");
                assert!(ids.insert(id), "identity {id} twice in a batch");
            }
            assert_eq!(ids.len(), 4);
            assert!(
                seen.is_disjoint(&ids),
                "an identity's only chunk used twice"
            );
            seen.extend(ids);
        }
        assert_eq!(seen.len(), 8);

        let again = PkSampler::new(&records, config).unwrap();
        assert_eq!(again.epoch(0), batches);
        assert_ne!(sampler.epoch(1), batches);
        let other_seed = PkConfig { seed: 10, ..config };
        assert_ne!(
            PkSampler::new(&records, other_seed).unwrap().epoch(0),
            batches
        );
    }

    #[test]
    fn an_epoch_covers_every_image_once() {
        let records: Vec<Record> = (1..=4)
            .flat_map(|id| (0..6).map(move |f| test_record(id, 1 + f as u8 % 2, f)))
            .collect();
        let config = PkConfig {
            p: 2,
            k: 3,
            junk: 0,
            seed: 1,
        };
        let sampler = PkSampler::new(&records, config).unwrap();
        let batches = sampler.epoch(3);
        assert_eq!(batches.len(), 4);
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..24).collect::<Vec<_>>());
    }

    #[test]
    fn bad_settings_are_errors() {
        let records = records();
        let with = |p, k, junk| {
            PkSampler::new(
                &records,
                PkConfig {
                    p,
                    k,
                    junk,
                    seed: 0,
                },
            )
        };
        assert!(matches!(
            with(4, 1, 0),
            Err(DataError::InvalidSetting { setting: "k", .. })
        ));
        assert!(matches!(
            with(11, 2, 0),
            Err(DataError::InvalidSetting { setting: "p", .. })
        ));
        assert!(matches!(
            with(0, 2, 0),
            Err(DataError::InvalidSetting { setting: "p", .. })
        ));
        assert!(with(10, 2, 0).is_ok());
        let persons: Vec<Record> = records.iter().filter(|r| r.is_person()).cloned().collect();
        let no_junk = PkConfig {
            p: 2,
            k: 2,
            junk: 1,
            seed: 0,
        };
        assert!(matches!(
            PkSampler::new(&persons, no_junk),
            Err(DataError::InvalidSetting {
                setting: "junk",
                ..
            })
        ));
    }
}
