//! The Cloudflare backend: D1 databases as shards, Workers KV as the
//! read-path cache of mappings, and the [`ShardCoordinator`] Durable Object
//! as the one strongly consistent authority for claims (lookup values, and
//! primary keys whose shard cannot be recomputed).
//!
//! Compiled only for `wasm32-unknown-unknown` with the `cloudflare` feature.
//!
//! # Opening a database in a Worker
//!
//! Describe the bindings once (for example in a `static`), and open a
//! [`Database`] per request from the request's `Env`: opening only looks the
//! bindings up, it makes no remote call.
//!
//! ```ignore
//! use std::sync::LazyLock;
//! use collegedb::cloudflare::{Cloudflare, Options};
//! use collegedb::{Config, Database, MappingCache, Strategy};
//!
//! // One mapping cache per isolate, shared by every request it serves.
//! static CACHE: LazyLock<MappingCache> = LazyLock::new(|| MappingCache::new(10_000));
//! static USERS: LazyLock<Options> = LazyLock::new(|| {
//!     Options::new()
//!         .shards(["SHARD_0", "SHARD_1", "SHARD_2"]) // stable order: only ever append
//!         .mappings("MAPPINGS")                       // the KV namespace
//!         .coordinator("COORDINATOR")                 // the ShardCoordinator namespace
//!         .config(Config::default().strategy(Strategy::Hash).cache(CACHE.clone()))
//! });
//!
//! #[worker::event(fetch)]
//! async fn fetch(req: worker::Request, env: worker::Env, _: worker::Context) -> worker::Result<worker::Response> {
//!     let db: Database<Cloudflare> = USERS.open(&env)?;
//!     // User::get(&db, "u-42").await? ...
//!     # todo!()
//! }
//! ```
//!
//! # Exporting the Durable Object
//!
//! [`ShardCoordinator`] is a `#[durable_object]` defined in this crate. Its
//! wasm-bindgen export is part of `collegedb`'s object code, so the Worker's
//! `cdylib` exports the `ShardCoordinator` class as soon as it links
//! `collegedb` with this feature; `worker-build` then wraps it as a Durable
//! Object class like one defined in the Worker itself. Write the one-line
//! re-export anyway, so the dependency is visible in the Worker's source:
//!
//! ```ignore
//! pub use collegedb::cloudflare::ShardCoordinator;
//! ```
//!
//! and declare the class with SQLite storage in `wrangler.toml`:
//!
//! ```toml
//! [[durable_objects.bindings]]
//! name = "COORDINATOR"
//! class_name = "ShardCoordinator"
//!
//! [[migrations]]
//! tag = "v1"
//! new_sqlite_classes = ["ShardCoordinator"]
//! ```
//!
//! # Remote calls
//!
//! Each trait method of the backend is one remote call: a D1 query or batch
//! (one `batch()`: one round trip, one transaction); a KV get (or one bulk
//! get of up to 100 keys), put, delete or list page; a request to the
//! coordinator. The router's costs per operation follow from that (see
//! `docs/consistency.md`); wrap a database with
//! [`Database::intercepted`] to count them.

mod coordinator;
mod d1;
mod kv;
mod number;
mod protocol;
mod region;
mod shard_coordinator;

pub use coordinator::{CoordinatorAnswer, DurableCoordinator};
pub use d1::{D1Shard, D1_MAX_PARAMETERS, JS_MAX_EXACT_INTEGER};
pub use kv::{KvMappings, DEFAULT_CACHE_TTL_SECONDS, KV_MAX_KEY_BYTES, MIN_CACHE_TTL_SECONDS};
pub use number::parse_f64;
pub use region::{closest_region, region_for, Geo, FALLBACK_REGION};
pub use shard_coordinator::ShardCoordinator;

use wasm_bindgen::JsCast;
use worker::Env;

use crate::backend::Backend;
use crate::backend::{Partitioned, ShardSpec};
use crate::database::{Config, Database};
use crate::error::{Error, Result};
use crate::strategy::ShardLocation;

