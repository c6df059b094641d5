//! The CollegeDB example Worker: users and posts spread over three D1 shards,
//! with mappings in Workers KV and the `ShardCoordinator` Durable Object.
//!
//! Bindings (see the repository's `wrangler.toml`): D1 `SHARD_0`, `SHARD_1`,
//! `SHARD_2`; KV `MAPPINGS`; Durable Object `COORDINATOR` (class
//! `ShardCoordinator`, SQLite storage). Secret `ADMIN_TOKEN` (the bearer token
//! of the administrative routes; without it they answer `403`) and var
//! `DEPLOYMENT` (`"development"` allows `POST /coordinator/flush`).
//!
//! - Users are placed by jump hash of their id: no coordinator call is needed
//!   to place or find them by id; their emails and usernames are claimed at
//!   the coordinator (the strongly consistent authority for unique values).
//! - Posts are placed round-robin, through the coordinator (the authority for
//!   placements that cannot be recomputed).
//! - Articles are placed by jump hash of their id, with a unique slug; they
//!   serve the query routes (filters, pages, aggregates, raw SQL: see
//!   [`queries`]).
//! - Users can also be reached through a handle that knows only the first two
//!   shards (`/v2/users/...`): the deployment before `SHARD_2` was appended.
//!   Rows written there are moved to their three-shard homes by
//!   `POST /admin/rebalance/users`.
//!
//! Every response carries `x-collegedb-calls: shard=N,mappings=N,coordinator=N`:
//! the remote calls the request made through the database, per service.
//!
//! The HTTP API is described in [`routes`]. Everything here is compiled for
//! `wasm32` only.
#![cfg(target_arch = "wasm32")]

mod admin;
mod calls;
mod http;
mod models;
mod queries;
mod routes;

use std::sync::LazyLock;

use collegedb::cloudflare::Options;
use collegedb::{Config, MappingCache, Strategy};
use worker::{event, Context, Env, Request, Response};

/// The coordinator Durable Object class. `collegedb` exports it to JavaScript
/// as soon as it is linked; this re-export documents that the Worker relies on it.
pub use collegedb::cloudflare::ShardCoordinator;

/// The D1 bindings, in their stable order (new shards are appended).
pub(crate) const SHARDS: [&str; 3] = ["SHARD_0", "SHARD_1", "SHARD_2"];
/// The shard list before `SHARD_2` was appended (the `/v2/users` handle).
pub(crate) const TWO_SHARDS: [&str; 2] = ["SHARD_0", "SHARD_1"];
/// The KV namespace of the mappings.
pub(crate) const MAPPINGS: &str = "MAPPINGS";
/// The Durable Object namespace of the coordinator.
pub(crate) const COORDINATOR: &str = "COORDINATOR";

/// One mapping cache for the isolate: mappings learnt by one request serve
/// the next. Entries are hints (every row they point to is checked), so the
/// two user handles can share it.
static CACHE: LazyLock<MappingCache> = LazyLock::new(|| MappingCache::new(10_000));

fn options<const N: usize>(shards: [&str; N], strategy: Strategy) -> Options {
    Options::new()
        .shards(shards)
        .mappings(MAPPINGS)
        .coordinator(COORDINATOR)
        .config(Config::default().strategy(strategy).cache(CACHE.clone()))
}

/// Users' claims (emails, usernames) are spread over this many coordinator
/// objects; both user handles must agree on it.
const USER_CLAIM_PARTITIONS: usize = 2;

/// Users: hash placement over the three shards.
pub(crate) static USERS: LazyLock<Options> =
    LazyLock::new(|| options(SHARDS, Strategy::Hash).coordinator_partitions(USER_CLAIM_PARTITIONS));

/// Users through the two-shard list of the deployment before `SHARD_2`.
pub(crate) static USERS_TWO_SHARDS: LazyLock<Options> = LazyLock::new(|| {
    options(TWO_SHARDS, Strategy::Hash).coordinator_partitions(USER_CLAIM_PARTITIONS)
});

/// Articles (the query routes): hash placement over the three shards.
pub(crate) static ARTICLES: LazyLock<Options> = LazyLock::new(|| options(SHARDS, Strategy::Hash));

/// Posts: round-robin placement through the coordinator.
pub(crate) static POSTS: LazyLock<Options> =
    LazyLock::new(|| options(SHARDS, Strategy::RoundRobin));

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    // Never `Err`: the glue turns an `Err` into a `Box<dyn Error>`, which
    // links the `Debug` of `worker::Error` (and std's I/O error kinds).
    Ok(routes::handle(req, env).await)
}
