//! The deterministic concurrency and fault harness of `tests/interleavings.rs`
//! and `tests/faults.rs`.
//!
//! - [`Hook`]: an [`Interceptor`] that counts every backend call, can yield
//!   once before each call (so a scheduler decides what runs next) and can
//!   inject one fault at a given call number of its handle.
//! - [`interleave`]: a single-threaded, seeded scheduler that polls several
//!   operations (each over its own handle) and, at every backend call, lets a
//!   seeded RNG pick which one runs next.
//! - [`Cluster`]: a temporary directory of embedded shards that several
//!   handles open at once (the same files, separate connections and caches);
//!   [`Rig`]: one with its handles, emptied between schedules (far cheaper
//!   than new files), possibly grown from 2 shards to 3 with a stale handle.
//! - [`check`]: the invariants, read through an un-intercepted handle with
//!   its own cache and directly from each shard's tables and the coordinator.
//! - [`home`]: where hash placement puts a key among n shards.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use collegedb::backend::intercept::{Call, Intercepted, Interceptor};
use collegedb::backend::{Coordinator, ShardExecutor, Statement};
use collegedb::embedded::{Embedded, Options};
use collegedb::{Config, Database, Error, Model, Result, Strategy, Value};
use example_models::User;
use futures::future::LocalBoxFuture;

/// A database handle whose every backend call a [`Hook`] sees.
pub type Db = Database<Intercepted<Embedded, Hook>>;

/// The table of [`User`].
pub const USERS: &str = "users";

// ---------------------------------------------------------------------------
// The interceptor
// ---------------------------------------------------------------------------

/// How an injected fault fails its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The call fails without acting.
    Before,
    /// The call acts, then its reply is replaced by an error.
    LostReply,
    /// The call fails without acting, and so does every later call of the
    /// handle (the process died).
    Crash,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 3] = [Mode::Before, Mode::LostReply, Mode::Crash];
}

/// One fault: at call number `at` (0-based, counted per handle in the order
/// the calls run), fail as `mode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The call number.
    pub at: usize,
    /// How it fails.
    pub mode: Mode,
}

#[derive(Default)]
struct HookState {
    /// Yield once before each call, so the scheduler picks who runs next.
    yields: bool,
    fault: Option<Fault>,
    calls: Cell<usize>,
    counts: RefCell<HashMap<Call, usize>>,
    log: RefCell<Vec<Call>>,
    crashed: Cell<bool>,
    /// The call now running has its reply lost.
    lose_reply: Cell<bool>,
    fired: Cell<bool>,
}

/// Counts calls, yields before each call when scheduled, and injects one fault.
#[derive(Clone, Default)]
pub struct Hook(Rc<HookState>);

impl Hook {
    /// Counts calls; never yields, never fails.
    pub fn counting() -> Hook {
        Hook::default()
    }

    /// Yields once before every call: for [`interleave`].
    pub fn scheduled() -> Hook {
        Hook(Rc::new(HookState {
            yields: true,
            ..HookState::default()
        }))
    }

    /// Fails as `fault` says.
    pub fn faulty(fault: Fault) -> Hook {
        Hook(Rc::new(HookState {
            fault: Some(fault),
            ..HookState::default()
        }))
    }

    /// Yields before every call, as [`Hook::scheduled`], and fails as `fault` says.
    pub fn scheduled_faulty(fault: Fault) -> Hook {
        Hook(Rc::new(HookState {
            yields: true,
            fault: Some(fault),
            ..HookState::default()
        }))
    }

    /// Calls made so far (those that failed included).
    pub fn calls(&self) -> usize {
        self.0.calls.get()
    }

    /// Calls of one kind made so far.
    pub fn count(&self, call: Call) -> usize {
        self.0.counts.borrow().get(&call).copied().unwrap_or(0)
    }

    /// Every call so far, in order.
    pub fn log(&self) -> Vec<Call> {
        self.0.log.borrow().clone()
    }

    /// Whether the fault was injected.
    pub fn fired(&self) -> bool {
        self.0.fired.get()
    }
}

/// The error a failed call of `call`'s service reports: a failure, not a
/// refusal (a lost reply is not a constraint).
pub fn injected(call: Call, what: &str) -> Error {
    super::service_error(call, format!("injected fault: {what} ({call:?})"))
}

