//! The routes of the service, registered per module.

// Visible to the crate so that `openapi.rs` can list the handlers' annotations.
pub(crate) mod checkpoint_items;
pub(crate) mod checkpoints;
pub(crate) mod health;
pub(crate) mod ingest;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::envelope::catch_panics;
use crate::errors::ApiError;
use crate::openapi;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    checkpoint_items::configure(cfg);
    checkpoints::configure(cfg);
    health::configure(cfg);
    ingest::configure(cfg);
    cfg.service(
        web::resource("/openapi.json")
            .wrap(from_fn(catch_panics))
            .route(web::get().to(openapi::serve))
            .default_service(web::to(method_not_allowed)),
    );
}

/// The answer for a path no route has (404 `APIGW.0101`).
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(req.path().to_owned()))
}

/// The answer for a known path with a method it does not take (405 `APIGW.0101`).
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

/// The query string as the pairs it holds, in order, repeated keys included.
pub(crate) fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}
