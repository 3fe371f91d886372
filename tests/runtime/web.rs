//! `--http`: a run's live page and API through a real HTTP client (Python's urllib): the page,
//! the people in view, the event stream (Server-Sent Events), the MJPEG view, the search of the
//! event store with its errors, the metrics beside them, and the token an address other than
//! loopback needs.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{address_in_stderr, request, Reply};
use super::{edge_reid, spawn_edge_reid, terminate, text};

/// `url` until `done` says its reply is the one wanted (60 s at most).
fn poll(url: &str, done: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(60);
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

    // The search: stored tracks whose averaged attribute is the one asked, above the score.
    let found = poll(&format!("{base}/api/search?up=short&min_score=0.5"), |r| {
        r.json()["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    for t in found.json()["tracks"].as_array().unwrap() {
        let up = t["track"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "up")
            .unwrap();
        assert_eq!(up["label"], "short", "{t}");
        assert!(up["score"].as_f64().unwrap() >= 0.5, "{t}");
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
