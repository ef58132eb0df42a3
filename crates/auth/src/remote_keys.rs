//! Signing keys fetched from an identity provider: a JWKS URL (`auth.jwks_url`), or the one an
//! OpenID Connect issuer names in its discovery document (`auth.oidc_issuer`), kept fresh in the
//! background so that the provider can rotate its keys without a restart of the service.
//!
//! One thread per service does every fetch, with a blocking HTTP client of its own: requests
//! never fetch, they only ask the thread for an early refresh (a token names a `kid` that is not
//! known yet) and wait for its answer, so that concurrent requests cause one fetch, and fetches
//! are never closer together than `jwks_min_refresh_seconds` whatever tokens arrive. A failed
//! fetch keeps the last good keys; until a first key set has been loaded the service is not
//! ready, and tokens that no other key verifies are 503, not 401 (the identity provider being
//! away must not look like a logout).
//!
//! Only the configured URLs are ever fetched: the `jku`, `x5u` and `jwk` header fields of a
//! token, which point at keys of the token's own choosing, are never read.

use std::io::Read;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::watch;

use crate::ca_file::read_ca_file;
use crate::errors::error_chain;
use crate::key_files::{jwks_keys, BadKey};
use crate::keys::VerificationKey;
use crate::{AuthSettings, KeyError, KeySource, ValidationObserver};

/// The largest JWKS or discovery document read, in bytes: real ones are a few kilobytes.
const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

/// The longest wait between two attempts while fetches fail, so that a provider that comes
/// back is noticed soon even with a long `jwks_refresh_seconds`.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// Where the keys come from.
#[derive(Debug, Clone)]
enum Source {
    /// `auth.jwks_url`.
    Jwks(String),
    /// `auth.oidc_issuer`: the JWKS URL is found by discovery.
    Issuer(String),
}

/// The keys of the remote key set, and the handle that asks for early refreshes. Dropping it
/// stops the refresh thread.
pub(crate) struct RemoteKeys {
    shared: Arc<Shared>,
    wake: mpsc::Sender<()>,
    fetched: watch::Receiver<u64>,
    /// What the settings call the source, for messages: `auth.jwks_url` or `auth.oidc_issuer`.
    setting: &'static str,
}

/// How an early refresh went, for the request that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EarlyRefresh {
    /// A fetch ran after the request asked, and succeeded.
    Fetched,
    /// The fetch failed, or did not end within the wait.
    Failed,
    /// The last fetch was too recent; one is scheduled for when the minimum interval ends.
    Postponed,
}

/// What the thread and the requests share.
struct Shared {
    keys: RwLock<Option<Arc<Vec<VerificationKey>>>>,
    schedule: Mutex<Schedule>,
    min_interval: Duration,
    /// The longest a request waits for an early refresh.
    request_wait: Duration,
}

#[derive(Default)]
struct Schedule {
    /// When the last fetch started.
    last_attempt: Option<Instant>,
    /// An early refresh was asked for and has not finished yet.
    pending: bool,
    /// Why the last fetch failed, while the failure lasts.
    last_error: Option<String>,
}

/// The settings the thread runs by.
struct Plan {
    source: Source,
    refresh: Duration,
    min_interval: Duration,
    timeout: Duration,
    certificates: Vec<reqwest::Certificate>,
}

