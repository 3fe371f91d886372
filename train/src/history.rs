//! The per-epoch record of a run: what `fit` writes to `metrics.csv` (one row per epoch) and keeps in
//! the run state so a resumed run continues the same table and curve.

use std::fmt::Write as _;
use std::path::Path;

use edge_reid::attributes::ATTRIBUTES;
use serde::{Deserialize, Serialize};

/// Validation results of one epoch. Accuracies, mAP and ranks are fractions in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Attribute loss (mean of the 12 cross-entropies) on validation images.
    pub ar_loss: f64,
    /// Accuracy per attribute, in `ATTRIBUTES` order.
    pub accuracy: Vec<f64>,
    /// Balanced accuracy (mean per-class recall) per attribute.
    pub balanced_accuracy: Vec<f64>,
    /// Accuracy of the most-frequent-class baseline (classes counted on the training split).
    pub mfc_accuracy: Vec<f64>,
    /// Re-ID mean average precision on the validation query/gallery split.
    pub map: f64,
    /// CMC rank-1.
    pub rank1: f64,
    /// CMC rank-5.
    pub rank5: f64,
    /// CMC rank-10.
    pub rank10: f64,
    /// Person-vs-junk accuracy, when the net has a person head.
    pub person_accuracy: Option<f64>,
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

impl Validation {
    /// Mean attribute accuracy over the 12 tasks.
    pub fn mean_accuracy(&self) -> f64 {
        mean(&self.accuracy)
    }

    /// Mean balanced accuracy over the 12 tasks.
    pub fn mean_balanced_accuracy(&self) -> f64 {
        mean(&self.balanced_accuracy)
    }

    /// Mean most-frequent-class accuracy over the 12 tasks.
    pub fn mean_mfc_accuracy(&self) -> f64 {
        mean(&self.mfc_accuracy)
    }

    /// The combined validation score that picks the best checkpoint and drives early stopping:
    /// the mean of the mean balanced attribute accuracy and the re-ID mAP. Balanced accuracy rather
    /// than plain accuracy, so that a model predicting the majority class on rare attributes (which
    /// already scores ~70% plain accuracy) gains nothing; mAP rather than rank-1, because it scores
    /// the whole ranking. The paper notes that validation loss is no fair criterion under Kendall
    /// weighting, since the weights rescale the loss every step.
    pub fn score(&self) -> f64 {
        0.5 * (self.mean_balanced_accuracy() + self.map)
    }
}

/// One epoch of training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean multi-task loss over the epoch's batches.
    pub loss: f64,
    /// Mean attribute loss.
    pub ar_loss: f64,
    /// Mean triplet loss.
    pub id_loss: f64,
    /// Mean person-vs-junk loss (0 without a person head).
    pub person_loss: f64,
    /// Kendall weight `s_ar` at the end of the epoch.
    pub s_ar: f64,
    /// Kendall weight `s_id` at the end of the epoch.
    pub s_id: f64,
    /// Mean attribute accuracy on the (augmented) training batches.
    pub train_accuracy: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// Wall time of the epoch including validation.
    pub seconds: f64,
    /// Validation results.
    pub val: Validation,
}

/// Writes the CSV for `records` (header and one row per epoch) to `path`, replacing it atomically.
pub fn write_csv(records: &[EpochRecord], path: &Path) -> std::io::Result<()> {
    let mut header = String::from(
        "epoch,lr,loss,ar_loss,id_loss,person_loss,s_ar,s_id,train_accuracy,val_ar_loss,\
         val_accuracy,val_balanced_accuracy,val_mfc_accuracy,val_map,val_rank1,val_rank5,val_rank10,\
         val_person_accuracy,score,images_per_second,seconds",
    );
    for a in &ATTRIBUTES {
        write!(header, ",acc_{0},bacc_{0},mfc_{0}", a.name).expect("string write");
    }
    let mut out = header + "\n";
    for r in records {
        let v = &r.val;
        let person = v
            .person_accuracy
            .map(|p| format!("{p:.6}"))
            .unwrap_or_default();
        write!(
            out,
            "{},{:.3e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{},{:.6},{:.1},{:.1}",
            r.epoch,
            r.lr,
            r.loss,
            r.ar_loss,
            r.id_loss,
            r.person_loss,
            r.s_ar,
            r.s_id,
            r.train_accuracy,
            v.ar_loss,
            v.mean_accuracy(),
            v.mean_balanced_accuracy(),
            v.mean_mfc_accuracy(),
            v.map,
            v.rank1,
            v.rank5,
            v.rank10,
            person,
            v.score(),
            r.images_per_second,
            r.seconds
        )
        .expect("string write");
        for i in 0..ATTRIBUTES.len() {
            let at = |xs: &[f64]| xs.get(i).copied().unwrap_or(f64::NAN);
            write!(
                out,
                ",{:.6},{:.6},{:.6}",
                at(&v.accuracy),
                at(&v.balanced_accuracy),
                at(&v.mfc_accuracy)
            )
            .expect("string write");
        }
        out.push('\n');
    }
    edge_reid::atomic_file::write_atomic(path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_one_row_per_epoch_with_every_column() {
        let val = Validation {
            accuracy: vec![0.5; 12],
            balanced_accuracy: vec![0.25; 12],
            mfc_accuracy: vec![0.7; 12],
            map: 0.75,
            ..Validation::default()
        };
        assert!((val.score() - 0.5).abs() < 1e-12);
        let records: Vec<EpochRecord> = (1..=3)
            .map(|epoch| EpochRecord {
                epoch,
                val: val.clone(),
                ..EpochRecord::default()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        write_csv(&records, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let columns = lines[0].split(',').count();
        assert_eq!(columns, 21 + 36);
        assert!(lines.iter().all(|l| l.split(',').count() == columns));
        assert!(lines[0].contains("acc_downcolor"));
        assert!(lines[3].starts_with("3,"));
        assert!(lines[3].contains(",0.750000,"));
    }
}
