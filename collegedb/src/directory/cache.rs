//! The in-process read-through cache of mappings.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

/// A bounded LRU cache of mapping key → shard, shared by clones.
///
/// On Workers, keep one for the isolate (a `static`) and hand it to each
/// request's database, so mappings learnt by one request serve the next.
#[derive(Clone, Debug)]
pub struct MappingCache {
    inner: Arc<Mutex<LruCache<String, String>>>,
}

impl MappingCache {
    /// A cache holding at most `capacity` mappings (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        MappingCache {
            inner: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, String>> {
        // A panic while holding the lock leaves a cache that is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached shard of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key).cloned()
    }

    /// Remembers the shard of `key`.
    pub fn put(&self, key: &str, shard: &str) {
        self.lock().put(key.to_owned(), shard.to_owned());
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
