//! Token validation: from a token string to a [`Caller`], or the [`AuthError`] that says why
//! not.
//!
//! The order matters: length first (before any decoding), then the header (shape, algorithm,
//! key id), then the signature against each candidate key, and only then the claims, so that
//! nothing from an unverified payload is ever believed.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, Validation};
use moka::future::Cache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::caller::RoleRules;
use crate::claims::{check_claims, check_times, has_expired};
use crate::keys::{KeyRing, Keys};
use crate::remote_keys::EarlyRefresh;
use crate::token_header::{read_header, TokenHeader};
use crate::{
    AuthError, AuthSettings, Caller, IdentityUnavailable, KeyError, KeySource, NoObserver,
    ValidationError, ValidationObserver, MAX_LEEWAY_SECONDS, MAX_TOKEN_BYTES,
};

/// Validates JWTs against the configured keys, issuer and audience.
///
/// Built once at start-up; cloning is cheap (one `Arc`), and it is `Send + Sync`.
#[derive(Clone)]
pub struct TokenValidator {
    inner: Arc<Inner>,
}

/// How many verified tokens are remembered, and for how long at most (a token is never taken
/// from the cache past its `exp`, nor once the keys have changed).
const VERIFIED_ENTRIES: u64 = 10_000;
const VERIFIED_FOR: Duration = Duration::from_secs(300);

/// A token that verified, remembered by the SHA-256 of its text so that its next requests cost
/// a digest and a lookup instead of decoding, verifying and reading it again (an eighth of a
/// counter-backed count's CPU).
#[derive(Clone)]
struct Verified {
    caller: Caller,
    /// Its `exp`: it is refused from `exp` + leeway on, as it would be if checked again.
    expires: u64,
    /// The keys it verified with. Once they change (a file reload, a fetched key set) it is
    /// checked again, so that a key taken out of use stops verifying at once.
    keys: Keys,
}

struct Inner {
    keys: KeyRing,
    verified: Cache<[u8; 32], Verified>,
    /// Claim rules for `jsonwebtoken`; `algorithms` is set per token.
    validation: Validation,
    leeway_seconds: u64,
    rules: RoleRules,
    observer: Arc<dyn ValidationObserver>,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator")
            .field("keys", &self.inner.keys)
            .field("issuer", &self.inner.validation.iss)
            .field("audience", &self.inner.validation.aud)
            .field("leeway_seconds", &self.inner.leeway_seconds)
            .field("admin_role", &self.inner.rules.admin)
            .field("service_role", &self.inner.rules.service)
            .finish()
    }
}

impl TokenValidator {
    /// Loads and checks every configured key.
    ///
    /// Fails when no key is configured at all, when a key file cannot be read or holds no
    /// usable public key (the message names the file), when the HMAC secret is too short, or
    /// when a role, issuer or audience setting is empty, or when the leeway is over
    /// [`MAX_LEEWAY_SECONDS`].
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, KeyError> {
        Self::build(settings, Arc::new(NoObserver))
    }

