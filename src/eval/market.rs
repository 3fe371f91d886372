//! `edge-reid eval`: an exported model scored on a Market-1501 layout folder with the protocol and
//! metrics of `edge-reid-train eval --split test`, so both print the same Tables 1 and 2.
//!
//! The queries are `query/`; the gallery is `bounding_box_test/` without its junk (identity `-1`;
//! distractors `0000` stay), ranked by the model card's distance metric with
//! [`eval_market1501`]. Table 1 scores every query and gallery person whose identity is annotated
//! (`market_attribute.mat`, `annotations_test.csv`), against the most-frequent-class baseline of
//! the annotated persons of `bounding_box_train/` (as training does), or of Market-1501's own class
//! shares when the folder has none. With `junk`, the junk images of `bounding_box_test/` are run
//! too and the person-vs-junk accuracy is measured over every image. Each image is one whole-image
//! crop through [`Recognizer`], the path `identify` and `embed` use.

use std::fmt;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::attributes::{AttributeLabels, ATTRIBUTES, NUM_ATTRIBUTES};
use crate::card::ModelCard;
use crate::dataset::market::{
    list_folder, AttributeTable, EvaluationSplit, MarketError, Record, MAT_FILE, TEST_CSV,
    TRAIN_DIR,
};
use crate::distance::distance_matrix;
use crate::eval::metrics::{
    attribute_report, eval_market1501, AttributeReport, MetricsError, RankingMetrics, JUNK_ID,
};
use crate::eval::open_set::{open_set_rates, OpenSetRates};
use crate::eval::report::Report;
use crate::picture::{self, PictureError};
use crate::pipeline::{PipelineError, Recognition, Recognizer};

/// Ranks of the CMC curve computed (the tables print rank-1, 5 and 10).
const MAX_RANK: usize = 50;
/// Images decoded and recognised per step (and per progress report).
const CHUNK: usize = 64;

/// Why a folder could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The folder is not in Market-1501 layout, or its annotations are malformed.
    #[error(transparent)]
    Market(#[from] MarketError),
    /// An image could not be decoded.
    #[error(transparent)]
    Image(#[from] PictureError),
    /// The model failed on a chunk of images.
    #[error("running the model on {path} and the {more} images after it: {source}")]
    Model {
        /// The first image of the chunk.
        path: PathBuf,
        /// How many images follow it in the chunk.
        more: usize,
        /// The cause.
        source: PipelineError,
    },
    /// The model card declares no embedding, so there is nothing to rank.
    #[error("the model card declares no embedding output")]
    NoEmbedding,
    /// A query is junk (identity -1): Market's protocol has person queries only.
    #[error("{path}: a junk image (identity -1) cannot be a query")]
    JunkQuery {
        /// The query image.
        path: PathBuf,
    },
    /// The re-ID metrics could not be computed (for example no query has a match in the gallery
    /// from another camera).
    #[error("re-identification scores: {0}")]
    Ranking(MetricsError),
    /// The attribute metrics could not be computed.
    #[error("attribute scores: {0}")]
    Attributes(MetricsError),
}

/// Where Table 1's most-frequent-class baseline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The commonest class among this many annotated person images of `bounding_box_train/`
    /// (what `edge-reid-train eval` uses).
    TrainingImages(usize),
    /// Market-1501's commonest class of each attribute ([`crate::attributes::Attribute::majority`]):
    /// the folder has no annotated training image.
    MarketShares,
}

/// Table 1 of an evaluation, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeOutcome {
    /// Scored over `images` annotated person images (queries and gallery).
    Scored {
        /// The scores.
        report: AttributeReport,
        /// Person images scored.
        images: usize,
        /// Where the baseline comes from.
        baseline: Baseline,
    },
    /// The folder has no annotation file.
    NoAnnotationFile,
    /// The annotations cover none of the query or gallery persons.
    NoAnnotatedImage,
    /// The model's attributes are not the 12-task schema the annotations use.
    OtherSchema,
}

/// The result of [`evaluate_market`].
#[derive(Debug, Clone, PartialEq)]
pub struct MarketEvaluation {
    /// The folder.
    pub root: PathBuf,
    /// Query images.
    pub queries: usize,
    /// Gallery images (junk excluded, distractors included).
    pub gallery: usize,
    /// Distractors (identity 0) among the gallery images.
    pub distractors: usize,
    /// Junk images run for the person-vs-junk accuracy (0 unless asked for).
    pub junk: usize,
    /// Table 2.
    pub ranking: RankingMetrics,
    /// Table 1.
    pub attributes: AttributeOutcome,
    /// Share of queries, gallery and junk images whose person score is above 0.5 exactly when
    /// they show a person (identity > 0); measured when junk images were run.
    pub person_accuracy: Option<f64>,
    /// Open-set identification at the model card's unknown distance, when the card has one.
    pub open_set: Option<OpenSetRates>,
}

