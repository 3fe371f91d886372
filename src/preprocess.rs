//! Crop preprocessing shared by training and the runtime, so both feed the network identically.
//!
//! **Framing.** The network learned Market-1501 crops: 1:2 (128x64), the person filling about
//! [`PERSON_FILL`] of the height with background around them. Detector, motion and tracker boxes
//! are tight and taller (vtest.avi: height/width 2.7 at the median, up to 4). So a person box is
//! never stretched to the input: [`Window::framing`] grows it by Market's margin and then to the
//! model's aspect, centred, and what falls outside the frame is padded with the normalisation mean
//! (a normalised 0, the value the training augmentation pads with). A picture of a person (a
//! Market crop, an enrolled photo, an image file) already has its margin: it is only padded to the
//! aspect. The caller says which a region is ([`Framing`]); [`Preprocessor::crop_into`] does the
//! rest for every caller (the stream, `enroll`, `identify`, `embed`, `eval` and the training
//! loader), so a 128x64 Market crop goes through unchanged.
//!
//! The margin is what makes a camera's boxes match enrolled pictures, which are crops with a
//! margin like Market's: without it the first run names an enrolled synthetic person on half of
//! their frames instead of all. Ranked only against each other, tight boxes do better with less
//! margin (RESULTS.md, "Crop framing"; `cargo run --release --example framing`).
//!
//! **Resampling.** A window is resized to the card's `height x width` with bilinear interpolation
//! (half-pixel centres, as PyTorch's `F.interpolate(mode='bilinear', align_corners=False,
//! antialias=False)` of the padded window) and normalised as `(pixel / 255 - mean) / std`, written
//! straight into one caller-provided NCHW slot of `3 * height * width` floats. Nothing is allocated
//! per call.

use image::RgbImage;

use crate::card::InputSpec;

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Region {
    /// The whole of `image`.
    pub fn full(image: &RgbImage) -> Self {
        Region {
            x: 0,
            y: 0,
            width: image.width(),
            height: image.height(),
        }
    }
}

/// A region that is not `x,y,w,h` (four whole numbers, a positive width and height).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not x,y,w,h (four whole numbers, a positive width and height)")]
pub struct ParseRegionError {
    /// The text given.
    pub text: String,
}

impl std::str::FromStr for Region {
    type Err = ParseRegionError;

    /// Parses `x,y,w,h` (spaces around the numbers allowed).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let numbers: Result<Vec<u32>, _> = text.split(',').map(|p| p.trim().parse()).collect();
        match numbers.as_deref() {
            Ok(&[x, y, width, height]) if width > 0 && height > 0 => Ok(Region {
                x,
                y,
                width,
                height,
            }),
            _ => Err(ParseRegionError {
                text: text.to_string(),
            }),
        }
    }
}

/// Share of a Market-1501 crop's height the person fills: the DPM boxes leave background above the
/// head and below the feet (the synthetic crops draw the person at 0.80-0.94 of the height).
pub const PERSON_FILL: f32 = 0.87;

/// A picture whose aspect is off the model's by more than this factor (either way) is padded a
/// lot: worth a warning where a user gave it (`enroll`, `identify`).
pub const ASPECT_WARNING: f32 = 1.3;

/// What a region to crop is, which decides how it is framed ([`Window::framing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A tight box around a person (a detector's, the motion proposer's, a track's): grown by
    /// the margin of [`PERSON_FILL`], then to the model's aspect.
    PersonBox,
    /// A picture of a person that has its margin already (a Market crop, an enrolled photo, an
    /// image file, a fixed region a user drew): only grown to the model's aspect.
    Picture,
}

/// The part of an image a crop is resampled from, in pixels; it may reach outside the image,
/// where it is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Left column (negative: padding on the left).
    pub x: i64,
    /// Top row (negative: padding on top).
    pub y: i64,
    /// Width in pixels, at least 1.
    pub width: u32,
    /// Height in pixels, at least 1.
    pub height: u32,
}

impl Window {
    /// Exactly `region`.
    pub fn exact(region: Region) -> Self {
        Window {
            x: i64::from(region.x),
            y: i64::from(region.y),
            width: region.width,
            height: region.height,
        }
    }