    /// As [`TokenValidator::from_settings`], telling `observer` of every key (re)load.
    pub(crate) fn build(
        settings: &AuthSettings,
        observer: Arc<dyn ValidationObserver>,
    ) -> Result<Self, KeyError> {
        let rules = RoleRules::from_settings(settings)?;
        for (setting, value) in [
            ("issuer", settings.issuer.as_ref()),
            ("audience", settings.audience.as_ref()),
        ] {
            if value.is_some_and(|v| v.trim().is_empty()) {
                return Err(KeyError::EmptySetting { setting });
            }
        }
        if settings.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(KeyError::LeewayTooLarge);
        }
        let keys = KeyRing::load(settings, Arc::clone(&observer))?;
        // An OpenID Connect issuer's tokens carry it as `iss`, unless `issuer` says otherwise.
        let issuer = settings.issuer.clone().or_else(|| {
            settings
                .oidc_issuer
                .as_deref()
                .map(str::trim)
                .filter(|issuer| !issuer.is_empty())
                .map(str::to_owned)
        });

        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = settings.leeway_seconds;
        // `exp` and `nbf` are checked by `claims::check_times`: jsonwebtoken reads them as
        // whole seconds only and refuses the fractions RFC 7519 allows as "missing".
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut required = HashSet::new();
        if let Some(issuer) = &issuer {
            validation.set_issuer(&[issuer]);
            // jsonwebtoken checks `iss` only when present; a configured issuer must be there.
            required.insert("iss".to_owned());
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.insert("aud".to_owned());
            }
            // Without a configured audience, `aud` is not looked at (jsonwebtoken would refuse
            // every token that has one).
            None => validation.validate_aud = false,
        }
        validation.required_spec_claims = required;

        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                verified: Cache::builder()
                    .max_capacity(VERIFIED_ENTRIES)
                    .time_to_live(VERIFIED_FOR)
                    .build(),
                validation,
                leeway_seconds: settings.leeway_seconds,
                rules,
                observer,
            }),
        })
    }

    /// How many verification keys are in use now (the HMAC secret counts as one; keys of a
    /// JWKS URL once fetched), for the start-up log.
    pub fn key_count(&self) -> usize {
        self.inner.keys.snapshot().len()
    }

    /// Reads the PEM and JWKS files again (SIGHUP); on any error the keys in use stay. Answers
    /// how many keys the files and the HMAC secret now give, `None` when no file is configured.
    pub fn reload_key_files(&self) -> Result<Option<usize>, KeyError> {
        let reloaded = self.inner.keys.reload_files();
        // `Ok(None)`: no key file is configured, so nothing was loaded.
        if !matches!(reloaded, Ok(None)) {
            self.inner
                .observer
                .key_load(KeySource::Files, reloaded.is_ok());
        }
        reloaded
    }

    /// Asks for the keys of `auth.jwks_url` (or `auth.oidc_issuer`) to be fetched again as soon
    /// as `jwks_min_refresh_seconds` allows; nothing when neither is configured.
    pub fn refresh_remote_keys(&self) {
        if let Some(remote) = self.inner.keys.remote() {
            remote.refresh_soon();
        }
    }

    /// `Err` with the reason while the keys of `auth.jwks_url` (or `auth.oidc_issuer`) have not
    /// been loaded yet; the service is not ready until they are.
    pub fn readiness(&self) -> Result<(), String> {
        self.inner
            .keys
            .remote()
            .map_or(Ok(()), crate::remote_keys::RemoteKeys::readiness)
    }

    /// [`TokenValidator::validate`], with the fetched keys kept current: a token that the keys
    /// in use do not verify and that names a `kid` no key has makes the JWKS be fetched early
    /// (at most once per `jwks_min_refresh_seconds`) before it is judged. When no key set has
    /// been fetched yet, or the provider cannot be asked now, such a token is
    /// [`ValidationError::Unavailable`] (503): the identity provider, not the token, is what
    /// is missing.
    ///
    /// A token that verified is remembered (see [`Verified`]); its next uses are answered from
    /// memory while it has not expired and the keys are the same.
    pub(crate) async fn validate_current(&self, token: &str) -> Result<Caller, ValidationError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge.into());
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.inner.verified.get(&digest).await {
            let now = jsonwebtoken::get_current_timestamp();
            if !has_expired(verified.expires, now, self.inner.leeway_seconds)
                && verified.keys.same_as(&self.inner.keys.snapshot())
            {
                return Ok(verified.caller);
            }
        }
        let verified = self.verify_current(token).await?;
        let caller = verified.caller.clone();
        self.inner.verified.insert(digest, verified).await;
        Ok(caller)
    }

    /// [`TokenValidator::validate_current`] without the memory of verified tokens.
    async fn verify_current(&self, token: &str) -> Result<Verified, ValidationError> {
        let Some(remote) = self.inner.keys.remote() else {
            return Ok(self.verify(token)?);
        };
        let header = read_header(token)?;
        let keys = self.inner.keys.snapshot();
        // The keys in use first: a token they verify costs no fetch.
        let error = match self.check(token, &header, &keys) {
            Err(error @ (AuthError::BadSignature | AuthError::UnsupportedAlgorithm(_))) => error,
            other => return Ok(other?),
        };
        let unknown_kid = header
            .kid
            .as_deref()
            .is_some_and(|kid| !keys.knows_kid(kid));
        drop(keys);
        if !unknown_kid && remote.keys().is_some() {
            return Err(error.into());
        }
        let refresh = remote.refresh_early().await;
        // Read before the keys: the refresh thread stores a fetch's keys before it clears the
        // failure, so a provider seen answering here has its keys in the snapshot below.
        let failing = remote.failing();
        let keys = self.inner.keys.snapshot();
        match self.check(token, &header, &keys) {
            Err(AuthError::BadSignature | AuthError::UnsupportedAlgorithm(_))
                if remote.keys().is_none() || refresh == EarlyRefresh::Failed || failing =>
            {
                // The provider could not be asked about this key: an outage, not a bad token.
                let state = if remote.keys().is_none() {
                    "are not loaded yet"
                } else {
                    "cannot be fetched now"
                };
                Err(IdentityUnavailable(format!(
                    "the signing keys of auth.{} {state}",
                    remote.setting()
                ))
                .into())
            }
            other => Ok(other?),
        }
    }

    /// Checks `token` and says who sent it.
    ///
    /// The signature must verify with a configured key whose algorithm is the one the header
    /// names; `exp` is required, `nbf` and `iat` are checked when present, `iss` and `aud` when
    /// configured, all with the configured leeway. `sub` and `project_id` are required.
    pub fn validate(&self, token: &str) -> Result<Caller, AuthError> {
        self.verify(token).map(|verified| verified.caller)
    }

    fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        // Before anything is decoded: the cost of a refusal must not grow with the token.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = read_header(token)?;
        self.check(token, &header, &self.inner.keys.snapshot())
    }

    /// The signature and the claims of a token whose header has been read, against `keys`.
    fn check(&self, token: &str, header: &TokenHeader, keys: &Keys) -> Result<Verified, AuthError> {
        let candidates = keys.candidates(header.alg, header.kid.as_deref());
        if candidates.is_empty() {
            return Err(AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        let mut validation = self.inner.validation.clone();
        validation.algorithms = vec![header.alg];
        for candidate in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, &validation) {
                Ok(data) => {
                    let (caller, expires) = self.caller_from(&data.claims)?;
                    return Ok(Verified {
                        caller,
                        expires,
                        keys: keys.clone(),
                    });
                }
                Err(err) => match classify(err) {
                    Outcome::TryNextKey => {}
                    Outcome::Refuse(err) => return Err(err),
                },
            }
        }
        Err(AuthError::BadSignature)
    }

    /// The caller a verified token names, and its `exp`.
    fn caller_from(&self, claims: &Map<String, Value>) -> Result<(Caller, u64), AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let expires = check_times(claims, now, self.inner.leeway_seconds)?;
        let checked = check_claims(claims)?;
        // A token issued in the future is as suspect as one with a future `nbf`.
        if checked
            .issued_at
            .is_some_and(|iat| iat > now.saturating_add(self.inner.leeway_seconds))
        {
            return Err(AuthError::NotYetValid);
        }
        let caller = Caller::new(
            checked.user,
            Some(checked.project_id),
            checked.roles,
            &self.inner.rules,
        );
        Ok((caller, expires))
    }
}

