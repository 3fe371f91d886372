//! The `edge-reid` binary end to end: enrollment and identification with a model exported by the
//! training crate, the failure modes a user meets (bad images, a wrong model, wrong-size stdin
//! frames, a missing camera), each a clear error and a non-zero exit, and a clean stop on SIGTERM.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::{edge_reid, edge_reid_with, model, shipped_model, spawn_edge_reid, text, track_ids};

use edge_reid::source::{SyntheticCamera, SyntheticConfig};

/// Writes enrolment crops of synthetic identity `identity` and returns their paths.
pub(super) fn crops(
    dir: &Path,
    camera: &SyntheticCamera,
    identity: u32,
    shots: u64,
) -> Vec<String> {
    (0..shots)
        .map(|shot| {
            let path = dir.join(format!("id{identity}_{shot}.png"));
            camera
                .enrolment_crop(identity, shot, 64, 128)
                .unwrap()
                .save(&path)
                .unwrap();
            path.display().to_string()
        })
        .collect()
}

#[test]
fn enroll_then_identify_finds_the_enrolled_people() {
    let started = std::time::SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let camera = SyntheticCamera::new(SyntheticConfig::default()).unwrap();
    // Shots 0-2 are enrolled, 3-5 (other cameras, other framing) are asked about.
    let alice = crops(dir.path(), &camera, 1, 6);
    let bob = crops(dir.path(), &camera, 2, 6);
    let carol = crops(dir.path(), &camera, 3, 6);
    let shipped = shipped_model();
    let run = |args: &[&str]| edge_reid_with(dir.path(), &shipped, args);
    // Before anyone is enrolled there is no gallery file, and identify says so.
    let out = run(&["identify", &alice[0]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no gallery at edge-reid.gallery: everyone is unknown"),
        "{}",
        text(&out.stderr)
    );
    for (name, images) in [("alice", &alice), ("bob", &bob)] {
        let mut args = vec!["enroll", "--name", name];
        args.extend(images[..3].iter().map(String::as_str));
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("enrolled \"{name}\": 3 embedding(s)")));
    }
    let list = run(&["gallery", "list"]);
    assert_eq!(listed(&text(&list.stdout), started), ["alice\t3", "bob\t3"]);

    // Pictures that were not enrolled, judged by the card's calibrated unknown distance (on
    // validation it names 95% of known people and leaves 93% of strangers unknown): alice and bob
    // are named on at least five of their six pictures, never as someone else; carol (never
    // enrolled) is never named.
    let mut args = vec!["identify"];
    let asked: Vec<(&String, Option<&str>)> = (3..6)
        .flat_map(|i| {
            [
                (&alice[i], Some("alice")),
                (&bob[i], Some("bob")),
                (&carol[i], None),
            ]
        })
        .collect();
    args.extend(asked.iter().map(|(p, _)| p.as_str()));
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), asked.len());
    let mut named_right = 0;
    for (event, (path, name)) in events.iter().zip(&asked) {
        assert_eq!(event["event"], "observation");
        let got = event["identity"]["name"].as_str();
        assert!(got.is_none() || got == *name, "{path}: {event}");
        named_right += usize::from(got.is_some());
        assert_eq!(event["attributes"].as_array().unwrap().len(), 12);
    }
    assert!(named_right >= 5, "{named_right} of 6 known pictures named");

    // The same through `embed`: one JSON line per image with a 128-d embedding.
    let out = run(&["embed", "--out", "e.jsonl", &alice[0]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = std::fs::read_to_string(dir.path().join("e.jsonl")).unwrap();
    assert_eq!(
        mode(&dir.path().join("e.jsonl")),
        0o600,
        "embeddings for the owner only"
    );
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["embedding"].as_array().unwrap().len(), 128);
    assert!(v["attributes"]["gender"]["label"].is_string());

    let out = run(&["gallery", "remove", "bob"]);
    assert!(out.status.success());
    let list = run(&["gallery", "list"]);
    assert_eq!(listed(&text(&list.stdout), started), ["alice\t3"]);
}

