//! The embedded backend: one SQLite file per shard in a directory, and
//! `mappings.sqlite` for the claims (the authority), the round-robin counter
//! and the stable shard list. Real SQLite (bundled
//! with rusqlite), so local runs and tests exercise the same SQL as D1.
//!
//! ```
//! use collegedb::{embedded, Config, Strategy};
//!
//! let dir = std::env::temp_dir().join(format!("collegedb-doc-{}", std::process::id()));
//! let db = embedded::Options::dir(&dir)
//!     .shards(4)
//!     .config(Config::default().strategy(Strategy::RoundRobin))
//!     .open()?;
//! assert_eq!(db.shard_names().count(), 4);
//! // Reopening finds the same shards; `shards` may only grow.
//! drop(db);
//! let again = embedded::Options::dir(&dir).open()?;
//! assert_eq!(again.shard_names().collect::<Vec<_>>(), ["shard-0", "shard-1", "shard-2", "shard-3"]);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), collegedb::Error>(())
//! ```

mod convert;
mod mappings;
mod shard;
mod transaction;

use std::path::{Path, PathBuf};

pub use mappings::SqliteMappings;
pub use shard::SqliteShard;

use crate::backend::Backend;
use crate::backend::ShardSpec;
use crate::database::{Config, Database};
use crate::error::{Error, Result};
use crate::strategy::ShardLocation;

/// The embedded backend family.
#[derive(Debug, Clone, Copy)]
pub struct Embedded;

impl Backend for Embedded {
    type Shard = SqliteShard;
    type Mappings = SqliteMappings;
    type Coordinator = SqliteMappings;
}

#[derive(Debug, Clone)]
enum Storage {
    Dir(PathBuf),
    Memory,
}

/// How to open an embedded database.
#[derive(Debug, Clone)]
pub struct Options {
    storage: Storage,
    shards: Option<usize>,
    locations: Vec<(String, ShardLocation)>,
    config: Config,
}

impl Options {
    /// Files in `dir` (created if missing): `shard-N.sqlite` and `mappings.sqlite`.
    /// Opening refuses ([`Error::Io`]) a directory whose shard file, once
    /// created, is missing: starting that shard empty would lose its rows
    /// without a word.
    pub fn dir(dir: impl AsRef<Path>) -> Self {
        Options {
            storage: Storage::Dir(dir.as_ref().to_owned()),
            shards: None,
            locations: Vec::new(),
            config: Config::default(),
        }
    }

    /// `shards` in-memory databases, gone when the database is dropped: for tests.
    pub fn in_memory(shards: usize) -> Self {
        Options {
            storage: Storage::Memory,
            shards: Some(shards),
            locations: Vec::new(),
            config: Config::default(),
        }
    }

    /// The number of shards. A directory opened before keeps its shards and
    /// may only grow: new shards are appended to the stable order.
    pub fn shards(self, shards: usize) -> Self {
        Options {
            shards: Some(shards),
            ..self
        }
    }

    /// Where shard `name` (`shard-0`, ...) lives, for location placement.
    pub fn locate(mut self, name: impl Into<String>, location: ShardLocation) -> Self {
        self.locations.push((name.into(), location));
        self
    }

    /// Placement, size limit, key hashing and cache.
    pub fn config(self, config: Config) -> Self {
        Options { config, ..self }
    }

    /// Opens (or creates) the database.
    pub fn open(self) -> Result<Database<Embedded>> {
        let (mappings, shards) = match &self.storage {
            Storage::Memory => {
                let count = self.shards.ok_or(Error::NoShards)?;
                let shards = (0..count)
                    .map(|i| SqliteShard::in_memory(shard_name(i)))
                    .collect::<Result<Vec<_>>>()?;
                (SqliteMappings::in_memory()?, shards)
            }
            Storage::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
                let mappings = SqliteMappings::open(&dir.join("mappings.sqlite"))?;
                let names = mappings.shard_list(self.shards, shard_name)?;
                let made = mappings.shard_files()?;
                let shards = names
                    .into_iter()
                    .map(|name| {
                        let path = dir.join(format!("{name}.sqlite"));
                        let was_made = made.contains(&name);
                        // SQLite would create a missing file, empty: the
                        // shard's rows would be gone without a word.
                        if was_made && !path.exists() {
                            return Err(Error::Io {
                                path: path.display().to_string(),
                                message: format!(
                                    "the file of {name} is missing: it held that shard's rows; restore it (opening would start the shard empty)"
                                ),
                            });
                        }
                        let shard = SqliteShard::open(name, &path)?;
                        if !was_made {
                            mappings.shard_file_made(shard.name())?;
                        }
                        Ok(shard)
                    })
                    .collect::<Result<Vec<_>>>()?;
                (mappings, shards)
            }
        };
        let mut specs: Vec<ShardSpec<SqliteShard>> = shards
            .into_iter()
            .map(|s| ShardSpec::new(s.name().to_owned(), s))
            .collect();
        for (name, location) in self.locations {
            let spec = specs
                .iter_mut()
                .find(|s| s.name == name)
                .ok_or(Error::UnknownShard { shard: name })?;
            spec.location = Some(location);
        }
        Database::new(
            specs,
            mappings.clone(),
            Some(mappings),
            self.config,
            "the embedded backend always has one",
        )
    }
}

/// Opens or creates a SQLite file the way every embedded file is opened.
fn open_file(path: &Path) -> Result<rusqlite::Connection> {
    let io = |e: rusqlite::Error| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let conn = rusqlite::Connection::open(path).map_err(io)?;
    // Handles on other threads or processes may hold the write lock: wait
    // for it rather than fail (opening a fresh directory from several
    // threads at once included).
    conn.busy_timeout(BUSY_TIMEOUT).map_err(io)?;
    // WAL keeps readers and the writer apart; NORMAL is durable across
    // application crashes, which is what a local backend needs. Switching a
    // fresh file to WAL while another connection does the same can answer
    // SQLITE_BUSY without consulting the busy handler: wait and retry.
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            other => break other.map_err(io)?,
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(io)?;
    Ok(conn)
}

/// How long a statement waits for another handle's write lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn shard_name(index: usize) -> String {
    format!("shard-{index}")
}
