//! Values that SQLite would not store faithfully are refused before anything
//! is written, and stored values that are not what the model says are typed
//! errors, never silently changed.

mod common;

use collegedb::{Config, Error, Sharded, Strategy, Value};

use collegedb::backend::{ShardExecutor, Statement};
use common::script::Script;
use common::*;
use example_models::User;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[sharded(table = "readings")]
struct Reading {
    #[primary_key]
    id: String,
    #[lookup]
    sensor: String,
    value: f64,
    spare: Option<f64>,
    #[sharded(json)]
    series: Vec<f64>,
}

fn reading(id: &str) -> Reading {
    Reading {
        id: id.into(),
        sensor: format!("sensor-{id}"),
        value: 1.5,
        spare: Some(-0.25),
        series: vec![0.0, 2.5],
    }
}

/// Asserts `err` is an encode error naming `column`.
fn assert_encode(err: &Error, column: &str, context: &str) {
    assert_eq!(err.code(), "encode", "{context}: {err}");
    let message = err.to_string();
    assert!(message.contains(column), "{context}: {message}");
}

// defect 11
#[test]
fn nan_is_refused_before_anything_is_written() {
    for strategy in [Strategy::Hash, Strategy::RoundRobin] {
        let script = Script::new();
        let db = memory_db(2, Config::default().strategy(strategy)).intercepted(script.clone());
        block_on(async {
            Reading::create_schema(&db).await.unwrap();
            reading("ok").insert(&db).await.unwrap();
            let bad = [
                (
                    "readings.value",
                    Reading {
                        value: f64::NAN,
                        ..reading("a")
                    },
                ),
                (
                    "readings.spare",
                    Reading {
                        spare: Some(f64::NAN),
                        ..reading("b")
                    },
                ),
                (
                    "readings.series",
                    Reading {
                        series: vec![1.0, f64::NAN],
                        ..reading("c")
                    },
                ),
            ];
            for (column, row) in &bad {
                let context = format!("{strategy:?}, {column}");
                script.reset();
                let err = row.insert(&db).await.unwrap_err();
                assert_encode(&err, column, &context);
                assert_eq!(
                    script.calls(),
                    0,
                    "{context}: refused before any call: {:?}",
                    script.log()
                );
                assert_eq!(Reading::get(&db, &row.id).await.unwrap(), None, "{context}");
                assert_eq!(
                    Reading::find_by_sensor(&db, &row.sensor).await.unwrap(),
                    None,
                    "{context}: no claim left"
                );
                // The same key and sensor, with faithful values, go in.
                let good = Reading {
                    id: row.id.clone(),
                    sensor: row.sensor.clone(),
                    ..reading("x")
                };
                good.insert(&db).await.unwrap();

                // An update to NaN is refused the same way, and changes nothing.
                let update = Reading {
                    id: row.id.clone(),
                    sensor: row.sensor.clone(),
                    ..row.clone()
                };
                script.reset();
                let err = update.update(&db).await.unwrap_err();
                assert_encode(&err, column, &context);
                assert_eq!(
                    script.calls(),
                    0,
                    "{context}: update refused before any call"
                );
                assert_eq!(
                    Reading::get(&db, &row.id).await.unwrap(),
                    Some(good),
                    "{context}"
                );
            }
            // Infinities are stored as they are (outside JSON).
            let infinite = Reading {
                value: f64::INFINITY,
                spare: Some(f64::NEG_INFINITY),
                ..reading("inf")
            };
            infinite.insert(&db).await.unwrap();
            assert_eq!(Reading::get(&db, "inf").await.unwrap(), Some(infinite));
            assert_eq!(Reading::count(&db).await.unwrap(), 5);
        });
    }
}

// defect 11
#[test]
fn invalid_utf8_text_is_a_typed_error_not_lossy_text() {
    let db = memory_db(1, Config::default());
    block_on(async {
        user(1).insert(&db).await.unwrap();
        user(2).insert(&db).await.unwrap();
        db.shard("shard-0")
            .unwrap()
            .batch(&[Statement::new(
                "UPDATE users SET name = CAST(x'ff' AS TEXT) WHERE id = ?1",
                vec![Value::Text("u-1".into())],
            )])
            .await
            .unwrap();
        let err = User::get(&db, "u-1").await.unwrap_err();
        assert!(matches!(err.code(), "shard" | "decode"), "{err}");
        assert!(err.to_string().contains("UTF-8"), "{err}");
        assert!(!err.to_string().contains('\u{FFFD}'), "{err}");
        let err = User::list(&db).await.unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        // Other rows still read.
        assert_eq!(User::get(&db, "u-2").await.unwrap(), Some(user(2)));
    });
}
