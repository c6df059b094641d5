//! A backend wrapped by an [`Interceptor`] that sees every remote call
//! before and after it runs: count calls per operation, add latency or
//! yield to other tasks, or inject faults — without touching the backend.
//!
//! ```
//! # #[cfg(feature = "embedded")]
//! # fn main() -> collegedb::Result<()> {
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use collegedb::backend::intercept::{Call, Intercepted, Interceptor};
//! use collegedb::{embedded, Database, Result};
//!
//! #[derive(Clone, Default)]
//! struct Count(Rc<Cell<usize>>);
//!
//! impl Interceptor for Count {
//!     async fn before(&self, _: Call) -> Result<()> {
//!         self.0.set(self.0.get() + 1);
//!         Ok(())
//!     }
//! }
//!
//! let count = Count::default();
//! let db: Database<Intercepted<embedded::Embedded, Count>> =
//!     embedded::Options::in_memory(2).open()?.intercepted(count.clone());
//! # let _ = db;
//! # Ok(()) }
//! # #[cfg(not(feature = "embedded"))] fn main() {}
//! ```
#![allow(async_fn_in_trait)] // no `Send` bound, as for every backend trait.

use std::marker::PhantomData;

use super::{
    Backend, ClaimReply, ClaimRequest, Coordinator, Holder, KeyPage, MappingStore, Outcome,
    Release, ShardExecutor, Statement,
};
use crate::error::Result;
use crate::value::Value;

/// Which remote call is being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// A read-only query on a shard.
    Query,
    /// A batch of statements on a shard (one transaction).
    Batch,
    /// A shard's size.
    Size,
    /// A mapping store read.
    MappingGet,
    /// A mapping store write.
    MappingPut,
    /// A mapping store delete.
    MappingDelete,
    /// A mapping store listing.
    MappingList,
    /// Claims taken at the coordinator.
    Claim,
    /// Claims released at the coordinator.
    Release,
    /// Holders read from the coordinator.
    Holders,
}

impl Call {
    /// Which service the call goes to: `"shard"`, `"mappings"` or `"coordinator"`.
    pub fn service(self) -> &'static str {
        match self {
            Call::Query | Call::Batch | Call::Size => "shard",
            Call::MappingGet | Call::MappingPut | Call::MappingDelete | Call::MappingList => {
                "mappings"
            }
            Call::Claim | Call::Release | Call::Holders => "coordinator",
        }
    }
}

/// Sees every call of an [`Intercepted`] backend.
pub trait Interceptor: Clone {
    /// Runs before the call; an error fails the call without making it.
    async fn before(&self, call: Call) -> Result<()> {
        let _ = call;
        Ok(())
    }

    /// Runs after the call succeeded; an error replaces its answer, as if
    /// the call was made and its reply lost.
    async fn after(&self, call: Call) -> Result<()> {
        let _ = call;
        Ok(())
    }
}

/// The backend family `B` with every call seen by `I`.
#[derive(Debug, Clone, Copy)]
pub struct Intercepted<B, I>(PhantomData<(B, I)>);

impl<B: Backend, I: Interceptor> Backend for Intercepted<B, I> {
    type Shard = Seen<B::Shard, I>;
    type Mappings = Seen<B::Mappings, I>;
    type Coordinator = Seen<B::Coordinator, I>;
}

/// One part of a backend (a shard, the mapping store or the coordinator) and its interceptor.
#[derive(Debug, Clone)]
pub struct Seen<T, I> {
    inner: T,
    interceptor: I,
}

impl<T, I: Interceptor> Seen<T, I> {
    /// `inner`, seen by `interceptor`.
    pub fn new(inner: T, interceptor: I) -> Self {
        Seen { inner, interceptor }
    }

    /// The wrapped part.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    async fn call<R>(
        &self,
        call: Call,
        run: impl std::future::Future<Output = Result<R>>,
    ) -> Result<R> {
        self.interceptor.before(call).await?;
        let answer = run.await?;
        self.interceptor.after(call).await?;
        Ok(answer)
    }
}

impl<S: ShardExecutor, I: Interceptor> ShardExecutor for Seen<S, I> {
    fn check(params: &[Value]) -> Result<()> {
        S::check(params)
    }
    fn check_statement(statement: &Statement) -> Result<()> {
        S::check_statement(statement)
    }
    async fn query(&self, statement: &Statement) -> Result<Vec<Vec<Value>>> {
        self.call(Call::Query, self.inner.query(statement)).await
    }
    async fn batch(&self, statements: &[Statement]) -> Result<Vec<Outcome>> {
        self.call(Call::Batch, self.inner.batch(statements)).await
    }
    async fn size_bytes(&self) -> Result<u64> {
        self.call(Call::Size, self.inner.size_bytes()).await
    }
}

impl<M: MappingStore, I: Interceptor> MappingStore for Seen<M, I> {
    fn max_key_len(&self) -> usize {
        self.inner.max_key_len()
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        self.call(Call::MappingGet, self.inner.get_many(keys)).await
    }
    async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.call(Call::MappingPut, self.inner.put(key, value))
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.call(Call::MappingDelete, self.inner.delete(key)).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage> {
        self.call(Call::MappingList, self.inner.list(prefix, cursor))
            .await
    }
}

impl<C: Coordinator, I: Interceptor> Coordinator for Seen<C, I> {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimReply> {
        self.call(Call::Claim, self.inner.claim(request)).await
    }
    async fn release(&self, releases: &[Release]) -> Result<()> {
        self.call(Call::Release, self.inner.release(releases)).await
    }
    async fn holders(&self, keys: &[String]) -> Result<Vec<Option<Holder>>> {
        self.call(Call::Holders, self.inner.holders(keys)).await
    }
}
