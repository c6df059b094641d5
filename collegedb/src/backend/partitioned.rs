//! One authority spread over several: each claim key belongs to the
//! partition its hash picks, so no single object (a Durable Object serves
//! about 1,000 requests a second) carries every write.
//!
//! A write whose claims fall in one partition is one request, as before. A
//! write whose claims span partitions asks them one after another — the
//! partition holding the primary key's placement first, so its shard decides
//! the others' — and if a later partition reports a conflict, gives back the
//! claims the earlier ones granted it (compare-and-delete, so only its own).
//! Until then those claims are held without a row, which every writer already
//! treats as harmless: they are proven stale before anyone takes them over.
//!
//! The number of partitions is part of the data's layout: keep it fixed.

use futures::future::try_join_all;

use super::{Claim, ClaimReply, ClaimRequest, Coordinator, Holder, Release, Target};
use crate::error::Result;
use crate::strategy::hash::key_hash;

/// A [`Coordinator`] made of several, each holding the claims whose key
/// hashes to it.
#[derive(Debug, Clone)]
pub struct Partitioned<C> {
    parts: Vec<C>,
}

impl<C: Coordinator> Partitioned<C> {
    /// Claims spread over `parts` (at least one), by the hash of their key.
    ///
    /// # Panics
    ///
    /// If `parts` is empty.
    pub fn new(parts: Vec<C>) -> Self {
        assert!(
            !parts.is_empty(),
            "a partitioned coordinator needs a partition"
        );
        Partitioned { parts }
    }

    /// The partitions, in order.
    pub fn parts(&self) -> &[C] {
        &self.parts
    }

    fn part_of(&self, key: &str) -> usize {
        (key_hash(key) % self.parts.len() as u64) as usize
    }

    /// The positions of `keys` grouped by partition, in partition order.
    fn groups<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Vec<(usize, Vec<usize>)> {
        // Kept in order as they are built: a sort would link a sort
        // implementation into every Worker for a handful of entries.
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (position, key) in keys.enumerate() {
            let part = self.part_of(key);
            match groups.binary_search_by_key(&part, |(p, _)| *p) {
                Ok(found) => groups[found].1.push(position),
                Err(at) => groups.insert(at, (part, vec![position])),
            }
        }
        groups
    }
}

impl<C: Coordinator> Coordinator for Partitioned<C> {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimReply> {
        let mut groups = self.groups(request.claims.iter().map(|c| c.key.as_str()));
        if let [(part, _)] = groups.as_slice() {
            return self.parts[*part].claim(request).await;
        }
        // The placement's partition first: its answer is the shard of the
        // rest, which stay in partition order.
        let placement = groups
            .iter()
            .position(|(_, positions)| positions.iter().any(|&i| request.claims[i].placement));
        if let Some(placement) = placement {
            groups[..=placement].rotate_right(1);
        }
        let mut target = request.target.clone();
        let mut fresh = vec![false; request.claims.len()];
        let mut granted: Vec<(usize, Vec<usize>)> = Vec::new();
        for (part, positions) in groups {
            let part_request = ClaimRequest {
                target: target.clone(),
                claims: positions
                    .iter()
                    .map(|&i| request.claims[i].clone())
                    .collect::<Vec<Claim>>(),
                ..request.clone()
            };
            match self.parts[part].claim(&part_request).await? {
                ClaimReply::Granted {
                    shard,
                    fresh: part_fresh,
                } => {
                    for (&i, f) in positions.iter().zip(part_fresh) {
                        fresh[i] = f;
                    }
                    target = Target::Shard(shard);
                    granted.push((part, positions));
                }
                ClaimReply::Conflict { index, holder } => {
                    self.give_back(request, &granted, &fresh).await?;
                    return Ok(ClaimReply::Conflict {
                        index: positions[index],
                        holder,
                    });
                }
            }
        }
        let Target::Shard(shard) = target else {
            unreachable!("every granted partition answers with a shard")
        };
        Ok(ClaimReply::Granted { shard, fresh })
    }

    async fn release(&self, releases: &[Release]) -> Result<()> {
        let groups = self.groups(releases.iter().map(|r| r.key.as_str()));
        try_join_all(groups.into_iter().map(|(part, positions)| {
            let part_releases: Vec<Release> =
                positions.iter().map(|&i| releases[i].clone()).collect();
            async move { self.parts[part].release(&part_releases).await }
        }))
        .await
        .map(drop)
    }

    async fn holders(&self, keys: &[String]) -> Result<Vec<Option<Holder>>> {
        let groups = self.groups(keys.iter().map(String::as_str));
        let answers = try_join_all(groups.iter().map(|(part, positions)| {
            let part_keys: Vec<String> = positions.iter().map(|&i| keys[i].clone()).collect();
            async move { self.parts[*part].holders(&part_keys).await }
        }))
        .await?;
        let mut holders = vec![None; keys.len()];
        for ((_, positions), answer) in groups.iter().zip(answers) {
            for (&i, holder) in positions.iter().zip(answer) {
                holders[i] = holder;
            }
        }
        Ok(holders)
    }
}

impl<C: Coordinator> Partitioned<C> {
    /// Gives back what earlier partitions granted a request that a later one refused.
    async fn give_back(
        &self,
        request: &ClaimRequest,
        granted: &[(usize, Vec<usize>)],
        fresh: &[bool],
    ) -> Result<()> {
        for (part, positions) in granted {
            let releases: Vec<Release> = positions
                .iter()
                .filter(|&&i| fresh[i])
                .map(|&i| Release {
                    key: request.claims[i].key.clone(),
                    owner: request.owner.clone(),
                    incarnation: request.incarnation.clone(),
                })
                .collect();
            if !releases.is_empty() {
                self.parts[*part].release(&releases).await?;
            }
        }
        Ok(())
    }
}
