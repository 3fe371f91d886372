//! Runtime integration tests: one test binary (`cargo test --test runtime`), one module per area.

mod browser;
mod cli;
mod config;
mod eval;
mod fleet;
mod gallery;
mod hostile;
mod http;
mod metrics;
mod mqtt;
mod output;
mod store;
mod truth;
mod video;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The small exported model the tests run (see `tests/fixtures/models/README.md`).
fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/small-64x32.onnx")
}

/// The shipped model: trained long enough to tell the synthetic people apart, with a calibrated
/// unknown distance (the small test model has neither), for the tests of who is who.
fn shipped_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/edge-reid.onnx")
}

/// Runs `edge-reid ARGS --model <test model>` in `dir`.
fn edge_reid(dir: &Path, args: &[&str]) -> Output {
    edge_reid_with(dir, &model(), args)
}

/// Runs `edge-reid ARGS --model MODEL` in `dir`.
fn edge_reid_with(dir: &Path, model: &Path, args: &[&str]) -> Output {
    spawn(dir, model, args)
        .wait_with_output()
        .expect("the binary runs")
}

/// Starts `edge-reid ARGS --model <test model>` in `dir` with its stdin, stdout and stderr piped.
fn spawn_edge_reid(dir: &Path, args: &[&str]) -> Child {
    spawn(dir, &model(), args)
}

/// The command `edge-reid ARGS --model MODEL`, run in `dir`.
fn command(dir: &Path, model: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge-reid"));
    command
        .current_dir(dir)
        .args(args)
        .arg("--model")
        .arg(model);
    command
}

fn spawn(dir: &Path, model: &Path, args: &[&str]) -> Child {
    command(dir, model, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Ends a run with SIGTERM, as systemd does; its stderr, once it exited successfully.
fn terminate(run: Child) -> String {
    assert!(Command::new("kill")
        .arg(run.id().to_string())
        .status()
        .unwrap()
        .success());
    let out = run.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// Program output as text.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Skips a test whose outside tool is missing, saying why (`None`); under CI (`$CI` set), which
/// installs every such tool, fails it instead.
fn skip<T>(why: &str) -> Option<T> {
    assert!(std::env::var_os("CI").is_none(), "{why}: CI must have it");
    println!("skipped: {why}");
    None
}

/// The ids of the track events among `events` with `status` (`new`, `update` or `end`), sorted.
fn track_ids(events: &[serde_json::Value], status: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "track" && e["status"] == status)
        .map(|e| e["track"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}
