//! The `ShardCoordinator` Durable Object: the placement authority and the
//! keeper of per-shard key counts, with its state in the object's SQLite storage.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{Method, Request, Response, SqlStorageValue};

use super::d1::exact_in_js;
use super::protocol::{
    AllocateBody, AllocateReply, CountBody, ErrorBody, ErrorReply, ReleaseBody, SetStatsBody,
    ShardBody, StatsEntry, Success,
};
use super::worker_error_message;
use crate::error::Error;
use crate::platform::now_ms;
use crate::strategy::{decide, AllocationRequest, StrategyKind};
use crate::value::Value;

/// The object's tables. `placements` holds one row per key placed by the
/// object (put-if-absent), `counters` the round-robin counter, `shards` the
/// registered shard list in order, `stats` the per-shard key counts.
const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY, position INTEGER NOT NULL, created INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS placements (key TEXT PRIMARY KEY, shard TEXT NOT NULL, created INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS stats (shard TEXT PRIMARY KEY, count INTEGER NOT NULL, updated INTEGER NOT NULL)",
];

/// The name of the round-robin counter in `counters`.
const ROUND_ROBIN: &str = "round-robin";

pub use object::ShardCoordinator;

// `#[durable_object]` generates the JavaScript glue (constructor, `fetch`,
// `alarm`, WebSocket handlers) as undocumented public methods; the lint is
// silenced for them only, the struct itself is documented.
#[allow(missing_docs)]
mod object {
    use std::cell::Cell;

    use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

    /// The coordinator Durable Object (SQLite storage; declare it under
    /// `new_sqlite_classes`).
    ///
    /// One object (by default `idFromName("default")`) serves every isolate of
    /// a Worker. It is single-threaded and its storage is transactional, and
    /// every request runs its reads and writes without awaiting in between, so
    /// each request is atomic: asking twice to allocate the same key gives the
    /// same shard, whichever isolates ask.
    ///
    /// # HTTP API
    ///
    /// JSON bodies, matching the TypeScript CollegeDB's coordinator, plus the
    /// routes the Rust router uses (`/release`, `/count`):
    ///
    /// | route | body | answer |
    /// |---|---|---|
    /// | `GET /health` | | `OK` (text) |
    /// | `GET /shards` | | `["db-east","db-west"]` (registration order) |
    /// | `POST /shards` | `{"shard":"db-new"}` | `{"success":true}` (registering twice is harmless) |
    /// | `DELETE /shards` | `{"shard":"db-old"}` | `{"success":true}` |
    /// | `GET /stats` | | `[{"shard":"db-east","count":1542,"updated":1700000000000}]` |
    /// | `POST /stats` | `{"shard":"db-east","count":1600}` | `{"success":true}` (sets the count) |
    /// | `POST /count` | `{"shard":"db-east","delta":-1}` | `{"success":true}` (adds to the count) |
    /// | `POST /allocate` | `{"primaryKey":"users/…","strategy"?:"round-robin","candidates"?:[..],"proposed"?:".."}` | `{"shard":"db-west"}` |
    /// | `POST /release` | `{"primaryKey":"users/…"}` | `{"success":true}` |
    /// | `POST /flush` | | `{"success":true}` (forgets everything: development only) |
    ///
    /// `/allocate` is put-if-absent: a key that already has a placement gets it
    /// back, whatever the request says. Otherwise the shard is decided by
    /// [`decide`](crate::strategy::decide), the logic every coordinator shares:
    /// `proposed` if given (it must be one of the candidates), else by
    /// `strategy` (default `round-robin`, with the counter kept in storage) over
    /// `candidates`, or over the registered shards when none are given.
    ///
    /// Errors are `{"error":{"code":"..","message":".."}}`: `400` with code
    /// `bad_request` for a malformed body or a field of the wrong type, `400`
    /// with the [`Error::code`](crate::Error::code) of a refused allocation (`no_shards`,
    /// `unknown_shard`, `config`, `integer_out_of_range`), `404 not_found` for
    /// an unknown path, `405 method_not_allowed`, and `500 storage` when the
    /// object's SQLite storage fails.
    #[durable_object]
    pub struct ShardCoordinator {
        pub(super) sql: SqlStorage,
        pub(super) ready: Cell<bool>,
    }

