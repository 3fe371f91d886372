//! A source read on a thread of its own, one frame ahead: the caller waits for each frame with a
//! timeout, so it can stop within that timeout whatever the source is doing (a read of stdin
//! that blocks, a camera waiting between reconnection attempts or timing out on a stalled
//! stream), and reading the next frame overlaps processing this one.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use super::{Frame, FrameSource, SourceError};

/// One read of the source.
#[derive(Debug)]
pub struct Read {
    /// The frame, `None` at the end of the stream, or the error that ended it.
    pub result: Result<Option<Frame>, SourceError>,
    /// How long the source took to deliver it.
    pub took: Duration,
}

/// What waiting for the next frame gave.
#[derive(Debug)]
pub enum Next {
    /// A read (the last one when it is the end or an error).
    Read(Read),
    /// Nothing within the wait: the source is still busy.
    Waiting,
}

/// A [`FrameSource`] running on its own thread. Frames handed back with [`Prefetch::recycle`]
/// are read into again, so a stream allocates its buffers once (at most three frames). Dropping it does not wait for
/// the thread: one blocked in a read ends with the process.
pub struct Prefetch {
    reads: Receiver<Read>,
    spare: Sender<Frame>,
}

impl Prefetch {
    /// Starts reading `source` on a new thread called `name`.
    pub fn spawn(
        mut source: impl FrameSource + Send + 'static,
        name: &str,
    ) -> std::io::Result<Self> {
        // Capacity 1: at most one frame waits while the caller works on another.
        let (reads_tx, reads): (SyncSender<Read>, _) = mpsc::sync_channel(1);
        let (spare, spare_rx) = mpsc::channel::<Frame>();
        thread::Builder::new()
            .name(name.into())
            .spawn(move || loop {
                let mut frame = spare_rx.try_recv().unwrap_or_default();
                let started = Instant::now();
                let result = source.next_frame_into(&mut frame);
                let took = started.elapsed();
                let last = !matches!(result, Ok(true));
                let result = result.map(|more| more.then_some(frame));
                if reads_tx.send(Read { result, took }).is_err() || last {
                    return;
                }
            })?;
        Ok(Self { reads, spare })
    }

    /// The next read, waiting at most `wait`. After the last read (the end or an error) the
    /// stream stays at its end.
    pub fn next(&self, wait: Duration) -> Next {
        match self.reads.recv_timeout(wait) {
            Ok(read) => Next::Read(read),
            Err(RecvTimeoutError::Timeout) => Next::Waiting,
            Err(RecvTimeoutError::Disconnected) => Next::Read(Read {
                result: Ok(None),
                took: Duration::ZERO,
            }),
        }
    }

    /// Gives a processed frame's buffers back to the reader.
    pub fn recycle(&self, frame: Frame) {
        // The reader may have ended: then the frame is simply dropped.
        let _ = self.spare.send(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that delivers `frames` frames, then blocks for good (stdin with no writer).
    struct ThenBlocks {
        frames: u64,
        index: u64,
    }

    impl FrameSource for ThenBlocks {
        fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
            if self.index == self.frames {
                loop {
                    thread::park();
                }
            }
            frame.index = self.index;
            if frame.image.is_empty() {
                frame.image = image::RgbImage::new(8, 8);
            }
            self.index += 1;
            Ok(true)
        }

        fn describe(&self) -> String {
            "a source that blocks".into()
        }
    }

    #[test]
    fn a_blocked_source_leaves_the_caller_free_to_stop() {
        let prefetch = Prefetch::spawn(
            ThenBlocks {
                frames: 3,
                index: 0,
            },
            "test reader",
        )
        .unwrap();
        let mut buffers = Vec::new();
        for i in 0..3 {
            let Next::Read(read) = prefetch.next(Duration::from_secs(10)) else {
                panic!("frame {i} did not come");
            };
            let frame = read.result.unwrap().unwrap();
            assert_eq!(frame.index, i);
            buffers.push(frame.image.as_ptr());
            prefetch.recycle(frame);
        }
        // Buffers are reused: at most three frames exist (the caller's, the one waiting in the
        // channel, the one being read).
        buffers.sort();
        buffers.dedup();
        assert!(buffers.len() <= 3, "{} buffers", buffers.len());
        // The source now blocks: the wait ends on time, and again.
        for _ in 0..2 {
            let started = Instant::now();
            assert!(matches!(
                prefetch.next(Duration::from_millis(50)),
                Next::Waiting
            ));
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        // Dropped while its thread is blocked: nothing waits for it.
        drop(prefetch);
    }

    /// Two frames, then the error `fail` if given, else the end.
    struct Short {
        left: u32,
        fail: Option<SourceError>,
    }

    impl FrameSource for Short {
        fn next_frame_into(&mut self, _: &mut Frame) -> Result<bool, SourceError> {
            if self.left == 0 {
                return self.fail.take().map_or(Ok(false), Err);
            }
            self.left -= 1;
            Ok(true)
        }

        fn describe(&self) -> String {
            "two frames".into()
        }
    }

    #[test]
    fn the_end_or_an_error_is_the_last_read() {
        let lost = SourceError::Disconnected {
            device: "/dev/video9".into(),
            attempts: 3,
            last: "gone".into(),
        };
        for fail in [None, Some(lost)] {
            let failing = fail.is_some();
            let prefetch = Prefetch::spawn(Short { left: 2, fail }, "test reader").unwrap();
            let read = || match prefetch.next(Duration::from_secs(10)) {
                Next::Read(read) => read.result,
                Next::Waiting => panic!("no read within 10 s"),
            };
            assert!(read().unwrap().is_some());
            assert!(read().unwrap().is_some());
            match read() {
                Err(e) => assert!(failing && e.to_string().contains("/dev/video9"), "{e}"),
                Ok(frame) => assert!(!failing && frame.is_none()),
            }
            // The reader has ended: the stream stays at its end.
            assert!(matches!(read(), Ok(None)));
        }
    }
}
