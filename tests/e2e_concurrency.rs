//! End-to-end suite: concurrent requests against the example Worker under
//! workerd.
//!
//! 1. Adding a shard under load: users are written through the two-shard
//!    handle (`/v2/users`), the three-shard handle creates the table on
//!    `SHARD_2` (`POST /setup`), then `POST /admin/rebalance/users` runs
//!    while threads keep updating every user (names every round, usernames
//!    every other round) and another thread keeps reading. Afterwards every
//!    acknowledged update is visible, every user is found exactly once, the
//!    reads never missed, and the two-shard handle may no longer write.
//! 2. Racing inserts: threads released together insert different users with
//!    the same email (then the same username): exactly one wins, the others
//!    get `409 duplicate_alias`, and the value resolves to the winner.
//!
//! Every loop is bounded in count and time. Ignored by plain `cargo test`;
//! see `tests/e2e_workerd.rs` for how to run the suites.
//!
//! How concurrent it really is: under local workerd a request's D1 calls
//! hold back the other requests of the isolate (measured with a plain JS
//! Worker too: a request looping over D1 queries delays a concurrent request
//! that does no I/O at all until the loop ends), so the rebalance runs
//! mostly uninterrupted, and the updates it meets are those in flight when
//! it starts: they located (and claimed for) a row before it moved and
//! finish after. Finer interleavings are covered deterministically by the
//! native suite (`tests/interleavings.rs`).

#[path = "e2e/mod.rs"]
#[macro_use]
mod e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::harness::{bearer, expect, expect_body, expect_error, Client, Resp, Runner, Worker};
use e2e::users::{Key, User, Users};
use serde_json::{json, Value};

/// Users written before the shard is added.
const USERS: usize = 90;
/// Threads updating users during the rebalance.
const UPDATERS: usize = 12;
/// Rounds of updates per user, at most.
const MAX_ROUNDS: usize = 60;
/// How long the updates run, at most.
const UPDATE_BUDGET: Duration = Duration::from_secs(90);
/// Threads racing for one value.
const RACERS: usize = 12;

/// One PUT of a user during the rebalance.
#[derive(Debug, Clone)]
struct Attempt {
    version: User,
    status: Option<u16>,
    started: Instant,
    ended: Instant,
}

impl Attempt {
    fn acked(&self) -> bool {
        self.status == Some(200)
    }

    /// Refused by the shard or the router with nothing written (a conflict,
    /// a missing row, or a row kept frozen by the rebalance).
    fn refused(&self) -> bool {
        matches!(self.status, Some(s) if (400..500).contains(&s) || s == 503)
    }
}

struct Suite {
    c: Client,
    admin: String,
    /// The users as first written, by id.
    users: BTreeMap<String, User>,
    /// Every update attempt, per user, in order.
    history: BTreeMap<String, Vec<Attempt>>,
    /// When the rebalance ran, and its answer.
    rebalance: Option<(Instant, Instant, Value)>,
    /// Users added by the races.
    winners: Vec<User>,
}

impl Suite {
    fn three(&self) -> Users<'_> {
        Users {
            c: &self.c,
            prefix: "",
        }
    }

    fn two(&self) -> Users<'_> {
        Users {
            c: &self.c,
            prefix: "/v2",
        }
    }

    fn admin_post(&self, path: &str) -> Result<Resp, String> {
        self.c.req_auth(
            &format!("POST {path}"),
            "POST",
            path,
            None,
            Some(&self.admin),
        )
    }

    /// `/distribution` users per shard.
    fn users_per_shard(&self) -> Result<Vec<(String, u64)>, String> {
        let v = expect(
            "GET /distribution",
            self.c.get("GET /distribution", "/distribution")?,
            200,
        )?;
        v.as_array()
            .ok_or(format!("GET /distribution: {v}"))?
            .iter()
            .map(|e| {
                match (
                    e.get("shard").and_then(Value::as_str),
                    e.get("users").and_then(Value::as_u64),
                ) {
                    (Some(s), Some(n)) => Ok((s.to_owned(), n)),
                    _ => Err(format!("GET /distribution: bad entry {e}")),
                }
            })
            .collect()
    }

    /// What a user may hold now: the last acknowledged version, or any later
    /// attempt that may have been written (its reply was lost or failed).
    fn allowed(&self, id: &str) -> Vec<User> {
        let history = self.history.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let last_ack = history.iter().rposition(Attempt::acked);
        let base = match last_ack {
            Some(i) => history[i].version.clone(),
            None => self.users[id].clone(),
        };
        let start = last_ack.map_or(0, |i| i + 1);
        std::iter::once(base)
            .chain(
                history[start..]
                    .iter()
                    .filter(|a| !a.refused())
                    .map(|a| a.version.clone()),
            )
            .collect()
    }
}

