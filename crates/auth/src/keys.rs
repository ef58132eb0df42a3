//! The key ring: every configured verification key with the algorithms it may verify, and the
//! choice of keys for a token.
//!
//! Binding each key to its algorithms is what defeats algorithm confusion: an RSA public key is
//! only ever used for RS*/PS*, so a token that says HS256 and is "signed" with the public key as
//! an HMAC secret finds no key at all.

use std::fmt;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use secrecy::ExposeSecret;

use crate::key_files::{load_jwks_file, load_pem_file};
use crate::{AuthSettings, KeyError, MIN_HMAC_SECRET_BYTES};

/// One key and what it may verify.
pub(crate) struct VerificationKey {
    pub(crate) key: DecodingKey,
    /// Never empty, and all of one family (the key's).
    pub(crate) algorithms: Vec<Algorithm>,
    /// The JWKS `kid`, when the key came from a JWKS file that named it.
    pub(crate) kid: Option<String>,
    /// Where the key came from, for the operator (`Debug`); never the key itself.
    pub(crate) source: String,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("source", &self.source)
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// All configured keys. Never empty.
#[derive(Debug)]
pub(crate) struct KeyRing {
    keys: Vec<VerificationKey>,
}

impl KeyRing {
    /// Loads the HMAC secret, the PEM files and the JWKS file named in `settings`.
    pub(crate) fn load(settings: &AuthSettings) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = &settings.hmac_secret {
            let secret = secret.expose_secret().as_bytes();
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(KeyError::WeakHmacSecret);
            }
            keys.push(VerificationKey {
                key: DecodingKey::from_secret(secret),
                algorithms: AlgorithmFamily::Hmac.algorithms().to_vec(),
                kid: None,
                source: "hmac_secret".to_owned(),
            });
        }
        for path in &settings.public_key_files {
            keys.push(load_pem_file(path)?);
        }
        if let Some(path) = &settings.jwks_file {
            keys.extend(load_jwks_file(path)?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// How many keys there are.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The keys to try, in order, for a token signed with `alg` and naming `kid`: the keys
    /// for `alg` with that `kid` if there are any, else every key for `alg`.
    ///
    /// Falling back on an unknown `kid` keeps PEM keys (which have no `kid`) usable with
    /// identity providers that always send one; the signature still decides.
    pub(crate) fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Vec<&VerificationKey> {
        let for_alg: Vec<&VerificationKey> = self
            .keys
            .iter()
            .filter(|key| key.algorithms.contains(&alg))
            .collect();
        if let Some(kid) = kid {
            let named: Vec<&VerificationKey> = for_alg
                .iter()
                .copied()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .collect();
            if !named.is_empty() {
                return named;
            }
        }
        for_alg
    }
}
