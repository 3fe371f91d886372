//! The pre-detector: a tiny person-vs-junk network the runtime runs on
//! every crop before the AR + re-ID model, so background, clutter, body parts seen too close and
//! boxes between two people are dropped for a fraction of the big model's cost.
//!
//! The network ([`PreDetectorNet`]) is a [`crate::model::Backbone::Tiny`] ResNet (same stem and blocks as the main network), global
//! average pooling and one logit (`person`). `fit-pre-detector` trains it with binary
//! cross-entropy on a Market-layout folder's person images against its junk (`-1`) images, in
//! batches that hold both equally (junk is the rarer class, so it is cycled), with the same
//! augmentation, Adam and warm-up + cosine schedule as `fit`. Validation uses the same seeded
//! identity-disjoint split as `fit`; the test scores use query/ and bounding_box_test/, where
//! Market's distractors (`0000`: real people, badly framed) are reported apart from persons and
//! junk. A run directory holds `config.json` (a [`PreDetectorRun`], marked `"task":
//! "pre_detector"`), `state.json`, `metrics.csv` and the checkpoints as `fit` keeps them
//! ([`crate::run`]).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use edge_reid::atomic_file::write_atomic;
use edge_reid::card::{ModelCard, Task, TrainingSummary, IMAGENET_MEAN, IMAGENET_STD};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::data::{
    in_order, split_train_val, AttributeTable, Augment, BatchLoader, LoaderConfig, MarketDataset,
    Record,
};
use crate::evaluate::{test_split, Split};
use crate::loss::{person_loss, person_targets};
use crate::model::init::seeded_var_builder;
use crate::model::{images, PreDetectorNet};
use crate::optim::{Adam, AdamConfig};
use crate::run::{read_json, save_weights, write_json, RunDir};
use crate::schedule::Schedule;
use crate::TrainError;

/// Images per forward pass when scoring.
const SCORE_BATCH: usize = 256;

/// Everything that defines a pre-detector run; saved as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreDetectorRun {
    /// Always [`Task::PreDetector`]: tells `eval` and `export` what kind of run a folder holds.
    pub task: Task,
    /// Dataset root (Market-1501 layout, with junk `-1` images in bounding_box_train/).
    pub data: PathBuf,
    /// Input height.
    pub input_height: usize,
    /// Input width.
    pub input_width: usize,
    /// Epochs (one epoch shows every training person image once).
    pub epochs: usize,
    /// Images per batch, half persons and half junk.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay (not on norms and biases).
    pub weight_decay: f64,
    /// Epochs of linear warm-up.
    pub warmup_epochs: usize,
    /// Share of training identities (and junk images) held out for validation.
    pub val_fraction: f64,
    /// Seed of the split, the batches, augmentation and initialisation.
    pub seed: u64,
    /// Input normalisation mean.
    pub mean: [f32; 3],
    /// Input normalisation standard deviation.
    pub std: [f32; 3],
}

impl PreDetectorRun {
    /// Reads the `config.json` of a pre-detector run.
    pub fn read(run: &RunDir) -> Result<Self, TrainError> {
        read_json(&run.config())
    }
}