/// The Cloudflare backend family: [`D1Shard`], [`KvMappings`] and [`DurableCoordinator`].
#[derive(Debug, Clone, Copy)]
pub struct Cloudflare;

impl Backend for Cloudflare {
    type Shard = D1Shard;
    type Mappings = KvMappings;
    type Coordinator = Partitioned<DurableCoordinator>;
}

/// The name of the coordinator object used unless [`Options::coordinator_name`] says otherwise
/// (`idFromName("default")`, as the TypeScript CollegeDB does).
pub const DEFAULT_COORDINATOR_NAME: &str = "default";

/// What to configure when a database needs the coordinator and has none.
const MISSING_COORDINATOR: &str = "declare a Durable Object binding of class `ShardCoordinator` (SQLite storage, under `new_sqlite_classes`) in wrangler.toml and name it with `Options::coordinator(\"COORDINATOR\")`";

/// One D1 shard binding and, for location placement, where it is.
#[derive(Debug, Clone)]
struct ShardBinding {
    binding: String,
    location: Option<ShardLocation>,
}

/// How to open a [`Database<Cloudflare>`] from a Worker's bindings.
///
/// Shard names are the D1 binding names: they are what mappings and the
/// coordinator record, so a binding must keep its name, and new shards are
/// only ever appended (hash placement depends on the order).
///
/// `Options` holds no JavaScript objects, so it can live in a `static` and be
/// opened once per request with [`Options::open`].
#[derive(Debug, Clone)]
pub struct Options {
    shards: Vec<ShardBinding>,
    mappings: Option<String>,
    cache_ttl: u64,
    coordinator: Option<String>,
    coordinator_name: String,
    partitions: usize,
    config: Config,
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// No shards yet, no KV namespace, no coordinator, [`Config::default`].
    pub fn new() -> Self {
        Options {
            shards: Vec::new(),
            mappings: None,
            cache_ttl: DEFAULT_CACHE_TTL_SECONDS,
            coordinator: None,
            coordinator_name: DEFAULT_COORDINATOR_NAME.to_owned(),
            partitions: 1,
            config: Config::default(),
        }
    }

    /// Appends the D1 database bound as `binding` to the shard list.
    pub fn shard(mut self, binding: impl Into<String>) -> Self {
        self.shards.push(ShardBinding {
            binding: binding.into(),
            location: None,
        });
        self
    }

    /// Appends several D1 bindings, in order.
    pub fn shards<I, S>(self, bindings: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        bindings.into_iter().fold(self, Options::shard)
    }

    /// Appends the D1 database bound as `binding`, located at `location` for
    /// [`Strategy::Location`](crate::Strategy::Location).
    pub fn located_shard(mut self, binding: impl Into<String>, location: ShardLocation) -> Self {
        self.shards.push(ShardBinding {
            binding: binding.into(),
            location: Some(location),
        });
        self
    }

    /// The KV namespace binding that holds the mappings (required).
    pub fn mappings(self, kv_binding: impl Into<String>) -> Self {
        Options {
            mappings: Some(kv_binding.into()),
            ..self
        }
    }

    /// The `cacheTtl` of KV reads, in seconds (default
    /// [`DEFAULT_CACHE_TTL_SECONDS`]; values under KV's minimum of
    /// [`MIN_CACHE_TTL_SECONDS`] are raised to it). See [`KvMappings`].
    pub fn kv_cache_ttl(self, seconds: u64) -> Self {
        Options {
            cache_ttl: seconds.max(MIN_CACHE_TTL_SECONDS),
            ..self
        }
    }

    /// The Durable Object namespace binding of the [`ShardCoordinator`].
    ///
    /// Needed by every model with a `#[lookup]` field (its values are
    /// claimed there), by round-robin, random and location placement, and
    /// by a size limit: the coordinator is the strongly consistent authority
    /// for all of them. Hash placement of models without lookups works without it.
    pub fn coordinator(self, do_binding: impl Into<String>) -> Self {
        Options {
            coordinator: Some(do_binding.into()),
            ..self
        }
    }

