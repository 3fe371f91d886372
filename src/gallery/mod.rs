//! The gallery: a local file of re-ID embeddings with identity names (no images), searched for the
//! closest identities of a query embedding.
//!
//! - One file, [`file_format`] version 3: a header with the embedding dimension, the metric and the
//!   fingerprint of the model that made the embeddings ([`ModelFingerprint`]: its graph and
//!   weights), the identities with when they were enrolled and their embeddings, and
//!   CRC32 checksums. A truncated, damaged, foreign or future-version file is refused with its own
//!   [`GalleryError`] and left as it is; a gallery made with another model is refused by
//!   [`Gallery::check_model`] (and [`Gallery::open_or_create`]).
//! - Writes are crash-safe: every change ([`Gallery::enroll`], [`Gallery::enroll_batch`],
//!   [`Gallery::remove`], [`Gallery::apply`]) rewrites the whole file through
//!   [`write_atomic_with_mode`] (temporary file, fsync, rename, fsync of the directory), created
//!   `0600`, before it returns, so the file on disk is always a complete gallery holding every
//!   acknowledged change. Writers hold an exclusive lock on `<file>.lock`
//!   while they write and refuse to overwrite a file another process changed since they read it
//!   ([`GalleryError::Changed`]): no lost enrollments. Readers need no lock.
//! - Whole-file rewrites cost one write of the file per change (about 50 MB for 100k embeddings
//!   of dimension 128): fine for enrollment at human pace; bulk loads go through
//!   [`Gallery::enroll_batch`], one write for the whole batch. [`sync`] shares a gallery between
//!   boxes.
//! - In memory the embeddings are one row-major slab with the rows of each identity together.
//!   [`Gallery::search`] is exact in two passes: an `i8` copy of the slab ([`compact`], made by
//!   the first search after a change: about 1 s per million rows) bounds every row's score, and
//!   only the rows that can be in the answer are scored in f32 ([`search`]). One query over 1M
//!   embeddings of dimension 128 takes about 14 ms on one core of the dev machine (3x faiss's
//!   exact flat index); [`Gallery::search_batch`] shares the pass among a frame's queries.

mod compact;
pub mod file_format;
mod search;
pub mod sync;

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::atomic_file::write_atomic_with_mode;
use crate::distance::DistanceMetric;
use crate::model::Model;
pub use crate::model::ModelFingerprint;

pub use search::Match;

pub use file_format::Stamp;

/// Longest identity name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Largest embedding dimension a gallery accepts.
pub const MAX_DIM: usize = 1 << 16;