impl Default for PreDetectorRun {
    /// 64x32 crops (a quarter of the main model's pixels), 20 epochs of 64 images at 1e-3.
    fn default() -> Self {
        Self {
            task: Task::PreDetector,
            data: PathBuf::from("market1501"),
            input_height: 64,
            input_width: 32,
            epochs: 20,
            batch: 64,
            lr: 1e-3,
            weight_decay: 5e-4,
            warmup_epochs: 1,
            val_fraction: 0.3,
            seed: 0,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

/// Person-vs-junk decisions at logit 0 (probability 0.5) against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Persons kept.
    pub true_positives: usize,
    /// Persons dropped.
    pub false_negatives: usize,
    /// Junk kept.
    pub false_positives: usize,
    /// Junk dropped.
    pub true_negatives: usize,
    /// Distractors (badly framed people, test split only) seen and dropped.
    pub distractors: usize,
    /// Of those, how many were dropped.
    pub distractors_dropped: usize,
}

impl Detection {
    /// Counts the decisions `logits` (one per record) make on `records`.
    pub fn count(records: &[Record], logits: &[f32]) -> Self {
        let mut d = Self::default();
        for (record, &logit) in records.iter().zip(logits) {
            let kept = logit > 0.0;
            match record.identity {
                i if i > 0 && kept => d.true_positives += 1,
                i if i > 0 => d.false_negatives += 1,
                0 => {
                    d.distractors += 1;
                    d.distractors_dropped += usize::from(!kept);
                }
                _ if kept => d.false_positives += 1,
                _ => d.true_negatives += 1,
            }
        }
        d
    }

    /// Share of kept crops that are persons.
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Share of persons kept.
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Share of junk dropped.
    pub fn junk_rejection(&self) -> f64 {
        ratio(
            self.true_negatives,
            self.true_negatives + self.false_positives,
        )
    }

    /// Mean of recall and junk rejection: the score the best checkpoint is kept by.
    pub fn balanced_accuracy(&self) -> f64 {
        0.5 * (self.recall() + self.junk_rejection())
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let persons = self.true_positives + self.false_negatives;
        let junk = self.true_negatives + self.false_positives;
        writeln!(
            f,
            "person vs junk at p = 0.5 ({persons} persons, {junk} junk)"
        )?;
        writeln!(f, "precision        {:>7.2}%", 100.0 * self.precision())?;
        writeln!(f, "recall           {:>7.2}%", 100.0 * self.recall())?;
        writeln!(
            f,
            "junk rejected    {:>7.2}%",
            100.0 * self.junk_rejection()
        )?;
        writeln!(
            f,
            "balanced acc.    {:>7.2}%",
            100.0 * self.balanced_accuracy()
        )?;
        if self.distractors > 0 {
            writeln!(
                f,
                "distractors (badly framed people) dropped: {:.2}% of {}",
                100.0 * ratio(self.distractors_dropped, self.distractors),
                self.distractors
            )?;
        }
        Ok(())
    }
}

/// One epoch of a pre-detector run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreDetectorEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy (on augmented images).
    pub train_accuracy: f64,
    /// Validation decisions.
    pub val: Detection,
    /// Training throughput.
    pub images_per_second: f64,
    /// Wall time of the epoch with validation.
    pub seconds: f64,
}

/// A run's history, saved after every epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreDetectorState {
    /// Every epoch so far.
    pub history: Vec<PreDetectorEpoch>,
    /// Epoch of `best.safetensors` (0 before the first epoch).
    pub best_epoch: usize,
}

impl PreDetectorState {
    /// The epoch of `best.safetensors`.
    pub fn best(&self) -> Option<&PreDetectorEpoch> {
        self.history.iter().find(|e| e.epoch == self.best_epoch)
    }
}

