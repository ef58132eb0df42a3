//! Keystone tokens: opaque tokens validated by the identity service, and remembered for a
//! while so that not every request asks it.
//!
//! The cache is a `moka` cache (bounded in entries, an expiry per entry, and one validation
//! for concurrent requests with the same unknown token: `try_get_with`), keyed by a SHA-256 of
//! the token so that no token is kept in memory longer than its request. A valid token is
//! remembered for `cache_seconds`, never past its expiry, and checked against its expiry at
//! every use; an invalid one for `invalid_cache_seconds`. Failures to ask (Keystone down) are
//! never remembered. A semaphore bounds the validations in flight, so that a flood of random
//! tokens queues here instead of overloading Keystone.

mod client;
mod identity;

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::caller::RoleRules;
use crate::{
    AuthError, Caller, IdentityUnavailable, KeyError, KeystoneSettings, ValidationError,
    ValidationObserver, ValidationOutcome,
};
use client::{KeystoneClient, Verdict};

pub use client::KeystoneCall;

/// The longest `invalid_cache_seconds` accepted: a token Keystone refused may become valid
/// only by a clock or replication hiccup, and longer would only hide those.
pub const MAX_INVALID_CACHE_SECONDS: u64 = 60;

type TokenDigest = [u8; 32];

/// Validates Keystone tokens, with a cache.
pub(crate) struct KeystoneValidator {
    client: KeystoneClient,
    cache: Cache<TokenDigest, Verdict>,
    in_flight: Semaphore,
    wait_for_slot: Duration,
    rules: RoleRules,
    observer: Arc<dyn ValidationObserver>,
    challenge: String,
}

/// How long a verdict is remembered.
struct VerdictExpiry {
    valid_for: Duration,
    invalid_for: Duration,
}

impl Expiry<TokenDigest, Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _token: &TokenDigest,
        verdict: &Verdict,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(match verdict {
            Verdict::Valid(identity) => self.valid_for.min(identity.remaining()),
            Verdict::Invalid(_) => self.invalid_for,
        })
    }
}

impl KeystoneValidator {
    /// A validator for the Keystone at `url` (`settings.url`, already checked to be set).
    pub(crate) fn new(
        settings: &KeystoneSettings,
        url: &str,
        rules: RoleRules,
        observer: Arc<dyn ValidationObserver>,
    ) -> Result<Self, KeyError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(KeyError::Keystone {
                setting: "url",
                reason: format!(
                    "'{url}' is not an http:// or https:// URL (e.g. http://keystone:5000/v3)"
                ),
            });
        }
        if settings.invalid_cache_seconds > MAX_INVALID_CACHE_SECONDS {
            return Err(KeyError::Keystone {
                setting: "invalid_cache_seconds",
                reason: format!("must be at most {MAX_INVALID_CACHE_SECONDS}"),
            });
        }
        for (setting, value) in [
            ("cache_entries", settings.cache_entries),
            ("timeout_ms", settings.timeout_ms),
            (
                "max_validations_in_flight",
                settings.max_validations_in_flight as u64,
            ),
        ] {
            if value == 0 {
                return Err(KeyError::Keystone {
                    setting,
                    reason: "must be at least 1".to_owned(),
                });
            }
        }
        let public_url = settings
            .public_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(url);
        if public_url.contains('"') || public_url.chars().any(char::is_control) {
            return Err(KeyError::Keystone {
                setting: "public_url",
                reason: "must not contain quotes or control characters".to_owned(),
            });
        }
        let client = KeystoneClient::new(settings, url, Arc::clone(&observer))?;
        let cache = Cache::builder()
            .max_capacity(settings.cache_entries)
            .expire_after(VerdictExpiry {
                valid_for: Duration::from_secs(settings.cache_seconds),
                invalid_for: Duration::from_secs(settings.invalid_cache_seconds),
            })
            .build();
        Ok(Self {
            client,
            cache,
            in_flight: Semaphore::new(settings.max_validations_in_flight),
            wait_for_slot: Duration::from_millis(settings.timeout_ms),
            rules,
            observer,
            challenge: format!("Keystone uri=\"{public_url}\""),
        })
    }

    /// The `WWW-Authenticate` challenge of a refused token: `Keystone uri="…"`.
    pub(crate) fn challenge(&self) -> &str {
        &self.challenge
    }

    /// Checks `token` with the cache or Keystone.
    pub(crate) async fn validate(&self, token: &str) -> Result<Caller, ValidationError> {
        let digest: TokenDigest = Sha256::digest(token.as_bytes()).into();
        if let Some(verdict) = self.cache.get(&digest).await {
            self.observer.cache_hit();
            return self.answer(&verdict);
        }
        match self.cache.try_get_with(digest, self.ask(token)).await {
            Ok(verdict) => self.answer(&verdict),
            Err(error) => {
                self.observer.validation(ValidationOutcome::Unavailable);
                Err(ValidationError::Unavailable((*error).clone()))
            }
        }
    }

    /// One validation by Keystone, when a slot is free within the wait.
    async fn ask(&self, token: &str) -> Result<Verdict, IdentityUnavailable> {
        let started = Instant::now();
        let _slot = tokio::time::timeout(self.wait_for_slot, self.in_flight.acquire())
            .await
            .map_err(|_| {
                IdentityUnavailable(format!(
                    "every validation slot (auth.keystone.max_validations_in_flight) stayed \
                     busy for {} ms",
                    started.elapsed().as_millis()
                ))
            })?
            .map_err(|_| IdentityUnavailable("the validator is shutting down".to_owned()))?;
        self.client.validate(token).await
    }

    fn answer(&self, verdict: &Verdict) -> Result<Caller, ValidationError> {
        let outcome = match verdict {
            // Checked at every use: an entry's lifetime already ends at the token's expiry,
            // and this holds even if a clock or the cache's timer disagrees.
            Verdict::Valid(identity) if identity.remaining().is_zero() => Err(AuthError::Expired),
            Verdict::Valid(identity) => Ok(Caller::new(
                identity.user.clone(),
                identity.project_id.clone(),
                identity.roles.clone(),
                &self.rules,
            )),
            Verdict::Invalid(error) => Err(error.clone()),
        };
        self.observer.validation(match &outcome {
            Ok(_) => ValidationOutcome::Valid,
            Err(AuthError::Expired) => ValidationOutcome::Expired,
            Err(_) => ValidationOutcome::Invalid,
        });
        outcome.map_err(ValidationError::Rejected)
    }
}
