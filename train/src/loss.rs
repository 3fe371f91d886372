//! The training losses (paper sections 3.1-3.3): the attribute loss (mean over the 12 tasks of
//! their cross-entropies), the triplet loss on P x K batches, the person-vs-junk binary
//! cross-entropy, and Kendall et al.'s learned weighting of the attribute and re-ID losses.
//!
//! Distances are Euclidean, `sqrt(|a - b|^2 + 1e-12)`: the epsilon keeps the gradient finite when
//! two embeddings coincide and changes no distance that matters.

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};
use edge_reid::attributes::{ATTRIBUTES, NUM_ATTRIBUTES, UNLABELLED};
use edge_reid::distance::DistanceMetric;
use serde::{Deserialize, Serialize};

/// Added to squared distances before the square root.
const DISTANCE_EPS: f64 = 1e-12;

/// The metric the triplet loss trains the embedding for: evaluation, calibration, the submission
/// files and the exported card all compare embeddings with it.
pub const EMBEDDING_METRIC: DistanceMetric = DistanceMetric::Euclidean;

/// Why a loss could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// Not one logit tensor per attribute.
    #[error("expected {NUM_ATTRIBUTES} attribute logit tensors, got {0}")]
    AttributeCount(usize),
    /// An attribute's logits do not have the `[N, classes]` shape of the targets and schema.
    #[error("attribute {attribute}: logits have shape {shape:?}, expected [{rows}, {classes}]")]
    LogitShape {
        /// Attribute name.
        attribute: &'static str,
        /// The logits' shape.
        shape: Vec<usize>,
        /// Rows of the targets.
        rows: usize,
        /// Classes of the attribute.
        classes: usize,
    },
    /// Attribute targets that are not a u32 `[N, 12]` tensor.
    #[error(
        "attribute targets must be a u32 tensor [N, {NUM_ATTRIBUTES}], got {dtype:?} {shape:?}"
    )]
    Targets {
        /// The targets' element type.
        dtype: DType,
        /// The targets' shape.
        shape: Vec<usize>,
    },
    /// A class index outside the attribute's classes.
    #[error(
        "attribute {attribute}: target class {class} in row {row} is out of range (0..{classes})"
    )]
    TargetClass {
        /// Attribute name.
        attribute: &'static str,
        /// Row of the batch.
        row: usize,
        /// The bad class index.
        class: u32,
        /// Classes of the attribute.
        classes: usize,
    },
    /// Embeddings that are not `[N, D]` or a label count that differs from N.
    #[error("{labels} identity labels for embeddings of shape {shape:?} (expected [N, D] with N = labels)")]
    Labels {
        /// Number of labels.
        labels: usize,
        /// The embeddings' shape.
        shape: Vec<usize>,
    },
    /// No anchor has both a positive and a negative (the batch needs two identities, one of them
    /// with two images; the P x K sampler gives K >= 2).
    #[error("the batch has no valid triplet; identity labels {0:?}")]
    NoTriplet(Vec<u32>),
    /// Person logits and targets of different shapes.
    #[error("person logits have shape {logits:?} but targets {targets:?}")]
    PersonShape {
        /// The logits' shape.
        logits: Vec<usize>,
        /// The targets' shape.
        targets: Vec<usize>,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The attribute loss: the mean over the 12 tasks of the cross-entropy (mean over the batch) of
/// `logits[i]` (`[N, classes_i]`) against column `i` of `targets` (`[N, 12]` u32 class indices).
/// Rows whose target is [`UNLABELLED`] are left out of that task's mean (PyTorch's
/// `ignore_index`); a task no row labels adds 0.
pub fn attribute_loss(logits: &[Tensor], targets: &Tensor) -> Result<Tensor, LossError> {
    if logits.len() != NUM_ATTRIBUTES {
        return Err(LossError::AttributeCount(logits.len()));
    }
    let rows = match targets.dims() {
        &[rows, NUM_ATTRIBUTES] if targets.dtype() == DType::U32 => rows,
        shape => {
            return Err(LossError::Targets {
                dtype: targets.dtype(),
                shape: shape.to_vec(),
            })
        }
    };
    let rows_of_targets = targets.to_vec2::<u32>()?;
    for (row, classes) in rows_of_targets.iter().enumerate() {
        for (a, &class) in ATTRIBUTES.iter().zip(classes) {
            if class as usize >= a.classes() && class != u32::from(UNLABELLED) {
                return Err(LossError::TargetClass {
                    attribute: a.name,
                    row,
                    class,
                    classes: a.classes(),
                });
            }
        }
    }
    let mut losses = Vec::with_capacity(NUM_ATTRIBUTES);
    for (i, (a, l)) in ATTRIBUTES.iter().zip(logits).enumerate() {
        if l.dims() != [rows, a.classes()] {
            return Err(LossError::LogitShape {
                attribute: a.name,
                shape: l.dims().to_vec(),
                rows,
                classes: a.classes(),
            });
        }
        let target = targets.narrow(1, i, 1)?.squeeze(1)?.contiguous()?;
        let labelled: Vec<u32> = (0..rows as u32)
            .filter(|&r| rows_of_targets[r as usize][i] != u32::from(UNLABELLED))
            .collect();
        losses.push(if labelled.len() == rows {
            candle_nn::loss::cross_entropy(l, &target)?
        } else if labelled.is_empty() {
            Tensor::zeros((), l.dtype(), l.device())?
        } else {
            let keep = Tensor::new(labelled.as_slice(), l.device())?;
            candle_nn::loss::cross_entropy(
                &l.index_select(&keep, 0)?,
                &target.index_select(&keep, 0)?,
            )?
        });
    }
    Ok((Tensor::stack(&losses, 0)?.sum_all()? / NUM_ATTRIBUTES as f64)?)
}

/// Which triplets of a batch the triplet loss uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TripletMining {
    /// Every valid triplet (a, p, n), averaged over those with a positive loss (the paper).
    All,
    /// Per anchor its farthest positive and nearest negative, averaged over anchors (Hermans et
    /// al., "In defense of the triplet loss").
    BatchHard,
}

