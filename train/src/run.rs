//! A training run's folder and what it holds, shared by `fit`, `eval`, `export`, `predict` and the
//! pre-detector: the [`RunConfig`] (`config.json`), the progress ([`RunState`], `state.json`), the
//! network with its variables ([`Trainable`]) and crash-safe checkpoints.
//!
//! A run directory holds:
//! - `config.json`: the [`RunConfig`] (what `eval`, `export` and `--resume` rebuild the net from);
//! - `state.json`: the progress, which names the last epoch and the best one;
//! - `checkpoints/epoch-0007.safetensors` (+ `.optim.safetensors`, the optimiser, for `--resume`):
//!   each epoch's weights, written once and never rewritten;
//! - `last.safetensors` and `best.safetensors`: second names (hard links) of the last epoch's
//!   weights and the best epoch's;
//! - `metrics.csv` and `curve.png`: the per-epoch table and the paper-style Figure 4;
//! - `split.json`: the images trained and validated on ([`SplitFile`]).
//!
//! An epoch is committed by one rename, that of `state.json`: its checkpoint files are written
//! before, and `last`/`best` are pointed at them and older epochs' files removed after. A crash
//! anywhere leaves `state.json` naming complete files of one epoch; `fit --resume` repeats the
//! epoch that was cut short and repairs the links.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::VarMap;
use edge_reid::atomic_file::{link_atomic, replace_with, write_atomic};
use edge_reid::card::{Task, TrainingSummary, IMAGENET_MEAN, IMAGENET_STD};
use serde::{Deserialize, Serialize};

use crate::data::Record;
use crate::evaluate::EvalSet;
use crate::history::EpochRecord;
use crate::loss::{KendallWeights, TripletMining};
use crate::model::init::seeded_var_builder;
use crate::model::{MultiTaskNet, NetConfig};
use crate::TrainError;

/// Everything that defines a training run; saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Dataset root (Market-1501 layout).
    pub data: PathBuf,
    /// The network.
    pub net: NetConfig,
    /// Epochs to train.
    pub epochs: usize,
    /// Identities per batch.
    pub p: usize,
    /// Images per identity.
    pub k: usize,
    /// Junk images appended to each batch as negatives for the person head (0 without one).
    pub junk_per_batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay (not on norms, biases and Kendall weights).
    pub weight_decay: f64,
    /// Epochs of linear warm-up.
    pub warmup_epochs: usize,
    /// Triplet margin.
    pub margin: f64,
    /// Triplet selection.
    pub mining: TripletMining,
    /// Share of training identities held out for validation.
    pub val_fraction: f64,
    /// Seed of the split, the sampler, augmentation and initialisation.
    pub seed: u64,
    /// Epochs without a better validation score before stopping (0: never stop early).
    pub patience: usize,
    /// At most this many batches per epoch (for quick runs); `None` for a full epoch.
    pub max_batches: Option<usize>,
    /// torchvision ResNet18 weights to start from.
    pub pretrained: Option<PathBuf>,
    /// Input normalisation mean (RGB, `[0, 1]` scale).
    pub mean: [f32; 3],
    /// Input normalisation standard deviation.
    pub std: [f32; 3],
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::from("market1501"),
            net: NetConfig::default(),
            epochs: 50,
            p: 16,
            k: 4,
            junk_per_batch: 0,
            lr: 3e-4,
            weight_decay: 5e-4,
            warmup_epochs: 5,
            margin: 0.3,
            mining: TripletMining::All,
            val_fraction: 0.3,
            seed: 0,
            patience: 10,
            max_batches: None,
            pretrained: None,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

impl RunConfig {
    /// Refuses settings that would fail only after an epoch, or train nothing sensible: no
    /// epochs, a learning rate that is not a positive number, a negative weight decay or margin,
    /// a validation share outside (0, 1) (the best checkpoint is chosen on validation).
    pub fn check(&self) -> Result<(), TrainError> {
        let refuse = |what: &str| Err(TrainError::Setting(what.to_string()));
        if self.epochs == 0 {
            return refuse("--epochs must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return refuse(&format!("--lr {} is not a positive number", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return refuse(&format!(
                "--weight-decay {} is not a number >= 0",
                self.weight_decay
            ));
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return refuse(&format!("--margin {} is not a number >= 0", self.margin));
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return refuse(&format!(
                "--val-fraction {} is not in (0, 1): the best checkpoint is chosen on the \
                 validation identities",
                self.val_fraction
            ));
        }
        Ok(())
    }
}

