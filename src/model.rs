//! The runtime model: an exported ONNX file and its card, checked against each other and planned
//! with tract on the CPU for a fixed batch size.
//!
//! [`Model::load`] reads the file, parses the `edge_reid.card` metadata, refuses a file whose card
//! does not match its graph, fixes the input to `[batch, 3, H, W]` f32 and keeps an optimised
//! plan. [`Model::run`] feeds up to `batch` normalised crops and returns the embeddings, the
//! attribute logits and the person logits as plain vectors ([`Outputs`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tract_onnx::prelude::*;

use crate::card::{CardError, ModelCard, CARD_KEY};
use crate::onnx_file::{OnnxFile, ReadError};

/// A model that cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file cannot be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an ONNX model.
    #[error("{path} is not an ONNX model: {reason}")]
    NotOnnx {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ONNX file has no card.
    #[error(
        "{path} has no model card (metadata property {CARD_KEY:?}): it is not an edge-reid export"
    )]
    MissingCard {
        /// The model file.
        path: PathBuf,
    },
    /// The card does not parse or contradicts itself.
    #[error("{path}: {source}")]
    Card {
        /// The model file.
        path: PathBuf,
        /// The card error.
        source: CardError,
    },
    /// The card and the graph disagree.
    #[error("{path}: the model card does not match the graph: {problem}")]
    Mismatch {
        /// The model file.
        path: PathBuf,
        /// What disagrees.
        problem: String,
    },
    /// The graph fixes a batch size other than the one asked for.
    #[error("{path}: the graph fixes the batch size to {fixed}, cannot run it with batch {asked}")]
    FixedBatch {
        /// The model file.
        path: PathBuf,
        /// The graph's batch size.
        fixed: i64,
        /// The batch size asked for.
        asked: usize,
    },
    /// A batch size of 0.
    #[error("batch size must be at least 1")]
    ZeroBatch,
    /// tract cannot analyse, optimise or plan the graph.
    #[error("{path}: tract cannot prepare the graph: {message}")]
    Prepare {
        /// The model file.
        path: PathBuf,
        /// tract's error chain.
        message: String,
    },
    /// More crops than the planned batch.
    #[error("{n} crops do not fit in the model's batch of {batch}")]
    TooManyCrops {
        /// Crops given.
        n: usize,
        /// The batch the model was loaded for.
        batch: usize,
    },
    /// The input slice does not hold `n` crops.
    #[error("input has {found} values, {n} crops of 3x{height}x{width} need {expected}")]
    InputLength {
        /// Values given.
        found: usize,
        /// Values needed.
        expected: usize,
        /// Crops announced.
        n: usize,
        /// Crop height.
        height: usize,
        /// Crop width.
        width: usize,
    },
    /// tract failed while running the plan.
    #[error("inference failed: {0}")]
    Run(String),
}

/// Identifies the network whose embeddings a gallery holds: SHA-256 of the ONNX graph (its nodes
/// and weights, not the card's prose) and of the card's input preprocessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelFingerprint(pub [u8; 32]);

