//! A synthetic camera: people from a small pool of identities walking through a street scene,
//! rendered with the shared synthetic renderer ([`crate::dataset::synth`]), so the whole pipeline runs
//! without hardware, with the true box and identity of every person drawn.
//!
//! The scene is a pinhole camera 2.2 m above flat ground looking at the horizon row of the
//! background: a person `D` metres away stands with their feet `f * 2.2 / D` pixels below the
//! horizon and is `f * 1.7 * stature / D` pixels tall. People cross the view at walking pace on
//! slanted paths between 4 and 8 m away (turning back when they reach either distance), their
//! facing following their motion and their gait phase their distance walked; when one leaves, a new
//! person from the pool enters after a pause, so identities reappear.

use image::RgbImage;
use rand::Rng;

use super::{Frame, FrameSize, FrameSource, SourceError, TruthBox};
use crate::dataset::synth::{
    draw_background, draw_person, render_crop, Camera, PersonAppearance, View,
};
use crate::dataset::synth::{rng, SynthError, SynthRng, CAMERAS};

/// Camera height above the ground, metres.
const CAMERA_HEIGHT: f32 = 2.2;
/// An average adult's height, metres.
const PERSON_HEIGHT: f32 = 1.7;
/// Nearest and farthest walking distances, metres.
const NEAR: f32 = 4.0;
const FAR: f32 = 8.0;
/// Row of the nearest feet as a share of the frame height.
const NEAR_FEET: f32 = 0.96;
/// Metres walked per gait cycle (two steps).
const CYCLE: f32 = 1.5;
/// How far outside the view people enter and leave, metres (about a body width).
const MARGIN: f32 = 0.6;
/// Truth boxes are what a person detector reports: tight around the person (head to feet, a small
/// margin as shares of the person's height) and as wide as a walking person with swinging arms and
/// bags at full stride (width over height; vtest.avi's hand-drawn boxes: 0.36 at the median). The
/// crop cut from them gets Market's margin (`preprocess::Window::framing`).
const BOX_TOP: f32 = 0.02;
const BOX_BOTTOM: f32 = 0.02;
const BOX_ASPECT: f32 = 0.45;

/// The synthetic camera's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Frame size.
    pub size: FrameSize,
    /// Frames per second (sets the timestamps and how far people move per frame).
    pub fps: f64,
    /// Seed of everything: the pool of people, the scene and the walks.
    pub seed: u64,
    /// Size of the pool of identities (numbered 1 to this).
    pub identities: u32,
    /// Most people in view at once.
    pub people: u32,
    /// The Market-style camera preset (1 to [`CAMERAS`]) whose background, light and noise the
    /// scene uses.
    pub camera: u8,
}

impl Default for SyntheticConfig {
    /// 640x360 at 10 fps, seed 0, 3 people at a time from 6 identities, camera 1.
    fn default() -> Self {
        Self {
            size: FrameSize::new(640, 360),
            fps: 10.0,
            seed: 0,
            identities: 6,
            people: 3,
            camera: 1,
        }
    }
}

/// Someone walking through the scene.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Walker {
    /// Index into the pool.
    who: usize,
    /// Position on the ground: metres to the right of the view's centre line, metres away.
    x: f32,
    depth: f32,
    /// Velocity, metres per second (positive `vdepth` walks away).
    vx: f32,
    vdepth: f32,
    /// Gait phase in `[0, 1)`.
    phase: f32,
}

/// A place for one person: someone walking, or the frames left before someone enters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Walking(Walker),
    Waiting(u32),
}

/// A camera that renders people walking (see the module documentation). Endless and
/// deterministic: the same configuration gives the same frames.
pub struct SyntheticCamera {
    config: SyntheticConfig,
    pool: Vec<PersonAppearance>,
    camera: Camera,
    background: RgbImage,
    horizon: f32,
    /// Focal length in pixels.
    focal: f32,
    slots: Vec<Slot>,
    rng: SynthRng,
    index: u64,
}

