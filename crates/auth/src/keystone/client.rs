//! The calls to Keystone, as keystonemiddleware makes them: the service's password login
//! (`POST {url}/auth/tokens`, scoped to its project) and the validation of a caller's token
//! (`GET {url}/auth/tokens?nocatalog`, the service's token in `X-Auth-Token`, the caller's in
//! `X-Subject-Token`).
//!
//! The service's token is renewed before it expires, and once more when Keystone answers 401
//! (it was revoked, or Keystone's keys rotated). A validation that loses its connection
//! without an answer is sent once more: uwsgi's plain HTTP mode closes idle connections
//! without saying so, and a reused connection then fails at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::Mutex;

use super::identity::{now_micros, read_login, read_validation, KeystoneIdentity, Unreadable};
use crate::ca_file::read_ca_file;
use crate::errors::error_chain;
use crate::{AuthError, IdentityUnavailable, KeyError, KeystoneSettings, ValidationObserver};

/// What Keystone said of a token.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    Valid(Arc<KeystoneIdentity>),
    Invalid(AuthError),
}

/// Which call to Keystone a latency is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeystoneCall {
    /// The service's own password login.
    Login,
    /// The validation of a caller's token.
    Validate,
}

impl KeystoneCall {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Validate => "validate",
        }
    }
}

/// After a failed login, further logins within this time fail at once with the same error, so
/// that a wrong password or a Keystone that is down is not asked once per request.
const LOGIN_BACKOFF: Duration = Duration::from_secs(1);

/// The service's token is renewed this long before it expires (keystoneauth's margin), or at
/// half its lifetime for short-lived tokens.
const RENEW_MARGIN: Duration = Duration::from_secs(120);

/// The HTTP side of Keystone validation.
pub(crate) struct KeystoneClient {
    http: reqwest::Client,
    tokens_url: String,
    validate_url: String,
    login: LoginRequest,
    service: Mutex<ServiceState>,
    observer: Arc<dyn ValidationObserver>,
}

/// The service account, as the login body needs it. The password is only exposed into the
/// request body.
struct LoginRequest {
    username: String,
    password: SecretString,
    user_domain_name: String,
    project_name: String,
    project_domain_name: String,
}

#[derive(Default)]
struct ServiceState {
    token: Option<ServiceToken>,
    /// The last failed login: when, and why.
    failed: Option<(Instant, IdentityUnavailable)>,
}

#[derive(Clone)]
struct ServiceToken {
    token: SecretString,
    renew_after: Instant,
}

impl KeystoneClient {
    /// A client for the Keystone at `settings.url` (which must be set).
    pub(crate) fn new(
        settings: &KeystoneSettings,
        url: &str,
        observer: Arc<dyn ValidationObserver>,
    ) -> Result<Self, KeyError> {
        let password = settings.password.clone().ok_or(KeyError::Keystone {
            setting: "password",
            reason: "the service account's password is required when auth.keystone.url is set"
                .to_owned(),
        })?;
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Keystone's own idle timeout is unknown; an idle connection is dropped well
            // before most servers drop theirs.
            .pool_idle_timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("csbs-api/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let certificates = read_ca_file(path, |reason| KeyError::Keystone {
                setting: "ca_file",
                reason,
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|error| KeyError::Keystone {
            setting: "url",
            reason: format!("cannot make an HTTP client: {error}"),
        })?;
        let base = url.trim_end_matches('/');
        Ok(Self {
            http,
            tokens_url: format!("{base}/auth/tokens"),
            validate_url: format!("{base}/auth/tokens?nocatalog"),
            login: LoginRequest {
                username: settings.username.clone(),
                password,
                user_domain_name: settings.user_domain_name.clone(),
                project_name: settings.project_name.clone(),
                project_domain_name: settings.project_domain_name.clone(),
            },
            service: Mutex::new(ServiceState::default()),
            observer,
        })
    }

