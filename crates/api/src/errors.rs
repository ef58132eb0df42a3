//! The API error type and the one place where errors become HTTP answers (spec §6).
//!
//! Handlers return [`ApiError`]; its `error_response` chooses the status and error code and
//! leaves an [`ErrorAnswer`] on the response. The request envelope (`envelope.rs`) writes that
//! body as JSON with the request id, and gives answers that carry none (actix's own 404, 405,
//! payload errors, panics) a body of the same shape.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use csbs_auth::{AccessDenied, AuthError, ValidationError};
use csbs_domain::ParamError;
use csbs_storage::StorageError;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A bad query parameter, path segment or body.
    #[error("Invalid request parameters: {0}")]
    InvalidParameter(#[from] ParamError),
    /// No token, or one that fails validation; `challenges` are the `WWW-Authenticate`
    /// values, one per kind of token the service accepts.
    #[error("Authentication failed: {error}")]
    Unauthenticated {
        error: AuthError,
        challenges: Vec<String>,
    },
    /// A valid token without the right to this request.
    #[error("Access denied: {0}")]
    Forbidden(#[from] AccessDenied),
    /// A request body larger than the service takes, before or after decoding.
    #[error("Invalid request parameters: {0}")]
    PayloadTooLarge(String),
    /// A body in a `Content-Encoding` the service does not read.
    #[error("Invalid request parameters: {0}")]
    UnsupportedEncoding(String),
    /// A request body that did not arrive in time.
    #[error("Invalid request parameters: {0}")]
    BodyTimeout(String),
    /// The backup (or backup record) does not exist for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// A write based on a stale version, a transition the lifecycle forbids, or a reused
    /// idempotency key.
    #[error("{0}")]
    Conflict(String),
    /// No route has this path.
    #[error("No route matches {0}")]
    NoRoute(String),
    /// The route exists, the method does not; `allow` lists the methods it takes.
    #[error("Method {method} is not allowed on this route")]
    MethodNotAllowed { method: String, allow: String },
    /// The database cannot answer now.
    #[error("The service is temporarily unavailable; retry later")]
    Unavailable(String),
    /// The identity service (Keystone) cannot validate the token now. Never a 401: an identity
    /// outage must not look like a logout.
    #[error("The identity service is temporarily unavailable; retry later")]
    IdentityUnavailable(String),
    /// Anything else. The cause is logged, never shown.
    #[error("Internal error")]
    Internal(String),
}

/// Defines [`ErrorCode`] from one list: each variant's wire spelling, written once, is its
/// serde name (so the body, and the document through `ToSchema`) and its [`ErrorCode::as_str`].
macro_rules! error_codes {
    // `tt`, not `literal`: a literal fragment reaches the derives as an opaque group, which
    // utoipa does not read as a rename.
    ($($(#[doc = $doc:literal])* $variant:ident = $code:tt,)+) => {
        // The one table that the HTTP mapping (`ApiError::code`, `ErrorCode::for_status`), the
        // error bodies and the OpenAPI document derive from.
        /// The error codes of spec §6.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[serde(rename = $code)] $variant,)+
        }

        impl ErrorCode {
            /// The wire spelling, e.g. `CSBS.9001`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }
        }
    };
}

error_codes! {
    /// 400 (and 408, 413, 415): an invalid parameter, path segment or body.
    InvalidParameter = "CSBS.9001",
    /// 401.
    Unauthenticated = "APIGW.0301",
    /// 403.
    Forbidden = "APIGW.0302",
    /// 404: no such backup or backup record.
    NotFound = "CSBS.3001",
    /// 409, ingest.
    Conflict = "CSBS.9409",
    /// 404 / 405: no such route, or a known route with another method.
    NoRoute = "APIGW.0101",
    /// 500.
    Internal = "CSBS.9999",
    /// 503.
    Unavailable = "CSBS.9998",
}

impl ErrorCode {
    /// The code of an error answer that carries no body of its own (actix's own refusals),
    /// chosen by its status.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Self::NoRoute,
            StatusCode::UNAUTHORIZED => Self::Unauthenticated,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable,
            s if s.is_client_error() => Self::InvalidParameter,
            _ => Self::Internal,
        }
    }
}

impl ApiError {
    /// The error code of spec §6.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidParameter(_)
            | Self::PayloadTooLarge(_)
            | Self::UnsupportedEncoding(_)
            | Self::BodyTimeout(_) => ErrorCode::InvalidParameter,
            Self::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::NoRoute(_) | Self::MethodNotAllowed { .. } => ErrorCode::NoRoute,
            Self::Unavailable(_) | Self::IdentityUnavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A refused token, answered with `challenges` in `WWW-Authenticate`.
    pub fn unauthenticated(error: AuthError, challenges: &[String]) -> Self {
        Self::Unauthenticated {
            error,
            challenges: challenges.to_vec(),
        }
    }

