//! The `ShardCoordinator` Durable Object: the one strongly consistent
//! authority for claims, with its state in the object's SQLite storage.

use js_sys::{Array, Function, Reflect};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::closure::ScopedClosure;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::SqlStorage;
use worker::{Method, Request, Response, ResponseBuilder};

use super::protocol::{ErrorBody, ErrorReply, Released, ShardBody, Success};
use super::{js_error_message, worker_error_message};
use crate::backend::claims::{apply, ClaimTable};
use crate::backend::{ClaimRequest, Holder, Release, Target};
use crate::error::Error;
use crate::platform::now_ms;

/// The object's tables: `claims` holds one row per claimed key (a lookup
/// value, or a primary key whose shard cannot be recomputed), `counters`
/// the round-robin counter, `shards` the registered shard list in order.
const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY, position INTEGER NOT NULL, created INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, incarnation TEXT NOT NULL, nonce TEXT NOT NULL, shard TEXT NOT NULL, created INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
];

/// The name of the round-robin counter in `counters`.
const ROUND_ROBIN: &str = "round-robin";

pub use object::ShardCoordinator;

// `#[durable_object]` generates the JavaScript glue (constructor, `fetch`)
// as undocumented public methods; the lint is silenced for them only, the
// struct itself is documented.
#[allow(missing_docs)]
mod object {
    use std::cell::Cell;

    use wasm_bindgen::JsValue;
    use worker::worker_sys::SqlStorage;
    use worker::{durable_object, DurableObject, Env, Request, Response, State};

    /// The coordinator Durable Object (SQLite storage; declare it under
    /// `new_sqlite_classes`).
    ///
    /// One object (by default `idFromName("default")`) serves every isolate of
    /// a Worker. It is single-threaded, and each request runs its reads and
    /// writes synchronously inside one `transactionSync`, so each request is
    /// atomic (and rolled back whole if it fails): two writers claiming the
    /// same email from different isolates are decided one after the other,
    /// and exactly one of them gets it.
    ///
    /// # HTTP API
    ///
    /// JSON bodies. The claim routes carry the types of
    /// [`backend`](crate::backend) as serde writes them; `/shards` and
    /// `/health` keep the TypeScript CollegeDB's shape.
    ///
    /// | route | body | answer |
    /// |---|---|---|
    /// | `GET /health` | | `OK` (text) |
    /// | `POST /claim` | a [`ClaimRequest`](crate::backend::ClaimRequest) | a [`ClaimReply`](crate::backend::ClaimReply): `{"granted":{"shard","fresh":[..]}}` or `{"conflict":{"index","holder":{..}}}` |
    /// | `POST /release` | `[{"key","owner","incarnation"},..]` | `{"released":n}`: compare-and-delete, a claim held by anyone else is left alone |
    /// | `POST /holders` | `["key",..]` | `[{"owner","incarnation","nonce","shard"} or null,..]`, in order |
    /// | `GET /shards` | | `["db-east","db-west"]` (registration order) |
    /// | `POST /shards` | `{"shard":"db-new"}` | `{"success":true}` (registering twice is harmless) |
    /// | `DELETE /shards` | `{"shard":"db-old"}` | `{"success":true}` |
    /// | `POST /flush` | | `{"success":true}`: forgets every claim, the counter and the shard list (development only) |
    ///
    /// A claim request is decided by the procedure every coordinator shares
    /// (`claims::apply`): all of its claims are taken or none. A round-robin
    /// target (`{"allocate":{"strategy":"round-robin","candidates":[..]}}`)
    /// takes the next value of the counter kept in storage; empty
    /// `candidates` mean the registered shards.
    ///
    /// Errors are `{"error":{"code":"..","message":".."}}`: `400 bad_request`
    /// for a malformed body, a field of the wrong type or an empty key;
    /// `400` with the [`Error::code`](crate::Error::code) of a refused
    /// placement (`no_shards`, `unknown_shard`, `config`); `404 not_found`
    /// for an unknown path; `405 method_not_allowed`; and `500 storage` when
    /// the object's SQLite storage fails (nothing of the request is kept).
    //
    // `fetch` only: the object sets no alarms and takes no WebSockets or
    // sockets, and each handler exported would link its glue and future.
    #[durable_object(fetch)]
    pub struct ShardCoordinator {
        /// The JavaScript `SqlStorage`: `worker::SqlStorage` would decode
        /// rows through serde-wasm-bindgen, where reading columns is enough.
        pub(super) sql: SqlStorage,
        /// The JavaScript `DurableObjectStorage`, for `transactionSync`.
        pub(super) storage: JsValue,
        pub(super) ready: Cell<bool>,
    }

