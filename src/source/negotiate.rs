//! Choosing a camera format: which of the formats and sizes a camera offers to ask for, given the
//! pixel format and size the user wants. Pure functions over the camera's list, so the choice is
//! tested without hardware.

use std::fmt;
use std::str::FromStr;

use super::FrameSize;

/// The camera pixel formats edge-reid decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PixelFormat {
    /// Packed YUV 4:2:2 (`YUYV`): no decoding cost, but large frames over USB.
    #[default]
    Yuyv,
    /// Motion JPEG (`MJPG`): small frames, decoded on the CPU.
    Mjpeg,
}

impl PixelFormat {
    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }

    /// The format with this four-character code, if edge-reid decodes it.
    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<Self> {
        match &fourcc {
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"MJPG" => Some(PixelFormat::Mjpeg),
            _ => None,
        }
    }

    /// The other format.
    fn other(self) -> Self {
        match self {
            PixelFormat::Yuyv => PixelFormat::Mjpeg,
            PixelFormat::Mjpeg => PixelFormat::Yuyv,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Mjpeg => "MJPEG",
        })
    }
}

/// An unknown pixel format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pixel format {0:?}: expected yuyv or mjpeg")]
pub struct UnknownPixelFormat(String);

impl FromStr for PixelFormat {
    type Err = UnknownPixelFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yuyv" | "yuy2" => Ok(PixelFormat::Yuyv),
            "mjpeg" | "mjpg" => Ok(PixelFormat::Mjpeg),
            _ => Err(UnknownPixelFormat(s.to_string())),
        }
    }
}

/// Frame sizes a camera offers for one pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfferedSizes {
    /// One size.
    Discrete(FrameSize),
    /// Every size from `min` to `max` in steps of `step`.
    Stepwise {
        min: FrameSize,
        max: FrameSize,
        step: FrameSize,
    },
}

impl OfferedSizes {
    /// The offered size closest to `want` (smallest sum of the width and height differences).
    fn closest(&self, want: FrameSize) -> FrameSize {
        match *self {
            OfferedSizes::Discrete(size) => size,
            OfferedSizes::Stepwise { min, max, step } => {
                let snap = |v: u32, lo: u32, hi: u32, step: u32| {
                    let step = u64::from(step.max(1));
                    let hi = u64::from(hi.max(lo));
                    let lo = u64::from(lo);
                    let v = u64::from(v).clamp(lo, hi);
                    let snapped = lo + (v - lo + step / 2) / step * step;
                    // Round down when rounding up passes the maximum.
                    let snapped = if snapped > hi {
                        snapped - step
                    } else {
                        snapped
                    };
                    u32::try_from(snapped).unwrap_or(u32::MAX)
                };
                FrameSize::new(
                    snap(want.width, min.width, max.width, step.width),
                    snap(want.height, min.height, max.height, step.height),
                )
            }
        }
    }
}

impl fmt::Display for OfferedSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfferedSizes::Discrete(size) => write!(f, "{size}"),
            OfferedSizes::Stepwise { min, max, step } => {
                write!(f, "{min} to {max} in steps of {step}")
            }
        }
    }
}

/// One pixel format a camera offers and its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferedFormat {
    /// The V4L2 four-character code.
    pub fourcc: [u8; 4],
    /// The driver's description, e.g. `Motion-JPEG`.
    pub description: String,
    /// The sizes it comes in.
    pub sizes: Vec<OfferedSizes>,
}

/// The format to ask the camera for: the offered size closest to `want` in either decodable
/// format, preferring `preferred` between equally close sizes. `None` when the camera offers
/// neither YUYV nor MJPEG (or lists no size for them).
pub(crate) fn choose_format(
    offered: &[OfferedFormat],
    preferred: PixelFormat,
    want: FrameSize,
) -> Option<(PixelFormat, FrameSize)> {
    let distance = |s: FrameSize| {
        u64::from(s.width.abs_diff(want.width)) + u64::from(s.height.abs_diff(want.height))
    };
    [preferred, preferred.other()]
        .into_iter()
        .enumerate()
        .flat_map(|(rank, format)| {
            offered
                .iter()
                .filter(move |o| o.fourcc == format.fourcc())
                .flat_map(|o| o.sizes.iter())
                .map(move |sizes| {
                    let size = sizes.closest(want);
                    ((distance(size), rank), (format, size))
                })
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, choice)| choice)
}

