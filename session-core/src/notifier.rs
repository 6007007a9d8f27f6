//! The [`Notifier`] trait: how invalidations reach every node.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::invalidation::Invalidation;

/// What a notifier delivers to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierEvent {
    /// A raw payload as published (the engine decodes it; malformed payloads
    /// are counted and ignored).
    Payload(String),
    /// Delivery may have had a gap (connection lost and re-established): any
    /// invalidation may have been missed, so the engine revalidates its cache.
    Resync,
    /// Delivery had a gap, and every payload published during it has been
    /// delivered since (a notifier that replays a log): nothing to
    /// revalidate. The engine only counts it.
    Replayed,
}

/// Broadcasts invalidations between nodes.
///
/// # Contract
///
/// - [`publish`](Notifier::publish) delivers every payload of
///   `invalidation.encode()` to every subscribed node, including the
///   publisher (the engine skips its own by origin).
/// - [`subscribe`](Notifier::subscribe) starts delivery to the returned
///   receiver. After any period in which payloads may have been lost
///   (reconnect, lag), the notifier sends [`NotifierEvent::Resync`] *after*
///   it is listening again, so nothing published after the resync is missed.
///   A notifier that can replay what it missed (the PostgreSQL backends'
///   invalidation log) instead delivers every missed payload and then
///   [`NotifierEvent::Replayed`].
/// - A notifier checks its connection periodically, so a silently dead one is
///   noticed within a bounded, configurable time.
/// - Delivery stops, and background work ends, when the receiver is dropped.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Publishes an out-of-band invalidation (one that accompanies no store write).
    async fn publish(&self, invalidation: &Invalidation) -> Result<()>;

    /// Starts listening; events arrive on the returned channel.
    async fn subscribe(&self) -> Result<mpsc::Receiver<NotifierEvent>>;
}
