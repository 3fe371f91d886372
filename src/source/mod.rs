//! Frame sources: where the pipeline's images come from.
//!
//! Every source implements [`FrameSource`]: a V4L2 webcam ([`V4lCamera`], YUYV or MJPEG, with
//! reconnection), image files and folders ([`ImageFiles`]), raw RGB frames on stdin or any reader
//! ([`RawFrames`], for `ffmpeg ... -f rawvideo -pix_fmt rgb24 -`) and a synthetic camera that
//! renders people walking ([`SyntheticCamera`], no hardware needed, with the true boxes of the
//! people it drew). [`Prefetch`] reads any of them on a thread of its own, so that a caller can
//! stop while the source blocks.

mod camera;
mod convert;
mod files;
mod negotiate;
mod prefetch;
mod raw;
mod skip;
mod synthetic;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use image::RgbImage;

pub use camera::{CameraConfig, V4lCamera};
pub use convert::{yuyv_to_rgb, ConvertError, MjpegDecoder};
pub use files::ImageFiles;
pub use negotiate::{PixelFormat, UnknownPixelFormat};
pub use prefetch::{Next, Prefetch, Read};
pub use raw::RawFrames;
pub use skip::SkipUnreadable;
pub use synthetic::{SyntheticCamera, SyntheticConfig};

use crate::dataset::synth::SynthError;

/// One image from a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    /// The picture, RGB.
    pub image: RgbImage,
    /// Position in the stream, from 0 (for files: the position in [`ImageFiles::paths`]).
    pub index: u64,
    /// Time since the source started: capture time for cameras and stdin, read time for files,
    /// `index / fps` for the synthetic camera.
    pub timestamp: Duration,
    /// The people in the picture and where they are; only the synthetic camera knows this (other
    /// sources leave it empty).
    pub truth: Vec<TruthBox>,
}

/// Where a person the synthetic camera drew is, in pixels of the frame (clipped to it): the box a
/// good person detector would give, the whole body with a small margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TruthBox {
    /// The person's identity (see [`SyntheticCamera::people`]).
    pub identity: u32,
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A stream of frames.
///
/// After an error the source can usually go on: a corrupt image file or camera frame fails only
/// that frame, and the next call reads the next one. A source that cannot go on says so by
/// returning the end of the stream (or the same error) on the next call.
pub trait FrameSource {
    /// Reads the next frame into `frame`, reusing its image buffer where the size allows.
    /// Returns `false` at the end of the stream (then `frame` is unchanged).
    fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError>;

    /// A one-line description for logs, e.g. `camera /dev/video0 (YUYV 640x480, 30 fps)`.
    fn describe(&self) -> String;

