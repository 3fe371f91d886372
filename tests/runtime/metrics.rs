//! `--metrics ADDR`: `/metrics` scraped during a run by a real HTTP client (Python's urllib) grows,
//! and `/healthz` says whether the source delivers frames.

use std::process::Child;
use std::time::Duration;

use super::http::{address_in_stderr, get};
use super::{spawn_edge_reid, terminate};

/// Where the run serves its metrics.
fn metrics_base(run: &mut Child) -> String {
    address_in_stderr(run, "edge-reid: metrics on ").0
}

/// The value of the sample `name` (with its labels, as written) in a text exposition.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_grow_during_a_run_and_health_follows_the_frames() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--frames",
            "1000000",
            "--quiet",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let base = metrics_base(&mut run);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    std::thread::sleep(Duration::from_secs(2));
    let (code, first) = get(&format!("{base}/metrics"));
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_secs(2));
    let (_, second) = get(&format!("{base}/metrics"));
    for counter in ["frames_total", "crops_total"] {
        let name = format!("edge_reid_{counter}");
        let (a, b) = (sample(&first, &name), sample(&second, &name));
        assert!(a > 0.0 && b > a, "{name}: {a} then {b}");
    }
    assert!(sample(&second, "edge_reid_tracks_started_total") > 0.0);
    let frames = sample(&second, "edge_reid_frames_total");
    let model = sample(&second, "edge_reid_stage_seconds_count{stage=\"model\"}");
    assert_eq!(model, frames, "one model-time observation per frame");
    assert!(sample(&second, "edge_reid_stage_seconds_sum{stage=\"model\"}") > 0.0);
    let (code, health) = get(&format!("{base}/healthz"));
    assert_eq!(
        (code, health.trim()),
        (200, "ok: the source delivers frames")
    );
    assert_eq!(get(&format!("{base}/nothing")).0, 404);
    terminate(run);
}

#[test]
fn health_is_503_while_the_source_delivers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Raw frames on stdin that never come.
    let mut run = spawn_edge_reid(
        dir.path(),
        &[
            "--input",
            "-",
            "--size",
            "32x32",
            "--quiet",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let base = metrics_base(&mut run);
    let (code, health) = get(&format!("{base}/healthz"));
    assert_eq!((code, health.trim()), (503, "unhealthy: no frame yet"));
    assert_eq!(
        sample(&get(&format!("{base}/metrics")).1, "edge_reid_frames_total"),
        0.0
    );
    drop(run.stdin.take()); // end of the stream
    assert!(run.wait().unwrap().success());
}