impl SyntheticCamera {
    /// A camera rendering `config`'s scene; the first frame already shows people mid-walk.
    pub fn new(config: SyntheticConfig) -> Result<Self, SourceError> {
        let FrameSize { width, height } = config.size;
        if width == 0 || height == 0 {
            return Err(SynthError::EmptyImage { width, height }.into());
        }
        if config.size.rgb_bytes().is_none() {
            return Err(SourceError::TooLarge {
                name: "synthetic camera".into(),
                size: config.size,
            });
        }
        if !(config.fps.is_finite() && config.fps > 0.0) {
            return Err(SourceError::Synthetic(format!(
                "frame rate must be positive, got {}",
                config.fps
            )));
        }
        if config.identities == 0 {
            return Err(SourceError::Synthetic(
                "the pool needs at least one identity".into(),
            ));
        }
        let camera = Camera::market(config.camera)?;
        let pool = (1..=config.identities)
            .map(|id| PersonAppearance::new(config.seed, id))
            .collect();
        let mut background = RgbImage::new(width, height);
        // Texture scale: a person's height at mid distance for a mid-frame horizon (the horizon is
        // only known once drawn).
        let unit = height as f32 * 0.45;
        let horizon = draw_background(&mut background, camera.background, unit, config.seed);
        let focal = (height as f32 * NEAR_FEET - horizon).max(1.0) * NEAR / CAMERA_HEIGHT;
        let mut cam = Self {
            config,
            pool,
            camera,
            background,
            horizon,
            focal,
            slots: Vec::new(),
            rng: rng(&[config.seed, 0x5ce7e]),
            index: 0,
        };
        for _ in 0..config.people {
            let slot = match cam.spawn(true) {
                Some(w) => Slot::Walking(w),
                None => Slot::Waiting(cam.pause()),
            };
            cam.slots.push(slot);
        }
        Ok(cam)
    }

    /// The pool of people the camera shows (identities 1 to [`SyntheticConfig::identities`]), for
    /// enrolling them or checking predicted attributes.
    pub fn people(&self) -> &[PersonAppearance] {
        &self.pool
    }

    /// A Market-style 1:2 crop of `identity` as an enrolment picture: shot `shot` is seen by
    /// Market camera `shot % 6 + 1` (so consecutive shots come from all six cameras, with their own
    /// light and viewpoints), with its framing drawn from the seed and `shot`.
    pub fn enrolment_crop(
        &self,
        identity: u32,
        shot: u64,
        width: u32,
        height: u32,
    ) -> Result<RgbImage, SourceError> {
        let who = self
            .pool
            .iter()
            .find(|p| p.identity() == identity)
            .ok_or_else(|| {
                SourceError::Synthetic(format!(
                    "identity {identity} is not among the camera's people (1 to {})",
                    self.config.identities
                ))
            })?;
        let camera = Camera::market((shot % u64::from(CAMERAS)) as u8 + 1)?;
        let seed = mix(&[self.config.seed, u64::from(identity), shot, 0xe7]);
        Ok(render_crop(who, &camera, seed, width, height)?)
    }

    /// Half the visible width at `depth` metres, plus the entry margin, metres.
    fn half_width(&self, depth: f32) -> f32 {
        self.config.size.width as f32 * 0.5 * depth / self.focal + MARGIN
    }

    /// Frames to wait before someone new enters: up to two seconds.
    fn pause(&mut self) -> u32 {
        (self.rng.random_range(0.0..2.0) * self.config.fps) as u32
    }

    /// A new walker from the pool who is not already walking, entering from a side (or anywhere
    /// on the path when `anywhere`); `None` when everyone is walking.
    fn spawn(&mut self, anywhere: bool) -> Option<Walker> {
        let walking: Vec<usize> = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Walking(w) => Some(w.who),
                Slot::Waiting(_) => None,
            })
            .collect();
        let free: Vec<usize> = (0..self.pool.len())
            .filter(|i| !walking.contains(i))
            .collect();
        if free.is_empty() {
            return None;
        }
        let r = &mut self.rng;
        let who = free[r.random_range(0..free.len())];
        let depth = r.random_range(NEAR..FAR);
        let rightwards = r.random_bool(0.5);
        let speed = r.random_range(1.1..1.6);
        let slant = r.random_range(-35.0f32..35.0).to_radians();
        let sign = if rightwards { 1.0 } else { -1.0 };
        let (vx, vdepth) = (sign * speed * slant.cos(), speed * slant.sin());
        let spread = r.random_range(-1.0f32..1.0);
        let phase = r.random();
        let half = self.half_width(depth);
        let x = if anywhere {
            spread * (half - MARGIN)
        } else {
            -sign * half
        };
        Some(Walker {
            who,
            x,
            depth,
            vx,
            vdepth,
            phase,
        })
    }

    /// Moves everyone by one frame; people who left make way for new ones.
    fn step(&mut self) {
        let dt = (1.0 / self.config.fps) as f32;
        for i in 0..self.slots.len() {
            let slot = self.slots[i];
            self.slots[i] = match slot {
                Slot::Walking(mut w) => {
                    w.x += w.vx * dt;
                    w.depth += w.vdepth * dt;
                    if (w.depth < NEAR && w.vdepth < 0.0) || (w.depth > FAR && w.vdepth > 0.0) {
                        w.vdepth = -w.vdepth;
                    }
                    let speed = w.vx.hypot(w.vdepth);
                    w.phase = (w.phase + speed * dt / CYCLE).fract();
                    if w.x * w.vx.signum() > self.half_width(w.depth) {
                        Slot::Waiting(self.pause())
                    } else {
                        Slot::Walking(w)
                    }
                }
                Slot::Waiting(0) => match self.spawn(false) {
                    Some(w) => Slot::Walking(w),
                    None => Slot::Waiting(self.pause()),
                },
                Slot::Waiting(n) => Slot::Waiting(n - 1),
            };
        }
    }

    /// Where `w` is drawn, and the box around them when at least half of it is in the frame.
    fn place(&self, w: &Walker) -> (View, Option<TruthBox>) {
        let who = &self.pool[w.who];
        let FrameSize { width, height } = self.config.size;
        let scale = self.focal / w.depth;
        let feet = [
            width as f32 * 0.5 + scale * w.x,
            self.horizon + scale * CAMERA_HEIGHT,
        ];
        let tall = scale * PERSON_HEIGHT * who.stature();
        let view = View {
            // 0 faces the camera, 90 walks right, 180 walks away.
            yaw: w.vx.atan2(-w.vdepth).to_degrees().rem_euclid(360.0),
            height: tall,
            feet,
            phase: w.phase,
            stride: 1.0,
        };
        let top = feet[1] - tall * (1.0 + BOX_TOP);
        let bottom = feet[1] + tall * BOX_BOTTOM;
        let box_width = (bottom - top) * BOX_ASPECT;
        let left = feet[0] - box_width * 0.5;
        let clip = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
        let (x0, x1) = (clip(left, width), clip(left + box_width, width));
        let (y0, y1) = (clip(top, height), clip(bottom, height));
        let visible = (x1 - x0) as f32 >= box_width * 0.5 && y1 > y0;
        let truth = visible.then(|| TruthBox {
            identity: who.identity(),
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        });
        (view, truth)
    }
}

