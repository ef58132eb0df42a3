//! Graceful shutdown: requests in flight finish, then the service stops; the binary exits 0 on
//! SIGTERM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use csbs_api::startup::Application;
use csbs_test_support::TestDatabase;

use crate::helpers::test_settings;

#[actix_web::test]
async fn requests_in_flight_finish_before_the_service_stops() {
    let db = TestDatabase::sqlite();
    let extra: csbs_api::startup::ExtraRoutes = Arc::new(|cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/test/slow",
            web::get().to(|| async {
                actix_web::rt::time::sleep(Duration::from_millis(600)).await;
                "finished"
            }),
        );
    });
    let application = Application::build_with(test_settings(db.url()), extra).unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let server = actix_web::rt::spawn(application.run_until_stopped());

    let in_flight =
        actix_web::rt::spawn(async move { reqwest::get(format!("{address}/test/slow")).await });
    actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    let stopping = Instant::now();
    handle.stop(true).await;
    let response = in_flight
        .await
        .unwrap()
        .expect("the request in flight was answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    server.await.unwrap().unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_binary_exits_zero_on_sigterm() {
    let db = TestDatabase::sqlite();
    let data_dir =
        std::env::temp_dir().join(format!("csbs-sigterm-{}", uuid::Uuid::new_v4().simple()));
    let (port, mut command) = crate::helpers::serve_command(&db, &data_dir);
    let mut child = command
        .env("CSBS__SERVER__SHUTDOWN_GRACE_SECONDS", "2")
        .env("CSBS__LOG__FILTER", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Serving, not merely listening: the kernel accepts connections as soon as the port is
    // bound, before the server has installed its signal handlers, and a SIGTERM in that gap
    // ends the process by the default action. An answered request means the server runs.
    let started = Instant::now();
    while !healthz_answers(port) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    let _ = std::fs::remove_dir_all(data_dir);
}

/// Whether `GET /healthz` on `port` answers 200.
fn healthz_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}
