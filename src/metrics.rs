//! Prometheus metrics and a health check over HTTP (`--metrics ADDR`): `/metrics` in the text
//! exposition format, `/healthz` 200 while the source delivers frames and 503 when it has not for
//! [`HEALTHY_WITHIN`].
//!
//! [`Metrics`] holds the counters; the caller feeds it each frame ([`Metrics::frame`],
//! [`Metrics::outputs`]) and
//! [`router`] answers, served by [`crate::http::serve`] on its own thread, so a slow scraper
//! never slows the pipeline.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::events::{StageMillis, Summary, TrackStatus};
use crate::pipeline::Output;

/// `/healthz` says unhealthy when no frame came for this long.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdentityLabel {
    identity: &'static str,
}

/// The counters of one run, and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    frames: Counter,
    unreadable: Counter,
    crops: Counter,
    junk: Counter,
    non_finite: Counter,
    tracks_started: Counter,
    tracks_ended: Counter,
    identities: Family<IdentityLabel, Counter>,
    in_view: Gauge,
    mqtt_queue: Gauge,
    mqtt_dropped: Counter,
    stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    /// What the counters were fed up to (they only take increments).
    last: Summary,
    last_mqtt_dropped: u64,
    last_frame: Option<Instant>,
}

fn stage_histogram() -> Histogram {
    // 0.1 ms to about 3.3 s.
    Histogram::new(exponential_buckets(1e-4, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("edge_reid"),
            frames: Counter::default(),
            unreadable: Counter::default(),
            crops: Counter::default(),
            junk: Counter::default(),
            non_finite: Counter::default(),
            tracks_started: Counter::default(),
            tracks_ended: Counter::default(),
            identities: Family::default(),
            in_view: Gauge::default(),
            mqtt_queue: Gauge::default(),
            mqtt_dropped: Counter::default(),
            stage_seconds: Family::new_with_constructor(stage_histogram),
            last: Summary::default(),
            last_mqtt_dropped: 0,
            last_frame: None,
        };
        let r = &mut m.registry;
        let counters = [
            ("frames", "Frames read", &m.frames),
            (
                "frames_unreadable",
                "Frames that could not be read or decoded",
                &m.unreadable,
            ),
            ("crops", "Person crops cut", &m.crops),
            (
                "crops_junk",
                "Crops the pre-detector dropped as junk",
                &m.junk,
            ),
            (
                "crops_non_finite",
                "Crops skipped: the model's outputs held NaN or infinite values",
                &m.non_finite,
            ),
            ("tracks_started", "Tracks confirmed", &m.tracks_started),
            ("tracks_ended", "Tracks ended", &m.tracks_ended),
            (
                "mqtt_dropped",
                "MQTT messages dropped (full queue, or never delivered)",
                &m.mqtt_dropped,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        let gauges = [
            ("people_in_view", "Tracked people in view", &m.in_view),
            (
                "mqtt_queue",
                "MQTT messages waiting for the broker",
                &m.mqtt_queue,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        r.register(
            "identities",
            "People named (identity=matched) or not (unknown): each ended track and observation",
            m.identities.clone(),
        );
        r.register(
            "stage_seconds",
            "Time per frame in each pipeline stage",
            m.stage_seconds.clone(),
        );
        m
    }
}

impl Metrics {
    /// Feeds one processed frame: the pipeline's summary after it (with the source's unreadable
    /// count), the people in view and the MQTT queue and drops, if any. Its events go to
    /// [`Metrics::outputs`].
    pub fn frame(&mut self, summary: &Summary, in_view: usize, mqtt: Option<(usize, u64)>) {
        let grow = |c: &Counter, now: u64, before: u64| {
            c.inc_by(now.saturating_sub(before));
        };
        grow(&self.frames, summary.frames, self.last.frames);
        grow(&self.unreadable, summary.unreadable, self.last.unreadable);
        grow(&self.crops, summary.crops, self.last.crops);
        grow(&self.junk, summary.dropped, self.last.dropped);
        grow(&self.non_finite, summary.non_finite, self.last.non_finite);
        grow(&self.tracks_started, summary.tracks, self.last.tracks);
        self.in_view.set(in_view as i64);
        if let Some((queued, dropped)) = mqtt {
            self.mqtt_queue.set(queued as i64);
            grow(&self.mqtt_dropped, dropped, self.last_mqtt_dropped);
            self.last_mqtt_dropped = dropped;
        }
        let spent: StageMillis = summary.ms.minus(&self.last.ms);
        for (stage, ms) in spent.stages() {
            let h = self.stage_seconds.get_or_create(&StageLabel { stage });
            h.observe(ms.max(0.0) / 1e3);
        }
        self.last = summary.clone();
        if summary.frames > 0 {
            self.last_frame = Some(Instant::now());
        }
    }

    /// Counts ended tracks and who the finished ones and the observations were.
    pub fn outputs(&mut self, outputs: &[Output]) {
        for o in outputs {
            let identity = match o {
                Output::Track(t) if t.status == TrackStatus::End => {
                    self.tracks_ended.inc();
                    &t.identity
                }
                Output::Track(_) => continue,
                Output::Observation(o) => &o.identity,
            };
            let identity = if identity.is_some() {
                "matched"
            } else {
                "unknown"
            };
            self.identities
                .get_or_create(&IdentityLabel { identity })
                .inc();
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// Whether a frame came within [`HEALTHY_WITHIN`], and how long ago the last did.
    pub fn healthy(&self) -> (bool, Option<Duration>) {
        let age = self.last_frame.map(|t| t.elapsed());
        (age.is_some_and(|a| a < HEALTHY_WITHIN), age)
    }
}

/// The metrics behind a lock, shared by the pipeline and the server.
pub type SharedMetrics = Arc<Mutex<Metrics>>;

/// The metrics, whichever thread panicked while holding them.
pub fn lock(m: &SharedMetrics) -> MutexGuard<'_, Metrics> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `/metrics` and `/healthz`, to serve with [`crate::http::serve`] (alone, or merged into the
/// web server's routes).
pub fn router(metrics: SharedMetrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(health))
        .with_state(metrics)
}

async fn metrics_page(State(m): State<SharedMetrics>) -> impl IntoResponse {
    let body = lock(&m).encode();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn health(State(m): State<SharedMetrics>) -> impl IntoResponse {
    match lock(&m).healthy() {
        (true, _) => (
            StatusCode::OK,
            "ok: the source delivers frames\n".to_string(),
        ),
        (false, None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: no frame yet\n".to_string(),
        ),
        (false, Some(age)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: no frame for {:.0} s\n", age.as_secs_f64()),
        ),
    }
}
