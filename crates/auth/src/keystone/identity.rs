//! What Keystone says of a token: the body of `GET /v3/auth/tokens`, read into the parts a
//! caller is made of, and the service's own login answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use csbs_domain::{parse_timestamp, Micros, ProjectId};
use serde::Deserialize;

use crate::AuthError;

/// A token Keystone validated: who, for which project, with which roles, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeystoneIdentity {
    pub(crate) user: String,
    /// The project scope; `None` for a domain-scoped or unscoped token.
    pub(crate) project_id: Option<ProjectId>,
    /// Role names, the implied ones included (Keystone lists them).
    pub(crate) roles: Vec<String>,
    /// `expires_at`, in microseconds since the epoch.
    pub(crate) expires_at: Micros,
}

impl KeystoneIdentity {
    /// How long the token is still valid; zero once expired.
    pub(crate) fn remaining(&self) -> Duration {
        let left = self.expires_at.saturating_sub(now_micros());
        Duration::from_micros(u64::try_from(left).unwrap_or(0))
    }
}

/// The microseconds since the epoch now.
pub(crate) fn now_micros() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            Micros::try_from(since.as_micros()).unwrap_or(Micros::MAX)
        })
}

#[derive(Deserialize)]
struct Body {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: String,
    user: Option<Reference>,
    project: Option<Reference>,
    #[serde(default)]
    roles: Vec<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    id: Option<String>,
    name: Option<String>,
}

/// Why a validation answer could not be read: Keystone's fault (503), or the token's (401).
#[derive(Debug)]
pub(crate) enum Unreadable {
    /// Not the documented shape: the identity service is broken or is not Keystone.
    Body(String),
    /// Well-formed, but not a token this service can accept.
    Token(AuthError),
}

/// Reads a validation answer (`{"token": {...}}`).
pub(crate) fn read_validation(body: &[u8]) -> Result<KeystoneIdentity, Unreadable> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|error| Unreadable::Body(format!("unreadable token body: {error}")))?;
    let token = body.token;
    let expires_at = read_expiry(&token.expires_at).map_err(Unreadable::Body)?;
    let user = token
        .user
        .and_then(|user| user.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Unreadable::Body("the token body names no user id".to_owned()))?;
    let project_id = match token.project.and_then(|project| project.id) {
        None => None,
        Some(id) => Some(ProjectId::parse("project_id", &id).map_err(|error| {
            Unreadable::Token(AuthError::InvalidClaims(format!(
                "the token's project id {}",
                error.reason
            )))
        })?),
    };
    let roles = token
        .roles
        .into_iter()
        .filter_map(|role| role.name)
        .collect();
    Ok(KeystoneIdentity {
        user,
        project_id,
        roles,
        expires_at,
    })
}

/// Reads `expires_at` (`2026-12-02T07:40:00.000000Z`).
pub(crate) fn read_expiry(text: &str) -> Result<Micros, String> {
    parse_timestamp("expires_at", text).map_err(|error| error.reason)
}

#[derive(Deserialize)]
struct LoginBody {
    token: LoginToken,
}

#[derive(Deserialize)]
struct LoginToken {
    expires_at: String,
}

/// The `expires_at` of the service's login answer.
pub(crate) fn read_login(body: &[u8]) -> Result<Micros, String> {
    let body: LoginBody = serde_json::from_slice(body)
        .map_err(|error| format!("unreadable login answer: {error}"))?;
    read_expiry(&body.token.expires_at)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: serde_json::Value) -> Result<KeystoneIdentity, Unreadable> {
        read_validation(body.to_string().as_bytes())
    }

    #[test]
    fn project_scoped_tokens() {
        let identity = read(json!({"token": {
            "methods": ["password"],
            "user": {"id": "u1", "name": "alice", "domain": {"id": "default"}},
            "project": {"id": "0123456789abcdef0123456789abcdef", "name": "tenant-a"},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
            "expires_at": "2030-01-02T03:04:05.123456Z",
            "issued_at": "2030-01-02T02:04:05.123456Z"
        }}))
        .unwrap();
        assert_eq!(identity.user, "u1");
        assert_eq!(
            identity.project_id.unwrap().as_str(),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(identity.roles, ["member", "reader"]);
        assert_eq!(
            identity.expires_at,
            parse_timestamp("t", "2030-01-02T03:04:05.123456").unwrap()
        );
    }

    #[test]
    fn domain_scoped_and_unscoped_tokens_have_no_project() {
        let domain = read(json!({"token": {
            "user": {"id": "u1"}, "domain": {"id": "default", "name": "Default"},
            "roles": [{"name": "admin"}], "expires_at": "2030-01-02T03:04:05.000000Z"
        }}))
        .unwrap();
        assert_eq!(domain.project_id, None);
        assert_eq!(domain.roles, ["admin"]);
        let unscoped = read(json!({"token": {
            "user": {"id": "u1"}, "expires_at": "2030-01-02T03:04:05Z"
        }}))
        .unwrap();
        assert_eq!(unscoped.project_id, None);
        assert!(unscoped.roles.is_empty());
    }

    #[test]
    fn broken_answers() {
        for body in [
            json!({}),
            json!({"token": {"user": {"id": "u"}}}),
            json!({"token": {"user": {"id": "u"}, "expires_at": "tomorrow"}}),
            json!({"token": {"expires_at": "2030-01-02T03:04:05Z"}}),
            json!({"token": {"user": {"id": ""}, "expires_at": "2030-01-02T03:04:05Z"}}),
        ] {
            assert!(
                matches!(read(body.clone()), Err(Unreadable::Body(_))),
                "{body}"
            );
        }
        let odd_project = read(json!({"token": {
            "user": {"id": "u"}, "project": {"id": "a/b"}, "expires_at": "2030-01-02T03:04:05Z"
        }}));
        assert!(matches!(
            odd_project,
            Err(Unreadable::Token(AuthError::InvalidClaims(_)))
        ));
    }

    #[test]
    fn remaining_time() {
        let mut identity = read(json!({"token": {
            "user": {"id": "u"}, "expires_at": "2000-01-01T00:00:00Z"
        }}))
        .unwrap();
        assert_eq!(identity.remaining(), Duration::ZERO);
        identity.expires_at = now_micros() + 60_000_000;
        let left = identity.remaining();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert_eq!(
            read_login(br#"{"token": {"expires_at": "2030-01-02T03:04:05.000000Z"}}"#),
            Ok(parse_timestamp("t", "2030-01-02T03:04:05").unwrap())
        );
        assert!(read_login(b"{}").is_err());
    }
}
