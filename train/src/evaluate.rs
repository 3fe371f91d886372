//! Scoring a network: a forward pass over a set of images (no augmentation, eval-mode BatchNorm),
//! then the paper's Table 1 (per-attribute accuracy against the most-frequent-class baseline, plus
//! balanced accuracy) and Table 2 (re-ID mAP, with CMC) with the runtime crate's metrics, on the
//! validation split of a run or on Market's query/gallery.

use std::fmt;
use std::path::Path;

use candle_core::{Device, Tensor};
use edge_reid::attributes::{AttributeLabels, ATTRIBUTES};
use edge_reid::card::GallerySize;
use edge_reid::distance::distance_matrix;
use edge_reid::eval::metrics::{
    attribute_report, eval_market1501, AttributeReport, MetricsError, RankingMetrics,
};
use edge_reid::eval::open_set::{calibrate_unknown_distance, OpenSetRates, CALIBRATION_GALLERY};
use edge_reid::eval::report::Report;

use crate::data::{
    in_order, query_gallery, split_train_val, AttributeTable, BatchLoader, LoaderConfig,
    MarketDataset, Record, TrainVal,
};
use crate::history::Validation;
use crate::loss::{attribute_loss, EMBEDDING_METRIC};
use crate::model::images;
use crate::model::{MultiTaskNet, NetConfig};
use crate::run::{RunConfig, Trainable};
use crate::TrainError;

/// Images per forward pass when scoring.
const EVAL_BATCH: usize = 64;

/// What a network says about a list of images, in the list's order.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// Row-major `[n, dim]` embeddings.
    pub embeddings: Vec<f32>,
    /// Embedding width.
    pub dim: usize,
    /// Predicted class per attribute (argmax of the logits).
    pub attributes: Vec<AttributeLabels>,
    /// Person-vs-junk logits, when the net has that head.
    pub person: Option<Vec<f32>>,
    /// Attribute loss over the person images (the mean over batches), 0 when none is labelled.
    pub ar_loss: f64,
}

/// Runs networks over image lists, with the normalisation the run was trained with.
#[derive(Debug, Clone)]
pub struct Predictor {
    loader: LoaderConfig,
}

impl Predictor {
    /// A predictor for inputs of `net`'s size normalised with `mean` and `std`.
    pub fn new(net: NetConfig, mean: [f32; 3], std: [f32; 3], workers: usize) -> Self {
        Self {
            loader: LoaderConfig {
                height: net.input_height,
                width: net.input_width,
                mean,
                std,
                augment: None,
                workers: workers.max(1),
                seed: 0,
            },
        }
    }

    /// Forward pass (eval mode) over `records`. Person records need attributes in `table`.
    pub fn run(
        &self,
        net: &MultiTaskNet,
        records: &[Record],
        table: &AttributeTable,
        device: &Device,
    ) -> Result<Predictions, TrainError> {
        let loader = BatchLoader::new(
            records,
            table,
            in_order(records.len(), EVAL_BATCH),
            self.loader.clone(),
        )?;
        let mut p = Predictions::default();
        let (mut loss_sum, mut loss_batches) = (0.0, 0usize);
        for batch in loader {
            let mut batch = batch?;
            let x = images(&mut batch, device)?;
            let out = net.forward_t(&x, false)?;
            p.dim = out.embedding.dim(1)?;
            p.embeddings
                .extend(out.embedding.flatten_all()?.to_vec1::<f32>()?);
            let classes = out
                .attributes
                .iter()
                .map(|l| l.argmax(1)?.to_vec1::<u32>())
                .collect::<candle_core::Result<Vec<_>>>()?;
            for i in 0..batch.n {
                let mut labels = [0u8; ATTRIBUTES.len()];
                for (label, class) in labels.iter_mut().zip(&classes) {
                    *label = class[i] as u8;
                }
                p.attributes.push(labels);
            }
            if let Some(person) = &out.person {
                p.person
                    .get_or_insert_with(Vec::new)
                    .extend(person.flatten_all()?.to_vec1::<f32>()?);
            }
            let persons: Vec<u32> = (0..batch.n as u32)
                .filter(|&i| batch.person[i as usize])
                .collect();
            if !persons.is_empty() {
                let index = Tensor::new(persons.as_slice(), device)?;
                let logits = out
                    .attributes
                    .iter()
                    .map(|l| l.index_select(&index, 0))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let targets: Vec<u32> = persons
                    .iter()
                    .flat_map(|&i| batch.attributes[i as usize].iter().map(|&c| u32::from(c)))
                    .collect();
                let targets = Tensor::from_vec(targets, (persons.len(), ATTRIBUTES.len()), device)?;
                loss_sum += attribute_loss(&logits, &targets)?.to_scalar::<f32>()? as f64;
                loss_batches += 1;
            }
        }
        p.ar_loss = if loss_batches == 0 {
            0.0
        } else {
            loss_sum / loss_batches as f64
        };
        Ok(p)
    }
}

