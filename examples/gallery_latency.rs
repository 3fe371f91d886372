//! Gallery search latency through the library ([`Gallery::search`] and [`Gallery::search_batch`],
//! top 5, Euclidean), for `benches/gallery_faiss.py`, which times faiss on the same vectors in the
//! same run and checks both answers against an exact one.
//!
//! Reads row-major little-endian f32 files of dimension `--dim`: the gallery (each row enrolled as
//! an identity of its own, named by its row number, so the answer is comparable with a flat
//! index's nearest rows) and the queries. Times each query alone over `--rounds` rounds, then the
//! queries in batches of `--batch`, and prints one JSON object: the load and enrollment times, the
//! per-query times of each round, and the answer's row numbers per query.
//!
//! ```sh
//! cargo run --release --example gallery_latency -- GALLERY.f32 QUERIES.f32 [--dim 128] \
//!     [--rounds 5] [--batch 8]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use edge_reid::distance::DistanceMetric;
use edge_reid::gallery::{EmbeddingSpace, Gallery, Match, ModelFingerprint};

/// The answer's length.
const TOP: usize = 5;

struct Args {
    gallery: PathBuf,
    queries: PathBuf,
    dim: usize,
    rounds: usize,
    batch: usize,
}

fn parse_args() -> Result<Args> {
    let usage = "usage: gallery_latency GALLERY.f32 QUERIES.f32 [options]";
    let mut args = std::env::args_os().skip(1);
    let mut parsed = Args {
        gallery: args.next().context(usage)?.into(),
        queries: args.next().context(usage)?.into(),
        dim: 128,
        rounds: 5,
        batch: 8,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag:?} needs a value"))?;
        let number: usize = match value.to_str().map(str::parse) {
            Some(Ok(n)) if n > 0 => n,
            _ => bail!("{flag:?} takes a positive whole number, not {value:?}"),
        };
        match flag.to_str() {
            Some("--dim") => parsed.dim = number,
            Some("--rounds") => parsed.rounds = number,
            Some("--batch") => parsed.batch = number,
            _ => bail!("unknown option {flag:?}"),
        }
    }
    Ok(parsed)
}

/// The f32 values of a little-endian file, a whole number of rows of `dim`.
fn read_rows(path: &PathBuf, dim: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() % (4 * dim) != 0 {
        bail!(
            "{} holds {} bytes, not rows of {dim} f32",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The row numbers of an answer (identities are named by their row).
fn rows(answer: &[Match<'_>]) -> Result<Vec<usize>> {
    answer
        .iter()
        .map(|m| m.name[1..].parse().context("an identity named by its row"))
        .collect()
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let embeddings = read_rows(&args.gallery, args.dim)?;
    let queries = read_rows(&args.queries, args.dim)?;
    let n = embeddings.len() / args.dim;

    let dir = tempfile::tempdir()?;
    let space = EmbeddingSpace::new(
        args.dim,
        DistanceMetric::Euclidean,
        ModelFingerprint([0; 32]),
    )?;
    let mut gallery = Gallery::create(&dir.path().join("gallery"), space)?;
    let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let started = Instant::now();
    gallery.enroll_batch(
        names
            .iter()
            .map(String::as_str)
            .zip(embeddings.chunks_exact(args.dim)),
    )?;
    let enroll_s = started.elapsed().as_secs_f64();
    // The first search codes the gallery for the first pass.
    let started = Instant::now();
    gallery.search::<TOP>(&queries[..args.dim], None)?;
    let first_search_s = started.elapsed().as_secs_f64();

    let mut single_ms = Vec::new();
    let mut answers = Vec::new();
    for round in 0..args.rounds {
        let started = Instant::now();
        for query in queries.chunks_exact(args.dim) {
            let answer = gallery.search::<TOP>(query, None)?;
            if round == 0 {
                answers.push(rows(&answer)?);
            }
        }
        let count = queries.len() / args.dim;
        single_ms.push(started.elapsed().as_secs_f64() * 1e3 / count as f64);
    }
    let mut batch_ms = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        for (b, batch) in queries.chunks(args.batch * args.dim).enumerate() {
            for (i, answer) in gallery.search_batch::<TOP>(batch, None)?.iter().enumerate() {
                if rows(answer)? != answers[b * args.batch + i] {
                    bail!(
                        "query {}: the batch's answer is not the single one",
                        b * args.batch + i
                    );
                }
            }
        }
        let count = queries.len() / args.dim;
        batch_ms.push(started.elapsed().as_secs_f64() * 1e3 / count as f64);
    }
    let report = serde_json::json!({
        "rows": n,
        "enroll_s": enroll_s,
        "first_search_s": first_search_s,
        "single_ms_per_query": single_ms,
        "batch": args.batch,
        "batch_ms_per_query": batch_ms,
        "answers": answers,
    });
    println!("{report}");
    Ok(())
}
