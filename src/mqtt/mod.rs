//! MQTT: the runtime's messages to a broker (and, for gallery sync, from it), for the systems a
//! site runs beside it (Home Assistant, Node-RED, whatever reads Frigate's topics).
//!
//! [`Mqtt`] holds one connection (rumqttc's sync client) and a bounded queue:
//! - [`Mqtt::publish`] never blocks: the message waits in the queue, which drops its oldest
//!   message when full and counts it ([`MqttStats::dropped`]). A broker that is down or goes
//!   away never stops the caller.
//! - A connection thread polls the client and, after a failure, reconnects with [`Backoff`]. A
//!   publisher thread hands queued messages to the client only while connected, after the
//!   announcements ([`Mqtt::announce`]: retained state such as availability and Home Assistant
//!   discovery) and the subscriptions of each new session.
//! - The last will (retained) makes the broker publish `offline` when the connection dies;
//!   [`Mqtt::close`] sends what is queued, publishes the same message itself and disconnects.
//!
//! Everything is published with QoS 1 (at least once): a message the broker had not acknowledged
//! when a connection died goes back to the front of the queue and is sent again on the next one
//! (the sessions are clean, so nothing else would). [`layout`] says what goes where.

pub mod layout;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use percent_encoding::percent_decode_str;
use rumqttc::{
    Client, Connection, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS, TlsConfiguration,
    Transport,
};

use crate::backoff::Backoff;

/// Largest MQTT packet sent or accepted (a synced gallery identity is one message).
pub const MAX_PACKET_BYTES: usize = 4 << 20;

/// Incoming messages held for the reader of [`Mqtt::take_incoming`].
const INCOMING_CAPACITY: usize = 1024;

/// Why MQTT could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The broker URL is not `mqtt[s]://[user:pass@]host[:port]`.
    #[error("broker URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS cannot be configured.
    #[error("TLS: {0}")]
    Tls(String),
    /// A thread could not be started.
    #[error("starting the MQTT threads: {0}")]
    Thread(#[from] std::io::Error),
}

/// A broker's address: `mqtt://[user:pass@]host[:port]` (port 1883) or `mqtts://...` (TLS, port
/// 8883). User and password may be percent-encoded. Shown without the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name and password.
    pub credentials: Option<(String, String)>,
}

impl FromStr for BrokerUrl {
    type Err = MqttError;

