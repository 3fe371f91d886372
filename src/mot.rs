//! Tracks and ground truth in the MOTChallenge text format, for scoring the tracker with standard
//! tools (`motmetrics`, TrackEval): one line per box and frame, frames counted from 1.
//!
//! - Tracker output (`--mot FILE`): `frame,id,x,y,w,h,conf,-1,-1,-1`, the confirmed tracks seen in
//!   each frame, `conf` 1.
//! - Ground truth (`--truth FILE`, the synthetic camera only): `frame,id,x,y,w,h,1,1,1` (counted,
//!   class 1 pedestrian, fully visible), `id` the synthetic person's identity.
//!
//! Box corners are in the frame's pixels counted from 0, as the events' boxes are (MOTChallenge's
//! own ground truth counts from 1: shift one of them when scoring against it).

use std::io::{self, Write};

use crate::preprocess::Region;
use crate::source::TruthBox;

/// Writes MOTChallenge lines for the 0-based stream frame `index`.
pub struct MotWriter<W: Write> {
    out: W,
}

impl<W: Write> MotWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// The tracks `(id, box)` seen in frame `index`, sorted by id.
    pub fn tracks(&mut self, index: u64, tracks: &[(u64, Region)]) -> io::Result<()> {
        let mut tracks = tracks.to_vec();
        tracks.sort_unstable_by_key(|&(id, _)| id);
        for (id, r) in tracks {
            let (x, y, w, h) = (r.x, r.y, r.width, r.height);
            writeln!(self.out, "{},{id},{x},{y},{w},{h},1,-1,-1,-1", index + 1)?;
        }
        Ok(())
    }

    /// The true boxes of frame `index`.
    pub fn truth(&mut self, index: u64, truth: &[TruthBox]) -> io::Result<()> {
        for t in truth {
            let (id, x, y, w, h) = (t.identity, t.x, t.y, t.width, t.height);
            writeln!(self.out, "{},{id},{x},{y},{w},{h},1,1,1", index + 1)?;
        }
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_frames_from_one() {
        let mut w = MotWriter::new(Vec::new());
        let r = |x, y| Region {
            x,
            y,
            width: 10,
            height: 30,
        };
        w.tracks(0, &[(7, r(5, 6)), (2, r(1, 2))]).unwrap();
        let truth = TruthBox {
            identity: 3,
            x: 4,
            y: 5,
            width: 6,
            height: 20,
        };
        w.truth(41, &[truth]).unwrap();
        assert_eq!(
            String::from_utf8(w.out).unwrap(),
            "1,2,1,2,10,30,1,-1,-1,-1\n1,7,5,6,10,30,1,-1,-1,-1\n42,3,4,5,6,20,1,1,1\n"
        );
    }
}
