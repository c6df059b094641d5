//! Reopening a directory, appending shards, and moving rows home.

mod common;

use collegedb::embedded::Options;
use common::*;
use example_models::User;

const USERS: usize = 2_000;

/// A directory of `shards` shards holding `users` users, its handle closed.
async fn written(dir: &std::path::Path, shards: usize, users: usize) {
    let db = Options::dir(dir).shards(shards).open().unwrap();
    User::create_schema(&db).await.unwrap();
    insert_users(&db, users).await;
}

#[test]
fn reopening_a_directory_finds_every_row_and_alias() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        written(dir.path(), 4, 50).await;

        let db = Options::dir(dir.path()).open().unwrap();
        assert_eq!(db.shard_names().count(), 4);
        assert_eq!(User::count(&db).await.unwrap(), 50);
        assert_eq!(
            User::find_by_email(&db, "user9@example.com").await.unwrap(),
            Some(user(9))
        );
        assert_eq!(
            Options::dir(dir.path())
                .shards(3)
                .open()
                .err()
                .unwrap()
                .code(),
            "config",
            "shards are never dropped"
        );
    });
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(
        Options::dir(fresh.path()).open().err().unwrap().code(),
        "config"
    );
}

#[test]
fn a_missing_shard_file_is_refused_not_started_empty() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        written(dir.path(), 3, 30).await;
        let lost = dir.path().join("shard-1.sqlite");
        let kept = dir.path().join("shard-1.kept");
        std::fs::rename(&lost, &kept).unwrap();

        let err = Options::dir(dir.path()).open().err().expect("refused");
        assert_eq!(err.code(), "io", "{err}");
        assert!(err.to_string().contains("shard-1"), "{err}");
        assert!(!lost.exists(), "nothing was created in its place");

        // Restored, the directory opens with every row.
        std::fs::rename(&kept, &lost).unwrap();
        let db = Options::dir(dir.path()).open().unwrap();
        assert_eq!(User::count(&db).await.unwrap(), 30);
    });
}

#[test]
fn appending_a_shard_relocates_about_one_in_n_plus_one_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        written(dir.path(), 4, USERS).await;

        let db = Options::dir(dir.path()).shards(5).open().unwrap();
        User::create_schema(&db).await.unwrap();
        // Before any row moves, every row is still found through its previous home.
        for i in (0..USERS).step_by(37) {
            assert_eq!(
                User::get(&db, &format!("u-{i}")).await.unwrap(),
                Some(user(i))
            );
        }

        let report = db.rebalance::<User>().await.unwrap();
        let fraction = report.moved as f64 / USERS as f64;
        println!(
            "appending a 5th shard moved {} of {USERS} rows ({:.1}%; ideal 20%)",
            report.moved,
            fraction * 100.0
        );
        assert!((0.17..0.23).contains(&fraction), "moved {fraction}");
        assert_eq!(report.moved + report.at_home, USERS as u64);

        let counts = distribution(&db).await;
        assert_eq!(
            counts[4], report.moved,
            "every moved row went to the new shard"
        );
        assert_eq!(User::count(&db).await.unwrap(), USERS as u64);
        for i in (0..USERS).step_by(13) {
            assert_resolves(&db, i).await;
        }
        let again = db.rebalance::<User>().await.unwrap();
        assert_eq!(
            again.moved, 0,
            "a finished rebalance has nothing left to do"
        );
    });
}

#[test]
fn an_interrupted_move_is_finished_by_running_the_rebalance_again() {
    use collegedb::backend::{ShardExecutor, Statement};
    use collegedb::Value;
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        written(dir.path(), 1, 200).await;
        let db = Options::dir(dir.path()).shards(2).open().unwrap();
        User::create_schema(&db).await.unwrap();

        // Simulate a crash after the copy of one row and before removing its source.
        let all = User::list(&db).await.unwrap();
        let ids: Vec<String> = all.iter().map(|u| u.id.clone()).collect();
        let homes = hash_homes(&ids, 2).await;
        let mut moving = None;
        for (u, home) in all.iter().zip(homes) {
            let at = db
                .shard_of::<User>(Value::Text(u.id.clone()))
                .await
                .unwrap();
            if at == Some("shard-0") && home == 1 {
                moving = Some(u.clone());
                break;
            }
        }
        let moving = moving.expect("some row's home is the new shard");
        let row = Statement::new(
            "INSERT INTO users (id, email, username, name, age) VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                Value::Text(moving.id.clone()),
                Value::Text(moving.email.clone()),
                Value::Text(moving.username.clone()),
                Value::Text(moving.name.clone()),
                Value::Integer(moving.age.unwrap().into()),
            ],
        );
        db.shard("shard-1").unwrap().batch(&[row]).await.unwrap();
        // ...with the source copy frozen, as the move's first step leaves it.
        let frozen = Statement::new(
            "INSERT INTO _collegedb_marks (tbl, pk, kind, extra, created) VALUES ('users', ?1, 'moving', '', 0)",
            vec![Value::Text(moving.id.clone())],
        );
        db.shard("shard-0").unwrap().batch(&[frozen]).await.unwrap();
        assert_eq!(
            User::list(&db).await.unwrap().len(),
            200,
            "a row mid-move is listed once"
        );
        assert_eq!(
            User::count(&db).await.unwrap(),
            200,
            "a row mid-move is counted once"
        );
        assert_eq!(
            User::get(&db, &moving.id).await.unwrap(),
            Some(moving.clone())
        );

        db.rebalance::<User>().await.unwrap();
        assert_eq!(
            User::count(&db).await.unwrap(),
            200,
            "no row lost, no row doubled"
        );
        assert_eq!(
            db.shard_of::<User>(Value::Text(moving.id.clone()))
                .await
                .unwrap(),
            Some("shard-1")
        );
    });
}
