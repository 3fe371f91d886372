//! `edge-reid-train`: render synthetic data, train, evaluate, predict and export the multi-task
//! network. A thin command line over the `edge_reid_train` library.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};
use edge_reid::card::Task;
use edge_reid_train::export::export_run;
use edge_reid_train::export::quantize::quantize_file;
use edge_reid_train::export::Precision;
use edge_reid_train::fit::{self, Progress};
use edge_reid_train::history::EpochRecord;
use edge_reid_train::loss::TripletMining;
use edge_reid_train::model::{Backbone, BranchPool, HeadKind, NetConfig};
use edge_reid_train::run::{RunConfig, RunDir};
use edge_reid_train::{evaluate, pre_detector, predict, synth};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "edge-reid-train",
    version,
    about = "Train the edge-reid multi-task network (person attributes + re-ID) and export it to ONNX",
    after_help = "Examples:
  edge-reid-train synth --out data/synth --identities 1500
  edge-reid-train fit --data data/synth --run runs/resnet18 --device cuda
  edge-reid-train fit --data data/synth --run runs/small --backbone small --epochs 10
  edge-reid-train eval --run runs/resnet18 --split test
  edge-reid-train export --run runs/resnet18 --out models/edge-reid.onnx
  edge-reid-train fit-pre-detector --data data/synth --run runs/pre
  edge-reid-train export --run runs/pre --out models/pre-detector.onnx
  edge-reid-train predict --run runs/resnet18 --test test/ --queries queries/ --out submission/"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a synthetic Market-1501-style dataset (JPEG crops, CSV attributes).
    Synth(SynthArgs),
    /// Train a network on a Market-1501-layout dataset.
    Fit(Box<FitArgs>),
    /// Train the small person-vs-junk pre-detector on a Market-1501-layout dataset.
    FitPreDetector(PreDetectorArgs),
    /// Print the paper's Tables 1 and 2 for a run.
    Eval(EvalArgs),
    /// Export a run's checkpoint to one ONNX file with its model card.
    Export(ExportArgs),
    /// Write an int8 copy of an exported model (standard QDQ ONNX, convolutions in int8),
    /// calibrated on training images of a dataset.
    Quantize(QuantizeArgs),
    /// Write `classification_test.csv` and `reid_test.txt` for a test folder and a queries folder.
    Predict(PredictArgs),
}

