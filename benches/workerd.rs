//! Throughput of the example Worker under workerd, by hand only:
//!
//! ```text
//! cargo bench --bench workerd          # plain `cargo bench` skips it
//! ```
//!
//! Builds the Worker (`scripts/build-worker.sh`) and starts it under
//! `wrangler dev --local` with the end-to-end harness (the tools of
//! `scripts/cloudflare-tools.sh` must be installed), then runs a mixed user
//! workload at each concurrency (client threads) and prints a markdown
//! table: per operation, ops/s, p50 and p99 latency, and the remote calls per
//! operation from the `x-collegedb-calls` header (D1 queries or batches, KV
//! requests, coordinator requests; the mean when they vary).
//!
//! A cold read by alias is the first read after a restart of the Worker (a
//! fresh isolate, so an empty mapping cache; the state is kept); the warm
//! one reads the same alias again. Numbers are of local workerd, where D1, KV
//! and the Durable Object are in-process SQLite: they show relative costs,
//! not production latency. Local workerd runs the Worker on one thread, so
//! concurrency 8 overlaps only the waits on D1, KV and the coordinator; most
//! of its added latency is queueing.
//!
//! Knobs: `BENCH_USERS` (users per concurrency, default 160), and those of
//! `tests/e2e/harness.rs` (`E2E_SKIP_BUILD=1` serves the Worker already built).

#[path = "../tests/e2e/mod.rs"]
#[macro_use]
mod e2e;

use std::thread;
use std::time::{Duration, Instant};

use e2e::harness::{bearer, expect, Client, Worker};
use e2e::users::{Key, User};

const CONCURRENCY: [usize; 2] = [1, 8];
/// Reads of the fan-out routes (`count`, `list`) per concurrency.
const FAN_OUT_READS: usize = 40;

/// One request of the workload: method, path, body, expected status.
type Request = (&'static str, String, Option<String>, u16);

/// What one operation measured.
struct Measured {
    latencies: Vec<Duration>,
    /// Sums of the `x-collegedb-calls` counts: shard, mappings, coordinator.
    calls: [u64; 3],
    /// Whether the counts differed between requests.
    varied: bool,
    wall: Duration,
}

/// Sends `requests` from `threads` threads (each takes every `threads`-th
/// one), failing on any unexpected status.
fn run(c: &Client, op: &str, requests: Vec<Request>, threads: usize) -> Measured {
    let started = Instant::now();
    let per_thread: Vec<Vec<(Duration, [u64; 3])>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<&Request> = requests.iter().skip(t).step_by(threads).collect();
                scope.spawn(move || {
                    mine.into_iter()
                        .map(|(method, path, body, status)| {
                            let sent = Instant::now();
                            let r = c
                                .req(op, method, path, body.as_deref())
                                .unwrap_or_else(|e| panic!("{op}: {e}"));
                            let took = sent.elapsed();
                            let calls = parse_calls(r.calls.as_deref());
                            expect(&format!("{op}: {method} {path}"), r, *status)
                                .unwrap_or_else(|e| panic!("{e}"));
                            (took, calls)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed();
    let all: Vec<_> = per_thread.into_iter().flatten().collect();
    let mut calls = [0; 3];
    for (_, c) in &all {
        calls.iter_mut().zip(c).for_each(|(sum, n)| *sum += n);
    }
    Measured {
        varied: all.iter().any(|(_, c)| *c != all[0].1),
        latencies: all.iter().map(|(d, _)| *d).collect(),
        calls,
        wall,
    }
}

/// `shard=1,mappings=2,coordinator=1` → `[1, 2, 1]`.
fn parse_calls(header: Option<&str>) -> [u64; 3] {
    let header = header.expect("every response carries x-collegedb-calls");
    let mut counts = [0; 3];
    for (slot, service) in counts.iter_mut().zip(["shard", "mappings", "coordinator"]) {
        *slot = header
            .split(',')
            .find_map(|kv| kv.strip_prefix(service)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {service} count in x-collegedb-calls: {header}"));
    }
    counts
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(op: &str, threads: usize, mut m: Measured) -> String {
    m.latencies.sort();
    let n = m.latencies.len();
    let calls: Vec<String> = m
        .calls
        .iter()
        .map(|&sum| match m.varied {
            true => format!("{:.1}", sum as f64 / n as f64),
            false => (sum / n as u64).to_string(),
        })
        .collect();
    format!(
        "| {op} | {threads} | {:.0} | {:.1} | {:.1} | {} |",
        n as f64 / m.wall.as_secs_f64(),
        percentile(&m.latencies, 0.50),
        percentile(&m.latencies, 0.99),
        calls.join(" | ")
    )
}

fn main() {
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(160);
    let (mut worker, token) = Worker::start_development("bench-workerd", "bench");
    let setup = worker
        .client()
        .req_auth("setup", "POST", "/setup", None, Some(&bearer(&token)))
        .expect("POST /setup");
    expect("POST /setup", setup, 200).expect("POST /setup");

    let mut table = vec![
        "| operation | concurrency | ops/s | p50 ms | p99 ms | D1 | KV | coordinator |".to_owned(),
        "|---|---:|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    for (level, threads) in CONCURRENCY.into_iter().enumerate() {
        let batch: Vec<User> = (0..users).map(|i| User::nth(level * users + i)).collect();
        let renamed: Vec<User> = batch
            .iter()
            .map(|u| User {
                name: format!("{} (renamed)", u.name),
                ..u.clone()
            })
            .collect();
        let moved: Vec<User> = renamed
            .iter()
            .map(|u| User {
                email: format!("moved.{}", u.email),
                ..u.clone()
            })
            .collect();
        let ids = |method: &'static str| -> Vec<Request> {
            let by_id = |u: &User| (method, Key::Id.path(&u.id), None, 200);
            batch.iter().map(by_id).collect()
        };
        let by_email = || {
            batch
                .iter()
                .map(|u| ("GET", Key::Email.path(&u.email), None, 200))
        };
        let puts = |to: &[User]| {
            let body = |u: &User| Some(u.update_body().to_string());
            to.iter()
                .map(|u| ("PUT", Key::Id.path(&u.id), body(u), 200))
                .collect()
        };
        let fan_out = |path: &str| vec![("GET", path.to_owned(), None, 200); FAN_OUT_READS];
        let inserts = batch.iter().map(|u| {
            let body = Some(u.create_body().to_string());
            ("POST", "/users".to_owned(), body, 201)
        });

        let mut results = vec![(
            "insert",
            run(&worker.client(), "insert", inserts.collect(), threads),
        )];
        // A fresh isolate: the mappings the inserts cached are gone.
        worker.restart();
        let c = worker.client();
        for (op, requests) in [
            ("get by alias, cold", by_email().collect()),
            ("get by alias, warm", by_email().collect()),
            ("get by id", ids("GET")),
            ("update, no alias changed", puts(&renamed)),
            ("update, alias changed", puts(&moved)),
            ("count", fan_out("/users/count")),
            ("list", fan_out("/users")),
            ("delete", ids("DELETE")),
        ] {
            results.push((op, run(&c, op, requests, threads)));
        }
        table.extend(results.into_iter().map(|(op, m)| row(op, threads, m)));
    }
    println!(
        "\n{users} users per concurrency; {FAN_OUT_READS} reads of count and list \
         (of {users} users). Calls per operation: D1 queries or batches, KV requests, \
         coordinator requests.\n\n{}",
        table.join("\n")
    );
}
