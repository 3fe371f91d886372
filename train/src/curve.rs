//! The training-curve PNG, laid out like the paper's Figure 4: attribute accuracy (train and
//! validation), re-ID mAP and rank-1 (validation), the losses, and the Kendall weights, per epoch.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::history::EpochRecord;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

/// Errors while drawing the curve.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the training curve {path}: {message}")]
pub struct CurveError {
    path: String,
    message: String,
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws the curve of `records` into `path` (PNG, 1200x800).
pub fn draw(records: &[EpochRecord], path: &Path) -> Result<(), CurveError> {
    let fail = |e: &dyn std::fmt::Display| CurveError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    REGISTER.call_once(|| {
        // The font is embedded and known valid; a failure would only lose the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let panels = root.split_evenly((2, 2));
    let xs = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        records.iter().map(|r| (r.epoch as f64, f(r))).collect()
    };
    let charts: [(&str, Vec<Series>); 4] = [
        (
            "Attribute accuracy",
            vec![
                ("train", BLUE, xs(&|r| r.train_accuracy)),
                ("val", RED, xs(&|r| r.val.mean_accuracy())),
                (
                    "val balanced",
                    MAGENTA,
                    xs(&|r| r.val.mean_balanced_accuracy()),
                ),
                ("val MFC", BLACK, xs(&|r| r.val.mean_mfc_accuracy())),
            ],
        ),
        (
            "Re-ID (validation)",
            vec![
                ("mAP", RED, xs(&|r| r.val.map)),
                ("rank-1", BLUE, xs(&|r| r.val.rank1)),
            ],
        ),
        (
            "Losses",
            vec![
                ("MTL train", BLACK, xs(&|r| r.loss)),
                ("AR train", BLUE, xs(&|r| r.ar_loss)),
                ("AR val", RED, xs(&|r| r.val.ar_loss)),
                ("triplet train", GREEN, xs(&|r| r.id_loss)),
            ],
        ),
        (
            "Kendall weights",
            vec![
                ("s_ar", BLUE, xs(&|r| r.s_ar)),
                ("s_id", RED, xs(&|r| r.s_id)),
            ],
        ),
    ];
    let last_epoch = records.last().map_or(1, |r| r.epoch).max(2) as f64;
    for (area, (title, series)) in panels.iter().zip(charts) {
        let values = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(1f64..last_epoch, (lo - pad)..(hi + pad))
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| fail(&e))?;
        for (name, color, points) in series {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| fail(&e))?;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_with_the_curves() {
        let records: Vec<EpochRecord> = (1..=4)
            .map(|epoch| {
                let mut r = EpochRecord {
                    epoch,
                    loss: 3.0 / epoch as f64,
                    train_accuracy: 0.6 + 0.05 * epoch as f64,
                    ..EpochRecord::default()
                };
                r.val.accuracy = vec![0.5 + 0.05 * epoch as f64; 12];
                r.val.map = 0.1 * epoch as f64;
                r
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        draw(&records, &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1200, 800));
        // Lines in the series colours were drawn (pure red appears only in the curves and legends).
        let red = img.pixels().filter(|p| p.0 == [255, 0, 0]).count();
        assert!(red > 200, "{red} red pixels");
    }
}