/// `gallery list` output as `name\tcount` lines, checking that each line's enrollment time (its
/// third column, RFC 3339) lies between `since` (to the second) and now.
fn listed(stdout: &str, since: std::time::SystemTime) -> Vec<String> {
    let since = since - std::time::Duration::from_secs(1);
    stdout
        .lines()
        .map(|line| {
            let (kept, time) = line.rsplit_once('\t').expect("three columns");
            let enrolled = humantime::parse_rfc3339(time).expect("an RFC 3339 time");
            assert!(
                since <= enrolled && enrolled <= std::time::SystemTime::now(),
                "{line}"
            );
            kept.to_string()
        })
        .collect()
}

/// The permission bits of the file at `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The lines of a run's stdout as JSON.
fn events(stdout: &[u8]) -> Vec<serde_json::Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_synthetic_stream_gives_tracks_observations_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge_reid(
        dir.path(),
        &["--synthetic", "--frames", "24", "--save-frames", "seen"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = events(&out.stdout);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["frames"], 24);
    assert!(summary["ms"]["model"].as_f64().unwrap() > 0.0);
    // The shipped pre-detector runs by default.
    assert!(summary["ms"]["pre_detector"].as_f64().unwrap() > 0.0);
    // A stream is tracked: every track is confirmed (`new`) once, may be updated, and ends once
    // (at the latest when the stream does), with the same id and averaged attributes.
    let tracks = &events[..events.len() - 1];
    assert!(tracks.iter().all(|e| e["event"] == "track"), "{tracks:?}");
    let new = track_ids(tracks, "new");
    assert!(!new.is_empty());
    assert_eq!(summary["tracks"], new.len());
    assert_eq!(
        new,
        track_ids(tracks, "end"),
        "every confirmed track ends once"
    );
    for e in tracks {
        assert_eq!(e["attributes"].as_array().unwrap().len(), 12, "{e}");
        // The mean of the pre-detector's scores of crops it kept (each >= 0.5).
        let person = e["person_score"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&person), "{e}");
        assert!(e["frames_seen"].as_u64().unwrap() >= 3, "{e}");
        assert!(e["first_frame"].as_u64() <= e["frame"].as_u64(), "{e}");
    }
    // Without a gallery file, four of the camera's people are enrolled into a temporary gallery
    // that is gone after the run: identities are those names.
    let stderr = text(&out.stderr);
    assert!(stderr.contains("temporary gallery"), "{stderr}");
    let names: Vec<&str> = tracks
        .iter()
        .filter_map(|o| o["identity"]["name"].as_str())
        .collect();
    assert!(!names.is_empty());
    assert!(
        names
            .iter()
            .all(|n| ["person-1", "person-2", "person-3", "person-4"].contains(n)),
        "{names:?}"
    );
    assert!(!dir.path().join("edge-reid.gallery").exists());
    // One annotated picture per frame.
    let seen = std::fs::read_dir(dir.path().join("seen")).unwrap().count();
    assert_eq!(seen, 24);
    let first = image::open(dir.path().join("seen/frame-000000.jpg")).unwrap();
    assert!(first.width() > 0);

    // With --no-track, one observation per person box and frame.
    let out = edge_reid(dir.path(), &["--synthetic", "--frames", "3", "--no-track"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = self::events(&out.stdout);
    let summary = events.last().unwrap();
    let observations = events.len() - 1;
    assert!(observations >= 3, "{observations} observations in 3 frames");
    assert!(events[..observations]
        .iter()
        .all(|e| e["event"] == "observation"));
    assert_eq!(summary["observations"], observations);
    assert_eq!(summary["tracks"], 0);

    // With --no-pre-detector and an (empty) gallery file of its own, neither happens.
    let model = model();
    let space = edge_reid::gallery::EmbeddingSpace::of_model(
        &edge_reid::model::Model::load(&model, 1).unwrap(),
    )
    .unwrap();
    edge_reid::gallery::Gallery::create(&dir.path().join("edge-reid.gallery"), space).unwrap();
    let out = edge_reid(
        dir.path(),
        &["--synthetic", "--frames", "2", "--no-pre-detector"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["ms"]["pre_detector"], 0.0);
    assert!(!stdout.contains("person-1"), "{stdout}");
}

#[test]
fn bad_images_are_named_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff not really a jpeg").unwrap();
    let out = edge_reid(dir.path(), &["identify", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("broken.jpg"),
        "{}",
        text(&out.stderr)
    );

    let good = dir.path().join("good.png");
    image::RgbImage::from_pixel(32, 64, image::Rgb([90, 90, 90]))
        .save(&good)
        .unwrap();
    let out = edge_reid(
        dir.path(),
        &["--input", bad.to_str().unwrap(), good.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\"event\":\"summary\""),
        "the good image is still processed"
    );
    assert!(text(&out.stderr).contains("1 input image(s) could not be read"));
}

#[test]
fn a_wrong_model_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("model.onnx");
    std::fs::write(&garbage, b"this is not onnx").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-reid"))
        .args([
            "--model",
            garbage.to_str().unwrap(),
            "--synthetic",
            "--frames",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("loading model") && err.contains("model.onnx"),
        "{err}"
    );

    // A main model given as the pre-detector: the error names both files and says why.
    let small = model();
    let small = small.to_str().unwrap();
    let out = edge_reid(
        dir.path(),
        &["--synthetic", "--frames", "1", "--pre-detector", small],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("with pre-detector {small}")) && err.contains("pre_detector"),
        "{err}"
    );

    // Settings out of range are refused before anything loads.
    for args in [
        ["--junk-threshold", "2"],
        ["--junk-threshold", "nan"],
        ["--batch", "100000"],
    ] {
        let out = edge_reid(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(args[0]), "{}", text(&out.stderr));
    }
}

/// Settings that contradict the source are refused with the reason, before a frame is read.
#[test]
fn settings_the_source_cannot_honour_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("p.png");
    image::RgbImage::new(16, 32).save(&picture).unwrap();
    let picture = picture.to_str().unwrap();
    // (arguments, what the error must say)
    let cases: [(&[&str], &str); 6] = [
        (
            &["--input", picture, "--truth", "t.txt"],
            "needs the synthetic camera",
        ),
        (
            &["--input", picture, "--mot", "m.txt"],
            "--mot writes tracks",
        ),
        (
            &["--synthetic", "--no-track", "--mot", "m.txt"],
            "--mot writes tracks",
        ),
        (&["--synthetic", "--size", "640"], "640"),
        (&["--synthetic", "--size", "0x360"], "0x360"),
        (
            &["--synthetic", "--synthetic-people", "7"],
            "--synthetic-people",
        ),
    ];
    for (args, says) in cases {
        let out = edge_reid(dir.path(), args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!dir.path().join("m.txt").exists() && !dir.path().join("t.txt").exists());
    }
}

