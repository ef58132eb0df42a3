//! Request bodies are read within bounds: their size once decoded, their encoding, and the time
//! they take to arrive.

use std::io::Write;
use std::time::{Duration, Instant};

use csbs_test_support::TestDatabase;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{assert_error, ingest_item, test_settings, TestApp};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The resident memory of this process, now and at its peak since the last
/// [`reset_peak_resident`], in bytes.
fn resident_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Makes the current resident size the peak (Linux: `5` in `clear_refs`).
fn reset_peak_resident() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn item_path(item: &serde_json::Value) -> String {
    format!(
        "/ingest/v1/tenant-a/checkpoint_items/{}",
        item["id"].as_str().unwrap()
    )
}

/// A gzip body of about a megabyte that inflates to a gibibyte was refused with 413, but only
/// after some 75 MiB of it had been inflated: 32 at once took the process to 2.5 GiB.
#[actix_web::test]
async fn compressed_bodies_are_bounded_as_they_inflate() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let engine = app.token("tenant-a", &["csbs_service"]);

    // 16 gzip members of 64 MiB of zeros each: 1 GiB once inflated.
    let member = gzip(&vec![0u8; 64 << 20]);
    let bomb: Vec<u8> = member.repeat(16);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());

    reset_peak_resident();
    let (before, _) = resident_bytes();
    let requests = (0..16).map(|_| {
        app.client
            .post(format!(
                "{}/ingest/v1/tenant-a/checkpoint_items",
                app.address
            ))
            .header("X-Auth-Token", &engine)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(bomb.clone())
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let (_, peak) = resident_bytes();
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 256 << 20,
        "16 bombs at once grew the process by {} MiB at the peak",
        grown >> 20
    );
    for response in responses {
        assert_error(response.unwrap(), 413, "CSBS.9001").await;
    }

    // A compressed body within the limit is read as the plain one would be.
    let item = ingest_item("tenant-a", json!({}));
    for encoding in ["gzip", "x-gzip", "deflate", "identity"] {
        let mut item = item.clone();
        item["id"] = json!(uuid::Uuid::new_v4().to_string());
        let plain = serde_json::to_vec(&item).unwrap();
        let body = match encoding {
            "deflate" => {
                let mut encoder =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&plain).unwrap();
                encoder.finish().unwrap()
            }
            "identity" => plain,
            _ => gzip(&plain),
        };
        let response = app
            .client
            .put(format!("{}{}", app.address, item_path(&item)))
            .header("X-Auth-Token", &engine)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            201,
            "{encoding}: {:?}",
            response.text().await
        );
    }
    assert_eq!(app.count("tenant-a", "").await, 4);

    // A body in an encoding the service does not read is refused, never read as plain JSON.
    let plain = serde_json::to_vec(&item).unwrap();
    for encoding in ["br", "zstd", "gzip, gzip", "compress", "bogus"] {
        let response = app
            .client
            .put(format!("{}{}", app.address, item_path(&item)))
            .header("X-Auth-Token", &engine)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", encoding)
            .body(plain.clone())
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 415, "CSBS.9001").await;
        assert!(
            body["error_msg"]
                .as_str()
                .unwrap()
                .contains("Content-Encoding"),
            "{encoding}: {body}"
        );
    }
    // A truncated stream is a bad body.
    let mut broken = gzip(&plain);
    broken.truncate(broken.len() / 2);
    let response = app
        .client
        .put(format!("{}{}", app.address, item_path(&item)))
        .header("X-Auth-Token", &engine)
        .header("Content-Encoding", "gzip")
        .body(broken)
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "CSBS.9001").await;
    assert_eq!(app.count("tenant-a", "").await, 4);
}

/// A plain body over the limit is refused by its announced length, and one that sends no
/// length by what arrives.
#[actix_web::test]
async fn plain_bodies_over_the_limit_are_413() {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(db.url());
    settings.ingest.max_body_bytes = 64 << 10;
    let app = TestApp::spawn_with(settings, Some(db), "SQLite".into()).await;
    let engine = app.token("tenant-a", &["csbs_service"]);
    let big = vec![b' '; 65 << 10];
    let response = app
        .client
        .post(format!(
            "{}/ingest/v1/tenant-a/checkpoint_items",
            app.address
        ))
        .header("X-Auth-Token", &engine)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "CSBS.9001").await;
    // Chunked: no length announced, so the limit applies to what arrives.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut raw = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /ingest/v1/tenant-a/checkpoint_items HTTP/1.1\r\nHost: {address}\r\n\
         X-Auth-Token: {engine}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.chunks(4096) {
        let framed = format!("{:x}\r\n{}\r\n", chunk.len(), " ".repeat(chunk.len()));
        if raw.write_all(framed.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = raw.write_all(b"0\r\n\r\n").await;
    let (answer, _) = read_until_closed(&mut raw, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
}

/// Reads what the server sends until it closes the connection or `limit` passes.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// 300 ingest requests that announced a megabyte and sent a byte a second were all held open
/// for as long as they went on: a body (and the headers before it) must arrive in time.
#[actix_web::test]
async fn slow_clients_are_cut_off() {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(db.url());
    settings.server.body_timeout_ms = 800;
    settings.server.header_timeout_ms = 800;
    let app = TestApp::spawn_with(settings, Some(db), "SQLite".into()).await;
    let engine = app.token("tenant-a", &["csbs_service"]);
    let address = app.address.trim_start_matches("http://").to_owned();

    // A body that trickles in.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "PUT /ingest/v1/tenant-a/checkpoint_items/7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12 HTTP/1.1\r\n\
         Host: {address}\r\nX-Auth-Token: {engine}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000000\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let trickle = async {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let started = Instant::now();
    trickle.await;
    let (answer, _) = read_until_closed(&mut slow, Duration::from_secs(2)).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a slow body is answered 408: {answer:?}"
    );
    assert!(answer.contains("CSBS.9001"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Headers that never end.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (answer, waited) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        waited < Duration::from_secs(3),
        "the connection is closed after the header timeout ({waited:?}): {answer:?}"
    );

    // Everyone else is served meanwhile and after.
    assert_eq!(app.count("tenant-a", "").await, 0);
}
