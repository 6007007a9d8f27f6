//! The conformance suite for `session-core` backends.
//!
//! Every backend (ours and yours) is judged by the same cases: implement
//! [`TestBackend`] for yours and expand [`conformance_tests!`] in an
//! integration test. Each case becomes one `#[tokio::test]` named after the
//! behaviour it pins down, so failures read like a specification:
//!
//! ```text
//! // tests/conformance.rs of your store crate (needs `tokio` as a dev-dependency)
//! session_testkit::conformance_tests!(my_store::MyTestBackend);
//! ```
//!
//! The in-memory backend runs the suite as
//! `conformance_tests!(session_testkit::MemoryTestBackend)`.

mod backend;
pub mod cases;
mod cluster;
mod counting;
pub mod fixtures;
pub mod locks;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use backend::{DeliveryModes, NotifyMode, TestBackend};
pub use cluster::{Cluster, PATIENCE, eventually, test_config};
pub use counting::{CountingStore, StoreCalls};
pub use memory::MemoryTestBackend;

/// Expands into one `#[tokio::test]` per conformance case for the backend
/// type `$backend` (which implements [`TestBackend`]). The calling crate
/// needs `tokio` (with the `macros` and `rt-multi-thread` features) as a
/// dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ty) => {
        $crate::__conformance_cases!($backend;
            basics::create_get_round_trip_typed_values,
            basics::unknown_token_and_wrong_secret_are_the_same_not_found,
            basics::force_refresh_and_is_from_cache,
            basics::typed_decode_retained_and_not_type_pinned,
            basics::invalidated_session_cannot_be_saved,
            basics::token_rotation,
            basics::list_user_sessions_metadata,
            basics::group_change,
            basics::expiry_and_inactivity_update_options,
            basics::shutdown_idempotent,
            versions::update_bumps_versions_and_other_node_sees_it,
            versions::session_version_conflict_leaves_store_unchanged,
            versions::attribute_version_conflicts,
            versions::last_writer_wins_without_checks,
            versions::update_with_8_tasks_on_2_nodes_counts_exactly_800,
            versions::oversized_attribute_rejected_with_nothing_written,
            versions::invalid_attribute_keys_rejected_with_nothing_written,
            deletes::delete_one_seen_on_every_node,
            deletes::delete_all_user_sessions_1000_seen_on_every_node,
            deletes::delete_all_sessions_1000_seen_on_every_node,
            deletes::delete_by_group_seen_on_every_node,
            deletes::delete_attribute_from_all_user_sessions,
            deletes::remove_user_cached_sessions_from_all_nodes,
            deletes::clear_entire_cache_on_every_node,
            expiry::absolute_expiry_enforced_on_read,
            expiry::inactivity_expiry_enforced_on_read,
            expiry::inactivity_survives_when_another_node_saw_activity,
            expiry::include_inactivity_false_ignores_idleness,
            expiry::attribute_expiry_enforced_on_read,
            expiry::cleanup_removes_expired_in_batches,
            expiry::cleanup_never_runs_on_two_nodes_at_once,
            last_access::last_access_batched_at_most_ceil_n_over_batch_writes,
            last_access::last_access_never_moves_backwards,
            last_access::skip_last_access_update_honoured_on_cache_hits,
            last_access::shutdown_flushes_last_access,
            coherence::resync_after_gap_evicts_exactly_changed_and_deleted,
            coherence::resync_retries_a_failed_read_once_then_clears,
            coherence::load_vs_invalidation_race_stress,
            coherence::min_version_reads_your_writes,
            coherence::max_lifetime_in_cache_refetches_once_without_loop,
            coherence::own_invalidations_are_skipped,
            coherence::malformed_notification_ignored_and_counted,
            limits::max_sessions_concurrent_creates_evict_never_exceeds,
            limits::max_sessions_concurrent_creates_reject_never_exceeds,
        );
        $crate::__conformance_lock_cases!($backend;
            lock_exactly_one_of_ten_concurrent_lockers_wins,
            lock_expired_lease_is_taken_over_and_token_grows,
            lock_heartbeat_keeps_lock_past_lease_and_stops_after_unlock,
            lock_extend_works_and_fails_with_expired_after_expiry,
            lock_unlock_or_extend_by_non_owner_is_not_held,
            lock_ten_workers_five_resources_no_overlap,
            lock_guard_releases_on_drop,
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn lock_provider_error_surfaces_as_error() {
            $crate::cases::locks::run::<$backend, _, _>(|nodes, failing| async move {
                $crate::locks::lock_provider_error_surfaces_as_error(&nodes, failing).await;
            })
            .await;
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_lock_cases {
    ($backend:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::cases::locks::run::<$backend, _, _>(|nodes, _failing| async move {
                    $crate::locks::$case(&nodes).await;
                })
                .await;
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($backend:ty; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::cases::$module::$case::<$backend>().await;
            }
        )*
    };
}
