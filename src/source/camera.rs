//! A V4L2 webcam through the `v4l` crate: YUYV or MJPEG at the asked size and frame rate, the format
//! re-read after negotiation and used as the driver set it, memory-mapped streaming, each buffer
//! sliced by its `bytesused`, a read timeout, and reconnection with back-off when the camera goes
//! away.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::capability::Flags as CapabilityFlags;
use v4l::framesize::FrameSizeEnum;
use v4l::io::traits::CaptureStream;
use v4l::prelude::*;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Format, FourCC};

use crate::backoff::{Backoff, Retries};

use super::negotiate::{choose_format, describe_offered, OfferedFormat, OfferedSizes};
use super::{
    yuyv_to_rgb, ConvertError, Frame, FrameSize, FrameSource, MjpegDecoder, PixelFormat,
    SourceError,
};

/// Capture buffers the driver fills in turn.
const BUFFERS: u32 = 4;

/// Longest read timeout (the `v4l` crate keeps it in milliseconds as an `i32`).
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// What to open and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraConfig {
    /// The device node, e.g. `/dev/video0`.
    pub device: PathBuf,
    /// The frame size to ask for (the closest the camera offers is used).
    pub size: FrameSize,
    /// Frames per second to ask for (the driver may pick another rate; 0 leaves it as it is).
    pub fps: u32,
    /// The pixel format to prefer; the other one is used when it offers a closer size.
    pub format: PixelFormat,
    /// How long to wait for a frame before taking the camera for lost.
    pub timeout: Duration,
    /// How to reconnect a lost camera.
    pub backoff: Backoff,
}

impl CameraConfig {
    /// `device` at 640x480, 30 fps, YUYV preferred, a 2 s timeout and the default back-off.
    pub fn new(device: impl Into<PathBuf>) -> Self {
        Self {
            device: device.into(),
            size: FrameSize::new(640, 480),
            fps: 30,
            format: PixelFormat::Yuyv,
            timeout: Duration::from_secs(2),
            backoff: Backoff::default(),
        }
    }
}

/// The format the driver actually set.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Negotiated {
    format: PixelFormat,
    size: FrameSize,
    /// Bytes per line (YUYV).
    stride: usize,
    /// Frame rate the driver reports, if it does.
    fps: Option<f64>,
}

impl fmt::Display for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format, self.size)?;
        match self.fps {
            Some(fps) => write!(f, ", {fps:.3} fps"),
            None => write!(f, ", frame rate unknown"),
        }
    }
}

/// An open, streaming camera.
struct Session {
    stream: MmapStream<'static>,
    negotiated: Negotiated,
    card: String,
}

/// A V4L2 camera streaming YUYV or MJPEG frames, converted to RGB.
///
/// A failed or timed-out read closes the camera and reopens it with back-off ([`Backoff`]),
/// logging each attempt to stderr; when every attempt fails, [`FrameSource::next_frame_into`]
/// returns [`SourceError::Disconnected`] (calling it again starts a new round of attempts). A
/// frame that does not decode (a corrupt MJPEG frame) or that the driver marks as corrupt is a
/// [`SourceError::Frame`] for that frame only. The stream never ends by itself.
pub struct V4lCamera {
    config: CameraConfig,
    session: Option<Session>,
    mjpeg: MjpegDecoder,
    /// Reconnection attempts since the last frame was delivered.
    retries: Retries,
    start: Instant,
    index: u64,
}

impl V4lCamera {
    /// Opens the camera and negotiates its format. A missing device, a device that is not a
    /// camera, or a camera without YUYV or MJPEG is an error naming the device (the last one
    /// lists the formats and sizes the camera offers).
    pub fn open(config: CameraConfig) -> Result<Self, SourceError> {
        let session = open_session(&config)?;
        Ok(Self {
            retries: Retries::new(config.backoff),
            config,
            session: Some(session),
            mjpeg: MjpegDecoder::new(),
            start: Instant::now(),
            index: 0,
        })
    }