    /// The window the network sees the person in `region` through, for a model input of `height
    /// x width` (see the module doc): a [`Framing::PersonBox`] is grown by the margin of
    /// [`PERSON_FILL`], a [`Framing::Picture`] taken as it is; either is then grown, centred, to
    /// the input's aspect.
    pub fn framing(region: Region, framing: Framing, height: usize, width: usize) -> Self {
        let grow = match framing {
            Framing::PersonBox => 1.0 / f64::from(PERSON_FILL),
            Framing::Picture => 1.0,
        };
        let mut h = f64::from(region.height) * grow;
        let mut w = f64::from(region.width) * grow;
        let aspect = width as f64 / height as f64;
        if w < h * aspect {
            w = h * aspect;
        } else {
            h = w / aspect;
        }
        let (w, h) = (w.round().max(1.0), h.round().max(1.0));
        let cx = f64::from(region.x) + f64::from(region.width) / 2.0;
        let cy = f64::from(region.y) + f64::from(region.height) / 2.0;
        Window {
            x: (cx - w / 2.0).round() as i64,
            y: (cy - h / 2.0).round() as i64,
            width: w as u32,
            height: h as u32,
        }
    }
}

/// How far the aspect of a `width x height` picture is off a model input of `input_height x
/// input_width`, as a factor of at least 1 (1: the same aspect; 2: twice too wide or too tall).
pub fn aspect_factor(width: u32, height: u32, input_height: usize, input_width: usize) -> f32 {
    let picture = width as f32 / height.max(1) as f32;
    let input = input_width as f32 / input_height as f32;
    (picture / input).max(input / picture)
}

/// Why a crop could not be preprocessed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    /// The target size has a zero side.
    #[error("crop size {height}x{width} has a zero side")]
    EmptySize {
        /// Requested height.
        height: usize,
        /// Requested width.
        width: usize,
    },
    /// A standard deviation is zero, negative or not finite, or a mean is not finite.
    #[error(
        "normalisation mean {mean:?} / std {std:?} is invalid (std must be positive and finite)"
    )]
    BadNormalisation {
        /// Per-channel mean.
        mean: [f32; 3],
        /// Per-channel standard deviation.
        std: [f32; 3],
    },
    /// The region has no pixels.
    #[error("crop region {region:?} is empty")]
    EmptyRegion {
        /// The region asked for.
        region: Region,
    },
    /// The region reaches outside the image.
    #[error("crop region {region:?} lies outside the {image_width}x{image_height} image")]
    OutsideImage {
        /// The region asked for.
        region: Region,
        /// Image width.
        image_width: u32,
        /// Image height.
        image_height: u32,
    },
    /// The output slot does not hold exactly one crop.
    #[error("output slot holds {got} floats, one {height}x{width} crop needs {expected}")]
    SlotSize {
        /// Crop height.
        height: usize,
        /// Crop width.
        width: usize,
        /// `3 * height * width`.
        expected: usize,
        /// Length of the slot given.
        got: usize,
    },
}

/// Resizes and normalises crops to one network input size.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    height: usize,
    width: usize,
    mean: [f32; 3],
    inv_std: [f32; 3],
}

