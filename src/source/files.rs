//! Image files and folders as a stream of frames: files in the order given, each folder's images
//! (`.jpg`, `.jpeg`, `.png`, `.bmp`, not recursive) sorted by name.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Frame, FrameSource, SourceError};
use crate::picture;

/// File extensions taken from folders (any case).
const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

/// Image files decoded one per frame. A file that does not decode is a
/// [`SourceError::Image`] naming it; the next call goes on with the next file, so a caller can skip
/// and report bad files.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    paths: Vec<PathBuf>,
    next: usize,
    start: Instant,
}

impl ImageFiles {
    /// The images of `inputs`: files are taken as they are (whatever their extension), folders
    /// contribute their image files sorted by name. A missing input, an unreadable folder, or no
    /// image at all is an error.
    pub fn new(inputs: &[PathBuf]) -> Result<Self, SourceError> {
        let mut paths = Vec::new();
        for input in inputs {
            if input.is_dir() {
                paths.extend(folder_images(input)?);
            } else if input.exists() {
                paths.push(input.clone());
            } else {
                return Err(SourceError::MissingInput {
                    path: input.clone(),
                });
            }
        }
        if paths.is_empty() {
            let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
            return Err(SourceError::NoImages {
                inputs: if names.is_empty() {
                    "no inputs".to_string()
                } else {
                    names.join(", ")
                },
            });
        }
        Ok(Self {
            paths,
            next: 0,
            start: Instant::now(),
        })
    }

    /// Every image, in stream order: frame `i` comes from `paths()[i]`.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

/// The image files directly inside `folder`, sorted.
fn folder_images(folder: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let list_error = |source| SourceError::ListFolder {
        path: folder.to_path_buf(),
        source,
    };
    let mut images = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)));
        if is_image && path.is_file() {
            images.push(path);
        }
    }
    images.sort();
    Ok(images)
}

impl FrameSource for ImageFiles {
    fn next_frame_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let Some(path) = self.paths.get(self.next) else {
            return Ok(false);
        };
        let index = self.next as u64;
        self.next += 1;
        frame.image = picture::open(path).map_err(|source| SourceError::Image {
            path: path.clone(),
            source,
        })?;
        frame.index = index;
        frame.timestamp = self.start.elapsed();
        frame.truth.clear();
        Ok(true)
    }

    fn describe(&self) -> String {
        match self.paths.as_slice() {
            [one] => format!("image {}", one.display()),
            paths => format!("{} images", paths.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;

    /// A folder with three small images (saved out of name order), a text file, a subfolder and a
    /// corrupt JPEG.
    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, level) in [("b.png", 20u8), ("a.JPG", 10), ("c.bmp", 30)] {
            RgbImage::from_pixel(4, 3, Rgb([level; 3]))
                .save(dir.path().join(name))
                .unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        dir
    }

    fn names(files: &ImageFiles) -> Vec<String> {
        files
            .paths()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn folders_give_their_images_sorted_and_files_come_as_given() {
        let dir = folder();
        let extra = dir.path().join("c.bmp");
        let mut files = ImageFiles::new(&[extra.clone(), dir.path().to_path_buf()]).unwrap();
        assert_eq!(names(&files), ["c.bmp", "a.JPG", "b.png", "c.bmp"]);
        assert_eq!(files.describe(), "4 images");
        let mut levels = Vec::new();
        while let Some(frame) = files.next_frame().unwrap() {
            assert_eq!(frame.image.dimensions(), (4, 3));
            assert!(frame.truth.is_empty());
            levels.push((frame.index, frame.image.get_pixel(0, 0).0[0]));
        }
        // JPEG is lossy: the level comes back within a step or two.
        assert_eq!(levels.len(), 4);
        let expected = [(0, 30), (1, 10), (2, 20), (3, 30)];
        for ((i, level), (ei, el)) in levels.iter().zip(expected) {
            assert_eq!(*i, ei);
            assert!(level.abs_diff(el) <= 2, "frame {i}: {level} vs {el}");
        }
        let single = ImageFiles::new(std::slice::from_ref(&extra)).unwrap();
        assert_eq!(single.describe(), format!("image {}", extra.display()));
    }

    #[test]
    fn a_bad_image_is_an_error_naming_it_and_the_stream_goes_on() {
        let dir = folder();
        let bad = dir.path().join("bad.jpg");
        std::fs::write(&bad, b"\xFF\xD8\xFF\xE0 this is not really a jpeg").unwrap();
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        let good = dir.path().join("a.JPG");
        let mut files = ImageFiles::new(&[bad.clone(), empty.clone(), good]).unwrap();
        let mut frame = Frame::default();
        for path in [&bad, &empty] {
            let err = files.next_frame_into(&mut frame).unwrap_err();
            assert!(
                matches!(&err, SourceError::Image { path: p, .. } if p == path),
                "{err}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        assert!(files.next_frame_into(&mut frame).unwrap());
        assert_eq!((frame.index, frame.image.dimensions()), (2, (4, 3)));
        assert!(!files.next_frame_into(&mut frame).unwrap());
        assert_eq!(frame.index, 2, "the end leaves the frame alone");
    }

    #[test]
    fn missing_inputs_and_empty_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.jpg");
        let err = ImageFiles::new(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(&err, SourceError::MissingInput { path } if *path == missing));
        std::fs::write(dir.path().join("readme.md"), "no images here").unwrap();
        let err = ImageFiles::new(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, SourceError::NoImages { .. }), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        assert!(matches!(
            ImageFiles::new(&[]),
            Err(SourceError::NoImages { .. })
        ));
    }
}
