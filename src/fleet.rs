//! Many boxes, one gallery (`--gallery-sync`): the boxes on one broker share their galleries
//! through retained messages, one per person, at `edge-reid/gallery/<model>/<name>`
//! ([`gallery_topic`]; the payload is a [`Record`] as JSON: embeddings, never images).
//!
//! A [`Fleet`] thread, beside the run:
//! - watches the gallery file: what `enroll` or `gallery remove` changed in it (also while the
//!   box was off, see [`Ledger`]) is published;
//! - merges the records other boxes publish into the gallery file, with the same crash-safe
//!   write as `enroll`: the last writer wins per person, removals are tombstones, a record older
//!   than this box's version is answered with this box's, records of another model are ignored
//!   (and said so once);
//! - publishes again, after a reconnection, what the broker has not sent back yet;
//! - hands every new gallery to the run ([`Fleet::updated`]), which uses it from the next frame.
//!
//! The broker is the distributed part: it keeps the retained records (run it with persistence)
//! and gives them to every box that subscribes, also one that joins later.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::gallery::sync::{modified_ms, Ledger, Record, SyncError};
use crate::gallery::{stamp_of_file, EmbeddingSpace, Gallery, GalleryError, Stamp};
use crate::model::ModelFingerprint;
use crate::mqtt::layout::{topic_level, ROOT};
use crate::mqtt::{Message, Publisher, MAX_PACKET_BYTES};

/// How often the gallery file is looked at.
const POLL: Duration = Duration::from_millis(500);

/// Records merged in one write at most (the retained records of a big fleet arrive at once).
const MAX_BATCH: usize = 4096;

/// How long a batch waits for the next record of a burst.
const BURST_GAP: Duration = Duration::from_millis(100);

/// Tries of a merge when another process writes the gallery at the same time.
const MERGE_TRIES: usize = 5;

/// The topic filter of every model's shared gallery.
pub fn gallery_filter() -> String {
    format!("{ROOT}/gallery/#")
}

/// The topic of one person of the gallery shared by the boxes running model `model`.
pub fn gallery_topic(model: &ModelFingerprint, name: &str) -> String {
    format!("{ROOT}/gallery/{model}/{}", topic_level(name))
}

/// What a box shares.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The gallery file.
    pub gallery: PathBuf,
    /// The model's embedding space (its fingerprint names the shared gallery).
    pub space: EmbeddingSpace,
    /// This box's name: the origin of its changes.
    pub box_name: String,
}

/// Why gallery sync could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The gallery or its ledger.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The thread could not be started.
    #[error("starting the gallery sync thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The gallery sync thread of a run (see the module docs).
pub struct Fleet {
    stop: Arc<AtomicBool>,
    galleries: Receiver<Gallery>,
    thread: JoinHandle<()>,
}

impl Fleet {
    /// Starts sharing the gallery file: finds and publishes what changed in it since the last
    /// run (an unreadable gallery or ledger is an error here), then merges the broker's records
    /// (`incoming`, from a connection subscribed to [`gallery_filter`]) in the background.
    /// `held` is the stamp of the gallery the run uses now.
    pub fn start(
        config: FleetConfig,
        publisher: Publisher,
        incoming: Receiver<Message>,
        held: Stamp,
    ) -> Result<Fleet, FleetError> {
        let gallery = Gallery::open(&config.gallery).map_err(SyncError::from)?;
        let mut ledger = Ledger::open(&config.gallery, config.space, &config.box_name)?;
        let modified = modified_ms(&config.gallery).map_err(|source| {
            SyncError::Gallery(GalleryError::Io {
                path: config.gallery.clone(),
                source,
            })
        })?;
        let fingerprint = config.space.fingerprint();
        say_local(&ledger.local_changes(&gallery, modified)?);
        publish(&publisher, &fingerprint, &ledger.unpublished(&gallery)?);
        drop(gallery);
        let worker = Worker {
            fingerprint,
            config,
            ledger,
            // What is queued now goes out on the first connection.
            connections: publisher.stats().connections.max(1),
            publisher,
            seen: Some(held),
            ignored: BTreeSet::new(),
            pending: Vec::new(),
            failing: None,
        };
        let (send, galleries) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("gallery-sync".into())
            .spawn(move || worker.run(&incoming, &send, &stopping))?;
        Ok(Fleet {
            stop,
            galleries,
            thread,
        })
    }

    /// The newest gallery since the last call, if the file changed.
    pub fn updated(&self) -> Option<Gallery> {
        self.galleries.try_iter().last()
    }

    /// Publishes a last change of the file, if any, and stops the thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.thread.join().is_err() {
            eprintln!("edge-reid: gallery sync: the sync thread failed");
        }
    }
}

/// The state of the sync thread.
struct Worker {
    config: FleetConfig,
    fingerprint: ModelFingerprint,
    ledger: Ledger,
    publisher: Publisher,
    /// The connection after which [`Ledger::unpublished`] was last published.
    connections: u64,
    /// The stamp of the gallery the run holds.
    seen: Option<Stamp>,
    /// Other models' fingerprints met (each said once).
    ignored: BTreeSet<String>,
    /// Records from the broker not merged yet (one per person, the newest).
    pending: Vec<Record>,
    /// The last error said, until sync works again.
    failing: Option<String>,
}