    fn from_str(text: &str) -> Result<Self, MqttError> {
        let err = |reason: &str| MqttError::Url {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(text).map_err(|e| err(&e.to_string()))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            _ => return Err(err("the scheme must be mqtt:// or mqtts://")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err("no host"))?;
        // IPv6 literals come bracketed; the socket address wants them bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(err("a broker URL has no path, query or fragment"));
        }
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| err("the user or password is not UTF-8"))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(err("a password needs a user name")),
            (user, password) => Some((decode(user)?, decode(password.unwrap_or(""))?)),
        };
        Ok(BrokerUrl {
            tls,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            host,
            credentials,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        let user = match &self.credentials {
            Some((user, _)) => format!("{user}@"),
            None => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

/// One MQTT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Whether the broker keeps it for later subscribers.
    pub retain: bool,
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The broker.
    pub broker: BrokerUrl,
    /// PEM certificates that sign an `mqtts://` broker's certificate (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// The client id (one connection per id: a second client with it takes the first's place).
    pub client_id: String,
    /// Messages the queue holds while the broker is away.
    pub queue: usize,
    /// What the broker publishes if the connection dies (and [`Mqtt::close`] publishes itself).
    pub will: Option<Message>,
    /// Topic filters subscribed to on every connection; their messages arrive on
    /// [`Mqtt::incoming`].
    pub subscriptions: Vec<String>,
    /// The waits between reconnection attempts (attempts never stop; past the last, every
    /// `max`).
    pub backoff: Backoff,
}

/// The state of the connection and the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttStats {
    /// Connected to the broker now.
    pub connected: bool,
    /// Messages waiting in the queue.
    pub queued: usize,
    /// Messages dropped: the oldest of a full queue, those no broker would take, and those still
    /// queued at [`Mqtt::close`].
    pub dropped: u64,
    /// Messages the broker acknowledged.
    pub delivered: u64,
    /// Connections made (the first and every reconnection).
    pub connections: u64,
}

/// A publish handed to the client that the broker has not acknowledged.
struct Inflight {
    /// Its packet id, once the client sent it.
    pkid: Option<u16>,
    /// The message to send again if the connection dies first (none for announcements, which
    /// every connection sends anyway).
    message: Option<Message>,
}

impl State {
    /// Records a publish handed to the client.
    fn hand(&mut self, message: Option<Message>) {
        self.inflight.push_back(Inflight {
            pkid: None,
            message,
        });
    }

    /// Puts what the last connection did not get acknowledged back in front of the queue.
    fn requeue_unacknowledged(&mut self) {
        for m in self.inflight.drain(..).rev().filter_map(|i| i.message) {
            self.queue.push_front(m);
        }
        while self.queue.len() > self.capacity {
            self.queue.pop_front();
            self.stats.dropped += 1;
        }
    }

    fn delivered(&self) -> bool {
        self.queue.is_empty() && self.inflight.is_empty()
    }
}

/// What the threads share.
struct State {
    queue: VecDeque<Message>,
    capacity: usize,
    /// Retained messages published first on every connection.
    announcements: Vec<Message>,
    /// The connection whose announcements were sent.
    announced: u64,
    /// The connection whose subscriptions were sent.
    subscribed: u64,
    /// Publishes handed to the client and not yet acknowledged, in the order handed.
    inflight: VecDeque<Inflight>,
    /// [`Mqtt::close`] began: the publisher stops once the queue is delivered.
    closing: bool,
    /// The publisher thread stopped.
    stopped: bool,
    /// [`Mqtt::close`] ended: both threads stop.
    shutdown: bool,
    stats: MqttStats,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicked thread leaves consistent counters: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `done` or the deadline.
    fn wait_until(
        &self,
        deadline: Instant,
        done: impl Fn(&State) -> bool,
    ) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state
    }
}

/// A connection to a broker with a bounded queue in front of it (see the module docs).
pub struct Mqtt {
    client: Client,
    shared: Arc<Shared>,
    will: Option<Message>,
    incoming: Option<Receiver<Message>>,
}

/// A handle that queues messages for an [`Mqtt`] connection from another thread.
#[derive(Clone)]
pub struct Publisher(Arc<Shared>);

impl Publisher {
    /// Queues a message, as [`Mqtt::publish`] does.
    pub fn publish(&self, message: Message) {
        self.0.update(|s| {
            let packet = message.topic.len() + message.payload.len() + 16;
            if !rumqttc::valid_topic(&message.topic) || packet > MAX_PACKET_BYTES {
                s.stats.dropped += 1;
                return;
            }
            if s.queue.len() >= s.capacity {
                s.queue.pop_front();
                s.stats.dropped += 1;
            }
            s.queue.push_back(message);
        });
    }

    /// The connection and queue now.
    pub fn stats(&self) -> MqttStats {
        let s = self.0.lock();
        MqttStats {
            queued: s.queue.len(),
            ..s.stats
        }
    }
}