impl MarketEvaluation {
    /// The tables, as [`Report`] prints them.
    pub fn report(&self) -> Report<'_> {
        Report {
            attributes: match &self.attributes {
                AttributeOutcome::Scored { report, .. } => Some(report),
                _ => None,
            },
            ranking: &self.ranking,
            person_accuracy: self.person_accuracy,
            open_set: self
                .open_set
                .map(|rates| ("the model card's unknown distance", rates)),
        }
    }
}

impl fmt::Display for MarketEvaluation {
    /// A summary of what was scored, then Tables 1 and 2 (Table 1 replaced by the reason it is
    /// missing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} queries, {} gallery images ({} distractors)",
            self.root.display(),
            self.queries,
            self.gallery,
            self.distractors
        )?;
        if self.junk > 0 {
            write!(f, ", {} junk images", self.junk)?;
        }
        writeln!(f)?;
        match &self.attributes {
            AttributeOutcome::Scored {
                images, baseline, ..
            } => {
                write!(f, "attributes: {images} annotated person images; MFC: ")?;
                match baseline {
                    Baseline::TrainingImages(n) => {
                        writeln!(f, "commonest class of {n} {TRAIN_DIR}/ persons")?
                    }
                    Baseline::MarketShares => writeln!(
                        f,
                        "Market-1501's commonest class (no annotated {TRAIN_DIR}/)"
                    )?,
                }
            }
            AttributeOutcome::NoAnnotationFile => writeln!(
                f,
                "attributes skipped: no annotation file found ({MAT_FILE} or {TEST_CSV})"
            )?,
            AttributeOutcome::NoAnnotatedImage => writeln!(
                f,
                "attributes skipped: the annotations cover no query or gallery identity"
            )?,
            AttributeOutcome::OtherSchema => writeln!(
                f,
                "attributes skipped: the model's attributes are not the 12-task Market schema"
            )?,
        }
        writeln!(f)?;
        write!(f, "{}", self.report())
    }
}

/// What the model said about the images evaluated, in order.
struct Predictions {
    embeddings: Vec<f32>,
    attributes: Vec<AttributeLabels>,
    person_scores: Vec<f32>,
}

/// Decodes `records` in chunks and runs them through `recognizer`, calling `progress(done)` after
/// each chunk.
fn predict(
    recognizer: &mut Recognizer,
    records: &[&Record],
    progress: &mut dyn FnMut(usize),
) -> Result<Predictions, EvalError> {
    let mut p = Predictions {
        embeddings: Vec::new(),
        attributes: Vec::with_capacity(records.len()),
        person_scores: Vec::with_capacity(records.len()),
    };
    for (index, chunk) in records.chunks(CHUNK).enumerate() {
        let images = chunk
            .iter()
            .map(|r| picture::open(&r.path))
            .collect::<Result<Vec<RgbImage>, _>>()?;
        let recognitions =
            recognizer
                .recognize_images(&images)
                .map_err(|source| EvalError::Model {
                    path: chunk[0].path.clone(),
                    more: chunk.len() - 1,
                    source,
                })?;
        for r in &recognitions {
            p.embeddings.extend_from_slice(&r.embedding);
            p.attributes.push(labels(r));
            p.person_scores.push(r.person_score);
        }
        progress(index * CHUNK + chunk.len());
    }
    Ok(p)
}

/// The predicted class per attribute, in card order (the schema order when the card follows it).
fn labels(r: &Recognition) -> AttributeLabels {
    let mut labels = [0u8; NUM_ATTRIBUTES];
    for (label, &(class, _)) in labels.iter_mut().zip(&r.attributes) {
        *label = class as u8;
    }
    labels
}

/// Whether the card's attributes are the 12-task schema, in order, with its labels.
fn standard_schema(card: &ModelCard) -> bool {
    card.attributes.len() == NUM_ATTRIBUTES
        && card
            .attributes
            .iter()
            .zip(&ATTRIBUTES)
            .all(|(spec, a)| spec.name == a.name && spec.labels == a.labels)
}

/// The baseline's reference labels: the annotated persons of `bounding_box_train/`, else one row
/// of Market-1501's commonest classes.
fn baseline_reference(
    root: &Path,
    table: &AttributeTable,
) -> Result<(Vec<AttributeLabels>, Baseline), EvalError> {
    let train_dir = root.join(TRAIN_DIR);
    let train = if train_dir.is_dir() {
        list_folder(&train_dir)?
    } else {
        Vec::new()
    };
    let labels: Vec<AttributeLabels> = train
        .iter()
        .filter(|r| r.is_person())
        .filter_map(|r| table.get(r.identity).copied())
        .collect();
    if labels.is_empty() {
        let market = ATTRIBUTES.map(|a| a.majority as u8);
        Ok((vec![market], Baseline::MarketShares))
    } else {
        let n = labels.len();
        Ok((labels, Baseline::TrainingImages(n)))
    }
}

