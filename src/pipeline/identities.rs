//! Who an embedding is: the gallery's enrolled people, the unknown distance, and (with
//! auto-enrollment) the anonymous people met during this run.
//!
//! Anonymous identities (`anon-1`, `anon-2`, ...) live in memory only: they never touch the
//! gallery file, whose people a user enrolled on purpose.

use heapless::Vec as BoundedVec;

use super::PipelineError;
use crate::distance::distance_matrix;
use crate::distance::DistanceMetric;
use crate::events::{IdentityMatch, MAX_CANDIDATES};
use crate::gallery::{Gallery, GalleryError};

/// The people an embedding is compared with.
pub(super) struct Identities {
    gallery: Option<Gallery>,
    /// Matches farther than this are unknown (`None`: never).
    max_distance: Option<f32>,
    /// Anonymous people, when auto-enrollment is on.
    anonymous: Option<Anonymous>,
}

/// The most anonymous identities a run keeps: past it, the one remembered longest ago is
/// forgotten, so that memory and each search stay bounded on a box that runs for months.
pub const MAX_ANONYMOUS: usize = 1024;

/// The anonymous identities of a run: names and one embedding each (row-major), with when each
/// was last remembered.
struct Anonymous {
    names: Vec<String>,
    embeddings: Vec<f32>,
    metric: DistanceMetric,
    /// Per identity, the value of `clock` when it was last remembered.
    touched: Vec<u64>,
    clock: u64,
    /// Identities created so far (names are never reused).
    created: u64,
}

/// An identity decision: the closest identity within the unknown distance, and the nearest ones.
pub(super) struct Identified {
    pub identity: Option<IdentityMatch>,
    pub candidates: BoundedVec<IdentityMatch, MAX_CANDIDATES>,
}

impl Identities {
    pub(super) fn new(gallery: Option<Gallery>, max_distance: Option<f32>) -> Self {
        Self {
            gallery,
            max_distance,
            anonymous: None,
        }
    }

    /// Matches against `gallery` from now on.
    pub(super) fn set_gallery(&mut self, gallery: Gallery) {
        self.gallery = Some(gallery);
    }

    /// The unknown distance in force.
    pub(super) fn max_distance(&self) -> Option<f32> {
        self.max_distance
    }

    /// Turns on auto-enrollment of unknown people, compared by `metric`.
    pub(super) fn enable_anonymous(&mut self, metric: DistanceMetric) {
        self.anonymous = Some(Anonymous {
            names: Vec::new(),
            embeddings: Vec::new(),
            metric,
            touched: Vec::new(),
            clock: 0,
            created: 0,
        });
    }

    /// The gallery's people nearest each of `queries`, found in one pass over the gallery for
    /// all of them (a frame's people), for [`Identities::identify`].
    pub(super) fn gallery_matches(
        &self,
        queries: &[&[f32]],
    ) -> Result<Vec<Vec<IdentityMatch>>, PipelineError> {
        let Some(g) = self.gallery.as_ref().filter(|g| !g.is_empty()) else {
            return Ok(vec![Vec::new(); queries.len()]);
        };
        let dim = g.space().dim();
        if let Some(q) = queries.iter().find(|q| q.len() != dim) {
            return Err(GalleryError::QueryDimension { len: q.len(), dim }.into());
        }
        let answers = g.search_batch::<MAX_CANDIDATES>(&queries.concat(), None)?;
        Ok(answers
            .iter()
            .map(|found| {
                found
                    .iter()
                    .map(|m| IdentityMatch {
                        name: m.name.to_string(),
                        distance: m.distance,
                    })
                    .collect()
            })
            .collect())
    }

    /// The identities nearest `embedding`: its `gallery` matches (from
    /// [`Identities::gallery_matches`]) and the anonymous identities.
    pub(super) fn identify(
        &self,
        embedding: &[f32],
        gallery: &[IdentityMatch],
    ) -> Result<Identified, PipelineError> {
        let mut all = gallery.to_vec();
        if let Some(a) = self.anonymous.as_ref().filter(|a| !a.names.is_empty()) {
            let d = distance_matrix(embedding, &a.embeddings, embedding.len(), a.metric)
                .map_err(|e| PipelineError::Role(format!("anonymous identities: {e}")))?;
            all.extend(a.names.iter().zip(d).map(|(name, distance)| IdentityMatch {
                name: name.clone(),
                distance,
            }));
        }
        // Stable: on a tie, gallery people (searched first) stay first.
        all.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        let identity = all
            .first()
            .filter(|m| self.max_distance.is_none_or(|d| m.distance <= d))
            .cloned();
        Ok(Identified {
            identity,
            candidates: all.into_iter().take(MAX_CANDIDATES).collect(),
        })
    }

