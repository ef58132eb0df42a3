//! `GET /openapi.json`: a valid OpenAPI 3.1 document that lists exactly the routes the
//! application serves.
//!
//! Three sets must agree: the routes written down below, the operations of the document, and
//! the routes the running application answers. The application's set is read from the service
//! itself: its resource patterns from actix's resource map (the registrations of
//! `routes::configure`, so a new resource cannot hide), and the methods of each by asking it,
//! since only the handlers know them. Dropping a route, an annotation or a method, or adding
//! one without its annotation, fails here.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use csbs_api::startup::Application;
use csbs_test_support::TestDatabase;
use serde_json::Value;

use crate::helpers::test_settings;

/// Every route of the service: (method, path template).
const EXPECTED_ROUTES: [(&str, &str); 12] = [
    ("GET", "/v1/{project_id}/checkpoint_items/count"),
    ("GET", "/v1/{project_id}/checkpoint_items"),
    (
        "GET",
        "/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
    ),
    (
        "DELETE",
        "/v1/{project_id}/providers/{provider_id}/checkpoints/{checkpoint_id}",
    ),
    (
        "PUT",
        "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
    ),
    (
        "GET",
        "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
    ),
    (
        "POST",
        "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}/status",
    ),
    ("POST", "/ingest/v1/{project_id}/checkpoint_items"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The methods asked of every resource; HEAD and OPTIONS too, as a route could answer them.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The route through which the test reads the application's resource map.
const ROUTES_PROBE: &str = "/test/registered-resources";

/// The methods of an OpenAPI path item.
const OPERATION_KEYS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];

type Routes = BTreeSet<(String, String)>;

fn expected_routes() -> Routes {
    EXPECTED_ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect()
}

/// The service, built by the production start-up code, with one extra route that reports the
/// patterns actix registered.
async fn spawn() -> (String, TestDatabase) {
    let db = TestDatabase::sqlite();
    spawn_with(test_settings(db.url()), db)
}

fn spawn_with(settings: csbs_api::settings::Settings, db: TestDatabase) -> (String, TestDatabase) {
    let extra: csbs_api::startup::ExtraRoutes = Arc::new(|cfg: &mut web::ServiceConfig| {
        cfg.route(ROUTES_PROBE, web::get().to(registered_resources));
    });
    let application = Application::build_with(settings, extra).expect("the application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    actix_web::rt::spawn(application.run_until_stopped());
    (address, db)
}

/// actix offers no list of its resources, but its resource map prints every registered
/// pattern (`patterns: Single("/healthz")`); the test reads them from that text, and fails
/// rather than passes if the format ever changes (see `served_patterns`).
async fn registered_resources(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().body(format!("{:?}", req.resource_map()))
}

async fn document(address: &str) -> Value {
    let response = reqwest::get(format!("{address}/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "no token is needed");
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert!(response.headers().contains_key("x-request-id"));
    response.json().await.unwrap()
}

fn documented_routes(document: &Value) -> Routes {
    let mut routes = Routes::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for key in OPERATION_KEYS {
            if item.get(key).is_some() {
                routes.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The path templates of the resources the application registered.
async fn served_patterns(client: &reqwest::Client, address: &str) -> BTreeSet<String> {
    let text = client
        .get(format!("{address}{ROUTES_PROBE}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut patterns = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("Single(\"") {
        rest = &rest[start + "Single(\"".len()..];
        let end = rest.find('"').expect("a closed pattern");
        patterns.insert(rest[..end].to_owned());
        rest = &rest[end..];
    }
    patterns.remove("");
    patterns.remove(ROUTES_PROBE);
    let expected: BTreeSet<String> = EXPECTED_ROUTES
        .iter()
        .map(|(_, path)| (*path).to_owned())
        .collect();
    assert!(
        patterns.is_superset(&expected),
        "the resource map no longer prints its patterns as this test reads them; \
         found {patterns:?} in {text}"
    );
    patterns
}

/// A concrete path for `template`.
fn instantiate(template: &str) -> String {
    template
        .replace("{project_id}", "tenant-a")
        .replace(
            "{checkpoint_item_id}",
            "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12",
        )
        .replace("{provider_id}", "fc4d5750-22e7-4798-8a46-f48f62c4c1da")
        .replace("{checkpoint_id}", "2eefe592-8424-4778-8d0d-962c8a5dd6a4")
}

/// Whether the application has a route for `method` on `path`: anything but its "no route"
/// and "wrong method" answers. No token is sent, so nothing is changed.
async fn serves(client: &reqwest::Client, address: &str, method: &str, path: &str) -> bool {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client
        .request(method.clone(), format!("{address}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status != 404 && status != 405 {
        return true;
    }
    if method == reqwest::Method::HEAD {
        // No body to tell a missing item from a missing route; the route answers 401 anyway.
        return false;
    }
    let body: Value = response.json().await.unwrap();
    body["error_code"] != "APIGW.0101"
}

/// A limit the service takes from its settings is the one its document states.
#[actix_web::test]
async fn the_document_states_the_configured_bulk_limit() {
    for max_bulk_items in [1000, 7] {
        let db = TestDatabase::sqlite();
        let mut settings = test_settings(db.url());
        settings.ingest.max_bulk_items = max_bulk_items;
        let (address, _db) = spawn_with(settings, db);
        let document = document(&address).await;
        let items =
            &document["components"]["schemas"]["BulkRequest"]["properties"]["checkpoint_items"];
        assert_eq!(items["maxItems"], max_bulk_items, "{items}");
        assert_eq!(items["minItems"], 1, "{items}");
    }
}

#[actix_web::test]
async fn the_document_lists_exactly_the_routes_the_application_serves() {
    let (address, _db) = spawn().await;
    let client = reqwest::Client::new();
    let document = document(&address).await;

    assert_same_routes(
        &documented_routes(&document),
        "documented in /openapi.json",
        "the annotations in routes/ or the paths of openapi.rs",
    );

    let mut served = Routes::new();
    for pattern in served_patterns(&client, &address).await {
        for method in METHODS {
            if serves(&client, &address, method, &instantiate(&pattern)).await {
                served.insert((method.to_owned(), pattern.clone()));
            }
        }
    }
    assert_same_routes(&served, "served by the application", "routes::configure");
}

/// Fails with what `found` has that `EXPECTED_ROUTES` lacks, and the other way round.
fn assert_same_routes(found: &Routes, found_where: &str, look_in: &str) {
    let expected = expected_routes();
    let unexpected: Vec<_> = found.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(found).collect();
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "routes {found_where} but not in EXPECTED_ROUTES: {unexpected:?}; routes of \
         EXPECTED_ROUTES not {found_where}: {missing:?} (look in {look_in})"
    );
}

/// Every `$ref` in `value`, with where it was found.
fn references<'a>(value: &'a Value, at: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(object) => {
            for (key, member) in object {
                if key == "$ref" {
                    if let Some(target) = member.as_str() {
                        found.push((at.clone(), target));
                    }
                }
                references(member, format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                references(item, format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// `value` itself, or what it references.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(target) => resolve(document, document.pointer(&target[1..]).unwrap()),
        None => value,
    }
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;

    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());

    let mut found = Vec::new();
    references(&document, String::new(), &mut found);
    assert!(
        found.len() > 50,
        "the document shares its schemas and answers"
    );
    for (at, target) in found {
        assert!(target.starts_with("#/"), "{at}: {target} is not local");
        assert!(
            document.pointer(&target[1..]).is_some(),
            "{at}: {target} resolves to nothing"
        );
    }

    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["x_auth_token"]["type"], "apiKey");
    assert_eq!(schemes["x_auth_token"]["in"], "header");
    assert_eq!(schemes["x_auth_token"]["name"], "X-Auth-Token");
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
}

#[actix_web::test]
async fn every_operation_documents_its_parameters_security_and_errors() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;
    let error_body = "#/components/schemas/ErrorBody";

    for (path, item) in document["paths"].as_object().unwrap() {
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for key in OPERATION_KEYS {
            let Some(operation) = item.get(key) else {
                continue;
            };
            let route = format!("{} {path}", key.to_uppercase());
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let in_path: BTreeSet<&str> = parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{route}: {p}");
                    p["name"].as_str().unwrap()
                })
                .collect();
            assert_eq!(in_path, in_template, "{route}: path parameters");

            let public = !matches!(
                path.as_str(),
                "/healthz" | "/readyz" | "/metrics" | "/openapi.json"
            );
            let security = operation["security"].as_array().unwrap();
            if public {
                let schemes: BTreeSet<&str> = security
                    .iter()
                    .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
                    .collect();
                assert_eq!(
                    schemes,
                    BTreeSet::from(["bearer", "x_auth_token"]),
                    "{route}"
                );
            } else {
                assert_eq!(security, &[serde_json::json!({})], "{route}: no token");
            }

            let responses = operation["responses"].as_object().unwrap();
            let mut statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
            statuses.sort_unstable();
            let required: &[&str] = if public {
                &["200", "400", "401", "403", "404", "500", "503"]
            } else {
                &["200", "500"]
            };
            for status in required {
                assert!(
                    statuses.contains(status) || (*status == "200" && statuses.contains(&"201")),
                    "{route}: no {status} in {statuses:?}"
                );
            }
            for (status, response) in responses {
                let response = resolve(&document, response);
                for header in ["X-Request-Id", "X-Openstack-Request-Id"] {
                    assert_eq!(
                        response["headers"][header]["required"], true,
                        "{route} {status}: {header}"
                    );
                }
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], error_body,
                        "{route} {status}"
                    );
                }
                if status == "503" {
                    assert_eq!(
                        response["headers"]["Retry-After"]["required"], true,
                        "{route}"
                    );
                }
            }
            if path.starts_with("/ingest/") && key != "get" {
                assert!(responses.contains_key("409"), "{route}");
                assert!(
                    parameters
                        .iter()
                        .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key"),
                    "{route}: Idempotency-Key"
                );
                assert!(
                    operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                        .is_string(),
                    "{route}: its body"
                );
            }
        }
    }
}

#[actix_web::test]
async fn the_item_object_keeps_unknown_keys_and_allows_nulls() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;
    let item = &document["components"]["schemas"]["CheckpointItem"];

    assert_eq!(item["additionalProperties"], true);
    let properties = item["properties"].as_object().unwrap();
    for field in [
        "id",
        "name",
        "description",
        "status",
        "checkpoint_id",
        "resource_id",
        "resource_type",
        "created_at",
        "updated_at",
        "protected_at",
        "tags",
        "backup_data",
        "extend_info",
    ] {
        assert!(properties.contains_key(field), "spec §2 field {field}");
    }
    let nullable = |schema: &Value| {
        schema["type"]
            .as_array()
            .is_some_and(|types| types.contains(&Value::from("null")))
            || schema["oneOf"]
                .as_array()
                .is_some_and(|arms| arms.iter().any(|arm| arm["type"] == "null"))
    };
    for field in ["description", "protected_at", "extend_info", "backup_data"] {
        assert!(nullable(&properties[field]), "{field} may be null");
    }
    let extend_info = &document["components"]["schemas"]["ExtendInfo"];
    assert_eq!(extend_info["additionalProperties"], true);
    for field in ["average_speed", "space_saving_ratio", "progress", "size"] {
        let types = extend_info["properties"][field]["type"].as_array().unwrap();
        assert!(
            types.contains(&Value::from("number")),
            "{field} is a number"
        );
    }
}

#[actix_web::test]
async fn the_documented_statuses_are_the_domain_statuses() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;
    let documented: Vec<&str> = document["components"]["schemas"]["BackupStatus"]["enum"]
        .as_array()
        .expect("BackupStatus is an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let known: Vec<&str> = csbs_domain::BackupStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(documented, known);
}

/// Every link (OpenAPI Link Object) names an operation of the document and only path
/// parameters that operation has, and gives every one of them, so that a client (or the
/// stateful fuzzer) following it makes a complete request.
#[actix_web::test]
async fn every_link_names_a_real_operation_and_its_path_parameters() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;
    let mut operations = std::collections::BTreeMap::new();
    for item in document["paths"].as_object().unwrap().values() {
        for key in OPERATION_KEYS {
            if let Some(operation) = item.get(key) {
                let path_parameters: BTreeSet<String> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect();
                operations.insert(
                    operation["operationId"].as_str().unwrap().to_owned(),
                    path_parameters,
                );
            }
        }
    }
    let mut links = 0;
    for item in document["paths"].as_object().unwrap().values() {
        for key in OPERATION_KEYS {
            let Some(operation) = item.get(key) else {
                continue;
            };
            for (status, response) in operation["responses"].as_object().unwrap() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let target = link["operationId"].as_str().unwrap();
                    let wanted = operations
                        .get(target)
                        .unwrap_or_else(|| panic!("{name} ({status}) links to unknown {target}"));
                    let given: BTreeSet<String> = link["parameters"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .cloned()
                        .collect();
                    assert_eq!(&given, wanted, "{name} → {target}");
                }
            }
        }
    }
    assert!(links >= 8, "{links} links");
}

