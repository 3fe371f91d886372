//! The synthetic dataset writer behind `edge-reid-train synth`: renders a Market-1501-style dataset
//! in exactly the real layout, so the real loader reads it.
//!
//! `OUT/bounding_box_train/`, `OUT/bounding_box_test/` and `OUT/query/` hold JPEG crops named
//! `PPPP_cCsS_FFFFFF_BB.jpg` (identity, camera 1-6, sequence 1-6, frame, box); identity `-1` is
//! junk (in both train and test), `0000` a distractor (test gallery only). Train and test
//! identities are disjoint, about half each; every identity is seen by at least two cameras; each
//! test identity has one query per camera it appears in, and at least one gallery image in that
//! camera too. `annotations_train.csv` and `annotations_test.csv` hold the attributes, and
//! `synth.json` records the configuration (it also marks the folder as synth output, the only kind
//! of non-empty folder this writer overwrites).

use std::fs;
use std::io::{BufWriter, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::data::{csv_row, CSV_HEADER};
use edge_reid::dataset::synth::{
    render_crop, render_distractor, render_junk, Camera, PersonAppearance, SynthError, CAMERAS,
};
use image::codecs::jpeg::JpegEncoder;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// The folder and annotation file names of the layout (defined once in [`edge_reid::dataset::market`]).
pub use edge_reid::dataset::market::{GALLERY_DIR, QUERY_DIR, TEST_CSV, TRAIN_CSV, TRAIN_DIR};
/// The marker (and record of the configuration) of a synth output folder.
pub const MARKER: &str = "synth.json";
/// JPEG quality of the crops.
pub const JPEG_QUALITY: u8 = 90;
/// Most identities the 4-digit names allow.
pub const MAX_IDENTITIES: u32 = 9999;
/// Most junk or distractor images (their frame numbers must fit 6 digits).
pub const MAX_EXTRA: u32 = 99_999;

/// What to render.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Output folder (created; an existing one must be empty or an earlier synth output).
    pub out: PathBuf,
    /// Number of identities, split about half for training and half for testing.
    pub identities: u32,
    /// Seed: the same configuration gives byte-identical files.
    pub seed: u64,
    /// Images per identity (query, gallery or train together); the minimum must be at least 4.
    pub images_per_identity: RangeInclusive<u32>,
    /// Junk images (identity `-1`), half in the training folder and half in the test gallery.
    pub junk: u32,
    /// Distractor images (identity `0000`) in the test gallery.
    pub distractors: u32,
    /// Crop width in pixels.
    pub width: u32,
    /// Crop height in pixels.
    pub height: u32,
    /// Rendering threads (the output does not depend on it).
    pub threads: usize,
}

