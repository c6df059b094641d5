//! Counting the remote calls a request makes, for the `x-collegedb-calls` header.
//!
//! collegedb records each operation's calls on its `tracing` span (`collegedb`,
//! fields `shard_calls`, `mapping_calls`, `coordinator_calls`) when the
//! operation completes, and an operation started inside another counts only
//! its own: the sum over every span a request records is the request's total.
//!
//! One global subscriber ([`Spans`]) adds each recorded count to the tally
//! of the request being polled, which [`Calls::count`] puts in a
//! thread-local for the duration of each poll of that request's future.
//! Requests interleave on the isolate's one thread, but only between polls:
//! a poll runs to its end before another request's starts, and collegedb
//! records a span from inside the poll of the future that completes it,
//! which is nested in the poll of the request that awaits it. So every
//! recorded count lands in its own request's tally, never another's. (A
//! dispatcher scoped per request would do the same, but building a
//! `Dispatch` re-registers every callsite's interest each time.)

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The span fields, in the header's order.
const FIELDS: [&str; 3] = ["shard_calls", "mapping_calls", "coordinator_calls"];

/// Calls per service (in [`FIELDS`] order) of one request.
#[derive(Clone, Default)]
pub struct Calls(Rc<[Cell<u64>; 3]>);

thread_local! {
    /// The tally of the request being polled on this thread, if any.
    static POLLING: RefCell<Option<Calls>> = const { RefCell::new(None) };
}

impl Calls {
    /// Runs `request`, counting the calls its operations record.
    pub async fn count<F: Future>(&self, request: F) -> F::Output {
        static INSTALL: Once = Once::new();
        // Nothing else installs a subscriber in this Worker, so this cannot fail.
        INSTALL.call_once(|| drop(tracing::subscriber::set_global_default(Spans)));
        let mut request = pin!(request);
        poll_fn(|cx| {
            // No restore guard: a panic aborts the wasm instance anyway.
            let outer = POLLING.replace(Some(self.clone()));
            let poll = request.as_mut().poll(cx);
            POLLING.set(outer);
            poll
        })
        .await
    }

    /// `shard=1,mappings=0,coordinator=1`.
    pub fn header(&self) -> String {
        let [shard, mappings, coordinator] = &*self.0;
        format!(
            "shard={},mappings={},coordinator={}",
            shard.get(),
            mappings.get(),
            coordinator.get()
        )
    }
}

/// The subscriber: interested in collegedb's operation spans only (so every
/// other callsite is disabled once and costs nothing), and keeping no state
/// per span, only the counts recorded on them.
struct Spans;

impl Subscriber for Spans {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_span()
            && *metadata.level() == Level::DEBUG
            && metadata.target().starts_with("collegedb")
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    /// Every span gets the same id: nothing is kept per span.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        POLLING.with_borrow(|calls| {
            if let Some(calls) = calls {
                values.record(&mut Add(calls));
            }
        });
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Adds the counts of a record to a request's tally.
struct Add<'a>(&'a Calls);

impl Visit for Add<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(i) = FIELDS.iter().position(|f| *f == field.name()) {
            let cell = &self.0 .0[i];
            cell.set(cell.get() + value);
        }
    }

    // The other fields (`shard`) are not counts.
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}
