//! The client of the [`ShardCoordinator`](super::ShardCoordinator) Durable Object.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;
use worker::{web_sys, Env, Headers, Method, ObjectNamespace, Response, Stub};

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
    stub: Stub,
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
        Ok(DurableCoordinator { stub })
    }

    /// The coordinator object called `name` in the Durable Object namespace bound as `binding`.
    pub fn from_env(env: &Env, binding: &str, name: &str) -> Result<Self> {
        let namespace = env
            .durable_object(binding)
            .map_err(|e| binding_error("Durable Object namespace", binding, e))?;
        DurableCoordinator::new(&namespace, name)
    }

    /// The stub, to call any route of the object's HTTP API directly.
    pub fn stub(&self) -> &Stub {
        &self.stub
    }

    /// Sends one request to the object's HTTP API: `path_and_query` (`/shards`),
    /// with `body` as JSON if given. Built on `web_sys` directly: a
    /// `worker::RequestInit` would link the serialization of every `cf` option
    /// (image resizing and the like), which a call to an object never carries.
    pub async fn fetch(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> worker::Result<Response> {
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
        self.stub.fetch_with_request(request.into()).await
    }

    /// Sends one request to the object and decodes its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let fail = |message: String| Error::Coordinator(format!("{method} {path}: {message}"));
        let json = match body {
            Some(body) => Some(serde_json::to_string(body).map_err(|e| fail(e.to_string()))?),
            None => None,
        };
        let text = self.exchange(&method, path, json.as_deref()).await?;
        serde_json::from_str(&text).map_err(|e| fail(format!("unexpected answer {text:?}: {e}")))
    }

    /// The text of a successful answer to `body` at `path`; the untyped part
    /// of [`DurableCoordinator::call`], compiled once for every reply type.
    async fn exchange(&self, method: &Method, path: &str, body: Option<&str>) -> Result<String> {
        let fail = |message: String| Error::Coordinator(format!("{method} {path}: {message}"));
        let mut response = self
            .fetch(method.clone(), path, body)
            .await
            .map_err(|e| fail(worker_error_message(&e)))?;
        let status = response.status_code();
        let text = response
            .text()
            .await
            .map_err(|e| fail(worker_error_message(&e)))?;
        if !(200..300).contains(&status) {
            return Err(fail(match serde_json::from_str::<ErrorReply>(&text) {
                Ok(reply) => format!("{status} {}: {}", reply.error.code, reply.error.message),
                Err(_) => format!("{status}: {text}"),
            }));
        }
        Ok(text)
    }
}

impl Coordinator for DurableCoordinator {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimReply> {
        self.call(Method::Post, "/claim", Some(request)).await
    }

    async fn release(&self, releases: &[Release]) -> Result<()> {
        let _: Released = self.call(Method::Post, "/release", Some(&releases)).await?;
        Ok(())
    }

    async fn holders(&self, keys: &[String]) -> Result<Vec<Option<Holder>>> {
        let holders: Vec<Option<Holder>> = self.call(Method::Post, "/holders", Some(&keys)).await?;
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