    impl DurableObject for ShardCoordinator {
        fn new(state: State, _env: Env) -> Self {
            ShardCoordinator {
                sql: state.storage().sql(),
                ready: Cell::new(false),
            }
        }

        async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
            match self.route(&mut req).await {
                Ok(response) => Ok(response),
                Err(failure) => failure.into_response(),
            }
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

    fn storage(err: worker::Error) -> Self {
        Failure::new(500, "storage", worker_error_message(&err))
    }

    /// A typed error from the shared placement logic.
    fn from_error(err: Error) -> Self {
        let status = match err {
            Error::Coordinator(_) => 500,
            _ => 400,
        };
        let code = match err {
            Error::Coordinator(_) => "storage",
            ref other => other.code(),
        };
        Failure::new(status, code, err.to_string())
    }

    fn into_response(self) -> worker::Result<Response> {
        let body = ErrorReply {
            error: ErrorBody {
                code: self.code,
                message: self.message,
            },
        };
        Ok(Response::from_json(&body)?.with_status(self.status))
    }
}

type Outcome = std::result::Result<Response, Failure>;

#[derive(Deserialize)]
struct NameRow {
    name: String,
}

#[derive(Deserialize)]
struct ShardRow {
    shard: String,
}

#[derive(Deserialize)]
struct TicketRow {
    ticket: i64,
}

fn json<T: Serialize>(value: &T) -> Outcome {
    Response::from_json(value).map_err(Failure::storage)
}

fn success() -> Outcome {
    json(&Success { success: true })
}

/// A count for storage, refused if a JS number cannot hold it exactly.
fn checked(value: i64) -> std::result::Result<SqlStorageValue, Failure> {
    exact_in_js(&Value::Integer(value)).map_err(Failure::from_error)?;
    Ok(SqlStorageValue::Integer(value))
}

fn now() -> SqlStorageValue {
    SqlStorageValue::Integer(now_ms() as i64)
}

impl ShardCoordinator {
    fn ensure_schema(&self) -> std::result::Result<(), Failure> {
        if !self.ready.get() {
            for statement in SCHEMA {
                self.sql
                    .exec(statement, Vec::new())
                    .map_err(Failure::storage)?;
            }
            self.ready.set(true);
        }
        Ok(())
    }

    fn exec(&self, sql: &str, params: Vec<SqlStorageValue>) -> std::result::Result<(), Failure> {
        self.sql
            .exec(sql, params)
            .map(drop)
            .map_err(Failure::storage)
    }

    fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<SqlStorageValue>,
    ) -> std::result::Result<Vec<T>, Failure> {
        self.sql
            .exec(sql, params)
            .and_then(|cursor| cursor.to_array())
            .map_err(Failure::storage)
    }

    async fn body<T: DeserializeOwned>(req: &mut Request) -> std::result::Result<T, Failure> {
        let text = req.text().await.map_err(|e| {
            Failure::bad_request(format!("unreadable body: {}", worker_error_message(&e)))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))
    }

