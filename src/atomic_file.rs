//! Crash-safe file replacement: write a temporary file beside the target, fsync it, rename it over
//! the target and fsync the directory, so a reader sees either the old file or the new one, never a
//! half-written one. Used for galleries, training checkpoints and run tables.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically. The temporary file is `<path>.tmp` in the same
/// directory; a leftover one from an interrupted write is overwritten.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with_mode(path, bytes, None)
}

/// Like [`write_atomic`], creating the file with Unix permission bits `mode` (for example `0o600`
/// for files only the owner may read).
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
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
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    commit(&tmp, path)
}

/// Replaces `path` with the file `write` writes at the temporary path it is given, with the same
/// guarantees as [`write_atomic`]; for writers that take a path (safetensors checkpoints).
pub fn replace_with(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let tmp = temporary(path)?;
    write(&tmp)?;
    File::open(&tmp)?.sync_all()?;
    commit(&tmp, path)
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

/// Renames the synced `tmp` over `path` and persists the rename.
fn commit(tmp: &Path, path: &Path) -> io::Result<()> {
    fs::rename(tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Persist the rename itself; directories cannot be opened for fsync on every platform.
    if let Ok(d) = File::open(dir) {
        d.sync_all()?;
    }
    Ok(())
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
    }
}
