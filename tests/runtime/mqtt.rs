//! `--mqtt` against a real broker: Debian's `mosquitto` on a free loopback port, started here, and
//! `mosquitto_sub` as the subscriber. The events of a run arrive in order with Frigate's
//! `type`/`before`/`after`, Home Assistant discovers the sensors, `available` is `offline` after
//! a clean end and (the last will) after a kill -9, and a run whose broker stops and comes back
//! keeps going and delivers its later events.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{edge_reid, skip, spawn_edge_reid, terminate, text};

/// A mosquitto broker on a loopback port, stopped on drop.
pub(super) struct Broker {
    child: Child,
    pub(super) port: u16,
    config: PathBuf,
}

impl Broker {
    /// Starts one on a free port, or says why not (`None`: no mosquitto here).
    pub(super) fn start(dir: &Path) -> Option<Broker> {
        if Command::new("mosquitto").arg("-h").output().is_err()
            || Command::new("mosquitto_sub")
                .arg("--help")
                .output()
                .is_err()
        {
            return skip("mosquitto and mosquitto_sub are not installed");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            // As root, mosquitto would become user `mosquitto`, who cannot read the test's
            // files (`user root` means nothing to anyone else).
            format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .unwrap();
        let child = Self::spawn(&config, port);
        Some(Broker {
            child,
            port,
            config,
        })
    }

    fn spawn(config: &Path, port: u16) -> Child {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto does not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    pub(super) fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(&self.config, self.port);
    }

    /// A subscriber to `filter`, its lines (`topic payload`) on a channel, ready when returned.
    fn subscribe(&self, filter: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-q",
                "1",
                "-v",
            ])
            .args(["-t", filter, "-t", "test/ready"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub starts");
        let (tx, lines) = channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Subscribed once a probe published after it starts comes back.
        let deadline = Instant::now() + Duration::from_secs(10);
        'ready: loop {
            assert!(Instant::now() < deadline, "mosquitto_sub never subscribed");
            let _ = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-t", "test/ready", "-m", "x"])
                .status();
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                if line == "test/ready x" {
                    break 'ready;
                }
            }
        }
        Subscriber { child, lines }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Subscriber {
    child: Child,
    lines: Receiver<String>,
}

impl Subscriber {
    /// The next message, as (topic, payload), within `timeout`.
    fn next(&self, timeout: Duration) -> Option<(String, String)> {
        loop {
            let line = self.lines.recv_timeout(timeout).ok()?;
            if line.starts_with("test/ready ") {
                continue;
            }
            let (topic, payload) = line.split_once(' ').unwrap_or((&line, ""));
            return Some((topic.to_string(), payload.to_string()));
        }
    }

    /// Every message until none comes for `quiet`.
    fn drain(&self, quiet: Duration) -> Vec<(String, String)> {
        std::iter::from_fn(|| self.next(quiet)).collect()
    }

    /// Waits for a message on `topic` whose payload passes `wanted`.
    fn wait_for(&self, topic: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some((t, p)) = self.next(Duration::from_secs(1)) {
                if t == topic && wanted(&p) {
                    return p;
                }
            }
        }
        panic!("no message on {topic} as wanted");
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The retained payload on `topic` now.
pub(super) fn retained(broker: &Broker, topic: &str) -> String {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", topic, "-C", "1", "-W", "5"])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}

/// Every retained message on `filter` now, as (topic, payload).
pub(super) fn retained_all(broker: &Broker, filter: &str) -> Vec<(String, String)> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", filter, "-v", "--retained-only", "-W", "2"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .map(|l| {
            let (topic, payload) = l.split_once(' ').unwrap_or((l, ""));
            (topic.to_string(), payload.to_string())
        })
        .collect()
}

fn json(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
}

