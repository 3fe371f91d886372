//! Motion proposals for a fixed camera: background subtraction, morphology, connected components.
//!
//! The classic pipeline for people moving in front of a static camera (as in OpenCV's
//! `BackgroundSubtractor` family and countless CCTV systems), kept small enough for a 2-core box:
//!
//! 1. **Working image.** The frame is shrunk by block averaging ([`MotionConfig::downscale`]):
//!    a 768x576 frame becomes 192x144 at the default factor 4, which is both faster and less
//!    noisy than full resolution. Colour is kept, so blue jeans on grey pavement still differ.
//! 2. **Background model.** Each working pixel keeps a running mean colour and a running
//!    variance of its deviation (a single-Gaussian model, updated with exponential forgetting).
//!    During warm-up the rates are at least `1 / frames seen`, so the model starts as the plain
//!    average of the first frames. After that the update is *selective*: pixels judged
//!    background learn at [`MotionConfig::background_rate`], foreground pixels only at the much
//!    smaller [`MotionConfig::foreground_rate`], so a person standing still is absorbed only
//!    after a long while instead of fading out in a second.
//! 3. **Foreground mask.** A pixel is foreground when its largest channel deviation from the
//!    mean exceeds [`MotionConfig::threshold_sigmas`] standard deviations, and at least
//!    [`MotionConfig::min_difference`] grey levels (flat regions would otherwise flicker).
//! 4. **Morphology** ([`imageproc::morphology`]): an optional opening with a small square
//!    removes speckle noise (off by default: at the default scale a leg is two working pixels
//!    wide and the opening erases it; the size filter drops speckles anyway); a closing with a
//!    rectangle taller than wide joins a person's head, torso and legs (often split where
//!    clothes match the background) without gluing side-by-side people together.
//! 5. **Connected components** ([`imageproc::region_labelling`], 8-connected) give one box
//!    each. A box wider than one person is cut at its emptiest column when that column is
//!    nearly empty (people walking side by side; the vertical projection histogram of the W4
//!    system, Haritaoglu et al., 2000); one too thin for one person is cut at its emptiest row
//!    (a person just behind another). Then boxes of one person split in two (one above the
//!    other, overlapping horizontally, a small gap apart) are merged, and the boxes whose height
//!    and height/width ratio fit a person are kept.
//!
//! Each [`Proposal`]'s score is the share of foreground pixels (before morphology) in its box.
//! The model follows the frame size: a frame of another size starts a new model.
//!
//! Limits, as for any background subtraction: a person standing still through the warm-up is
//! background until they move; a person standing still for long (about
//! `1 / foreground_rate` frames) fades into it; a group too tightly packed for a clear
//! valley between them is one box (rejected when wider than [`MotionConfig::min_aspect`] allows).

use image::{GrayImage, ImageBuffer, Luma, RgbImage};
use imageproc::distance_transform::Norm;
use imageproc::morphology::{grayscale_close, open_mut, Mask};
use imageproc::region_labelling::{connected_components, Connectivity};

use super::Proposal;
use crate::preprocess::Region;

