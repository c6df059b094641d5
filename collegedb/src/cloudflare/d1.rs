//! One shard as one D1 database.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{D1Database as D1DatabaseSys, D1PreparedStatement};
use worker::{D1Database, Env};

use super::{binding_error, js_error_message};
use crate::backend::{Outcome, ShardExecutor, Statement, Violation};
use crate::error::{Error, Result};
use crate::value::Value;

/// The most parameters D1 binds in one statement.
pub const D1_MAX_PARAMETERS: usize = 100;
/// D1's limit on the length of one SQL statement, in bytes.
pub const D1_MAX_STATEMENT_BYTES: usize = 100_000;

/// The largest integer magnitude a JS number holds exactly (2^53). D1 takes
/// and returns numbers as JS numbers, so integers beyond it are refused.
pub const JS_MAX_EXACT_INTEGER: i64 = 1 << 53;

/// What an over-large integer did not fit, in [`Error::IntegerOutOfRange`].
const JS_NUMBER_TARGET: &str = "D1 (JS number, ±2^53)";

/// A shard backed by a D1 database binding.
///
/// - Values are bound as JS values: integers as JS numbers, and only within
///   ±2^53 ([`Error::IntegerOutOfRange`] otherwise: never rounded); text as
///   strings; reals as numbers; blobs as `Uint8Array`; `NULL` as `null`.
/// - Rows are read with `raw()`, so values come back in select-list order.
///   D1 returns every number as a JS number: an integral number within ±2^53
///   decodes as [`Value::Integer`], any other number as [`Value::Real`] (so a
///   `REAL` column holding `2.0` reads as `Integer(2)`, which `f64` fields accept).
///   D1 converts a stored integer beyond ±2^53 to the nearest JS number
///   before this code sees it (a stored 2^53 + 1 arrives as 2^53): this
///   backend never writes such integers, but rows written by other clients
///   can hold them; store such values as `TEXT`.
/// - A statement over 100 parameters is refused with [`Error::TooManyParameters`]
///   before it is sent.
/// - [`batch`](ShardExecutor::batch) is one D1 `batch()`: one round trip and
///   one transaction. D1 hands a batch's rows back as objects keyed by column
///   name, so a statement of a batch that returns rows must give its columns
///   distinct names that are not integers (`RETURNING 1` alone is fine);
///   values are read in the objects' key order, which is the select-list
///   order for such names. A row with several columns and an integer-like
///   column name is refused rather than read out of order.
/// - `changed` is D1's `meta.changes` for statements that changed the
///   database, and 0 for those that did not (a `SELECT` included).
/// - A constraint failure — `UNIQUE constraint failed: ...` or a
///   `collegedb:*` token raised by the fence trigger — is
///   [`Error::Constraint`] with the parsed [`Violation`]; every other D1
///   failure is [`Error::Shard`] named by the binding, with D1's own message.
#[derive(Debug)]
pub struct D1Shard {
    name: String,
    db: D1DatabaseSys,
}

impl D1Shard {
    /// A shard called `name` over `db`.
    pub fn new(name: impl Into<String>, db: D1Database) -> Self {
        let value: JsValue = db.into();
        D1Shard {
            name: name.into(),
            db: value.unchecked_into(),
        }
    }

    /// The D1 database bound as `binding` in `env`, named after its binding.
    pub fn from_env(env: &Env, binding: &str) -> Result<Self> {
        let db = env
            .d1(binding)
            .map_err(|e| binding_error("D1", binding, e))?;
        Ok(D1Shard::new(binding, db))
    }

