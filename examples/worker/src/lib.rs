//! The CollegeDB example Worker: users and posts spread over three D1 shards,
//! with mappings in Workers KV and the `ShardCoordinator` Durable Object.
//!
//! Bindings (see the repository's `wrangler.toml`): D1 `SHARD_0`, `SHARD_1`,
//! `SHARD_2`; KV `MAPPINGS`; Durable Object `COORDINATOR` (class
//! `ShardCoordinator`, SQLite storage).
//!
//! - Users are placed by jump hash of their id: no coordinator call is needed
//!   to place or find them; the coordinator only keeps the per-shard counts.
//! - Posts are placed round-robin, through the coordinator (the strongly
//!   consistent authority for placements that cannot be recomputed).
//!
//! The HTTP API is described in [`routes`]. Everything here is compiled for
//! `wasm32` only.
#![cfg(target_arch = "wasm32")]

mod http;
mod models;
mod routes;

use std::sync::LazyLock;

use collegedb::cloudflare::Options;
use collegedb::directory::MappingCache;
use collegedb::{Config, Strategy};
use worker::{event, Context, Env, Request, Response};

/// The coordinator Durable Object class. `collegedb` exports it to JavaScript
/// as soon as it is linked; this re-export documents that the Worker relies on it.
pub use collegedb::cloudflare::ShardCoordinator;

/// The D1 bindings, in their stable order (new shards are appended).
pub(crate) const SHARDS: [&str; 3] = ["SHARD_0", "SHARD_1", "SHARD_2"];
/// The KV namespace of the mappings.
pub(crate) const MAPPINGS: &str = "MAPPINGS";
/// The Durable Object namespace of the coordinator.
pub(crate) const COORDINATOR: &str = "COORDINATOR";

/// One mapping cache for the isolate: mappings learnt by one request serve the next.
static CACHE: LazyLock<MappingCache> = LazyLock::new(|| MappingCache::new(10_000));

fn options(strategy: Strategy) -> Options {
    Options::new()
        .shards(SHARDS)
        .mappings(MAPPINGS)
        .coordinator(COORDINATOR)
        .config(Config::default().strategy(strategy).cache(CACHE.clone()))
}

/// Users: hash placement (the coordinator keeps counts only).
pub(crate) static USERS: LazyLock<Options> = LazyLock::new(|| options(Strategy::Hash));

/// Posts: round-robin placement through the coordinator.
pub(crate) static POSTS: LazyLock<Options> = LazyLock::new(|| options(Strategy::RoundRobin));

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    routes::handle(req, env).await
}