impl RemoteKeys {
    /// Starts the refresh thread when `auth.jwks_url` or `auth.oidc_issuer` is set; `None`
    /// when neither is. The first fetch happens in the background: start-up does not wait for
    /// the identity provider.
    pub(crate) fn start(
        settings: &AuthSettings,
        observer: Arc<dyn ValidationObserver>,
    ) -> Result<Option<Self>, KeyError> {
        let invalid = |setting: &'static str, reason: String| KeyError::Setting { setting, reason };
        let url = non_empty(settings.jwks_url.as_deref());
        let issuer = non_empty(settings.oidc_issuer.as_deref());
        let (source, setting) = match (url, issuer) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "oidc_issuer",
                    "set either auth.jwks_url or auth.oidc_issuer, not both".to_owned(),
                ))
            }
            (Some(url), None) => (Source::Jwks(url.to_owned()), "jwks_url"),
            (None, Some(issuer)) => (Source::Issuer(issuer.to_owned()), "oidc_issuer"),
        };
        let (Source::Jwks(url) | Source::Issuer(url)) = &source;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid(
                setting,
                format!("'{url}' is not an http:// or https:// URL"),
            ));
        }
        for (setting, value, most) in [
            ("jwks_timeout_ms", settings.jwks_timeout_ms, 60_000),
            (
                "jwks_min_refresh_seconds",
                settings.jwks_min_refresh_seconds,
                3600,
            ),
            (
                "jwks_refresh_seconds",
                settings.jwks_refresh_seconds,
                86_400,
            ),
        ] {
            if value == 0 || value > most {
                return Err(invalid(setting, format!("must be between 1 and {most}")));
            }
        }
        if settings.jwks_refresh_seconds < settings.jwks_min_refresh_seconds {
            return Err(invalid(
                "jwks_refresh_seconds",
                "must be at least auth.jwks_min_refresh_seconds".to_owned(),
            ));
        }
        let certificates = match &settings.jwks_ca_file {
            Some(path) => read_ca_file(path, |reason| invalid("jwks_ca_file", reason))?,
            None => Vec::new(),
        };
        let timeout = Duration::from_millis(settings.jwks_timeout_ms);
        let min_interval = Duration::from_secs(settings.jwks_min_refresh_seconds);
        let plan = Plan {
            source,
            refresh: Duration::from_secs(settings.jwks_refresh_seconds),
            min_interval,
            timeout,
            certificates,
        };
        let shared = Arc::new(Shared {
            keys: RwLock::new(None),
            schedule: Mutex::new(Schedule::default()),
            min_interval,
            // Discovery and the JWKS itself, each within the timeout.
            request_wait: timeout * 2 + Duration::from_millis(100),
        });
        let (wake, woken) = mpsc::channel();
        let (announce, fetched) = watch::channel(0);
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("csbs-jwks".to_owned())
            .spawn(move || refresh_loop(&thread_shared, &plan, &woken, &announce, &*observer))
            .map_err(|error| {
                invalid(setting, format!("cannot start the refresh thread: {error}"))
            })?;
        Ok(Some(Self {
            shared,
            wake,
            fetched,
            setting,
        }))
    }

    /// The keys of the last good fetch; `None` until one succeeded.
    pub(crate) fn keys(&self) -> Option<Arc<Vec<VerificationKey>>> {
        self.shared
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `Err` with the reason while no key set has been loaded yet.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if self.keys().is_some() {
            return Ok(());
        }
        let schedule = self.shared.schedule();
        Err(match &schedule.last_error {
            Some(error) => format!(
                "the signing keys of auth.{} are not loaded yet: {error}",
                self.setting
            ),
            None => format!(
                "the signing keys of auth.{} are not loaded yet",
                self.setting
            ),
        })
    }

    /// What the settings call the source (`jwks_url` or `oidc_issuer`).
    pub(crate) fn setting(&self) -> &'static str {
        self.setting
    }

    /// Asks for a fetch now, for a token that names a key not known yet, and waits for it
    /// (within the fetch timeout); joins the wait when another request already asked. When
    /// the last fetch is more recent than `jwks_min_refresh_seconds`, a fetch is scheduled for
    /// when that interval ends and the caller does not wait: [`EarlyRefresh::Postponed`].
    pub(crate) async fn refresh_early(&self) -> EarlyRefresh {
        let mut fetched = self.fetched.clone();
        fetched.borrow_and_update();
        {
            let mut schedule = self.shared.schedule();
            let due = schedule
                .last_attempt
                .is_none_or(|at| at.elapsed() >= self.shared.min_interval);
            if !schedule.pending {
                schedule.pending = true;
                // The thread is gone only when this handle is dropped.
                let _ = self.wake.send(());
            }
            if !due {
                return EarlyRefresh::Postponed;
            }
        }
        match tokio::time::timeout(self.shared.request_wait, fetched.changed()).await {
            Ok(Ok(())) if self.shared.schedule().last_error.is_none() => EarlyRefresh::Fetched,
            _ => EarlyRefresh::Failed,
        }
    }

    /// Whether the last fetch failed: the keys in use may be missing the provider's newest.
    pub(crate) fn failing(&self) -> bool {
        self.shared.schedule().last_error.is_some()
    }

    /// Asks for a fetch as soon as `jwks_min_refresh_seconds` allows, without waiting (SIGHUP).
    pub(crate) fn refresh_soon(&self) {
        self.shared.schedule().pending = true;
        let _ = self.wake.send(());
    }
}

