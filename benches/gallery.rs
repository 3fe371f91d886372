//! Gallery search: `Gallery::search::<MAX_CANDIDATES>` (the pipeline's top-5) of one query over
//! 10k, 100k and 1M enrolled embeddings: 128-d, Euclidean, L2-normalised seeded random vectors
//! spread over 250 identities. Each gallery is filled with one `enroll_batch` (one file write) in a
//! temporary folder; the queries cycle through 64 fresh random unit vectors.
//!
//! `cargo bench -p edge-reid --bench gallery`; the median is the time per query.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edge_reid::distance::DistanceMetric;
use edge_reid::events::MAX_CANDIDATES;
use edge_reid::gallery::{EmbeddingSpace, Gallery, ModelFingerprint};

const DIM: usize = 128;
const IDENTITIES: usize = 250;
const QUERIES: usize = 64;
/// Gallery sizes and their labels.
const SIZES: [(usize, &str); 3] = [(10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")];

/// A gallery of `entries` random embeddings over [`IDENTITIES`] identities in `dir`.
fn filled_gallery(dir: &std::path::Path, entries: usize) -> Gallery {
    let space = EmbeddingSpace::new(DIM, DistanceMetric::Euclidean, ModelFingerprint([7; 32]))
        .expect("a valid embedding space");
    let mut gallery =
        Gallery::create(&dir.join(format!("{entries}.gallery")), space).expect("a new gallery");
    let embeddings = common::unit_embeddings(entries, DIM, entries as u64);
    let names: Vec<String> = (0..IDENTITIES).map(|i| format!("person-{i:03}")).collect();
    let per_identity = entries.div_ceil(IDENTITIES) * DIM;
    gallery
        .enroll_batch(
            names
                .iter()
                .map(String::as_str)
                .zip(embeddings.chunks(per_identity)),
        )
        .expect("the gallery takes the embeddings");
    gallery
}

fn search(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let queries = common::unit_embeddings(QUERIES, DIM, 0);
    let mut group = c.benchmark_group("gallery");
    group.throughput(Throughput::Elements(1));
    for (entries, label) in SIZES {
        let started = Instant::now();
        let gallery = filled_gallery(dir.path(), entries);
        eprintln!(
            "gallery: {label} entries over {} identities filled in {:.1} s",
            gallery.identities(),
            started.elapsed().as_secs_f64()
        );
        if entries >= 1_000_000 {
            group.sample_size(10);
        }
        let mut next = queries.chunks_exact(DIM).cycle();
        group.bench_function(BenchmarkId::new("search", label), |b| {
            b.iter(|| {
                let query = next.next().expect("the queries cycle");
                black_box(
                    gallery
                        .search::<MAX_CANDIDATES>(black_box(query), None)
                        .expect("a valid query")
                        .len(),
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = search
}
criterion_main!(benches);