/// Settings of [`MotionDetector`]. The defaults are tuned on `vtest.avi` (768x576, 10 fps; see
/// `tests/fixtures/vtest/README.md`); sizes are fractions of the frame so they carry over to
/// other resolutions of a similar view.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    /// Working scale: the frame is shrunk by this factor on both axes (block average) before
    /// anything else. 1 keeps full resolution; 0 is taken as 1.
    pub downscale: u32,
    /// Rate at which a background pixel's mean and variance follow the scene (per frame;
    /// 0.02 at 10 fps forgets over about 5 s: light changes are followed, people are not).
    pub background_rate: f32,
    /// Rate for pixels currently judged foreground (much smaller: a person standing still
    /// stays foreground for roughly `1 / foreground_rate` frames).
    pub foreground_rate: f32,
    /// A pixel is foreground when its deviation exceeds this many standard deviations...
    pub threshold_sigmas: f32,
    /// ...and at least this many grey levels (0-255) in some channel.
    pub min_difference: f32,
    /// Radius (working pixels) of the square opening that removes isolated foreground pixels;
    /// 0 (the default) skips it. Useful at a finer working scale.
    pub open_radius: u8,
    /// Half width (working pixels) of the closing rectangle.
    pub close_half_width: u8,
    /// Half height (working pixels) of the closing rectangle (taller than wide: a person's
    /// parts are stacked).
    pub close_half_height: u8,
    /// Smallest box height kept, as a fraction of the frame height.
    pub min_height: f32,
    /// Largest box height kept, as a fraction of the frame height.
    pub max_height: f32,
    /// Smallest height/width ratio kept (below it: a group, a car, a shadow band).
    pub min_aspect: f32,
    /// Largest height/width ratio kept (above it: a pole-like sliver).
    pub max_aspect: f32,
    /// Parts with a height/width ratio below this may be several people side by side: they are
    /// cut at their emptiest column when it is nearly empty (see `split_valley`). Parts above
    /// `max_aspect` are cut at their emptiest row the same way.
    pub split_aspect: f32,
    /// A column (row) cuts a part when its foreground count is at most this share of the
    /// fullest column's (row's).
    pub split_valley: f32,
    /// Two boxes overlapping horizontally by at least this share of the narrower one's width,
    /// and vertically apart by at most [`MotionConfig::merge_gap`], are one person split in two.
    pub merge_overlap: f32,
    /// Largest vertical gap between two parts merged into one person, as a fraction of the
    /// frame height.
    pub merge_gap: f32,
    /// Frames used to build the background before any proposal is returned.
    pub warmup_frames: u32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            downscale: 4,
            background_rate: 0.02,
            foreground_rate: 0.002,
            threshold_sigmas: 3.0,
            min_difference: 18.0,
            open_radius: 0,
            close_half_width: 1,
            close_half_height: 2,
            min_height: 0.07,
            max_height: 0.5,
            min_aspect: 1.3,
            max_aspect: 5.0,
            split_aspect: 2.0,
            split_valley: 0.5,
            merge_overlap: 0.5,
            merge_gap: 0.05,
            warmup_frames: 20,
        }
    }
}

/// The per-pixel background of one frame size.
#[derive(Debug, Clone)]
struct Background {
    /// Frame size the model was built for.
    frame_width: u32,
    frame_height: u32,
    /// Working size (frame size / downscale).
    width: u32,
    height: u32,
    /// Running mean colour per working pixel.
    mean: Vec<[f32; 3]>,
    /// Running variance of the largest channel deviation per working pixel.
    variance: Vec<f32>,
    /// Frames folded into the model so far.
    frames: u32,
}

/// A background-subtraction person proposer for a fixed camera (method in the module doc).
#[derive(Debug, Clone)]
pub struct MotionDetector {
    cfg: MotionConfig,
    background: Option<Background>,
    /// The working image of the current frame (reused across frames).
    work: Vec<[f32; 3]>,
}

/// A connected foreground part in working pixels: `[x0, y0, x1, y1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Part {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl Part {
    /// A box holding nothing yet (see [`Part::include`]).
    const EMPTY: Part = Part {
        x0: u32::MAX,
        y0: u32::MAX,
        x1: 0,
        y1: 0,
    };

    /// Grows the box to hold pixel `(x, y)`.
    fn include(&mut self, x: u32, y: u32) {
        self.x0 = self.x0.min(x);
        self.y0 = self.y0.min(y);
        self.x1 = self.x1.max(x + 1);
        self.y1 = self.y1.max(y + 1);
    }

    fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    fn union(&self, other: &Part) -> Part {
        Part {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }
}

impl MotionDetector {
    /// A detector with no background yet: the first [`MotionConfig::warmup_frames`] frames
    /// build it and give no proposals.
    pub fn new(cfg: MotionConfig) -> Self {
        MotionDetector {
            cfg,
            background: None,
            work: Vec::new(),
        }
    }

