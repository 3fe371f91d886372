//! Crash-safe file replacement: write a temporary file beside the target, fsync it, rename it over
//! the target and fsync the directory, so a reader sees either the old file or the new one, never a
//! half-written one. Used for galleries, training checkpoints and run tables.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically. The temporary file is `<path>.tmp` in the same
/// directory; a leftover one from an interrupted write is overwritten.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with_mode(path, bytes, None).map(drop)
}

/// Like [`write_atomic`], creating the file with Unix permission bits `mode` (for example `0o600`
/// for files only the owner may read). Returns the new file opened for reading: it keeps these
/// bytes even if another writer replaces `path` later.
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<File> {
    let tmp = temporary(path)?;
    let mut options = OpenOptions::new();
    // A fresh file, so that `mode` holds even where an interrupted write left a temporary one.
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut reader = None;
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        reader = Some(File::open(&tmp)?);
        Ok(())
    });
    commit(written, &tmp, path, sync_dir)?;
    Ok(reader.expect("opened once written"))
}

/// Replaces `path` with the file `write` writes at the temporary path it is given, with the same
/// guarantees as [`write_atomic`]; for writers that take a path (safetensors checkpoints).
pub fn replace_with(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let tmp = temporary(path)?;
    let written = write(&tmp).and_then(|()| File::open(&tmp)?.sync_all());
    commit(written, &tmp, path, sync_dir)
}

/// Makes `path` another name of the file at `src` (a hard link), replacing what `path` named with
/// the same guarantees as [`write_atomic`]; nothing is copied. Does nothing where `path` already
/// names that file (POSIX renames between two names of one file do nothing, which would leave the
/// temporary behind).
pub fn link_atomic(src: &Path, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let file = fs::metadata(src)?;
        if fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == (file.dev(), file.ino())) {
            return Ok(());
        }
    }
    let tmp = temporary(path)?;
    commit(fs::hard_link(src, &tmp), &tmp, path, sync_dir)
}

/// `<path>.tmp`, with any leftover of an interrupted write removed.
fn temporary(path: &Path) -> io::Result<PathBuf> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(tmp),
    }
}

/// After `written` (writing and syncing `tmp`): renames `tmp` over `path` and syncs the
/// directory with `sync_dir` so that the rename survives a power cut; where writing failed (a
/// full disk), removes the partial `tmp` and returns why.
///
/// A failed directory sync is not an error: the new file is already in place, and a caller told
/// otherwise would redo what is done (a second enrollment); it only leaves the rename to the file
/// system's own schedule, and is said on stderr.
fn commit(
    written: io::Result<()>,
    tmp: &Path,
    path: &Path,
    sync_dir: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    if let Err(e) = written.and_then(|()| fs::rename(tmp, path)) {
        // Best effort: the error that matters is the write's.
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Err(e) = sync_dir(dir) {
        eprintln!(
            "edge-reid: {} is written, but syncing its directory failed ({e}): the change may \
             not survive a power cut",
            path.display()
        );
    }
    Ok(())
}

/// Fsyncs a directory; directories cannot be opened for fsync on every platform (not an error).
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.csv");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn creates_with_the_requested_mode_even_over_a_leftover_temporary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.bin");
        let leftover = dir.path().join("gallery.bin.tmp");
        fs::write(&leftover, b"half a gallery").unwrap();
        fs::set_permissions(&leftover, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic_with_mode(&path, b"x", Some(0o600)).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"x");
        assert!(!leftover.exists());
    }

    #[test]
    fn a_failed_writer_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        replace_with(&path, |tmp| fs::write(tmp, b"epoch 1")).unwrap();
        let err = replace_with(&path, |tmp| {
            fs::write(tmp, b"half of epoch 2")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), b"epoch 1");
        // The partial temporary file (with what it held) is gone.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["last.safetensors"]);
    }

    #[test]
    fn a_failed_directory_sync_after_the_rename_is_not_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.bin");
        let tmp = dir.path().join("gallery.bin.tmp");
        fs::write(&path, b"old").unwrap();
        fs::write(&tmp, b"new").unwrap();
        let mut synced = None;
        commit(Ok(()), &tmp, &path, |d| {
            synced = Some(d.to_path_buf());
            Err(io::Error::from_raw_os_error(5))
        })
        .unwrap();
        assert_eq!(synced.as_deref(), Some(dir.path()));
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!tmp.exists());
    }

    #[test]
    fn a_link_names_the_file_and_replaces_the_old_name_once() {
        let dir = tempfile::tempdir().unwrap();
        let [one, two, name] = ["epoch-1", "epoch-2", "best"].map(|n| dir.path().join(n));
        fs::write(&one, b"1").unwrap();
        fs::write(&two, b"2").unwrap();
        link_atomic(&one, &name).unwrap();
        link_atomic(&one, &name).unwrap();
        assert_eq!(fs::read(&name).unwrap(), b"1");
        link_atomic(&two, &name).unwrap();
        assert_eq!(fs::read(&name).unwrap(), b"2");
        // Removing the other name leaves the file; no temporary is left behind.
        fs::remove_file(&two).unwrap();
        assert_eq!(fs::read(&name).unwrap(), b"2");
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["best", "epoch-1"]);
    }
}
