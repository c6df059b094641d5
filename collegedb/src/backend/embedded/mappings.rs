//! The embedded mapping store and coordinator: one SQLite file.
//!
//! Unlike KV it is strongly consistent, so it is also the placement authority
//! (put-if-absent allocations, the round-robin counter) and keeps the shard
//! list, so that reopening a directory restores the stable shard order.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{Coordinator, KeyPage, MappingStore, ShardStats};
use crate::error::{Error, Result};
use crate::platform::now_ms;
use crate::strategy::{decide, AllocationRequest};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shards (position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS mappings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS placements (key TEXT PRIMARY KEY, shard TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shard_stats (shard TEXT PRIMARY KEY, count INTEGER NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;
";

/// Keys per page of [`MappingStore::list`], as KV pages them.
const PAGE: usize = 1000;

/// Mappings, placements and counters in one SQLite database. Clones share it.
#[derive(Debug, Clone)]
pub struct SqliteMappings {
    conn: Arc<Mutex<Connection>>,
}

fn store_error(e: rusqlite::Error) -> Error {
    Error::MappingStore(e.to_string())
}

fn coordinator_error(e: rusqlite::Error) -> Error {
    Error::Coordinator(e.to_string())
}

impl SqliteMappings {
    /// Opens or creates the mapping file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::with(super::open_file(path)?)
    }

    /// An in-memory mapping store.
    pub fn in_memory() -> Result<Self> {
        Self::with(Connection::open_in_memory().map_err(store_error)?)
    }

    fn with(conn: Connection) -> Result<Self> {
        conn.execute_batch(SCHEMA).map_err(store_error)?;
        Ok(SqliteMappings {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stable shard list, grown to `wanted` shards named by `name_of` if asked.
    pub(crate) fn shard_list(
        &self,
        wanted: Option<usize>,
        name_of: impl Fn(usize) -> String,
    ) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(store_error)?;
        let mut names: Vec<String> = tx
            .prepare("SELECT name FROM shards ORDER BY position")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(store_error)?;
        match wanted {
            None if names.is_empty() => {
                return Err(Error::Config(
                    "a new directory needs a shard count: call `.shards(n)`".into(),
                ))
            }
            Some(n) if n < names.len() => {
                return Err(Error::Config(format!(
                    "this directory has {} shards and shards are never dropped: open it with `.shards({})` or more",
                    names.len(),
                    names.len()
                )))
            }
            Some(n) => {
                for position in names.len()..n {
                    let name = name_of(position);
                    tx.execute(
                        "INSERT INTO shards (position, name) VALUES (?1, ?2)",
                        params![position as i64, name],
                    )
                    .map_err(store_error)?;
                    names.push(name);
                }
            }
            None => {}
        }
        tx.commit().map_err(store_error)?;
        Ok(names)
    }
}

impl MappingStore for SqliteMappings {
    fn max_key_len(&self) -> usize {
        // The same limit as KV, so that a key that works here works on Cloudflare.
        512
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached("SELECT value FROM mappings WHERE key = ?1")
            .map_err(store_error)?;
        keys.iter()
            .map(|k| {
                statement
                    .query_row([k], |r| r.get(0))
                    .optional()
                    .map_err(store_error)
            })
            .collect()
    }

    async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.conn()
            .prepare_cached("INSERT OR REPLACE INTO mappings (key, value) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute([key, value]))
            .map(drop)
            .map_err(store_error)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM mappings WHERE key = ?1")
            .and_then(|mut s| s.execute([key]))
            .map(drop)
            .map_err(store_error)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(
                "SELECT key FROM mappings WHERE substr(key, 1, length(?1)) = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
            )
            .map_err(store_error)?;
        let keys: Vec<String> = statement
            .query_map(params![prefix, cursor.unwrap_or(""), PAGE as i64], |r| {
                r.get(0)
            })
            .and_then(|rows| rows.collect())
            .map_err(store_error)?;
        let cursor = (keys.len() == PAGE).then(|| keys[PAGE - 1].clone());
        Ok(KeyPage { keys, cursor })
    }
}

impl Coordinator for SqliteMappings {
    async fn allocate(&self, key: &str, request: &AllocationRequest) -> Result<String> {
        let mut conn = self.conn();
        // IMMEDIATE: the read and the write of a put-if-absent are one step.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(coordinator_error)?;
        let existing: Option<String> = tx
            .query_row("SELECT shard FROM placements WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(coordinator_error)?;
        if let Some(shard) = existing {
            return Ok(shard);
        }
        let shard = decide(key, request, || {
            tx.query_row(
                "INSERT INTO counters (name, value) VALUES ('round-robin', 1)
                 ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value - 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(coordinator_error)
        })?;
        tx.execute(
            "INSERT INTO placements (key, shard, created) VALUES (?1, ?2, ?3)",
            params![key, shard, now_ms() as i64],
        )
        .map_err(coordinator_error)?;
        tx.commit().map_err(coordinator_error)?;
        Ok(shard)
    }

    async fn release(&self, key: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM placements WHERE key = ?1", [key])
            .map(drop)
            .map_err(coordinator_error)
    }

    async fn adjust_count(&self, shard: &str, delta: i64) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO shard_stats (shard, count, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT (shard) DO UPDATE SET count = count + excluded.count, updated = excluded.updated",
                params![shard, delta, now_ms() as i64],
            )
            .map(drop)
            .map_err(coordinator_error)
    }

    async fn stats(&self) -> Result<Vec<ShardStats>> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT shard, count, updated FROM shard_stats ORDER BY shard")
            .map_err(coordinator_error)?;
        let rows = statement
            .query_map([], |r| {
                Ok(ShardStats {
                    shard: r.get(0)?,
                    count: r.get(1)?,
                    updated_ms: r.get::<_, i64>(2)? as u64,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(coordinator_error);
        rows
    }
}
