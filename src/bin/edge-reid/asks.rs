//! What the browser asks of a run (`--http`), answered between two frames: the gallery's people,
//! removing one, enrolling a track from the crops the pipeline kept of it, and those crops. The
//! gallery file is written as `enroll` writes it, and the pipeline matches against the new
//! gallery from the next frame on.

use std::path::PathBuf;

use edge_reid::gallery::{EmbeddingSpace, Gallery, GalleryError};
use edge_reid::pipeline::Pipeline;
use edge_reid::web::{Answer, Ask, Asked};
use serde_json::json;

use crate::output::{jpeg, Outputs};

/// The gallery file a run enrolls into.
pub struct GalleryFile {
    /// Its path.
    pub path: PathBuf,
    /// The model's embedding space.
    pub space: EmbeddingSpace,
}

/// Answers one ask.
pub fn answer(asked: Asked, pipeline: &mut Pipeline, gallery: &GalleryFile, events: &mut Outputs) {
    let answer = match &asked.ask {
        Ask::Gallery => match open(gallery) {
            Ok(g) => {
                let people: Vec<_> = g
                    .list()
                    .map(|(name, n)| json!({ "name": name, "embeddings": n }))
                    .collect();
                Answer::Json(json!({ "people": people }))
            }
            Err(GalleryError::NotFound { .. }) => Answer::Json(json!({ "people": [] })),
            Err(e) => refused(&e),
        },
        Ask::Remove(name) => match open(gallery).and_then(|mut g| {
            let removed = g.remove(name)?;
            Ok((g, removed))
        }) {
            Ok((g, removed)) => {
                use_gallery(g, pipeline, events);
                Answer::Json(json!({ "name": name, "removed": removed }))
            }
            Err(e) => refused(&e),
        },
        Ask::EnrollTrack { name, track } => match pipeline.kept_crops(*track) {
            None | Some([]) => Answer::Refused(
                404,
                format!(
                    "track {track} has no kept crops: it ended too long ago or was never \
                     recognised"
                ),
            ),
            Some(crops) => {
                let embeddings: Vec<f32> = crops.iter().flat_map(|c| c.embedding.clone()).collect();
                let enrolled = Gallery::open_or_create(&gallery.path, gallery.space)
                    .and_then(|mut g| Ok((g.enroll(name, &embeddings)?, g)));
                match enrolled {
                    Ok((receipt, g)) => {
                        eprintln!(
                            "edge-reid: enrolled {name:?} from track {track} ({} embedding(s)) \
                             into {}",
                            receipt.added,
                            gallery.path.display()
                        );
                        use_gallery(g, pipeline, events);
                        Answer::Json(json!({
                            "name": name,
                            "track": track,
                            "added": receipt.added,
                            "total": receipt.total,
                            "new": receipt.new_identity,
                        }))
                    }
                    Err(e) => refused(&e),
                }
            }
        },
        Ask::Crop { track, index } => {
            match pipeline.kept_crops(*track).and_then(|c| c.get(*index)) {
                Some(crop) => Answer::Jpeg(jpeg(&crop.image)),
                None => Answer::Refused(404, format!("track {track} has no crop {index}")),
            }
        }
    };
    asked.answer(answer);
}

/// The gallery file now, checked against the model.
fn open(gallery: &GalleryFile) -> Result<Gallery, GalleryError> {
    Gallery::open(&gallery.path).and_then(|g| g.check_model(&gallery.space).map(|()| g))
}

/// The pipeline matches against `gallery` from now on; the MQTT sensors follow.
fn use_gallery(gallery: Gallery, pipeline: &mut Pipeline, events: &mut Outputs) {
    events.set_people(gallery.list().map(|(n, _)| n.to_string()).collect());
    pipeline.set_gallery(gallery);
}

/// A gallery refusal as an HTTP status.
fn refused(e: &GalleryError) -> Answer {
    let status = match e {
        GalleryError::Name { .. } => 400,
        GalleryError::NotFound { .. } | GalleryError::UnknownIdentity { .. } => 404,
        GalleryError::Changed { .. } => 409,
        _ => 500,
    };
    Answer::Refused(status, e.to_string())
}