#[test]
fn wrong_size_stdin_frames_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_edge_reid(dir.path(), &["--input", "-", "--size", "32x16"]);
    // One whole 32x16 frame, then half of one.
    let bytes = vec![128u8; 32 * 16 * 3 + 32 * 8 * 3];
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("768") && err.contains("1536"), "{err}");
    // The run still closes its event stream: the summary counts the whole frame.
    let events = events(&out.stdout);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary", "{events:?}");
    assert_eq!(summary["frames"], 1);
}

#[test]
fn sigterm_ends_open_tracks_and_writes_the_summary() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    // Far more frames than it reads before it is stopped (a bound should the test fail).
    let args = ["--synthetic", "--frames", "5000", "--no-pre-detector"];
    let mut child = spawn_edge_reid(dir.path(), &args);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let confirmed = line.contains(r#""status":"new""#);
        seen.push(line);
        if confirmed {
            break;
        }
    }
    assert!(
        !seen.is_empty(),
        "a track is confirmed before the stream is stopped"
    );
    // The shell's own `kill`, which every shell has (a kill binary needs procps).
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    seen.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let events: Vec<serde_json::Value> = seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, tracks) = events.split_last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert!(summary["frames"].as_u64().unwrap() < 5000, "{summary}");
    let new = track_ids(tracks, "new");
    assert_eq!(new, track_ids(tracks, "end"), "every open track ended");
    assert_eq!(summary["tracks"], new.len());
}

