//! `GET /healthz` (the process answers), `GET /readyz` (migrations applied, the database
//! answering, fetched signing keys loaded) and `GET /metrics` (Prometheus text). None needs a token: expose them to the
//! platform, not the internet. All are cheap enough to poll every second.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse};

use super::register;
use crate::errors::ApiError;
use crate::metrics::PoolGauges;
use crate::openapi as doc;
use crate::state::AppState;
use crate::wire::{self, Alive, Liveness, Readiness, Ready};

/// This module's part of the document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub(super) struct Paths;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, "/healthz", [(Method::GET, web::to(healthz))]);
    register(cfg, "/metrics", [(Method::GET, web::to(metrics))]);
    register(cfg, "/readyz", [(Method::GET, web::to(readyz))]);
}

/// Liveness
///
/// 200 while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    security(()),
    responses(
        (status = 200, description = "The process answers.", body = wire::Liveness),
        doc::OperationErrors,
    )
)]
async fn healthz() -> Result<HttpResponse, ApiError> {
    wire::json(StatusCode::OK, &Liveness { status: Alive::Ok })
}

/// Metrics
///
/// Prometheus text: requests, the pool, database errors, ingest outcomes, the process.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(()),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String,
            content_type = "text/plain"),
        doc::OperationErrors,
    )
)]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.repository.pool_state();
    if let Some(replicas) = &state.replicas {
        state.metrics.set_replicas(&replicas.status());
    }
    let text = state.metrics.render(PoolGauges {
        connections: pool.connections,
        idle: pool.idle,
        waiting: pool.waiting,
        max: pool.max,
    });
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// Readiness
///
/// 200 when migrations are applied, the database answers and the signing keys of
/// `auth.jwks_url` (or `auth.oidc_issuer`), when configured, have been loaded; else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    security(()),
    responses(
        (status = 200, description = "Ready to serve.", body = wire::Readiness),
        doc::ReadinessErrors,
    )
)]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Err(reason) = state.authenticator.readiness() {
        return Err(ApiError::IdentityUnavailable(reason));
    }
    // `run` answers 503 itself until migrations are applied.
    state.run(|repository| repository.ping()).await?;
    wire::json(
        StatusCode::OK,
        &Readiness {
            status: Ready::Ready,
        },
    )
}
