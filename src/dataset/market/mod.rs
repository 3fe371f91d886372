//! The Market-1501 folder layout: image names, folder listings, the dataset root and its attribute
//! annotations (CSV or Lin et al.'s MAT file), shared by training and the runtime's `eval`.
//!
//! A root holds `bounding_box_train/` and, when it is meant for evaluation too, `query/` and
//! `bounding_box_test/` (both or neither), plus the attribute annotations (see
//! [`AttributeTable::open`]). Images are named `PPPP_cCsS_FFFFFF_BB.jpg`: identity (four digits, or
//! `-1` for junk; `0000` marks a distractor), camera 1-6, sequence, frame, box index.
//!
//! ```no_run
//! # fn main() -> Result<(), edge_reid::dataset::market::MarketError> {
//! use edge_reid::dataset::market::{AttributeTable, EvaluationSplit};
//! let root = std::path::Path::new("market");
//! let split = EvaluationSplit::open(root)?;
//! let table = AttributeTable::open(root)?;
//! let annotated = split.query.iter().filter(|r| table.get(r.identity).is_some());
//! println!("{} of {} queries annotated", annotated.count(), split.query.len());
//! # Ok(())
//! # }
//! ```

mod annotations;
pub mod mat;

use std::path::{Path, PathBuf};

pub use annotations::{csv_row, AttributeTable, CSV_HEADER, CSV_HEADER_MULTICOLOR};

/// Folder of the training images.
pub const TRAIN_DIR: &str = "bounding_box_train";
/// Folder of the test gallery.
pub const GALLERY_DIR: &str = "bounding_box_test";
/// Folder of the queries.
pub const QUERY_DIR: &str = "query";
/// Lin et al.'s attribute file (both splits).
pub const MAT_FILE: &str = "market_attribute.mat";
/// Attributes of the training identities, CSV form.
pub const TRAIN_CSV: &str = "annotations_train.csv";
/// Attributes of the test identities, CSV form.
pub const TEST_CSV: &str = "annotations_test.csv";

/// Why a Market-1501 layout folder or its annotations could not be read. Every variant names the
/// file, row or field.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// A file or folder could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A folder the dataset layout requires is missing.
    #[error("{path} is missing: a Market-1501 root needs bounding_box_train/ for training and query/ with bounding_box_test/ for evaluation")]
    MissingFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A `.jpg` whose name is not `PPPP_cCsS_FFFFFF_BB.jpg`.
    #[error("{path}: not a Market-1501 image name (PPPP_cCsS_FFFFFF_BB.jpg): {reason}")]
    BadFileName {
        /// The file.
        path: PathBuf,
        /// What is wrong with the name.
        reason: String,
    },
    /// No attribute file exists under the dataset root.
    #[error("{root} has no attribute annotations (market_attribute.mat, annotations_train.csv or annotations_test.csv)")]
    NoAnnotations {
        /// The dataset root.
        root: PathBuf,
    },
    /// A malformed row of an annotation CSV.
    #[error("{path}:{line}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The MAT file could not be parsed.
    #[error(transparent)]
    Mat(#[from] mat::MatError),
    /// The MAT file parsed but a field does not hold what Lin et al.'s layout has.
    #[error("{path}: field {field}: {reason}")]
    MatContent {
        /// The file.
        path: PathBuf,
        /// Dotted field path (`market_attribute.train.age`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A person image whose identity has no attribute annotation.
    #[error("{path}: identity {identity} has no attribute annotation")]
    MissingAttributes {
        /// An image of that identity.
        path: PathBuf,
        /// The identity.
        identity: i32,
    },
}

/// One image of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The image file.
    pub path: PathBuf,
    /// Identity: positive for a person, `0` for a distractor, `-1` for junk.
    pub identity: i32,
    /// Camera, 1-6.
    pub camera: u8,
    /// Video sequence of that camera.
    pub sequence: u8,
    /// Frame number in the sequence.
    pub frame: u32,
}

