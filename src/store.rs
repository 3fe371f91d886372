//! The event store (`--store FILE`): one row per track in SQLite (through rusqlite, with SQLite
//! built from its bundled source), written when the track ends. Not every frame: the track's
//! summary, which is its `end` event (the attributes averaged over the track, the identity of its
//! averaged embedding) with the times it began and ended. Indexed for [`Store::search`] by
//! attribute value and score, identity, camera and time.
//!
//! - Snapshots are off unless asked for: a row holds embeddings' results (attributes, identity),
//!   no image. With them, one JPEG crop per track ([`Store::record`]'s `snapshot`).
//! - `retain` deletes rows whose track ended longer ago than that (at most once a minute), the
//!   snapshots with them.
//! - A write-ahead log (WAL) journal: a killed process loses at most the track being written,
//!   never the file. A file that is not an edge-reid store, or is damaged, is an error naming it,
//!   and is left as it is: a store is never created over another file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, params_from_iter, Connection, OpenFlags};
use serde::Serialize;

use crate::events::{rfc3339, Event, TrackEvent, TrackStatus};

/// `PRAGMA application_id` of a store: "erid".
const APPLICATION_ID: i64 = 0x6572_6964;

/// `PRAGMA user_version`: the schema this build writes.
const SCHEMA_VERSION: i64 = 1;

/// How often old rows are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Most rows one search returns.
pub const MAX_RESULTS: usize = 1000;

const SCHEMA: &str = "
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    track INTEGER NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    name TEXT,
    distance REAL,
    event TEXT NOT NULL,
    snapshot BLOB
);
CREATE INDEX tracks_ended ON tracks (ended);
CREATE INDEX tracks_name ON tracks (name, ended);
CREATE INDEX tracks_camera ON tracks (camera, ended);
CREATE TABLE attributes (
    track INTEGER NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (track, name)
) WITHOUT ROWID;
CREATE INDEX attributes_value ON attributes (name, label, score);
";

/// A store that cannot be opened, written or searched.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (the file is damaged, not a database, or cannot be written).
    #[error("event store {path}: {source}")]
    Sql {
        /// The store file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is a database, but not an edge-reid store of this schema.
    #[error("event store {path}: {reason}")]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// An event whose time is not RFC 3339.
    #[error("track {track}: time {time:?} is not RFC 3339")]
    Time {
        /// The track.
        track: u64,
        /// The time as written.
        time: String,
    },
}

/// Who a search is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Who {
    /// Anyone.
    #[default]
    Anyone,
    /// Tracks nobody was recognised in.
    Unknown,
    /// Tracks recognised as this identity.
    Named(String),
}

/// What [`Store::search`] looks for; every condition given must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Attribute values (`upcolor`, `red`): the track's label of the attribute, with at least
    /// `min_score`.
    pub attributes: Vec<(String, String)>,
    /// The least score of each asked attribute value.
    pub min_score: f32,
    /// Identity.
    pub who: Who,
    /// The camera, as events name it.
    pub camera: Option<String>,
    /// Tracks that ended at or after this time (milliseconds since the Unix epoch).
    pub from: Option<i64>,
    /// Tracks that began at or before this time.
    pub to: Option<i64>,
    /// Most results (at most [`MAX_RESULTS`]), newest first.
    pub limit: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            attributes: Vec::new(),
            min_score: 0.0,
            who: Who::Anyone,
            camera: None,
            from: None,
            to: None,
            limit: 100,
        }
    }
}

/// One stored track.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredTrack {
    /// The row's id (for its snapshot).
    pub id: i64,
    /// When the track was confirmed (RFC 3339).
    pub started: String,
    /// When it ended.
    pub ended: String,
    /// Seconds between the two.
    pub duration: f64,
    /// Whether a snapshot is stored.
    pub snapshot: bool,
    /// The track's `end` event, as the events write it.
    pub track: serde_json::Value,
}

/// The event store (see the module docs).
pub struct Store {
    conn: Connection,
    path: PathBuf,
    retain: Option<Duration>,
    /// When each open track began (its `new` event), milliseconds since the epoch.
    started: std::collections::HashMap<u64, i64>,
    pruned: Option<Instant>,
}

