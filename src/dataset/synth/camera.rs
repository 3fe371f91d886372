//! The six synthetic cameras, Market-1501 style: each has its own light (white balance, exposure,
//! gamma, contrast), mix of viewpoints, range of person sizes, blur, sensor noise, chance of
//! occlusion and background. [`Camera::develop`] applies a camera's look to a rendered image.

use image::RgbImage;
use rand::Rng;

use super::scene::Background;
use super::{rng, SynthError, Viewpoint};

/// Number of camera presets ([`Camera::market`] takes 1 to this).
pub const CAMERAS: u8 = 6;

/// A camera's light and tone curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Light {
    /// Per-channel gain (white balance / colour temperature), around 1.
    pub gain: [f32; 3],
    /// Overall exposure, around 1.
    pub exposure: f32,
    /// Display gamma (above 1 brightens mid-tones).
    pub gamma: f32,
    /// Contrast around mid-grey, around 1.
    pub contrast: f32,
}

/// One camera: how it sees people and how its images look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// Camera number, 1 to [`CAMERAS`].
    pub index: u8,
    /// Light and tone curve.
    pub light: Light,
    /// Relative frequency of front, back and side (left or right, mirrored) views.
    pub viewpoints: [f32; 3],
    /// Range of a person's height in native pixels before resizing to the crop (the detector's
    /// box size): small values give soft, upscaled crops.
    pub person_height: (f32, f32),
    /// Gaussian blur sigma in native pixels (focus, motion).
    pub blur: f32,
    /// Sensor noise standard deviation on the 0-255 scale.
    pub noise: f32,
    /// Probability that something (a pole, a bicycle, another person, ...) covers part of a person.
    pub occlusion: f32,
    /// The scenery behind people.
    pub background: Background,
}

impl Camera {
    /// Market-style preset `index` (1 to [`CAMERAS`]): warm daylight on pavement, cool shade in a
    /// garden, a bright road, a dim yellowish building corner, a shop front, and a low-resolution
    /// camera over a plaza.
    pub fn market(index: u8) -> Result<Self, SynthError> {
        let light = |gain: [f32; 3], exposure: f32, gamma: f32, contrast: f32| Light {
            gain,
            exposure,
            gamma,
            contrast,
        };
        let (light, viewpoints, person_height, blur, noise, occlusion, background) = match index {
            1 => (
                light([1.08, 1.0, 0.88], 1.05, 1.0, 1.05),
                [0.5, 0.3, 0.2],
                (110.0, 170.0),
                0.5,
                3.0,
                0.15,
                Background::Pavement,
            ),
            2 => (
                light([0.9, 1.0, 1.12], 0.92, 1.1, 0.95),
                [0.25, 0.5, 0.25],
                (90.0, 150.0),
                0.8,
                4.0,
                0.2,
                Background::Garden,
            ),
            3 => (
                light([1.0, 1.0, 1.0], 1.2, 1.15, 1.1),
                [0.2, 0.2, 0.6],
                (120.0, 190.0),
                0.6,
                3.0,
                0.25,
                Background::Road,
            ),
            4 => (
                light([1.12, 1.02, 0.75], 0.8, 0.9, 0.85),
                [0.4, 0.4, 0.2],
                (80.0, 130.0),
                1.0,
                6.0,
                0.15,
                Background::Building,
            ),
            5 => (
                light([0.96, 1.02, 1.0], 1.0, 1.0, 1.0),
                [0.35, 0.35, 0.3],
                (100.0, 160.0),
                0.7,
                4.0,
                0.35,
                Background::Shopfront,
            ),
            6 => (
                light([0.95, 1.06, 0.92], 0.95, 1.05, 0.9),
                [0.34, 0.33, 0.33],
                (45.0, 80.0),
                0.6,
                7.0,
                0.2,
                Background::Plaza,
            ),
            _ => return Err(SynthError::Camera(index)),
        };
        Ok(Self {
            index,
            light,
            viewpoints,
            person_height,
            blur,
            noise,
            occlusion,
            background,
        })
    }

    /// A viewpoint drawn from the camera's mix.
    pub(crate) fn viewpoint(&self, r: &mut impl Rng) -> Viewpoint {
        let [front, back, side] = self.viewpoints;
        let u = r.random::<f32>() * (front + back + side);
        if u < front {
            Viewpoint::Front
        } else if u < front + back {
            Viewpoint::Back
        } else if r.random_bool(0.5) {
            Viewpoint::Left
        } else {
            Viewpoint::Right
        }
    }

