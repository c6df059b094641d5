//! Placement of new keys by the write strategy.

use futures::future::join_all;

use crate::backend::{Backend, Coordinator, MappingStore, ShardExecutor};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::strategy::{self, hash, location, random, AllocationRequest, Strategy};
use crate::value::Value;

/// Where the round-robin counter lives when there is no coordinator.
const ROUND_ROBIN_COUNTER: &str = "__collegedb/round-robin";

/// The shard chosen for a new key.
pub(crate) struct Placed {
    pub shard: usize,
    /// The placement cannot be recomputed from the key, so a mapping must be written.
    pub needs_mapping: bool,
}

impl<B: Backend> Database<B> {
    /// The shards that may take new keys: all of them, or those under the size limit.
    async fn eligible_shards(&self) -> Result<Vec<usize>> {
        let Some(limit) = self.config.max_shard_bytes else {
            return Ok((0..self.shards.len()).collect());
        };
        let sizes = join_all(self.shards.iter().map(|s| s.executor.size_bytes())).await;
        let mut eligible = Vec::new();
        for (index, size) in sizes.into_iter().enumerate() {
            if size? < limit {
                eligible.push(index);
            } else {
                tracing::debug!(shard = %self.shards[index].name, "shard is full: no new keys");
            }
        }
        if eligible.is_empty() {
            return Err(Error::ShardsFull { limit_bytes: limit });
        }
        Ok(eligible)
    }

    /// Places a new primary key. `mapping_key` is its key in the mapping store,
    /// which is also the key the coordinator places.
    pub(crate) async fn place_new<M: Model>(
        &self,
        key: &Value,
        mapping_key: &str,
    ) -> Result<Placed> {
        let eligible = self.eligible_shards().await?;
        let write = self.config.placement.write;
        if write == Strategy::Hash {
            let home = self.home(key);
            if eligible.contains(&home) {
                return Ok(Placed {
                    shard: home,
                    needs_mapping: false,
                });
            }
            // The home is full: the next best is hashed over the eligible shards, and must be recorded.
            let shard = eligible[hash::home(&key.key_text(), eligible.len())];
            return Ok(Placed {
                shard,
                needs_mapping: true,
            });
        }

        let proposed = match write {
            Strategy::Random => Some(eligible[random::pick(eligible.len())]),
            Strategy::Location { target } => {
                let locations: Vec<_> = eligible.iter().map(|&i| self.shards[i].location).collect();
                Some(eligible[location::pick(target, &locations, hash::key_hash(&key.key_text()))])
            }
            Strategy::RoundRobin | Strategy::Hash => None,
        };
        let request = AllocationRequest {
            strategy: write.kind(),
            candidates: eligible
                .iter()
                .map(|&i| self.shards[i].name.clone())
                .collect(),
            proposed: proposed.map(|i| self.shards[i].name.clone()),
        };
        let shard = match &self.coordinator {
            Some(coordinator) => coordinator.allocate(mapping_key, &request).await?,
            None => {
                self.allocate_without_coordinator::<M>(key, &request)
                    .await?
            }
        };
        Ok(Placed {
            shard: self.shard_index(&shard)?,
            needs_mapping: true,
        })
    }

    /// Without a strongly consistent authority, a lagging mapping store could
    /// hide an existing key: probe the shards before placing it anywhere.
    async fn allocate_without_coordinator<M: Model>(
        &self,
        key: &Value,
        request: &AllocationRequest,
    ) -> Result<String> {
        let found = join_all((0..self.shards.len()).map(|i| self.fetch_by_key::<M>(i, key))).await;
        for (index, row) in found.into_iter().enumerate() {
            if row?.is_some() {
                return Ok(self.shards[index].name.clone());
            }
        }
        let ticket = match request.strategy {
            strategy::StrategyKind::RoundRobin => Some(self.mapping_store_ticket().await?),
            _ => None,
        };
        strategy::decide(&key.key_text(), request, || {
            ticket.ok_or_else(|| Error::Coordinator("no round-robin ticket".into()))
        })
    }

    /// The next round-robin ticket kept in the mapping store (best effort: not atomic).
    async fn mapping_store_ticket(&self) -> Result<u64> {
        let stored = self
            .mappings
            .get_many(&[ROUND_ROBIN_COUNTER.to_owned()])
            .await?;
        let current = stored
            .into_iter()
            .next()
            .flatten()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        self.mappings
            .put(ROUND_ROBIN_COUNTER, &(current + 1).to_string())
            .await?;
        Ok(current)
    }
}
