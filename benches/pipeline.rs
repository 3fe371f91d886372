//! The whole per-frame path: one 640x360 frame of the default synthetic camera with its three
//! people through `Pipeline::process` (crop by the true boxes, preprocess, the bench model at the
//! CLI's default batch 1, top-5 search of a 400-embedding gallery, observation events), as
//! `edge-reid run --synthetic` does minus rendering and writing the events. Per frame.
//!
//! `cargo bench -p edge-reid --bench pipeline`; the id carries the model's file stem and input
//! size, e.g. `pipeline/edge-reid-64x32/3-people`.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edge_reid::detect::Proposer;
use edge_reid::gallery::{EmbeddingSpace, Gallery};
use edge_reid::pipeline::{Pipeline, Recognizer};
use edge_reid::source::SyntheticConfig;

/// The gallery: identities and embeddings per identity.
const IDENTITIES: usize = 100;
const PER_IDENTITY: usize = 4;

fn process(c: &mut Criterion) {
    let config = SyntheticConfig::default();
    let frame = common::crowded_frame(config);
    let (model, label) = common::load_model(1);
    let recognizer = Recognizer::new(model, None, 0.0).expect("an ar_reid model");
    let space = EmbeddingSpace::of_model(recognizer.model()).expect("a model with an embedding");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut gallery =
        Gallery::create(&dir.path().join("bench.gallery"), space).expect("a new gallery");
    let embeddings = common::unit_embeddings(IDENTITIES * PER_IDENTITY, space.dim(), 1);
    let names: Vec<String> = (0..IDENTITIES).map(|i| format!("person-{i:03}")).collect();
    gallery
        .enroll_batch(
            names
                .iter()
                .map(String::as_str)
                .zip(embeddings.chunks_exact(PER_IDENTITY * space.dim())),
        )
        .expect("the gallery takes the embeddings");
    let mut pipeline = Pipeline::new(recognizer, Some(gallery), Proposer::Truth, None);

    let mut group = c.benchmark_group("pipeline");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    let id = BenchmarkId::new(label, format!("{}-people", config.people));
    group.bench_function(id, |b| {
        b.iter(|| {
            let observations = pipeline
                .process(black_box(&frame), "bench")
                .expect("the pipeline processes the frame");
            assert_eq!(observations.len(), config.people as usize);
            black_box(observations)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = process
}
criterion_main!(benches);
