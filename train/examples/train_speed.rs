//! Training-step speed of the multi-task network on the CPU, phase by phase, to compare with
//! `train/bench/pytorch_speed.py`: the same step as `edge-reid-train fit` (train-mode forward, the
//! Kendall-weighted attribute + triplet loss, backward, Adam) on a fixed P x K batch of 128x64
//! images, plus the eval-mode forward, for the paper's network (`NetConfig::paper`) with each
//! backbone and head asked for. Prints the median over the timed steps.
//!
//!     cargo run --release -p edge-reid-train --example train_speed -- --backbone small resnet18
//!     cargo run --release -p edge-reid-train --example train_speed -- --backbone small --head sa

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use clap::Parser;
use edge_reid::attributes::ATTRIBUTES;
use edge_reid_train::loss::{attribute_loss, triplet_loss, TripletMining};
use edge_reid_train::model::{Backbone, HeadKind, NetConfig};
use edge_reid_train::optim::{Adam, AdamConfig};
use edge_reid_train::run::Trainable;

#[derive(Parser)]
struct Args {
    /// Backbones to time.
    #[arg(long, num_args = 1.., default_values = ["small", "resnet18"])]
    backbone: Vec<Backbone>,
    /// Attribute heads to time (each with each backbone).
    #[arg(long, num_args = 1.., default_values = ["baseline"])]
    head: Vec<HeadKind>,
    /// Identities per batch.
    #[arg(long, default_value_t = 16)]
    p: usize,
    /// Images per identity.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Leave glibc's allocator as it is instead of `malloc::retain_freed_memory`, as the
    /// `edge-reid-train` binary sets it.
    #[arg(long)]
    default_malloc: bool,
}

/// Median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per phase of one training step: forward + loss, backward, optimizer; then eval forward.
fn time_net(backbone: Backbone, head: HeadKind, args: &Args) -> Result<[f64; 4]> {
    let dev = Device::Cpu;
    let cfg = NetConfig::paper(backbone, head, 128, false, (128, 64));
    let t = Trainable::new(&cfg, 0, &dev)?;
    let mut adam = Adam::new(&t.varmap, AdamConfig::default())?;
    let n = args.p * args.k;
    let x = Tensor::randn(0f32, 1., (n, 3, cfg.input_height, cfg.input_width), &dev)?;
    let ids: Vec<u32> = (0..n as u32).map(|i| i / args.k as u32).collect();
    let targets: Vec<u32> = (0..n)
        .flat_map(|r| {
            ATTRIBUTES
                .iter()
                .map(move |a| ((r * 7) % a.classes()) as u32)
        })
        .collect();
    let targets = Tensor::from_vec(targets, (n, ATTRIBUTES.len()), &dev)?;
    let mut phases: [Vec<f64>; 4] = Default::default();
    for step in 0..args.warmup + args.steps {
        let start = Instant::now();
        let out = t.net.forward_t(&x, true)?;
        let l_ar = attribute_loss(&out.attributes, &targets)?;
        let l_id = triplet_loss(&out.embedding, &ids, 0.3, TripletMining::All)?;
        let loss = t.kendall.combine(&l_ar, &l_id)?;
        let forward = Instant::now();
        let grads = loss.backward()?;
        let backward = Instant::now();
        adam.step(&grads)?;
        let optim = Instant::now();
        let eval = t.net.forward_t(&x, false)?;
        eval.embedding.to_vec2::<f32>()?;
        let done = Instant::now();
        if step >= args.warmup {
            let spans = [
                forward - start,
                backward - forward,
                optim - backward,
                done - optim,
            ];
            for (p, s) in phases.iter_mut().zip(spans) {
                p.push(s.as_secs_f64());
            }
        }
    }
    Ok(phases.map(|mut p| median(&mut p)))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.default_malloc {
        edge_reid_train::malloc::retain_freed_memory();
    }
    let n = (args.p * args.k) as f64;
    println!(
        "batch {} x 3 x 128 x 64, median of {} steps, {} rayon threads, {} malloc",
        n,
        args.steps,
        candle_core::utils::get_num_threads(),
        if args.default_malloc {
            "default"
        } else {
            "retaining"
        }
    );
    println!(
        "{:<10} {:<9} {:>12} {:>12} {:>12} {:>12} {:>14} {:>12}",
        "backbone",
        "head",
        "fwd+loss ms",
        "backward ms",
        "adam ms",
        "step img/s",
        "eval fwd ms",
        "eval img/s"
    );
    for (&backbone, &head) in args
        .backbone
        .iter()
        .flat_map(|b| args.head.iter().map(move |h| (b, h)))
    {
        let [fwd, bwd, opt, eval] = time_net(backbone, head, &args)?;
        let step = fwd + bwd + opt;
        println!(
            "{:<10} {:<9} {:>12.0} {:>12.0} {:>12.0} {:>12.1} {:>14.0} {:>12.1}",
            format!("{backbone:?}").to_lowercase(),
            format!("{head:?}").to_lowercase(),
            fwd * 1e3,
            bwd * 1e3,
            opt * 1e3,
            n / step,
            eval * 1e3,
            n / eval
        );
    }
    Ok(())
}
