//! `GET /openapi.json`: the document assembled from the shared pieces (`crate::openapi`) and
//! each route module's own operations, which it declares beside its handlers.

use std::sync::OnceLock;

use actix_web::http::header::ContentType;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

use super::{checkpoint_items, checkpoints, health, ingest, register};
use crate::errors::ApiError;
use crate::openapi::{self as doc, ApiDoc, OpenApiDocument};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, "/openapi.json", [(Method::GET, web::to(serve))]);
}

/// This module's part: the document's own route.
#[derive(OpenApi)]
#[openapi(paths(serve))]
struct Paths;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
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
    document
}

/// The document as JSON text, built once: it is the same for the life of the process.
fn document_json() -> Result<&'static str, ApiError> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| document().to_json().map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|cause| ApiError::Internal(format!("the OpenAPI document: {cause}")))
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
async fn serve() -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document_json()?))
}
