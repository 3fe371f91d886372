//! Camera pixel formats to RGB: YUYV (packed 4:2:2) and MJPEG.
//!
//! YUYV is converted exactly as ffmpeg's libswscale does by default (`-pix_fmt yuyv422` to
//! `rgb24`: BT.601, limited range, each pixel pair sharing its chroma), bit for bit, so a camera
//! frame and the same frame piped through ffmpeg give the same pixels. MJPEG frames are decoded with
//! the `image` crate after inserting the standard Huffman tables that many webcams leave out.

use std::io::Cursor;

use image::codecs::jpeg::JpegDecoder;
use image::{ColorType, DynamicImage, ImageDecoder, RgbImage};

/// Why a camera buffer could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Fewer bytes than the frame needs.
    #[error("buffer too short: {got} bytes, a {width}x{height} frame needs {expected}")]
    ShortBuffer {
        /// Bytes in the buffer.
        got: usize,
        /// Bytes the frame needs.
        expected: usize,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// A YUYV line length (bytes per line) shorter than two bytes per pixel.
    #[error("YUYV line length of {stride} bytes is too short for {width} pixels")]
    Stride {
        /// Bytes per line.
        stride: usize,
        /// Frame width.
        width: u32,
    },
    /// YUYV stores pixel pairs: the width must be even and positive.
    #[error("YUYV frame width must be even and positive, got {width}")]
    Width {
        /// Frame width.
        width: u32,
    },
    /// A JPEG frame without its end marker: the camera lost part of it.
    #[error("truncated JPEG frame: {bytes} bytes and no end-of-image marker")]
    Truncated {
        /// Bytes in the frame.
        bytes: usize,
    },
    /// A JPEG frame whose header gives another size than the one the camera negotiated: refused
    /// before decoding, so a hostile header (65535x65535) allocates nothing.
    #[error("JPEG frame is {got_width}x{got_height}, the camera negotiated {width}x{height}")]
    Size {
        /// Width in the frame's header.
        got_width: u32,
        /// Height in the frame's header.
        got_height: u32,
        /// Negotiated width.
        width: u32,
        /// Negotiated height.
        height: u32,
    },
    /// The JPEG decoder failed.
    #[error("invalid JPEG: {0}")]
    Jpeg(#[from] image::ImageError),
    /// The camera driver marked the buffer as corrupt (`V4L2_BUF_FLAG_ERROR`).
    #[error("the driver marked the frame as corrupt")]
    Flagged,
}

/// libswscale's YUV to RGB tables for BT.601 limited range (`yuv2rgb.c`): chroma moves the index
/// into a luma table, the luma table applies the 255/219 gain and the offset.
struct Tables {
    /// `luma[k + LUMA_ZERO]`: the output level for luma index `k`.
    luma: [u8; 768],
    /// Index offsets: red from V, green from U and V, blue from U.
    r_v: [i16; 256],
    g_u: [i16; 256],
    g_v: [i16; 256],
    b_u: [i16; 256],
}

/// Position of luma index 0 in [`Tables::luma`] (indices run from -256 to 511; the offsets keep
/// them within -222 to 477).
const LUMA_ZERO: i32 = 256;

impl Tables {
    const fn new() -> Self {
        // ITU-R BT.601 (libswscale's `ff_yuv2rgb_coeffs`): Rv, Bu, -Gu, -Gv scaled by 2^16.
        let (rv, bu, gu, gv) = (104_597_i64, 132_201_i64, -25_675_i64, -53_279_i64);
        let (rv, bu, gu, gv) = (to_luma(rv), to_luma(bu), to_luma(gu), to_luma(gv));
        let mut t = Tables {
            luma: [0; 768],
            r_v: [0; 256],
            g_u: [0; 256],
            g_v: [0; 256],
            b_u: [0; 256],
        };
        let mut k = 0;
        while k < 768 {
            // libswscale's limited-range luma table: index 326 of its 1024-entry table is luma 0.
            let v = ((k as i64 - LUMA_ZERO as i64 + 326) * CY - (400 << 16) + 0x8000) >> 16;
            t.luma[k] = if v < 0 {
                0
            } else if v > 255 {
                255
            } else {
                v as u8
            };
            k += 1;
        }
        let mut x = 0;
        while x < 256 {
            t.r_v[x] = offset(x as i64, rv) as i16;
            t.g_u[x] = offset(x as i64, gu) as i16;
            t.g_v[x] = offset(x as i64, gv) as i16;
            t.b_u[x] = offset(x as i64, bu) as i16;
            x += 1;
        }
        t
    }
}

/// Luma gain 255/219 in 16.16 fixed point.
const CY: i64 = (255 << 16) / 219;

/// A 16.16 chroma coefficient in luma-table steps (C division: rounds towards zero).
const fn to_luma(c: i64) -> i64 {
    (c * (1 << 16) + 0x8000) / CY
}

/// The luma-table index offset for chroma value `x` and coefficient `c`, centred on 128.
const fn offset(x: i64, c: i64) -> i64 {
    ((x * c) >> 16) - (c >> 9)
}

static TABLES: Tables = Tables::new();

/// Converts a YUYV (YUY2, packed 4:2:2: `Y0 U Y1 V` per pixel pair) frame of `width` x `height`
/// pixels with `stride` bytes per line into `out`, which is resized only if its size differs.
/// Bytes after the last line are ignored (camera buffers are often padded).
pub fn yuyv_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    out: &mut RgbImage,
) -> Result<(), ConvertError> {
    if width == 0 || width % 2 == 1 {
        return Err(ConvertError::Width { width });
    }
    let line = width as usize * 2;
    if stride < line {
        return Err(ConvertError::Stride { stride, width });
    }
    let expected = match height as usize {
        0 => 0,
        h => stride * (h - 1) + line,
    };
    if data.len() < expected {
        return Err(ConvertError::ShortBuffer {
            got: data.len(),
            expected,
            width,
            height,
        });
    }
    if out.dimensions() != (width, height) {
        *out = RgbImage::new(width, height);
    }
    let t = &TABLES;
    let level = |k: i32| t.luma[(k + LUMA_ZERO) as usize];
    let rows = out.chunks_exact_mut(width as usize * 3);
    for (row, src) in rows.zip(data.chunks(stride)) {
        for (px, yuyv) in row.chunks_exact_mut(6).zip(src[..line].chunks_exact(4)) {
            let (u, v) = (usize::from(yuyv[1]), usize::from(yuyv[3]));
            let r = i32::from(t.r_v[v]);
            let g = i32::from(t.g_u[u]) + i32::from(t.g_v[v]);
            let b = i32::from(t.b_u[u]);
            for (rgb, y) in px.chunks_exact_mut(3).zip([yuyv[0], yuyv[2]]) {
                let y = i32::from(y);
                rgb.copy_from_slice(&[level(y + r), level(y + g), level(y + b)]);
            }
        }
    }
    Ok(())
}