/// Version `round` of `u`: a new name every round, a new username every
/// other round (the first included, so alias changes meet the rebalance).
fn next_version(u: &User, index: usize, round: usize) -> User {
    let mut next = u.clone();
    next.name = format!("User {index} round {round}");
    if round % 2 == 1 {
        next.username = format!("user_{index}_r{round}");
    }
    next
}

fn add_a_shard(s: &mut Runner<Suite>) {
    s.fatal(
        "POST /v2/setup (admin): the users table on SHARD_0 and SHARD_1",
        |s| {
            let v = expect("POST /v2/setup", s.admin_post("/v2/setup")?, 200)?;
            ensure!(v.get("ok") == Some(&json!(true)), "POST /v2/setup: {v}");
            Ok(())
        },
    );
    s.fatal(
        &format!("POST /v2/users x{USERS}: the two-shard handle puts them on SHARD_0 and SHARD_1"),
        |s| {
            let mut per_shard: BTreeMap<String, usize> = BTreeMap::new();
            for i in 0..USERS {
                let u = User::nth(i);
                s.two().create(&u)?;
                *per_shard.entry(s.two().shard(&u.id)?).or_default() += 1;
                s.users.insert(u.id.clone(), u);
            }
            eprintln!("[e2e]       two-shard placement: {per_shard:?}");
            ensure!(
                per_shard
                    .keys()
                    .map(String::as_str)
                    .eq(["SHARD_0", "SHARD_1"]),
                "users should be on SHARD_0 and SHARD_1 only: {per_shard:?}"
            );
            ensure!(s.two().count()? == USERS as u64, "GET /v2/users/count");
            Ok(())
        },
    );
    s.fatal(
        "POST /setup (admin): the three-shard handle creates the table on SHARD_2",
        |s| {
            expect_body(
                "POST /setup",
                s.admin_post("/setup")?,
                200,
                json!({"ok": true}),
            )
        },
    );
    s.check(
        "before the rebalance the three-shard handle finds every user by id, email and username",
        |s| {
            for u in s.users.values() {
                s.three().resolves(u)?;
            }
            ensure!(s.three().count()? == USERS as u64, "GET /users/count");
            let dist = s.users_per_shard()?;
            ensure!(
                dist.iter()
                    .find(|(shard, _)| shard == "SHARD_2")
                    .map(|d| d.1)
                    == Some(0),
                "SHARD_2 should hold no user yet: {dist:?}"
            );
            Ok(())
        },
    );

    s.fatal(
        &format!(
            "updates from {UPDATERS} threads and reads from another while POST /admin/rebalance/users runs"
        ),
        |s| {
            let stop = AtomicBool::new(false);
            let deadline = Instant::now() + UPDATE_BUDGET;
            let misses = Mutex::new(Vec::<String>::new());
            let reads = Mutex::new(0usize);
            let users: Vec<(usize, User)> = s.users.values().cloned().enumerate().collect();
            let api = s.three();
            let (histories, rebalance) = thread::scope(|scope| {
                let updaters: Vec<_> = (0..UPDATERS)
                    .map(|t| {
                        let mine: Vec<(usize, User)> = users
                            .iter()
                            .filter(|(i, _)| i % UPDATERS == t)
                            .cloned()
                            .collect();
                        let stop = &stop;
                        scope.spawn(move || {
                            let mut history: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
                            let mut current = mine;
                            for round in 1..=MAX_ROUNDS {
                                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                                    break;
                                }
                                for (index, user) in current.iter_mut() {
                                    let version = next_version(user, *index, round);
                                    let started = Instant::now();
                                    let status = api.put(&version).ok().map(|(_, r)| r.status);
                                    let ended = Instant::now();
                                    history.entry(version.id.clone()).or_default().push(Attempt {
                                        version: version.clone(),
                                        status,
                                        started,
                                        ended,
                                    });
                                    *user = version;
                                }
                            }
                            history
                        })
                    })
                    .collect();
                let reader = {
                    let (stop, misses, reads, users) = (&stop, &misses, &reads, &users);
                    scope.spawn(move || {
                        for pass in 0..1000 {
                            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                                break;
                            }
                            match api.count() {
                                Ok(n) if n == USERS as u64 => {}
                                Ok(n) => misses.lock().unwrap().push(format!("pass {pass}: GET /users/count = {n}")),
                                Err(e) => misses.lock().unwrap().push(format!("pass {pass}: {e}")),
                            }
                            for (_, u) in users.iter().step_by(7) {
                                if let Err(e) = api.fetch(&u.id) {
                                    misses.lock().unwrap().push(e);
                                }
                                *reads.lock().unwrap() += 1;
                            }
                        }
                    })
                };
                // Let the updates get going, then add the shard's rows under them.
                thread::sleep(Duration::from_millis(400));
                let started = Instant::now();
                let answer = s.admin_post("/admin/rebalance/users");
                let ended = Instant::now();
                thread::sleep(Duration::from_millis(400));
                stop.store(true, Ordering::Relaxed);
                let histories: Vec<_> = updaters
                    .into_iter()
                    .map(|h| h.join().expect("an updater panicked"))
                    .collect();
                reader.join().expect("the reader panicked");
                (histories, (started, ended, answer))
            });
            for history in histories {
                s.history.extend(history);
            }
            let (started, ended, answer) = rebalance;
            let answer = expect("POST /admin/rebalance/users", answer?, 200)?;
            eprintln!(
                "[e2e]       rebalance {answer} in {} ms",
                (ended - started).as_millis()
            );
            let attempts: Vec<&Attempt> = s.history.values().flatten().collect();
            let acked = attempts.iter().filter(|a| a.acked()).count();
            let during = attempts
                .iter()
                .filter(|a| a.acked() && a.ended > started && a.started < ended)
                .count();
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            for a in &attempts {
                let key = a.status.map_or("transport error".into(), |s| s.to_string());
                *statuses.entry(key).or_default() += 1;
            }
            eprintln!(
                "[e2e]       {} updates: {acked} acknowledged ({during} while the rebalance ran); statuses {statuses:?}; {} reads",
                attempts.len(),
                reads.lock().unwrap()
            );
            s.rebalance = Some((started, ended, answer.clone()));
            let odd: Vec<String> = attempts
                .iter()
                .filter(|a| !matches!(a.status, Some(200 | 503)))
                .take(5)
                .map(|a| format!("{} -> {:?}", a.version.id, a.status))
                .collect();
            ensure!(
                odd.is_empty(),
                "updates answered other than 200 or 503 row_moving, e.g. {odd:?} (statuses {statuses:?})"
            );
            let misses = misses.into_inner().unwrap();
            ensure!(
                misses.is_empty(),
                "{} reads during the rebalance missed or miscounted, e.g. {:?}",
                misses.len(),
                &misses[..misses.len().min(5)]
            );
            ensure!(during > 0, "no update was acknowledged while the rebalance ran ({} ms): the race was not exercised", (ended - started).as_millis());
            let moved = answer.get("moved").and_then(Value::as_u64).unwrap_or(0);
            let at_home = answer.get("at_home").and_then(Value::as_u64).unwrap_or(0);
            ensure!(moved > 0, "the rebalance moved nothing: {answer}");
            ensure!(moved + at_home == USERS as u64, "moved + at_home should be {USERS}: {answer}");
            Ok(())
        },
    );
    s.check(
        "every acknowledged update is visible afterwards, through every key",
        |s| {
            let mut lost = Vec::new();
            for id in s.users.keys() {
                let now = s.three().fetch(id)?;
                let allowed = s.allowed(id);
                if !allowed.contains(&now) {
                    lost.push(format!("{id}: holds {now:?}, expected one of {allowed:?}"));
                    continue;
                }
                s.three().get(Key::Email, &now)?;
                s.three().get(Key::Username, &now)?;
            }
            ensure!(
                lost.is_empty(),
                "{} users lost an acknowledged update: {:?}",
                lost.len(),
                &lost[..lost.len().min(3)]
            );
            Ok(())
        },
    );
    s.check(
        "usernames replaced by acknowledged updates no longer resolve",
        |s| {
            for (id, history) in &s.history {
                let now = s.three().fetch(id)?;
                let old: BTreeSet<&str> = std::iter::once(s.users[id].username.as_str())
                    .chain(
                        history
                            .iter()
                            .filter(|a| a.acked())
                            .map(|a| a.version.username.as_str()),
                    )
                    .filter(|name| *name != now.username)
                    .collect();
                for name in old {
                    s.three().expect_404(Key::Username, name)?;
                }
            }
            Ok(())
        },
    );
    s.check(
        "every user is found exactly once: count = list length = users; SHARD_2 has users",
        |s| {
            let count = s.three().count()?;
            let list = s.three().list()?;
            let ids: BTreeSet<&str> = list.iter().filter_map(|u| u.get("id")?.as_str()).collect();
            ensure!(
                count == USERS as u64 && list.len() == USERS && ids.len() == USERS,
                "count {count}, list {} ({} distinct ids), expected {USERS}",
                list.len(),
                ids.len()
            );
            ensure!(
                ids.iter().copied().eq(s.users.keys().map(String::as_str)),
                "GET /users ids differ from the users written"
            );
            let dist = s.users_per_shard()?;
            let total: u64 = dist.iter().map(|d| d.1).sum();
            eprintln!("[e2e]       users per shard after the rebalance: {dist:?}");
            ensure!(
                total == USERS as u64,
                "/distribution holds {total} users, expected {USERS}: {dist:?}"
            );
            ensure!(
                dist.iter().all(|(_, n)| *n > 0),
                "every shard should hold users now: {dist:?}"
            );
            Ok(())
        },
    );
    s.check("a second rebalance finds every user at home", |s| {
        let v = expect(
            "POST /admin/rebalance/users",
            s.admin_post("/admin/rebalance/users")?,
            200,
        )?;
        ensure!(
            v == json!({"moved": 0, "mapped": 0, "at_home": USERS}),
            "second rebalance: {v}"
        );
        Ok(())
    });
    s.check(
        "the two-shard handle may no longer write: 409 stale_topology, nothing left behind",
        |s| {
            let some = s.three().fetch("user-000")?;
            let stale = User {
                name: "stale write".into(),
                ..some.clone()
            };
            let (what, r) = s.two().put(&stale)?;
            expect_error(&what, r, 409, Some("stale_topology"))?;
            ensure!(
                s.three().fetch("user-000")? == some,
                "user-000 changed by a refused write"
            );
            let newcomer = User {
                id: "late-v2-user".into(),
                email: "late-v2@example.com".into(),
                username: "late_v2".into(),
                name: "Late".into(),
                age: None,
            };
            let r = s.c.send(
                "POST /v2/users",
                "POST",
                "/v2/users",
                &newcomer.create_body(),
            )?;
            expect_error("POST /v2/users", r, 409, Some("stale_topology"))?;
            s.three().gone(&newcomer)?;
            // Its email was given back: the three-shard handle can use it.
            let retry = User {
                id: "late-v3-user".into(),
                ..newcomer
            };
            s.three().create(&retry)?;
            s.three().resolves(&retry)?;
            s.winners.push(retry);
            Ok(())
        },
    );
}

