//! The claims of a CSBS token: [`Claims`] to mint one, and the checks that turn a verified
//! token's claims into a caller's identity.
//!
//! `exp`, `nbf`, `iss` and `aud` are checked by `jsonwebtoken` (see the validator); this module
//! checks the claims that are ours: `sub`, `project_id`, `roles` and `iat`.

use std::time::Duration;

use csbs_domain::ProjectId;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::AuthError;

/// The claims of a token, as [`crate::mint_hs256`] writes them.
///
/// Times are seconds since the Unix epoch. Tokens from an identity provider may carry more
/// claims (and `aud` as a list); the validator ignores what it does not need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The user the token was issued to.
    pub sub: String,
    /// The tenant the token is for; must be a valid [`ProjectId`].
    pub project_id: String,
    /// Role names; the configured admin and service roles give extra rights.
    pub roles: Vec<String>,
    /// Expiry time.
    pub exp: u64,
    /// Issue time.
    pub iat: u64,
    /// Time before which the token is not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// Claims for `user` in `project_id` with `roles`, issued now and valid for `valid_for`
    /// (whole seconds); no `nbf`, `iss` or `aud`.
    pub fn new(
        user: impl Into<String>,
        project_id: &ProjectId,
        roles: Vec<String>,
        valid_for: Duration,
    ) -> Self {
        let now = jsonwebtoken::get_current_timestamp();
        Self {
            sub: user.into(),
            project_id: project_id.as_str().to_owned(),
            roles,
            exp: now.saturating_add(valid_for.as_secs()),
            iat: now,
            nbf: None,
            iss: None,
            aud: None,
        }
    }
}

/// The claims of a verified token that make up a caller.
#[derive(Debug)]
pub(crate) struct CheckedClaims {
    pub(crate) user: String,
    pub(crate) project_id: ProjectId,
    pub(crate) roles: Vec<String>,
    /// Issue time, when the token has one.
    pub(crate) issued_at: Option<u64>,
}

/// Checks the claims that `jsonwebtoken` does not know about. The messages name the claim, so a
/// client with a hand-made token can see what to fix.
pub(crate) fn check_claims(claims: &Map<String, Value>) -> Result<CheckedClaims, AuthError> {
    let user = match claims.get("sub") {
        None | Some(Value::Null) => return Err(invalid("claim 'sub' is missing")),
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(_) => return Err(invalid("claim 'sub' must be a non-empty string")),
    };
    let project_id = match claims.get("project_id") {
        None | Some(Value::Null) => return Err(invalid("claim 'project_id' is missing")),
        Some(Value::String(id)) => ProjectId::parse("project_id", id)
            .map_err(|err| invalid(format!("claim 'project_id' {}", err.reason)))?,
        Some(_) => return Err(invalid("claim 'project_id' must be a string")),
    };
    let roles = match claims.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("claim 'roles' must be a list of strings"))?,
        Some(_) => return Err(invalid("claim 'roles' must be a list of strings")),
    };
    let issued_at = match claims.get("iat") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            numeric_date(value)
                .ok_or_else(|| invalid("claim 'iat' must be a number of seconds"))?,
        ),
    };
    Ok(CheckedClaims {
        user,
        project_id,
        roles,
        issued_at,
    })
}

/// Whether a token whose `exp` is `expires` is refused at `now`, with `leeway` seconds of
/// clock skew: the one rule, for a token checked and for one remembered.
pub(crate) fn has_expired(expires: u64, now: u64, leeway: u64) -> bool {
    expires.saturating_add(leeway) < now
}

/// Checks `exp` (required) and `nbf` (when present) against `now`, with `leeway` seconds of
/// clock skew either way. Both are NumericDates, so fractions of a second are allowed.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    now: u64,
    leeway: u64,
) -> Result<u64, AuthError> {
    let expires = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or_else(|| invalid("claim 'exp' is missing or not a number of seconds"))?;
    let not_before = match claims.get("nbf") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            numeric_date(value)
                .ok_or_else(|| invalid("claim 'nbf' must be a number of seconds"))?,
        ),
    };
    if has_expired(expires, now, leeway) {
        return Err(AuthError::Expired);
    }
    if not_before.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(AuthError::NotYetValid);
    }
    Ok(expires)
}

/// A JWT NumericDate: non-negative seconds, possibly fractional (RFC 7519 §2).
fn numeric_date(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(seconds) = number.as_u64() {
        return Some(seconds);
    }
    let seconds = number.as_f64()?;
    // The cast saturates, and the range check keeps out negative and absurd values.
    (seconds.is_finite() && (0.0..1e15).contains(&seconds)).then_some(seconds as u64)
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidClaims(reason.into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(claims: Value) -> Result<CheckedClaims, AuthError> {
        check_claims(claims.as_object().unwrap())
    }

    #[test]
    fn good_claims() {
        let checked = check(json!({
            "sub": "alice", "project_id": "p1", "roles": ["admin", "x"], "iat": 1_700_000_000u64,
            "extra": {"ignored": true}
        }))
        .unwrap();
        assert_eq!(checked.user, "alice");
        assert_eq!(checked.project_id.as_str(), "p1");
        assert_eq!(checked.roles, ["admin", "x"]);
        assert_eq!(checked.issued_at, Some(1_700_000_000));

        let minimal = check(json!({"sub": "bob", "project_id": "p2"})).unwrap();
        assert!(minimal.roles.is_empty());
        assert_eq!(minimal.issued_at, None);

        let fractional = check(json!({"sub": "bob", "project_id": "p2", "iat": 12.75})).unwrap();
        assert_eq!(fractional.issued_at, Some(12));
    }

    #[test]
    fn bad_claims() {
        let rows = [
            (json!({"project_id": "p"}), "claim 'sub' is missing"),
            (
                json!({"sub": null, "project_id": "p"}),
                "claim 'sub' is missing",
            ),
            (
                json!({"sub": "", "project_id": "p"}),
                "claim 'sub' must be a non-empty string",
            ),
            (
                json!({"sub": 7, "project_id": "p"}),
                "claim 'sub' must be a non-empty string",
            ),
            (json!({"sub": "u"}), "claim 'project_id' is missing"),
            (
                json!({"sub": "u", "project_id": 5}),
                "claim 'project_id' must be a string",
            ),
            (
                json!({"sub": "u", "project_id": "a/b"}),
                "claim 'project_id' may contain only letters, digits, '_' and '-'",
            ),
            (
                json!({"sub": "u", "project_id": ""}),
                "claim 'project_id' must be 1 to 64 characters long",
            ),
            (
                json!({"sub": "u", "project_id": "p", "roles": "admin"}),
                "claim 'roles' must be a list of strings",
            ),
            (
                json!({"sub": "u", "project_id": "p", "roles": ["a", 1]}),
                "claim 'roles' must be a list of strings",
            ),
            (
                json!({"sub": "u", "project_id": "p", "iat": "yesterday"}),
                "claim 'iat' must be a number of seconds",
            ),
            (
                json!({"sub": "u", "project_id": "p", "iat": -5}),
                "claim 'iat' must be a number of seconds",
            ),
        ];
        for (claims, message) in rows {
            match check(claims.clone()) {
                Err(AuthError::InvalidClaims(got)) => assert_eq!(got, message, "{claims}"),
                other => panic!("{claims}: expected InvalidClaims, got {other:?}"),
            }
        }
    }
}
