//! Where `run` tells what it sees (and `identify`, always as JSON Lines): JSON Lines to `--events`
//! and to stdout when it is a pipe or a file, readable lines (and a status line every few seconds)
//! when stdout is a terminal (see `--format` and `--quiet`), an MQTT broker (`--mqtt`), the event
//! store (`--store`), the metrics (`--metrics`) and the live page (`--http`).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use clap::ValueEnum;
use edge_reid::backoff::Backoff;
use edge_reid::events::{rfc3339, text, Event, EventWriter, Summary, TrackEvent, TrackStatus};
use edge_reid::fleet::{gallery_filter, gallery_topic, Fleet, FleetConfig};
use edge_reid::gallery::Stamp;
use edge_reid::http::serve;
use edge_reid::metrics::{self, lock, SharedMetrics};
use edge_reid::mqtt::layout::{box_name_from_host, Layout};
use edge_reid::mqtt::{BrokerUrl, Mqtt, MqttConfig};
use edge_reid::pipeline::{Output, Pipeline};
use edge_reid::store::Store;
use edge_reid::web::{self, Access, Asked, Live, WebConfig};
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

/// What stdout shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable lines on a terminal; JSON Lines otherwise (nothing with --events).
    Auto,
    /// JSON Lines, one event per line.
    Json,
    /// One readable line per event and a status line every few seconds.
    Text,
}

/// Readable lines on stdout, with the status line's clock.
struct TextOut {
    every: Option<Duration>,
    last: Instant,
    before: Summary,
}

/// How long a run's end waits for the broker to take the queued messages.
const MQTT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as what a box publishes (`--mqtt`, `--mqtt-ca`, `--mqtt-queue`, `--box-name`).
pub struct MqttSite {
    /// The broker.
    pub broker: BrokerUrl,
    /// The CA file for an `mqtts://` broker.
    pub ca_file: Option<PathBuf>,
    /// Messages held while the broker is away.
    pub queue: usize,
    /// The box's topic level.
    pub box_name: String,
}

/// The box name when `--box-name` is not given: the host name, made a topic level.
pub fn host_box_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    box_name_from_host(&host)
}

/// The event outputs of one run.
pub struct Outputs {
    json: Vec<EventWriter<Box<dyn Write>>>,
    text: Option<TextOut>,
    mqtt: Option<(Mqtt, Layout)>,
    metrics: Option<SharedMetrics>,
    store: Option<Stored>,
    live: Option<Arc<Live>>,
}

/// The event store of a run (`--store`).
struct Stored {
    store: Store,
    snapshots: bool,
    /// Tracks that could not be stored.
    failed: u64,
}

impl Stored {
    /// Stores a track's news, with the snapshot of its best kept crop if asked for. A failure
    /// (a full disk) is said and counted; the run goes on.
    fn record(&mut self, track: &TrackEvent, pipeline: &Pipeline) {
        let snapshot = (self.snapshots && track.status == TrackStatus::End)
            .then(|| {
                pipeline
                    .kept_crops(track.track)?
                    .first()
                    .map(|c| jpeg(&c.image))
            })
            .flatten();
        if let Err(e) = self.store.record(track, snapshot.as_deref()) {
            self.failed += 1;
            eprintln!("edge-reid: track {} not stored: {e}", track.track);
        }
    }
}

/// A picture as JPEG.
pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(image)
        .expect("encoding to memory does not fail");
    out
}

