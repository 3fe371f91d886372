//! The commands of `edge-reid`: each opens what it needs (model, gallery, source) with errors that
//! name the file, then drives the library.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use edge_reid::annotate::{draw, save_frame};
use edge_reid::atomic_file::write_atomic_with_mode;
use edge_reid::card::ModelCard;
use edge_reid::detect::motion::{MotionConfig, MotionDetector};
use edge_reid::detect::yolo::{YoloConfig, YoloDetector};
use edge_reid::detect::Proposer;
use edge_reid::eval::market::evaluate_market;
use edge_reid::events::{Event, Summary};
use edge_reid::fleet::{Fleet, FleetConfig};
use edge_reid::gallery::{shown_name, EmbeddingSpace, Gallery};
use edge_reid::model::{release_freed_memory, set_threads, Model};
use edge_reid::mot::MotWriter;
use edge_reid::mqtt::layout::check_box_name;
use edge_reid::picture;
use edge_reid::pipeline::{Pipeline, Recognition, Recognizer};
use edge_reid::preprocess::{aspect_factor, Region, ASPECT_WARNING};
use edge_reid::source::{
    CameraConfig, Frame, FrameSize, FrameSource, ImageFiles, Next, Prefetch, RawFrames,
    SkipUnreadable, SourceError, SyntheticCamera, SyntheticConfig, V4lCamera,
};
use edge_reid::track::TrackerConfig;
use serde_json::json;

use crate::asks::{answer, GalleryFile};
use crate::output::{host_box_name, Format, MqttSite, Outputs};
use crate::{
    EmbedArgs, EnrollArgs, EvalArgs, GalleryAction, GalleryArgs, IdentifyArgs, ModelArgs, RunArgs,
};

/// Where a model is looked for when `--model` is not given.
const MODEL_FILE: &str = "models/edge-reid.onnx";
/// Where the pre-detector is looked for when `--pre-detector` is not given.
const PRE_DETECTOR_FILE: &str = "models/pre-detector.onnx";
/// People of the synthetic camera enrolled into a temporary gallery when there is no gallery file
/// (the others of its pool stay unknown).
const DEMO_PEOPLE: u32 = 4;
/// Enrolment pictures per demo person (from the six Market camera presets in turn).
const DEMO_SHOTS: u64 = 6;
/// The gallery used when `--gallery` is not given.
const GALLERY_FILE: &str = "edge-reid.gallery";
/// Corrupt frames in a row after which a stream counts as lost (about two seconds of a 25 fps
/// camera).
const MAX_UNREADABLE_IN_ROW: u32 = 50;
/// How often a run waiting for a frame looks for a stop signal.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Frames between two hand-backs of freed memory to the kernel (1.6 ms each, median, with the
/// shipped model on two threads): what the threads free in their own allocator arenas would
/// otherwise stay resident (every 100 frames: 12 MiB more in the median; RESULTS.md).
const TRIM_EVERY: u64 = 10;
/// The camera used when no source is given, if it exists.
const DEFAULT_DEVICE: &str = "/dev/video0";

/// Parses a distance: positive, or `inf`.
pub fn parse_distance(text: &str) -> Result<f32, String> {
    edge_reid::distance::parse_threshold(text).map_err(|e| e.to_string())
}

/// Parses a number of seconds, zero or more.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0 to 86400"
        )),
    }
}

/// Parses a retention: a positive duration such as `30d` or `12h`.
pub fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a retention of 0 would keep nothing".into()),
        Err(e) => Err(format!(
            "{text:?} is not a duration such as 30d or 12h: {e}"
        )),
    }
}

/// Parses a probability threshold in [0, 1].
pub fn parse_probability(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability between 0 and 1")),
    }
}

/// Parses a frame size `WxH`.
pub fn parse_size(text: &str) -> Result<FrameSize, String> {
    text.parse().map_err(|e: SourceError| e.to_string())
}