#[derive(Args)]
struct SynthArgs {
    /// Output folder (created; must be empty or an earlier synth output).
    #[arg(long)]
    out: PathBuf,
    /// Number of identities (Market-1501 has 1,501).
    #[arg(long, default_value_t = 1500)]
    identities: u32,
    /// Seed: the same seed renders the same dataset.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum MiningArg {
    All,
    BatchHard,
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckpointArg {
    Best,
    Last,
}

#[derive(Args)]
struct FitArgs {
    /// Dataset root in Market-1501 layout.
    #[arg(long)]
    data: PathBuf,
    /// Run folder for checkpoints, metrics.csv and curve.png.
    #[arg(long)]
    run: PathBuf,
    /// Continue the run in --run from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    #[arg(long, value_enum, default_value = "resnet18")]
    backbone: Backbone,
    /// Attribute heads: baseline, convhead or sa (paper section 3.1).
    #[arg(long, value_enum, default_value = "baseline")]
    head: HeadKind,
    /// Input size WxH (width first, as every size on the command line).
    #[arg(long, default_value = "64x128")]
    input_size: String,
    #[arg(long, default_value_t = 128)]
    embedding_dim: usize,
    /// How the convhead and sa branches pool their maps before their dense layer: grid (the
    /// paper's flattened maps, pooled to 4x4 first) or global (one value per channel).
    #[arg(long, value_enum, default_value = "grid")]
    branch_pool: BranchPool,
    /// BatchNorm and LeakyReLU on the embedding [default: true for the baseline head, as the
    /// paper has it, false otherwise].
    #[arg(long)]
    embedding_norm: Option<bool>,
    /// Add the person-vs-junk head, trained with the junk (-1) training images as negatives.
    #[arg(long)]
    person_head: bool,
    /// Junk images appended to each batch when --person-head is on.
    #[arg(long, default_value_t = 8)]
    junk_per_batch: usize,
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    /// Identities per batch.
    #[arg(long, default_value_t = 16)]
    p: usize,
    /// Images per identity in a batch (>= 2).
    #[arg(long, default_value_t = 4)]
    k: usize,
    #[arg(long, default_value_t = 3e-4)]
    lr: f64,
    /// Decoupled weight decay (never on norms, biases and the Kendall weights); 0 disables it.
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f64,
    /// Epochs of linear learning-rate warm-up [default: a tenth of --epochs, rounded].
    #[arg(long)]
    warmup_epochs: Option<usize>,
    #[arg(long, default_value_t = 0.3)]
    margin: f64,
    /// Triplets: all valid triplets with positive loss (the paper) or batch-hard.
    #[arg(long, value_enum, default_value = "all")]
    mining: MiningArg,
    #[arg(long, default_value_t = 0.3)]
    val_fraction: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this many epochs without a better validation score (0: never).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Cap the batches per epoch (quick experiments).
    #[arg(long)]
    max_batches: Option<usize>,
    /// torchvision ResNet18 weights (.safetensors or .pth) to start from.
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// Image decoding and augmentation threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Args)]
struct PreDetectorArgs {
    /// Dataset root in Market-1501 layout (person images and junk `-1` images).
    #[arg(long)]
    data: PathBuf,
    /// Run folder for checkpoints, state.json and metrics.csv.
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Input size WxH.
    #[arg(long, default_value = "32x64")]
    input_size: String,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Images per batch, half persons and half junk.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f64,
    #[arg(long, default_value_t = 1)]
    warmup_epochs: usize,
    #[arg(long, default_value_t = 0.3)]
    val_fraction: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image decoding and augmentation threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    /// The identity-disjoint validation split of the training folder.
    Val,
    /// Market's query/ against bounding_box_test/.
    Test,
}

#[derive(Args)]
struct EvalArgs {
    /// Run folder written by `fit`.
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "val")]
    split: SplitArg,
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointArg,
    /// Dataset root (default: the one the run was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Args)]
struct ExportArgs {
    /// Run folder written by `fit`.
    #[arg(long)]
    run: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointArg,
    /// Store the weights as half floats (half the file; checked against the network within 1% of
    /// each output's scale instead of 1e-4)
    #[arg(long)]
    half: bool,
    /// Image decoding threads for the validation pass that calibrates the unknown distance
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Args)]
struct QuantizeArgs {
    /// The exported model (f32 or half-float weights).
    #[arg(long)]
    model: PathBuf,
    /// Market-1501-layout dataset whose bounding_box_train/ images calibrate the inputs' ranges.
    #[arg(long)]
    data: PathBuf,
    /// The int8 ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// Calibration images, drawn at random (seed 0); all are held in memory while they are run
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=4096))]
    calibration: u64,
}

#[derive(Args)]
struct PredictArgs {
    /// Run folder written by `fit`.
    #[arg(long)]
    run: PathBuf,
    /// Folder of anonymised test images (attributes are predicted for each; it is the re-ID gallery).
    #[arg(long)]
    test: PathBuf,
    /// Folder of query images.
    #[arg(long)]
    queries: PathBuf,
    /// Output folder for classification_test.csv and reid_test.txt.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointArg,
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// An input size `WxH` as (height, width).
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("input size {s:?} is not WxH (for example 64x128)"))?;
    let w: usize = w.parse().with_context(|| format!("bad width in {s:?}"))?;
    let h: usize = h.parse().with_context(|| format!("bad height in {s:?}"))?;
    if w > h {
        bail!(
            "input size {s} is wider than tall: sizes are WxH, width first (did you mean {h}x{w}?)"
        );
    }
    if h < 32 || w < 16 || !h.is_multiple_of(16) || !w.is_multiple_of(16) {
        bail!("input size {s}: height >= 32, width >= 16, both multiples of 16");
    }
    Ok((h, w))
}

fn device(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => Device::new_cuda(0).context(
            "cannot open CUDA device 0 (build with `--features cuda` and check the driver)",
        ),
    }
}

fn checkpoint(run: &RunDir, which: CheckpointArg) -> PathBuf {
    match which {
        CheckpointArg::Best => run.best(),
        CheckpointArg::Last => run.last(),
    }
}

/// A progress bar per epoch and one summary line per epoch.
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches {msg} ({elapsed}<{eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        self.0 = Some(bar);
    }

    fn batch(&mut self, loss: f64, images_per_second: f64) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("loss {loss:.4} {images_per_second:.1} img/s"));
            bar.inc(1);
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord, best: bool) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
        println!(
            "epoch {:>3}: loss {:.4} (ar {:.4} id {:.4}) s_ar {:+.3} s_id {:+.3} | val acc {:.2}% bal {:.2}% mAP {:.2}% r1 {:.2}% | {:.0} img/s {:.0}s{}",
            r.epoch,
            r.loss,
            r.ar_loss,
            r.id_loss,
            r.s_ar,
            r.s_id,
            100.0 * r.val.mean_accuracy(),
            100.0 * r.val.mean_balanced_accuracy(),
            100.0 * r.val.map,
            100.0 * r.val.rank1,
            r.images_per_second,
            r.seconds,
            if best { " *best" } else { "" }
        );
    }
}

