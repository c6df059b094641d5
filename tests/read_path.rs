//! The read path's shortcuts give the answers of the full path: gets and
//! finds on a table the handle has seen settled still follow redirects and
//! miss cleanly, and a find whose mapping key the process cache remembers
//! (without hashing it again) sees other handles' updates and deletes.

mod common;

use collegedb::backend::{ShardExecutor, Statement};
use collegedb::embedded::Options;
use collegedb::{Config, MappingCache};
use common::*;
use example_models::User;

#[test]
fn gets_on_a_settled_table_still_follow_redirects_and_miss_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = Options::dir(dir.path())
        .shards(2)
        .config(Config::default().max_shard_bytes(150_000))
        .open()
        .unwrap();
    block_on(User::create_schema(&db)).unwrap();
    block_on(async {
        // Seen settled on both shards before any key is redirected.
        insert_users(&db, 20).await;
        for i in 0..20 {
            assert_eq!(
                User::get(&db, &format!("u-{i}")).await.unwrap(),
                Some(user(i))
            );
        }
        let before = distribution(&db).await;
        db.shard("shard-0")
            .unwrap()
            .batch(&[
                Statement::new("CREATE TABLE filler (b BLOB)", vec![]),
                Statement::new("INSERT INTO filler VALUES (zeroblob(200000))", vec![]),
            ])
            .await
            .unwrap();
        for i in 20..40 {
            user(i).insert(&db).await.unwrap();
        }
        assert_eq!(
            distribution(&db).await,
            [before[0], before[1] + 20],
            "keys homed on the full shard were redirected"
        );
        for i in 0..40 {
            assert_eq!(
                User::get(&db, &format!("u-{i}")).await.unwrap(),
                Some(user(i)),
                "u-{i}"
            );
        }
        assert_eq!(User::get(&db, "nobody").await.unwrap(), None);
    });
}

#[test]
fn finds_through_a_shared_cache_see_alias_changes_made_by_another_handle() {
    let dir = tempfile::tempdir().unwrap();
    let cache = MappingCache::new(100);
    let open = || {
        Options::dir(dir.path())
            .shards(3)
            .config(Config::default().cache(cache.clone()))
            .open()
            .unwrap()
    };
    let (reader, writer) = (open(), open());
    block_on(async {
        User::create_schema(&writer).await.unwrap();
        insert_users(&writer, 10).await;
        for _ in 0..2 {
            for i in 0..10 {
                let found = User::find_by_email(&reader, &user(i).email).await.unwrap();
                assert_eq!(found, Some(user(i)));
            }
        }
        let mut moved = user(3);
        moved.email = "moved@example.com".into();
        moved.update(&writer).await.unwrap();
        assert_eq!(
            User::find_by_email(&reader, &user(3).email).await.unwrap(),
            None
        );
        assert_eq!(
            User::find_by_email(&reader, "moved@example.com")
                .await
                .unwrap(),
            Some(moved)
        );
        User::delete(&writer, "u-4").await.unwrap();
        assert_eq!(
            User::find_by_email(&reader, &user(4).email).await.unwrap(),
            None
        );
    });
}
