//! The properties the fuzz targets check (`fuzz/`, built by `cargo fuzz` with `--cfg fuzzing`):
//! one function per target, fed arbitrary bytes. Each turns the bytes into one hostile input of
//! a parser or a stateful part, and panics when the part breaks its contract (a panic, an error
//! that is not typed, an output that disagrees with what was asked); memory is bounded by the
//! fuzzer's malloc limit. The tests below replay every committed seed and every crash found so
//! far (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) through the same functions on the
//! stable toolchain, so a known crash that comes back fails `cargo test`.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Write};
use std::path::Path;

use image::{Rgb, RgbImage};

use crate::card::ModelCard;
use crate::dataset::market::{mat::MatFile, AttributeTable};
use crate::detect::{clip, iou, yolo};
use crate::distance::{parse_threshold, DistanceMetric};
use crate::gallery::file_format;
use crate::model::Model;
use crate::preprocess::{Framing, Preprocessor, Region};
use crate::source::{yuyv_to_rgb, Frame, FrameSize, FrameSource, MjpegDecoder, RawFrames};
use crate::track::{Appearance, Change, TrackChange, TrackError, Tracker, TrackerConfig};

/// A target's property, fed one input.
pub type Target = fn(&[u8]);

/// The targets, as `fuzz/fuzz_targets/<name>.rs` names them.
pub const TARGETS: [(&str, Target); 13] = [
    ("gallery_file", gallery_file),
    ("mat_file", mat_file),
    ("annotations_csv", annotations_csv),
    ("annotations_mat", annotations_mat),
    ("model_card", model_card),
    ("mjpeg_frame", mjpeg_frame),
    ("yuyv_frame", yuyv_frame),
    ("raw_frames", raw_frames),
    ("cli_values", cli_values),
    ("onnx_model", onnx_model),
    ("yolo_output", yolo_output),
    ("geometry", geometry),
    ("tracker", tracker),
];

/// Reads fixed-size values off the front of the input, zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    /// Any f32 bit pattern: NaN, infinities and subnormals included.
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.bytes())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// A file holding `bytes`, for the parsers that read a path.
fn file(bytes: &[u8], suffix: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("a temporary file");
    file.write_all(bytes).expect("writing a temporary file");
    file
}

/// Gallery file decoding; on success, encoding the result gives the same bytes (a version 2 file
/// is written as version 3, so that is checked by decoding again). The first byte chooses whether
/// the header's length and both CRCs are made right first, so the fuzzer reaches the body.
pub fn gallery_file(data: &[u8]) {
    let Some((&fix, data)) = data.split_first() else {
        return;
    };
    let mut bytes = data.to_vec();
    if fix & 1 == 1 && bytes.len() >= 28 {
        let len = bytes.len() as u64;
        bytes[12..20].copy_from_slice(&len.to_le_bytes());
        let header = crc32fast::hash(&bytes[..20]);
        bytes[20..24].copy_from_slice(&header.to_le_bytes());
        let end = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
    }
    let path = Path::new("fuzz.gallery");
    let Ok(decoded) = file_format::decode(path, &bytes) else {
        return;
    };
    let encoded = file_format::encode(&decoded.space, &decoded.identities, &decoded.embeddings);
    if bytes[8..12] == file_format::VERSION.to_le_bytes() {
        assert!(encoded.bytes == bytes, "re-encoding changed the file");
        assert_eq!(encoded.stamp, decoded.stamp);
        assert_eq!(encoded.row_offsets, decoded.row_offsets);
    } else {
        let again = file_format::decode(path, &encoded.bytes).expect("an encoded gallery decodes");
        assert_eq!(again.identities, decoded.identities);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&again.embeddings), bits(&decoded.embeddings));
    }
}

/// MATLAB 5 `.mat` parsing.
pub fn mat_file(data: &[u8]) {
    let _ = MatFile::from_bytes(data, Path::new("fuzz.mat"));
}

