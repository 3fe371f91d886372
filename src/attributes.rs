//! The attribute schema: the 12 Market-1501 attribute tasks of Lin et al., their labels in class-index
//! order, and the class balance the synthetic data reproduces.
//!
//! The schema is defined once here and used by the training crate (datasets, heads, export), the
//! model card and the runtime (events), so a class index means the same label everywhere.

/// One attribute task: a name, its labels in class-index order, and the share of its commonest class
/// on Market-1501 (the paper's most-frequent-classifier column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attribute {
    /// Name as used in the card, events and `attr_<name>` model outputs.
    pub name: &'static str,
    /// Labels in class-index order (class `i` is `labels[i]`).
    pub labels: &'static [&'static str],
    /// Index of the commonest class on Market-1501.
    pub majority: usize,
    /// Share of the commonest class on Market-1501, in `[0, 1]`.
    pub majority_share: f32,
}

impl Attribute {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.labels.len()
    }

    /// The model output that carries this attribute's logits.
    pub fn output_name(&self) -> String {
        format!("attr_{}", self.name)
    }
}

/// Number of attribute tasks.
pub const NUM_ATTRIBUTES: usize = 12;

const NO_YES: &[&str] = &["no", "yes"];

/// Upper-body colours in class-index order (the `up*` columns of the annotation files).
pub const UP_COLORS: &[&str] = &[
    "black", "white", "red", "purple", "yellow", "gray", "blue", "green",
];

/// Lower-body colours in class-index order (the `down*` columns of the annotation files).
pub const DOWN_COLORS: &[&str] = &[
    "black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown",
];

/// The 12 attribute tasks, in the order of the annotation files and the paper's Table 1.
pub const ATTRIBUTES: [Attribute; NUM_ATTRIBUTES] = [
    Attribute {
        name: "age",
        labels: &["young", "teenager", "adult", "old"],
        majority: 1,
        majority_share: 0.786,
    },
    Attribute {
        name: "backpack",
        labels: NO_YES,
        majority: 0,
        majority_share: 0.762,
    },
    Attribute {
        name: "bag",
        labels: NO_YES,
        majority: 0,
        majority_share: 0.734,
    },
    Attribute {
        name: "handbag",
        labels: NO_YES,
        majority: 0,
        majority_share: 0.883,
    },
    Attribute {
        name: "clothes",
        labels: &["dress", "pants"],
        majority: 1,
        majority_share: 0.854,
    },
    Attribute {
        name: "down",
        labels: &["long", "short"],
        majority: 0,
        majority_share: 0.637,
    },
    Attribute {
        name: "up",
        labels: &["long", "short"],
        majority: 1,
        majority_share: 0.941,
    },
    Attribute {
        name: "hair",
        labels: &["short", "long"],
        majority: 0,
        majority_share: 0.643,
    },
    Attribute {
        name: "hat",
        labels: NO_YES,
        majority: 0,
        majority_share: 0.968,
    },
    Attribute {
        name: "gender",
        labels: &["male", "female"],
        majority: 0,
        majority_share: 0.554,
    },
    Attribute {
        name: "upcolor",
        labels: UP_COLORS,
        majority: 0,
        majority_share: 0.272,
    },
    Attribute {
        name: "downcolor",
        labels: DOWN_COLORS,
        majority: 0,
        majority_share: 0.455,
    },
];

/// Index of an attribute by name.
pub fn attribute_index(name: &str) -> Option<usize> {
    ATTRIBUTES.iter().position(|a| a.name == name)
}

/// The 12 class indices of one person, in [`ATTRIBUTES`] order; an attribute its annotation leaves
/// open is [`UNLABELLED`].
pub type AttributeLabels = [u8; NUM_ATTRIBUTES];

/// The class index of an attribute the annotation does not decide: an upper or lower body colour
/// with no colour column set, or several (multicolour clothing, the course's `upmulticolor` /
/// `downmulticolor`). The attribute loss and the metrics skip it; a model never predicts it.
pub const UNLABELLED: u8 = u8::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_consistent() {
        for a in &ATTRIBUTES {
            assert!(a.majority < a.classes(), "{}", a.name);
            assert!((0.0..=1.0).contains(&a.majority_share));
        }
        assert_eq!(ATTRIBUTES[10].classes(), 8);
        assert_eq!(ATTRIBUTES[11].classes(), 9);
        // The paper's MFC average over the 12 tasks is 70.70%.
        let mean: f32 = ATTRIBUTES.iter().map(|a| a.majority_share).sum::<f32>() / 12.0;
        assert!((mean - 0.7070).abs() < 0.001, "{mean}");
        assert_eq!(attribute_index("gender"), Some(9));
        assert_eq!(ATTRIBUTES[0].output_name(), "attr_age");
    }
}
