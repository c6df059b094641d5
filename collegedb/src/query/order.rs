//! Orderings, and SQLite's order of values, which the merge of sorted shard
//! streams must reproduce exactly.

use std::cmp::Ordering;
use std::marker::PhantomData;

use crate::value::Value;

/// One term of an ordering: a column, ascending or descending. Build it
/// with [`Column::asc`](crate::Column::asc) or [`Column::desc`](crate::Column::desc).
pub struct Order<M> {
    pub(crate) column: &'static str,
    pub(crate) index: usize,
    pub(crate) descending: bool,
    /// The column may hold NULL.
    pub(crate) nullable: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Order<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Order<M> {}

impl<M> std::fmt::Debug for Order<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let direction = if self.descending { "DESC" } else { "ASC" };
        write!(f, "{} {direction}", self.column)
    }
}

impl<M> Order<M> {
    pub(crate) fn new(column: &'static str, index: usize, descending: bool) -> Self {
        Order {
            column,
            index,
            descending,
            nullable: false,
            _model: PhantomData,
        }
    }

    pub(crate) fn nullable(self, nullable: bool) -> Self {
        Order { nullable, ..self }
    }

    /// This term without its model: the engine runs one copy for every model.
    pub(crate) fn erase(self) -> Order<()> {
        Order::new(self.column, self.index, self.descending).nullable(self.nullable)
    }

    /// Orders two values of this term's column as `ORDER BY` would.
    pub(crate) fn compare(&self, a: &Value, b: &Value) -> Ordering {
        let order = compare(a, b);
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

/// SQLite's order of values: NULL, then numbers (integers and reals by
/// value), then text (bytewise: the BINARY collation), then blobs.
pub(crate) fn compare(a: &Value, b: &Value) -> Ordering {
    fn class(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        // `partial_cmp`: -0.0 equals 0.0, as in SQLite; NaN is never stored.
        (Value::Real(x), Value::Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Integer(x), Value::Real(y)) => integer_real(*x, *y),
        (Value::Real(x), Value::Integer(y)) => integer_real(*y, *x).reverse(),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

/// An integer against a real, exactly (an `i64` does not always fit an `f64`).
fn integer_real(i: i64, r: f64) -> Ordering {
    // 2^63 as f64: every real at or beyond it is beyond every i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if r >= LIMIT {
        return Ordering::Less;
    }
    if r < -LIMIT {
        return Ordering::Greater;
    }
    let whole = r.trunc();
    match i.cmp(&(whole as i64)) {
        Ordering::Equal => 0.0f64.total_cmp(&(r - whole)).then(Ordering::Equal),
        other => other,
    }
}

/// A row's values under an ordering, compared term by term.
pub(crate) fn compare_rows<M>(terms: &[Order<M>], a: &[Value], b: &[Value]) -> Ordering {
    terms
        .iter()
        .zip(a.iter().zip(b))
        .map(|(term, (x, y))| term.compare(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_order_as_in_sqlite() {
        let ordered = [
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Real(-1.5),
            Value::Integer(-1),
            Value::Real(0.5),
            Value::Integer(1),
            Value::Real(1e300),
            Value::Text("B".into()),
            Value::Text("a".into()),
            Value::Text("é".into()),
            Value::Blob(vec![0]),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare(a, b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(
            compare(&Value::Integer(3), &Value::Real(3.0)),
            Ordering::Equal
        );
        assert_eq!(
            compare(&Value::Integer(i64::MAX), &Value::Real(9.3e18)),
            Ordering::Less
        );
    }
}
