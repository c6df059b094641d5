//! Every operation records its remote calls on its `tracing` span
//! (`shard_calls`, `mapping_calls`, `coordinator_calls`), and the counts are
//! the calls the backend saw: checked against a counting interceptor for
//! every operation, under each placement, and with operations interleaved
//! on one thread (each span counts only its own calls).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use collegedb::backend::intercept::Call;
use collegedb::query::{count, max};
use collegedb::Value;
use common::harness::*;
use common::*;
use example_models::User;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Calls per service: shard, mappings, coordinator.
type Counts = [u64; 3];

const FIELDS: [&str; 3] = ["shard_calls", "mapping_calls", "coordinator_calls"];

/// One operation span as the subscriber saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    op: String,
    key: String,
    counts: Option<Counts>,
}

/// A subscriber that keeps every `collegedb` span and the counts recorded on it.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    /// Spans opened so far, in order.
    fn spans(&self) -> Vec<Seen> {
        self.spans.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut Seen);

impl Visit for Fields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(i) = FIELDS.iter().position(|f| *f == field.name()) {
            self.0.counts.get_or_insert([0; 3])[i] = value;
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "op" => self.0.op = value.to_owned(),
            "key" => self.0.key = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut spans = self.spans.lock().unwrap();
        let mut seen = Seen::default();
        attributes.record(&mut Fields(&mut seen));
        spans.push(seen);
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        values.record(&mut Fields(&mut spans[span.into_u64() as usize - 1]));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The calls of `log` per service.
fn per_service(log: &[Call]) -> Counts {
    let mut counts = [0; 3];
    for call in log {
        let i = ["shard", "mappings", "coordinator"]
            .iter()
            .position(|s| *s == call.service())
            .unwrap();
        counts[i] += 1;
    }
    counts
}

/// Runs each step under `recorder`, and checks that it opened exactly one
/// operation span whose counts are the calls `hook` saw meanwhile. Returns
/// each step's counts.
struct Steps<'a> {
    hook: &'a Hook,
    recorder: Recorder,
    measured: Vec<(String, Counts)>,
}

impl Steps<'_> {
    fn step<T>(&mut self, name: &str, run: impl std::future::Future<Output = T>) -> T {
        let (calls, spans) = (self.hook.log().len(), self.recorder.spans().len());
        let out = tracing::subscriber::with_default(self.recorder.clone(), || block_on(run));
        let expected = per_service(&self.hook.log()[calls..]);
        let opened = &self.recorder.spans()[spans..];
        assert_eq!(opened.len(), 1, "{name}: one operation span: {opened:?}");
        let recorded = opened[0]
            .counts
            .unwrap_or_else(|| panic!("{name}: no counts recorded"));
        assert_eq!(
            recorded, expected,
            "{name} ({}): span counts against the backend's",
            opened[0].op
        );
        self.measured.push((name.to_owned(), recorded));
        out
    }
}

