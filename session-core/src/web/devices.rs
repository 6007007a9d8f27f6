//! "Your devices": list the user's sessions and revoke one of them.

use uuid::Uuid;

use super::handle::SessionHandle;
use crate::error::Result;
use crate::record::SessionMeta;

/// One of the user's sessions, as shown on a "your devices" page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Metadata only: id, times, version. No attributes, no secret.
    pub meta: SessionMeta,
    /// True for the session of the request that asked.
    pub current: bool,
}

impl SessionHandle {
    /// The request's user's live sessions, oldest first, with the request's
    /// own session marked [`current`](Device::current).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) if the request has no live
    /// session; otherwise as
    /// [`SessionManager::list_user_sessions`](crate::SessionManager::list_user_sessions).
    pub async fn devices(&self) -> Result<Vec<Device>> {
        let s = self.require().await?;
        let list = self.manager().list_user_sessions(s.user_id()).await?;
        Ok(list
            .into_iter()
            .map(|meta| Device {
                current: meta.id == s.id(),
                meta,
            })
            .collect())
    }

    /// Ends session `id` on every node if it belongs to the request's user;
    /// returns whether it did. An id of another user's session gets the same
    /// `false` as an unknown id, so this reveals nothing about other users.
    /// Revoking the request's own session is a [`log_out`](Self::log_out)
    /// (the cookie is cleared).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) if the request has no live
    /// session; store errors otherwise.
    pub async fn revoke_device(&self, id: Uuid) -> Result<bool> {
        let s = self.require().await?;
        if id == s.id() {
            return self.log_out().await;
        }
        // A session's user never changes, so the check cannot go stale
        // between the listing and the delete.
        let owned = self
            .manager()
            .list_user_sessions(s.user_id())
            .await?
            .iter()
            .any(|m| m.id == id);
        if !owned {
            return Ok(false);
        }
        self.manager().delete_session(id).await
    }
}