    /// Applies the camera's blur, light and noise to `image` (native resolution), drawing the noise
    /// and a small exposure flicker from `seed`.
    pub fn develop(&self, image: &mut RgbImage, seed: u64) {
        let mut r = rng(&[seed, 0xde]);
        blur(image, self.blur);
        let l = &self.light;
        let exposure = l.exposure * r.random_range(0.9..1.1);
        let lut: Vec<[f32; 256]> = l
            .gain
            .iter()
            .map(|g| {
                let mut t = [0.0; 256];
                for (i, v) in t.iter_mut().enumerate() {
                    let x = (i as f32 / 255.0 * g * exposure).clamp(0.0, 1.0);
                    let y = x.powf(1.0 / l.gamma);
                    *v = ((y - 0.5) * l.contrast + 0.5) * 255.0;
                }
                t
            })
            .collect();
        for px in image.pixels_mut() {
            // Roughly Gaussian noise (sum of three uniforms), shared by the channels plus a
            // smaller colour part.
            let grey = gaussish(&mut r) * self.noise;
            for (c, v) in px.0.iter_mut().enumerate() {
                let colour = gaussish(&mut r) * self.noise * 0.4;
                *v = (lut[c][usize::from(*v)] + grey + colour)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// A draw with mean 0 and standard deviation 1 from three uniforms (bounded at +-3).
fn gaussish(r: &mut impl Rng) -> f32 {
    (r.random::<f32>() + r.random::<f32>() + r.random::<f32>() - 1.5) * 2.0
}

/// Separable Gaussian blur with standard deviation `sigma` pixels, edges clamped.
pub(crate) fn blur(image: &mut RgbImage, sigma: f32) {
    if sigma < 0.2 || image.width() == 0 || image.height() == 0 {
        return;
    }
    let radius = (sigma * 2.5).ceil() as i64;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let src: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
    let mut tmp = vec![0.0f32; src.len()];
    let idx = |x: i64, y: i64| ((y * w + x) * 3) as usize;
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (k, weight) in kernel.iter().enumerate() {
                let sx = (x + k as i64 - radius).clamp(0, w - 1);
                let i = idx(sx, y);
                for c in 0..3 {
                    acc[c] += src[i + c] * weight;
                }
            }
            tmp[idx(x, y)..idx(x, y) + 3].copy_from_slice(&acc);
        }
    }
    let out = image.as_mut();
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (k, weight) in kernel.iter().enumerate() {
                let sy = (y + k as i64 - radius).clamp(0, h - 1);
                let i = idx(x, sy);
                for c in 0..3 {
                    acc[c] += tmp[i + c] * weight;
                }
            }
            let i = idx(x, y);
            for c in 0..3 {
                out[i + c] = acc[c].round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_presets_differ_and_others_are_refused() {
        let cams: Vec<Camera> = (1..=CAMERAS).map(|i| Camera::market(i).unwrap()).collect();
        for (i, a) in cams.iter().enumerate() {
            assert_eq!(a.index as usize, i + 1);
            for b in &cams[i + 1..] {
                assert_ne!(a.light, b.light);
                assert_ne!(a.background, b.background);
            }
        }
        assert!(matches!(Camera::market(0), Err(SynthError::Camera(0))));
        assert!(matches!(Camera::market(7), Err(SynthError::Camera(7))));
    }

    #[test]
    fn blur_keeps_flat_images_and_spreads_edges() {
        let mut flat = RgbImage::from_pixel(9, 7, image::Rgb([40, 90, 200]));
        blur(&mut flat, 1.5);
        assert!(flat.pixels().all(|p| p.0 == [40, 90, 200]));
        let mut edge =
            RgbImage::from_fn(12, 3, |x, _| image::Rgb([if x < 6 { 0 } else { 240 }; 3]));
        blur(&mut edge, 1.0);
        let row: Vec<u8> = (0..12).map(|x| edge.get_pixel(x, 1).0[0]).collect();
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert!(
            row[5] > 0 && row[5] < 120 && row[6] > 120 && row[6] < 240,
            "{row:?}"
        );
        assert_eq!((row[0], row[11]), (0, 240));
    }

    #[test]
    fn develop_is_deterministic_and_applies_the_light() {
        let grey = RgbImage::from_pixel(16, 16, image::Rgb([128, 128, 128]));
        let warm = Camera::market(4).unwrap();
        let (mut a, mut b) = (grey.clone(), grey.clone());
        warm.develop(&mut a, 3);
        warm.develop(&mut b, 3);
        assert_eq!(a, b);
        let mean = |img: &RgbImage, c: usize| {
            img.pixels().map(|p| f32::from(p.0[c])).sum::<f32>() / img.pixels().len() as f32
        };
        // Camera 4's white balance is warm: red above blue.
        assert!(mean(&a, 0) > mean(&a, 2) + 20.0);
        let mut c = grey.clone();
        warm.develop(&mut c, 4);
        assert_ne!(a, c, "noise depends on the seed");
    }
}
