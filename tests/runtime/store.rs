//! `--store`: a run on the synthetic camera keeps one row per track, each its `end` event, and a
//! search by upper-body colour finds the people the synthetic camera dressed that way (its own
//! ground truth, not the model's answers); snapshots are small JPEG crops; the rows survive a
//! kill -9; a file that is no store fails the run, named, and stays as it was.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_reid::attributes::{attribute_index, ATTRIBUTES};
use edge_reid::source::{SyntheticCamera, SyntheticConfig};
use edge_reid::store::{Query, Store, StoredTrack};
use serde_json::Value;

use super::{edge_reid_with, shipped_model, spawn, text};

/// Every stored track.
fn all(path: &Path) -> Vec<StoredTrack> {
    let query = Query {
        limit: 1000,
        ..Query::default()
    };
    Store::open_read(path).unwrap().search(&query).unwrap()
}

#[test]
fn stored_tracks_are_the_runs_tracks_and_the_red_tops_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = edge_reid_with(
        d,
        &shipped_model(),
        &[
            "--synthetic",
            "--frames",
            "120",
            "--format",
            "json",
            "--store",
            "tracks.db",
            "--snapshots",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let by_track = |v: &&Value| v["track"].as_u64();
    let mut ended: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "track" && e["status"] == "end")
        .collect();
    ended.sort_by_key(|e| by_track(&e));
    assert!(ended.len() >= 3, "{ended:?}");
    let stored = all(&d.join("tracks.db"));
    let mut rows: Vec<&Value> = stored.iter().map(|t| &t.track).collect();
    rows.sort_by_key(by_track);
    assert_eq!(rows, ended.iter().collect::<Vec<_>>());
    for t in &stored {
        assert!(t.duration > 0.0, "{t:?}");
        assert!(t.snapshot, "{t:?}");
        let jpeg = Store::open_read(&d.join("tracks.db"))
            .unwrap()
            .snapshot(t.id)
            .unwrap()
            .unwrap();
        let image = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
        assert!(image.width() <= 128 && image.height() <= 256, "{t:?}");
    }

    // The people the demo gallery names (person-N is the camera's identity N) wearing red on
    // top, by the camera's truth.
    let camera = SyntheticCamera::new(SyntheticConfig::default()).unwrap();
    let upcolor = attribute_index("upcolor").unwrap();
    let true_upcolor = |name: &str| -> Option<&str> {
        let n: usize = name.strip_prefix("person-")?.parse().ok()?;
        let person = camera.people().get(n - 1)?;
        Some(ATTRIBUTES[upcolor].labels[usize::from(person.attributes()[upcolor])])
    };
    let named = |tracks: &[StoredTrack]| -> BTreeSet<(u64, String)> {
        tracks
            .iter()
            .filter_map(|t| {
                let name = t.track["identity"]["name"].as_str()?;
                Some((t.track["track"].as_u64()?, name.to_string()))
            })
            .collect()
    };
    let truly_red: BTreeSet<(u64, String)> = named(&stored)
        .into_iter()
        .filter(|(_, name)| true_upcolor(name) == Some("red"))
        .collect();
    assert!(
        !truly_red.is_empty(),
        "no named red-top track in {stored:?}"
    );
    let query = Query {
        attributes: vec![("upcolor".into(), "red".into())],
        min_score: 0.5,
        ..Query::default()
    };
    let found = Store::open_read(&d.join("tracks.db"))
        .unwrap()
        .search(&query)
        .unwrap();
    assert_eq!(named(&found), truly_red);
}

#[test]
fn stored_tracks_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("tracks.db");
    let mut run = spawn(
        d,
        &super::model(),
        // Tracks end soon after their person leaves: stored rows come quickly.
        &[
            "--synthetic",
            "--quiet",
            "--store",
            "tracks.db",
            "--max-lost",
            "5",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    let before = loop {
        assert!(Instant::now() < deadline, "no track stored");
        std::thread::sleep(Duration::from_millis(200));
        let Ok(store) = Store::open_read(&path) else {
            continue;
        };
        let n = store.search(&Query::default()).map_or(0, |t| t.len());
        if n >= 2 {
            break n;
        }
    };
    run.kill().unwrap();
    run.wait().unwrap();
    // Opened for writing again (the journal recovered): every row read before is there.
    drop(Store::open(&path, None).unwrap());
    assert!(all(&path).len() >= before);
}

#[test]
fn a_file_that_is_no_store_fails_the_run_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let notes = d.join("notes.txt");
    let bytes = b"these are notes, not tracks; long enough for SQLite to read a header".repeat(3);
    std::fs::write(&notes, &bytes).unwrap();
    let out = edge_reid_with(
        d,
        &super::model(),
        &["--synthetic", "--frames", "2", "--store", "notes.txt"],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("event store notes.txt"), "{stderr}");
    assert!(stderr.contains("not a database"), "{stderr}");
    assert_eq!(std::fs::read(&notes).unwrap(), bytes);
}
