//! Claims: what the coordinator holds, and the one decision procedure every
//! coordinator runs ([`apply`]), so the embedded authority and the Durable
//! Object cannot disagree.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::strategy::{decide, AllocationRequest};

/// Who holds a claim: a row, named by its primary key and incarnation, and
/// the write attempt (`nonce`) that last took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The owning row's primary key, in the router's owner encoding.
    pub owner: String,
    /// Which life of that primary key: a key deleted and inserted again is a new incarnation.
    pub incarnation: String,
    /// The write attempt that took the claim; a proven-stale claim's attempt is revoked by it.
    pub nonce: String,
    /// The shard the owner's row was written to (a hint after a move).
    pub shard: String,
}

/// Where the rows of a claim request go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// A shard the router chose.
    Shard(String),
    /// A shard the coordinator chooses (round-robin needs its counter).
    Allocate(AllocationRequest),
}

/// One key to claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The claim key (the mapping key of a lookup value or a primary key).
    pub key: String,
    /// This is the primary key's own placement: if the owner already holds
    /// it, its shard is the answer, whatever the target says.
    #[serde(default)]
    pub placement: bool,
    /// Take the claim over from exactly this holder (the router proved it stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Holder>,
}

/// Claims for one write, taken all or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The owning row's primary key.
    pub owner: String,
    /// Its incarnation.
    pub incarnation: String,
    /// This write attempt.
    pub nonce: String,
    /// Where the row goes.
    pub target: Target,
    /// The keys.
    pub claims: Vec<Claim>,
}

/// The answer to a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClaimReply {
    /// Every claim is held by the request's owner now, on `shard`.
    Granted {
        /// Where the row goes.
        shard: String,
        /// Per claim: taken by this request (`true`) or already the owner's.
        fresh: Vec<bool>,
    },
    /// Claim `index` is held by someone else; nothing was written.
    Conflict {
        /// The position of the claim in the request.
        index: usize,
        /// Its holder.
        holder: Holder,
    },
}

/// A compare-and-delete of one claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The claim key.
    pub key: String,
    /// Removed only if still held by this owner...
    pub owner: String,
    /// ...in this incarnation.
    pub incarnation: String,
}

/// The storage a coordinator runs [`apply`] over, inside one transaction.
pub(crate) trait ClaimTable {
    /// The holder of `key`.
    fn holder(&mut self, key: &str) -> Result<Option<Holder>>;
    /// Sets the holder of `key`.
    fn store(&mut self, key: &str, holder: &Holder) -> Result<()>;
    /// The next round-robin ticket (0, 1, 2, ...).
    fn ticket(&mut self) -> Result<u64>;
}

