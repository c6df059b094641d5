//! [`Script`]: an interceptor that runs a test's callback at chosen backend
//! calls of one handle — to put another handle's operation exactly between
//! two calls of this one (deterministically, on one thread), or to fail a
//! call before it acts or after it acted (a lost reply).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use collegedb::backend::intercept::{Call, Interceptor};
use collegedb::{Error, Result};
use futures::future::LocalBoxFuture;

/// Whether a callback runs before a call or after it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the call: an error fails it without acting.
    Before,
    /// After the call acted: an error replaces its reply (a lost reply).
    After,
}

/// One backend call as a callback sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The call's number on this handle, from 0 (counted at `before`).
    pub index: usize,
    /// Its number among calls of the same kind, from 0.
    pub nth: usize,
    /// The call.
    pub call: Call,
    /// Before or after.
    pub phase: Phase,
}

type Callback = Box<dyn FnMut(Event) -> Option<LocalBoxFuture<'static, Result<()>>>>;

#[derive(Default)]
struct State {
    calls: Cell<usize>,
    kinds: RefCell<Vec<(Call, usize)>>,
    log: RefCell<Vec<Call>>,
    /// The numbers of the call now running, for its `after`.
    current: Cell<Option<(usize, usize)>>,
    callback: RefCell<Option<Callback>>,
}

/// Runs a callback at backend calls of the handle it intercepts. Clones share it.
#[derive(Clone, Default)]
pub struct Script(Rc<State>);

impl Script {
    /// A script that only counts.
    pub fn new() -> Script {
        Script::default()
    }

    /// Runs `callback` at every call (before and after); the future it
    /// returns, if any, runs there and its error fails the call. While it
    /// runs, calls of this handle made by the callback itself are not seen.
    pub fn on(
        &self,
        callback: impl FnMut(Event) -> Option<LocalBoxFuture<'static, Result<()>>> + 'static,
    ) {
        *self.0.callback.borrow_mut() = Some(Box::new(callback));
    }

    /// Runs `action` once, at `phase` of the call numbered `index`.
    pub fn at<F, Fut>(&self, index: usize, phase: Phase, action: F)
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        let mut action = Some(action);
        self.on(move |event| {
            if event.index == index && event.phase == phase {
                action
                    .take()
                    .map(|a| Box::pin(a()) as LocalBoxFuture<'static, Result<()>>)
            } else {
                None
            }
        });
    }

    /// Runs `action` once, at `phase` of the `nth` call of kind `call`.
    pub fn at_nth<F, Fut>(&self, call: Call, nth: usize, phase: Phase, action: F)
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        let mut action = Some(action);
        self.on(move |event| {
            if event.call == call && event.nth == nth && event.phase == phase {
                action
                    .take()
                    .map(|a| Box::pin(a()) as LocalBoxFuture<'static, Result<()>>)
            } else {
                None
            }
        });
    }

    /// Stops running the callback.
    pub fn clear(&self) {
        *self.0.callback.borrow_mut() = None;
    }

    /// Forgets the counts (the callback stays).
    pub fn reset(&self) {
        self.0.calls.set(0);
        self.0.kinds.borrow_mut().clear();
        self.0.log.borrow_mut().clear();
    }

    /// Calls seen so far.
    pub fn calls(&self) -> usize {
        self.0.calls.get()
    }

    /// Calls of one kind seen so far.
    pub fn count(&self, call: Call) -> usize {
        self.0
            .kinds
            .borrow()
            .iter()
            .find(|(c, _)| *c == call)
            .map_or(0, |(_, n)| *n)
    }

    /// Every call seen so far, in order.
    pub fn log(&self) -> Vec<Call> {
        self.0.log.borrow().clone()
    }

    async fn run(&self, event: Event) -> Result<()> {
        // Taken out while it runs: a callback may use this very handle.
        let Some(mut callback) = self.0.callback.borrow_mut().take() else {
            return Ok(());
        };
        let future = callback(event);
        let answer = match future {
            Some(future) => future.await,
            None => Ok(()),
        };
        let mut slot = self.0.callback.borrow_mut();
        if slot.is_none() {
            *slot = Some(callback);
        }
        answer
    }
}

impl Interceptor for Script {
    async fn before(&self, call: Call) -> Result<()> {
        let index = self.0.calls.get();
        self.0.calls.set(index + 1);
        let nth = {
            let mut kinds = self.0.kinds.borrow_mut();
            match kinds.iter_mut().find(|(c, _)| *c == call) {
                Some((_, n)) => {
                    *n += 1;
                    *n - 1
                }
                None => {
                    kinds.push((call, 1));
                    0
                }
            }
        };
        self.0.log.borrow_mut().push(call);
        let answer = self
            .run(Event {
                index,
                nth,
                call,
                phase: Phase::Before,
            })
            .await;
        // Set after the callback, which may have made calls of its own.
        self.0.current.set(Some((index, nth)));
        answer
    }

    async fn after(&self, call: Call) -> Result<()> {
        // The embedded backend never suspends inside a call, so the call
        // that just ran is the one `before` numbered last.
        let (index, nth) = self.0.current.get().unwrap_or_default();
        self.run(Event {
            index,
            nth,
            call,
            phase: Phase::After,
        })
        .await
    }
}

/// The error an injected failure reports: a service failure, not a refusal.
pub fn lost(call: Call) -> Error {
    super::service_error(call, format!("injected: the reply of {call:?} was lost"))
}
