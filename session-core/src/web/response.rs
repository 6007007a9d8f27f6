//! Errors as HTTP responses: a status a client can act on, and a body that
//! reveals nothing about the server's internals.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::error::Error;

/// The rejection of the [`SessionHandle`](super::SessionHandle) extractor
/// when the route is not wrapped in a [`SessionLayer`](super::SessionLayer):
/// a programming error, answered with `500 Internal Server Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingSessionLayer;

impl std::fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHandle used on a route without SessionLayer")
    }
}

impl std::error::Error for MissingSessionLayer {}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
    }
}

impl Error {
    /// The HTTP status this error maps to in [`IntoResponse`]:
    ///
    /// | error | status |
    /// | --- | --- |
    /// | `NotFound`, `InvalidToken`, `InvalidSignature` | 401 Unauthorized |
    /// | `VersionConflict`, `AttributeVersionConflict`, `TooManySessions` | 409 Conflict |
    /// | `AttributeTooLarge` | 413 Payload Too Large |
    /// | `Store`, `Notifier`, `ShutDown`, lock errors | 503 Service Unavailable |
    /// | anything else | 500 Internal Server Error |
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::NotFound | Error::InvalidToken | Error::InvalidSignature => {
                StatusCode::UNAUTHORIZED
            }
            Error::VersionConflict
            | Error::AttributeVersionConflict { .. }
            | Error::TooManySessions { .. } => StatusCode::CONFLICT,
            Error::AttributeTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Store { .. }
            | Error::Notifier { .. }
            | Error::ShutDown
            | Error::LockHeld { .. }
            | Error::LockNotHeld { .. }
            | Error::LockExpired { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Lets handlers return `Result<_, session_core::Error>`.
///
/// The body is the status's canonical reason only (never the error message,
/// which may name keys or database details); server-side errors (5xx) are
/// logged with `tracing::error!`, the rest at debug level.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "session error");
        } else {
            tracing::debug!(error = %self, "session error");
        }
        let reason = status.canonical_reason().unwrap_or("error");
        (status, reason).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies_reveal_no_details() {
        let e = Error::store_msg("connection to db-7.internal refused");
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Error::NotFound.status_code(), StatusCode::UNAUTHORIZED);
        assert_eq!(Error::VersionConflict.status_code(), StatusCode::CONFLICT);
        assert_eq!(
            Error::InvalidConfig("x".into()).status_code(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            MissingSessionLayer.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