    impl DurableObject for ShardCoordinator {
        fn new(state: State, _env: Env) -> Self {
            let storage = state.storage();
            let storage = storage.as_raw();
            ShardCoordinator {
                sql: storage.sql(),
                storage: storage.into(),
                ready: Cell::new(false),
            }
        }

        async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
            // The body first, so that everything after it is synchronous:
            // one await, and a small future.
            let body = req.text().await;
            // Never `Err`: the glue would render a `worker::Error` with its
            // cause chain, linking its `Debug` and those of its causes.
            Ok(match self.route(&req, body) {
                Ok(response) => response,
                Err(failure) => failure.into_response(),
            })
        }
    }
}

/// A refused request: its status, code and message.
struct Failure {
    status: u16,
    code: String,
    message: String,
}

impl Failure {
    fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Failure {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(400, "bad_request", message)
    }

    fn storage(message: impl Into<String>) -> Self {
        Failure::new(500, "storage", message)
    }

    fn worker(err: worker::Error) -> Self {
        Failure::storage(worker_error_message(&err))
    }

    /// A typed error of the shared claim logic.
    fn from_error(err: Error) -> Self {
        match err {
            Error::Coordinator(message) => Failure::storage(message),
            other => Failure::new(400, other.code(), other.to_string()),
        }
    }

    fn into_response(self) -> Response {
        let body = ErrorReply {
            error: ErrorBody {
                code: self.code,
                message: self.message,
            },
        };
        // Building it cannot fail (two strings; a fresh header list), but
        // if it did the caller would still get a 500.
        json_response(self.status, serde_json::to_string(&body)).unwrap_or_else(|err| {
            ResponseBuilder::new()
                .with_status(500)
                .fixed(worker_error_message(&err).into_bytes())
        })
    }
}

type Answer = std::result::Result<Response, Failure>;

/// A JSON response, as `Response::from_json` makes it; not generic, so
/// that it is compiled once for every body type.
fn json_response(status: u16, body: serde_json::Result<String>) -> worker::Result<Response> {
    let body = body.map_err(|e| worker::Error::Json((e.to_string(), 500)))?;
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_header("content-type", "application/json")?
        .fixed(body.into_bytes()))
}

fn json<T: Serialize>(value: &T) -> Answer {
    json_response(200, serde_json::to_string(value)).map_err(Failure::worker)
}

fn success() -> Answer {
    json(&Success { success: true })
}

fn now() -> JsValue {
    JsValue::from_f64(now_ms() as f64)
}

fn text(value: &str) -> JsValue {
    JsValue::from_str(value)
}

/// Reads and writes one statement; its rows, as objects keyed by column name.
fn rows(sql: &SqlStorage, query: &str, params: &[JsValue]) -> crate::Result<Array> {
    let bindings: Array = params.iter().collect();
    sql.exec(query, bindings)
        .map(|cursor| cursor.to_array())
        .map_err(|e| Error::Coordinator(js_error_message(&e)))
}

/// Runs one statement for its effect.
fn exec(sql: &SqlStorage, query: &str, params: &[JsValue]) -> crate::Result<()> {
    rows(sql, query, params).map(drop)
}

/// The value of `column` in a row object.
fn column(row: &JsValue, column: &str) -> JsValue {
    Reflect::get(row, &JsValue::from_str(column)).unwrap_or(JsValue::UNDEFINED)
}

/// The text of `column` in a row object; the object's tables hold only
/// `NOT NULL` text in the columns read this way.
fn text_column(row: &JsValue, name: &str) -> crate::Result<String> {
    column(row, name).as_string().ok_or_else(|| {
        Error::Coordinator(format!("the column `{name}` of a stored row is not text"))
    })
}

/// The `claims` table, read and written synchronously inside one transaction.
struct SqlClaims<'a>(&'a SqlStorage);

