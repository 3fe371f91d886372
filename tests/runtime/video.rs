//! The motion proposer on a real pedestrian video: Debian's `vtest.avi` (opencv-doc) decoded by
//! ffmpeg onto a pipe, scored against the hand-made boxes in `tests/fixtures/vtest/`.

use std::io::{ErrorKind, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use edge_reid::detect::motion::{MotionConfig, MotionDetector};
use edge_reid::detect::{iou, match_boxes, BoxMatch};
use edge_reid::preprocess::Region;

/// Where Debian's `opencv-doc` installs the video.
const VIDEO: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
const WIDTH: u32 = 768;
const HEIGHT: u32 = 576;
/// Frames decoded and run (the ground truth lies in them).
const FRAMES: usize = 300;
/// Measured with the default config: precision 0.971, recall 0.872 (68 of 78 people found, 2
/// false boxes; see the fixture's README); the bounds leave a margin below.
const MIN_PRECISION: f32 = 0.8;
const MIN_RECALL: f32 = 0.7;

/// `tests/fixtures/vtest/ground_truth.json`.
#[derive(serde::Deserialize)]
struct GroundTruth {
    frames: Vec<TruthFrame>,
}

#[derive(serde::Deserialize)]
struct TruthFrame {
    /// 0-based frame number (ffmpeg's `n`).
    frame: usize,
    /// People counted, `[x, y, w, h]`.
    boxes: Vec<[u32; 4]>,
    /// People too small or mostly hidden: a proposal on one counts neither way.
    ignore: Vec<[u32; 4]>,
}

fn region([x, y, width, height]: [u32; 4]) -> Region {
    Region {
        x,
        y,
        width,
        height,
    }
}

#[test]
fn motion_proposals_find_the_people_of_vtest_avi() {
    if !Path::new(VIDEO).exists() {
        println!("skipped: {VIDEO} is missing (apt-get install ffmpeg opencv-doc)");
        return;
    }
    let child = Command::new("ffmpeg")
        .args(["-v", "error", "-i", VIDEO, "-frames:v"])
        .arg(FRAMES.to_string())
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            println!("skipped: ffmpeg is not installed (apt-get install ffmpeg opencv-doc)");
            return;
        }
        Err(e) => panic!("ffmpeg does not start: {e}"),
    };
    let truth_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vtest/ground_truth.json");
    let truth: GroundTruth =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).expect("ground truth reads"))
            .expect("ground truth parses");

    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut detector = MotionDetector::new(MotionConfig::default());
    let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    let mut total = BoxMatch::default();
    let mut scored = 0;
    for n in 0..FRAMES {
        stdout
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("frame {n} of {VIDEO}: {e}"));
        let frame = image::RgbImage::from_raw(WIDTH, HEIGHT, buf.clone()).expect("frame size");
        let proposals = detector.detect(&frame);
        let Some(t) = truth.frames.iter().find(|t| t.frame == n) else {
            continue;
        };
        let ignore: Vec<Region> = t.ignore.iter().copied().map(region).collect();
        let predicted: Vec<Region> = proposals
            .iter()
            .map(|p| p.region)
            .filter(|p| ignore.iter().all(|g| iou(p, g) < 0.5))
            .collect();
        let boxes: Vec<Region> = t.boxes.iter().copied().map(region).collect();
        let m = match_boxes(&predicted, &boxes, 0.5);
        println!(
            "frame {n}: {} proposals, {} people: {} found, {} false, {} missed",
            predicted.len(),
            boxes.len(),
            m.true_positives,
            m.false_positives,
            m.false_negatives
        );
        total += m;
        scored += 1;
    }
    assert!(child.wait().expect("ffmpeg ends").success());
    assert_eq!(
        scored,
        truth.frames.len(),
        "every ground-truth frame was run"
    );
    println!(
        "precision {:.3}, recall {:.3} at IoU 0.5 over {scored} frames ({total:?})",
        total.precision(),
        total.recall()
    );
    assert!(total.precision() >= MIN_PRECISION, "{total:?}");
    assert!(total.recall() >= MIN_RECALL, "{total:?}");
}
