//! What every handler shares: the repository, the token authenticator, and whether the
//! database is ready.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use csbs_auth::Authenticator;
use csbs_storage::{Replicas, Repository, StorageError};

use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::public_url::TrustedProxy;

/// Whether migrations have been applied since start-up. Until then every database request is
/// answered 503, so that a service started before its database never serves a half-made schema.
#[derive(Debug, Default)]
pub struct MigrationGate {
    migrated: AtomicBool,
}

impl MigrationGate {
    /// Records that migrations are applied.
    pub fn mark_migrated(&self) {
        self.migrated.store(true, Ordering::Release);
    }

    /// Whether migrations are applied.
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }
}

/// Shared by all workers.
#[derive(Clone)]
pub struct AppState {
    pub repository: Repository,
    /// Standbys for the public reads, when configured (`database.replica_urls`).
    pub replicas: Option<Replicas>,
    /// JWT keys and Keystone, as configured.
    pub authenticator: Authenticator,
    pub readiness: Arc<MigrationGate>,
    /// Base of the URLs in `checkpoint_items_links`, when configured.
    pub public_base_url: Option<String>,
    /// Proxies whose forwarding headers say how clients reached the service.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Items one bulk ingest request may carry.
    pub max_bulk_items: usize,
    /// The longest a request waits for the database, the wait for a connection included.
    pub database_deadline: Duration,
    /// The service's metrics.
    pub metrics: Metrics,
    /// `GET /openapi.json`, built at start-up with this service's limits.
    pub openapi_document: actix_web::web::Bytes,
}

impl AppState {
    /// Runs a public read (count, a list page without a marker, show) as [`AppState::run`]
    /// does, on a replica when one is usable, else on the primary. A replica that fails the
    /// read is set aside until its next check and the primary answers instead, so a replica
    /// going away costs no request an error.
    ///
    /// List pages after a marker are not read here: a replica further behind than the server
    /// of the previous page could lack items that page's server had after the marker, and the
    /// client would skip them.
    pub async fn run_read<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: Fn(&Repository) -> Result<T, StorageError> + Send + 'static,
    {
        let Some(replicas) = self.replicas.clone() else {
            self.metrics.read_served("primary");
            return self.run(work).await;
        };
        let (answer, server) = self
            .run(move |primary| {
                if let Some((index, replica)) = replicas.pick() {
                    match work(replica) {
                        Err(error) if error.is_transient() => {
                            tracing::warn!(%error, "a read failed on a replica; the primary answers");
                            replicas.set_aside(index);
                        }
                        answer => return answer.map(|answer| (answer, "replica")),
                    }
                }
                work(primary).map(|answer| (answer, "primary"))
            })
            .await?;
        self.metrics.read_served(server);
        Ok(answer)
    }

    /// Runs `work` against the repository on a blocking thread: diesel blocks, and the async
    /// workers must not.
    ///
    /// The answer comes within [`AppState::database_deadline`] whatever the database does: a
    /// server that stopped answering without closing its connections (frozen, or its host
    /// gone quiet while the kernel still acknowledges) is noticed by no timeout of its own, as
    /// PostgreSQL enforces `statement_timeout` itself. Past the deadline the request is
    /// answered 503 and the blocking call is left to finish (or fail) on its own; a write may
    /// still land then, which a retry of the same write finds (versions make it idempotent).
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Repository) -> Result<T, StorageError> + Send + 'static,
    {
        if !self.readiness.is_migrated() {
            self.metrics.database_error("unavailable");
            return Err(ApiError::Unavailable(
                "the database schema is not migrated yet".into(),
            ));
        }
        let repository = self.repository.clone();
        let answer = tokio::time::timeout(
            self.database_deadline,
            web::block(move || work(&repository)),
        );
        answer
            .await
            .map_err(|_| {
                self.metrics.database_error("deadline");
                ApiError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    self.database_deadline.as_millis()
                ))
            })?
            .map_err(|error| ApiError::Internal(format!("blocking task failed: {error}")))?
            .map_err(|error| {
                // An unknown marker is the caller's mistake, not a failure of the database.
                if !matches!(error, StorageError::UnknownMarker) {
                    self.metrics.database_error(error.kind());
                }
                ApiError::from(error)
            })
    }
}
