//! Reading public keys from PEM and JWKS files, and checking each key at start-up so that a
//! bad key is an operator error now instead of every token failing later.

use std::fs;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;
use serde_json::Value;

use crate::keys::VerificationKey;
use crate::KeyError;

/// The smallest RSA modulus accepted, in bits (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

/// Loads the one public key of a PEM file.
pub(crate) fn load_pem_file(path: &Path) -> Result<VerificationKey, KeyError> {
    let invalid = |reason: &str| KeyError::Invalid {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let text = fs::read_to_string(path).map_err(|source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let label = pem_label(&text).map_err(|reason| invalid(&reason))?;
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        "CERTIFICATE" => {
            return Err(invalid(
                "holds a certificate; give its public key instead \
                 (openssl x509 -in cert.pem -pubkey -noout)",
            ))
        }
        label if label.contains("PRIVATE KEY") => {
            return Err(invalid(
                "holds a private key; give the public key only \
                 (openssl pkey -in key.pem -pubout)",
            ))
        }
        _ => return Err(invalid(&format!("unsupported PEM block '{label}'"))),
    }
    let bytes = text.as_bytes();
    let (key, algorithms) = if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        check_rsa(&key).map_err(|reason| invalid(&reason))?;
        (key, AlgorithmFamily::Rsa.algorithms().to_vec())
    } else if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        let alg = ec_algorithm(&key)
            .ok_or_else(|| invalid("not a usable EC key (P-256 and P-384 are supported)"))?;
        (key, vec![alg])
    } else if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
        check_ed25519(&key).map_err(|reason| invalid(&reason))?;
        (key, vec![Algorithm::EdDSA])
    } else {
        return Err(invalid(
            "not an RSA, EC (P-256, P-384) or Ed25519 public key",
        ));
    };
    Ok(VerificationKey {
        key,
        algorithms,
        kid: None,
        source: path.display().to_string(),
    })
}

/// The label of the file's only PEM block (`PUBLIC KEY` in `-----BEGIN PUBLIC KEY-----`).
fn pem_label(text: &str) -> Result<&str, String> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = text.match_indices(BEGIN);
    let Some((start, _)) = blocks.next() else {
        return Err("no PEM block found".to_owned());
    };
    if blocks.next().is_some() {
        // Only the first block would be used; say so instead of ignoring the rest.
        return Err("holds more than one PEM block; give one key per file".to_owned());
    }
    let rest = &text[start + BEGIN.len()..];
    rest.split_once("-----")
        .map(|(label, _)| label.trim())
        .ok_or_else(|| "broken PEM header".to_owned())
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

/// Loads the signature keys of a JWKS file.
pub(crate) fn load_jwks_file(path: &Path) -> Result<Vec<VerificationKey>, KeyError> {
    let bytes = fs::read(path).map_err(|source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    jwks_keys(&bytes, &path.display().to_string(), BadKey::Refuse).map_err(|reason| {
        KeyError::Invalid {
            path: path.to_owned(),
            reason,
        }
    })
}

/// What to do with a key of a JWKS that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadKey {
    /// Refuse the whole document: a file the operator wrote, checked at start-up and on SIGHUP.
    Refuse,
    /// Skip the key with a warning: an identity provider's document, which may list keys for
    /// other relying parties.
    Skip,
}

/// The signature keys of a JWKS document (`{"keys": [...]}`), from a file or a URL; `origin`
/// names where it came from in each key's `source`.
///
/// Keys for encryption (`use: enc`, or an RSA encryption `alg`) and keys on curves we cannot
/// verify (P-521, X25519, …) are skipped, as identity providers publish them next to their
/// signature keys; a document left with no key is an error. A symmetric (`oct`) key is an
/// error: shared secrets belong in `hmac_secret`, not in a set of public keys.
pub(crate) fn jwks_keys(
    bytes: &[u8],
    origin: &str,
    bad_key: BadKey,
) -> Result<Vec<VerificationKey>, String> {
    let jwks: RawJwks =
        serde_json::from_slice(bytes).map_err(|err| format!("not a JWKS document: {err}"))?;
    let mut keys = Vec::new();
    for (index, value) in jwks.keys.iter().enumerate() {
        if !is_signature_key_we_verify(value) {
            continue;
        }
        let name = match value.get("kid").and_then(Value::as_str) {
            Some(kid) => format!("key '{kid}'"),
            None => format!("key #{index}"),
        };
        let key = serde_json::from_value::<Jwk>(value.clone())
            .map_err(|err| format!("{name}: not a JWK: {err}"))
            .and_then(|jwk| {
                let key = jwk_key(&jwk).map_err(|reason| format!("{name}: {reason}"))?;
                Ok(key.map(|key| VerificationKey {
                    source: format!("{origin} {name}"),
                    kid: jwk.common.key_id.clone(),
                    ..key
                }))
            });
        match (key, bad_key) {
            (Ok(Some(key)), _) => keys.push(key),
            (Ok(None), _) => {}
            (Err(reason), BadKey::Refuse) => return Err(reason),
            (Err(reason), BadKey::Skip) => {
                tracing::warn!(origin, %reason, "a key of the key set is skipped");
            }
        }
    }
    if keys.is_empty() {
        return Err("holds no usable signature key".to_owned());
    }
    Ok(keys)
}

