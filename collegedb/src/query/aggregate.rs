//! Aggregates across shards: each shard computes partial results (counts,
//! sums, minima, maxima; an average as a sum and a count), and the merge
//! combines them exactly: never an average of averages.

use std::cmp::Ordering;
use std::marker::PhantomData;

use super::column::Column;
use super::filter::Op;
use super::order::compare;
use crate::error::{Error, Result};
use crate::value::Value;

/// An aggregate over rows of model `M`: [`count`], [`count_of`], [`sum`],
/// [`min`], [`max`] or [`avg`]. Compare one with a value to filter groups
/// ([`Grouped::having`](crate::Grouped::having)).
pub struct Aggregate<M> {
    pub(crate) function: Function,
    /// The column's name and index; `None` for `COUNT(*)`.
    pub(crate) column: Option<(&'static str, usize)>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Aggregate<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Aggregate<M> {}

impl<M> std::fmt::Debug for Aggregate<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let column = self.column.map_or("*", |(c, _)| c);
        write!(f, "{:?}({column})", self.function)
    }
}

impl<M> PartialEq for Aggregate<M> {
    fn eq(&self, other: &Self) -> bool {
        self.function == other.function && self.column == other.column
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

fn aggregate<M>(function: Function, column: Option<(&'static str, usize)>) -> Aggregate<M> {
    Aggregate {
        function,
        column,
        _model: PhantomData,
    }
}

/// `COUNT(*)`: the number of rows.
pub fn count<M>() -> Aggregate<M> {
    aggregate(Function::Count, None)
}

/// `COUNT(column)`: the number of rows where the column is not NULL.
pub fn count_of<M, T>(column: Column<M, T>) -> Aggregate<M> {
    aggregate(Function::Count, Some((column.name(), column.index())))
}

/// `SUM(column)`: an integer if every value is one, else a real; NULL over
/// no values. An integer sum beyond 64 bits is [`Error::IntegerOverflow`].
pub fn sum<M, T: Numeric>(column: Column<M, T>) -> Aggregate<M> {
    aggregate(Function::Sum, Some((column.name(), column.index())))
}

/// `MIN(column)`: the least non-NULL value in SQLite's order; NULL over none.
pub fn min<M, T>(column: Column<M, T>) -> Aggregate<M> {
    aggregate(Function::Min, Some((column.name(), column.index())))
}

/// `MAX(column)`: the greatest non-NULL value in SQLite's order; NULL over none.
pub fn max<M, T>(column: Column<M, T>) -> Aggregate<M> {
    aggregate(Function::Max, Some((column.name(), column.index())))
}

/// `AVG(column)`: a real, the sum of every shard's values over their count;
/// NULL over no values.
pub fn avg<M, T: Numeric>(column: Column<M, T>) -> Aggregate<M> {
    aggregate(Function::Avg, Some((column.name(), column.index())))
}

/// Column types that [`sum`] and [`avg`] accept.
pub trait Numeric {}

macro_rules! numeric {
    ($($ty:ty),*) => {$(
        impl Numeric for $ty {}
        impl Numeric for Option<$ty> {}
    )*};
}

numeric!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl<M> Aggregate<M> {
    fn compare(self, op: Op, value: impl Into<Value>) -> Having<M> {
        Having::from_expr(HavingExpr::Compare {
            aggregate: (self.function, self.column),
            op,
            value: value.into(),
        })
    }

    /// `aggregate = value`.
    pub fn eq(self, value: impl Into<Value>) -> Having<M> {
        self.compare(Op::Eq, value)
    }

    /// `aggregate <> value`.
    pub fn ne(self, value: impl Into<Value>) -> Having<M> {
        self.compare(Op::Ne, value)
    }

    /// `aggregate < value`.
    pub fn lt(self, value: impl Into<Value>) -> Having<M> {
        self.compare(Op::Lt, value)
    }

    /// `aggregate <= value`.
    pub fn le(self, value: impl Into<Value>) -> Having<M> {
        self.compare(Op::Le, value)
    }

    /// `aggregate > value`.
    pub fn gt(self, value: impl Into<Value>) -> Having<M> {
        self.compare(Op::Gt, value)
    }

    /// `aggregate >= value`.
    pub fn ge(self, value: impl Into<Value>) -> Having<M> {
        self.compare(Op::Ge, value)
    }

    /// The columns a shard returns for this aggregate's partial result.
    pub(crate) fn partial_sql(&self, alias: &str) -> Vec<String> {
        let col = self
            .column
            .map(|(c, _)| format!("{alias}.\"{c}\""))
            .unwrap_or_else(|| "*".to_owned());
        let sums = || sum_parts(&col).map(|part| format!("SUM({part})"));
        match self.function {
            Function::Count => vec![format!("COUNT({col})")],
            Function::Sum => sums().into(),
            Function::Min => vec![format!("MIN({col})")],
            Function::Max => vec![format!("MAX({col})")],
            Function::Avg => {
                let mut parts: Vec<String> = sums().into();
                parts.push(format!("COUNT({col})"));
                parts
            }
        }
    }

    /// The same columns as [`Aggregate::partial_sql`] for one row alone.
    pub(crate) fn row_sql(&self, alias: &str) -> Vec<String> {
        let col = self.column.map(|(c, _)| format!("{alias}.\"{c}\""));
        let present = |c: &Option<String>| match c {
            Some(c) => format!("({c} IS NOT NULL)"),
            None => "1".to_owned(),
        };
        let parts = |c: &Option<String>| sum_parts(c.as_deref().unwrap_or("NULL"));
        match self.function {
            Function::Count => vec![present(&col)],
            Function::Sum => parts(&col).into(),
            Function::Avg => {
                let mut parts: Vec<String> = parts(&col).into();
                parts.push(present(&col));
                parts
            }
            _ => vec![col.unwrap_or_default()],
        }
    }

    /// How many columns [`Aggregate::partial_sql`] returns.
    pub(crate) fn width(&self) -> usize {
        match self.function {
            Function::Sum => 3,
            Function::Avg => 4,
            _ => 1,
        }
    }
}

/// The parts of a partial sum of `col`, to be summed by the shard: the
/// integers' high and low 32 bits, and the reals. A shard's `SUM(col)` of
/// integers fails on overflow, even where the merged sum would fit or
/// should be reported as [`Error::IntegerOverflow`]; sums of these parts
/// cannot overflow (below 2^31 rows), and the merge adds them exactly.
fn sum_parts(col: &str) -> [String; 3] {
    [
        format!("CASE WHEN typeof({col}) = 'integer' THEN {col} >> 32 END"),
        format!("CASE WHEN typeof({col}) = 'integer' THEN {col} & 4294967295 END"),
        format!("CASE WHEN typeof({col}) = 'real' THEN {col} END"),
    ]
}

/// A condition on groups, from comparing aggregates with values; combine
/// with [`Having::and`], [`Having::or`] and `!`. It is evaluated after the
/// shards' partial results are merged, with SQL's three-valued logic: a
/// comparison with a NULL aggregate is unknown, and the group is left out.
pub struct Having<M> {
    pub(crate) expr: HavingExpr,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Having<M> {
    fn clone(&self) -> Self {
        Having::from_expr(self.expr.clone())
    }
}

impl<M> std::fmt::Debug for Having<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}

type AggregateId = (Function, Option<(&'static str, usize)>);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HavingExpr {
    Compare {
        aggregate: AggregateId,
        op: Op,
        value: Value,
    },
    And(Box<HavingExpr>, Box<HavingExpr>),
    Or(Box<HavingExpr>, Box<HavingExpr>),
    Not(Box<HavingExpr>),
}

impl<M> Having<M> {
    fn from_expr(expr: HavingExpr) -> Self {
        Having {
            expr,
            _model: PhantomData,
        }
    }

    /// Both conditions.
    pub fn and(self, other: Having<M>) -> Self {
        Having::from_expr(HavingExpr::And(Box::new(self.expr), Box::new(other.expr)))
    }

    /// Either condition.
    pub fn or(self, other: Having<M>) -> Self {
        Having::from_expr(HavingExpr::Or(Box::new(self.expr), Box::new(other.expr)))
    }

    /// The aggregates this condition reads, each once, as [`Aggregate`]s.
    /// This group filter without its model (see [`Aggregate::erase`]).
    pub(crate) fn erase(&self) -> Having<()> {
        Having::from_expr(self.expr.clone())
    }

    pub(crate) fn aggregates(&self) -> Vec<Aggregate<M>> {
        fn walk(e: &HavingExpr, out: &mut Vec<AggregateId>) {
            match e {
                HavingExpr::Compare { aggregate, .. } => {
                    if !out.contains(aggregate) {
                        out.push(*aggregate);
                    }
                }
                HavingExpr::And(a, b) | HavingExpr::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                HavingExpr::Not(a) => walk(a, out),
            }
        }
        let mut ids = Vec::new();
        walk(&self.expr, &mut ids);
        ids.into_iter().map(|(f, c)| aggregate(f, c)).collect()
    }

    /// Whether a group passes; `value` gives each aggregate's merged value.
    pub(crate) fn passes(&self, value: &dyn Fn(AggregateId) -> Value) -> bool {
        fn eval(e: &HavingExpr, value: &dyn Fn(AggregateId) -> Value) -> Option<bool> {
            match e {
                HavingExpr::Compare {
                    aggregate,
                    op,
                    value: against,
                } => {
                    let found = value(*aggregate);
                    if found == Value::Null || *against == Value::Null {
                        return None;
                    }
                    let order = compare(&found, against);
                    Some(match op {
                        Op::Eq => order == Ordering::Equal,
                        Op::Ne => order != Ordering::Equal,
                        Op::Lt => order == Ordering::Less,
                        Op::Le => order != Ordering::Greater,
                        Op::Gt => order == Ordering::Greater,
                        Op::Ge => order != Ordering::Less,
                    })
                }
                HavingExpr::And(a, b) => match (eval(a, value), eval(b, value)) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                HavingExpr::Or(a, b) => match (eval(a, value), eval(b, value)) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                HavingExpr::Not(a) => eval(a, value).map(|b| !b),
            }
        }
        eval(&self.expr, value) == Some(true)
    }
}

impl<M> std::ops::Not for Having<M> {
    type Output = Having<M>;

    fn not(self) -> Having<M> {
        Having::from_expr(HavingExpr::Not(Box::new(self.expr)))
    }
}

impl<M> Aggregate<M> {
    pub(crate) fn id(&self) -> AggregateId {
        (self.function, self.column)
    }

    /// This aggregate without its model: the engine runs one copy for every model.
    pub(crate) fn erase(self) -> Aggregate<()> {
        aggregate(self.function, self.column)
    }
}

/// One aggregate's running merge of partial results.
#[derive(Debug, Clone)]
pub(crate) enum Merged {
    Count(i64),
    /// An integer sum (exact), a real sum, or no value yet.
    Sum(Sum),
    Extreme(Value),
    Avg(Sum, i64),
}

/// A running sum: the integers' sum (exact), and the reals' sum; `None`
/// while no value of that kind was added. The reals are added as SQLite adds
/// them within a shard (Kahan–Babuška–Neumaier: the rounding error of each
/// addition is kept and added back at the end), so that where the rows live
/// does not change a sum that cancels.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sum {
    integer: Option<i128>,
    real: Option<f64>,
    error: f64,
}

impl Sum {
    /// Folds in one partial sum, as [`sum_parts`] returns it summed.
    fn add(mut self, parts: &[Value]) -> Sum {
        let part = |i: usize| parts.get(i).unwrap_or(&Value::Null);
        if let (Value::Integer(high), Value::Integer(low)) = (part(0), part(1)) {
            let value = (i128::from(*high) << 32) + i128::from(*low);
            self.integer = Some(self.integer.unwrap_or(0) + value);
        }
        if let Value::Real(r) = *part(2) {
            let sum = self.real.unwrap_or(0.0);
            let total = sum + r;
            // Past the largest double the error means nothing.
            if total.is_finite() {
                self.error += if sum.abs() >= r.abs() {
                    (sum - total) + r
                } else {
                    (r - total) + sum
                };
            }
            self.real = Some(total);
        }
        self
    }

    /// The reals' sum with its rounding error added back, as a double.
    fn real(self) -> Option<f64> {
        self.real.map(|real| {
            if real.is_finite() {
                real + self.error
            } else {
                real
            }
        })
    }

    /// SQLite's `SUM`: NULL over no values, a real if any value was one
    /// (NULL if infinities of both signs met), else the integer, or
    /// `overflow` if it does not fit in 64 bits.
    fn value(self, overflow: impl FnOnce() -> Error) -> Result<Value> {
        Ok(match (self.integer, self.real()) {
            (None, None) => Value::Null,
            (_, Some(_)) => self.as_f64().map_or(Value::Null, Value::Real),
            (Some(integer), None) => {
                Value::Integer(i64::try_from(integer).map_err(|_| overflow())?)
            }
        })
    }

    /// The sum as a double; `None` over no values, or where infinities of
    /// both signs met.
    fn as_f64(self) -> Option<f64> {
        match (self.integer, self.real()) {
            (None, None) => None,
            (integer, real) => Some(integer.map_or(0.0, |i| i as f64) + real.unwrap_or(0.0))
                .filter(|sum| !sum.is_nan()),
        }
    }
}

impl Merged {
    pub(crate) fn new<M>(aggregate: &Aggregate<M>) -> Merged {
        match aggregate.function {
            Function::Count => Merged::Count(0),
            Function::Sum => Merged::Sum(Sum::default()),
            Function::Min | Function::Max => Merged::Extreme(Value::Null),
            Function::Avg => Merged::Avg(Sum::default(), 0),
        }
    }

    /// Folds in one partial result (the aggregate's [`Aggregate::width`] values).
    pub(crate) fn add<M>(&mut self, aggregate: &Aggregate<M>, partial: &[Value]) {
        let first = partial.first().unwrap_or(&Value::Null);
        match self {
            Merged::Count(n) => *n += integer(first),
            Merged::Sum(s) => *s = s.add(partial),
            Merged::Extreme(current) => {
                let wanted = if aggregate.function == Function::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if *first != Value::Null
                    && (*current == Value::Null || compare(first, current) == wanted)
                {
                    *current = first.clone();
                }
            }
            Merged::Avg(s, n) => {
                *s = s.add(partial);
                *n += partial.get(3).map(integer).unwrap_or(0);
            }
        }
    }

    /// The aggregate's value over everything folded in.
    pub(crate) fn finish<M>(&self, table: &'static str, aggregate: &Aggregate<M>) -> Result<Value> {
        Ok(match self {
            Merged::Count(n) => Value::Integer(*n),
            Merged::Sum(s) => s.value(|| Error::IntegerOverflow {
                table,
                column: aggregate.column.map_or("*", |(c, _)| c),
            })?,
            Merged::Extreme(v) => v.clone(),
            Merged::Avg(s, n) => match s.as_f64() {
                Some(total) if *n > 0 => Value::Real(total / *n as f64),
                _ => Value::Null,
            },
        })
    }
}

fn integer(value: &Value) -> i64 {
    match value {
        Value::Integer(i) => *i,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_merge_from_sums_and_counts() {
        let avg: Aggregate<()> = aggregate(Function::Avg, Some(("age", 1)));
        let mut merged = Merged::new(&avg);
        // Shard A: 10 + 20 over 2 rows; shard B: 60 over 1 row. Not (15 + 60) / 2.
        let partial = |sum: i64, n: i64| [parts(sum), vec![Value::Integer(n)]].concat();
        merged.add(&avg, &partial(30, 2));
        merged.add(&avg, &partial(60, 1));
        merged.add(
            &avg,
            &[Value::Null, Value::Null, Value::Null, Value::Integer(0)],
        );
        assert_eq!(merged.finish("t", &avg).unwrap(), Value::Real(30.0));
    }

    #[test]
    fn integer_sums_overflow_as_sqlite_does() {
        let sum: Aggregate<()> = aggregate(Function::Sum, Some(("n", 1)));
        let mut merged = Merged::new(&sum);
        merged.add(&sum, &parts(i64::MAX));
        merged.add(&sum, &parts(1));
        assert_eq!(
            merged.finish("t", &sum).unwrap_err().code(),
            "integer_overflow"
        );
        // Back in range, the sum is exact; a real makes it real.
        merged.add(&sum, &parts(i64::MIN));
        assert_eq!(merged.finish("t", &sum).unwrap(), Value::Integer(0));
        merged.add(&sum, &[Value::Null, Value::Null, Value::Real(0.5)]);
        assert_eq!(merged.finish("t", &sum).unwrap(), Value::Real(0.5));
    }

    /// The summed parts of a shard holding the real `r` alone.
    fn real_parts(r: f64) -> Vec<Value> {
        vec![Value::Null, Value::Null, Value::Real(r)]
    }

    #[test]
    fn real_sums_keep_what_cancels_and_opposite_infinities_are_null() {
        let sum: Aggregate<()> = aggregate(Function::Sum, Some(("x", 1)));
        let avg: Aggregate<()> = aggregate(Function::Avg, Some(("x", 1)));
        let merged_over = |aggregate: &Aggregate<()>, shards: &[f64]| {
            let mut merged = Merged::new(aggregate);
            for &r in shards {
                let mut partial = real_parts(r);
                partial.push(Value::Integer(1));
                merged.add(aggregate, &partial[..aggregate.width()]);
            }
            merged.finish("t", aggregate).unwrap()
        };
        // What SQLite answers with the three rows on one shard.
        assert_eq!(merged_over(&sum, &[1e16, 1.0, -1e16]), Value::Real(1.0));
        assert_eq!(
            merged_over(&avg, &[1e16, 1.0, -1e16]),
            Value::Real(1.0 / 3.0)
        );
        assert_eq!(
            merged_over(&sum, &[f64::INFINITY, 5.0]),
            Value::Real(f64::INFINITY)
        );
        assert_eq!(
            merged_over(&sum, &[f64::INFINITY, f64::NEG_INFINITY]),
            Value::Null
        );
        assert_eq!(
            merged_over(&avg, &[f64::INFINITY, f64::NEG_INFINITY]),
            Value::Null
        );
    }

    /// The summed parts of a shard holding the integer `i` alone.
    fn parts(i: i64) -> Vec<Value> {
        vec![
            Value::Integer(i >> 32),
            Value::Integer(i & 0xFFFF_FFFF),
            Value::Null,
        ]
    }

    #[test]
    fn having_uses_three_valued_logic() {
        let total: Aggregate<()> = aggregate(Function::Sum, Some(("n", 1)));
        let h = !total.gt(5);
        assert!(!h.passes(&|_| Value::Null));
        assert!(h.passes(&|_| Value::Integer(3)));
        assert!(!h.passes(&|_| Value::Integer(7)));
    }
}