/// The attribute CSV reader.
pub fn annotations_csv(data: &[u8]) {
    let csv = file(data, ".csv");
    let _ = AttributeTable::from_csv(csv.path());
}

/// The `market_attribute.mat` reader.
pub fn annotations_mat(data: &[u8]) {
    let mat = file(data, ".mat");
    let _ = AttributeTable::from_mat(mat.path());
}

/// Model card JSON: a card that parses passes its checks and survives a round trip.
pub fn model_card(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(card) = ModelCard::from_json(json) else {
        return;
    };
    card.check().expect("a parsed card passes its checks");
    let again = ModelCard::from_json(&card.to_json()).expect("a written card parses");
    assert_eq!(again, card);
}

/// A distinctive picture standing for what a frame buffer held before a conversion.
fn before() -> RgbImage {
    RgbImage::from_pixel(3, 2, Rgb([7, 11, 13]))
}

/// MJPEG frame decoding at a negotiated size (first four bytes): on success the output has that
/// size, on error it is untouched.
pub fn mjpeg_frame(data: &[u8]) {
    let mut input = Input(data);
    let (width, height) = (u32::from(input.u16()), u32::from(input.u16()));
    let mut out = before();
    match MjpegDecoder::new().decode(input.rest(), width, height, &mut out) {
        Ok(()) => assert_eq!(out.dimensions(), (width, height)),
        Err(_) => assert!(out == before(), "a failed decode changed the output"),
    }
}

/// YUYV conversion at a size and stride from the first six bytes, as [`mjpeg_frame`].
pub fn yuyv_frame(data: &[u8]) {
    let mut input = Input(data);
    let (width, height) = (u32::from(input.u16()), u32::from(input.u16()));
    let stride = usize::from(input.u16());
    let mut out = before();
    match yuyv_to_rgb(input.rest(), width, height, stride, &mut out) {
        Ok(()) => assert_eq!(out.dimensions(), (width, height)),
        Err(_) => assert!(out == before(), "a failed conversion changed the output"),
    }
}

/// Raw RGB framing of a stream at a size from the first two bytes: whole frames come out at that
/// size, one short frame is an error at the end, nothing after it.
pub fn raw_frames(data: &[u8]) {
    let mut input = Input(data);
    let size = FrameSize::new(u32::from(input.u8()), u32::from(input.u8()));
    let stream = input.rest();
    let Ok(mut frames) = RawFrames::new(Cursor::new(stream), size, "fuzz") else {
        assert_eq!(size.width * size.height, 0, "a small size was refused");
        return;
    };
    let bytes = size.rgb_bytes().expect("an accepted size has a byte count");
    let mut frame = Frame::default();
    let mut whole = 0;
    loop {
        match frames.next_frame_into(&mut frame) {
            Ok(true) => {
                assert_eq!(frame.image.dimensions(), (size.width, size.height));
                assert_eq!(frame.index, whole as u64);
                whole += 1;
            }
            Ok(false) => {
                assert_eq!(stream.len(), whole * bytes, "the stream ended early");
                break;
            }
            Err(_) => {
                assert_eq!(
                    stream.len() / bytes,
                    whole,
                    "an error before the last frame"
                );
                assert_ne!(stream.len() % bytes, 0, "an error on a whole stream");
                assert!(!matches!(frames.next_frame_into(&mut frame), Ok(true)));
                break;
            }
        }
    }
}

/// The command line's value parsers (`--size`, `--roi`, `--max-distance`) on arbitrary text:
/// accepted values are in range and, where they print, print back to themselves.
pub fn cli_values(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(size) = text.parse::<FrameSize>() {
        assert!(
            size.rgb_bytes().is_some_and(|b| b > 0),
            "{size} is unusable"
        );
        assert_eq!(size.to_string().parse::<FrameSize>().ok(), Some(size));
    }
    if let Ok(roi) = text.parse::<Region>() {
        assert!(roi.width > 0 && roi.height > 0);
        let printed = format!("{},{},{},{}", roi.x, roi.y, roi.width, roi.height);
        assert_eq!(printed.parse::<Region>().ok(), Some(roi));
    }
    if let Ok(distance) = parse_threshold(text) {
        assert!(distance > 0.0, "{text:?} gave {distance}");
    }
}

