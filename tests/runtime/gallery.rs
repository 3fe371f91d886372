//! Gallery crash safety: a process killed (SIGKILL) in the middle of a stream of enrollments
//! leaves a gallery that loads with every enrollment it had acknowledged.
//!
//! The enrolling process is this test binary itself, re-run on the ignored test
//! [`enroll_until_killed`] with [`CHILD_ENV`] naming the gallery.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_reid::distance::DistanceMetric;
use edge_reid::gallery::{EmbeddingSpace, Gallery, ModelFingerprint};

/// Environment variable that makes [`enroll_until_killed`] run, on the gallery it names.
const CHILD_ENV: &str = "EDGE_REID_TEST_GALLERY_CHILD";
const DIM: usize = 64;
/// Embeddings per enrollment.
const ROWS: usize = 8;
/// Embeddings of the identity enrolled before the stream: 512 KiB, so that every write of the
/// file takes a while and kills often land in the middle of one.
const BASE_ROWS: usize = 2048;

fn space() -> EmbeddingSpace {
    EmbeddingSpace::new(DIM, DistanceMetric::Euclidean, ModelFingerprint([5; 32])).unwrap()
}

fn name(i: usize) -> String {
    format!("person-{i:05}")
}

/// The embeddings of enrollment `i`: distinct per enrollment.
fn embeddings(i: usize) -> Vec<f32> {
    (0..ROWS * DIM)
        .map(|k| ((i * 7919 + k * 104_729) % 1000) as f32 / 100.0)
        .collect()
}

/// The child: enrolls `person-N` for N = identities already there (`base` and the persons), then
/// the next, ... and prints
/// `ACK N` once `enroll` has returned, until killed (or after a minute, if the parent is gone).
#[test]
#[ignore = "helper process of killed_enroller_keeps_acknowledged_enrollments"]
fn enroll_until_killed() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut gallery = Gallery::open(Path::new(&path)).unwrap();
    let mut stdout = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in gallery.identities().. {
        if Instant::now() > deadline {
            break;
        }
        gallery.enroll(&name(i), &embeddings(i)).unwrap();
        writeln!(stdout, "ACK {i}").unwrap();
        stdout.flush().unwrap();
    }
}

/// Runs a child on `path`, kills it `delay` after its `acks`-th acknowledgement, returns every
/// acknowledgement it printed.
fn enroll_then_kill(path: &Path, acks: usize, delay: Duration) -> Vec<usize> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "gallery::enroll_until_killed", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ack = |line: std::io::Result<String>| {
        let line = line.unwrap();
        line.strip_prefix("ACK ")
            .map(|n| n.parse::<usize>().unwrap())
    };
    let mut acked = Vec::new();
    while acked.len() < acks {
        match lines.next() {
            Some(line) => acked.extend(ack(line)),
            None => panic!("the child stopped after {} acknowledgements", acked.len()),
        }
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // Acknowledgements printed before the kill are still in the pipe.
    acked.extend(lines.filter_map(ack));
    acked
}

#[test]
fn killed_enroller_keeps_acknowledged_enrollments() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("gallery.bin");
    let base: Vec<f32> = (0..BASE_ROWS * DIM)
        .map(|k| (k % 97) as f32 - 50.0)
        .collect();
    Gallery::create(&path, space())
        .unwrap()
        .enroll("base", &base)
        .unwrap();
    let mut acked = Vec::new();
    // Children in turn on the same gallery, each killed mid-stream at a different moment.
    for round in 0..6u64 {
        let delay = Duration::from_micros(round * 7919 % 13 * 400);
        acked.extend(enroll_then_kill(&path, 4, delay));
        let gallery = Gallery::open(&path).expect("a killed writer left a gallery that loads");
        let names: Vec<(String, usize)> = gallery.list().map(|(n, c)| (n.to_string(), c)).collect();
        assert_eq!(names[0], ("base".to_string(), BASE_ROWS));
        for &i in &acked {
            assert!(
                names.contains(&(name(i), ROWS)),
                "round {round}: acknowledged enrollment {i} is missing"
            );
            let query = &embeddings(i)[..DIM];
            let best = gallery.search::<1>(query, None).unwrap();
            assert_eq!((best[0].name, best[0].distance), (name(i).as_str(), 0.0));
        }
        // Besides `base` and the acknowledged ones, at most the enrollment in flight at the kill.
        let last = *acked.last().unwrap();
        assert!(
            names.len() == last + 1 || names.len() == last + 2,
            "round {round}: {} identities after acknowledgement {last}",
            names.len()
        );
    }
}

/// The binary's writers (`enroll`, `gallery remove`, a run enrolling uploaded photos) killed at
/// random moments by `tests/crash/kill_gallery_writers.py` (run by hand at 1,000 kills, RESULTS.md):
/// after every kill the gallery loads with every acknowledged change.
#[test]
fn killed_writers_of_the_binary_lose_nothing_acknowledged() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crash/kill_gallery_writers.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--binary", env!("CARGO_BIN_EXE_edge-reid"), "--model"])
        .arg(super::model())
        .args(["--kills", "16", "--seed", "7"])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("16 kills, every acknowledged change kept"),
        "{stdout}"
    );
}
