//! The pages in a real browser: Debian's Chromium, headless, driven through the DevTools
//! protocol by `tests/browser/drive.py`. One run of the shipped model on the synthetic camera
//! serves all three pages: the live page shows the annotated view and a person of the gallery by
//! name; a person enrolled through the gallery page's own form (a POST from the browser) is named
//! in their track's next events, and photos chosen in its file field enroll another; the search
//! page finds tracks in red tops.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::http::{address_in_stderr, request};
use super::web::{people, wait_named};
use super::{shipped_model, skip, spawn, terminate, text};

/// Runs `steps` in a headless Chromium: the values of their `eval` steps.
fn drive(dir: &Path, steps: &Value) -> Vec<Value> {
    let file = dir.join("steps.json");
    std::fs::write(&file, steps.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/drive.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn chromium() -> Option<()> {
    match Command::new("chromium").arg("--version").output() {
        Ok(o) if o.status.success() => Some(()),
        _ => skip("chromium is not installed"),
    }
}

/// How many distinct colours the `(x, y, width, height)` part of a screenshot has.
fn colours(png: &Path, (x, y, w, h): (u32, u32, u32, u32)) -> usize {
    let shot = image::open(png).unwrap().into_rgb8();
    let mut seen = std::collections::HashSet::new();
    for py in y..(y + h).min(shot.height()) {
        for px in x..(x + w).min(shot.width()) {
            seen.insert(shot.get_pixel(px, py).0);
        }
    }
    seen.len()
}

#[test]
fn the_pages_work_in_a_real_browser() {
    if chromium().is_none() {
        return;
    }
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
            "--store",
            "tracks.db",
            "--snapshots",
            "--max-lost",
            "5",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let (base, _) = address_in_stderr(&mut run, "edge-reid: live page on ");

    // The live page: the view is drawn and a person of the (demo) gallery is named.
    let shot = d.join("live.png");
    let named = "[...document.querySelectorAll('#people .name')]\
                 .filter(n => !n.classList.contains('unknown')).map(n => n.textContent)";
    let seen = drive(
        d,
        &json!([
            {"open": format!("{base}/")},
            {"wait": format!("document.getElementById('view').naturalWidth > 0 && {named}.length > 0")},
            {"eval": named},
            {"eval": "(r => [r.x, r.y, r.width, r.height].map(Math.round))(document.getElementById('view').getBoundingClientRect())"},
            {"screenshot": shot},
        ]),
    );
    let names: Vec<&str> = seen[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    // The synthetic camera's first people are its demo gallery.
    assert!(
        names
            .iter()
            .all(|n| ["person-1", "person-2", "person-3", "person-4"].contains(n)),
        "{names:?}"
    );
    let rect: Vec<u32> = serde_json::from_value(seen[1].clone()).unwrap();
    // A drawn camera view has thousands of colours; a blank or black box has one.
    let drawn = colours(&shot, (rect[0], rect[1], rect[2], rect[3]));
    assert!(
        drawn > 1000,
        "the view in the screenshot has {drawn} colours"
    );

    // The gallery page: a track enrolled through its form; a kept crop chosen as photos.
    let crop = d.join("crop.jpg");
    let enrolled = drive(
        d,
        &json!([
            {"open": format!("{base}/gallery")},
            {"wait": "[...document.querySelectorAll('#tracks .track img')].some(i => i.complete && i.naturalWidth > 0)"},
            {"eval": "(() => {
                const li = [...document.querySelectorAll('#tracks .track')]
                    .find(l => l.querySelector('img').naturalWidth > 0);
                li.querySelector('input[name=name]').value = 'zoe';
                li.querySelector('form').requestSubmit();
                return Number(li.dataset.track);
            })()"},
            {"wait": "document.getElementById('message').textContent.startsWith('enrolled zoe')"},
            {"eval": "document.querySelector('#tracks .track img').src"},
        ]),
    );
    let track = enrolled[0].as_u64().unwrap();
    let crop_url = enrolled[1].as_str().unwrap();
    std::fs::write(&crop, request(crop_url, &[], 0).body).unwrap();
    drive(
        d,
        &json!([
            {"open": format!("{base}/gallery")},
            // The page's script has taken the form over (else it would submit as a plain GET).
            {"wait": "document.getElementById('photos').onsubmit"},
            {"files": "#photos input[type=file]", "paths": [crop, crop]},
            {"eval": "(() => {
                const form = document.getElementById('photos');
                form.elements.name.value = 'ann';
                form.requestSubmit();
            })()"},
            {"wait": "document.getElementById('message').textContent.startsWith('enrolled ann')"},
            {"wait": "[...document.querySelectorAll('#people .person')].some(p => p.dataset.name === 'ann')"},
        ]),
    );
    let people = people(&base);
    assert!(people.contains(&("ann".to_string(), 2)), "{people:?}");

    // The track's next events name the person enrolled from it.
    wait_named(&d.join("events.jsonl"), track, "zoe");

    // The search page, from a link: stored tracks in red tops, with their snapshots.
    let found = drive(
        d,
        &json!([
            {"open": format!("{base}/search?upcolor=red")},
            {"wait": "document.getElementById('query').elements.upcolor.value === 'red'"},
            {"wait": "search().then(() => document.querySelectorAll('#results .result img').length > 0)"},
            {"eval": "[...document.querySelectorAll('#results .result')].map(r => r.innerText)"},
        ]),
    );
    let results = found[0].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        assert!(r.as_str().unwrap().contains("upcolor red"), "{r}");
    }
    terminate(run);
}
