//! A database that is down or saturated answers 503 with `Retry-After`, quickly, and the
//! service recovers by itself when the database comes back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csbs_test_support::{backend_tests, exhaust_pool, postgres_admin_url, TestDatabase};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{assert_error, test_settings, TestApp};

async fn expect_unavailable(app: &TestApp, path: &str) {
    let started = Instant::now();
    let response = app.get(path, &app.token("tenant-a", &[])).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no long hang: {:?}",
        started.elapsed()
    );
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("2".into())
    );
    assert_error(response, 503, "CSBS.9998").await;
}

#[actix_web::test]
async fn an_unreachable_database_is_503_and_the_service_keeps_running() {
    // Nothing listens on port 1; the SQLite file's folder does not exist (and cannot be made).
    for url in [
        "postgres://postgres@127.0.0.1:1/none",
        "sqlite:///proc/csbs-cannot-exist/x.db",
    ] {
        let app = TestApp::spawn_with(test_settings(url), None, url.to_owned()).await;
        expect_unavailable(&app, "/v1/tenant-a/checkpoint_items/count").await;
        expect_unavailable(&app, "/v1/tenant-a/checkpoint_items").await;
        expect_unavailable(&app, "/readyz").await;
        let response = app
            .client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "alive while the database is away");
    }
}

async fn an_exhausted_pool_is_503(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    assert_eq!(app.count("tenant-a", "").await, 0);
    let repository = app.state.repository.clone();
    let held = actix_web::web::block(move || exhaust_pool(&repository))
        .await
        .unwrap();
    expect_unavailable(&app, "/v1/tenant-a/checkpoint_items/count").await;
    drop(held);
    assert_eq!(app.count("tenant-a", "").await, 0, "{}", app.db_label);
}

/// A TCP proxy to PostgreSQL that can be cut (refusing and dropping connections) and restored.
struct SwitchableProxy {
    address: SocketAddr,
    up: Arc<AtomicBool>,
}

impl SwitchableProxy {
    /// Runs on a thread of its own, so that the service's blocking start-up cannot stall it.
    fn start(target: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&up);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                proxy(TcpListener::from_std(listener).unwrap(), target, flag).await;
            });
        });
        Self { address, up }
    }
}

async fn proxy(listener: TcpListener, target: SocketAddr, up: Arc<AtomicBool>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        if !up.load(Ordering::SeqCst) {
            continue; // dropped: the connection closes at once
        }
        let up = Arc::clone(&up);
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(target).await else {
                return;
            };
            // Forward until either side closes or the proxy is cut.
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut server) => {}
                _ = async {
                    while up.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                } => {}
            }
        });
    }
}

#[actix_web::test]
async fn the_service_recovers_when_postgres_returns() {
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    let db = TestDatabase::postgres(&admin_url);
    db.repository(); // migrated through the direct URL
                     // The server the URL names (PostgreSQL, or the PgBouncer in front of it).
    let server = db
        .url()
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("the test PostgreSQL URL names user@host:port");
    let proxy = SwitchableProxy::start(
        server
            .parse()
            .expect("the URL names host:port as an IP address"),
    );
    let url = db.url().replacen(server, &proxy.address.to_string(), 1);
    let app = TestApp::spawn_with(test_settings(&url), Some(db), "postgres via proxy".into()).await;
    assert_eq!(app.count("tenant-a", "").await, 0);

    proxy.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        expect_unavailable(&app, "/v1/tenant-a/checkpoint_items/count").await;
    }

    proxy.up.store(true, Ordering::SeqCst);
    let back = Instant::now();
    loop {
        let response = app
            .get(
                "/v1/tenant-a/checkpoint_items/count",
                &app.token("tenant-a", &[]),
            )
            .await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "answers 200 within 5 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PostgreSQL whose processes were all stopped (SIGSTOP) kept requests waiting 15 s and more:
/// its connections stay open, so no connect timeout applies, and the statement timeout is the
/// frozen server's own. Every request is answered 503 within `database.request_timeout_ms`,
/// the service stays alive, and it serves again once the server goes on.
#[actix_web::test]
async fn a_frozen_database_is_503_within_the_request_timeout() {
    let Some(cluster) = crate::scratch_cluster::ScratchCluster::start() else {
        return;
    };
    let mut settings = test_settings(&cluster.url());
    settings.database.request_timeout_ms = 1500;
    settings.database.max_connections = 4;
    let app = TestApp::spawn_with(settings, None, "scratch PostgreSQL".into()).await;
    assert_eq!(app.count("tenant-a", "").await, 0);
    let token = app.token("tenant-a", &[]);
    let engine = app.token("tenant-a", &["csbs_service"]);

    cluster.freeze();
    let bound = Duration::from_millis(1500 + 1000);
    for round in 0..3 {
        let started = Instant::now();
        let reads = (0..6).map(|_| app.get("/v1/tenant-a/checkpoint_items/count", &token));
        let write = app
            .client
            .put(format!(
                "{}/ingest/v1/tenant-a/checkpoint_items/{}",
                app.address,
                uuid::Uuid::new_v4()
            ))
            .header("X-Auth-Token", &engine)
            .json(&{
                let mut item = crate::helpers::ingest_item("tenant-a", serde_json::json!({}));
                item.as_object_mut().unwrap().remove("id");
                item
            })
            .send();
        let (reads, write) = tokio::join!(futures_util::future::join_all(reads), write);
        for response in reads.into_iter().chain([write.unwrap()]) {
            assert_error(response, 503, "CSBS.9998").await;
        }
        assert!(
            started.elapsed() < bound,
            "round {round}: answered after {:?}",
            started.elapsed()
        );
    }
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "alive while the database is frozen");

    cluster.thaw();
    let started = Instant::now();
    loop {
        let response = app.get("/v1/tenant-a/checkpoint_items/count", &token).await;
        if response.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the service serves again after the server goes on"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

backend_tests!(
    async:
    an_exhausted_pool_is_503,
);
