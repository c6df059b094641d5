//! Primary keys and lookup values are unique across shards: after shards
//! are appended, when a home is full, between handles, and after refusals.

mod common;

use std::rc::Rc;

use collegedb::backend::intercept::Call;
use collegedb::backend::{Coordinator, ShardExecutor, Statement};
use collegedb::embedded::{Embedded, Options};
use collegedb::{Database, Region, ShardLocation, Strategy};
use common::script::{Phase, Script};
use common::*;
use example_models::User;

/// `user(i)` with other lookup values, so that only its primary key collides.
fn same_key(i: usize, tag: &str) -> User {
    User {
        email: format!("{tag}{i}@example.com"),
        username: format!("{tag}{i}"),
        ..user(i)
    }
}

// defect 1
#[test]
fn an_existing_key_whose_home_is_an_appended_shard_is_a_duplicate_before_the_rebalance() {
    const USERS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let before = Options::dir(dir.path())
            .shards(3)
            .config(plain(Strategy::Hash))
            .open()
            .unwrap();
        User::create_schema(&before).await.unwrap();
        insert_users(&before, USERS).await;
        drop(before);

        let db = Options::dir(dir.path())
            .shards(4)
            .config(plain(Strategy::Hash))
            .open()
            .unwrap();
        User::create_schema(&db).await.unwrap();
        let ids: Vec<String> = (0..USERS).map(|i| format!("u-{i}")).collect();
        let homes = hash_homes(&ids, 4).await;
        let moving: Vec<usize> = (0..USERS).filter(|&i| homes[i] == 3).collect();
        assert!(!moving.is_empty(), "some key's new home is the new shard");

        for &i in &moving {
            let err = same_key(i, "again").insert(&db).await.unwrap_err();
            assert_eq!(
                err.code(),
                "duplicate_key",
                "u-{i} with free aliases: {err}"
            );
            let err = user(i).insert(&db).await.unwrap_err();
            assert_eq!(err.code(), "duplicate_key", "u-{i} again: {err}");
            assert_eq!(
                User::get(&db, &format!("u-{i}")).await.unwrap(),
                Some(user(i))
            );
            assert_eq!(
                User::find_by_email(&db, &format!("again{i}@example.com"))
                    .await
                    .unwrap(),
                None
            );
        }
        assert_eq!(User::count(&db).await.unwrap(), USERS as u64);
        assert_eq!(rows_stored(&db).await, USERS as u64);
        assert_eq!(
            distribution(&db).await[3],
            0,
            "nothing was written to the new shard"
        );

        let report = db.rebalance::<User>().await.unwrap();
        assert_eq!(report.moved, moving.len() as u64);
        for &i in &moving {
            assert_resolves(&db, i).await;
            assert_eq!(
                same_key(i, "later").insert(&db).await.unwrap_err().code(),
                "duplicate_key"
            );
        }
        assert_eq!(User::count(&db).await.unwrap(), USERS as u64);
        assert_eq!(rows_stored(&db).await, USERS as u64);
        assert_eq!(User::list(&db).await.unwrap().len(), USERS);
    });
}

/// Makes `shard` bigger than any test limit.
async fn fill(db: &Database<Embedded>, shard: &str) {
    db.shard(shard)
        .unwrap()
        .batch(&[
            Statement::new("CREATE TABLE IF NOT EXISTS filler (b BLOB)", vec![]),
            Statement::new("INSERT INTO filler VALUES (zeroblob(200000))", vec![]),
        ])
        .await
        .unwrap();
}

