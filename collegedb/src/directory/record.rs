//! The value stored under a mapping key.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::key::OwnerKey;
use crate::value::Value;

/// Where a key's row lives.
///
/// Stored as JSON: `{"shard":"shard-1","pk":"u-42","created":1700000000000,"updated":1700000000000}`.
/// `pk` is present on alias records only: an alias resolves to the row's
/// primary key as well as its shard, so the row is read by primary key and
/// the alias is checked against it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct MappingRecord {
    /// The shard that holds the row.
    pub shard: String,
    /// The row's primary key (alias records only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<serde_json::Value>,
    /// When the mapping was created, in milliseconds since the Unix epoch.
    pub created: u64,
    /// When the mapping last changed, in milliseconds since the Unix epoch.
    pub updated: u64,
}

impl MappingRecord {
    /// A new record for `shard`, created now.
    pub fn new(shard: &str, pk: Option<&Value>, now_ms: u64) -> Self {
        MappingRecord {
            shard: shard.to_owned(),
            pk: pk.map(|v| match v {
                Value::Integer(i) => serde_json::Value::from(*i),
                other => serde_json::Value::from(other.key_text()),
            }),
            created: now_ms,
            updated: now_ms,
        }
    }

    /// The shard of a stored record, which must parse as a whole record;
    /// `key` names it in the error.
    pub fn shard_of(key: &str, json: &str) -> Result<String> {
        serde_json::from_str::<Parsed>(json)
            .map(|parsed| parsed.shard)
            .map_err(|e| Error::CorruptMapping {
                key: key.to_owned(),
                message: e.to_string(),
            })
    }

    /// The JSON to store.
    pub fn to_json(&self) -> String {
        Stored {
            shard: &self.shard,
            pk: self.pk.as_ref(),
            created: self.created,
            updated: self.updated,
        }
        .to_json()
    }

    /// The JSON of `MappingRecord::new(shard, pk, now_ms)`, from borrowed
    /// parts: a store that answers from its claims copies nothing to answer.
    #[cfg(feature = "embedded")]
    pub fn json_of(shard: &str, pk: Option<OwnerKey<'_>>, now_ms: u64) -> String {
        Stored {
            shard,
            pk,
            created: now_ms,
            updated: now_ms,
        }
        .to_json()
    }
}

/// A stored record as a read checks it: every field of [`MappingRecord`],
/// the primary key skipped rather than built.
#[derive(Deserialize)]
struct Parsed {
    shard: String,
    #[serde(default, rename = "pk")]
    _pk: Option<IgnoredAny>,
    #[serde(rename = "created")]
    _created: u64,
    #[serde(rename = "updated")]
    _updated: u64,
}

/// The stored form of a record, borrowed: the one definition of its JSON.
#[derive(Serialize)]
struct Stored<'a, P> {
    shard: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pk: Option<P>,
    created: u64,
    updated: u64,
}

impl<P: Serialize> Stored<'_, P> {
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a mapping record always serializes")
    }
}

/// A typed primary key, as [`MappingRecord::new`] stores it.
impl Serialize for OwnerKey<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            OwnerKey::Integer(i) => serializer.serialize_i64(*i),
            OwnerKey::Text(text) => serializer.serialize_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_typed_primary_keys() {
        let rec = MappingRecord::new("shard-1", Some(&Value::Integer(7)), 5);
        let json = rec.to_json();
        assert_eq!(
            json,
            r#"{"shard":"shard-1","pk":7,"created":5,"updated":5}"#
        );
        assert_eq!(serde_json::from_str::<MappingRecord>(&json).unwrap(), rec);
        assert_eq!(MappingRecord::shard_of("k", &json).unwrap(), "shard-1");
    }

    #[test]
    #[cfg(feature = "embedded")]
    fn borrowed_records_write_the_same_json() {
        for (pk, key) in [
            (Value::Integer(-7), OwnerKey::Integer(-7)),
            (Value::Text("a\"b".into()), OwnerKey::Text("a\"b")),
        ] {
            assert_eq!(
                MappingRecord::json_of("shard-1", Some(key), 5),
                MappingRecord::new("shard-1", Some(&pk), 5).to_json()
            );
        }
        assert_eq!(
            MappingRecord::json_of("shard-1", None, 5),
            r#"{"shard":"shard-1","created":5,"updated":5}"#
        );
    }

    #[test]
    fn corrupt_records_are_typed_errors() {
        for corrupt in [
            "{oops",
            r#"{"shard":"s","created":1}"#,
            r#"{"shard":1,"created":1,"updated":1}"#,
        ] {
            assert_eq!(
                MappingRecord::shard_of("k", corrupt).unwrap_err().code(),
                "corrupt_mapping"
            );
        }
        let pks = [r#""pk":"a\"b","#, r#""pk":7,"#, r#""pk":null,"#, ""];
        for pk in pks {
            let json = format!(r#"{{"shard":"s",{pk}"created":1,"updated":2}}"#);
            assert_eq!(MappingRecord::shard_of("k", &json).unwrap(), "s");
        }
    }
}
