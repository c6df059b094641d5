//! Counting the remote calls a request makes, for the `x-collegedb-calls` header.

use std::cell::Cell;
use std::rc::Rc;

use collegedb::backend::intercept::{Call, Interceptor};

/// Calls per service, shared by every part of one request's database handles.
/// A request is served on one thread, so `Rc<Cell<..>>` is enough.
#[derive(Clone, Default)]
pub struct Calls(Rc<[Cell<u32>; 3]>);

/// The services, in the header's order.
const SERVICES: [&str; 3] = ["shard", "mappings", "coordinator"];

impl Calls {
    /// `shard=1,mappings=0,coordinator=1`.
    pub fn header(&self) -> String {
        SERVICES
            .iter()
            .zip(self.0.iter())
            .map(|(service, count)| format!("{service}={}", count.get()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Interceptor for Calls {
    /// Counts every call as it is made (a call that then fails counts too:
    /// it was a round trip).
    async fn before(&self, call: Call) -> collegedb::Result<()> {
        let service = call.service();
        if let Some(i) = SERVICES.iter().position(|s| *s == service) {
            self.0[i].set(self.0[i].get() + 1);
        }
        Ok(())
    }
}
