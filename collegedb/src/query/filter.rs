//! Filters: a typed tree of conditions on one model's columns, compiled to
//! a SQL condition with every value bound.

use std::marker::PhantomData;
use std::ops::Not;

use crate::error::Error;
use crate::value::Value;

/// A condition on rows of model `M`, built from its column handles and
/// combined with [`Filter::and`], [`Filter::or`] and `!`:
///
/// ```
/// # #[cfg(feature = "embedded")] {
/// # use collegedb::Sharded;
/// # #[derive(Sharded)] struct User { #[primary_key] id: String, age: u32, name: String }
/// let teens = User::AGE.between(13, 19);
/// let named = User::NAME.like("A%").or(User::NAME.is_in(["Bo", "Cy"]));
/// let filter = teens.and(!named);
/// # let _ = filter;
/// # }
/// ```
pub struct Filter<M> {
    pub(crate) expr: Expr,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Filter<M> {
    fn clone(&self) -> Self {
        Filter::from_expr(self.expr.clone())
    }
}

impl<M> std::fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// The condition tree. Column names come from the derive (validated identifiers).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// Every row.
    True,
    Compare {
        column: &'static str,
        index: usize,
        op: Op,
        value: Value,
    },
    In {
        column: &'static str,
        values: Vec<Value>,
        negated: bool,
    },
    Like {
        column: &'static str,
        pattern: String,
        negated: bool,
    },
    Null {
        column: &'static str,
        negated: bool,
    },
    Between {
        column: &'static str,
        low: Value,
        high: Value,
        negated: bool,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A value that could not be encoded: the query fails with it when it runs.
    Invalid(Error),
}

impl<M> Filter<M> {
    pub(crate) fn from_expr(expr: Expr) -> Self {
        Filter {
            expr,
            _model: PhantomData,
        }
    }

    /// The filter every row passes.
    pub fn all() -> Self {
        Filter::from_expr(Expr::True)
    }

    /// Both conditions.
    pub fn and(self, other: Filter<M>) -> Self {
        Filter::from_expr(match (self.expr, other.expr) {
            (Expr::True, e) | (e, Expr::True) => e,
            (Expr::And(mut a), Expr::And(b)) => {
                a.extend(b);
                Expr::And(a)
            }
            (Expr::And(mut a), e) => {
                a.push(e);
                Expr::And(a)
            }
            (a, b) => Expr::And(vec![a, b]),
        })
    }

    /// Either condition.
    pub fn or(self, other: Filter<M>) -> Self {
        Filter::from_expr(match (self.expr, other.expr) {
            (Expr::True, _) | (_, Expr::True) => Expr::True,
            (Expr::Or(mut a), Expr::Or(b)) => {
                a.extend(b);
                Expr::Or(a)
            }
            (Expr::Or(mut a), e) => {
                a.push(e);
                Expr::Or(a)
            }
            (a, b) => Expr::Or(vec![a, b]),
        })
    }

    /// Every filter of `filters` (all rows if there is none).
    pub fn all_of(filters: impl IntoIterator<Item = Filter<M>>) -> Self {
        filters.into_iter().fold(Filter::all(), Filter::and)
    }

    /// Any filter of `filters` (no row if there is none).
    pub fn any_of(filters: impl IntoIterator<Item = Filter<M>>) -> Self {
        let mut filters = filters.into_iter();
        match filters.next() {
            Some(first) => filters.fold(first, Filter::or),
            None => Filter::from_expr(Expr::Or(Vec::new())),
        }
    }

    /// The first value that could not be encoded, if any.
    pub(crate) fn invalid(&self) -> Option<&Error> {
        fn find(e: &Expr) -> Option<&Error> {
            match e {
                Expr::Invalid(err) => Some(err),
                Expr::And(all) | Expr::Or(all) => all.iter().find_map(find),
                Expr::Not(inner) => find(inner),
                _ => None,
            }
        }
        find(&self.expr)
    }
}

impl<M> Not for Filter<M> {
    type Output = Filter<M>;

    /// `NOT condition` (SQL's three-valued logic: a row where the condition
    /// is unknown because of a NULL passes neither it nor its negation).
    fn not(self) -> Filter<M> {
        Filter::from_expr(match self.expr {
            Expr::Not(inner) => *inner,
            e => Expr::Not(Box::new(e)),
        })
    }
}

impl Expr {
    /// The value this condition requires of column `index` in every row it
    /// passes (`column = value` as one of its top-level conditions), if any.
    pub(crate) fn pinned(&self, index: usize) -> Option<&Value> {
        fn pins(e: &Expr, index: usize) -> Option<&Value> {
            match e {
                Expr::Compare {
                    index: i,
                    op: Op::Eq,
                    value,
                    ..
                } if *i == index && *value != Value::Null => Some(value),
                _ => None,
            }
        }
        match self {
            Expr::And(all) => all.iter().find_map(|e| pins(e, index)),
            other => pins(other, index),
        }
    }
}

/// The parameters of a statement being built: each value bound once, named `?N`.
#[derive(Debug, Default)]
pub(crate) struct Binder {
    pub(crate) values: Vec<Value>,
}

/// Lists up to this long bind one parameter per value; longer lists of
/// integers and text bind one JSON array.
const INLINE_LIST: usize = 16;

impl Binder {
    /// Binds `value` and returns its placeholder.
    pub(crate) fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }

