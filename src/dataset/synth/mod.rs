//! Synthetic people: a deterministic renderer of pedestrians with Market-1501's 12 attributes and
//! identity traits beyond them, six Market-style cameras, and Market-style detection crops (people,
//! junk and distractors).
//!
//! The real Market-1501 cannot be downloaded here, so the training crate's `synth` command renders a
//! synthetic dataset with [`render_crop`], [`render_distractor`] and [`render_junk`]; scenes (the
//! runtime's synthetic camera) compose the same pieces: [`draw_background`], then [`draw_person`]
//! for each person at any size and place, then [`Camera::develop`].
//!
//! Everything is a pure function of its seed: the same arguments give byte-identical images.

mod appearance;
mod camera;
mod crop;
mod palette;
mod person;
mod raster;
mod scene;

use rand::SeedableRng;

pub use appearance::PersonAppearance;
pub use camera::{Camera, Light, CAMERAS};
pub use crop::{render_crop, render_distractor, render_junk};
pub use person::{draw_person, View, Viewpoint};
pub use scene::{draw_background, Background};

/// A request the renderer cannot satisfy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    /// A camera number outside 1 to [`CAMERAS`].
    #[error("camera {0} does not exist: the synthetic cameras are numbered 1 to {CAMERAS}")]
    Camera(u8),
    /// An attribute class index out of range.
    #[error("attribute {attribute:?} has {classes} classes; class index {class} is out of range")]
    AttributeClass {
        /// The attribute's name.
        attribute: &'static str,
        /// The class index given.
        class: u8,
        /// Number of classes of the attribute.
        classes: usize,
    },
    /// An output image with no pixels.
    #[error("cannot render a {width}x{height} image: both sides must be at least 1 pixel")]
    EmptyImage {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
}

/// The random generator behind every draw.
pub(crate) type SynthRng = rand_pcg::Pcg64Mcg;

/// A generator seeded from several numbers (seed, identity, purpose tag, ...), mixed with
/// SplitMix64 so nearby inputs give unrelated streams.
pub(crate) fn rng(parts: &[u64]) -> SynthRng {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for &part in parts {
        h ^= part;
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
    }
    SynthRng::seed_from_u64(h)
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn rng_streams_depend_on_every_part() {
        let first = |parts: &[u64]| rng(parts).random::<u64>();
        assert_eq!(first(&[1, 2]), first(&[1, 2]));
        assert_ne!(first(&[1, 2]), first(&[2, 1]));
        assert_ne!(first(&[1, 2]), first(&[1, 2, 0]));
        assert_ne!(first(&[0]), first(&[1]));
    }
}