/// A gallery that cannot be opened, written or searched as asked.
#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    /// The gallery file does not exist.
    #[error("gallery {path} does not exist")]
    NotFound {
        /// The gallery file.
        path: PathBuf,
    },
    /// [`Gallery::create`] on a path that exists.
    #[error("gallery {path} already exists: open it, or remove it first")]
    AlreadyExists {
        /// The gallery file.
        path: PathBuf,
    },
    /// Reading, writing or locking the file failed.
    #[error("cannot access gallery {path}: {source}")]
    Io {
        /// The file (the gallery or its lock file).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file of zero bytes.
    #[error("gallery {path} is empty (0 bytes): it is not a gallery file")]
    Empty {
        /// The gallery file.
        path: PathBuf,
    },
    /// The file is shorter than its header says (or than a header).
    #[error("gallery {path} is truncated: {found} bytes, expected {expected}")]
    Truncated {
        /// The gallery file.
        path: PathBuf,
        /// The length the header declares (or the header length).
        expected: u64,
        /// The file's length.
        found: u64,
    },
    /// A checksum does not match: the file was damaged.
    #[error("gallery {path} is damaged: its checksum does not match its contents")]
    Checksum {
        /// The gallery file.
        path: PathBuf,
    },
    /// The file does not start with the gallery magic bytes.
    #[error("{path} is not an edge-reid gallery (wrong magic bytes)")]
    Magic {
        /// The file.
        path: PathBuf,
    },
    /// A gallery of another format version.
    #[error("gallery {path} has format version {found}; this build reads versions {} to {supported}{}", file_format::OLDEST, version_hint(*found))]
    Version {
        /// The gallery file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The checksums match but the contents are inconsistent (a faulty writer).
    #[error("gallery {path} is damaged: {reason}")]
    Corrupt {
        /// The gallery file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// The gallery was enrolled with another model.
    #[error(
        "gallery {path} was enrolled with another model ({gallery}); this model is {model}: \
         use the gallery's model or enroll the identities again in a new gallery"
    )]
    WrongModel {
        /// The gallery file.
        path: PathBuf,
        /// The gallery's embedding space.
        gallery: Box<EmbeddingSpace>,
        /// The model's embedding space.
        model: Box<EmbeddingSpace>,
    },
    /// Another process changed or removed the file since this gallery was read.
    #[error("gallery {path} was changed or removed by another process since it was opened: open it again")]
    Changed {
        /// The gallery file.
        path: PathBuf,
    },
    /// An identity name that cannot be stored.
    #[error("identity name {name:?} {reason}")]
    Name {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Gallery::remove`] of a name the gallery does not hold.
    #[error("gallery {path} has no identity named {name:?}")]
    UnknownIdentity {
        /// The gallery file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// Enrollment values that are not a positive number of embeddings.
    #[error("cannot enroll {name:?}: {len} values are not a positive multiple of the embedding dimension {dim}")]
    Enrollment {
        /// The identity name.
        name: String,
        /// Number of values given.
        len: usize,
        /// The gallery's embedding dimension.
        dim: usize,
    },
    /// A query of the wrong length.
    #[error("the query has {len} values, the gallery's embeddings have {dim}")]
    QueryDimension {
        /// Number of values given.
        len: usize,
        /// The gallery's embedding dimension.
        dim: usize,
    },
    /// An embedding with NaN or infinite values (or a squared norm that overflows).
    #[error("the {what} holds NaN or infinite values")]
    NonFinite {
        /// `query` or `enrolled embeddings`.
        what: &'static str,
    },
    /// An embedding dimension of 0 or above [`MAX_DIM`].
    #[error("embedding dimension {dim} is outside 1..={MAX_DIM}")]
    Dimension {
        /// The dimension asked for.
        dim: usize,
    },
    /// A model card without an embedding output.
    #[error("the model has no embedding output: it cannot enroll into or search a gallery")]
    NoEmbedding,
    /// A NaN distance threshold.
    #[error("the maximum distance is NaN")]
    NanThreshold,
}

/// What a refused old gallery file's message adds.
fn version_hint(found: u32) -> &'static str {
    if found == 1 {
        " (version 1 tied a gallery to the model card's text, not to the weights: enroll the \
         people again into a new gallery file)"
    } else {
        ""
    }
}

/// What makes embeddings comparable: their dimension, their metric and the model that made them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingSpace {
    dim: usize,
    metric: DistanceMetric,
    fingerprint: ModelFingerprint,
}

impl EmbeddingSpace {
    /// An embedding space; the dimension must be in `1..=MAX_DIM`.
    pub fn new(
        dim: usize,
        metric: DistanceMetric,
        fingerprint: ModelFingerprint,
    ) -> Result<Self, GalleryError> {
        if dim == 0 || dim > MAX_DIM {
            return Err(GalleryError::Dimension { dim });
        }
        Ok(EmbeddingSpace {
            dim,
            metric,
            fingerprint,
        })
    }

    /// The space of a model's embeddings: dimension and metric from its card's embedding spec,
    /// the model's fingerprint (of its graph and weights).
    pub fn of_model(model: &Model) -> Result<Self, GalleryError> {
        let spec = model
            .card()
            .embedding
            .as_ref()
            .ok_or(GalleryError::NoEmbedding)?;
        Self::new(spec.dim, spec.metric, model.fingerprint())
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Metric the embeddings are compared with.
    pub fn metric(&self) -> DistanceMetric {
        self.metric
    }

    /// The model's fingerprint.
    pub fn fingerprint(&self) -> ModelFingerprint {
        self.fingerprint
    }
}

impl fmt::Display for EmbeddingSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let metric = match self.metric {
            DistanceMetric::Euclidean => "euclidean",
            DistanceMetric::Cosine => "cosine",
        };
        write!(
            f,
            "model {}, dimension {}, {metric}",
            self.fingerprint, self.dim
        )
    }
}

/// One identity: its name and how many embedding rows it has in the slab.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    name: String,
    /// When it was first enrolled, in milliseconds since the Unix epoch (0: unknown).
    enrolled: i64,
    rows: usize,
}

/// One enrollment inserted in memory: identity `index` got `added` rows at row `at`.
#[derive(Debug, Clone, Copy)]
struct Insert {
    index: usize,
    at: usize,
    added: usize,
    new_identity: bool,
}

/// The position of each name.
/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn name_index(identities: &[Identity]) -> HashMap<String, usize> {
    identities
        .iter()
        .enumerate()
        .map(|(i, identity)| (identity.name.clone(), i))
        .collect()
}

/// What [`Gallery::enroll`] did; returned once the change is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollReceipt {
    /// The name was not in the gallery before.
    pub new_identity: bool,
    /// Embeddings added.
    pub added: usize,
    /// Embeddings the identity has now.
    pub total: usize,
}

/// An open gallery: the file's contents in memory, written back on every change.
#[derive(Debug)]
pub struct Gallery {
    path: PathBuf,
    space: EmbeddingSpace,
    /// In slab order: the rows of identity `i` follow those of identity `i - 1`.
    identities: Vec<Identity>,
    /// Position of each name in `identities`.
    index: HashMap<String, usize>,
    /// Row-major `[rows, dim]`.
    embeddings: Vec<f32>,
    /// Per row, the metric's precomputed term (see [`search::row_term`]).
    terms: Vec<f32>,
    /// The rows coded for the search's first pass, made by the first search after a change.
    compact: OnceLock<compact::Compact>,
    /// The file as last read or written.
    stamp: Stamp,
}

/// Checks a new identity name: what [`check_stored_name`] checks, and no bidirectional
/// formatting characters ([`is_bidi_control`]). Returns what is wrong.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    check_stored_name(name)?;
    if name.chars().any(is_bidi_control) {
        Err("contains a bidirectional control character (such as U+202E), which can make it show as another name")
    } else {
        Ok(())
    }
}

/// Unicode's bidirectional formatting characters (UAX #9: embeddings, overrides, isolates and
/// marks): in a name they can make a listing show something else than what is stored.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// `name` as a listing should show it: bidirectional control characters written as `\u{...}`
/// escapes (a gallery written before they were refused may hold some).
pub fn shown_name(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.chars().any(is_bidi_control) {
        return name.into();
    }
    name.chars()
        .map(|c| {
            if is_bidi_control(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Checks a name read from a gallery file: non-empty, at most [`MAX_NAME_BYTES`], no control
/// characters, no leading or trailing whitespace. Returns what is wrong.
pub(crate) fn check_stored_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Err("is longer than 128 bytes")
    } else if name.chars().any(char::is_control) {
        Err("contains a control character")
    } else if name.trim() != name {
        Err("starts or ends with whitespace")
    } else {
        Ok(())
    }
}

/// An I/O error on `path`, `NotFound` told apart.
fn io_error(path: &Path, source: io::Error) -> GalleryError {
    if source.kind() == io::ErrorKind::NotFound {
        GalleryError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        GalleryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Takes the exclusive writer lock of the gallery at `path` (`<path>.lock`, created `0600`);
/// released when the returned file is dropped. A symbolic link in its place is refused rather
/// than followed (it could make the run create or lock a file elsewhere).
fn lock(path: &Path) -> Result<File, GalleryError> {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let io = |source| GalleryError::Io {
        path: lock_path.clone(),
        source,
    };
    let file = options.open(&lock_path).map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// The stamp of the file now at `path`, `None` if there is none or it is too short to have one.
pub fn stamp_of_file(path: &Path) -> Result<Option<Stamp>, GalleryError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, e)),
    };
    let read = |file: &mut File| -> io::Result<Option<Stamp>> {
        let len = file.metadata()?.len();
        if len < 4 {
            return Ok(None);
        }
        file.seek(SeekFrom::End(-4))?;
        let mut last = [0; 4];
        file.read_exact(&mut last)?;
        Ok(Some(file_format::stamp_of(len, last)))
    };
    read(&mut file).map_err(|e| io_error(path, e))
}

impl Gallery {
    /// Creates an empty gallery file at `path` (mode `0600`); refuses to replace an existing file.
    pub fn create(path: &Path, space: EmbeddingSpace) -> Result<Gallery, GalleryError> {
        let _lock = lock(path)?;
        match fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(GalleryError::AlreadyExists {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, e)),
        }
        let (bytes, stamp) = file_format::encode(&space, &[], &[]);
        write_atomic_with_mode(path, &bytes, Some(0o600)).map_err(|e| io_error(path, e))?;
        Ok(Gallery {
            path: path.to_path_buf(),
            space,
            identities: Vec::new(),
            index: HashMap::new(),
            embeddings: Vec::new(),
            terms: Vec::new(),
            compact: OnceLock::new(),
            stamp,
        })
    }

    /// Opens and checks the gallery at `path`, whatever model it was enrolled with (see
    /// [`Gallery::check_model`]). A damaged file is refused and not modified.
    pub fn open(path: &Path) -> Result<Gallery, GalleryError> {
        let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
        let decoded = file_format::decode(path, &bytes)?;
        drop(bytes);
        let terms = decoded
            .embeddings
            .chunks_exact(decoded.space.dim())
            .map(|row| search::row_term(decoded.space.metric(), row))
            .collect();
        Ok(Gallery {
            path: path.to_path_buf(),
            space: decoded.space,
            index: name_index(&decoded.identities),
            identities: decoded.identities,
            embeddings: decoded.embeddings,
            terms,
            compact: OnceLock::new(),
            stamp: decoded.stamp,
        })
    }

    /// Opens the gallery at `path` for the model of `space`, creating it if there is no file.
    /// Refuses a gallery of another model; never replaces a file that fails to open.
    pub fn open_or_create(path: &Path, space: EmbeddingSpace) -> Result<Gallery, GalleryError> {
        let gallery = match Gallery::open(path) {
            Err(GalleryError::NotFound { .. }) => match Gallery::create(path, space) {
                // Another process created it in between.
                Err(GalleryError::AlreadyExists { .. }) => Gallery::open(path)?,
                other => other?,
            },
            other => other?,
        };
        gallery.check_model(&space)?;
        Ok(gallery)
    }

    /// Refuses, with [`GalleryError::WrongModel`], a gallery whose embeddings come from another
    /// model (fingerprint, dimension or metric differ).
    pub fn check_model(&self, model: &EmbeddingSpace) -> Result<(), GalleryError> {
        if self.space == *model {
            Ok(())
        } else {
            Err(GalleryError::WrongModel {
                path: self.path.clone(),
                gallery: Box::new(self.space),
                model: Box::new(*model),
            })
        }
    }

    /// The gallery file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The embedding space of the gallery's embeddings.
    pub fn space(&self) -> &EmbeddingSpace {
        &self.space
    }

    /// Number of embeddings, all identities together.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether the gallery holds no embeddings (and so no identity).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Number of identities.
    pub fn identities(&self) -> usize {
        self.identities.len()
    }

    /// Identity names with their number of embeddings, in enrollment order.
    pub fn list(&self) -> impl ExactSizeIterator<Item = (&str, usize)> {
        self.identities.iter().map(|i| (i.name.as_str(), i.rows))
    }

    /// When `name` was first enrolled (`None`: not enrolled, or in a gallery written before
    /// enrollment times were kept).
    pub fn enrolled(&self, name: &str) -> Option<SystemTime> {
        let ms = self.identities[*self.index.get(name)?].enrolled;
        let ms = u64::try_from(ms).ok().filter(|&ms| ms > 0)?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Adds embeddings (row-major, a positive multiple of the dimension) to the identity `name`,
    /// creating it if new, and writes the gallery to disk. When this returns `Ok`, the enrollment
    /// is on disk; on an error, neither the file nor this gallery changed (except after
    /// [`GalleryError::Io`] from the final directory sync, where the file may hold the change).
    pub fn enroll(
        &mut self,
        name: &str,
        embeddings: &[f32],
    ) -> Result<EnrollReceipt, GalleryError> {
        let receipts = self.enroll_batch([(name, embeddings)])?;
        Ok(receipts[0])
    }

    /// Enrolls several `(name, embeddings)` pairs as [`Gallery::enroll`] does, with one write of
    /// the file for all of them: all are enrolled or, on an error, none. Returns one receipt per
    /// pair, in order.
    pub fn enroll_batch<'a>(
        &mut self,
        batch: impl IntoIterator<Item = (&'a str, &'a [f32])>,
    ) -> Result<Vec<EnrollReceipt>, GalleryError> {
        let mut done = Vec::new();
        let mut receipts = Vec::new();
        let mut result = Ok(());
        for (name, embeddings) in batch {
            match self.insert(name, embeddings) {
                Ok((insert, receipt)) => {
                    done.push(insert);
                    receipts.push(receipt);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = result.and_then(|()| self.persist()) {
            for insert in done.into_iter().rev() {
                self.undo(insert);
            }
            return Err(e);
        }
        Ok(receipts)
    }

    /// Checks one enrollment and inserts it in memory, after the identity's last row.
    fn insert(
        &mut self,
        name: &str,
        embeddings: &[f32],
    ) -> Result<(Insert, EnrollReceipt), GalleryError> {
        let terms = self.checked_terms(name, embeddings)?;
        let dim = self.space.dim();
        let added = terms.len();
        let (index, at, new_identity) = match self.index.get(name) {
            Some(&i) => (i, self.identities[..=i].iter().map(|i| i.rows).sum(), false),
            None => {
                self.identities.push(Identity {
                    name: name.to_string(),
                    enrolled: now_ms(),
                    rows: 0,
                });
                let i = self.identities.len() - 1;
                self.index.insert(name.to_string(), i);
                (i, self.terms.len(), true)
            }
        };
        self.embeddings
            .splice(at * dim..at * dim, embeddings.iter().copied());
        self.terms.splice(at..at, terms);
        self.compact.take();
        self.identities[index].rows += added;
        let receipt = EnrollReceipt {
            new_identity,
            added,
            total: self.identities[index].rows,
        };
        let insert = Insert {
            index,
            at,
            added,
            new_identity,
        };
        Ok((insert, receipt))
    }

    /// Checks that `embeddings` can be enrolled as `name` and returns their search terms.
    fn checked_terms(&self, name: &str, embeddings: &[f32]) -> Result<Vec<f32>, GalleryError> {
        check_name(name).map_err(|reason| GalleryError::Name {
            name: name.to_string(),
            reason,
        })?;
        let dim = self.space.dim();
        if embeddings.is_empty() || !embeddings.len().is_multiple_of(dim) {
            return Err(GalleryError::Enrollment {
                name: name.to_string(),
                len: embeddings.len(),
                dim,
            });
        }
        let metric = self.space.metric();
        let terms: Vec<f32> = embeddings
            .chunks_exact(dim)
            .map(|row| search::row_term(metric, row))
            .collect();
        if embeddings.iter().any(|v| !v.is_finite()) || terms.iter().any(|t| !t.is_finite()) {
            return Err(GalleryError::NonFinite {
                what: "enrolled embeddings",
            });
        }
        Ok(terms)
    }

    /// Takes back an [`Insert`] (the last one not yet taken back).
    fn undo(&mut self, insert: Insert) {
        let Insert {
            index,
            at,
            added,
            new_identity,
        } = insert;
        let dim = self.space.dim();
        self.embeddings.drain(at * dim..(at + added) * dim);
        self.terms.drain(at..at + added);
        self.compact.take();
        self.identities[index].rows -= added;
        if new_identity {
            if let Some(identity) = self.identities.pop() {
                self.index.remove(&identity.name);
            }
        }
    }

    /// Removes the identity `name` and its embeddings and writes the gallery to disk; returns how
    /// many embeddings it had. Errors leave the gallery as [`Gallery::enroll`]'s do.
    pub fn remove(&mut self, name: &str) -> Result<usize, GalleryError> {
        let index = *self
            .index
            .get(name)
            .ok_or_else(|| GalleryError::UnknownIdentity {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        let dim = self.space.dim();
        let start: usize = self.identities[..index].iter().map(|i| i.rows).sum();
        let identity = self.identities.remove(index);
        let rows = identity.rows;
        let embeddings: Vec<f32> = self
            .embeddings
            .drain(start * dim..(start + rows) * dim)
            .collect();
        let terms: Vec<f32> = self.terms.drain(start..start + rows).collect();
        self.compact.take();
        let result = self.persist();
        if result.is_err() {
            self.embeddings.splice(start * dim..start * dim, embeddings);
            self.terms.splice(start..start, terms);
            self.identities.insert(index, identity);
        }
        self.index = name_index(&self.identities);
        result.map(|()| rows)
    }

    /// Sets and removes identities in one write of the file (a set identity holds exactly the
    /// given embeddings afterwards; removing a name the gallery lacks does nothing; of several
    /// changes to one name the last counts). Nothing changes, in memory or on disk, unless all
    /// of them are valid and the file is written.
    pub fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), GalleryError> {
        let dim = self.space.dim();
        // Per name: the embeddings it is set to and their terms, or `None` for a removal.
        type Set<'a> = Option<(&'a [f32], Vec<f32>)>;
        let mut last: HashMap<&str, Set<'_>> = HashMap::new();
        let mut new_names = Vec::new();
        for change in changes {
            let (name, set) = match *change {
                Change::Set { name, embeddings } => {
                    let terms = self.checked_terms(name, embeddings)?;
                    (name, Some((embeddings, terms)))
                }
                Change::Remove(name) => (name, None),
            };
            if last.insert(name, set).is_none() && !self.index.contains_key(name) {
                new_names.push(name);
            }
        }
        let mut identities = Vec::with_capacity(self.identities.len() + new_names.len());
        let mut embeddings = Vec::with_capacity(self.embeddings.len());
        let mut terms = Vec::with_capacity(self.terms.len());
        let mut at = 0;
        for identity in &self.identities {
            let rows = at..at + identity.rows;
            at = rows.end;
            let (set_rows, set_terms) = match last.get(identity.name.as_str()) {
                None => (
                    &self.embeddings[rows.start * dim..rows.end * dim],
                    &self.terms[rows],
                ),
                Some(None) => continue,
                Some(Some((e, t))) => (*e, t.as_slice()),
            };
            identities.push(Identity {
                name: identity.name.clone(),
                enrolled: identity.enrolled,
                rows: set_terms.len(),
            });
            embeddings.extend_from_slice(set_rows);
            terms.extend_from_slice(set_terms);
        }
        for name in new_names {
            if let Some(Some((e, t))) = last.get(name) {
                identities.push(Identity {
                    name: name.to_string(),
                    enrolled: now_ms(),
                    rows: t.len(),
                });
                embeddings.extend_from_slice(e);
                terms.extend_from_slice(t);
            }
        }
        self.stamp = self.write(&identities, &embeddings)?;
        self.index = name_index(&identities);
        self.identities = identities;
        self.embeddings = embeddings;
        self.terms = terms;
        self.compact.take();
        Ok(())
    }

    /// Each identity with its embeddings (row-major), in the file's order.
    pub fn identity_embeddings(&self) -> impl Iterator<Item = (&str, &[f32])> {
        let dim = self.space.dim();
        let mut at = 0;
        self.identities.iter().map(move |i| {
            let rows = &self.embeddings[at * dim..(at + i.rows) * dim];
            at += i.rows;
            (i.name.as_str(), rows)
        })
    }

    /// What identifies the file content this gallery was read from or last wrote (compare with
    /// [`stamp_of_file`] to see whether another process changed it since).
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Writes the gallery as it is in memory (see `write`).
    fn persist(&mut self) -> Result<(), GalleryError> {
        self.stamp = self.write(&self.identities, &self.embeddings)?;
        Ok(())
    }

    /// Writes `identities` and `embeddings` as the gallery's file, under the lock, unless another
    /// process changed the file since this gallery read or wrote it.
    fn write(&self, identities: &[Identity], embeddings: &[f32]) -> Result<Stamp, GalleryError> {
        let _lock = lock(&self.path)?;
        if stamp_of_file(&self.path)? != Some(self.stamp) {
            return Err(GalleryError::Changed {
                path: self.path.clone(),
            });
        }
        let (bytes, stamp) = file_format::encode(&self.space, identities, embeddings);
        write_atomic_with_mode(&self.path, &bytes, Some(0o600))
            .map_err(|e| io_error(&self.path, e))?;
        Ok(stamp)
    }
}

/// One change of [`Gallery::apply`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Identity `name` holds exactly these embeddings (row-major) from now on; a new name is
    /// enrolled.
    Set {
        /// The identity.
        name: &'a str,
        /// Its embeddings.
        embeddings: &'a [f32],
    },
    /// Identity `name` is removed.
    Remove(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const DIM: usize = 5;

    /// A space of dimension [`DIM`] for the fingerprint `[fingerprint; 32]`.
    pub(super) fn space(fingerprint: u8) -> EmbeddingSpace {
        EmbeddingSpace::new(
            DIM,
            DistanceMetric::Euclidean,
            ModelFingerprint([fingerprint; 32]),
        )
        .unwrap()
    }

    /// `n` embeddings whose values depend on `seed`.
    fn rows(seed: usize, n: usize) -> Vec<f32> {
        (0..n * DIM)
            .map(|k| ((seed * 31 + k * 7) % 23) as f32 / 4.0 - 2.5)
            .collect()
    }

    /// A gallery file with three identities, one of them with several embeddings.
    fn sample(dir: &Path) -> (PathBuf, Vec<u8>) {
        let path = dir.join("gallery.bin");
        let mut g = Gallery::create(&path, space(1)).unwrap();
        g.enroll("alice", &rows(1, 2)).unwrap();
        g.enroll("bob", &rows(2, 1)).unwrap();
        g.enroll("Zoë Ünal", &rows(3, 1)).unwrap();
        g.enroll("alice", &rows(4, 1)).unwrap();
        let bytes = fs::read(&path).unwrap();
        (path, bytes)
    }

    /// Recomputes both CRCs of a gallery file, as a writer of edited contents would.
    fn reseal(bytes: &mut [u8]) {
        let header = crc32fast::hash(&bytes[..20]).to_le_bytes();
        bytes[20..24].copy_from_slice(&header);
        let end = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..end]).to_le_bytes();
        bytes[end..].copy_from_slice(&crc);
    }

    /// Writes `bytes` as a gallery, opens it, checks the file was left as it was, returns the
    /// error.
    fn open_err(path: &Path, bytes: &[u8]) -> GalleryError {
        fs::write(path, bytes).unwrap();
        let err = Gallery::open(path).expect_err("a damaged gallery must be refused");
        assert_eq!(
            fs::read(path).unwrap(),
            bytes,
            "a failed open changed the file"
        );
        err
    }

    #[test]
    fn bidi_controls_are_refused_in_new_names_and_escaped_in_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        let mut g = Gallery::open(&path).unwrap();
        // "alice\u{202E}exe.gpj" shows as "alicejpg.exe": a name that lists as another.
        for spoof in ["alice\u{202E}exe.gpj", "\u{2067}bob", "eve\u{200F}"] {
            let err = g.enroll(spoof, &rows(9, 1)).unwrap_err();
            assert!(matches!(err, GalleryError::Name { .. }), "{spoof:?}: {err}");
            assert!(err.to_string().contains("bidirectional"), "{err}");
        }
        assert_eq!(fs::read(&path).unwrap(), bytes);
        // Joiners that scripts and emoji need are not bidi controls.
        g.enroll("\u{0645}\u{200C}\u{0646}", &rows(9, 1)).unwrap();
        // A file that already holds one (U+202E is three bytes, like "bob") still opens, and
        // the name is listed escaped.
        let name_at = bytes.windows(3).position(|w| w == b"bob").unwrap();
        let mut old = bytes.clone();
        old[name_at..name_at + 3].copy_from_slice("\u{202E}".as_bytes());
        reseal(&mut old);
        fs::write(&path, &old).unwrap();
        let g = Gallery::open(&path).unwrap();
        let names: Vec<String> = g.list().map(|(n, _)| shown_name(n).into_owned()).collect();
        assert!(names.contains(&"\\u{202e}".to_string()), "{names:?}");
        assert_eq!(shown_name("Zoë Ünal"), "Zoë Ünal");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_in_place_of_the_lock_file_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        let lock_path = dir.path().join("gallery.bin.lock");
        fs::remove_file(&lock_path).unwrap();
        let victim = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&victim, &lock_path).unwrap();
        let mut g = Gallery::open(&path).unwrap();
        let err = g.enroll("mallory", &rows(9, 1)).unwrap_err();
        assert!(
            matches!(&err, GalleryError::Io { path, .. } if *path == lock_path),
            "{err}"
        );
        assert!(!victim.exists(), "the link was followed");
        assert_eq!(fs::read(&path).unwrap(), bytes, "the gallery is unchanged");
    }

    #[test]
    fn a_version_2_file_is_read_with_unknown_enrollment_times() {
        let dir = tempfile::tempdir().unwrap();
        let before = SystemTime::now() - Duration::from_secs(1);
        let (path, v3) = sample(dir.path());
        let g = Gallery::open(&path).unwrap();
        let when = g.enrolled("alice").unwrap();
        assert!(when >= before && when <= SystemTime::now(), "{when:?}");
        assert_eq!(g.enrolled("carol"), None);
        // The same gallery as version 2 wrote it: no time after each name.
        let mut v2 = v3[..80].to_vec();
        let mut at = 80;
        while at < v3.len() - 4 {
            let name_len = usize::from(u16::from_le_bytes([v3[at], v3[at + 1]]));
            let time_at = at + 2 + name_len;
            let rows = u64::from_le_bytes(v3[time_at + 8..time_at + 16].try_into().unwrap());
            let end = time_at + 16 + rows as usize * DIM * 4;
            v2.extend_from_slice(&v3[at..time_at]);
            v2.extend_from_slice(&v3[time_at + 8..end]);
            at = end;
        }
        v2.extend_from_slice(&[0; 4]);
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        let len = v2.len() as u64;
        v2[12..20].copy_from_slice(&len.to_le_bytes());
        reseal(&mut v2);
        fs::write(&path, &v2).unwrap();
        let mut old = Gallery::open(&path).unwrap();
        assert_eq!(old.list().collect::<Vec<_>>(), g.list().collect::<Vec<_>>());
        assert_eq!(old.embeddings, g.embeddings);
        assert_eq!(old.enrolled("alice"), None);
        // Written again as version 3, keeping what it knows.
        old.enroll("carol", &rows(5, 1)).unwrap();
        let again = Gallery::open(&path).unwrap();
        assert_eq!(u32_of(&fs::read(&path).unwrap(), 8), file_format::VERSION);
        assert_eq!(again.enrolled("alice"), None);
        assert!(again.enrolled("carol").is_some());
    }

    fn u32_of(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let g = Gallery::open(&path).unwrap();
        let listed: Vec<_> = g.list().collect();
        assert_eq!(listed, [("alice", 3), ("bob", 1), ("Zoë Ünal", 1)]);
        assert_eq!((g.len(), g.identities()), (5, 3));
        assert_eq!(*g.space(), space(1));
        // Rows stay grouped by identity, in enrollment order within an identity.
        let mut want = rows(1, 2);
        want.extend(rows(4, 1));
        want.extend(rows(2, 1));
        want.extend(rows(3, 1));
        assert_eq!(g.embeddings, want);
        let terms: Vec<f32> = want
            .chunks(DIM)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        for (t, w) in g.terms.iter().zip(&terms) {
            assert!((t - w).abs() < 1e-5, "{t} vs {w}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        for p in [path.clone(), path.with_file_name("gallery.bin.lock")] {
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn refuses_truncated_files() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        let full = bytes.len() as u64;
        for cut in 0..bytes.len() {
            let found = cut as u64;
            match (cut, open_err(&path, &bytes[..cut])) {
                (0, GalleryError::Empty { .. }) => {}
                (
                    1..=23,
                    GalleryError::Truncated {
                        expected: 24,
                        found: f,
                        ..
                    },
                ) if f == found => {}
                (
                    24..,
                    GalleryError::Truncated {
                        expected, found: f, ..
                    },
                ) if expected == full && f == found => {}
                (_, e) => panic!("cut at {cut}: {e}"),
            }
        }
    }

    #[test]
    fn refuses_any_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            match (at, open_err(&path, &damaged)) {
                (0..8, GalleryError::Magic { .. }) | (8.., GalleryError::Checksum { .. }) => {}
                (_, e) => panic!("byte {at} flipped: {e}"),
            }
        }
    }

    #[test]
    fn refuses_foreign_future_and_inconsistent_files() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());

        let err = open_err(
            &path,
            b"not a gallery at all, but long enough to have a header",
        );
        assert!(matches!(err, GalleryError::Magic { .. }), "{err}");

        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&4u32.to_le_bytes());
        reseal(&mut future);
        let err = open_err(&path, &future);
        assert!(
            matches!(
                err,
                GalleryError::Version {
                    found: 4,
                    supported: 3,
                    ..
                }
            ),
            "{err}"
        );
        // A version 1 file (fingerprint of the card, not of the weights) says what to do.
        let mut old = bytes.clone();
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        reseal(&mut old);
        let err = open_err(&path, &old).to_string();
        assert!(
            err.contains("format version 1; this build reads versions 2 to 3 (version 1 tied"),
            "{err}"
        );
        assert!(err.contains("enroll the people again"), "{err}");

        let mut longer = bytes.clone();
        longer.extend_from_slice(b"junk");
        let err = open_err(&path, &longer);
        assert!(matches!(err, GalleryError::Corrupt { .. }), "{err}");

        // Checksums fine, contents not: an unknown metric, a control character in a name, a
        // wrong embedding count.
        let name_at = 80 + 2; // first identity's name, "alice"
        let edits: [(usize, &[u8], &str); 3] = [
            (28, &[7], "metric code 7"),
            (name_at, b"\n", "control character"),
            (72, &6u64.to_le_bytes(), "counts 6"),
        ];
        for (at, edit, reason) in edits {
            let mut bad = bytes.clone();
            bad[at..at + edit.len()].copy_from_slice(edit);
            reseal(&mut bad);
            match open_err(&path, &bad) {
                GalleryError::Corrupt { reason: r, .. } if r.contains(reason) => {}
                e => panic!("{reason}: {e}"),
            }
        }
        // "bob" renamed "alice": a repeated name.
        let bob_at = name_at + 5 + 8 + 8 + 3 * DIM * 4;
        assert_eq!(&bytes[bob_at..bob_at + 5], b"\x03\x00bob");
        let mut bad = bytes[..bob_at].to_vec();
        bad.extend_from_slice(b"\x05\x00alice");
        bad.extend_from_slice(&bytes[bob_at + 5..]);
        let len = bad.len() as u64;
        bad[12..20].copy_from_slice(&len.to_le_bytes());
        reseal(&mut bad);
        match open_err(&path, &bad) {
            GalleryError::Corrupt { reason, .. } if reason.contains("appears twice") => {}
            e => panic!("{e}"),
        }
    }

    #[test]
    fn refuses_another_model_and_never_replaces_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        let err = Gallery::open_or_create(&path, space(2)).unwrap_err();
        match &err {
            GalleryError::WrongModel { gallery, model, .. } => {
                assert_eq!((**gallery, **model), (space(1), space(2)));
            }
            e => panic!("{e}"),
        }
        assert!(err.to_string().contains("0101010101010101"), "{err}");
        let cosine = EmbeddingSpace::new(DIM, DistanceMetric::Cosine, ModelFingerprint([1; 32]));
        let err = Gallery::open_or_create(&path, cosine.unwrap()).unwrap_err();
        assert!(matches!(err, GalleryError::WrongModel { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert!(Gallery::open_or_create(&path, space(1)).is_ok());

        let mut damaged = bytes.clone();
        damaged[40] ^= 1;
        fs::write(&path, &damaged).unwrap();
        let err = Gallery::open_or_create(&path, space(1)).unwrap_err();
        assert!(matches!(err, GalleryError::Checksum { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), damaged);

        let err = Gallery::create(&path, space(1)).unwrap_err();
        assert!(matches!(err, GalleryError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), damaged);

        let missing = dir.path().join("missing.bin");
        assert!(matches!(
            Gallery::open(&missing),
            Err(GalleryError::NotFound { .. })
        ));
        let created = Gallery::open_or_create(&missing, space(3)).unwrap();
        assert!(created.is_empty());
        assert_eq!(*Gallery::open(&missing).unwrap().space(), space(3));
    }

    #[test]
    fn removes_identities() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let mut g = Gallery::open(&path).unwrap();
        assert_eq!(g.remove("alice").unwrap(), 3);
        let err = g.remove("alice").unwrap_err();
        assert!(matches!(err, GalleryError::UnknownIdentity { .. }), "{err}");
        let g = Gallery::open(&path).unwrap();
        assert_eq!(g.list().collect::<Vec<_>>(), [("bob", 1), ("Zoë Ünal", 1)]);
        let mut want = rows(2, 1);
        want.extend(rows(3, 1));
        assert_eq!(
            (g.embeddings.as_slice(), g.terms.len()),
            (want.as_slice(), 2)
        );
    }

    #[test]
    fn refuses_bad_enrollments_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        let mut g = Gallery::open(&path).unwrap();
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for name in ["", " alice", "bob\t", "a\u{7}b", long.as_str()] {
            let err = g.enroll(name, &rows(5, 1)).unwrap_err();
            assert!(matches!(err, GalleryError::Name { .. }), "{name:?}: {err}");
        }
        assert!(g
            .enroll(&"é".repeat(MAX_NAME_BYTES / 2), &rows(5, 1))
            .is_ok());
        let bytes_now = fs::read(&path).unwrap();
        for values in [vec![], rows(5, 1)[..DIM - 1].to_vec()] {
            let err = g.enroll("carol", &values).unwrap_err();
            assert!(matches!(err, GalleryError::Enrollment { .. }), "{err}");
        }
        for bad in [f32::NAN, f32::INFINITY, 1e30] {
            let mut values = rows(5, 1);
            values[1] = bad;
            let err = g.enroll("carol", &values).unwrap_err();
            assert!(
                matches!(err, GalleryError::NonFinite { .. }),
                "{bad}: {err}"
            );
        }
        assert_ne!(bytes_now, bytes);
        assert_eq!(fs::read(&path).unwrap(), bytes_now);
        assert_eq!(g.identities(), 4);
    }

    #[test]
    fn enrolls_batches_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        let mut g = Gallery::open(&path).unwrap();
        let (a, b, c) = (rows(10, 2), rows(11, 1), rows(12, 1));
        let bad = [f32::NAN; DIM];
        let err = g
            .enroll_batch([
                ("carol", &a[..]),
                ("bob", &b[..]),
                ("carol", &c[..]),
                ("x", &bad[..]),
            ])
            .unwrap_err();
        assert!(matches!(err, GalleryError::NonFinite { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes);
        let before = Gallery::open(&path).unwrap();
        assert_eq!(g.identities, before.identities);
        assert_eq!(g.index, before.index);
        assert_eq!(
            (g.embeddings.as_slice(), g.terms.as_slice()),
            (before.embeddings.as_slice(), before.terms.as_slice())
        );

        let receipts = g
            .enroll_batch([("carol", &a[..]), ("bob", &b[..]), ("carol", &c[..])])
            .unwrap();
        let receipt = |new_identity, added, total| EnrollReceipt {
            new_identity,
            added,
            total,
        };
        assert_eq!(
            receipts,
            [
                receipt(true, 2, 2),
                receipt(false, 1, 2),
                receipt(false, 1, 3)
            ]
        );
        let g = Gallery::open(&path).unwrap();
        let listed: Vec<_> = g.list().collect();
        assert_eq!(
            listed,
            [("alice", 3), ("bob", 2), ("Zoë Ünal", 1), ("carol", 3)]
        );
        let bob_rows = &g.embeddings[3 * DIM..5 * DIM];
        assert_eq!(bob_rows, [rows(2, 1), b].concat());
        assert_eq!(&g.embeddings[6 * DIM..], [a, c].concat());
    }

    #[test]
    fn refuses_to_overwrite_another_writers_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let mut first = Gallery::open(&path).unwrap();
        let mut second = Gallery::open(&path).unwrap();
        first.enroll("carol", &rows(6, 1)).unwrap();
        let after_first = fs::read(&path).unwrap();
        let err = second.enroll("dave", &rows(7, 1)).unwrap_err();
        assert!(matches!(err, GalleryError::Changed { .. }), "{err}");
        // The failed enrollment is rolled back in memory too.
        assert_eq!((second.identities(), second.len()), (3, 5));
        let err = second.remove("bob").unwrap_err();
        assert!(matches!(err, GalleryError::Changed { .. }), "{err}");
        assert_eq!(second.list().count(), 3);
        assert_eq!(second.len(), 5);
        assert_eq!(fs::read(&path).unwrap(), after_first);
        fs::remove_file(&path).unwrap();
        let err = first.enroll("erin", &rows(8, 1)).unwrap_err();
        assert!(matches!(err, GalleryError::Changed { .. }), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn apply_sets_and_removes_in_one_write_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let mut g = Gallery::open(&path).unwrap();
        let before = fs::read(&path).unwrap();
        // One bad change: nothing happens, in memory or on disk.
        let bad = [
            Change::Remove("alice"),
            Change::Set {
                name: "eve",
                embeddings: &[1.0; DIM + 1],
            },
        ];
        let err = g.apply(&bad).unwrap_err();
        assert!(matches!(err, GalleryError::Enrollment { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!((g.identities(), g.len()), (3, 5));

        let (b, d) = (rows(9, 2), rows(10, 1));
        g.apply(&[
            Change::Set {
                name: "dave",
                embeddings: &rows(11, 3),
            },
            Change::Remove("alice"),
            Change::Set {
                name: "bob",
                embeddings: &b,
            },
            Change::Remove("nobody"),
            // The last change of a name counts.
            Change::Set {
                name: "dave",
                embeddings: &d,
            },
        ])
        .unwrap();
        for g in [&g, &Gallery::open(&path).unwrap()] {
            let listed: Vec<_> = g.identity_embeddings().collect();
            let zoe = rows(3, 1);
            let want: Vec<(&str, &[f32])> = vec![("bob", &b), ("Zoë Ünal", &zoe), ("dave", &d)];
            assert_eq!(listed, want);
            let probe = g.search::<1>(&d, None).unwrap();
            assert_eq!((probe[0].name, probe[0].distance), ("dave", 0.0));
        }
    }

    #[test]
    fn dimensions_are_bounded() {
        for dim in [0, MAX_DIM + 1] {
            let err = EmbeddingSpace::new(dim, DistanceMetric::Cosine, ModelFingerprint([3; 32]));
            assert!(matches!(err, Err(GalleryError::Dimension { .. })), "{dim}");
        }
    }
}
