//! The database handle: the public face of the router. Beside it, the
//! methods that run typed queries ([`query`](self::query)) and the raw SQL
//! escape hatches ([`raw`]).

mod query;
mod raw;

pub use raw::{Merge, RawShard, RawShards};

use crate::backend::intercept::{Intercepted, Interceptor, Seen};
use crate::backend::{Backend, ShardSpec};
use crate::directory::{Directory, KeyCodec, MappingCache};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::router::{Rebalanced, Router, SettledTables};
use crate::strategy::{Placement, Strategy};
use crate::value::Value;

/// How a database places and finds keys.
///
/// ```
/// use collegedb::{Config, Region, Strategy, Placement};
///
/// let config = Config::default()
///     .placement(Placement::mixed(Strategy::Hash, Strategy::Location { target: Region::Weur }))
///     .max_shard_bytes(500 * 1024 * 1024)
///     .plain_text_keys();
/// assert!(!config.hashes_keys());
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    placement: Placement,
    max_shard_bytes: Option<u64>,
    keys: KeyCodec,
    cache: Option<MappingCache>,
    fanout: usize,
}

/// Shards asked at once by an operation on every shard: the number of
/// connections a Worker may have open at once.
const DEFAULT_FANOUT: usize = 6;

impl Default for Config {
    /// Hash placement, no size limit, hashed mapping keys, and a private
    /// cache of 10,000 mappings per database.
    fn default() -> Self {
        Config {
            placement: Strategy::Hash.into(),
            max_shard_bytes: None,
            keys: KeyCodec::default(),
            cache: None,
            fanout: DEFAULT_FANOUT,
        }
    }
}

impl Config {
    /// One strategy for reads and writes.
    pub fn strategy(self, strategy: Strategy) -> Self {
        self.placement(strategy.into())
    }

    /// Separate read and write strategies.
    pub fn placement(self, placement: Placement) -> Self {
        Config { placement, ..self }
    }

    /// Shards at or over this size get no new keys (a hash key whose home is
    /// full goes elsewhere, with a claim and a redirect at its home).
    pub fn max_shard_bytes(self, limit: u64) -> Self {
        Config {
            max_shard_bytes: Some(limit),
            ..self
        }
    }

    /// Store mapping keys in plain text (`users/email/a@b.c`) instead of SHA-256 hashed.
    pub fn plain_text_keys(self) -> Self {
        Config {
            keys: KeyCodec::new(false),
            ..self
        }
    }

    /// Share a mapping cache between databases over the same shards (on
    /// Workers: one per isolate). Without it, each database has its own.
    pub fn cache(self, cache: MappingCache) -> Self {
        Config {
            cache: Some(cache),
            ..self
        }
    }

    /// How many shards a query across shards (and `list`, `count`,
    /// `create_schema`) asks at once; the default is 6, the number of
    /// connections a Worker may have open at once. At least 1.
    pub fn fanout_limit(self, shards: usize) -> Self {
        Config {
            fanout: shards.max(1),
            ..self
        }
    }

    /// Whether mapping keys are SHA-256 hashed (the default).
    pub fn hashes_keys(&self) -> bool {
        self.keys.is_hashed()
    }

    /// Whether this configuration needs a coordinator for every key, not
    /// only for lookup values.
    fn claims_every_key(&self) -> bool {
        self.placement.write != Strategy::Hash || self.max_shard_bytes.is_some()
    }
}

/// A sharded database over a backend `B`.
///
/// Build one with a backend's constructor (`collegedb::embedded::Options`, or
/// the Cloudflare backend's), then use the methods the derive generates on
/// your models, or the generic methods below.
pub struct Database<B: Backend> {
    router: Router<B>,
    config: Config,
}

impl<B: Backend> Database<B> {
    /// A database over `shards` (in their stable order: append new shards at the end).
    ///
    /// Fails with [`Error::NoShards`] for an empty list, and with
    /// [`Error::Config`] for duplicate names, a location strategy with no
    /// located shard, or a placement that needs a coordinator (any strategy
    /// but hash, or a size limit) without one; `missing_coordinator` says
    /// how to configure it on this backend.
    pub fn new(
        shards: Vec<ShardSpec<B::Shard>>,
        mappings: B::Mappings,
        coordinator: Option<B::Coordinator>,
        config: Config,
        missing_coordinator: &str,
    ) -> Result<Self> {
        if shards.is_empty() {
            return Err(Error::NoShards);
        }
        for (i, shard) in shards.iter().enumerate() {
            if shards[..i].iter().any(|s| s.name == shard.name) {
                return Err(Error::Config(format!(
                    "shard `{}` is listed twice: shard names must be unique",
                    shard.name
                )));
            }
        }
        let uses_location = [config.placement.read, config.placement.write]
            .iter()
            .any(|s| matches!(s, Strategy::Location { .. }));
        if uses_location && shards.iter().all(|s| s.location.is_none()) {
            return Err(Error::Config(
                "location placement needs at least one shard with a location".into(),
            ));
        }
        if coordinator.is_none() && config.claims_every_key() {
            return Err(Error::Config(format!(
                "{} placement{} keeps a claim for every key at the coordinator, and none is configured: {missing_coordinator}",
                config.placement.write.kind().name(),
                if config.max_shard_bytes.is_some() { " with a size limit" } else { "" },
            )));
        }
        let cache = config.cache.clone().unwrap_or_default();
        let directory = Directory::new(
            mappings,
            coordinator,
            cache,
            config.keys,
            missing_coordinator.to_owned(),
        );
        Ok(Database {
            router: Router {
                shards,
                directory,
                placement: config.placement,
                max_shard_bytes: config.max_shard_bytes,
                fanout: config.fanout,
                settled: SettledTables::default(),
            },
            config,
        })
    }

