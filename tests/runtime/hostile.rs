//! Small hostile files that claim, or inflate to, gigabytes, fed to the binary while its address
//! space is limited to 1 GiB (`setrlimit`): each is refused with an error naming it, where an
//! unbounded decoder would abort on a failed allocation. A good file passes under the same limit,
//! so the limit is not what refuses the others.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use super::{command, model, text};

/// The address space the binary may map: enough to load the model and run, far less than any of
/// the hostile files would need.
const LIMIT: u64 = 1 << 30;

/// Runs `edge-reid ARGS --model <test model>` in `dir` under [`LIMIT`], stdin closed.
fn limited(dir: &Path, args: &[&str]) -> Output {
    let mut command = command(dir, &model(), args);
    command.stdin(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("the binary runs")
}

/// `len` zero bytes, zlib-compressed a MiB at a time (about 1000:1).
fn zlib_zeros(len: usize) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len());
        z.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    z.finish().unwrap()
}

/// Writes `dir/name`, a valid greyscale PNG of `side` x `side` black pixels: a few MB on disk for
/// `side` = 22000, 484 MB as grey pixels and 1.45 GB as RGB.
fn black_png(dir: &Path, name: &str, side: u32) -> PathBuf {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    // Each row: filter byte 0, then `side` black pixels; all zeros.
    let rows = (side as usize + 1) * side as usize;
    chunk(&mut png, b"IDAT", &zlib_zeros(rows));
    chunk(&mut png, b"IEND", &[]);
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// A MATLAB 5 file whose one variable is zlib-compressed and inflates to `inflated` zero bytes.
fn mat_bomb(path: &Path, inflated: usize) {
    let compressed = zlib_zeros(inflated);
    let mut bytes = vec![b' '; 124];
    bytes.extend_from_slice(&0x0100u16.to_le_bytes());
    bytes.extend_from_slice(b"IM");
    bytes.extend_from_slice(&15u32.to_le_bytes()); // miCOMPRESSED
    bytes.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&compressed);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn hostile_files_are_refused_within_a_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let good = black_png(dir, "good.png", 128);
    let out = limited(dir, &["identify", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let huge = black_png(dir, "huge.png", 22_000);
    let out = limited(dir, &["identify", huge.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("huge.png is too large"), "{err}");

    // A Market-1501 folder whose annotation file inflates to 2 GiB.
    let market = dir.join("market");
    for (folder, camera) in [("query", 1), ("bounding_box_test", 2)] {
        std::fs::create_dir_all(market.join(folder)).unwrap();
        let crop = market
            .join(folder)
            .join(format!("0001_c{camera}s1_000001_00.jpg"));
        image::RgbImage::new(64, 128).save(&crop).unwrap();
    }
    mat_bomb(&market.join("market_attribute.mat"), 2 << 30);
    let out = limited(dir, &["eval", "--data", market.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("market_attribute.mat"), "{err}");
    assert!(err.contains("inflate to more than"), "{err}");

    // Raw frames of 32768 x 32768 would be 3 GiB each.
    let out = limited(dir, &["--input", "-", "--size", "32768x32768"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("32768"), "{err}");
}