/// `Idempotency-Key` is optional (a write without one is simply not replayable), and the
/// document says so.
#[actix_web::test]
async fn the_idempotency_key_is_documented_as_optional() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;
    let mut seen = 0;
    for item in document["paths"].as_object().unwrap().values() {
        for key in OPERATION_KEYS {
            let parameters = item
                .get(key)
                .and_then(|operation| operation["parameters"].as_array())
                .cloned()
                .unwrap_or_default();
            for parameter in parameters {
                if parameter["name"] == "Idempotency-Key" {
                    seen += 1;
                    assert_eq!(parameter["in"], "header");
                    assert_ne!(parameter["required"], true, "{parameter}");
                }
            }
        }
    }
    assert_eq!(seen, 3, "PUT, status change and bulk take a key");
}

/// Only path parameters are required; every query parameter is optional.
#[actix_web::test]
async fn only_path_parameters_are_required() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;
    for (path, item) in document["paths"].as_object().unwrap() {
        for key in OPERATION_KEYS {
            let parameters = item
                .get(key)
                .and_then(|operation| operation["parameters"].as_array())
                .cloned()
                .unwrap_or_default();
            for parameter in parameters {
                let required = parameter["required"] == true;
                assert_eq!(
                    required,
                    parameter["in"] == "path",
                    "{key} {path}: {parameter}"
                );
            }
        }
    }
}

