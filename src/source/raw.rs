//! Raw RGB frames from stdin or any reader: back-to-back `rgb24` frames of exactly
//! `width * height * 3` bytes, as `ffmpeg -i INPUT -f rawvideo -pix_fmt rgb24 -` writes them.

use std::io::{self, Read};
use std::time::Instant;

use image::RgbImage;

use super::{Frame, FrameSize, FrameSource, SourceError};

/// Fixed-size RGB frames read from a byte stream. The stream ends cleanly at a frame boundary; a
/// stream that stops inside a frame gives [`SourceError::ShortFrame`] (how many bytes arrived, how
/// many a frame needs, which frame), and then the end of the stream.
#[derive(Debug)]
pub struct RawFrames<R> {
    reader: R,
    size: FrameSize,
    bytes: usize,
    name: String,
    index: u64,
    start: Instant,
}

impl RawFrames<io::Stdin> {
    /// Frames of `size` from standard input (buffered by the standard library; not locked, so
    /// the source can be read on another thread).
    pub fn stdin(size: FrameSize) -> Result<Self, SourceError> {
        Self::new(io::stdin(), size, "stdin")
    }
}

impl<R: Read> RawFrames<R> {
    /// Frames of `size` read from `reader`, called `name` in errors and logs.
    pub fn new(reader: R, size: FrameSize, name: impl Into<String>) -> Result<Self, SourceError> {
        let name = name.into();
        let bytes = size
            .rgb_bytes()
            .filter(|&b| b > 0)
            .ok_or_else(|| SourceError::TooLarge {
                name: name.clone(),
                size,
            })?;
        Ok(Self {
            reader,
            size,
            bytes,
            name,
            index: 0,
            start: Instant::now(),
        })
    }
}

impl<R: Read> FrameSource for RawFrames<R> {
    fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let (width, height) = (self.size.width, self.size.height);
        if frame.image.dimensions() != (width, height) {
            frame.image = RgbImage::new(width, height);
        }
        let buf: &mut [u8] = &mut frame.image;
        let mut got = 0;
        while got < self.bytes {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(SourceError::Read {
                        name: self.name.clone(),
                        index: self.index,
                        source,
                    })
                }
            }
        }
        let index = self.index;
        match got {
            0 => Ok(false),
            got if got < self.bytes => {
                self.index += 1;
                Err(SourceError::ShortFrame {
                    name: self.name.clone(),
                    index,
                    got,
                    expected: self.bytes,
                })
            }
            _ => {
                self.index += 1;
                frame.index = index;
                frame.timestamp = self.start.elapsed();
                frame.truth.clear();
                Ok(true)
            }
        }
    }

    fn describe(&self) -> String {
        format!("raw rgb24 {} frames from {}", self.size, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 2x2 frames whose bytes count up from the frame number.
    fn stream(frames: u8) -> Vec<u8> {
        (0..frames)
            .flat_map(|f| (0..12).map(move |i| f * 16 + i))
            .collect()
    }

    #[test]
    fn whole_frames_are_read_into_the_same_buffer_until_eof() {
        let data = stream(3);
        let mut source = RawFrames::new(data.as_slice(), FrameSize::new(2, 2), "test").unwrap();
        let mut frame = Frame::default();
        assert!(source.next_frame_into(&mut frame).unwrap());
        let buffer = frame.image.as_raw().as_ptr();
        let mut seen = vec![frame.image.as_raw().clone()];
        while source.next_frame_into(&mut frame).unwrap() {
            assert_eq!(frame.image.as_raw().as_ptr(), buffer, "buffer reused");
            assert_eq!(frame.index as usize, seen.len());
            seen.push(frame.image.as_raw().clone());
        }
        assert_eq!(seen.concat(), data);
        assert_eq!(frame.image.get_pixel(1, 1).0, [41, 42, 43]);
        assert!(!source.next_frame_into(&mut frame).unwrap());
        assert_eq!(source.describe(), "raw rgb24 2x2 frames from test");
    }

    #[test]
    fn a_short_final_frame_says_how_many_bytes_arrived() {
        let mut data = stream(2);
        data.truncate(12 + 7);
        let mut source = RawFrames::new(data.as_slice(), FrameSize::new(2, 2), "stdin").unwrap();
        let mut frame = Frame::default();
        assert!(source.next_frame_into(&mut frame).unwrap());
        let err = source.next_frame_into(&mut frame).unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::ShortFrame {
                    index: 1,
                    got: 7,
                    expected: 12,
                    ..
                }
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("stdin") && message.contains("7 of 12 bytes"),
            "{message}"
        );
        // Then the stream is over.
        assert!(!source.next_frame_into(&mut frame).unwrap());
    }

    #[test]
    fn the_wrong_frame_size_shows_up_as_a_short_frame() {
        // Three 2x2 frames (36 bytes) read as 4x2 frames (24 bytes): the second one runs short.
        let data = stream(3);
        let mut source = RawFrames::new(data.as_slice(), FrameSize::new(4, 2), "stdin").unwrap();
        let mut frame = Frame::default();
        assert!(source.next_frame_into(&mut frame).unwrap());
        let err = source.next_frame_into(&mut frame).unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::ShortFrame {
                    index: 1,
                    got: 12,
                    expected: 24,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// A reader that hands out one byte at a time and is interrupted in between.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        interrupt: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            match self.data.get(self.at) {
                Some(&b) if !buf.is_empty() => {
                    buf[0] = b;
                    self.at += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn partial_reads_and_interruptions_still_give_whole_frames() {
        let data = stream(2);
        let trickle = Trickle {
            data: data.clone(),
            at: 0,
            interrupt: false,
        };
        let mut source = RawFrames::new(trickle, FrameSize::new(2, 2), "pipe").unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = source.next_frame().unwrap() {
            frames.extend_from_slice(frame.image.as_raw());
        }
        assert_eq!(frames, data);
    }

    #[test]
    fn read_errors_name_the_stream_and_frame() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("pipe broke"))
            }
        }
        let mut source = RawFrames::new(Broken, FrameSize::new(2, 2), "stdin").unwrap();
        let err = source.next_frame().unwrap_err();
        assert!(matches!(err, SourceError::Read { index: 0, .. }), "{err}");
        assert!(err.to_string().contains("pipe broke"));
    }

    #[test]
    fn impossible_sizes_are_refused() {
        for huge in [
            FrameSize::new(u32::MAX, u32::MAX),
            FrameSize::new(100_000, 10),
        ] {
            let err = RawFrames::new(&[][..], huge, "stdin").unwrap_err();
            assert!(matches!(err, SourceError::TooLarge { .. }), "{err}");
        }
        let empty = FrameSize::new(0, 4);
        assert!(RawFrames::new(&[][..], empty, "stdin").is_err());
    }
}
