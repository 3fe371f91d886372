//! Preprocessing of one crop: `Preprocessor::crop_into` on a person-sized 96x192 region of a
//! 640x480 synthetic camera frame, resized to Market-1501's 128x64 and to the bench model's card
//! size (bilinear resize, normalisation, NCHW write), per crop.
//!
//! `cargo bench -p edge-reid --bench preprocess`; `python3 benches/medians.py` prints the medians.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edge_reid::card::{IMAGENET_MEAN, IMAGENET_STD};
use edge_reid::preprocess::{Framing, Preprocessor, Region};
use edge_reid::source::{FrameSize, SyntheticConfig};

/// A person about 5 m from the camera, box aspect 1:2 as Market-1501's crops.
const PERSON: Region = Region {
    x: 272,
    y: 200,
    width: 96,
    height: 192,
};

fn crop_into(c: &mut Criterion) {
    let frame = common::crowded_frame(SyntheticConfig {
        size: FrameSize::new(640, 480),
        ..SyntheticConfig::default()
    });
    let (model, _) = common::load_model(1);
    let market = Preprocessor::new(128, 64, IMAGENET_MEAN, IMAGENET_STD).expect("valid sizes");
    let card = Preprocessor::from_spec(&model.card().input).expect("the model's card is valid");
    let mut preprocessors = vec![market];
    if (card.height(), card.width()) != (128, 64) {
        preprocessors.push(card);
    }
    let mut group = c.benchmark_group("preprocess");
    group.throughput(Throughput::Elements(1));
    for pre in preprocessors {
        let (height, width) = (pre.height(), pre.width());
        let mut out = vec![0.0; pre.slot_len()];
        let id = BenchmarkId::new("crop_into", format!("{height}x{width}"));
        group.bench_function(id, |b| {
            b.iter(|| {
                pre.crop_into(
                    black_box(&frame.image),
                    black_box(PERSON),
                    Framing::PersonBox,
                    &mut out,
                )
                .expect("the region lies inside the frame");
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = crop_into
}
criterion_main!(benches);
