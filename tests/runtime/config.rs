//! `--config FILE.toml` and `edge-reid config check`: the example in `examples/` is whole and valid,
//! a file's options take effect, the command line wins, and a bad key or value names its line.

use std::path::{Path, PathBuf};

use super::{edge_reid, text};

/// The commented example config kept in the repo.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/edge-reid.toml")
}

/// The long options `edge-reid run --help` lists.
fn run_options(dir: &Path) -> Vec<String> {
    let help = text(&edge_reid(dir, &["run", "--help"]).stdout);
    let mut options: Vec<String> = help
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-q, ").unwrap_or(l);
            l.strip_prefix("--")
                .map(|rest| rest.split([' ', '=']).next().unwrap().to_string())
        })
        .filter(|o| !["help", "config"].contains(&o.as_str()))
        .collect();
    options.dedup();
    options
}

#[test]
fn the_example_config_holds_every_option_of_run_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let example_text = std::fs::read_to_string(example()).unwrap();
    let options = run_options(dir.path());
    assert!(options.len() > 20, "{options:?}");
    for option in &options {
        let set = example_text.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            l.starts_with(&format!("{option} ="))
        });
        assert!(set, "examples/edge-reid.toml does not mention `{option}`");
    }
    let out = edge_reid(
        dir.path(),
        &["config", "check", example().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(": ok ("),
        "{}",
        text(&out.stdout)
    );
    // The file with any one of its commented-out settings uncommented is valid too (one at a
    // time: the source keys, for one, cannot go together).
    let lines: Vec<&str> = example_text.lines().collect();
    for (n, l) in lines.iter().enumerate() {
        let Some(setting) = l.strip_prefix("# ").filter(|s| s.contains(" = ")) else {
            continue;
        };
        let mut edited = lines.clone();
        edited[n] = setting;
        let file = dir.path().join(format!("line-{n}.toml"));
        std::fs::write(&file, edited.join("\n")).unwrap();
        let out = edge_reid(dir.path(), &["config", "check", file.to_str().unwrap()]);
        assert!(out.status.success(), "{setting}: {}", text(&out.stderr));
    }
}

#[test]
fn a_config_sets_options_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.toml"),
        "# a site\ndevice = \"/dev/video-that-is-not-there\"\nframes = 4\nno-track = true\n\
         events = \"from-config.jsonl\"\nformat = \"json\"\n",
    )
    .unwrap();
    // --synthetic overrides the file's device (they cannot go together); the file's frames,
    // no-track and events apply; --frames on the command line wins over the file's.
    let out = edge_reid(
        dir.path(),
        &["--config", "site.toml", "--synthetic", "--frames", "2"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = std::fs::read_to_string(dir.path().join("from-config.jsonl")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(summary["frames"], 2);
    assert_eq!(summary["tracks"], 0, "no-track from the file");
    assert!(summary["observations"].as_u64().unwrap() > 0);
    // format = "json" from the file: stdout has the events as well.
    assert_eq!(text(&out.stdout), events);
    // `run --config` works as well; without --synthetic the file's camera is opened and missing.
    let out = edge_reid(dir.path(), &["run", "--config", "site.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/dev/video-that-is-not-there"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| {
        std::fs::write(dir.path().join("bad.toml"), body).unwrap();
        let out = edge_reid(dir.path(), &["config", "check", "bad.toml"]);
        assert!(!out.status.success(), "{body} passed");
        let run = edge_reid(
            dir.path(),
            &["--config", "bad.toml", "--synthetic", "--frames", "1"],
        );
        assert!(!run.status.success(), "{body} ran");
        assert!(run.stdout.is_empty());
        text(&out.stderr)
    };
    let e = check("fps = 10\n\nmax-distanse = 1.0\n");
    assert!(
        e.contains("bad.toml line 3: max-distanse: not an option"),
        "{e}"
    );
    let e = check("fps = \"fast\"\n");
    assert!(e.contains("line 1: fps: invalid value 'fast'"), "{e}");
    // A key that needs another the file does not set.
    let e = check("fps = 10\nmqtt-ca = \"ca.pem\"\n");
    assert!(e.contains("required") && e.contains("--mqtt <URL>"), "{e}");
    let e = check("# header\nsynthetic = \"yes\"\n");
    assert!(
        e.contains("line 2: synthetic: expected true or false, found string"),
        "{e}"
    );
    let e = check("junk-threshold = 1.5\n");
    assert!(
        e.contains("line 1: junk-threshold") && e.contains("between 0 and 1"),
        "{e}"
    );
    let e = check("roi = [[1, 2]]\n");
    assert!(
        e.contains("line 1: roi: expected a string or a number, found array"),
        "{e}"
    );
    let e = check("config = \"other.toml\"\n");
    assert!(e.contains("line 1: config: not an option"), "{e}");
    // The options together, as on the command line.
    let e = check("device = \"/dev/video0\"\ninput = [\"a.jpg\"]\n");
    assert!(e.contains("cannot be used with"), "{e}");
    // Not TOML: the parser's line and column.
    let e = check("fps = \n");
    assert!(e.contains("line 1"), "{e}");
    // A missing file.
    let out = edge_reid(dir.path(), &["config", "check", "missing.toml"]);
    assert!(text(&out.stderr).contains("reading config missing.toml"));
}
