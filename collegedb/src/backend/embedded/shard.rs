//! One shard as one SQLite database.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params_from_iter, Connection};

use crate::backend::{ShardExecutor, Statement};
use crate::error::{Error, Result};
use crate::value::Value;

/// A shard backed by a SQLite file (or memory).
#[derive(Debug)]
pub struct SqliteShard {
    name: String,
    conn: Mutex<Connection>,
}

impl SqliteShard {
    /// Opens or creates the shard's file.
    pub fn open(name: String, path: &Path) -> Result<Self> {
        let conn = super::open_file(path)?;
        Ok(SqliteShard {
            name,
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory shard.
    pub fn in_memory(name: String) -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| shard_error(&name, e))?;
        Ok(SqliteShard {
            name,
            conn: Mutex::new(conn),
        })
    }

    /// The shard's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A connection is still usable after a panic elsewhere held its lock.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        shard_error(&self.name, e)
    }
}

fn shard_error(shard: &str, e: rusqlite::Error) -> Error {
    Error::Shard {
        shard: shard.to_owned(),
        message: e.to_string(),
    }
}

impl ShardExecutor for SqliteShard {
    async fn execute(&self, statement: &Statement) -> Result<u64> {
        let conn = self.conn();
        let mut prepared = conn
            .prepare_cached(&statement.sql)
            .map_err(|e| self.err(e))?;
        let changed = prepared
            .execute(params_from_iter(statement.params.iter()))
            .map_err(|e| self.err(e))?;
        Ok(changed as u64)
    }

    async fn query(&self, statement: &Statement) -> Result<Vec<Vec<Value>>> {
        let conn = self.conn();
        let mut prepared = conn
            .prepare_cached(&statement.sql)
            .map_err(|e| self.err(e))?;
        let width = prepared.column_count();
        let mut rows = prepared
            .query(params_from_iter(statement.params.iter()))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(Value::from(row.get_ref(i).map_err(|e| self.err(e))?));
            }
            out.push(values);
        }
        Ok(out)
    }

    async fn batch(&self, statements: &[Statement]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for statement in statements {
            tx.prepare_cached(&statement.sql)
                .and_then(|mut s| s.execute(params_from_iter(statement.params.iter())))
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    async fn size_bytes(&self) -> Result<u64> {
        let conn = self.conn();
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((pages * size) as u64)
    }
}