/// Parses a box name (see [`check_box_name`]).
pub fn parse_box_name(text: &str) -> Result<String, String> {
    check_box_name(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

/// Parses `x,y,w,h`.
pub fn parse_roi(text: &str) -> Result<Region, String> {
    text.parse()
        .map_err(|e: edge_reid::preprocess::ParseRegionError| e.to_string())
}

/// The model path: `--model`, `$EDGE_REID_MODEL`, or [`MODEL_FILE`] found by [`shipped`].
fn model_path(args: &ModelArgs) -> Result<PathBuf> {
    if let Some(p) = &args.model {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("EDGE_REID_MODEL") {
        return Ok(PathBuf::from(p));
    }
    shipped(MODEL_FILE).map_err(|tried| {
        anyhow!(
            "no model given and none found (looked for {tried}): pass --model FILE.onnx or set EDGE_REID_MODEL"
        )
    })
}

/// The pre-detector of `run` on a `kind` source: `--pre-detector`, `$EDGE_REID_PRE_DETECTOR`, or
/// on the synthetic camera [`PRE_DETECTOR_FILE`] found by [`shipped`] (none if it is not there);
/// `--no-pre-detector` turns it off. The shipped pre-detector learned rendered crops and rejects
/// most real people (vtest.avi: 30 of 35), so real frames get one only when asked for.
fn pre_detector_path(a: &RunArgs, kind: Kind) -> Option<PathBuf> {
    if a.no_pre_detector {
        return None;
    }
    a.pre_detector
        .clone()
        .or_else(|| std::env::var_os("EDGE_REID_PRE_DETECTOR").map(PathBuf::from))
        .or_else(|| {
            (kind == Kind::Synthetic)
                .then(|| shipped(PRE_DETECTOR_FILE).ok())
                .flatten()
        })
}

/// A shipped file (`models/...`) under the working directory, the binary's directory or the source
/// tree the binary was built from, whichever has it first; else the places tried, for the error.
fn shipped(file: &str) -> Result<PathBuf, String> {
    let mut places = vec![PathBuf::from(file)];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        places.push(dir.join(file));
    }
    places.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(file));
    places.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let tried: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
        tried.join(", ")
    })
}