    /// Folds `frame` into the background and returns the moving person-sized boxes in it
    /// (frame pixels, inside the frame), best score first. A frame of another size than the
    /// previous one restarts the background (and its warm-up).
    pub fn detect(&mut self, frame: &RgbImage) -> Vec<Proposal> {
        let scale = self.cfg.downscale.max(1);
        let (frame_width, frame_height) = frame.dimensions();
        let (width, height) = (frame_width / scale, frame_height / scale);
        if width == 0 || height == 0 {
            self.background = None;
            return Vec::new();
        }
        let fresh = !matches!(&self.background,
            Some(b) if b.frame_width == frame_width && b.frame_height == frame_height);
        if fresh {
            self.background = None;
        }
        shrink(frame, scale, width, height, &mut self.work);
        let background = self.background.get_or_insert_with(|| Background {
            frame_width,
            frame_height,
            width,
            height,
            mean: self.work.clone(),
            variance: vec![self.cfg.min_difference * self.cfg.min_difference; self.work.len()],
            frames: 0,
        });
        let raw = subtract(&self.cfg, background, &self.work);
        if background.frames <= self.cfg.warmup_frames {
            return Vec::new();
        }
        let parts = components(&self.cfg, &raw);
        let parts = merge_split_parts(&self.cfg, parts, height);
        let mut proposals: Vec<Proposal> = parts
            .iter()
            .filter(|p| looks_like_person(&self.cfg, p, height))
            .map(|p| Proposal {
                region: to_frame(p, scale, frame_width, frame_height),
                score: foreground_share(&raw, p),
            })
            .collect();
        proposals.sort_by(|a, b| b.score.total_cmp(&a.score));
        proposals
    }
}

/// Block-averages `frame` by `scale` into `out` (`width * height` colours, row-major).
fn shrink(frame: &RgbImage, scale: u32, width: u32, height: u32, out: &mut Vec<[f32; 3]>) {
    out.clear();
    out.resize((width * height) as usize, [0.0; 3]);
    let row_len = frame.width() as usize * 3;
    let raw = frame.as_raw();
    let s = scale as usize;
    let norm = 1.0 / (s * s) as f32;
    let mut sums = vec![[0u64; 3]; width as usize];
    for wy in 0..height as usize {
        let row_out = &mut out[wy * width as usize..(wy + 1) * width as usize];
        sums.fill([0; 3]);
        for fy in wy * s..(wy + 1) * s {
            let row = &raw[fy * row_len..fy * row_len + width as usize * s * 3];
            for (wx, block) in row.chunks_exact(s * 3).enumerate() {
                for px in block.chunks_exact(3) {
                    for c in 0..3 {
                        sums[wx][c] += u64::from(px[c]);
                    }
                }
            }
        }
        for (o, sum) in row_out.iter_mut().zip(&sums) {
            *o = [
                sum[0] as f32 * norm,
                sum[1] as f32 * norm,
                sum[2] as f32 * norm,
            ];
        }
    }
}

/// Classifies each working pixel against the background (255 = foreground), then updates the
/// background selectively.
fn subtract(cfg: &MotionConfig, bg: &mut Background, work: &[[f32; 3]]) -> GrayImage {
    bg.frames = bg.frames.saturating_add(1);
    // Warm-up: a plain running average of the frames seen so far.
    let floor = if bg.frames <= cfg.warmup_frames {
        1.0 / bg.frames as f32
    } else {
        0.0
    };
    let fg_rate = cfg.foreground_rate.max(floor);
    let bg_rate = cfg.background_rate.max(floor);
    let min_var = cfg.min_difference / cfg.threshold_sigmas.max(f32::EPSILON);
    let min_var = min_var * min_var;
    let k2 = cfg.threshold_sigmas * cfg.threshold_sigmas;
    let mut mask = GrayImage::new(bg.width, bg.height);
    for (((pixel, mean), var), m) in work
        .iter()
        .zip(bg.mean.iter_mut())
        .zip(bg.variance.iter_mut())
        .zip(mask.iter_mut())
    {
        let d = (0..3)
            .map(|c| (pixel[c] - mean[c]).abs())
            .fold(0.0f32, f32::max);
        let d2 = d * d;
        let foreground = d2 > k2 * var.max(min_var);
        let rate = if foreground { fg_rate } else { bg_rate };
        for c in 0..3 {
            mean[c] += rate * (pixel[c] - mean[c]);
        }
        *var += rate * (d2 - *var);
        *m = if foreground { 255 } else { 0 };
    }
    mask
}