impl Outputs {
    /// Opens the outputs: `events` (appended to, JSON Lines) and stdout as `format` and `quiet`
    /// say; the status line every `status_every` seconds on the readable stdout (0: never).
    pub fn open(
        format: Format,
        quiet: bool,
        events: Option<&Path>,
        status_every: f64,
    ) -> Result<Self> {
        let mut json: Vec<EventWriter<Box<dyn Write>>> = Vec::new();
        if let Some(p) = events {
            // Appended to: a restarted service never loses the events it already wrote. Created
            // for the owner only: the events say who was where.
            let file = File::options()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("opening events file {}", p.display()))?;
            json.push(EventWriter::new(Box::new(BufWriter::new(file))));
        }
        let stdout = match (quiet, format) {
            (true, _) => None,
            (false, Format::Auto) if std::io::stdout().is_terminal() => Some(Format::Text),
            (false, Format::Auto) => events.is_none().then_some(Format::Json),
            (false, f) => Some(f),
        };
        if stdout == Some(Format::Json) {
            json.push(EventWriter::new(Box::new(std::io::stdout().lock())));
        }
        let text = (stdout == Some(Format::Text)).then(|| TextOut {
            every: (status_every > 0.0).then(|| Duration::from_secs_f64(status_every)),
            last: Instant::now(),
            before: Summary::default(),
        });
        Ok(Self {
            json,
            text,
            mqtt: None,
            metrics: None,
            store: None,
            live: None,
        })
    }

    /// Publishes to `site`'s broker from now on, with discovery for the gallery's `people`;
    /// `gallery_sync` subscribes to the shared galleries too (see [`Outputs::start_fleet`]).
    pub fn start_mqtt(
        &mut self,
        site: MqttSite,
        people: Vec<String>,
        gallery_sync: bool,
    ) -> Result<()> {
        let layout = Layout::new(&site.box_name, people)?;
        let config = MqttConfig {
            client_id: format!("edge-reid-{}", site.box_name),
            broker: site.broker,
            ca_file: site.ca_file,
            queue: site.queue,
            will: Some(layout.availability(false)),
            subscriptions: if gallery_sync {
                vec![gallery_filter()]
            } else {
                Vec::new()
            },
            backoff: Backoff::default(),
        };
        let broker = config.broker.to_string();
        let mqtt = Mqtt::start(config).with_context(|| format!("MQTT broker {broker}"))?;
        mqtt.announce(layout.discovery());
        eprintln!(
            "edge-reid: mqtt: publishing to {broker} under edge-reid/{}/",
            site.box_name
        );
        self.mqtt = Some((mqtt, layout));
        Ok(())
    }

    /// Shares the gallery through the broker of [`Outputs::start_mqtt`] (started with
    /// `gallery_sync`); `held` is the stamp of the gallery the run uses.
    pub fn start_fleet(&mut self, config: FleetConfig, held: Stamp) -> Result<Fleet> {
        let mqtt = self
            .mqtt
            .as_mut()
            .map(|(mqtt, _)| mqtt)
            .context("gallery sync needs --mqtt")?;
        let incoming = mqtt
            .take_incoming()
            .context("the broker's messages are already read")?;
        let (path, model) = (
            config.gallery.display().to_string(),
            config.space.fingerprint(),
        );
        let fleet = Fleet::start(config, mqtt.publisher(), incoming, held)
            .with_context(|| format!("sharing gallery {path}"))?;
        eprintln!(
            "edge-reid: gallery sync: sharing {path} under {}",
            gallery_topic(&model, "")
        );
        Ok(fleet)
    }

    /// The gallery's people changed: Home Assistant's sensors follow.
    pub fn set_people(&mut self, people: Vec<String>) {
        if let Some((mqtt, layout)) = &mut self.mqtt {
            for m in layout.set_people(people) {
                mqtt.publish(m);
            }
            mqtt.announce(layout.discovery());
        }
    }

    /// Serves `/metrics` and `/healthz` on `addr` from now on.
    pub fn start_metrics(&mut self, addr: SocketAddr) -> Result<()> {
        let bound = serve(addr, metrics::router(self.metrics().clone()), "metrics")?;
        eprintln!("edge-reid: metrics on http://{bound}/metrics, health on http://{bound}/healthz");
        Ok(())
    }

    /// The run's metrics, counted from now on.
    fn metrics(&mut self) -> &SharedMetrics {
        self.metrics.get_or_insert_with(SharedMetrics::default)
    }

    /// Serves the live page and the API on `addr` from now on (with `/metrics` and `/healthz`),
    /// searching the event store at `store`.
    pub fn start_http(
        &mut self,
        addr: SocketAddr,
        token: Option<&str>,
        store: Option<PathBuf>,
    ) -> Result<()> {
        let config = WebConfig {
            access: Access::new(addr, token)?,
            store,
            extra: Some(metrics::router(self.metrics().clone())),
        };
        let live = Live::new();
        let bound = serve(addr, web::router(config, Arc::clone(&live)), "http")?;
        eprintln!("edge-reid: live page on http://{bound}/");
        self.live = Some(live);
        Ok(())
    }

    /// What the pages ask of the run (with `--http`; once).
    pub fn take_asks(&self) -> Option<std::sync::mpsc::Receiver<Asked>> {
        self.live.as_ref()?.take_asks()
    }

    /// Whether the live page wants an annotated frame now ([`Outputs::show_frame`]).
    pub fn wants_frame(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.wants_frame())
    }

    /// The annotated frame, for the live page.
    pub fn show_frame(&self, picture: &RgbImage) {
        if let Some(live) = &self.live {
            live.frame(jpeg(picture));
        }
    }

    /// Writes one event everywhere.
    /// One output that fails (a full disk under `--events`) does not keep the event from the
    /// others; the first failure is returned.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let mut failed = None;
        for w in &mut self.json {
            if let Err(e) = w.write(event) {
                failed.get_or_insert(anyhow::Error::new(e).context("writing events"));
            }
        }
        if self.text.is_some() {
            if let Err(e) = say(&text::line(event)) {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Keeps track summaries in the SQLite store at `path` from now on (with a snapshot of each
    /// if `snapshots`), deleting what is older than `retain`.
    pub fn start_store(
        &mut self,
        path: &Path,
        retain: Option<Duration>,
        snapshots: bool,
    ) -> Result<()> {
        let store = Store::open(path, retain)?;
        eprintln!(
            "edge-reid: keeping track summaries in {}{}",
            path.display(),
            if snapshots { " with snapshots" } else { "" }
        );
        self.store = Some(Stored {
            store,
            snapshots,
            failed: 0,
        });
        Ok(())
    }

    /// Writes the events of `outputs` (of `pipeline`), publishes and stores them.
    pub fn write_all(&mut self, outputs: &[Output], pipeline: &Pipeline) -> Result<()> {
        outputs.iter().try_for_each(|o| self.write(&o.event()))?;
        if let Some(s) = &mut self.store {
            for o in outputs {
                if let Output::Track(t) = o {
                    s.record(t, pipeline);
                }
            }
        }
        if let Some((mqtt, layout)) = &mut self.mqtt {
            for message in outputs.iter().flat_map(|o| layout.messages(o)) {
                mqtt.publish(message);
            }
        }
        if let Some(m) = &self.metrics {
            lock(m).outputs(outputs);
        }
        if let Some(live) = &self.live {
            live.outputs(outputs);
        }
        Ok(())
    }

    /// After each frame: publishes the number of people in view when it changed, updates the
    /// metrics (with the source's `unreadable` frames), and writes the status line if one is due.
    pub fn frame_done(&mut self, pipeline: &Pipeline, unreadable: u64) -> Result<()> {
        let in_view = pipeline.tracks_in_view().len();
        if let Some((mqtt, layout)) = &mut self.mqtt {
            if let Some(m) = layout.people_in_view(in_view) {
                mqtt.publish(m);
            }
        }
        let summary = Summary {
            unreadable,
            ..pipeline.summary()
        };
        if let Some(m) = &self.metrics {
            let mqtt = self.mqtt.as_ref().map(|(c, _)| c.stats());
            lock(m).frame(&summary, in_view, mqtt.map(|s| (s.queued, s.dropped)));
        }
        if let Some(live) = &self.live {
            live.summary(&summary);
        }
        let Some(t) = &mut self.text else {
            return Ok(());
        };
        let Some(every) = t.every else {
            return Ok(());
        };
        let elapsed = t.last.elapsed();
        if elapsed < every {
            return Ok(());
        }
        let now = pipeline.summary();
        say(&text::status_line(
            &rfc3339(SystemTime::now()),
            elapsed.as_secs_f64(),
            &t.before,
            &now,
            in_view,
        ))?;
        t.last = Instant::now();
        t.before = now;
        Ok(())
    }

    /// Ends the outputs: the broker gets what is queued (waiting a few seconds at most) and the
    /// box's `offline`.
    pub fn close(self) {
        if let Some(s) = self.store.as_ref().filter(|s| s.failed > 0) {
            eprintln!(
                "edge-reid: {} track(s) could not be stored (see above)",
                s.failed
            );
        }
        if let Some((mqtt, _)) = self.mqtt {
            let s = mqtt.close(MQTT_CLOSE_TIMEOUT);
            eprintln!(
                "edge-reid: mqtt: {} messages delivered, {} dropped, {} connection(s)",
                s.delivered, s.dropped, s.connections
            );
        }
    }
}

/// One line on stdout.
fn say(line: &str) -> Result<()> {
    writeln!(std::io::stdout(), "{line}").context("writing to stdout")
}