/// The standard Huffman tables of ITU-T T.81 Annex K.3 as one DHT segment (luminance DC,
/// chrominance DC, luminance AC, chrominance AC), the tables MJPEG cameras assume when they send
/// frames without a DHT segment.
#[rustfmt::skip]
const STANDARD_DHT: [u8; 420] = [
    0xFF, 0xC4, 0x01, 0xA2,
    // Luminance DC (K.3).
    0x00,
    0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // Chrominance DC (K.4).
    0x01,
    0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // Luminance AC (K.5).
    0x10,
    0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7D,
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
    // Chrominance AC (K.6).
    0x11,
    0x00, 0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77,
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// What matters of a JPEG stream's markers before its first scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// Offset of the start-of-scan marker.
    sos: usize,
    /// Whether a DHT segment (Huffman tables) comes before it.
    has_dht: bool,
}

/// Follows a JPEG stream's marker segments up to its first scan. `None` when the stream does not
/// start like a JPEG or its markers cannot be followed (the decoder then reports what is wrong).
fn header(jpeg: &[u8]) -> Option<Header> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut has_dht = false;
    let mut i = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while jpeg.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if *jpeg.get(i)? != 0xFF {
            return None;
        }
        match *jpeg.get(i + 1)? {
            0xDA => return Some(Header { sos: i, has_dht }),
            // Markers without a length: TEM and the restart markers.
            0x01 | 0xD0..=0xD7 => i += 2,
            marker => {
                has_dht |= marker == 0xC4;
                let length = u16::from_be_bytes([*jpeg.get(i + 2)?, *jpeg.get(i + 3)?]);
                i += 2 + usize::from(length);
            }
        }
    }
}

/// Whether entropy-coded data (from the start of scan on) reaches an end-of-image marker. Inside
/// the data a 0xFF byte is always followed by 0x00 or a restart marker, so `FF D9` is the end.
fn has_end(scan: &[u8]) -> bool {
    scan.windows(2).rev().any(|w| w == [0xFF, 0xD9])
}

/// An MJPEG frame decoder that reuses its buffers from frame to frame.
#[derive(Debug, Default)]
pub struct MjpegDecoder {
    /// The frame with Huffman tables inserted, when it came without them.
    patched: Vec<u8>,
    /// The buffer the next frame is decoded into before it becomes the output's.
    rgb: Vec<u8>,
}

