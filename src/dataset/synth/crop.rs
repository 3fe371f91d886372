//! Market-style detection crops: a person roughly centred with detector-like jitter
//! ([`render_crop`]), badly framed or low-quality people (distractors, [`render_distractor`]) and
//! boxes that hold no usable person (junk, [`render_junk`]).
//!
//! Each crop is drawn at the camera's native resolution (the detector's box size), developed with
//! the camera's light, blur and noise, then resized to the requested size like a real crop.

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::Rng;

use super::scene::{draw_prop, Prop};
use super::{
    draw_background, draw_person, rng, Camera, PersonAppearance, SynthError, SynthRng, View,
};

/// How the detector framed the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// A good detection: whole person, small jitter.
    Good,
    /// A poor detection of a real person: partial, off-centre or tiny.
    Poor,
}

fn check_size(width: u32, height: u32) -> Result<(), SynthError> {
    if width == 0 || height == 0 {
        return Err(SynthError::EmptyImage { width, height });
    }
    Ok(())
}

/// A native canvas for a crop of aspect `width:height` whose person would be `person` pixels tall
/// filling `fill` of the height, with the camera's background drawn on it.
fn canvas(
    camera: &Camera,
    person: f32,
    fill: f32,
    width: u32,
    height: u32,
    r: &mut SynthRng,
) -> RgbImage {
    let h = (person / fill).round().max(8.0);
    let w = (h * width as f32 / height as f32).round().max(4.0);
    let mut img = RgbImage::new(w as u32, h as u32);
    draw_background(&mut img, camera.background, person, r.random());
    img
}

/// Someone who is not in the dataset (passers-by, occluders, people in junk boxes).
fn stranger(r: &mut SynthRng) -> PersonAppearance {
    PersonAppearance::new(r.random(), r.random())
}

fn walking_view(camera: &Camera, height: f32, feet: [f32; 2], r: &mut SynthRng) -> View {
    View {
        yaw: camera.viewpoint(r).yaw() + r.random_range(-25.0..25.0),
        height,
        feet,
        phase: r.random(),
        stride: if r.random_bool(0.1) { 0.0 } else { 1.0 },
    }
}

/// Something partly covering the person: a pole, a bicycle, a bench, a plant, a car or another
/// person, standing in front.
fn occlude(img: &mut RgbImage, person: f32, r: &mut SynthRng) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let kinds = [
        Prop::Pole,
        Prop::Bicycle,
        Prop::Bench,
        Prop::Plant,
        Prop::Car,
        Prop::Person,
    ];
    let kind = kinds[r.random_range(0..kinds.len())];
    let x = match kind {
        Prop::Person => {
            w * 0.5 + w * r.random_range(0.45..0.75) * if r.random_bool(0.5) { 1.0 } else { -1.0 }
        }
        _ => w * r.random_range(0.15..0.85),
    };
    let y = h + person * r.random_range(0.0..0.12);
    draw_prop(img, kind, [x, y], person * r.random_range(0.9..1.15), r);
}

fn finish(
    mut img: RgbImage,
    camera: &Camera,
    width: u32,
    height: u32,
    r: &mut SynthRng,
) -> RgbImage {
    camera.develop(&mut img, r.random());
    if img.dimensions() == (width, height) {
        img
    } else {
        imageops::resize(&img, width, height, FilterType::Triangle)
    }
}