impl ModelFingerprint {
    /// All 32 bytes in hex.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ModelFingerprint {
    /// The first 8 bytes in hex, enough to tell models apart in a message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0[..8].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// An ONNX model with its card, planned for a fixed batch size.
#[derive(Debug)]
pub struct Model {
    card: ModelCard,
    fingerprint: ModelFingerprint,
    batch: usize,
    /// Widths of the plan's outputs, in the order embedding, attributes (card order), person.
    widths: Vec<usize>,
    plan: Arc<TypedRunnableModel>,
}

/// The outputs the card names, in plan order, with their expected widths and what they are.
fn card_outputs(card: &ModelCard) -> Vec<(&str, usize, String)> {
    let mut outputs = Vec::new();
    if let Some(e) = &card.embedding {
        outputs.push((e.output.as_str(), e.dim, "the embedding".to_string()));
    }
    for a in &card.attributes {
        let what = format!("attribute {:?}", a.name);
        outputs.push((a.output.as_str(), a.labels.len(), what));
    }
    if let Some(p) = &card.person {
        outputs.push((p.output.as_str(), 1, "the person logit".to_string()));
    }
    outputs
}

/// Checks the card against the graph's declared input and outputs. Returns the batch size the
/// graph's input fixes, if it fixes one, or the problem.
fn check_graph(card: &ModelCard, file: &OnnxFile) -> Result<Option<i64>, String> {
    let input = file.sole_input()?;
    if input.name != card.input.name {
        return Err(format!(
            "input {:?} is not in the graph, whose input is {:?}",
            card.input.name, input.name
        ));
    }
    let mut fixed_batch = None;
    if let Some(dims) = &input.dims {
        let [batch, rest @ ..] = dims.as_slice() else {
            return Err(format!(
                "input {:?} has rank 0, not [N, 3, H, W]",
                input.name
            ));
        };
        if rest.len() != 3 {
            return Err(format!(
                "input {:?} has rank {}, not [N, 3, H, W]",
                input.name,
                dims.len()
            ));
        }
        let expected = [3, card.input.height, card.input.width];
        for (axis, (dim, want)) in rest.iter().zip(expected).enumerate() {
            if let Some(v) = *dim {
                if usize::try_from(v) != Ok(want) {
                    return Err(format!(
                        "input {:?} has {v} at axis {}, the card says {want} (shape [N, 3, {}, {}])",
                        input.name,
                        axis + 1,
                        card.input.height,
                        card.input.width
                    ));
                }
            }
        }
        fixed_batch = *batch;
    }
    let graph = file.graph();
    for (name, _, what) in card_outputs(card) {
        if !graph.output.iter().any(|o| o.name == name) {
            return Err(format!(
                "output {name:?} of {what} is not a graph output (graph outputs: {:?})",
                graph.output.iter().map(|o| &o.name).collect::<Vec<_>>()
            ));
        }
    }
    Ok(fixed_batch)
}

impl Model {
    /// Loads an exported model and plans it for batches of `batch` crops.
    ///
    /// Refuses a file that is not ONNX, has no card or an invalid one, or whose card disagrees
    /// with the graph: the input must be the graph's only input, f32 `[N, 3, H, W]` with the card's
    /// `H` and `W` wherever the graph fixes them (and `N == batch` if it fixes `N`); every output
    /// the card names must exist with shape `[N, width]` f32, where width is the number of labels
    /// of an attribute, the embedding dimension, or 1 for the person logit. Graph outputs the card
    /// does not name are not computed.
    pub fn load(path: impl AsRef<Path>, batch: usize) -> Result<Model, ModelError> {
        let path = path.as_ref();
        if batch == 0 {
            return Err(ModelError::ZeroBatch);
        }
        let file = OnnxFile::read(path).map_err(|e| match e {
            ReadError::Io(source) => ModelError::Io {
                path: path.to_path_buf(),
                source,
            },
            ReadError::NotOnnx(reason) => ModelError::NotOnnx {
                path: path.to_path_buf(),
                reason,
            },
        })?;
        let json = file
            .proto()
            .metadata_props
            .iter()
            .find(|p| p.key == CARD_KEY)
            .ok_or_else(|| ModelError::MissingCard {
                path: path.to_path_buf(),
            })?;
        let card = ModelCard::from_json(&json.value).map_err(|source| ModelError::Card {
            path: path.to_path_buf(),
            source,
        })?;
        let mismatch = |problem: String| ModelError::Mismatch {
            path: path.to_path_buf(),
            problem,
        };
        if let Some(fixed) = check_graph(&card, &file).map_err(mismatch)? {
            if usize::try_from(fixed) != Ok(batch) {
                return Err(ModelError::FixedBatch {
                    path: path.to_path_buf(),
                    fixed,
                    asked: batch,
                });
            }
        }

        let prepare = |e: TractError| ModelError::Prepare {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let input = serde_json::to_vec(&card.input).expect("the input spec serialises");
        let fingerprint = ModelFingerprint(file.digest(&input));
        let mut model = file.into_tract_model().map_err(prepare)?;
        let (h, w) = (card.input.height, card.input.width);
        model
            .set_input_fact(0, f32::fact([batch, 3, h, w]).into())
            .map_err(prepare)?;
        let outputs = card_outputs(&card);
        let outlets = outputs
            .iter()
            .map(|(name, _, _)| {
                model
                    .find_outlet_label(name)
                    .ok_or_else(|| mismatch(format!("tract finds no outlet named {name:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        model.select_output_outlets(&outlets).map_err(prepare)?;
        let typed = model.into_typed().map_err(prepare)?;
        for (ix, (name, width, what)) in outputs.iter().enumerate() {
            let fact = typed.output_fact(ix).map_err(prepare)?;
            if fact.datum_type != f32::datum_type()
                || fact.shape.as_concrete() != Some(&[batch, *width][..])
            {
                return Err(mismatch(format!(
                    "output {name:?} of {what} has shape [{}] and type {:?} for batch {batch}, \
                     expected [{batch}, {width}] and F32",
                    fact.shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    fact.datum_type
                )));
            }
        }
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(prepare)?;
        release_freed_memory();
        Ok(Model {
            widths: outputs.iter().map(|(_, width, _)| *width).collect(),
            fingerprint,
            card,
            batch,
            plan,
        })
    }

    /// The model's card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The fingerprint of the network that computes the outputs (see [`ModelFingerprint`]).
    pub fn fingerprint(&self) -> ModelFingerprint {
        self.fingerprint
    }

    /// The batch size the model was planned for: the most crops one [`Model::run`] takes.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs any number `n` of crops (`input` holds them as `[n, 3, H, W]` f32, normalised) in
    /// batches of the planned size, and returns one [`Outputs`] per batch, in order. With several
    /// threads ([`set_threads`]) and at least as many batches, the batches run side by side, one
    /// per thread and each on one core (the optimised plan shared, a state each); the batches left
    /// over (fewer than the threads) run one after another, their matrix products split across
    /// the threads, so no core waits for another's last batch.
    pub fn run_crops(&self, input: &[f32], n: usize) -> Result<Vec<Outputs>, ModelError> {
        self.run_crops_on(input, n, THREADS.load(Ordering::SeqCst))
    }

    /// [`Model::run_crops`] on `threads` threads.
    fn run_crops_on(
        &self,
        input: &[f32],
        n: usize,
        threads: usize,
    ) -> Result<Vec<Outputs>, ModelError> {
        let crop = self.check_input(input, n)?;
        let batches: Vec<&[f32]> = input.chunks(self.batch * crop).collect();
        let run = |batch: &[f32]| self.run(batch, batch.len() / crop);
        let (together, rest) = batches.split_at(batches.len() / threads * threads);
        let mut results: Vec<Result<Outputs, ModelError>> = if threads > 1 && !together.is_empty() {
            // Each worker takes an equal run of consecutive batches, so joining the workers in
            // turn gives the results in order.
            std::thread::scope(|scope| {
                let run = &run;
                let workers: Vec<_> = together
                    .chunks(together.len() / threads)
                    .map(|mine| {
                        scope.spawn(move || {
                            use tract_linalg::multithread::{multithread_tract_scope, Executor};
                            multithread_tract_scope(Executor::SingleThread, || {
                                mine.iter().map(|batch| run(batch)).collect::<Vec<_>>()
                            })
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|worker| {
                        worker
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        } else {
            together.iter().map(|batch| run(batch)).collect()
        };
        results.extend(rest.iter().map(|batch| run(batch)));
        results.into_iter().collect()
    }

    /// The length of one crop's input; an error unless `input` holds exactly `n` crops.
    fn check_input(&self, input: &[f32], n: usize) -> Result<usize, ModelError> {
        let (height, width) = (self.card.input.height, self.card.input.width);
        let crop = 3 * height * width;
        if input.len() != n * crop {
            return Err(ModelError::InputLength {
                found: input.len(),
                expected: n * crop,
                n,
                height,
                width,
            });
        }
        Ok(crop)
    }

    /// Runs `n <= batch` crops, `input` holding them as `[n, 3, H, W]` f32, already normalised as
    /// the card says. The plan always runs a full batch: with fewer crops, the rest of the batch
    /// is zeros and its outputs are dropped (each crop's outputs depend on that crop only), so a
    /// partial batch costs as much as a full one. `n == 0` returns empty outputs without running.
    pub fn run(&self, input: &[f32], n: usize) -> Result<Outputs, ModelError> {
        if n > self.batch {
            return Err(ModelError::TooManyCrops {
                n,
                batch: self.batch,
            });
        }
        self.check_input(input, n)?;
        let (h, w) = (self.card.input.height, self.card.input.width);
        let mut columns: Vec<Vec<f32>> = self.widths.iter().map(|_| Vec::new()).collect();
        if n > 0 {
            let run = |e: TractError| ModelError::Run(format!("{e:#}"));
            let mut tensor = Tensor::zero::<f32>(&[self.batch, 3, h, w]).map_err(run)?;
            tensor
                .try_as_plain_ram_mut()
                .and_then(|mut t| {
                    t.as_slice_mut::<f32>()?[..input.len()].copy_from_slice(input);
                    Ok(())
                })
                .map_err(run)?;
            let results = self.plan.run(tvec!(tensor.into())).map_err(run)?;
            for ((column, result), width) in columns.iter_mut().zip(&results).zip(&self.widths) {
                let plain = result.try_as_plain_ram().map_err(run)?;
                let values = plain.as_slice::<f32>().map_err(run)?;
                let wanted = values.get(..n * width).ok_or_else(|| {
                    ModelError::Run(format!(
                        "an output holds {} values, fewer than {n} x {width}",
                        values.len()
                    ))
                })?;
                column.extend_from_slice(wanted);
            }
        }
        let mut columns = columns.into_iter();
        let embedding_dim = self.card.embedding.as_ref().map(|e| e.dim);
        let embeddings = embedding_dim.and_then(|_| columns.next());
        let attribute_logits: Vec<Vec<f32>> =
            columns.by_ref().take(self.card.attributes.len()).collect();
        let person_logits = self.card.person.as_ref().and_then(|_| columns.next());
        Ok(Outputs {
            n,
            embedding_dim: embedding_dim.unwrap_or(0),
            embeddings,
            attribute_classes: self
                .card
                .attributes
                .iter()
                .map(|a| a.labels.len())
                .collect(),
            attribute_logits,
            person_logits,
        })
    }
}

/// The outputs of one [`Model::run`] for `n` crops.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    n: usize,
    embedding_dim: usize,
    embeddings: Option<Vec<f32>>,
    attribute_classes: Vec<usize>,
    attribute_logits: Vec<Vec<f32>>,
    person_logits: Option<Vec<f32>>,
}

impl Outputs {
    /// Number of crops.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no crops.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// All embeddings, row-major `[n, dim]` (as [`crate::distance::distance_matrix`] takes them);
    /// `None` for a model without an embedding output.
    pub fn embeddings(&self) -> Option<&[f32]> {
        self.embeddings.as_deref()
    }

    /// The embedding of crop `crop`; `None` past the last crop or without an embedding output.
    pub fn embedding(&self, crop: usize) -> Option<&[f32]> {
        let dim = self.embedding_dim;
        self.embeddings.as_ref()?.get(crop * dim..(crop + 1) * dim)
    }

    /// The logits of attribute `attribute` (index in the card's attribute list) for crop `crop`.
    pub fn attribute_logits(&self, crop: usize, attribute: usize) -> Option<&[f32]> {
        let classes = *self.attribute_classes.get(attribute)?;
        self.attribute_logits[attribute].get(crop * classes..(crop + 1) * classes)
    }

    /// The class probabilities of attribute `attribute` for crop `crop` (softmax of its logits).
    pub fn attribute_probabilities(&self, crop: usize, attribute: usize) -> Option<Vec<f32>> {
        self.attribute_logits(crop, attribute).map(softmax)
    }

    /// The person-vs-junk logit of crop `crop` (positive means person); `None` past the last crop
    /// or without a person output.
    pub fn person_logit(&self, crop: usize) -> Option<f32> {
        self.person_logits.as_ref()?.get(crop).copied()
    }
}

/// Hands the memory the process has freed back to the kernel (glibc keeps freed blocks mapped for
/// reuse; a no-op with other C libraries). [`Model::load`] calls it: loading holds the parsed file,
/// the widened weights and tract's graphs before their optimisation, about twice the plan that
/// stays (the shipped model: a 139 MB peak, 72 MB resident after). A long run calls it now and
/// then, so that blocks freed in one thread's arena and reused in another's do not add up.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of glibc's heaps to the kernel; it is
    // thread-safe and valid at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Threads of the process's models, as last set by [`set_threads`].
static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads run the matrix products of every model in the process (tract's default
/// executor). 1, the default, keeps them on the calling thread; small products stay there anyway.
/// Setting the count it already has keeps the running thread pool.
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    let threads = threads.max(1);
    if THREADS.swap(threads, Ordering::SeqCst) == threads {
        return;
    }
    set_default_executor(if threads > 1 {
        Executor::multithread(threads)
    } else {
        Executor::SingleThread
    });
}

/// Softmax of a logit vector (shifted by its maximum, so large logits do not overflow).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The logistic function: a person logit to a person probability.
pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{
        AttributeSpec, ChannelOrder, EmbeddingSpec, InputSpec, PersonSpec, Task, TrainingSummary,
        CARD_FORMAT_VERSION,
    };
    use crate::distance::DistanceMetric;
    use crate::onnx_test_graph::{float_tensor as tensor, model as test_model, node, value_info};
    use prost::Message;
    use tract_onnx::pb;
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::prelude::f16;

    const H: usize = 4;
    const W: usize = 2;

    fn card() -> ModelCard {
        let attribute = |name: &str, labels: &[&str]| AttributeSpec {
            name: name.into(),
            output: format!("attr_{name}"),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        };
        ModelCard {
            format_version: CARD_FORMAT_VERSION,
            task: Task::ArReid,
            input: InputSpec {
                name: "image".into(),
                height: H,
                width: W,
                mean: [0.5; 3],
                std: [0.25; 3],
                channel_order: ChannelOrder::Rgb,
            },
            attributes: vec![
                attribute("gender", &["male", "female"]),
                attribute("age", &["young", "teenager", "adult", "old"]),
            ],
            embedding: Some(EmbeddingSpec {
                output: "embedding".into(),
                dim: 5,
                metric: DistanceMetric::Euclidean,
                unknown_distance: None,
                unknown_gallery: None,
            }),
            person: Some(PersonSpec {
                output: "person".into(),
            }),
            training: TrainingSummary::default(),
            int8: None,
        }
    }

    /// Weights of the output `name` with `width` rows: `[width, 3]` then `[width]` bias, distinct
    /// per output so that swapped outputs would show.
    fn weights(name: &str, width: usize) -> (Vec<f32>, Vec<f32>) {
        let seed = name.len() as f32;
        let w = (0..width * 3)
            .map(|i| ((i as f32 + seed) * 0.37).sin())
            .collect();
        let b = (0..width).map(|i| 0.1 * i as f32 - 0.05 * seed).collect();
        (w, b)
    }

    /// An opset-17 graph `input -> GlobalAveragePool -> Flatten -> Gemm` to each `(name, width)`
    /// output, with the card stored as metadata when given.
    fn onnx(
        card: Option<&str>,
        input: &str,
        input_dims: &[Dim],
        outputs: &[(&str, usize)],
    ) -> Vec<u8> {
        let trans_b = pb::AttributeProto {
            name: "transB".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        };
        let mut nodes = vec![
            node("GlobalAveragePool", &[input], "pooled", vec![]),
            node("Flatten", &["pooled"], "features", vec![]),
        ];
        let mut initializers = vec![];
        for &(name, width) in outputs {
            let (w, b) = weights(name, width);
            let (wn, bn) = (format!("{name}.weight"), format!("{name}.bias"));
            initializers.push(tensor(&wn, &[width, 3], w));
            initializers.push(tensor(&bn, &[width], b));
            nodes.push(node(
                "Gemm",
                &["features", &wn, &bn],
                name,
                vec![trans_b.clone()],
            ));
        }
        let batch = Dim::DimParam("N".into());
        let model = pb::ModelProto {
            metadata_props: card
                .map(|json| pb::StringStringEntryProto {
                    key: CARD_KEY.into(),
                    value: json.into(),
                })
                .into_iter()
                .collect(),
            ..test_model(pb::GraphProto {
                name: "tiny".into(),
                node: nodes,
                initializer: initializers,
                input: vec![value_info(input, input_dims)],
                output: outputs
                    .iter()
                    .map(|&(name, width)| {
                        value_info(name, &[batch.clone(), Dim::DimValue(width as i64)])
                    })
                    .collect(),
                ..Default::default()
            })
        };
        model.encode_to_vec()
    }

    fn nchw(batch: Dim) -> Vec<Dim> {
        vec![
            batch,
            Dim::DimValue(3),
            Dim::DimValue(H as i64),
            Dim::DimValue(W as i64),
        ]
    }

    const OUTPUTS: [(&str, usize); 4] = [
        ("embedding", 5),
        ("attr_gender", 2),
        ("attr_age", 4),
        ("person", 1),
    ];

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Crop `i`: channel `c` holds the values `i + c + k / 8` (k the pixel index).
    fn crops(n: usize) -> Vec<f32> {
        let mut v = Vec::new();
        for i in 0..n {
            for c in 0..3 {
                v.extend((0..H * W).map(|k| (i + c) as f32 + k as f32 / 8.0));
            }
        }
        v
    }

    /// What the graph computes for `crops(..)[i]`, by hand: per-channel means, then `W x + b`.
    fn expected(name: &str, width: usize, i: usize) -> Vec<f32> {
        let pixel_mean = (0..H * W).map(|k| k as f32 / 8.0).sum::<f32>() / (H * W) as f32;
        let x: Vec<f32> = (0..3).map(|c| (i + c) as f32 + pixel_mean).collect();
        let (w, b) = weights(name, width);
        (0..width)
            .map(|r| b[r] + (0..3).map(|c| w[r * 3 + c] * x[c]).sum::<f32>())
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    /// The fingerprint follows the graph and weights (and the input preprocessing), not the card's
    /// prose: a gallery survives a re-export, not a retraining.
    #[test]
    fn fingerprints_follow_the_weights_not_the_card() {
        let dir = tempfile::tempdir().unwrap();
        let dims = nchw(Dim::DimParam("N".into()));
        let bytes = onnx(Some(&card().to_json()), "image", &dims, &OUTPUTS);
        let load = |name: &str, bytes: &[u8]| Model::load(write(&dir, name, bytes), 1).unwrap();
        let base = load("base.onnx", &bytes).fingerprint();

        // Exported elsewhere: another training summary, producer and doc string.
        let mut other = card();
        other.training.data = "/somewhere/else/market1501".into();
        other.training.epochs = 50;
        let mut proto = pb::ModelProto::decode(
            onnx(Some(&other.to_json()), "image", &dims, &OUTPUTS).as_slice(),
        )
        .unwrap();
        proto.producer_name = "another exporter".into();
        proto.graph.as_mut().unwrap().doc_string = "exported on another machine".into();
        assert_eq!(
            load("again.onnx", &proto.encode_to_vec()).fingerprint(),
            base
        );

        // One weight retrained.
        let graph = proto.graph.as_mut().unwrap();
        graph.initializer[0].float_data[1] += 1e-3;
        assert_ne!(
            load("retrained.onnx", &proto.encode_to_vec()).fingerprint(),
            base
        );

        // Other preprocessing gives other embeddings from the same weights.
        let mut shifted = card();
        shifted.input.mean[0] += 0.01;
        let bytes = onnx(Some(&shifted.to_json()), "image", &dims, &OUTPUTS);
        assert_ne!(load("shifted.onnx", &bytes).fingerprint(), base);
    }

    /// Weights stored as half floats with a `Cast` to f32 (what `export --half` writes) give the
    /// outputs of the same weights stored as f32 (`onnx_file`'s tests check that the plan casts
    /// nothing per run).
    #[test]
    fn half_float_weights_are_widened_once_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let dims = nchw(Dim::DimParam("N".into()));
        let bytes = onnx(Some(&card().to_json()), "image", &dims, &OUTPUTS);
        let mut rounded = pb::ModelProto::decode(bytes.as_slice()).unwrap();
        let mut half = rounded.clone();
        fn weights(graph: &mut pb::GraphProto) -> impl Iterator<Item = &mut pb::TensorProto> {
            let all = graph.initializer.iter_mut();
            all.filter(|t| t.name.ends_with(".weight"))
        }
        for t in weights(rounded.graph.as_mut().unwrap()) {
            for v in t.float_data.iter_mut() {
                *v = f16::from_f32(*v).to_f32();
            }
        }
        let graph = half.graph.as_mut().unwrap();
        let mut names = Vec::new();
        for t in weights(graph) {
            t.raw_data = t
                .float_data
                .drain(..)
                .flat_map(|v| f16::from_f32(v).to_le_bytes())
                .collect();
            t.data_type = crate::onnx_file::ONNX_FLOAT16;
            let stored = format!("{}.f16", t.name);
            names.push(std::mem::replace(&mut t.name, stored));
        }
        let to_float = pb::AttributeProto {
            name: "to".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        };
        for (i, name) in names.iter().enumerate() {
            let cast = node(
                "Cast",
                &[&format!("{name}.f16")],
                name,
                vec![to_float.clone()],
            );
            graph.node.insert(i, cast);
        }

        let load = |name: &str, proto: &pb::ModelProto| {
            Model::load(write(&dir, name, &proto.encode_to_vec()), 2).unwrap()
        };
        let (f32_model, half_model) = (load("f32.onnx", &rounded), load("half.onnx", &half));
        assert_eq!(
            half_model.run(&crops(2), 2).unwrap(),
            f32_model.run(&crops(2), 2).unwrap()
        );
        // The fingerprint is of the file as stored.
        assert_ne!(half_model.fingerprint(), f32_model.fingerprint());
    }

    /// Several batches on several threads give what one batch after another gives, in order.
    #[test]
    fn crops_run_side_by_side_give_the_same_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let dims = nchw(Dim::DimParam("N".into()));
        let bytes = onnx(Some(&card().to_json()), "image", &dims, &OUTPUTS);
        let model = Model::load(write(&dir, "tiny.onnx", &bytes), 2).unwrap();
        let input = crops(5);
        let crop = 3 * H * W;
        let one_by_one: Vec<Outputs> = input
            .chunks(2 * crop)
            .map(|batch| model.run(batch, batch.len() / crop).unwrap())
            .collect();
        // Two side by side and one left over; three side by side; one after another.
        for threads in [2, 3, 1] {
            let outputs = model.run_crops_on(&input, 5, threads).unwrap();
            assert_eq!(outputs, one_by_one, "{threads} threads");
        }
        assert!(model.run_crops(&[], 0).unwrap().is_empty());
        assert!(matches!(
            model.run_crops(&input, 4),
            Err(ModelError::InputLength { n: 4, .. })
        ));
    }

    #[test]
    fn loads_and_runs_a_tiny_model() {
        let dir = tempfile::tempdir().unwrap();
        let json = card().to_json();
        let path = write(
            &dir,
            "tiny.onnx",
            &onnx(
                Some(&json),
                "image",
                &nchw(Dim::DimParam("N".into())),
                &OUTPUTS,
            ),
        );
        let model = Model::load(&path, 3).unwrap();
        // The runtime may load once and run on another thread.
        fn send_sync<T: Send + Sync>(_: &T) {}
        send_sync(&model);
        assert_eq!(model.batch(), 3);
        assert_eq!(model.card(), &card());

        // Two crops in a batch of three: the third is padding.
        let out = model.run(&crops(2), 2).unwrap();
        assert_eq!(out.len(), 2);
        for i in 0..2 {
            assert_close(out.embedding(i).unwrap(), &expected("embedding", 5, i));
            assert_close(
                out.attribute_logits(i, 0).unwrap(),
                &expected("attr_gender", 2, i),
            );
            assert_close(
                out.attribute_logits(i, 1).unwrap(),
                &expected("attr_age", 4, i),
            );
            assert_close(&[out.person_logit(i).unwrap()], &expected("person", 1, i));
            let p = out.attribute_probabilities(i, 1).unwrap();
            assert_close(&p, &softmax(&expected("attr_age", 4, i)));
        }
        assert_eq!(out.embeddings().unwrap().len(), 10);
        assert_eq!(out.embedding(2), None);
        assert_eq!(out.attribute_logits(0, 2), None);
        assert_eq!(out.person_logit(2), None);

        // A full batch gives the same outputs for the same crops.
        let full = model.run(&crops(3), 3).unwrap();
        assert_eq!(full.embedding(1), out.embedding(1));
        assert!(model.run(&[], 0).unwrap().is_empty());

        assert!(matches!(
            model.run(&crops(4), 4),
            Err(ModelError::TooManyCrops { n: 4, batch: 3 })
        ));
        assert!(matches!(
            model.run(&crops(2)[1..], 2),
            Err(ModelError::InputLength {
                found: 47,
                expected: 48,
                ..
            })
        ));
    }

    #[test]
    fn pre_detector_without_embedding() {
        let mut c = card();
        c.task = Task::PreDetector;
        c.embedding = None;
        c.attributes.clear();
        let dir = tempfile::tempdir().unwrap();
        let bytes = onnx(
            Some(&c.to_json()),
            "image",
            &nchw(Dim::DimValue(1)),
            &[("person", 1)],
        );
        let model = Model::load(write(&dir, "pre.onnx", &bytes), 1).unwrap();
        let out = model.run(&crops(1), 1).unwrap();
        assert_eq!(out.embeddings(), None);
        assert_eq!(out.embedding(0), None);
        assert_close(&[out.person_logit(0).unwrap()], &expected("person", 1, 0));
    }

    /// Loads `bytes` as a model and returns the error message.
    fn refusal(bytes: &[u8], batch: usize) -> (ModelError, String) {
        let dir = tempfile::tempdir().unwrap();
        let err = Model::load(write(&dir, "bad.onnx", bytes), batch).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("bad.onnx") || matches!(err, ModelError::ZeroBatch),
            "{msg}"
        );
        (err, msg)
    }

    #[test]
    fn refuses_files_that_are_not_edge_reid_models() {
        let json = card().to_json();
        let n = || nchw(Dim::DimParam("N".into()));

        let (err, _) = refusal(b"this is not an ONNX file, just some text\n", 1);
        assert!(matches!(err, ModelError::NotOnnx { .. }), "{err:?}");
        let (err, _) = refusal(&pb::ModelProto::default().encode_to_vec(), 1);
        assert!(matches!(err, ModelError::NotOnnx { .. }), "{err:?}");
        let (err, _) = refusal(&onnx(None, "image", &n(), &OUTPUTS), 1);
        assert!(matches!(err, ModelError::MissingCard { .. }), "{err:?}");
        let (err, _) = refusal(&onnx(Some("{not json"), "image", &n(), &OUTPUTS), 1);
        assert!(matches!(err, ModelError::Card { .. }), "{err:?}");
        let (err, _) = refusal(&onnx(Some(&json), "image", &n(), &OUTPUTS), 0);
        assert!(matches!(err, ModelError::ZeroBatch), "{err:?}");

        let missing = Model::load("/nonexistent/model.onnx", 1).unwrap_err();
        assert!(matches!(missing, ModelError::Io { .. }), "{missing:?}");
        assert!(missing.to_string().contains("/nonexistent/model.onnx"));
    }

    #[test]
    fn refuses_cards_that_do_not_match_the_graph() {
        let json = card().to_json();
        let n = || nchw(Dim::DimParam("N".into()));
        let mismatch = |bytes: Vec<u8>, batch: usize, needle: &str| {
            let (err, msg) = refusal(&bytes, batch);
            assert!(matches!(err, ModelError::Mismatch { .. }), "{err:?}");
            assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
        };
        // The card's output "attr_age" is missing from the graph.
        mismatch(
            onnx(Some(&json), "image", &n(), &OUTPUTS[..2]),
            1,
            "\"attr_age\"",
        );
        // Wrong widths: an attribute, the embedding, the person logit.
        let widths = |e, g, p| {
            [
                ("embedding", e),
                ("attr_gender", g),
                ("attr_age", 4),
                ("person", p),
            ]
        };
        mismatch(
            onnx(Some(&json), "image", &n(), &widths(5, 3, 1)),
            2,
            "attribute \"gender\"",
        );
        mismatch(
            onnx(Some(&json), "image", &n(), &widths(6, 2, 1)),
            2,
            "the embedding",
        );
        mismatch(
            onnx(Some(&json), "image", &n(), &widths(5, 2, 2)),
            2,
            "the person logit",
        );
        // The input is named differently.
        mismatch(onnx(Some(&json), "pixels", &n(), &OUTPUTS), 1, "\"image\"");
        // The graph fixes a height other than the card's.
        let mut dims = n();
        dims[2] = Dim::DimValue(8);
        mismatch(onnx(Some(&json), "image", &dims, &OUTPUTS), 1, "axis 2");
        mismatch(onnx(Some(&json), "image", &n()[..3], &OUTPUTS), 1, "rank 3");

        // The graph fixes the batch size.
        let (err, _) = refusal(
            &onnx(Some(&json), "image", &nchw(Dim::DimValue(1)), &OUTPUTS),
            4,
        );
        assert!(
            matches!(
                err,
                ModelError::FixedBatch {
                    fixed: 1,
                    asked: 4,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn two_threads_give_the_outputs_of_one() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/small-64x32.onnx");
        let model = Model::load(&path, 2).unwrap();
        let len = 2 * 3 * model.card().input.height * model.card().input.width;
        let input: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 255) as f32 / 64.0 - 2.0)
            .collect();
        set_threads(1);
        let one = model.run(&input, 2).unwrap();
        set_threads(2);
        let two = model.run(&input, 2);
        set_threads(1);
        let two = two.unwrap();
        let (a, b) = (one.embeddings().unwrap(), two.embeddings().unwrap());
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + x.abs())),
            "{a:?}\n{b:?}"
        );
        for attribute in 0..model.card().attributes.len() {
            let (x, y) = (
                one.attribute_logits(1, attribute),
                two.attribute_logits(1, attribute),
            );
            assert_close(x.unwrap(), y.unwrap());
        }
    }

    #[test]
    fn softmax_and_sigmoid() {
        let p = softmax(&[1000.0, 1000.0 + 2f32.ln()]);
        assert_close(&p, &[1.0 / 3.0, 2.0 / 3.0]);
        assert_close(&softmax(&[0.0; 4]), &[0.25; 4]);
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(3f32.ln()) - 0.75).abs() < 1e-6);
    }
}