impl Record {
    /// Parses a record from an image path named `PPPP_cCsS_FFFFFF_BB.jpg`.
    pub fn from_path(path: &Path) -> Result<Self, MarketError> {
        let bad = |reason: &str| MarketError::BadFileName {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("the name is not UTF-8"))?;
        let stem = name
            .strip_suffix(".jpg")
            .ok_or_else(|| bad("the extension is not .jpg"))?;
        let parts: Vec<&str> = stem.split('_').collect();
        let [identity, camera_sequence, frame, box_index] = parts[..] else {
            return Err(bad("expected four parts separated by '_'"));
        };
        let identity: i32 = match identity {
            "-1" => -1,
            digits => {
                let digits = decimal(digits, 4);
                digits.ok_or_else(|| bad("the identity is not 4 digits or -1"))? as i32
            }
        };
        let (camera, sequence) =
            camera_and_sequence(camera_sequence).ok_or_else(|| bad("expected cCsS, camera 1-6"))?;
        let frame = decimal(frame, 6).ok_or_else(|| bad("the frame is not 6 digits"))?;
        decimal(box_index, 2).ok_or_else(|| bad("the box index is not 2 digits"))?;
        Ok(Record {
            path: path.to_path_buf(),
            identity,
            camera,
            sequence,
            frame,
        })
    }

    /// Whether the record shows an identified person (neither junk nor a distractor).
    pub fn is_person(&self) -> bool {
        self.identity > 0
    }
}

/// The value of exactly `len` ASCII digits.
fn decimal(text: &str, len: usize) -> Option<u32> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Camera (one digit, 1-6) and sequence (one or two digits) of a `cCsS` part.
fn camera_and_sequence(text: &str) -> Option<(u8, u8)> {
    let (camera, sequence) = text.strip_prefix('c')?.split_once('s')?;
    let camera = u8::try_from(decimal(camera, 1)?).ok()?;
    if !(1..=6).contains(&camera) || !(1..=2).contains(&sequence.len()) {
        return None;
    }
    let sequence = u8::try_from(decimal(sequence, sequence.len())?).ok()?;
    Some((camera, sequence))
}

/// The records of every `.jpg` in `dir`, sorted by file name. Other files (Market ships
/// `Thumbs.db`) and subfolders are skipped; a `.jpg` with a bad name is an error naming it.
pub fn list_folder(dir: &Path) -> Result<Vec<Record>, MarketError> {
    let io = |source| MarketError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_jpg = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg"));
        if is_jpg && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| Record::from_path(p)).collect()
}

/// Query and gallery images of an evaluation split.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationSplit {
    /// `query/`.
    pub query: Vec<Record>,
    /// `bounding_box_test/`.
    pub gallery: Vec<Record>,
}

impl EvaluationSplit {
    /// Lists `query/` and `bounding_box_test/` of `root`; a missing one is an error naming it.
    pub fn open(root: &Path) -> Result<Self, MarketError> {
        let (query_dir, test_dir) = (root.join(QUERY_DIR), root.join(GALLERY_DIR));
        for dir in [&query_dir, &test_dir] {
            if !dir.is_dir() {
                return Err(MarketError::MissingFolder { path: dir.clone() });
            }
        }
        Ok(EvaluationSplit {
            query: list_folder(&query_dir)?,
            gallery: list_folder(&test_dir)?,
        })
    }
}

/// A Market-1501 layout dataset.
#[derive(Debug, Clone)]
pub struct MarketDataset {
    /// The root folder.
    pub root: PathBuf,
    /// `bounding_box_train/`.
    pub train: Vec<Record>,
    /// `query/` and `bounding_box_test/`, when the root has them.
    pub evaluation: Option<EvaluationSplit>,
    /// Attributes per identity.
    pub attributes: AttributeTable,
}