    /// Drops the stream and reopens the camera with back-off. The attempts count on until a frame
    /// arrives, so a camera that reopens but stalls (a read timeout after each reopen) is lost
    /// after as many attempts as one that does not reopen.
    fn reconnect(&mut self, cause: String) -> Result<(), SourceError> {
        self.session = None;
        let device = self.config.device.display();
        eprintln!("edge-reid: camera {device} lost: {cause}");
        let mut last = cause;
        while let Some(delay) = self.retries.next_delay() {
            let attempt = self.retries.attempts();
            eprintln!(
                "edge-reid: camera {device}: reconnection attempt {attempt} of {} in {:.2} s",
                self.config.backoff.attempts,
                delay.as_secs_f64()
            );
            std::thread::sleep(delay);
            match open_session(&self.config) {
                Ok(session) => {
                    eprintln!(
                        "edge-reid: camera {device} is back ({})",
                        session.negotiated
                    );
                    self.session = Some(session);
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(SourceError::Disconnected {
            device: self.config.device.clone(),
            attempts: self.config.backoff.attempts,
            last,
        })
    }
}

impl FrameSource for V4lCamera {
    fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        loop {
            let Some(session) = self.session.as_mut() else {
                self.reconnect("the previous reconnection failed".into())?;
                continue;
            };
            let n = session.negotiated;
            let converted = match session.stream.next() {
                // The driver flags buffers it knows are corrupt: a frame that fails alone.
                Ok((_, meta)) if meta.flags.contains(BufferFlags::ERROR) => {
                    Ok(Err(ConvertError::Flagged))
                }
                Ok((buf, meta)) => {
                    let data = frame_bytes(buf, meta.bytesused);
                    Ok(match n.format {
                        PixelFormat::Yuyv => yuyv_to_rgb(
                            data,
                            n.size.width,
                            n.size.height,
                            n.stride,
                            &mut frame.image,
                        ),
                        PixelFormat::Mjpeg => {
                            self.mjpeg
                                .decode(data, n.size.width, n.size.height, &mut frame.image)
                        }
                    })
                }
                Err(e) => Err(e),
            };
            match converted {
                Ok(result) => {
                    self.retries.succeeded();
                    let index = self.index;
                    self.index += 1;
                    result.map_err(|from| SourceError::Frame {
                        name: self.config.device.display().to_string(),
                        index,
                        from,
                    })?;
                    frame.index = index;
                    frame.timestamp = self.start.elapsed();
                    frame.truth.clear();
                    return Ok(true);
                }
                Err(e) => self.reconnect(e.to_string())?,
            }
        }
    }

    fn describe(&self) -> String {
        let device = self.config.device.display();
        match &self.session {
            Some(s) => format!("camera {device} ({}: {})", s.card, s.negotiated),
            None => format!("camera {device} (disconnected)"),
        }
    }
}

/// The bytes of a dequeued buffer that hold the frame: the first `bytesused`, or the whole buffer
/// when the driver does not say (0) or says more than the buffer holds.
fn frame_bytes(buf: &[u8], bytesused: u32) -> &[u8] {
    match usize::try_from(bytesused) {
        Ok(used) if used > 0 && used <= buf.len() => &buf[..used],
        _ => buf,
    }
}

fn camera_error(device: &Path, action: &'static str) -> impl FnOnce(io::Error) -> SourceError {
    let device = device.to_path_buf();
    move |source| SourceError::Camera {
        device,
        action,
        source,
    }
}

/// The formats and sizes the device lists.
fn offered_formats(device: &Device) -> io::Result<Vec<OfferedFormat>> {
    let size = |w, h| FrameSize::new(w, h);
    device
        .enum_formats()?
        .into_iter()
        .map(|d| {
            // Some drivers list no sizes for some formats: that is no size, not an error.
            let sizes = device
                .enum_framesizes(d.fourcc)
                .unwrap_or_default()
                .into_iter()
                .map(|s| match s.size {
                    FrameSizeEnum::Discrete(d) => OfferedSizes::Discrete(size(d.width, d.height)),
                    FrameSizeEnum::Stepwise(s) => OfferedSizes::Stepwise {
                        min: size(s.min_width, s.min_height),
                        max: size(s.max_width, s.max_height),
                        step: size(s.step_width, s.step_height),
                    },
                })
                .collect();
            Ok(OfferedFormat {
                fourcc: d.fourcc.repr,
                description: d.description,
                sizes,
            })
        })
        .collect()
}

/// Opens the device, negotiates the format and frame rate, and starts a memory-mapped stream.
fn open_session(config: &CameraConfig) -> Result<Session, SourceError> {
    let path = config.device.as_path();
    let device = Device::with_path(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            SourceError::NoDevice {
                device: path.to_path_buf(),
            }
        } else {
            SourceError::Open {
                device: path.to_path_buf(),
                source,
            }
        }
    })?;
    let caps = device.query_caps().map_err(camera_error(
        path,
        "querying its capabilities (is it a V4L2 device?)",
    ))?;
    if !caps
        .capabilities
        .contains(CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING)
    {
        return Err(SourceError::NotCapture {
            device: path.to_path_buf(),
            card: caps.card,
        });
    }
    let offered = offered_formats(&device).map_err(camera_error(path, "listing its formats"))?;
    let wanted = format!("{} {}", config.format, config.size);
    let (format, size) = choose_format(&offered, config.format, config.size).ok_or_else(|| {
        SourceError::NoFormat {
            device: path.to_path_buf(),
            wanted: wanted.clone(),
            offered: describe_offered(&offered),
        }
    })?;
    let asked = Format::new(size.width, size.height, FourCC::new(&format.fourcc()));
    // `set_format` reads the format back: what the driver set is what we decode.
    let actual = device
        .set_format(&asked)
        .map_err(camera_error(path, "setting the format"))?;
    let got = PixelFormat::from_fourcc(actual.fourcc.repr).ok_or_else(|| {
        SourceError::FormatRejected {
            device: path.to_path_buf(),
            asked: format!("{format} {size}"),
            got: format!(
                "{} {}x{}",
                String::from_utf8_lossy(&actual.fourcc.repr),
                actual.width,
                actual.height
            ),
        }
    })?;
    let actual_size = FrameSize::new(actual.width, actual.height);
    if (got, actual_size) != (config.format, config.size) {
        eprintln!(
            "edge-reid: camera {}: asked for {wanted}, using {got} {actual_size}",
            path.display()
        );
    }
    let fps = negotiate_fps(&device, path, config.fps);
    let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, BUFFERS)
        .map_err(camera_error(path, "allocating capture buffers"))?;
    stream.set_timeout(config.timeout.min(MAX_TIMEOUT));
    Ok(Session {
        stream,
        negotiated: Negotiated {
            format: got,
            size: actual_size,
            // Some drivers leave bytes-per-line at 0 for packed formats: lines are then unpadded.
            stride: match actual.stride {
                0 => actual.width as usize * 2,
                stride => stride as usize,
            },
            fps,
        },
        card: caps.card,
    })
}