impl SynthConfig {
    /// Market-like defaults for `identities` people: 6 to 30 images each (about 18), 1.5 junk and
    /// 1.5 distractor images per identity, 64x128 crops, one thread per core.
    pub fn new(out: impl Into<PathBuf>, identities: u32, seed: u64) -> Self {
        Self {
            out: out.into(),
            identities,
            seed,
            images_per_identity: 6..=30,
            junk: identities.saturating_mul(3) / 2,
            distractors: identities.saturating_mul(3) / 2,
            width: 64,
            height: 128,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    fn check(&self) -> Result<(), SynthWriteError> {
        let bad = |m: String| Err(SynthWriteError::Config(m));
        if !(2..=MAX_IDENTITIES).contains(&self.identities) {
            return bad(format!(
                "identities must be 2 to {MAX_IDENTITIES} (one train and one test at least), not {}",
                self.identities
            ));
        }
        let (lo, hi) = (
            *self.images_per_identity.start(),
            *self.images_per_identity.end(),
        );
        if lo < 4 || hi < lo || hi > 1000 {
            return bad(format!(
                "images per identity {lo}..={hi}: the minimum must be at least 4 (two cameras with a \
                 query and a gallery image each) and the range at most 1000"
            ));
        }
        if self.junk > MAX_EXTRA || self.distractors > MAX_EXTRA {
            return bad(format!(
                "at most {MAX_EXTRA} junk and {MAX_EXTRA} distractor images, not {} and {}",
                self.junk, self.distractors
            ));
        }
        if self.width == 0 || self.height == 0 {
            return bad(format!("crop size {}x{} is empty", self.width, self.height));
        }
        Ok(())
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SynthSummary {
    /// Identities in the training folder.
    pub train_identities: usize,
    /// Identities in the query and test gallery folders.
    pub test_identities: usize,
    /// Person images in `bounding_box_train`.
    pub train_images: usize,
    /// Person images in `bounding_box_test` (without junk and distractors).
    pub gallery_images: usize,
    /// Images in `query`.
    pub query_images: usize,
    /// Junk images in `bounding_box_train`.
    pub junk_train: usize,
    /// Junk images in `bounding_box_test`.
    pub junk_test: usize,
    /// Distractor images in `bounding_box_test`.
    pub distractors: usize,
}

impl SynthSummary {
    /// All images written.
    pub fn images(&self) -> usize {
        self.train_images
            + self.gallery_images
            + self.query_images
            + self.junk_train
            + self.junk_test
            + self.distractors
    }
}

/// Why a synthetic dataset could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthWriteError {
    /// The configuration cannot give a valid dataset.
    #[error("bad synth configuration: {0}")]
    Config(String),
    /// The output folder holds something that is not an earlier synth output.
    #[error("{} is not empty and has no {MARKER}: refusing to write a synthetic dataset over it", .0.display())]
    NotEmpty(PathBuf),
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// JPEG encoding failed.
    #[error("{}: cannot encode the JPEG: {source}", path.display())]
    Encode {
        /// The image file.
        path: PathBuf,
        /// The error.
        source: image::ImageError,
    },
    /// The renderer refused a request.
    #[error(transparent)]
    Render(#[from] SynthError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthWriteError + '_ {
    move |source| SynthWriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One image to render.
#[derive(Debug, Clone, PartialEq)]
enum Job {
    Person { identity: u32, camera: u8 },
    Distractor { index: u32, camera: u8 },
    Junk { camera: u8 },
}

/// Where one image goes and how it is drawn.
#[derive(Debug, Clone)]
struct Shot {
    path: PathBuf,
    job: Job,
    seed: u64,
}

/// The image's Market name: `PPPP_cCsS_FFFFFF_BB.jpg` (`-1` for junk).
fn file_name(identity: i32, camera: u8, sequence: u8, frame: u32, bbox: u8) -> String {
    let id = if identity < 0 {
        "-1".to_string()
    } else {
        format!("{identity:04}")
    };
    format!("{id}_c{camera}s{sequence}_{frame:06}_{bbox:02}.jpg")
}

/// A seeded generator for one purpose (`tag`) and one item.
fn stream(seed: u64, tag: u64, item: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ item.rotate_left(32))
}

/// The distractors are people from another population than the dataset's identities.
const DISTRACTOR_POPULATION: u64 = 0xd157_7ac7;

/// Plans every image of one identity: cameras, sequences, frames, and which go to `query`.
fn plan_identity(
    cfg: &SynthConfig,
    identity: u32,
    test: bool,
    shots: &mut Vec<Shot>,
    summary: &mut SynthSummary,
) {
    let mut r = stream(cfg.seed, 1, u64::from(identity));
    let n = r.random_range(cfg.images_per_identity.clone());
    // Test identities need a query and a gallery image in each of their cameras.
    let per_camera = if test { 2 } else { 1 };
    let max_cameras = (n / per_camera).clamp(2, u32::from(CAMERAS));
    let k = r.random_range(2..=max_cameras);
    let mut cameras: Vec<u8> = (1..=CAMERAS).collect();
    cameras.shuffle(&mut r);
    cameras.truncate(k as usize);
    cameras.sort_unstable();
    let mut counts = vec![per_camera; cameras.len()];
    for _ in 0..n - per_camera * k {
        counts[r.random_range(0..cameras.len())] += 1;
    }
    for (&camera, &count) in cameras.iter().zip(&counts) {
        let sequence = r.random_range(1..=6u8);
        let mut frame = r.random_range(0..500_000u32);
        let query = r.random_range(0..count);
        for j in 0..count {
            frame += r.random_range(3..15);
            let bbox = if r.random_bool(0.85) {
                1
            } else {
                r.random_range(2..=4)
            };
            let dir = match (test, j == query) {
                (false, _) => {
                    summary.train_images += 1;
                    TRAIN_DIR
                }
                (true, true) => {
                    summary.query_images += 1;
                    QUERY_DIR
                }
                (true, false) => {
                    summary.gallery_images += 1;
                    GALLERY_DIR
                }
            };
            shots.push(Shot {
                path: cfg.out.join(dir).join(file_name(
                    identity as i32,
                    camera,
                    sequence,
                    frame,
                    bbox,
                )),
                job: Job::Person { identity, camera },
                seed: r.random(),
            });
        }
    }
}

/// Plans `count` junk or distractor images into `dir`.
fn plan_extra(
    cfg: &SynthConfig,
    dir: &str,
    count: u32,
    distractor: bool,
    tag: u64,
    shots: &mut Vec<Shot>,
) {
    let mut r = stream(cfg.seed, tag, 0);
    for index in 0..count {
        let camera = r.random_range(1..=CAMERAS);
        let sequence = r.random_range(1..=6u8);
        // Distinct frame numbers per folder keep the names unique.
        let frame = index * 10 + r.random_range(0..10);
        let bbox = r.random_range(1..=6u8);
        let (identity, job) = if distractor {
            (0, Job::Distractor { index, camera })
        } else {
            (-1, Job::Junk { camera })
        };
        shots.push(Shot {
            path: cfg
                .out
                .join(dir)
                .join(file_name(identity, camera, sequence, frame, bbox)),
            job,
            seed: r.random(),
        });
    }
}

/// Clears an earlier synth output, or refuses a folder with anything else in it.
fn prepare(out: &Path) -> Result<(), SynthWriteError> {
    if !out.exists() {
        return fs::create_dir_all(out).map_err(io(out));
    }
    let mut entries = fs::read_dir(out).map_err(io(out))?.peekable();
    if entries.peek().is_none() {
        return Ok(());
    }
    if !out.join(MARKER).is_file() {
        return Err(SynthWriteError::NotEmpty(out.to_path_buf()));
    }
    for dir in [TRAIN_DIR, GALLERY_DIR, QUERY_DIR] {
        let dir = out.join(dir);
        if !dir.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path.extension().is_some_and(|e| e == "jpg") {
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
    }
    for file in [TRAIN_CSV, TEST_CSV, MARKER] {
        let path = out.join(file);
        if path.exists() {
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

fn render(cfg: &SynthConfig, shot: &Shot) -> Result<(), SynthWriteError> {
    let (w, h) = (cfg.width, cfg.height);
    let img = match shot.job {
        Job::Person { identity, camera } => {
            let person = PersonAppearance::new(cfg.seed, identity);
            render_crop(&person, &Camera::market(camera)?, shot.seed, w, h)?
        }
        Job::Distractor { index, camera } => {
            let person = PersonAppearance::new(cfg.seed ^ DISTRACTOR_POPULATION, index);
            render_distractor(&person, &Camera::market(camera)?, shot.seed, w, h)?
        }
        Job::Junk { camera } => render_junk(&Camera::market(camera)?, shot.seed, w, h)?,
    };
    let path = &shot.path;
    let file = fs::File::create(path).map_err(io(path))?;
    let mut writer = BufWriter::new(file);
    JpegEncoder::new_with_quality(&mut writer, JPEG_QUALITY)
        .encode_image(&img)
        .map_err(|source| SynthWriteError::Encode {
            path: path.clone(),
            source,
        })?;
    writer.flush().map_err(io(path))
}

fn write_text(path: &Path, text: &str) -> Result<(), SynthWriteError> {
    fs::write(path, text).map_err(io(path))
}

/// Renders the dataset described by `cfg`, calling `progress(done, total)` after each image.
/// Refuses (without touching anything) a non-empty output folder that is not an earlier synth
/// output; an earlier synth output is replaced.
pub fn write_dataset(
    cfg: &SynthConfig,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<SynthSummary, SynthWriteError> {
    cfg.check()?;
    let mut ids: Vec<u32> = (1..=cfg.identities).collect();
    ids.shuffle(&mut stream(cfg.seed, 0, 0));
    let (train, test) = ids.split_at(ids.len().div_ceil(2));
    let (mut train, mut test) = (train.to_vec(), test.to_vec());
    train.sort_unstable();
    test.sort_unstable();

    let mut summary = SynthSummary {
        train_identities: train.len(),
        test_identities: test.len(),
        ..SynthSummary::default()
    };
    let mut shots = Vec::new();
    for (ids, is_test) in [(&train, false), (&test, true)] {
        for &id in ids {
            plan_identity(cfg, id, is_test, &mut shots, &mut summary);
        }
    }
    summary.junk_train = (cfg.junk / 2) as usize;
    summary.junk_test = (cfg.junk - cfg.junk / 2) as usize;
    summary.distractors = cfg.distractors as usize;
    plan_extra(cfg, TRAIN_DIR, cfg.junk / 2, false, 2, &mut shots);
    plan_extra(
        cfg,
        GALLERY_DIR,
        cfg.junk - cfg.junk / 2,
        false,
        3,
        &mut shots,
    );
    plan_extra(cfg, GALLERY_DIR, cfg.distractors, true, 4, &mut shots);

    prepare(&cfg.out)?;
    for dir in [TRAIN_DIR, GALLERY_DIR, QUERY_DIR] {
        let dir = cfg.out.join(dir);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
    }

    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..cfg.threads.clamp(1, 64) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(shot) = shots.get(i) else { break };
                    if let Err(e) = render(cfg, shot) {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        break;
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, shots.len());
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }

    for (file, ids) in [(TRAIN_CSV, &train), (TEST_CSV, &test)] {
        let mut text = format!("{CSV_HEADER}\n");
        for &id in ids {
            let values = csv_row(&PersonAppearance::new(cfg.seed, id).attributes());
            text += &id.to_string();
            for v in values {
                text += &format!(",{v}");
            }
            text.push('\n');
        }
        write_text(&cfg.out.join(file), &text)?;
    }
    let record = serde_json::json!({
        "generator": "edge-reid-train synth",
        "seed": cfg.seed,
        "identities": cfg.identities,
        "images_per_identity": [cfg.images_per_identity.start(), cfg.images_per_identity.end()],
        "junk": cfg.junk,
        "distractors": cfg.distractors,
        "width": cfg.width,
        "height": cfg.height,
        "summary": summary,
    });
    write_text(&cfg.out.join(MARKER), &format!("{record:#}\n"))?;
    Ok(summary)
}

/// A small dataset for tests: `identities` identities with 4-6 images each, `junk` junk images,
/// 4 distractors, rendered on one thread into `out`.
#[cfg(test)]
pub(crate) fn write_test_dataset(out: &Path, identities: u32, seed: u64, junk: u32) {
    let mut synth = SynthConfig::new(out, identities, seed);
    synth.images_per_identity = 4..=6;
    synth.junk = junk;
    synth.distractors = 4;
    synth.threads = 1;
    write_dataset(&synth, |_, _| {}).expect("rendering a test dataset");
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Instant;

    use super::*;

    /// A parsed Market name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Name {
        identity: i32,
        camera: u8,
        sequence: u8,
        frame: u32,
        bbox: u8,
    }

    /// Parses `PPPP_cCsS_FFFFFF_BB.jpg` strictly (independently of `file_name`).
    fn parse(name: &str) -> Option<Name> {
        let stem = name.strip_suffix(".jpg")?;
        let parts: Vec<&str> = stem.split('_').collect();
        let [id, cs, frame, bbox] = parts[..] else {
            return None;
        };
        let identity: i32 = match id {
            "-1" => -1,
            _ if id.len() == 4 && id.bytes().all(|b| b.is_ascii_digit()) => id.parse().ok()?,
            _ => return None,
        };
        let cs = cs.as_bytes();
        if cs.len() != 4 || cs[0] != b'c' || cs[2] != b's' || frame.len() != 6 || bbox.len() != 2 {
            return None;
        }
        let digit = |b: u8| (b'1'..=b'6').contains(&b).then_some(b - b'0');
        Some(Name {
            identity,
            camera: digit(cs[1])?,
            sequence: digit(cs[3])?,
            frame: frame.parse().ok()?,
            bbox: bbox.parse().ok()?,
        })
    }

    fn names(dir: &Path) -> Vec<Name> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                parse(&name).unwrap_or_else(|| panic!("bad name {name}"))
            })
            .collect()
    }

    fn tiny(out: &Path, identities: u32, threads: usize) -> SynthConfig {
        SynthConfig {
            images_per_identity: 4..=9,
            junk: 5,
            distractors: 3,
            threads,
            ..SynthConfig::new(out, identities, 17)
        }
    }

    fn read_csv(path: &Path) -> (String, BTreeMap<u32, Vec<u8>>) {
        let text = fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_string();
        let rows = lines
            .map(|l| {
                let v: Vec<u32> = l.split(',').map(|x| x.parse().unwrap()).collect();
                (v[0], v[1..].iter().map(|&x| x as u8).collect())
            })
            .collect();
        (header, rows)
    }

    #[test]
    fn writes_a_market_layout_with_queries_junk_distractors_and_attributes() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("synth");
        let start = Instant::now();
        let summary = write_dataset(&tiny(&out, 6, 2), |_, _| {}).unwrap();
        let elapsed = start.elapsed();
        assert!(elapsed.as_secs_f32() < 20.0, "tiny set took {elapsed:?}");

        let train = names(&out.join(TRAIN_DIR));
        let gallery = names(&out.join(GALLERY_DIR));
        let query = names(&out.join(QUERY_DIR));
        assert_eq!(summary.images(), train.len() + gallery.len() + query.len());
        assert_eq!((summary.train_identities, summary.test_identities), (3, 3));
        let count = |v: &[Name], id: i32| v.iter().filter(|n| n.identity == id).count();
        assert_eq!(count(&train, -1), summary.junk_train);
        assert_eq!((summary.junk_train, summary.junk_test), (2, 3));
        assert_eq!(count(&gallery, -1), 3);
        assert_eq!(count(&gallery, 0), 3);
        assert_eq!(count(&train, 0) + count(&query, 0) + count(&query, -1), 0);
        assert_eq!(train.len() - 2, summary.train_images);
        assert_eq!(gallery.len() - 6, summary.gallery_images);
        assert_eq!(query.len(), summary.query_images);

        let ids = |v: &[Name]| -> BTreeSet<i32> {
            v.iter().map(|n| n.identity).filter(|&i| i > 0).collect()
        };
        let (train_ids, test_ids) = (ids(&train), ids(&gallery));
        assert_eq!(train_ids.len(), 3);
        assert!(
            train_ids.is_disjoint(&test_ids),
            "{train_ids:?} {test_ids:?}"
        );
        assert_eq!(ids(&query), test_ids);
        let cameras = |v: &[Name], id: i32| -> BTreeSet<u8> {
            v.iter()
                .filter(|n| n.identity == id)
                .map(|n| n.camera)
                .collect()
        };
        for &id in &train_ids {
            assert!(
                cameras(&train, id).len() >= 2,
                "train identity {id} in one camera"
            );
        }
        for &id in &test_ids {
            let q = cameras(&query, id);
            assert!(q.len() >= 2, "test identity {id} in one camera");
            assert_eq!(
                q,
                cameras(&gallery, id),
                "identity {id}: query and gallery cameras"
            );
            assert_eq!(
                count(&query, id),
                q.len(),
                "identity {id}: one query per camera"
            );
        }

        let (header, rows) = read_csv(&out.join(TRAIN_CSV));
        assert_eq!(
            header,
            "id,age,backpack,bag,handbag,clothes,down,up,hair,hat,gender,upblack,upwhite,upred,\
             uppurple,upyellow,upgray,upblue,upgreen,downblack,downwhite,downpink,downpurple,\
             downyellow,downgray,downblue,downgreen,downbrown"
        );
        let (test_header, test_rows) = read_csv(&out.join(TEST_CSV));
        assert_eq!(test_header, header);
        let row_ids =
            |r: &BTreeMap<u32, Vec<u8>>| -> BTreeSet<i32> { r.keys().map(|&k| k as i32).collect() };
        assert_eq!((row_ids(&rows), row_ids(&test_rows)), (train_ids, test_ids));
        for (&id, v) in rows.iter().chain(&test_rows) {
            assert_eq!(v.len(), 27);
            assert!((1..=4).contains(&v[0]));
            assert!(v[1..].iter().all(|&x| x == 1 || x == 2));
            assert_eq!(v[10..18].iter().filter(|&&x| x == 2).count(), 1);
            assert_eq!(v[18..].iter().filter(|&&x| x == 2).count(), 1);
            let labels = PersonAppearance::new(17, id).attributes();
            assert_eq!(v[0], labels[0] + 1);
            assert_eq!(v[9], labels[9] + 1);
            assert_eq!(v[10 + usize::from(labels[10])], 2);
            assert_eq!(v[18 + usize::from(labels[11])], 2);
        }

        let any = fs::read_dir(out.join(QUERY_DIR))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let img = image::open(&any).unwrap();
        assert_eq!((img.width(), img.height()), (64, 128));
        let marker: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join(MARKER)).unwrap()).unwrap();
        assert_eq!(marker["seed"], 17);
    }

    fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(
                        path.strip_prefix(root).unwrap().to_path_buf(),
                        fs::read(&path).unwrap(),
                    );
                }
            }
        }
        files
    }

    #[test]
    fn same_config_gives_identical_files_whatever_the_threads() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        write_dataset(&tiny(&a, 2, 1), |_, _| {}).unwrap();
        let calls = AtomicUsize::new(0);
        let summary = write_dataset(&tiny(&b, 2, 3), |_, total| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert!(total > 0);
        })
        .unwrap();
        assert_eq!(calls.into_inner(), summary.images());
        let (sa, sb) = (snapshot(&a), snapshot(&b));
        assert_eq!(sa.len(), summary.images() + 3);
        assert!(sa == sb, "outputs differ");
    }

    #[test]
    fn refuses_foreign_folders_and_replaces_earlier_synth_output() {
        let tmp = tempfile::tempdir().unwrap();
        let user = tmp.path().join("photos");
        fs::create_dir_all(&user).unwrap();
        fs::write(user.join("holiday.jpg"), b"precious").unwrap();
        let err = write_dataset(&tiny(&user, 2, 1), |_, _| {}).unwrap_err();
        assert!(matches!(err, SynthWriteError::NotEmpty(_)), "{err}");
        assert!(err.to_string().contains("photos"), "{err}");
        assert_eq!(fs::read(user.join("holiday.jpg")).unwrap(), b"precious");
        assert_eq!(fs::read_dir(&user).unwrap().count(), 1);

        let out = tmp.path().join("synth");
        write_dataset(&tiny(&out, 4, 1), |_, _| {}).unwrap();
        let mut smaller = tiny(&out, 2, 1);
        smaller.seed = 99;
        let summary = write_dataset(&smaller, |_, _| {}).unwrap();
        assert_eq!(
            snapshot(&out).len(),
            summary.images() + 3,
            "old images are gone"
        );
    }

    #[test]
    fn bad_configurations_are_refused_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("never");
        let mut cfg = tiny(&out, 1, 1);
        assert!(matches!(
            write_dataset(&cfg, |_, _| {}),
            Err(SynthWriteError::Config(_))
        ));
        cfg.identities = 10;
        cfg.images_per_identity = 3..=10;
        let err = write_dataset(&cfg, |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("at least 4"), "{err}");
        cfg.images_per_identity = 4..=10;
        cfg.width = 0;
        assert!(write_dataset(&cfg, |_, _| {}).is_err());
        cfg.width = 64;
        cfg.junk = MAX_EXTRA + 1;
        assert!(write_dataset(&cfg, |_, _| {}).is_err());
        assert!(!out.exists());
    }

    #[test]
    fn names_follow_market() {
        assert_eq!(file_name(7, 3, 2, 1234, 1), "0007_c3s2_001234_01.jpg");
        assert_eq!(file_name(-1, 6, 1, 0, 12), "-1_c6s1_000000_12.jpg");
        assert_eq!(file_name(0, 1, 1, 5, 2), "0000_c1s1_000005_02.jpg");
        assert!(parse("0007_c3s2_001234_01.jpg").is_some());
        assert!(parse("7_c3s2_001234_01.jpg").is_none());
    }

    /// Full-size timing on one thread: `cargo test -p edge-reid-train --lib full_size_speed --
    /// --ignored --nocapture` (add `--config 'profile.dev.package.edge-reid.opt-level=3'` or use
    /// `--release` for representative numbers).
    #[test]
    #[ignore]
    fn full_size_speed() {
        let tmp = tempfile::tempdir().unwrap();
        let identities = std::env::var("SYNTH_IDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500);
        let mut cfg = SynthConfig::new(tmp.path().join("market"), identities, 1);
        cfg.threads = 1;
        let start = Instant::now();
        let summary = write_dataset(&cfg, |_, _| {}).unwrap();
        let s = start.elapsed().as_secs_f64();
        eprintln!(
            "{summary:?}\n{} images in {s:.1} s on one thread: {:.0} images/s",
            summary.images(),
            summary.images() as f64 / s
        );
    }
}