/// Trains a pre-detector into `run`, calling `report` after every epoch.
pub fn fit_pre_detector(
    cfg: &PreDetectorRun,
    run: &RunDir,
    device: &Device,
    workers: usize,
    report: &mut dyn FnMut(&PreDetectorEpoch, bool),
) -> Result<PreDetectorState, TrainError> {
    if cfg.batch < 2 || !cfg.batch.is_multiple_of(2) {
        return Err(TrainError::Setting(format!(
            "batch {} must be even and at least 2 (half persons, half junk)",
            cfg.batch
        )));
    }
    let ds = MarketDataset::open(&cfg.data)?;
    let (train, val) = train_val(cfg, &ds)?;
    let persons: Vec<usize> = indices(&train, |r| r.is_person());
    let junk: Vec<usize> = indices(&train, |r| r.identity < 0);
    if persons.is_empty() || junk.is_empty() {
        return Err(TrainError::Setting(format!(
            "{}: the pre-detector needs person and junk (-1) images in bounding_box_train/ \
             (found {} and {})",
            cfg.data.display(),
            persons.len(),
            junk.len()
        )));
    }
    run.create_checkpoints()?;
    write_json(cfg, &run.config())?;

    let varmap = VarMap::new();
    let net = PreDetectorNet::new(
        cfg.input_height,
        cfg.input_width,
        seeded_var_builder(&varmap, cfg.seed, device),
    )?;
    let mut adam = Adam::new(
        &varmap,
        AdamConfig {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..AdamConfig::default()
        },
    )?;
    let half = cfg.batch / 2;
    let batches = (persons.len() / half).max(1);
    let schedule = Schedule::new(cfg.lr, cfg.warmup_epochs * batches, cfg.epochs * batches);
    let mut state = PreDetectorState::default();
    let mut junk_stream = Cycle::new(junk, cfg.seed);
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        let mut rng = Pcg64::seed_from_u64(cfg.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9));
        let mut order = persons.clone();
        order.shuffle(&mut rng);
        let plan: Vec<Vec<usize>> = order
            .chunks_exact(half)
            .take(batches)
            .map(|p| p.iter().copied().chain(junk_stream.take(half)).collect())
            .collect();
        let loader = BatchLoader::new(
            &train,
            &ds.attributes,
            plan,
            loader_config(cfg, Some(Augment::default()), workers, epoch as u64),
        )?;
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        for (i, batch) in loader.enumerate() {
            let mut batch = batch?;
            adam.config.lr = schedule.lr((epoch - 1) * batches + i);
            let x = images(&mut batch, device)?;
            let logits = net.forward_t(&x, true)?;
            let loss = person_loss(&logits, &person_targets(&batch, device)?)?;
            adam.step(&loss.backward()?)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let logits = logits.flatten_all()?.to_vec1::<f32>()?;
            correct += logits
                .iter()
                .zip(&batch.person)
                .filter(|(l, p)| (**l > 0.0) == **p)
                .count();
            seen += batch.n;
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let val_logits = logits(&net, cfg, &val, &ds.attributes, workers, device)?;
        let record = PreDetectorEpoch {
            epoch,
            lr: adam.config.lr,
            loss: loss_sum / batches as f64,
            train_accuracy: ratio(correct, seen),
            val: Detection::count(&val, &val_logits),
            images_per_second: seen as f64 / train_seconds,
            seconds: started.elapsed().as_secs_f64(),
        };
        let best = state
            .best()
            .is_none_or(|b| record.val.balanced_accuracy() > b.val.balanced_accuracy());
        if best {
            state.best_epoch = epoch;
        }
        report(&record, best);
        state.history.push(record);
        // As in `fit`: the epoch's weights, the state that names them, then the links.
        save_weights(&varmap, &run.epoch_weights(epoch))?;
        write_json(&state, &run.state())?;
        run.publish(epoch, state.best_epoch)?;
        write_csv(&state.history, &run.csv())?;
    }
    Ok(state)
}

/// The run's training records and the validation records it is scored on: the held-out persons
/// and junk of the same seeded identity-disjoint split as `fit` (distractors, if any, left out).
fn train_val(
    cfg: &PreDetectorRun,
    ds: &MarketDataset,
) -> Result<(Vec<Record>, Vec<Record>), TrainError> {
    let split = split_train_val(&ds.train, cfg.val_fraction, cfg.seed)?;
    let val = split.val.into_iter().filter(|r| r.identity != 0).collect();
    Ok((split.train, val))
}

/// The records of `records` that `keep` selects, as indices.
fn indices(records: &[Record], keep: impl Fn(&Record) -> bool) -> Vec<usize> {
    (0..records.len()).filter(|&i| keep(&records[i])).collect()
}

/// An endless stream over `items`, reshuffled (seeded) on every pass.
struct Cycle {
    items: Vec<usize>,
    next: usize,
    rng: Pcg64,
}

impl Cycle {
    fn new(items: Vec<usize>, seed: u64) -> Self {
        Self {
            next: items.len(),
            items,
            rng: Pcg64::seed_from_u64(seed.wrapping_add(1)),
        }
    }

