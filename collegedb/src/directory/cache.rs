//! The in-process read-through cache of mappings.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;
use lru::LruCache;

use crate::platform::random_u64;

/// Keys are hashed with foldhash, several times cheaper than std's SipHash
/// on mapping keys. They derive from user input (emails), so each cache
/// takes its own random seed rather than a fixed one.
type Cache = LruCache<String, String, SeedableRandomState>;

/// A bounded LRU cache of mapping key → shard, shared by clones.
///
/// On Workers, keep one for the isolate (a `static`) and hand it to each
/// request's database, so mappings learnt by one request serve the next.
#[derive(Clone, Debug)]
pub struct MappingCache {
    inner: Arc<Mutex<Cache>>,
    capacity: NonZeroUsize,
}

impl MappingCache {
    /// A cache holding at most `capacity` mappings (at least one).
    ///
    /// It grows as mappings arrive: `LruCache::new` would allocate for the
    /// whole capacity up front, on every database opened per request.
    pub fn new(capacity: usize) -> Self {
        MappingCache {
            inner: Arc::new(Mutex::new(LruCache::unbounded_with_hasher(
                SeedableRandomState::with_seed(random_u64(), SharedSeed::global_random()),
            ))),
            capacity: NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves a cache that is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached shard of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key).cloned()
    }

    /// Remembers the shard of `key`.
    pub fn put(&self, key: &str, shard: &str) {
        let mut cache = self.lock();
        cache.put(key.to_owned(), shard.to_owned());
        if cache.len() > self.capacity.get() {
            cache.pop_lru();
        }
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &str) {
        self.lock().pop(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
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
}
