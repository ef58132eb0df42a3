//! Prometheus metrics, served as text at `GET /metrics`: requests by route and status with
//! their latency, the database pool, database errors, ingest outcomes, and Keystone token
//! validation (outcomes, cache hits, Keystone's latency). Process metrics (resident memory,
//! CPU, open files) come from the `process` collector.

use actix_web::http::Method;
use csbs_auth::{KeySource, KeystoneCall, ValidationObserver, ValidationOutcome};
use csbs_storage::ReplicaStatus;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the service, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    database_errors: IntCounterVec,
    ingest: IntCounterVec,
    keystone_validations: IntCounterVec,
    keystone_cache_hits: IntCounter,
    keystone_latency: HistogramVec,
    key_loads: IntCounterVec,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_in_use: IntGauge,
    pool_waiting: IntGauge,
    pool_max: IntGauge,
    reads: IntCounterVec,
    replica_usable: IntGaugeVec,
    replica_lag: GaugeVec,
}

/// A metric definition that cannot fail at run time failed at start-up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("csbs".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by method, route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency, by method and route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )?;
        let database_errors = IntCounterVec::new(
            Opts::new(
                "database_errors_total",
                "Failed database operations, by kind (unavailable, timeout, read_only, storage_full, other, …)",
            ),
            &["kind"],
        )?;
        let ingest = IntCounterVec::new(
            Opts::new(
                "ingest_writes_total",
                "Ingest API writes, by outcome (stored, replayed, refused)",
            ),
            &["outcome"],
        )?;
        let keystone_validations = IntCounterVec::new(
            Opts::new(
                "keystone_validations_total",
                "Keystone token validations, cached or not, by outcome (valid, invalid, expired, unavailable)",
            ),
            &["outcome"],
        )?;
        let keystone_cache_hits = IntCounter::new(
            "keystone_cache_hits_total",
            "Keystone tokens answered from the validation cache",
        )?;
        let keystone_latency = HistogramVec::new(
            HistogramOpts::new(
                "keystone_request_duration_seconds",
                "Latency of calls to Keystone, by call (validate, login), answered or not",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["call"],
        )?;
        let key_loads = IntCounterVec::new(
            Opts::new(
                "auth_key_loads_total",
                "Signing key (re)loads, by source (files: PEM and JWKS files on SIGHUP; jwks_url: \
                 the fetched JWKS) and outcome (ok, failed: the keys in use stay)",
            ),
            &["source", "outcome"],
        )?;
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let pool_connections = gauge("db_pool_connections", "Open database connections")?;
        let pool_idle = gauge("db_pool_idle_connections", "Idle database connections")?;
        let pool_in_use = gauge("db_pool_in_use_connections", "Database connections in use")?;
        let pool_waiting = gauge(
            "db_pool_waiting_requests",
            "Requests waiting for a database connection",
        )?;
        let pool_max = gauge("db_pool_max_connections", "The pool's size limit")?;
        let reads = IntCounterVec::new(
            Opts::new(
                "db_reads_total",
                "Public reads (count, list, show) by the server that answered (primary, replica)",
            ),
            &["server"],
        )?;
        let replica_usable = IntGaugeVec::new(
            Opts::new(
                "db_replica_usable",
                "1 while a replica serves reads, 0 while it is out (too far behind, or down)",
            ),
            &["replica"],
        )?;
        let replica_lag = GaugeVec::new(
            Opts::new(
                "db_replica_lag_seconds",
                "Each replica's replay lag behind the primary at its last check (-1: unknown)",
            ),
            &["replica"],
        )?;
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(database_errors.clone()),
            Box::new(ingest.clone()),
            Box::new(keystone_validations.clone()),
            Box::new(keystone_cache_hits.clone()),
            Box::new(keystone_latency.clone()),
            Box::new(key_loads.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_idle.clone()),
            Box::new(pool_in_use.clone()),
            Box::new(pool_waiting.clone()),
            Box::new(pool_max.clone()),
            Box::new(reads.clone()),
            Box::new(replica_usable.clone()),
            Box::new(replica_lag.clone()),
        ] {
            registry.register(collector)?;
        }
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            requests,
            latency,
            database_errors,
            ingest,
            keystone_validations,
            keystone_cache_hits,
            keystone_latency,
            key_loads,
            pool_connections,
            pool_idle,
            pool_in_use,
            pool_waiting,
            pool_max,
            reads,
            replica_usable,
            replica_lag,
        })
    }

    /// Records which server answered a public read.
    pub fn read_served(&self, server: &str) {
        self.reads.with_label_values(&[server]).inc();
    }

    /// Sets the replicas' gauges to what their last checks found.
    pub fn set_replicas(&self, replicas: &[ReplicaStatus]) {
        for replica in replicas {
            self.replica_usable
                .with_label_values(&[&replica.label])
                .set(i64::from(replica.usable));
            self.replica_lag
                .with_label_values(&[&replica.label])
                .set(replica.lag.map_or(-1.0, |lag| lag.as_secs_f64()));
        }
    }

    /// Records one answered request. `route` is a route pattern of the service or
    /// `(no route)`, never the request's path, and the method is folded by [`method_label`], so
    /// that no label takes an unbounded set of values from clients.
    pub fn observe_request(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Records a failed database operation.
    pub fn database_error(&self, kind: &str) {
        self.database_errors.with_label_values(&[kind]).inc();
    }

    /// Records an ingest write's outcome.
    pub fn ingest_outcome(&self, outcome: &str) {
        self.ingest.with_label_values(&[outcome]).inc();
    }

    /// The text exposition of every metric, with the pool's state as of now.
    pub fn render(&self, pool: PoolGauges) -> String {
        self.pool_connections.set(i64::from(pool.connections));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_in_use
            .set(i64::from(pool.connections.saturating_sub(pool.idle)));
        self.pool_waiting.set(pool.waiting);
        self.pool_max.set(i64::from(pool.max));
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics; an error leaves what was written.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

impl ValidationObserver for Metrics {
    fn validation(&self, outcome: ValidationOutcome) {
        self.keystone_validations
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    fn cache_hit(&self) {
        self.keystone_cache_hits.inc();
    }

    fn keystone_call(&self, call: KeystoneCall, seconds: f64) {
        self.keystone_latency
            .with_label_values(&[call.as_str()])
            .observe(seconds);
    }

    fn key_load(&self, source: KeySource, ok: bool) {
        self.key_loads
            .with_label_values(&[source.as_str(), if ok { "ok" } else { "failed" }])
            .inc();
    }
}

/// The label of a request method: the standard methods by name, anything else (HTTP allows any
/// token as a method) as `other`.
pub fn method_label(method: &Method) -> &'static str {
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    STANDARD
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

/// The pool's state at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PoolGauges {
    pub connections: u32,
    pub idle: u32,
    pub waiting: i64,
    pub max: u32,
}
