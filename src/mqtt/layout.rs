//! What a box publishes where, in the layout Frigate's users know (`frigate/events`,
//! `frigate/available`, `frigate/<camera>/person`), under `edge-reid/<box>/`:
//!
//! | topic | retained | payload |
//! |---|---|---|
//! | `edge-reid/<box>/available` | yes | `online`; `offline` (the last will, and a clean stop) |
//! | `edge-reid/<box>/events` | no | `{"type": "new"/"update"/"end", "before": {..}, "after": {..}}`: a track event before and after this news (for `new` both are the new track) |
//! | `edge-reid/<box>/observations` | no | an `observation` event (untracked runs) |
//! | `edge-reid/<box>/person` | yes | people in view now |
//! | `edge-reid/<box>/identity/<name>` | yes | `{"name", "last_seen", "camera", "distance", "track"}` of an enrolled person |
//!
//! The track states are the `track` events of the JSON Lines output, field for field. A name in a
//! topic is percent-encoded (`/`, `+`, `#`, `%`, spaces, controls and non-ASCII bytes).
//!
//! Home Assistant MQTT discovery ([`Layout::discovery`]): under
//! `homeassistant/sensor/edge-reid-<box>/`, one device per box with a "people in view" sensor
//! and a "last seen" timestamp sensor per enrolled person; a person removed from the gallery gets
//! an empty retained config, which removes the sensor.

use std::collections::{BTreeSet, HashMap};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::Message;
use crate::events::{IdentityMatch, TrackStatus};
use crate::pipeline::Output;

/// The root of every box's topics.
pub const ROOT: &str = "edge-reid";

/// Home Assistant's discovery prefix.
pub const DISCOVERY_PREFIX: &str = "homeassistant";

/// Longest box name.
pub const MAX_BOX_NAME: usize = 64;

/// What is percent-encoded in a name used as a topic level.
const TOPIC_LEVEL: &AsciiSet = &CONTROLS.add(b'/').add(b'+').add(b'#').add(b'%').add(b' ');

/// A box name that cannot be a topic level and a Home Assistant id.
#[derive(Debug, thiserror::Error)]
#[error(
    "box name {0:?}: use 1 to 64 of the letters a-z, A-Z, digits, '-' and '_' (not \"gallery\")"
)]
pub struct BoxNameError(pub String);

/// Checks a box name: 1 to [`MAX_BOX_NAME`] ASCII letters, digits, `-` and `_`, and not
/// `gallery` (the shared gallery's topic level).
pub fn check_box_name(name: &str) -> Result<(), BoxNameError> {
    let ok = name != "gallery"
        && !name.is_empty()
        && name.len() <= MAX_BOX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BoxNameError(name.to_string()))
    }
}

/// A box name made from a host name: characters a box name cannot have become `-` (`edge-reid`
/// if that is no box name).
pub fn box_name_from_host(host: &str) -> String {
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_BOX_NAME)
        .collect();
    if check_box_name(&name).is_ok() {
        name
    } else {
        "edge-reid".into()
    }
}

/// A name as one topic level.
pub fn topic_level(name: &str) -> String {
    utf8_percent_encode(name, TOPIC_LEVEL).to_string()
}

/// The publishing side of one box: topics, the last state of each track, people in view.
pub struct Layout {
    box_name: String,
    /// The last published state of each open track, as JSON text (for `before`).
    tracks: HashMap<u64, String>,
    /// People in view last published.
    in_view: Option<usize>,
    /// Enrolled people: identity topics and discovery are for them only (not `anon-N`).
    people: BTreeSet<String>,
}

impl Layout {
    /// The layout of box `box_name` with the gallery's `people`.
    pub fn new(
        box_name: &str,
        people: impl IntoIterator<Item = String>,
    ) -> Result<Self, BoxNameError> {
        check_box_name(box_name)?;
        Ok(Self {
            box_name: box_name.to_string(),
            tracks: HashMap::new(),
            in_view: None,
            people: people.into_iter().collect(),
        })
    }

    fn topic(&self, rest: &str) -> String {
        format!("{ROOT}/{}/{rest}", self.box_name)
    }

    /// `edge-reid/<box>/available`: `online` or `offline`, retained.
    pub fn availability(&self, online: bool) -> Message {
        Message {
            topic: self.topic("available"),
            payload: if online { "online" } else { "offline" }.into(),
            retain: true,
        }
    }

