//! The gallery file format, version 3. All integers and floats are little-endian.
//!
//! Version 3 adds to each identity when it was enrolled; version 2 files are read (their
//! identities' enrollment times unknown) and written again as version 3. Version 2 has version
//! 1's layout; its model fingerprint is the [`ModelFingerprint`] of the
//! graph and weights, where version 1 hashed the model card's JSON (so re-exporting the same
//! weights broke every gallery and retrained weights with an identical card passed). Version 1
//! files are refused with a message saying so.
//!
//! The *frame* is the part every version keeps, so that any build can tell a damaged file from a
//! file of another version:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `EREIDGAL` |
//! | 8 | 4 | format version, `u32` ([`VERSION`]) |
//! | 12 | 8 | total file length in bytes, `u64` |
//! | 20 | 4 | CRC32 (IEEE) of bytes 0..20 |
//! | 24 | .. | body |
//! | len - 4 | 4 | CRC32 (IEEE) of every byte before it |
//!
//! Body of versions 2 and 3:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 24 | 4 | embedding dimension `D`, `u32`, at least 1 |
//! | 28 | 1 | metric: 0 Euclidean, 1 cosine |
//! | 29 | 3 | reserved, zero |
//! | 32 | 32 | model fingerprint ([`ModelFingerprint`]) |
//! | 64 | 8 | identity count, `u64` |
//! | 72 | 8 | embedding count (all identities), `u64` |
//! | 80 | .. | identities, one after the other |
//!
//! Each identity: name length in bytes `u16`, the name (UTF-8), in version 3 when it was first
//! enrolled (`i64` milliseconds since the Unix epoch, 0: unknown), its embedding count `n`
//! (`u64`, at least 1), then `n * D` `f32` values, row-major. No images are stored.
//!
//! Checks on load, in order: magic, header CRC (so a flipped length or version byte reads as
//! damage, not as truncation or a future version), length (a shorter file is truncated), file
//! CRC, version, then the body's structure.

use std::collections::HashSet;
use std::path::Path;

use super::{EmbeddingSpace, GalleryError, Identity, ModelFingerprint};
use crate::distance::DistanceMetric;

/// The first eight bytes of every gallery file.
pub(super) const MAGIC: [u8; 8] = *b"EREIDGAL";
/// The format version this build writes and reads.
pub const VERSION: u32 = 3;
/// The oldest format version this build reads.
pub const OLDEST: u32 = 2;
/// Length of the frame's header (magic, version, length, header CRC).
const HEADER_LEN: usize = 24;
/// Length of the body's fixed part, from the start of the file.
pub(super) const FIXED_LEN: usize = 80;
/// Length of the trailing file CRC.
const CRC_LEN: usize = 4;

/// What identifies one exact file content cheaply: its length and its trailing CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub(super) len: u64,
    pub(super) crc: u32,
}

/// A decoded gallery file.
pub(crate) struct Decoded {
    pub space: EmbeddingSpace,
    pub identities: Vec<Identity>,
    pub embeddings: Vec<f32>,
    /// Per identity, the byte offset of its first embedding in the file.
    pub row_offsets: Vec<u64>,
    pub stamp: Stamp,
}

/// An encoded gallery file.
pub(crate) struct Encoded {
    pub bytes: Vec<u8>,
    /// Per identity, the byte offset of its first embedding in `bytes`.
    pub row_offsets: Vec<u64>,
    pub stamp: Stamp,
}

/// Encodes a gallery; `embeddings` holds every identity's rows, in identity order.
pub(crate) fn encode(
    space: &EmbeddingSpace,
    identities: &[Identity],
    embeddings: &[f32],
) -> Encoded {
    let names: usize = identities.iter().map(|i| 2 + i.name.len() + 8 + 8).sum();
    let len = FIXED_LEN + names + 4 * embeddings.len() + CRC_LEN;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&(space.dim() as u32).to_le_bytes());
    out.push(match space.metric() {
        DistanceMetric::Euclidean => 0,
        DistanceMetric::Cosine => 1,
    });
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&space.fingerprint().0);
    out.extend_from_slice(&(identities.len() as u64).to_le_bytes());
    out.extend_from_slice(&((embeddings.len() / space.dim()) as u64).to_le_bytes());
    let mut rows = embeddings.chunks_exact(space.dim());
    let mut row_offsets = Vec::with_capacity(identities.len());
    for identity in identities {
        // Names are at most `MAX_NAME_BYTES` long, checked on enrollment and on load.
        out.extend_from_slice(&(identity.name.len() as u16).to_le_bytes());
        out.extend_from_slice(identity.name.as_bytes());
        out.extend_from_slice(&identity.enrolled.to_le_bytes());
        out.extend_from_slice(&(identity.rows as u64).to_le_bytes());
        row_offsets.push(out.len() as u64);
        for row in rows.by_ref().take(identity.rows) {
            for v in row {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), len);
    Encoded {
        bytes: out,
        row_offsets,
        stamp: Stamp {
            len: len as u64,
            crc,
        },
    }
}

/// Reads the stamp of a complete file (the caller checked it is at least a header long).
pub(super) fn stamp_of(len: u64, last4: [u8; 4]) -> Stamp {
    Stamp {
        len,
        crc: u32::from_le_bytes(last4),
    }
}