/// A set of images to score: attribute labels for the persons, a query/gallery split for re-ID.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// Every image: the queries, then the gallery, then junk (scored for person-vs-junk only).
    pub records: Vec<Record>,
    /// Attribute table of the persons.
    pub table: AttributeTable,
    /// Number of queries (the first records).
    pub queries: usize,
    /// Number of gallery images (after the queries).
    pub gallery: usize,
    /// Attribute labels of the training persons, for the most-frequent-class baseline.
    pub reference: Vec<AttributeLabels>,
}

impl EvalSet {
    fn new(
        query: Vec<Record>,
        gallery: &[Record],
        junk: &[Record],
        table: &AttributeTable,
        reference: Vec<AttributeLabels>,
    ) -> Self {
        let is_junk = |r: &&Record| r.identity == edge_reid::eval::metrics::JUNK_ID;
        let queries = query.len();
        let mut records = query;
        records.extend(gallery.iter().filter(|r| !is_junk(r)).cloned());
        let gallery_len = records.len() - queries;
        records.extend(junk.iter().filter(is_junk).cloned());
        Self {
            records,
            table: table.clone(),
            queries,
            gallery: gallery_len,
            reference,
        }
    }

    /// The validation set of a run: its held-out identities split into query and gallery.
    /// `split` is the run's train/validation split of `ds.train` (see [`run_split`]).
    pub fn validation(
        cfg: &RunConfig,
        ds: &MarketDataset,
        split: &TrainVal,
    ) -> Result<Self, TrainError> {
        let reference = labels(&split.train, &ds.attributes)?;
        let qg = query_gallery(&split.val, cfg.seed);
        Ok(Self::new(
            qg.query,
            &qg.gallery,
            &split.val,
            &ds.attributes,
            reference,
        ))
    }

    /// Market's own test protocol: `query/` against `bounding_box_test/`.
    pub fn test(ds: &MarketDataset) -> Result<Self, TrainError> {
        let eval = test_split(ds)?;
        let reference = labels(&ds.train, &ds.attributes)?;
        let (query, gallery) = (eval.query.clone(), &eval.gallery);
        Ok(Self::new(
            query,
            gallery,
            gallery,
            &ds.attributes,
            reference,
        ))
    }

    /// Scores `net` on this set.
    pub fn score(
        &self,
        net: &MultiTaskNet,
        predictor: &Predictor,
        device: &Device,
    ) -> Result<Scores, TrainError> {
        let p = predictor.run(net, &self.records, &self.table, device)?;
        let (mut predicted, mut truth) = (Vec::new(), Vec::new());
        for (record, pred) in self.records.iter().zip(&p.attributes) {
            if let Some(t) = record
                .is_person()
                .then(|| self.table.get(record.identity))
                .flatten()
            {
                predicted.push(*pred);
                truth.push(*t);
            }
        }
        let attributes = attribute_report(&predicted, &truth, &self.reference)
            .map_err(|e| TrainError::Setting(format!("attribute scores: {e}")))?;
        let (q, rest) = self.records.split_at(self.queries);
        let g = &rest[..self.gallery];
        let (qe, rest) = p.embeddings.split_at(self.queries * p.dim);
        let ge = &rest[..self.gallery * p.dim];
        let distances = distance_matrix(qe, ge, p.dim, EMBEDDING_METRIC)
            .map_err(|e| TrainError::Setting(format!("distances: {e}")))?;
        let pids = |rs: &[Record]| rs.iter().map(|r| r.identity).collect::<Vec<_>>();
        let cams = |rs: &[Record]| rs.iter().map(|r| r.camera).collect::<Vec<_>>();
        let (qp, gp, qc, gc) = (pids(q), pids(g), cams(q), cams(g));
        let ranking = eval_market1501(&distances, &qp, &gp, &qc, &gc, 50)
            .map_err(|e| TrainError::Setting(format!("re-ID scores: {e}")))?;
        let gallery = GallerySize::Identities(CALIBRATION_GALLERY);
        let open_set = match calibrate_unknown_distance(&distances, &qp, &gp, &qc, &gc, gallery) {
            Ok(rates) => Some(rates),
            Err(MetricsError::NoOpenSet { .. }) => None,
            Err(e) => return Err(TrainError::Setting(format!("open-set scores: {e}"))),
        };
        let person_accuracy = p.person.as_ref().map(|logits| {
            let right = logits
                .iter()
                .zip(&self.records)
                .filter(|(l, r)| (**l > 0.0) == r.is_person())
                .count();
            right as f64 / logits.len().max(1) as f64
        });
        Ok(Scores {
            attributes,
            ranking,
            ar_loss: p.ar_loss,
            person_accuracy,
            open_set,
        })
    }
}

