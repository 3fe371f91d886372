//! Annotated frames, so a person can check what the system saw: boxes in a colour that stays with
//! each track, text lines (track id, identity, top attributes) in a filled strip above each box,
//! and a crash-safe writer of numbered JPEG files (`--save-frames DIR`).
//!
//! Text uses the public-domain 8x8 bitmap font of the `font8x8` crate at 1x scale (8-pixel lines,
//! basic Latin; any other character is drawn as `?`), so no font file ships with the binary.
//! Everything is clipped to the frame: a box partly or wholly outside it never panics.

use std::io;
use std::path::{Path, PathBuf};

use font8x8::legacy::BASIC_LEGACY;
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};

use crate::atomic_file::write_atomic;
use crate::preprocess::Region;

/// One thing to draw: a box, the key that picks its colour (a track id, so a track keeps its
/// colour from frame to frame) and the text lines shown with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The box, in frame pixels; it may reach outside the frame.
    pub region: Region,
    /// Picks the colour from a fixed palette: equal keys get equal colours, consecutive keys
    /// different ones.
    pub key: u64,
    /// Text lines, top to bottom; may be empty (box only).
    pub lines: Vec<String>,
}

/// Why an annotated frame could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    /// The output folder does not exist and could not be created.
    #[error("cannot create the frames folder {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The frame could not be encoded as JPEG.
    #[error("cannot encode frame {} as JPEG: {source}", path.display())]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        /// The underlying error.
        source: image::ImageError,
    },
    /// The file could not be written.
    #[error("cannot write frame {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Box edge thickness in pixels.
const EDGE: i64 = 2;
/// Glyph size of the bitmap font, in pixels.
const GLYPH: i64 = 8;
/// Margin between the strip's border and its text, in pixels.
const PAD: i64 = 1;
/// JPEG quality of saved frames.
const JPEG_QUALITY: u8 = 85;

/// Ten well-separated colours (the first ten of Sasha Trubetskoy's "20 distinct colours").
const PALETTE: [[u8; 3]; 10] = [
    [230, 25, 75],   // red
    [60, 180, 75],   // green
    [255, 225, 25],  // yellow
    [0, 130, 200],   // blue
    [245, 130, 48],  // orange
    [145, 30, 180],  // purple
    [70, 240, 240],  // cyan
    [240, 50, 230],  // magenta
    [210, 245, 60],  // lime
    [250, 190, 212], // pink
];

/// Draws each label: a 2-px box in a colour picked from `key` (a stable palette of ten
/// well-separated colours, so one track keeps its colour), and its text lines in a filled strip
/// just above the box (inside the box when there is no room above), clipped to the frame.
pub fn draw(frame: &mut RgbImage, labels: &[Label]) {
    for label in labels {
        let Region {
            x,
            y,
            width,
            height,
        } = label.region;
        if width == 0 || height == 0 {
            continue;
        }
        let colour = colour_of(label.key);
        let (x0, y0) = (i64::from(x), i64::from(y));
        let (x1, y1) = (x0 + i64::from(width), y0 + i64::from(height));
        fill(frame, x0, y0, x1, y0 + EDGE, colour);
        fill(frame, x0, y1 - EDGE, x1, y1, colour);
        fill(frame, x0, y0, x0 + EDGE, y1, colour);
        fill(frame, x1 - EDGE, y0, x1, y1, colour);
        draw_strip(frame, x0, y0, &label.lines, colour);
    }
}

