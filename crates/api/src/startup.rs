//! Building the application the same way for production and tests: bind (port 0 picks a free
//! port), report the port, then run.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App};
use anyhow::Context;
use csbs_auth::{Authenticator, IfMissing, SecretSource};
use csbs_storage::{establish, DatabaseUrl, Replicas, Repository};

use crate::envelope::envelope;
use crate::http_refusals::Refusals;
use crate::metrics::Metrics;
use crate::public_url::TrustedProxy;
use crate::request_body::BodyLimits;
use crate::routes;
use crate::settings::{Reach, Settings};
use crate::state::{AppState, MigrationGate};

/// Extra routes, for tests that need a route production does not have.
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    /// Builds the service from `settings`.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Arc::new(|_| {}))
    }

    /// Builds the service with `extra` routes registered beside the real ones.
    pub fn build_with(mut settings: Settings, extra: ExtraRoutes) -> anyhow::Result<Self> {
        let url = settings.database.database_url()?;
        tracing::info!(database = %url.redacted(), "opening the database");
        let pool_settings = settings.database.pool_settings();
        let repository = settings.open_repository(Reach::Eventually)?;

        let secret = settings
            .auth
            .with_generated_secret(&settings.data_dir, IfMissing::Create)?;
        if let SecretSource::DataDir(path) = secret {
            tracing::warn!(
                secret_file = %path.display(),
                "no token key is configured; using the generated development secret. Mint a \
                 token with: csbs-api token --project-id <PROJECT_ID>"
            );
        }
        let metrics = Metrics::new()?;
        let authenticator =
            Authenticator::from_settings(&settings.auth, Arc::new(metrics.clone()))?;
        if let Some(url) = settings.auth.keystone_url() {
            tracing::info!(
                keystone = url,
                cache_seconds = settings.auth.keystone.cache_seconds,
                jwt = authenticator.jwt().is_some(),
                "Keystone tokens are validated by the identity service"
            );
        }

        let readiness = Arc::new(MigrationGate::default());
        start_migrations(
            &url,
            repository.clone(),
            Arc::clone(&readiness),
            &pool_settings.connection,
        );

        let (replica_urls, replica_settings) = settings.database.replicas()?;
        let replicas = if replica_urls.is_empty() {
            None
        } else {
            tracing::info!(
                replicas = replica_urls.len(),
                max_lag_ms = settings.database.max_replica_lag_ms,
                "reads go to replicas while they keep up"
            );
            Some(Replicas::start(
                &repository,
                &replica_urls,
                &pool_settings,
                &replica_settings,
            )?)
        };
        let state = AppState {
            repository,
            replicas,
            authenticator,
            readiness,
            public_base_url: Some(settings.server.public_base_url.clone())
                .filter(|u| !u.is_empty()),
            trusted_proxies: settings
                .server
                .trusted_proxies
                .iter()
                .map(|proxy| TrustedProxy::parse(proxy))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("invalid server.trusted_proxies: {e}"))?,
            max_bulk_items: settings.ingest.max_bulk_items,
            database_deadline: Duration::from_millis(settings.database.request_timeout_ms),
            metrics,
            openapi_document: routes::document_json(routes::DocumentedLimits {
                max_bulk_items: settings.ingest.max_bulk_items,
            })
            .context("cannot write the OpenAPI document")?
            .into(),
        };

        let listener = TcpListener::bind(&settings.server.bind).with_context(|| {
            format!(
                "cannot listen on {} (server.bind; set CSBS__SERVER__BIND to another \
                     address or port)",
                settings.server.bind
            )
        })?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let body_limits = web::Data::new(BodyLimits {
            max_bytes: settings.ingest.max_body_bytes,
            timeout: Duration::from_millis(settings.server.body_timeout_ms),
        });
        let header_timeout = Duration::from_millis(settings.server.header_timeout_ms);
        // actix-web's `HttpServer`, spelled out, for one difference: each connection's stream
        // is wrapped so that the HTTP layer's own refusals leave in the service's error format
        // (`http_refusals`). HTTP/1 only, as before (no `http2` feature).
        let mut server = actix_server::Server::build()
            .shutdown_timeout(settings.server.shutdown_grace_seconds)
            .listen("csbs-api", listener, move || {
                let app = App::new()
                    .app_data(data.clone())
                    .app_data(body_limits.clone())
                    .wrap(from_fn(envelope))
                    // Outermost, so that it compresses the envelope's final bodies.
                    .wrap(Compress::default())
                    .configure(routes::configure)
                    .configure(|cfg| extra(cfg))
                    .default_service(web::to(routes::no_route));
                let http = HttpService::build()
                    .client_request_timeout(header_timeout)
                    .h1(map_config(app.into_factory(), |_| AppConfig::default()));
                fn_service(|stream: actix_web::rt::net::TcpStream| {
                    let peer = stream.peer_addr().ok();
                    let _ = stream.set_nodelay(true);
                    std::future::ready(Ok::<_, actix_http::error::DispatchError>((
                        Refusals::new(stream),
                        peer,
                    )))
                })
                .and_then(http)
            })?;
        // 0 means one per core, as actix counts them.
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        };
        server = server.workers(workers);
        tracing::info!(port, workers, "listening");
        Ok(Self {
            port,
            server: server.run(),
            state,
        })
    }

    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server: gracefully (requests in flight finish within the grace
    /// period) or at once. SIGTERM and SIGINT do the graceful stop by themselves.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The shared state, for tests that look behind the API.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM stop it gracefully).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Applies migrations now if the database answers, else keeps trying in the background: the
/// service starts while its database is down and becomes ready by itself.
fn start_migrations(
    url: &DatabaseUrl,
    repository: Repository,
    readiness: Arc<MigrationGate>,
    connection: &csbs_storage::ConnectionSettings,
) {
    // r2d2 reports a failed connection as a bare timeout; one direct attempt logs the cause.
    if let Err(error) = establish(url, connection) {
        tracing::warn!(%error, "the database is not reachable yet; serving 503 until it is");
    }
    let migrate = move || match repository.migrate() {
        Ok(applied) => {
            if applied == 0 {
                tracing::info!("database schema is up to date");
            } else {
                tracing::info!(
                    applied,
                    "database migrations applied; the schema is up to date"
                );
            }
            readiness.mark_migrated();
            true
        }
        Err(error) => {
            tracing::warn!(%error, "database migrations could not run yet");
            false
        }
    };
    if migrate() {
        return;
    }
    std::thread::spawn(move || {
        let mut delay = Duration::from_millis(250);
        while !migrate() {
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}