/// Euclidean distances between all rows of `x` (`[N, D]`), `[N, N]`.
fn pairwise_distances(x: &Tensor) -> candle_core::Result<Tensor> {
    let diff = x.unsqueeze(1)?.broadcast_sub(&x.unsqueeze(0)?)?;
    (diff.sqr()?.sum(2)? + DISTANCE_EPS)?.sqrt()
}

/// The triplet loss `[m + D(a,p) - D(a,n)]_+` of `embeddings` (`[N, D]`) whose identities are
/// `labels`, with margin `margin` and the triplets chosen by `mining`. Anchors without a positive
/// (an identity seen once) serve only as negatives.
pub fn triplet_loss(
    embeddings: &Tensor,
    labels: &[u32],
    margin: f64,
    mining: TripletMining,
) -> Result<Tensor, LossError> {
    let n = labels.len();
    if embeddings.rank() != 2 || embeddings.dim(0)? != n {
        return Err(LossError::Labels {
            labels: n,
            shape: embeddings.dims().to_vec(),
        });
    }
    let (dtype, dev) = (embeddings.dtype(), embeddings.device());
    let pos = |a: usize, p: usize| a != p && labels[a] == labels[p];
    let neg = |a: usize, k: usize| labels[a] != labels[k];
    let mask = |values: Vec<f32>, shape: &[usize]| {
        Tensor::from_vec(values, shape, dev).and_then(|t| t.to_dtype(dtype))
    };
    let d = pairwise_distances(embeddings)?;
    match mining {
        TripletMining::All => {
            let mut valid = vec![0f32; n * n * n];
            for (i, v) in valid.iter_mut().enumerate() {
                let (a, p, k) = (i / (n * n), i / n % n, i % n);
                *v = (pos(a, p) && neg(a, k)) as u8 as f32;
            }
            if !valid.contains(&1.0) {
                return Err(LossError::NoTriplet(labels.to_vec()));
            }
            let valid = mask(valid, &[n, n, n])?;
            let losses = (d.unsqueeze(2)?.broadcast_sub(&d.unsqueeze(1)?)? + margin)?
                .relu()?
                .mul(&valid)?;
            let active = losses.gt(0f64)?.to_dtype(dtype)?.sum_all()?.maximum(1f64)?;
            Ok(losses.sum_all()?.div(&active)?)
        }
        TripletMining::BatchHard => {
            let anchors: Vec<f32> = (0..n)
                .map(|a| ((0..n).any(|p| pos(a, p)) && (0..n).any(|k| neg(a, k))) as u8 as f32)
                .collect();
            let count = anchors.iter().sum::<f32>();
            if count == 0.0 {
                return Err(LossError::NoTriplet(labels.to_vec()));
            }
            let pair_mask = |f: &dyn Fn(usize, usize) -> bool| {
                let v = (0..n * n).map(|i| f(i / n, i % n) as u8 as f32).collect();
                mask(v, &[n, n])
            };
            let pos_mask = pair_mask(&pos)?;
            // Non-negatives are pushed out of the minimum by a distance no negative reaches.
            let far = ((1.0 - pair_mask(&neg)?)? * 1e9)?;
            let hardest_pos = (&d * pos_mask)?.max(1)?;
            let hardest_neg = (&d + far)?.min(1)?;
            let losses = ((hardest_pos - hardest_neg)? + margin)?.relu()?;
            let losses = losses.mul(&mask(anchors, &[n])?)?;
            Ok((losses.sum_all()? / count as f64)?)
        }
    }
}

