//! Mapping keys: namespaced per table and column, SHA-256 hashed by default.
//!
//! Plain-text form: `{table}/{column}/{value}`, so `users/id/42` and
//! `posts/id/42` are different keys. Hashed form: `{table}/{hex(sha256(plain))}`:
//! the table stays readable so one table's keys can be listed, the values do
//! not, so emails and usernames never appear in KV key names.

use std::borrow::Cow;

use sha2::{Digest as _, Sha256};

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
        let key = if self.hashed {
            Self::hashed(
                table,
                &digest_hex([table, "/", column, "/", &key_text(value)]),
            )
        } else {
            Self::plain(table, column, value)
        };
        Self::check(table, column, key, max_len)
    }

    /// The plain key of `value` in `table.column`, whatever the codec:
    /// `{table}/{column}/{value}`.
    pub fn plain(table: &str, column: &str, value: &Value) -> String {
        [table, "/", column, "/", &key_text(value)].concat()
    }

    /// The digest of a [`KeyCodec::plain`] key, as a hashed key spells it.
    pub fn digest(plain: &str) -> Digest {
        digest_hex([plain])
    }

    /// The hashed key of `table` with `digest` (unchecked).
    pub fn hashed(table: &str, digest: &Digest) -> String {
        let mut key = String::with_capacity(table.len() + 1 + digest.len());
        key.push_str(table);
        key.push('/');
        key.push_str(std::str::from_utf8(digest).expect("hex digits are ASCII"));
        key
    }

    /// `key`, if the store takes keys that long.
    pub fn check(
        table: &'static str,
        column: &'static str,
        key: String,
        max_len: usize,
    ) -> Result<String> {
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

fn key_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Text(t) => Cow::Borrowed(t.as_str()),
        other => Cow::Owned(other.key_text()),
    }
}

/// The lowercase hex SHA-256 of a plain key: what a hashed key holds after its table.
pub(crate) type Digest = [u8; 64];

/// [`Digest`] of the plain key fed to the hasher in `pieces`: a read builds
/// no intermediate string.
fn digest_hex<'a>(pieces: impl IntoIterator<Item = &'a str>) -> Digest {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = pieces
        .into_iter()
        .fold(Sha256::new(), |hasher, piece| hasher.chain_update(piece))
        .finalize();
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 15)];
    }
    hex
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
    fn keys_from_plain_keys_are_the_same_keys() {
        let value = Value::Integer(-42);
        let plain = KeyCodec::plain("users", "email", &value);
        assert_eq!(plain, "users/email/-42");
        assert_eq!(
            KeyCodec::hashed("users", &KeyCodec::digest(&plain)),
            KeyCodec::default()
                .key("users", "email", &value, 512)
                .unwrap()
        );
        let err = KeyCodec::check("users", "email", plain, 10).unwrap_err();
        assert_eq!(err.code(), "key_too_long");
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
