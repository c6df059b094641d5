//! The embedded quickstart: 1,000 users sharded over 4 SQLite files.
//!
//! Run it with `cargo run --example quickstart`. It needs no set-up: the
//! database lives in `target/quickstart-db` and is made fresh on every run.

use std::time::Instant;

use collegedb::{embedded, Config, Strategy};
use example_models::User;

const USERS: usize = 1_000;

fn main() -> Result<(), collegedb::Error> {
    futures::executor::block_on(run())
}

async fn run() -> Result<(), collegedb::Error> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/quickstart-db");
    let _ = std::fs::remove_dir_all(&dir);

    let db = embedded::Options::dir(&dir)
        .shards(4)
        .config(Config::default().strategy(Strategy::Hash))
        .open()?;
    User::create_schema(&db).await?;
    println!(
        "opened {} with shards {:?}",
        dir.display(),
        db.shard_names().collect::<Vec<_>>()
    );

    let started = Instant::now();
    for i in 0..USERS {
        User {
            id: format!("u-{i}"),
            email: format!("user{i}@example.com"),
            username: format!("user{i}"),
            name: format!("User {i}"),
            age: Some(20 + (i % 50) as u32),
        }
        .insert(&db)
        .await?;
    }
    println!("inserted {USERS} users in {:?}", started.elapsed());

    let by_id = User::get(&db, "u-42").await?.expect("u-42 was inserted");
    let by_email = User::find_by_email(&db, "user42@example.com").await?;
    let by_username = User::find_by_username(&db, "user42").await?;
    assert_eq!(by_email.as_ref(), Some(&by_id));
    assert_eq!(by_username.as_ref(), Some(&by_id));
    println!(
        "u-42 by id, email and username: {} <{}>",
        by_id.name, by_id.email
    );

    let moved = User {
        email: "ada@example.org".into(),
        ..by_id
    };
    moved.update(&db).await?;
    let old = User::find_by_email(&db, "user42@example.com").await?;
    let new = User::find_by_email(&db, "ada@example.org").await?;
    println!(
        "after changing u-42's email: old email resolves: {}, new email resolves: {}",
        old.is_some(),
        new.is_some()
    );
    assert!(old.is_none() && new.is_some());

    let deleted = User::delete(&db, "u-7").await?;
    println!(
        "deleted u-7: {deleted}; by username now: {:?}",
        User::find_by_username(&db, "user7").await?
    );

    let started = Instant::now();
    let all = User::list(&db).await?;
    println!(
        "listed {} users across shards in {:?}; count says {}",
        all.len(),
        started.elapsed(),
        User::count(&db).await?
    );

    println!("distribution:");
    for (shard, n) in db.count_per_shard::<User>().await? {
        println!("  {shard}: {n:>4} {}", "#".repeat(n as usize / 10));
    }
    Ok(())
}