    /// A token that did not make a caller: 401 with `challenges`, or 503.
    pub fn from_validation(error: ValidationError, challenges: &[String]) -> Self {
        match error {
            ValidationError::Rejected(error) => Self::unauthenticated(error, challenges),
            ValidationError::Unavailable(error) => Self::IdentityUnavailable(error.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::UnknownMarker => {
                Self::InvalidParameter(ParamError::new("marker", "names no item of this list"))
            }
            error if error.is_transient() => Self::Unavailable(error.to_string()),
            error => Self::Internal(error.to_string()),
        }
    }
}

/// The code and message of an error answer, left on the response for the envelope to render
/// as an [`ErrorBody`] with the request's id.
#[derive(Debug, Clone)]
pub struct ErrorAnswer {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorAnswer {
    /// The body of spec §6.
    pub fn body<'a>(&'a self, request_id: &'a str) -> ErrorBody<'a> {
        ErrorBody {
            error_code: self.code,
            error_msg: &self.message,
            request_id,
        }
    }

    /// The answer for an error that carries none of its own, chosen by status.
    pub fn for_status(status: StatusCode) -> Self {
        let code = ErrorCode::for_status(status);
        let message = match code {
            ErrorCode::NoRoute if status == StatusCode::METHOD_NOT_ALLOWED => {
                "Method is not allowed on this route".to_owned()
            }
            ErrorCode::NoRoute => "No route matches this path".to_owned(),
            ErrorCode::Unauthenticated => "Authentication failed".to_owned(),
            ErrorCode::Forbidden => "Access denied".to_owned(),
            ErrorCode::Conflict => "Conflict".to_owned(),
            ErrorCode::Unavailable => {
                "The service is temporarily unavailable; retry later".to_owned()
            }
            ErrorCode::NotFound => "Not found".to_owned(),
            ErrorCode::InvalidParameter => format!(
                "Invalid request parameters: {}",
                status.canonical_reason().unwrap_or("bad request")
            ),
            ErrorCode::Internal => "Internal error".to_owned(),
        };
        Self { code, message }
    }
}

/// The error answer of spec §6, for every error whatever produced it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong, by kind.
    pub error_code: ErrorCode,
    /// What went wrong, for people: names the parameter at fault; never shows internals.
    #[schema(min_length = 1)]
    pub error_msg: &'a str,
    /// The request's id, as in the `X-Request-Id` header.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub request_id: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::IdentityUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => tracing::error!(%cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            Self::IdentityUnavailable(cause) => {
                tracing::warn!(%cause, "identity service unavailable");
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if self.code() == ErrorCode::Unavailable {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
        }
        if let Self::Unauthenticated { challenges, .. } = self {
            for challenge in challenges {
                response.append_header((header::WWW_AUTHENTICATE, challenge.as_str()));
            }
        }
        if let Self::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        // The rest of a refused body is not read: the connection cannot carry another request.
        if matches!(self, Self::PayloadTooLarge(_) | Self::BodyTimeout(_)) {
            response.force_close();
        }
        let answer = ErrorAnswer {
            code: self.code(),
            message: self.to_string(),
        };
        // The envelope rewrites this body with the request id; the body written here only
        // shows if an error ever escapes the envelope.
        let mut response = response.json(answer.body(""));
        response.extensions_mut().insert(answer);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_their_statuses() {
        let cases = [
            (
                StorageError::Unavailable("down".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (StorageError::Timeout, StatusCode::SERVICE_UNAVAILABLE),
            (
                StorageError::ReadOnly("read-only transaction".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                StorageError::StorageFull("database or disk is full".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (StorageError::UnknownMarker, StatusCode::BAD_REQUEST),
            (
                StorageError::Query("syntax error at SELECT".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            let api: ApiError = error.into();
            assert_eq!(api.status_code(), status);
            assert!(
                !api.to_string().contains("SELECT"),
                "no SQL in messages: {api}"
            );
        }
    }

    #[test]
    fn unavailable_answers_say_when_to_retry() {
        for error in [
            ApiError::Unavailable("x".into()),
            ApiError::IdentityUnavailable("keystone down".into()),
        ] {
            let response = error.error_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response.headers().get(header::RETRY_AFTER).unwrap(),
                &RETRY_AFTER_SECONDS.to_string()
            );
        }
    }

    #[test]
    fn refused_tokens_carry_one_challenge_per_scheme() {
        let challenges = [
            "Keystone uri=\"http://ks/v3\"".to_owned(),
            "Bearer".to_owned(),
        ];
        let response = ApiError::from_validation(
            ValidationError::Rejected(AuthError::UnknownToken),
            &challenges,
        )
        .error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let sent: Vec<_> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(sent, challenges);
    }
}