    fn take(&mut self, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| {
                if self.next == self.items.len() {
                    self.items.shuffle(&mut self.rng);
                    self.next = 0;
                }
                self.next += 1;
                self.items[self.next - 1]
            })
            .collect()
    }
}

fn loader_config(
    cfg: &PreDetectorRun,
    augment: Option<Augment>,
    workers: usize,
    epoch: u64,
) -> LoaderConfig {
    LoaderConfig {
        height: cfg.input_height,
        width: cfg.input_width,
        mean: cfg.mean,
        std: cfg.std,
        augment,
        workers: workers.max(1),
        seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch),
    }
}

/// The network's person logit for every record, in order (no augmentation, eval mode).
fn logits(
    net: &PreDetectorNet,
    cfg: &PreDetectorRun,
    records: &[Record],
    table: &AttributeTable,
    workers: usize,
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let loader = BatchLoader::new(
        records,
        table,
        in_order(records.len(), SCORE_BATCH),
        loader_config(cfg, None, workers, 0),
    )?;
    let mut out = Vec::with_capacity(records.len());
    for batch in loader {
        let x = images(&mut batch?, device)?;
        out.extend(net.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

fn write_csv(history: &[PreDetectorEpoch], path: &Path) -> Result<(), TrainError> {
    let mut text = Vec::new();
    let io = |e| TrainError::io(path, e);
    writeln!(
        text,
        "epoch,lr,loss,train_accuracy,val_precision,val_recall,val_junk_rejection,\
         val_balanced_accuracy,images_per_second,seconds"
    )
    .map_err(io)?;
    for e in history {
        writeln!(
            text,
            "{},{:.4e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.1},{:.1}",
            e.epoch,
            e.lr,
            e.loss,
            e.train_accuracy,
            e.val.precision(),
            e.val.recall(),
            e.val.junk_rejection(),
            e.val.balanced_accuracy(),
            e.images_per_second,
            e.seconds
        )
        .map_err(io)?;
    }
    write_atomic(path, &text).map_err(io)
}

/// Loads a pre-detector run's checkpoint and counts its decisions on `data`: the run's validation
/// split, or the test folders (query/ and bounding_box_test/, distractors counted apart).
pub fn eval_pre_detector(
    cfg: &PreDetectorRun,
    checkpoint: &Path,
    data: &Path,
    split: Split,
    workers: usize,
) -> Result<Detection, TrainError> {
    let device = Device::Cpu;
    let net = load(cfg, checkpoint, &device)?;
    let ds = MarketDataset::open(data)?;
    let records: Vec<Record> = match split {
        Split::Validation => train_val(cfg, &ds)?.1,
        Split::Test => {
            let eval = test_split(&ds)?;
            eval.query.iter().chain(&eval.gallery).cloned().collect()
        }
    };
    let logits = logits(&net, cfg, &records, &ds.attributes, workers, &device)?;
    Ok(Detection::count(&records, &logits))
}

/// Builds the network of `cfg` and loads `checkpoint`.
pub fn load(
    cfg: &PreDetectorRun,
    checkpoint: &Path,
    device: &Device,
) -> Result<PreDetectorNet, TrainError> {
    let mut varmap = VarMap::new();
    let net = PreDetectorNet::new(
        cfg.input_height,
        cfg.input_width,
        VarBuilder::from_varmap(&varmap, DType::F32, device),
    )?;
    varmap
        .load(checkpoint)
        .map_err(|e| TrainError::Checkpoint {
            path: checkpoint.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(net)
}

/// Exports a pre-detector run's checkpoint to `out` (verified like every export) with a card whose
/// training summary carries that epoch's validation precision, recall and junk rejection.
pub fn export_run(run: &RunDir, checkpoint: &Path, out: &Path) -> Result<ModelCard, TrainError> {
    let cfg = PreDetectorRun::read(run)?;
    let state: PreDetectorState = read_json(&run.state())?;
    let record = if checkpoint == run.best() {
        state.best()
    } else {
        state.history.last()
    };
    let record = record.ok_or_else(|| {
        TrainError::Setting(format!(
            "{}: the run has no finished epoch",
            run.0.display()
        ))
    })?;
    let net = load(&cfg, checkpoint, &Device::Cpu)?;
    let v = &record.val;
    let training = TrainingSummary {
        data: cfg.data.display().to_string(),
        backbone: "tiny".to_string(),
        head: String::new(),
        epochs: record.epoch,
        validation: [
            ("precision", v.precision()),
            ("recall", v.recall()),
            ("junk_rejection", v.junk_rejection()),
            ("balanced_accuracy", v.balanced_accuracy()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    };
    Ok(crate::export::export_pre_detector_onnx(
        &net, training, cfg.mean, cfg.std, out,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::write_test_dataset;
    use edge_reid::model::Model;

    fn record(identity: i32) -> Record {
        Record {
            path: PathBuf::from("x.jpg"),
            identity,
            camera: 1,
            sequence: 1,
            frame: 0,
        }
    }

    #[test]
    fn counts_decisions_per_class() {
        // Persons: kept, kept, dropped. Junk: kept, dropped, dropped. Distractors: kept, dropped.
        let records: Vec<Record> = [3, 4, 5, -1, -1, -1, 0, 0].map(record).to_vec();
        let logits = [2.0, 0.5, -1.0, 0.1, -3.0, -0.2, 1.0, -1.0];
        let d = Detection::count(&records, &logits);
        assert_eq!(
            (
                d.true_positives,
                d.false_negatives,
                d.false_positives,
                d.true_negatives
            ),
            (2, 1, 1, 2)
        );
        assert_eq!((d.distractors, d.distractors_dropped), (2, 1));
        assert!((d.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((d.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((d.junk_rejection() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(Detection::default().precision(), 0.0);
    }

    #[test]
    fn the_junk_stream_visits_every_item_once_per_pass() {
        let mut cycle = Cycle::new((0..5).collect(), 1);
        for _ in 0..3 {
            let mut pass = cycle.take(5);
            pass.sort_unstable();
            assert_eq!(pass, [0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn trains_evaluates_and_exports_a_pre_detector() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_test_dataset(&data, 12, 4, 24);

        let cfg = PreDetectorRun {
            data: data.clone(),
            input_height: 32,
            input_width: 16,
            epochs: 2,
            batch: 8,
            val_fraction: 0.4,
            ..PreDetectorRun::default()
        };
        let run = RunDir(dir.path().join("run"));
        let mut seen = Vec::new();
        let state =
            fit_pre_detector(&cfg, &run, &Device::Cpu, 1, &mut |e, _| seen.push(e.epoch)).unwrap();
        assert_eq!(seen, [1, 2]);
        assert_eq!(run.task().unwrap(), Task::PreDetector);
        assert_eq!(PreDetectorRun::read(&run).unwrap(), cfg);
        let best = state.best().unwrap();
        let val = best.val;
        assert!(val.true_positives + val.false_negatives > 0, "{val:?}");
        assert!(val.true_negatives + val.false_positives > 0, "{val:?}");
        assert_eq!(val.distractors, 0, "validation holds no distractors");
        assert_eq!(
            std::fs::read_to_string(run.csv()).unwrap().lines().count(),
            3
        );

        // Evaluating the best checkpoint on the validation split reproduces its epoch's counts.
        let again = eval_pre_detector(&cfg, &run.best(), &data, Split::Validation, 1).unwrap();
        assert_eq!(again, val);
        let test = eval_pre_detector(&cfg, &run.best(), &data, Split::Test, 1).unwrap();
        assert_eq!(test.distractors, 4);

        let onnx = dir.path().join("pre.onnx");
        let card = export_run(&run, &run.best(), &onnx).unwrap();
        assert_eq!(card.training.epochs, best.epoch);
        assert_eq!(card.training.validation["recall"], val.recall());
        let model = Model::load(&onnx, 1).unwrap();
        assert_eq!(model.card().task, Task::PreDetector);
    }
}
