//! Mappings in Workers KV.

use js_sys::{Array, Function, Map, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Env;

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
///   as one operation; more than 100 keys take one bulk read per 100, one
///   after another. Reads pass `cacheTtl` (see [`DEFAULT_CACHE_TTL_SECONDS`]).
/// - [`list`](MappingStore::list) pages with KV's cursor, 1,000 keys a page.
/// - Keys are at most [`KV_MAX_KEY_BYTES`] bytes.
///
/// KV is eventually consistent: a write can take 60 s or more to be seen in
/// other locations. The router is built for that (it verifies every mapping
/// against the shard, and places non-recomputable keys through the
/// coordinator), so this store does nothing to hide it.
///
/// The namespace's JavaScript methods are called directly: `worker::KvStore`
/// passes options and reads answers through serde-wasm-bindgen, which a
/// handful of strings and numbers do not need.
#[derive(Debug, Clone)]
pub struct KvMappings {
    namespace: Object,
    cache_ttl: u64,
}

fn kv_error(err: JsValue) -> Error {
    Error::MappingStore(js_error_message(&err))
}

impl KvMappings {
    /// Mappings in `namespace` (the JavaScript `KVNamespace` object of a
    /// binding), read with the default `cacheTtl`.
    pub fn new(namespace: Object) -> Self {
        KvMappings {
            namespace,
            cache_ttl: DEFAULT_CACHE_TTL_SECONDS,
        }
    }

    /// Mappings in the KV namespace bound as `binding`.
    pub fn from_env(env: &Env, binding: &str) -> Result<Self> {
        // `Env::kv` checks the binding (and words the errors); the namespace
        // itself is the binding's value.
        env.kv(binding)
            .map_err(|e| binding_error("KV namespace", binding, e))?;
        let namespace = Reflect::get(env, &JsValue::from_str(binding))
            .map_err(|e| binding_error("KV namespace", binding, js_error_message(&e)))?;
        Ok(KvMappings::new(namespace.unchecked_into()))
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
    pub fn namespace(&self) -> &Object {
        &self.namespace
    }

    /// Calls the namespace's method `name` with `args` and awaits its promise.
    async fn call(&self, name: &str, args: &[JsValue]) -> Result<JsValue> {
        let method: Function = Reflect::get(&self.namespace, &JsValue::from_str(name))
            .and_then(JsCast::dyn_into)
            .map_err(kv_error)?;
        let args: Array = args.iter().collect();
        let promise: Promise = method
            .apply(&self.namespace, &args)
            .and_then(JsCast::dyn_into)
            .map_err(kv_error)?;
        JsFuture::from(promise).await.map_err(kv_error)
    }

    /// The options of a read: `{cacheTtl, type: "text"}`.
    fn read_options(&self) -> Object {
        options(&[
            ("cacheTtl", JsValue::from_f64(self.cache_ttl as f64)),
            ("type", JsValue::from_str("text")),
        ])
    }

    async fn bulk(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let names: Array = keys.iter().map(|k| JsValue::from_str(k)).collect();
        let found: Map = self
            .call("get", &[names.into(), self.read_options().into()])
            .await?
            .unchecked_into();
        Ok(keys
            .iter()
            .map(|k| found.get(&JsValue::from_str(k)).as_string())
            .collect())
    }
}

/// An options object with these properties.
fn options(properties: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (name, value) in properties {
        // Setting a property of a fresh plain object cannot throw.
        let _ = Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object
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
                    .call("get", &[key.into(), self.read_options().into()])
                    .await?;
                Ok(vec![value.as_string()])
            }
            _ => {
                // One bulk read after another: running them at once would
                // compile a `TryJoinAll` (about 1.4 KB gzip) for what is
                // rare, more than 100 mappings read by one operation.
                let mut values = Vec::with_capacity(keys.len());
                for chunk in keys.chunks(BULK_GET_MAX_KEYS) {
                    values.extend(self.bulk(chunk).await?);
                }
                Ok(values)
            }
        }
    }

    async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.call("put", &[key.into(), value.into()])
            .await
            .map(drop)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.call("delete", &[key.into()]).await.map(drop)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage> {
        let mut properties = vec![
            ("limit", JsValue::from_f64(LIST_PAGE as f64)),
            ("prefix", JsValue::from_str(prefix)),
        ];
        if let Some(cursor) = cursor {
            properties.push(("cursor", JsValue::from_str(cursor)));
        }
        let page = self.call("list", &[options(&properties).into()]).await?;
        let field = |name: &str| Reflect::get(&page, &JsValue::from_str(name)).map_err(kv_error);
        let listed = field("keys")?
            .dyn_into::<Array>()
            .map_err(|_| Error::MappingStore("KV list() answered without a key array".into()))?;
        let mut keys = Vec::with_capacity(listed.length() as usize);
        for key in listed.iter() {
            let name = Reflect::get(&key, &JsValue::from_str("name")).ok();
            keys.push(name.and_then(|name| name.as_string()).ok_or_else(|| {
                Error::MappingStore("KV list() answered a key without a name".into())
            })?);
        }
        let complete = field("list_complete")?.as_bool().unwrap_or(true);
        Ok(KeyPage {
            keys,
            cursor: if complete {
                None
            } else {
                field("cursor")?.as_string().filter(|c| !c.is_empty())
            },
        })
    }
}
