//! Keyset pagination: a cursor is the sort key of the last row a page
//! returned, and the next page is every row after it in the query's order.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value as Json};

use super::filter::Binder;
use super::order::Order;
use crate::error::{Error, Result};
use crate::value::Value;

/// Where a page ended: pass it to [`Query::after`](crate::Query::after)
/// for the next page. Its text form (`to_string()`, and back with
/// `parse()`) is opaque and URL-safe, for handing to clients.
///
/// A cursor belongs to one table and ordering; using it with another is an
/// [`Error::InvalidQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The table and ordering it belongs to, as `table:col+,col-`.
    pub(crate) ordering: String,
    /// The last row's values of each ordering term.
    pub(crate) values: Vec<Value>,
}

impl Cursor {
    /// The cursor after a row whose ordering values are `values`.
    pub(crate) fn new<M>(table: &str, terms: &[Order<M>], values: Vec<Value>) -> Self {
        Cursor {
            ordering: signature(table, terms),
            values,
        }
    }

    /// Checks that this cursor belongs to `terms` over `table`.
    pub(crate) fn check<M>(&self, table: &'static str, terms: &[Order<M>]) -> Result<()> {
        if self.ordering == signature(table, terms) && self.values.len() == terms.len() {
            Ok(())
        } else {
            Err(Error::InvalidQuery {
                table,
                message: format!(
                    "the cursor belongs to the ordering `{}`, not to this query's `{}`",
                    self.ordering,
                    signature(table, terms)
                ),
            })
        }
    }
}

fn signature<M>(table: &str, terms: &[Order<M>]) -> String {
    let terms: Vec<String> = terms
        .iter()
        .map(|t| format!("{}{}", t.column, if t.descending { '-' } else { '+' }))
        .collect();
    format!("{table}:{}", terms.join(","))
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: Vec<Json> = self.values.iter().map(to_json).collect();
        // `["ordering",[values]]`; through `to_string` rather than a JSON
        // value's `Display`, which would add a pretty-printing serializer.
        let text = serde_json::to_string(&(&self.ordering, values)).map_err(|_| fmt::Error)?;
        f.write_str(&URL_SAFE_NO_PAD.encode(text))
    }
}

impl FromStr for Cursor {
    type Err = Error;

    /// Reads a cursor's text form; anything else is an [`Error::InvalidQuery`].
    fn from_str(text: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidQuery {
            table: "",
            message: format!("not a cursor ({why})"),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid("not base64url"))?;
        // From text, as every other JSON of the crate: a slice reader
        // would compile a second JSON deserializer.
        let json = String::from_utf8(bytes).map_err(|_| invalid("not a cursor's JSON"))?;
        let parsed: (String, Vec<Json>) =
            serde_json::from_str(&json).map_err(|_| invalid("not a cursor's JSON"))?;
        let mut values = Vec::with_capacity(parsed.1.len());
        for json in &parsed.1 {
            values.push(from_json(json).ok_or_else(|| invalid("a value is malformed"))?);
        }
        Ok(Cursor {
            ordering: parsed.0,
            values,
        })
    }
}

/// Values as JSON, each type kept apart: reals and blobs are tagged, so
/// that `1` and `1.0` and text and blobs do not mix. A real is written as
/// its bits, so that it comes back exactly (a decimal parsed back may be off
/// by one unit in the last place, which would resume before or after the
/// row it ended on) and infinities too.
fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Real(r) => json!({ "f": r.to_bits() }),
        Value::Text(t) => json!(t),
        Value::Blob(b) => json!({ "b": URL_SAFE_NO_PAD.encode(b) }),
    }
}

fn from_json(json: &Json) -> Option<Value> {
    Some(match json {
        Json::Null => Value::Null,
        Json::Number(n) => Value::Integer(n.as_i64()?),
        Json::String(t) => Value::Text(t.clone()),
        Json::Object(map) if map.len() == 1 => match map.iter().next()? {
            (tag, Json::Number(bits)) if tag == "f" => {
                Value::Real(Some(f64::from_bits(bits.as_u64()?)).filter(|r| !r.is_nan())?)
            }
            (tag, Json::String(b)) if tag == "b" => Value::Blob(URL_SAFE_NO_PAD.decode(b).ok()?),
            _ => return None,
        },
        _ => return None,
    })
}