    /// The messages for one output of the pipeline. Payloads are built from the event's JSON
    /// Lines text, so that every number reads as it does there.
    pub fn messages(&mut self, output: &Output) -> Vec<Message> {
        let event = serde_json::to_string(&output.event()).expect("events serialise");
        let mut out = Vec::with_capacity(2);
        let (identity, time, camera, track) = match output {
            Output::Track(t) => {
                let before = match t.status {
                    TrackStatus::End => self.tracks.remove(&t.track),
                    _ => self.tracks.insert(t.track, event.clone()),
                };
                let kind = serde_json::to_string(&t.status).expect("a status serialises");
                let before = before.as_deref().unwrap_or(&event);
                let payload = format!(r#"{{"type":{kind},"before":{before},"after":{event}}}"#);
                out.push(Message {
                    topic: self.topic("events"),
                    payload: payload.into_bytes(),
                    retain: false,
                });
                (&t.identity, &t.time, &t.camera, Some(t.track))
            }
            Output::Observation(o) => {
                out.push(Message {
                    topic: self.topic("observations"),
                    payload: event.into_bytes(),
                    retain: false,
                });
                (&o.identity, &o.time, &o.camera, None)
            }
        };
        if let Some(m) = identity.as_ref().filter(|m| self.people.contains(&m.name)) {
            out.push(self.identity(m, time, camera, track));
        }
        out
    }

    /// `edge-reid/<box>/identity/<name>`, retained.
    fn identity(&self, m: &IdentityMatch, time: &str, camera: &str, track: Option<u64>) -> Message {
        #[derive(Serialize)]
        struct LastSeen<'a> {
            name: &'a str,
            last_seen: &'a str,
            camera: &'a str,
            distance: f32,
            track: Option<u64>,
        }
        let payload = LastSeen {
            name: &m.name,
            last_seen: time,
            camera,
            distance: m.distance,
            track,
        };
        Message {
            topic: self.identity_topic(&m.name),
            payload: serde_json::to_vec(&payload).expect("a last-seen state serialises"),
            retain: true,
        }
    }

    fn identity_topic(&self, name: &str) -> String {
        self.topic(&format!("identity/{}", topic_level(name)))
    }

    /// `edge-reid/<box>/person`, retained, when the number of people in view changed.
    pub fn people_in_view(&mut self, n: usize) -> Option<Message> {
        if self.in_view == Some(n) {
            return None;
        }
        self.in_view = Some(n);
        Some(Message {
            topic: self.topic("person"),
            payload: n.to_string().into_bytes(),
            retain: true,
        })
    }

    /// Sets the enrolled people; returns what removes the sensors and identity state of those
    /// no longer enrolled (empty retained messages). Announce [`Layout::discovery`] again after.
    pub fn set_people(&mut self, people: impl IntoIterator<Item = String>) -> Vec<Message> {
        let now: BTreeSet<String> = people.into_iter().collect();
        let gone: Vec<String> = self.people.difference(&now).cloned().collect();
        self.people = now;
        gone.iter()
            .flat_map(|name| {
                [self.last_seen_config_topic(name), self.identity_topic(name)].map(|topic| {
                    Message {
                        topic,
                        payload: Vec::new(),
                        retain: true,
                    }
                })
            })
            .collect()
    }

