//! Requests made to hurt the service (found by attacking it) get a clear answer, and the
//! service keeps serving everyone else.

use csbs_test_support::backend_tests;
use csbs_test_support::{item_record, TestDatabase};
use serde_json::json;

use crate::helpers::{assert_error, ingest_item, test_settings, TestApp};

/// Thousands of values of one filter once overflowed the stack while the SQL was built (a
/// nested OR per value), killing the process; on SQLite a thousand made the expression too deep.
async fn many_values_of_a_filter_are_refused_not_a_crash(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.store(&[
        item_record(
            "tenant-a",
            json!({"name": "web-1", "resource_id": "server-1"}),
        ),
        item_record(
            "tenant-a",
            json!({"name": "db-1", "resource_id": "server-2"}),
        ),
    ]);
    let token = app.token("tenant-a", &[]);

    let flood = vec!["name=a"; 8150].join("&");
    let response = app
        .get(
            &format!("/v1/tenant-a/checkpoint_items/count?{flood}"),
            &token,
        )
        .await;
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(
        body["error_msg"].as_str().unwrap().contains("name"),
        "{}: {body}",
        app.db_label
    );
    let response = app
        .get(&format!("/v1/tenant-a/checkpoint_items?{flood}"), &token)
        .await;
    assert_error(response, 400, "CSBS.9001").await;

    // The most values every filter may have, all at once: answered, and exactly.
    let mut query: Vec<String> = Vec::new();
    for i in 0..99 {
        query.push(format!("name=zz{i}"));
        query.push(format!("resource_id=nothing-{i}"));
    }
    query.push("name=web".into());
    query.push("resource_id=server-1".into());
    let query = query.join("&");
    assert_eq!(app.count("tenant-a", &query).await, 1, "{}", app.db_label);
    let body = app
        .get_json(
            "tenant-a",
            &format!("/v1/tenant-a/checkpoint_items?{query}"),
        )
        .await;
    assert_eq!(body["checkpoint_items"].as_array().unwrap().len(), 1);

    // And the service is still there for everyone.
    assert_eq!(app.count("tenant-a", "").await, 2, "{}", app.db_label);
}

/// Every request with a new made-up method once added series to `/metrics` (202,000 requests
/// made it 317 MB): no label may take its values from the client.
#[actix_web::test]
async fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let send = |method: String, path: String| {
        let request = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", app.address),
        );
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // One round of everything first, so that every label value the service has exists.
    assert_eq!(send("GET".into(), "/healthz".into()).await, 200);
    assert_eq!(send("BREW".into(), "/healthz".into()).await, 405);
    assert_eq!(send("GET".into(), "/no/such/0".into()).await, 404);
    assert_eq!(send("BREW".into(), "/no/such/0".into()).await, 404);
    app.metrics().await;
    let before = series(&app.metrics().await);
    for i in 0..200 {
        let method: String = format!("M{i:04}XQZWJ").chars().collect();
        assert_eq!(send(method.clone(), "/healthz".into()).await, 405);
        send(method, format!("/no/such/{i}")).await;
        send("GET".into(), format!("/no/such/{i}?x={i}")).await;
    }
    let text = app.metrics().await;
    assert_eq!(series(&text), before, "{text}");
    assert!(
        text.contains(
            r#"csbs_http_requests_total{method="other",route="/healthz",status="405"} 201"#
        ),
        "{text}"
    );
}

/// Sends `body` to `path` with `method` eight times at once; the statuses and bodies.
async fn eight_at_once(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    bodies: &[serde_json::Value],
    key: Option<&str>,
) -> Vec<(u16, String)> {
    let token = app.token("tenant-a", &["csbs_service"]);
    let requests = (0..8).map(|i| {
        let mut request = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .header("X-Auth-Token", &token)
            .json(&bodies[i % bodies.len()]);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    });
    futures_util::future::join_all(requests).await
}