    /// The name of the coordinator object (`idFromName(name)`), default
    /// [`DEFAULT_COORDINATOR_NAME`]. Databases that share placements must use the same name.
    pub fn coordinator_name(self, name: impl Into<String>) -> Self {
        Options {
            coordinator_name: name.into(),
            ..self
        }
    }

    /// Spreads the claims over `partitions` coordinator objects by the hash
    /// of their key (default 1), so that no single object — about 1,000
    /// requests a second — carries every write. Object `i > 0` is named
    /// `"{name}-{i}"`. Part of the data's layout: choose it once and keep it.
    pub fn coordinator_partitions(self, partitions: usize) -> Self {
        Options {
            partitions: partitions.max(1),
            ..self
        }
    }

    /// Placement, size limit, key hashing and the mapping cache.
    pub fn config(self, config: Config) -> Self {
        Options { config, ..self }
    }

    /// Looks the bindings up in `env` and opens the database. Makes no remote call.
    ///
    /// Fails with [`Error::Config`] when a binding is missing or has the
    /// wrong type, or no KV namespace was given, and with the errors of
    /// [`Database::new`] for an empty or inconsistent shard list, or a
    /// placement that needs a coordinator when none is configured.
    pub fn open(&self, env: &Env) -> Result<Database<Cloudflare>> {
        let mut shards = Vec::with_capacity(self.shards.len());
        for s in &self.shards {
            shards.push(ShardSpec {
                name: s.binding.clone(),
                executor: D1Shard::from_env(env, &s.binding)?,
                location: s.location,
            });
        }
        let kv_binding = self.mappings.as_deref().ok_or_else(|| {
            Error::Config(
                "the Cloudflare backend keeps mappings in Workers KV: name the namespace binding with `.mappings(\"MAPPINGS\")`"
                    .into(),
            )
        })?;
        let mappings = KvMappings::from_env(env, kv_binding)?.cache_ttl(self.cache_ttl);
        let coordinator = match &self.coordinator {
            Some(binding) => {
                let mut parts = Vec::with_capacity(self.partitions);
                for i in 0..self.partitions {
                    let name = match i {
                        0 => self.coordinator_name.clone(),
                        i => format!("{}-{i}", self.coordinator_name),
                    };
                    parts.push(DurableCoordinator::from_env(env, binding, &name)?);
                }
                Some(Partitioned::new(parts))
            }
            None => None,
        };
        Database::new(
            shards,
            mappings,
            coordinator,
            self.config.clone(),
            MISSING_COORDINATOR,
        )
    }
}

/// A binding that is missing or not of the expected kind.
pub(crate) fn binding_error(kind: &str, binding: &str, err: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "no {kind} binding `{binding}` ({err}): declare it in wrangler.toml, with this exact name"
    ))
}

/// The text of a JavaScript error: its message, then the messages of its
/// `cause` chain where they add something (D1 puts SQLite's message in both).
pub(crate) fn js_error_message(value: &wasm_bindgen::JsValue) -> String {
    let mut message = String::new();
    let mut current = value.clone();
    for _ in 0..8 {
        let part = match current.dyn_ref::<js_sys::Error>() {
            Some(err) => String::from(err.message()),
            None => match current.as_string() {
                Some(s) => s,
                None if current.is_null_or_undefined() => break,
                None => format!("{current:?}"),
            },
        };
        if !part.is_empty() && !message.contains(&part) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&part);
        }
        match current.dyn_ref::<js_sys::Error>() {
            Some(err) => current = err.cause(),
            None => break,
        }
    }
    if message.is_empty() {
        message.push_str("unknown JavaScript error");
    }
    message
}

/// The text of a `worker` crate error, keeping the JavaScript message of D1 and KV errors.
pub(crate) fn worker_error_message(err: &worker::Error) -> String {
    match err {
        worker::Error::D1(e) => js_error_message(AsRef::<wasm_bindgen::JsValue>::as_ref(e)),
        worker::Error::UnknownJsError { original, .. } => js_error_message(original),
        worker::Error::Internal(value) => js_error_message(value),
        worker::Error::KvError(worker::KvError::JavaScript(value)) => js_error_message(value),
        other => other.to_string(),
    }
}
