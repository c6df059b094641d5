//! The JSON bodies of the coordinator's HTTP API, shared by the Durable
//! Object ([`ShardCoordinator`](super::ShardCoordinator)) and its client
//! ([`DurableCoordinator`](super::DurableCoordinator)).

use serde::{Deserialize, Serialize};

use crate::strategy::StrategyKind;

/// `POST /allocate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AllocateBody {
    pub primary_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed: Option<String>,
}

/// The answer of `POST /allocate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AllocateReply {
    pub shard: String,
}

/// `POST /release`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReleaseBody {
    pub primary_key: String,
}

/// `POST /count`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CountBody {
    pub shard: String,
    pub delta: i64,
}

/// `POST /shards` and `DELETE /shards`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShardBody {
    pub shard: String,
}

/// `POST /stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SetStatsBody {
    pub shard: String,
    pub count: i64,
}

/// One entry of `GET /stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatsEntry {
    pub shard: String,
    pub count: i64,
    /// Milliseconds since the Unix epoch.
    pub updated: u64,
}

/// `{"success":true}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Success {
    pub success: bool,
}

/// `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorReply {
    pub error: ErrorBody,
}

/// The inside of [`ErrorReply`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub code: String,
    pub message: String,
}
