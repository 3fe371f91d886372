//! The gallery's f32 embeddings, left in its file and read when needed: the search's second pass
//! reads only the rows it scores, and a change reads them all once to write the new file. So an
//! open gallery keeps its names, its per-row terms and (once searched) its `i8` copy in memory,
//! about a quarter of the f32 bytes for 128-value rows, instead of the whole slab.
//!
//! The rows are read through the file handle the gallery read or wrote, not through its path: if
//! another process replaces the file (a new file renamed over it, as every writer of galleries
//! does), this gallery goes on reading the content it checked (the old file lives on while it is
//! open) until it is opened again. A file changed in place (`cp` over it) is seen by its length
//! and modification time, and its rows are then refused rather than read as they now are.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::SystemTime;

/// A file's length and modification time, as seen at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    len: u64,
    modified: SystemTime,
}

impl Seen {
    pub fn of(file: &File) -> io::Result<Seen> {
        let metadata = file.metadata()?;
        Ok(Seen {
            len: metadata.len(),
            modified: metadata.modified()?,
        })
    }
}

/// Where a gallery file's rows are.
#[derive(Debug)]
pub(super) struct StoredRows {
    file: File,
    /// The file when its content was read or written.
    seen: Seen,
    /// Per identity, the byte offset of its first row.
    offsets: Vec<u64>,
    dim: usize,
}

impl StoredRows {
    /// The rows of `file`, seen as `seen` when its content was read or written, whose identity
    /// `i` has its first row at byte `offsets[i]`; rows of `dim` little-endian f32 values.
    pub fn new(file: File, seen: Seen, offsets: Vec<u64>, dim: usize) -> Self {
        StoredRows {
            file,
            seen,
            offsets,
            dim,
        }
    }

    /// Whether the file still looks as it did when its content was read or written: rows read
    /// between two calls that return `true` are the file's rows as checked.
    pub fn unchanged(&self) -> io::Result<bool> {
        Ok(Seen::of(&self.file)? == self.seen)
    }

    /// Reads row `row` of identity `identity` (its `row`-th, from 0) into `out` (`dim` values).
    pub fn read(&self, identity: usize, row: usize, out: &mut [f32]) -> io::Result<()> {
        let row_bytes = 4 * self.dim;
        let at = self.offsets[identity] + (row * row_bytes) as u64;
        let mut bytes = [0u8; 4 * 256];
        // Rows are read a piece of up to 256 values at a time, without allocating.
        for (k, chunk) in out.chunks_mut(256).enumerate() {
            let bytes = &mut bytes[..4 * chunk.len()];
            self.file.read_exact_at(bytes, at + (k * 4 * 256) as u64)?;
            decode(bytes, chunk);
        }
        Ok(())
    }

    /// Reads every row in file order, of identities with `rows_per_identity` rows each, a run
    /// of whole identities (about [`RUN_BYTES`]) per read, and hands each run's rows (row-major)
    /// to `each`: memory for one run, not the file.
    pub fn for_each_run(
        &self,
        rows_per_identity: impl Iterator<Item = usize>,
        each: impl FnMut(&[f32]),
    ) -> io::Result<()> {
        self.runs(rows_per_identity, RUN_BYTES, each)
    }

    /// [`StoredRows::for_each_run`] with runs of about `run_bytes`.
    fn runs(
        &self,
        rows_per_identity: impl Iterator<Item = usize>,
        run_bytes: u64,
        mut each: impl FnMut(&[f32]),
    ) -> io::Result<()> {
        let row_bytes = 4 * self.dim;
        let spans: Vec<(u64, usize)> = self
            .offsets
            .iter()
            .zip(rows_per_identity)
            .map(|(&offset, rows)| (offset, rows * row_bytes))
            .collect();
        let (mut bytes, mut values) = (Vec::new(), Vec::new());
        let mut rest = spans.as_slice();
        while let Some(&(first, _)) = rest.first() {
            // Whole identities from `first`, at least one, up to `run_bytes` of the file.
            let n = rest
                .iter()
                .skip(1)
                .take_while(|&&(offset, len)| offset + len as u64 - first <= run_bytes)
                .count()
                + 1;
            let (run, next) = rest.split_at(n);
            let &(last, last_len) = run.last().expect("at least one identity");
            bytes.resize((last + last_len as u64 - first) as usize, 0);
            self.file.read_exact_at(&mut bytes, first)?;
            values.clear();
            for &(offset, len) in run {
                let at = (offset - first) as usize;
                let start = values.len();
                values.resize(start + len / 4, 0.0);
                decode(&bytes[at..at + len], &mut values[start..]);
            }
            each(&values);
            rest = next;
        }
        Ok(())
    }
}

/// How much of the file [`StoredRows::for_each_run`] reads at once.
const RUN_BYTES: u64 = 1 << 20;

/// Little-endian f32 bytes into `out`.
fn decode(bytes: &[u8], out: &mut [f32]) {
    for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

#[cfg(test)]
mod tests {
    use crate::gallery::tests::{space, DIM};
    use crate::gallery::Gallery;

    #[test]
    fn runs_of_any_size_hand_over_every_row_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::create(&dir.path().join("g.gallery"), space(1)).unwrap();
        let people: Vec<(String, Vec<f32>)> = (0..7)
            .map(|i| {
                let rows = 1 + i % 3;
                let values = (0..rows * DIM).map(|k| (i * 100 + k) as f32).collect();
                (format!("person {i}"), values)
            })
            .collect();
        g.enroll_batch(people.iter().map(|(n, r)| (n.as_str(), r.as_slice())))
            .unwrap();
        let want: Vec<f32> = people.iter().flat_map(|(_, r)| r.clone()).collect();
        // One identity per run; three, three and one (each identity's rows come 26 bytes after
        // the last's: its name's length and bytes, enrollment time and count); all in one.
        for (run_bytes, want_runs) in [(1, 7), (200, 3), (1 << 20, 1)] {
            let (mut got, mut runs) = (Vec::new(), 0);
            let rows = g.identities.iter().map(|i| i.rows);
            g.rows
                .runs(rows, run_bytes, |run| {
                    got.extend_from_slice(run);
                    runs += 1;
                })
                .unwrap();
            assert_eq!(
                (got.as_slice(), runs),
                (want.as_slice(), want_runs),
                "{run_bytes}"
            );
        }
    }
}
