//! The Worker's models, and the JSON bodies that create and change them.

use collegedb::Sharded;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A user, found by id, email or username; placed by hash of its id.
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

/// A post, keyed by an integer; placed round-robin.
#[derive(Sharded, Serialize, Debug, Clone, PartialEq)]
pub struct Post {
    /// The primary key; within ±2^53, as D1 holds integers as JS numbers.
    #[primary_key]
    pub id: i64,
    /// The author's user id.
    pub author_id: String,
    /// The title.
    pub title: String,
}

/// `POST /users`.
#[derive(Deserialize)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub username: String,
    pub name: String,
    #[serde(default)]
    pub age: Option<u32>,
}

impl From<NewUser> for User {
    fn from(u: NewUser) -> Self {
        User {
            id: u.id,
            email: u.email,
            username: u.username,
            name: u.name,
            age: u.age,
        }
    }
}

/// `PUT /users/{id}`.
#[derive(Deserialize)]
pub struct UserChanges {
    pub email: String,
    pub username: String,
    pub name: String,
    #[serde(default)]
    pub age: Option<u32>,
}

impl UserChanges {
    /// The user `id` with these values.
    pub fn into_user(self, id: String) -> User {
        User {
            id,
            email: self.email,
            username: self.username,
            name: self.name,
            age: self.age,
        }
    }
}

/// `POST /posts`. The id is kept as its JSON text, so an integer too large
/// for any Rust number type is still reported exactly, never rounded.
#[derive(Deserialize)]
pub struct NewPost<'a> {
    #[serde(borrow)]
    pub id: &'a RawValue,
    pub author_id: String,
    pub title: String,
}
