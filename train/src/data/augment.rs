//! Training augmentation of one normalised crop, in place: horizontal flip, zero-padding plus a
//! random crop back to size (a random shift), and random erasing (Zhong et al., AAAI 2020).
//!
//! It runs on the crop after [`Preprocessor::crop_into`], so "zero" padding is the normalised value
//! of a black pixel and erased pixels get random intensities in `[0, 1)`, normalised, exactly as
//! torchvision's `Pad` + `RandomCrop` before `Normalize` and Zhong's random-value erasing would.

use edge_reid::preprocess::{PreprocessError, Preprocessor};
use rand::Rng;

use super::DataError;

/// Augmentation settings. [`Default`] is the usual re-ID recipe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Probability of a horizontal flip.
    pub flip: f32,
    /// Zero padding on each side before the random crop back to size, in pixels (0: no shift).
    pub pad: usize,
    /// Probability of erasing one random rectangle.
    pub erase: f32,
    /// Erased area as a fraction of the crop, `(min, max)`.
    pub erase_area: (f32, f32),
    /// Smallest aspect ratio (height / width) of the erased rectangle; the largest is its inverse.
    pub erase_aspect: f32,
}

impl Default for Augment {
    /// Flip p 0.5, pad 10, erasing p 0.5 with area 0.02-0.4 and aspect 0.3-3.33.
    fn default() -> Self {
        Augment {
            flip: 0.5,
            pad: 10,
            erase: 0.5,
            erase_area: (0.02, 0.4),
            erase_aspect: 0.3,
        }
    }
}

impl Augment {
    /// Checks that the probabilities, area range and aspect ratio make sense.
    pub fn check(&self) -> Result<(), DataError> {
        let probability = |p: f32| (0.0..=1.0).contains(&p);
        let (low, high) = self.erase_area;
        let reason = if !probability(self.flip) || !probability(self.erase) {
            format!(
                "probabilities {} and {} must be in [0, 1]",
                self.flip, self.erase
            )
        } else if !(0.0 < low && low <= high && high < 1.0) {
            format!("erase area {low}..{high} must satisfy 0 < min <= max < 1")
        } else if !(self.erase_aspect > 0.0 && self.erase_aspect <= 1.0) {
            format!("erase aspect {} must be in (0, 1]", self.erase_aspect)
        } else {
            return Ok(());
        };
        Err(DataError::InvalidSetting {
            setting: "augment",
            reason,
        })
    }

    /// Augments one crop of `pre`'s size in place (`slot` as written by
    /// [`Preprocessor::crop_into`]), drawing every random choice from `rng`.
    pub fn apply(
        &self,
        pre: &Preprocessor,
        slot: &mut [f32],
        rng: &mut impl Rng,
    ) -> Result<(), PreprocessError> {
        let (height, width) = (pre.height(), pre.width());
        if slot.len() != pre.slot_len() {
            return Err(PreprocessError::SlotSize {
                height,
                width,
                expected: pre.slot_len(),
                got: slot.len(),
            });
        }
        let flip = rng.random::<f32>() < self.flip;
        let pad = self.pad as i64;
        let dy = (rng.random_range(0..=2 * pad) - pad) as isize;
        let dx = (rng.random_range(0..=2 * pad) - pad) as isize;
        for (c, plane) in slot.chunks_exact_mut(height * width).enumerate() {
            if flip {
                plane.chunks_exact_mut(width).for_each(<[f32]>::reverse);
            }
            shift(plane, height, width, dy, dx, pre.normalize(c, 0.0));
        }
        if rng.random::<f32>() < self.erase {
            self.erase_rectangle(pre, slot, rng);
        }
        Ok(())
    }

    /// Zhong et al.'s random erasing: up to 100 attempts to draw a rectangle that fits, filled with
    /// random normalised intensities.
    fn erase_rectangle(&self, pre: &Preprocessor, slot: &mut [f32], rng: &mut impl Rng) {
        let (height, width) = (pre.height(), pre.width());
        let (low, high) = self.erase_area;
        for _ in 0..100 {
            let area = rng.random_range(low..=high) * (height * width) as f32;
            let aspect = rng.random_range(self.erase_aspect..=1.0 / self.erase_aspect);
            let h = (area * aspect).sqrt().round() as usize;
            let w = (area / aspect).sqrt().round() as usize;
            if h == 0 || w == 0 || h >= height || w >= width {
                continue;
            }
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            for (c, plane) in slot.chunks_exact_mut(height * width).enumerate() {
                for row in plane.chunks_exact_mut(width).skip(top).take(h) {
                    for value in &mut row[left..left + w] {
                        *value = pre.normalize(c, rng.random::<f32>());
                    }
                }
            }
            return;
        }
    }
}