/// Retries racing each other with one `Idempotency-Key` answered 500 (the second insert of the
/// key failed): the loser of such a race gets the stored answer, or 409, never an error.
async fn racing_retries_get_the_first_answer_or_409(db: TestDatabase) {
    // SQLite takes one writer at a time: eight writes at once queue for the pool, and on a busy
    // machine the tests' 500 ms pool wait can run out, which is a 503 by design and not what
    // this test is about. A wait of seconds is given instead.
    let mut settings = test_settings(db.url());
    settings.database.pool_timeout_ms = 5000;
    let label = format!("{db:?}");
    let app = TestApp::spawn_with(settings, Some(db), label).await;
    let label = app.db_label.clone();
    for round in 0..20 {
        // Eight copies of one creation with one key: one stores, the others replay its answer.
        let item = ingest_item("tenant-a", json!({"status": "protecting"}));
        let id = item["id"].as_str().unwrap().to_owned();
        let path = format!("/ingest/v1/tenant-a/checkpoint_items/{id}");
        let key = format!("create-{round}");
        let answers = eight_at_once(
            &app,
            reqwest::Method::PUT,
            &path,
            std::slice::from_ref(&item),
            Some(&key),
        )
        .await;
        let stored: Vec<&String> = answers
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, b)| b)
            .collect();
        assert!(
            answers.iter().all(|(s, _)| *s == 201 || *s == 409),
            "{label}: round {round}: {answers:?}"
        );
        assert!(!stored.is_empty(), "{label}: {answers:?}");
        assert!(
            stored.iter().all(|b| *b == stored[0]),
            "{label}: replays answer as the first time"
        );

        // Eight copies of one status change without a key: the first applies, the rest are
        // retries of the version now stored (or lost a race: 409).
        let change = json!({"status": "available", "version": 2});
        let answers = eight_at_once(
            &app,
            reqwest::Method::POST,
            &format!("{path}/status"),
            &[change],
            None,
        )
        .await;
        assert!(
            answers.iter().all(|(s, _)| *s == 200 || *s == 409),
            "{label}: round {round}: {answers:?}"
        );
        assert!(
            answers.iter().any(|(s, _)| *s == 200),
            "{label}: {answers:?}"
        );

        // Eight different creations under one key: one is stored, the key then refuses the rest.
        let bodies: Vec<serde_json::Value> = (0..8)
            .map(|_| {
                let item = ingest_item("tenant-a", json!({}));
                json!({"checkpoint_items": [item]})
            })
            .collect();
        let key = format!("shared-{round}");
        let answers = eight_at_once(
            &app,
            reqwest::Method::POST,
            "/ingest/v1/tenant-a/checkpoint_items",
            &bodies,
            Some(&key),
        )
        .await;
        let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{label}: round {round}: {answers:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            7,
            "{label}: {answers:?}"
        );
    }
    // Per round: the one item created twice over, and one of the eight bulk items.
    assert_eq!(app.count("tenant-a", "").await, 40, "{label}");
}

/// A file system of `size` for one test, mounted (tmpfs) on a new folder and unmounted when
/// dropped. Mounting needs privileges: under CI their absence fails the test; elsewhere the
/// test says so and does not run.
struct SmallFileSystem {
    dir: std::path::PathBuf,
}

