//! The query string as an extractor: a handler that takes [`Query<Q>`] runs only when the
//! query string is a valid `Q`, and never sees the raw pairs. Extractors run in the order of
//! the handler's arguments, so a route that takes the caller first refuses a bad token (401)
//! or another tenant's path (403) before it looks at the query (400).

use std::borrow::Cow;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use csbs_domain::FromQueryPairs;

use crate::errors::ApiError;

/// The request's query string, validated as `Q` (400 naming the parameter otherwise).
#[derive(Debug)]
pub(super) struct Query<Q>(pub Q);

impl<Q: FromQueryPairs> FromRequest for Query<Q> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req).map(Query))
    }
}

/// `Q` from the request's query string, for a handler that must check other things first.
pub(super) fn parse<Q: FromQueryPairs>(req: &HttpRequest) -> Result<Q, ApiError> {
    Ok(Q::from_pairs(&pairs(req.query_string()))?)
}

/// The pairs a query string holds, decoded, in order, repeated keys included.
pub(super) fn pairs(query_string: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query_string.as_bytes()).collect()
}
