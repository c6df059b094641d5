//! One shard as one SQLite database.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params_from_iter, Connection};

use super::convert::{shard_error, value_of};
use super::transaction::Immediate;
use crate::backend::{Outcome, ShardExecutor, Statement};
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

    /// Runs one statement, collecting the rows it returns.
    fn run(&self, conn: &Connection, statement: &Statement) -> Result<Outcome> {
        let mut prepared = conn
            .prepare_cached(&statement.sql)
            .map_err(|e| self.err(e))?;
        // D1 refuses a statement whose bindings do not match its parameters;
        // SQLite would bind the missing ones as NULL. Refuse here too.
        if prepared.parameter_count() != statement.params.len() {
            return Err(Error::Shard {
                shard: self.name.clone(),
                message: format!(
                    "the statement has {} parameter(s) but {} value(s) were bound",
                    prepared.parameter_count(),
                    statement.params.len()
                ),
            });
        }
        let width = prepared.column_count();
        let mut rows = prepared
            .query(params_from_iter(statement.params.iter()))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                let value = row.get_ref(i).map_err(|e| self.err(e))?;
                values.push(value_of(value).map_err(|message| Error::Shard {
                    shard: self.name.clone(),
                    message,
                })?);
            }
            out.push(values);
        }
        drop(rows);
        // `changes()` counts only INSERT/UPDATE/DELETE; a SELECT leaves the
        // previous statement's count, so it is reported as zero.
        let changed = if prepared.readonly() {
            0
        } else {
            conn.changes()
        };
        Ok(Outcome { changed, rows: out })
    }
}

/// The bundled SQLite's limit on bound parameters (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_PARAMETERS: usize = 32_766;

impl ShardExecutor for SqliteShard {
    fn check(params: &[Value]) -> Result<()> {
        if params.len() > MAX_PARAMETERS {
            return Err(Error::TooManyParameters {
                count: params.len(),
                limit: MAX_PARAMETERS,
            });
        }
        Ok(())
    }

    async fn query(&self, statement: &Statement) -> Result<Vec<Vec<Value>>> {
        let conn = self.conn();
        self.run(&conn, statement).map(|outcome| outcome.rows)
    }

    async fn batch(&self, statements: &[Statement]) -> Result<Vec<Outcome>> {
        let conn = self.conn();
        // IMMEDIATE: the batch's reads and writes are one step, as on D1.
        let tx = Immediate::begin(&conn).map_err(|e| self.err(e))?;
        let outcomes = statements
            .iter()
            .map(|statement| self.run(&tx, statement))
            .collect::<Result<Vec<_>>>()?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(outcomes)
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