/// Person-vs-junk loss: binary cross-entropy of `logits` against `targets` (1 = person, 0 = junk;
/// same shape, e.g. `[N, 1]`), averaged, in the stable form `max(x,0) - x t + log(1 + e^-|x|)`.
pub fn person_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor, LossError> {
    if logits.dims() != targets.dims() {
        return Err(LossError::PersonShape {
            logits: logits.dims().to_vec(),
            targets: targets.dims().to_vec(),
        });
    }
    let targets = targets.to_dtype(logits.dtype())?;
    let softplus = ((logits.abs()?.neg()?.exp()? + 1.0)?).log()?;
    let loss = ((logits.relu()? - (logits * targets)?)? + softplus)?;
    Ok(loss.mean_all()?)
}

/// Kendall et al.'s uncertainty weighting as the paper's Eq. 3 prints it:
/// `exp(-s_ar) L_ar + exp(-2 s_id) L_id + s_ar + s_id`, with `s_ar` and `s_id` learned scalars
/// starting at 0 (variables `s_ar`, `s_id` of the `VarBuilder`, so the optimiser updates them).
#[derive(Debug, Clone)]
pub struct KendallWeights {
    s_ar: Tensor,
    s_id: Tensor,
}

impl KendallWeights {
    /// Creates (or reads) the two scalar variables in `vb`.
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            s_ar: vb.get_with_hints((), "s_ar", Init::Const(0.))?,
            s_id: vb.get_with_hints((), "s_id", Init::Const(0.))?,
        })
    }

    /// The weighted multi-task loss of the scalar losses `l_ar` and `l_id`.
    pub fn combine(&self, l_ar: &Tensor, l_id: &Tensor) -> candle_core::Result<Tensor> {
        let ar = self.s_ar.neg()?.exp()?.mul(l_ar)?;
        let id = (&self.s_id * -2.0)?.exp()?.mul(l_id)?;
        ar + id + &self.s_ar + &self.s_id
    }

    /// Current `s_ar` (log sigma of the attribute task).
    pub fn s_ar(&self) -> candle_core::Result<f32> {
        self.s_ar.to_dtype(DType::F32)?.to_scalar()
    }

    /// Current `s_id` (log sigma of the re-ID task).
    pub fn s_id(&self) -> candle_core::Result<f32> {
        self.s_id.to_dtype(DType::F32)?.to_scalar()
    }
}

