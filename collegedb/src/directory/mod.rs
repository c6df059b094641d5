//! The directory: where keys live, behind four verbs.
//!
//! - [`Directory::resolve`]: the read path — the in-process cache, then the
//!   mapping store (KV), which may lag and is never trusted without checking
//!   the row it points to;
//! - [`Directory::claim`] / [`Directory::release`]: the coordinator, the one
//!   strongly consistent authority for lookup values and for primary keys
//!   whose shard cannot be recomputed;
//! - [`Directory::publish`] / [`Directory::forget`]: keeping the read path warm.
//!
//! The failure policy lives here, once: the coordinator is authoritative, so
//! its errors fail the operation; the cache and the mapping store are
//! advisory, so their failures are logged and the operation goes on (a read
//! falls through to the coordinator or the shards, a write has already been
//! decided by the coordinator and the shard).

pub mod cache;
pub(crate) mod keys;
pub(crate) mod record;

pub use cache::MappingCache;
pub(crate) use keys::KeyCodec;
pub(crate) use record::MappingRecord;

use futures::future::join_all;

use crate::backend::calls::{self, Service};
use crate::backend::intercept::{Intercepted, Interceptor, Seen};
use crate::backend::{
    Backend, ClaimReply, ClaimRequest, Coordinator, Holder, MappingStore, Release,
};
use crate::error::{Error, Result};
use crate::value::Value;

/// Mapping keys, the read-path cache and store, and the claims authority.
pub(crate) struct Directory<B: Backend> {
    store: B::Mappings,
    coordinator: Option<B::Coordinator>,
    cache: MappingCache,
    codec: KeyCodec,
    /// What to tell a user whose configuration needs a coordinator it lacks.
    missing_coordinator: String,
}

impl<B: Backend> Directory<B> {
    pub(crate) fn new(
        store: B::Mappings,
        coordinator: Option<B::Coordinator>,
        cache: MappingCache,
        codec: KeyCodec,
        missing_coordinator: String,
    ) -> Self {
        Directory {
            store,
            coordinator,
            cache,
            codec,
            missing_coordinator,
        }
    }

    /// The same directory with every mapping-store and coordinator call seen by `interceptor`.
    pub(crate) fn intercepted<I: Interceptor>(
        self,
        interceptor: I,
    ) -> Directory<Intercepted<B, I>> {
        Directory {
            store: Seen::new(self.store, interceptor.clone()),
            coordinator: self.coordinator.map(|c| Seen::new(c, interceptor)),
            cache: self.cache,
            codec: self.codec,
            missing_coordinator: self.missing_coordinator,
        }
    }

    pub(crate) fn store(&self) -> &B::Mappings {
        &self.store
    }

    pub(crate) fn coordinator(&self) -> Option<&B::Coordinator> {
        self.coordinator.as_ref()
    }

    /// The coordinator, or the configuration error that names the missing binding.
    pub(crate) fn authority(&self) -> Result<&B::Coordinator> {
        self.coordinator
            .as_ref()
            .ok_or_else(|| Error::Config(self.missing_coordinator.clone()))
    }

    /// Refuses a use that needs claims when there is no coordinator.
    pub(crate) fn require_authority(&self, why: &str) -> Result<()> {
        self.authority()
            .map(drop)
            .map_err(|_| Error::Config(format!("{why}: {}", self.missing_coordinator)))
    }

    /// The mapping key of `value` in `table.column`.
    pub(crate) fn key(
        &self,
        table: &'static str,
        column: &'static str,
        value: &Value,
    ) -> Result<String> {
        self.codec
            .key(table, column, value, self.store.max_key_len())
    }

    /// [`Directory::key`] for a read: a hashed key the process cache
    /// remembers is not hashed again.
    pub(crate) fn read_key(
        &self,
        table: &'static str,
        column: &'static str,
        value: &Value,
    ) -> Result<String> {
        if !self.codec.is_hashed() {
            return self.key(table, column, value);
        }
        let plain = KeyCodec::plain(table, column, value);
        let digest = match self.cache.digest(&plain) {
            Some(digest) => digest,
            None => {
                let digest = KeyCodec::digest(&plain);
                self.cache.put_digest(plain, digest);
                digest
            }
        };
        let key = KeyCodec::hashed(table, &digest);
        KeyCodec::check(table, column, key, self.store.max_key_len())
    }

