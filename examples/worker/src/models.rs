//! The JSON bodies that create and change the example models.
//!
//! Users are placed by hash of their id; posts round-robin.

pub use example_models::{Post, User};
use serde::Deserialize;
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
