//! The JSON bodies that create and change the example models.
//!
//! Users are placed by hash of their id; posts round-robin; articles (the
//! model of the query routes, [`crate::queries`]) by hash of their id.

use collegedb::Sharded;
pub use example_models::{Post, User};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An article: the model of the query routes (filters, orderings, pages,
/// aggregates, raw SQL). Placed by hash of its id; `slug` is a unique alias.
/// `likes` is indexed, and so are `(author, likes)` together, so "the most
/// liked articles of an author" reads an index on each shard.
/// `POST /articles` takes it as its JSON body.
#[derive(Sharded, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[sharded(index(author, likes))]
pub struct Article {
    /// The primary key (on D1, within ±2^53).
    #[primary_key]
    pub id: i64,
    /// A unique alias key.
    #[lookup]
    pub slug: String,
    /// The author's name.
    pub author: String,
    /// The title.
    pub title: String,
    /// How many likes it has.
    #[sharded(index)]
    pub likes: i64,
}
