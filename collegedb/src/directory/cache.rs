//! The in-process read-through cache of mappings.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;
use lru::LruCache;

use super::keys::Digest;
use crate::platform::random_u64;

/// Keys are hashed with foldhash, several times cheaper than std's SipHash
/// on mapping keys. They derive from user input (emails), so each cache
/// takes its own random seed rather than a fixed one.
type Cache<V> = LruCache<String, V, SeedableRandomState>;

/// A bounded LRU cache of mapping key → shard, shared by clones.
///
/// It also remembers the hashed mapping keys of recent plain keys, so a
/// read that hits the cache computes no SHA-256.
///
/// On Workers, keep one for the isolate (a `static`) and hand it to each
/// request's database, so mappings learnt by one request serve the next.
#[derive(Clone, Debug)]
pub struct MappingCache {
    inner: Arc<Mutex<Caches>>,
    capacity: NonZeroUsize,
}

#[derive(Debug)]
struct Caches {
    /// Mapping key → shard.
    shards: Cache<String>,
    /// Plain key → the digest in its hashed mapping key: a pure function's
    /// results, never stale.
    digests: Cache<Digest>,
}

impl MappingCache {
    /// A cache holding at most `capacity` mappings (at least one), and as
    /// many hashed keys.
    ///
    /// It grows as mappings arrive: `LruCache::new` would allocate for the
    /// whole capacity up front, on every database opened per request.
    pub fn new(capacity: usize) -> Self {
        let hasher = SeedableRandomState::with_seed(random_u64(), SharedSeed::global_random());
        MappingCache {
            inner: Arc::new(Mutex::new(Caches {
                shards: LruCache::unbounded_with_hasher(hasher.clone()),
                digests: LruCache::unbounded_with_hasher(hasher),
            })),
            capacity: NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Caches> {
        // A panic while holding the lock leaves a cache that is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached shard of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().shards.get(key).cloned()
    }

    /// `read` of the cached shard of `key`, without copying it.
    pub(crate) fn get_with<R>(&self, key: &str, read: impl FnOnce(&str) -> R) -> Option<R> {
        self.lock().shards.get(key).map(|shard| read(shard))
    }

    /// Remembers the shard of `key`.
    pub fn put(&self, key: &str, shard: &str) {
        self.put_owned(key.to_owned(), shard.to_owned());
    }

    /// [`MappingCache::put`] without copying.
    pub(crate) fn put_owned(&self, key: String, shard: String) {
        let capacity = self.capacity.get();
        put_bounded(&mut self.lock().shards, key, shard, capacity);
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &str) {
        self.lock().shards.pop(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut caches = self.lock();
        caches.shards.clear();
        caches.digests.clear();
    }

    /// The digest of the plain key `plain`, if remembered.
    pub(crate) fn digest(&self, plain: &str) -> Option<Digest> {
        self.lock().digests.get(plain).copied()
    }

    /// Remembers the digest of the plain key `plain`.
    pub(crate) fn put_digest(&self, plain: String, digest: Digest) {
        let capacity = self.capacity.get();
        put_bounded(&mut self.lock().digests, plain, digest, capacity);
    }
}

fn put_bounded<V>(cache: &mut Cache<V>, key: String, value: V, capacity: usize) {
    cache.put(key, value);
    if cache.len() > capacity {
        cache.pop_lru();
    }
}

impl Default for MappingCache {
    fn default() -> Self {
        MappingCache::new(10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_mapping_goes_first() {
        let cache = MappingCache::new(2);
        cache.put("a", "s0");
        cache.put("b", "s1");
        assert_eq!(cache.get("a").as_deref(), Some("s0"));
        cache.put("c", "s2");
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.get("a").as_deref(), Some("s0"));
        assert_eq!(cache.get("c").as_deref(), Some("s2"));
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn hashed_keys_are_bounded_apart_from_mappings() {
        let cache = MappingCache::new(1);
        cache.put("k1", "s0");
        cache.put_digest("t/c/a".into(), [b'a'; 64]);
        assert_eq!(cache.digest("t/c/a"), Some([b'a'; 64]));
        assert_eq!(cache.get_with("k1", str::len), Some(2));
        cache.put_digest("t/c/b".into(), [b'b'; 64]);
        assert_eq!(cache.digest("t/c/a"), None);
        assert_eq!(cache.get("k1").as_deref(), Some("s0"));
        cache.clear();
        assert_eq!(cache.digest("t/c/b"), None);
    }
}
