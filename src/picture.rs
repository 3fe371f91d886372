//! Pictures read from files or uploads (enrolment photos, image inputs, dataset images), decoded
//! with bounded memory: a picture's header is checked against [`MAX_SIDE`] and [`MAX_DECODED`]
//! before its pixels are allocated, so a small file that claims a huge size is refused, not
//! decoded.

use std::io::{BufRead, Cursor, Seek};
use std::path::{Path, PathBuf};

use image::{ImageReader, Limits, RgbImage};

/// Most pixels a picture may have on either side.
pub const MAX_SIDE: u32 = 8192;

/// Most bytes a picture's decoder may allocate (the RGB copy made after it is at most
/// `MAX_SIDE`² × 3 bytes).
pub const MAX_DECODED: u64 = 256 << 20;

/// A picture that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The picture is larger than a picture of a person may be.
    #[error("{name} is too large: at most {MAX_SIDE} pixels a side and {} MiB decoded", MAX_DECODED >> 20)]
    TooLarge {
        /// The file or upload.
        name: String,
    },
    /// Not a picture this build decodes, or a damaged one.
    #[error("cannot decode {name} (JPEG, PNG or BMP): {source}")]
    Decode {
        /// The file or upload.
        name: String,
        /// The decoder's error.
        source: image::ImageError,
    },
}

/// Decodes the picture file at `path` as RGB.
pub fn open(path: &Path) -> Result<RgbImage, PictureError> {
    let read = |source| PictureError::Read {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::open(path).map_err(read)?;
    decode_from(reader, &path.display().to_string())
}

/// Decodes a picture held in memory as RGB; `name` names it in errors (an upload's file name).
pub fn decode(bytes: &[u8], name: &str) -> Result<RgbImage, PictureError> {
    decode_from(ImageReader::new(Cursor::new(bytes)), name)
}

fn decode_from<R: BufRead + Seek>(
    reader: ImageReader<R>,
    name: &str,
) -> Result<RgbImage, PictureError> {
    let failed = |source| match source {
        image::ImageError::Limits(_) => PictureError::TooLarge { name: name.into() },
        source => PictureError::Decode {
            name: name.into(),
            source,
        },
    };
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| failed(image::ImageError::IoError(e)))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED);
    reader.limits(limits);
    Ok(reader.decode().map_err(failed)?.into_rgb8())
}

#[cfg(test)]
mod tests {
    use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};

    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let pixels = vec![7u8; (width * height) as usize];
        PngEncoder::new(&mut out)
            .write_image(&pixels, width, height, ExtendedColorType::L8)
            .unwrap();
        out
    }

    #[test]
    fn a_picture_decodes_as_rgb() {
        let image = decode(&png(3, 2), "a.png").unwrap();
        assert_eq!((image.width(), image.height()), (3, 2));
        assert_eq!(image.get_pixel(2, 1).0, [7, 7, 7]);
    }

    #[test]
    fn a_header_past_the_limits_is_refused_before_decoding() {
        // A 1-row greyscale PNG (a few hundred bytes) one pixel wider than allowed.
        let err = decode(&png(MAX_SIDE + 1, 1), "wide.png").unwrap_err();
        assert!(matches!(err, PictureError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("wide.png"), "{err}");
    }

    #[test]
    fn what_is_not_a_picture_is_named() {
        let err = decode(b"not a picture at all", "notes.txt").unwrap_err();
        assert!(matches!(err, PictureError::Decode { .. }), "{err}");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        let err = open(Path::new("/nonexistent/x.png")).unwrap_err();
        assert!(matches!(err, PictureError::Read { .. }), "{err}");
    }
}
