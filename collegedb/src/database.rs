//! The database handle: shards, mapping store, coordinator and configuration.

use crate::backend::{Backend, ShardStats};
use crate::directory::{KeyCodec, MappingCache};
use crate::error::{Error, Result};
use crate::strategy::{Placement, ShardLocation, Strategy};

/// One shard: its stable name, its executor and, for location placement, where it is.
pub struct ShardSpec<S> {
    /// The shard's name, as mappings and the coordinator record it.
    pub name: String,
    /// Runs SQL on it.
    pub executor: S,
    /// Where it lives, for [`Strategy::Location`].
    pub location: Option<ShardLocation>,
}

impl<S> ShardSpec<S> {
    /// A shard with no location.
    pub fn new(name: impl Into<String>, executor: S) -> Self {
        ShardSpec {
            name: name.into(),
            executor,
            location: None,
        }
    }

    /// The same shard, located.
    pub fn located(self, location: ShardLocation) -> Self {
        ShardSpec {
            location: Some(location),
            ..self
        }
    }
}

/// How a database places and finds keys.
///
/// ```
/// use collegedb::{Config, Region, Strategy, Placement};
///
/// let config = Config::default()
///     .placement(Placement::mixed(Strategy::Hash, Strategy::Location { target: Region::Weur }))
///     .max_shard_bytes(500 * 1024 * 1024)
///     .plain_text_keys();
/// assert!(!config.key_codec().is_hashed());
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) placement: Placement,
    pub(crate) max_shard_bytes: Option<u64>,
    pub(crate) keys: KeyCodec,
    pub(crate) cache: MappingCache,
}

impl Default for Config {
    /// Hash placement, no size limit, hashed mapping keys, a private cache of 10,000 mappings.
    fn default() -> Self {
        Config {
            placement: Strategy::Hash.into(),
            max_shard_bytes: None,
            keys: KeyCodec::default(),
            cache: MappingCache::default(),
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

    /// Shards at or over this size get no new keys.
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

    /// Share a mapping cache (on Workers: one per isolate).
    pub fn cache(self, cache: MappingCache) -> Self {
        Config { cache, ..self }
    }

    /// How mapping keys are written.
    pub fn key_codec(&self) -> KeyCodec {
        self.keys
    }
}

/// A sharded database over a backend `B`.
///
/// Build one with a backend's constructor (`collegedb::embedded::Options`, or
/// the Cloudflare backend's), then use the methods the derive generates on
/// your models, or the generic methods below.
pub struct Database<B: Backend> {
    pub(crate) shards: Vec<ShardSpec<B::Shard>>,
    pub(crate) mappings: B::Mappings,
    pub(crate) coordinator: Option<B::Coordinator>,
    pub(crate) config: Config,
}

impl<B: Backend> Database<B> {
    /// A database over `shards` (in their stable order: append new shards at the end).
    ///
    /// Fails with [`Error::NoShards`] for an empty list and [`Error::Config`]
    /// for duplicate names or a location strategy with no located shard.
    pub fn new(
        shards: Vec<ShardSpec<B::Shard>>,
        mappings: B::Mappings,
        coordinator: Option<B::Coordinator>,
        config: Config,
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
        Ok(Database {
            shards,
            mappings,
            coordinator,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shard names, in their stable order.
    pub fn shard_names(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().map(|s| s.name.as_str())
    }

    /// The executor of the shard called `name`.
    pub fn shard(&self, name: &str) -> Result<&B::Shard> {
        self.shard_index(name).map(|i| &self.shards[i].executor)
    }

    pub(crate) fn shard_index(&self, name: &str) -> Result<usize> {
        self.shards
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| Error::UnknownShard {
                shard: name.to_owned(),
            })
    }

    /// The mapping store.
    pub fn mappings(&self) -> &B::Mappings {
        &self.mappings
    }

    /// The coordinator, if one is configured.
    pub fn coordinator(&self) -> Option<&B::Coordinator> {
        self.coordinator.as_ref()
    }

    /// Per-shard key counts kept by the coordinator, one entry per configured
    /// shard (zero where it has none). Without a coordinator, an error.
    pub async fn stats(&self) -> Result<Vec<ShardStats>> {
        use crate::backend::Coordinator as _;
        let coordinator = self.coordinator.as_ref().ok_or_else(|| {
            Error::Config("shard stats are kept by the coordinator, and none is configured".into())
        })?;
        let known = coordinator.stats().await?;
        Ok(self
            .shards
            .iter()
            .map(|s| {
                known
                    .iter()
                    .find(|k| k.shard == s.name)
                    .cloned()
                    .unwrap_or(ShardStats {
                        shard: s.name.clone(),
                        count: 0,
                        updated_ms: 0,
                    })
            })
            .collect())
    }
}
