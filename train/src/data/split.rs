//! Identity-disjoint train/validation split and the validation query/gallery split.
//!
//! The paper holds out 30% of the training data for validation with no identity on both sides.
//! Validation re-ID is then scored like Market: per identity one query image per camera, the rest
//! gallery (same identity + same camera gallery entries are dropped by the metric).

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use super::{DataError, Record};

/// Training and validation records.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainVal {
    /// Records kept for training.
    pub train: Vec<Record>,
    /// Records held out for validation.
    pub val: Vec<Record>,
}

/// Splits `records` into train and validation, deterministically for a `seed`.
///
/// Person identities are shuffled and `round(val_fraction * identities)` of them go to validation
/// (at least one on each side when there are two or more identities and `0 < val_fraction`); all
/// images of an identity stay together. Non-person records (junk and distractors, which feed the
/// person-vs-junk head) are split separately, image by image, with the same fraction. Both sides
/// keep the input order.
pub fn split_train_val(
    records: &[Record],
    val_fraction: f64,
    seed: u64,
) -> Result<TrainVal, DataError> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(DataError::InvalidSetting {
            setting: "val_fraction",
            reason: format!("{val_fraction} is not in [0, 1)"),
        });
    }
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut identities: Vec<i32> = records
        .iter()
        .filter(|r| r.is_person())
        .map(|r| r.identity)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    identities.shuffle(&mut rng);
    let mut val_count = (val_fraction * identities.len() as f64).round() as usize;
    if val_fraction > 0.0 && identities.len() >= 2 {
        val_count = val_count.clamp(1, identities.len() - 1);
    }
    let val_identities: BTreeSet<i32> = identities[..val_count].iter().copied().collect();

    let mut others: Vec<usize> = (0..records.len())
        .filter(|i| !records[*i].is_person())
        .collect();
    others.shuffle(&mut rng);
    let val_others = (val_fraction * others.len() as f64).round() as usize;
    let val_other_set: BTreeSet<usize> = others[..val_others].iter().copied().collect();

    let mut split = TrainVal {
        train: Vec::new(),
        val: Vec::new(),
    };
    for (i, record) in records.iter().enumerate() {
        let to_val = if record.is_person() {
            val_identities.contains(&record.identity)
        } else {
            val_other_set.contains(&i)
        };
        let side = if to_val {
            &mut split.val
        } else {
            &mut split.train
        };
        side.push(record.clone());
    }
    Ok(split)
}

/// Validation query and gallery records.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryGallery {
    /// One image per camera of each identity seen by two or more cameras.
    pub query: Vec<Record>,
    /// Everything else except junk (`-1`); distractors (`0`) stay, as in Market's gallery.
    pub gallery: Vec<Record>,
}

/// Splits validation records into query and gallery, deterministically for a `seed`: for each
/// person identity with images from at least two cameras, one randomly chosen image per camera is a
/// query; every other person or distractor image is gallery; junk is dropped. Both keep input order.
pub fn query_gallery(records: &[Record], seed: u64) -> QueryGallery {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut by_identity: BTreeMap<i32, BTreeMap<u8, Vec<usize>>> = BTreeMap::new();
    for (i, record) in records.iter().enumerate().filter(|(_, r)| r.is_person()) {
        by_identity
            .entry(record.identity)
            .or_default()
            .entry(record.camera)
            .or_default()
            .push(i);
    }
    let mut is_query = vec![false; records.len()];
    for cameras in by_identity.values().filter(|cameras| cameras.len() >= 2) {
        for images in cameras.values() {
            is_query[images[rng.random_range(0..images.len())]] = true;
        }
    }
    let mut split = QueryGallery {
        query: Vec::new(),
        gallery: Vec::new(),
    };
    for (record, query) in records.iter().zip(is_query) {
        if query {
            split.query.push(record.clone());
        } else if record.identity != -1 {
            split.gallery.push(record.clone());
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_record as record;

    /// Ten identities with 1-4 images each over cameras 1-3, and six junk images.
    fn records() -> Vec<Record> {
        let mut records = Vec::new();
        for id in 1..=10 {
            for frame in 0..(id % 4 + 1) as u32 {
                records.push(record(id, (frame % 3 + 1) as u8, frame));
            }
        }
        records.extend((0..6).map(|f| record(-1, 1, f)));
        records
    }

    fn ids(records: &[Record]) -> BTreeSet<i32> {
        records
            .iter()
            .filter(|r| r.is_person())
            .map(|r| r.identity)
            .collect()
    }

    #[test]
    fn split_is_identity_disjoint_complete_and_seeded() {
        let all = records();
        let split = split_train_val(&all, 0.3, 11).unwrap();
        let (train_ids, val_ids) = (ids(&split.train), ids(&split.val));
        assert_eq!(val_ids.len(), 3);
        assert_eq!(train_ids.len(), 7);
        assert!(train_ids.is_disjoint(&val_ids));
        assert_eq!(split.train.len() + split.val.len(), all.len());
        let junk = |rs: &[Record]| rs.iter().filter(|r| r.identity == -1).count();
        assert_eq!((junk(&split.train), junk(&split.val)), (4, 2));
        // Input order is kept on both sides.
        let position = |r: &Record| all.iter().position(|a| a == r).unwrap();
        assert!(split
            .val
            .windows(2)
            .all(|w| position(&w[0]) < position(&w[1])));

        assert_eq!(split_train_val(&all, 0.3, 11).unwrap(), split);
        let others: Vec<BTreeSet<i32>> = (0..8)
            .map(|seed| ids(&split_train_val(&all, 0.3, seed).unwrap().val))
            .collect();
        assert!(
            others.iter().any(|v| *v != val_ids),
            "the seed changes the split"
        );

        assert!(split_train_val(&all, 1.0, 0).is_err());
        assert!(split_train_val(&all, -0.1, 0).is_err());
        assert_eq!(split_train_val(&all, 0.0, 0).unwrap().val.len(), 0);
        // Two identities and a tiny fraction still leave one on each side.
        let two: Vec<Record> = all.iter().filter(|r| r.identity <= 2).cloned().collect();
        let split = split_train_val(&two, 0.01, 3).unwrap();
        assert_eq!((ids(&split.train).len(), ids(&split.val).len()), (1, 1));
    }

    #[test]
    fn query_gallery_takes_one_query_per_camera() {
        let mut val = records();
        val.push(record(0, 2, 99));
        let split = query_gallery(&val, 5);
        for id in 1..=10 {
            let cameras: BTreeSet<u8> = val
                .iter()
                .filter(|r| r.identity == id)
                .map(|r| r.camera)
                .collect();
            let queries: Vec<u8> = split
                .query
                .iter()
                .filter(|r| r.identity == id)
                .map(|r| r.camera)
                .collect();
            if cameras.len() >= 2 {
                assert_eq!(queries.iter().copied().collect::<BTreeSet<_>>(), cameras);
                assert_eq!(queries.len(), cameras.len(), "identity {id}");
            } else {
                assert!(queries.is_empty(), "identity {id}");
            }
        }
        assert!(split.gallery.iter().all(|r| r.identity != -1));
        assert!(split.gallery.iter().any(|r| r.identity == 0));
        assert_eq!(split.query.len() + split.gallery.len(), val.len() - 6);
        assert!(split.query.iter().all(|q| !split.gallery.contains(q)));
        assert_eq!(query_gallery(&val, 5), split);
    }
}
