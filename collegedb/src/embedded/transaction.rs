//! Write transactions over cached statements: `BEGIN IMMEDIATE` and `COMMIT`
//! are parsed once per connection, not once per write as
//! `Connection::transaction_with_behavior` does (a measurable part of a
//! small write).

use std::ops::Deref;

use rusqlite::Connection;

/// An open `BEGIN IMMEDIATE` transaction, rolled back on drop unless committed
/// (an error or a panic midway leaves nothing behind).
pub(crate) struct Immediate<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Immediate<'c> {
    /// Begins a write transaction, waiting for other handles' write lock.
    pub(crate) fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Immediate { conn, open: true })
    }

    /// Commits; on failure the transaction is rolled back when dropped.
    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Deref for Immediate<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            // Nothing to report to: the caller already has the error that
            // stopped it; a failed rollback leaves SQLite to roll back.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