/// Person-vs-junk targets `[n, 1]`: 1 for an identified person, 0 for junk or a distractor.
pub(crate) fn person_targets(
    batch: &crate::data::Batch,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let target: Vec<f32> = batch
        .person
        .iter()
        .map(|&p| f32::from(u8::from(p)))
        .collect();
    Tensor::from_vec(target, (batch.n, 1), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    // The reference values below come from PyTorch; every script starts with
    // import torch, math, itertools
    // import torch.nn.functional as F
    // def wave(n, a, b): return torch.tensor([math.sin(i * a + b) for i in range(n)])
    // def r(t): return [round(v, 6) for v in t.flatten().tolist()]

    /// `wave` of the torch scripts.
    fn wave(n: usize, a: f64, b: f64) -> Vec<f32> {
        (0..n).map(|i| (i as f64 * a + b).sin() as f32).collect()
    }

    fn close(got: &Tensor, want: &[f32], tol: f32) {
        let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol, "index {i}: got {g}, want {w}");
        }
    }

    // Triplet embeddings: 8 points near one centre per identity (one identity seen once).
    // lab = [3, 3, 7, 7, 7, 1, 1, 9]; m = 0.3
    // centers = torch.tensor([[math.cos(l), math.sin(l), math.cos(2 * l), math.sin(2 * l)] for l in lab])
    // x = (wave(32, 0.53, 0.2).reshape(8, 4) * 0.5 + centers).requires_grad_()
    const LABELS: [u32; 8] = [3, 3, 7, 7, 7, 1, 1, 9];

    fn triplet_embeddings() -> Var {
        let noise = wave(32, 0.53, 0.2);
        let values = (0..32)
            .map(|i| {
                let l = LABELS[i / 4] as f32;
                let centre = [l.cos(), l.sin(), (2.0 * l).cos(), (2.0 * l).sin()][i % 4];
                noise[i] * 0.5 + centre
            })
            .collect();
        Var::from_vec(values, (8, 4), &Device::Cpu).unwrap()
    }

    // All valid triplets, averaged over the 16 of 54 with a positive loss:
    // dist = lambda i, j: (x[i] - x[j]).norm()
    // terms = [torch.relu(m + dist(a, p) - dist(a, k)) for a, p, k in itertools.product(range(8), repeat=3)
    //          if a != p and lab[a] == lab[p] and lab[a] != lab[k]]
    // pos = [t for t in terms if t > 0]
    // print("all", len(terms), len(pos))
    // loss = sum(pos) / len(pos); loss.backward(); print(round(loss.item(), 6)); print(r(x.grad))
    #[test]
    fn triplet_all_matches_torch() {
        let x = triplet_embeddings();
        let loss = triplet_loss(x.as_tensor(), &LABELS, 0.3, TripletMining::All).unwrap();
        close(&loss, &[0.629286], 1e-5);
        let grads = loss.backward().unwrap();
        close(grads.get(x.as_tensor()).unwrap(), &ALL_GRAD, 1e-5);
    }

    const ALL_GRAD: [f32; 32] = [
        -0.015493, 0.011016, 0.034503, 0.048522, 0.017582, 0.007228, -0.069202, -0.097153,
        -0.27713, -0.032352, -0.273618, 0.042525, -0.00895, 0.214156, 0.04929, 0.191736, 0.008946,
        0.131077, -0.143417, -0.027074, 0.07322, -0.188595, 0.089334, -0.132833, 0.203914,
        -0.124286, 0.278411, -0.074354, -0.002089, -0.018245, 0.034699, 0.048631,
    ];

    // Batch hard (continuing the script above):
    // x.grad = None
    // hard = []
    // for a in range(8):
    //     ps = [dist(a, p) for p in range(8) if p != a and lab[p] == lab[a]]
    //     ns = [dist(a, k) for k in range(8) if lab[k] != lab[a]]
    //     if ps and ns: hard.append(torch.relu(m + max(ps) - min(ns)))
    // print("hard", len(hard), sum(1 for h in hard if h > 0))
    // loss = sum(hard) / len(hard); loss.backward(); print(round(loss.item(), 6)); print(r(x.grad))
    #[test]
    fn triplet_batch_hard_matches_torch() {
        let x = triplet_embeddings();
        let loss = triplet_loss(x.as_tensor(), &LABELS, 0.3, TripletMining::BatchHard).unwrap();
        close(&loss, &[0.825927], 1e-5);
        let grads = loss.backward().unwrap();
        close(grads.get(x.as_tensor()).unwrap(), &HARD_GRAD, 1e-5);
    }

    const HARD_GRAD: [f32; 32] = [
        -0.035412, 0.02518, 0.078864, 0.110908, 0.040187, 0.016522, -0.158177, -0.222065,
        -0.225305, -0.071492, -0.411114, -0.13793, 0.012273, 0.293732, -0.007059, 0.18298,
        -0.029866, 0.035688, -0.068058, 0.002321, -0.023963, -0.259739, 0.088805, -0.087019,
        0.266862, 0.001812, 0.397426, 0.039648, -0.004774, -0.041702, 0.079313, 0.111156,
    ];

    #[test]
    fn triplet_rejects_batches_without_triplets() {
        let x = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
        for mining in [TripletMining::All, TripletMining::BatchHard] {
            let err = triplet_loss(&x, &[1, 2, 3], 0.3, mining).unwrap_err();
            assert!(matches!(err, LossError::NoTriplet(_)), "{err}");
            let err = triplet_loss(&x, &[1, 1, 1], 0.3, mining).unwrap_err();
            assert!(matches!(err, LossError::NoTriplet(_)), "{err}");
            let err = triplet_loss(&x, &[1, 1], 0.3, mining).unwrap_err();
            assert!(matches!(err, LossError::Labels { labels: 2, .. }), "{err}");
        }
    }

    // Three rows, every attribute:
    // classes = [4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 8, 9]
    // logits = [(3 * wave(3 * c, 0.61, 0.1 * i)).reshape(3, c).requires_grad_() for i, c in enumerate(classes)]
    // targets = [[(r * 5 + i * 3) % c for i, c in enumerate(classes)] for r in range(3)]
    // loss = sum(F.cross_entropy(l, torch.tensor([t[i] for t in targets])) for i, l in enumerate(logits)) / 12
    // loss.backward()
    // print(targets); print(round(loss.item(), 6)); print(r(torch.cat([l.grad.flatten() for l in logits])))
    #[test]
    fn attribute_loss_matches_torch() {
        let dev = &Device::Cpu;
        let logits: Vec<Var> = ATTRIBUTES
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let c = a.classes();
                let v = wave(3 * c, 0.61, 0.1 * i as f64)
                    .iter()
                    .map(|x| 3.0 * x)
                    .collect();
                Var::from_vec(v, (3, c), dev).unwrap()
            })
            .collect();
        let targets: Vec<u32> = (0..3)
            .flat_map(|r| {
                ATTRIBUTES
                    .iter()
                    .enumerate()
                    .map(move |(i, a)| ((r * 5 + i * 3) % a.classes()) as u32)
            })
            .collect();
        let targets = Tensor::from_vec(targets, (3, 12), dev).unwrap();
        let tensors: Vec<Tensor> = logits.iter().map(|v| v.as_tensor().clone()).collect();
        let loss = attribute_loss(&tensors, &targets).unwrap();
        close(&loss, &[1.658011], 1e-5);
        let grads = loss.backward().unwrap();
        let grad: Vec<Tensor> = tensors
            .iter()
            .map(|t| grads.get(t).unwrap().flatten_all().unwrap())
            .collect();
        close(&Tensor::cat(&grad, 0).unwrap(), &CE_GRAD, 1e-5);
    }

    const CE_GRAD: [f32; 117] = [
        -0.027108, 0.003735, 0.011205, 0.012168, 0.022547, -0.023499, 0.000736, 0.000216, 0.000343,
        0.000778, -0.023959, 0.022838, 0.004453, -0.004453, -0.013212, 0.013212, 0.02357, -0.02357,
        -0.023021, 0.023021, 0.015799, -0.015799, -0.004053, 0.004053, 0.005143, -0.005143,
        -0.010795, 0.010795, 0.023815, -0.023815, -0.022159, 0.022159, 0.018093, -0.018093,
        -0.003934, 0.003934, 0.006192, -0.006192, -0.008668, 0.008668, 0.023811, -0.023811,
        -0.020908, 0.020908, 0.020021, -0.020021, -0.004061, 0.004061, 0.007658, -0.007658,
        -0.006956, 0.006956, 0.023557, -0.023557, -0.019221, 0.019221, 0.021513, -0.021513,
        -0.004449, 0.004449, 0.009562, -0.009562, -0.00568, 0.00568, 0.023027, -0.023027, 0.007445,
        0.011951, 0.006507, 0.001496, 0.000247, 5.6e-05, -0.027748, 4.7e-05, 0.000171, 0.001026,
        0.004936, -0.016987, 0.008083, 0.002303, 0.000393, 7.6e-05, -0.027747, 3.5e-05, 0.000108,
        0.000611, 0.003362, 0.009749, 0.010146, 0.003736, 0.008786, 0.011829, 0.005453, 0.001138,
        0.000189, 4.8e-05, -0.027747, 5.6e-05, 0.000248, 0.00138, 0.00603, -0.016613, 0.007013,
        0.001767, 0.000294, 6.2e-05, 2.9e-05, 3.9e-05, 0.000136, 0.000801, 0.004125, 0.010292,
        0.008946, 0.00285, 0.000503, -0.027686, 3.2e-05,
    ];

    /// An unlabelled target leaves its row out of that attribute's mean, as PyTorch's
    /// `ignore_index`: the same as the loss of the batch without that row for that attribute.
    #[test]
    fn attribute_loss_skips_unlabelled_rows() {
        let dev = &Device::Cpu;
        let logits: Vec<Tensor> = ATTRIBUTES
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let v: Vec<f32> = wave(3 * a.classes(), 0.37, 0.2 * i as f64);
                Tensor::from_vec(v, (3, a.classes()), dev).unwrap()
            })
            .collect();
        let mut t: Vec<u32> = (0..36).map(|k| (k % 2) as u32).collect();
        let unlabelled = u32::from(UNLABELLED);
        t[12 + 10] = unlabelled; // row 1's upcolor
        (0..3).for_each(|r| t[r * 12 + 11] = unlabelled); // downcolor nowhere
        let targets = Tensor::from_vec(t.clone(), (3, 12), dev).unwrap();
        let got = attribute_loss(&logits, &targets)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let ce = |i: usize, rows: &[u32]| {
            let keep = Tensor::new(rows, dev).unwrap();
            let target: Vec<u32> = rows.iter().map(|&r| t[r as usize * 12 + i]).collect();
            let target = Tensor::new(target.as_slice(), dev).unwrap();
            let l = logits[i].index_select(&keep, 0).unwrap();
            candle_nn::loss::cross_entropy(&l, &target)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let want = ((0..10).map(|i| ce(i, &[0, 1, 2])).sum::<f32>() + ce(10, &[0, 2])) / 12.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn attribute_loss_rejects_bad_targets() {
        let dev = &Device::Cpu;
        let logits: Vec<Tensor> = ATTRIBUTES
            .iter()
            .map(|a| Tensor::zeros((2, a.classes()), DType::F32, dev).unwrap())
            .collect();
        let mut t = vec![0u32; 24];
        t[12 + 10] = 8; // upcolor has 8 classes
        let targets = Tensor::from_vec(t, (2, 12), dev).unwrap();
        match attribute_loss(&logits, &targets).unwrap_err() {
            LossError::TargetClass {
                attribute,
                row,
                class,
                ..
            } => {
                assert_eq!((attribute, row, class), ("upcolor", 1, 8))
            }
            e => panic!("{e}"),
        }
        let ok = Tensor::zeros((2, 12), DType::U32, dev).unwrap();
        let err = attribute_loss(&logits[..11], &ok).unwrap_err();
        assert!(matches!(err, LossError::AttributeCount(11)), "{err}");
        let err = attribute_loss(&logits, &ok.to_dtype(DType::F32).unwrap()).unwrap_err();
        assert!(matches!(err, LossError::Targets { .. }), "{err}");
        let three = Tensor::zeros((3, 12), DType::U32, dev).unwrap();
        let err = attribute_loss(&logits, &three).unwrap_err();
        assert!(
            matches!(
                err,
                LossError::LogitShape {
                    attribute: "age",
                    ..
                }
            ),
            "{err}"
        );
    }

    // Large logits check the stable form:
    // x = torch.tensor([[2.5], [-40.0], [0.3], [35.0]], requires_grad=True)
    // t = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    // loss = F.binary_cross_entropy_with_logits(x, t); loss.backward()
    // print(round(loss.item(), 6), r(x.grad))
    #[test]
    fn person_loss_matches_torch() {
        let dev = &Device::Cpu;
        let x = Var::from_vec(vec![2.5f32, -40.0, 0.3, 35.0], (4, 1), dev).unwrap();
        let t = Tensor::from_vec(vec![1f32, 0.0, 0.0, 0.0], (4, 1), dev).unwrap();
        let loss = person_loss(x.as_tensor(), &t).unwrap();
        close(&loss, &[8.983312], 1e-5);
        let grads = loss.backward().unwrap();
        close(
            grads.get(x.as_tensor()).unwrap(),
            &[-0.018965, 0.0, 0.143611, 0.25],
            1e-6,
        );
        let err = person_loss(x.as_tensor(), &t.squeeze(1).unwrap()).unwrap_err();
        assert!(matches!(err, LossError::PersonShape { .. }), "{err}");
    }

    // s_ar = torch.tensor(0.3, requires_grad=True); s_id = torch.tensor(-0.2, requires_grad=True)
    // l_ar = torch.tensor(1.7, requires_grad=True); l_id = torch.tensor(0.9, requires_grad=True)
    // total = torch.exp(-s_ar) * l_ar + torch.exp(-2 * s_id) * l_id + s_ar + s_id; total.backward()
    // print(round(total.item(), 6), [round(v.grad.item(), 6) for v in (s_ar, s_id, l_ar, l_id)])
    #[test]
    fn kendall_weighting_matches_eq3_and_is_learned() {
        let dev = &Device::Cpu;
        let vm = VarMap::new();
        let kendall = KendallWeights::new(VarBuilder::from_varmap(&vm, DType::F32, dev)).unwrap();
        assert_eq!(
            (kendall.s_ar().unwrap(), kendall.s_id().unwrap()),
            (0.0, 0.0)
        );
        vm.data().lock().unwrap()["s_ar"]
            .set(&Tensor::new(0.3f32, dev).unwrap())
            .unwrap();
        vm.data().lock().unwrap()["s_id"]
            .set(&Tensor::new(-0.2f32, dev).unwrap())
            .unwrap();
        let l_ar = Var::new(1.7f32, dev).unwrap();
        let l_id = Var::new(0.9f32, dev).unwrap();
        let total = kendall.combine(l_ar.as_tensor(), l_id.as_tensor()).unwrap();
        close(&total, &[2.702033], 1e-5);
        let grads = total.backward().unwrap();
        let want = [-0.259391, -1.685284, 0.740818, 1.491825];
        let vars = vm.data().lock().unwrap();
        for (t, w) in [
            vars["s_ar"].as_tensor(),
            vars["s_id"].as_tensor(),
            l_ar.as_tensor(),
            l_id.as_tensor(),
        ]
        .into_iter()
        .zip(want)
        {
            close(grads.get(t).unwrap(), &[w], 1e-5);
        }
    }
}
