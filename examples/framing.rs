//! What crop framing does to re-identification: the same person boxes embedded as the runtime cuts
//! them (grown by Market's margin to the model's aspect, [`Preprocessor::crop_into`]) and
//! stretched to the input as they are ([`Preprocessor::resize_into`]), then ranked against each
//! other (every box a query against all the others, boxes of the same frame left out, as Market's
//! protocol leaves out the query's own camera).
//!
//! Two sets of tight, detector-like boxes with known identities: the synthetic camera's people
//! (every 10th frame) and the hand-made identities of vtest.avi (`tests/fixtures/vtest/
//! identities.txt`, its counted boxes). Prints a Markdown table:
//!
//! ```sh
//! cargo run --release --example framing [-- MODEL.onnx]   # needs ffmpeg and opencv-doc for vtest
//! ```

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use edge_reid::distance::distance_matrix;
use edge_reid::eval::metrics::eval_market1501;
use edge_reid::model::Model;
use edge_reid::preprocess::{Framing, Preprocessor, Region};
use edge_reid::source::{FrameSource, SyntheticCamera, SyntheticConfig};
use image::RgbImage;

const VIDEO: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

/// One box of a known person in one frame.
struct Sample {
    frame: usize,
    identity: i32,
    region: Region,
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_path = std::env::args()
        .nth(1)
        .map_or_else(|| root.join("models/edge-reid.onnx"), Into::into);
    let model = Model::load(&model_path, 1)?;
    let pre = Preprocessor::from_spec(&model.card().input)?;
    let metric = model
        .card()
        .embedding
        .as_ref()
        .context("no embedding")?
        .metric;
    println!("model {}", model_path.display());
    println!();
    println!("| boxes | n | identities | height / width (median) | framed mAP | framed rank-1 | stretched mAP | stretched rank-1 |");
    println!("|---|---|---|---|---|---|---|---|");
    let sets = [
        ("synthetic camera", synthetic()?),
        ("vtest.avi, hand-made", vtest(root)?),
    ];
    for (name, (frames, samples)) in sets {
        if samples.is_empty() {
            println!("| {name} | skipped: no ffmpeg or vtest.avi | | | | | | |");
            continue;
        }
        let mut ratios: Vec<f32> = samples
            .iter()
            .map(|s| s.region.height as f32 / s.region.width as f32)
            .collect();
        ratios.sort_by(f32::total_cmp);
        let mut cells = Vec::new();
        for framed in [true, false] {
            let mut embeddings = Vec::new();
            let mut slot = vec![0.0; pre.slot_len()];
            for s in &samples {
                let image = &frames[s.frame];
                if framed {
                    pre.crop_into(image, s.region, Framing::PersonBox, &mut slot)?;
                } else {
                    pre.resize_into(image, s.region, &mut slot)?;
                }
                let out = model.run(&slot, 1)?;
                embeddings.extend_from_slice(out.embedding(0).context("no embedding")?);
            }
            let dim = embeddings.len() / samples.len();
            let d = distance_matrix(&embeddings, &embeddings, dim, metric)?;
            let ids: Vec<i32> = samples.iter().map(|s| s.identity).collect();
            let cams: Vec<u8> = samples.iter().map(|s| (s.frame % 256) as u8).collect();
            let r = eval_market1501(&d, &ids, &ids, &cams, &cams, 10)?;
            cells.push(format!("{:.1}% | {:.1}%", 100.0 * r.map, 100.0 * r.cmc[0]));
        }
        let identities = {
            let mut ids: Vec<i32> = samples.iter().map(|s| s.identity).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        println!(
            "| {name} | {} | {identities} | {:.2} | {} | {} |",
            samples.len(),
            ratios[ratios.len() / 2],
            cells[0],
            cells[1]
        );
    }
    Ok(())
}

/// Every 10th of 600 frames of the synthetic camera (6 people in view from 10 identities) and the
/// boxes it drew.
fn synthetic() -> Result<(Vec<RgbImage>, Vec<Sample>)> {
    let mut camera = SyntheticCamera::new(SyntheticConfig {
        people: 6,
        identities: 10,
        seed: 7,
        ..SyntheticConfig::default()
    })?;
    let (mut frames, mut samples) = (Vec::new(), Vec::new());
    let mut frame = Default::default();
    for i in 0..600 {
        camera.next_frame_into(&mut frame)?;
        if i % 10 != 0 {
            continue;
        }
        for t in &frame.truth {
            samples.push(Sample {
                frame: frames.len(),
                identity: t.identity as i32,
                region: Region {
                    x: t.x,
                    y: t.y,
                    width: t.width,
                    height: t.height,
                },
            });
        }
        frames.push(frame.image.clone());
    }
    Ok((frames, samples))
}

/// The keyframes of vtest.avi that `identities.txt` annotates and their counted boxes; nothing
/// where ffmpeg or the video is missing.
fn vtest(root: &Path) -> Result<(Vec<RgbImage>, Vec<Sample>)> {
    let truth = std::fs::read_to_string(root.join("tests/fixtures/vtest/identities.txt"))?;
    let rows: Vec<Vec<i64>> = truth
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap_or(0)).collect())
        .collect();
    let last = rows.iter().map(|r| r[0]).max().unwrap_or(0) as usize;
    if !Path::new(VIDEO).exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let Ok(mut ffmpeg) = Command::new("ffmpeg")
        .args(["-v", "error", "-i", VIDEO, "-frames:v", &last.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .spawn()
    else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut raw = Vec::new();
    ffmpeg
        .stdout
        .take()
        .context("ffmpeg stdout")?
        .read_to_end(&mut raw)?;
    let status = ffmpeg.wait()?;
    if !status.success() {
        bail!("ffmpeg failed on {VIDEO} ({status})");
    }
    let (w, h) = (768u32, 576u32);
    let size = (w * h * 3) as usize;
    if raw.len() < last * size {
        bail!(
            "ffmpeg gave {} whole frames of {VIDEO}, the identities need {last}",
            raw.len() / size
        );
    }
    let (mut frames, mut samples) = (Vec::new(), Vec::new());
    let mut keyframes: Vec<usize> = rows.iter().map(|r| r[0] as usize).collect();
    keyframes.dedup();
    for mot_frame in keyframes {
        let start = (mot_frame - 1) * size;
        let image =
            RgbImage::from_raw(w, h, raw[start..start + size].to_vec()).context("a whole frame")?;
        for r in rows
            .iter()
            .filter(|r| r[0] as usize == mot_frame && r[6] == 1)
        {
            samples.push(Sample {
                frame: frames.len(),
                identity: r[1] as i32,
                region: Region {
                    x: r[2] as u32,
                    y: r[3] as u32,
                    width: r[4] as u32,
                    height: r[5] as u32,
                },
            });
        }
        frames.push(image);
    }
    Ok((frames, samples))
}
