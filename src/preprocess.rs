//! Crop preprocessing shared by training and the runtime, so both feed the network identically.
//!
//! A region of an RGB image is resized to the card's `height x width` with bilinear interpolation
//! (half-pixel centres, as PyTorch's `F.interpolate(mode='bilinear', align_corners=False,
//! antialias=False)`) and normalised as `(pixel / 255 - mean) / std`, written straight into one
//! caller-provided NCHW slot of `3 * height * width` floats. Nothing is allocated per call.

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

    /// Resizes `region` of `image` to `height x width` and writes it, normalised and channel-major
    /// (`[3, height, width]`), into `out`, which must hold exactly [`Self::slot_len`] floats.
    pub fn crop_into(
        &self,
        image: &RgbImage,
        region: Region,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.check(image, region, out.len())?;
        let (out_h, out_w) = (self.height, self.width);
        let stride = image.width() as usize * 3;
        let pixels = image.as_raw();
        let plane = out_h * out_w;
        for oy in 0..out_h {
            let (y0, y1, wy1) = source_taps(oy, region.height as usize, out_h);
            let row0 = (region.y as usize + y0) * stride;
            let row1 = (region.y as usize + y1) * stride;
            for ox in 0..out_w {
                let (x0, x1, wx1) = source_taps(ox, region.width as usize, out_w);
                let col0 = (region.x as usize + x0) * 3;
                let col1 = (region.x as usize + x1) * 3;
                for c in 0..3 {
                    let top = lerp(pixels[row0 + col0 + c], pixels[row0 + col1 + c], wx1);
                    let bottom = lerp(pixels[row1 + col0 + c], pixels[row1 + col1 + c], wx1);
                    let value = (1.0 - wy1) * top + wy1 * bottom;
                    out[c * plane + oy * out_w + ox] = self.normalize(c, value / 255.0);
                }
            }
        }
        Ok(())
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

fn lerp(a: u8, b: u8, w: f32) -> f32 {
    (1.0 - w) * f32::from(a) + w * f32::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        pre.crop_into(&test_image(), region, &mut out).unwrap();
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
            pre.crop_into(&image, region(0, 0, 0, 4), &mut out),
            Err(PreprocessError::EmptyRegion { .. })
        ));
        assert!(matches!(
            pre.crop_into(&image, region(3, 0, 5, 4), &mut out),
            Err(PreprocessError::OutsideImage {
                image_width: 7,
                image_height: 9,
                ..
            })
        ));
        assert!(matches!(
            pre.crop_into(&image, region(0, u32::MAX, 1, 2), &mut out),
            Err(PreprocessError::OutsideImage { .. })
        ));
        assert!(matches!(
            pre.crop_into(&image, Region::full(&image), &mut out[1..]),
            Err(PreprocessError::SlotSize {
                expected: 36,
                got: 35,
                ..
            })
        ));
        assert!(pre
            .crop_into(&image, Region::full(&image), &mut out)
            .is_ok());
        assert!(Preprocessor::new(0, 3, MEAN, STD).is_err());
        assert!(Preprocessor::new(4, 3, MEAN, [0.2, 0.0, 0.2]).is_err());
        assert!(Preprocessor::new(4, 3, [f32::NAN, 0.0, 0.0], STD).is_err());
    }
}