/// The schemas derived from attributes state limits as literals (the derive takes no
/// constants); they must be the ones the parsers use, as the parameters built from the code's
/// constants state them.
#[actix_web::test]
async fn literal_limits_in_schemas_are_the_parsers_limits() {
    let (address, _db) = spawn().await;
    let document = document(&address).await;
    let schemas = &document["components"]["schemas"];
    let parameter = |name: &str| {
        document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|path| path.as_object().unwrap().values())
            .flat_map(|operation| {
                operation["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("a parameter {name}"))["schema"]
            .clone()
    };
    let project_id = parameter("project_id")["pattern"].clone();
    assert!(project_id.is_string());
    assert_eq!(
        schemas["ItemWrite"]["properties"]["project_id"]["pattern"],
        project_id
    );
    let answered_request_id = &document["paths"]["/healthz"]["get"]["responses"]["200"]["headers"]
        ["X-Request-Id"]["schema"]["pattern"];
    assert!(answered_request_id.is_string());
    assert_eq!(
        schemas["ErrorBody"]["properties"]["request_id"]["pattern"],
        *answered_request_id
    );
    for (schema, field) in [
        ("CheckpointItem", "name"),
        ("ExtendInfo", "resource_az"),
        ("ExtendInfo", "resource_name"),
        ("ItemWrite", "name"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["maxLength"],
            csbs_domain::TextValue::MAX_CHARS,
            "{schema}.{field}"
        );
    }
}
