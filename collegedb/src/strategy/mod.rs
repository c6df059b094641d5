//! Placement strategies: where a new key goes, and where a read of an
//! unmapped key looks first.
//!
//! | strategy | new keys go to | recomputable? |
//! |---|---|---|
//! | [`Strategy::Hash`] | the key's jump-hash home | yes: no mapping is written |
//! | [`Strategy::RoundRobin`] | the next shard in turn | no: the coordinator places it |
//! | [`Strategy::Random`] | a random shard | no: the coordinator places it |
//! | [`Strategy::Location`] | the shard nearest a region | no: the coordinator places it |
//!
//! A [`Placement`] pairs a write strategy (placement of new keys) with a read
//! strategy (where a read of a key with no mapping looks first, before the
//! router probes the other shards). Reads never place keys.

pub(crate) mod hash;
pub(crate) mod location;
pub(crate) mod random;
pub(crate) mod round_robin;

pub use location::{Region, ShardLocation};

use crate::error::{Error, Result};

/// How keys are placed on shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Jump consistent hash of the key over the shard order.
    Hash,
    /// Shards in turn, with the counter kept by the coordinator.
    RoundRobin,
    /// A uniformly random shard.
    Random,
    /// The shard nearest `target`: by great-circle distance between region
    /// centres in 500 km bands, then by the shard's priority, then by the key's hash.
    Location {
        /// The region new keys should be near.
        target: Region,
    },
}

impl Strategy {
    /// The strategy's wire name.
    pub fn kind(self) -> StrategyKind {
        match self {
            Strategy::Hash => StrategyKind::Hash,
            Strategy::RoundRobin => StrategyKind::RoundRobin,
            Strategy::Random => StrategyKind::Random,
            Strategy::Location { .. } => StrategyKind::Location,
        }
    }

    /// Whether the placement can be recomputed from the key and the shard list alone.
    pub fn is_deterministic(self) -> bool {
        matches!(self, Strategy::Hash)
    }
}

/// A strategy's name, as the coordinator's HTTP API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// `"hash"`
    Hash,
    /// `"round-robin"`
    RoundRobin,
    /// `"random"`
    Random,
    /// `"location"`
    Location,
}

impl StrategyKind {
    /// The name, as the coordinator's HTTP API and the tracing spans spell it.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Hash => "hash",
            StrategyKind::RoundRobin => "round-robin",
            StrategyKind::Random => "random",
            StrategyKind::Location => "location",
        }
    }
}

/// The read and write strategies of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Where a read of a key with no mapping looks first.
    pub read: Strategy,
    /// Where new keys go.
    pub write: Strategy,
}

impl Placement {
    /// A mixed placement: `write` places new keys, `read` orders the search for unmapped keys.
    pub fn mixed(read: Strategy, write: Strategy) -> Self {
        Placement { read, write }
    }
}

impl From<Strategy> for Placement {
    fn from(strategy: Strategy) -> Self {
        Placement {
            read: strategy,
            write: strategy,
        }
    }
}

/// What a router asks a coordinator for when it places a new key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationRequest {
    /// The strategy to place by when the router made no proposal.
    pub strategy: StrategyKind,
    /// The shards that may take new keys, in the stable shard order.
    pub candidates: Vec<String>,
    /// The router's own choice (random, location), taken unless the key is already placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed: Option<String>,
}

/// Decides the shard for a new key, as every coordinator does: the router's
/// proposal (random, location) if it made one, else the next round-robin
/// ticket. Hash placement never gets here: the router computes it.
///
/// `ticket` is called only for round-robin and must return the next value of
/// a counter the coordinator keeps.
pub(crate) fn decide(
    request: &AllocationRequest,
    ticket: impl FnOnce() -> Result<u64>,
) -> Result<String> {
    if request.candidates.is_empty() {
        return Err(Error::NoShards);
    }
    if let Some(proposed) = &request.proposed {
        return if request.candidates.contains(proposed) {
            Ok(proposed.clone())
        } else {
            Err(Error::UnknownShard {
                shard: proposed.clone(),
            })
        };
    }
    let n = request.candidates.len();
    let index = match request.strategy {
        StrategyKind::RoundRobin => round_robin::pick(ticket()?, n),
        StrategyKind::Random => random::pick(n),
        StrategyKind::Hash | StrategyKind::Location => {
            return Err(Error::Config(format!(
                "{} placement needs the router's proposal: the coordinator does not compute it",
                request.strategy.name()
            )))
        }
    };
    Ok(request.candidates[index].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(strategy: StrategyKind, proposed: Option<&str>) -> AllocationRequest {
        AllocationRequest {
            strategy,
            candidates: vec!["a".into(), "b".into(), "c".into()],
            proposed: proposed.map(str::to_owned),
        }
    }

    #[test]
    fn round_robin_follows_the_ticket() {
        let picks: Vec<String> = (0..4)
            .map(|t| decide(&request(StrategyKind::RoundRobin, None), || Ok(t)).unwrap())
            .collect();
        assert_eq!(picks, ["a", "b", "c", "a"]);
    }

    #[test]
    fn proposals_must_be_candidates() {
        let ok = decide(&request(StrategyKind::Random, Some("b")), || unreachable!());
        assert_eq!(ok.unwrap(), "b");
        let err = decide(&request(StrategyKind::Random, Some("z")), || unreachable!());
        assert_eq!(err.unwrap_err().code(), "unknown_shard");
    }

    #[test]
    fn names_match_the_wire_format() {
        for kind in [
            StrategyKind::Hash,
            StrategyKind::RoundRobin,
            StrategyKind::Random,
            StrategyKind::Location,
        ] {
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
    }

    #[test]
    fn request_wire_format_matches_the_coordinator_api() {
        let json = serde_json::to_string(&request(StrategyKind::RoundRobin, None)).unwrap();
        assert_eq!(
            json,
            r#"{"strategy":"round-robin","candidates":["a","b","c"]}"#
        );
    }
}
