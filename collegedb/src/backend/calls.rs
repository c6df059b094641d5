//! Remote calls per operation, recorded on the operation's `tracing` span as
//! `shard_calls`, `mapping_calls` and `coordinator_calls` when it completes.
//!
//! An operation's future is wrapped in [`Traced`]; while it is polled, the
//! calls it starts are counted in its own tally (a thread-local pointer set
//! for the duration of each poll, so operations interleaved on one thread —
//! `join!`, a Worker's concurrent requests — never count each other's
//! calls). A call is counted when it is started, whether it then succeeds or
//! not: it was a round trip. An operation started inside another counts its
//! own calls only. With no subscriber interested in the span, nothing is
//! counted and the wrapper costs one check per poll.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

/// The services a remote call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// A shard (D1 database or SQLite file): queries, batches, sizes.
    Shard = 0,
    /// The mapping store (KV).
    Mappings = 1,
    /// The coordinator (claims).
    Coordinator = 2,
}

/// The span fields, in [`Service`] order.
const FIELDS: [&str; 3] = ["shard_calls", "mapping_calls", "coordinator_calls"];

type Tally = [Cell<u64>; 3];

thread_local! {
    /// The tally of the operation being polled on this thread, if counted.
    static CURRENT: RefCell<Option<Rc<Tally>>> = const { RefCell::new(None) };
}

/// Counts one call to `service` for the operation being polled.
pub(crate) fn count(service: Service) {
    CURRENT.with(|current| {
        if let Some(tally) = &*current.borrow() {
            let cell = &tally[service as usize];
            cell.set(cell.get() + 1);
        }
    });
}

/// Wraps an operation's future: instrumented by its span, with its calls
/// counted and recorded on the span when it completes.
pub(crate) trait Trace: Future + Sized {
    // Inlined so that the future is moved into place once, not twice.
    #[inline]
    fn traced(self, span: Span) -> Traced<Self> {
        let tally = (!span.is_disabled()).then(Rc::default);
        Traced {
            inner: self.instrument(span),
            tally,
        }
    }
}

impl<F: Future> Trace for F {}

pin_project! {
    /// See [`Trace::traced`].
    // Projected in place, not boxed: no allocation per operation.
    pub(crate) struct Traced<F> {
        #[pin]
        inner: Instrumented<F>,
        tally: Option<Rc<Tally>>,
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let Some(tally) = this.tally.as_ref() else {
            return this.inner.poll(cx);
        };
        let poll = {
            let _current = Current::enter(Rc::clone(tally));
            this.inner.as_mut().poll(cx)
        };
        if poll.is_ready() {
            let span = this.inner.span();
            for (field, count) in FIELDS.iter().zip(tally.iter()) {
                span.record(*field, count.get());
            }
        }
        poll
    }
}

/// This thread's current tally while an operation is polled; the outer one
/// (if any) comes back on drop, even if the poll panics.
struct Current(Option<Rc<Tally>>);

impl Current {
    fn enter(tally: Rc<Tally>) -> Self {
        Current(CURRENT.with(|current| current.replace(Some(tally))))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        let outer = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = outer);
    }
}