/// Cleans the foreground mask and returns the bounding box of each connected part.
fn components(cfg: &MotionConfig, raw: &GrayImage) -> Vec<Part> {
    let mut mask = raw.clone();
    if cfg.open_radius > 0 {
        open_mut(&mut mask, Norm::LInf, cfg.open_radius);
    }
    let rect = GrayImage::from_pixel(
        2 * u32::from(cfg.close_half_width) + 1,
        2 * u32::from(cfg.close_half_height) + 1,
        Luma([255]),
    );
    let mask = grayscale_close(
        &mask,
        &Mask::from_image(&rect, cfg.close_half_width, cfg.close_half_height),
    );
    let labels = connected_components(&mask, Connectivity::Eight, Luma([0u8]));
    let mut boxes: Vec<Part> = Vec::new();
    for (x, y, label) in labels.enumerate_pixels() {
        let Some(index) = (label[0] as usize).checked_sub(1) else {
            continue;
        };
        if index >= boxes.len() {
            boxes.resize(index + 1, Part::EMPTY);
        }
        boxes[index].include(x, y);
    }
    let mut parts = Vec::with_capacity(boxes.len());
    for (index, part) in boxes.into_iter().enumerate() {
        let component = Component {
            labels: &labels,
            raw,
            label: index as u32 + 1,
        };
        component.split(cfg, part, &mut parts);
    }
    parts
}

/// One connected component of the cleaned mask, with the raw mask it came from.
struct Component<'a> {
    labels: &'a ImageBuffer<Luma<u32>, Vec<u32>>,
    raw: &'a GrayImage,
    label: u32,
}

impl Component<'_> {
    /// Pushes `part` (a box of this component) to `out`, first cut in two at its emptiest
    /// column while it is wider than one person (people walking side by side: the vertical
    /// projection histogram of the W4 system, Haritaoglu et al. 2000), or at its emptiest row
    /// while it is too thin for one (a person just behind another), as long as that column or
    /// row holds at most [`MotionConfig::split_valley`] of the fullest one's foreground.
    fn split(&self, cfg: &MotionConfig, part: Part, out: &mut Vec<Part>) {
        let (w, h) = (part.width() as f32, part.height() as f32);
        let by_columns = if h < cfg.split_aspect * w {
            true
        } else if h > cfg.max_aspect * w {
            false
        } else {
            out.push(part);
            return;
        };
        let len = if by_columns {
            part.width()
        } else {
            part.height()
        };
        // Raw foreground pixels of this component per column (or row).
        let counts: Vec<u32> = (0..len)
            .map(|i| {
                let line: Vec<(u32, u32)> = if by_columns {
                    (part.y0..part.y1).map(|y| (part.x0 + i, y)).collect()
                } else {
                    (part.x0..part.x1).map(|x| (x, part.y0 + i)).collect()
                };
                line.into_iter()
                    .filter(|&(x, y)| {
                        self.labels.get_pixel(x, y)[0] == self.label
                            && self.raw.get_pixel(x, y)[0] != 0
                    })
                    .count() as u32
            })
            .collect();
        let peak = counts.iter().copied().max().unwrap_or(0);
        // The valley is looked for in the middle half, so each side keeps a body's worth.
        let valley = (len / 4..len - len / 4).min_by_key(|&c| counts[c as usize]);
        match valley {
            Some(c) if len >= 4 && counts[c as usize] as f32 <= cfg.split_valley * peak as f32 => {
                let sides = if by_columns {
                    [
                        (part.x0, part.x0 + c, part.y0, part.y1),
                        (part.x0 + c + 1, part.x1, part.y0, part.y1),
                    ]
                } else {
                    [
                        (part.x0, part.x1, part.y0, part.y0 + c),
                        (part.x0, part.x1, part.y0 + c + 1, part.y1),
                    ]
                };
                for (x0, x1, y0, y1) in sides {
                    if let Some(side) = self.extent(x0, x1, y0, y1) {
                        self.split(cfg, side, out);
                    }
                }
            }
            _ => out.push(part),
        }
    }

    /// The box of this component's pixels within columns `x0..x1` and rows `y0..y1`.
    fn extent(&self, x0: u32, x1: u32, y0: u32, y1: u32) -> Option<Part> {
        let mut part = Part::EMPTY;
        for y in y0..y1 {
            for x in x0..x1 {
                if self.labels.get_pixel(x, y)[0] == self.label {
                    part.include(x, y);
                }
            }
        }
        (part.x1 > part.x0).then_some(part)
    }
}