impl SmallFileSystem {
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("csbs-full-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { dir }),
            other => {
                let _ = std::fs::remove_dir(&dir);
                let why = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
                    Err(error) => error.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must be able to mount a small tmpfs: {why}"
                );
                eprintln!(
                    "note: cannot mount a tmpfs ({why}); the full-disk test does not run here"
                );
                None
            }
        }
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SQLite on a full file system answered writes with 500; they are 503 with `Retry-After`,
/// nothing acknowledged is lost, and reads go on.
#[actix_web::test]
async fn a_full_disk_is_503_for_writes_and_reads_go_on() {
    let Some(disk) = SmallFileSystem::mount("1m") else {
        return;
    };
    let url = format!("sqlite://{}", disk.dir.join("csbs.db").display());
    let app = TestApp::spawn_with(crate::helpers::test_settings(&url), None, url.clone()).await;
    let engine = app.token("tenant-a", &["csbs_service"]);
    let padding = "x".repeat(2000);
    let mut acknowledged = 0;
    let mut refused = 0;
    for _ in 0..200 {
        let items: Vec<serde_json::Value> = (0..20)
            .map(|_| ingest_item("tenant-a", json!({"description": padding.clone()})))
            .collect();
        let response = app
            .client
            .post(format!(
                "{}/ingest/v1/tenant-a/checkpoint_items",
                app.address
            ))
            .header("X-Auth-Token", &engine)
            .json(&json!({"checkpoint_items": items}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => acknowledged += 20,
            503 => {
                assert_eq!(response.headers()["retry-after"], "2");
                assert_error(response, 503, "CSBS.9998").await;
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!(
                "a full disk answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    assert!(
        refused >= 3,
        "the disk never filled ({acknowledged} items stored)"
    );
    assert!(acknowledged > 0);
    assert_eq!(
        app.count("tenant-a", "").await,
        acknowledged,
        "reads go on, nothing acknowledged is lost"
    );
    let body = app
        .get_json("tenant-a", "/v1/tenant-a/checkpoint_items?limit=5")
        .await;
    assert_eq!(body["checkpoint_items"].as_array().unwrap().len(), 5);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&format!(
            "csbs_database_errors_total{{kind=\"storage_full\"}} {refused}"
        )),
        "{metrics}"
    );
}

/// Status changes merged `extend_info` without a cap (one item grew to 30 MiB, a page of such
/// items to 240 MiB): an item is at most `MAX_ITEM_BYTES`, and the change that would pass it is
/// a 400 naming `extend_info`.
async fn items_cannot_grow_without_bound(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let engine = app.token("tenant-a", &["csbs_service"]);
    let item = ingest_item("tenant-a", json!({"status": "protecting"}));
    let path = format!(
        "/ingest/v1/tenant-a/checkpoint_items/{}",
        item["id"].as_str().unwrap()
    );
    let response = app
        .send(reqwest::Method::PUT, &path, &engine, Some(&item), None)
        .await;
    assert_eq!(response.status(), 201);
    let chunk = "x".repeat(8 * 1024);
    let mut version = 1;
    let refusal = loop {
        let change = json!({"status": "protecting", "version": version + 1,
            "extend_info": {format!("note_{version}"): chunk.clone()}});
        let response = app
            .send(
                reqwest::Method::POST,
                &format!("{path}/status"),
                &engine,
                Some(&change),
                None,
            )
            .await;
        if response.status() != 200 {
            break response;
        }
        version += 1;
        assert!(
            version < 20,
            "{}: the item grew past {} bytes",
            app.db_label,
            csbs_domain::MAX_ITEM_BYTES
        );
    };
    let body = assert_error(refusal, 400, "CSBS.9001").await;
    assert!(
        body["error_msg"].as_str().unwrap().contains("extend_info"),
        "{body}"
    );
    // The item stays as it was before the refused change.
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .header("X-Auth-Token", &engine)
        .send()
        .await
        .unwrap();
    let stored: serde_json::Value = response.json().await.unwrap();
    assert_eq!(stored["version"], version);
}

/// A page of large items ends before its bytes pass `MAX_PAGE_BYTES`, with a `next` link;
/// paging still yields every item, as many as the count says.
#[actix_web::test]
async fn a_page_of_large_items_is_bounded_in_bytes() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let filler = "y".repeat(60 * 1024);
    let records: Vec<_> = (0..300)
        .map(|i| {
            item_record(
                "tenant-a",
                json!({"name": format!("big-{i}"), "description": filler.clone()}),
            )
        })
        .collect();
    app.store(&records);
    let mut path = "/v1/tenant-a/checkpoint_items?limit=1000".to_owned();
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0;
    loop {
        let response = app.get(&path, &app.token("tenant-a", &[])).await;
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        assert!(
            bytes.len() <= csbs_domain::MAX_PAGE_BYTES + 64 * 1024,
            "{} bytes",
            bytes.len()
        );
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for item in body["checkpoint_items"].as_array().unwrap() {
            assert!(
                seen.insert(item["id"].as_str().unwrap().to_owned()),
                "no item twice"
            );
        }
        pages += 1;
        match body["checkpoint_items_links"][0]["href"].as_str() {
            Some(next) => {
                path = next.trim_start_matches(&app.address).to_owned();
            }
            None => break,
        }
    }
    assert!(pages >= 2, "300 items of 60 KiB need more than one page");
    assert_eq!(seen.len(), 300);
    assert_eq!(app.count("tenant-a", "").await, 300);
}

/// With `public_base_url` empty, `next` links came from whatever `Host` and forwarding
/// headers a client sent (`javascript://…` was accepted). Forwarding headers count only from
/// `server.trusted_proxies`, and the scheme and host must be valid.
#[actix_web::test]
async fn next_links_come_from_valid_hosts_and_trusted_proxies() {
    let db = TestDatabase::sqlite();
    let mut settings = crate::helpers::test_settings(db.url());
    let app = TestApp::spawn_with(settings.clone(), Some(db), "SQLite".into()).await;
    app.store(&[
        item_record("tenant-a", json!({})),
        item_record("tenant-a", json!({})),
    ]);
    let token = app.token("tenant-a", &[]);
    let page = |app: &TestApp, headers: Vec<(&'static str, &'static str)>| {
        let mut request = app
            .client
            .get(format!(
                "{}/v1/tenant-a/checkpoint_items?limit=1",
                app.address
            ))
            .header("X-Auth-Token", &token);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let next = |body: &serde_json::Value| {
        body["checkpoint_items_links"][0]["href"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Not a trusted proxy: the forwarding headers are ignored.
    let response = page(
        &app,
        vec![
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "javascript"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        next(&body).starts_with(&format!("{}/v1/tenant-a/", app.address)),
        "{body}"
    );
    // A host that cannot make a URL is refused, naming the header.
    let response = page(&app, vec![("Host", "javascript://alert(1)")])
        .await
        .unwrap();
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(
        body["error_msg"].as_str().unwrap().contains("Host"),
        "{body}"
    );

    // From a trusted proxy (here: this host), its headers make the link, and are checked too.
    let db = TestDatabase::sqlite();
    settings.database.url = secrecy::SecretString::from(db.url().to_owned());
    settings.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    let proxied = TestApp::spawn_with(settings, Some(db), "SQLite".into()).await;
    proxied.store(&[
        item_record("tenant-a", json!({})),
        item_record("tenant-a", json!({})),
    ]);
    let response = page(
        &proxied,
        vec![
            ("X-Forwarded-Host", "csbs.example.com"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await
    .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        next(&body).starts_with("https://csbs.example.com/v1/tenant-a/checkpoint_items?"),
        "{body}"
    );
    let response = page(&proxied, vec![("X-Forwarded-Proto", "javascript")])
        .await
        .unwrap();
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .contains("X-Forwarded-Proto"),
        "{body}"
    );
}

backend_tests!(
    async: many_values_of_a_filter_are_refused_not_a_crash,
    items_cannot_grow_without_bound,
    racing_retries_get_the_first_answer_or_409,
);