/// Writes `frame` to `dir/frame-000123.jpg` (JPEG quality 85, index zero-padded to 6 digits),
/// creating `dir` if needed. The file is written under a temporary name in `dir` and renamed, so
/// a viewer never sees half a file. Returns the path written.
pub fn save_frame(dir: &Path, index: u64, frame: &RgbImage) -> Result<PathBuf, AnnotateError> {
    std::fs::create_dir_all(dir).map_err(|source| AnnotateError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(format!("frame-{index:06}.jpg"));
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(frame)
        .map_err(|source| AnnotateError::Encode {
            path: path.clone(),
            source,
        })?;
    write_atomic(&path, &bytes).map_err(|source| AnnotateError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The palette colour for `key`.
fn colour_of(key: u64) -> Rgb<u8> {
    // The remainder is below the palette's length, so the cast cannot truncate.
    Rgb(PALETTE[(key % PALETTE.len() as u64) as usize])
}

/// Black or white, whichever contrasts more with `background` (Rec. 601 luma).
fn text_colour(background: Rgb<u8>) -> Rgb<u8> {
    let [r, g, b] = background.0.map(u32::from);
    if 299 * r + 587 * g + 114 * b > 140_000 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

/// Draws `lines` in a strip of `colour` whose left edge is `x`: its bottom on the box's top edge
/// `box_top` when the strip fits above it, otherwise starting at `box_top` inside the box.
fn draw_strip(frame: &mut RgbImage, x: i64, box_top: i64, lines: &[String], colour: Rgb<u8>) {
    let Some(columns) = lines.iter().map(|l| l.chars().count()).max() else {
        return;
    };
    let rows = lines.len() as i64;
    let strip_height = rows * GLYPH + 2 * PAD;
    let strip_width = columns as i64 * GLYPH + 2 * PAD;
    let top = if box_top >= strip_height {
        box_top - strip_height
    } else {
        box_top
    };
    fill(frame, x, top, x + strip_width, top + strip_height, colour);
    let ink = text_colour(colour);
    for (row, line) in lines.iter().enumerate() {
        let glyph_top = top + PAD + row as i64 * GLYPH;
        for (column, c) in line.chars().enumerate() {
            let glyph_left = x + PAD + column as i64 * GLYPH;
            if glyph_left >= i64::from(frame.width()) {
                break;
            }
            draw_glyph(frame, glyph_left, glyph_top, c, ink);
        }
    }
}

/// Draws the font's glyph for `c` (`?` outside printable basic Latin) with its top-left corner at
/// (`left`, `top`); bit 0 of each glyph row is its leftmost pixel.
fn draw_glyph(frame: &mut RgbImage, left: i64, top: i64, c: char, ink: Rgb<u8>) {
    let c = if c == ' ' || c.is_ascii_graphic() {
        c
    } else {
        '?'
    };
    for (dy, bits) in BASIC_LEGACY[c as usize].iter().enumerate() {
        for dx in 0..GLYPH {
            if bits >> dx & 1 == 1 {
                put(frame, left + dx, top + dy as i64, ink);
            }
        }
    }
}

/// Fills the rectangle `[x0, x1) x [y0, y1)` with `colour`, clipped to the frame.
fn fill(frame: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgb<u8>) {
    let (w, h) = (i64::from(frame.width()), i64::from(frame.height()));
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            put(frame, x, y, colour);
        }
    }
}

/// Sets one pixel if it lies inside the frame.
fn put(frame: &mut RgbImage, x: i64, y: i64, colour: Rgb<u8>) {
    if let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) {
        if x < frame.width() && y < frame.height() {
            frame.put_pixel(x, y, colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: Rgb<u8> = Rgb([100, 100, 100]);

    fn grey(width: u32, height: u32) -> RgbImage {
        RgbImage::from_pixel(width, height, GREY)
    }

    fn label(x: u32, y: u32, width: u32, height: u32, key: u64, lines: &[&str]) -> Label {
        Label {
            region: Region {
                x,
                y,
                width,
                height,
            },
            key,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    /// The font's 'A' drawn by hand (independent of the crate's bit order), `X` = ink.
    const LETTER_A: [&str; 8] = [
        "..XX....", ".XXXX...", "XX..XX..", "XX..XX..", "XXXXXX..", "XX..XX..", "XX..XX..",
        "........",
    ];

    /// Asserts that the 10x10 strip at (`left`, `top`) holds one 'A' on the key's colour.
    fn assert_strip_with_a(frame: &RgbImage, left: u32, top: u32, key: u64) {
        let strip = colour_of(key);
        let ink = text_colour(strip);
        for dy in 0..10 {
            for dx in 0..10 {
                let inside_glyph = (1..9).contains(&dx) && (1..9).contains(&dy);
                let is_ink =
                    inside_glyph && LETTER_A[dy as usize - 1].as_bytes()[dx as usize - 1] == b'X';
                let expected = if is_ink { ink } else { strip };
                assert_eq!(
                    *frame.get_pixel(left + dx, top + dy),
                    expected,
                    "strip pixel ({dx}, {dy})"
                );
            }
        }
    }

    #[test]
    fn box_edges_take_the_key_colour_and_the_inside_is_untouched() {
        let mut frame = grey(40, 40);
        draw(&mut frame, &[label(10, 10, 20, 20, 3, &[])]);
        let colour = colour_of(3);
        for (x, y) in [(10, 10), (11, 11), (29, 29), (28, 15), (10, 20), (20, 28)] {
            assert_eq!(*frame.get_pixel(x, y), colour, "edge ({x}, {y})");
        }
        for (x, y) in [(12, 12), (20, 20), (27, 27), (9, 10), (30, 30), (20, 9)] {
            assert_eq!(*frame.get_pixel(x, y), GREY, "not edge ({x}, {y})");
        }
    }

    #[test]
    fn text_strip_sits_just_above_the_box() {
        let mut frame = grey(64, 64);
        draw(&mut frame, &[label(10, 30, 20, 20, 0, &["A"])]);
        // 1 line of 8 px plus a 1-px margin above and below: rows 20..30, columns 10..20.
        assert_strip_with_a(&frame, 10, 20, 0);
        assert_eq!(*frame.get_pixel(10, 19), GREY);
        assert_eq!(*frame.get_pixel(20, 25), GREY);
        assert_eq!(*frame.get_pixel(15, 35), GREY, "inside the box");
    }

    #[test]
    fn text_strip_goes_inside_when_the_box_touches_the_top() {
        let mut frame = grey(64, 64);
        // 9 rows above the box: one short of the 10-row strip.
        draw(&mut frame, &[label(10, 9, 30, 30, 2, &["A"])]);
        assert_strip_with_a(&frame, 10, 9, 2);
        assert_eq!(*frame.get_pixel(12, 8), GREY, "nothing above the box");
        assert_eq!(
            *frame.get_pixel(15, 21),
            GREY,
            "inside the box, below the strip"
        );
    }

    #[test]
    fn boxes_outside_the_frame_do_not_panic() {
        let mut frame = grey(40, 40);
        draw(
            &mut frame,
            &[
                label(30, 30, 100, 100, 1, &["partly outside"]),
                label(1000, 1000, 10, 10, 2, &["far away"]),
                label(u32::MAX, u32::MAX, u32::MAX, u32::MAX, 3, &["huge"]),
                label(5, 5, 0, 10, 4, &["empty"]),
            ],
        );
        assert_eq!(*frame.get_pixel(30, 30), colour_of(1));
        assert_eq!(*frame.get_pixel(39, 31), colour_of(1));
        assert_eq!(*frame.get_pixel(32, 32), GREY);
        assert_eq!(*frame.get_pixel(5, 5), GREY, "an empty box draws nothing");
    }

    #[test]
    fn long_text_is_clipped_at_the_frame_edge() {
        let mut frame = grey(40, 40);
        let long = "x".repeat(300);
        draw(&mut frame, &[label(5, 20, 10, 10, 0, &[&long])]);
        for x in 5..40 {
            assert_eq!(
                *frame.get_pixel(x, 10),
                colour_of(0),
                "strip top row at {x}"
            );
        }
        assert_eq!(*frame.get_pixel(4, 10), GREY);
    }

    #[test]
    fn keys_pick_distinct_stable_colours() {
        let distinct: std::collections::HashSet<_> = (0..10).map(colour_of).collect();
        assert_eq!(distinct.len(), 10, "ten consecutive keys, ten colours");
        let paint = |key| {
            let mut frame = grey(20, 20);
            draw(&mut frame, &[label(2, 2, 10, 10, key, &[])]);
            *frame.get_pixel(2, 2)
        };
        assert_eq!(paint(7), paint(7));
        assert_ne!(paint(7), paint(8));
    }

    #[test]
    fn text_contrasts_with_every_strip_colour() {
        let luma = |c: Rgb<u8>| {
            let [r, g, b] = c.0.map(f64::from);
            0.299 * r + 0.587 * g + 0.114 * b
        };
        for key in 0..PALETTE.len() as u64 {
            let strip = colour_of(key);
            let gap = (luma(strip) - luma(text_colour(strip))).abs();
            assert!(gap > 100.0, "key {key}: luma gap {gap}");
        }
    }

    #[test]
    fn characters_outside_basic_latin_are_drawn_as_question_marks() {
        let render = |text: &str| {
            let mut frame = grey(40, 40);
            draw(&mut frame, &[label(2, 20, 30, 10, 0, &[text])]);
            frame
        };
        assert_eq!(render("é\t"), render("??"));
        assert_ne!(render("e"), render("?"));
    }

    #[test]
    fn save_frame_writes_a_named_decodable_jpeg() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("frames").join("run1");
        let mut frame = grey(48, 32);
        draw(&mut frame, &[label(4, 12, 20, 16, 5, &["7"])]);
        let path = save_frame(&dir, 123, &frame).unwrap();
        assert_eq!(path, dir.join("frame-000123.jpg"));
        let decoded = image::open(&path).unwrap().to_rgb8();
        assert_eq!(decoded.dimensions(), (48, 32));
        let centre = decoded.get_pixel(14, 22);
        assert!(centre.0.iter().all(|&v| v.abs_diff(100) < 10), "{centre:?}");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn save_frame_names_a_folder_it_cannot_create() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let dir = file.join("frames");
        let err = save_frame(&dir, 0, &grey(8, 8)).unwrap_err();
        assert!(matches!(err, AnnotateError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains(&*dir.to_string_lossy()), "{err}");
    }
}
