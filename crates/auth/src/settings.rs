//! The `auth` section of the service configuration: where the token keys come from, which
//! issuer and audience to insist on, and which roles mean administrator and backup engine.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Token validation settings. Every field has a default, so a configuration names only what it
/// changes; unknown fields are refused so that a misspelt setting is noticed at start-up.
///
/// At least one of `hmac_secret`, `public_key_files` and `jwks_file` must be set, or
/// [`crate::TokenValidator::from_settings`] fails: a service that cannot accept any token is a
/// misconfiguration, not a mode.
///
/// `Debug` shows the secret as `[REDACTED]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Shared secret for HS256/HS384/HS512 tokens, meant for development and tests; at least
    /// [`crate::MIN_HMAC_SECRET_BYTES`] bytes. Default: none.
    pub hmac_secret: Option<SecretString>,
    /// PEM files with one public key each: RSA (`PUBLIC KEY` or `RSA PUBLIC KEY`, at least 2048
    /// bits; RS256/384/512 and PS256/384/512), EC P-256 (ES256), EC P-384 (ES384) or Ed25519
    /// (EdDSA). Default: none.
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS file (`{"keys": [...]}`) of public signature keys; a token's `kid` selects the key.
    /// Default: none.
    pub jwks_file: Option<PathBuf>,
    /// When set, tokens must carry exactly this `iss`. Default: not checked.
    pub issuer: Option<String>,
    /// When set, tokens must carry this value in `aud`. Default: `aud` is not checked.
    pub audience: Option<String>,
    /// The role that makes a caller an administrator (any tenant, `all_tenants`).
    /// Default: `admin`.
    pub admin_role: String,
    /// The role backup engines need for the ingest API. Default: `csbs_service`.
    pub service_role: String,
    /// Which tenants a service-role token may write into. Default: `any`.
    pub service_tenants: ServiceTenants,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default: 30.
    pub leeway_seconds: u64,
}

/// Which tenants a backup engine's token (one with the service role) may write into.
///
/// Read through `TryFrom<String>`, so that a wrong value is told the values allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ServiceTenants {
    /// Every tenant: one engine serves the whole cloud, as Karbor's protection service does
    /// under its own service project. The token's `project_id` is the engine's, not a bound.
    #[default]
    Any,
    /// Only the token's own `project_id`: for deployments that give each tenant (or each
    /// group of tenants) engines of their own, so a leaked engine token reaches one tenant.
    Own,
}

impl TryFrom<String> for ServiceTenants {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "any" => Ok(Self::Any),
            "own" => Ok(Self::Own),
            other => Err(format!("`{other}` is not allowed: use `any` or `own`")),
        }
    }
}

impl AuthSettings {
    /// The default `admin_role`.
    pub const DEFAULT_ADMIN_ROLE: &'static str = "admin";
    /// The default `service_role`.
    pub const DEFAULT_SERVICE_ROLE: &'static str = "csbs_service";
    /// The default `leeway_seconds`: enough for hosts kept in sync by NTP, short enough that an
    /// expired token stops working within half a minute.
    pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            hmac_secret: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            issuer: None,
            audience: None,
            admin_role: Self::DEFAULT_ADMIN_ROLE.to_owned(),
            service_role: Self::DEFAULT_SERVICE_ROLE.to_owned(),
            service_tenants: ServiceTenants::default(),
            leeway_seconds: Self::DEFAULT_LEEWAY_SECONDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_fill_missing_fields() {
        let settings: AuthSettings = serde_json::from_str(r#"{"issuer": "idp"}"#).unwrap();
        assert_eq!(settings.issuer.as_deref(), Some("idp"));
        assert_eq!(settings.admin_role, "admin");
        assert_eq!(settings.service_role, "csbs_service");
        assert_eq!(settings.leeway_seconds, 30);
        assert!(settings.hmac_secret.is_none());
        assert!(settings.public_key_files.is_empty());
        assert!(settings.jwks_file.is_none());
        assert!(settings.audience.is_none());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let result = serde_json::from_str::<AuthSettings>(r#"{"hmac_secert": "x"}"#);
        assert!(result.is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let settings: AuthSettings =
            serde_json::from_str(r#"{"hmac_secret": "very-secret-value-0123456789abcdef"}"#)
                .unwrap();
        assert_eq!(
            settings.hmac_secret.as_ref().unwrap().expose_secret(),
            "very-secret-value-0123456789abcdef"
        );
        let debug = format!("{settings:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }
}
