//! Values as they cross the backends, and their conversion to and from Rust types.

use crate::error::{Error, Result};

/// One SQLite value: what every backend binds and returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// A short description of the value for error messages: its type and, for
    /// scalars, the value itself.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "NULL".to_owned(),
            Value::Integer(i) => format!("INTEGER {i}"),
            Value::Real(r) => format!("REAL {r}"),
            Value::Text(t) if t.len() > 40 => format!("TEXT of {} bytes", t.len()),
            Value::Text(t) => format!("TEXT {t:?}"),
            Value::Blob(b) => format!("BLOB of {} bytes", b.len()),
        }
    }

    /// The text form a key takes in mappings and hashing: text as is, integers in decimal.
    pub(crate) fn key_text(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::Integer(i) => i.to_string(),
            other => other.describe(),
        }
    }
}

/// A stored value did not fit the Rust type it was decoded into.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// What the Rust type accepts.
    pub expected: &'static str,
    /// What was found.
    pub found: String,
}

impl Mismatch {
    fn new(expected: &'static str, value: &Value) -> Self {
        Mismatch {
            expected,
            found: value.describe(),
        }
    }
}

/// A Rust type that can be stored in one SQLite column.
///
/// Implemented for `String`, the integer types, `bool`, `f32`, `f64`,
/// `Vec<u8>` and `Option<T>` of those. The derive maps these to SQLite types
/// (`TEXT`, `INTEGER`, `REAL`, `BLOB`; `Option` makes the column nullable).
pub trait SqlField: Sized {
    /// Encodes the value. Fails only for integers that SQLite cannot hold (`u64` above `i64::MAX`).
    fn to_value(&self) -> Result<Value>;
    /// Decodes a stored value.
    fn from_value(value: Value) -> Result<Self, Mismatch>;
}

impl SqlField for String {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Text(self.clone()))
    }
    fn from_value(value: Value) -> Result<Self, Mismatch> {
        match value {
            Value::Text(t) => Ok(t),
            other => Err(Mismatch::new("TEXT", &other)),
        }
    }
}

impl SqlField for Vec<u8> {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Blob(self.clone()))
    }
    fn from_value(value: Value) -> Result<Self, Mismatch> {
        match value {
            Value::Blob(b) => Ok(b),
            other => Err(Mismatch::new("BLOB", &other)),
        }
    }
}

impl SqlField for bool {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Integer(i64::from(*self)))
    }
    fn from_value(value: Value) -> Result<Self, Mismatch> {
        match value {
            Value::Integer(0) => Ok(false),
            Value::Integer(1) => Ok(true),
            other => Err(Mismatch::new("INTEGER 0 or 1 (bool)", &other)),
        }
    }
}

impl SqlField for f64 {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Real(*self))
    }
    fn from_value(value: Value) -> Result<Self, Mismatch> {
        match value {
            Value::Real(r) => Ok(r),
            // SQLite stores integral REALs as they came; accept integers exactly representable.
            Value::Integer(i) if i.unsigned_abs() <= 1 << 53 => Ok(i as f64),
            other => Err(Mismatch::new("REAL", &other)),
        }
    }
}

impl SqlField for f32 {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Real(f64::from(*self)))
    }
    fn from_value(value: Value) -> Result<Self, Mismatch> {
        f64::from_value(value).map(|r| r as f32)
    }
}

macro_rules! integer_field {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl SqlField for $ty {
            fn to_value(&self) -> Result<Value> {
                i64::try_from(*self)
                    .map(Value::Integer)
                    .map_err(|_| Error::IntegerOutOfRange {
                        value: self.to_string(),
                        target: "SQLite INTEGER (i64)",
                    })
            }
            fn from_value(value: Value) -> Result<Self, Mismatch> {
                match value {
                    Value::Integer(i) => <$ty>::try_from(i)
                        .map_err(|_| Mismatch::new($expected, &Value::Integer(i))),
                    other => Err(Mismatch::new($expected, &other)),
                }
            }
        }
    )*};
}

integer_field! {
    i8 => "INTEGER in i8 range",
    i16 => "INTEGER in i16 range",
    i32 => "INTEGER in i32 range",
    i64 => "INTEGER",
    u8 => "INTEGER in u8 range",
    u16 => "INTEGER in u16 range",
    u32 => "INTEGER in u32 range",
    u64 => "INTEGER in u64 range",
}

impl<T: SqlField> SqlField for Option<T> {
    fn to_value(&self) -> Result<Value> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(Value::Null),
        }
    }
    fn from_value(value: Value) -> Result<Self, Mismatch> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Encodes a `#[sharded(json)]` field as JSON text.
#[doc(hidden)]
pub fn encode_json<T: serde::Serialize>(value: &T, column: &'static str) -> Result<Value> {
    serde_json::to_string(value)
        .map(Value::Text)
        .map_err(|e| Error::Encode {
            column,
            message: e.to_string(),
        })
}

/// Decodes a `#[sharded(json)]` field from JSON text.
#[doc(hidden)]
pub fn decode_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Mismatch> {
    match value {
        Value::Text(text) => serde_json::from_str(&text).map_err(|e| Mismatch {
            expected: "JSON text matching the field type",
            found: format!("TEXT that does not match ({e})"),
        }),
        other => Err(Mismatch::new("JSON TEXT", &other)),
    }
}

/// Decodes one column of a row, naming the table and column on failure.
#[doc(hidden)]
pub fn decode_column<T>(
    table: &'static str,
    column: &'static str,
    value: Value,
    decode: impl FnOnce(Value) -> Result<T, Mismatch>,
) -> Result<T> {
    decode(value).map_err(|m| Error::Decode {
        table,
        column,
        expected: m.expected,
        found: m.found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_reject_out_of_range() {
        assert_eq!(42u8.to_value().unwrap(), Value::Integer(42));
        assert_eq!(u8::from_value(Value::Integer(255)).unwrap(), 255);
        let err = u8::from_value(Value::Integer(256)).unwrap_err();
        assert_eq!(err.expected, "INTEGER in u8 range");
        assert_eq!(err.found, "INTEGER 256");
        let err = u64::MAX.to_value().unwrap_err();
        assert_eq!(err.code(), "integer_out_of_range");
        assert_eq!(
            u64::from_value(Value::Integer(-1)).unwrap_err().found,
            "INTEGER -1"
        );
    }

    #[test]
    fn options_and_bools() {
        assert_eq!(
            Option::<String>::from_value(Value::Null).unwrap(),
            None::<String>
        );
        assert_eq!(
            Option::<i32>::from_value(Value::Integer(7)).unwrap(),
            Some(7)
        );
        assert!(bool::from_value(Value::Integer(2)).is_err());
        assert_eq!(true.to_value().unwrap(), Value::Integer(1));
    }

    #[test]
    fn decode_column_names_the_column() {
        let err =
            decode_column("users", "age", Value::Text("x".into()), i32::from_value).unwrap_err();
        assert_eq!(err.code(), "decode");
        assert!(err.to_string().contains("users.age"), "{err}");
    }
}
