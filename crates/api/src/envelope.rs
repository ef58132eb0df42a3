//! The envelope every request passes through: its request id, its JSON error body and one
//! access-log line; and the guard that answers a panicking handler with a 500.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, ResponseError};
use futures_util::FutureExt;

use crate::errors::{ApiError, ErrorAnswer};
use crate::state::AppState;

/// `X-Request-Id`: taken from the request when it is usable, else generated.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Openstack-Request-Id`: the same value, for OpenStack-family clients.
pub static OPENSTACK_REQUEST_ID: HeaderName = HeaderName::from_static("x-openstack-request-id");

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The longest `X-Request-Id` of a caller that is echoed.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A caller's id is reused if it is short and plain; anything else could smuggle text into
/// headers and logs, so it is replaced.
fn usable_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= MAX_REQUEST_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| text.to_owned())
}

/// The middleware function; see the module documentation.
pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(usable_request_id)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
    req.extensions_mut().insert(RequestId(request_id.clone()));

    // Handlers' errors arrive as responses; an `Err` here comes from actix itself, which then
    // answers with `ResponseError::error_response` (a JSON body of the same shape).
    let mut response = next.call(req).await?.map_into_boxed_body();

    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let body = response
            .response()
            .extensions()
            .get::<ErrorAnswer>()
            .cloned()
            .unwrap_or_else(|| ErrorAnswer::for_status(status));
        // Serializing two strings and a unit variant cannot fail.
        let json = serde_json::to_string(&body.body(&request_id)).unwrap_or_default();
        response = response.map_body(|head, _| {
            head.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            BoxBody::new(json)
        });
    }

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID.clone(), value.clone());
        headers.insert(OPENSTACK_REQUEST_ID.clone(), value);
    }

    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "(no route)".to_owned());
    let elapsed = started.elapsed();
    if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
        state.metrics.observe_request(
            response.request().method(),
            &route,
            status.as_u16(),
            elapsed.as_secs_f64(),
        );
    }
    tracing::info!(
        target: "csbs_api::access",
        method = %response.request().method(),
        route = %route,
        status = status.as_u16(),
        // Whole microseconds as milliseconds: a number that prints as `2.774`, where the
        // float of the seconds printed `2.7740329999999997`.
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        request_id = %request_id,
        "request"
    );
    Ok(response)
}

/// Answers a panicking handler with 500 `CSBS.9999` instead of dropping the connection.
///
/// Registered on each resource rather than around the whole application: it must hold a copy
/// of the request to answer with, and actix may not route a request that has been copied.
pub async fn catch_panics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let http_request = req.request().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(panic) => {
            let cause = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let error = ApiError::Internal(format!("request handler panicked: {cause}"));
            Ok(ServiceResponse::new(http_request, error.error_response()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_callers() {
        let cases = [
            ("req-7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12", true),
            ("abc.DEF:1_2", true),
            ("", false),
            ("has space", false),
            ("new\nline", false),
            (&"x".repeat(129), false),
        ];
        for (input, usable) in cases {
            let value = HeaderValue::from_str(input);
            let got = value.ok().as_ref().and_then(usable_request_id);
            assert_eq!(got.is_some(), usable, "{input:?}");
        }
    }
}