/// Decides a claim request: every claim is free, already the owner's (same
/// incarnation and write attempt), or held by exactly the holder the request replaces;
/// otherwise nothing is written and the first conflict is reported.
pub(crate) fn apply(table: &mut impl ClaimTable, request: &ClaimRequest) -> Result<ClaimReply> {
    let mut fresh = Vec::with_capacity(request.claims.len());
    let mut placed = None;
    for (index, claim) in request.claims.iter().enumerate() {
        match table.holder(&claim.key)? {
            None => fresh.push(true),
            // Already this write attempt's. Another attempt of the same row
            // (a concurrent or failed update) is a holder like any other: it
            // is taken over only after the router proved it stale and revoked
            // its attempt — or that attempt could still land unrevoked.
            Some(holder)
                if holder.owner == request.owner
                    && holder.incarnation == request.incarnation
                    && holder.nonce == request.nonce =>
            {
                if claim.placement {
                    placed = Some(holder.shard);
                }
                fresh.push(false);
            }
            Some(holder) if claim.replace.as_ref() == Some(&holder) => fresh.push(true),
            Some(holder) => return Ok(ClaimReply::Conflict { index, holder }),
        }
    }
    let shard = match (placed, &request.target) {
        (Some(shard), _) => shard,
        (None, Target::Shard(shard)) => shard.clone(),
        (None, Target::Allocate(allocation)) => decide(allocation, || table.ticket())?,
    };
    let holder = Holder {
        owner: request.owner.clone(),
        incarnation: request.incarnation.clone(),
        nonce: request.nonce.clone(),
        shard: shard.clone(),
    };
    for claim in &request.claims {
        table.store(&claim.key, &holder)?;
    }
    Ok(ClaimReply::Granted { shard, fresh })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::strategy::StrategyKind;

    #[derive(Default)]
    struct Table {
        claims: HashMap<String, Holder>,
        ticket: u64,
    }

    impl ClaimTable for Table {
        fn holder(&mut self, key: &str) -> Result<Option<Holder>> {
            Ok(self.claims.get(key).cloned())
        }
        fn store(&mut self, key: &str, holder: &Holder) -> Result<()> {
            self.claims.insert(key.to_owned(), holder.clone());
            Ok(())
        }
        fn ticket(&mut self) -> Result<u64> {
            self.ticket += 1;
            Ok(self.ticket - 1)
        }
    }

    fn request(owner: &str, incarnation: &str, keys: &[&str]) -> ClaimRequest {
        ClaimRequest {
            owner: owner.into(),
            incarnation: incarnation.into(),
            nonce: format!("{owner}-{incarnation}"),
            target: Target::Shard("s0".into()),
            claims: keys
                .iter()
                .map(|k| Claim {
                    key: (*k).into(),
                    placement: false,
                    replace: None,
                })
                .collect(),
        }
    }

    #[test]
    fn claims_are_all_or_nothing_and_report_the_holder() {
        let mut table = Table::default();
        let granted = apply(&mut table, &request("a", "1", &["x", "y"])).unwrap();
        assert_eq!(
            granted,
            ClaimReply::Granted {
                shard: "s0".into(),
                fresh: vec![true, true]
            }
        );
        let reply = apply(&mut table, &request("b", "1", &["z", "y"])).unwrap();
        let ClaimReply::Conflict { index, holder } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!((index, holder.owner.as_str()), (1, "a"));
        assert!(
            !table.claims.contains_key("z"),
            "a refused request writes nothing"
        );
        // The same owner and incarnation again: already held, not fresh.
        let again = apply(&mut table, &request("a", "1", &["x"])).unwrap();
        assert!(matches!(again, ClaimReply::Granted { fresh, .. } if fresh == [false]));
        // Another incarnation of the same key is another owner.
        let other = apply(&mut table, &request("a", "2", &["x"])).unwrap();
        assert!(matches!(other, ClaimReply::Conflict { .. }));
        // Another write attempt of the same row (a concurrent update) must
        // take it over, revoking this one, not share it unrevoked.
        let mut sibling = request("a", "1", &["x"]);
        sibling.nonce = "another attempt".into();
        assert!(matches!(
            apply(&mut table, &sibling).unwrap(),
            ClaimReply::Conflict { .. }
        ));
    }

    #[test]
    fn takeover_needs_the_exact_holder() {
        let mut table = Table::default();
        apply(&mut table, &request("a", "1", &["x"])).unwrap();
        let seen = table.claims["x"].clone();
        let mut stale = seen.clone();
        stale.nonce = "older".into();
        let mut take = request("b", "1", &["x"]);
        take.claims[0].replace = Some(stale);
        assert!(matches!(
            apply(&mut table, &take).unwrap(),
            ClaimReply::Conflict { .. }
        ));
        take.claims[0].replace = Some(seen);
        assert!(matches!(
            apply(&mut table, &take).unwrap(),
            ClaimReply::Granted { .. }
        ));
        assert_eq!(table.claims["x"].owner, "b");
    }

    #[test]
    fn a_held_placement_wins_over_the_target() {
        let mut table = Table::default();
        let mut first = request("k", "1", &["p"]);
        first.claims[0].placement = true;
        first.target = Target::Allocate(AllocationRequest {
            strategy: StrategyKind::RoundRobin,
            candidates: vec!["s0".into(), "s1".into()],
            proposed: None,
        });
        let ClaimReply::Granted { shard, .. } = apply(&mut table, &first).unwrap() else {
            panic!()
        };
        assert_eq!(shard, "s0");
        // A retry of the same write keeps its shard and takes no ticket.
        let ClaimReply::Granted { shard, .. } = apply(&mut table, &first).unwrap() else {
            panic!()
        };
        assert_eq!((shard.as_str(), table.ticket), ("s0", 1));
    }
}
