//! Mapping diesel, diesel-async and deadpool errors into
//! [`session_core::Error`], keeping the source.

use session_core::Error;

/// A closure mapping a driver error to a store error saying what failed.
pub(crate) fn store<E>(what: &'static str) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| Error::store(what, e)
}

/// A closure mapping a driver error to a notifier error saying what failed.
pub(crate) fn notifier<E>(what: &'static str) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| Error::notifier(what, e)
}
