//! The training loop behind `edge-reid-train fit`: P x K batches (plus junk images when the net has
//! a person head), the paper's multi-task loss with Kendall weighting, Adam with warm-up and cosine
//! decay, per-epoch validation, a CSV and a curve per run, checkpoints with `--resume`, the best
//! checkpoint kept by the combined validation score, and early stopping.
//! The run's files are [`crate::run`]'s; the best checkpoint is the epoch with the best
//! [`Validation::score`].

use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::data::{
    AttributeTable, Augment, BatchLoader, LoaderConfig, MarketDataset, PkConfig, PkSampler, Record,
};
use crate::evaluate::{run_split, EvalSet, Predictor};
use crate::history::{self, EpochRecord, Validation};
use crate::loss::{attribute_loss, person_loss, person_targets, triplet_loss};
use crate::model::{images, load_pretrained};
use crate::optim::{Adam, AdamConfig};
use crate::run::{
    save_checkpoint, save_weights, write_json, RunConfig, RunDir, RunState, SplitFile, Trainable,
};
use crate::schedule::Schedule;
use crate::TrainError;

/// Reports progress to the caller (the binary draws a progress bar; tests stay quiet).
pub trait Progress {
    /// A new epoch of `batches` batches starts.
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize);
    /// One batch is done.
    fn batch(&mut self, loss: f64, images_per_second: f64);
    /// The epoch is done and validated.
    fn epoch_end(&mut self, record: &EpochRecord, best: bool);
}

/// A [`Progress`] that reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn epoch_start(&mut self, _: usize, _: usize, _: usize) {}
    fn batch(&mut self, _: f64, _: f64) {}
    fn epoch_end(&mut self, _: &EpochRecord, _: bool) {}
}

