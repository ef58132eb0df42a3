//! The routes of the service, registered per module.

// Each module registers its routes and declares its part of the OpenAPI document (`Paths`),
// which `document` assembles: the routes depend on the document's shared pieces, never the
// other way round.
mod checkpoint_items;
mod checkpoints;
mod document;
mod health;
mod ingest;
mod query;
mod writes;

pub use document::{document_json, DocumentedLimits};

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse, Route};

use crate::envelope::catch_panics;
use crate::errors::ApiError;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    checkpoint_items::configure(cfg);
    checkpoints::configure(cfg);
    health::configure(cfg);
    ingest::configure(cfg);
    document::configure(cfg);
}

/// Registers the resource at `path` with a handler per method: each guarded against panics
/// (a panic is answered 500, the worker lives on), and any other method answered 405 with the
/// `Allow` header listing these.
fn register<const N: usize>(
    cfg: &mut web::ServiceConfig,
    path: &str,
    routes: [(Method, Route); N],
) {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(path).wrap(from_fn(catch_panics));
    for (method, route) in routes {
        resource = resource.route(route.method(method));
    }
    cfg.service(resource.default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move { method_not_allowed(&req, allow) }
    })));
}

/// The answer for a path no route has (404 `APIGW.0101`).
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(req.path().to_owned()))
}

/// The answer for a known path with a method it does not take (405 `APIGW.0101`, with the
/// methods it takes in `Allow`).
fn method_not_allowed(req: &HttpRequest, allow: String) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow,
    })
}