fn labels(records: &[Record], table: &AttributeTable) -> Result<Vec<AttributeLabels>, TrainError> {
    Ok(records
        .iter()
        .filter(|r| r.is_person())
        .map(|r| table.labels_for(r))
        .collect::<Result<_, _>>()?)
}

/// Scores of a network on an [`EvalSet`].
#[derive(Debug, Clone)]
pub struct Scores {
    /// Table 1.
    pub attributes: AttributeReport,
    /// Table 2 (and CMC).
    pub ranking: RankingMetrics,
    /// Attribute loss.
    pub ar_loss: f64,
    /// Person-vs-junk accuracy over the set's images, when the net has that head.
    pub person_accuracy: Option<f64>,
    /// The unknown distance with the best balanced open-set accuracy on this set for galleries of
    /// [`CALIBRATION_GALLERY`] people, and its rates (`None` when the set has no identified query
    /// or no stranger).
    pub open_set: Option<OpenSetRates>,
}

impl Scores {
    /// The per-epoch validation record.
    pub fn validation(&self) -> Validation {
        let rows = &self.attributes.rows;
        let rank = |k| self.ranking.rank(k).unwrap_or(1.0);
        Validation {
            ar_loss: self.ar_loss,
            accuracy: rows.iter().map(|r| r.accuracy).collect(),
            balanced_accuracy: rows.iter().map(|r| r.balanced_accuracy).collect(),
            mfc_accuracy: rows.iter().map(|r| r.mfc).collect(),
            map: self.ranking.map,
            rank1: rank(1),
            rank5: rank(5),
            rank10: rank(10),
            person_accuracy: self.person_accuracy,
        }
    }

    /// The paper's Table 1 (with balanced accuracy) and Table 2 (with CMC), and the open-set
    /// rates, as the runtime's `edge-reid eval` prints them.
    pub fn report(&self) -> Report<'_> {
        Report {
            attributes: Some(&self.attributes),
            ranking: &self.ranking,
            person_accuracy: self.person_accuracy,
            open_set: self
                .open_set
                .map(|rates| ("unknown distance chosen on this split", rates)),
        }
    }
}

impl fmt::Display for Scores {
    /// [`Scores::report`], in percent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.report().fmt(f)
    }
}

/// The dataset's `query/` and `bounding_box_test/`, or an error naming the root that lacks them.
pub(crate) fn test_split(ds: &MarketDataset) -> Result<&crate::data::EvaluationSplit, TrainError> {
    ds.evaluation.as_ref().ok_or_else(|| {
        TrainError::Setting(format!(
            "{} has no query/ and bounding_box_test/ folders",
            ds.root.display()
        ))
    })
}

/// The identity-disjoint train/validation split of a run (seeded, so `fit` and `eval` agree).
pub fn run_split(cfg: &RunConfig, ds: &MarketDataset) -> Result<TrainVal, TrainError> {
    Ok(split_train_val(&ds.train, cfg.val_fraction, cfg.seed)?)
}

/// Which images `eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The run's validation split.
    Validation,
    /// Market's query/ against bounding_box_test/.
    Test,
}

/// Loads a run's checkpoint and scores it on `data`.
pub fn eval_run(
    cfg: &RunConfig,
    checkpoint: &Path,
    data: &Path,
    split: Split,
    workers: usize,
) -> Result<Scores, TrainError> {
    let t = Trainable::load(&cfg.net, checkpoint, &Device::Cpu)?;
    eval_net(cfg, &t.net, data, split, workers)
}

/// Scores `net` (a network of run `cfg`, on the CPU) on `data`.
pub fn eval_net(
    cfg: &RunConfig,
    net: &MultiTaskNet,
    data: &Path,
    split: Split,
    workers: usize,
) -> Result<Scores, TrainError> {
    let ds = MarketDataset::open(data)?;
    let set = match split {
        Split::Validation => EvalSet::validation(cfg, &ds, &run_split(cfg, &ds)?)?,
        Split::Test => EvalSet::test(&ds)?,
    };
    set.score(
        net,
        &Predictor::new(cfg.net, cfg.mean, cfg.std, workers),
        &Device::Cpu,
    )
}
