//! Typed column handles: what `#[derive(Sharded)]` generates for each stored
//! field (`User::AGE`), and the operands a column accepts.

use std::marker::PhantomData;

use super::filter::{Expr, Filter, Op};
use super::order::Order;
use crate::error::Result;
use crate::value::{SqlField, Value};

/// A column of model `M` holding Rust type `T`.
///
/// The derive generates one per stored field as an associated constant
/// named after the field in capitals (`age` → `User::AGE`), so a misspelled
/// column does not compile, and neither does a value of the wrong type or a
/// column of another model in a query:
///
/// ```
/// # #[cfg(feature = "embedded")] {
/// use collegedb::Sharded;
///
/// #[derive(Sharded)]
/// struct User {
///     #[primary_key]
///     id: String,
///     age: u32,
///     nickname: Option<String>,
/// }
///
/// let adults = User::AGE.ge(18).and(User::NICKNAME.is_not_null());
/// let query = User::query().filter(adults).order_by(User::AGE.desc());
/// # let _ = query;
/// # }
/// ```
pub struct Column<M, T> {
    name: &'static str,
    index: usize,
    /// The column may hold NULL (an `Option` field).
    nullable: bool,
    _types: PhantomData<fn() -> (M, T)>,
}

// By hand: a derive would bound `M` and `T` by `Clone`/`Copy`.
impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Column<M, T> {}

impl<M, T> std::fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Column").field(&self.name).finish()
    }
}

/// The type of a `#[sharded(json)]` column's handle: it can be ordered and
/// tested for NULL, but not compared with values (the stored form is JSON text).
pub struct Json<T>(PhantomData<fn() -> T>);

impl<M, T> Column<M, T> {
    /// The handle of column `name`, at `index` in the model's columns. Used
    /// by the derive; a hand-written handle must name a real column.
    #[doc(hidden)]
    pub const fn new(name: &'static str, index: usize) -> Self {
        Column {
            name,
            index,
            nullable: false,
            _types: PhantomData,
        }
    }

    /// [`Column::new`] for a column that may hold NULL.
    #[doc(hidden)]
    pub const fn nullable(name: &'static str, index: usize) -> Self {
        Column {
            name,
            index,
            nullable: true,
            _types: PhantomData,
        }
    }

    /// The column's name in the table.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Ascending order on this column (NULLs first, as in SQLite).
    pub fn asc(self) -> Order<M> {
        Order::new(self.name, self.index, false).nullable(self.nullable)
    }

    /// Descending order on this column (NULLs last, as in SQLite).
    pub fn desc(self) -> Order<M> {
        Order::new(self.name, self.index, true).nullable(self.nullable)
    }

    /// `column IS NULL`.
    pub fn is_null(self) -> Filter<M> {
        self.filter(Expr::Null {
            column: self.name,
            negated: false,
        })
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Filter<M> {
        self.filter(Expr::Null {
            column: self.name,
            negated: true,
        })
    }

    fn filter(self, expr: Expr) -> Filter<M> {
        Filter::from_expr(expr)
    }

    fn compare<V: Operand<T>>(self, op: Op, value: V) -> Filter<M> {
        self.filter(match value.into_value() {
            Ok(value) => Expr::Compare {
                column: self.name,
                index: self.index,
                op,
                value,
            },
            Err(err) => Expr::Invalid(err),
        })
    }

    /// `column = value`; comparing with `None` is `IS NULL`.
    pub fn eq<V: Operand<T>>(self, value: V) -> Filter<M> {
        self.compare(Op::Eq, value)
    }

    /// `column <> value`; comparing with `None` is `IS NOT NULL`.
    pub fn ne<V: Operand<T>>(self, value: V) -> Filter<M> {
        self.compare(Op::Ne, value)
    }

    /// `column < value`.
    pub fn lt<V: Operand<T>>(self, value: V) -> Filter<M> {
        self.compare(Op::Lt, value)
    }

    /// `column <= value`.
    pub fn le<V: Operand<T>>(self, value: V) -> Filter<M> {
        self.compare(Op::Le, value)
    }

    /// `column > value`.
    pub fn gt<V: Operand<T>>(self, value: V) -> Filter<M> {
        self.compare(Op::Gt, value)
    }

    /// `column >= value`.
    pub fn ge<V: Operand<T>>(self, value: V) -> Filter<M> {
        self.compare(Op::Ge, value)
    }

    /// `column BETWEEN low AND high` (both ends included).
    pub fn between<V: Operand<T>>(self, low: V, high: V) -> Filter<M> {
        self.filter(match (low.into_value(), high.into_value()) {
            (Ok(low), Ok(high)) => Expr::Between {
                column: self.name,
                low,
                high,
                negated: false,
            },
            (Err(err), _) | (_, Err(err)) => Expr::Invalid(err),
        })
    }

    /// `column IN (values...)`. An empty list matches nothing. Long lists of
    /// integers or text are bound as one JSON parameter, so they do not run
    /// into D1's limit of 100 parameters; a long list of floats or blobs
    /// binds one parameter per value and may.
    pub fn is_in<V: Operand<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<M> {
        self.membership(values, false)
    }

    /// `column NOT IN (values...)`. An empty list matches every row.
    pub fn not_in<V: Operand<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<M> {
        self.membership(values, true)
    }

    fn membership<V: Operand<T>>(
        self,
        values: impl IntoIterator<Item = V>,
        negated: bool,
    ) -> Filter<M> {
        // A loop rather than collecting into a `Result`: one iterator
        // adapter less per operand type.
        let mut converted = Vec::new();
        for value in values {
            match value.into_value() {
                Ok(value) => converted.push(value),
                Err(err) => return self.filter(Expr::Invalid(err)),
            }
        }
        self.filter(Expr::In {
            column: self.name,
            values: converted,
            negated,
        })
    }
}

impl<M, T: Textual> Column<M, T> {
    /// `column LIKE pattern` (`%` any run, `_` one character; ASCII letters
    /// match either case, as in SQLite).
    pub fn like(self, pattern: impl Into<String>) -> Filter<M> {
        self.filter(Expr::Like {
            column: self.name,
            pattern: pattern.into(),
            negated: false,
        })
    }

    /// `column NOT LIKE pattern`.
    pub fn not_like(self, pattern: impl Into<String>) -> Filter<M> {
        self.filter(Expr::Like {
            column: self.name,
            pattern: pattern.into(),
            negated: true,
        })
    }
}

/// A value a column of type `T` can be compared with: `T` itself, `&str`
/// for text columns, and the inner type for `Option` columns.
pub trait Operand<T> {
    /// Encodes the value; NaN and integers SQLite cannot hold are refused
    /// (the query then fails with that error when it runs).
    fn into_value(self) -> Result<Value>;
}

impl<T: SqlField> Operand<T> for T {
    fn into_value(self) -> Result<Value> {
        self.to_value()
    }
}

impl<T: SqlField> Operand<Option<T>> for T {
    fn into_value(self) -> Result<Value> {
        self.to_value()
    }
}

impl Operand<String> for &str {
    fn into_value(self) -> Result<Value> {
        Ok(Value::Text(self.to_owned()))
    }
}

impl Operand<Option<String>> for &str {
    fn into_value(self) -> Result<Value> {
        Ok(Value::Text(self.to_owned()))
    }
}

/// Column types that hold text, for `LIKE`.
pub trait Textual {}

impl Textual for String {}
impl Textual for Option<String> {}