/// Whether a raw JWK may be for us: not an encryption key, and not on a curve we cannot verify
/// (checked before parsing, as the JWK type does not know every curve, e.g. X25519).
fn is_signature_key_we_verify(jwk: &Value) -> bool {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("use") == Some("enc") {
        return false;
    }
    match (field("kty"), field("crv")) {
        (Some("EC"), curve) => matches!(curve, Some("P-256" | "P-384")),
        (Some("OKP"), curve) => curve == Some("Ed25519"),
        _ => true,
    }
}

/// The verification key of one JWK; `None` for a key that is not ours to use.
fn jwk_key(jwk: &Jwk) -> Result<Option<VerificationKey>, String> {
    let declared = match jwk.common.key_algorithm {
        None => None,
        // KeyAlgorithm and Algorithm share their names for every signature algorithm.
        Some(alg) => match alg.to_string().parse::<Algorithm>() {
            Ok(alg) => Some(alg),
            Err(_) => return Ok(None),
        },
    };
    let (key, family_algorithms) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            let key = DecodingKey::from_jwk(jwk).map_err(|err| err.to_string())?;
            check_rsa(&key)?;
            (key, AlgorithmFamily::Rsa.algorithms().to_vec())
        }
        AlgorithmParameters::EllipticCurve(params) => {
            let alg = match params.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Ok(None),
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|err| err.to_string())?;
            if ec_algorithm(&key) != Some(alg) {
                return Err("not a valid point on its curve".to_owned());
            }
            (key, vec![alg])
        }
        AlgorithmParameters::OctetKeyPair(params) => {
            if params.curve != EllipticCurve::Ed25519 {
                return Ok(None);
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|err| err.to_string())?;
            check_ed25519(&key)?;
            (key, vec![Algorithm::EdDSA])
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("is a symmetric (oct) key; put shared secrets in hmac_secret".to_owned())
        }
    };
    // A key that names its algorithm is used for that algorithm only (RFC 7517 §4.4).
    let algorithms = match declared {
        None => family_algorithms,
        Some(alg) if family_algorithms.contains(&alg) => vec![alg],
        Some(alg) => return Err(format!("alg {alg:?} does not fit the key type")),
    };
    Ok(Some(VerificationKey {
        key,
        algorithms,
        kid: None,
        source: String::new(),
    }))
}

/// Checks that an RSA key parses the way the verifier will parse it, and is big enough.
fn check_rsa(key: &DecodingKey) -> Result<(), String> {
    let public = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => RsaPublicKey::from_pkcs1_der(der)
            .map_err(|err| format!("not a valid RSA public key: {err}"))?,
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                .map_err(|err| format!("not a valid RSA public key: {err}"))?
        }
    };
    let bits = public.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(())
}

/// The algorithm an EC key verifies: ES256 for a P-256 point, ES384 for a P-384 point.
fn ec_algorithm(key: &DecodingKey) -> Option<Algorithm> {
    [Algorithm::ES256, Algorithm::ES384]
        .into_iter()
        .find(|alg| verifier_accepts(key, *alg))
}

fn check_ed25519(key: &DecodingKey) -> Result<(), String> {
    // The verifier slices the first 32 bytes without checking the length first: a short key
    // would panic on every token, so refuse it here.
    if key.as_bytes().len() != 32 || !verifier_accepts(key, Algorithm::EdDSA) {
        return Err("not a valid Ed25519 public key".to_owned());
    }
    Ok(())
}

/// Whether `jsonwebtoken` can build a verifier for `alg` from `key`. The empty signature never
/// verifies, so the answer is `Ok(false)` for a usable key and an error for an unusable one.
fn verifier_accepts(key: &DecodingKey, alg: Algorithm) -> bool {
    jsonwebtoken::crypto::verify("", b"", key, alg).is_ok()
}
