//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset.

use collegedb::embedded::{Embedded, Options};
use collegedb::{Config, Database};
use example_models::{Post, User};

pub mod harness;
pub mod script;

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
pub async fn distribution<B: collegedb::Backend>(db: &Database<B>) -> Vec<u64> {
    db.count_per_shard::<User>()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

/// Copies of `User` rows stored over all shards (a row on two shards counts twice).
pub async fn rows_stored<B: collegedb::Backend>(db: &Database<B>) -> u64 {
    distribution(db).await.iter().sum()
}

/// A config with `strategy` and plain-text keys.
pub fn plain(strategy: collegedb::Strategy) -> Config {
    Config::default().strategy(strategy).plain_text_keys()
}

/// Lets other tasks run once.
pub async fn yield_once() {
    let mut polled = false;
    futures::future::poll_fn(move |cx| {
        if std::mem::replace(&mut polled, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// The error a failed call of `call`'s service reports: a service failure,
/// not a refusal.
pub fn service_error(
    call: collegedb::backend::intercept::Call,
    message: String,
) -> collegedb::Error {
    match call.service() {
        "shard" => collegedb::Error::Shard {
            shard: "injected".into(),
            message,
        },
        "mappings" => collegedb::Error::MappingStore(message),
        _ => collegedb::Error::Coordinator(message),
    }
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

/// Asserts that `user` is what a get by its primary key and the finds by
/// its email and by its username return.
pub async fn assert_found<B: collegedb::Backend>(db: &Database<B>, user: &User, context: &str) {
    let id = &user.id;
    assert_eq!(
        User::get(db, id).await.unwrap().as_ref(),
        Some(user),
        "{context}: get {id}"
    );
    assert_eq!(
        User::find_by_email(db, &user.email).await.unwrap().as_ref(),
        Some(user),
        "{context}: {id} by email"
    );
    assert_eq!(
        User::find_by_username(db, &user.username)
            .await
            .unwrap()
            .as_ref(),
        Some(user),
        "{context}: {id} by username"
    );
}

/// A key-only model, to learn where hash placement puts a key.
#[derive(collegedb::Sharded, Debug, Clone, PartialEq)]
#[sharded(table = "home_probe")]
pub struct HomeProbe {
    #[primary_key]
    pub id: String,
}

thread_local! {
    static HOMES: std::cell::RefCell<std::collections::HashMap<(usize, String), usize>> =
        Default::default();
    static ORACLES: std::cell::RefCell<std::collections::HashMap<usize, std::rc::Rc<Database<Embedded>>>> =
        Default::default();
}

/// The hash home (shard index) of each key among `shards` shards, as the
/// router computes it (the placement hash covers the key's text, so an
/// integer key's home is that of its decimal text): where a settled
/// in-memory database with that many shards puts it.
pub async fn hash_homes(keys: &[String], shards: usize) -> Vec<usize> {
    let db = ORACLES.with(|o| {
        o.borrow_mut()
            .entry(shards)
            .or_insert_with(|| std::rc::Rc::new(Options::in_memory(shards).open().unwrap()))
            .clone()
    });
    HomeProbe::create_schema(&*db).await.unwrap();
    let mut homes = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(home) = HOMES.with(|h| h.borrow().get(&(shards, key.clone())).copied()) {
            homes.push(home);
            continue;
        }
        match (HomeProbe { id: key.clone() }).insert(&*db).await {
            Ok(()) => {}
            Err(e) if e.code() == "duplicate_key" => {}
            Err(e) => panic!("{e}"),
        }
        let name = db
            .shard_of::<HomeProbe>(key.as_str().into())
            .await
            .unwrap()
            .unwrap();
        let home = shard_index(name);
        HOMES.with(|h| h.borrow_mut().insert((shards, key.clone()), home));
        homes.push(home);
    }
    homes
}

/// The hash home of one key among `shards` shards.
pub async fn hash_home(key: &str, shards: usize) -> usize {
    hash_homes(&[key.to_owned()], shards).await[0]
}

/// The index of an embedded shard from its name (`shard-3` → 3).
pub fn shard_index(name: &str) -> usize {
    name.strip_prefix("shard-").unwrap().parse().unwrap()
}

/// A temporary directory, on tmpfs when there is one (tests that build
/// hundreds of directories stay fast).
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("collegedb-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}