/// Loading an ONNX file with its model card: a typed error or a model whose card passes.
pub fn onnx_model(data: &[u8]) {
    let onnx = file(data, ".onnx");
    if let Ok(model) = Model::load(onnx.path(), 1) {
        model.card().check().expect("a loaded model's card passes");
    }
}

/// YOLO output decoding and NMS on a table of arbitrary floats (NaN and infinities included):
/// boxes inside the frame, scores at least the threshold, best first, no two overlapping more
/// than NMS allows.
pub fn yolo_output(data: &[u8]) {
    let mut input = Input(data);
    let rows = 5 + usize::from(input.u8() % 4);
    let (frame_width, frame_height) = (1 + u32::from(input.u16()), 1 + u32::from(input.u16()));
    let (input_width, input_height) = (1 + usize::from(input.u8()), 1 + usize::from(input.u8()));
    let cfg = yolo::YoloConfig {
        conf: f32::from(input.u8()) / 255.0,
        iou: f32::from(input.u8()) / 255.0,
        input_size: 640,
    };
    let mut table = Vec::new();
    while !input.is_empty() {
        table.push(input.f32());
    }
    let candidates = table.len() / rows;
    table.truncate(rows * candidates);
    let fit = yolo::Letterbox::fit(frame_width, frame_height, input_height, input_width);
    let people = yolo::decode(&table, rows, candidates, &cfg, &fit);
    assert!(people.len() <= candidates);
    for (i, p) in people.iter().enumerate() {
        assert!(p.score >= cfg.conf, "score {} under the threshold", p.score);
        assert_eq!(clip(p.region, frame_width, frame_height), Some(p.region));
        for q in &people[..i] {
            assert!(q.score >= p.score, "not best first");
            assert!(
                iou(&q.region, &p.region) <= cfg.iou,
                "overlapping boxes kept"
            );
        }
    }
}

fn region(input: &mut Input) -> Region {
    Region {
        x: input.u32(),
        y: input.u32(),
        width: input.u32(),
        height: input.u32(),
    }
}

/// Box geometry with any `u32` boxes: IoU in `[0, 1]` and symmetric, a box overlaps itself fully,
/// clipping stays inside the frame, and a clipped box crops (small frames only, to keep it fast).
pub fn geometry(data: &[u8]) {
    let mut input = Input(data);
    let (a, b) = (region(&mut input), region(&mut input));
    let (width, height) = (input.u32(), input.u32());
    let overlap = iou(&a, &b);
    assert!((0.0..=1.0).contains(&overlap), "iou {overlap}");
    assert_eq!(overlap.to_bits(), iou(&b, &a).to_bits());
    if a.width > 0 && a.height > 0 {
        assert_eq!(iou(&a, &a), 1.0);
    }
    let Some(clipped) = clip(a, width, height) else {
        return;
    };
    assert!(clipped.width > 0 && clipped.height > 0);
    assert!(u64::from(clipped.x) + u64::from(clipped.width) <= u64::from(width));
    assert!(u64::from(clipped.y) + u64::from(clipped.height) <= u64::from(height));
    assert_eq!(clip(clipped, width, height), Some(clipped));
    if width <= 64 && height <= 64 {
        let image = RgbImage::from_pixel(width, height, Rgb([90, 160, 220]));
        let pre = Preprocessor::new(16, 8, [0.5; 3], [0.25; 3]).expect("a valid preprocessor");
        let mut out = vec![f32::NAN; pre.slot_len()];
        for framing in [Framing::PersonBox, Framing::Picture] {
            pre.crop_into(&image, clipped, framing, &mut out)
                .expect("a clipped box crops");
            assert!(out.iter().all(|v| v.is_finite()));
        }
    }
}

