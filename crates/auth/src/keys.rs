//! The key ring: every configured verification key with the algorithms it may verify, and the
//! choice of keys for a token. The keys can change while the service runs (key files read
//! again on SIGHUP, a JWKS URL refreshed), so a validation takes a snapshot of them.
//!
//! Binding each key to its algorithms is what defeats algorithm confusion: an RSA public key is
//! only ever used for RS*/PS*, so a token that says HS256 and is "signed" with the public key as
//! an HMAC secret finds no key at all.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use secrecy::{ExposeSecret, SecretString};

use crate::key_files::{load_jwks_file, load_pem_file};
use crate::remote_keys::RemoteKeys;
use crate::{AuthSettings, KeyError, ValidationObserver, MIN_HMAC_SECRET_BYTES};

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

/// Every configured key: those of the settings and key files (read again by
/// [`KeyRing::reload_files`]) and those fetched from a JWKS URL (refreshed by [`RemoteKeys`]).
pub(crate) struct KeyRing {
    sources: FileSources,
    files: RwLock<Arc<Vec<VerificationKey>>>,
    remote: Option<RemoteKeys>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("files", &self.snapshot().files)
            .field("remote", &self.remote.as_ref().map(RemoteKeys::setting))
            .finish()
    }
}

/// Where the keys that are not fetched come from.
#[derive(Clone)]
struct FileSources {
    hmac_secret: Option<SecretString>,
    public_key_files: Vec<PathBuf>,
    jwks_file: Option<PathBuf>,
}

impl FileSources {
    fn load(&self) -> Result<Vec<VerificationKey>, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = &self.hmac_secret {
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
        for path in &self.public_key_files {
            keys.push(load_pem_file(path)?);
        }
        if let Some(path) = &self.jwks_file {
            keys.extend(load_jwks_file(path)?);
        }
        Ok(keys)
    }

    fn has_files(&self) -> bool {
        !self.public_key_files.is_empty() || self.jwks_file.is_some()
    }
}

/// The keys in use at one moment: what one token's validation looks at.
#[derive(Clone)]
pub(crate) struct Keys {
    files: Arc<Vec<VerificationKey>>,
    remote: Option<Arc<Vec<VerificationKey>>>,
}

impl Keys {
    /// Whether `other` is this very set of keys: no file was reloaded and no key set fetched
    /// in between. (Held, not compared by address alone, so that a freed set's address being
    /// reused cannot make a new set look like an old one.)
    pub(crate) fn same_as(&self, other: &Keys) -> bool {
        Arc::ptr_eq(&self.files, &other.files)
            && match (&self.remote, &other.remote) {
                (None, None) => true,
                (Some(mine), Some(theirs)) => Arc::ptr_eq(mine, theirs),
                _ => false,
            }
    }
}

impl KeyRing {
    /// Loads the HMAC secret, the PEM files and the JWKS file named in `settings`, and starts
    /// fetching the keys of `jwks_url` or `oidc_issuer`.
    pub(crate) fn load(
        settings: &AuthSettings,
        observer: Arc<dyn ValidationObserver>,
    ) -> Result<Self, KeyError> {
        let sources = FileSources {
            hmac_secret: settings.hmac_secret.clone(),
            public_key_files: settings.public_key_files.clone(),
            jwks_file: settings.jwks_file.clone(),
        };
        let files = sources.load()?;
        let remote = RemoteKeys::start(settings, observer)?;
        if files.is_empty() && remote.is_none() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self {
            sources,
            files: RwLock::new(Arc::new(files)),
            remote,
        })
    }

    /// Reads the PEM and JWKS files again and, when every one is usable, uses their keys from
    /// now on; on any error the keys in use stay as they were. Answers how many keys the
    /// files (and the HMAC secret) now give, or `None` when no file is configured.
    pub(crate) fn reload_files(&self) -> Result<Option<usize>, KeyError> {
        if !self.sources.has_files() {
            return Ok(None);
        }
        let keys = self.sources.load()?;
        let count = keys.len();
        *self
            .files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        Ok(Some(count))
    }

    /// The fetched key set, when one is configured.
    pub(crate) fn remote(&self) -> Option<&RemoteKeys> {
        self.remote.as_ref()
    }

    /// The keys in use now.
    pub(crate) fn snapshot(&self) -> Keys {
        Keys {
            files: Arc::clone(
                &self
                    .files
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
            remote: self.remote.as_ref().and_then(RemoteKeys::keys),
        }
    }
}

impl Keys {
    fn all(&self) -> impl Iterator<Item = &VerificationKey> {
        self.files
            .iter()
            .chain(self.remote.iter().flat_map(|keys| keys.iter()))
    }

    /// How many keys there are.
    pub(crate) fn len(&self) -> usize {
        self.all().count()
    }

    /// Whether a key has this `kid`.
    pub(crate) fn knows_kid(&self, kid: &str) -> bool {
        self.all().any(|key| key.kid.as_deref() == Some(kid))
    }

    /// The keys to try, in order, for a token signed with `alg` and naming `kid`: the keys
    /// for `alg` with that `kid` if there are any, else every key for `alg`.
    ///
    /// Falling back on an unknown `kid` keeps PEM keys (which have no `kid`) usable with
    /// identity providers that always send one; the signature still decides.
    pub(crate) fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Vec<&VerificationKey> {
        let for_alg: Vec<&VerificationKey> = self
            .all()
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
