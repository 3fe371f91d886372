//! What the browser asks of a run (`--http`), answered between two frames: the gallery's people,
//! removing one, enrolling a track from the crops the pipeline kept of it or uploaded photos,
//! and those crops. The gallery file is written as `enroll` writes it, and the pipeline matches
//! against the new gallery from the next frame on.

use std::path::PathBuf;

use axum::body::Bytes;
use edge_reid::events::rfc3339;
use edge_reid::gallery::{EmbeddingSpace, Gallery, GalleryError};
use edge_reid::picture;
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
                    .map(|(name, n)| {
                        let enrolled = g.enrolled(name).map(rfc3339);
                        json!({ "name": name, "embeddings": n, "enrolled": enrolled })
                    })
                    .collect();
                Answer::Json(json!({ "file": gallery.path, "people": people }))
            }
            Err(GalleryError::NotFound { .. }) => {
                Answer::Json(json!({ "file": gallery.path, "people": [] }))
            }
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
                let from = format!("track {track}");
                enroll(name, &embeddings, &from, pipeline, gallery, events)
            }
        },
        Ask::EnrollPhotos { name, photos } => match embed_photos(photos, pipeline) {
            Ok(embeddings) => {
                let from = format!("{} uploaded photo(s)", photos.len());
                enroll(name, &embeddings, &from, pipeline, gallery, events)
            }
            Err(refusal) => refusal,
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

/// Enrolls `embeddings` (of `from`, for messages) as `name`, and uses the new gallery.
fn enroll(
    name: &str,
    embeddings: &[f32],
    from: &str,
    pipeline: &mut Pipeline,
    gallery: &GalleryFile,
    events: &mut Outputs,
) -> Answer {
    let enrolled = Gallery::open_or_create(&gallery.path, gallery.space)
        .and_then(|mut g| Ok((g.enroll(name, embeddings)?, g)));
    match enrolled {
        Ok((receipt, g)) => {
            eprintln!(
                "edge-reid: enrolled {name:?} from {from} ({} embedding(s)) into {}",
                receipt.added,
                gallery.path.display()
            );
            use_gallery(g, pipeline, events);
            Answer::Json(json!({
                "name": name,
                "from": from,
                "added": receipt.added,
                "total": receipt.total,
                "new": receipt.new_identity,
            }))
        }
        Err(e) => refused(&e),
    }
}

/// The embeddings of uploaded photos, decoded and recognised one at a time; a photo that does
/// not decode, or that the pre-detector drops, refuses the whole upload.
fn embed_photos(photos: &[(String, Bytes)], pipeline: &mut Pipeline) -> Result<Vec<f32>, Answer> {
    let mut embeddings = Vec::new();
    for (file, bytes) in photos {
        let image =
            picture::decode(bytes, file).map_err(|e| Answer::Refused(400, e.to_string()))?;
        let recognized = pipeline
            .recognize_images(std::slice::from_ref(&image))
            .map_err(|e| Answer::Refused(500, format!("recognising {file}: {e}")))?;
        match recognized.first() {
            Some(r) if !r.dropped => embeddings.extend_from_slice(&r.embedding),
            _ => {
                return Err(Answer::Refused(
                    400,
                    format!("{file} does not show a person to the pre-detector"),
                ))
            }
        }
    }
    Ok(embeddings)
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