// defect 2
#[test]
fn an_existing_key_whose_home_is_full_is_a_duplicate() {
    const USERS: usize = 20;
    let db = Options::in_memory(2)
        .config(plain(Strategy::Hash).max_shard_bytes(150_000))
        .open()
        .unwrap();
    block_on(async {
        User::create_schema(&db).await.unwrap();
        insert_users(&db, USERS).await;
        fill(&db, "shard-0").await;
        let ids: Vec<String> = (0..USERS + 40).map(|i| format!("u-{i}")).collect();
        let homes = hash_homes(&ids, 2).await;
        let full_home: Vec<usize> = (0..USERS).filter(|&i| homes[i] == 0).collect();
        assert!(!full_home.is_empty());

        for i in 0..USERS {
            let err = same_key(i, "again").insert(&db).await.unwrap_err();
            assert_eq!(
                err.code(),
                "duplicate_key",
                "u-{i} (home {}): {err}",
                homes[i]
            );
            let err = user(i).insert(&db).await.unwrap_err();
            assert_eq!(
                err.code(),
                "duplicate_key",
                "u-{i} (home {}): {err}",
                homes[i]
            );
            assert_eq!(User::get(&db, &ids[i]).await.unwrap(), Some(user(i)));
        }
        assert_eq!(User::count(&db).await.unwrap(), USERS as u64);
        assert_eq!(rows_stored(&db).await, USERS as u64);

        // A new key whose home is full goes elsewhere, once.
        let spilled = (USERS..USERS + 40)
            .find(|&i| homes[i] == 0)
            .expect("a new key whose home is the full shard");
        user(spilled).insert(&db).await.unwrap();
        assert_eq!(
            db.shard_of::<User>(ids[spilled].as_str().into())
                .await
                .unwrap(),
            Some("shard-1")
        );
        for again in [user(spilled), same_key(spilled, "again")] {
            let err = again.insert(&db).await.unwrap_err();
            assert_eq!(err.code(), "duplicate_key", "{err}");
        }
        assert_eq!(
            User::get(&db, &ids[spilled]).await.unwrap(),
            Some(user(spilled))
        );
        assert_eq!(User::count(&db).await.unwrap(), USERS as u64 + 1);
        assert_eq!(rows_stored(&db).await, USERS as u64 + 1);
    });
}

fn with_aliases(id: &str, email: &str, username: &str) -> User {
    User {
        id: id.into(),
        email: email.into(),
        username: username.into(),
        name: format!("owner of {email}"),
        age: None,
    }
}

/// Two keys whose hash homes differ among `shards` shards.
async fn keys_on_two_shards(prefix: &str, shards: usize) -> (String, String) {
    let ids: Vec<String> = (0..20).map(|i| format!("{prefix}-{i}")).collect();
    let homes = hash_homes(&ids, shards).await;
    let other = (1..ids.len()).find(|&j| homes[j] != homes[0]).unwrap();
    (ids[0].clone(), ids[other].clone())
}

// defect 3
#[test]
fn an_email_is_unique_across_shards_and_handles_and_a_losers_clean_up_keeps_the_winners_claim() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Options::dir(dir.path())
            .shards(3)
            .config(plain(Strategy::Hash))
            .open()
            .unwrap()
    };
    let script = Script::new();
    let a = open().intercepted(script.clone());
    let b = Rc::new(open());
    block_on(async {
        User::create_schema(&*b).await.unwrap();

        // One after the other: the second handle is refused.
        let (first, second) = keys_on_two_shards("seq", 3).await;
        with_aliases(&first, "x@example.com", "x-a")
            .insert(&a)
            .await
            .unwrap();
        let err = with_aliases(&second, "x@example.com", "x-b")
            .insert(&*b)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "duplicate_alias");
        assert_eq!(User::get(&*b, &second).await.unwrap(), None);

        // Racing: the other handle inserts the same email while this one's
        // claim is taken and its row not yet written.
        let (loser, winner) = keys_on_two_shards("race", 3).await;
        let other = Rc::clone(&b);
        let winner_row = with_aliases(&winner, "y@example.com", "y-b");
        let won = winner_row.clone();
        let raced = Rc::new(std::cell::Cell::new(false));
        let flag = Rc::clone(&raced);
        script.reset();
        script.at_nth(Call::Batch, 0, Phase::Before, move || async move {
            won.insert(&*other)
                .await
                .expect("the other handle's insert");
            flag.set(true);
            Ok(())
        });
        let res = with_aliases(&loser, "y@example.com", "y-a")
            .insert(&a)
            .await;
        let err = res.unwrap_err();
        script.clear();
        assert!(
            raced.get(),
            "the other insert ran between this one's claim and row"
        );
        assert_eq!(err.code(), "duplicate_alias", "{err}");

        let fresh = open();
        for db in [&fresh, &*b] {
            let holding: Vec<User> = User::list(db)
                .await
                .unwrap()
                .into_iter()
                .filter(|u| u.email == "y@example.com")
                .collect();
            assert_eq!(
                holding,
                std::slice::from_ref(&winner_row),
                "exactly one row holds the email"
            );
            assert_eq!(
                User::find_by_email(db, "y@example.com").await.unwrap(),
                Some(winner_row.clone()),
                "the winner stays findable by email"
            );
            assert_eq!(User::get(db, &loser).await.unwrap(), None);
        }
        assert_eq!(
            User::find_by_email(&a, "y@example.com").await.unwrap(),
            Some(winner_row.clone())
        );
        let holders = fresh
            .coordinator()
            .unwrap()
            .holders(&[
                "users/email/y@example.com".into(),
                "users/username/y-a".into(),
            ])
            .await
            .unwrap();
        assert_eq!(
            holders[0].as_ref().map(|h| h.owner.as_str()),
            Some(format!("t:{winner}").as_str())
        );
        assert_eq!(holders[1], None, "the loser gave back its other claim");
        // The loser's username is free again.
        with_aliases("late", "late@example.com", "y-a")
            .insert(&fresh)
            .await
            .unwrap();
    });
}