impl Mqtt {
    /// Starts connecting to the broker (in the background: an unreachable broker is no error
    /// here, only a bad URL, CA file or TLS setup is).
    pub fn start(config: MqttConfig) -> Result<Mqtt, MqttError> {
        let broker = &config.broker;
        let mut options = MqttOptions::new(&config.client_id, &broker.host, broker.port);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some((user, password)) = &broker.credentials {
            options.set_credentials(user, password);
        }
        if let Some(will) = &config.will {
            options.set_last_will(LastWill::new(
                &will.topic,
                will.payload.clone(),
                QoS::AtLeastOnce,
                will.retain,
            ));
        }
        if broker.tls {
            options.set_transport(Transport::tls_with_config(tls(config.ca_file.as_deref())?));
        } else if let Some(ca) = &config.ca_file {
            return Err(MqttError::Ca {
                path: ca.clone(),
                reason: format!("{broker} is not TLS: a CA file needs mqtts://"),
            });
        }
        let (client, connection) = Client::new(options, 64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: config.queue.max(1),
                announcements: Vec::new(),
                announced: 0,
                subscribed: 0,
                inflight: VecDeque::new(),
                closing: false,
                stopped: false,
                shutdown: false,
                stats: MqttStats::default(),
            }),
            changed: Condvar::new(),
        });
        let (incoming_tx, incoming) = sync_channel(INCOMING_CAPACITY);
        let (s, name) = (Arc::clone(&shared), broker.to_string());
        let backoff = config.backoff;
        std::thread::Builder::new()
            .name("mqtt-connection".into())
            .spawn(move || drive(connection, &s, &incoming_tx, backoff, &name))?;
        let (s, c, subscriptions) = (Arc::clone(&shared), client.clone(), config.subscriptions);
        std::thread::Builder::new()
            .name("mqtt-publisher".into())
            .spawn(move || publish_queued(&c, &s, &subscriptions))?;
        Ok(Mqtt {
            client,
            shared,
            will: config.will,
            incoming: Some(incoming),
        })
    }

    /// Queues a message; when the queue is full its oldest message is dropped. A message no
    /// broker would take (an invalid topic, larger than [`MAX_PACKET_BYTES`]) is dropped at once.
    pub fn publish(&self, message: Message) {
        self.publisher().publish(message);
    }

    /// A handle to queue messages from another thread.
    pub fn publisher(&self) -> Publisher {
        Publisher(Arc::clone(&self.shared))
    }

    /// Sets the retained messages published first on every connection (the last will's topic
    /// should get its `online` here) and publishes them now if connected.
    pub fn announce(&self, messages: Vec<Message>) {
        self.shared.update(|s| {
            s.announcements = messages;
            s.announced = 0;
        });
    }

    /// The connection and queue now.
    pub fn stats(&self) -> MqttStats {
        self.publisher().stats()
    }

    /// The messages on the subscribed topics, for one reader (`None` once taken). The reader
    /// must keep reading, or drop the receiver: while [`INCOMING_CAPACITY`] messages wait, the
    /// connection waits for it.
    pub fn take_incoming(&mut self) -> Option<Receiver<Message>> {
        self.incoming.take()
    }

    /// Sends what is queued (waiting at most `timeout` for the broker), publishes the last will
    /// as a clean goodbye, and disconnects; the threads end.
    pub fn close(self, timeout: Duration) -> MqttStats {
        let deadline = Instant::now() + timeout;
        self.shared.update(|s| s.closing = true);
        drop(self.shared.wait_until(deadline, |s| s.stopped));
        if let Some(will) = &self.will {
            // Handed and recorded under one lock, as the publisher does.
            let sent = {
                let mut s = self.shared.lock();
                let sent = s.stats.connected && send(&self.client, will).is_ok();
                if sent {
                    s.hand(None);
                }
                sent
            };
            if sent {
                let goodbye = Instant::now() + Duration::from_secs(1);
                drop(
                    self.shared
                        .wait_until(goodbye, |s| s.inflight.is_empty() || !s.stats.connected),
                );
            }
        }
        let _ = self.client.try_disconnect();
        let mut s = self.shared.lock();
        s.shutdown = true;
        let left =
            (s.queue.len() + s.inflight.iter().filter(|i| i.message.is_some()).count()) as u64;
        s.queue.clear();
        s.inflight.clear();
        s.stats.dropped += left;
        let stats = MqttStats {
            queued: 0,
            ..s.stats
        };
        drop(s);
        self.shared.changed.notify_all();
        stats
    }
}