impl MjpegDecoder {
    /// A decoder with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one MJPEG frame (a JPEG image, possibly without its DHT segment) of the negotiated
    /// `width` x `height` into `out`, which is resized only if its size differs. A frame cut short
    /// (no end-of-image marker) is an error rather than a partly grey image, and a frame of
    /// another size is an error before anything is allocated; `out` is untouched on error.
    pub fn decode(
        &mut self,
        jpeg: &[u8],
        width: u32,
        height: u32,
        out: &mut RgbImage,
    ) -> Result<(), ConvertError> {
        let header = header(jpeg);
        if let Some(Header { sos, .. }) = header {
            if !has_end(&jpeg[sos..]) {
                return Err(ConvertError::Truncated { bytes: jpeg.len() });
            }
        }
        let data: &[u8] = match header {
            Some(Header {
                sos,
                has_dht: false,
            }) => {
                self.patched.clear();
                self.patched.extend_from_slice(&jpeg[..sos]);
                self.patched.extend_from_slice(&STANDARD_DHT);
                self.patched.extend_from_slice(&jpeg[sos..]);
                &self.patched
            }
            _ => jpeg,
        };
        let decoder = JpegDecoder::new(Cursor::new(data))?;
        let (got_width, got_height) = decoder.dimensions();
        if (got_width, got_height) != (width, height) {
            return Err(ConvertError::Size {
                got_width,
                got_height,
                width,
                height,
            });
        }
        if decoder.color_type() == ColorType::Rgb8 {
            // Decoded into a buffer of its own: a frame that fails halfway leaves `out` as it was.
            // The buffers then change places (no copy); `out`'s old one is decoded into next.
            self.rgb.resize(decoder.total_bytes() as usize, 0);
            decoder.read_image(&mut self.rgb)?;
            let decoded = RgbImage::from_raw(width, height, std::mem::take(&mut self.rgb))
                .expect("an RGB8 decoder's total bytes are width x height x 3");
            self.rgb = std::mem::replace(out, decoded).into_raw();
        } else {
            // Greyscale (or CMYK) JPEG: rare from cameras, converted through a new image.
            *out = DynamicImage::from_decoder(decoder)?.into_rgb8();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures: `tests/fixtures/frames/`, made by `tests/reference/make_frame_fixtures.sh`
    //! (ffmpeg's conversions of a test pattern and of random bytes).

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/frames/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn yuyv_matches_ffmpeg_bit_for_bit() {
        for (name, width, height) in [("testsrc2_64x48", 64, 48), ("random_32x16", 32, 16)] {
            let yuyv = fixture(&format!("{name}.yuyv"));
            let expected = fixture(&format!("{name}_yuyv.rgb"));
            let mut out = RgbImage::new(1, 1);
            yuyv_to_rgb(&yuyv, width, height, width as usize * 2, &mut out).unwrap();
            assert_eq!(out.dimensions(), (width, height));
            let diffs = out
                .as_raw()
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(diffs, 0, "{name}: {diffs} bytes differ from ffmpeg");
            assert_eq!(out.as_raw().len(), expected.len());
        }
    }

    #[test]
    fn yuyv_follows_the_stride_and_ignores_padding() {
        let yuyv = fixture("random_32x16.yuyv");
        let mut plain = RgbImage::new(32, 16);
        yuyv_to_rgb(&yuyv, 32, 16, 64, &mut plain).unwrap();
        // The same lines with 8 bytes of junk after each, and a padded buffer end.
        let mut padded: Vec<u8> = yuyv
            .chunks(64)
            .flat_map(|l| [l, &[7; 8]].concat())
            .collect();
        padded.extend([9; 100]);
        let mut out = RgbImage::new(32, 16);
        let before = out.as_raw().as_ptr();
        yuyv_to_rgb(&padded, 32, 16, 72, &mut out).unwrap();
        assert_eq!(out, plain);
        assert_eq!(out.as_raw().as_ptr(), before, "the output buffer is reused");
        // The last line needs no padding after it.
        yuyv_to_rgb(&padded[..72 * 15 + 64], 32, 16, 72, &mut out).unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn yuyv_rejects_short_buffers_and_bad_geometry() {
        let mut out = RgbImage::new(1, 1);
        let err = yuyv_to_rgb(&[0; 100], 8, 8, 16, &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                ConvertError::ShortBuffer {
                    got: 100,
                    expected: 128,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("100 bytes"), "{err}");
        assert!(matches!(
            yuyv_to_rgb(&[0; 64], 3, 2, 6, &mut out),
            Err(ConvertError::Width { width: 3 })
        ));
        assert!(matches!(
            yuyv_to_rgb(&[0; 64], 8, 2, 8, &mut out),
            Err(ConvertError::Stride {
                stride: 8,
                width: 8
            })
        ));
        assert_eq!(out.dimensions(), (1, 1), "untouched on error");
    }

    /// Mean absolute difference between two images' bytes.
    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let total: u64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        total as f64 / a.len() as f64
    }

    #[test]
    fn mjpeg_decodes_close_to_ffmpeg() {
        let expected = fixture("testsrc2_64x48_jpg.rgb");
        let mut decoder = MjpegDecoder::new();
        let mut out = RgbImage::new(64, 48);
        decoder
            .decode(&fixture("testsrc2_64x48.jpg"), 64, 48, &mut out)
            .unwrap();
        assert_eq!(out.dimensions(), (64, 48));
        // The reference interpolates chroma bilinearly as zune-jpeg does; the decoders still
        // differ in IDCT and colour-conversion rounding: bound the mean and the largest difference.
        let mae = mean_abs_diff(out.as_raw(), &expected);
        assert!(mae < 0.5, "mean abs difference from ffmpeg {mae}");
        let max = out
            .as_raw()
            .iter()
            .zip(&expected)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(max <= Some(4), "largest difference from ffmpeg {max:?}");
    }

    #[test]
    fn mjpeg_without_huffman_tables_gets_the_standard_ones() {
        let full = fixture("testsrc2_64x48.jpg");
        let stripped = fixture("testsrc2_64x48_nodht.jpg");
        assert!(header(&full).unwrap().has_dht);
        let Header { sos, has_dht } = header(&stripped).unwrap();
        assert!(!has_dht);
        assert_eq!(&stripped[sos..sos + 2], &[0xFF, 0xDA]);
        // The tables are needed: without them the frame does not decode.
        assert!(image::load_from_memory(&stripped).is_err());
        // ffmpeg's `-huffman default` segment holds the same tables in the same order.
        let at = full.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
        assert_eq!(&full[at..at + STANDARD_DHT.len()], &STANDARD_DHT[..]);
        let mut decoder = MjpegDecoder::new();
        let (mut a, mut b) = (RgbImage::new(1, 1), RgbImage::new(1, 1));
        decoder.decode(&full, 64, 48, &mut a).unwrap();
        decoder.decode(&stripped, 64, 48, &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_mjpeg_frames_are_errors() {
        let mut decoder = MjpegDecoder::new();
        let mut out = RgbImage::new(4, 4);
        for bad in [&b"not a jpeg"[..], &[], &[0xFF, 0xD8, 0xFF]] {
            let err = decoder.decode(bad, 64, 48, &mut out).unwrap_err();
            assert!(matches!(err, ConvertError::Jpeg(_)), "{err}");
        }
        // Frames cut short, with and without their tables (the decoder alone would fill the rest
        // with grey), and with padding after the cut.
        for name in ["testsrc2_64x48.jpg", "testsrc2_64x48_nodht.jpg"] {
            let full = fixture(name);
            let cut = &full[..full.len() * 2 / 3];
            let err = decoder.decode(cut, 64, 48, &mut out).unwrap_err();
            assert!(
                matches!(err, ConvertError::Truncated { .. }),
                "{name}: {err}"
            );
            let padded = [cut, &[0; 64]].concat();
            assert!(decoder.decode(&padded, 64, 48, &mut out).is_err());
            // Padding after a whole frame is fine (camera buffers often have some).
            let whole = [&full[..], &[0; 64]].concat();
            decoder.decode(&whole, 64, 48, &mut out).unwrap();
        }
        assert_eq!(out.dimensions(), (64, 48));
    }

    /// `jpeg` with the size in its start-of-frame header replaced.
    fn with_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let mut out = jpeg.to_vec();
        // FF C0, length (2), precision (1), height (2), width (2).
        out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        out
    }

    #[test]
    fn a_frame_of_another_size_than_negotiated_is_refused_before_decoding() {
        let full = fixture("testsrc2_64x48.jpg");
        let mut decoder = MjpegDecoder::new();
        let mut out = RgbImage::from_pixel(64, 48, image::Rgb([1, 2, 3]));
        let before = out.clone();
        // A header claiming 65535x65535 would need 12.9 GB decoded.
        for (w, h) in [(65535, 65535), (128, 96), (64, 47)] {
            let err = decoder
                .decode(&with_size(&full, w, h), 64, 48, &mut out)
                .unwrap_err();
            assert!(
                matches!(err, ConvertError::Size { got_width, got_height, width: 64, height: 48 }
                    if (got_width, got_height) == (u32::from(w), u32::from(h))),
                "{err}"
            );
            assert!(err.to_string().contains("negotiated 64x48"), "{err}");
        }
        // The right frame at another negotiated size.
        let err = decoder.decode(&full, 640, 480, &mut out).unwrap_err();
        assert!(err.to_string().contains("JPEG frame is 64x48"), "{err}");
        assert_eq!(out, before, "untouched on error");
        assert!(
            decoder.rgb.capacity() < 64 * 48 * 3 + 1,
            "nothing allocated"
        );
    }
}
