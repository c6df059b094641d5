//! Mappings in Workers KV.

use futures::future::try_join_all;
use worker::{Env, KvError, KvStore};

use super::{binding_error, js_error_message};
use crate::backend::{KeyPage, MappingStore};
use crate::error::{Error, Result};

/// KV's longest key, in bytes.
pub const KV_MAX_KEY_BYTES: usize = 512;

/// KV's smallest accepted `cacheTtl`, in seconds.
pub const MIN_CACHE_TTL_SECONDS: u64 = 30;

/// The `cacheTtl` of mapping reads unless configured: KV's minimum.
///
/// `cacheTtl` is how long a read result (a miss included) may be served from
/// the edge cache of the location that read it. The router never trusts a
/// mapping without checking the row on the shard, and never decides a
/// placement from a miss, so a stale entry costs at most an extra probe; but
/// a shorter time makes mappings written elsewhere visible sooner, which
/// matters more here than the latency of cold reads, so the minimum is used.
pub const DEFAULT_CACHE_TTL_SECONDS: u64 = MIN_CACHE_TTL_SECONDS;

/// Keys per KV bulk read.
const BULK_GET_MAX_KEYS: usize = 100;

/// Keys per page of [`MappingStore::list`] (KV's maximum).
const LIST_PAGE: u64 = 1000;

/// A [`MappingStore`] over a Workers KV namespace.
///
/// - [`get_many`](MappingStore::get_many) reads one key with a plain `get`,
///   and several keys with KV's bulk `get(keys[])`, which reads up to 100 keys
///   as one operation; more than 100 keys take one bulk read per 100, run
///   concurrently. Reads pass `cacheTtl` (see [`DEFAULT_CACHE_TTL_SECONDS`]).
/// - [`list`](MappingStore::list) pages with KV's cursor, 1,000 keys a page.
/// - Keys are at most [`KV_MAX_KEY_BYTES`] bytes.
///
/// KV is eventually consistent: a write can take 60 s or more to be seen in
/// other locations. The router is built for that (it verifies every mapping
/// against the shard, and places non-recomputable keys through the
/// coordinator), so this store does nothing to hide it.
#[derive(Debug, Clone)]
pub struct KvMappings {
    store: KvStore,
    cache_ttl: u64,
}

fn kv_error(err: KvError) -> Error {
    Error::MappingStore(match err {
        KvError::JavaScript(value) => js_error_message(&value),
        other => other.to_string(),
    })
}

impl KvMappings {
    /// Mappings in `store`, read with the default `cacheTtl`.
    pub fn new(store: KvStore) -> Self {
        KvMappings {
            store,
            cache_ttl: DEFAULT_CACHE_TTL_SECONDS,
        }
    }

    /// Mappings in the KV namespace bound as `binding`.
    pub fn from_env(env: &Env, binding: &str) -> Result<Self> {
        env.kv(binding)
            .map(KvMappings::new)
            .map_err(|e| binding_error("KV namespace", binding, e))
    }

    /// The same store with reads cached for `seconds` (at least [`MIN_CACHE_TTL_SECONDS`]).
    pub fn cache_ttl(self, seconds: u64) -> Self {
        KvMappings {
            cache_ttl: seconds.max(MIN_CACHE_TTL_SECONDS),
            ..self
        }
    }

    /// The `cacheTtl` of reads, in seconds.
    pub fn cache_ttl_seconds(&self) -> u64 {
        self.cache_ttl
    }

    /// The KV namespace.
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    async fn bulk(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let found = self
            .store
            .get_bulk(keys)
            .cache_ttl(self.cache_ttl)
            .text()
            .await
            .map_err(kv_error)?;
        Ok(keys
            .iter()
            .map(|k| found.get(k).cloned().flatten())
            .collect())
    }
}

impl MappingStore for KvMappings {
    fn max_key_len(&self) -> usize {
        KV_MAX_KEY_BYTES
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        match keys {
            [] => Ok(Vec::new()),
            [key] => {
                let value = self
                    .store
                    .get(key)
                    .cache_ttl(self.cache_ttl)
                    .text()
                    .await
                    .map_err(kv_error)?;
                Ok(vec![value])
            }
            _ => {
                let pages =
                    try_join_all(keys.chunks(BULK_GET_MAX_KEYS).map(|chunk| self.bulk(chunk)))
                        .await?;
                Ok(pages.into_iter().flatten().collect())
            }
        }
    }

    async fn put(&self, key: &str, value: &str) -> Result<()> {
        // As bytes: `put(key, &str)` goes through serde and links the float
        // formatter for values that look like numbers. KV stores bytes
        // either way, and `get` reads them back as the same text.
        self.store
            .put_bytes(key, value.as_bytes())
            .map_err(kv_error)?
            .execute()
            .await
            .map_err(kv_error)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(key).await.map_err(kv_error)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage> {
        let mut request = self.store.list().prefix(prefix.to_owned()).limit(LIST_PAGE);
        if let Some(cursor) = cursor {
            request = request.cursor(cursor.to_owned());
        }
        let page = request.execute().await.map_err(kv_error)?;
        Ok(KeyPage {
            keys: page.keys.into_iter().map(|k| k.name).collect(),
            cursor: if page.list_complete {
                None
            } else {
                page.cursor.filter(|c| !c.is_empty())
            },
        })
    }
}
