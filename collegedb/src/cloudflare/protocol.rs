//! The JSON bodies of the coordinator's HTTP API that are not claim types,
//! shared by the Durable Object ([`ShardCoordinator`](super::ShardCoordinator))
//! and its client ([`DurableCoordinator`](super::DurableCoordinator)).
//!
//! The claim routes carry the types of [`crate::backend::claims`] as they
//! serialize: [`ClaimRequest`](crate::backend::ClaimRequest) →
//! [`ClaimReply`](crate::backend::ClaimReply), a list of
//! [`Release`](crate::backend::Release), a list of keys → a list of
//! optional [`Holder`](crate::backend::Holder)s.

use serde::{Deserialize, Serialize};

/// `POST /shards` and `DELETE /shards`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShardBody {
    pub shard: String,
}

/// The answer of `POST /release`: how many of the claims were still held
/// by the given owner and incarnation, and so removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Released {
    pub released: u64,
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