impl ClaimTable for SqlClaims<'_> {
    fn holder(&mut self, key: &str) -> crate::Result<Option<Holder>> {
        let found = rows(
            self.0,
            "SELECT owner, incarnation, nonce, shard FROM claims WHERE key = ?",
            &[text(key)],
        )?;
        if found.length() == 0 {
            return Ok(None);
        }
        let row = found.get(0);
        Ok(Some(Holder {
            owner: text_column(&row, "owner")?,
            incarnation: text_column(&row, "incarnation")?,
            nonce: text_column(&row, "nonce")?,
            shard: text_column(&row, "shard")?,
        }))
    }

    fn store(&mut self, key: &str, holder: &Holder) -> crate::Result<()> {
        exec(
            self.0,
            "INSERT INTO claims (key, owner, incarnation, nonce, shard, created) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, incarnation = excluded.incarnation,
             nonce = excluded.nonce, shard = excluded.shard",
            &[
                text(key),
                text(&holder.owner),
                text(&holder.incarnation),
                text(&holder.nonce),
                text(&holder.shard),
                now(),
            ],
        )
    }

    fn ticket(&mut self) -> crate::Result<u64> {
        let found = rows(
            self.0,
            "INSERT INTO counters (name, value) VALUES (?, 1)
             ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value - 1 AS ticket",
            &[text(ROUND_ROBIN)],
        )?;
        // A count far below 2^53: exact as a JS number.
        column(&found.get(0), "ticket")
            .as_f64()
            .map(|ticket| ticket.max(0.0) as u64)
            .ok_or_else(|| Error::Coordinator("the round-robin counter returned no row".into()))
    }
}

impl ShardCoordinator {
    fn ensure_schema(&self) -> std::result::Result<(), Failure> {
        if !self.ready.get() {
            self.atomically(|| {
                for statement in SCHEMA {
                    exec(&self.sql, statement, &[]).map_err(Failure::from_error)?;
                }
                Ok(())
            })?;
            self.ready.set(true);
        }
        Ok(())
    }

    /// Runs `body` inside the storage's `transactionSync`: everything it
    /// wrote is committed together, or, if it fails, rolled back together.
    fn atomically<T>(
        &self,
        body: impl FnOnce() -> std::result::Result<T, Failure>,
    ) -> std::result::Result<T, Failure> {
        let mut body = Some(body);
        let mut outcome: Option<std::result::Result<T, Failure>> = None;
        // The typed body behind an untyped step, so that the transaction
        // itself is compiled once: `Ok(true)` committed, `Ok(false)` failed.
        let mut step = || match body.take() {
            Some(body) => {
                let result = body();
                let ok = result.is_ok();
                outcome = Some(result);
                Ok(ok)
            }
            None => Err(JsValue::from_str("collegedb: transaction body ran twice")),
        };
        let called = self.transaction(&mut step);
        match (outcome, called) {
            (Some(Ok(value)), Ok(_)) => Ok(value),
            (Some(Err(failure)), _) => Err(failure),
            (_, Err(failure)) => Err(failure),
            (None, Ok(_)) => Err(Failure::storage("the storage transaction did not run")),
        }
    }

    /// Runs `step` inside `transactionSync`; a step answering `Ok(false)`
    /// (its body failed) is rolled back.
    fn transaction(
        &self,
        step: &mut dyn FnMut() -> std::result::Result<bool, JsValue>,
    ) -> std::result::Result<(), Failure> {
        let run = Reflect::get(&self.storage, &JsValue::from_str("transactionSync"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
            .ok_or_else(|| {
                Failure::storage(
                    "this Durable Object has no transactionSync: declare ShardCoordinator under `new_sqlite_classes`",
                )
            })?;
        let mut step = || -> std::result::Result<(), JsValue> {
            if step()? {
                Ok(())
            } else {
                // Throwing is what makes transactionSync roll back.
                Err(JsValue::from_str("collegedb: rolled back"))
            }
        };
        let called = {
            let closure =
                ScopedClosure::<dyn FnMut() -> std::result::Result<(), JsValue>>::borrow_mut_aborting(
                    &mut step,
                );
            run.call1(&self.storage, closure.as_ref())
        };
        called.map(drop).map_err(|e| {
            Failure::storage(format!(
                "the storage transaction failed: {}",
                super::js_error_message(&e)
            ))
        })
    }

    fn body<T: DeserializeOwned>(body: &worker::Result<String>) -> std::result::Result<T, Failure> {
        let text = body.as_ref().map_err(|e| {
            Failure::bad_request(format!("unreadable body: {}", worker_error_message(e)))
        })?;
        serde_json::from_str(text)
            .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))
    }