/// A tracker fed a sequence of frames of boxes and appearances from the input (some with NaN, or
/// of another length, which the tracker must refuse and leave no trace of): track ids are never
/// reused, every track reported new ends exactly once (at the latest when the stream ends), and
/// none changes after its end.
pub fn tracker(data: &[u8]) {
    let mut input = Input(data);
    let cfg = TrackerConfig {
        min_iou: f32::from(input.u8()) / 255.0,
        metric: if input.u8() & 1 == 0 {
            DistanceMetric::Euclidean
        } else {
            DistanceMetric::Cosine
        },
        max_embedding_distance: f32::from(input.u8()) / 64.0,
        confirm_hits: u32::from(input.u8() % 4),
        max_misses: u32::from(input.u8() % 8),
        max_lost: u32::from(input.u8() % 16),
        embed_every: u32::from(input.u8() % 4),
    };
    let mut tracker = Tracker::new(cfg);
    // For each track reported new: whether it has ended.
    let mut reported: HashMap<u64, bool> = HashMap::new();
    let mut frame = 0u64;
    let apply = |changes: Vec<TrackChange>, reported: &mut HashMap<u64, bool>| {
        for c in changes {
            match c.change {
                Change::New => {
                    assert!(reported.insert(c.id, false).is_none(), "id {} reused", c.id);
                }
                Change::Update => assert_eq!(reported.get(&c.id), Some(&false)),
                Change::End => {
                    let ended = reported.get_mut(&c.id).expect("an end without a new");
                    assert!(!*ended, "track {} ended twice", c.id);
                    *ended = true;
                }
            }
        }
    };
    while !input.is_empty() {
        frame += 1 + u64::from(input.u8() % 4);
        let boxes: Vec<Region> = (0..input.u8() % 6)
            .map(|_| Region {
                x: u32::from(input.u8()),
                y: u32::from(input.u8()),
                width: u32::from(input.u8()),
                height: u32::from(input.u8()),
            })
            .collect();
        let values: Vec<f32> = (0..4).map(|_| f32::from(input.u8() as i8) / 32.0).collect();
        let poison = input.u8();
        let before: Vec<u64> = tracker.tracks().map(|t| t.id()).collect();
        let result = tracker.step(frame, &boxes, |asked: &[usize]| {
            let appearance = |i: usize| {
                let mut embedding: Vec<f32> = values.iter().map(|v| v + i as f32).collect();
                match poison {
                    1 => embedding[0] = f32::NAN,
                    2 => embedding.push(0.0),
                    _ => {}
                }
                Appearance {
                    embedding,
                    probabilities: vec![0.5, 0.5],
                    person_score: 1.0,
                }
            };
            Ok::<_, TrackError>(asked.iter().map(|&i| appearance(i)).collect())
        });
        match result {
            Ok(changes) => apply(changes, &mut reported),
            Err(_) => {
                let after: Vec<u64> = tracker.tracks().map(|t| t.id()).collect();
                assert_eq!(after, before, "a refused frame changed the tracks");
            }
        }
    }
    apply(tracker.finish(), &mut reported);
    let open: HashSet<_> = reported.iter().filter(|(_, ended)| !**ended).collect();
    assert!(open.is_empty(), "tracks never ended: {open:?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn inputs(folder: &str, target: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(folder)
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries.map(|e| e.expect("a corpus entry").path()).collect()
    }

    /// Every seed and every crash found so far passes through its target without a panic.
    #[test]
    fn every_seed_and_every_found_crash_passes_its_target() {
        for (target, check) in TARGETS {
            let seeds = inputs("seeds", target);
            assert!(!seeds.is_empty(), "fuzz/seeds/{target} is empty");
            for path in seeds.iter().chain(&inputs("regressions", target)) {
                let bytes = std::fs::read(path).expect("a corpus file");
                let outcome = std::panic::catch_unwind(|| check(&bytes));
                assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
            }
        }
    }
}