/// Asks for `fps` frames per second (0 leaves the rate alone) and returns the rate the driver
/// reports. A driver that cannot set or report the rate is not an error: it is logged.
fn negotiate_fps(device: &Device, path: &Path, fps: u32) -> Option<f64> {
    let params = if fps == 0 {
        device.params()
    } else {
        device.set_params(&Parameters::with_fps(fps))
    };
    match params {
        Ok(p) if p.interval.numerator > 0 => {
            Some(f64::from(p.interval.denominator) / f64::from(p.interval.numerator))
        }
        Ok(_) => None,
        Err(e) => {
            eprintln!(
                "edge-reid: camera {}: cannot set {fps} fps ({e}); using its own rate",
                path.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Next, Prefetch};

    #[test]
    fn a_missing_device_is_a_clear_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("video7");
        let err = V4lCamera::open(CameraConfig::new(&path)).err().unwrap();
        assert!(
            matches!(&err, SourceError::NoDevice { device } if *device == path),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("does not exist"), "{message}");
    }

    #[test]
    fn a_file_that_is_not_a_camera_is_refused_naming_it() {
        let file = tempfile::NamedTempFile::new().unwrap();
        for path in [file.path(), Path::new("/dev/null")] {
            let err = V4lCamera::open(CameraConfig::new(path)).err().unwrap();
            assert!(
                matches!(&err, SourceError::Camera { device, .. } if device == path),
                "{}: {err}",
                path.display()
            );
            assert!(err.to_string().contains("V4L2 device"), "{err}");
        }
    }

    /// A camera that went away waits between reconnection attempts (the default schedule: 0.25,
    /// 0.5, 1, 2 s ...); read through a [`Prefetch`] as `run` reads it, the caller
    /// still sees every 50 ms that no frame came, and can stop at once, mid-wait.
    #[test]
    fn a_caller_can_stop_within_a_poll_while_a_lost_camera_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let camera = V4lCamera {
            config: CameraConfig::new(dir.path().join("video7")),
            session: None,
            mjpeg: MjpegDecoder::new(),
            retries: Retries::new(Backoff::default()),
            start: Instant::now(),
            index: 0,
        };
        let reader = Prefetch::spawn(camera, "lost camera").unwrap();
        // 1.5 s: the first attempts fail, the third waits a second.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            let polled = Instant::now();
            let next = reader.next(Duration::from_millis(50));
            assert!(matches!(next, Next::Waiting), "{next:?}");
            assert!(polled.elapsed() < Duration::from_millis(250));
        }
        let stopping = Instant::now();
        drop(reader);
        assert!(stopping.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn buffers_are_sliced_by_bytesused() {
        let buf = [1, 2, 3, 4, 5];
        assert_eq!(frame_bytes(&buf, 3), &[1, 2, 3]);
        assert_eq!(frame_bytes(&buf, 5), &buf);
        // Unknown (0) or impossible sizes use the whole buffer.
        assert_eq!(frame_bytes(&buf, 0), &buf);
        assert_eq!(frame_bytes(&buf, 9), &buf);
    }

    #[test]
    fn negotiated_formats_print_for_logs() {
        let n = Negotiated {
            format: PixelFormat::Mjpeg,
            size: FrameSize::new(1280, 720),
            stride: 0,
            fps: Some(30.0),
        };
        assert_eq!(n.to_string(), "MJPEG 1280x720, 30.000 fps");
        let unknown = Negotiated { fps: None, ..n };
        assert_eq!(unknown.to_string(), "MJPEG 1280x720, frame rate unknown");
    }
}