    /// The condition of `expr` over the columns of `alias`.
    pub(crate) fn condition(&mut self, alias: &str, expr: &Expr) -> String {
        let col = |c: &str| format!("{alias}.\"{c}\"");
        match expr {
            Expr::True => "1".to_owned(),
            Expr::Compare {
                column, op, value, ..
            } => match (op, value) {
                (Op::Eq, Value::Null) => format!("{} IS NULL", col(column)),
                (Op::Ne, Value::Null) => format!("{} IS NOT NULL", col(column)),
                _ => format!("{} {} {}", col(column), op.sql(), self.bind(value.clone())),
            },
            Expr::In {
                column,
                values,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                if values.is_empty() {
                    return if *negated { "1" } else { "0" }.to_owned();
                }
                let json = values.len() > INLINE_LIST
                    && values
                        .iter()
                        .all(|v| matches!(v, Value::Null | Value::Integer(_) | Value::Text(_)));
                if json {
                    let array = serde_json::Value::Array(values.iter().map(json_of).collect());
                    // `to_string`, not the value's `Display`: the same
                    // serializer as every other JSON text of the crate.
                    let text = serde_json::to_string(&array)
                        .expect("an array of integers and strings always serializes");
                    let param = self.bind(Value::Text(text));
                    format!(
                        "{} {not}IN (SELECT value FROM json_each({param}))",
                        col(column)
                    )
                } else {
                    let params: Vec<String> = values.iter().map(|v| self.bind(v.clone())).collect();
                    format!("{} {not}IN ({})", col(column), params.join(", "))
                }
            }
            Expr::Like {
                column,
                pattern,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let param = self.bind(Value::Text(pattern.clone()));
                format!("{} {not}LIKE {param}", col(column))
            }
            Expr::Null { column, negated } => {
                let not = if *negated { "NOT " } else { "" };
                format!("{} IS {not}NULL", col(column))
            }
            Expr::Between {
                column,
                low,
                high,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let low = self.bind(low.clone());
                let high = self.bind(high.clone());
                format!("{} {not}BETWEEN {low} AND {high}", col(column))
            }
            Expr::And(all) => self.join(alias, all, " AND ", "1"),
            Expr::Or(any) => self.join(alias, any, " OR ", "0"),
            Expr::Not(inner) => format!("NOT ({})", self.condition(alias, inner)),
            // Reported before any statement is built.
            Expr::Invalid(_) => "0".to_owned(),
        }
    }

    fn join(&mut self, alias: &str, exprs: &[Expr], sep: &str, empty: &str) -> String {
        if exprs.is_empty() {
            return empty.to_owned();
        }
        let parts: Vec<String> = exprs
            .iter()
            .map(|e| format!("({})", self.condition(alias, e)))
            .collect();
        parts.join(sep)
    }
}

/// An integer, text or NULL as JSON, for `json_each`.
fn json_of(value: &Value) -> serde_json::Value {
    match value {
        Value::Integer(i) => (*i).into(),
        Value::Text(t) => t.clone().into(),
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_bind_every_value_and_fold_true() {
        let a: Filter<()> = Filter::from_expr(Expr::Compare {
            column: "age",
            index: 1,
            op: Op::Ge,
            value: Value::Integer(18),
        });
        let none: Filter<()> = Filter::from_expr(Expr::Compare {
            column: "nick",
            index: 2,
            op: Op::Eq,
            value: Value::Null,
        });
        let f = Filter::all().and(a).and(!none);
        let mut b = Binder::default();
        assert_eq!(
            b.condition("_row", &f.expr),
            "(_row.\"age\" >= ?1) AND (NOT (_row.\"nick\" IS NULL))"
        );
        assert_eq!(b.values, [Value::Integer(18)]);
        assert_eq!(f.expr.pinned(1), None);
    }

    #[test]
    fn long_lists_of_integers_bind_one_json_array() {
        let f: Filter<()> = Filter::from_expr(Expr::In {
            column: "id",
            values: (0..100).map(Value::Integer).collect(),
            negated: false,
        });
        let mut b = Binder::default();
        let sql = b.condition("_row", &f.expr);
        assert_eq!(sql, "_row.\"id\" IN (SELECT value FROM json_each(?1))");
        assert_eq!(b.values.len(), 1);
    }
}