    /// The next frame in a new buffer, or `None` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let mut frame = Frame::default();
        Ok(self.next_frame_into(&mut frame)?.then_some(frame))
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        (**self).next_frame_into(frame)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// The longest frame side any source accepts (8K video is 7680 wide): one RGB frame is at most
/// 192 MiB.
pub const MAX_SIDE: u32 = 1 << 13;

/// A frame size in pixels, written `WIDTHxHEIGHT` (e.g. `640x480`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl FrameSize {
    /// A `width` x `height` size.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// Bytes of one RGB frame of this size, or `None` where a side exceeds [`MAX_SIDE`] or the
    /// count does not fit in `usize`.
    pub fn rgb_bytes(self) -> Option<usize> {
        if self.width > MAX_SIDE || self.height > MAX_SIDE {
            return None;
        }
        usize::try_from(self.width)
            .ok()?
            .checked_mul(usize::try_from(self.height).ok()?)?
            .checked_mul(3)
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for FrameSize {
    type Err = SourceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || SourceError::Size {
            text: text.to_string(),
        };
        let (w, h) = text.trim().split_once(['x', 'X']).ok_or_else(invalid)?;
        let side = |s: &str| s.parse::<u32>().ok().filter(|v| (1..=MAX_SIDE).contains(v));
        match (side(w), side(h)) {
            (Some(width), Some(height)) => Ok(Self { width, height }),
            _ => Err(invalid()),
        }
    }
}

/// Why a source could not open or deliver a frame. Each variant names the device, file or stream.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A frame size that is not `WIDTHxHEIGHT` with sides from 1 to [`MAX_SIDE`].
    #[error("invalid frame size {text:?}: expected WIDTHxHEIGHT with both sides from 1 to {MAX_SIDE}, e.g. 640x480")]
    Size {
        /// The text given.
        text: String,
    },
    /// The camera's device node does not exist.
    #[error("camera {} does not exist (no such device node; is the camera plugged in? `ls /dev/video*` lists the cameras)", device.display())]
    NoDevice {
        /// The device path given.
        device: PathBuf,
    },
    /// The device node exists but could not be opened.
    #[error("cannot open camera {}: {source}", device.display())]
    Open {
        /// The device path.
        device: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The device is not a streaming video capture device (e.g. a metadata node).
    #[error("{} ({card}) is not a video capture device with streaming I/O; try another /dev/video* node", device.display())]
    NotCapture {
        /// The device path.
        device: PathBuf,
        /// The driver's name for the device.
        card: String,
    },
    /// A V4L2 request to the camera failed.
    #[error("camera {}: {action} failed: {source}", device.display())]
    Camera {
        /// The device path.
        device: PathBuf,
        /// What was being done, e.g. "setting the format".
        action: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// The camera offers neither YUYV nor MJPEG.
    #[error("camera {} offers no format edge-reid can read (YUYV or MJPEG, wanted {wanted}); it offers: {offered}", device.display())]
    NoFormat {
        /// The device path.
        device: PathBuf,
        /// What was asked for, e.g. `YUYV 640x480`.
        wanted: String,
        /// The formats and sizes the camera lists.
        offered: String,
    },
    /// The driver switched to a pixel format other than the one asked for and edge-reid cannot
    /// decode it.
    #[error("camera {} was asked for {asked} but switched to {got}, which edge-reid cannot decode", device.display())]
    FormatRejected {
        /// The device path.
        device: PathBuf,
        /// The format asked for.
        asked: String,
        /// The format the driver set.
        got: String,
    },
    /// The camera went away and did not come back.
    #[error("camera {} was lost and did not come back after {attempts} reconnection attempts (last error: {last})", device.display())]
    Disconnected {
        /// The device path.
        device: PathBuf,
        /// Reconnection attempts made.
        attempts: u32,
        /// The last error seen.
        last: String,
    },
    /// One frame's bytes could not be turned into an image; the source can go on.
    #[error("{name}: frame {index} cannot be decoded: {from}")]
    Frame {
        /// The source, e.g. `/dev/video0`.
        name: String,
        /// The frame's index.
        index: u64,
        /// What is wrong with it.
        #[source]
        from: ConvertError,
    },
    /// Too many frames in a row could not be read ([`SkipUnreadable`]).
    #[error("{name}: {count} frames in a row could not be read; the last: {last}")]
    Unreadable {
        /// The source.
        name: String,
        /// Failures in a row.
        count: u32,
        /// The last failure.
        last: Box<SourceError>,
    },
    /// An input path that does not exist.
    #[error("input {} does not exist", path.display())]
    MissingInput {
        /// The path given.
        path: PathBuf,
    },
    /// A folder that could not be listed.
    #[error("cannot list folder {}: {source}", path.display())]
    ListFolder {
        /// The folder.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The inputs hold no image files.
    #[error("no images (.jpg, .jpeg, .png, .bmp) in {inputs}")]
    NoImages {
        /// The inputs given, comma-separated.
        inputs: String,
    },
    /// An image file that cannot be read or decoded; the source can go on with the next file.
    #[error("{source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        source: crate::picture::PictureError,
    },
    /// A raw stream ended in the middle of a frame.
    #[error("{name}: frame {index} is incomplete: got {got} of {expected} bytes (is the frame size right? raw input must be rgb24 frames of exactly WIDTH*HEIGHT*3 bytes)")]
    ShortFrame {
        /// The stream, e.g. `stdin`.
        name: String,
        /// The frame's index.
        index: u64,
        /// Bytes that arrived.
        got: usize,
        /// Bytes of a whole frame.
        expected: usize,
    },
    /// Reading a raw stream failed.
    #[error("{name}: reading frame {index} failed: {source}")]
    Read {
        /// The stream, e.g. `stdin`.
        name: String,
        /// The frame's index.
        index: u64,
        /// The system's error.
        source: io::Error,
    },
    /// A frame size too large to hold in memory.
    #[error("{name}: a {size} frame is too large")]
    TooLarge {
        /// The source.
        name: String,
        /// The size asked for.
        size: FrameSize,
    },
    /// A synthetic camera setting out of range.
    #[error("synthetic camera: {0}")]
    Synthetic(String),
    /// The renderer refused a request (camera number, image size).
    #[error(transparent)]
    Synth(#[from] SynthError),
}

impl SourceError {
    /// Whether only this frame or file failed and the source can go on with the next one (a
    /// corrupt camera frame, an image file that does not decode).
    pub fn fails_only_itself(&self) -> bool {
        matches!(self, Self::Frame { .. } | Self::Image { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_parse_and_print() {
        let size: FrameSize = "640x480".parse().unwrap();
        assert_eq!(size, FrameSize::new(640, 480));
        assert_eq!(size.to_string(), "640x480");
        assert_eq!(
            " 64X48 ".parse::<FrameSize>().unwrap(),
            FrameSize::new(64, 48)
        );
        assert_eq!(size.rgb_bytes(), Some(640 * 480 * 3));
        assert_eq!(
            "8192x8192".parse::<FrameSize>().unwrap().rgb_bytes(),
            Some(192 << 20)
        );
        assert_eq!(FrameSize::new(MAX_SIDE + 1, 1).rgb_bytes(), None);
        for bad in [
            "640",
            "0x480",
            "640x0",
            "x480",
            "640x",
            "-1x2",
            "axb",
            "640x480x3",
            // 3 GiB a frame.
            "32768x32768",
            "8193x1",
        ] {
            let err = bad.parse::<FrameSize>().unwrap_err();
            assert!(
                matches!(&err, SourceError::Size { text } if text == bad),
                "{bad}: {err}"
            );
        }
    }

    /// A source of three numbered grey frames.
    struct Counter(u8);

    impl FrameSource for Counter {
        fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
            if self.0 == 3 {
                return Ok(false);
            }
            frame.image = RgbImage::from_pixel(2, 1, image::Rgb([self.0; 3]));
            frame.index = u64::from(self.0);
            self.0 += 1;
            Ok(true)
        }

        fn describe(&self) -> String {
            "counter".into()
        }
    }

    #[test]
    fn next_frame_wraps_next_frame_into_and_ends_with_none() {
        let mut source = Counter(0);
        let mut seen = Vec::new();
        while let Some(frame) = source.next_frame().unwrap() {
            seen.push((frame.index, frame.image.get_pixel(1, 0).0[0]));
        }
        assert_eq!(seen, [(0, 0), (1, 1), (2, 2)]);
        assert!(source.next_frame().unwrap().is_none());
    }
}
