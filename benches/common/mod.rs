//! What the benches share: the model under test, a synthetic camera frame and seeded random
//! embeddings. Each bench binary compiles this module and uses the part it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use edge_reid::model::Model;
use edge_reid::preprocess::{Framing, Preprocessor, Region};
use edge_reid::source::{Frame, FrameSource, SyntheticCamera, SyntheticConfig};
use rand::{Rng, SeedableRng};

/// The measuring settings of the model benches (inference, pipeline): 1 s of warm-up, 5 s of
/// measuring.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

/// The model the benches run: `$EDGE_REID_BENCH_MODEL`, else the shipped `models/edge-reid.onnx`.
pub fn model_path() -> PathBuf {
    std::env::var_os("EDGE_REID_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/edge-reid.onnx"))
}

/// The model under test planned for `batch` crops, and the name its bench ids carry (the file
/// stem and the card's input size, e.g. `edge-reid-64x32`), so that results of different models
/// are kept apart.
pub fn load_model(batch: usize) -> (Model, String) {
    let path = model_path();
    let model =
        Model::load(&path, batch).unwrap_or_else(|e| panic!("bench model {}: {e}", path.display()));
    let stem = path
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let input = &model.card().input;
    let label = format!("{stem}-{}x{}", input.height, input.width);
    (model, label)
}

/// The first frame of the synthetic camera `config` in which all `config.people` people are in
/// view (with their boxes in `truth`).
pub fn crowded_frame(config: SyntheticConfig) -> Frame {
    let mut camera = SyntheticCamera::new(config).expect("synthetic camera configuration");
    let mut frame = Frame::default();
    for _ in 0..1000 {
        camera
            .next_frame_into(&mut frame)
            .expect("the synthetic camera renders every frame");
        if frame.truth.len() == config.people as usize {
            return frame;
        }
    }
    panic!("the synthetic camera never showed {} people", config.people);
}

/// `n` crops for `pre`'s model, `[n, 3, H, W]`: the people of `frame`, in turn, cut and
/// normalised as the runtime does.
pub fn people_crops(pre: &Preprocessor, frame: &Frame, n: usize) -> Vec<f32> {
    let mut crops = vec![0.0; n * pre.slot_len()];
    for (slot, person) in crops
        .chunks_exact_mut(pre.slot_len())
        .zip(frame.truth.iter().cycle())
    {
        let region = Region {
            x: person.x,
            y: person.y,
            width: person.width,
            height: person.height,
        };
        pre.crop_into(&frame.image, region, Framing::PersonBox, slot)
            .expect("truth boxes lie inside the frame");
    }
    crops
}

/// `rows` embeddings of dimension `dim`, row-major, each uniform in `[-1, 1]^dim` then scaled to
/// unit L2 norm; the same for the same `seed`.
pub fn unit_embeddings(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut values: Vec<f32> = (0..rows * dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    for row in values.chunks_exact_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    values
}
