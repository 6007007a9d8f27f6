//! Mapping sqlx errors into [`session_core::Error`], keeping the source.

use session_core::Error;

/// A closure mapping a sqlx error to a store error saying what failed.
pub(crate) fn store(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::store(what, e)
}