impl Interceptor for Hook {
    async fn before(&self, call: Call) -> Result<()> {
        let state = &self.0;
        if state.yields {
            super::yield_once().await;
        }
        // Numbered when it runs: the call, its `after` and the next call's
        // `before` follow each other within one poll (the embedded backend
        // never suspends), so numbers and lost replies pair up exactly.
        let n = state.calls.get();
        state.calls.set(n + 1);
        *state.counts.borrow_mut().entry(call).or_default() += 1;
        state.log.borrow_mut().push(call);
        state.lose_reply.set(false);
        if state.crashed.get() {
            return Err(injected(call, "crashed earlier"));
        }
        match state.fault {
            Some(Fault { at, mode }) if at == n => {
                state.fired.set(true);
                match mode {
                    Mode::Before => Err(injected(call, "failed before acting")),
                    Mode::Crash => {
                        state.crashed.set(true);
                        Err(injected(call, "crashed"))
                    }
                    Mode::LostReply => {
                        state.lose_reply.set(true);
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }

    async fn after(&self, call: Call) -> Result<()> {
        if self.0.lose_reply.replace(false) {
            return Err(injected(call, "acted, reply lost"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The scheduler
// ---------------------------------------------------------------------------

/// A small seeded RNG (xorshift64*, seeded through splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The RNG of `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A task of [`interleave`].
pub type Task<'a, T> = LocalBoxFuture<'a, T>;

/// Boxes a task.
pub fn task<'a, T>(future: impl Future<Output = T> + 'a) -> Task<'a, T> {
    Box::pin(future)
}

/// Runs `tasks` to completion on this thread, in an order decided by `seed`:
/// at each step one unfinished task is polled until its next yield (every
/// backend call of a [`Hook::scheduled`] handle). The seed also picks how
/// often the scheduler switches (from every step to rarely), so both fine
/// interleavings and long runs of one task are explored.
pub fn interleave<T>(seed: u64, tasks: Vec<Task<'_, T>>) -> Vec<T> {
    let mut rng = Rng::new(seed);
    // Switch probability, in 1/16ths: 16 (every step), 8, 3 or 1.
    let switch = [16, 8, 3, 1][rng.below(4)];
    let mut tasks: Vec<Option<Task<'_, T>>> = tasks.into_iter().map(Some).collect();
    let mut results: Vec<Option<T>> = tasks.iter().map(|_| None).collect();
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut current = rng.below(tasks.len().max(1));
    let mut steps = 0usize;
    loop {
        let live: Vec<usize> = (0..tasks.len()).filter(|&i| tasks[i].is_some()).collect();
        if live.is_empty() {
            break;
        }
        if tasks[current].is_none() || rng.below(16) < switch {
            current = live[rng.below(live.len())];
        }
        steps += 1;
        assert!(
            steps < 200_000,
            "seed {seed}: no progress after {steps} steps"
        );
        let future: &mut Task<'_, T> = tasks[current].as_mut().expect("a live task");
        if let Poll::Ready(out) = Pin::new(future).poll(&mut cx) {
            results[current] = Some(out);
            tasks[current] = None;
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every task finished"))
        .collect()
}

/// The seeds a test runs: `0..base`, ten times as many with
/// `COLLEGEDB_LONG=1`, or only `n` with `COLLEGEDB_SEED=n`.
pub fn seeds(base: u64) -> std::ops::Range<u64> {
    if let Some(seed) = std::env::var("COLLEGEDB_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return seed..seed + 1;
    }
    let long = std::env::var("COLLEGEDB_LONG").is_ok_and(|v| !v.is_empty() && v != "0");
    0..if long { base * 10 } else { base }
}

// ---------------------------------------------------------------------------
// Clusters of handles over one directory
// ---------------------------------------------------------------------------

/// Hash placement.
pub const HASH: Strategy = Strategy::Hash;
/// Round-robin placement.
pub const ROUND_ROBIN: Strategy = Strategy::RoundRobin;

/// A temporary directory of embedded shards with `User`'s schema.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// The configuration every handle opens with: `strategy`, with
    /// plain-text mapping keys (so the checker can read claims).
    pub config: Config,
    /// The placement.
    pub strategy: Strategy,
}

impl Cluster {
    /// A directory with `shards` shards and `User`'s schema.
    pub fn new(shards: usize, strategy: Strategy) -> Cluster {
        let config = Config::default().strategy(strategy).plain_text_keys();
        // tmpfs when there is one: hundreds of directories per test.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("collegedb-")
                .tempdir_in(shm)
                .or_else(|_| tempfile::tempdir())
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let cluster = Cluster {
            dir,
            config,
            strategy,
        };
        let db = cluster.plain_with(shards);
        futures::executor::block_on(User::create_schema(&db)).unwrap();
        cluster
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh handle with every shard of the directory, not intercepted.
    pub fn plain(&self) -> Database<Embedded> {
        Options::dir(self.path())
            .config(self.config.clone())
            .open()
            .unwrap()
    }

    /// A fresh handle with `shards` shards (appending shards to the
    /// directory if it has fewer; fails if it has more).
    pub fn plain_with(&self, shards: usize) -> Database<Embedded> {
        Options::dir(self.path())
            .shards(shards)
            .config(self.config.clone())
            .open()
            .unwrap()
    }

    /// Appends shards up to `shards` and creates the schema on them.
    pub fn grow(&self, shards: usize) {
        let db = self.plain_with(shards);
        futures::executor::block_on(User::create_schema(&db)).unwrap();
    }

    /// A fresh handle with every shard of the directory, seen by `hook`.
    pub fn handle(&self, hook: &Hook) -> Db {
        self.plain().intercepted(hook.clone())
    }

    /// A fresh handle with `shards` shards, seen by `hook`.
    pub fn handle_with(&self, shards: usize, hook: &Hook) -> Db {
        self.plain_with(shards).intercepted(hook.clone())
    }
}

/// A test user with explicit keys.
pub fn person(id: &str, email: &str, username: &str, name: &str) -> User {
    User {
        id: id.into(),
        email: email.into(),
        username: username.into(),
        name: name.into(),
        age: Some(30),
    }
}

/// The user `u` with another email.
pub fn with_email(u: &User, email: &str) -> User {
    User {
        email: email.into(),
        ..u.clone()
    }
}

/// The user `u` with another name.
pub fn with_name(u: &User, name: &str) -> User {
    User {
        name: name.into(),
        ..u.clone()
    }
}

/// The user `id` whose email and username are `id` followed by `tag`, named `tag`.
pub fn tagged(id: &str, tag: &str) -> User {
    person(id, &format!("{id}{tag}@x"), &format!("{id}{tag}"), tag)
}

/// How a sweep's label names a placement.
pub fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Hash => "hash",
        _ => "round-robin",
    }
}

/// `n` keys `{prefix}-{j}`, the first `moving` of which change home when a
/// third shard is appended to two.
pub fn moving_keys(prefix: &str, n: usize, moving: usize) -> Vec<String> {
    let (mut movers, mut stayers) = (Vec::new(), Vec::new());
    for j in 0.. {
        let id = format!("{prefix}-{j}");
        if home(2, &id) != home(3, &id) {
            if movers.len() < moving {
                movers.push(id);
            }
        } else if stayers.len() < n - moving {
            stayers.push(id);
        }
        if movers.len() == moving && stayers.len() == n - moving {
            break;
        }
    }
    movers.extend(stayers);
    movers
}

// ---------------------------------------------------------------------------
// The invariants
// ---------------------------------------------------------------------------

/// What a test allows at the end.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Per primary key, the final states consistent with the acknowledged
    /// writes (`None`: no row). Keys not listed must not exist.
    pub states: BTreeMap<String, Vec<Option<User>>>,
    /// Every email a test used: each resolves to the row holding it, or to nothing.
    pub emails: BTreeSet<String>,
    /// Every username a test used.
    pub usernames: BTreeSet<String>,
}

impl Expect {
    /// Nothing expected yet.
    pub fn new() -> Expect {
        Expect::default()
    }

    /// The final state of `id` is one of `states`.
    pub fn key(&mut self, id: &str, states: impl IntoIterator<Item = Option<User>>) -> &mut Self {
        let states: Vec<Option<User>> = states.into_iter().collect();
        for user in states.iter().flatten() {
            assert_eq!(user.id, id, "a state of `{id}` names another key");
            self.mention(user);
        }
        self.states.insert(id.to_owned(), states);
        self
    }

    /// The final state of `user.id` is `user`.
    pub fn row(&mut self, user: &User) -> &mut Self {
        self.key(&user.id, [Some(user.clone())])
    }

    /// The final state of `id` is: no row.
    pub fn gone(&mut self, id: &str) -> &mut Self {
        self.key(id, [None])
    }

    /// Records `user`'s aliases as used (they must resolve correctly or not at all).
    pub fn mention(&mut self, user: &User) -> &mut Self {
        self.emails.insert(user.email.clone());
        self.usernames.insert(user.username.clone());
        self
    }
}

/// One stored copy of a row.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its shard.
    pub shard: String,
    /// The row.
    pub user: User,
    /// Its `inc` marks (exactly one expected).
    pub incarnations: Vec<String>,
    /// Whether it is frozen for a move.
    pub moving: bool,
}

fn text(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

/// Every stored copy of every `User` row, read from each shard's tables.
pub async fn stored(db: &Database<Embedded>) -> Vec<Stored> {
    let columns = User::COLUMNS
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let rows_sql = Statement::new(format!("SELECT {columns} FROM \"{USERS}\""), vec![]);
    let marks_sql = Statement::new(
        "SELECT pk, kind, extra FROM _collegedb_marks WHERE tbl = ?1",
        vec![Value::Text(USERS.into())],
    );
    let mut out = Vec::new();
    let names: Vec<String> = db.shard_names().map(str::to_owned).collect();
    for name in names {
        let shard = db.shard(&name).unwrap();
        let marks = shard.query(&marks_sql).await.unwrap();
        for row in shard.query(&rows_sql).await.unwrap() {
            let user = <User as collegedb::FromRow>::from_row(row).unwrap();
            let pk = Value::Text(user.id.clone());
            let of = |kind: &str| -> Vec<String> {
                marks
                    .iter()
                    .filter(|m| m[0] == pk && m[1] == Value::Text(kind.into()))
                    .map(|m| text(&m[2]))
                    .collect()
            };
            out.push(Stored {
                shard: name.clone(),
                incarnations: of("inc"),
                moving: !of("moving").is_empty(),
                user,
            });
        }
    }
    out
}

/// The settled epoch of `User` on each shard (`None`: no record).
pub async fn settled(db: &Database<Embedded>) -> Vec<Option<i64>> {
    let sql = Statement::new(
        "SELECT epoch FROM _collegedb_settled WHERE tbl = ?1",
        vec![Value::Text(USERS.into())],
    );
    let mut out = Vec::new();
    let names: Vec<String> = db.shard_names().map(str::to_owned).collect();
    for name in names {
        let rows = db.shard(&name).unwrap().query(&sql).await.unwrap();
        out.push(match rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(e)) => Some(*e),
            _ => None,
        });
    }
    out
}

thread_local! {
    static HOMES: RefCell<HashMap<(usize, String), String>> = RefCell::new(HashMap::new());
    static ORACLES: RefCell<HashMap<usize, Rc<Database<Embedded>>>> = RefCell::new(HashMap::new());
}

/// The hash home of `id` among `shards` shards: where a fresh, settled
/// database with that many shards puts it (the hash itself is crate-private).
pub fn home(shards: usize, id: &str) -> String {
    futures::executor::block_on(home_of(shards, id))
}

/// [`home`], inside an executor.
pub async fn home_of(shards: usize, id: &str) -> String {
    if let Some(home) = HOMES.with(|h| h.borrow().get(&(shards, id.to_owned())).cloned()) {
        return home;
    }
    let oracle = match ORACLES.with(|o| o.borrow().get(&shards).cloned()) {
        Some(oracle) => oracle,
        None => {
            let db = Options::in_memory(shards).open().unwrap();
            User::create_schema(&db).await.unwrap();
            let db = Rc::new(db);
            ORACLES.with(|o| o.borrow_mut().insert(shards, db.clone()));
            db
        }
    };
    let probe = person(
        id,
        &format!("{id}@oracle"),
        &format!("{id}@oracle"),
        "oracle",
    );
    match probe.insert(&*oracle).await {
        Ok(()) => {}
        Err(e) if e.code() == "duplicate_key" => {}
        Err(e) => panic!("home oracle: {e}"),
    }
    let home = oracle
        .shard_of::<User>(Value::Text(id.into()))
        .await
        .unwrap()
        .unwrap()
        .to_owned();
    HOMES.with(|h| h.borrow_mut().insert((shards, id.to_owned()), home.clone()));
    home
}

/// Checks every invariant over a fresh, un-intercepted handle (its own
/// cache), and returns the rows. `context` names the schedule or fault in
/// every failure message.
///
/// - every row is stored exactly once, with exactly one incarnation, and
///   none is left frozen;
/// - each email and username is held by at most one row, across shards;
/// - every row is found by its primary key and by each of its aliases, and
///   every alias the test used that no row holds finds nothing;
/// - `count` equals `list().len()`, and `list` is exactly the stored rows;
/// - each key's final state is one the expectations allow, and no other
///   key exists;
/// - each alias of each row (and, off hash placement, its primary key) is
///   claimed at the coordinator by that row, in its incarnation;
/// - when every shard records the table as settled at the current shard
///   count, every row is at its hash home.
pub fn check(cluster: &Cluster, expect: &Expect, context: &str) -> Vec<User> {
    let db = cluster.plain();
    let claims_every_key = cluster.strategy != Strategy::Hash;
    futures::executor::block_on(check_with(&db, claims_every_key, expect, context))
}

async fn check_with(
    db: &Database<Embedded>,
    claims_every_key: bool,
    expect: &Expect,
    context: &str,
) -> Vec<User> {
    let copies = stored(db).await;
    let mut by_key: BTreeMap<String, Vec<&Stored>> = BTreeMap::new();
    for copy in &copies {
        by_key.entry(copy.user.id.clone()).or_default().push(copy);
    }
    let mut rows: BTreeMap<String, &Stored> = BTreeMap::new();
    for (id, found) in &by_key {
        assert!(
            found.len() == 1,
            "{context}: `{id}` is stored {} times: {found:#?}",
            found.len()
        );
        let copy = found[0];
        assert!(!copy.moving, "{context}: `{id}` is left frozen: {copy:#?}");
        assert_eq!(
            copy.incarnations.len(),
            1,
            "{context}: `{id}` must have exactly one incarnation: {copy:#?}"
        );
        rows.insert(id.clone(), copy);
    }

    // Cross-shard uniqueness of aliases.
    let mut emails: BTreeMap<&str, &str> = BTreeMap::new();
    let mut usernames: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, copy) in &rows {
        if let Some(other) = emails.insert(&copy.user.email, id) {
            panic!(
                "{context}: email `{}` is held by `{other}` and `{id}`",
                copy.user.email
            );
        }
        if let Some(other) = usernames.insert(&copy.user.username, id) {
            panic!(
                "{context}: username `{}` is held by `{other}` and `{id}`",
                copy.user.username
            );
        }
    }

    // Acknowledged writes.
    for (id, states) in &expect.states {
        let actual = rows.get(id).map(|c| c.user.clone());
        assert!(
            states.contains(&actual),
            "{context}: `{id}` ends as {actual:#?}, but the acknowledged writes allow only {states:#?}"
        );
    }
    for id in rows.keys() {
        assert!(
            expect.states.contains_key(id),
            "{context}: unexpected row `{id}`"
        );
    }

    // Reads through the router.
    for copy in rows.values() {
        super::assert_found(db, &copy.user, context).await;
    }
    for (id, states) in &expect.states {
        if !rows.contains_key(id) {
            let _ = states;
            assert_eq!(
                User::get(db, id).await.unwrap(),
                None,
                "{context}: `{id}` has no row but is found"
            );
        }
    }
    for email in &expect.emails {
        let found = User::find_by_email(db, email).await.unwrap();
        match emails.get(email.as_str()) {
            Some(id) => assert_eq!(
                found.map(|u| u.id),
                Some((*id).to_owned()),
                "{context}: email `{email}`"
            ),
            None => assert_eq!(found, None, "{context}: email `{email}` is held by no row"),
        }
    }
    for username in &expect.usernames {
        let found = User::find_by_username(db, username).await.unwrap();
        match usernames.get(username.as_str()) {
            Some(id) => assert_eq!(
                found.map(|u| u.id),
                Some((*id).to_owned()),
                "{context}: username `{username}`"
            ),
            None => assert_eq!(
                found, None,
                "{context}: username `{username}` is held by no row"
            ),
        }
    }

    // count and list.
    let list = User::list(db).await.unwrap();
    let count = User::count(db).await.unwrap();
    let expected: Vec<User> = rows.values().map(|c| c.user.clone()).collect();
    assert_eq!(list, expected, "{context}: list");
    assert_eq!(count as usize, list.len(), "{context}: count");

    // Claims: never a row without its claims.
    {
        let coordinator = db.coordinator().expect("the embedded backend has one");
        for (id, copy) in &rows {
            let mut keys = vec![
                format!("{USERS}/email/{}", copy.user.email),
                format!("{USERS}/username/{}", copy.user.username),
            ];
            if claims_every_key {
                keys.push(format!("{USERS}/id/{id}"));
            }
            let holders = coordinator.holders(&keys).await.unwrap();
            for (key, holder) in keys.iter().zip(holders) {
                let holder = holder
                    .unwrap_or_else(|| panic!("{context}: `{id}` holds `{key}` without a claim"));
                assert_eq!(
                    holder.owner,
                    format!("t:{id}"),
                    "{context}: claim `{key}` of `{id}`"
                );
                assert_eq!(
                    holder.incarnation, copy.incarnations[0],
                    "{context}: claim `{key}` of `{id}` names another life of the row"
                );
            }
        }
    }

    // Homes, once settled (hash placement).
    let shards = db.shard_names().count();
    if !claims_every_key && settled(db).await.iter().all(|e| *e == Some(shards as i64)) {
        for (id, copy) in &rows {
            assert_eq!(
                copy.shard,
                home_of(shards, id).await,
                "{context}: the table is settled but `{id}` is off its home"
            );
        }
    }
    expected
}

/// Every email and username the test used that no row holds can be taken by
/// a new row (a claim left behind is proven stale and taken over). Mutates
/// the directory: run it last.
pub fn check_free_aliases_reusable(
    cluster: &Cluster,
    expect: &Expect,
    rows: &[User],
    context: &str,
) {
    let db = cluster.plain();
    futures::executor::block_on(reuse_free_aliases(&db, expect, rows, context));
}

async fn reuse_free_aliases(
    db: &Database<Embedded>,
    expect: &Expect,
    rows: &[User],
    context: &str,
) {
    let held_emails: BTreeSet<&str> = rows.iter().map(|u| u.email.as_str()).collect();
    let held_usernames: BTreeSet<&str> = rows.iter().map(|u| u.username.as_str()).collect();
    for (i, email) in expect.emails.iter().enumerate() {
        if held_emails.contains(email.as_str()) {
            continue;
        }
        let probe = person(
            &format!("reuse-e{i}"),
            email,
            &format!("reuse-e{i}"),
            "reuse",
        );
        probe
            .insert(db)
            .await
            .unwrap_or_else(|e| panic!("{context}: free email `{email}` cannot be reused: {e}"));
        assert!(User::delete(db, &probe.id).await.unwrap());
    }
    for (i, username) in expect.usernames.iter().enumerate() {
        if held_usernames.contains(username.as_str()) {
            continue;
        }
        let probe = person(
            &format!("reuse-u{i}"),
            &format!("reuse-u{i}@x"),
            username,
            "reuse",
        );
        probe.insert(db).await.unwrap_or_else(|e| {
            panic!("{context}: free username `{username}` cannot be reused: {e}")
        });
        assert!(User::delete(db, &probe.id).await.unwrap());
    }
}

/// [`check`], then [`check_free_aliases_reusable`].
pub fn check_all(cluster: &Cluster, expect: &Expect, context: &str) -> Vec<User> {
    let rows = check(cluster, expect, context);
    check_free_aliases_reusable(cluster, expect, &rows, context);
    rows
}

/// A directory and a few handles, reused from schedule to schedule:
/// [`Rig::reset`] empties it (rows, marks, claims, mappings, counters)
/// instead of building new files, which costs far more than a schedule.
/// Every schedule uses its own keys and aliases, so what the handles' caches
/// remember of earlier schedules is never consulted.
pub struct Rig {
    /// The directory.
    pub cluster: Cluster,
    /// The handles (with every shard), each seen by its [`Hook::scheduled`].
    pub dbs: Vec<Db>,
    /// [`Rig::grown`]: a scheduled handle opened with the first 2 shards only.
    pub stale: Option<Db>,
    /// [`Rig::grown`]: a plain handle with the first 2 shards, to seed rows
    /// where they were before the third shard was appended.
    old: Option<Database<Embedded>>,
    /// The checker's handle: not intercepted, its own cache.
    checker: Database<Embedded>,
    mappings: rusqlite::Connection,
}

impl Rig {
    /// 3 shards under `strategy`, and `handles` scheduled handles.
    pub fn new(strategy: Strategy, handles: usize) -> Rig {
        Rig::build(Cluster::new(3, strategy), handles, None, None)
    }

    /// Hash placement over 2 shards grown to 3 (the table unsettled after
    /// each [`Rig::reset`]): `handles` scheduled handles with 3 shards, and
    /// [`Rig::stale`] with 2.
    pub fn grown(handles: usize) -> Rig {
        let cluster = Cluster::new(2, Strategy::Hash);
        let old = cluster.plain_with(2);
        let stale = cluster.handle_with(2, &Hook::scheduled());
        cluster.grow(3);
        Rig::build(cluster, handles, Some(old), Some(stale))
    }

    fn build(
        cluster: Cluster,
        handles: usize,
        old: Option<Database<Embedded>>,
        stale: Option<Db>,
    ) -> Rig {
        let dbs = (0..handles)
            .map(|_| cluster.handle(&Hook::scheduled()))
            .collect();
        let checker = cluster.plain();
        let mappings = rusqlite::Connection::open(cluster.path().join("mappings.sqlite")).unwrap();
        mappings
            .busy_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        Rig {
            cluster,
            dbs,
            stale,
            old,
            checker,
            mappings,
        }
    }

    /// The checker's handle (every shard, not intercepted).
    pub fn checker(&self) -> &Database<Embedded> {
        &self.checker
    }

    /// Empties the directory; a grown rig's table is unsettled again, and
    /// its shards accept the 2-shard handles again.
    pub fn reset(&self) {
        let mut wipe = vec![
            Statement::new(format!("DELETE FROM \"{USERS}\""), vec![]),
            Statement::new("DELETE FROM _collegedb_marks", vec![]),
        ];
        if self.old.is_some() {
            wipe.push(Statement::new(
                "UPDATE _collegedb_epoch SET epoch = 2",
                vec![],
            ));
            wipe.push(Statement::new(
                "UPDATE _collegedb_settled SET epoch = 2 WHERE tbl = ?1",
                vec![Value::Text(USERS.into())],
            ));
        }
        futures::executor::block_on(async {
            for name in self.checker.shard_names() {
                self.checker
                    .shard(name)
                    .unwrap()
                    .batch(&wipe)
                    .await
                    .unwrap();
            }
        });
        // Whichever of the coordinator's tables the embedded file has.
        for table in ["claims", "mappings", "counters"] {
            let exists: bool = self
                .mappings
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            if exists {
                self.mappings
                    .execute(&format!("DELETE FROM {table}"), [])
                    .unwrap();
            }
        }
    }

    /// Inserts `users` through a plain handle: on a grown rig, one with the
    /// first 2 shards (where the rows were before the third was appended).
    pub fn seed(&self, users: &[User]) {
        let db = self.old.as_ref().unwrap_or(&self.checker);
        futures::executor::block_on(async {
            for user in users {
                user.insert(db).await.unwrap();
            }
        });
    }

    /// [`check`] and [`check_free_aliases_reusable`], through the checker's handle.
    pub fn check_all(&self, expect: &Expect, context: &str) -> Vec<User> {
        let claims_every_key = self.cluster.strategy != Strategy::Hash;
        futures::executor::block_on(async {
            let rows = check_with(&self.checker, claims_every_key, expect, context).await;
            reuse_free_aliases(&self.checker, expect, &rows, context).await;
            rows
        })
    }
}
