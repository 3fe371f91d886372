//! The browser's view of a box (`--http ADDR`): a live page and a JSON API, served with
//! [`crate::http::serve`]. The page and its script are compiled into the binary (no CDN, no
//! build step).
//!
//! | path | what |
//! |---|---|
//! | `/` | the live page: the annotated view, the people in view, the latest events |
//! | `/stream.mjpeg` | the annotated view as MJPEG (at most [`MAX_STREAM_FPS`] frames a second, encoded only while someone watches) |
//! | `/api/events/stream` | the events as they happen (Server-Sent Events, each `data:` one event line) |
//! | `/api/tracks` | `{"in_view": [...], "recent": [...]}`: the latest event of each track in view, and the last events |
//! | `/api/status` | `{"frames", "fps", "ms_per_frame", "stages": {STAGE: ms per frame}}` over the last seconds |
//! | `/api/search?...` | stored tracks ([`crate::store`]): `ATTRIBUTE=LABEL` (any of the 12), `min_score`, `name` or `unknown=1`, `camera`, `from`/`to` (RFC 3339), `limit` |
//! | `/api/tracks/{id}/snapshot` | a stored track's JPEG |
//! | `/search` | the search page over `/api/search` (a search can be linked to: `/search?upcolor=red`) |
//! | `/api/attributes` | `{"attributes": [{"name", "labels"}]}`: the 12 attributes and their labels |
//! | `/gallery` | the gallery page: enrolled people, remove, enroll a live or recent track |
//! | `/api/gallery` | `{"file", "people": [{"name", "embeddings", "enrolled"}]}`: the gallery file the page enrolls into |
//! | `DELETE /api/gallery/{name}` | removes a person |
//! | `POST /api/gallery/{name}/track/{track}` | enrolls the best crops kept of a live or recent track as `name` |
//! | `POST /api/gallery/{name}/photos` | enrolls uploaded photos as `name` (`multipart/form-data`, one file per photo, other fields ignored, at most [`MAX_PHOTOS`] of at most [`MAX_PHOTO_BYTES`] each) |
//! | `/api/crops/{track}/{index}` | a crop kept of a track, as JPEG (in memory only) |
//!
//! The run feeds [`Live`] after each frame, and answers what needs the pipeline or the gallery
//! file ([`Ask`]) between two frames. Access: [`Access`] lets every request in on a
//! loopback address; any other address needs a token, checked on every request in constant time
//! (`Authorization: Bearer TOKEN`, the `edge-reid-token` cookie, or `?token=TOKEN` once, which
//! sets the cookie).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query as UrlQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, oneshot, watch};

use crate::attributes::{attribute_index, ATTRIBUTES};
use crate::events::{Summary, TrackStatus};
use crate::pipeline::Output;
use crate::store::{Query, Store, Who};

/// Most frames a second the MJPEG stream sends.
pub const MAX_STREAM_FPS: f64 = 5.0;

/// Events `/api/tracks` keeps as `recent`.
const RECENT: usize = 50;

/// How long the frame rate and the time per stage of `/api/status` are averaged over.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// Events held for a slow `/api/events/stream` reader before it misses some.
const EVENT_BACKLOG: usize = 256;

/// The live page.
const LIVE_PAGE: &str = include_str!("live.html");

/// The search page.
const SEARCH_PAGE: &str = include_str!("search.html");

/// The gallery page.
const GALLERY_PAGE: &str = include_str!("gallery.html");

/// The pages' common style sheet.
const STYLE: &str = include_str!("style.css");

/// Who may ask: anyone on loopback, else the holders of a token.
#[derive(Clone)]
pub struct Access {
    /// SHA-256 of the token (`None`: no token needed).
    token: Option<[u8; 32]>,
}

/// A token is missing for an address other than loopback.
#[derive(Debug, thiserror::Error)]
#[error("--http {0} is not a loopback address: it needs --http-token (the page and API would be open to the network)")]
pub struct NeedsToken(pub SocketAddr);

