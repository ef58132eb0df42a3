//! The errors of this crate: a bad token (401), an identity service that cannot say (503), a
//! refused caller (403), unusable key settings (start-up) and a token that cannot be minted.
//!
//! The `Display` text of [`AuthError`] and [`AccessDenied`] goes to clients, so it never holds
//! key material, file paths or library internals.

use std::io;
use std::path::PathBuf;

use crate::{MAX_LEEWAY_SECONDS, MAX_TOKEN_BYTES, MIN_HMAC_SECRET_BYTES};

/// Why a request is not authenticated: no token, or a token that fails validation.
///
/// Every variant means 401 to the HTTP layer; the variants exist for the message and for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither `X-Auth-Token` nor `Authorization: Bearer` carried a token.
    #[error("no token: send it in X-Auth-Token or as Authorization: Bearer <token>")]
    MissingToken,
    /// `Authorization` used a scheme other than `Bearer` (e.g. `Basic`).
    #[error("the Authorization header must use the Bearer scheme")]
    UnsupportedScheme,
    /// The token is longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Not a JWT: wrong shape, bad base64, or a header that is not the expected JSON.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The header names an algorithm that no configured key accepts (`none` included).
    #[error("the token algorithm '{0}' is not accepted")]
    UnsupportedAlgorithm(String),
    /// No configured key verifies the signature (wrong key, or a tampered token).
    #[error("the token signature is not valid")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future, beyond the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is missing or is not the configured issuer.
    #[error("the token was not issued by the expected issuer")]
    WrongIssuer,
    /// `aud` is missing or does not name the configured audience.
    #[error("the token is not meant for this service (wrong audience)")]
    WrongAudience,
    /// A required claim is missing or has the wrong type or value; the text says which.
    #[error("the token claims are invalid: {0}")]
    InvalidClaims(String),
    /// The identity service (Keystone) does not know the token: never issued, revoked, or
    /// expired.
    #[error("the identity service does not accept this token (invalid, revoked or expired)")]
    UnknownToken,
}

/// Why the identity service could not say whether a token is valid: unreachable, slower than
/// the timeout, failing, overloaded, or refusing the service's own account.
///
/// 503 upstream, never 401: an identity outage must not look to clients like a logout. The
/// text is for the operator's log and names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the identity service cannot validate tokens now: {0}")]
pub struct IdentityUnavailable(pub(crate) String);

/// Why a token did not make a caller: it is bad (401), or nobody could tell (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The token is not valid.
    #[error(transparent)]
    Rejected(#[from] AuthError),
    /// The identity service could not be asked.
    #[error(transparent)]
    Unavailable(#[from] IdentityUnavailable),
}

/// Why an authenticated caller may not do what it asked (403 upstream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct AccessDenied {
    reason: String,
}

impl AccessDenied {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why access was refused, in words meant for the caller.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Why the configured keys (or other auth settings) cannot make a [`crate::TokenValidator`].
///
/// Meant for the operator at start-up: messages name the file and setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No HMAC secret, public key file, JWKS file or URL, OIDC issuer or Keystone is
    /// configured, so no token could ever pass.
    #[error(
        "no token key is configured: set auth.hmac_secret (CSBS__AUTH__HMAC_SECRET), \
         auth.public_key_files, auth.jwks_file, auth.jwks_url, auth.oidc_issuer or \
         auth.keystone.url"
    )]
    NoKeys,
    /// The HMAC secret is shorter than [`MIN_HMAC_SECRET_BYTES`].
    #[error(
        "auth.hmac_secret (CSBS__AUTH__HMAC_SECRET) must be at least {MIN_HMAC_SECRET_BYTES} \
         bytes long"
    )]
    WeakHmacSecret,
    /// A key file could not be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A key file was read but holds no usable key.
    #[error("key file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A role, issuer or audience setting is set but empty: an empty role would match every
    /// token with an empty role string, an empty issuer or audience no token at all.
    #[error("auth.{setting} must not be empty")]
    EmptySetting {
        /// The setting's name (`admin_role`, `service_role`, `issuer` or `audience`).
        setting: &'static str,
    },
    /// An `auth.keystone` setting cannot be used; the text says why.
    #[error("auth.keystone.{setting} (CSBS__AUTH__KEYSTONE__{upper}): {reason}", upper = setting.to_uppercase())]
    Keystone {
        /// The setting's name inside `auth.keystone`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An `auth` setting of the signing keys (`jwks_url`, `oidc_issuer`, their timings) cannot
    /// be used; the text says why.
    #[error("auth.{setting} (CSBS__AUTH__{upper}): {reason}", upper = setting.to_uppercase())]
    Setting {
        /// The setting's name inside `auth`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `leeway_seconds` is over [`MAX_LEEWAY_SECONDS`]: a clock that far off needs fixing, and
    /// a long leeway keeps expired tokens working.
    #[error("auth.leeway_seconds must be at most {MAX_LEEWAY_SECONDS}")]
    LeewayTooLarge,
}

/// Why [`crate::mint_hs256`] could not make a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The secret is shorter than [`MIN_HMAC_SECRET_BYTES`]; the validator would refuse it too.
    #[error(
        "the HMAC secret (auth.hmac_secret, CSBS__AUTH__HMAC_SECRET) must be at least \
         {MIN_HMAC_SECRET_BYTES} bytes long"
    )]
    WeakSecret,
    /// The claims would make a token that the validator refuses; the text says why.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// The JWT library failed to encode or sign.
    #[error("cannot encode the token: {0}")]
    Encoding(String),
}

/// An error and its causes in one line (`a: b: c`): why a call failed (refused, reset, DNS,
/// TLS), without the request it was part of.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
