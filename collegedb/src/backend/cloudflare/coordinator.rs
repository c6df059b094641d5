//! The client of the [`ShardCoordinator`](super::ShardCoordinator) Durable Object.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;
use worker::{Env, Headers, Method, ObjectNamespace, Request, RequestInit, Stub};

use super::protocol::{
    AllocateBody, AllocateReply, CountBody, ErrorReply, ReleaseBody, StatsEntry, Success,
};
use super::{binding_error, worker_error_message};
use crate::backend::{Coordinator, ShardStats};
use crate::error::{Error, Result};
use crate::strategy::AllocationRequest;

/// The origin of requests to the coordinator: a Durable Object stub ignores
/// the host, only the path and method matter.
const ORIGIN: &str = "https://coordinator";

/// A [`Coordinator`] that asks the [`ShardCoordinator`](super::ShardCoordinator)
/// Durable Object, over its HTTP API, one request per call:
///
/// | trait method | request |
/// |---|---|
/// | `allocate` | `POST /allocate {"primaryKey","strategy","candidates","proposed"?}` |
/// | `release` | `POST /release {"primaryKey"}` |
/// | `adjust_count` | `POST /count {"shard","delta"}` |
/// | `stats` | `GET /stats` |
///
/// The object is strongly consistent and single-threaded, so its
/// put-if-absent allocation is the placement authority for every isolate.
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

    /// Sends one request to the object and decodes its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let fail = |message: String| Error::Coordinator(format!("{method} {path}: {message}"));
        let mut init = RequestInit::new();
        init.with_method(method.clone());
        if let Some(body) = body {
            let json = serde_json::to_string(body).map_err(|e| fail(e.to_string()))?;
            let headers = Headers::new();
            headers
                .set("content-type", "application/json")
                .map_err(|e| fail(worker_error_message(&e)))?;
            init.with_headers(headers)
                .with_body(Some(JsValue::from_str(&json)));
        }
        let request = Request::new_with_init(&format!("{ORIGIN}{path}"), &init)
            .map_err(|e| fail(worker_error_message(&e)))?;
        let mut response = self
            .stub
            .fetch_with_request(request)
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
        serde_json::from_str(&text).map_err(|e| fail(format!("unexpected answer {text:?}: {e}")))
    }
}

impl Coordinator for DurableCoordinator {
    async fn allocate(&self, key: &str, request: &AllocationRequest) -> Result<String> {
        let body = AllocateBody {
            primary_key: key.to_owned(),
            strategy: Some(request.strategy),
            candidates: Some(request.candidates.clone()),
            proposed: request.proposed.clone(),
        };
        let reply: AllocateReply = self.call(Method::Post, "/allocate", Some(&body)).await?;
        Ok(reply.shard)
    }

    async fn release(&self, key: &str) -> Result<()> {
        let body = ReleaseBody {
            primary_key: key.to_owned(),
        };
        let _: Success = self.call(Method::Post, "/release", Some(&body)).await?;
        Ok(())
    }

    async fn adjust_count(&self, shard: &str, delta: i64) -> Result<()> {
        let body = CountBody {
            shard: shard.to_owned(),
            delta,
        };
        let _: Success = self.call(Method::Post, "/count", Some(&body)).await?;
        Ok(())
    }

    async fn stats(&self) -> Result<Vec<ShardStats>> {
        let entries: Vec<StatsEntry> = self.call(Method::Get, "/stats", None::<&()>).await?;
        Ok(entries
            .into_iter()
            .map(|e| ShardStats {
                shard: e.shard,
                count: e.count,
                updated_ms: e.updated,
            })
            .collect())
    }
}
