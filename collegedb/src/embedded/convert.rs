//! Conversions between [`Value`] and rusqlite's values, and rusqlite's
//! errors into typed ones.

use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};
use rusqlite::ToSql;

use crate::backend::Violation;
use crate::error::Error;
use crate::value::Value;

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(SqliteValue::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// A stored value as a [`Value`]; TEXT that is not UTF-8 is refused, not
/// decoded lossily (it would read back as something that was never written).
pub(super) fn value_of(value: ValueRef<'_>) -> Result<Value, String> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|e| format!("a TEXT value is not valid UTF-8 ({e})"))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// A shard's error: typed if SQLite reports a constraint, else its message.
pub(super) fn shard_error(shard: &str, e: rusqlite::Error) -> Error {
    let message = e.to_string();
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        if let Some(violation) = Violation::parse(&message) {
            return Error::Constraint {
                shard: shard.to_owned(),
                violation,
            };
        }
    }
    Error::Shard {
        shard: shard.to_owned(),
        message,
    }
}
