//! Writes a gallery file of made-up people in a model's embedding space, for measuring what a
//! large gallery costs the runtime (`benches/footprint.py`): `--identities` people named
//! `synthetic-N`, one embedding each, random unit vectors from a seeded generator. Then opens the
//! file again and prints, as one JSON object, the time to write it and to open it.
//!
//! ```sh
//! cargo run --release --example synthetic_gallery -- MODEL.onnx OUT.gallery \
//!     [--identities 100000] [--seed 0]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use edge_reid::gallery::{EmbeddingSpace, Gallery};
use edge_reid::model::Model;
use rand::{Rng, SeedableRng};

struct Args {
    model: PathBuf,
    out: PathBuf,
    identities: usize,
    seed: u64,
}

fn parse_args() -> Result<Args> {
    let usage = "usage: synthetic_gallery MODEL.onnx OUT.gallery [--identities N] [--seed S]";
    let mut args = std::env::args_os().skip(1);
    let mut parsed = Args {
        model: args.next().context(usage)?.into(),
        out: args.next().context(usage)?.into(),
        identities: 100_000,
        seed: 0,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag:?} needs a value"))?;
        let number: u64 = match value.to_str().map(str::parse) {
            Some(Ok(n)) => n,
            _ => bail!("{flag:?} takes a whole number, not {value:?}"),
        };
        match flag.to_str() {
            Some("--identities") if number > 0 => parsed.identities = number as usize,
            Some("--seed") => parsed.seed = number,
            _ => bail!("unknown option {flag:?}, or a count of 0"),
        }
    }
    Ok(parsed)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let space = EmbeddingSpace::of_model(&Model::load(&args.model, 1)?)?;
    if args.out.exists() {
        bail!("{} exists: give a new file", args.out.display());
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(args.seed);
    let dim = space.dim();
    let mut embeddings = vec![0f32; args.identities * dim];
    for row in embeddings.chunks_exact_mut(dim) {
        row.iter_mut()
            .for_each(|v| *v = rng.random_range(-1.0..1.0));
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let names: Vec<String> = (1..=args.identities)
        .map(|i| format!("synthetic-{i}"))
        .collect();

    let started = Instant::now();
    let mut gallery = Gallery::create(&args.out, space)?;
    gallery.enroll_batch(
        names
            .iter()
            .map(String::as_str)
            .zip(embeddings.chunks_exact(dim)),
    )?;
    let write_s = started.elapsed().as_secs_f64();
    drop(gallery);
    let started = Instant::now();
    let gallery = Gallery::open(&args.out)?;
    let open_s = started.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "identities": gallery.identities(),
        "dim": dim,
        "bytes": std::fs::metadata(&args.out)?.len(),
        "write_s": write_s,
        "open_s": open_s,
    });
    println!("{report}");
    Ok(())
}
