//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset.

use collegedb::embedded::{Embedded, Options};
use collegedb::{Config, Database};
use example_models::{Post, User};

pub use futures::executor::block_on;

/// The `i`-th test user.
pub fn user(i: usize) -> User {
    User {
        id: format!("u-{i}"),
        email: format!("user{i}@example.com"),
        username: format!("user{i}"),
        name: format!("User {i}"),
        age: Some(20 + (i % 60) as u32),
    }
}

/// The `i`-th test post.
pub fn post(i: i64) -> Post {
    Post {
        id: i,
        author_id: format!("u-{i}"),
        title: format!("Post {i}"),
        tags: vec!["rust".into(), format!("tag{i}")],
    }
}

/// An in-memory database with both schemas created.
pub fn memory_db(shards: usize, config: Config) -> Database<Embedded> {
    let db = Options::in_memory(shards).config(config).open().unwrap();
    block_on(async {
        User::create_schema(&db).await.unwrap();
        Post::create_schema(&db).await.unwrap();
    });
    db
}

/// Inserts users `0..n`.
pub async fn insert_users(db: &Database<Embedded>, n: usize) {
    for i in 0..n {
        user(i).insert(db).await.unwrap();
    }
}

/// Rows of `User` per shard, in shard order.
pub async fn distribution(db: &Database<Embedded>) -> Vec<u64> {
    db.count_per_shard::<User>()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

/// Asserts that user `i` is found by primary key and by username.
pub async fn assert_resolves(db: &Database<Embedded>, i: usize) {
    assert_eq!(
        User::get(db, &format!("u-{i}")).await.unwrap(),
        Some(user(i))
    );
    assert_eq!(
        User::find_by_username(db, &format!("user{i}"))
            .await
            .unwrap(),
        Some(user(i))
    );
}
