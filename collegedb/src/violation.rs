//! Constraint failures, typed at the backend boundary.

/// A constraint a statement broke. Backends produce it from their
/// database's error (see [`Violation::parse`]); the router turns it into
/// the caller's error (`duplicate_key`, `duplicate_alias`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A `UNIQUE` or `PRIMARY KEY` constraint.
    Unique {
        /// The table.
        table: String,
        /// Its columns that collided.
        columns: Vec<String>,
    },
    /// The shard's write fence refused the write.
    Fence(Fence),
}

/// Why a shard's write fence refused a write. The fence runs in the same
/// transaction as the write it guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// The writer's shard list is older than one this shard has seen.
    StaleTopology,
    /// The row is being moved to its home shard.
    Moving,
    /// The table's rows may not all be at their hash homes yet.
    Unsettled,
    /// The key was placed off this (full) home shard.
    Redirected,
    /// The write attempt's claim was taken over.
    Revoked,
}

impl Fence {
    /// The token the fence raises, as it appears in the database's message.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Fence::StaleTopology => "collegedb:stale_topology",
            Fence::Moving => "collegedb:moving",
            Fence::Unsettled => "collegedb:unsettled",
            Fence::Redirected => "collegedb:redirected",
            Fence::Revoked => "collegedb:revoked",
        }
    }
}

impl Violation {
    /// The violation in a SQLite error message (as SQLite or D1 words it),
    /// if it reports one.
    pub fn parse(message: &str) -> Option<Violation> {
        for fence in [
            Fence::StaleTopology,
            Fence::Moving,
            Fence::Unsettled,
            Fence::Redirected,
            Fence::Revoked,
        ] {
            if message.contains(fence.token()) {
                return Some(Violation::Fence(fence));
            }
        }
        let rest = message
            .split_once("UNIQUE constraint failed: ")
            .map(|(_, rest)| rest)?;
        let mut table = None;
        let mut columns = Vec::new();
        // `t.a, t.b` up to the end or a `:` that D1 appends.
        for part in rest.split(':').next().unwrap_or(rest).split(", ") {
            let (t, column) = part.trim().split_once('.')?;
            table.get_or_insert_with(|| t.to_owned());
            columns.push(column.trim().to_owned());
        }
        Some(Violation::Unique {
            table: table?,
            columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_their_columns() {
        assert_eq!(
            Violation::parse("UNIQUE constraint failed: users.email"),
            Some(Violation::Unique {
                table: "users".into(),
                columns: vec!["email".into()]
            })
        );
        assert_eq!(
            Violation::parse("D1_ERROR: UNIQUE constraint failed: users.id: SQLITE_CONSTRAINT"),
            Some(Violation::Unique {
                table: "users".into(),
                columns: vec!["id".into()]
            })
        );
        assert_eq!(
            Violation::parse("UNIQUE constraint failed: t.a, t.b"),
            Some(Violation::Unique {
                table: "t".into(),
                columns: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(
            Violation::parse("D1_ERROR: collegedb:moving: SQLITE_CONSTRAINT"),
            Some(Violation::Fence(Fence::Moving))
        );
        assert_eq!(Violation::parse("no such table: users"), None);
    }
}