/// Summary of a finished run.
#[derive(Debug, Clone)]
pub struct FitSummary {
    /// Epochs completed in total.
    pub epochs: usize,
    /// Best validation score and its epoch.
    pub best_score: f64,
    /// Epoch of the best checkpoint.
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Data prepared for a run: the training records, their labels and the validation set.
struct Prepared {
    train: Vec<Record>,
    table: AttributeTable,
    val: EvalSet,
}

fn prepare(cfg: &RunConfig) -> Result<Prepared, TrainError> {
    let ds = MarketDataset::open(&cfg.data)?;
    let split = run_split(cfg, &ds)?;
    let val = EvalSet::validation(cfg, &ds, &split)?;
    Ok(Prepared {
        train: split.train,
        table: ds.attributes,
        val,
    })
}

/// Trains (or resumes, when `resume` is set and the run has a state) the run in `run`.
pub fn fit(
    cfg: &RunConfig,
    run: &RunDir,
    device: &Device,
    workers: usize,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<FitSummary, TrainError> {
    cfg.check()?;
    run.create_checkpoints()?;
    let mut trainable = Trainable::new(&cfg.net, cfg.seed, device)?;
    let mut state = RunState::default();
    let prepared = prepare(cfg)?;
    if cfg.junk_per_batch > 0 && !cfg.net.person_head {
        return Err(TrainError::Setting(format!(
            "{} junk images per batch need a net with a person head",
            cfg.junk_per_batch
        )));
    }
    let sampler = PkSampler::new(
        &prepared.train,
        PkConfig {
            p: cfg.p,
            k: cfg.k,
            junk: cfg.junk_per_batch,
            seed: cfg.seed,
        },
    )?;
    let batches_per_epoch = cfg
        .max_batches
        .map_or(sampler.batches_per_epoch(), |m| {
            m.min(sampler.batches_per_epoch())
        })
        .max(1);
    let mut adam = Adam::new(
        &trainable.varmap,
        AdamConfig {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..AdamConfig::default()
        },
    )?;
    if resume && run.state().exists() {
        let saved = run.read_config()?;
        if saved.net != cfg.net {
            return Err(TrainError::Setting(format!(
                "{}: the run was trained with {:?}, not {:?}",
                run.config().display(),
                saved.net,
                cfg.net
            )));
        }
        state = run.read_state()?;
        let (weights, optim) = (run.epoch_weights(state.epoch), run.epoch_optim(state.epoch));
        trainable
            .varmap
            .load(&weights)
            .map_err(|e| TrainError::Checkpoint {
                path: weights,
                message: e.to_string(),
            })?;
        adam.load(&optim).map_err(|e| TrainError::Checkpoint {
            path: optim,
            message: e.to_string(),
        })?;
        // Whatever the epoch a crash cut short had written goes; the links are made right.
        run.publish(state.epoch, state.best_epoch)?;
    } else if let Some(path) = &cfg.pretrained {
        load_pretrained(&trainable.varmap, cfg.net.backbone, path)?;
    }
    write_json(cfg, &run.config())?;
    let split = SplitFile::new(&cfg.data, &prepared.train, &prepared.val);
    write_json(&split, &run.split())?;
    let schedule = Schedule::new(
        cfg.lr,
        cfg.warmup_epochs * batches_per_epoch,
        cfg.epochs * batches_per_epoch,
    );
    let predictor = Predictor::new(cfg.net, cfg.mean, cfg.std, workers);

    while state.epoch < cfg.epochs && !state.stopped_early {
        let epoch = state.epoch + 1;
        let started = Instant::now();
        progress.epoch_start(epoch, cfg.epochs, batches_per_epoch);
        let record = train_epoch(
            cfg,
            &prepared,
            &sampler,
            &trainable,
            &mut adam,
            &schedule,
            epoch,
            batches_per_epoch,
            workers,
            device,
            progress,
        )?;
        let val = prepared
            .val
            .score(&trainable.net, &predictor, device)?
            .validation();
        let record = EpochRecord {
            seconds: started.elapsed().as_secs_f64(),
            val,
            ..record
        };
        progress.epoch_end(&record, state.push(record.clone(), cfg.patience));
        // The epoch's files, then the state that names them: until it is renamed into place,
        // --resume repeats this epoch.
        save_weights(&trainable.varmap, &run.epoch_weights(epoch))?;
        save_checkpoint(&run.epoch_optim(epoch), |tmp| adam.save(tmp))?;
        write_json(&state, &run.state())?;
        run.publish(state.epoch, state.best_epoch)?;
        history::write_csv(&state.history, &run.csv())
            .map_err(|e| TrainError::io(&run.csv(), e))?;
        crate::curve::draw(&state.history, &run.curve())?;
    }
    Ok(FitSummary {
        epochs: state.epoch,
        best_score: state.best_score,
        best_epoch: state.best_epoch,
        stopped_early: state.stopped_early,
    })
}

#[allow(clippy::too_many_arguments)]
fn train_epoch(
    cfg: &RunConfig,
    data: &Prepared,
    sampler: &PkSampler,
    t: &Trainable,
    adam: &mut Adam,
    schedule: &Schedule,
    epoch: usize,
    batches: usize,
    workers: usize,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<EpochRecord, TrainError> {
    let mut plan = sampler.epoch(epoch as u64);
    plan.truncate(batches);
    let loader = BatchLoader::new(
        &data.train,
        &data.table,
        plan,
        LoaderConfig {
            height: cfg.net.input_height,
            width: cfg.net.input_width,
            mean: cfg.mean,
            std: cfg.std,
            augment: Some(Augment::default()),
            workers,
            seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
        },
    )?;
    let (mut sums, mut seen, mut correct, mut labelled) = ([0f64; 4], 0usize, 0usize, 0usize);
    let started = Instant::now();
    for (i, batch) in loader.enumerate() {
        let mut batch = batch?;
        adam.config.lr = schedule.lr((epoch - 1) * batches + i);
        let x = images(&mut batch, device)?;
        let out = t.net.forward_t(&x, true)?;
        let persons = batch.person.iter().filter(|p| **p).count();
        let attr_logits = out
            .attributes
            .iter()
            .map(|l| l.narrow(0, 0, persons))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let flat: Vec<u32> = batch.attributes[..persons]
            .iter()
            .flat_map(|a| a.iter().map(|&c| u32::from(c)))
            .collect();
        let targets = Tensor::from_vec(flat, (persons, attr_logits.len()), device)?;
        let l_ar = attribute_loss(&attr_logits, &targets)?;
        let l_id = triplet_loss(
            &out.embedding.narrow(0, 0, persons)?,
            &batch.identities[..persons],
            cfg.margin,
            cfg.mining,
        )?;
        let mut loss = t.kendall.combine(&l_ar, &l_id)?;
        let mut l_person = 0.0;
        if let Some(logits) = &out.person {
            let lp = person_loss(logits, &person_targets(&batch, device)?)?;
            l_person = lp.to_scalar::<f32>()? as f64;
            loss = (loss + lp)?;
        }
        adam.step(&loss.backward()?)?;
        for (logits, truth) in attr_logits.iter().zip(0..) {
            let pred = logits.argmax(1)?.to_vec1::<u32>()?;
            correct += pred
                .iter()
                .zip(&batch.attributes[..persons])
                .filter(|(p, a)| **p == u32::from(a[truth]))
                .count();
            labelled += persons;
        }
        let values = [
            loss.to_scalar::<f32>()? as f64,
            l_ar.to_scalar::<f32>()? as f64,
            l_id.to_scalar::<f32>()? as f64,
            l_person,
        ];
        for (s, v) in sums.iter_mut().zip(values) {
            *s += v;
        }
        seen += batch.n;
        progress.batch(values[0], seen as f64 / started.elapsed().as_secs_f64());
    }
    let n = batches as f64;
    Ok(EpochRecord {
        epoch,
        lr: adam.config.lr,
        loss: sums[0] / n,
        ar_loss: sums[1] / n,
        id_loss: sums[2] / n,
        person_loss: sums[3] / n,
        s_ar: t.kendall.s_ar()? as f64,
        s_id: t.kendall.s_id()? as f64,
        train_accuracy: correct as f64 / labelled.max(1) as f64,
        images_per_second: seen as f64 / started.elapsed().as_secs_f64(),
        seconds: 0.0,
        val: Validation::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{eval_run, Split};
    use crate::export::{export_run, Precision};
    use crate::model::{Backbone, HeadKind, NetConfig};
    use crate::synth::write_test_dataset;
    use std::path::{Path, PathBuf};

    #[test]
    fn settings_that_cannot_train_are_refused_before_training() {
        assert!(RunConfig::default().check().is_ok());
        type Change = fn(&mut RunConfig);
        let bad: [(Change, &str); 7] = [
            (|c| c.epochs = 0, "--epochs"),
            (|c| c.lr = f64::NAN, "--lr NaN"),
            (|c| c.lr = -1e-3, "--lr -0.001"),
            (|c| c.weight_decay = -1.0, "--weight-decay"),
            (|c| c.margin = f64::INFINITY, "--margin inf"),
            (|c| c.val_fraction = 0.0, "--val-fraction 0"),
            (|c| c.val_fraction = 1.0, "--val-fraction 1"),
        ];
        for (set, named) in bad {
            let mut cfg = RunConfig::default();
            set(&mut cfg);
            let err = cfg.check().unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
        // fit refuses before it touches the run folder or the data.
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir(dir.path().join("run"));
        let cfg = RunConfig {
            lr: 0.0,
            ..RunConfig::default()
        };
        let err = fit(&cfg, &run, &Device::Cpu, 1, false, &mut Quiet).unwrap_err();
        assert!(err.to_string().contains("--lr 0"), "{err}");
        assert!(!run.0.exists());
    }

    #[test]
    fn keeps_the_best_epoch_and_stops_after_patience_epochs_without_progress() {
        let mut state = RunState::default();
        let record = |epoch, map| {
            let mut r = EpochRecord {
                epoch,
                ..EpochRecord::default()
            };
            r.val.map = map;
            r
        };
        let bests: Vec<bool> = [0.1, 0.3, 0.2, 0.3, 0.25]
            .iter()
            .zip(1..)
            .map(|(&map, epoch)| {
                let best = state.push(record(epoch, map), 3);
                assert_eq!(state.stopped_early, epoch == 5, "epoch {epoch}");
                best
            })
            .collect();
        assert_eq!(bests, [true, true, false, false, false]);
        assert_eq!((state.epoch, state.best_epoch), (5, 2));
        assert!((state.best_score - 0.15).abs() < 1e-12);
        let mut never = RunState::default();
        (1..=20).for_each(|e| {
            never.push(record(e, 0.0), 0);
        });
        assert!(!never.stopped_early);

        // A state.json that contradicts itself is refused when read, naming the file.
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir(dir.path().to_path_buf());
        type Edit = fn(&mut RunState);
        let edits: [(Edit, &str); 4] = [
            (|s| s.best_epoch = 9, "best epoch 9 is not one of the 5"),
            (|s| s.best_epoch = 0, "best epoch 0"),
            (|s| s.epoch = 6, "6 epochs completed but 5 epoch records"),
            (|s| s.history[2].epoch = 7, "record 3 is of epoch 7"),
        ];
        crate::run::write_json(&state, &run.state()).unwrap();
        assert_eq!(run.read_state().unwrap(), state);
        for (edit, reason) in edits {
            let mut bad = state.clone();
            edit(&mut bad);
            crate::run::write_json(&bad, &run.state()).unwrap();
            let err = run.read_state().unwrap_err().to_string();
            assert!(err.contains(reason) && err.contains("state.json"), "{err}");
        }
        // Pushing onto a state whose best lies ahead (never read so) does not underflow.
        let mut ahead = state.clone();
        ahead.best_epoch = 9;
        ahead.push(record(6, 0.0), 3);
        assert!(!ahead.stopped_early);
    }

    /// Rewrites a dataset's annotation CSVs as the course's real files can be: 30 columns with
    /// `upmulticolor,downmulticolor`, every third identity multicolour on top (no colour set),
    /// every third but one with two lower-body colours set.
    fn make_annotations_messy(data: &Path) {
        for name in [
            edge_reid::dataset::market::TRAIN_CSV,
            edge_reid::dataset::market::TEST_CSV,
        ] {
            let path = data.join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let mut out = format!("{}\n", edge_reid::dataset::market::CSV_HEADER_MULTICOLOR);
            for (i, row) in text.lines().skip(1).enumerate() {
                let mut fields: Vec<String> = row.split(',').map(str::to_string).collect();
                let mut up = "1";
                match i % 3 {
                    0 => {
                        fields[11..19].iter_mut().for_each(|f| *f = "1".into());
                        up = "2";
                    }
                    1 => {
                        let set = fields[19..28].iter().position(|f| f == "1").unwrap();
                        fields[19 + set] = "2".into();
                    }
                    _ => {}
                }
                out += &format!("{},{up},1\n", fields.join(","));
            }
            std::fs::write(&path, out).unwrap();
        }
    }

    /// A run killed while its third epoch's files were being written (the weights and the
    /// optimiser written, the state not yet; the links of the second epoch damaged) resumes into
    /// exactly the run that was never interrupted.
    #[test]
    fn a_run_killed_inside_an_epoch_resumes_as_if_it_had_not_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_test_dataset(&data, 12, 3, 8);
        let cfg = RunConfig {
            data: data.clone(),
            net: NetConfig::paper(Backbone::Small, HeadKind::Baseline, 16, false, (32, 16)),
            epochs: 3,
            p: 3,
            k: 2,
            warmup_epochs: 1,
            lr: 1e-3,
            val_fraction: 0.4,
            patience: 0,
            max_batches: Some(2),
            seed: 3,
            ..RunConfig::default()
        };
        let whole = RunDir(dir.path().join("whole"));
        fit(&cfg, &whole, &Device::Cpu, 1, false, &mut Quiet).unwrap();

        // The same run, killed once its second epoch is committed...
        struct KilledAt(usize);
        impl Progress for KilledAt {
            fn epoch_start(&mut self, epoch: usize, _: usize, _: usize) {
                assert!(epoch < self.0, "killed before epoch {epoch}");
            }
            fn batch(&mut self, _: f64, _: f64) {}
            fn epoch_end(&mut self, _: &EpochRecord, _: bool) {}
        }
        let killed = RunDir(dir.path().join("killed"));
        let kill = std::panic::AssertUnwindSafe(|| {
            fit(&cfg, &killed, &Device::Cpu, 1, false, &mut KilledAt(3))
        });
        assert!(std::panic::catch_unwind(kill).is_err());
        assert_eq!(killed.read_state().unwrap().epoch, 2);
        // ...while its third epoch's files were being written.
        for file in [whole.epoch_weights(3), whole.epoch_optim(3)] {
            let to = killed.0.join("checkpoints").join(file.file_name().unwrap());
            std::fs::copy(&file, to).unwrap();
        }
        std::fs::write(
            killed.0.join("checkpoints/epoch-0004.safetensors.tmp"),
            b"half",
        )
        .unwrap();
        std::fs::remove_file(killed.last()).unwrap();
        std::fs::write(killed.last(), b"not a checkpoint").unwrap();
        fit(&cfg, &killed, &Device::Cpu, 1, true, &mut Quiet).unwrap();

        let (a, b) = (whole.read_state().unwrap(), killed.read_state().unwrap());
        assert_eq!((b.epoch, b.best_epoch), (a.epoch, a.best_epoch));
        for (a, b) in a.history.iter().zip(&b.history) {
            assert_eq!((a.loss, &a.val), (b.loss, &b.val), "epoch {}", a.epoch);
        }
        let bytes = |p: PathBuf| std::fs::read(p).unwrap();
        assert_eq!(
            bytes(killed.epoch_weights(3)),
            bytes(whole.epoch_weights(3))
        );
        assert_eq!(bytes(killed.last()), bytes(whole.epoch_weights(3)));
        assert_eq!(bytes(killed.best()), bytes(whole.best()));
        let mut left: Vec<_> = std::fs::read_dir(killed.0.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            "epoch-0003.optim.safetensors".to_string(),
            "epoch-0003.safetensors".to_string(),
            format!("epoch-{:04}.safetensors", b.best_epoch),
        ];
        expected.sort();
        expected.dedup();
        assert_eq!(left, expected);
    }

    /// synth -> fit (2 epochs) -> resume (3rd epoch) -> eval -> export -> predict, on a tiny set
    /// whose annotations have the real files' multicolour rows and extra columns.
    #[test]
    fn trains_resumes_evaluates_exports_and_predicts() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_test_dataset(&data, 16, 3, 16);
        make_annotations_messy(&data);
        let table = AttributeTable::open(&data).unwrap();
        let unlabelled = table
            .iter()
            .filter(|(_, l)| l[10] == edge_reid::attributes::UNLABELLED);
        assert!(unlabelled.count() >= 5, "multicolour rows load, unlabelled");

        let mut cfg = RunConfig {
            data: data.clone(),
            net: NetConfig::paper(Backbone::Small, HeadKind::ConvHead, 16, true, (32, 16)),
            epochs: 2,
            p: 3,
            k: 2,
            junk_per_batch: 2,
            warmup_epochs: 1,
            lr: 1e-3,
            val_fraction: 0.4,
            patience: 0,
            max_batches: Some(2),
            seed: 5,
            ..RunConfig::default()
        };
        let run = RunDir(dir.path().join("run"));
        let summary = fit(&cfg, &run, &Device::Cpu, 1, false, &mut Quiet).unwrap();
        assert_eq!(summary.epochs, 2);
        let first = run.read_state().unwrap();
        assert_eq!(first.history.len(), 2);
        for r in &first.history {
            assert!(r.loss.is_finite() && r.loss > 0.0, "{r:?}");
            assert!((0.0..=1.0).contains(&r.val.map), "{r:?}");
            assert_eq!(r.val.accuracy.len(), 12);
            assert!(r.val.person_accuracy.is_some());
        }
        assert_eq!(
            std::fs::read_to_string(run.csv()).unwrap().lines().count(),
            3
        );
        assert!(run.curve().is_file() && run.best().is_file());
        // split.json lists every training image once, on one side, under the data folder.
        let split: SplitFile = crate::run::read_json(&run.split()).unwrap();
        let mut listed: Vec<_> = [
            &split.train,
            &split.val_query,
            &split.val_gallery,
            &split.val_junk,
        ]
        .into_iter()
        .flatten()
        .map(|p| data.join(p))
        .collect();
        listed.sort();
        let mut all: Vec<_> = MarketDataset::open(&data)
            .unwrap()
            .train
            .into_iter()
            .map(|r| r.path)
            .collect();
        all.sort();
        assert_eq!(listed, all);
        assert!(!split.val_query.is_empty() && !split.val_junk.is_empty());

        // Resuming continues the same run: two epochs kept as they were, a third appended.
        cfg.epochs = 3;
        fit(&cfg, &run, &Device::Cpu, 1, true, &mut Quiet).unwrap();
        let state = run.read_state().unwrap();
        assert_eq!(state.epoch, 3);
        assert_eq!(state.history[..2], first.history[..]);
        assert_eq!(
            std::fs::read_to_string(run.csv()).unwrap().lines().count(),
            4
        );

        // `eval` on the best checkpoint reproduces that epoch's validation scores.
        let scores = eval_run(&cfg, &run.best(), &data, Split::Validation, 1).unwrap();
        let best = &state.history[state.best_epoch - 1].val;
        assert!((scores.validation().map - best.map).abs() < 1e-9);
        assert!((scores.validation().mean_accuracy() - best.mean_accuracy()).abs() < 1e-9);
        let test = eval_run(&cfg, &run.best(), &data, Split::Test, 1).unwrap();
        assert!(test.ranking.num_valid_queries > 0);

        // The export is read by the runtime's loader and carries that epoch's metrics.
        let onnx = dir.path().join("model.onnx");
        let card = export_run(&run, &run.best(), &onnx, Precision::Full, 1).unwrap();
        assert_eq!(card.training.epochs, state.best_epoch);
        assert!((card.training.validation["map"] - best.map).abs() < 1e-9);
        // Its unknown distance is the one `eval` chooses on validation.
        let calibrated = scores
            .open_set
            .expect("the validation split has an open set");
        let embedding = card.embedding.as_ref().unwrap();
        assert_eq!(embedding.unknown_distance, Some(calibrated.max_distance));
        assert_eq!(
            card.training.validation["open_set_rejected"],
            calibrated.rejected
        );
        let model = edge_reid::model::Model::load(&onnx, 1).unwrap();
        assert_eq!(model.card(), &card);

        // The runtime's `edge-reid eval` on the exported file prints the same tables as `eval
        // --split test` on the checkpoint (tract and candle agree within 1e-4, well inside the
        // printed 0.01%); the open-set line differs in where its threshold comes from.
        let mut recognizer = edge_reid::pipeline::Recognizer::new(model, None, 0.0).unwrap();
        let runtime =
            edge_reid::eval::market::evaluate_market(&mut recognizer, &data, true, &mut |_, _| {})
                .unwrap();
        assert!(matches!(
            runtime.attributes,
            edge_reid::eval::market::AttributeOutcome::Scored { .. }
        ));
        let tables = |r: edge_reid::eval::report::Report| {
            edge_reid::eval::report::Report {
                open_set: None,
                ..r
            }
            .to_string()
        };
        assert_eq!(tables(runtime.report()), tables(test.report()));
        let at_card = runtime.open_set.expect("the card has an unknown distance");
        assert_eq!(Some(at_card.max_distance), embedding.unknown_distance);

        // The course's submission files.
        let out = dir.path().join("submission");
        let written = crate::predict::predict(
            &cfg,
            &run.best(),
            &data.join("bounding_box_test"),
            &data.join("query"),
            &out,
            1,
        )
        .unwrap();
        let csv = std::fs::read_to_string(&written.classification).unwrap();
        assert_eq!(csv.lines().count(), written.test_images + 1);
        assert!(csv.starts_with(crate::data::CSV_HEADER));
        let reid = std::fs::read_to_string(&written.reid).unwrap();
        assert_eq!(reid.lines().count(), written.queries);
        let first_line = reid.lines().next().unwrap();
        let (query, ranked) = first_line.split_once(": ").unwrap();
        assert!(query.ends_with(".jpg"));
        assert_eq!(ranked.split(", ").count(), written.test_images);
    }
}