/// Merges parts stacked one above the other (overlapping horizontally, a small vertical gap
/// apart) until no pair qualifies: a person whose middle matched the background.
fn merge_split_parts(cfg: &MotionConfig, mut parts: Vec<Part>, height: u32) -> Vec<Part> {
    let max_gap = (cfg.merge_gap * height as f32).round() as u32;
    let max_height = (cfg.max_height * height as f32).round() as u32;
    let stacked = |a: &Part, b: &Part| {
        let overlap = a.x1.min(b.x1).saturating_sub(a.x0.max(b.x0));
        let narrower = a.width().min(b.width());
        let gap = b.y0.saturating_sub(a.y1).max(a.y0.saturating_sub(b.y1));
        let union = a.union(b);
        // Not when together they are too tall or too thin for one person (one behind another).
        overlap as f32 >= cfg.merge_overlap * narrower as f32
            && gap <= max_gap
            && union.height() <= max_height
            && union.height() as f32 <= cfg.max_aspect * union.width() as f32
    };
    'again: loop {
        for i in 0..parts.len() {
            for j in i + 1..parts.len() {
                if stacked(&parts[i], &parts[j]) {
                    let other = parts.swap_remove(j);
                    parts[i] = parts[i].union(&other);
                    continue 'again;
                }
            }
        }
        return parts;
    }
}

/// Whether a part has a person's size and shape.
fn looks_like_person(cfg: &MotionConfig, p: &Part, height: u32) -> bool {
    let h = p.height() as f32;
    let aspect = h / p.width() as f32;
    h >= cfg.min_height * height as f32
        && h <= cfg.max_height * height as f32
        && aspect >= cfg.min_aspect
        && aspect <= cfg.max_aspect
}

/// Share of foreground pixels of `raw` inside `p`.
fn foreground_share(raw: &GrayImage, p: &Part) -> f32 {
    let mut count = 0u32;
    for y in p.y0..p.y1 {
        for x in p.x0..p.x1 {
            count += u32::from(raw.get_pixel(x, y)[0] != 0);
        }
    }
    count as f32 / (p.width() * p.height()) as f32
}