/// Scores the model behind `recognizer` on the Market-1501 layout folder `root` (see the module
/// doc); `junk` also runs the junk images of `bounding_box_test/` for the person-vs-junk accuracy.
/// `progress(done, total)` is called after every few dozen images.
pub fn evaluate_market(
    recognizer: &mut Recognizer,
    root: &Path,
    junk: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MarketEvaluation, EvalError> {
    let split = EvaluationSplit::open(root)?;
    if let Some(r) = split.query.iter().find(|r| r.identity == JUNK_ID) {
        return Err(EvalError::JunkQuery {
            path: r.path.clone(),
        });
    }
    let table = match AttributeTable::open(root) {
        Ok(table) => Some(table),
        Err(MarketError::NoAnnotations { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let (gallery, junk_images): (Vec<&Record>, Vec<&Record>) =
        split.gallery.iter().partition(|r| r.identity != JUNK_ID);
    let mut records: Vec<&Record> = split.query.iter().chain(gallery.iter().copied()).collect();
    if junk {
        records.extend(junk_images.iter().copied());
    }
    let embedding = recognizer
        .card()
        .embedding
        .as_ref()
        .ok_or(EvalError::NoEmbedding)?;
    let (metric, dim, unknown_distance, unknown_gallery) = (
        embedding.metric,
        embedding.dim,
        embedding.unknown_distance,
        embedding.unknown_gallery_size(),
    );
    let standard = standard_schema(recognizer.card());
    let total = records.len();
    let p = predict(recognizer, &records, &mut |done| progress(done, total))?;

    let (nq, ng) = (split.query.len(), gallery.len());
    let (query_embeddings, rest) = p.embeddings.split_at(nq * dim);
    let distances = distance_matrix(query_embeddings, &rest[..ng * dim], dim, metric)
        .map_err(|e| EvalError::Ranking(e.into()))?;
    let ids = |rs: &[&Record]| rs.iter().map(|r| r.identity).collect::<Vec<_>>();
    let cams = |rs: &[&Record]| rs.iter().map(|r| r.camera).collect::<Vec<_>>();
    let (q, g) = (&records[..nq], &records[nq..nq + ng]);
    let (qi, gi, qc, gc) = (ids(q), ids(g), cams(q), cams(g));
    let ranking =
        eval_market1501(&distances, &qi, &gi, &qc, &gc, MAX_RANK).map_err(EvalError::Ranking)?;
    let open_set = unknown_distance
        .map(|t| open_set_rates(&distances, &qi, &gi, &qc, &gc, unknown_gallery, t))
        .transpose()
        .map_err(EvalError::Ranking)?;

    let attributes = match &table {
        None => AttributeOutcome::NoAnnotationFile,
        Some(_) if !standard => AttributeOutcome::OtherSchema,
        Some(table) => {
            let (mut predicted, mut truth) = (Vec::new(), Vec::new());
            for (record, pred) in records.iter().zip(&p.attributes) {
                if let Some(t) = record
                    .is_person()
                    .then(|| table.get(record.identity))
                    .flatten()
                {
                    predicted.push(*pred);
                    truth.push(*t);
                }
            }
            if truth.is_empty() {
                AttributeOutcome::NoAnnotatedImage
            } else {
                let (reference, baseline) = baseline_reference(root, table)?;
                AttributeOutcome::Scored {
                    report: attribute_report(&predicted, &truth, &reference)
                        .map_err(EvalError::Attributes)?,
                    images: truth.len(),
                    baseline,
                }
            }
        }
    };
    let person_accuracy = junk.then(|| {
        let right = records
            .iter()
            .zip(&p.person_scores)
            .filter(|(r, &s)| (s > 0.5) == r.is_person())
            .count();
        right as f64 / total.max(1) as f64
    });
    Ok(MarketEvaluation {
        root: root.to_path_buf(),
        queries: nq,
        gallery: ng,
        distractors: gallery.iter().filter(|r| r.identity == 0).count(),
        junk: if junk { junk_images.len() } else { 0 },
        ranking,
        attributes,
        person_accuracy,
        open_set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_shares_baseline_without_training_images() {
        let dir = tempfile::tempdir().unwrap();
        let table = AttributeTable::default();
        let (reference, baseline) = baseline_reference(dir.path(), &table).unwrap();
        assert_eq!(baseline, Baseline::MarketShares);
        assert_eq!(reference.len(), 1);
        for (class, a) in reference[0].iter().zip(&ATTRIBUTES) {
            assert_eq!(usize::from(*class), a.majority, "{}", a.name);
        }
    }

    #[test]
    fn the_standard_card_follows_the_schema() {
        let mut attributes = ModelCard::standard_attributes();
        let card = |attributes| ModelCard {
            format_version: crate::card::CARD_FORMAT_VERSION,
            task: crate::card::Task::ArReid,
            input: crate::card::InputSpec {
                name: "image".into(),
                height: 128,
                width: 64,
                mean: crate::card::IMAGENET_MEAN,
                std: crate::card::IMAGENET_STD,
                channel_order: crate::card::ChannelOrder::Rgb,
            },
            attributes,
            embedding: None,
            person: None,
            training: Default::default(),
            int8: None,
        };
        assert!(standard_schema(&card(attributes.clone())));
        attributes.swap(0, 1);
        assert!(!standard_schema(&card(attributes.clone())));
        attributes.pop();
        assert!(!standard_schema(&card(attributes)));
    }
}