/// SIGTERM while the source blocks (stdin open, no frame coming) ends the run within a second,
/// with the end of its tracks and its summary.
#[test]
fn sigterm_during_a_blocked_read_stops_within_a_second() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_edge_reid(
        dir.path(),
        &[
            "--input",
            "-",
            "--size",
            "64x48",
            "--no-pre-detector",
            "--format",
            "json",
        ],
    );
    // Two frames, then nothing: stdin stays open, so the next read blocks.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[90; 64 * 48 * 3 * 2]).unwrap();
    stdin.flush().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("frames from stdin")) {
        log.push(
            heard
                .recv_timeout(Duration::from_secs(120))
                .expect("the run starts"),
        );
    }
    // Time to read both frames and block on the third.
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("still running 30 s after SIGTERM: {log:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = signalled.elapsed();
    log.extend(heard.try_iter());
    assert!(status.success(), "{status}: {log:?}");
    assert!(
        took < Duration::from_secs(1),
        "stopped {took:?} after SIGTERM"
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let events = events(stdout.as_bytes());
    let summary = events.last().expect("a summary");
    assert_eq!(summary["event"], "summary", "{stdout}");
    assert_eq!(summary["frames"], 2, "{summary}");
    drop(stdin);
}

/// A failing output (a full disk under `--events`) fails the run, but the other outputs still
/// get the summary, and the error names what failed.
#[test]
fn a_full_disk_under_events_still_ends_the_run_with_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--frames",
            "40",
            "--no-pre-detector",
            "--format",
            "json",
            "--events",
            "/dev/full",
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("writing events"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let events = events(&out.stdout);
    let (summary, tracks) = events.split_last().expect("events on stdout");
    assert_eq!(summary["event"], "summary", "{events:?}");
    // The run stopped at the first failed write, and still ended the tracks it had.
    assert!(summary["frames"].as_u64().unwrap() < 40, "{summary}");
    assert_eq!(track_ids(tracks, "new"), track_ids(tracks, "end"));
}

#[test]
fn a_missing_camera_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge_reid(dir.path(), &["--device", "/dev/video-does-not-exist"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("/dev/video-does-not-exist"), "{err}");
}

#[test]
fn the_pre_detector_drops_junk_crops_before_the_model() {
    use edge_reid::dataset::synth::{render_crop, render_junk, Camera, PersonAppearance};
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("crops");
    std::fs::create_dir(&images).unwrap();
    // Files sort as frames: 0-5 persons, 6-11 junk (background, clutter, body parts, two people).
    for i in 0..6u32 {
        let camera = Camera::market(1 + (i % 6) as u8).unwrap();
        let person = PersonAppearance::new(11, 40 + i);
        let crop = render_crop(&person, &camera, u64::from(i), 64, 128).unwrap();
        crop.save(images.join(format!("a{i}.png"))).unwrap();
        let junk = render_junk(&camera, 100 + u64::from(i), 64, 128).unwrap();
        junk.save(images.join(format!("b{i}.png"))).unwrap();
    }
    let pre = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/pre-detector.onnx");
    let images = images.display().to_string();
    let pre = pre.display().to_string();
    let out = edge_reid(
        dir.path(),
        &["run", "--input", &images, "--pre-detector", &pre],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, observations) = events.split_last().unwrap();
    assert_eq!(summary["crops"], 12);
    assert!(summary["ms"]["pre_detector"].as_f64().unwrap() > 0.0);
    let kept: Vec<u64> = observations
        .iter()
        .map(|o| o["frame"].as_u64().unwrap())
        .collect();
    let persons_kept = kept.iter().filter(|&&f| f < 6).count();
    let junk_kept = kept.len() - persons_kept;
    // The shipped pre-detector keeps 97% of persons and drops 94% of junk on held-out crops.
    assert!(persons_kept >= 5, "kept frames {kept:?}");
    assert!(junk_kept <= 1, "kept frames {kept:?}");
    assert_eq!(summary["dropped"], 12 - kept.len());
    for o in observations {
        let score = o["person_score"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&score), "{o}");
    }
}