#[test]
fn every_operation_records_the_calls_the_backend_saw() {
    for strategy in [HASH, ROUND_ROBIN] {
        let cluster = Cluster::new(3, strategy);
        let hook = Hook::counting();
        let db = cluster.handle(&hook);
        let mut steps = Steps {
            hook: &hook,
            recorder: Recorder::default(),
            measured: Vec::new(),
        };
        let ada = person("ada", "ada@x.io", "ada", "Ada");
        let bob = person("bob", "bob@x.io", "bob", "Bob");
        steps
            .step("create_schema", User::create_schema(&db))
            .unwrap();
        steps.step("insert", ada.insert(&db)).unwrap();
        steps.step("insert", bob.insert(&db)).unwrap();
        let dup = person("eve", "ada@x.io", "eve", "Eve");
        steps.step("insert duplicate", dup.insert(&db)).unwrap_err();
        steps.step("get", User::get(&db, "ada")).unwrap().unwrap();
        assert!(steps
            .step("get missing", User::get(&db, "nobody"))
            .unwrap()
            .is_none());
        steps
            .step("find warm", User::find_by_email(&db, "bob@x.io"))
            .unwrap()
            .unwrap();
        let cold = cluster.handle(&hook);
        steps
            .step("find cold", User::find_by_email(&cold, "ada@x.io"))
            .unwrap()
            .unwrap();
        steps
            .step("update", with_name(&ada, "Ada L").update(&db))
            .unwrap();
        steps
            .step("update alias", with_email(&ada, "ada@y.io").update(&db))
            .unwrap();
        steps.step("list", User::list(&db)).unwrap();
        steps.step("count", User::count(&db)).unwrap();
        steps
            .step(
                "query",
                User::query().filter(User::NAME.like("B%")).all(&db),
            )
            .unwrap();
        steps
            .step(
                "query pinned",
                User::query().filter(User::ID.eq("bob")).all(&db),
            )
            .unwrap();
        let (n, oldest): (i64, Option<u32>) = steps
            .step(
                "aggregate",
                User::query().aggregate(&db, &[count(), max(User::AGE)]),
            )
            .unwrap();
        assert_eq!((n, oldest), (2, Some(30)));
        steps
            .step("count_per_shard", db.count_per_shard::<User>())
            .unwrap();
        steps
            .step("shard_of", db.shard_of::<User>("bob".into()))
            .unwrap();
        steps.step("explain", User::query().explain(&db)).unwrap();
        let raw = steps
            .step("raw_for_key", db.raw_for_key(User::EMAIL, "bob@x.io"))
            .unwrap();
        let sql = "SELECT id FROM users";
        steps
            .step("raw all", raw.all::<Vec<Value>>(sql, &[]))
            .unwrap();
        let shard = db.raw_on_shard("shard-0").unwrap();
        steps
            .step("raw run", shard.run("UPDATE users SET age = age", &[]))
            .unwrap();
        let every = db.raw_on_every_shard();
        steps
            .step("raw everywhere", every.all::<Vec<Value>>(sql, &[]))
            .unwrap();
        steps
            .step("delete_by", User::delete_by_email(&db, "bob@x.io"))
            .unwrap();
        steps.step("delete", User::delete(&db, "ada")).unwrap();
        if strategy == HASH {
            // Other placements keep a claim per key: nothing to rebalance.
            steps.step("rebalance", db.rebalance::<User>()).unwrap();
        }

        // Not vacuous: the operations that must reach each service did.
        let of = |name: &str| steps.measured.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(of("get")[0], 1, "{strategy:?}: a get reads one shard");
        assert!(
            of("find cold")[1] >= 1,
            "{strategy:?}: a cold find asks the mapping store"
        );
        assert!(
            of("insert")[2] >= 1,
            "{strategy:?}: an insert with lookups claims"
        );
        assert_eq!(of("list")[0], 3, "{strategy:?}: a list reads every shard");
        assert_eq!(
            of("raw run")[0],
            1,
            "{strategy:?}: raw SQL on a shard is one call"
        );
        assert_eq!(
            of("raw everywhere")[0],
            3,
            "{strategy:?}: raw SQL everywhere, one per shard"
        );
    }
}

#[test]
fn interleaved_operations_count_only_their_own_calls() {
    for seed in seeds(40) {
        // The same state twice: one run alone, one interleaved.
        let alone = Cluster::new(3, ROUND_ROBIN);
        let mixed = Cluster::new(3, ROUND_ROBIN);
        for cluster in [&alone, &mixed] {
            let db = cluster.plain();
            block_on(async {
                person("ada", "ada@x.io", "ada", "Ada")
                    .insert(&db)
                    .await
                    .unwrap();
                person("bob", "bob@x.io", "bob", "Bob")
                    .insert(&db)
                    .await
                    .unwrap();
            });
        }
        let recorder = Recorder::default();
        let run = |cluster: &Cluster, interleaved: bool| {
            let hook = if interleaved {
                Hook::scheduled()
            } else {
                Hook::counting()
            };
            let (a, b, c) = (
                cluster.handle(&hook),
                cluster.handle(&hook),
                cluster.handle(&hook),
            );
            let before = recorder.spans().len();
            tracing::subscriber::with_default(recorder.clone(), || {
                let tasks = vec![
                    task(async { User::get(&a, "ada").await.map(drop) }),
                    task(async { User::find_by_email(&b, "bob@x.io").await.map(drop) }),
                    task(async { person("cy", "cy@x.io", "cy", "Cy").insert(&c).await }),
                ];
                let results = if interleaved {
                    interleave(seed, tasks)
                } else {
                    tasks.into_iter().map(block_on).collect()
                };
                assert!(results.iter().all(Result::is_ok), "{results:?}");
            });
            let spans: HashMap<String, Counts> = recorder.spans()[before..]
                .iter()
                .map(|s| (s.op.clone(), s.counts.expect("counts recorded")))
                .collect();
            let total = spans.values().fold([0; 3], |mut sum, c| {
                (0..3).for_each(|i| sum[i] += c[i]);
                sum
            });
            assert_eq!(
                total,
                per_service(&hook.log()),
                "seed {seed}: spans add up to the backend's calls"
            );
            spans
        };
        let expected = run(&alone, false);
        assert_eq!(expected.len(), 3);
        assert_eq!(run(&mixed, true), expected, "seed {seed}");
    }
}

#[test]
fn without_a_subscriber_nothing_is_recorded_and_operations_still_run() {
    let cluster = Cluster::new(2, HASH);
    let db = cluster.plain();
    block_on(async {
        person("ada", "ada@x.io", "ada", "Ada")
            .insert(&db)
            .await
            .unwrap();
        assert_eq!(User::get(&db, "ada").await.unwrap().unwrap().name, "Ada");
    });
    // A subscriber installed afterwards sees only later operations.
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        block_on(User::get(&db, "ada")).unwrap();
    });
    let spans = recorder.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].counts, Some([1, 0, 0]));
}
