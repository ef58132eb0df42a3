//! Who is calling, and may they do this? Token validation and authorisation of the CSBS query
//! service (wire contract §5).
//!
//! A request's token arrives in `X-Auth-Token` or `Authorization: Bearer` ([`extract_token`]).
//! An [`Authenticator`], built once at start-up from [`AuthSettings`], routes it by its shape:
//! a JWT is checked by a [`TokenValidator`] with an HMAC secret (development) and/or public keys
//! from PEM files, a JWKS file, or a JWKS URL or OpenID Connect issuer refreshed in the
//! background (production; files are read again on SIGHUP); an opaque token is validated by Keystone
//! (`auth.keystone`), as keystonemiddleware does, with a cache. A valid token becomes a
//! [`Caller`], whose `authorize_*` methods answer the tenant, administrator and service-role
//! questions.
//!
//! Every way a token can be bad is an [`AuthError`] (401 upstream); an identity service that
//! cannot say is an [`IdentityUnavailable`] (503 upstream); every refusal of a valid caller is
//! an [`AccessDenied`] (403 upstream). All display messages safe to show to clients. This crate
//! knows nothing of HTTP servers: header values come in as `Option<&str>`, and Keystone is
//! asked with an HTTP client of its own.

#![warn(missing_docs)]

mod authenticator;
mod ca_file;
mod caller;
mod claims;
mod errors;
mod generated_secret;
mod key_files;
mod keys;
mod keystone;
mod mint;
mod remote_keys;
mod settings;
mod token_header;
mod token_source;
mod validator;

pub use authenticator::{
    Authenticator, KeySource, NoObserver, ValidationObserver, ValidationOutcome,
};
pub use caller::Caller;
pub use claims::Claims;
pub use errors::{
    AccessDenied, AuthError, IdentityUnavailable, KeyError, MintError, ValidationError,
};
pub use generated_secret::{GeneratedSecretError, IfMissing, SecretSource, GENERATED_SECRET_FILE};
pub use keystone::{KeystoneCall, MAX_INVALID_CACHE_SECONDS};
pub use mint::mint_hs256;
pub use settings::{AuthSettings, KeystoneSettings, RoleNames, ServiceTenants};
pub use token_source::extract_token;
pub use validator::TokenValidator;

/// The longest token accepted, in bytes. Longer ones are refused before anything is decoded, so
/// that a hostile token cannot make the service parse or verify megabytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The shortest HMAC secret accepted, in bytes: RFC 7518 §3.2 asks for a key at least as long as
/// the hash output, and HS256 is the weakest algorithm the secret signs.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The largest `leeway_seconds` accepted (five minutes, the classic Kerberos clock skew).
pub const MAX_LEEWAY_SECONDS: u64 = 300;