    /// Asks Keystone about `token`.
    pub(crate) async fn validate(&self, token: &str) -> Result<Verdict, IdentityUnavailable> {
        let mut service = self.service_token(None).await?;
        let mut renewed = false;
        let mut resent = false;
        loop {
            let started = Instant::now();
            let answer = self.send_validation(&service, token).await;
            self.observer
                .keystone_call(KeystoneCall::Validate, started.elapsed().as_secs_f64());
            let (status, body) = match answer {
                Ok(answer) => answer,
                // A timeout or a refused connection is not resent: it would only double the
                // wait, or the refusal.
                Err(error) if !resent && !error.is_timeout() && !error.is_connect() => {
                    tracing::debug!(%error, "Keystone validation lost its connection; resending");
                    resent = true;
                    continue;
                }
                Err(error) => return Err(transport_failure("validating a token", &error)),
            };
            match status {
                StatusCode::OK => {
                    return match read_validation(&body) {
                        Ok(identity) if identity.remaining().is_zero() => {
                            Ok(Verdict::Invalid(AuthError::Expired))
                        }
                        Ok(identity) => Ok(Verdict::Valid(Arc::new(identity))),
                        Err(Unreadable::Token(error)) => Ok(Verdict::Invalid(error)),
                        Err(Unreadable::Body(reason)) => Err(IdentityUnavailable(reason)),
                    };
                }
                StatusCode::NOT_FOUND => return Ok(Verdict::Invalid(AuthError::UnknownToken)),
                StatusCode::UNAUTHORIZED if !renewed => {
                    renewed = true;
                    service = self.service_token(Some(&service)).await?;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(IdentityUnavailable(
                        "Keystone refused the service's own token, even a new one (401)".to_owned(),
                    ))
                }
                StatusCode::FORBIDDEN => {
                    return Err(IdentityUnavailable(
                        "the service account may not validate tokens (403): give it the \
                         `service` role on its project"
                            .to_owned(),
                    ))
                }
                other => {
                    return Err(IdentityUnavailable(format!(
                        "Keystone answered {other} to a token validation"
                    )))
                }
            }
        }
    }

    async fn send_validation(
        &self,
        service: &SecretString,
        token: &str,
    ) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
        let response = self
            .http
            .get(&self.validate_url)
            .header("X-Auth-Token", service.expose_secret())
            .header("X-Subject-Token", token)
            .header("Accept", "application/json")
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.bytes().await?.to_vec()))
    }

    /// The service's token: the current one while it is fresh and is not `stale` (the one
    /// Keystone just refused), else a new login. One login at a time; requests that wait for
    /// it take its token.
    async fn service_token(
        &self,
        stale: Option<&SecretString>,
    ) -> Result<SecretString, IdentityUnavailable> {
        let mut state = self.service.lock().await;
        if let Some(current) = &state.token {
            let refused = stale.is_some_and(|s| s.expose_secret() == current.token.expose_secret());
            if !refused && Instant::now() < current.renew_after {
                return Ok(current.token.clone());
            }
        }
        if let Some((at, error)) = &state.failed {
            if at.elapsed() < LOGIN_BACKOFF {
                return Err(error.clone());
            }
        }
        let started = Instant::now();
        let login = self.log_in().await;
        self.observer
            .keystone_call(KeystoneCall::Login, started.elapsed().as_secs_f64());
        match login {
            Ok(fresh) => {
                state.failed = None;
                state.token = Some(fresh.clone());
                Ok(fresh.token)
            }
            Err(error) => {
                tracing::error!(%error, "the service cannot log in to Keystone");
                state.failed = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    async fn log_in(&self) -> Result<ServiceToken, IdentityUnavailable> {
        let login = &self.login;
        let body = json!({"auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {
                    "name": login.username,
                    "domain": {"name": login.user_domain_name},
                    "password": login.password.expose_secret(),
                }},
            },
            "scope": {"project": {
                "name": login.project_name,
                "domain": {"name": login.project_domain_name},
            }},
        }});
        let response = self
            .http
            .post(format!("{}?nocatalog", self.tokens_url))
            .json(&body)
            .send()
            .await
            .map_err(|error| transport_failure("logging in", &error))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(IdentityUnavailable(format!(
                "Keystone refused the service account's login (401): check \
                 auth.keystone.username '{}', its password, user_domain_name '{}', and its role \
                 on project '{}'",
                login.username, login.user_domain_name, login.project_name
            )));
        }
        if status != StatusCode::CREATED && status != StatusCode::OK {
            return Err(IdentityUnavailable(format!(
                "Keystone answered {status} to the service account's login"
            )));
        }
        let token = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|value| value.to_str().ok())
            .map(|value| SecretString::from(value.to_owned()))
            .ok_or_else(|| {
                IdentityUnavailable("Keystone's login answer has no X-Subject-Token".to_owned())
            })?;
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_failure("logging in", &error))?;
        let expires_at = read_login(&body).map_err(IdentityUnavailable)?;
        let lifetime = Duration::from_micros(
            u64::try_from(expires_at.saturating_sub(now_micros())).unwrap_or(0),
        );
        let margin = RENEW_MARGIN.min(lifetime / 2);
        Ok(ServiceToken {
            token,
            renew_after: Instant::now() + lifetime.saturating_sub(margin),
        })
    }
}

fn transport_failure(doing: &str, error: &reqwest::Error) -> IdentityUnavailable {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "lost the connection"
    };
    // The error's own chain says why (refused, reset, DNS), without the request's headers.
    IdentityUnavailable(format!("{doing}: {what}: {}", error_chain(error)))
}
