//! Inference: `Model::run` on full batches of 1 and 8 crops of the bench model
//! (`models/edge-reid.onnx`, or `$EDGE_REID_BENCH_MODEL`) on one and on two threads, reported per
//! crop: criterion's throughput is crops per second, and `python3 benches/medians.py` divides each
//! median by the batch size. Whether batching pays is a property of the network and tract's
//! kernels (on this project's 2-core machine tract was slower per crop at batch 8 than at batch 1
//! for the paper's ResNet18), so both are measured.
//!
//! `cargo bench -p edge-reid --bench inference`; the ids carry the model's file stem and input
//! size, e.g. `inference/edge-reid-64x32/batch8` (one thread) or `.../batch8-threads2`.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edge_reid::model::set_threads;
use edge_reid::preprocess::Preprocessor;
use edge_reid::source::SyntheticConfig;

/// Batch sizes measured.
const BATCHES: [usize; 2] = [1, 8];
/// Threads measured (`edge-reid --threads`; the default is the cores available).
const THREADS: [usize; 2] = [1, 2];

fn run(c: &mut Criterion) {
    let frame = common::crowded_frame(SyntheticConfig::default());
    let mut group = c.benchmark_group("inference");
    group.sample_size(20);
    for batch in BATCHES {
        let (model, label) = common::load_model(batch);
        let pre = Preprocessor::from_spec(&model.card().input).expect("the model's card is valid");
        let input = common::people_crops(&pre, &frame, batch);
        group.throughput(Throughput::Elements(batch as u64));
        for threads in THREADS {
            set_threads(threads);
            let id = match threads {
                1 => BenchmarkId::new(&label, format!("batch{batch}")),
                _ => BenchmarkId::new(&label, format!("batch{batch}-threads{threads}")),
            };
            group.bench_function(id, |b| {
                b.iter(|| black_box(model.run(black_box(&input), batch).expect("the model runs")))
            });
        }
        set_threads(1);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = run
}
criterion_main!(benches);
