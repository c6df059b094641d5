//! A routed key: a primary key with everything routing derives from it,
//! computed once per operation and passed down.

use crate::error::{Error, Result};
use crate::strategy::hash;
use crate::value::Value;

/// A primary key as the router sees it.
#[derive(Debug, Clone)]
pub(crate) struct RoutedKey {
    /// The key as stored.
    pub value: Value,
    /// Its text form (mapping keys, messages).
    pub text: String,
    /// Its placement hash: the one meaning of "the key's hash" everywhere.
    pub hash: u64,
}

impl RoutedKey {
    pub(crate) fn new(value: Value) -> Self {
        let text = value.key_text();
        let hash = hash::key_hash(&text);
        RoutedKey { value, text, hash }
    }

    /// A short, non-reversible tag for logs: keys (emails!) never appear in spans.
    pub(crate) fn tag(&self) -> String {
        format!("{:016x}", self.hash)
    }

    /// The key as a claim's owner: typed, so `42` and `"42"` stay apart.
    pub(crate) fn owner(&self) -> String {
        owner_of(&self.value)
    }
}

/// The owner encoding of a primary key value.
pub(crate) fn owner_of(value: &Value) -> String {
    match value {
        Value::Integer(i) => format!("i:{i}"),
        other => format!("t:{}", other.key_text()),
    }
}

/// A claim owner's primary key, borrowed from the owner text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerKey<'a> {
    /// An integer key (`i:42`).
    Integer(i64),
    /// A text key (`t:u-42`).
    Text(&'a str),
}

/// The primary key of a claim's owner, without copying it.
pub(crate) fn owner_key(owner: &str) -> Result<OwnerKey<'_>> {
    let corrupt = || Error::Coordinator(format!("a claim names an unreadable owner `{owner}`"));
    match owner.split_at_checked(2) {
        Some(("i:", digits)) => digits.parse().map(OwnerKey::Integer).map_err(|_| corrupt()),
        Some(("t:", text)) => Ok(OwnerKey::Text(text)),
        _ => Err(corrupt()),
    }
}

/// The primary key value of a claim's owner.
pub(crate) fn owner_value(owner: &str) -> Result<Value> {
    Ok(match owner_key(owner)? {
        OwnerKey::Integer(i) => Value::Integer(i),
        OwnerKey::Text(text) => Value::Text(text.to_owned()),
    })
}

/// A fresh random id for a write attempt or a row's incarnation.
pub(crate) fn nonce() -> String {
    format!("{:016x}", crate::platform::random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_and_keep_their_type() {
        for value in [Value::Integer(-42), Value::Text("u:1/x".into())] {
            assert_eq!(owner_value(&owner_of(&value)).unwrap(), value);
        }
        assert_ne!(
            owner_of(&Value::Integer(42)),
            owner_of(&Value::Text("42".into()))
        );
        assert_eq!(owner_value("x").unwrap_err().code(), "coordinator");
    }
}
