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
//! - Whole-file rewrites cost one read and one write of the file per change (about 50 MB for 100k
//!   embeddings of dimension 128): fine for enrollment at human pace; bulk loads go through
//!   [`Gallery::enroll_batch`], one write for the whole batch. [`sync`] shares a gallery between
//!   boxes.
//! - The f32 embeddings stay in the file ([`rows`]); memory holds the names, a term per row and
//!   an `i8` copy of the rows ([`compact`], made by the first search after a change: about 1 s per
//!   million rows). [`Gallery::search`] is exact in two passes: the copy bounds every row's
//!   score, and only the rows that can be in the answer are read and scored in f32
//!   ([`search`]). One query over 1M
//!   embeddings of dimension 128 takes about 14 ms on one core of the dev machine (3x faiss's
//!   exact flat index); [`Gallery::search_batch`] shares the pass among a frame's queries.

mod compact;
pub mod file_format;
mod rows;
mod search;
pub mod sync;

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
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
    /// The file this gallery reads its embeddings from was written over in place.
    #[error(
        "gallery {path} was changed in place while it was open: open it again (to replace a \
         gallery that is in use, write the new file beside it and rename it over the old one)"
    )]
    ChangedInPlace {
        /// The gallery file.
        path: PathBuf,
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

/// What a change does to one identity: its rows are `rows` (with their search terms), after its
/// own if `keep` (an enrollment) or instead of them (a replacement; no rows: a removal).
#[derive(Debug, Default)]
struct Edit {
    keep: bool,
    rows: Vec<f32>,
    terms: Vec<f32>,
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The position of each identity by name, without a second copy of the names: the table holds
/// positions and reads the names from the identities it is given (about 5 bytes per identity
/// against 60 for a map of owned names).
#[derive(Debug, Default)]
struct NameIndex {
    table: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

impl NameIndex {
    /// The index of `identities`.
    fn new(identities: &[Identity]) -> Self {
        let mut index = NameIndex {
            table: hashbrown::HashTable::with_capacity(identities.len()),
            hasher: std::hash::RandomState::new(),
        };
        for (i, identity) in identities.iter().enumerate() {
            let hash = index.hasher.hash_one(identity.name.as_str());
            let hasher = |&j: &u32| index.hasher.hash_one(identities[j as usize].name.as_str());
            let position = u32::try_from(i).expect("galleries hold fewer than 2^32 identities");
            index.table.insert_unique(hash, position, hasher);
        }
        index
    }

    /// The position of `name` in `identities`, the identities the index was made of.
    fn get(&self, identities: &[Identity], name: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        let found = self
            .table
            .find(hash, |&i| identities[i as usize].name == name);
        found.map(|&i| i as usize)
    }
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

/// An open gallery: the file's names and search terms in memory, its embeddings read from the
/// file when needed ([`rows`]), the whole file written again on every change.
#[derive(Debug)]
pub struct Gallery {
    path: PathBuf,
    space: EmbeddingSpace,
    /// In slab order: the rows of identity `i` follow those of identity `i - 1`.
    identities: Vec<Identity>,
    /// Position of each name in `identities`.
    index: NameIndex,
    /// The embeddings, in the file this gallery read or last wrote.
    rows: rows::StoredRows,
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
        let encoded = file_format::encode(&space, &[], &[]);
        let rows = write_rows(path, &encoded, space.dim())?;
        Ok(Gallery {
            path: path.to_path_buf(),
            rows,
            space,
            identities: Vec::new(),
            index: NameIndex::default(),
            terms: Vec::new(),
            compact: OnceLock::new(),
            stamp: encoded.stamp,
        })
    }

    /// Opens and checks the gallery at `path`, whatever model it was enrolled with (see
    /// [`Gallery::check_model`]). A damaged file is refused and not modified.
    pub fn open(path: &Path) -> Result<Gallery, GalleryError> {
        // Seen before it is read: a change while it is read shows afterwards.
        let read = |file: &mut File| {
            let seen = rows::Seen::of(file)?;
            let mut bytes = Vec::with_capacity(file.metadata()?.len() as usize);
            file.read_to_end(&mut bytes).map(|_| (seen, bytes))
        };
        let mut file = File::open(path).map_err(|e| io_error(path, e))?;
        let (seen, bytes) = read(&mut file).map_err(|e| io_error(path, e))?;
        let decoded = file_format::decode(path, &bytes)?;
        drop(bytes);
        let dim = decoded.space.dim();
        let terms = decoded
            .embeddings
            .chunks_exact(dim)
            .map(|row| search::row_term(decoded.space.metric(), row))
            .collect();
        Ok(Gallery {
            path: path.to_path_buf(),
            space: decoded.space,
            index: NameIndex::new(&decoded.identities),
            identities: decoded.identities,
            rows: rows::StoredRows::new(file, seen, decoded.row_offsets, dim),
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

    /// The position of identity `name` in `identities`.
    fn position(&self, name: &str) -> Option<usize> {
        self.index.get(&self.identities, name)
    }

    /// Identity names with their number of embeddings, in enrollment order.
    pub fn list(&self) -> impl ExactSizeIterator<Item = (&str, usize)> {
        self.identities.iter().map(|i| (i.name.as_str(), i.rows))
    }

    /// When `name` was first enrolled (`None`: not enrolled, or in a gallery written before
    /// enrollment times were kept).
    pub fn enrolled(&self, name: &str) -> Option<SystemTime> {
        let ms = self.identities[self.position(name)?].enrolled;
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
        let mut edits: HashMap<&str, Edit> = HashMap::new();
        let mut new_names = Vec::new();
        let mut receipts = Vec::new();
        for (name, embeddings) in batch {
            let terms = self.checked_terms(name, embeddings)?;
            let before = self.position(name).map_or(0, |i| self.identities[i].rows);
            let edit = edits.entry(name).or_insert_with(|| {
                if before == 0 {
                    new_names.push(name);
                }
                Edit {
                    keep: true,
                    ..Edit::default()
                }
            });
            receipts.push(EnrollReceipt {
                new_identity: before == 0 && edit.terms.is_empty(),
                added: terms.len(),
                total: before + edit.terms.len() + terms.len(),
            });
            edit.rows.extend_from_slice(embeddings);
            edit.terms.extend(terms);
        }
        self.rewrite(&edits, &new_names)?;
        Ok(receipts)
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

    /// Removes the identity `name` and its embeddings and writes the gallery to disk; returns how
    /// many embeddings it had. Errors leave the gallery as [`Gallery::enroll`]'s do.
    pub fn remove(&mut self, name: &str) -> Result<usize, GalleryError> {
        let index = self
            .position(name)
            .ok_or_else(|| GalleryError::UnknownIdentity {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        let rows = self.identities[index].rows;
        self.rewrite(&HashMap::from([(name, Edit::default())]), &[])?;
        Ok(rows)
    }

    /// Sets and removes identities in one write of the file (a set identity holds exactly the
    /// given embeddings afterwards; removing a name the gallery lacks does nothing; of several
    /// changes to one name the last counts). Nothing changes, in memory or on disk, unless all
    /// of them are valid and the file is written.
    pub fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), GalleryError> {
        let mut edits = HashMap::new();
        let mut new_names = Vec::new();
        for change in changes {
            let (name, edit) = match *change {
                Change::Set { name, embeddings } => {
                    let terms = self.checked_terms(name, embeddings)?;
                    let rows = embeddings.to_vec();
                    let keep = false;
                    (name, Edit { keep, rows, terms })
                }
                Change::Remove(name) => (name, Edit::default()),
            };
            if edits.insert(name, edit).is_none() && self.position(name).is_none() {
                new_names.push(name);
            }
        }
        self.rewrite(&edits, &new_names)
    }

    /// Writes the gallery with each named identity's [`Edit`] made (`new_names`, names the
    /// gallery lacks, are enrolled in their order; an identity left without rows is dropped) and
    /// takes the result as this gallery. Nothing changes, in memory or on disk, on an error.
    fn rewrite(
        &mut self,
        edits: &HashMap<&str, Edit>,
        new_names: &[&str],
    ) -> Result<(), GalleryError> {
        let dim = self.space.dim();
        let old = self.embeddings()?;
        let mut identities = Vec::with_capacity(self.identities.len() + new_names.len());
        let mut embeddings = Vec::with_capacity(old.len());
        let mut terms = Vec::with_capacity(self.terms.len());
        let mut at = 0;
        let old_identities = self
            .identities
            .iter()
            .map(|i| (i.name.as_str(), i.enrolled, i.rows));
        let new_identities = new_names.iter().map(|&name| (name, now_ms(), 0));
        for (name, enrolled, rows) in old_identities.chain(new_identities) {
            let span = at..at + rows;
            at = span.end;
            let edit = edits.get(name);
            let first = terms.len();
            if edit.is_none_or(|e| e.keep) {
                embeddings.extend_from_slice(&old[span.start * dim..span.end * dim]);
                terms.extend_from_slice(&self.terms[span]);
            }
            if let Some(edit) = edit {
                embeddings.extend_from_slice(&edit.rows);
                terms.extend_from_slice(&edit.terms);
            }
            if terms.len() > first {
                identities.push(Identity {
                    name: name.to_string(),
                    enrolled,
                    rows: terms.len() - first,
                });
            }
        }
        let (stamp, rows) = self.write(&identities, &embeddings)?;
        self.index = NameIndex::new(&identities);
        self.identities = identities;
        self.terms = terms;
        self.rows = rows;
        self.stamp = stamp;
        self.compact = OnceLock::new();
        Ok(())
    }

    /// Every embedding, row-major in the file's order, read from the file.
    pub(crate) fn embeddings(&self) -> Result<Vec<f32>, GalleryError> {
        let mut all = Vec::with_capacity(self.terms.len() * self.space.dim());
        self.for_each_run(|rows| all.extend_from_slice(rows))?;
        Ok(all)
    }

    /// Hands every embedding to `each`, row-major in the file's order, a run of whole identities
    /// at a time (see [`rows::StoredRows::for_each_run`]).
    fn for_each_run(&self, each: impl FnMut(&[f32])) -> Result<(), GalleryError> {
        let read = self
            .rows
            .for_each_run(self.identities.iter().map(|i| i.rows), each);
        // After the reads: a file changed meanwhile explains a failed one.
        self.rows_unchanged()?;
        read.map_err(|e| self.read_error(e))
    }

    /// Refuses, with [`GalleryError::ChangedInPlace`], rows read from a file that was written
    /// over in place since this gallery read or wrote it.
    fn rows_unchanged(&self) -> Result<(), GalleryError> {
        match self.rows.unchanged() {
            Ok(true) => Ok(()),
            Ok(false) => Err(GalleryError::ChangedInPlace {
                path: self.path.clone(),
            }),
            Err(e) => Err(self.read_error(e)),
        }
    }

    /// A failed read of the gallery's file.
    fn read_error(&self, source: io::Error) -> GalleryError {
        GalleryError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Each identity with its embeddings (row-major), in the file's order.
    pub fn identity_embeddings(&self) -> Result<Vec<(&str, Vec<f32>)>, GalleryError> {
        let all = self.embeddings()?;
        let dim = self.space.dim();
        let mut at = 0;
        Ok(self
            .identities
            .iter()
            .map(|i| {
                let rows = all[at * dim..(at + i.rows) * dim].to_vec();
                at += i.rows;
                (i.name.as_str(), rows)
            })
            .collect())
    }

    /// What identifies the file content this gallery was read from or last wrote (compare with
    /// [`stamp_of_file`] to see whether another process changed it since).
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Writes `identities` and `embeddings` as the gallery's file, under the lock, unless another
    /// process changed the file since this gallery read or wrote it; returns the new file's stamp
    /// and rows.
    fn write(
        &self,
        identities: &[Identity],
        embeddings: &[f32],
    ) -> Result<(Stamp, rows::StoredRows), GalleryError> {
        let _lock = lock(&self.path)?;
        if stamp_of_file(&self.path)? != Some(self.stamp) {
            return Err(GalleryError::Changed {
                path: self.path.clone(),
            });
        }
        let encoded = file_format::encode(&self.space, identities, embeddings);
        let rows = write_rows(&self.path, &encoded, self.space.dim())?;
        Ok((encoded.stamp, rows))
    }
}

/// Writes `encoded` as the gallery file at `path` (created `0600`, see [`write_atomic_with_mode`])
/// and returns its rows.
fn write_rows(
    path: &Path,
    encoded: &file_format::Encoded,
    dim: usize,
) -> Result<rows::StoredRows, GalleryError> {
    let file =
        write_atomic_with_mode(path, &encoded.bytes, Some(0o600)).map_err(|e| io_error(path, e))?;
    let seen = rows::Seen::of(&file).map_err(|e| io_error(path, e))?;
    let offsets = encoded.row_offsets.clone();
    Ok(rows::StoredRows::new(file, seen, offsets, dim))
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
        let g_rows = g.embeddings().unwrap();
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
        assert_eq!(old.embeddings().unwrap(), g_rows);
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
        assert_eq!(g.embeddings().unwrap(), want);
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
            (g.embeddings().unwrap().as_slice(), g.terms.len()),
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
        for identity in &before.identities {
            assert_eq!(g.position(&identity.name), before.position(&identity.name));
        }
        assert_eq!(g.position("carol"), None);
        assert_eq!(
            (g.embeddings().unwrap(), g.terms.as_slice()),
            (before.embeddings().unwrap(), before.terms.as_slice())
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
        let all = g.embeddings().unwrap();
        assert_eq!(&all[3 * DIM..5 * DIM], [rows(2, 1), b].concat());
        assert_eq!(&all[6 * DIM..], [a, c].concat());
    }

    /// Where the first row of `sample`'s first identity, alice, is: after the fixed part, her
    /// name's length and bytes, her enrollment time and her count.
    fn alice_first_row_at() -> usize {
        file_format::FIXED_LEN + 2 + "alice".len() + 8 + 8
    }

    #[test]
    fn embeddings_are_read_from_the_file_when_scored() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let g = Gallery::open(&path).unwrap();
        let alice = rows(1, 1);
        let found = g.search::<1>(&alice, None).unwrap();
        assert_eq!((found[0].name, found[0].distance), ("alice", 0.0));
        // Alice's first value moved by 0.25 in the file itself, its length and modification time
        // kept: the search, whose compact copy was made before, scores the file's row.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let modified = file.metadata().unwrap().modified().unwrap();
        let moved = (alice[0] + 0.25).to_le_bytes();
        std::os::unix::fs::FileExt::write_all_at(&file, &moved, alice_first_row_at() as u64)
            .unwrap();
        file.set_modified(modified).unwrap();
        let found = g.search::<1>(&alice, None).unwrap();
        assert_eq!((found[0].name, found[0].distance), ("alice", 0.25));
    }

    #[test]
    fn an_open_gallery_keeps_reading_its_file_when_another_is_renamed_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let g = Gallery::open(&path).unwrap();
        let before = g.embeddings().unwrap();
        let mut other = Gallery::open(&path).unwrap();
        other.remove("alice").unwrap();
        other.enroll("carol", &rows(9, 4)).unwrap();
        assert_eq!(g.embeddings().unwrap(), before);
        let found = g.search::<1>(&rows(1, 1), None).unwrap();
        assert_eq!((found[0].name, found[0].distance), ("alice", 0.0));
    }

    #[test]
    fn a_gallery_written_over_in_place_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        let mut g = Gallery::open(&path).unwrap();
        g.search::<1>(&rows(1, 1), None).unwrap();
        // As `cp other.gallery gallery.bin` does: the same file, truncated and written again.
        let elsewhere = dir.path().join("other");
        fs::create_dir(&elsewhere).unwrap();
        let (other, _) = sample(&elsewhere);
        let mut o = Gallery::open(&other).unwrap();
        o.enroll("dave", &rows(8, 2)).unwrap();
        let copied = fs::read(&other).unwrap();
        fs::write(&path, &copied).unwrap();
        let err = g.search::<1>(&rows(1, 1), None).unwrap_err();
        assert!(matches!(err, GalleryError::ChangedInPlace { .. }), "{err}");
        let err = g.enroll("erin", &rows(5, 1)).unwrap_err();
        assert!(matches!(err, GalleryError::ChangedInPlace { .. }), "{err}");
        assert_eq!(
            fs::read(&path).unwrap(),
            copied,
            "the copied file is untouched"
        );
        // Opened again, it is the copy.
        let g = Gallery::open(&path).unwrap();
        assert_eq!(g.search::<1>(&rows(8, 1), None).unwrap()[0].name, "dave");
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
            let listed = g.identity_embeddings().unwrap();
            let zoe = rows(3, 1);
            let want = vec![("bob", b.clone()), ("Zoë Ünal", zoe), ("dave", d.clone())];
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
