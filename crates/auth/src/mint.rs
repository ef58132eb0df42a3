//! Making HS256 tokens from the development secret, for the `csbs-api token` command and tests.

use csbs_domain::ProjectId;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};

use crate::{Claims, MintError, MIN_HMAC_SECRET_BYTES};

/// Signs `claims` with `secret` (its UTF-8 bytes, as the validator uses `hmac_secret`) as an
/// HS256 token.
///
/// Refuses what the validator would always refuse: a secret shorter than
/// [`MIN_HMAC_SECRET_BYTES`], an empty `sub`, an invalid `project_id`. Times are not checked,
/// so expired or not-yet-valid tokens can be made on purpose.
pub fn mint_hs256(secret: &SecretString, claims: &Claims) -> Result<String, MintError> {
    let secret = secret.expose_secret().as_bytes();
    if secret.len() < MIN_HMAC_SECRET_BYTES {
        return Err(MintError::WeakSecret);
    }
    if claims.sub.is_empty() {
        return Err(MintError::InvalidClaims("sub must not be empty".to_owned()));
    }
    ProjectId::parse("project_id", &claims.project_id)
        .map_err(|err| MintError::InvalidClaims(err.to_string()))?;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|err| MintError::Encoding(err.to_string()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn claims() -> Claims {
        let project = ProjectId::parse("project_id", "p1").unwrap();
        Claims::new("alice", &project, vec![], Duration::from_secs(60))
    }

    #[test]
    fn refuses_what_cannot_validate() {
        let secret = SecretString::from(SECRET);
        assert!(mint_hs256(&secret, &claims()).is_ok());
        assert_eq!(
            mint_hs256(&SecretString::from("short"), &claims()),
            Err(MintError::WeakSecret)
        );
        let mut no_user = claims();
        no_user.sub.clear();
        assert!(matches!(
            mint_hs256(&secret, &no_user),
            Err(MintError::InvalidClaims(_))
        ));
        let mut bad_project = claims();
        bad_project.project_id = "a b".to_owned();
        assert!(matches!(
            mint_hs256(&secret, &bad_project),
            Err(MintError::InvalidClaims(_))
        ));
    }

    #[test]
    fn claims_new_sets_times() {
        let claims = claims();
        assert_eq!(claims.exp, claims.iat + 60);
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.project_id, "p1");
        assert!(claims.nbf.is_none() && claims.iss.is_none() && claims.aud.is_none());
    }
}
