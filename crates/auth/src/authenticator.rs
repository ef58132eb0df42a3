//! The service's one entry for tokens: JWTs checked here with the configured keys, opaque
//! tokens by Keystone, each routed by its shape.
//!
//! A token of three dot-separated base64url parts (`header.payload.signature`) is a JWT and goes
//! to the JWT keys when any are configured; every other token (a Keystone Fernet token, an IAM
//! token) goes to Keystone when it is configured. With only Keystone configured every token
//! goes there, JWT-shaped ones too (Keystone's own JWS tokens). With only JWT keys, a token of
//! another shape is malformed.

use std::sync::Arc;

use crate::keystone::{KeystoneCall, KeystoneValidator};
use crate::{
    AuthError, AuthSettings, Caller, KeyError, TokenValidator, ValidationError, MAX_TOKEN_BYTES,
};

/// How one Keystone validation ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationOutcome {
    /// The token is valid: a caller.
    Valid,
    /// Keystone does not accept the token (or its project id is unusable): 401.
    Invalid,
    /// The token has expired: 401.
    Expired,
    /// Keystone could not be asked: 503.
    Unavailable,
}

impl ValidationOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Which keys a (re)load was of, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The PEM and JWKS files, read again on SIGHUP.
    Files,
    /// The JWKS of `auth.jwks_url` or `auth.oidc_issuer`, fetched.
    Remote,
}

impl KeySource {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Remote => "jwks_url",
        }
    }
}

/// Told what token validation does, for metrics; every method does nothing by default.
pub trait ValidationObserver: Send + Sync {
    /// A Keystone token's validation ended (from the cache or from Keystone).
    fn validation(&self, _outcome: ValidationOutcome) {}
    /// A Keystone token was answered from the cache.
    fn cache_hit(&self) {}
    /// One call to Keystone took `seconds` (answered or not).
    fn keystone_call(&self, _call: KeystoneCall, _seconds: f64) {}
    /// The signing keys were (re)loaded from `source`, or could not be (`ok` false: the keys
    /// in use stay).
    fn key_load(&self, _source: KeySource, _ok: bool) {}
}

/// An observer that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl ValidationObserver for NoObserver {}

/// Validates every token the service accepts: JWTs and, when `auth.keystone.url` is set,
/// Keystone tokens. Built once at start-up; cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    jwt: Option<TokenValidator>,
    keystone: Option<KeystoneValidator>,
    challenges: Vec<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwt", &self.inner.jwt)
            .field("challenges", &self.inner.challenges)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the JWT keys and sets up Keystone validation, as configured.
    ///
    /// JWT keys are optional when Keystone is configured; without Keystone the errors are
    /// those of [`TokenValidator::from_settings`] (no key at all included).
    pub fn from_settings(
        settings: &AuthSettings,
        observer: Arc<dyn ValidationObserver>,
    ) -> Result<Self, KeyError> {
        let keystone_url = settings.keystone_url();
        let jwt = if settings.has_jwt_keys() || keystone_url.is_none() {
            Some(TokenValidator::build(settings, Arc::clone(&observer))?)
        } else {
            None
        };
        let keystone = keystone_url
            .map(|url| {
                let rules = crate::caller::RoleRules::from_settings(settings)?;
                KeystoneValidator::new(&settings.keystone, url, rules, observer)
            })
            .transpose()?;
        let mut challenges = Vec::new();
        if let Some(keystone) = &keystone {
            challenges.push(keystone.challenge().to_owned());
        }
        if jwt.is_some() {
            challenges.push("Bearer".to_owned());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                jwt,
                keystone,
                challenges,
            }),
        })
    }

    /// The JWT validator, when JWT keys are configured.
    pub fn jwt(&self) -> Option<&TokenValidator> {
        self.inner.jwt.as_ref()
    }

    /// `Err` with the reason while the service cannot validate tokens yet: the keys of
    /// `auth.jwks_url` (or `auth.oidc_issuer`) have not been fetched once.
    pub fn readiness(&self) -> Result<(), String> {
        self.inner
            .jwt
            .as_ref()
            .map_or(Ok(()), TokenValidator::readiness)
    }

    /// SIGHUP: reads the PEM and JWKS key files again and asks for the JWKS URL to be fetched
    /// again. A file that cannot be used is an error, and the keys in use stay as they were.
    /// Answers how many keys the files and the HMAC secret give, `None` without key files.
    pub fn reload_keys(&self) -> Result<Option<usize>, KeyError> {
        let Some(jwt) = &self.inner.jwt else {
            return Ok(None);
        };
        jwt.refresh_remote_keys();
        jwt.reload_key_files()
    }

    /// Whether Keystone tokens are accepted.
    pub fn accepts_keystone(&self) -> bool {
        self.inner.keystone.is_some()
    }

    /// The `WWW-Authenticate` challenges of a 401, one per accepted kind of token:
    /// `Keystone uri="…"` when Keystone is configured, `Bearer` when JWT keys are.
    pub fn challenges(&self) -> &[String] {
        &self.inner.challenges
    }

    /// Checks `token` and says who sent it: [`ValidationError::Rejected`] for a bad token
    /// (401), [`ValidationError::Unavailable`] when Keystone cannot be asked (503).
    pub async fn validate(&self, token: &str) -> Result<Caller, ValidationError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge.into());
        }
        match (&self.inner.jwt, &self.inner.keystone) {
            (Some(jwt), Some(_)) | (Some(jwt), None) if is_jwt_shaped(token) => {
                jwt.validate_current(token).await
            }
            (_, Some(keystone)) => keystone.validate(token).await,
            (Some(jwt), None) => jwt.validate_current(token).await,
            // `from_settings` never builds an authenticator with neither.
            (None, None) => Err(AuthError::Malformed.into()),
        }
    }
}

impl AuthSettings {
    /// Whether a JWT key (HMAC secret, PEM file, JWKS file or URL, OIDC issuer) is configured.
    pub(crate) fn has_jwt_keys(&self) -> bool {
        let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        self.hmac_secret.is_some()
            || !self.public_key_files.is_empty()
            || self.jwks_file.is_some()
            || set(&self.jwks_url)
            || set(&self.oidc_issuer)
    }

    /// The Keystone URL, when Keystone validation is on (an empty `url` is off, as an unset
    /// environment variable often arrives).
    pub fn keystone_url(&self) -> Option<&str> {
        self.keystone
            .url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
    }
}

/// `header.payload.signature`, base64url: the shape of a compact JWS. The signature may be
/// empty, so that an unsigned token is refused as a JWT rather than sent to Keystone.
fn is_jwt_shaped(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !header.is_empty()
        && !payload.is_empty()
        && [header, payload, signature].into_iter().all(base64url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_routed_by_shape() {
        let rows = [
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", true),
            ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.", true),
            ("a.b.c", true),
            // A Fernet token (Keystone), and tokens of other identity services.
            (
                "gAAAAABpXx3y0V-F8dL1mbk3QxYgZ1vPz1H5cW0a4W0AYxMlXk9yYfZ2LZfN3xq_4qgNwq2z",
                false,
            ),
            (
                "MIIDkQYJKoZIhvcNAQcCoIIDgjCCA34CAQExDTALBglghkgBZQMEAgEw+/=",
                false,
            ),
            ("a.b", false),
            ("a.b.c.d", false),
            (".b.c", false),
            ("a..c", false),
            ("a=.b.c", false),
            ("a.b.c+", false),
            ("", false),
        ];
        for (token, jwt) in rows {
            assert_eq!(is_jwt_shaped(token), jwt, "{token}");
        }
    }

    #[test]
    fn authenticator_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Authenticator>();
    }
}