enum Outcome {
    /// The key did not verify the signature; another key might.
    TryNextKey,
    /// The answer does not depend on the key: the token is refused.
    Refuse(AuthError),
}

/// Sorts a `jsonwebtoken` error. Claims are only read after the signature verified, so every
/// claim error is final; so are shape errors, which no other key would change.
fn classify(err: JwtError) -> Outcome {
    let refuse = Outcome::Refuse;
    match err.into_kind() {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::RsaFailedSigning
        | ErrorKind::Signing(_)
        | ErrorKind::Provider(_)
        // Cannot happen, as candidate keys are chosen by algorithm; harmless if it did.
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => Outcome::TryNextKey,
        ErrorKind::ExpiredSignature => refuse(AuthError::Expired),
        ErrorKind::ImmatureSignature => refuse(AuthError::NotYetValid),
        ErrorKind::InvalidIssuer => refuse(AuthError::WrongIssuer),
        ErrorKind::InvalidAudience => refuse(AuthError::WrongAudience),
        ErrorKind::MissingRequiredClaim(claim) => refuse(match claim.as_str() {
            "iss" => AuthError::WrongIssuer,
            "aud" => AuthError::WrongAudience,
            // jsonwebtoken reports an `exp` that is not a number as missing.
            _ => AuthError::InvalidClaims(format!(
                "claim '{claim}' is missing or not a number of seconds"
            )),
        }),
        ErrorKind::InvalidClaimFormat(claim) => refuse(AuthError::InvalidClaims(format!(
            "claim '{claim}' must be a number of seconds"
        ))),
        ErrorKind::InvalidSubject => refuse(AuthError::InvalidClaims(
            "claim 'sub' is not accepted".to_owned(),
        )),
        // The header was read before, so JSON errors are about the claims.
        ErrorKind::Json(_) => refuse(AuthError::InvalidClaims(
            "the claims are not a JSON object".to_owned(),
        )),
        // InvalidToken, Base64, Utf8, and whatever kinds a later jsonwebtoken adds.
        _ => refuse(AuthError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<TokenValidator>();
    }
}
