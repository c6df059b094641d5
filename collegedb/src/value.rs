//! Values as they cross the backends, and their conversion to and from Rust types.

use serde::ser::{self, Serialize};

use crate::error::{Error, Result};

/// One SQLite value: what every backend binds and returns.
///
/// Keys convert into it from text and integers, so that the generic
/// [`Database`](crate::Database) methods read naturally
/// (`db.shard_of::<User>("u-42".into())`):
///
/// ```
/// use collegedb::Value;
///
/// assert_eq!(Value::from("u-42"), Value::Text("u-42".into()));
/// assert_eq!(Value::from(-7i32), Value::Integer(-7));
/// // `u64` and `usize` may not fit in SQLite's INTEGER, so their conversion can fail.
/// assert_eq!(Value::try_from(42u64)?, Value::Integer(42));
/// assert_eq!(Value::try_from(u64::MAX).unwrap_err().code(), "integer_out_of_range");
/// # Ok::<(), collegedb::Error>(())
/// ```
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

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::Text(text.clone())
    }
}

macro_rules! from_integer {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Value {
            fn from(integer: $ty) -> Self {
                Value::Integer(i64::from(integer))
            }
        }
    )*};
}

from_integer!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    /// A REAL; NaN becomes NULL, which is what SQLite would store for it.
    fn from(real: f64) -> Self {
        if real.is_nan() {
            Value::Null
        } else {
            Value::Real(real)
        }
    }
}

impl TryFrom<u64> for Value {
    type Error = Error;
    fn try_from(integer: u64) -> Result<Self> {
        to_integer(integer)
    }
}

impl TryFrom<usize> for Value {
    type Error = Error;
    fn try_from(integer: usize) -> Result<Self> {
        to_integer(integer)
    }
}

/// An integer as SQLite's INTEGER, or [`Error::IntegerOutOfRange`] if it does not fit in an `i64`.
fn to_integer<T: TryInto<i64> + ToString + Copy>(integer: T) -> Result<Value> {
    integer
        .try_into()
        .map(Value::Integer)
        .map_err(|_| Error::IntegerOutOfRange {
            value: integer.to_string(),
            target: "SQLite INTEGER (i64)",
        })
}

/// The column that [`SqlField::to_value`] names in an [`Error::Encode`]: it
/// does not know its column, and the derive replaces this with `table.column`.
const UNNAMED_COLUMN: &str = "<value>";

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
    /// Encodes the value, refusing what SQLite would not store faithfully:
    /// integers it cannot hold (`u64` above `i64::MAX`:
    /// [`Error::IntegerOutOfRange`]) and NaN, which it would store as NULL
    /// ([`Error::Encode`]; infinities are stored). `-0.0` is encoded as
    /// `0.0`: SQLite keeps no sign on zero, and the two compare equal. That `Error::Encode` names
    /// the column `<value>`, which the derive's code replaces with `table.column`.
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
        if self.is_nan() {
            return Err(Error::Encode {
                column: UNNAMED_COLUMN,
                message: "it is NaN, which SQLite would store as NULL".to_owned(),
            });
        }
        // SQLite keeps an integral REAL as an integer, so zero loses its
        // sign: encoded as `0.0`, the value is the one every read returns.
        Ok(Value::Real(if *self == 0.0 { 0.0 } else { *self }))
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
        f64::from(*self).to_value()
    }
    fn from_value(value: Value) -> Result<Self, Mismatch> {
        let real = f64::from_value(value)?;
        let narrowed = real as f32;
        // A finite double beyond f32's range would become an infinity.
        if narrowed.is_infinite() && real.is_finite() {
            return Err(Mismatch::new("REAL within f32's range", &Value::Real(real)));
        }
        Ok(narrowed)
    }
}