    async fn route(&self, req: &mut Request) -> Outcome {
        self.ensure_schema()?;
        let path = req.path();
        let method = req.method();
        match path.trim_end_matches('/') {
            "/health" => match method {
                Method::Get => Response::ok("OK").map_err(Failure::storage),
                _ => Err(not_allowed(&method, &path)),
            },
            "/shards" => match method {
                Method::Get => self.list_shards(),
                Method::Post => self.add_shard(Self::body(req).await?),
                Method::Delete => self.remove_shard(Self::body(req).await?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/stats" => match method {
                Method::Get => self.stats(),
                Method::Post => self.set_stats(Self::body(req).await?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/count" => match method {
                Method::Post => self.adjust_count(Self::body(req).await?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/allocate" => match method {
                Method::Post => self.allocate(Self::body(req).await?),
                _ => Err(not_allowed(&method, &path)),
            },
            "/release" => match method {
                Method::Post => self.release(Self::body(req).await?),
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
        let rows: Vec<NameRow> =
            self.rows("SELECT name FROM shards ORDER BY position", Vec::new())?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn list_shards(&self) -> Outcome {
        json(&self.registered()?)
    }

    fn add_shard(&self, body: ShardBody) -> Outcome {
        non_empty(&body.shard, "shard")?;
        self.exec(
            "INSERT OR IGNORE INTO shards (name, position, created) VALUES (?, (SELECT COALESCE(MAX(position) + 1, 0) FROM shards), ?)",
            vec![body.shard.into(), now()],
        )?;
        success()
    }

    fn remove_shard(&self, body: ShardBody) -> Outcome {
        self.exec("DELETE FROM shards WHERE name = ?", vec![body.shard.into()])?;
        success()
    }

    fn stats(&self) -> Outcome {
        let rows: Vec<StatsEntry> = self.rows(
            "SELECT shard, count, updated FROM stats ORDER BY shard",
            Vec::new(),
        )?;
        json(&rows)
    }

    fn set_stats(&self, body: SetStatsBody) -> Outcome {
        non_empty(&body.shard, "shard")?;
        let count = checked(body.count)?;
        self.exec(
            "INSERT INTO stats (shard, count, updated) VALUES (?, ?, ?)
             ON CONFLICT (shard) DO UPDATE SET count = excluded.count, updated = excluded.updated",
            vec![body.shard.into(), count, now()],
        )?;
        success()
    }

    fn adjust_count(&self, body: CountBody) -> Outcome {
        non_empty(&body.shard, "shard")?;
        let delta = checked(body.delta)?;
        self.exec(
            "INSERT INTO stats (shard, count, updated) VALUES (?, ?, ?)
             ON CONFLICT (shard) DO UPDATE SET count = count + excluded.count, updated = excluded.updated",
            vec![body.shard.into(), delta, now()],
        )?;
        success()
    }

    /// Put-if-absent: the existing placement, or a new one by [`decide`].
    fn allocate(&self, body: AllocateBody) -> Outcome {
        non_empty(&body.primary_key, "primaryKey")?;
        let existing: Vec<ShardRow> = self.rows(
            "SELECT shard FROM placements WHERE key = ?",
            vec![body.primary_key.as_str().into()],
        )?;
        if let Some(row) = existing.into_iter().next() {
            return json(&AllocateReply { shard: row.shard });
        }
        let candidates = match body.candidates {
            Some(candidates) => candidates,
            None => self.registered()?,
        };
        let request = AllocationRequest {
            strategy: body.strategy.unwrap_or(StrategyKind::RoundRobin),
            candidates,
            proposed: body.proposed,
        };
        let shard =
            decide(&body.primary_key, &request, || self.ticket()).map_err(Failure::from_error)?;
        self.exec(
            "INSERT INTO placements (key, shard, created) VALUES (?, ?, ?)",
            vec![body.primary_key.into(), shard.as_str().into(), now()],
        )?;
        json(&AllocateReply { shard })
    }

    /// The next round-robin ticket (0, 1, 2, ...).
    fn ticket(&self) -> crate::Result<u64> {
        let rows: Vec<TicketRow> = self
            .sql
            .exec(
                "INSERT INTO counters (name, value) VALUES (?, 1)
                 ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value - 1 AS ticket",
                vec![ROUND_ROBIN.into()],
            )
            .and_then(|cursor| cursor.to_array())
            .map_err(|e| Error::Coordinator(worker_error_message(&e)))?;
        rows.first()
            .map(|r| r.ticket.max(0) as u64)
            .ok_or_else(|| Error::Coordinator("the round-robin counter returned no row".into()))
    }

    fn release(&self, body: ReleaseBody) -> Outcome {
        non_empty(&body.primary_key, "primaryKey")?;
        self.exec(
            "DELETE FROM placements WHERE key = ?",
            vec![body.primary_key.into()],
        )?;
        success()
    }

    fn flush(&self) -> Outcome {
        for table in ["placements", "counters", "shards", "stats"] {
            self.exec(&format!("DELETE FROM {table}"), Vec::new())?;
        }
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
