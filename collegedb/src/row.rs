//! Decoding result rows into Rust types: models, plain structs with
//! `#[derive(FromRow)]`, tuples, single values, and raw `Vec<Value>`.

use crate::error::{Error, Result};
use crate::value::{SqlField, Value};

/// A type a result row decodes into, column by column in select-list order.
///
/// `#[derive(Sharded)]` implements it for models, and `#[derive(FromRow)]`
/// for plain structs (with [`Selection`], so a query can select just their
/// columns). It is also implemented for every [`SqlField`] (a one-column
/// row), tuples of up to eight of them, and `Vec<Value>` (any row as is).
pub trait FromRow: Sized {
    /// Decodes one row. A row of the wrong width or a value of the wrong
    /// type is an [`Error::Decode`].
    fn from_row(row: Vec<Value>) -> Result<Self>;
}

/// A [`FromRow`] type whose fields are named columns: a query can select
/// exactly these columns of a model into it
/// ([`Query::select`](crate::Query::select)).
pub trait Selection: FromRow {
    /// The columns, in the order [`FromRow::from_row`] reads them.
    const COLUMNS: &'static [&'static str];
}

impl FromRow for Vec<Value> {
    fn from_row(row: Vec<Value>) -> Result<Self> {
        Ok(row)
    }
}

impl<T: SqlField> FromRow for T {
    fn from_row(row: Vec<Value>) -> Result<Self> {
        let [value] = width::<1>(row)?;
        cell(0, value)
    }
}

/// The row as an array of exactly `N` values.
fn width<const N: usize>(row: Vec<Value>) -> Result<[Value; N]> {
    <[Value; N]>::try_from(row).map_err(|row| Error::Decode {
        table: "<query>",
        column: "<row>",
        expected: width_name(N),
        found: format!("{} columns", row.len()),
    })
}

fn width_name(n: usize) -> &'static str {
    const NAMES: [&str; 9] = [
        "0 columns",
        "1 column",
        "2 columns",
        "3 columns",
        "4 columns",
        "5 columns",
        "6 columns",
        "7 columns",
        "8 columns",
    ];
    NAMES.get(n).copied().unwrap_or("more columns")
}

/// Column `index` of a row without a table, decoded.
fn cell<T: SqlField>(index: usize, value: Value) -> Result<T> {
    const COLUMNS: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "7"];
    T::from_value(value).map_err(|m| Error::Decode {
        table: "<query>",
        column: COLUMNS[index],
        expected: m.expected,
        found: m.found,
    })
}

macro_rules! tuple_rows {
    ($($n:literal => ($($t:ident $i:tt),+)),* $(,)?) => {$(
        impl<$($t: SqlField),+> FromRow for ($($t,)+) {
            fn from_row(row: Vec<Value>) -> Result<Self> {
                #[allow(non_snake_case)]
                let [$($t),+] = width::<$n>(row)?;
                Ok(($(cell::<$t>($i, $t)?,)+))
            }
        }
    )*};
}

tuple_rows! {
    1 => (A 0),
    2 => (A 0, B 1),
    3 => (A 0, B 1, C 2),
    4 => (A 0, B 1, C 2, D 3),
    5 => (A 0, B 1, C 2, D 3, E 4),
    6 => (A 0, B 1, C 2, D 3, E 4, F 5),
    7 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6),
    8 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_and_values_decode_by_position() {
        let row = vec![Value::Integer(3), Value::Text("a".into()), Value::Null];
        let (n, s, none) = <(i64, String, Option<f64>)>::from_row(row.clone()).unwrap();
        assert_eq!((n, s.as_str(), none), (3, "a", None));
        assert_eq!(Vec::<Value>::from_row(row.clone()).unwrap(), row);
        assert_eq!(i64::from_row(vec![Value::Integer(7)]).unwrap(), 7);
        let err = <(i64, i64)>::from_row(row).unwrap_err();
        assert_eq!(err.code(), "decode");
        let err = <(String,)>::from_row(vec![Value::Integer(1)]).unwrap_err();
        assert!(err.to_string().contains("expected TEXT"), "{err}");
    }
}
