//! [`Statement`]: one statement of [`session_core::postgres`] with its
//! binds, run by diesel-async as a *cached* prepared statement.
//!
//! `diesel::sql_query` would run the same text, but marks itself unsafe to
//! cache, so diesel-async would prepare it again on every call: an extra
//! round trip (Parse/Describe) per operation. A `Statement` pushes the same
//! text and the same binds without that mark, so each connection prepares a
//! statement once (keyed by its SQL and bind types) and afterwards every
//! call is one round trip (Bind/Execute/Sync).

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// SQL text with `$n` placeholders and its bind values in order. Results
/// are read by column name (`QueryableByName`), as with `sql_query`.
pub(crate) struct Statement<'a> {
    sql: &'a str,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'a>>,
}

impl<'a> Statement<'a> {
    /// The statement `sql`, with no binds yet.
    pub(crate) fn new(sql: &'a str) -> Self {
        Statement {
            sql,
            binds: Vec::new(),
        }
    }

    /// Adds the next bind (`$1`, then `$2`, ...) as SQL type `ST`.
    pub(crate) fn bind<ST, T>(mut self, value: T) -> Self
    where
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + 'a,
        ST: 'a,
    {
        self.binds.push(Box::new(Bind {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

impl QueryFragment<Pg> for Statement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.sql);
        for bind in &self.binds {
            bind.walk_ast(out.reborrow())?;
        }
        Ok(())
    }
}

/// No static query id: diesel keys the statement cache by SQL text and bind
/// types instead.
impl QueryId for Statement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement<'_> {
    type SqlType = Untyped;
}

/// One bind value; the placeholder is already in the SQL text.
struct Bind<ST, T> {
    value: T,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, T> QueryFragment<Pg> for Bind<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Public because diesel-async enables diesel's third-party-backend
        // feature (and pins diesel ~2.3 for it).
        out.push_bind_param_value_only::<ST, T>(&self.value)
    }
}