/// `RACERS` threads, released together, each insert `make(t)`; returns the statuses and bodies.
fn race(c: &Client, make: impl Fn(usize) -> User + Sync) -> Vec<(User, Result<Resp, String>)> {
    let barrier = Barrier::new(RACERS);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..RACERS)
            .map(|t| {
                let (barrier, make) = (&barrier, &make);
                scope.spawn(move || {
                    let u = make(t);
                    barrier.wait();
                    let r = c.send("POST /users (race)", "POST", "/users", &u.create_body());
                    (u, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a racer panicked"))
            .collect()
    })
}

fn races(s: &mut Runner<Suite>) {
    for (round, key) in [(0, Key::Email), (1, Key::Email), (2, Key::Username)] {
        let name = format!(
            "{RACERS} concurrent inserts of different users with the same {} (round {round}): one 201, the rest 409 duplicate_alias",
            key.name()
        );
        s.check(&name, |s| {
            let shared = match key {
                Key::Email => format!("race-{round}@example.com"),
                _ => format!("race_{round}"),
            };
            let results = race(&s.c, |t| User {
                id: format!("race-{round}-{t:02}"),
                email: if key == Key::Email {
                    shared.clone()
                } else {
                    format!("race-{round}-{t}@example.com")
                },
                username: if key == Key::Username {
                    shared.clone()
                } else {
                    format!("race_{round}_{t}")
                },
                name: format!("Racer {t}"),
                age: Some(t as u32),
            });
            let mut winners = Vec::new();
            let mut losers = Vec::new();
            for (u, r) in results {
                let r = r?;
                match r.status {
                    201 => winners.push(u),
                    409 => {
                        expect_error(
                            &format!("POST /users {}", u.id),
                            r,
                            409,
                            Some("duplicate_alias"),
                        )?;
                        losers.push(u);
                    }
                    other => {
                        return Err(format!(
                            "POST /users {}: unexpected {other} {}",
                            u.id, r.body
                        ))
                    }
                }
            }
            ensure!(
                winners.len() == 1,
                "expected exactly one winner, got {}: {:?}",
                winners.len(),
                winners.iter().map(|u| &u.id).collect::<Vec<_>>()
            );
            let winner = winners.remove(0);
            s.three().resolves(&winner)?;
            for u in &losers {
                s.three().expect_404(Key::Id, &u.id)?;
                let other = if key == Key::Email {
                    Key::Username
                } else {
                    Key::Email
                };
                s.three().expect_404(other, other.of(u))?;
            }
            eprintln!("[e2e]       winner {}", winner.id);
            s.winners.push(winner);
            Ok(())
        });
    }
    s.check(
        "after the races: count = list length = users + winners",
        |s| {
            let want = USERS + s.winners.len();
            let count = s.three().count()?;
            let list = s.three().list()?;
            ensure!(
                count == want as u64 && list.len() == want,
                "count {count}, list {}, expected {want}",
                list.len()
            );
            Ok(())
        },
    );
}

#[test]
#[ignore = "needs workerd: run scripts/test.sh"]
fn concurrent_writes_under_workerd() {
    let (mut worker, token) = Worker::start_development("e2e_concurrency", "concurrency");
    let mut runner = Runner::new(
        "e2e_concurrency",
        Suite {
            c: worker.client(),
            admin: bearer(&token),
            users: BTreeMap::new(),
            history: BTreeMap::new(),
            rebalance: None,
            winners: Vec::new(),
        },
    );
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        add_a_shard(&mut runner);
        races(&mut runner);
    }));
    worker.stop();
    let latency = runner.state.c.latency_table();
    runner.finish_with(outcome, &latency, "concurrency", &worker);
}
