//! The `auth` section of the service configuration: where the token keys come from, which
//! issuer and audience to insist on, which roles mean administrator and backup engine, and
//! the Keystone identity service (`auth.keystone`) that validates opaque tokens.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Token validation settings. Every field has a default, so a configuration names only what it
/// changes; unknown fields are refused so that a misspelt setting is noticed at start-up.
///
/// At least one of `hmac_secret`, `public_key_files`, `jwks_file`, `jwks_url`, `oidc_issuer`
/// and `keystone.url` must be set, or [`crate::Authenticator::from_settings`] fails: a service that cannot accept any
/// token is a misconfiguration, not a mode.
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
    /// PEM and JWKS files are read again on SIGHUP. Default: none.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (an identity provider's `jwks_uri`), fetched at start and refreshed in the
    /// background: every `jwks_refresh_seconds`, sooner when the answer's `Cache-Control:
    /// max-age` says so, and early when a token names a `kid` not yet known. A failed refresh
    /// keeps the last good keys. Default: none.
    pub jwks_url: Option<String>,
    /// An OpenID Connect issuer whose `/.well-known/openid-configuration` names the JWKS URL
    /// (`jwks_uri`); it is also the required `iss` unless `issuer` says otherwise. Not together
    /// with `jwks_url`. Default: none.
    pub oidc_issuer: Option<String>,
    /// The longest the keys of `jwks_url` (or `oidc_issuer`) are used without fetching them
    /// again, in seconds. Default: 300.
    pub jwks_refresh_seconds: u64,
    /// The shortest time between two fetches of the JWKS, in seconds, whatever the answer's
    /// cache lifetime or the tokens with unknown `kid`s ask for. Default: 5.
    pub jwks_min_refresh_seconds: u64,
    /// The longest one fetch of the JWKS (or of the discovery document) may take, in
    /// milliseconds, connecting included. Default: 3000.
    pub jwks_timeout_ms: u64,
    /// A PEM file of CA certificates that the JWKS URL's (and the issuer's) certificate must
    /// chain to, beside the system's. Default: none.
    pub jwks_ca_file: Option<PathBuf>,
    /// When set, tokens must carry exactly this `iss`. Default: not checked.
    pub issuer: Option<String>,
    /// When set, tokens must carry this value in `aud`. Default: `aud` is not checked.
    pub audience: Option<String>,
    /// The roles that make a caller an administrator (any tenant, `all_tenants`): one name or
    /// a list, any of which is enough. Default: `admin`.
    pub admin_role: RoleNames,
    /// The roles backup engines need for the ingest API, any of which is enough.
    /// Default: `csbs_service`.
    pub service_role: RoleNames,
    /// Which tenants a service-role token may write into. Default: `any`.
    pub service_tenants: ServiceTenants,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default: 30.
    pub leeway_seconds: u64,
    /// The Keystone identity service; off unless `url` is set.
    pub keystone: KeystoneSettings,
}

/// Role names: one name (`admin_role = "admin"`), a comma-separated list in one string (as an
/// environment variable gives it: `admin,cloud_admin`), or a list (`["admin", "cloud_admin"]`).
/// A caller holding any of them has the role. Names match exactly, case included.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "OneOrMany")]
pub struct RoleNames(Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for RoleNames {
    fn from(value: OneOrMany) -> Self {
        match value {
            OneOrMany::One(text) => Self(text.split(',').map(|r| r.trim().to_owned()).collect()),
            OneOrMany::Many(names) => Self(names),
        }
    }
}

impl RoleNames {
    /// These names.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// Whether `roles` holds any of these names.
    pub fn any_in(&self, roles: &[String]) -> bool {
        roles.iter().any(|role| self.0.contains(role))
    }

    /// Whether the list is empty or holds a blank name: either would be a setting that means
    /// nothing, or everything.
    pub(crate) fn is_blank(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(|name| name.trim().is_empty())
    }
}

impl fmt::Display for RoleNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// `auth.keystone`: validating opaque tokens with an OpenStack Keystone (or a compatible
/// identity service such as Huawei/OTC IAM) as keystonemiddleware does, with the service's own
/// account. Every field but `url` and `password` has a default.
///
/// `Debug` shows the password as `[REDACTED]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoneSettings {
    /// The identity endpoint with its version, e.g. `http://keystone:5000/v3`; setting it
    /// turns Keystone validation on. Default: none (off).
    pub url: Option<String>,
    /// The service account's user name. Default: `csbs`.
    pub username: String,
    /// The service account's password. Required when `url` is set.
    pub password: Option<SecretString>,
    /// The project the service account's token is scoped to. Default: `service`.
    pub project_name: String,
    /// The service account's domain. Default: `Default`.
    pub user_domain_name: String,
    /// The domain of `project_name`. Default: `Default`.
    pub project_domain_name: String,
    /// How long a validated token is believed without asking Keystone again, in seconds; never
    /// past the token's expiry. This is how long a revoked token may still be accepted.
    /// 0 asks Keystone on every request. Default: 300.
    pub cache_seconds: u64,
    /// Validated tokens remembered at most. Default: 10000.
    pub cache_entries: u64,
    /// How long a token Keystone called invalid is remembered, in seconds (at most
    /// [`crate::MAX_INVALID_CACHE_SECONDS`]). Default: 5.
    pub invalid_cache_seconds: u64,
    /// The longest one call to Keystone may take, in milliseconds (connecting included); a
    /// slower Keystone is unavailable (503). Default: 3000.
    pub timeout_ms: u64,
    /// Validation calls to Keystone in flight at once; more wait (up to `timeout_ms`, then
    /// 503), so that a flood of unknown tokens cannot overload Keystone. Default: 16.
    pub max_validations_in_flight: usize,
    /// A PEM file of CA certificates that Keystone's certificate must chain to, beside the
    /// system's. Default: none.
    pub ca_file: Option<PathBuf>,
    /// The identity URL clients are sent to in `WWW-Authenticate: Keystone uri="…"`.
    /// Default: `url`.
    pub public_url: Option<String>,
}