    /// This database with every backend call seen by `interceptor` (see
    /// [`intercept`](crate::backend::intercept)): same shards, same mapping
    /// store and coordinator, same cache.
    pub fn intercepted<I: Interceptor>(self, interceptor: I) -> Database<Intercepted<B, I>> {
        let Router {
            shards,
            directory,
            placement,
            max_shard_bytes,
            fanout,
            settled,
        } = self.router;
        Database {
            router: Router {
                shards: shards
                    .into_iter()
                    .map(|s| ShardSpec {
                        name: s.name,
                        executor: Seen::new(s.executor, interceptor.clone()),
                        location: s.location,
                    })
                    .collect(),
                directory: directory.intercepted(interceptor),
                placement,
                max_shard_bytes,
                fanout,
                settled,
            },
            config: self.config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shard names, in their stable order.
    pub fn shard_names(&self) -> impl Iterator<Item = &str> {
        self.router.shards.iter().map(|s| s.name.as_str())
    }

    /// The executor of the shard called `name`.
    pub fn shard(&self, name: &str) -> Result<&B::Shard> {
        self.router
            .shard_index(name)
            .map(|i| &self.router.shards[i].executor)
    }

    /// The mapping store (the read-path cache of key → shard).
    pub fn mappings(&self) -> &B::Mappings {
        self.router.directory.store()
    }

    /// The coordinator, if one is configured.
    pub fn coordinator(&self) -> Option<&B::Coordinator> {
        self.router.directory.coordinator()
    }

    /// Creates `M`'s table and its unique lookup indexes, with the router's
    /// own tables, on every shard. Safe to call again; call it again after
    /// appending shards.
    pub async fn create_schema<M: Model>(&self) -> Result<()> {
        self.router.create_schema(M::SCHEMA).await
    }

    /// Inserts a new row: claims for its lookup values (and its primary key,
    /// where its shard cannot be recomputed) first, then the row.
    ///
    /// Fails with [`Error::DuplicateKey`] if the primary key exists and
    /// [`Error::DuplicateAlias`] if a lookup value is taken; either way
    /// nothing of this insert is left behind. Retrying an insert whose
    /// first attempt committed answers `duplicate_key`.
    pub async fn insert<M: Model>(&self, model: &M) -> Result<()> {
        self.router.insert(model).await
    }

    /// The row with primary key `key`, wherever it lives.
    pub async fn get<M: Model>(&self, key: Value) -> Result<Option<M>> {
        self.router.get::<M>(key).await
    }

    /// The row whose lookup column `M::LOOKUPS[lookup]` equals `value`.
    pub async fn find_by<M: Model>(&self, lookup: usize, value: Value) -> Result<Option<M>> {
        self.router.find_by::<M>(lookup, value).await
    }

    /// Replaces the row with `model`'s primary key. New lookup values are
    /// claimed before the row changes; the old values become free (their
    /// claims are proven stale and taken over by the next writer that wants them).
    ///
    /// Fails with [`Error::NotFound`] if the row does not exist, and with
    /// [`Error::RowMoving`] if a rebalance kept it frozen for every retry.
    pub async fn update<M: Model>(&self, model: &M) -> Result<()> {
        self.router.update(model).await
    }

    /// Deletes the row with primary key `key`, then releases its claims.
    /// Returns whether this call deleted a row.
    pub async fn delete<M: Model>(&self, key: Value) -> Result<bool> {
        self.router.delete(M::SCHEMA, key).await
    }

    /// Deletes the row whose lookup column `M::LOOKUPS[lookup]` equals
    /// `value`. Returns whether this call deleted a row.
    pub async fn delete_by<M: Model>(&self, lookup: usize, value: Value) -> Result<bool> {
        self.router.delete_by(M::SCHEMA, lookup, value).await
    }

    /// Every row of `M` on every shard, ordered by primary key.
    pub async fn list<M: Model>(&self) -> Result<Vec<M>> {
        self.router.list::<M>().await
    }

    /// The number of `M` rows on every shard together.
    pub async fn count<M: Model>(&self) -> Result<u64> {
        self.router.count(M::SCHEMA).await
    }

    /// The number of `M` rows stored on each shard, in shard order.
    pub async fn count_per_shard<M: Model>(&self) -> Result<Vec<(String, u64)>> {
        self.router.count_per_shard(M::SCHEMA).await
    }

    /// The name of the shard that holds the row with primary key `key`.
    ///
    /// ```
    /// # #[cfg(feature = "embedded")] {
    /// # use collegedb::{embedded, Sharded};
    /// # #[derive(Sharded)] struct User { #[primary_key] id: String }
    /// # futures::executor::block_on(async {
    /// # let db = embedded::Options::in_memory(2).open()?;
    /// # User::create_schema(&db).await?;
    /// User { id: "u-42".into() }.insert(&db).await?;
    /// let shard = db.shard_of::<User>("u-42".into()).await?;
    /// assert!(shard.is_some());
    /// # Ok::<(), collegedb::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn shard_of<M: Model>(&self, key: Value) -> Result<Option<&str>> {
        self.router.shard_of(M::SCHEMA, key).await
    }

    /// Moves every `M` row that is not at its hash home there, after shards
    /// were appended (hash placement only). Safe to interrupt and run again.
    pub async fn rebalance<M: Model>(&self) -> Result<Rebalanced> {
        self.router.rebalance(M::SCHEMA).await
    }
}