fn render_person(
    appearance: &PersonAppearance,
    camera: &Camera,
    seed: u64,
    width: u32,
    height: u32,
    framing: Framing,
) -> Result<RgbImage, SynthError> {
    check_size(width, height)?;
    let mut r = rng(&[seed, 0xc0]);
    let (lo, hi) = camera.person_height;
    let mut person = r.random_range(lo.min(hi)..=hi.max(lo)).max(8.0);
    let fill = r.random_range(0.8..0.94);
    if framing == Framing::Poor && r.random_bool(0.3) {
        // A far, tiny detection blown up to the crop size.
        person = r.random_range(28.0..45.0);
    }
    let mut img = canvas(camera, person, fill, width, height, &mut r);
    let (w, h) = (img.width() as f32, img.height() as f32);
    if r.random_bool(0.12) {
        // A passer-by behind.
        let side = if r.random_bool(0.5) { 1.0 } else { -1.0 };
        let who = stranger(&mut r);
        let feet = [
            w * (0.5 + side * r.random_range(0.45..0.8)),
            h - (h - person) * r.random_range(0.3..0.9),
        ];
        let view = walking_view(
            camera,
            person * r.random_range(0.85..1.05) * who.stature(),
            feet,
            &mut r,
        );
        draw_person(&mut img, &who, &view);
    }
    let mut feet = [
        w * 0.5 + w * r.random_range(-0.07..0.07),
        h - (h - person) * r.random_range(0.1..0.6),
    ];
    if r.random_bool(0.06) {
        // A loose box: a little of the head or the feet cut off.
        feet[1] += person * r.random_range(-0.08..0.1);
    }
    if framing == Framing::Poor {
        match r.random_range(0..3) {
            0 => feet[0] = w * if r.random_bool(0.5) { 0.05 } else { 0.95 },
            1 => feet[1] = h + person * r.random_range(0.3..0.6),
            _ => feet[1] = person * r.random_range(0.4..0.7),
        }
    }
    let view = walking_view(camera, person, feet, &mut r);
    draw_person(&mut img, appearance, &view);
    if r.random_bool(f64::from(camera.occlusion)) {
        occlude(&mut img, person, &mut r);
    }
    if framing == Framing::Poor {
        super::camera::blur(&mut img, r.random_range(0.0..1.2));
    }
    Ok(finish(img, camera, width, height, &mut r))
}

/// A Market-style detection crop of `appearance` seen by `camera`: the person roughly centred and
/// filling most of the height with detector jitter, the camera's viewpoint mix, light, blur, noise
/// and occlusions, `width` x `height` pixels. Everything random is drawn from `seed`.
pub fn render_crop(
    appearance: &PersonAppearance,
    camera: &Camera,
    seed: u64,
    width: u32,
    height: u32,
) -> Result<RgbImage, SynthError> {
    render_person(appearance, camera, seed, width, height, Framing::Good)
}

/// A distractor crop (Market's identity `0000`): a real person badly detected: cut in half,
/// off-centre, or tiny and blurred.
pub fn render_distractor(
    appearance: &PersonAppearance,
    camera: &Camera,
    seed: u64,
    width: u32,
    height: u32,
) -> Result<RgbImage, SynthError> {
    render_person(appearance, camera, seed, width, height, Framing::Poor)
}