impl KeystoneSettings {
    /// The default `cache_seconds`, keystonemiddleware's `token_cache_time`.
    pub const DEFAULT_CACHE_SECONDS: u64 = 300;
}

impl Default for KeystoneSettings {
    fn default() -> Self {
        Self {
            url: None,
            username: "csbs".to_owned(),
            password: None,
            project_name: "service".to_owned(),
            user_domain_name: "Default".to_owned(),
            project_domain_name: "Default".to_owned(),
            cache_seconds: Self::DEFAULT_CACHE_SECONDS,
            cache_entries: 10_000,
            invalid_cache_seconds: 5,
            timeout_ms: 3000,
            max_validations_in_flight: 16,
            ca_file: None,
            public_url: None,
        }
    }
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
    /// The default `jwks_refresh_seconds`: a key an identity provider removed stops working
    /// within five minutes, and the provider is asked twelve times an hour.
    pub const DEFAULT_JWKS_REFRESH_SECONDS: u64 = 300;
    /// The default `jwks_min_refresh_seconds`: "a few seconds", so that tokens naming unknown
    /// keys cannot make the service hammer the identity provider.
    pub const DEFAULT_JWKS_MIN_REFRESH_SECONDS: u64 = 5;
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            hmac_secret: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            jwks_url: None,
            oidc_issuer: None,
            jwks_refresh_seconds: Self::DEFAULT_JWKS_REFRESH_SECONDS,
            jwks_min_refresh_seconds: Self::DEFAULT_JWKS_MIN_REFRESH_SECONDS,
            jwks_timeout_ms: 3000,
            jwks_ca_file: None,
            issuer: None,
            audience: None,
            admin_role: RoleNames::new([Self::DEFAULT_ADMIN_ROLE]),
            service_role: RoleNames::new([Self::DEFAULT_SERVICE_ROLE]),
            service_tenants: ServiceTenants::default(),
            leeway_seconds: Self::DEFAULT_LEEWAY_SECONDS,
            keystone: KeystoneSettings::default(),
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
        assert_eq!(settings.admin_role, RoleNames::new(["admin"]));
        assert_eq!(settings.service_role, RoleNames::new(["csbs_service"]));
        assert!(settings.keystone.url.is_none());
        assert_eq!(settings.keystone.cache_seconds, 300);
        assert_eq!(settings.leeway_seconds, 30);
        assert!(settings.hmac_secret.is_none());
        assert!(settings.public_key_files.is_empty());
        assert!(settings.jwks_file.is_none());
        assert!(settings.jwks_url.is_none());
        assert!(settings.oidc_issuer.is_none());
        assert_eq!(settings.jwks_refresh_seconds, 300);
        assert_eq!(settings.jwks_min_refresh_seconds, 5);
        assert!(settings.audience.is_none());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let result = serde_json::from_str::<AuthSettings>(r#"{"hmac_secert": "x"}"#);
        assert!(result.is_err());
    }

    #[test]
    fn role_names_are_one_name_a_comma_list_or_a_list() {
        let rows = [
            (r#""admin""#, vec!["admin"]),
            (r#""admin, cloud_admin""#, vec!["admin", "cloud_admin"]),
            (r#"["admin", "op"]"#, vec!["admin", "op"]),
        ];
        for (json, names) in rows {
            let parsed: RoleNames = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, RoleNames::new(names), "{json}");
            assert!(!parsed.is_blank(), "{json}");
        }
        for blank in [r#""""#, r#"[]"#, r#""admin,""#, r#"["admin", " "]"#] {
            let parsed: RoleNames = serde_json::from_str(blank).unwrap();
            assert!(parsed.is_blank(), "{blank}");
        }
        let names = RoleNames::new(["admin", "cloud_admin"]);
        assert!(names.any_in(&["member".to_owned(), "cloud_admin".to_owned()]));
        assert!(!names.any_in(&["Admin".to_owned()]));
        assert_eq!(names.to_string(), "admin, cloud_admin");
    }

    #[test]
    fn debug_hides_the_keystone_password() {
        let settings: AuthSettings = serde_json::from_str(
            r#"{"keystone": {"url": "http://ks/v3", "password": "keystone-password-xyz"}}"#,
        )
        .unwrap();
        assert_eq!(settings.keystone.url.as_deref(), Some("http://ks/v3"));
        assert_eq!(settings.keystone.username, "csbs");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("keystone-password-xyz"), "{debug}");
        assert!(serde_json::from_str::<AuthSettings>(r#"{"keystone": {"passwrd": "x"}}"#).is_err());
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