impl Binder {
    /// The condition "the row comes after `values` in the order `terms`":
    /// for each term, either it is past its value, or it ties and the rest
    /// of the row is past the rest. NULLs sort first ascending and last
    /// descending, as in SQLite.
    pub(crate) fn after<M>(&mut self, alias: &str, terms: &[Order<M>], values: &[Value]) -> String {
        let mut condition = "0".to_owned();
        for (term, value) in terms.iter().zip(values).rev() {
            let col = format!("{alias}.\"{}\"", term.column);
            let past = match (term.descending, value) {
                (false, Value::Null) => format!("{col} IS NOT NULL"),
                (true, Value::Null) => "0".to_owned(),
                (false, v) => format!("{col} > {}", self.bind(v.clone())),
                (true, v) if term.nullable => {
                    format!("({col} < {} OR {col} IS NULL)", self.bind(v.clone()))
                }
                (true, v) => format!("{col} < {}", self.bind(v.clone())),
            };
            condition = if condition == "0" {
                past
            } else {
                let tie = match value {
                    Value::Null => format!("{col} IS NULL"),
                    v => format!("{col} = {}", self.bind(v.clone())),
                };
                format!("{past} OR ({tie} AND ({condition}))")
            };
        }
        // The first term at or past its value, said alone as well: the
        // planner can seek an index range with it instead of scanning.
        let bound = terms.first().zip(values.first()).and_then(|(term, value)| {
            let col = format!("{alias}.\"{}\"", term.column);
            match (term.descending, value) {
                (false, Value::Null) => None,
                (false, v) => Some(format!("{col} >= {}", self.bind(v.clone()))),
                (true, Value::Null) => Some(format!("{col} IS NULL")),
                // With NULLs after every value, no range holds what is left.
                (true, _) if term.nullable => None,
                (true, v) => Some(format!("{col} <= {}", self.bind(v.clone()))),
            }
        });
        match bound {
            Some(bound) => format!("{bound} AND ({condition})"),
            None => condition,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_text() {
        let terms = [Order::<()>::new("age", 1, true), Order::new("id", 0, false)];
        let cursor = Cursor::new(
            "users",
            &terms,
            vec![
                Value::Real(1.0),
                // Decimals that serde_json's default parser reads back one
                // unit off in the last place, and an infinity.
                Value::Real(0.010693433075272485),
                Value::Real(-7.203414193096696e287),
                Value::Real(f64::NEG_INFINITY),
                Value::Real(-0.0),
                Value::Text("a/b?".into()),
                Value::Blob(vec![0, 255]),
                Value::Null,
                Value::Integer(-3),
            ],
        );
        let text = cursor.to_string();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let parsed = text.parse::<Cursor>().unwrap();
        let bits = |c: &Cursor| -> Vec<Option<u64>> {
            c.values
                .iter()
                .map(|v| match v {
                    Value::Real(r) => Some(r.to_bits()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(parsed, cursor);
        assert_eq!(bits(&parsed), bits(&cursor));
        assert_eq!("%%".parse::<Cursor>().unwrap_err().code(), "invalid_query");
        // No stored value is NaN: a cursor saying so was not written by us.
        let nan = serde_json::to_string(&("users:age-,id+", [json!({ "f": f64::NAN.to_bits() })]));
        let nan = URL_SAFE_NO_PAD.encode(nan.unwrap());
        assert_eq!(nan.parse::<Cursor>().unwrap_err().code(), "invalid_query");
    }

    #[test]
    fn the_keyset_condition_follows_each_direction() {
        let terms = [
            Order::<()>::new("age", 1, true).nullable(true),
            Order::new("id", 0, false),
        ];
        let mut b = Binder::default();
        let sql = b.after(
            "_row",
            &terms,
            &[Value::Integer(30), Value::Text("k".into())],
        );
        assert_eq!(
            sql,
            "(_row.\"age\" < ?2 OR _row.\"age\" IS NULL) OR (_row.\"age\" = ?3 AND (_row.\"id\" > ?1))"
        );
    }
}
