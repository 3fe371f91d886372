//! Events for a person at a terminal: one short line per event and a status line now and then,
//! the readable form of what [`super::EventWriter`] writes as JSON Lines.
//!
//! Times are the events' own (UTC), shown to the second.

use super::{AttributeValue, Event, IdentityMatch, StageMillis, Summary, TrackStatus};

/// One line a person can read at a glance: gender, age, clothing colours, carried things.
pub fn short_attributes(attributes: &[AttributeValue]) -> String {
    let label = |name: &str| {
        attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.label.as_str())
    };
    let mut words: Vec<String> = Vec::new();
    words.extend(label("gender").map(str::to_string));
    words.extend(label("age").map(str::to_string));
    words.extend(label("upcolor").map(|c| format!("up:{c}")));
    words.extend(label("downcolor").map(|c| format!("down:{c}")));
    for thing in ["backpack", "bag", "handbag", "hat"] {
        if label(thing) == Some("yes") {
            words.push(thing.to_string());
        }
    }
    if words.is_empty() {
        words.extend(attributes.iter().take(3).map(|a| a.label.clone()));
    }
    words.join(" ")
}

/// `hh:mm:ss` of an RFC 3339 time (the whole text if it is not one).
fn clock(time: &str) -> &str {
    time.get(11..19).unwrap_or(time)
}

/// The name and distance, or `unknown` with the nearest enrolled person's distance.
fn who(identity: Option<&IdentityMatch>, candidates: &[IdentityMatch]) -> String {
    match (identity, candidates.first()) {
        (Some(m), _) => format!("{} ({:.2})", m.name, m.distance),
        (None, Some(nearest)) => {
            format!("unknown (nearest {} {:.2})", nearest.name, nearest.distance)
        }
        (None, None) => "unknown".to_string(),
    }
}

/// The stages that took at least 1% of `ms`, as `name ms` pairs.
fn stages(ms: &StageMillis, per: f64) -> String {
    let total = ms.total();
    ms.stages()
        .into_iter()
        .filter(|&(_, v)| total > 0.0 && v >= 0.01 * total)
        .map(|(name, v)| format!("{name} {:.1}", v / per))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The line for one event.
pub fn line(event: &Event) -> String {
    match event {
        Event::Observation(o) => format!(
            "{} {} frame {} crop {}: {}  {}",
            clock(&o.time),
            o.camera,
            o.frame,
            o.crop,
            who(o.identity.as_ref(), &o.candidates),
            short_attributes(&o.attributes)
        ),
        Event::Track(t) => {
            let (status, tail) = match t.status {
                TrackStatus::New => ("new", String::new()),
                TrackStatus::Update => ("update", String::new()),
                TrackStatus::End => ("end", format!("  ({} frames)", t.frames_seen)),
            };
            format!(
                "{} track {:<4} {status:<6} {}  {}{tail}",
                clock(&t.time),
                t.track,
                who(t.identity.as_ref(), &t.candidates),
                short_attributes(&t.attributes)
            )
        }
        Event::Summary(s) => format!(
            "summary: {} frames ({} unreadable), {} crops ({} dropped as junk, {} not finite), \
             {} observations, {} tracks, {:.1} ms per frame ({})",
            s.frames,
            s.unreadable,
            s.crops,
            s.dropped,
            s.non_finite,
            s.observations,
            s.tracks,
            s.ms_per_frame,
            stages(&s.ms, s.frames.max(1) as f64)
        ),
    }
}

/// The status line at `time` for the `seconds` between the run's counters `before` and `now`:
/// frames per second, milliseconds per frame and per stage, and the people in view.
pub fn status_line(
    time: &str,
    seconds: f64,
    before: &Summary,
    now: &Summary,
    in_view: usize,
) -> String {
    let frames = now.frames.saturating_sub(before.frames);
    let ms = now.ms.minus(&before.ms);
    let per = frames.max(1) as f64;
    format!(
        "{} status: {:.1} fps, {:.1} ms per frame ({}), {in_view} in view",
        clock(time),
        frames as f64 / seconds.max(1e-9),
        ms.total() / per,
        stages(&ms, per)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{BoxPx, TrackEvent};
    use heapless::Vec as BoundedVec;

    fn value(name: &str, label: &str) -> AttributeValue {
        AttributeValue {
            name: name.into(),
            label: label.into(),
            score: 0.9,
        }
    }

    fn track(status: TrackStatus, identity: Option<IdentityMatch>) -> TrackEvent {
        let mut attributes = BoundedVec::new();
        for (name, label) in [
            ("gender", "female"),
            ("upcolor", "red"),
            ("backpack", "yes"),
            ("hat", "no"),
        ] {
            attributes.push(value(name, label)).unwrap();
        }
        let mut candidates = BoundedVec::new();
        candidates
            .push(IdentityMatch {
                name: "alice".into(),
                distance: 1.7,
            })
            .unwrap();
        TrackEvent {
            time: "2026-12-02T17:03:12.345Z".into(),
            camera: "synthetic".into(),
            frame: 40,
            track: 3,
            status,
            bbox: BoxPx {
                x: 0,
                y: 0,
                width: 10,
                height: 20,
            },
            person_score: 0.9,
            first_frame: 1,
            frames_seen: 38,
            attributes,
            identity,
            candidates,
        }
    }

    #[test]
    fn a_track_line_has_time_track_status_identity_and_the_main_attributes() {
        let known = track(
            TrackStatus::New,
            Some(IdentityMatch {
                name: "alice".into(),
                distance: 0.8123,
            }),
        );
        assert_eq!(
            line(&Event::Track(&known)),
            "17:03:12 track 3    new    alice (0.81)  female up:red backpack"
        );
        let unknown = track(TrackStatus::End, None);
        assert_eq!(
            line(&Event::Track(&unknown)),
            "17:03:12 track 3    end    unknown (nearest alice 1.70)  female up:red backpack  (38 frames)"
        );
    }

    #[test]
    fn the_status_line_reports_the_interval_not_the_whole_run() {
        let before = Summary {
            frames: 100,
            unreadable: 0,
            crops: 0,
            dropped: 0,
            non_finite: 0,
            observations: 0,
            tracks: 0,
            ms: StageMillis {
                model: 1000.0,
                ..StageMillis::default()
            },
            ms_per_frame: 10.0,
        };
        let now = Summary {
            frames: 120,
            ms: StageMillis {
                model: 1800.0,
                capture: 200.0,
                gallery: 0.5,
                ..StageMillis::default()
            },
            ..before.clone()
        };
        // 20 frames in 2 s; 800 + 200 + 0.5 ms over them; the gallery's 0.05% is left out.
        assert_eq!(
            status_line("2026-12-02T17:03:14.000Z", 2.0, &before, &now, 2),
            "17:03:14 status: 10.0 fps, 50.0 ms per frame (capture 10.0, model 40.0), 2 in view"
        );
    }
}
