//! Per-crop latency of a model through the library's own path ([`Model::load`], [`Model::run`],
//! [`set_threads`]), for `benches/compare.py`, which times onnxruntime on the same file
//! and the same crops in the same run.
//!
//! The crops are the people of the synthetic camera's first crowded frame, cut and normalised by
//! the model's [`Preprocessor`] as the runtime does, in turn until there are `--crops` of them;
//! `--write-crops FILE.npy` also writes them (`[n, 3, H, W]` f32) for the other runtime. One round
//! runs every crop once, `--batch` crops per call (default 1; a call's matrix products split over
//! the threads), or with `--side-by-side` all of them in one [`Model::run_crops`] (one batch per
//! thread at a time); each round's time per crop is printed, with the load time, as one JSON
//! object:
//!
//! ```sh
//! cargo run --release --example model_latency -- MODEL.onnx [--threads 1] [--rounds 20] \
//!     [--crops 16] [--batch 1] [--write-crops crops.npy] [--side-by-side]
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use edge_reid::model::{set_threads, Model};
use edge_reid::preprocess::Preprocessor;
use edge_reid::source::SyntheticConfig;

struct Args {
    model: PathBuf,
    threads: usize,
    rounds: usize,
    crops: usize,
    batch: usize,
    write_crops: Option<PathBuf>,
    side_by_side: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args_os().skip(1);
    let mut parsed = Args {
        model: args
            .next()
            .context("usage: model_latency MODEL.onnx [options]")?
            .into(),
        threads: 1,
        rounds: 20,
        crops: 16,
        batch: 1,
        write_crops: None,
        side_by_side: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--side-by-side" {
            parsed.side_by_side = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag:?} needs a value"))?;
        let number = || -> Result<usize> {
            let text = value.to_str().unwrap_or_default();
            match text.parse() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{flag:?} takes a positive whole number, not {value:?}"),
            }
        };
        match flag.to_str() {
            Some("--threads") => parsed.threads = number()?,
            Some("--rounds") => parsed.rounds = number()?,
            Some("--crops") => parsed.crops = number()?,
            Some("--batch") => parsed.batch = number()?,
            Some("--write-crops") => parsed.write_crops = Some(value.into()),
            _ => bail!("unknown option {flag:?}"),
        }
    }
    Ok(parsed)
}

/// `values` as a NumPy `.npy` file (format 1.0, little-endian f32, C order) of `shape`.
fn write_npy(path: &PathBuf, shape: [usize; 4], values: &[f32]) -> Result<()> {
    let dims = shape.map(|d| d.to_string()).join(", ");
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces to 64 bytes, then '\n'.
    let used = 10 + header.len() + 1;
    header.push_str(&" ".repeat(used.next_multiple_of(64) - used));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(u16::try_from(header.len())?.to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    set_threads(args.threads);
    let started = Instant::now();
    let model = Model::load(&args.model, args.batch)?;
    let load_s = started.elapsed().as_secs_f64();

    let pre = Preprocessor::from_spec(&model.card().input)?;
    let frame = common::crowded_frame(SyntheticConfig::default());
    let crops = common::people_crops(&pre, &frame, args.crops);
    if let Some(path) = &args.write_crops {
        let input = &model.card().input;
        write_npy(path, [args.crops, 3, input.height, input.width], &crops)?;
    }

    // One round of warm-up, then the measured rounds.
    let mut rounds_ms = Vec::with_capacity(args.rounds);
    for round in 0..=args.rounds {
        let started = Instant::now();
        if args.side_by_side {
            std::hint::black_box(model.run_crops(&crops, args.crops)?);
        } else {
            for batch in crops.chunks(args.batch * pre.slot_len()) {
                std::hint::black_box(model.run(batch, batch.len() / pre.slot_len())?);
            }
        }
        if round > 0 {
            rounds_ms.push(started.elapsed().as_secs_f64() * 1e3 / args.crops as f64);
        }
    }
    let report = serde_json::json!({
        "load_s": load_s,
        "threads": args.threads,
        "side_by_side": args.side_by_side,
        "crops": args.crops,
        "batch": args.batch,
        "ms_per_crop": rounds_ms,
    });
    println!("{report}");
    Ok(())
}