/// Where a run keeps its files.
#[derive(Debug, Clone)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    /// `last.safetensors`: the weights of the last committed epoch.
    pub fn last(&self) -> PathBuf {
        self.0.join("last.safetensors")
    }
    /// `best.safetensors`: the weights of the best committed epoch.
    pub fn best(&self) -> PathBuf {
        self.0.join("best.safetensors")
    }
    /// `checkpoints/`.
    fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    /// `checkpoints/epoch-NNNN.safetensors`: the weights at the end of `epoch`.
    pub fn epoch_weights(&self, epoch: usize) -> PathBuf {
        self.checkpoints()
            .join(format!("epoch-{epoch:04}.safetensors"))
    }
    /// `checkpoints/epoch-NNNN.optim.safetensors`: the optimiser at the end of `epoch`.
    pub fn epoch_optim(&self, epoch: usize) -> PathBuf {
        self.checkpoints()
            .join(format!("epoch-{epoch:04}.optim.safetensors"))
    }

    /// Makes room for an epoch's checkpoint files.
    pub(crate) fn create_checkpoints(&self) -> Result<(), TrainError> {
        let dir = self.checkpoints();
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))
    }

    /// After `state.json` named `last` and `best` as the run's last and best epochs: points
    /// `last.safetensors` and `best.safetensors` at their weights and removes every other file
    /// under `checkpoints/` (older epochs, and what an interrupted epoch left). The optimiser is
    /// kept for the last epoch only.
    pub(crate) fn publish(&self, last: usize, best: usize) -> Result<(), TrainError> {
        let link = |epoch: usize, name: PathBuf| {
            let weights = self.epoch_weights(epoch);
            link_atomic(&weights, &name).map_err(|e| TrainError::Checkpoint {
                path: name,
                message: format!("linking it to {}: {e}", weights.display()),
            })
        };
        link(last, self.last())?;
        link(best, self.best())?;
        let keep = [
            self.epoch_weights(last),
            self.epoch_optim(last),
            self.epoch_weights(best),
        ];
        let dir = self.checkpoints();
        let entries = std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| TrainError::io(&dir, e))?.path();
            if !keep.contains(&path) {
                std::fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
        Ok(())
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.0.join("state.json")
    }
    /// `metrics.csv`.
    pub fn csv(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }
    /// `curve.png`.
    pub fn curve(&self) -> PathBuf {
        self.0.join("curve.png")
    }

    /// `split.json`.
    pub fn split(&self) -> PathBuf {
        self.0.join("split.json")
    }

    /// Reads `config.json`.
    pub fn read_config(&self) -> Result<RunConfig, TrainError> {
        read_json(&self.config())
    }

    /// Reads `state.json`.
    /// The run's progress (`state.json`), checked for consistency (see [`RunState::check`]).
    pub fn read_state(&self) -> Result<RunState, TrainError> {
        let state: RunState = read_json(&self.state())?;
        state.check().map_err(|reason| TrainError::State {
            path: self.state(),
            reason,
        })?;
        Ok(state)
    }

    /// What the run trains: the `task` of its `config.json` (a pre-detector run records
    /// `pre_detector`; a multi-task [`RunConfig`] has no such field and is `ar_reid`).
    pub fn task(&self) -> Result<Task, TrainError> {
        let config: serde_json::Value = read_json(&self.config())?;
        match config.get("task") {
            None => Ok(Task::ArReid),
            Some(task) => serde_json::from_value(task.clone()).map_err(|source| TrainError::Json {
                path: self.config(),
                source,
            }),
        }
    }
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

pub(crate) fn write_json<T: Serialize>(value: &T, path: &Path) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).expect("run files always serialise");
    write_atomic(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))
}

/// The images a run trains and validates on, as paths under its data folder (`split.json`), so
/// that another trainer can use the very same split (`train/bench/pytorch_trainer.py` does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitFile {
    /// Training images (persons, junk and distractors), in the data's order.
    pub train: Vec<PathBuf>,
    /// Validation queries.
    pub val_query: Vec<PathBuf>,
    /// Validation gallery.
    pub val_gallery: Vec<PathBuf>,
    /// Validation junk (scored by the person head only).
    pub val_junk: Vec<PathBuf>,
}

impl SplitFile {
    /// The split of `train` and the validation set `val`, with paths relative to `data`.
    pub fn new(data: &Path, train: &[Record], val: &EvalSet) -> Self {
        let paths = |records: &[Record]| -> Vec<PathBuf> {
            records
                .iter()
                .map(|r| r.path.strip_prefix(data).unwrap_or(&r.path).to_path_buf())
                .collect()
        };
        let (query, rest) = val.records.split_at(val.queries);
        let (gallery, junk) = rest.split_at(val.gallery);
        Self {
            train: paths(train),
            val_query: paths(query),
            val_gallery: paths(gallery),
            val_junk: paths(junk),
        }
    }
}