fn gallery_path(args: &ModelArgs) -> PathBuf {
    args.gallery
        .clone()
        .or_else(|| std::env::var_os("EDGE_REID_GALLERY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(GALLERY_FILE))
}

fn load_model(path: &Path, batch: u16) -> Result<Model> {
    Model::load(path, usize::from(batch))
        .with_context(|| format!("loading model {}", path.display()))
}

fn recognizer(
    args: &ModelArgs,
    pre_detector: Option<&Path>,
    junk_threshold: f32,
) -> Result<Recognizer> {
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    set_threads(threads);
    let model_file = model_path(args)?;
    let model = load_model(&model_file, args.batch)?;
    let pre = pre_detector
        .map(|p| load_model(p, args.batch))
        .transpose()?;
    Recognizer::new(model, pre, junk_threshold).with_context(|| match pre_detector {
        Some(p) => format!(
            "model {} with pre-detector {}",
            model_file.display(),
            p.display()
        ),
        None => format!("model {}", model_file.display()),
    })
}

/// Opens the gallery for reading; a missing file is an empty gallery (everyone is unknown).
fn open_gallery(path: &Path, recognizer: &Recognizer) -> Result<Option<Gallery>> {
    if !path.exists() {
        return Ok(None);
    }
    let gallery =
        Gallery::open(path).with_context(|| format!("opening gallery {}", path.display()))?;
    gallery
        .check_model(&EmbeddingSpace::of_model(recognizer.model())?)
        .with_context(|| format!("gallery {}", path.display()))?;
    Ok(Some(gallery))
}

/// Says that `path` does not exist, so that a mistyped `--gallery` does not pass for a gallery
/// of strangers.
fn warn_no_gallery(path: &Path) {
    eprintln!(
        "edge-reid: no gallery at {0}: everyone is unknown until people are enrolled \
         (`edge-reid enroll --gallery {0} --name NAME IMAGES...`)",
        path.display()
    );
}

/// Image files given directly or found in folders, in order.
fn image_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    Ok(ImageFiles::new(inputs)?.paths().to_vec())
}

/// The source `edge-reid run` reads and, for the synthetic camera (whose frames carry people
/// boxes), enrolment pictures of its first [`DEMO_PEOPLE`] people by name.
fn open_source(a: &RunArgs) -> Result<Opened> {
    if a.input.len() == 1 && a.input[0] == Path::new("-") {
        let size = a.size.ok_or_else(|| {
            anyhow!("--input - reads raw RGB frames: give their size with --size WxH")
        })?;
        return Ok(Opened::new(RawFrames::stdin(size)?, Kind::Stream));
    }
    if !a.input.is_empty() {
        return Ok(Opened::new(ImageFiles::new(&a.input)?, Kind::Files));
    }
    let device = a.device.clone().or_else(|| {
        (!a.synthetic && Path::new(DEFAULT_DEVICE).exists()).then(|| PathBuf::from(DEFAULT_DEVICE))
    });
    if let Some(device) = device {
        let mut cfg = CameraConfig::new(&device);
        cfg.size = a.size.unwrap_or(FrameSize::new(640, 480));
        cfg.fps = a.fps;
        let camera =
            V4lCamera::open(cfg).with_context(|| format!("opening camera {}", device.display()))?;
        return Ok(Opened::new(camera, Kind::Stream));
    }
    if !a.synthetic {
        eprintln!("edge-reid: no source given and no {DEFAULT_DEVICE}: using the synthetic camera");
    }
    let defaults = SyntheticConfig::default();
    let camera = SyntheticCamera::new(SyntheticConfig {
        size: a.size.unwrap_or(defaults.size),
        seed: a.synthetic_seed,
        people: a.synthetic_people,
        ..defaults
    })?;
    let people = (1..=DEMO_PEOPLE)
        .map(|identity| {
            let shots = (0..DEMO_SHOTS)
                .map(|shot| camera.enrolment_crop(identity, shot, 64, 128))
                .collect::<Result<_, _>>()?;
            Ok(DemoPerson {
                name: format!("person-{identity}"),
                shots,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Opened {
        frames: Box::new(camera),
        kind: Kind::Synthetic,
        demo: Some(people),
    })
}

/// What kind of source a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Image files: each is one person crop, no tracking.
    Files,
    /// A camera or raw frames on stdin: whole scenes.
    Stream,
    /// The synthetic camera, which knows where its people are.
    Synthetic,
}

/// An opened source.
struct Opened {
    frames: Box<dyn FrameSource + Send>,
    kind: Kind,
    /// The synthetic camera's people to enrol into a first run's temporary gallery.
    demo: Option<Vec<DemoPerson>>,
}

impl Opened {
    fn new(source: impl FrameSource + Send + 'static, kind: Kind) -> Self {
        Self {
            frames: Box::new(source),
            kind,
            demo: None,
        }
    }
}

/// How `edge-reid run` finds people in `kind` frames (see `--roi` and `--detector`).
fn proposer(a: &RunArgs, kind: Kind) -> Result<Proposer> {
    if !a.roi.is_empty() {
        return Ok(Proposer::Regions(a.roi.clone()));
    }
    if let Some(path) = &a.detector {
        let cfg = YoloConfig {
            conf: a.detector_conf,
            ..YoloConfig::default()
        };
        let detector = YoloDetector::load(path, cfg)?;
        eprintln!("edge-reid: detector {}", path.display());
        return Ok(Proposer::Detector(Box::new(detector)));
    }
    Ok(match kind {
        Kind::Files => Proposer::WholeFrame,
        Kind::Stream => Proposer::Motion(Box::new(MotionDetector::new(MotionConfig::default()))),
        Kind::Synthetic => Proposer::Truth,
    })
}

/// Someone the synthetic camera shows, with pictures to enrol them by.
struct DemoPerson {
    name: String,
    shots: Vec<image::RgbImage>,
}

/// A gallery in `dir` holding `people`, enrolled like `edge-reid enroll` does (main model, no
/// pre-detector), so that a first run on the synthetic camera shows identities and unknowns.
fn demo_gallery(model: &ModelArgs, people: &[DemoPerson], dir: &Path) -> Result<Gallery> {
    let mut recognizer = recognizer(model, None, 0.0)?;
    let space = EmbeddingSpace::of_model(recognizer.model())?;
    let path = dir.join(GALLERY_FILE);
    let mut gallery = Gallery::create(&path, space)
        .with_context(|| format!("creating gallery {}", path.display()))?;
    for person in people {
        let embeddings: Vec<f32> = recognizer
            .recognize_images(&person.shots)?
            .into_iter()
            .flat_map(|r| r.embedding)
            .collect();
        gallery
            .enroll(&person.name, &embeddings)
            .with_context(|| format!("enrolling {:?} into {}", person.name, path.display()))?;
    }
    Ok(gallery)
}

/// `edge-reid [run]`.
pub fn run(a: &RunArgs) -> Result<()> {
    let Opened {
        frames: source,
        kind,
        demo: demo_people,
    } = open_source(a)?;
    if a.truth.is_some() && kind != Kind::Synthetic {
        bail!("--truth writes where the synthetic camera drew its people: it needs the synthetic camera");
    }
    let pre_detector = pre_detector_path(a, kind);
    let recognizer = recognizer(&a.model, pre_detector.as_deref(), a.junk_threshold)?;
    let gallery_file = gallery_path(&a.model);
    // Kept until the run ends: the temporary gallery of a first run on the synthetic camera.
    let mut demo_dir = None;
    let sync_space = a
        .gallery_sync
        .then(|| EmbeddingSpace::of_model(recognizer.model()))
        .transpose()?;
    let gallery = if let Some(space) = sync_space {
        // A box that joins a fleet starts from the fleet's gallery (an empty one at first).
        let gallery = Gallery::open_or_create(&gallery_file, space)
            .with_context(|| format!("opening gallery {}", gallery_file.display()))?;
        Some(gallery)
    } else {
        match (open_gallery(&gallery_file, &recognizer)?, demo_people) {
            (None, Some(people)) => {
                let dir = tempfile::tempdir().context("creating a temporary folder")?;
                let gallery = demo_gallery(&a.model, &people, dir.path())?;
                eprintln!(
                "edge-reid: no gallery at {}: enrolled the synthetic camera's {} into a temporary \
                 gallery (its other people stay unknown)",
                gallery_file.display(),
                people.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            );
                demo_dir = Some(dir);
                Some(gallery)
            }
            (None, None) => {
                warn_no_gallery(&gallery_file);
                None
            }
            (gallery, _) => gallery,
        }
    };
    if let Some(p) = &pre_detector {
        eprintln!("edge-reid: pre-detector {}", p.display());
    }
    // Where the browser's enrollments go (the gallery file, also on a first synthetic run).
    let gallery_for_asks = EmbeddingSpace::of_model(recognizer.model())
        .ok()
        .map(|space| GalleryFile {
            path: gallery_file.clone(),
            space,
        });
    let enrolled = gallery.as_ref().map(people).unwrap_or_default();
    let held = gallery.as_ref().map(Gallery::stamp);
    let files_source = kind == Kind::Files;
    let mut pipeline = Pipeline::new(recognizer, gallery, proposer(a, kind)?, a.max_distance);
    // Fixed regions are not people to follow: one observation per region and frame.
    let track = !files_source && !a.no_track && a.roi.is_empty();
    if a.auto_enroll && !track {
        bail!("--auto-enroll names tracked people: it needs a stream (a camera, stdin or --synthetic)");
    }
    if a.mot.is_some() && !track {
        bail!("--mot writes tracks: it needs a tracked stream (a camera, stdin or the synthetic camera, without --no-track or --roi)");
    }
    if track {
        let cfg = TrackerConfig {
            embed_every: a.embed_every.max(1),
            max_lost: a.max_lost,
            ..TrackerConfig::default()
        };
        pipeline = pipeline.with_tracking(cfg, a.auto_enroll)?;
    }
    let box_name = a.box_name.clone().unwrap_or_else(host_box_name);
    let mut events = Outputs::open(a.format, a.quiet, a.events.as_deref(), a.status_every)?;
    if let Some(broker) = &a.mqtt {
        let site = MqttSite {
            broker: broker.clone(),
            ca_file: a.mqtt_ca.clone(),
            queue: a.mqtt_queue as usize,
            box_name: box_name.clone(),
        };
        events.start_mqtt(site, enrolled, a.gallery_sync)?;
    }
    let fleet = match (sync_space, held) {
        (Some(space), Some(held)) => {
            let config = FleetConfig {
                gallery: gallery_file.clone(),
                space,
                box_name,
            };
            Some(events.start_fleet(config, held)?)
        }
        _ => None,
    };
    if let Some(addr) = a.metrics {
        events.start_metrics(addr)?;
    }
    if let Some(path) = &a.store {
        events.start_store(path, a.retain, a.snapshots)?;
    }
    if let Some(addr) = a.http {
        events.start_http(addr, a.http_token.as_deref(), a.store.clone())?;
    }
    let asks = events.take_asks().zip(gallery_for_asks);
    let mut mot = a.mot.as_deref().map(mot_file).transpose()?;
    let mut truth = a.truth.as_deref().map(mot_file).transpose()?;
    let camera = source.describe();
    eprintln!("edge-reid: reading {camera}");
    // A bad image file fails only itself; a camera that sends nothing but corrupt frames is lost.
    let limit = (!files_source).then_some(MAX_UNREADABLE_IN_ROW);
    let source = SkipUnreadable::new(source, limit, |e: &SourceError| {
        eprintln!("edge-reid: skipped: {e}");
    });
    let skipped = source.skipped_counter();
    let skipped = move || skipped.load(Ordering::Relaxed);
    let stop = stop_on_signal()?;
    // Read on a thread of its own: a signal ends the run within STOP_POLL whatever the source is
    // doing (a blocked read, a camera's back-off or stall).
    let reader =
        Prefetch::spawn(source, "edge-reid source").context("starting the source thread")?;
    let mut read = 0u64;
    // Open tracks end and the summary is written however the stream ends: at its end, after
    // --frames, on SIGINT or SIGTERM, when the source is lost, or when a frame fails (a full disk
    // under --events or --save-frames); the run still fails in the last two cases.
    let ended = (|| -> Result<()> {
        loop {
            if a.frames.is_some_and(|n| read >= n) {
                return Ok(());
            }
            let next = loop {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                if let Next::Read(next) = reader.next(STOP_POLL) {
                    break next;
                }
            };
            let capture = next.took.as_secs_f64() * 1e3;
            let frame = match next.result {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {camera}"))),
            };
            read += 1;
            take_fleet_gallery(fleet.as_ref(), &mut events, &mut pipeline);
            let outputs = pipeline.process(&frame, &camera)?;
            let started = Instant::now();
            events.write_all(&outputs, &pipeline)?;
            if let Some((path, w)) = &mut mot {
                w.tracks(frame.index, &pipeline.tracks_in_view())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some((path, w)) = &mut truth {
                w.truth(frame.index, &frame.truth)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let show = events.wants_frame();
            if a.save_frames.is_some() || show {
                let mut picture = frame.image.clone();
                draw(&mut picture, &pipeline.labels(&outputs));
                if let Some(dir) = &a.save_frames {
                    save_frame(dir, frame.index, &picture)?;
                }
                if show {
                    events.show_frame(&picture);
                }
            }
            pipeline.add_io_ms(capture, started.elapsed().as_secs_f64() * 1e3);
            events.frame_done(&pipeline, skipped())?;
            if let Some((asks, gallery)) = &asks {
                for asked in asks.try_iter() {
                    answer(asked, &mut pipeline, gallery, &mut events);
                }
            }
            reader.recycle(frame);
            if read.is_multiple_of(TRIM_EVERY) {
                release_freed_memory();
            }
        }
    })();
    let closed = (|| -> Result<u64> {
        // A gallery the fleet merged while the last frame was read: its people are the ones the
        // site's sensors keep.
        take_fleet_gallery(fleet.as_ref(), &mut events, &mut pipeline);
        let last = pipeline.finish(&camera)?;
        let written = events.write_all(&last, &pipeline);
        let summary = Summary {
            unreadable: skipped(),
            ..pipeline.summary()
        };
        // The summary is written even where the end events could not be.
        written.and(events.write(&Event::Summary(&summary)))?;
        for (path, w) in mot.iter_mut().chain(truth.iter_mut()) {
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(summary.unreadable)
    })();
    if let Some(fleet) = fleet {
        fleet.stop();
    }
    events.close();
    drop(demo_dir);
    // The first failure is the run's; one while closing after it is said on stderr.
    let unreadable = match (ended, closed) {
        (Err(e), Err(also)) => {
            eprintln!("edge-reid: also, while ending the run: {also:#}");
            return Err(e);
        }
        (Err(e), Ok(_)) | (Ok(()), Err(e)) => return Err(e),
        (Ok(()), Ok(unreadable)) => unreadable,
    };
    if files_source && unreadable > 0 {
        bail!("{unreadable} input image(s) could not be read (see above)");
    }
    Ok(())
}

/// Matches against the gallery the fleet merged last, if there is a newer one, and tells the
/// outputs its people.
fn take_fleet_gallery(fleet: Option<&Fleet>, events: &mut Outputs, pipeline: &mut Pipeline) {
    if let Some(gallery) = fleet.and_then(Fleet::updated) {
        events.set_people(people(&gallery));
        pipeline.set_gallery(gallery);
    }
}

/// The names of a gallery's people.
fn people(gallery: &Gallery) -> Vec<String> {
    gallery.list().map(|(name, _)| name.to_string()).collect()
}

/// A MOTChallenge file for `--mot` or `--truth`, created or emptied, with its path for messages.
fn mot_file(path: &Path) -> Result<(PathBuf, MotWriter<BufWriter<File>>)> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok((path.to_path_buf(), MotWriter::new(BufWriter::new(file))))
}

/// A flag that SIGINT, SIGTERM or SIGHUP raises, so that `run` ends cleanly: open tracks end and
/// the summary is written. A second signal exits at once.
fn stop_on_signal() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let raised = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if raised.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "edge-reid: stopping: ending open tracks and writing the summary (again to quit now)"
        );
    })
    .context("installing the SIGINT/SIGTERM handler")?;
    Ok(stop)
}

/// Warns when a picture of a person is far from the model's aspect: it is padded to it (never
/// stretched), so the person comes out small.
fn check_aspect(path: &Path, image: &image::RgbImage, card: &ModelCard) {
    let (height, width) = (card.input.height, card.input.width);
    let factor = aspect_factor(image.width(), image.height(), height, width);
    if factor > ASPECT_WARNING {
        eprintln!(
            "edge-reid: warning: {} is {}x{}, {factor:.1} times off the model's {width}x{height} \
             aspect: it is padded to it; a picture cut around the one person, as tall and wide \
             as the model's input, matches better",
            path.display(),
            image.width(),
            image.height()
        );
    }
}

/// Recognises each image as one whole-image crop.
fn recognize_files(recognizer: &mut Recognizer, paths: &[PathBuf]) -> Result<Vec<Recognition>> {
    paths
        .iter()
        .map(|path| {
            let image = picture::open(path)?;
            check_aspect(path, &image, recognizer.card());
            let mut r = recognizer.recognize_images(std::slice::from_ref(&image))?;
            Ok(r.remove(0))
        })
        .collect()
}

/// `edge-reid enroll`.
pub fn enroll(a: &EnrollArgs) -> Result<()> {
    let mut recognizer = recognizer(&a.model, None, 0.0)?;
    let recognitions = recognize_files(&mut recognizer, &image_paths(&a.images)?)?;
    let embeddings: Vec<f32> = recognitions
        .iter()
        .flat_map(|r| r.embedding.iter().copied())
        .collect();
    let path = gallery_path(&a.model);
    let space = EmbeddingSpace::of_model(recognizer.model())?;
    let mut gallery = Gallery::open_or_create(&path, space)
        .with_context(|| format!("opening gallery {}", path.display()))?;
    let receipt = gallery
        .enroll(&a.name, &embeddings)
        .with_context(|| format!("enrolling {:?} into {}", a.name, path.display()))?;
    println!(
        "{} {:?}: {} embedding(s) added, {} in total, gallery {} ({} identities)",
        if receipt.new_identity {
            "enrolled"
        } else {
            "updated"
        },
        a.name,
        receipt.added,
        receipt.total,
        path.display(),
        gallery.identities()
    );
    Ok(())
}

/// `edge-reid identify`: one observation event per image.
pub fn identify(a: &IdentifyArgs) -> Result<()> {
    let recognizer = recognizer(&a.model, None, 0.0)?;
    let gallery_file = gallery_path(&a.model);
    let gallery = open_gallery(&gallery_file, &recognizer)?;
    if gallery.is_none() {
        warn_no_gallery(&gallery_file);
    }
    let paths = image_paths(&a.inputs)?;
    let card = recognizer.card().clone();
    let mut pipeline = Pipeline::new(recognizer, gallery, Proposer::WholeFrame, a.max_distance);
    let mut events = Outputs::open(Format::Json, false, None, 0.0)?;
    for (index, path) in paths.iter().enumerate() {
        let image = picture::open(path)?;
        check_aspect(path, &image, &card);
        let frame = Frame {
            image,
            index: index as u64,
            ..Frame::default()
        };
        let outputs = pipeline.process(&frame, &path.display().to_string())?;
        events.write_all(&outputs, &pipeline)?;
    }
    Ok(())
}

/// `edge-reid embed`.
pub fn embed(a: &EmbedArgs) -> Result<()> {
    let mut recognizer = recognizer(&a.model, None, 0.0)?;
    let paths = image_paths(&a.inputs)?;
    let recognitions = recognize_files(&mut recognizer, &paths)?;
    let card = recognizer.card();
    let mut out = String::new();
    for (path, r) in paths.iter().zip(&recognitions) {
        let attributes: serde_json::Map<String, serde_json::Value> = card
            .attributes
            .iter()
            .zip(&r.attributes)
            .map(|(spec, &(class, score))| {
                let label = spec.labels.get(class).cloned().unwrap_or_default();
                (spec.name.clone(), json!({ "label": label, "score": score }))
            })
            .collect();
        let line = json!({
            "path": path.display().to_string(),
            "embedding": r.embedding,
            "attributes": attributes,
            "person_score": r.person_score,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    // Whole or not at all: an earlier file of the same name survives a failed write. Embeddings
    // describe people: only the owner may read them.
    write_atomic_with_mode(&a.out, out.as_bytes(), Some(0o600))
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {} embeddings to {}", paths.len(), a.out.display());
    Ok(())
}

/// Images between two progress lines of `eval`.
const PROGRESS_EVERY: usize = 500;

/// `edge-reid eval`.
pub fn eval(a: &EvalArgs) -> Result<()> {
    let mut recognizer = recognizer(&a.model, None, 0.0)?;
    let mut reported = 0;
    let mut progress = |done: usize, total: usize| {
        if done - reported >= PROGRESS_EVERY || (done == total && reported > 0) {
            eprintln!("edge-reid: eval: {done}/{total} images");
            reported = done;
        }
    };
    let evaluation = evaluate_market(&mut recognizer, &a.data, a.junk, &mut progress)
        .with_context(|| format!("evaluating on {}", a.data.display()))?;
    print!("{evaluation}");
    Ok(())
}

/// `edge-reid gallery list|remove`.
pub fn gallery(a: &GalleryArgs) -> Result<()> {
    let path = gallery_path(&a.model);
    let mut gallery =
        Gallery::open(&path).with_context(|| format!("opening gallery {}", path.display()))?;
    match &a.action {
        GalleryAction::List => {
            for (name, count) in gallery.list() {
                let enrolled = gallery.enrolled(name).map_or_else(
                    || "unknown".to_string(),
                    |t| humantime::format_rfc3339_seconds(t).to_string(),
                );
                println!("{}\t{count}\t{enrolled}", shown_name(name));
            }
            eprintln!(
                "{} identities, {} embeddings",
                gallery.identities(),
                gallery.len()
            );
        }
        GalleryAction::Remove { name } => {
            let removed = gallery
                .remove(name)
                .with_context(|| format!("removing {name:?} from {}", path.display()))?;
            println!("removed {name:?} ({removed} embeddings)");
        }
    }
    Ok(())
}