fn millis(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn time_of(ms: i64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

impl Store {
    /// Opens the store at `path` for writing, creating it if there is no file; `retain` deletes
    /// what is older.
    pub fn open(path: &Path, retain: Option<Duration>) -> Result<Store, StoreError> {
        Self::connect(path, OpenFlags::default(), retain)
    }

    /// Opens an existing store for searching only (another process, or thread, may write it).
    pub fn open_read(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Self::connect(path, flags, None)
    }

    fn connect(
        path: &Path,
        flags: OpenFlags,
        retain: Option<Duration>,
    ) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            retain,
            started: Default::default(),
            pruned: None,
        };
        store.prepare(!flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY))?;
        Ok(store)
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Checks the file and, for a writer, sets the journal and creates the schema of a new file.
    fn prepare(&self, write: bool) -> Result<(), StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            self.conn
                .pragma_query_value(None, name, |row| row.get(0))
                .map_err(|e| self.sql(e))
        };
        let not_a_store = |reason: String| StoreError::NotAStore {
            path: self.path.clone(),
            reason,
        };
        let (application, version) = (pragma("application_id")?, pragma("user_version")?);
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if application == 0 && tables == 0 && write {
            self.conn
                .execute_batch(&format!(
                    "PRAGMA journal_mode = WAL; BEGIN; {SCHEMA} \
                     PRAGMA application_id = {APPLICATION_ID}; \
                     PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(|e| self.sql(e))?;
        } else if application != APPLICATION_ID {
            return Err(not_a_store(
                "it is an SQLite database of another program".into(),
            ));
        } else if version != SCHEMA_VERSION {
            return Err(not_a_store(format!(
                "schema version {version}; this build reads version {SCHEMA_VERSION}"
            )));
        } else {
            let check: String = self
                .conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| self.sql(e))?;
            if check != "ok" {
                return Err(not_a_store(format!("it is damaged: {check}")));
            }
        }
        if write {
            self.conn
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .map_err(|e| self.sql(e))?;
        }
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| self.sql(e))?;
        self.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| self.sql(e))
    }

    /// Takes a track's news: its `new` event's time is when it began, its `end` event is
    /// stored, with `snapshot` (a JPEG) if given. Other news is not stored.
    pub fn record(
        &mut self,
        event: &TrackEvent,
        snapshot: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let time = humantime::parse_rfc3339(&event.time)
            .map(millis)
            .map_err(|_| StoreError::Time {
                track: event.track,
                time: event.time.clone(),
            })?;
        match event.status {
            TrackStatus::New => {
                self.started.insert(event.track, time);
                return Ok(());
            }
            TrackStatus::Update => return Ok(()),
            TrackStatus::End => {}
        }
        let started = self.started.remove(&event.track).unwrap_or(time);
        let json = Event::Track(event).to_json();
        let tx = self.conn.transaction().map_err(|e| StoreError::Sql {
            path: self.path.clone(),
            source: e,
        })?;
        let write = || -> rusqlite::Result<()> {
            tx.execute(
                "INSERT INTO tracks (camera, track, started, ended, name, distance, event, snapshot)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    event.camera,
                    event.track as i64,
                    started,
                    time,
                    event.identity.as_ref().map(|m| &m.name),
                    event.identity.as_ref().map(|m| f64::from(m.distance)),
                    json,
                    snapshot,
                ],
            )?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO attributes (track, name, label, score) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for a in &event.attributes {
                insert.execute(params![id, a.name, a.label, f64::from(a.score)])?;
            }
            Ok(())
        };
        let result = write().and_then(|()| tx.commit());
        result.map_err(|e| self.sql(e))?;
        self.prune_now_and_then()
    }

    /// Deletes the tracks that ended before the retention, at most once every [`PRUNE_EVERY`].
    fn prune_now_and_then(&mut self) -> Result<(), StoreError> {
        let Some(retain) = self.retain else {
            return Ok(());
        };
        if self.pruned.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return Ok(());
        }
        self.pruned = Some(Instant::now());
        let before = millis(SystemTime::now().checked_sub(retain).unwrap_or(UNIX_EPOCH));
        self.conn
            .execute("DELETE FROM tracks WHERE ended < ?1", [before])
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The tracks `query` asks for, newest first.
    pub fn search(&self, query: &Query) -> Result<Vec<StoredTrack>, StoreError> {
        use rusqlite::types::Value;
        let mut conditions = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        for (name, label) in &query.attributes {
            conditions.push(
                "EXISTS (SELECT 1 FROM attributes a WHERE a.track = t.id AND a.name = ? \
                 AND a.label = ? AND a.score >= ?)",
            );
            values.push(Value::Text(name.clone()));
            values.push(Value::Text(label.clone()));
            values.push(Value::Real(f64::from(query.min_score)));
        }
        match &query.who {
            Who::Anyone => {}
            Who::Unknown => conditions.push("t.name IS NULL"),
            Who::Named(name) => {
                conditions.push("t.name = ?");
                values.push(Value::Text(name.clone()));
            }
        }
        if let Some(camera) = &query.camera {
            conditions.push("t.camera = ?");
            values.push(Value::Text(camera.clone()));
        }
        if let Some(from) = query.from {
            conditions.push("t.ended >= ?");
            values.push(Value::Integer(from));
        }
        if let Some(to) = query.to {
            conditions.push("t.started <= ?");
            values.push(Value::Integer(to));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        values.push(Value::Integer(query.limit.min(MAX_RESULTS) as i64));
        let sql = format!(
            "SELECT t.id, t.started, t.ended, t.snapshot IS NOT NULL, t.event FROM tracks t \
             {filter} ORDER BY t.ended DESC, t.id DESC LIMIT ?"
        );
        let mut statement = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = statement
            .query_map(params_from_iter(values), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut found = Vec::new();
        for row in rows {
            let (id, started, ended, snapshot, event) = row.map_err(|e| self.sql(e))?;
            let track = serde_json::from_str(&event).map_err(|e| StoreError::NotAStore {
                path: self.path.clone(),
                reason: format!("track row {id} holds no event: {e}"),
            })?;
            found.push(StoredTrack {
                id,
                started: time_of(started),
                ended: time_of(ended),
                duration: (ended - started) as f64 / 1e3,
                snapshot,
                track,
            });
        }
        Ok(found)
    }

    /// The snapshot of track row `id`, if it has one.
    pub fn snapshot(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT snapshot FROM tracks WHERE id = ?1", [id], |r| {
                r.get::<_, Option<Vec<u8>>>(0)
            })
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sql(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AttributeValue, BoxPx, IdentityMatch};

    /// Track `track`'s `status` event at `time` (RFC 3339), seen as `name`, with `attributes`.
    fn event(
        track: u64,
        status: TrackStatus,
        time: &str,
        name: Option<&str>,
        attributes: &[(&str, &str, f32)],
    ) -> TrackEvent {
        TrackEvent {
            time: time.into(),
            camera: "cam".into(),
            frame: track * 10,
            track,
            status,
            bbox: BoxPx {
                x: 1,
                y: 2,
                width: 30,
                height: 60,
            },
            person_score: 0.9,
            first_frame: track,
            frames_seen: 5,
            attributes: attributes
                .iter()
                .map(|&(n, l, s)| AttributeValue {
                    name: n.into(),
                    label: l.into(),
                    score: s,
                })
                .collect(),
            identity: name.map(|n| IdentityMatch {
                name: n.into(),
                distance: 0.25,
            }),
            candidates: Default::default(),
        }
    }

    /// Tracks 1-4: who they are and what they wear.
    fn fill(store: &mut Store) {
        let rows = [
            (1, None, [("upcolor", "red", 0.9), ("backpack", "yes", 0.8)]),
            (
                2,
                Some("alice"),
                [("upcolor", "red", 0.4), ("backpack", "no", 0.7)],
            ),
            (
                3,
                Some("bob"),
                [("upcolor", "blue", 0.95), ("backpack", "yes", 0.6)],
            ),
            (
                4,
                Some("alice"),
                [("upcolor", "red", 0.8), ("backpack", "yes", 0.9)],
            ),
        ];
        for (track, name, attributes) in rows {
            let start = format!("2026-12-01T10:0{track}:00Z");
            let end = format!("2026-12-01T10:0{track}:30.500Z");
            store
                .record(
                    &event(track, TrackStatus::New, &start, name, &attributes),
                    None,
                )
                .unwrap();
            store
                .record(
                    &event(track, TrackStatus::Update, &end, name, &attributes),
                    None,
                )
                .unwrap();
            let snapshot = (track == 4).then_some(&b"\xff\xd8jpeg"[..]);
            store
                .record(
                    &event(track, TrackStatus::End, &end, name, &attributes),
                    snapshot,
                )
                .unwrap();
        }
    }

    fn tracks(found: &[StoredTrack]) -> Vec<u64> {
        found
            .iter()
            .map(|t| t.track["track"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn searches_by_attribute_identity_camera_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("events.db"), None).unwrap();
        fill(&mut store);
        let search = |q: Query| tracks(&store.search(&q).unwrap());
        let red = || ("upcolor".to_string(), "red".to_string());
        assert_eq!(search(Query::default()), [4, 3, 2, 1]);
        let q = Query {
            attributes: vec![red()],
            ..Query::default()
        };
        assert_eq!(search(q.clone()), [4, 2, 1]);
        assert_eq!(
            search(Query {
                min_score: 0.5,
                ..q.clone()
            }),
            [4, 1]
        );
        let with_backpack = Query {
            attributes: vec![red(), ("backpack".into(), "yes".into())],
            min_score: 0.5,
            ..Query::default()
        };
        assert_eq!(search(with_backpack.clone()), [4, 1]);
        assert_eq!(
            search(Query {
                who: Who::Unknown,
                ..with_backpack.clone()
            }),
            [1]
        );
        assert_eq!(
            search(Query {
                who: Who::Named("alice".into()),
                ..Query::default()
            }),
            [4, 2]
        );
        assert!(search(Query {
            camera: Some("other".into()),
            ..Query::default()
        })
        .is_empty());
        // Tracks 2 and 3 overlap 10:02:10 - 10:03:10.
        let at = |t: &str| millis(humantime::parse_rfc3339(t).unwrap());
        let window = Query {
            from: Some(at("2026-12-01T10:02:10Z")),
            to: Some(at("2026-12-01T10:03:10Z")),
            ..Query::default()
        };
        assert_eq!(search(window), [3, 2]);
        assert_eq!(
            search(Query {
                limit: 1,
                ..Query::default()
            }),
            [4]
        );

        let found = store
            .search(&Query {
                limit: 1,
                ..Query::default()
            })
            .unwrap();
        let t = &found[0];
        assert_eq!(
            (t.started.as_str(), t.ended.as_str()),
            ("2026-12-01T10:04:00.000Z", "2026-12-01T10:04:30.500Z")
        );
        assert_eq!((t.duration, t.snapshot), (30.5, true));
        assert_eq!(t.track["event"], "track");
        assert_eq!(t.track["status"], "end");
        assert_eq!(t.track["identity"]["name"], "alice");
        assert_eq!(store.snapshot(t.id).unwrap().unwrap(), b"\xff\xd8jpeg");
        assert_eq!(store.snapshot(t.id - 1).unwrap(), None);
    }

    #[test]
    fn keeps_rows_across_opens_and_deletes_old_ones_by_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut store = Store::open(&path, None).unwrap();
        fill(&mut store);
        drop(store);
        let reader = Store::open_read(&path).unwrap();
        assert_eq!(reader.search(&Query::default()).unwrap().len(), 4);
        // A year's retention keeps them; one minute (they ended in 2026-12-01) does not, once a
        // row is written.
        let mut store = Store::open(&path, Some(Duration::from_secs(365 * 86400 * 100))).unwrap();
        store.prune_now_and_then().unwrap();
        assert_eq!(reader.search(&Query::default()).unwrap().len(), 4);
        let mut store2 = Store::open(&path, Some(Duration::from_secs(60))).unwrap();
        store2.prune_now_and_then().unwrap();
        assert!(reader.search(&Query::default()).unwrap().is_empty());
        let left: i64 = store
            .conn
            .query_row("SELECT count(*) FROM attributes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "attributes go with their track");
    }

    #[test]
    fn refuses_files_that_are_not_stores_and_leaves_them() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "not a database at all, but long enough to look at it",
        )
        .unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE x (y)")
            .unwrap();
        let ours = dir.path().join("events.db");
        fill(&mut Store::open(&ours, None).unwrap());
        let mut damaged = std::fs::read(&ours).unwrap();
        let page = 4096;
        for b in &mut damaged[page + 8..2 * page] {
            *b = 0xa5;
        }
        let broken = dir.path().join("broken.db");
        std::fs::write(&broken, &damaged).unwrap();
        for (path, want) in [
            (&text, "file is not a database"),
            (&other, "another program"),
            (&broken, "damaged"),
        ] {
            let before = std::fs::read(path).unwrap();
            let err = match Store::open(path, None) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{} was taken for a store", path.display()),
            };
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(want), "{err}");
            assert_eq!(std::fs::read(path).unwrap(), before);
        }
    }
}