/// Progress of a run, saved after every epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epoch: usize,
    /// Best validation score so far.
    pub best_score: f64,
    /// Epoch of `best.safetensors`.
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// One record per completed epoch.
    pub history: Vec<EpochRecord>,
}

impl RunState {
    /// Checks what a hand-edited or damaged `state.json` could get wrong: one record per epoch
    /// completed, numbered from 1, and a best epoch among them. Returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.history.len() != self.epoch {
            return Err(format!(
                "{} epochs completed but {} epoch records",
                self.epoch,
                self.history.len()
            ));
        }
        if let Some((i, r)) = self
            .history
            .iter()
            .enumerate()
            .find(|(i, r)| r.epoch != i + 1)
        {
            return Err(format!("record {} is of epoch {}", i + 1, r.epoch));
        }
        if self.epoch > 0 && !(1..=self.epoch).contains(&self.best_epoch) {
            return Err(format!(
                "best epoch {} is not one of the {} epochs completed",
                self.best_epoch, self.epoch
            ));
        }
        Ok(())
    }

    /// Appends the record of the next epoch, keeps the best score and its epoch, and sets
    /// `stopped_early` once `patience` epochs (0: never) have passed without a better score.
    /// Returns whether this epoch is the new best.
    pub fn push(&mut self, record: EpochRecord, patience: usize) -> bool {
        let score = record.val.score();
        let best = self.history.is_empty() || score > self.best_score;
        self.epoch = record.epoch;
        if best {
            self.best_score = score;
            self.best_epoch = record.epoch;
        }
        self.stopped_early = patience > 0 && self.epoch.saturating_sub(self.best_epoch) >= patience;
        self.history.push(record);
        best
    }

    /// The training summary for a model card of the checkpoint saved at the end of `epoch`
    /// (validation metrics of that epoch, in `[0, 1]`).
    pub fn summary(&self, cfg: &RunConfig, epoch: usize) -> TrainingSummary {
        let mut validation = BTreeMap::new();
        if let Some(r) = self.history.iter().find(|r| r.epoch == epoch) {
            let v = &r.val;
            for (key, value) in [
                ("attr_accuracy", v.mean_accuracy()),
                ("balanced_accuracy", v.mean_balanced_accuracy()),
                ("mfc_accuracy", v.mean_mfc_accuracy()),
                ("map", v.map),
                ("rank1", v.rank1),
                ("rank5", v.rank5),
                ("rank10", v.rank10),
                ("score", v.score()),
            ] {
                validation.insert(key.to_string(), value);
            }
            if let Some(p) = v.person_accuracy {
                validation.insert("person_accuracy".to_string(), p);
            }
        }
        TrainingSummary {
            data: cfg.data.display().to_string(),
            epochs: epoch,
            validation,
            ..TrainingSummary::default()
        }
    }
}

/// The network, its variables and the Kendall weights, built from a config.
pub struct Trainable {
    /// All variables (network and Kendall weights).
    pub varmap: VarMap,
    /// The network.
    pub net: MultiTaskNet,
    /// The learned loss weights.
    pub kendall: KendallWeights,
}

impl Trainable {
    /// Builds a network on `device`, initialised from `seed` (the same seed, the same weights).
    pub fn new(net: &NetConfig, seed: u64, device: &Device) -> Result<Self, TrainError> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, device);
        let model = MultiTaskNet::new(net, vb.clone())?;
        let kendall = KendallWeights::new(vb.pp("kendall"))?;
        Ok(Self {
            varmap,
            net: model,
            kendall,
        })
    }

    /// Builds the network and loads `weights` (a checkpoint written by `fit`).
    pub fn load(net: &NetConfig, weights: &Path, device: &Device) -> Result<Self, TrainError> {
        let mut t = Self::new(net, 0, device)?;
        t.varmap.load(weights).map_err(|e| TrainError::Checkpoint {
            path: weights.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(t)
    }
}

/// Saves all variables through a temporary file, so a crash never leaves a half-written checkpoint.
pub(crate) fn save_weights(varmap: &VarMap, path: &Path) -> Result<(), TrainError> {
    save_checkpoint(path, |tmp| varmap.save(tmp))
}

/// Writes the safetensors file `save` writes at the path it is given through a synced temporary
/// file renamed over `path`.
pub(crate) fn save_checkpoint(
    path: &Path,
    save: impl FnOnce(&Path) -> candle_core::Result<()>,
) -> Result<(), TrainError> {
    replace_with(path, |tmp| save(tmp).map_err(std::io::Error::other)).map_err(|e| {
        TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    })
}