impl Preprocessor {
    /// A preprocessor producing `3 x height x width` crops normalised with `mean` and `std` (per
    /// channel, on the `[0, 1]` scale).
    pub fn new(
        height: usize,
        width: usize,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Self, PreprocessError> {
        if height == 0 || width == 0 {
            return Err(PreprocessError::EmptySize { height, width });
        }
        let valid =
            mean.iter().all(|m| m.is_finite()) && std.iter().all(|s| s.is_finite() && *s > 0.0);
        if !valid {
            return Err(PreprocessError::BadNormalisation { mean, std });
        }
        Ok(Preprocessor {
            height,
            width,
            mean,
            inv_std: std.map(|s| 1.0 / s),
        })
    }

    /// The preprocessor a model card's input asks for.
    pub fn from_spec(spec: &InputSpec) -> Result<Self, PreprocessError> {
        Self::new(spec.height, spec.width, spec.mean, spec.std)
    }

    /// Output height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Output width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Floats in one crop's slot: `3 * height * width`.
    pub fn slot_len(&self) -> usize {
        3 * self.height * self.width
    }

    /// The normalised value of a pixel intensity `value` on the `[0, 1]` scale in `channel` (0..3).
    pub fn normalize(&self, channel: usize, value: f32) -> f32 {
        (value - self.mean[channel]) * self.inv_std[channel]
    }

    /// The person crop of `region` of `image` as the network learned crops ([`Window::framing`]
    /// as `framing` says), resized to `height x width` and written, normalised and channel-major
    /// (`[3, height, width]`), into `out`, which must hold exactly [`Self::slot_len`] floats.
    pub fn crop_into(
        &self,
        image: &RgbImage,
        region: Region,
        framing: Framing,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.check(image, region, out.len())?;
        let window = Window::framing(region, framing, self.height, self.width);
        self.sample_into(image, window, out);
        Ok(())
    }

    /// Exactly `region` of `image` resized to `height x width` (stretched if its aspect differs),
    /// written as [`Self::crop_into`] writes it.
    pub fn resize_into(
        &self,
        image: &RgbImage,
        region: Region,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.check(image, region, out.len())?;
        self.sample_into(image, Window::exact(region), out);
        Ok(())
    }

    /// Resamples `window` of `image` into `out` (of [`Self::slot_len`] floats), padding outside
    /// the image with the mean (a normalised 0).
    fn sample_into(&self, image: &RgbImage, window: Window, out: &mut [f32]) {
        let (out_h, out_w) = (self.height, self.width);
        let (image_w, image_h) = (i64::from(image.width()), i64::from(image.height()));
        let stride = image_w as usize * 3;
        let pixels = image.as_raw();
        let plane = out_h * out_w;
        // Pixel offset of an absolute (column, row), `None` outside the image (padding).
        let row = |y: i64| (0..image_h).contains(&y).then(|| y as usize * stride);
        let col = |x: i64| (0..image_w).contains(&x).then(|| x as usize * 3);
        let pad = self.mean.map(|m| m * 255.0);
        for oy in 0..out_h {
            let (y0, y1, wy1) = source_taps(oy, window.height as usize, out_h);
            let (row0, row1) = (row(window.y + y0 as i64), row(window.y + y1 as i64));
            for ox in 0..out_w {
                let (x0, x1, wx1) = source_taps(ox, window.width as usize, out_w);
                let (col0, col1) = (col(window.x + x0 as i64), col(window.x + x1 as i64));
                for c in 0..3 {
                    let at = |r: Option<usize>, k: Option<usize>| match (r, k) {
                        (Some(r), Some(k)) => f32::from(pixels[r + k + c]),
                        _ => pad[c],
                    };
                    let top = (1.0 - wx1) * at(row0, col0) + wx1 * at(row0, col1);
                    let bottom = (1.0 - wx1) * at(row1, col0) + wx1 * at(row1, col1);
                    let value = (1.0 - wy1) * top + wy1 * bottom;
                    out[c * plane + oy * out_w + ox] = self.normalize(c, value / 255.0);
                }
            }
        }
    }

    fn check(&self, image: &RgbImage, region: Region, slot: usize) -> Result<(), PreprocessError> {
        if slot != self.slot_len() {
            return Err(PreprocessError::SlotSize {
                height: self.height,
                width: self.width,
                expected: self.slot_len(),
                got: slot,
            });
        }
        if region.width == 0 || region.height == 0 {
            return Err(PreprocessError::EmptyRegion { region });
        }
        let right = u64::from(region.x) + u64::from(region.width);
        let bottom = u64::from(region.y) + u64::from(region.height);
        if right > u64::from(image.width()) || bottom > u64::from(image.height()) {
            return Err(PreprocessError::OutsideImage {
                region,
                image_width: image.width(),
                image_height: image.height(),
            });
        }
        Ok(())
    }
}

/// The two source indices and the weight of the second one for output index `dst` when resizing
/// `input` samples to `output` samples with half-pixel centres (PyTorch's `align_corners=False`).
fn source_taps(dst: usize, input: usize, output: usize) -> (usize, usize, f32) {
    let scale = input as f32 / output as f32;
    let src = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (src as usize).min(input - 1);
    let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
    (i0, i1, src - i0 as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Framing::{PersonBox, Picture};

    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];

    /// The 7x9 test image; the reference script below builds the same pixels.
    fn test_image() -> RgbImage {
        RgbImage::from_fn(7, 9, |x, y| {
            image::Rgb(std::array::from_fn(|c| {
                ((x * 37 + y * 91 + c as u32 * 53 + x * y * 13) % 256) as u8
            }))
        })
    }

    fn crop(region: (u32, u32, u32, u32), height: usize, width: usize) -> Vec<f32> {
        let pre = Preprocessor::new(height, width, MEAN, STD).unwrap();
        let mut out = vec![f32::NAN; pre.slot_len()];
        let (x, y, w, h) = region;
        let region = Region {
            x,
            y,
            width: w,
            height: h,
        };
        pre.resize_into(&test_image(), region, &mut out).unwrap();
        out
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 2e-5, "element {i}: got {g}, torch {w}");
        }
    }

    // Expected values from PyTorch 2.x (python3, torch):
    //
    // import torch, torch.nn.functional as F
    // W, H = 7, 9
    // img = torch.tensor([[[(x * 37 + y * 91 + c * 53 + x * y * 13) % 256 for x in range(W)]
    //                      for y in range(H)] for c in range(3)], dtype=torch.float32)
    // mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    // std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    // def crop(x, y, w, h, oh, ow):
    //     r = img[:, y:y + h, x:x + w].unsqueeze(0)
    //     o = F.interpolate(r, size=(oh, ow), mode='bilinear', align_corners=False,
    //                       antialias=False)[0]
    //     o = (o / 255 - mean) / std
    //     print("[" + ", ".join(f"{v:.6}" for v in o.flatten().tolist()) + "]")
    // crop(1, 2, 5, 6, 4, 3); crop(2, 1, 3, 2, 5, 4)
    #[test]
    fn downscale_matches_torch() {
        let want = [
            0.709107, 0.407997, 1.20287, 0.203927, 0.459371, -0.381168, -0.666581, 1.60673,
            0.592088, 1.02021, 1.6581, 1.20002, -0.458625, 0.353992, 0.0461605, 1.26581, 0.406513,
            -0.45279, 0.375875, -0.661415, 1.28916, -0.140581, -0.608894, -0.33024, 0.31756,
            1.49839, 0.0764559, -0.196601, 1.55068, 0.695192, 1.52017, 0.487495, 0.198461, 1.00601,
            0.539782, 0.817197,
        ];
        assert_close(&crop((1, 2, 5, 6), 4, 3), &want);
    }

    #[test]
    fn upscale_matches_torch() {
        let want = [
            1.15292, 1.68807, 0.686274, -1.51854, 0.91489, 1.46395, 0.643249, -1.27365, -0.0372464,
            0.567471, 0.471145, -0.294118, -0.989383, -0.329009, 0.299041, 0.685418, -1.22742,
            -0.55313, 0.256015, 0.930302, 2.23599, -0.0180323, -1.04219, -0.495098, 1.99265,
            0.0329567, -0.806066, -0.244748, 1.01926, 0.236913, 0.138437, 0.756653, 0.0458683,
            0.44087, 1.08294, 1.75805, -0.197479, 0.491859, 1.31906, 2.0084, -1.08985, -0.545185,
            0.10841, 0.653072, -0.885926, -0.327102, 0.176166, 0.456122, -0.0702396, 0.545229,
            0.44719, -0.331677, 0.745447, 1.41756, 0.718213, -1.11948, 0.949368, 1.63564, 0.785969,
            -1.31643,
        ];
        assert_close(&crop((2, 1, 3, 2), 5, 4), &want);
    }

    #[test]
    fn same_size_is_plain_normalisation() {
        let image = test_image();
        let out = crop((0, 0, 7, 9), 9, 7);
        for (x, y, p) in image.enumerate_pixels() {
            for c in 0..3 {
                let want = (f32::from(p[c]) / 255.0 - MEAN[c]) / STD[c];
                let got = out[c * 63 + y as usize * 7 + x as usize];
                assert!((got - want).abs() < 1e-5, "({x},{y},{c}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn person_boxes_are_framed_like_market_crops() {
        let region = |x, y, width, height| Region {
            x,
            y,
            width,
            height,
        };
        // A tight 20x60 box (3:1, like vtest.avi's people): 60 / 0.87 = 69 tall, then 1:2.
        let w = Window::framing(region(100, 50, 20, 60), PersonBox, 128, 64);
        assert_eq!(
            w,
            Window {
                x: 93,
                y: 46,
                width: 34,
                height: 69
            }
        );
        // A box wider than 1:2 grows in height instead.
        let w = Window::framing(region(0, 0, 40, 40), PersonBox, 128, 64);
        assert_eq!((w.width, w.height), (46, 92));
        assert_eq!((w.x, w.y), (-3, -26), "centred, reaching out of the frame");
        // A picture has its margin already: a 1:2 picture is taken as it is...
        let w = Window::framing(region(0, 0, 64, 128), Picture, 128, 64);
        assert_eq!(w, Window::exact(region(0, 0, 64, 128)));
        // ... (a person box of the same size would not be)
        let w = Window::framing(region(0, 0, 64, 128), PersonBox, 128, 64);
        assert_eq!((w.width, w.height), (74, 147));
        // ... a square one padded to 1:2, never stretched.
        let w = Window::framing(region(0, 0, 50, 50), Picture, 128, 64);
        assert_eq!(
            w,
            Window {
                x: 0,
                y: -25,
                width: 50,
                height: 100
            }
        );
        assert_eq!(aspect_factor(50, 50, 128, 64), 2.0);
        assert_eq!(aspect_factor(64, 128, 128, 64), 1.0);
        assert_eq!(aspect_factor(20, 80, 128, 64), 2.0);
    }

    #[test]
    fn crops_resample_their_window_and_pad_outside_the_image() {
        let image = RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
        });
        let pre = Preprocessor::new(16, 8, MEAN, STD).unwrap();
        let mut crop = vec![f32::NAN; pre.slot_len()];
        let mut want = vec![f32::NAN; pre.slot_len()];
        // Inside the image: the crop is the plain resize of the framed window.
        let inside = Region {
            x: 15,
            y: 8,
            width: 4,
            height: 12,
        };
        pre.crop_into(&image, inside, PersonBox, &mut crop).unwrap();
        let w = Window::framing(inside, PersonBox, 16, 8);
        assert!(
            w.x >= 0
                && w.y >= 0
                && w.x + i64::from(w.width) <= 40
                && w.y + i64::from(w.height) <= 30,
            "{w:?}"
        );
        let exact = Region {
            x: w.x as u32,
            y: w.y as u32,
            width: w.width,
            height: w.height,
        };
        pre.resize_into(&image, exact, &mut want).unwrap();
        assert_eq!(crop, want);
        // Not the stretched box.
        pre.resize_into(&image, inside, &mut want).unwrap();
        assert_ne!(crop, want);

        // The whole image (4:3) padded to 1:2: rows that fall outside it are the mean (0).
        pre.crop_into(&image, Region::full(&image), Picture, &mut crop)
            .unwrap();
        let w = Window::framing(Region::full(&image), Picture, 16, 8);
        assert_eq!(
            w,
            Window {
                x: 0,
                y: -25,
                width: 40,
                height: 80
            }
        );
        let plane = 16 * 8;
        for c in 0..3 {
            let rows: Vec<&[f32]> = crop[c * plane..(c + 1) * plane].chunks(8).collect();
            // Output row r samples window row (r + 0.5) * 5 - 0.5, image row 5r - 23: rows 0-4
            // and 11-15 miss the image.
            for r in (0..5).chain(11..16) {
                assert!(
                    rows[r].iter().all(|v| v.abs() < 1e-6),
                    "channel {c} row {r}: {:?}",
                    rows[r]
                );
            }
            for (r, row) in rows.iter().enumerate().take(10).skip(6) {
                assert!(row.iter().any(|v| *v != 0.0), "channel {c} row {r}");
            }
        }
    }

    #[test]
    fn bad_regions_and_slots_are_errors() {
        let pre = Preprocessor::new(4, 3, MEAN, STD).unwrap();
        let image = test_image();
        let mut out = vec![0.0; pre.slot_len()];
        let region = |x, y, width, height| Region {
            x,
            y,
            width,
            height,
        };
        assert!(matches!(
            pre.crop_into(&image, region(0, 0, 0, 4), Picture, &mut out),
            Err(PreprocessError::EmptyRegion { .. })
        ));
        assert!(matches!(
            pre.crop_into(&image, region(3, 0, 5, 4), Picture, &mut out),
            Err(PreprocessError::OutsideImage {
                image_width: 7,
                image_height: 9,
                ..
            })
        ));
        assert!(matches!(
            pre.crop_into(&image, region(0, u32::MAX, 1, 2), Picture, &mut out),
            Err(PreprocessError::OutsideImage { .. })
        ));
        assert!(matches!(
            pre.crop_into(&image, Region::full(&image), Picture, &mut out[1..]),
            Err(PreprocessError::SlotSize {
                expected: 36,
                got: 35,
                ..
            })
        ));
        assert!(pre
            .crop_into(&image, Region::full(&image), Picture, &mut out)
            .is_ok());
        assert!(Preprocessor::new(0, 3, MEAN, STD).is_err());
        assert!(Preprocessor::new(4, 3, MEAN, [0.2, 0.0, 0.2]).is_err());
        assert!(Preprocessor::new(4, 3, [f32::NAN, 0.0, 0.0], STD).is_err());
    }
}
