//! What stdout shows: readable lines on a terminal (a real pseudo-terminal, from `script`), JSON
//! Lines in a pipe, `--format` to choose, `--quiet` for nothing.

use std::path::Path;
use std::process::Command;

use super::{edge_reid, model, skip, text};

/// The readable lines of a synthetic run (`--format text`, or a terminal): one per track event,
/// with its name or `unknown`, and the summary.
fn assert_readable(stdout: &str) {
    assert!(
        stdout.lines().all(|l| !l.trim_start().starts_with('{')),
        "no JSON: {stdout}"
    );
    let tracks: Vec<&str> = stdout.lines().filter(|l| l.contains(" track ")).collect();
    assert!(
        tracks.iter().any(|l| l.contains(" new ")) && tracks.iter().any(|l| l.contains(" end ")),
        "{stdout}"
    );
    // hh:mm:ss first, then the track, its name or unknown, and attributes such as up:<colour>.
    for l in &tracks {
        let clock = &l[..8];
        assert!(
            clock.chars().filter(|c| *c == ':').count() == 2 && l.contains("up:"),
            "{l}"
        );
        assert!(l.contains("person-") || l.contains("unknown"), "{l}");
    }
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("summary: 30 frames"),
        "{stdout}"
    );
}

#[test]
fn text_format_prints_one_line_per_event_and_status_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--frames",
            "30",
            "--format",
            "text",
            "--status-every",
            "0.05",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_readable(&stdout);
    let status: Vec<&str> = stdout.lines().filter(|l| l.contains(" status: ")).collect();
    assert!(!status.is_empty(), "{stdout}");
    for l in &status {
        assert!(l.contains(" fps, ") && l.ends_with(" in view"), "{l}");
    }
    // The stages that took time in the interval: the model in some (not in the first frames,
    // before anyone is tracked).
    assert!(status.iter().any(|l| l.contains("model ")), "{stdout}");

    // --status-every 0: none.
    let out = edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--frames",
            "30",
            "--format",
            "text",
            "--status-every",
            "0",
        ],
    );
    assert!(!text(&out.stdout).contains(" status: "));
}

/// `edge-reid ARGS --model <test model>` in `dir` with stdout on a pseudo-terminal, through
/// util-linux's `script`; its output (None if `script` is missing).
fn on_a_terminal(dir: &Path, args: &str) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        return skip("no `script` (util-linux) for a pseudo-terminal");
    }
    let command = format!(
        "{} {args} --model {}",
        env!("CARGO_BIN_EXE_edge-reid"),
        model().display()
    );
    let out = Command::new("script")
        .current_dir(dir)
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    Some(text(&out.stdout).replace('\r', ""))
}

#[test]
fn a_terminal_gets_readable_lines_and_a_pipe_json() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tty) = on_a_terminal(dir.path(), "--synthetic --frames 30 --status-every 0") else {
        return;
    };
    // stderr shares the terminal: keep only stdout's lines.
    let stdout: String = tty
        .lines()
        .filter(|l| !l.starts_with("edge-reid: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_readable(&stdout);
    // --format json on a terminal.
    let tty = on_a_terminal(dir.path(), "--synthetic --frames 3 --format json").unwrap();
    assert!(tty.contains("{\"event\":\"summary\""), "{tty}");

    // A pipe: JSON Lines, every line.
    let out = edge_reid(dir.path(), &["--synthetic", "--frames", "3"]);
    let stdout = text(&out.stdout);
    assert!(!stdout.is_empty());
    for l in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
}

#[test]
fn quiet_prints_nothing_and_still_writes_the_events_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--frames",
            "3",
            "--quiet",
            "--events",
            "e.jsonl",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let events = std::fs::read_to_string(dir.path().join("e.jsonl")).unwrap();
    assert!(events.lines().last().unwrap().contains("\"summary\""));
    // With --events and --format text, the file gets JSON and stdout the readable lines.
    let out = edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--frames",
            "3",
            "--format",
            "text",
            "--events",
            "e.jsonl",
        ],
    );
    assert!(
        text(&out.stdout).starts_with("summary: ") || text(&out.stdout).contains("\nsummary: ")
    );
    let again = std::fs::read_to_string(dir.path().join("e.jsonl")).unwrap();
    assert_eq!(again.matches("\"summary\"").count(), 2);
    // --quiet and --format cannot go together.
    let out = edge_reid(dir.path(), &["--synthetic", "--quiet", "--format", "json"]);
    assert!(!out.status.success());
}
