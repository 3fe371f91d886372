//! `--http`: a run's live page and API through a real HTTP client (Python's urllib): the page,
//! the people in view, the event stream (Server-Sent Events), the MJPEG view, the search of the
//! event store with its errors, the metrics beside them, the token an address other than
//! loopback needs, and the gallery: a track enrolled through the API the page uses is named in
//! its next events, and removed again.

use std::time::{Duration, Instant};

use serde_json::Value;

use edge_reid::web::{MAX_PHOTOS, MAX_PHOTO_BYTES};

use super::http::{address_in_stderr, post_photos, request, request_with, Reply};
use super::{edge_reid, edge_reid_with, shipped_model, spawn, spawn_edge_reid, terminate, text};

/// `url` until `done` says its reply is the one wanted (two minutes at most).
fn poll(url: &str, mut done: impl FnMut(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = request(url, &[], 0);
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The gallery's people as `/api/gallery` lists them (name, embeddings), each with the time it was
/// enrolled, within the last ten minutes.
pub(super) fn people(base: &str) -> Vec<(String, u64)> {
    let g = request(&format!("{base}/api/gallery"), &[], 0).json();
    g["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let enrolled = humantime::parse_rfc3339(p["enrolled"].as_str().unwrap()).unwrap();
            let age = std::time::SystemTime::now()
                .duration_since(enrolled)
                .unwrap();
            assert!(age < Duration::from_secs(600), "{p}");
            (
                p["name"].as_str().unwrap().to_string(),
                p["embeddings"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Waits (90 s at most) until an event of `track` in the `events` file names it `name`.
pub(super) fn wait_named(events: &std::path::Path, track: u64, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let named = std::fs::read_to_string(events)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["track"] == track && e["identity"]["name"] == name);
        if named {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "track {track} was never named {name}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn the_live_page_and_the_api_answer_during_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--quiet",
            "--store",
            "tracks.db",
            // Tracks end soon after their person leaves: stored rows come quickly.
            "--max-lost",
            "5",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let (base, _) = address_in_stderr(&mut run, "edge-reid: live page on ");

    let page = request(&format!("{base}/"), &[], 0);
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    assert!(page.text().contains("People in view"), "{}", page.text());

    // People in view, as track events.
    let tracks = poll(&format!("{base}/api/tracks"), |r| {
        r.json()["in_view"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    });
    let first = &tracks.json()["in_view"][0];
    assert_eq!(first["event"], "track");
    assert_eq!(first["attributes"].as_array().unwrap().len(), 12);

    // The event stream: `data:` lines, each one event.
    let stream = request(&format!("{base}/api/events/stream"), &[], 3000);
    assert!(stream.headers["content-type"].starts_with("text/event-stream"));
    let events: Vec<Value> = stream
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(!events.is_empty(), "{}", stream.text());
    assert!(events.iter().all(|e| e["event"] == "track"), "{events:?}");

    // The view: multipart JPEG frames.
    let view = request(&format!("{base}/stream.mjpeg"), &[], 4096);
    assert!(view.headers["content-type"].starts_with("multipart/x-mixed-replace; boundary="));
    let at = view
        .body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a part header");
    assert_eq!(&view.body[at + 4..at + 7], b"\xff\xd8\xff", "a JPEG");

    // The search: once a track is stored, its own `up` label and score find it, and everything
    // found holds that label at that score or above.
    let stored = poll(&format!("{base}/api/search"), |r| {
        r.json()["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    let first = stored.json()["tracks"][0].clone();
    let up = |t: &Value| -> (String, f64) {
        let a = t["track"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "up")
            .unwrap()
            .clone();
        (
            a["label"].as_str().unwrap().to_string(),
            a["score"].as_f64().unwrap(),
        )
    };
    let (label, score) = up(&first);
    let min = (score - 0.01).max(0.0);
    let found = request(
        &format!("{base}/api/search?up={label}&min_score={min}"),
        &[],
        0,
    );
    let found = found.json()["tracks"].as_array().unwrap().clone();
    assert!(found.iter().any(|t| t["id"] == first["id"]), "{found:?}");
    for t in &found {
        let (l, s) = up(t);
        assert!(l == label && s >= min, "{t}");
        assert_eq!(t["track"]["status"], "end");
        assert!(t["duration"].as_f64().unwrap() > 0.0);
    }
    let bad = request(&format!("{base}/api/search?colour=red"), &[], 0);
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("colour"));
    let none = request(&format!("{base}/api/tracks/999999/snapshot"), &[], 0);
    assert_eq!(none.status, 404);

    // The metrics come along.
    let metrics = request(&format!("{base}/metrics"), &[], 0);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text().contains("edge_reid_frames_total"),
        "{}",
        metrics.text()
    );
    terminate(run);
}

#[test]
fn off_loopback_every_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = edge_reid(
        dir.path(),
        &["--synthetic", "--frames", "1", "--http", "0.0.0.0:0"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("needs --http-token"),
        "{}",
        text(&out.stderr)
    );

    let mut run = spawn_edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--quiet",
            "--http",
            "0.0.0.0:0",
            "--http-token",
            "s3cret-token",
        ],
    );
    let (base, _) = address_in_stderr(&mut run, "edge-reid: live page on ");
    let base = base.replace("0.0.0.0", "127.0.0.1");
    for path in ["/", "/api/tracks", "/metrics", "/stream.mjpeg"] {
        let r = request(&format!("{base}{path}"), &[], 0);
        assert_eq!(r.status, 401, "{path}");
        let r = request(
            &format!("{base}{path}"),
            &["Authorization: Bearer s3cret-tokeN"],
            0,
        );
        assert_eq!(r.status, 401, "{path} with a wrong token");
    }
    let r = request(
        &format!("{base}/api/tracks"),
        &["Authorization: Bearer s3cret-token"],
        0,
    );
    assert_eq!(r.status, 200);
    // A browser brings it once in the URL and then has a cookie.
    let r = request(&format!("{base}/?token=s3cret-token"), &[], 0);
    assert_eq!(r.status, 200);
    let cookie = r.headers["set-cookie"]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(cookie, "edge-reid-token=s3cret-token");
    let r = request(
        &format!("{base}/api/tracks"),
        &[&format!("Cookie: {cookie}")],
        0,
    );
    assert_eq!(r.status, 200);
    terminate(run);
}

#[test]
fn a_track_enrolled_from_the_page_is_named_in_its_next_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut run = spawn(
        d,
        &shipped_model(),
        &[
            "--synthetic",
            "--quiet",
            "--events",
            "events.jsonl",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let (base, _) = address_in_stderr(&mut run, "edge-reid: live page on ");
    let page = request(&format!("{base}/gallery"), &[], 0);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Enroll a person from a track"));

    // A track in view with a kept crop.
    let mut track = 0;
    poll(&format!("{base}/api/tracks"), |r| {
        let Some(t) = r.json()["in_view"][0]["track"].as_u64() else {
            return false;
        };
        let crop = request(&format!("{base}/api/crops/{t}/0"), &[], 0);
        track = t;
        crop.status == 200 && crop.body.starts_with(b"\xff\xd8\xff")
    });
    let enroll = |name: &str, track: u64| {
        request_with(
            "POST",
            &format!("{base}/api/gallery/{name}/track/{track}"),
            &[],
            0,
        )
    };
    let r = enroll("zoe", track);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["name"].as_str(), r.json()["new"].as_bool()),
        (Some("zoe"), Some(true))
    );
    assert!(r.json()["added"].as_u64().unwrap() >= 1);
    let zoe = ("zoe".to_string(), r.json()["added"].as_u64().unwrap());
    assert_eq!(people(&base), std::slice::from_ref(&zoe));

    // The track's next events name the person.
    wait_named(&d.join("events.jsonl"), track, "zoe");

    // Uploaded photos: the crop as a person's photo, then uploads past the limits.
    let photo = request(&format!("{base}/api/crops/{track}/0"), &[], 0).body;
    let photos_url = format!("{base}/api/gallery/ann/photos");
    let uploaded = post_photos(&photos_url, &[("ann.jpg", &photo), ("ann-2.jpg", &photo)]);
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    assert_eq!(
        (
            uploaded.json()["added"].as_u64(),
            uploaded.json()["new"].as_bool()
        ),
        (Some(2), Some(true))
    );
    let refused = |photos: &[(&str, &[u8])], status: u16, says: &str| {
        let r = post_photos(&photos_url, photos);
        assert_eq!(r.status, status, "{}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains(says),
            "{}",
            r.text()
        );
    };
    refused(
        &[("ann.jpg", &photo), ("notes.txt", b"not a picture")],
        400,
        "notes.txt",
    );
    refused(&[], 400, "no photo");
    let many: Vec<(&str, &[u8])> = (0..=MAX_PHOTOS).map(|_| ("ann.jpg", &photo[..])).collect();
    refused(&many, 413, &format!("at most {MAX_PHOTOS} photos"));
    let huge = vec![0u8; MAX_PHOTO_BYTES + 1];
    refused(&[("huge.jpg", &huge)], 413, "huge.jpg is larger");
    // A refused upload enrolled nothing.
    assert_eq!(people(&base), [zoe, ("ann".to_string(), 2)]);

    // Refusals, then the removals.
    let ann = format!("{base}/api/gallery/ann");
    assert_eq!(request_with("DELETE", &ann, &[], 0).status, 200);
    assert_eq!(enroll("%20zoe", track).status, 400);
    assert_eq!(enroll("nobody", 999_999).status, 404);
    let url = format!("{base}/api/gallery/zoe");
    assert_eq!(request_with("DELETE", &url, &[], 0).status, 200);
    assert_eq!(request_with("DELETE", &url, &[], 0).status, 404);
    assert_eq!(people(&base), []);
    terminate(run);
    // Written as enroll writes it: the gallery file lists nobody now.
    let list = edge_reid_with(d, &shipped_model(), &["gallery", "list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(text(&list.stdout), "");
}