macro_rules! integer_field {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl SqlField for $ty {
            fn to_value(&self) -> Result<Value> {
                to_integer(*self)
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

/// Names the column of an [`Error::Encode`] from encoding one column of a
/// model; `column` is `table.column`.
#[doc(hidden)]
pub fn encode_column(column: &'static str, encoded: Result<Value>) -> Result<Value> {
    encoded.map_err(|err| match err {
        Error::Encode { message, .. } => Error::Encode { column, message },
        other => other,
    })
}

/// Encodes a `#[sharded(json)]` field as JSON text; `column` is `table.column`.
///
/// Refuses NaN and infinite floats anywhere in the value: JSON has no such
/// numbers, and serde_json would write each as `null`, which the field's
/// type may then fail to read back, failing every read of the table.
#[doc(hidden)]
pub fn encode_json<T: serde::Serialize>(value: &T, column: &'static str) -> Result<Value> {
    let refuse = |e: serde_json::Error| Error::Encode {
        column,
        message: e.to_string(),
    };
    value.serialize(Finite).map_err(refuse)?;
    serde_json::to_string(value)
        .map(Value::Text)
        .map_err(refuse)
}

/// A serializer that writes nothing and fails at the first NaN or infinite
/// float. serde_json cannot be asked instead: it hands its formatter a
/// `null` for them, as for a `None`.
struct Finite;

impl Finite {
    fn check(float: f64) -> Result<(), serde_json::Error> {
        if float.is_finite() {
            Ok(())
        } else {
            Err(ser::Error::custom(format_args!(
                "it holds {float}, and JSON has no NaN or infinity (serde_json would write null)"
            )))
        }
    }
}

/// `Serializer` methods with nothing inside to check.
macro_rules! accept {
    ($($method:ident($($arg:ty),*);)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<(), serde_json::Error> {
            Ok(())
        }
    )*};
}

/// `Serializer` methods that start a compound value, whose parts `walk!` checks.
macro_rules! start {
    ($($method:ident($($arg:ty),*);)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<Self, serde_json::Error> {
            Ok(self)
        }
    )*};
}

impl ser::Serializer for Finite {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    accept! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    start! {
        serialize_seq(Option<usize>);
        serialize_tuple(usize);
        serialize_tuple_struct(&'static str, usize);
        serialize_tuple_variant(&'static str, u32, &'static str, usize);
        serialize_map(Option<usize>);
        serialize_struct(&'static str, usize);
        serialize_struct_variant(&'static str, u32, &'static str, usize);
    }

    fn serialize_f32(self, float: f32) -> Result<(), Self::Error> {
        Finite::check(f64::from(float))
    }
    fn serialize_f64(self, float: f64) -> Result<(), Self::Error> {
        Finite::check(float)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Self::Error> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        value.serialize(self)
    }
}

/// The compound serializers: each element, field, key and value is checked.
macro_rules! walk {
    ($($trait:ident { $($method:ident($($key:ty)?)),* })*) => {$(
        impl ser::$trait for Finite {
            type Ok = ();
            type Error = serde_json::Error;
            $(
                fn $method<T: ?Sized + Serialize>(
                    &mut self,
                    $(_: $key,)?
                    value: &T,
                ) -> Result<(), Self::Error> {
                    value.serialize(Finite)
                }
            )*
            fn end(self) -> Result<(), Self::Error> {
                Ok(())
            }
        }
    )*};
}

walk! {
    SerializeSeq { serialize_element() }
    SerializeTuple { serialize_element() }
    SerializeTupleStruct { serialize_field() }
    SerializeTupleVariant { serialize_field() }
    SerializeMap { serialize_key(), serialize_value() }
    SerializeStruct { serialize_field(&'static str) }
    SerializeStructVariant { serialize_field(&'static str) }
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
    fn keys_convert_from_text_and_integers() {
        let id = String::from("u-42");
        assert_eq!(Value::from("u-42"), Value::Text("u-42".into()));
        assert_eq!(Value::from(&id), Value::Text("u-42".into()));
        assert_eq!(Value::from(id), Value::Text("u-42".into()));
        // An unsuffixed literal falls back to i32, as for any `From` of several integers.
        assert_eq!(Value::from(7), Value::Integer(7));
        assert_eq!(Value::from(i8::MIN), Value::Integer(-128));
        assert_eq!(Value::from(i16::MIN), Value::Integer(i64::from(i16::MIN)));
        assert_eq!(Value::from(i32::MIN), Value::Integer(i64::from(i32::MIN)));
        assert_eq!(Value::from(i64::MIN), Value::Integer(i64::MIN));
        assert_eq!(Value::from(u8::MAX), Value::Integer(255));
        assert_eq!(Value::from(u16::MAX), Value::Integer(65_535));
        assert_eq!(Value::from(u32::MAX), Value::Integer(i64::from(u32::MAX)));
    }

    #[test]
    fn wide_unsigned_keys_convert_only_within_i64() {
        assert_eq!(Value::try_from(42u64).unwrap(), Value::Integer(42));
        assert_eq!(
            Value::try_from(i64::MAX as u64).unwrap(),
            Value::Integer(i64::MAX)
        );
        assert_eq!(Value::try_from(42usize).unwrap(), Value::Integer(42));
        let err = Value::try_from(i64::MAX as u64 + 1).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::IntegerOutOfRange { value, target: "SQLite INTEGER (i64)" }
                    if value == "9223372036854775808"
            ),
            "{err:?}"
        );
        if let Ok(too_wide) = usize::try_from(u64::MAX) {
            assert_eq!(
                Value::try_from(too_wide).unwrap_err().code(),
                "integer_out_of_range"
            );
        }
    }

    fn encode_error(result: Result<Value>) -> (&'static str, String) {
        match result {
            Err(Error::Encode { column, message }) => (column, message),
            other => panic!("expected an encode error, got {other:?}"),
        }
    }

    #[test]
    fn reals_beyond_f32_are_refused_as_f32() {
        assert!(f32::from_value(Value::Real(1e300)).is_err());
        assert!(f32::from_value(Value::Real(-1e39)).is_err());
        assert_eq!(
            f32::from_value(Value::Real(f64::from(f32::MAX))),
            Ok(f32::MAX)
        );
        assert_eq!(
            f32::from_value(Value::Real(f64::NEG_INFINITY)),
            Ok(f32::NEG_INFINITY)
        );
        assert_eq!(f32::from_value(Value::Real(0.1)), Ok(0.1f32));
    }

    #[test]
    fn negative_zero_is_encoded_as_zero() {
        for zero in [
            (-0.0f64).to_value(),
            (-0.0f32).to_value(),
            Some(-0.0f64).to_value(),
        ] {
            let zero = zero.unwrap();
            assert!(
                matches!(zero, Value::Real(z) if z.to_bits() == 0),
                "{zero:?}"
            );
        }
    }

    #[test]
    fn nan_is_refused_and_infinities_are_stored() {
        let (column, message) = encode_error(f64::NAN.to_value());
        assert_eq!(column, "<value>");
        assert!(message.contains("NaN"), "{message}");
        encode_error(f32::NAN.to_value());
        encode_error(Some(f64::NAN).to_value());
        encode_error(Some(-f32::NAN).to_value());
        assert_eq!(None::<f64>.to_value().unwrap(), Value::Null);
        assert_eq!(
            f64::INFINITY.to_value().unwrap(),
            Value::Real(f64::INFINITY)
        );
        assert_eq!(
            f32::NEG_INFINITY.to_value().unwrap(),
            Value::Real(f64::NEG_INFINITY)
        );
        assert_eq!(Some(1.5f64).to_value().unwrap(), Value::Real(1.5));
    }

    #[test]
    fn encode_column_names_the_column_of_encode_errors_only() {
        let (column, message) = encode_error(encode_column("scores.value", f64::NAN.to_value()));
        assert_eq!(column, "scores.value");
        assert!(message.contains("NaN"), "{message}");
        let err = encode_column("t.n", u64::MAX.to_value()).unwrap_err();
        assert_eq!(err.code(), "integer_out_of_range");
        assert_eq!(
            encode_column("t.n", 3u8.to_value()).unwrap(),
            Value::Integer(3)
        );
    }

    #[derive(serde::Serialize)]
    struct Reading {
        label: String,
        offset: Option<f64>,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Circle(f32),
        Rect { width: f64, height: f64 },
    }

    #[test]
    fn json_refuses_non_finite_floats_anywhere() {
        let (column, message) = encode_error(encode_json(&vec![1.0, f64::NAN], "t.samples"));
        assert_eq!(column, "t.samples");
        assert!(message.contains("NaN"), "{message}");
        let reading = Reading {
            label: "a".into(),
            offset: Some(f64::NAN),
        };
        let (column, _) = encode_error(encode_json(&reading, "t.reading"));
        assert_eq!(column, "t.reading");
        let (_, message) = encode_error(encode_json(&vec![f64::INFINITY], "t.c"));
        assert!(message.contains("inf"), "{message}");
        encode_error(encode_json(
            &Some(vec![Shape::Circle(f32::NEG_INFINITY)]),
            "t.c",
        ));
        encode_error(encode_json(
            &Shape::Rect {
                width: 1.0,
                height: f64::NAN,
            },
            "t.c",
        ));
        let keyed = std::collections::BTreeMap::from([("k", (1u8, f64::NAN))]);
        encode_error(encode_json(&keyed, "t.c"));
    }

    #[test]
    fn json_stores_finite_values_as_serde_json_writes_them() {
        let reading = Reading {
            label: "a".into(),
            offset: None,
        };
        let shapes = vec![
            Shape::Circle(0.5),
            Shape::Rect {
                width: f64::MAX,
                height: -0.0,
            },
        ];
        for (encoded, expected) in [
            (
                encode_json(&reading, "t.c"),
                serde_json::to_string(&reading),
            ),
            (encode_json(&shapes, "t.c"), serde_json::to_string(&shapes)),
            (
                encode_json(&(u128::MAX, i128::MIN, 'x', ()), "t.c"),
                serde_json::to_string(&(u128::MAX, i128::MIN, 'x', ())),
            ),
        ] {
            assert_eq!(encoded.unwrap(), Value::Text(expected.unwrap()));
        }
        let back: Vec<f64> = decode_json(encode_json(&vec![1e300, -2.5], "t.c").unwrap()).unwrap();
        assert_eq!(back, [1e300, -2.5]);
    }

    #[test]
    fn decode_column_names_the_column() {
        let err =
            decode_column("users", "age", Value::Text("x".into()), i32::from_value).unwrap_err();
        assert_eq!(err.code(), "decode");
        assert!(err.to_string().contains("users.age"), "{err}");
    }
}
