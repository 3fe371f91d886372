//! Skipping what cannot be read: a corrupt image file or camera frame fails only itself, and the
//! stream goes on with the next one, until too many fail in a row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Frame, FrameSource, SourceError};

/// A source whose frames that fail alone ([`SourceError::fails_only_itself`]) are handed to
/// `report` and skipped. With a `limit`, that many failures in a row end the stream with
/// [`SourceError::Unreadable`] (a camera that sends nothing but garbage); without one, any number
/// is skipped (image files, each its own input). Other errors pass through unchanged.
pub struct SkipUnreadable<S, F> {
    source: S,
    limit: Option<u32>,
    report: F,
    in_row: u32,
    skipped: Arc<AtomicU64>,
}

impl<S: FrameSource, F: FnMut(&SourceError)> SkipUnreadable<S, F> {
    /// Wraps `source`; see the type's documentation for `limit` and `report`.
    pub fn new(source: S, limit: Option<u32>, report: F) -> Self {
        Self {
            source,
            limit,
            report,
            in_row: 0,
            skipped: Arc::default(),
        }
    }

    /// Frames or files skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The count of [`SkipUnreadable::skipped`], readable from another thread while this source
    /// is read on its own.
    pub fn skipped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.skipped)
    }
}

impl<S: FrameSource, F: FnMut(&SourceError)> FrameSource for SkipUnreadable<S, F> {
    fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        loop {
            match self.source.next_frame_into(frame) {
                Err(e) if e.fails_only_itself() => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    self.in_row += 1;
                    (self.report)(&e);
                    if self.limit.is_some_and(|limit| self.in_row >= limit) {
                        return Err(SourceError::Unreadable {
                            name: self.source.describe(),
                            count: self.in_row,
                            last: Box::new(e),
                        });
                    }
                }
                other => {
                    if other.is_ok() {
                        self.in_row = 0;
                    }
                    return other;
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.source.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ConvertError;

    /// Plays a script: `Some(true)` a good frame, `Some(false)` a corrupt one, `None` a lost
    /// stream; then the end.
    struct Script(std::collections::VecDeque<Option<bool>>);

    impl FrameSource for Script {
        fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
            match self.0.pop_front() {
                None => Ok(false),
                Some(Some(true)) => {
                    frame.index += 1;
                    Ok(true)
                }
                Some(Some(false)) => Err(SourceError::Frame {
                    name: "script".into(),
                    index: frame.index,
                    from: ConvertError::Width { width: 3 },
                }),
                Some(None) => Err(SourceError::Read {
                    name: "script".into(),
                    index: frame.index,
                    source: std::io::ErrorKind::BrokenPipe.into(),
                }),
            }
        }

        fn describe(&self) -> String {
            "script".into()
        }
    }

    fn script(steps: &[Option<bool>]) -> Script {
        Script(steps.iter().copied().collect())
    }

    #[test]
    fn corrupt_frames_are_reported_and_skipped() {
        let mut reported = Vec::new();
        let steps = [
            Some(false),
            Some(true),
            Some(false),
            Some(false),
            Some(true),
        ];
        let mut source = SkipUnreadable::new(script(&steps), Some(3), |e: &SourceError| {
            reported.push(e.to_string())
        });
        let mut frame = Frame::default();
        assert!(source.next_frame_into(&mut frame).unwrap());
        assert!(source.next_frame_into(&mut frame).unwrap());
        assert!(!source.next_frame_into(&mut frame).unwrap());
        assert_eq!(frame.index, 2, "both good frames were delivered");
        assert_eq!(source.skipped(), 3);
        drop(source);
        assert_eq!(reported.len(), 3);
        assert!(
            reported[0].contains("script: frame 0 cannot be decoded"),
            "{reported:?}"
        );
    }

    #[test]
    fn too_many_corrupt_frames_in_a_row_end_the_stream() {
        let steps = [
            Some(false),
            Some(false),
            Some(true),
            Some(false),
            Some(false),
            Some(false),
        ];
        let mut source = SkipUnreadable::new(script(&steps), Some(3), |_: &SourceError| {});
        let mut frame = Frame::default();
        assert!(
            source.next_frame_into(&mut frame).unwrap(),
            "two in a row are skipped"
        );
        let err = source.next_frame_into(&mut frame).unwrap_err();
        assert!(
            matches!(&err, SourceError::Unreadable { count: 3, last, .. }
                if matches!(**last, SourceError::Frame { .. })),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("script: 3 frames in a row"),
            "{err}"
        );
    }

    #[test]
    fn without_a_limit_everything_unreadable_is_skipped_and_other_errors_pass() {
        let steps = [Some(false); 50];
        let mut source = SkipUnreadable::new(script(&steps), None, |_: &SourceError| {});
        assert!(!source.next_frame_into(&mut Frame::default()).unwrap());
        assert_eq!(source.skipped(), 50);

        let mut source =
            SkipUnreadable::new(script(&[Some(false), None]), None, |_: &SourceError| {});
        let err = source.next_frame_into(&mut Frame::default()).unwrap_err();
        assert!(matches!(err, SourceError::Read { .. }), "{err:?}");
    }
}