/// A working-pixel part as a frame region, clipped to the frame.
fn to_frame(p: &Part, scale: u32, frame_width: u32, frame_height: u32) -> Region {
    let x = (p.x0 * scale).min(frame_width);
    let y = (p.y0 * scale).min(frame_height);
    Region {
        x,
        y,
        width: (p.x1 * scale).min(frame_width) - x,
        height: (p.y1 * scale).min(frame_height) - y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::iou;

    /// A textured static scene with a little per-frame noise (deterministic per `seed`).
    fn scene(width: u32, height: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed) % 5;
            let base = 90 + (x * 7 + y * 13) % 60 + noise;
            image::Rgb([base as u8, (base + 10) as u8, (base - 20) as u8])
        })
    }

    /// A 16x40 "person" whose left edge is at `x`, top at 40.
    fn person_at(x: u32) -> Region {
        Region {
            x,
            y: 40,
            width: 16,
            height: 40,
        }
    }

    /// Paints `region` of `frame` in a dark colour.
    fn paint(frame: &mut RgbImage, region: Region) {
        for py in region.y..region.y + region.height {
            for px in region.x..region.x + region.width {
                frame.put_pixel(px, py, image::Rgb([30, 30, 60]));
            }
        }
    }

    /// `scene` with a dark person whose left edge is at `x`.
    fn with_person(width: u32, height: u32, seed: u32, x: u32) -> (RgbImage, Region) {
        let mut frame = scene(width, height, seed);
        let person = person_at(x);
        paint(&mut frame, person);
        (frame, person)
    }

    /// A detector past its warm-up on an empty 160x120 scene.
    fn warm(cfg: MotionConfig) -> MotionDetector {
        let warmup = cfg.warmup_frames;
        let mut detector = MotionDetector::new(cfg);
        for seed in 0..warmup {
            assert_eq!(detector.detect(&scene(160, 120, seed)), []);
        }
        detector
    }

    #[test]
    fn a_static_scene_gives_nothing() {
        let mut detector = warm(MotionConfig::default());
        for seed in 0..20 {
            assert_eq!(detector.detect(&scene(160, 120, 100 + seed)), []);
        }
    }

    #[test]
    fn a_moving_person_gives_one_box_around_it_once_warm() {
        let cfg = MotionConfig::default();
        let warmup = cfg.warmup_frames;
        let mut detector = MotionDetector::new(cfg);
        for seed in 0..warmup {
            // Motion during warm-up is learned, never proposed.
            let (frame, _) = with_person(160, 120, seed, 4 * seed);
            assert_eq!(detector.detect(&frame), []);
        }
        // The person walks back across the scene after its first pass has been averaged in.
        for step in 0..10 {
            let (frame, person) = with_person(160, 120, warmup + step, 130 - 4 * step);
            let proposals = detector.detect(&frame);
            assert_eq!(proposals.len(), 1, "step {step}: {proposals:?}");
            let p = proposals[0];
            assert!(iou(&p.region, &person) >= 0.6, "step {step}: {p:?}");
            assert!(p.score > 0.5 && p.score <= 1.0, "step {step}: {p:?}");
        }
    }

    #[test]
    fn a_frame_of_another_size_restarts_the_model() {
        let cfg = MotionConfig::default();
        let warmup = cfg.warmup_frames;
        let mut detector = MotionDetector::new(cfg);
        for seed in 0..=warmup {
            detector.detect(&scene(160, 120, seed));
        }
        // A new size: warm-up again (no proposals even with a person), then detection.
        for step in 0..warmup {
            let (frame, _) = with_person(200, 100, step, 10 + 2 * step);
            assert_eq!(detector.detect(&frame), [], "step {step}");
        }
        let (frame, person) = with_person(200, 100, 99, 150);
        let proposals = detector.detect(&frame);
        assert_eq!(proposals.len(), 1, "{proposals:?}");
        assert!(iou(&proposals[0].region, &person) >= 0.6);
        // A frame smaller than one working pixel gives nothing rather than a panic.
        assert_eq!(detector.detect(&RgbImage::new(3, 3)), []);
    }

    #[test]
    fn people_side_by_side_are_cut_apart() {
        // Two people one working pixel apart: the closing joins them into one blob, too wide
        // for one person; the empty column between them cuts it.
        let mut detector = warm(MotionConfig::default());
        for step in 0..5 {
            let mut frame = scene(160, 120, 100 + step);
            let (left, right) = (person_at(40 + 4 * step), person_at(60 + 4 * step));
            paint(&mut frame, left);
            paint(&mut frame, right);
            let mut proposals = detector.detect(&frame);
            assert_eq!(proposals.len(), 2, "step {step}: {proposals:?}");
            proposals.sort_by_key(|p| p.region.x);
            assert!(iou(&proposals[0].region, &left) >= 0.6, "{proposals:?}");
            assert!(iou(&proposals[1].region, &right) >= 0.6, "{proposals:?}");
        }
    }

    #[test]
    fn a_person_split_by_a_background_band_is_merged() {
        // Without vertical closing, a band of background colour (12 rows: 3 working rows)
        // across the person leaves two parts, one above the other: merged into one box.
        let cfg = MotionConfig {
            close_half_height: 0,
            merge_gap: 0.1,
            ..MotionConfig::default()
        };
        let mut detector = warm(cfg);
        for step in 0..5 {
            let mut frame = scene(160, 120, 100 + step);
            let person = person_at(40 + 4 * step);
            let top = Region {
                height: 20,
                ..person
            };
            let legs = Region {
                y: person.y + 32,
                height: 8,
                ..person
            };
            paint(&mut frame, top);
            paint(&mut frame, legs);
            let proposals = detector.detect(&frame);
            assert_eq!(proposals.len(), 1, "step {step}: {proposals:?}");
            assert!(iou(&proposals[0].region, &person) >= 0.6, "{proposals:?}");
        }
    }
}
