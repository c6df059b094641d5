//! CollegeDB: a typed ORM and shard router that spreads one SQLite schema over
//! many Cloudflare D1 databases, or over local SQLite files.
//!
//! Declare a model with `#[derive(Sharded)]`, open a [`Database`] over a
//! backend, and call the generated typed methods:
//!
//! ```
//! # #[cfg(feature = "embedded")] {
//! use collegedb::{embedded, Config, Sharded, Strategy};
//!
//! #[derive(Sharded, Debug, PartialEq)]
//! struct User {
//!     #[primary_key]
//!     id: String,
//!     #[lookup]
//!     email: String,
//!     name: String,
//! }
//!
//! # futures::executor::block_on(async {
//! let db = embedded::Options::in_memory(4)
//!     .config(Config::default().strategy(Strategy::Hash))
//!     .open()?;
//! User::create_schema(&db).await?;
//!
//! let ada = User { id: "u-42".into(), email: "ada@example.com".into(), name: "Ada".into() };
//! ada.insert(&db).await?;
//! assert_eq!(User::get(&db, "u-42").await?.as_ref(), Some(&ada));
//! assert_eq!(User::find_by_email(&db, "ada@example.com").await?, Some(ada));
//! # Ok::<(), collegedb::Error>(())
//! # }).unwrap();
//! # }
//! ```
//!
//! The layers: the [`Model`] trait (what the derive implements), the
//! [`Strategy`] of placement, the directory (key → shard mappings: a read-path cache in
//! front of the coordinator's claims), the router (resolution, writes,
//! fan-out and rebalancing, behind [`Database`]), and [`backend`] (the traits
//! a backend implements, with the embedded and Cloudflare backends beside them).

#![warn(missing_docs)]
// Built without a backend (the wasm32 core check), the coordinator logic the
// backends share (claims, round-robin) has no caller yet.
#![cfg_attr(
    not(any(feature = "embedded", feature = "cloudflare")),
    allow(dead_code)
)]

pub mod backend;
mod database;
mod directory;
mod error;
mod key;
mod model;
mod platform;
pub mod query;
mod router;
mod row;
mod strategy;
mod value;
mod violation;

pub use backend::family::{Backend, ShardSpec};
pub use collegedb_derive::{FromRow, Sharded};
pub use database::{Config, Database, Merge, RawShard, RawShards};
pub use directory::MappingCache;
pub use error::{Error, Result, ShardFailure};
pub use model::Model;
pub use query::{
    Column, Cursor, Filter, FromRow, Grouped, Order, Page, Query, Selection, ShardPlan,
};
pub use router::Rebalanced;
pub use strategy::{Placement, Region, ShardLocation, Strategy};
pub use value::{Mismatch, SqlField, Value};

// The backends, beside the traits they implement (`backend/`).
#[cfg(all(feature = "cloudflare", target_arch = "wasm32"))]
pub mod cloudflare;
#[cfg(feature = "embedded")]
pub mod embedded;

// Every Rust block of the README compiles and runs as a doctest.
#[cfg(all(doctest, feature = "embedded"))]
#[doc = include_str!("../../README.md")]
mod readme {}

/// Items the derive's generated code uses. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::model::{Lookup, Schema, TableSql};
    pub use crate::value::{decode_column, decode_json, encode_column, encode_json};
}