impl MarketDataset {
    /// Opens a dataset root: lists `bounding_box_train/` (required), `query/` and
    /// `bounding_box_test/` (both or neither) and reads the attributes. Every training person must
    /// have attributes; test identities are not checked here.
    pub fn open(root: &Path) -> Result<Self, MarketError> {
        let train_dir = root.join(TRAIN_DIR);
        if !train_dir.is_dir() {
            return Err(MarketError::MissingFolder { path: train_dir });
        }
        let train = list_folder(&train_dir)?;
        let has_evaluation = root.join(QUERY_DIR).is_dir() || root.join(GALLERY_DIR).is_dir();
        let evaluation = has_evaluation
            .then(|| EvaluationSplit::open(root))
            .transpose()?;
        let attributes = AttributeTable::open(root)?;
        for record in train.iter().filter(|r| r.is_person()) {
            attributes.labels_for(record)?;
        }
        Ok(MarketDataset {
            root: root.to_path_buf(),
            train,
            evaluation,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<Record, MarketError> {
        Record::from_path(&Path::new("/data").join(name))
    }

    #[test]
    fn parses_market_names() {
        let r = parse("0002_c1s1_000451_03.jpg").unwrap();
        assert_eq!((r.identity, r.camera, r.sequence, r.frame), (2, 1, 1, 451));
        assert!(r.is_person());
        let junk = parse("-1_c6s4_012345_00.jpg").unwrap();
        assert_eq!((junk.identity, junk.camera, junk.sequence), (-1, 6, 4));
        assert!(!junk.is_person());
        let distractor = parse("0000_c3s2_000100_01.jpg").unwrap();
        assert_eq!(distractor.identity, 0);
        assert!(!distractor.is_person());
        assert_eq!(parse("1501_c2s12_999999_99.jpg").unwrap().sequence, 12);
    }

    #[test]
    fn bad_names_are_errors_naming_the_file() {
        for name in [
            "002_c1s1_000451_03.jpg",
            "00a2_c1s1_000451_03.jpg",
            "-2_c1s1_000451_03.jpg",
            "0002_c7s1_000451_03.jpg",
            "0002_c0s1_000451_03.jpg",
            "0002_c1_000451_03.jpg",
            "0002_c1s_000451_03.jpg",
            "0002_c1s1_00451_03.jpg",
            "0002_c1s1_000451_3.jpg",
            "0002_c1s1_000451.jpg",
            "0002_c1s1_000451_03_x.jpg",
            "0002_c1s1_000451_03.png",
        ] {
            let err = parse(name).unwrap_err();
            assert!(
                matches!(err, MarketError::BadFileName { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"").unwrap();
    }

    fn write_csv(root: &Path, ids: &[u32]) {
        let mut text = format!("{CSV_HEADER}\n");
        for id in ids {
            text += &format!("{id},2,1,1,1,2,1,2,1,1,1,2,1,1,1,1,1,1,1,2,1,1,1,1,1,1,1,1\n");
        }
        std::fs::write(root.join("annotations_train.csv"), text).unwrap();
    }

    #[test]
    fn opens_a_root_with_and_without_evaluation_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let err = MarketDataset::open(root).unwrap_err();
        assert!(matches!(err, MarketError::MissingFolder { .. }), "{err}");
        assert!(err.to_string().contains("bounding_box_train"), "{err}");

        let train = root.join("bounding_box_train");
        std::fs::create_dir(&train).unwrap();
        touch(&train, "0007_c2s1_000100_01.jpg");
        touch(&train, "0003_c1s1_000100_01.jpg");
        touch(&train, "-1_c1s1_000100_01.jpg");
        touch(&train, "Thumbs.db");
        let err = MarketDataset::open(root).unwrap_err();
        assert!(matches!(err, MarketError::NoAnnotations { .. }), "{err}");

        write_csv(root, &[3]);
        let err = MarketDataset::open(root).unwrap_err();
        assert!(
            matches!(err, MarketError::MissingAttributes { identity: 7, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0007_c2s1_000100_01.jpg"), "{err}");

        write_csv(root, &[3, 7]);
        let ds = MarketDataset::open(root).unwrap();
        let ids: Vec<i32> = ds.train.iter().map(|r| r.identity).collect();
        assert_eq!(ids, [-1, 3, 7]);
        assert!(ds.evaluation.is_none());
        assert_eq!(ds.attributes.len(), 2);

        let err = EvaluationSplit::open(root).unwrap_err();
        assert!(matches!(err, MarketError::MissingFolder { .. }), "{err}");
        assert!(err.to_string().contains("query is missing"), "{err}");
        std::fs::create_dir(root.join("query")).unwrap();
        let err = MarketDataset::open(root).unwrap_err();
        assert!(
            err.to_string().contains("bounding_box_test is missing"),
            "{err}"
        );
        std::fs::create_dir(root.join("bounding_box_test")).unwrap();
        touch(&root.join("query"), "0009_c1s1_000100_01.jpg");
        touch(&root.join("bounding_box_test"), "0000_c1s1_000100_01.jpg");
        let eval = MarketDataset::open(root).unwrap().evaluation.unwrap();
        assert_eq!(eval.query.len(), 1);
        assert_eq!(eval.gallery[0].identity, 0);

        touch(&root.join("bounding_box_test"), "bad.jpg");
        let err = MarketDataset::open(root).unwrap_err();
        assert!(err.to_string().contains("bad.jpg"), "{err}");
    }
}