/// The TLS setup: the CA file's certificates, or the system's.
fn tls(ca_file: Option<&Path>) -> Result<TlsConfiguration, MqttError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca = |reason: String| MqttError::Ca {
                path: path.to_path_buf(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ca(format!("not PEM certificates: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ca(format!("a certificate is not valid: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ca("holds no PEM certificate".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(MqttError::Tls(
                    "the system has no CA certificates: give the broker's CA file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

/// Failed connection attempts between two messages about them.
const REPORT_EVERY: u32 = 20;

/// The connection thread: polls the client (which reconnects when polled after a failure) and
/// keeps the shared state up to date.
fn drive(
    mut connection: Connection,
    shared: &Shared,
    incoming: &SyncSender<Message>,
    backoff: Backoff,
    broker: &str,
) {
    let mut failures = 0u32;
    loop {
        // Err only once the client is gone (every `Client` dropped).
        let Ok(event) = connection.recv() else { break };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                if failures > 0 {
                    eprintln!("edge-reid: mqtt: connected to {broker} again");
                }
                failures = 0;
                shared.update(|s| {
                    s.stats.connected = true;
                    s.stats.connections += 1;
                    // A clean session: the client dropped what the last one had not sent or
                    // had not got acknowledged.
                    s.requeue_unacknowledged();
                });
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => shared.update(|s| {
                // Sent in the order handed (rumqttc holds back the rest on an id collision).
                if let Some(i) = s.inflight.iter_mut().find(|i| i.pkid.is_none()) {
                    i.pkid = Some(pkid);
                }
            }),
            Ok(Event::Incoming(Incoming::PubAck(ack))) => shared.update(|s| {
                if let Some(at) = s.inflight.iter().position(|i| i.pkid == Some(ack.pkid)) {
                    s.inflight.remove(at);
                    s.stats.delivered += 1;
                }
            }),
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                // Waits while the reader is behind (no message lost); a reader gone is no error.
                let _ = incoming.send(Message {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                });
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                shared.update(|s| s.stats.connected = false);
                // What the publisher handed since the client emptied its channel on the error
                // goes where the rest went (see `publish_queued`).
                connection.eventloop.clean();
                if shared.lock().shutdown {
                    break;
                }
                if failures.is_multiple_of(REPORT_EVERY) {
                    eprintln!("edge-reid: mqtt: broker {broker}: {e}; retrying with back-off");
                }
                let wait = backoff.delay(failures).unwrap_or(backoff.max);
                failures = failures.saturating_add(1);
                // Woken early only by the end of close.
                if shared
                    .wait_until(Instant::now() + wait, |s| s.shutdown)
                    .shutdown
                {
                    break;
                }
            }
        }
    }
    shared.update(|s| s.stats.connected = false);
}

/// How long the publisher waits before trying a full request channel again.
const RETRY_FULL: Duration = Duration::from_millis(20);

/// The publisher thread: hands each new session its subscriptions and announcements, then the
/// queued messages, while connected.
///
/// It hands a publish to the client and records it as in flight under one lock, with the
/// non-blocking `try_` calls, so that the connection thread, which marks the connection lost
/// under the same lock and then empties the client's request channel, never misses a message in
/// flight or sends one twice.
fn publish_queued(client: &Client, shared: &Shared, subscriptions: &[String]) {
    let mut s = shared.lock();
    // The subscriptions and announcements of this session already handed over.
    let mut step = 0usize;
    loop {
        if s.shutdown || (s.closing && s.delivered()) {
            break;
        }
        if !s.stats.connected {
            s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        if s.announced != s.stats.connections {
            s.announced = s.stats.connections;
            // New announcements on the same connection are sent without subscribing again
            // (which would make the broker send every retained message again).
            step = if s.subscribed == s.stats.connections {
                step.min(subscriptions.len())
            } else {
                0
            };
            s.subscribed = s.stats.connections;
        }
        let announcements = subscriptions.len() + s.announcements.len();
        let handed = if step < subscriptions.len() {
            client.try_subscribe(&subscriptions[step], QoS::AtLeastOnce)
        } else if step < announcements {
            let m = &s.announcements[step - subscriptions.len()];
            let sent = send(client, m);
            if sent.is_ok() {
                s.hand(None);
            }
            sent
        } else if let Some(m) = s.queue.front() {
            let sent = send(client, m);
            if sent.is_ok() {
                let m = s.queue.pop_front().expect("not empty");
                s.hand(Some(m));
            }
            sent
        } else {
            s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        match handed {
            Ok(()) => step += usize::from(step < announcements),
            // The client's channel is full (it is writing to a slow broker): try again soon.
            Err(_) => {
                s = shared
                    .changed
                    .wait_timeout(s, RETRY_FULL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }
    s.stopped = true;
    drop(s);
    shared.changed.notify_all();
}

/// Hands one publish to the client without blocking.
fn send(client: &Client, m: &Message) -> Result<(), rumqttc::ClientError> {
    client.try_publish(&m.topic, QoS::AtLeastOnce, m.retain, m.payload.clone())
}