/// Decodes and checks a gallery file's bytes; `path` only names the file in errors.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Decoded, GalleryError> {
    let path_buf = || path.to_path_buf();
    let found = bytes.len() as u64;
    if bytes.is_empty() {
        return Err(GalleryError::Empty { path: path_buf() });
    }
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(GalleryError::Magic { path: path_buf() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(GalleryError::Truncated {
            path: path_buf(),
            expected: HEADER_LEN as u64,
            found,
        });
    }
    if crc32fast::hash(&bytes[..20]) != u32_at(bytes, 20) {
        return Err(GalleryError::Checksum { path: path_buf() });
    }
    let expected = u64_at(bytes, 12);
    if found < expected {
        return Err(GalleryError::Truncated {
            path: path_buf(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(GalleryError::Corrupt {
            path: path_buf(),
            reason: format!("{} bytes past the declared end", found - expected),
        });
    }
    let version = u32_at(bytes, 8);
    let (content, crc) = match bytes.len().checked_sub(CRC_LEN) {
        Some(end) if end >= HEADER_LEN => bytes.split_at(end),
        _ => {
            return Err(GalleryError::Corrupt {
                path: path_buf(),
                reason: format!("declared length {expected} is shorter than the frame"),
            })
        }
    };
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(content) != crc {
        return Err(GalleryError::Checksum { path: path_buf() });
    }
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(GalleryError::Version {
            path: path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    let corrupt = |reason: String| GalleryError::Corrupt {
        path: path_buf(),
        reason,
    };
    let mut body = Cursor {
        bytes: content,
        pos: HEADER_LEN,
    };
    let fixed = body
        .take(FIXED_LEN - HEADER_LEN)
        .ok_or_else(|| corrupt("the fixed header is cut short".into()))?;
    let dim = u32_at(fixed, 0);
    let metric = match fixed[4] {
        0 => DistanceMetric::Euclidean,
        1 => DistanceMetric::Cosine,
        other => return Err(corrupt(format!("unknown metric code {other}"))),
    };
    if fixed[5..8] != [0; 3] {
        return Err(corrupt(
            "the reserved bytes after the metric are not zero".into(),
        ));
    }
    let space = EmbeddingSpace::new(dim as usize, metric, ModelFingerprint(array_at(fixed, 8)))
        .map_err(|e| corrupt(e.to_string()))?;
    let num_identities = u64_at(fixed, 40);
    let num_rows = u64_at(fixed, 48);
    let row_bytes = 4 * space.dim();
    // Every identity takes at least 10 bytes and every row `row_bytes`: bound the allocations
    // by what the file can hold.
    let room = (content.len() - FIXED_LEN) as u64;
    if num_identities > room / 10 || num_rows > room / row_bytes as u64 {
        return Err(corrupt(format!(
            "{num_identities} identities and {num_rows} embeddings do not fit in the file"
        )));
    }
    let mut identities: Vec<Identity> = Vec::with_capacity(num_identities as usize);
    let mut seen = HashSet::with_capacity(num_identities as usize);
    let mut embeddings = Vec::with_capacity(num_rows as usize * space.dim());
    let mut row_offsets = Vec::with_capacity(num_identities as usize);
    for index in 0..num_identities {
        let short = || corrupt(format!("identity {index} is cut short"));
        let name_len = body.take(2).ok_or_else(short)?;
        let name_len = usize::from(u16::from_le_bytes([name_len[0], name_len[1]]));
        let name = std::str::from_utf8(body.take(name_len).ok_or_else(short)?)
            .map_err(|_| corrupt(format!("the name of identity {index} is not UTF-8")))?;
        super::check_stored_name(name).map_err(|e| corrupt(format!("identity {index}: {e}")))?;
        if !seen.insert(name) {
            return Err(corrupt(format!("identity {name:?} appears twice")));
        }
        let enrolled = if version >= 3 {
            u64_at(body.take(8).ok_or_else(short)?, 0) as i64
        } else {
            0
        };
        let rows = u64_at(body.take(8).ok_or_else(short)?, 0);
        row_offsets.push(body.pos as u64);
        let values = usize::try_from(rows)
            .ok()
            .filter(|&r| r >= 1)
            .and_then(|r| r.checked_mul(row_bytes))
            .and_then(|n| body.take(n))
            .ok_or_else(|| corrupt(format!("identity {name:?} has {rows} embeddings")))?;
        embeddings.extend(
            values
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        identities.push(Identity {
            name: name.to_string(),
            enrolled,
            rows: rows as usize,
        });
    }
    if body.pos != content.len() {
        return Err(corrupt(format!(
            "{} bytes after the last identity",
            content.len() - body.pos
        )));
    }
    let total: usize = identities.iter().map(|i| i.rows).sum();
    if total as u64 != num_rows {
        return Err(corrupt(format!(
            "the header counts {num_rows} embeddings, the identities hold {total}"
        )));
    }
    if embeddings.iter().any(|v| !v.is_finite()) {
        return Err(corrupt("an embedding holds NaN or infinity".into()));
    }
    Ok(Decoded {
        space,
        identities,
        embeddings,
        row_offsets,
        stamp: Stamp { len: found, crc },
    })
}

/// Reads forward through a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next `n` bytes, or `None` past the end.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
}

/// The `N` bytes at `at`; the caller has checked the slice is long enough.
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, at))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array_at(bytes, at))
}