#[test]
fn a_run_publishes_its_events_in_order_with_discovery_and_availability() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path()) else {
        return;
    };
    let sub = broker.subscribe("#");
    let out = edge_reid(
        dir.path(),
        &[
            "--synthetic",
            "--frames",
            "40",
            "--quiet",
            "--events",
            "events.jsonl",
            "--mqtt",
            &broker.url(),
            "--box-name",
            "door",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let messages = sub.drain(Duration::from_secs(2));
    let written: Vec<Value> = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(json)
        .filter(|e| e["event"] == "track")
        .collect();
    assert!(written.len() >= 4, "{written:?}");
    // Every track event, in order, as Frigate's news: type, the state before and after.
    let news: Vec<Value> = messages
        .iter()
        .filter(|(t, _)| t == "edge-reid/door/events")
        .map(|(_, p)| json(p))
        .collect();
    let after: Vec<&Value> = news.iter().map(|n| &n["after"]).collect();
    assert_eq!(after, written.iter().collect::<Vec<_>>());
    let mut last = std::collections::HashMap::new();
    for n in &news {
        let track = n["after"]["track"].as_u64().unwrap();
        assert_eq!(n["type"], n["after"]["status"]);
        match n["type"].as_str().unwrap() {
            "new" => assert_eq!(n["before"], n["after"]),
            _ => assert_eq!(Some(&n["before"]), last.get(&track), "{n}"),
        }
        last.insert(track, n["after"].clone());
    }
    // Discovery of the box's sensor and one per enrolled person (the demo gallery's four), each
    // naming the box's availability topic.
    let configs: Vec<(&String, Value)> = messages
        .iter()
        .filter(|(t, _)| t.starts_with("homeassistant/sensor/edge-reid-door/"))
        .map(|(t, p)| (t, json(p)))
        .collect();
    assert_eq!(configs.len(), 5, "{configs:?}");
    assert!(configs
        .iter()
        .all(|(_, c)| c["availability_topic"] == "edge-reid/door/available"));
    let person = configs
        .iter()
        .find(|(t, _)| t.ends_with("/person/config"))
        .unwrap();
    assert_eq!(person.1["state_topic"], "edge-reid/door/person");
    // Identities, retained, of enrolled people only; the people in view.
    let named: Vec<Value> = messages
        .iter()
        .filter(|(t, _)| t.starts_with("edge-reid/door/identity/person-"))
        .map(|(_, p)| json(p))
        .collect();
    assert!(!named.is_empty());
    assert!(named
        .iter()
        .all(|i| i["last_seen"].is_string() && i["distance"].is_number()));
    assert!(messages
        .iter()
        .any(|(t, p)| t == "edge-reid/door/person" && p != "0"));
    // Online first, offline after the clean end (retained).
    assert_eq!(
        messages[0],
        ("edge-reid/door/available".into(), "online".into())
    );
    assert_eq!(retained(&broker, "edge-reid/door/available"), "offline");
    assert!(
        text(&out.stderr).contains("0 dropped, 1 connection(s)"),
        "{}",
        text(&out.stderr)
    );
}

/// A run of the synthetic camera long enough to outlast the test, publishing as box `name`.
fn long_run(dir: &Path, broker: &Broker, name: &str) -> Child {
    spawn_edge_reid(
        dir,
        &[
            "--synthetic",
            "--frames",
            "1000000",
            "--quiet",
            "--mqtt",
            &broker.url(),
            "--box-name",
            name,
        ],
    )
}

#[test]
fn the_last_will_says_offline_after_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path()) else {
        return;
    };
    let sub = broker.subscribe("edge-reid/#");
    let mut run = long_run(dir.path(), &broker, "gate");
    sub.wait_for("edge-reid/gate/available", |p| p == "online");
    sub.wait_for("edge-reid/gate/events", |_| true);
    run.kill().unwrap(); // SIGKILL: no goodbye from the box itself
    run.wait().unwrap();
    sub.wait_for("edge-reid/gate/available", |p| p == "offline");
    assert_eq!(retained(&broker, "edge-reid/gate/available"), "offline");
}

#[test]
fn a_run_outlives_its_broker_and_delivers_the_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = Broker::start(dir.path()) else {
        return;
    };
    let sub = broker.subscribe("edge-reid/#");
    let mut run = long_run(dir.path(), &broker, "yard");
    let frame = |p: &str| json(p)["after"]["frame"].as_u64().unwrap();
    let before = frame(&sub.wait_for("edge-reid/yard/events", |_| true));
    drop(sub);
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run stopped with its broker"
    );
    broker.restart();
    let sub = broker.subscribe("edge-reid/#");
    // The box reconnects, announces itself again and goes on publishing frames it saw later.
    sub.wait_for("edge-reid/yard/available", |p| p == "online");
    let later = frame(&sub.wait_for("edge-reid/yard/events", |p| frame(p) > before + 20));
    assert!(later > before);
    // SIGTERM: a clean end, which says how the connection went.
    let stderr = terminate(run);
    assert!(stderr.contains("connected to mqtt://127.0.0.1"), "{stderr}");
    assert!(stderr.contains("2 connection(s)"), "{stderr}");
    assert_eq!(retained(&broker, "edge-reid/yard/available"), "offline");
}

/// `openssl` commands in `dir`, or why not.
fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
    match Command::new("openssl").current_dir(dir).args(args).output() {
        Ok(out) if out.status.success() => Some(()),
        Ok(out) => panic!("openssl {args:?}: {}", text(&out.stderr)),
        Err(_) => skip("openssl is not installed"),
    }
}

#[test]
fn mqtts_with_a_ca_file_and_a_password_reaches_a_tls_broker() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = Broker::start(dir.path()) else {
        return;
    };
    // A CA of our own and the broker's certificate for 127.0.0.1 and localhost, signed by it.
    let d = dir.path();
    let Some(()) = openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=edge-reid test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ) else {
        return;
    };
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    let passwd = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(d.join("passwords"))
        .args(["box", "s@cret"])
        .status()
        .unwrap();
    assert!(passwd.success());
    let tls_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = std::fs::read_to_string(&broker.config).unwrap();
    std::fs::write(
        &broker.config,
        format!(
            "per_listener_settings true\n{conf}\nlistener {tls_port} 127.0.0.1\n\
             cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
             allow_anonymous false\npassword_file {0}/passwords\n",
            d.display()
        ),
    )
    .unwrap();
    broker.restart();
    let sub = broker.subscribe("edge-reid/#");
    // A run of `frames` frames publishing as `password`, with the CA file or the system's; its
    // stderr, once it succeeded (the broker never stops a run).
    let run = |frames: &str, password: &str, ca: bool| {
        let url = format!("mqtts://box:{password}@localhost:{tls_port}");
        let mut args = vec!["--synthetic", "--frames", frames, "--quiet", "--mqtt", &url];
        args.extend(["--box-name", "tls"]);
        if ca {
            args.extend(["--mqtt-ca", "ca.pem"]);
        }
        let out = edge_reid(d, &args);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let stderr = run("12", "s%40cret", true);
    sub.wait_for("edge-reid/tls/events", |_| true);
    assert!(stderr.contains("1 connection(s)"), "{stderr}");
    // Without the CA the system's do not know the broker: the run goes on and says why.
    let stderr = run("3", "s%40cret", false);
    assert!(
        stderr.contains("0 connection(s)") && stderr.contains("retrying"),
        "{stderr}"
    );
    // A wrong password is refused by the broker.
    let stderr = run("3", "wrong", true);
    assert!(stderr.contains("0 connection(s)"), "{stderr}");
}