    /// The cached shard of `key`.
    pub(crate) fn cached(&self, key: &str) -> Option<String> {
        self.cache.get(key)
    }

    /// `read` of the cached shard of `key`, without copying it.
    pub(crate) fn cached_with<R>(&self, key: &str, read: impl FnOnce(&str) -> R) -> Option<R> {
        self.cache.get_with(key, read)
    }

    /// Remembers in process that `key` lives on `shard`.
    pub(crate) fn remember(&self, key: String, shard: String) {
        self.cache.put_owned(key, shard);
    }

    /// Drops `key` from the process cache (after it pointed to the wrong shard).
    pub(crate) fn unlearn(&self, key: &str) {
        self.cache.remove(key);
    }

    /// The read path: the shard in the mapping store's record of `key`, if
    /// it has a readable one.
    pub(crate) async fn resolve(&self, key: &String) -> Option<String> {
        calls::count(Service::Mappings);
        match self.store.get_many(std::slice::from_ref(key)).await {
            Ok(found) => match found.into_iter().next().flatten() {
                Some(json) => match MappingRecord::shard_of(key, &json) {
                    Ok(shard) => Some(shard),
                    Err(err) => {
                        tracing::warn!(error = %err, "ignoring a corrupt mapping record");
                        None
                    }
                },
                None => None,
            },
            Err(err) => {
                tracing::warn!(error = %err, "mapping store unavailable; asking the authority");
                None
            }
        }
    }

    /// The authority's holders of `keys`.
    pub(crate) async fn holders(&self, keys: &[String]) -> Result<Vec<Option<Holder>>> {
        let authority = self.authority()?;
        calls::count(Service::Coordinator);
        authority.holders(keys).await
    }

    /// Takes claims (all or none).
    pub(crate) async fn claim(&self, request: &ClaimRequest) -> Result<ClaimReply> {
        let authority = self.authority()?;
        calls::count(Service::Coordinator);
        authority.claim(request).await
    }

    /// Compare-and-deletes claims and forgets their read-path records.
    /// Advisory: a claim left behind is harmless (it is taken over once its
    /// row is proven not to hold it), so a failure is logged, not returned.
    pub(crate) async fn release(&self, releases: Vec<Release>) {
        if releases.is_empty() {
            return;
        }
        let keys: Vec<String> = releases.iter().map(|r| r.key.clone()).collect();
        let released = async {
            match self.authority() {
                Ok(coordinator) => {
                    calls::count(Service::Coordinator);
                    coordinator.release(&releases).await
                }
                Err(err) => Err(err),
            }
        };
        let (released, ()) = futures::join!(released, self.forget(&keys));
        if let Err(err) = released {
            tracing::warn!(error = %err, "could not release claims; they will be taken over when needed");
        }
    }

    /// Writes read-path records, all at once. Advisory.
    pub(crate) async fn publish(&self, records: &[(String, MappingRecord)]) {
        for (key, record) in records {
            self.cache.put(key, &record.shard);
        }
        let json: Vec<String> = records.iter().map(|(_, record)| record.to_json()).collect();
        let puts = join_all(records.iter().zip(&json).map(|((key, _), json)| {
            calls::count(Service::Mappings);
            self.store.put(key, json)
        }))
        .await;
        for err in puts.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %err, "could not write a read-path mapping");
        }
    }

    /// Removes read-path records, all at once. Advisory.
    pub(crate) async fn forget(&self, keys: &[String]) {
        for key in keys {
            self.cache.remove(key);
        }
        let deletes = join_all(keys.iter().map(|key| {
            calls::count(Service::Mappings);
            self.store.delete(key)
        }))
        .await;
        for err in deletes.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %err, "could not remove a read-path mapping; reads check rows and will ignore it");
        }
    }
}