    /// The shard's name (its binding name when opened from the environment).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Shard {
            shard: self.name.clone(),
            message: message.into(),
        }
    }

    /// A D1 failure: typed if it reports a constraint, else its message.
    fn js_err(&self, value: JsValue) -> Error {
        let message = js_error_message(&value);
        match Violation::parse(&message) {
            Some(violation) => Error::Constraint {
                shard: self.name.clone(),
                violation,
            },
            None => self.err(message),
        }
    }

    /// Prepares and binds one statement.
    fn prepare(&self, statement: &Statement) -> Result<D1PreparedStatement> {
        Self::check(&statement.params)?;
        let params: Array = statement.params.iter().map(to_js).collect();
        let prepared = self
            .db
            .prepare(&statement.sql)
            .map_err(|e| self.js_err(e))?;
        if statement.params.is_empty() {
            return Ok(prepared);
        }
        prepared.bind(params).map_err(|e| self.js_err(e))
    }

    async fn wait(
        &self,
        promise: std::result::Result<js_sys::Promise, JsValue>,
    ) -> Result<JsValue> {
        let promise = promise.map_err(|e| self.js_err(e))?;
        JsFuture::from(promise).await.map_err(|e| self.js_err(e))
    }

    /// `meta.<field>` of a D1 result, as a number.
    fn meta_number(result: &JsValue, field: &str) -> Option<f64> {
        let meta = Reflect::get(result, &JsValue::from_str("meta")).ok()?;
        if meta.is_null_or_undefined() {
            return None;
        }
        Reflect::get(&meta, &JsValue::from_str(field))
            .ok()?
            .as_f64()
    }

    /// Runs a parameterless query through `raw()` and returns its first value.
    async fn single_number(&self, sql: &'static str) -> Result<Option<f64>> {
        let statement = Statement::new(sql, Vec::new());
        let rows = self.query(&statement).await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(i)) => Some(*i as f64),
            Some(Value::Real(r)) => Some(*r),
            _ => None,
        })
    }

    /// What one statement of a batch did, from its D1 result.
    fn outcome(&self, result: &JsValue) -> Result<Outcome> {
        let changed_db = Reflect::get(result, &JsValue::from_str("meta"))
            .ok()
            .filter(|meta| !meta.is_null_or_undefined())
            .and_then(|meta| Reflect::get(&meta, &JsValue::from_str("changed_db")).ok())
            .and_then(|v| v.as_bool());
        // A statement that did not change the database reports no changes,
        // whatever count D1 carried over from the statement before it.
        let changed = match changed_db {
            Some(false) => 0,
            _ => Self::meta_number(result, "changes")
                .filter(|n| n.is_finite())
                .map_or(0, |n| n.max(0.0) as u64),
        };
        let rows =
            Reflect::get(result, &JsValue::from_str("results")).map_err(|e| self.js_err(e))?;
        if rows.is_null_or_undefined() {
            return Ok(Outcome {
                changed,
                rows: Vec::new(),
            });
        }
        let rows = rows
            .dyn_into::<Array>()
            .map_err(|v| self.err(format!("a batch result holds {v:?}, not an array of rows")))?;
        let mut out = Vec::with_capacity(rows.length() as usize);
        for row in rows.iter() {
            out.push(self.object_row(row)?);
        }
        Ok(Outcome { changed, rows: out })
    }

    /// The values of a row object (`{column: value}`), in key order.
    fn object_row(&self, row: JsValue) -> Result<Vec<Value>> {
        // A `raw()` row is already an array.
        if Array::is_array(&row) {
            return self.values(&Array::from(&row));
        }
        let object = row
            .dyn_into::<Object>()
            .map_err(|v| self.err(format!("a batch result row is {v:?}, not an object")))?;
        let keys = Object::keys(&object);
        if keys.length() > 1 {
            if let Some(key) = keys
                .iter()
                .filter_map(|k| k.as_string())
                .find(|k| is_array_index(k))
            {
                return Err(self.err(format!(
                    "a statement of a batch returns the column `{key}`: JavaScript orders integer-named keys first, so its row cannot be read in select-list order; give the column a name (`AS ...`)"
                )));
            }
        }
        self.values(&Object::values(&object))
    }

    /// The decoded values of a row array.
    fn values(&self, row: &Array) -> Result<Vec<Value>> {
        // A loop rather than collecting into a `Result`, which compiles an
        // iterator adapter per call site.
        let mut values = Vec::with_capacity(row.length() as usize);
        for value in row.iter() {
            values.push(from_js(value).map_err(|m| self.err(m))?);
        }
        Ok(values)
    }
}

/// Whether JavaScript treats `key` as an array index (and so orders it first).
fn is_array_index(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'))
        && key.parse::<u64>().is_ok_and(|n| n < u32::MAX as u64)
}

/// Refuses an integer a JS number cannot hold exactly.
pub(crate) fn exact_in_js(value: &Value) -> Result<()> {
    match value {
        Value::Integer(i) if i.unsigned_abs() > JS_MAX_EXACT_INTEGER as u64 => {
            Err(Error::IntegerOutOfRange {
                value: i.to_string(),
                target: JS_NUMBER_TARGET,
            })
        }
        _ => Ok(()),
    }
}

/// Converts a bound value to the JS value D1 takes for it; integers were
/// checked by [`ShardExecutor::check`].
fn to_js(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Integer(i) => JsValue::from_f64(*i as f64),
        Value::Real(r) => JsValue::from_f64(*r),
        Value::Text(t) => JsValue::from_str(t),
        Value::Blob(b) => Uint8Array::from(b.as_slice()).into(),
    }
}