/// A junk crop (Market's identity `-1`): background only, clutter, a body part seen far too close,
/// or a box between two people.
pub fn render_junk(
    camera: &Camera,
    seed: u64,
    width: u32,
    height: u32,
) -> Result<RgbImage, SynthError> {
    check_size(width, height)?;
    let mut r = rng(&[seed, 0x1c]);
    let (lo, hi) = camera.person_height;
    let person = r.random_range(lo.min(hi)..=hi.max(lo)).max(8.0);
    let mut img = canvas(
        camera,
        person,
        r.random_range(0.7..1.0),
        width,
        height,
        &mut r,
    );
    let (w, h) = (img.width() as f32, img.height() as f32);
    match r.random_range(0..4) {
        0 => {}
        1 => {
            for _ in 0..r.random_range(2..4) {
                let kind = Prop::random(&mut r, false);
                let base = [w * r.random_range(0.0..1.0), h * r.random_range(0.6..1.2)];
                draw_prop(
                    &mut img,
                    kind,
                    base,
                    person * r.random_range(0.7..1.5),
                    &mut r,
                );
            }
        }
        2 => {
            let who = stranger(&mut r);
            let big = person * r.random_range(1.8..3.0);
            let feet = [
                w * r.random_range(0.2..0.8),
                h + big * r.random_range(-0.05..0.6),
            ];
            draw_person(&mut img, &who, &walking_view(camera, big, feet, &mut r));
        }
        _ => {
            for side in [-1.0, 1.0] {
                let who = stranger(&mut r);
                let feet = [
                    w * (0.5 + side * r.random_range(0.4..0.6)),
                    h * r.random_range(0.9..1.0),
                ];
                draw_person(
                    &mut img,
                    &who,
                    &walking_view(camera, person * who.stature(), feet, &mut r),
                );
            }
        }
    }
    Ok(finish(img, camera, width, height, &mut r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_deterministic_and_depend_on_identity_camera_and_seed() {
        let cam = Camera::market(1).unwrap();
        let a = PersonAppearance::new(1, 10);
        let img = render_crop(&a, &cam, 5, 64, 128).unwrap();
        assert_eq!(img.dimensions(), (64, 128));
        assert_eq!(img, render_crop(&a, &cam, 5, 64, 128).unwrap());
        assert_ne!(img, render_crop(&a, &cam, 6, 64, 128).unwrap());
        let b = PersonAppearance::new(1, 11);
        assert_ne!(img, render_crop(&b, &cam, 5, 64, 128).unwrap());
        let cam2 = Camera::market(2).unwrap();
        assert_ne!(img, render_crop(&a, &cam2, 5, 64, 128).unwrap());
        for seed in 0..8 {
            let junk = render_junk(&cam2, seed, 64, 128).unwrap();
            assert_eq!(junk, render_junk(&cam2, seed, 64, 128).unwrap());
            let d = render_distractor(&a, &cam2, seed, 64, 128).unwrap();
            assert_eq!(d, render_distractor(&a, &cam2, seed, 64, 128).unwrap());
        }
    }

    #[test]
    fn empty_sizes_are_refused() {
        let cam = Camera::market(3).unwrap();
        let a = PersonAppearance::new(1, 1);
        let err = render_crop(&a, &cam, 0, 0, 128).unwrap_err();
        assert_eq!(
            err,
            SynthError::EmptyImage {
                width: 0,
                height: 128
            }
        );
        assert!(render_junk(&cam, 0, 64, 0).is_err());
        assert!(render_distractor(&a, &cam, 0, 64, 0).is_err());
    }

    /// Writes a contact sheet for eyeballing: each row one identity through cameras 1-6, then a
    /// distractor and a junk crop; a last row of large front / side / back figures.
    /// `cargo test -p edge-reid --lib contact_sheet -- --ignored` (path: `SYNTH_SHEET`, default
    /// `/tmp/synth_sheet.png`).
    #[test]
    #[ignore]
    fn contact_sheet() {
        let (cw, ch, cols, rows) = (64u32, 128u32, 8u32, 5u32);
        let mut sheet = RgbImage::from_pixel(cw * cols, ch * (rows + 1), image::Rgb([255; 3]));
        for row in 0..rows {
            let who = PersonAppearance::new(42, row + 1);
            for col in 0..cols {
                let cam = Camera::market((col % 6 + 1) as u8).unwrap();
                let seed = u64::from(row * 100 + col);
                let img = match col {
                    6 => render_distractor(&who, &cam, seed, cw, ch),
                    7 => render_junk(&cam, seed, cw, ch),
                    _ => render_crop(&who, &cam, seed, cw, ch),
                }
                .unwrap();
                imageops::replace(&mut sheet, &img, i64::from(col * cw), i64::from(row * ch));
            }
        }
        // Forced attributes, one feature per figure: (attribute, class, yaw).
        let features = [
            (1, 1, 180.0),
            (1, 1, 20.0),
            (8, 1, 90.0),
            (8, 1, 0.0),
            (0, 3, 0.0),
            (0, 0, 30.0),
            (3, 1, 270.0),
            (4, 0, 0.0),
        ];
        for (col, (attribute, class, yaw)) in features.into_iter().enumerate() {
            let mut labels = PersonAppearance::new(42, 50 + col as u32).attributes();
            labels[attribute] = class;
            if attribute == 4 {
                labels[9] = 1;
            }
            let who = PersonAppearance::with_attributes(42, 50 + col as u32, labels).unwrap();
            let mut view = View::new(super::super::Viewpoint::Front, 112.0, [32.0, 122.0]);
            view.yaw = yaw;
            view.phase = col as f32 / 8.0;
            let mut img = RgbImage::from_pixel(cw, ch, image::Rgb([200, 210, 200]));
            draw_person(&mut img, &who, &view);
            imageops::replace(
                &mut sheet,
                &img,
                (col as u32 * cw).into(),
                i64::from(rows * ch),
            );
        }
        let big = imageops::resize(
            &sheet,
            sheet.width() * 2,
            sheet.height() * 2,
            FilterType::Nearest,
        );
        let path = std::env::var("SYNTH_SHEET").unwrap_or_else(|_| "/tmp/synth_sheet.png".into());
        big.save(&path).unwrap();
        eprintln!("contact sheet written to {path}");
    }
}
