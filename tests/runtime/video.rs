//! A real pedestrian video: Debian's `vtest.avi` (opencv-doc) decoded by ffmpeg onto a pipe. The
//! motion proposer is scored against the hand-made boxes in `tests/fixtures/vtest/`, and
//! `edge-reid` reads the pipe as a user would and tracks the people.

use std::io::{ErrorKind, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use edge_reid::detect::motion::{MotionConfig, MotionDetector};
use edge_reid::detect::{iou, match_boxes, BoxMatch};
use edge_reid::preprocess::Region;

use super::skip;

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

/// ffmpeg decoding the first `frames` frames of the video to raw RGB on its stdout; `None` (the
/// test is skipped, saying why) where the video or ffmpeg is missing outside CI.
fn decode(frames: usize) -> Option<Child> {
    if !Path::new(VIDEO).exists() {
        return skip(&format!("{VIDEO} is missing (apt-get install opencv-doc)"));
    }
    let child = Command::new("ffmpeg")
        .args(["-v", "error", "-i", VIDEO, "-frames:v"])
        .arg(frames.to_string())
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .spawn();
    match child {
        Ok(child) => Some(child),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            skip("ffmpeg is not installed (apt-get install ffmpeg)")
        }
        Err(e) => panic!("ffmpeg does not start: {e}"),
    }
}

#[test]
fn motion_proposals_find_the_people_of_vtest_avi() {
    let Some(mut child) = decode(FRAMES) else {
        return;
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

/// The most tracks accepted for the first 290 frames, where eight people walk (measured: 17 with
/// the shipped model, 18 with the one before it).
const TRACKS_AT_MOST: usize = 25;
/// The lowest IDF1 accepted on the hand-made identities (measured: 0.63 with the shipped model;
/// 0.73 with the model shipped before it, RESULTS.md).
const IDF1_AT_LEAST: f64 = 0.58;

/// `ffmpeg ... -f rawvideo -pix_fmt rgb24 - | edge-reid --input - --size 768x576`: track events for
/// the people walking, every confirmed track ended once, boxes inside the frame, one annotated
/// picture per frame, and tracks that keep the hand-made identities.
#[test]
fn edge_reid_tracks_the_people_of_vtest_avi() {
    // The hand-made identities run to frame 280 (MOT frame 281).
    const FRAMES: usize = 290;
    let Some(mut ffmpeg) = decode(FRAMES) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-reid"))
        .current_dir(dir.path())
        .args(["--input", "-", "--size", "768x576", "--save-frames", "seen"])
        .args(["--mot", "tracks.txt"])
        .arg("--model")
        .arg(super::shipped_model())
        .stdin(Stdio::from(ffmpeg.stdout.take().expect("piped stdout")))
        .output()
        .expect("edge-reid runs");
    assert!(ffmpeg.wait().expect("ffmpeg ends").success());
    assert!(out.status.success(), "{}", super::text(&out.stderr));
    let events: Vec<serde_json::Value> = super::text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, tracks) = events.split_last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["frames"], FRAMES);
    println!("{summary}");
    // Eight people walk through these 29 seconds; motion finds most of them and the tracker
    // follows them: at least five tracks, each confirmed once and ended once, and not many more
    // than there are people (a tracker that loses its people makes a new track each time).
    let new = super::track_ids(tracks, "new");
    assert!(
        (5..=TRACKS_AT_MOST).contains(&new.len()),
        "{} tracks: {new:?}",
        new.len()
    );
    assert_eq!(new, super::track_ids(tracks, "end"));
    assert_eq!(summary["tracks"], new.len());
    for e in tracks {
        assert_eq!(e["event"], "track", "{e}");
        let b = &e["box"];
        let right = b["x"].as_u64().unwrap() + b["width"].as_u64().unwrap();
        let bottom = b["y"].as_u64().unwrap() + b["height"].as_u64().unwrap();
        assert!(
            right <= u64::from(WIDTH) && bottom <= u64::from(HEIGHT),
            "{e}"
        );
        assert!(
            b["height"].as_u64().unwrap() > b["width"].as_u64().unwrap(),
            "{e}"
        );
    }
    // Some tracks follow a person for a good while (ids held across frames).
    let longest = tracks
        .iter()
        .filter(|e| e["status"] == "end")
        .map(|e| e["frames_seen"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(longest >= 50, "longest track {longest} frames");
    let saved = std::fs::read_dir(dir.path().join("seen")).unwrap().count();
    assert_eq!(saved, FRAMES);

    // Who is who, against the hand-made identities of 23 keyframes (motmetrics, IoU 0.5).
    let truth = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vtest/identities.txt");
    let Some(scores) = super::truth::motmetrics(&truth, &dir.path().join("tracks.txt"), true)
    else {
        return;
    };
    println!("vtest.avi, frames 0-{}: {scores}", FRAMES - 1);
    let idf1 = scores["idf1"].as_f64().unwrap();
    assert!(idf1 >= IDF1_AT_LEAST, "IDF1 {idf1}: {scores}");
}