    fn route(&self, req: &Request, body: worker::Result<String>) -> Answer {
        self.ensure_schema()?;
        let path = req.path();
        let method = req.method();
        match path.trim_end_matches('/') {
            "/health" => match method {
                Method::Get => Response::ok("OK").map_err(Failure::worker),
                _ => Err(not_allowed(&method, &path)),
            },
            "/claim" => match method {
                Method::Post => self.claim(Self::body(&body)?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/release" => match method {
                Method::Post => self.release(Self::body(&body)?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/holders" => match method {
                Method::Post => self.holders(Self::body(&body)?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/shards" => match method {
                Method::Get => json(&self.atomically(|| self.registered())?),
                Method::Post => self.add_shard(Self::body(&body)?),
                Method::Delete => self.remove_shard(Self::body(&body)?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/flush" => match method {
                Method::Post => self.flush(),
                _ => Err(not_allowed(&method, &path)),
            },
            _ => Err(Failure::new(
                404,
                "not_found",
                format!("no route {method} {path}"),
            )),
        }
    }

    fn registered(&self) -> std::result::Result<Vec<String>, Failure> {
        let rows = rows(&self.sql, "SELECT name FROM shards ORDER BY position", &[])
            .map_err(Failure::from_error)?;
        let mut names = Vec::with_capacity(rows.length() as usize);
        for row in rows.iter() {
            names.push(text_column(&row, "name").map_err(Failure::from_error)?);
        }
        Ok(names)
    }

    /// Takes every claim of the request or none (see [`apply`]).
    fn claim(&self, mut request: ClaimRequest) -> Answer {
        non_empty(&request.owner, "owner")?;
        non_empty(&request.incarnation, "incarnation")?;
        for claim in &request.claims {
            non_empty(&claim.key, "claims[].key")?;
        }
        let reply = self.atomically(|| {
            if let Target::Allocate(allocation) = &mut request.target {
                if allocation.candidates.is_empty() {
                    allocation.candidates = self.registered()?;
                }
            }
            apply(&mut SqlClaims(&self.sql), &request).map_err(Failure::from_error)
        })?;
        json(&reply)
    }

    /// Compare-and-delete of each claim on key, owner and incarnation.
    fn release(&self, releases: Vec<Release>) -> Answer {
        for release in &releases {
            non_empty(&release.key, "key")?;
        }
        let released = self.atomically(|| {
            let mut released = 0;
            for release in &releases {
                let gone = rows(
                    &self.sql,
                    "DELETE FROM claims WHERE key = ? AND owner = ? AND incarnation = ? RETURNING 1 AS gone",
                    &[
                        text(&release.key),
                        text(&release.owner),
                        text(&release.incarnation),
                    ],
                )
                .map_err(Failure::from_error)?;
                released += u64::from(gone.length());
            }
            Ok(released)
        })?;
        json(&Released { released })
    }

    fn holders(&self, keys: Vec<String>) -> Answer {
        let holders = self.atomically(|| {
            let mut table = SqlClaims(&self.sql);
            let mut holders = Vec::with_capacity(keys.len());
            for key in &keys {
                holders.push(table.holder(key).map_err(Failure::from_error)?);
            }
            Ok(holders)
        })?;
        json(&holders)
    }

    fn add_shard(&self, body: ShardBody) -> Answer {
        non_empty(&body.shard, "shard")?;
        self.atomically(|| {
            exec(
                &self.sql,
                "INSERT OR IGNORE INTO shards (name, position, created) VALUES (?, (SELECT COALESCE(MAX(position) + 1, 0) FROM shards), ?)",
                &[text(&body.shard), now()],
            )
            .map_err(Failure::from_error)
        })?;
        success()
    }

    fn remove_shard(&self, body: ShardBody) -> Answer {
        self.atomically(|| {
            exec(
                &self.sql,
                "DELETE FROM shards WHERE name = ?",
                &[text(&body.shard)],
            )
            .map_err(Failure::from_error)
        })?;
        success()
    }

    fn flush(&self) -> Answer {
        self.atomically(|| {
            for table in ["claims", "counters", "shards"] {
                exec(&self.sql, &format!("DELETE FROM {table}"), &[])
                    .map_err(Failure::from_error)?;
            }
            Ok(())
        })?;
        success()
    }
}

fn non_empty(value: &str, field: &str) -> std::result::Result<(), Failure> {
    if value.is_empty() {
        Err(Failure::bad_request(format!("`{field}` must not be empty")))
    } else {
        Ok(())
    }
}

fn not_allowed(method: &Method, path: &str) -> Failure {
    Failure::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed on {path}"),
    )
}
