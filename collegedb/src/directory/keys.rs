//! Mapping keys: namespaced per table and column, SHA-256 hashed by default.
//!
//! Plain-text form: `{table}/{column}/{value}`, so `users/id/42` and
//! `posts/id/42` are different keys. Hashed form: `{table}/{hex(sha256(plain))}`:
//! the table stays readable so one table's keys can be listed, the values do
//! not, so emails and usernames never appear in KV key names.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::value::Value;

/// Turns (table, column, value) into the key under which a mapping is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyCodec {
    hashed: bool,
}

impl Default for KeyCodec {
    fn default() -> Self {
        KeyCodec { hashed: true }
    }
}

impl KeyCodec {
    /// Hashed keys (the default) or plain-text keys.
    pub fn new(hashed: bool) -> Self {
        KeyCodec { hashed }
    }

    /// Whether keys are hashed.
    pub fn is_hashed(self) -> bool {
        self.hashed
    }

    /// The mapping key of `value` in `table.column`, checked against the store's key limit.
    pub fn key(
        self,
        table: &'static str,
        column: &'static str,
        value: &Value,
        max_len: usize,
    ) -> Result<String> {
        let text = match value {
            Value::Text(t) => Cow::Borrowed(t.as_str()),
            other => Cow::Owned(other.key_text()),
        };
        let key = if self.hashed {
            hashed_key(table, column, &text)
        } else {
            [table, "/", column, "/", &text].concat()
        };
        if key.len() > max_len {
            return Err(Error::KeyTooLong {
                table,
                column,
                len: key.len(),
                limit: max_len,
            });
        }
        Ok(key)
    }
}

/// `{table}/{hex(sha256("{table}/{column}/{text}"))}`, the plain key fed to
/// the hasher piece by piece: a read builds no intermediate string.
fn hashed_key(table: &str, column: &str, text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::new()
        .chain_update(table)
        .chain_update("/")
        .chain_update(column)
        .chain_update("/")
        .chain_update(text)
        .finalize();
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 15)];
    }
    let mut key = String::with_capacity(table.len() + 1 + hex.len());
    key.push_str(table);
    key.push('/');
    key.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_per_table_and_hashed_by_default() {
        let codec = KeyCodec::default();
        let users = codec.key("users", "id", &Value::Integer(42), 512).unwrap();
        let posts = codec.key("posts", "id", &Value::Integer(42), 512).unwrap();
        assert_ne!(users, posts);
        assert!(
            users.starts_with("users/") && users.len() == "users/".len() + 64,
            "{users}"
        );
        assert!(!users.contains("42"));

        let plain = KeyCodec::new(false);
        let email = Value::Text("a@b.c".into());
        assert_eq!(
            plain.key("users", "email", &email, 512).unwrap(),
            "users/email/a@b.c"
        );
    }

    #[test]
    fn hashed_keys_are_the_digest_of_the_plain_key() {
        // The formula keys were stored under before the digest was streamed.
        let old = |table: &str, column: &str, value: &Value| {
            let plain = format!("{table}/{column}/{}", value.key_text());
            let hex: String = Sha256::digest(plain.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{table}/{hex}")
        };
        let codec = KeyCodec::default();
        for value in [
            Value::Text("a@b.c".into()),
            Value::Text(String::new()),
            Value::Text("é/ü".repeat(40)),
            Value::Integer(-42),
        ] {
            assert_eq!(
                codec.key("users", "email", &value, 512).unwrap(),
                old("users", "email", &value)
            );
        }
        assert_eq!(
            codec.key("users", "id", &Value::Integer(42), 512).unwrap(),
            "users/8b4fa052cf844ca5fb5eeaade7292c57bf9de2a5091131b478e2fc7839f37fc3"
        );
    }

    #[test]
    fn over_long_plain_keys_are_refused() {
        let long = Value::Text("x".repeat(600));
        let err = KeyCodec::new(false)
            .key("users", "email", &long, 512)
            .unwrap_err();
        assert_eq!(err.code(), "key_too_long");
        assert!(KeyCodec::default()
            .key("users", "email", &long, 512)
            .is_ok());
    }
}