// defect 9
#[test]
fn a_refused_insert_leaves_no_placement_claim_behind() {
    let db = memory_db(3, plain(Strategy::RoundRobin));
    block_on(async {
        user(1).insert(&db).await.unwrap();
        let thief = User {
            id: "u-2".into(),
            username: "thief".into(),
            ..user(1)
        };
        assert_eq!(
            thief.insert(&db).await.unwrap_err().code(),
            "duplicate_alias"
        );
        let holders = db
            .coordinator()
            .unwrap()
            .holders(&["users/id/u-2".into(), "users/username/thief".into()])
            .await
            .unwrap();
        assert_eq!(holders, [None, None], "a refused insert holds nothing");
        // The refused insert took no turn: the key goes to the next shard in turn.
        user(2).insert(&db).await.unwrap();
        assert_eq!(
            db.shard_of::<User>("u-2".into()).await.unwrap(),
            Some("shard-1")
        );
        assert_eq!(distribution(&db).await, [1, 1, 0]);
    });
}

// defect 9
#[test]
fn after_a_refused_insert_the_key_goes_where_the_strategy_says() {
    let dir = tempfile::tempdir().unwrap();
    let open = |target| {
        Options::dir(dir.path())
            .shards(2)
            .locate("shard-0", ShardLocation::new(Region::Weur))
            .locate("shard-1", ShardLocation::new(Region::Enam))
            .config(plain(Strategy::Location { target }))
            .open()
            .unwrap()
    };
    let europe = open(Region::Weur);
    let america = open(Region::Enam);
    block_on(async {
        User::create_schema(&europe).await.unwrap();
        user(1).insert(&europe).await.unwrap();
        // Refused in Europe: its placement there must not outlive it...
        let thief = User {
            id: "u-2".into(),
            username: "thief".into(),
            ..user(1)
        };
        assert_eq!(
            thief.insert(&europe).await.unwrap_err().code(),
            "duplicate_alias"
        );
        // ...so the same key with a free email, inserted in America, lands there.
        user(2).insert(&america).await.unwrap();
        for db in [&europe, &america] {
            assert_eq!(
                db.shard_of::<User>("u-2".into()).await.unwrap(),
                Some("shard-1")
            );
            assert_eq!(User::get(db, "u-2").await.unwrap(), Some(user(2)));
        }
        assert_eq!(distribution(&america).await, [1, 1]);
    });
}

// defect 10
#[test]
fn reinserting_an_existing_row_with_a_string_key_is_a_duplicate_key() {
    for strategy in [Strategy::Hash, Strategy::RoundRobin, Strategy::Random] {
        let db = memory_db(3, plain(strategy));
        block_on(async {
            HomeProbe::create_schema(&db).await.unwrap();
            user(1).insert(&db).await.unwrap();
            HomeProbe { id: "k".into() }.insert(&db).await.unwrap();
            for _ in 0..2 {
                let err = user(1).insert(&db).await.unwrap_err();
                assert_eq!(err.code(), "duplicate_key", "{strategy:?}: {err}");
                let err = HomeProbe { id: "k".into() }.insert(&db).await.unwrap_err();
                assert_eq!(
                    err.code(),
                    "duplicate_key",
                    "{strategy:?} without lookups: {err}"
                );
            }
            assert_eq!(User::count(&db).await.unwrap(), 1, "{strategy:?}");
            assert_eq!(HomeProbe::count(&db).await.unwrap(), 1, "{strategy:?}");
            assert_eq!(User::get(&db, "u-1").await.unwrap(), Some(user(1)));
        });
    }
}