/// One seed from several numbers (the renderer's own mixing).
fn mix(parts: &[u64]) -> u64 {
    rng(parts).random()
}

impl FrameSource for SyntheticCamera {
    fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        if frame.image.dimensions() == self.background.dimensions() {
            frame.image.copy_from_slice(self.background.as_raw());
        } else {
            frame.image = self.background.clone();
        }
        let mut walkers: Vec<Walker> = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Walking(w) => Some(*w),
                Slot::Waiting(_) => None,
            })
            .collect();
        // Far people first, so nearer ones cover them.
        walkers.sort_by(|a, b| b.depth.total_cmp(&a.depth));
        frame.truth.clear();
        for w in &walkers {
            let (view, truth) = self.place(w);
            draw_person(&mut frame.image, &self.pool[w.who], &view);
            frame.truth.extend(truth);
        }
        self.camera
            .develop(&mut frame.image, mix(&[self.config.seed, self.index, 0xf4]));
        frame.index = self.index;
        frame.timestamp = std::time::Duration::from_secs_f64(self.index as f64 / self.config.fps);
        self.index += 1;
        self.step();
        Ok(true)
    }

    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "synthetic camera {} at {} fps (Market camera {}, up to {} people from {} identities, seed {})",
            c.size, c.fps, c.camera, c.people, c.identities, c.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            size: FrameSize::new(160, 90),
            fps: 5.0,
            seed: 3,
            identities: 4,
            people: 2,
            camera: 1,
        }
    }

    #[test]
    fn frames_are_deterministic_per_seed() {
        let frames = |config| {
            let mut cam = SyntheticCamera::new(config).unwrap();
            (0..3)
                .map(|_| cam.next_frame().unwrap().unwrap())
                .collect::<Vec<_>>()
        };
        let (a, b) = (frames(small()), frames(small()));
        assert_eq!(a, b);
        assert_eq!(a[2].index, 2);
        assert_eq!(a[2].timestamp, std::time::Duration::from_millis(400));
        assert_ne!(a[0].image, a[1].image, "people move and the noise changes");
        let other = frames(SyntheticConfig { seed: 4, ..small() });
        assert_ne!(a[0].image, other[0].image);
    }

    /// The bounding box (x0, y0, x1, y1, exclusive ends) of the pixels where `a` and `b` differ
    /// by more than `threshold` in some channel.
    fn changed_box(a: &RgbImage, b: &RgbImage, threshold: u8) -> Option<(u32, u32, u32, u32)> {
        let mut bounds: Option<(u32, u32, u32, u32)> = None;
        for (x, y, p) in a.enumerate_pixels() {
            let q = b.get_pixel(x, y);
            if (0..3).any(|c| p.0[c].abs_diff(q.0[c]) > threshold) {
                let (x0, y0, x1, y1) = bounds.unwrap_or((x, y, x + 1, y + 1));
                bounds = Some((x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)));
            }
        }
        bounds
    }

    #[test]
    fn truth_boxes_frame_the_people_drawn() {
        // One person at a time: everything that differs from the empty scene (developed with the
        // same noise) is that person, and must fill their box.
        let config = SyntheticConfig {
            people: 1,
            ..small()
        };
        let mut cam = SyntheticCamera::new(config).unwrap();
        let mut frame = Frame::default();
        let (mut seen, mut boxes) = (HashSet::new(), 0);
        for _ in 0..80 {
            assert!(cam.next_frame_into(&mut frame).unwrap());
            let mut empty = cam.background.clone();
            cam.camera
                .develop(&mut empty, mix(&[config.seed, frame.index, 0xf4]));
            let drawn = changed_box(&frame.image, &empty, 12);
            let [t] = frame.truth.as_slice() else {
                assert!(frame.truth.is_empty());
                continue;
            };
            let (x0, y0, x1, y1) = drawn.expect("a person in the truth is drawn");
            let (tx1, ty1) = (t.x + t.width, t.y + t.height);
            assert!(tx1 <= 160 && ty1 <= 90, "{t:?}");
            // Inside the box (give or take blur)...
            assert!(
                x0 + 2 >= t.x && y0 + 2 >= t.y && x1 <= tx1 + 2 && y1 <= ty1 + 2,
                "frame {}: drawn {:?} outside {t:?}",
                frame.index,
                (x0, y0, x1, y1)
            );
            // ... and filling its height (the box adds 4% margins) and a good part of its width.
            assert!(
                (y1 - y0) * 10 >= t.height * 9,
                "frame {}: drawn {:?} in {t:?}",
                frame.index,
                (x0, y0, x1, y1)
            );
            assert!(
                (x1 - x0) * 10 >= t.width * 5,
                "frame {}: drawn {:?} in {t:?}",
                frame.index,
                (x0, y0, x1, y1)
            );
            assert!((1..=config.identities).contains(&t.identity));
            seen.insert(t.identity);
            boxes += 1;
        }
        assert!(
            boxes > 40,
            "someone is in view most of the time: {boxes} of 80"
        );
        assert!(seen.len() >= 2, "people come and go: {seen:?}");
    }

    #[test]
    fn several_people_walk_at_once_and_nobody_twice() {
        let mut cam = SyntheticCamera::new(SyntheticConfig {
            people: 3,
            ..small()
        })
        .unwrap();
        let mut most = 0;
        for _ in 0..40 {
            let frame = cam.next_frame().unwrap().unwrap();
            let ids: HashSet<u32> = frame.truth.iter().map(|t| t.identity).collect();
            assert_eq!(ids.len(), frame.truth.len(), "{:?}", frame.truth);
            most = most.max(ids.len());
        }
        assert!(most >= 2, "at most {most} people at once");
    }

    #[test]
    fn enrolment_crops_show_the_pool_from_all_cameras() {
        let cam = SyntheticCamera::new(small()).unwrap();
        let ids: Vec<u32> = cam.people().iter().map(|p| p.identity()).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        let a = cam.enrolment_crop(2, 0, 32, 64).unwrap();
        assert_eq!(a.dimensions(), (32, 64));
        assert_eq!(a, cam.enrolment_crop(2, 0, 32, 64).unwrap());
        assert_ne!(a, cam.enrolment_crop(2, 1, 32, 64).unwrap());
        assert_ne!(a, cam.enrolment_crop(3, 0, 32, 64).unwrap());
        let err = cam.enrolment_crop(5, 0, 32, 64).unwrap_err();
        assert!(err.to_string().contains("identity 5"), "{err}");
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [
            SyntheticConfig {
                fps: 0.0,
                ..small()
            },
            SyntheticConfig {
                fps: f64::NAN,
                ..small()
            },
            SyntheticConfig {
                identities: 0,
                ..small()
            },
            SyntheticConfig {
                camera: 7,
                ..small()
            },
            SyntheticConfig {
                size: FrameSize::new(0, 90),
                ..small()
            },
            SyntheticConfig {
                size: FrameSize::new(1 << 20, 2),
                ..small()
            },
        ] {
            assert!(SyntheticCamera::new(bad).is_err(), "{bad:?}");
        }
        // More people than identities: the extra places wait, nobody appears twice.
        let crowded = SyntheticConfig {
            identities: 1,
            people: 3,
            ..small()
        };
        let mut cam = SyntheticCamera::new(crowded).unwrap();
        for _ in 0..20 {
            let frame = cam.next_frame().unwrap().unwrap();
            assert!(frame.truth.len() <= 1);
        }
    }
}