#[test]
fn an_events_file_is_appended_to_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = edge_reid(
            dir.path(),
            &["--synthetic", "--frames", "1", "--events", "events.jsonl"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "events go to the file only");
        std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap()
    };
    let first = run();
    assert_eq!(
        mode(&dir.path().join("events.jsonl")),
        0o600,
        "events for the owner only"
    );
    let second = run();
    assert!(
        second.starts_with(&first),
        "the first run's events are kept"
    );
    let summaries = second.lines().filter(|l| l.contains("\"summary\"")).count();
    assert_eq!(summaries, 2);
}

/// `--auto-enroll` names unknown tracks `anon-N` by the unknown distance: with a huge one, every
/// newcomer is the first anonymous person; with a tiny one, every track is somebody new. Without
/// any unknown distance it is refused.
#[test]
fn auto_enrollment_names_unknown_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let model = model();
    let space = edge_reid::gallery::EmbeddingSpace::of_model(
        &edge_reid::model::Model::load(&model, 1).unwrap(),
    )
    .unwrap();
    edge_reid::gallery::Gallery::create(&dir.path().join("edge-reid.gallery"), space).unwrap();
    let names = |distance: &str| -> (Vec<String>, usize) {
        let out = edge_reid(
            dir.path(),
            &[
                "--synthetic",
                "--frames",
                "40",
                "--auto-enroll",
                "--max-distance",
                distance,
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let events = events(&out.stdout);
        let tracks = events.last().unwrap()["tracks"].as_u64().unwrap() as usize;
        let mut names: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "track")
            .map(|e| e["identity"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names.dedup();
        (names, tracks)
    };
    let (same, tracks) = names("1e9");
    assert!(tracks >= 2, "{tracks} tracks");
    assert_eq!(same, ["anon-1"]);
    let (all, tracks) = names("1e-6");
    let mut expected: Vec<String> = (1..=tracks).map(|i| format!("anon-{i}")).collect();
    expected.sort();
    assert_eq!(all, expected);

    let out = edge_reid(
        dir.path(),
        &["--synthetic", "--frames", "2", "--auto-enroll"],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--max-distance"), "{stderr}");
}

/// `--detector` runs a YOLO-layout ONNX detector: on a 64x32 picture letterboxed into its 32x32
/// input (scale 1/2, 8 rows of padding above), its two person candidates come back in picture
/// pixels, clipped to the picture, and its other-class candidate is not a person.
#[test]
fn detector_boxes_come_back_in_frame_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("street.png");
    image::RgbImage::from_fn(64, 32, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 8) as u8, 90])
    })
    .save(&picture)
    .unwrap();
    let detector =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-yolo.onnx");
    let out = edge_reid(
        dir.path(),
        &[
            "--input",
            picture.to_str().unwrap(),
            "--detector",
            detector.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = events(&out.stdout);
    let boxes: Vec<[u64; 4]> = events
        .iter()
        .filter(|e| e["event"] == "observation")
        .map(|e| {
            let b = &e["box"];
            ["x", "y", "width", "height"].map(|k| b[k].as_u64().unwrap())
        })
        .collect();
    // Candidate 1: x 12..20, y 8..24 in the input -> x 24..40, y 0..32. Candidate 2: x 5..11,
    // y 6..18 -> x 10..22, y -4..20, clipped to 0..20. Best score first.
    assert_eq!(boxes, [[24, 0, 16, 32], [10, 0, 12, 20]]);

    let bad = dir.path().join("not-a-model.onnx");
    std::fs::write(&bad, b"no protobuf here").unwrap();
    let out = edge_reid(
        dir.path(),
        &[
            "--input",
            picture.to_str().unwrap(),
            "--detector",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not-a-model.onnx"), "{stderr}");
}
