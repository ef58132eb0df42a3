//! `GET /openapi.json`: the document assembled from the shared pieces (`crate::openapi`) and
//! each route module's own operations, which it declares beside its handlers.

use actix_web::http::header::ContentType;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::OpenApi;

use super::{checkpoint_items, checkpoints, health, ingest, register};
use crate::errors::ApiError;
use crate::openapi::{self as doc, ApiDoc, OpenApiDocument};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, "/openapi.json", [(Method::GET, web::to(serve))]);
}

/// This module's part: the document's own route.
#[derive(OpenApi)]
#[openapi(paths(serve))]
struct Paths;

/// The settings the document states as limits, so that it describes the running service.
#[derive(Debug, Clone, Copy)]
pub struct DocumentedLimits {
    /// `ingest.max_bulk_items`.
    pub max_bulk_items: usize,
}

/// The whole document, with `limits`.
fn document(limits: DocumentedLimits) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    for part in [
        checkpoint_items::Paths::openapi(),
        checkpoints::Paths::openapi(),
        ingest::Paths::openapi(),
        health::Paths::openapi(),
        Paths::openapi(),
    ] {
        document.merge(part);
    }
    doc::complete(&mut document);
    state_limits(&mut document, limits);
    document
}

/// The document as JSON text, built once at start-up: it is the same for the life of the
/// process.
pub fn document_json(limits: DocumentedLimits) -> Result<String, serde_json::Error> {
    document(limits).to_json()
}

/// Writes the configured limits into the schemas that state them.
fn state_limits(document: &mut utoipa::openapi::OpenApi, limits: DocumentedLimits) {
    let bulk = document
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("BulkRequest"));
    if let Some(RefOr::T(Schema::Object(bulk))) = bulk {
        if let Some(RefOr::T(Schema::Array(items))) = bulk.properties.get_mut("checkpoint_items") {
            items.max_items = Some(limits.max_bulk_items);
        }
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    security(()),
    responses(
        (status = 200, description = "This document.", body = OpenApiDocument),
        doc::OperationErrors,
    )
)]
async fn serve(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(state.openapi_document.clone()))
}
