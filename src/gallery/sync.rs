//! One gallery shared by many boxes (the fleet): what a box tells the others about one person
//! ([`Record`]), which of two versions of a person wins ([`Version`]: the last writer, by time and
//! then by box name), and the [`Ledger`] beside the gallery file that remembers the version of
//! every person the box knows, removed people included (tombstones).
//!
//! The ledger, `<gallery>.sync.json`, is JSON written as crash-safely as the gallery (and `0600`).
//! Per name it holds the version, whether it is a removal, a digest of the embeddings of that
//! version and whether the broker has sent this box's record back yet. With it a box finds what
//! `enroll` and `gallery remove` changed in its gallery file, also while it was not running
//! ([`Ledger::local_changes`]), and what a record from another box does to its gallery
//! ([`Ledger::merge`]).
//!
//! A change made here is stamped with the gallery file's modification time (and at least one
//! millisecond after the version it replaces), so last-writer-wins needs the boxes' clocks set
//! (NTP). Records carry embeddings, never images.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{check_name, Change, EmbeddingSpace, Gallery, GalleryError};
use crate::atomic_file::write_atomic_with_mode;

/// Format of the ledger file.
const LEDGER_FORMAT: u32 = 1;

/// Longest box name a record may carry.
const MAX_ORIGIN_BYTES: usize = 128;

/// A gallery that cannot be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The ledger cannot be read, parsed or written.
    #[error("gallery sync ledger {path}: {reason}")]
    Ledger {
        /// The ledger file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The gallery refused.
    #[error(transparent)]
    Gallery(#[from] GalleryError),
}

/// Which change of a person is newer: the later time (milliseconds since the Unix epoch), on a
/// tie the greater box name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// When the change was made, in milliseconds since the Unix epoch.
    pub time: u64,
    /// The box that made it.
    pub origin: String,
}

/// One person as one box last changed them: the message a box publishes (retained) for each
/// enrollment or removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The identity's name.
    pub name: String,
    /// The full fingerprint of the model that made the embeddings ([`ModelFingerprint::hex`]).
    ///
    /// [`ModelFingerprint::hex`]: super::ModelFingerprint::hex
    pub model: String,
    /// When and where the change was made.
    #[serde(flatten)]
    pub version: Version,
    /// A removal (a tombstone): no embeddings.
    pub removed: bool,
    /// The person's embeddings, one array per embedding.
    #[serde(default)]
    pub embeddings: Vec<Vec<f32>>,
}

impl Record {
    /// The embeddings as one row-major buffer, checked against `space` (`None` for a removal).
    fn rows(&self, space: &EmbeddingSpace) -> Result<Option<Vec<f32>>, String> {
        check_name(&self.name).map_err(|r| format!("the name {:?} {r}", self.name))?;
        if self.model != space.fingerprint().hex() {
            return Err(format!("it is of model {}", self.model));
        }
        if self.version.origin.is_empty() || self.version.origin.len() > MAX_ORIGIN_BYTES {
            return Err("its origin is not a box name".into());
        }
        if self.removed {
            return if self.embeddings.is_empty() {
                Ok(None)
            } else {
                Err("a removal carries embeddings".into())
            };
        }
        if self.embeddings.is_empty() {
            return Err("it has no embeddings".into());
        }
        if let Some(row) = self.embeddings.iter().find(|r| r.len() != space.dim()) {
            return Err(format!(
                "an embedding has {} values, the model's have {}",
                row.len(),
                space.dim()
            ));
        }
        if self.embeddings.iter().flatten().any(|v| !v.is_finite()) {
            return Err("its embeddings hold NaN or infinite values".into());
        }
        Ok(Some(self.embeddings.concat()))
    }
}

/// What the ledger knows of one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    version: Version,
    removed: bool,
    /// [`digest`] of the version's embeddings (empty for a removal).
    digest: String,
    /// The broker sent this version back (it holds it for the others).
    published: bool,
}

