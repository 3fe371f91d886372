//! `--gallery-sync` with two runtime processes on one real mosquitto: a box that joins gets the
//! fleet's people, an `enroll` on one box and a `gallery remove` on the other (also one made
//! while that box was stopped) reach the other box, both end with the same gallery (the same
//! embeddings: `identify` gives the same distances), the broker holds the records, removals as
//! tombstones, a record of another model is ignored and said so, and a running box's Home
//! Assistant sensors follow its gallery.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use edge_reid::source::{SyntheticCamera, SyntheticConfig};
use serde_json::Value;

use super::cli::crops;
use super::mqtt::{retained, retained_all, Broker};
use super::{edge_reid, spawn_edge_reid, terminate, text};

/// Another model's fingerprint (as topics show it).
const OTHER_MODEL: &str = "00112233aabbccdd";

/// A box: `edge-reid --synthetic --gallery-sync` on `gallery`, named `name`.
fn start_box(dir: &Path, broker: &Broker, name: &str, gallery: &str) -> Child {
    spawn_edge_reid(
        dir,
        &[
            "--synthetic",
            "--quiet",
            "--gallery",
            gallery,
            "--mqtt",
            &broker.url(),
            "--gallery-sync",
            "--box-name",
            name,
        ],
    )
}

/// `gallery list` of `gallery` without the enrollment times (`name\tcount` lines), sorted.
fn people(dir: &Path, gallery: &str) -> Vec<String> {
    let out = edge_reid(dir, &["gallery", "--gallery", gallery, "list"]);
    let mut lines: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| l.rsplit_once('\t').map_or(l, |(kept, _)| kept).to_string())
        .collect();
    lines.sort();
    lines
}

/// Waits until `gallery` lists `wanted` (sorted `name\tcount` lines).
fn wait_for_people(dir: &Path, gallery: &str, wanted: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = people(dir, gallery);
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{gallery} holds {now:?}, not {wanted:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn enroll(dir: &Path, gallery: &str, name: &str, images: &[String]) {
    let mut args = vec!["enroll", "--gallery", gallery, "--name", name];
    args.extend(images.iter().map(String::as_str));
    let out = edge_reid(dir, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The observations of `identify` of `images` against `gallery`.
fn identify(dir: &Path, gallery: &str, images: &[String]) -> Vec<Value> {
    let mut args = vec!["identify", "--gallery", gallery, "--max-distance", "inf"];
    args.extend(images.iter().map(String::as_str));
    let out = edge_reid(dir, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_boxes_end_with_the_same_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(broker) = Broker::start(d) else {
        return;
    };
    let camera = SyntheticCamera::new(SyntheticConfig::default()).unwrap();
    let alice = crops(d, &camera, 1, 2);
    let bob = crops(d, &camera, 2, 2);
    let carol = crops(d, &camera, 3, 3);
    enroll(d, "a.gallery", "alice", &alice);
    enroll(d, "a.gallery", "bob", &bob);
    // Another model's boxes share their gallery on the same broker.
    let foreign = format!("edge-reid/gallery/{OTHER_MODEL}/mallory");
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-r"])
        .args(["-t", &foreign, "-m", "{\"name\": \"mallory\"}"])
        .status()
        .unwrap();
    assert!(status.success());

    // B joins with no gallery and gets A's people.
    let a = start_box(d, &broker, "a", "a.gallery");
    let b = start_box(d, &broker, "b", "b.gallery");
    wait_for_people(d, "b.gallery", &["alice\t2", "bob\t2"]);
    // Enrolled on A while both run; removed on B.
    enroll(d, "a.gallery", "carol", &carol[..2]);
    wait_for_people(d, "b.gallery", &["alice\t2", "bob\t2", "carol\t2"]);
    let out = edge_reid(d, &["gallery", "--gallery", "b.gallery", "remove", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for_people(d, "a.gallery", &["bob\t2", "carol\t2"]);

    // A change made while B is stopped reaches A when B starts again.
    let b_said = terminate(b);
    let out = edge_reid(d, &["gallery", "--gallery", "b.gallery", "remove", "bob"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let b = start_box(d, &broker, "b", "b.gallery");
    wait_for_people(d, "a.gallery", &["carol\t2"]);
    let a_said = terminate(a);
    let b_said = b_said + &terminate(b);

    assert_eq!(people(d, "a.gallery"), people(d, "b.gallery"));
    // The same embeddings: the same distances to pictures never enrolled.
    let (on_a, on_b) = (
        identify(d, "a.gallery", &carol[2..]),
        identify(d, "b.gallery", &carol[2..]),
    );
    assert_eq!(on_a[0]["identity"]["name"], "carol");
    assert_eq!(on_a[0]["identity"], on_b[0]["identity"]);

    // What each box said, and what the broker holds.
    for (said, other) in [(&a_said, "b"), (&b_said, "a")] {
        assert!(
            said.contains(&format!(
                "ignoring the gallery of model {OTHER_MODEL} on the broker"
            )),
            "{said}"
        );
        assert!(said.contains(&format!("by box \"{other}\"")), "{said}");
    }
    let prefix = a_said
        .lines()
        .find_map(|l| l.strip_prefix("edge-reid: gallery sync: sharing a.gallery under "))
        .unwrap_or_else(|| panic!("{a_said}"))
        .to_string();
    let record = |name: &str| -> Value {
        serde_json::from_str(&retained(&broker, &format!("{prefix}{name}"))).unwrap()
    };
    let (alice, carol) = (record("alice"), record("carol"));
    assert_eq!(
        (&alice["removed"], &alice["origin"]),
        (&true.into(), &"b".into())
    );
    assert_eq!(alice["embeddings"], Value::Array(Vec::new()));
    assert_eq!(
        (&carol["removed"], &carol["origin"]),
        (&false.into(), &"a".into())
    );
    assert_eq!(carol["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(record("bob")["removed"], true);

    // A ran throughout: its sensors followed the enrollment here and the removals there.
    let sensors: Vec<String> = retained_all(&broker, "homeassistant/sensor/edge-reid-a/#")
        .into_iter()
        .filter(|(t, p)| t.ends_with("_last_seen/config") && !p.is_empty())
        .map(|(_, p)| serde_json::from_str::<Value>(&p).unwrap()["name"].to_string())
        .collect();
    assert_eq!(sensors, ["\"carol last seen\""]);
}