impl Access {
    /// Access to a server on `addr`, with `token` if given (required unless `addr` is loopback).
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Result<Access, NeedsToken> {
        match token {
            Some(t) => Ok(Access {
                token: Some(Sha256::digest(t.as_bytes()).into()),
            }),
            None if addr.ip().is_loopback() => Ok(Access { token: None }),
            None => Err(NeedsToken(addr)),
        }
    }

    /// Whether `given` is the token, in time independent of where they differ (the digests are
    /// compared whole).
    fn admits(&self, given: Option<&str>) -> bool {
        let Some(want) = self.token else {
            return true;
        };
        let Some(given) = given else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        want.iter().zip(&got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The token a request carries, and whether it came in the URL.
fn token_of(request: &Request) -> (Option<String>, bool) {
    let headers = request.headers();
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return (Some(t.to_string()), false);
    }
    let from_url = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    if from_url.is_some() {
        return (from_url, true);
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("edge-reid-token=").map(String::from));
    (cookie, false)
}

async fn check_access(State(access): State<Access>, request: Request, next: Next) -> Response {
    let (token, in_url) = token_of(&request);
    if !access.admits(token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this box needs its token: Authorization: Bearer TOKEN, or ?token=TOKEN\n",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    if let (true, Some(t)) = (in_url && access.token.is_some(), token) {
        let cookie = format!("edge-reid-token={t}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = cookie.parse() {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// What a page asks of the run, which owns the pipeline and writes the gallery file.
#[derive(Debug)]
pub enum Ask {
    /// The gallery's people.
    Gallery,
    /// Remove a person.
    Remove(String),
    /// Enroll the crops kept of a track as a person.
    EnrollTrack {
        /// The person's name.
        name: String,
        /// The track.
        track: u64,
    },
    /// Enroll uploaded photos as a person (all of them or none).
    EnrollPhotos {
        /// The person's name.
        name: String,
        /// Each photo's file name and its bytes, not yet decoded (the run decodes one at a time,
        /// so that memory holds one decoded photo at most).
        photos: Vec<(String, Bytes)>,
    },
    /// A crop kept of a track, as JPEG.
    Crop {
        /// The track.
        track: u64,
        /// Which of its crops (0: the best).
        index: usize,
    },
}

/// The run's answer to an [`Ask`].
#[derive(Debug)]
pub enum Answer {
    /// A JSON document.
    Json(serde_json::Value),
    /// A JPEG picture.
    Jpeg(Vec<u8>),
    /// Refused: an HTTP status (400, 404, 500) and why.
    Refused(u16, String),
}

/// An [`Ask`] waiting for its answer.
pub struct Asked {
    /// What is asked.
    pub ask: Ask,
    reply: oneshot::Sender<Answer>,
}

impl Asked {
    /// Answers (the page may have gone: no error).
    pub fn answer(self, answer: Answer) {
        let _ = self.reply.send(answer);
    }
}

/// Most photos one upload may hold.
pub const MAX_PHOTOS: usize = 16;

/// Most bytes one uploaded photo may have.
pub const MAX_PHOTO_BYTES: usize = 8 << 20;

/// Most bytes an upload may have (its photos and the form's framing).
const MAX_UPLOAD_BYTES: usize = MAX_PHOTOS * MAX_PHOTO_BYTES + (64 << 10);

/// Asks that wait for the run at most.
const ASKS_WAITING: usize = 16;

/// How long a page waits for the run's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What the run shows the browser, fed after each frame.
pub struct Live {
    state: Mutex<LiveState>,
    events: broadcast::Sender<String>,
    frames: watch::Sender<Option<Bytes>>,
    asks: mpsc::SyncSender<Asked>,
    asked: Mutex<Option<mpsc::Receiver<Asked>>>,
}

#[derive(Default)]
struct LiveState {
    /// The latest event of each track in view, as JSON text.
    in_view: BTreeMap<u64, String>,
    /// The last events, oldest first.
    recent: VecDeque<String>,
    /// When the last frame went to the stream.
    last_frame: Option<Instant>,
    /// The run's summary at the start of the rate window.
    mark: Option<(Instant, Summary)>,
    /// `/api/status`.
    status: serde_json::Value,
}

impl Live {
    /// Nothing seen yet.
    pub fn new() -> Arc<Live> {
        let (asks, asked) = mpsc::sync_channel(ASKS_WAITING);
        Arc::new(Live {
            state: Mutex::new(LiveState::default()),
            events: broadcast::channel(EVENT_BACKLOG).0,
            frames: watch::channel(None).0,
            asks,
            asked: Mutex::new(Some(asked)),
        })
    }

    /// What the pages ask, for the run to answer between frames (`None` once taken).
    pub fn take_asks(&self) -> Option<mpsc::Receiver<Asked>> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn lock(&self) -> MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A frame's outputs: the people in view, the recent events, the event stream.
    pub fn outputs(&self, outputs: &[Output]) {
        let mut s = self.lock();
        for o in outputs {
            let line = o.event().to_json();
            if let Output::Track(t) = o {
                if t.status == TrackStatus::End {
                    s.in_view.remove(&t.track);
                } else {
                    s.in_view.insert(t.track, line.clone());
                }
            }
            s.recent.push_back(line.clone());
            if s.recent.len() > RECENT {
                s.recent.pop_front();
            }
            // No reader is no error.
            let _ = self.events.send(line);
        }
    }

    /// The run's summary after a frame: the frame rate and the time per stage over the last
    /// [`RATE_WINDOW`].
    pub fn summary(&self, summary: &Summary) {
        let mut s = self.lock();
        let now = Instant::now();
        let Some((since, before)) = &s.mark else {
            s.mark = Some((now, summary.clone()));
            return;
        };
        let elapsed = now.duration_since(*since);
        if elapsed < RATE_WINDOW {
            return;
        }
        let frames = summary.frames.saturating_sub(before.frames);
        let per_frame = |ms: f64| if frames == 0 { 0.0 } else { ms / frames as f64 };
        let spent = summary.ms.minus(&before.ms);
        let stages: serde_json::Map<String, serde_json::Value> = spent
            .stages()
            .into_iter()
            .map(|(stage, ms)| (stage.to_string(), per_frame(ms).into()))
            .collect();
        s.status = serde_json::json!({
            "frames": summary.frames,
            "fps": frames as f64 / elapsed.as_secs_f64(),
            "ms_per_frame": per_frame(spent.total()),
            "stages": stages,
        });
        s.mark = Some((now, summary.clone()));
    }

    /// Whether an annotated frame is wanted now: someone watches the stream and the last frame
    /// sent is older than 1 / [`MAX_STREAM_FPS`] s.
    pub fn wants_frame(&self) -> bool {
        self.frames.receiver_count() > 0
            && self
                .lock()
                .last_frame
                .is_none_or(|t| t.elapsed().as_secs_f64() >= 1.0 / MAX_STREAM_FPS)
    }

    /// The annotated frame, as JPEG, for the stream's watchers.
    pub fn frame(&self, jpeg: Vec<u8>) {
        self.lock().last_frame = Some(Instant::now());
        self.frames.send_replace(Some(Bytes::from(jpeg)));
    }
}

/// What the web server serves.
pub struct WebConfig {
    /// Who may ask.
    pub access: Access,
    /// The event store to search (`None`: `/api/search` says there is none).
    pub store: Option<PathBuf>,
    /// More routes served as they are (`/metrics`, `/healthz`).
    pub extra: Option<Router>,
}

#[derive(Clone)]
struct App {
    live: Arc<Live>,
    store: Option<Arc<PathBuf>>,
}

/// The web server's routes for the run's `live` state.
pub fn router(config: WebConfig, live: Arc<Live>) -> Router {
    let app = App {
        live,
        store: config.store.map(Arc::new),
    };
    let mut router = Router::new()
        .route("/", get(|| async { Html(LIVE_PAGE) }))
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE) }),
        )
        .route("/stream.mjpeg", get(mjpeg))
        .route("/api/events/stream", get(event_stream))
        .route("/api/tracks", get(tracks))
        .route(
            "/api/status",
            get(|State(app): State<App>| async move { Json(app.live.lock().status.clone()) }),
        )
        .route("/api/search", get(search))
        .route("/api/tracks/{id}/snapshot", get(snapshot))
        .route("/search", get(|| async { Html(SEARCH_PAGE) }))
        .route("/api/attributes", get(attributes))
        .route("/gallery", get(|| async { Html(GALLERY_PAGE) }))
        .route(
            "/api/gallery",
            get(|State(app): State<App>| ask(app, Ask::Gallery)),
        )
        .route(
            "/api/gallery/{name}",
            delete(|State(app): State<App>, Path(name): Path<String>| ask(app, Ask::Remove(name))),
        )
        .route(
            "/api/gallery/{name}/track/{track}",
            post(
                |State(app): State<App>, Path((name, track)): Path<(String, u64)>| {
                    ask(app, Ask::EnrollTrack { name, track })
                },
            ),
        )
        .route(
            "/api/gallery/{name}/photos",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/api/crops/{track}/{index}",
            get(
                |State(app): State<App>, Path((track, index)): Path<(u64, usize)>| {
                    ask(app, Ask::Crop { track, index })
                },
            ),
        )
        .with_state(app);
    if let Some(extra) = config.extra {
        router = router.merge(extra);
    }
    router.layer(middleware::from_fn_with_state(config.access, check_access))
}

/// A JSON error.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Asks the run and answers with what it says.
async fn ask(app: App, ask: Ask) -> Response {
    let (reply, answer) = oneshot::channel();
    let busy = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run does not answer now (is its source delivering frames?)".into(),
        )
    };
    if app.live.asks.try_send(Asked { ask, reply }).is_err() {
        return busy();
    }
    match tokio::time::timeout(ANSWER_WITHIN, answer).await {
        Ok(Ok(Answer::Json(v))) => Json(v).into_response(),
        Ok(Ok(Answer::Jpeg(jpeg))) => {
            ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()
        }
        Ok(Ok(Answer::Refused(status, message))) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        ),
        Ok(Err(_)) | Err(_) => busy(),
    }
}