impl Shared {
    fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The refresh thread: fetch, publish, wait until the next fetch is due or an early one is
/// asked for; ends when the [`RemoteKeys`] handle is dropped.
fn refresh_loop(
    shared: &Shared,
    plan: &Plan,
    woken: &mpsc::Receiver<()>,
    announce: &watch::Sender<u64>,
    observer: &dyn ValidationObserver,
) {
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(plan.timeout)
        .connect_timeout(plan.timeout)
        // The configured URL must answer itself: a redirect could lead anywhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("csbs-api/", env!("CARGO_PKG_VERSION")));
    for certificate in &plan.certificates {
        builder = builder.add_root_certificate(certificate.clone());
    }
    let http = match builder.build() {
        Ok(http) => http,
        Err(error) => {
            let error = format!("cannot make an HTTP client: {error}");
            tracing::error!(%error, "the signing keys cannot be fetched");
            shared.schedule().last_error = Some(error);
            return;
        }
    };
    let mut jwks_url = match &plan.source {
        Source::Jwks(url) => Some(url.clone()),
        Source::Issuer(_) => None,
    };
    let mut failures: u32 = 0;
    loop {
        shared.schedule().last_attempt = Some(Instant::now());
        // A panic while reading a document must not end the thread and freeze the keys.
        let fetched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fetch_keys(&http, &plan.source, &mut jwks_url)
        }))
        .unwrap_or_else(|_| Err("reading the key set failed unexpectedly (a panic)".to_owned()));
        let wait = match fetched {
            Ok((keys, max_age)) => {
                let count = keys.len();
                let first = shared
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .replace(Arc::new(keys))
                    .is_none();
                if first || failures > 0 {
                    tracing::info!(
                        keys = count,
                        url = jwks_url.as_deref(),
                        "signing keys loaded"
                    );
                } else {
                    tracing::debug!(keys = count, "signing keys refreshed");
                }
                failures = 0;
                shared.schedule().last_error = None;
                observer.key_load(KeySource::Remote, true);
                max_age
                    .unwrap_or(plan.refresh)
                    .clamp(plan.min_interval, plan.refresh)
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "the signing keys could not be fetched; the last good keys stay in use");
                shared.schedule().last_error = Some(error);
                observer.key_load(KeySource::Remote, false);
                // A discovered JWKS URL is found again next time: the provider may have moved it.
                if matches!(plan.source, Source::Issuer(_)) {
                    jwks_url = None;
                }
                plan.min_interval
                    .saturating_mul(2u32.saturating_pow(failures - 1))
                    .min(plan.refresh)
                    .min(MAX_RETRY_WAIT)
                    .max(plan.min_interval)
            }
        };
        shared.schedule().pending = false;
        announce.send_modify(|count| *count += 1);
        match woken.recv_timeout(wait) {
            Ok(()) => {
                // Early, but never closer to the last fetch than the minimum interval.
                while woken.try_recv().is_ok() {}
                let since = shared
                    .schedule()
                    .last_attempt
                    .map_or(plan.min_interval, |at| at.elapsed());
                if let Some(rest) = plan.min_interval.checked_sub(since) {
                    if let Err(RecvTimeoutError::Disconnected) = sleep_unless_dropped(woken, rest) {
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Waits `duration`, swallowing early-refresh requests; `Err(Disconnected)` when the handle is
/// dropped meanwhile.
fn sleep_unless_dropped(
    woken: &mpsc::Receiver<()>,
    duration: Duration,
) -> Result<(), RecvTimeoutError> {
    let until = Instant::now() + duration;
    loop {
        let Some(rest) = until.checked_duration_since(Instant::now()) else {
            return Ok(());
        };
        match woken.recv_timeout(rest) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
        }
    }
}

/// One fetch: discovery first when the JWKS URL is not known yet, then the JWKS. Answers the
/// keys and the answer's cache lifetime.
fn fetch_keys(
    http: &reqwest::blocking::Client,
    source: &Source,
    jwks_url: &mut Option<String>,
) -> Result<(Vec<VerificationKey>, Option<Duration>), String> {
    let url = match (jwks_url.as_ref(), source) {
        (Some(url), _) => url.clone(),
        (None, Source::Issuer(issuer)) => {
            let url = discover(http, issuer)?;
            *jwks_url = Some(url.clone());
            url
        }
        // `jwks_url` starts as the configured URL and is never cleared for this source.
        (None, Source::Jwks(url)) => url.clone(),
    };
    let (body, max_age) = get(http, &url)?;
    // One key the service cannot use (an `oct` key, a short RSA key) must not stop the others
    // from being used: it is skipped, and said so.
    let keys = jwks_keys(&body, &url, BadKey::Skip).map_err(|reason| format!("{url}: {reason}"))?;
    Ok((keys, max_age))
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The JWKS URL named by `issuer`'s `/.well-known/openid-configuration` (OpenID Connect
/// Discovery 1.0 §4), whose `issuer` must be the configured one exactly (§4.3).
fn discover(http: &reqwest::blocking::Client, issuer: &str) -> Result<String, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let (body, _) = get(http, &url)?;
    let document: Discovery = serde_json::from_slice(&body)
        .map_err(|error| format!("{url}: not a discovery document: {error}"))?;
    if document.issuer != issuer {
        return Err(format!(
            "{url} is the discovery document of issuer '{}', not of '{issuer}' (auth.oidc_issuer \
             must be the issuer exactly)",
            document.issuer
        ));
    }
    // An issuer reached over plain HTTP (a test set-up) may name a plain HTTP JWKS; an HTTPS
    // issuer may not downgrade its keys to one.
    let allowed = document.jwks_uri.starts_with("https://")
        || (issuer.starts_with("http://") && document.jwks_uri.starts_with("http://"));
    if !allowed {
        return Err(format!(
            "{url}: jwks_uri '{}' is not an https:// URL",
            document.jwks_uri
        ));
    }
    Ok(document.jwks_uri)
}

/// GET `url`: the body (at most [`MAX_DOCUMENT_BYTES`]) and the `Cache-Control` lifetime.
fn get(http: &reqwest::blocking::Client, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
    let response = http
        .get(url)
        .header("Accept", "application/json")
        .send()
        .map_err(|error| format!("{url}: {}", error_chain(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let max_age = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .and_then(cache_lifetime);
    let mut body = Vec::new();
    response
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|error| format!("{url}: reading the answer: {error}"))?;
    if body.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "{url}: the answer is over {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    Ok((body, max_age))
}

/// The lifetime a `Cache-Control` header gives: `max-age`, or none at all for `no-cache` and
/// `no-store` (the caller then refreshes as often as it may).
fn cache_lifetime(header: &str) -> Option<Duration> {
    let mut lifetime = None;
    for directive in header.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-cache" || directive == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            lifetime = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_lifetimes() {
        let rows = [
            ("max-age=120", Some(120)),
            ("public, max-age=3600, must-revalidate", Some(3600)),
            ("MAX-AGE=7", Some(7)),
            ("no-cache", Some(0)),
            ("max-age=60, no-store", Some(0)),
            ("public", None),
            ("max-age=soon", None),
            ("", None),
        ];
        for (header, seconds) in rows {
            assert_eq!(
                cache_lifetime(header),
                seconds.map(Duration::from_secs),
                "{header}"
            );
        }
    }
}
