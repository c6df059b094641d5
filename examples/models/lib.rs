//! The models of the examples, shared by the quickstart, the integration
//! tests, the benchmark and the example Worker (which serves them as JSON).

use collegedb::Sharded;
use serde::Serialize;

/// A user, found by id, email or username.
#[derive(Sharded, Serialize, Debug, Clone, PartialEq)]
pub struct User {
    /// The primary key.
    #[primary_key]
    pub id: String,
    /// A unique alias key.
    #[lookup]
    pub email: String,
    /// A unique alias key.
    #[lookup]
    pub username: String,
    /// Not a key.
    pub name: String,
    /// Nullable.
    pub age: Option<u32>,
}

/// A post, keyed by an integer.
#[derive(Sharded, Serialize, Debug, Clone, PartialEq)]
pub struct Post {
    /// The primary key (on D1, within ±2^53: D1 holds integers as JS numbers).
    #[primary_key]
    pub id: i64,
    /// The author's user id.
    pub author_id: String,
    /// The title.
    pub title: String,
    /// Free-form tags, stored as JSON text.
    #[sharded(json)]
    pub tags: Vec<String>,
}