/// `POST /api/gallery/{name}/photos`: reads the upload within the limits and asks the run to
/// enroll it.
async fn upload(
    State(app): State<App>,
    Path(name): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let mut form = match form {
        Ok(f) => f,
        Err(e) => {
            return error(
                e.status(),
                format!("the photos must come as multipart/form-data: {e}"),
            )
        }
    };
    let mut photos: Vec<(String, Bytes)> = Vec::new();
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return error(e.status(), format!("reading the upload: {e}")),
        };
        // The form's other fields (its name field) are not photos.
        let Some(file) = field.file_name().map(String::from) else {
            continue;
        };
        if photos.len() == MAX_PHOTOS {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("an upload holds at most {MAX_PHOTOS} photos"),
            );
        }
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) if bytes.len() + chunk.len() > MAX_PHOTO_BYTES => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("{file} is larger than {} MiB", MAX_PHOTO_BYTES >> 20),
                    )
                }
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return error(e.status(), format!("reading {file}: {e}")),
            }
        }
        photos.push((file, Bytes::from(bytes)));
    }
    if photos.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the upload holds no photo (multipart/form-data, one file per photo)".into(),
        );
    }
    ask(app, Ask::EnrollPhotos { name, photos }).await
}

async fn tracks(State(app): State<App>) -> Response {
    // The event lines as they are (the events' field order).
    let body = {
        let s = app.live.lock();
        let join = |lines: Vec<&String>| {
            lines
                .into_iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{{\"in_view\":[{}],\"recent\":[{}]}}",
            join(s.in_view.values().collect()),
            join(s.recent.iter().collect())
        )
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn event_stream(
    State(app): State<App>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = app.live.events.subscribe();
    let stream = stream::unfold(events, |mut events| async move {
        loop {
            match events.recv().await {
                Ok(line) => return Some((Ok(SseEvent::default().data(line)), events)),
                // A reader too slow for the backlog misses what it could not take.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

const BOUNDARY: &str = "edge-reid-frame";

async fn mjpeg(State(app): State<App>) -> Response {
    let frames = app.live.frames.subscribe();
    let stream = stream::unfold(frames, |mut frames| async move {
        frames.changed().await.ok()?;
        let jpeg = frames.borrow_and_update().clone()?;
        let mut part = format!(
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        )
        .into_bytes();
        part.extend_from_slice(&jpeg);
        part.extend_from_slice(b"\r\n");
        Some((Ok::<_, Infallible>(Bytes::from(part)), frames))
    });
    let mut headers = HeaderMap::new();
    let kind = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
    headers.insert(header::CONTENT_TYPE, kind.parse().expect("a header value"));
    headers.insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("a header value"),
    );
    (headers, Body::from_stream(stream)).into_response()
}

/// A search from its URL parameters.
fn query_of(params: &HashMap<String, String>) -> Result<Query, String> {
    let mut q = Query::default();
    let time = |k: &str, v: &str| {
        humantime::parse_rfc3339_weak(v)
            .map(|t| {
                let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            })
            .map_err(|e| format!("{k}={v:?} is not an RFC 3339 time: {e}"))
    };
    let mut attributes: Vec<(String, String)> = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "token" => {}
            "min_score" => {
                q.min_score = v
                    .parse()
                    .ok()
                    .filter(|s: &f32| (0.0..=1.0).contains(s))
                    .ok_or_else(|| format!("min_score={v:?} is not a number from 0 to 1"))?
            }
            "name" => q.who = Who::Named(v.clone()),
            "unknown" if matches!(v.as_str(), "1" | "true") => q.who = Who::Unknown,
            "camera" => q.camera = Some(v.clone()),
            "from" => q.from = Some(time(k, v)?),
            "to" => q.to = Some(time(k, v)?),
            "limit" => {
                q.limit = v
                    .parse()
                    .map_err(|_| format!("limit={v:?} is not a count"))?
            }
            name if attribute_index(name).is_some() => attributes.push((k.clone(), v.clone())),
            _ => return Err(format!("unknown search parameter {k:?}")),
        }
    }
    attributes.sort();
    q.attributes = attributes;
    Ok(q)
}

/// Opens the store for one request (in a blocking thread: SQLite is synchronous).
async fn with_store<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    let Some(path) = app.store.clone() else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "this box keeps no tracks: run it with --store FILE".into(),
        ));
    };
    let done = tokio::task::spawn_blocking(move || f(&Store::open_read(&path)?)).await;
    match done {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn search(
    State(app): State<App>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Response {
    let query = match query_of(&params) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match with_store(&app, move |s| s.search(&query)).await {
        Ok(found) => Json(serde_json::json!({ "tracks": found })).into_response(),
        Err(r) => r,
    }
}

async fn attributes() -> Json<serde_json::Value> {
    let schema: Vec<_> = ATTRIBUTES
        .iter()
        .map(|a| serde_json::json!({ "name": a.name, "labels": a.labels }))
        .collect();
    Json(serde_json::json!({ "attributes": schema }))
}

async fn snapshot(State(app): State<App>, Path(id): Path<i64>) -> Response {
    match with_store(&app, move |s| s.snapshot(id)).await {
        Ok(Some(jpeg)) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("track {id} has no snapshot")),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_needed_off_loopback_and_compared_whole() {
        let lan: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(Access::new(lan, None).is_err());
        assert!(Access::new(local, None).unwrap().admits(None));
        let a = Access::new(lan, Some("s3cret")).unwrap();
        assert!(a.admits(Some("s3cret")));
        for wrong in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret "),
            Some("S3cret"),
        ] {
            assert!(!a.admits(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn search_parameters_become_a_query() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let q = query_of(&params(&[
            ("upcolor", "red"),
            ("backpack", "yes"),
            ("min_score", "0.6"),
            ("unknown", "1"),
            ("from", "2026-12-01T10:00:00Z"),
            ("limit", "7"),
        ]))
        .unwrap();
        assert_eq!(
            q.attributes,
            [
                ("backpack".into(), "yes".into()),
                ("upcolor".into(), "red".into())
            ]
        );
        assert_eq!(
            (q.min_score, q.who.clone(), q.limit),
            (0.6, Who::Unknown, 7)
        );
        // 2026-12-01T10:00:00Z, by Python's datetime.
        assert_eq!(q.from, Some(1_796_119_200_000));
        for bad in [("colour", "red"), ("min_score", "2"), ("from", "yesterday")] {
            let err = query_of(&params(&[bad])).unwrap_err();
            assert!(err.contains(bad.0), "{err}");
        }
    }
}