fn run_fit(a: &FitArgs) -> Result<()> {
    let (input_height, input_width) = parse_size(&a.input_size)?;
    let cfg = RunConfig {
        data: a.data.clone(),
        net: NetConfig {
            branch_pool: a.branch_pool,
            embedding_norm: a.embedding_norm.unwrap_or(a.head == HeadKind::Baseline),
            ..NetConfig::paper(
                a.backbone,
                a.head,
                a.embedding_dim,
                a.person_head,
                (input_height, input_width),
            )
        },
        epochs: a.epochs,
        p: a.p,
        k: a.k,
        junk_per_batch: if a.person_head { a.junk_per_batch } else { 0 },
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup_epochs: a.warmup_epochs.unwrap_or((a.epochs + 5) / 10),
        margin: a.margin,
        mining: match a.mining {
            MiningArg::All => TripletMining::All,
            MiningArg::BatchHard => TripletMining::BatchHard,
        },
        val_fraction: a.val_fraction,
        seed: a.seed,
        patience: a.patience,
        max_batches: a.max_batches,
        pretrained: a.pretrained.clone(),
        ..RunConfig::default()
    };
    let run = RunDir(a.run.clone());
    if !a.resume && run.state().exists() {
        bail!(
            "{} already holds a run: pass --resume to continue it or choose another --run",
            a.run.display()
        );
    }
    let device = device(a.device)?;
    let summary = fit::fit(&cfg, &run, &device, a.workers, a.resume, &mut Bar(None))
        .with_context(|| format!("training run {}", a.run.display()))?;
    println!(
        "done: {} epochs{}, best validation score {:.4} at epoch {} -> {}",
        summary.epochs,
        if summary.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        summary.best_score,
        summary.best_epoch,
        run.best().display()
    );
    Ok(())
}

fn run_eval(a: &EvalArgs) -> Result<()> {
    let run = RunDir(a.run.clone());
    let split = match a.split {
        SplitArg::Val => evaluate::Split::Validation,
        SplitArg::Test => evaluate::Split::Test,
    };
    let weights = checkpoint(&run, a.checkpoint);
    let context = || format!("evaluating {}", a.run.display());
    match run.task()? {
        Task::ArReid => {
            let cfg = run.read_config()?;
            let data = a.data.clone().unwrap_or_else(|| cfg.data.clone());
            let report = evaluate::eval_run(&cfg, &weights, &data, split, a.workers)
                .with_context(context)?;
            print!("{report}");
        }
        Task::PreDetector => {
            let cfg = pre_detector::PreDetectorRun::read(&run)?;
            let data = a.data.clone().unwrap_or_else(|| cfg.data.clone());
            let scores = pre_detector::eval_pre_detector(&cfg, &weights, &data, split, a.workers)
                .with_context(context)?;
            print!("{scores}");
        }
    }
    Ok(())
}

