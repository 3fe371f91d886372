//! `edge-reid`: person attributes and re-identification on a camera box. A thin command line over
//! the `edge_reid` library: it parses arguments, opens the model, gallery and source, and runs.

mod asks;
mod commands;
mod config;
mod output;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use edge_reid::mqtt::BrokerUrl;
use edge_reid::source::FrameSize;

use crate::config::Config;
use crate::output::Format;

#[derive(Parser)]
#[command(
    name = "edge-reid",
    version,
    about = "Person attribute recognition and re-identification on CPU, from a camera, files or a pipe",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  edge-reid                                     # /dev/video0 if present, else the synthetic camera
  edge-reid --device /dev/video0 --gallery people.gallery --max-distance 0.8
  edge-reid --config /etc/edge-reid.toml        # every option of run in a file; flags win
  edge-reid enroll --name alice photos/alice/*.jpg
  edge-reid identify photos/unknown.jpg
  edge-reid embed --out embeddings.jsonl crops/
  edge-reid gallery list
  edge-reid eval --data market1501/ --junk
  ffmpeg -i video.mp4 -f rawvideo -pix_fmt rgb24 - | edge-reid --input - --size 768x576 --roi 300,100,120,240"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Stream frames from a camera, files, stdin or the synthetic camera and print one JSON event
    /// per observed person (the default command).
    Run(Box<RunArgs>),
    /// Add a person to the gallery from one or more images.
    Enroll(EnrollArgs),
    /// Match images against the gallery and print one JSON observation per image.
    Identify(IdentifyArgs),
    /// Write one JSON line per image: path, embedding, attributes and person score.
    Embed(EmbedArgs),
    /// List or remove gallery identities.
    Gallery(GalleryArgs),
    /// Check a config file for `run --config` without running.
    Config(ConfigArgs),
    /// Score the model on a Market-1501 layout folder (query/, bounding_box_test/, annotations):
    /// the paper's Table 1 (attributes) and Table 2 (re-ID), as `edge-reid-train eval` prints them.
    Eval(EvalArgs),
}

/// The model and gallery every command uses.
#[derive(Args, Clone)]
struct ModelArgs {
    /// The attribute + re-ID ONNX model (default: $EDGE_REID_MODEL, else models/edge-reid.onnx
    /// next to the working directory or the binary).
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    /// The gallery file (default: $EDGE_REID_GALLERY, else edge-reid.gallery).
    #[arg(long, global = true)]
    gallery: Option<PathBuf>,
    /// Crops per model run (1 to 256). 1 is the fastest per crop with tract 0.23, whose
    /// convolutions over a batch of several unfold their input eagerly (RESULTS.md).
    #[arg(long, default_value_t = 1, global = true,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    batch: u16,
    /// Threads for the models' matrix products (1 to 256) [default: the cores available].
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// A TOML file of options: each key a long option of `run` without its dashes (`device =
    /// "/dev/video0"`, `synthetic = true`, `roi = ["10,20,64,128"]`). Options given on the
    /// command line win.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// A V4L2 camera device.
    #[arg(long, conflicts_with_all = ["input", "synthetic"])]
    device: Option<PathBuf>,
    /// Image files or folders, or `-` for raw RGB frames on stdin (needs --size).
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Frame size WxH: of the raw frames on stdin (required there), the size to ask a camera for
    /// [default: 640x480], or the synthetic camera's [default: 640x360].
    #[arg(long, value_parser = commands::parse_size)]
    size: Option<FrameSize>,
    /// Use the synthetic camera (people rendered walking; no hardware needed).
    #[arg(long)]
    synthetic: bool,
    /// The synthetic camera's most people in view at once (its pool holds 6).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=6))]
    synthetic_people: u32,
    /// The synthetic camera's seed (its people, scene and walks).
    #[arg(long, default_value_t = 0)]
    synthetic_seed: u64,
    /// Camera frame rate to ask for.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// A fixed crop region x,y,w,h (repeatable), instead of finding people in the frame: one
    /// observation per region and frame (no tracking).
    #[arg(long, value_parser = commands::parse_roi, conflicts_with = "detector")]
    roi: Vec<edge_reid::preprocess::Region>,
    /// A person detector in the YOLOv8/YOLO11 ONNX export layout ([1, 4 + classes, N], class 0 =
    /// person) [default for cameras and stdin: motion; image files: the whole image; the
    /// synthetic camera: the people it drew].
    #[arg(long)]
    detector: Option<PathBuf>,
    /// The detector's person score threshold.
    #[arg(long, default_value_t = 0.25)]
    detector_conf: f32,
    /// Report every box of every frame as an observation instead of tracking people (streams
    /// are tracked by default; image files never are).
    #[arg(long)]
    no_track: bool,
    /// A tracked person's crop is recognised again after this many frames.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    embed_every: u32,
    /// Frames a tracked person may be out of sight before their track ends: a person who comes
    /// back within them keeps the id (found again by appearance). At 10 fps the default is 6 s.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    max_lost: u32,
    /// Give unknown tracked people anonymous names (anon-1, ...) for the rest of the run, so a
    /// person who leaves and comes back gets the same name (kept in memory, not in the gallery).
    #[arg(long, conflicts_with_all = ["no_track", "roi"])]
    auto_enroll: bool,
    /// Write each frame with its boxes, track ids, identities and attributes drawn on it to
    /// DIR/frame-NNNNNN.jpg.
    #[arg(long)]
    save_frames: Option<PathBuf>,
    /// The small person-vs-junk ONNX model run before the main model (default:
    /// $EDGE_REID_PRE_DETECTOR, else on the synthetic camera models/pre-detector.onnx: it learned
    /// rendered crops and rejects real people, so real frames get none unless one is given).
    #[arg(long)]
    pre_detector: Option<PathBuf>,
    /// Run without a pre-detector.
    #[arg(long, conflicts_with = "pre_detector")]
    no_pre_detector: bool,
    /// Crops the pre-detector scores below this are dropped.
    #[arg(long, default_value_t = 0.5, value_parser = commands::parse_probability)]
    junk_threshold: f32,
    /// Gallery matches farther than this are unknown [default: the model card's unknown
    /// distance, calibrated on validation; `inf` always names the nearest person].
    #[arg(long, value_parser = commands::parse_distance)]
    max_distance: Option<f32>,
    /// Append events to this file as JSON Lines (created if missing); stdout then shows them only
    /// if it is a terminal or --format says so.
    #[arg(long)]
    events: Option<PathBuf>,
    /// What stdout shows: readable lines on a terminal and JSON Lines otherwise (auto), or
    /// always one of them.
    #[arg(long, value_enum, default_value = "auto", conflicts_with = "quiet")]
    format: Format,
    /// Nothing on stdout (events still go to --events).
    #[arg(long, short)]
    quiet: bool,
    /// Seconds between two status lines (fps, ms per stage, people in view) of the readable
    /// output; 0 for none.
    #[arg(long, default_value_t = 5.0, value_parser = commands::parse_seconds)]
    status_every: f64,
    /// Write the confirmed tracks of every frame to FILE in the MOTChallenge format
    /// (frame,id,x,y,w,h,conf,-1,-1,-1; frames from 1), for scoring the tracker.
    #[arg(long, value_name = "FILE")]
    mot: Option<PathBuf>,
    /// On the synthetic camera: write where it drew each person to FILE as MOTChallenge ground
    /// truth (frame,id,x,y,w,h,1,1,1; the id is the person's identity).
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
    /// Stop after this many frames.
    #[arg(long)]
    frames: Option<u64>,
    /// Publish events, identities, availability and Home Assistant discovery to this MQTT broker:
    /// mqtt://[user:pass@]host[:port] or mqtts://... (TLS). A broker that is down or goes away
    /// never stops the run: messages wait in a bounded queue and the client reconnects.
    #[arg(long, value_name = "URL")]
    mqtt: Option<BrokerUrl>,
    /// PEM certificates that sign an mqtts:// broker's certificate [default: the system's].
    #[arg(long, value_name = "FILE", requires = "mqtt")]
    mqtt_ca: Option<PathBuf>,
    /// MQTT messages held while the broker is away; past this the oldest are dropped (counted).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    mqtt_queue: u32,
    /// This box's name in MQTT topics (edge-reid/NAME/...) and Home Assistant [default: the host
    /// name].
    #[arg(long, value_parser = commands::parse_box_name)]
    box_name: Option<String>,
    /// Share the gallery with the other boxes on the MQTT broker that run the same model:
    /// enrollments and removals here are published (embeddings, never images) as retained
    /// messages under edge-reid/gallery/MODEL/, theirs are merged into the gallery file (the
    /// last change of a person wins; the gallery file is created if there is none).
    #[arg(long, requires = "mqtt")]
    gallery_sync: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics and a health check (200 while frames
    /// arrive, else 503) at /healthz. 127.0.0.1:9464 keeps them on this box; another address
    /// shows them to the network.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Serve the live page, the gallery and the search, and their JSON API, at http://ADDR/
    /// (e.g. 127.0.0.1:8080). An address other than loopback needs --http-token.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// The token every --http request must carry (Authorization: Bearer TOKEN, or ?token=TOKEN
    /// once in a browser). Better in the config file than on the command line.
    #[arg(long, value_name = "TOKEN", requires = "http")]
    http_token: Option<String>,
    /// Keep a summary of every track (times, camera, identity, attributes; no image) in this
    /// SQLite file, searchable by attribute, identity, camera and time.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Delete stored tracks older than this (e.g. 30d, 12h) [default: keep them].
    #[arg(long, value_name = "DURATION", requires = "store", value_parser = commands::parse_retention)]
    retain: Option<std::time::Duration>,
    /// Store one JPEG crop of each track with it (off by default: people's pictures).
    #[arg(long, requires = "store")]
    snapshots: bool,
}

#[derive(Args)]
struct EnrollArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The person's name.
    #[arg(long)]
    name: String,
    /// Images of the person (each is one crop).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(Args)]
struct IdentifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Gallery matches farther than this are unknown [default: the model card's unknown
    /// distance, calibrated on validation; `inf` always names the nearest person].
    #[arg(long, value_parser = commands::parse_distance)]
    max_distance: Option<f32>,
    /// Images or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The JSON Lines file to write.
    #[arg(long)]
    out: PathBuf,
    /// Images or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The Market-1501 layout folder: query/ and bounding_box_test/, optionally
    /// market_attribute.mat or annotations_test.csv (Table 1) and bounding_box_train/ with its
    /// annotations (the most-frequent-class baseline).
    #[arg(long)]
    data: PathBuf,
    /// Also run the junk images (identity -1) of bounding_box_test/ and report the person-vs-junk
    /// accuracy over all images.
    #[arg(long)]
    junk: bool,
}

#[derive(Args)]
struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check every key and value of FILE as `run --config FILE` would, and the options together.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct GalleryArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(subcommand)]
    action: GalleryAction,
}

#[derive(Subcommand)]
enum GalleryAction {
    /// Names, embedding counts and when each was first enrolled (UTC; `unknown` for people enrolled
    /// before gallery files recorded it), tab-separated.
    List,
    /// Remove an identity.
    Remove {
        /// The name to remove.
        name: String,
    },
}

/// The `run` command's arguments, for checking a config file against.
fn run_command() -> clap::Command {
    Cli::command()
        .find_subcommand("run")
        .cloned()
        .expect("run is a subcommand")
}

/// The command line, with the options of `run --config FILE` added where the command line does
/// not set them.
fn parse() -> Result<Cli> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let matches = Cli::command().get_matches_from(&args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (run, given) = match (&cli.command, matches.subcommand()) {
        (None, _) => (&cli.run, &matches),
        (Some(Command::Run(a)), Some((_, m))) => (&**a, m),
        _ => return Ok(cli),
    };
    let Some(path) = &run.config else {
        return Ok(cli);
    };
    let run_command = run_command();
    let config = Config::load(path, &run_command)?;
    let merged = config.merge(args, &run_command, given);
    Cli::try_parse_from(merged).map_err(|e| anyhow!("with config {}: {e}", path.display()))
}

/// `edge-reid config check FILE`.
fn config(a: &ConfigArgs) -> Result<()> {
    let ConfigAction::Check { file } = &a.action;
    let config = Config::load(file, &run_command())?;
    println!("{}: ok ({} options)", file.display(), config.len());
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = parse().and_then(|cli| match cli.command {
        None => commands::run(&cli.run),
        Some(Command::Run(a)) => commands::run(&a),
        Some(Command::Enroll(a)) => commands::enroll(&a),
        Some(Command::Identify(a)) => commands::identify(&a),
        Some(Command::Embed(a)) => commands::embed(&a),
        Some(Command::Gallery(a)) => commands::gallery(&a),
        Some(Command::Config(a)) => config(&a),
        Some(Command::Eval(a)) => commands::eval(&a),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-reid: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