    /// With auto-enrollment: sets the embedding of anonymous identity `name` (a track's latest
    /// averaged embedding), or, with no name, enrolls a new anonymous identity and returns its
    /// name (beyond [`MAX_ANONYMOUS`], in the place of the one remembered longest ago). `None`
    /// when auto-enrollment is off.
    pub(super) fn remember(&mut self, name: Option<&str>, embedding: &[f32]) -> Option<String> {
        let a = self.anonymous.as_mut()?;
        let dim = embedding.len();
        a.clock += 1;
        if let Some(i) = name.and_then(|n| a.names.iter().position(|m| m == n)) {
            a.embeddings[i * dim..(i + 1) * dim].copy_from_slice(embedding);
            a.touched[i] = a.clock;
            return Some(a.names[i].clone());
        }
        a.created += 1;
        let name = format!("anon-{}", a.created);
        if a.names.len() < MAX_ANONYMOUS {
            a.names.push(name.clone());
            a.embeddings.extend_from_slice(embedding);
            a.touched.push(a.clock);
        } else {
            let oldest = (0..a.touched.len()).min_by_key(|&i| a.touched[i])?;
            a.names[oldest].clone_from(&name);
            a.embeddings[oldest * dim..(oldest + 1) * dim].copy_from_slice(embedding);
            a.touched[oldest] = a.clock;
        }
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame's queries, searched in one pass, each get their own nearest people, merged with
    /// the anonymous ones; a query of the wrong size is refused.
    #[test]
    fn a_frames_queries_get_their_own_matches_from_one_pass() {
        use crate::gallery::EmbeddingSpace;
        use crate::model::ModelFingerprint;
        let dir = tempfile::tempdir().unwrap();
        let space =
            EmbeddingSpace::new(2, DistanceMetric::Euclidean, ModelFingerprint([7; 32])).unwrap();
        let mut gallery = Gallery::create(&dir.path().join("g.erg"), space).unwrap();
        for (name, at) in [
            ("ana", [0.0, 0.0]),
            ("bo", [10.0, 0.0]),
            ("cy", [0.0, 10.0]),
        ] {
            gallery.enroll(name, &at).unwrap();
        }
        let mut ids = Identities::new(Some(gallery), Some(1.0));
        ids.enable_anonymous(DistanceMetric::Euclidean);
        ids.remember(None, &[20.0, 20.0]).unwrap();
        let queries: [&[f32]; 4] = [&[0.1, 9.9], &[9.8, 0.0], &[20.0, 19.5], &[0.0, 0.2]];
        let matches = ids.gallery_matches(&queries).unwrap();
        assert_eq!(matches.len(), 4);
        let names: Vec<Option<String>> = queries
            .iter()
            .zip(&matches)
            .map(|(q, gallery)| ids.identify(q, gallery).unwrap().identity.map(|m| m.name))
            .collect();
        let want = ["cy", "bo", "anon-1", "ana"].map(|n| Some(n.to_string()));
        assert_eq!(names, want);
        // Every query's candidates are the three gallery people and the anonymous one, nearest
        // first.
        let candidates = ids.identify(queries[1], &matches[1]).unwrap().candidates;
        let order: Vec<&str> = candidates.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(order, ["bo", "ana", "cy", "anon-1"]);
        let err = ids.gallery_matches(&[&[1.0, 2.0], &[1.0]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gallery: the query has 1 values, the gallery's embeddings have 2"
        );
    }

    #[test]
    fn anonymous_identities_are_bounded_forgetting_the_least_recent() {
        let mut ids = Identities::new(None, Some(0.5));
        ids.enable_anonymous(DistanceMetric::Euclidean);
        let at = |k: usize| [k as f32 * 10.0, 0.0, 0.0, 0.0];
        let first = ids.remember(None, &at(0)).unwrap();
        for k in 1..MAX_ANONYMOUS + 100 {
            ids.remember(None, &at(k)).unwrap();
            // The first one is seen again now and then: it stays.
            if k % 200 == 0 {
                assert_eq!(ids.remember(Some(&first), &at(0)).as_ref(), Some(&first));
            }
        }
        let a = ids.anonymous.as_ref().unwrap();
        assert_eq!(a.names.len(), MAX_ANONYMOUS);
        assert_eq!(a.embeddings.len(), MAX_ANONYMOUS * 4);
        let who = |k: usize| ids.identify(&at(k), &[]).unwrap().identity.map(|m| m.name);
        assert_eq!(who(0).as_ref(), Some(&first));
        let last = MAX_ANONYMOUS + 99;
        assert_eq!(
            who(last),
            Some(format!("anon-{}", last + 1)),
            "names are not reused"
        );
        // The oldest never seen again are forgotten: unknown now.
        assert_eq!(who(1), None);
    }
}