/// Moves a `height x width` plane so that `out[y][x] = in[y + dy][x + dx]`, filling what comes from
/// outside with `fill` (the crop at offset `(pad + dy, pad + dx)` of the padded plane).
fn shift(plane: &mut [f32], height: usize, width: usize, dy: isize, dx: isize, fill: f32) {
    // Output columns `x0..x1` come from source columns `x0 + dx..x1 + dx`.
    let x0 = (-dx).clamp(0, width as isize) as usize;
    let x1 = (width as isize - dx).clamp(0, width as isize) as usize;
    // Rows are visited so that each source row is read before it is overwritten.
    for i in 0..height {
        let y = if dy > 0 { i } else { height - 1 - i };
        let source = y as isize + dy;
        let row = y * width;
        if source < 0 || source >= height as isize || x0 >= x1 {
            plane[row..row + width].fill(fill);
            continue;
        }
        let from = source as usize * width + (x0 as isize + dx) as usize;
        plane.copy_within(from..from + (x1 - x0), row + x0);
        plane[row..row + x0].fill(fill);
        plane[row + x1..row + width].fill(fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    #[test]
    fn shift_matches_a_padded_crop() {
        let (h, w) = (5, 4);
        let original: Vec<f32> = (0..h * w).map(|v| v as f32).collect();
        for dy in -6..=6 {
            for dx in -5..=5 {
                let mut plane = original.clone();
                shift(&mut plane, h, w, dy, dx, -1.0);
                for y in 0..h as isize {
                    for x in 0..w as isize {
                        let (sy, sx) = (y + dy, x + dx);
                        let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                        let want = if inside {
                            (sy * w as isize + sx) as f32
                        } else {
                            -1.0
                        };
                        assert_eq!(plane[(y * w as isize + x) as usize], want, "{dy},{dx}");
                    }
                }
            }
        }
    }

    fn crop() -> (Preprocessor, Vec<f32>) {
        let pre = Preprocessor::new(16, 8, [0.5; 3], [0.25; 3]).unwrap();
        let slot = (0..pre.slot_len()).map(|v| v as f32).collect();
        (pre, slot)
    }

    #[test]
    fn flip_only_mirrors_every_row() {
        let (pre, original) = crop();
        let flip = Augment {
            flip: 1.0,
            pad: 0,
            erase: 0.0,
            ..Augment::default()
        };
        let mut slot = original.clone();
        flip.apply(&pre, &mut slot, &mut Pcg64::seed_from_u64(1))
            .unwrap();
        for (got, want) in slot.chunks(8).zip(original.chunks(8)) {
            assert!(got.iter().eq(want.iter().rev()));
        }
        let none = Augment { flip: 0.0, ..flip };
        let mut slot = original.clone();
        none.apply(&pre, &mut slot, &mut Pcg64::seed_from_u64(1))
            .unwrap();
        assert_eq!(slot, original);
    }

    #[test]
    fn erasing_fills_one_rectangle_with_valid_random_values() {
        let (pre, original) = crop();
        let erase = Augment {
            flip: 0.0,
            pad: 0,
            erase: 1.0,
            ..Augment::default()
        };
        for seed in 0..20 {
            let mut slot = original.clone();
            erase
                .apply(&pre, &mut slot, &mut Pcg64::seed_from_u64(seed))
                .unwrap();
            let changed: Vec<usize> = (0..slot.len())
                .filter(|i| slot[*i] != original[*i])
                .collect();
            // Same rectangle in all three planes, within the area bounds; values are normalised
            // intensities in [0, 1): (v - 0.5) / 0.25 in [-2, 2).
            assert_eq!(changed.len() % 3, 0);
            let per_plane = changed.len() / 3;
            assert!(per_plane > 0, "seed {seed}");
            assert!(
                per_plane as f32 <= 0.4 * 128.0 + 16.0,
                "seed {seed}: {per_plane}"
            );
            let (ys, xs): (Vec<usize>, Vec<usize>) = changed
                .iter()
                .filter(|i| **i < 128)
                .map(|i| (i / 8, i % 8))
                .unzip();
            let rows = ys.iter().max().unwrap() - ys.iter().min().unwrap() + 1;
            let cols = xs.iter().max().unwrap() - xs.iter().min().unwrap() + 1;
            assert_eq!(rows * cols, per_plane, "seed {seed}: not a rectangle");
            assert!(changed.iter().all(|i| (-2.0..2.0).contains(&slot[*i])));
        }
    }

    #[test]
    fn full_augmentation_is_seeded() {
        let (pre, original) = crop();
        let run = |seed| {
            let mut slot = original.clone();
            Augment::default()
                .apply(&pre, &mut slot, &mut Pcg64::seed_from_u64(seed))
                .unwrap();
            slot
        };
        assert_eq!(run(3), run(3));
        assert!((0..5).any(|s| run(s) != run(3)));
        assert!(Augment::default()
            .apply(
                &pre,
                &mut original.clone()[1..],
                &mut Pcg64::seed_from_u64(0)
            )
            .is_err());
        assert!(Augment::default().check().is_ok());
        assert!(Augment {
            flip: 1.5,
            ..Augment::default()
        }
        .check()
        .is_err());
        assert!(Augment {
            erase_area: (0.5, 0.2),
            ..Augment::default()
        }
        .check()
        .is_err());
        assert!(Augment {
            erase_aspect: 0.0,
            ..Augment::default()
        }
        .check()
        .is_err());
    }
}
