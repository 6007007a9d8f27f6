//! Per-call options, as plain structs with defaults.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Options for [`SessionManager::get_session`](crate::SessionManager::get_session).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Bypass this node's cache and read the store (the result is cached).
    pub force_refresh: bool,
    /// Do not record this read as an access (no last-access write, no
    /// inactivity extension), for example for admin views.
    pub skip_last_access_update: bool,
    /// Refetch if the cached copy's version is lower (read-your-writes across
    /// nodes: pass the version the client saw last).
    pub min_version: Option<i64>,
}

/// Options for [`SessionManager::update_session`](crate::SessionManager::update_session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateOptions {
    /// Fail with `VersionConflict` if the session changed since it was read.
    pub check_version: bool,
    /// Fail with `AttributeVersionConflict` if any changed attribute changed
    /// (or a new key appeared) since the session was read.
    pub check_attribute_versions: bool,
    /// Tell other nodes to drop their copy (default true; also requires
    /// `Config::notify_on_updates`).
    pub notify: bool,
    /// New absolute expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// New inactivity flag.
    pub include_inactivity: Option<bool>,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            check_version: false,
            check_attribute_versions: false,
            notify: true,
            expires_at: None,
            include_inactivity: None,
        }
    }
}

/// Options for [`SessionManager::create_session`](crate::SessionManager::create_session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Group of the new session.
    pub group_id: Option<Uuid>,
    /// Absolute expiry; default now + `Config::session_expiration`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the inactivity limit applies (default true).
    pub include_inactivity: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            group_id: None,
            expires_at: None,
            include_inactivity: true,
        }
    }
}
