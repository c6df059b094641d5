//! What the end-to-end suites share: starting the example Worker under
//! workerd (`harness`), talking to it and recording checks, and the test
//! users (`users`).
//!
//! Each suite is its own test target (`tests/e2e_*.rs`) that includes this
//! module with `#[path = "e2e/mod.rs"] #[macro_use] mod e2e;`, and starts its
//! own `wrangler dev --local` with a fresh state directory, so the suites
//! cannot see each other's data. Not every suite uses every helper.
#![allow(dead_code)]

/// Returns `Err(format!(...))` from the enclosing check unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

pub mod harness;
pub mod users;
