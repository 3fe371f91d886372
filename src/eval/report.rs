//! The tables `edge-reid-train eval` and `edge-reid eval` print, over scores computed by
//! [`metrics`](crate::eval::metrics) and [`open_set`](crate::eval::open_set).

use std::fmt;

use crate::eval::metrics::{AttributeReport, RankingMetrics};
use crate::eval::open_set::OpenSetRates;

/// What `edge-reid-train eval` and `edge-reid eval` print: Table 1 (when attributes were scored),
/// Table 2 and, when measured, the person-vs-junk accuracy. A view over scores owned elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// Table 1, when attribute labels were available.
    pub attributes: Option<&'a AttributeReport>,
    /// Table 2.
    pub ranking: &'a RankingMetrics,
    /// Share of images whose person score is on the right side of 0.5 (persons above, junk and
    /// distractors below), when measured.
    pub person_accuracy: Option<f64>,
    /// Open-set identification at an unknown distance, and where that distance came from.
    pub open_set: Option<(&'static str, OpenSetRates)>,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(attributes) = self.attributes {
            writeln!(f, "{attributes}")?;
        }
        write!(f, "{}", self.ranking)?;
        if let Some((source, rates)) = &self.open_set {
            writeln!(f, "\nopen set ({source}): {rates}")?;
        }
        if let Some(p) = self.person_accuracy {
            writeln!(f, "\nperson-vs-junk accuracy: {:.2}%", 100.0 * p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::NUM_ATTRIBUTES;
    use crate::card::GallerySize;
    use crate::eval::metrics::attribute_report;

    #[test]
    fn report_prints_tables_1_and_2() {
        let row = |gender: u8| {
            let mut l = [0u8; NUM_ATTRIBUTES];
            l[9] = gender;
            l
        };
        let attributes = attribute_report(
            &[row(0), row(0), row(1)],
            &[row(0), row(1), row(1)],
            &[row(1)],
        )
        .unwrap();
        let ranking = RankingMetrics {
            cmc: vec![0.5, 0.75, 1.0],
            map: 0.6251,
            minp: 0.5,
            num_valid_queries: 4,
        };
        let report = Report {
            attributes: Some(&attributes),
            ranking: &ranking,
            person_accuracy: Some(0.875),
            open_set: Some((
                "the model card's unknown distance",
                OpenSetRates {
                    max_distance: 0.8125,
                    gallery: GallerySize::Identities(10),
                    identified: 0.75,
                    rejected: 0.5,
                    known_queries: 4,
                    stranger_queries: 6,
                },
            )),
        };
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Table 1: attribute recognition accuracy (%)");
        assert_eq!(lines[1], "attribute         MFC      acc  balanced");
        assert_eq!(lines[2], "age            100.00   100.00    100.00");
        assert_eq!(lines[11], "gender          66.67    66.67     75.00");
        // (11 * 100 + 66.67) / 12 and (11 * 100 + 75) / 12.
        assert_eq!(lines[14], "average         97.22    97.22     97.92");
        assert_eq!(
            lines[15..],
            [
                "",
                "Table 2: re-identification (4 valid queries)",
                "     mAP   rank-1   rank-5  rank-10",
                "   62.51    50.00   100.00   100.00",
                "",
                "open set (the model card's unknown distance): unknown distance 0.8125 (galleries of 10 people): \
                 75.00% of 4 known queries identified, 50.00% of 6 strangers rejected",
                "",
                "person-vs-junk accuracy: 87.50%",
            ]
        );
        // Without attributes and person scores: Table 2 only.
        let text = Report {
            attributes: None,
            ranking: &ranking,
            person_accuracy: None,
            open_set: None,
        }
        .to_string();
        assert_eq!(text, lines[16..19].join("\n") + "\n");
    }
}
