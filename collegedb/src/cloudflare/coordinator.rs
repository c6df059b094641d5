//! The client of the [`ShardCoordinator`](super::ShardCoordinator) Durable Object.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::DurableObject as RawStub;
use worker::{web_sys, Env, Headers, Method, ObjectNamespace};

use super::protocol::{ErrorReply, Released};
use super::{binding_error, worker_error_message};
use crate::backend::{ClaimReply, ClaimRequest, Coordinator, Holder, Release};
use crate::error::{Error, Result};

/// The origin of requests to the coordinator: a Durable Object stub ignores
/// the host, only the path and method matter.
const ORIGIN: &str = "https://coordinator";

/// A [`Coordinator`] that asks the [`ShardCoordinator`](super::ShardCoordinator)
/// Durable Object, over its HTTP API, one request per call:
///
/// | trait method | request | answer |
/// |---|---|---|
/// | `claim` | `POST /claim` a [`ClaimRequest`] | a [`ClaimReply`] |
/// | `release` | `POST /release` a list of [`Release`] | `{"released":n}` |
/// | `holders` | `POST /holders` a list of keys | a list of [`Holder`] or `null` |
///
/// The object is single-threaded and answers each request in one storage
/// transaction, so it is the one strongly consistent authority for claims
/// across every isolate.
#[derive(Debug)]
pub struct DurableCoordinator {
    /// The stub as wasm-bindgen sees it: `worker::Stub` answers with a
    /// `worker::Response`, whose body is read through a Rust stream adapter.
    stub: RawStub,
}

/// An answer of the coordinator, read whole (see [`DurableCoordinator::fetch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `content-type` header, if the answer has one.
    pub content_type: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl DurableCoordinator {
    /// The coordinator object called `name` (`idFromName(name)`) in `namespace`.
    pub fn new(namespace: &ObjectNamespace, name: &str) -> Result<Self> {
        let stub = namespace
            .id_from_name(name)
            .and_then(|id| id.get_stub())
            .map_err(|e| {
                Error::Coordinator(format!(
                    "cannot reach coordinator object `{name}`: {}",
                    worker_error_message(&e)
                ))
            })?;
        Ok(DurableCoordinator {
            stub: stub.into_rpc(),
        })
    }

    /// The coordinator object called `name` in the Durable Object namespace bound as `binding`.
    pub fn from_env(env: &Env, binding: &str, name: &str) -> Result<Self> {
        let namespace = env
            .durable_object(binding)
            .map_err(|e| binding_error("Durable Object namespace", binding, e))?;
        DurableCoordinator::new(&namespace, name)
    }

    /// Sends one request to the object's HTTP API: `path_and_query` (`/shards`),
    /// with `body` as JSON if given, and reads the answer whole. Built on
    /// `web_sys` directly: a `worker::RequestInit` would link the
    /// serialization of every `cf` option (image resizing and the like), which
    /// a call to an object never carries, and `worker::Response::text` a
    /// stream reader where the runtime's own `text()` does.
    pub async fn fetch(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> worker::Result<CoordinatorAnswer> {
        let init = web_sys::RequestInit::new();
        init.set_method(method.as_ref());
        if let Some(body) = body {
            let headers = Headers::new();
            headers.set("content-type", "application/json")?;
            init.set_headers(headers.as_ref());
            init.set_body(&JsValue::from_str(body));
        }
        let request =
            web_sys::Request::new_with_str_and_init(&format!("{ORIGIN}{path_and_query}"), &init)?;
        let response: web_sys::Response = JsFuture::from(self.stub.fetch_with_request(&request)?)
            .await?
            .dyn_into()?;
        let content_type = response.headers().get("content-type")?;
        let body = JsFuture::from(response.text()?)
            .await?
            .as_string()
            .unwrap_or_default();
        Ok(CoordinatorAnswer {
            status: response.status(),
            content_type,
            body,
        })
    }

    /// Posts `body` to `path` as JSON and decodes the JSON answer.
    async fn call<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let json = serde_json::to_string(body).map_err(|e| failure(path, e.to_string()))?;
        let text = self.exchange(path, &json).await?;
        serde_json::from_str(&text).map_err(|e| unexpected(path, &text, e))
    }

    /// The text of a successful answer to `body` posted to `path`; the
    /// untyped part of [`DurableCoordinator::call`], compiled once for every
    /// reply type.
    async fn exchange(&self, path: &str, body: &str) -> Result<String> {
        let CoordinatorAnswer {
            status, body: text, ..
        } = self
            .fetch(Method::Post, path, Some(body))
            .await
            .map_err(|e| failure(path, worker_error_message(&e)))?;
        if !(200..300).contains(&status) {
            return Err(failure(
                path,
                match serde_json::from_str::<ErrorReply>(&text) {
                    Ok(reply) => format!("{status} {}: {}", reply.error.code, reply.error.message),
                    Err(_) => format!("{status}: {text}"),
                },
            ));
        }
        Ok(text)
    }
}

/// A failed call to `path`.
fn failure(path: &str, message: String) -> Error {
    Error::Coordinator(format!("POST {path}: {message}"))
}

/// An answer to `path` that is not the JSON expected; not generic, so that
/// the message is compiled once for every reply type.
fn unexpected(path: &str, text: &str, err: serde_json::Error) -> Error {
    failure(path, format!("unexpected answer {text:?}: {err}"))
}

impl Coordinator for DurableCoordinator {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimReply> {
        self.call("/claim", request).await
    }

    async fn release(&self, releases: &[Release]) -> Result<()> {
        let _: Released = self.call("/release", &releases).await?;
        Ok(())
    }

    async fn holders(&self, keys: &[String]) -> Result<Vec<Option<Holder>>> {
        let holders: Vec<Option<Holder>> = self.call("/holders", &keys).await?;
        if holders.len() != keys.len() {
            return Err(Error::Coordinator(format!(
                "POST /holders: asked for {} keys, got {} answers",
                keys.len(),
                holders.len()
            )));
        }
        Ok(holders)
    }
}
