//! Authentication as an extractor: a handler that takes [`Authenticated`] runs only for a
//! request with a valid token.
//!
//! Validation may ask Keystone over the network, so the extractors are futures: the worker
//! serves other requests meanwhile.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use csbs_auth::{extract_token, AuthError, Caller};
use csbs_domain::ProjectId;
use futures_util::future::LocalBoxFuture;

use crate::errors::ApiError;
use crate::state::AppState;

/// The caller of a request whose token passed validation.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

async fn authenticate(req: HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let authenticator = &state.authenticator;
    let refuse = |error| ApiError::unauthenticated(error, authenticator.challenges());
    // A header that is not visible ASCII cannot hold a token.
    let header_text = |name: &header::HeaderName| -> Result<Option<&str>, ApiError> {
        req.headers()
            .get(name)
            .map(|value| value.to_str().map_err(|_| refuse(AuthError::Malformed)))
            .transpose()
    };
    let x_auth_token = header_text(&header::HeaderName::from_static("x-auth-token"))?;
    let authorization = header_text(&header::AUTHORIZATION)?;
    let token = extract_token(x_auth_token, authorization).map_err(refuse)?;
    authenticator
        .validate(token)
        .await
        .map(Authenticated)
        .map_err(|error| ApiError::from_validation(error, authenticator.challenges()))
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// The caller of a request on a tenant's path (`/v1/{project_id}/…`), authorized for that
/// tenant: the token is checked first (401), then the path's project (400), then the caller's
/// right to it (403).
#[derive(Debug, Clone)]
pub struct TenantCaller {
    /// Who asks.
    pub caller: Caller,
    /// The path's tenant.
    pub project: ProjectId,
}

async fn authorize_tenant(req: HttpRequest) -> Result<TenantCaller, ApiError> {
    let Authenticated(caller) = authenticate(req.clone()).await?;
    let path_project = req.match_info().get("project_id").unwrap_or_default();
    let project = ProjectId::parse("project_id", path_project)?;
    caller.authorize_project(&project)?;
    Ok(TenantCaller { caller, project })
}

impl FromRequest for TenantCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authorize_tenant(req.clone()))
    }
}