fn run_fit_pre_detector(a: &PreDetectorArgs) -> Result<()> {
    let (input_height, input_width) = parse_size(&a.input_size)?;
    let cfg = pre_detector::PreDetectorRun {
        data: a.data.clone(),
        input_height,
        input_width,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup_epochs: a.warmup_epochs,
        val_fraction: a.val_fraction,
        seed: a.seed,
        ..pre_detector::PreDetectorRun::default()
    };
    let run = RunDir(a.run.clone());
    if run.state().exists() {
        bail!(
            "{} already holds a run: choose another --run",
            a.run.display()
        );
    }
    let device = device(a.device)?;
    let mut report = |e: &pre_detector::PreDetectorEpoch, best: bool| {
        println!(
            "epoch {:>3}: loss {:.4} train acc {:.2}% | val precision {:.2}% recall {:.2}% junk rejected {:.2}% | {:.0} img/s {:.0}s{}",
            e.epoch,
            e.loss,
            100.0 * e.train_accuracy,
            100.0 * e.val.precision(),
            100.0 * e.val.recall(),
            100.0 * e.val.junk_rejection(),
            e.images_per_second,
            e.seconds,
            if best { " *best" } else { "" }
        );
    };
    let state = pre_detector::fit_pre_detector(&cfg, &run, &device, a.workers, &mut report)
        .with_context(|| format!("training pre-detector run {}", a.run.display()))?;
    if let Some(best) = state.best() {
        println!(
            "done: best validation balanced accuracy {:.2}% at epoch {} -> {}",
            100.0 * best.val.balanced_accuracy(),
            best.epoch,
            run.best().display()
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    edge_reid_train::malloc::retain_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        Command::Synth(a) => {
            let cfg = synth::SynthConfig::new(a.out.clone(), a.identities, a.seed);
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("rendering [{bar:30}] {pos}/{len} images ({per_sec})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            let summary = synth::write_dataset(&cfg, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .with_context(|| format!("rendering a synthetic dataset into {}", a.out.display()))?;
            bar.finish_and_clear();
            println!(
                "wrote {} images to {}: {} training identities ({} images, {} junk), {} test identities ({} queries, {} gallery, {} junk, {} distractors)",
                summary.images(),
                a.out.display(),
                summary.train_identities,
                summary.train_images,
                summary.junk_train,
                summary.test_identities,
                summary.query_images,
                summary.gallery_images,
                summary.junk_test,
                summary.distractors
            );
        }
        Command::Fit(a) => run_fit(&a)?,
        Command::FitPreDetector(a) => run_fit_pre_detector(&a)?,
        Command::Eval(a) => run_eval(&a)?,
        Command::Quantize(a) => {
            let count = a.calibration as usize;
            let q = quantize_file(&a.model, &a.data, count, &a.out).with_context(|| {
                format!("quantizing {} to {}", a.model.display(), a.out.display())
            })?;
            let int8 = q.card.int8.as_ref().expect("an int8 card");
            println!(
                "wrote {} (int8 {}; calibrated on {}); outputs within {:.3} of their scale of \
                 the source's on the check images",
                a.out.display(),
                int8.operators.join(", "),
                int8.calibration,
                q.difference
            );
        }
        Command::Export(a) => {
            let run = RunDir(a.run.clone());
            let weights = checkpoint(&run, a.checkpoint);
            let card = match run.task()? {
                Task::ArReid => {
                    let precision = if a.half {
                        Precision::Half
                    } else {
                        Precision::Full
                    };
                    export_run(&run, &weights, &a.out, precision, a.workers)
                }
                Task::PreDetector if a.half => {
                    bail!(
                        "--half is for attribute + re-ID models (a pre-detector is small already)"
                    )
                }
                Task::PreDetector => pre_detector::export_run(&run, &weights, &a.out),
            }
            .with_context(|| format!("exporting {} to {}", a.run.display(), a.out.display()))?;
            let size = std::fs::metadata(&a.out).map_or(0, |m| m.len());
            println!(
                "wrote {} ({}, {} attributes, {}-d embedding, person output: {}, {:.1} kB); \
                 candle and tract agree within {}",
                a.out.display(),
                serde_json::to_string(&card.task)?.trim_matches('"'),
                card.attributes.len(),
                card.embedding.as_ref().map_or(0, |e| e.dim),
                if card.person.is_some() { "yes" } else { "no" },
                size as f64 / 1000.0,
                if a.half {
                    "1% of each output's scale (half-float weights)"
                } else {
                    "1e-4"
                }
            );
            let embedding = card.embedding.as_ref();
            match embedding.and_then(|e| e.unknown_distance.map(|d| (d, e.unknown_gallery_size())))
            {
                Some((d, gallery)) if card.task == Task::ArReid => {
                    let v = &card.training.validation;
                    println!(
                        "unknown distance {d:.4} for {gallery} (validation: {:.2}% of known \
                         people identified, {:.2}% of strangers rejected)",
                        100.0 * v["open_set_identified"],
                        100.0 * v["open_set_rejected"]
                    );
                }
                None if card.task == Task::ArReid => println!(
                    "no unknown distance on the card: the run's dataset {} is not here to \
                     calibrate on (edge-reid names the nearest person unless --max-distance is \
                     given)",
                    card.training.data
                ),
                _ => {}
            }
        }
        Command::Predict(a) => {
            let run = RunDir(a.run.clone());
            let cfg = run.read_config()?;
            let written = predict::predict(
                &cfg,
                &checkpoint(&run, a.checkpoint),
                &a.test,
                &a.queries,
                &a.out,
                a.workers,
            )
            .with_context(|| format!("predicting with {}", a.run.display()))?;
            println!("{written}");
        }
    }
    Ok(())
}