    /// The box's retained state for a new connection: `online`, then Home Assistant discovery
    /// for the people-in-view sensor and each enrolled person's last-seen sensor.
    pub fn discovery(&self) -> Vec<Message> {
        let device = json!({
            "identifiers": [self.node_id()],
            "name": format!("edge-reid {}", self.box_name),
            "manufacturer": "edge-reid",
            "model": "edge-reid",
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        let available = self.topic("available");
        let config = |topic: String, fields: Value| {
            let mut payload = fields;
            payload["availability_topic"] = json!(available);
            payload["device"] = device.clone();
            Message {
                topic,
                payload: payload.to_string().into_bytes(),
                retain: true,
            }
        };
        let mut out = vec![
            self.availability(true),
            config(
                format!("{}/person/config", self.discovery_root()),
                json!({
                    "name": "People in view",
                    "unique_id": format!("{}-person", self.node_id()),
                    "state_topic": self.topic("person"),
                    "unit_of_measurement": "people",
                    "state_class": "measurement",
                    "icon": "mdi:account-multiple",
                }),
            ),
        ];
        for name in &self.people {
            let state = self.identity_topic(name);
            out.push(config(
                self.last_seen_config_topic(name),
                json!({
                    "name": format!("{name} last seen"),
                    "unique_id": format!("{}-{}-last-seen", self.node_id(), person_id(name)),
                    "state_topic": state,
                    "json_attributes_topic": state,
                    "value_template": "{{ value_json.last_seen }}",
                    "device_class": "timestamp",
                    "icon": "mdi:account-eye",
                }),
            ));
        }
        out
    }

    fn node_id(&self) -> String {
        format!("{ROOT}-{}", self.box_name)
    }

    fn discovery_root(&self) -> String {
        format!("{DISCOVERY_PREFIX}/sensor/{}", self.node_id())
    }

    fn last_seen_config_topic(&self, name: &str) -> String {
        format!(
            "{}/{}_last_seen/config",
            self.discovery_root(),
            person_id(name)
        )
    }
}

/// A Home Assistant object id for a person: the name's letters and digits (others as `_`,
/// lowercase, at most 32) and 8 hex digits of its SHA-256, so that names differing only in
/// punctuation or case do not share a sensor.
fn person_id(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{slug}_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{BoxPx, TrackEvent};
    use heapless::Vec as BoundedVec;

    fn track(id: u64, status: TrackStatus, frame: u64, who: Option<&str>) -> Output {
        Output::Track(TrackEvent {
            time: format!("2026-12-02T10:00:0{frame}.000Z"),
            camera: "cam".into(),
            frame,
            track: id,
            status,
            bbox: BoxPx {
                x: frame as u32,
                y: 0,
                width: 10,
                height: 20,
            },
            person_score: 0.9,
            first_frame: 0,
            frames_seen: frame as u32 + 1,
            attributes: BoundedVec::new(),
            identity: who.map(|n| IdentityMatch {
                name: n.into(),
                distance: 0.25,
            }),
            candidates: BoundedVec::new(),
        })
    }

    fn json_of(m: &Message) -> Value {
        serde_json::from_slice(&m.payload).unwrap()
    }

    #[test]
    fn track_news_carries_before_and_after_and_enrolled_identities() {
        let mut layout = Layout::new("door", ["alice".to_string()]).unwrap();
        let new = layout.messages(&track(7, TrackStatus::New, 1, None));
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].topic, "edge-reid/door/events");
        assert!(!new[0].retain);
        let p = json_of(&new[0]);
        assert_eq!(p["type"], "new");
        assert_eq!(p["before"], p["after"]);
        assert_eq!(p["after"]["event"], "track");
        assert_eq!(p["after"]["track"], 7);

        let update = layout.messages(&track(7, TrackStatus::Update, 2, Some("alice")));
        let p = json_of(&update[0]);
        assert_eq!(p["type"], "update");
        assert_eq!(p["before"]["frame"], 1);
        assert_eq!(p["after"]["frame"], 2);
        assert_eq!(update[1].topic, "edge-reid/door/identity/alice");
        assert!(update[1].retain);
        let id = json_of(&update[1]);
        assert_eq!(id["last_seen"], "2026-12-02T10:00:02.000Z");
        assert_eq!(
            (id["camera"].as_str(), id["track"].as_u64()),
            (Some("cam"), Some(7))
        );

        let end = layout.messages(&track(7, TrackStatus::End, 3, Some("anon-1")));
        assert_eq!(end.len(), 1, "anonymous names get no identity topic");
        let p = json_of(&end[0]);
        assert_eq!(
            (p["type"].as_str(), p["before"]["frame"].as_u64()),
            (Some("end"), Some(2))
        );
        assert!(layout.tracks.is_empty(), "ended tracks are forgotten");
    }

    #[test]
    fn people_in_view_is_sent_when_it_changes() {
        let mut layout = Layout::new("door", []).unwrap();
        assert_eq!(layout.people_in_view(0).unwrap().payload, b"0");
        assert!(layout.people_in_view(0).is_none());
        let m = layout.people_in_view(2).unwrap();
        assert_eq!(
            (m.topic.as_str(), m.retain),
            ("edge-reid/door/person", true)
        );
    }

    #[test]
    fn discovery_names_one_device_and_a_sensor_per_person() {
        let mut layout =
            Layout::new("door", ["Zoë Ünal".to_string(), "bob/2".to_string()]).unwrap();
        let d = layout.discovery();
        assert_eq!(d[0], layout.availability(true));
        assert_eq!(d.len(), 4);
        assert!(d.iter().all(|m| m.retain));
        let person = json_of(&d[1]);
        assert_eq!(
            d[1].topic,
            "homeassistant/sensor/edge-reid-door/person/config"
        );
        assert_eq!(person["state_topic"], "edge-reid/door/person");
        assert_eq!(person["availability_topic"], "edge-reid/door/available");
        assert_eq!(person["device"]["identifiers"][0], "edge-reid-door");
        let bob = d.iter().find(|m| m.topic.contains("bob")).unwrap();
        let config = json_of(bob);
        assert_eq!(config["state_topic"], "edge-reid/door/identity/bob%2F2");
        assert_eq!(config["device_class"], "timestamp");
        for m in &d[1..] {
            let object = m.topic.split('/').nth(3).unwrap();
            assert!(
                object
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{object}"
            );
        }
        let gone = layout.set_people(["bob/2".to_string()]);
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|m| m.payload.is_empty() && m.retain));
        assert!(gone[1].topic.ends_with("/identity/Zo%C3%AB%20%C3%9Cnal"));
        assert_eq!(layout.discovery().len(), 3);
    }

    #[test]
    fn box_names_are_topic_levels() {
        assert!(check_box_name("cam-1_a").is_ok());
        for bad in ["", "a/b", "a+b", "a#", "a b", "gallery", &"x".repeat(65)] {
            assert!(check_box_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            box_name_from_host("cam1.site.example\n"),
            "cam1-site-example"
        );
        assert!(check_box_name(&box_name_from_host(&"é".repeat(100))).is_ok());
        assert!(check_box_name(&box_name_from_host("gallery")).is_ok());
    }
}