/// Decodes one value of a `raw()` row.
pub(crate) fn from_js(value: JsValue) -> std::result::Result<Value, String> {
    if value.is_null_or_undefined() {
        return Ok(Value::Null);
    }
    if let Some(n) = value.as_f64() {
        return Ok(number(n));
    }
    if let Some(s) = value.as_string() {
        return Ok(Value::Text(s));
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Integer(i64::from(b)));
    }
    // D1 returns BLOBs as arrays of byte values; accept typed arrays and buffers too.
    if Array::is_array(&value) {
        let array = Array::from(&value);
        let mut bytes = Vec::with_capacity(array.length() as usize);
        for item in array.iter() {
            match item.as_f64() {
                Some(b) if b.fract() == 0.0 && (0.0..=255.0).contains(&b) => bytes.push(b as u8),
                _ => return Err(format!("a BLOB array holds {item:?}, not a byte")),
            }
        }
        return Ok(Value::Blob(bytes));
    }
    if let Some(view) = value.dyn_ref::<Uint8Array>() {
        return Ok(Value::Blob(view.to_vec()));
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Value::Blob(Uint8Array::new(buffer).to_vec()));
    }
    Err(format!(
        "D1 returned a value of an unexpected type: {value:?}"
    ))
}

/// A JS number as the SQLite value it most likely was: integral numbers
/// within ±2^53 are integers, everything else (fractions, larger magnitudes,
/// which are not exact) is a real.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= JS_MAX_EXACT_INTEGER as f64 {
        Value::Integer(n as i64)
    } else {
        Value::Real(n)
    }
}

impl ShardExecutor for D1Shard {
    fn check(params: &[Value]) -> Result<()> {
        if params.len() > D1_MAX_PARAMETERS {
            return Err(Error::TooManyParameters {
                count: params.len(),
                limit: D1_MAX_PARAMETERS,
            });
        }
        params.iter().try_for_each(exact_in_js)
    }

    fn check_statement(statement: &Statement) -> Result<()> {
        if statement.sql.len() > D1_MAX_STATEMENT_BYTES {
            return Err(Error::StatementTooLong {
                bytes: statement.sql.len(),
                limit: D1_MAX_STATEMENT_BYTES,
            });
        }
        Self::check(&statement.params)
    }

    async fn query(&self, statement: &Statement) -> Result<Vec<Vec<Value>>> {
        let prepared = self.prepare(statement)?;
        let rows = self.wait(prepared.raw()).await?;
        let rows = rows
            .dyn_into::<Array>()
            .map_err(|v| self.err(format!("raw() returned {v:?}, not an array of rows")))?;
        let mut out = Vec::with_capacity(rows.length() as usize);
        for row in rows.iter() {
            let row = row
                .dyn_into::<Array>()
                .map_err(|v| self.err(format!("raw() returned the row {v:?}, not an array")))?;
            out.push(self.values(&row)?);
        }
        Ok(out)
    }

    /// One `batch()`: one round trip, one transaction.
    async fn batch(&self, statements: &[Statement]) -> Result<Vec<Outcome>> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = Array::new();
        for statement in statements {
            prepared.push(&self.prepare(statement)?.into());
        }
        let results = self.wait(self.db.batch(prepared)).await?;
        let results = results
            .dyn_into::<Array>()
            .map_err(|v| self.err(format!("batch() returned {v:?}, not an array of results")))?;
        if results.length() as usize != statements.len() {
            return Err(self.err(format!(
                "batch() of {} statements returned {} results",
                statements.len(),
                results.length()
            )));
        }
        let mut outcomes = Vec::with_capacity(statements.len());
        for result in results.iter() {
            outcomes.push(self.outcome(&result)?);
        }
        Ok(outcomes)
    }

    /// The database size as D1 reports it in `meta.size_after` of a trivial
    /// read (`SELECT 1`): one call, and D1 does not allow every `PRAGMA`.
    /// Where a runtime leaves `size_after` out, falls back to
    /// `PRAGMA page_count` × `PRAGMA page_size` (two more calls).
    async fn size_bytes(&self) -> Result<u64> {
        let probe = self.prepare(&Statement::new("SELECT 1", Vec::new()))?;
        let result = self.wait(probe.run()).await?;
        if let Some(size) =
            Self::meta_number(&result, "size_after").filter(|n| n.is_finite() && *n >= 0.0)
        {
            return Ok(size as u64);
        }
        let pages = self.single_number("PRAGMA page_count").await?;
        let page_size = self.single_number("PRAGMA page_size").await?;
        match (pages, page_size) {
            (Some(p), Some(s)) => Ok((p * s) as u64),
            _ => Err(self.err("D1 reported neither meta.size_after nor the page count and size")),
        }
    }
}