/// The camera's formats for an error message: `YUYV (YUYV 4:2:2): 640x480, 1280x720; H264 ...`.
pub(crate) fn describe_offered(offered: &[OfferedFormat]) -> String {
    if offered.is_empty() {
        return "no formats at all".to_string();
    }
    offered
        .iter()
        .map(|o| {
            let fourcc = String::from_utf8_lossy(&o.fourcc).into_owned();
            let sizes: Vec<String> = o.sizes.iter().map(ToString::to_string).collect();
            let sizes = if sizes.is_empty() {
                "no sizes listed".to_string()
            } else {
                sizes.join(", ")
            };
            format!("{fourcc} ({}): {sizes}", o.description)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(w: u32, h: u32) -> FrameSize {
        FrameSize::new(w, h)
    }

    fn discrete(fourcc: &[u8; 4], sizes: &[(u32, u32)]) -> OfferedFormat {
        OfferedFormat {
            fourcc: *fourcc,
            description: String::from_utf8_lossy(fourcc).into_owned(),
            sizes: sizes
                .iter()
                .map(|&(w, h)| OfferedSizes::Discrete(size(w, h)))
                .collect(),
        }
    }

    #[test]
    fn pixel_formats_parse_and_map_to_fourccs() {
        assert_eq!("YUYV".parse::<PixelFormat>(), Ok(PixelFormat::Yuyv));
        assert_eq!("mjpg".parse::<PixelFormat>(), Ok(PixelFormat::Mjpeg));
        assert!("h264".parse::<PixelFormat>().is_err());
        for f in [PixelFormat::Yuyv, PixelFormat::Mjpeg] {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
        }
        assert_eq!(PixelFormat::from_fourcc(*b"H264"), None);
    }

    #[test]
    fn the_exact_size_in_the_preferred_format_wins() {
        let cam = [
            discrete(b"MJPG", &[(640, 480), (1280, 720)]),
            discrete(b"YUYV", &[(640, 480), (320, 240)]),
        ];
        let want = size(640, 480);
        assert_eq!(
            choose_format(&cam, PixelFormat::Yuyv, want),
            Some((PixelFormat::Yuyv, want))
        );
        assert_eq!(
            choose_format(&cam, PixelFormat::Mjpeg, want),
            Some((PixelFormat::Mjpeg, want))
        );
    }

    #[test]
    fn the_other_format_is_used_when_it_has_the_size() {
        // YUYV only at full HD (a common webcam: raw frames too big for USB 2 at high sizes).
        let cam = [
            discrete(b"YUYV", &[(1920, 1080)]),
            discrete(b"MJPG", &[(640, 480), (1920, 1080)]),
        ];
        assert_eq!(
            choose_format(&cam, PixelFormat::Yuyv, size(640, 480)),
            Some((PixelFormat::Mjpeg, size(640, 480)))
        );
        // Neither has the size: the closest one, in the preferred format on a tie.
        assert_eq!(
            choose_format(&cam, PixelFormat::Yuyv, size(1900, 1000)),
            Some((PixelFormat::Yuyv, size(1920, 1080)))
        );
        assert_eq!(
            choose_format(&cam, PixelFormat::Yuyv, size(800, 600)),
            Some((PixelFormat::Mjpeg, size(640, 480)))
        );
    }

    #[test]
    fn stepwise_sizes_snap_to_the_grid_within_range() {
        let cam = [OfferedFormat {
            fourcc: *b"YUYV",
            description: "YUYV 4:2:2".into(),
            sizes: vec![OfferedSizes::Stepwise {
                min: size(160, 120),
                max: size(1280, 720),
                step: size(16, 8),
            }],
        }];
        let pick = |w, h| choose_format(&cam, PixelFormat::Mjpeg, size(w, h)).map(|c| c.1);
        assert_eq!(pick(640, 360), Some(size(640, 360)));
        assert_eq!(pick(650, 363), Some(size(656, 360)));
        assert_eq!(pick(4000, 10), Some(size(1280, 120)));
        assert_eq!(
            choose_format(&cam, PixelFormat::Mjpeg, size(640, 360)),
            Some((PixelFormat::Yuyv, size(640, 360)))
        );
        // A zero step (continuous range) is taken as 1 and never panics.
        let continuous = OfferedSizes::Stepwise {
            min: size(2, 2),
            max: size(9, 9),
            step: size(0, 0),
        };
        assert_eq!(continuous.closest(size(5, 100)), size(5, 9));
        // A range whose maximum is off the grid rounds down, not past it.
        let odd = OfferedSizes::Stepwise {
            min: size(10, 10),
            max: size(25, 25),
            step: size(10, 10),
        };
        assert_eq!(odd.closest(size(25, 24)), size(20, 20));
    }

    #[test]
    fn no_decodable_format_gives_none_and_a_readable_list() {
        let cam = [
            discrete(b"H264", &[(1920, 1080)]),
            OfferedFormat {
                fourcc: *b"GREY",
                description: "8-bit Greyscale".into(),
                sizes: vec![OfferedSizes::Stepwise {
                    min: size(64, 64),
                    max: size(640, 480),
                    step: size(2, 2),
                }],
            },
        ];
        assert_eq!(choose_format(&cam, PixelFormat::Yuyv, size(640, 480)), None);
        assert_eq!(choose_format(&[], PixelFormat::Yuyv, size(640, 480)), None);
        // A decodable format with no sizes is no use either.
        assert_eq!(
            choose_format(&[discrete(b"YUYV", &[])], PixelFormat::Yuyv, size(1, 1)),
            None
        );
        assert_eq!(
            describe_offered(&cam),
            "H264 (H264): 1920x1080; GREY (8-bit Greyscale): 64x64 to 640x480 in steps of 2x2"
        );
        assert_eq!(describe_offered(&[]), "no formats at all");
    }
}