/// The ledger file.
#[derive(Serialize, Deserialize)]
struct LedgerFile {
    format: u32,
    model: String,
    people: BTreeMap<String, Entry>,
}

/// What [`Ledger::merge`] did.
#[derive(Debug, Default)]
pub struct Merged {
    /// The records that changed the gallery (enrollments, updates and removals).
    pub applied: Vec<Record>,
    /// This box's newer versions of people a record was older for: to publish again, so that
    /// the broker holds the newest.
    pub newer_here: Vec<Record>,
    /// Records refused, with the reason.
    pub refused: Vec<(Record, String)>,
}

/// The versions of every person a box knows (see the module docs).
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    space: EmbeddingSpace,
    origin: String,
    people: BTreeMap<String, Entry>,
}

/// A short digest of embeddings (their little-endian bytes).
fn digest(rows: &[f32]) -> String {
    let mut hash = Sha256::new();
    for v in rows {
        hash.update(v.to_le_bytes());
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// When the file at `path` was last modified, in milliseconds since the Unix epoch.
pub fn modified_ms(path: &Path) -> io::Result<u64> {
    let modified = fs::metadata(path)?.modified()?;
    let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

impl Ledger {
    /// The ledger file of the gallery file `gallery`.
    pub fn path_of(gallery: &Path) -> PathBuf {
        let mut name = gallery.as_os_str().to_os_string();
        name.push(".sync.json");
        PathBuf::from(name)
    }

    /// Opens the ledger of the gallery file `gallery` for box `origin`, a new empty one if there
    /// is none. A ledger of another model (the gallery was made again for a new model) is left
    /// behind: the ledger starts empty. A ledger that cannot be read is an error, never replaced.
    pub fn open(gallery: &Path, space: EmbeddingSpace, origin: &str) -> Result<Ledger, SyncError> {
        let path = Self::path_of(gallery);
        let err = |reason: String| SyncError::Ledger {
            path: path.clone(),
            reason,
        };
        let people = match fs::read(&path) {
            Ok(bytes) => {
                let file: LedgerFile = serde_json::from_slice(&bytes).map_err(|e| {
                    err(format!(
                        "{e} (it is damaged: move it away to start the sync of this gallery afresh)"
                    ))
                })?;
                if file.format != LEDGER_FORMAT {
                    return Err(err(format!(
                        "format {}, this build reads {LEDGER_FORMAT}",
                        file.format
                    )));
                }
                if file.model == space.fingerprint().hex() {
                    file.people
                } else {
                    BTreeMap::new()
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Ledger {
            path,
            space,
            origin: origin.to_string(),
            people,
        })
    }

    fn save(&self) -> Result<(), SyncError> {
        let file = LedgerFile {
            format: LEDGER_FORMAT,
            model: self.space.fingerprint().hex(),
            people: self.people.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("the ledger serialises");
        write_atomic_with_mode(&self.path, &bytes, Some(0o600))
            .map(drop)
            .map_err(|e| SyncError::Ledger {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// The record of `name` as the ledger and the gallery (its [`rows_by_name`]) hold it.
    fn record(&self, name: &str, entry: &Entry, gallery: &Rows<'_>) -> Record {
        let embeddings = if entry.removed {
            Vec::new()
        } else {
            gallery
                .get(name)
                .map(|rows| {
                    rows.chunks_exact(self.space.dim())
                        .map(<[f32]>::to_vec)
                        .collect()
                })
                .unwrap_or_default()
        };
        Record {
            name: name.to_string(),
            model: self.space.fingerprint().hex(),
            version: entry.version.clone(),
            removed: entry.removed,
            embeddings,
        }
    }

    /// Finds what was changed in `gallery` (whose file was modified at `modified`, milliseconds
    /// since the epoch) without the ledger knowing: a person the ledger lacks, or whose
    /// embeddings differ, was enrolled here; a person the ledger has that the gallery lacks was
    /// removed here. Records them as this box's new versions (the ledger is saved) and returns
    /// them, to publish.
    pub fn local_changes(
        &mut self,
        gallery: &Gallery,
        modified: u64,
    ) -> Result<Vec<Record>, SyncError> {
        let mut changed = Vec::new();
        let mut present = HashSet::new();
        let listed = gallery.identity_embeddings()?;
        for (name, rows) in &listed {
            present.insert(*name);
            let digest = digest(rows);
            let known = self.people.get(*name);
            if known.is_some_and(|e| !e.removed && e.digest == digest) {
                continue;
            }
            changed.push((name.to_string(), false, digest));
        }
        for (name, entry) in &self.people {
            if !entry.removed && !present.contains(name.as_str()) {
                changed.push((name.clone(), true, String::new()));
            }
        }
        let mut records = Vec::with_capacity(changed.len());
        let rows = rows_by_name(&listed);
        for (name, removed, digest) in changed {
            let after = self.people.get(&name).map_or(0, |e| e.version.time + 1);
            let entry = Entry {
                version: Version {
                    time: modified.max(after),
                    origin: self.origin.clone(),
                },
                removed,
                digest,
                published: false,
            };
            records.push(self.record(&name, &entry, &rows));
            self.people.insert(name, entry);
        }
        if !records.is_empty() {
            self.save()?;
        }
        Ok(records)
    }

    /// This box's records the broker has not sent back yet, to publish again (after a
    /// reconnection, or at a start when the last run ended before the broker had them).
    pub fn unpublished(&self, gallery: &Gallery) -> Result<Vec<Record>, SyncError> {
        let listed = gallery.identity_embeddings()?;
        let rows = rows_by_name(&listed);
        Ok(self
            .people
            .iter()
            .filter(|(_, e)| !e.published && e.version.origin == self.origin)
            .map(|(name, e)| self.record(name, e, &rows))
            .collect())
    }

    /// Merges records from the broker into `gallery` (in one write of the gallery file, then of
    /// the ledger): a record newer than what the ledger knows enrolls, replaces or removes the
    /// person; one equal to it is this box's own coming back (now published); an older one gets
    /// this box's newer version to publish again. Call [`Ledger::local_changes`] on the same
    /// gallery first, so that no change made here is taken for an older version.
    pub fn merge(
        &mut self,
        gallery: &mut Gallery,
        records: Vec<Record>,
    ) -> Result<Merged, SyncError> {
        let mut people = self.people.clone();
        let mut merged = Merged::default();
        let mut changes: Vec<(String, Option<Vec<f32>>)> = Vec::new();
        let mut saved = false;
        let listed = gallery.identity_embeddings()?;
        let here = rows_by_name(&listed);
        for record in records {
            let rows = match record.rows(&self.space) {
                Ok(rows) => rows,
                Err(reason) => {
                    merged.refused.push((record, reason));
                    continue;
                }
            };
            let known = people.get(&record.name);
            match known.map(|e| record.version.cmp(&e.version)) {
                Some(std::cmp::Ordering::Equal) => {
                    let entry = people.get_mut(&record.name).expect("known");
                    saved |= !entry.published;
                    entry.published = true;
                }
                Some(std::cmp::Ordering::Less) => {
                    let entry = known.expect("known").clone();
                    merged
                        .newer_here
                        .push(self.record(&record.name, &entry, &here));
                }
                None | Some(std::cmp::Ordering::Greater) => {
                    let entry = Entry {
                        version: record.version.clone(),
                        removed: record.removed,
                        digest: rows.as_deref().map(digest).unwrap_or_default(),
                        published: true,
                    };
                    people.insert(record.name.clone(), entry);
                    changes.push((record.name.clone(), rows));
                    merged.applied.push(record);
                }
            }
        }
        if !changes.is_empty() {
            let changes: Vec<Change<'_>> = changes
                .iter()
                .map(|(name, rows)| match rows {
                    Some(embeddings) => Change::Set { name, embeddings },
                    None => Change::Remove(name),
                })
                .collect();
            gallery.apply(&changes)?;
        }
        if saved || !changes.is_empty() {
            self.people = people;
            self.save()?;
        }
        Ok(merged)
    }
}

/// Each person's embeddings in a gallery, by name.
type Rows<'a> = HashMap<&'a str, &'a [f32]>;

/// The gallery's people (from [`Gallery::identity_embeddings`]) by name, looked up once per round
/// of records rather than once per record.
fn rows_by_name<'a>(listed: &'a [(&'a str, Vec<f32>)]) -> Rows<'a> {
    listed
        .iter()
        .map(|(name, rows)| (*name, rows.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::tests::{space, DIM};

    fn rows(seed: f32, n: usize) -> Vec<f32> {
        (0..n * DIM).map(|k| seed + k as f32 * 0.25).collect()
    }

    /// A box: its gallery file and ledger in `dir`.
    struct Node {
        gallery: Gallery,
        ledger: Ledger,
    }

    impl Node {
        fn new(dir: &Path, name: &str) -> Node {
            let path = dir.join(format!("{name}.gallery"));
            let gallery = Gallery::open_or_create(&path, space(1)).unwrap();
            let ledger = Ledger::open(&path, space(1), name).unwrap();
            Node { gallery, ledger }
        }

        /// Local changes stamped `time`.
        fn changes(&mut self, time: u64) -> Vec<Record> {
            self.ledger.local_changes(&self.gallery, time).unwrap()
        }

        fn merge(&mut self, records: &[Record]) -> Merged {
            self.ledger
                .merge(&mut self.gallery, records.to_vec())
                .unwrap()
        }

        fn people(&self) -> Vec<(String, Vec<f32>)> {
            let mut all: Vec<_> = self
                .gallery
                .identity_embeddings()
                .unwrap()
                .into_iter()
                .map(|(n, r)| (n.to_string(), r))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        }
    }

    #[test]
    fn two_boxes_converge_on_the_last_writer_with_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Node::new(dir.path(), "a");
        let mut b = Node::new(dir.path(), "b");
        a.gallery.enroll("alice", &rows(1.0, 2)).unwrap();
        a.gallery.enroll("bob", &rows(2.0, 1)).unwrap();
        let from_a = a.changes(1000);
        assert_eq!(from_a.len(), 2);
        assert!(from_a.iter().all(|r| r.version.time == 1000 && !r.removed));
        // Nothing more to tell until the gallery changes again.
        assert!(a.changes(1001).is_empty());

        let merged = b.merge(&from_a);
        assert_eq!(merged.applied.len(), 2);
        assert_eq!(a.people(), b.people());
        // B has nothing of its own to tell: what it merged is known.
        assert!(b.changes(2000).is_empty());

        // B removes alice; A enrolls carol and adds to bob.
        b.gallery.remove("alice").unwrap();
        let from_b = b.changes(3000);
        assert_eq!(from_b.len(), 1);
        assert!(from_b[0].removed && from_b[0].embeddings.is_empty());
        a.gallery.enroll("carol", &rows(3.0, 1)).unwrap();
        a.gallery.enroll("bob", &rows(4.0, 1)).unwrap();
        let from_a = a.changes(2500);
        assert_eq!(from_a.len(), 2);
        a.merge(&from_b);
        b.merge(&from_a);
        assert_eq!(a.people(), b.people());
        let names: Vec<String> = a.people().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["bob", "carol"]);

        // An older enrollment of alice (a box offline since before the removal) loses to the
        // tombstone, and B answers with the tombstone.
        let mut stale = from_b[0].clone();
        stale.version = Version {
            time: 2000,
            origin: "c".into(),
        };
        stale.removed = false;
        stale.embeddings = vec![vec![9.0; DIM]];
        let merged = b.merge(&[stale.clone()]);
        assert!(merged.applied.is_empty());
        assert_eq!(merged.newer_here, from_b);
        // A newer one wins.
        stale.version.time = 4000;
        let merged = a.merge(&[stale]);
        assert_eq!(merged.applied.len(), 1);
        assert!(a
            .people()
            .iter()
            .any(|(n, r)| n == "alice" && r == &vec![9.0; DIM]));
    }

    #[test]
    fn echoes_are_published_and_offline_changes_found_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Node::new(dir.path(), "a");
        a.gallery.enroll("alice", &rows(1.0, 1)).unwrap();
        let sent = a.changes(1000);
        assert_eq!(a.ledger.unpublished(&a.gallery).unwrap(), sent);
        // The broker sends them back: published, nothing to apply.
        let merged = a.merge(&sent);
        assert!(merged.applied.is_empty() && merged.newer_here.is_empty());
        assert!(a.ledger.unpublished(&a.gallery).unwrap().is_empty());

        // Stopped; `gallery remove` and `enroll` run; started again.
        let path = a.gallery.path().to_path_buf();
        drop(a);
        let mut g = Gallery::open(&path).unwrap();
        g.remove("alice").unwrap();
        g.enroll("dave", &rows(5.0, 1)).unwrap();
        let mut ledger = Ledger::open(&path, space(1), "a").unwrap();
        let found = ledger.local_changes(&g, 500).unwrap();
        let mut what: Vec<(&str, bool, u64)> = found
            .iter()
            .map(|r| (r.name.as_str(), r.removed, r.version.time))
            .collect();
        what.sort();
        // The removal is stamped after the version it replaces, whatever the file's time says.
        assert_eq!(what, [("alice", true, 1001), ("dave", false, 500)]);
    }

    #[test]
    fn bad_records_are_refused_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Node::new(dir.path(), "a");
        let good = Record {
            name: "eve".into(),
            model: space(1).fingerprint().hex(),
            version: Version {
                time: 1,
                origin: "b".into(),
            },
            removed: false,
            embeddings: vec![vec![1.0; DIM]],
        };
        let mut bad = Vec::new();
        let edits: [fn(&mut Record); 6] = [
            |r: &mut Record| r.model = space(2).fingerprint().hex(),
            |r: &mut Record| r.embeddings = vec![vec![1.0; DIM + 1]],
            |r: &mut Record| r.embeddings = vec![vec![f32::NAN; DIM]],
            |r: &mut Record| r.embeddings.clear(),
            |r: &mut Record| r.name = "a\u{7}b".into(),
            |r: &mut Record| r.version.origin.clear(),
        ];
        for edit in edits {
            let mut r = good.clone();
            r.name = format!("x{}", bad.len());
            edit(&mut r);
            bad.push(r);
        }
        let mut all = bad.clone();
        all.push(good);
        let merged = a.merge(&all);
        // (Names compared: NaN is not equal to itself.)
        let refused: Vec<&str> = merged
            .refused
            .iter()
            .map(|(r, _)| r.name.as_str())
            .collect();
        let bad: Vec<&str> = bad.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(refused, bad, "{:?}", merged.refused);
        assert_eq!(a.people().len(), 1);
    }

    #[test]
    fn records_round_trip_through_json_exactly() {
        let values: Vec<f32> = (0..2000)
            .map(|k| ((k as f32) * 0.618_034).sin() * 10f32.powi(k % 7 - 3))
            .collect();
        let record = Record {
            name: "Zoë/1 #+".into(),
            model: space(1).fingerprint().hex(),
            version: Version {
                time: 1_764_000_000_123,
                origin: "box-1".into(),
            },
            removed: false,
            embeddings: values.chunks(DIM).map(<[f32]>::to_vec).collect(),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(
            text.contains("\"time\":1764000000123,\"origin\":\"box-1\""),
            "{text}"
        );
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
        assert!(back
            .embeddings
            .concat()
            .iter()
            .zip(&values)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn a_damaged_ledger_is_an_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let a = Node::new(dir.path(), "a");
        let path = Ledger::path_of(a.gallery.path());
        fs::write(&path, b"{\"format\": 1, \"mod").unwrap();
        let err = Ledger::open(a.gallery.path(), space(1), "a").unwrap_err();
        assert!(err.to_string().contains("sync.json"), "{err}");
        assert!(err.to_string().contains("move it away"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"{\"format\": 1, \"mod");
    }
}
