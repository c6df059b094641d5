//! The smallest useful CollegeDB Worker: one model over two D1 shards, with
//! mappings in Workers KV and the `ShardCoordinator` Durable Object, and
//! nothing but its CRUD, lookup and list routes. `scripts/worker-size.sh`
//! builds it beside the example Worker to show what the library itself
//! costs a Worker's module.
//!
//! - `POST /users` (a user as JSON): insert; `201`, or `409` for a taken key.
//! - `GET /users`: every user, as a JSON array.
//! - `GET /users/{id}`, `GET /users/by-email/{email}`: one user, or `404`.
//! - `PUT /users/{id}` (a user as JSON): update; `404` when there is none.
//! - `DELETE /users/{id}`: `204`, or `404` when there was none.
//!
//! Bindings: D1 `SHARD_0`, `SHARD_1`; KV `MAPPINGS`; Durable Object
//! `COORDINATOR` (class `ShardCoordinator`, SQLite storage). Create the
//! table once with `POST /setup`.
#![cfg(target_arch = "wasm32")]

use std::sync::LazyLock;

use collegedb::cloudflare::{Cloudflare, Options};
use collegedb::{Config, Database, MappingCache, Sharded};
use serde::{Deserialize, Serialize};
use worker::{event, Context, Env, Method, Request, Response};

/// The coordinator Durable Object class, exported by `collegedb`.
pub use collegedb::cloudflare::ShardCoordinator;

/// A user, found by id or email.
#[derive(Sharded, Serialize, Deserialize)]
pub struct User {
    /// The primary key: placed by jump hash, found without a lookup.
    #[primary_key]
    pub id: String,
    /// A unique alias key, claimed at the coordinator.
    #[lookup]
    pub email: String,
    /// Not a key.
    pub name: String,
}

/// One mapping cache for the isolate.
static CACHE: LazyLock<MappingCache> = LazyLock::new(|| MappingCache::new(10_000));
static USERS: LazyLock<Options> = LazyLock::new(|| {
    Options::new()
        .shards(["SHARD_0", "SHARD_1"])
        .mappings("MAPPINGS")
        .coordinator("COORDINATOR")
        .config(Config::default().cache(CACHE.clone()))
});

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match USERS.open(&env) {
        Ok(db) => route(&mut req, &db).await,
        Err(err) => failed(&err),
    }
}

async fn route(req: &mut Request, db: &Database<Cloudflare>) -> worker::Result<Response> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (Method::Post, ["setup"]) => done(User::create_schema(db).await, 204),
        (Method::Post, ["users"]) => {
            let user: User = req.json().await?;
            done(user.insert(db).await, 201)
        }
        (Method::Get, ["users"]) => found(User::list(db).await.map(Some)),
        (Method::Get, ["users", "by-email", email]) => found(User::find_by_email(db, email).await),
        (Method::Get, ["users", id]) => found(User::get(db, id).await),
        (Method::Put, ["users", id]) => {
            let mut user: User = req.json().await?;
            user.id = (*id).to_owned();
            done(user.update(db).await, 204)
        }
        (Method::Delete, ["users", id]) => match User::delete(db, id).await {
            Ok(true) => Ok(Response::empty()?.with_status(204)),
            Ok(false) => Response::error("no such user", 404),
            Err(err) => failed(&err),
        },
        _ => Response::error("no such route", 404),
    }
}

/// `status` with no body, or the error's answer.
fn done(result: collegedb::Result<()>, status: u16) -> worker::Result<Response> {
    match result {
        Ok(()) => Ok(Response::empty()?.with_status(status)),
        Err(err) => failed(&err),
    }
}

/// The value as JSON, `404` for none, or the error's answer.
fn found<T: Serialize>(result: collegedb::Result<Option<T>>) -> worker::Result<Response> {
    match result {
        Ok(Some(value)) => Response::from_json(&value),
        Ok(None) => Response::error("not found", 404),
        Err(err) => failed(&err),
    }
}

/// The error's message, with a status from its stable code.
fn failed(err: &collegedb::Error) -> worker::Result<Response> {
    let status = match err.code() {
        "duplicate_key" | "duplicate_alias" => 409,
        "not_found" => 404,
        "key_too_long" | "integer_out_of_range" | "encode" => 400,
        _ => 500,
    };
    Response::error(err.to_string(), status)
}
