//! The course's submission files for a folder of anonymised test images and a folder of queries:
//! `classification_test.csv` (the annotation header, `id` = image file name, one row per test image
//! with the predicted attributes in the annotation files' 1/2 coding) and `reid_test.txt` (one line
//! per query, `query.jpg: g1.jpg, g2.jpg, ...`, the test images ranked by increasing Euclidean
//! distance of their embeddings).

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use candle_core::Device;
use edge_reid::atomic_file::write_atomic;
use edge_reid::distance::distance_matrix;

use crate::data::{csv_row, AttributeTable, Record, CSV_HEADER};
use crate::evaluate::Predictor;
use crate::loss::EMBEDDING_METRIC;
use crate::run::{RunConfig, Trainable};
use crate::TrainError;

/// What [`predict`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `classification_test.csv`.
    pub classification: PathBuf,
    /// `reid_test.txt`.
    pub reid: PathBuf,
    /// Test images.
    pub test_images: usize,
    /// Query images.
    pub queries: usize,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} ({} images) and {} ({} queries)",
            self.classification.display(),
            self.test_images,
            self.reid.display(),
            self.queries
        )
    }
}

/// The images of a folder (`.jpg`, `.jpeg`, `.png`), sorted by name, as unlabelled records.
fn images(dir: &Path) -> Result<Vec<Record>, TrainError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| TrainError::io(dir, e))?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png")) {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(TrainError::Setting(format!(
            "{}: no .jpg or .png images",
            dir.display()
        )));
    }
    paths.sort();
    // Identity 0 (a distractor) marks an image without labels.
    Ok(paths
        .into_iter()
        .map(|path| Record {
            path,
            identity: 0,
            camera: 0,
            sequence: 0,
            frame: 0,
        })
        .collect())
}

fn file_name(r: &Record) -> String {
    r.path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Predicts attributes for every image of `test` and ranks `test` for every image of `queries`.
pub fn predict(
    cfg: &RunConfig,
    checkpoint: &Path,
    test: &Path,
    queries: &Path,
    out: &Path,
    workers: usize,
) -> Result<Written, TrainError> {
    let device = Device::Cpu;
    let t = Trainable::load(&cfg.net, checkpoint, &device)?;
    let predictor = Predictor::new(cfg.net, cfg.mean, cfg.std, workers);
    let table = AttributeTable::default();
    let gallery = images(test)?;
    let query = images(queries)?;
    let g = predictor.run(&t.net, &gallery, &table, &device)?;
    let q = predictor.run(&t.net, &query, &table, &device)?;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;

    let mut csv = format!("{CSV_HEADER}\n");
    for (record, labels) in gallery.iter().zip(&g.attributes) {
        csv.push_str(&file_name(record));
        for v in csv_row(labels) {
            write!(csv, ",{v}").expect("string write");
        }
        csv.push('\n');
    }
    let classification = out.join("classification_test.csv");
    write_atomic(&classification, csv.as_bytes())
        .map_err(|e| TrainError::io(&classification, e))?;

    let distances = distance_matrix(&q.embeddings, &g.embeddings, g.dim, EMBEDDING_METRIC)
        .map_err(|e| TrainError::Setting(format!("distances: {e}")))?;
    let mut text = String::new();
    for (record, row) in query.iter().zip(distances.chunks_exact(gallery.len())) {
        let mut order: Vec<usize> = (0..gallery.len()).collect();
        order.sort_by(|&a, &b| row[a].total_cmp(&row[b]));
        let ranked: Vec<String> = order.iter().map(|&i| file_name(&gallery[i])).collect();
        writeln!(text, "{}: {}", file_name(record), ranked.join(", ")).expect("string write");
    }
    let reid = out.join("reid_test.txt");
    write_atomic(&reid, text.as_bytes()).map_err(|e| TrainError::io(&reid, e))?;
    Ok(Written {
        classification,
        reid,
        test_images: gallery.len(),
        queries: query.len(),
    })
}