impl Worker {
    fn run(mut self, incoming: &Receiver<Message>, galleries: &Sender<Gallery>, stop: &AtomicBool) {
        let mut connected = true;
        loop {
            let mut batch = Vec::new();
            if connected {
                match incoming.recv_timeout(POLL) {
                    Ok(m) => {
                        batch.push(m);
                        // The rest of a burst (the retained records after a subscription).
                        while batch.len() < MAX_BATCH {
                            match incoming.recv_timeout(BURST_GAP) {
                                Ok(m) => batch.push(m),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => connected = false,
                }
            } else {
                std::thread::sleep(POLL);
            }
            let records: Vec<Record> = batch.iter().filter_map(|m| self.record(m)).collect();
            self.pending.extend(records);
            // Of several records of one person only the newest matters.
            self.pending
                .sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
            self.pending.reverse();
            self.pending.dedup_by(|a, b| a.name == b.name);
            match self.step(galleries) {
                Ok(()) => {
                    if self.failing.take().is_some() {
                        eprintln!("edge-reid: gallery sync: working again");
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    if self.failing.as_deref() != Some(&text) {
                        eprintln!("edge-reid: gallery sync: {text}; trying again");
                        self.failing = Some(text);
                    }
                }
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
    }

    /// One round: local changes, records from the broker, publishing again after a reconnection,
    /// and a new gallery for the run.
    /// The pending records are kept when it fails, for the next round.
    fn step(&mut self, galleries: &Sender<Gallery>) -> Result<(), SyncError> {
        let records = &self.pending;
        let path = &self.config.gallery;
        let connections = self.publisher.stats().connections;
        let reconnected = connections > self.connections;
        if records.is_empty() && !reconnected && stamp_of_file(path)? == self.seen {
            return Ok(());
        }
        let mut tries = 0;
        let gallery = loop {
            tries += 1;
            let mut gallery = Gallery::open(path)?;
            let modified = modified_ms(path).map_err(|source| GalleryError::Io {
                path: path.clone(),
                source,
            })?;
            let local = self.ledger.local_changes(&gallery, modified)?;
            say_local(&local);
            self.publish(&local);
            match self.ledger.merge(&mut gallery, records.clone()) {
                Ok(merged) => {
                    say(&merged.applied, |r| {
                        format!("{:?} {} by box {:?}", r.name, change(r), r.version.origin)
                    });
                    for (r, reason) in &merged.refused {
                        eprintln!(
                            "edge-reid: gallery sync: refused {:?} from box {:?}: {reason}",
                            r.name, r.version.origin
                        );
                    }
                    self.publish(&merged.newer_here);
                    break gallery;
                }
                Err(SyncError::Gallery(GalleryError::Changed { .. })) if tries < MERGE_TRIES => {}
                Err(e) => return Err(e),
            }
        };
        self.pending.clear();
        if reconnected {
            self.publish(&self.ledger.unpublished(&gallery)?);
            self.connections = connections;
        }
        if self.seen != Some(gallery.stamp()) {
            self.seen = Some(gallery.stamp());
            // The run has ended when nobody receives.
            let _ = galleries.send(gallery);
        }
        Ok(())
    }

    /// A record of this model's shared gallery from a message, or `None` (said when it is of
    /// another model or malformed).
    fn record(&mut self, m: &Message) -> Option<Record> {
        let rest = m.topic.strip_prefix(&format!("{ROOT}/gallery/"))?;
        let (model, level) = rest.split_once('/')?;
        if model != self.fingerprint.to_string() {
            if self.ignored.insert(model.to_string()) {
                eprintln!(
                    "edge-reid: gallery sync: ignoring the gallery of model {model} on the \
                     broker: this box's model is {}",
                    self.fingerprint
                );
            }
            return None;
        }
        // An empty retained message clears a topic: nothing to merge.
        if m.payload.is_empty() {
            return None;
        }
        let refuse = |reason: String| {
            eprintln!(
                "edge-reid: gallery sync: refused the record on {}: {reason}",
                m.topic
            );
            None
        };
        match serde_json::from_slice::<Record>(&m.payload) {
            Ok(r) if topic_level(&r.name) == level => Some(r),
            Ok(r) => refuse(format!("it names {:?}", r.name)),
            Err(e) => refuse(format!("not a gallery record: {e}")),
        }
    }

    fn publish(&self, records: &[Record]) {
        publish(&self.publisher, &self.fingerprint, records);
    }
}

/// Publishes records of model `model`'s gallery, retained.
fn publish(publisher: &Publisher, model: &ModelFingerprint, records: &[Record]) {
    for r in records {
        let topic = gallery_topic(model, &r.name);
        let payload = serde_json::to_vec(r).expect("records serialise");
        if topic.len() + payload.len() + 16 > MAX_PACKET_BYTES {
            eprintln!(
                "edge-reid: gallery sync: {:?} has too many embeddings to share ({} in {} \
                     bytes, at most {MAX_PACKET_BYTES})",
                r.name,
                r.embeddings.len(),
                payload.len()
            );
            continue;
        }
        publisher.publish(Message {
            topic,
            payload,
            retain: true,
        });
    }
}

/// Records said one per line, at most this many per round (then how many more).
const SAY_AT_MOST: usize = 10;

/// Says what a round did: `how` gives a record's line.
fn say(records: &[Record], how: impl Fn(&Record) -> String) {
    for r in records.iter().take(SAY_AT_MOST) {
        eprintln!("edge-reid: gallery sync: {}", how(r));
    }
    if records.len() > SAY_AT_MOST {
        eprintln!(
            "edge-reid: gallery sync: ... and {} more",
            records.len() - SAY_AT_MOST
        );
    }
}

/// What a change made here or by another box did to a person.
fn change(r: &Record) -> String {
    if r.removed {
        "removed".into()
    } else {
        format!("enrolled, {} embedding(s)", r.embeddings.len())
    }
}

/// Says the changes made here, now published.
fn say_local(records: &[Record]) {
    say(records, |r| format!("sharing {:?} ({})", r.name, change(r)));
}
