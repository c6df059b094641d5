//! The embedded mapping store and coordinator: one SQLite file.
//!
//! The `claims` table is the authority, each request one `IMMEDIATE`
//! transaction, so handles on several threads or processes sharing the
//! directory agree; it also answers the read path (there is no KV to lag
//! behind it here). The file also keeps the shard list, so that reopening a
//! directory restores the stable shard order.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use super::transaction::Immediate;
use crate::backend::claims::{apply, ClaimTable};
use crate::backend::{
    ClaimReply, ClaimRequest, Coordinator, Holder, KeyPage, MappingStore, Release,
};
use crate::directory::MappingRecord;
use crate::error::{Error, Result};
use crate::key::owner_key;
use crate::platform::now_ms;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shards (position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, incarnation TEXT NOT NULL, nonce TEXT NOT NULL, shard TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shard_files (name TEXT PRIMARY KEY) WITHOUT ROWID;
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

    /// The shards whose files were created: such a file that is missing took
    /// its rows with it, and must not be created again, empty.
    pub(crate) fn shard_files(&self) -> Result<Vec<String>> {
        self.conn()
            .prepare("SELECT name FROM shard_files")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(store_error)
    }

    /// Records that the file of shard `name` exists.
    pub(crate) fn shard_file_made(&self, name: &str) -> Result<()> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO shard_files (name) VALUES (?1)",
                [name],
            )
            .map(drop)
            .map_err(store_error)
    }

    /// The stable shard list, grown to `wanted` shards named by `name_of` if asked.
    pub(crate) fn shard_list(
        &self,
        wanted: Option<usize>,
        name_of: impl Fn(usize) -> String,
    ) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(store_error)?;
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

/// The read path of the embedded backend is its authority: the claims are
/// local and strongly consistent, so there is nothing for a cache to add.
/// Reads answer from the claims (as a KV record would: shard and owner);
/// writes are no-ops, so an insert is one claims transaction and one row
/// batch.
impl MappingStore for SqliteMappings {
    fn max_key_len(&self) -> usize {
        // The same limit as KV, so that a key that works here works on Cloudflare.
        512
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached("SELECT shard, owner FROM claims WHERE key = ?1")
            .map_err(store_error)?;
        keys.iter()
            .map(|key| {
                statement
                    .query_row([key], |r| {
                        // Read in place: the record is written from the row's own text.
                        let shard = r.get_ref(0)?.as_str()?;
                        let pk = owner_key(r.get_ref(1)?.as_str()?).ok();
                        Ok(MappingRecord::json_of(shard, pk, 0))
                    })
                    .optional()
                    .map_err(store_error)
            })
            .collect()
    }

    async fn put(&self, _key: &str, _value: &str) -> Result<()> {
        Ok(())
    }

    async fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(
                "SELECT key FROM claims WHERE substr(key, 1, length(?1)) = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
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

/// The claims table inside one transaction.
struct Claims<'t>(&'t Connection);

impl ClaimTable for Claims<'_> {
    fn holder(&mut self, key: &str) -> Result<Option<Holder>> {
        self.0
            .prepare_cached("SELECT owner, incarnation, nonce, shard FROM claims WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([key], |r| {
                    Ok(Holder {
                        owner: r.get(0)?,
                        incarnation: r.get(1)?,
                        nonce: r.get(2)?,
                        shard: r.get(3)?,
                    })
                })
                .optional()
            })
            .map_err(coordinator_error)
    }

    fn store(&mut self, key: &str, holder: &Holder) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO claims (key, owner, incarnation, nonce, shard, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, incarnation = excluded.incarnation,
                 nonce = excluded.nonce, shard = excluded.shard",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    holder.owner,
                    holder.incarnation,
                    holder.nonce,
                    holder.shard,
                    now_ms() as i64
                ])
            })
            .map(drop)
            .map_err(coordinator_error)
    }

    fn ticket(&mut self) -> Result<u64> {
        self.0
            .query_row(
                "INSERT INTO counters (name, value) VALUES ('round-robin', 1)
                 ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value - 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(coordinator_error)
    }
}

impl Coordinator for SqliteMappings {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimReply> {
        let conn = self.conn();
        // IMMEDIATE: the reads and writes of a request are one step for every handle.
        let tx = Immediate::begin(&conn).map_err(coordinator_error)?;
        let reply = apply(&mut Claims(&tx), request)?;
        if matches!(reply, ClaimReply::Granted { .. }) {
            tx.commit().map_err(coordinator_error)?;
        }
        Ok(reply)
    }

    async fn release(&self, releases: &[Release]) -> Result<()> {
        let conn = self.conn();
        let tx = Immediate::begin(&conn).map_err(coordinator_error)?;
        for release in releases {
            tx.prepare_cached(
                "DELETE FROM claims WHERE key = ?1 AND owner = ?2 AND incarnation = ?3",
            )
            .and_then(|mut s| s.execute([&release.key, &release.owner, &release.incarnation]))
            .map_err(coordinator_error)?;
        }
        tx.commit().map_err(coordinator_error)
    }

    async fn holders(&self, keys: &[String]) -> Result<Vec<Option<Holder>>> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(coordinator_error)?;
        let mut claims = Claims(&tx);
        keys.iter().map(|key| claims.holder(key)).collect()
    }
}
