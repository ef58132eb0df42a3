//! The ingest API for backup engines (not part of the public CSBS surface):
//!
//! - `PUT  /ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}` creates or replaces one item;
//! - `POST /ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}/status` changes its status;
//! - `POST /ingest/v1/{project_id}/checkpoint_items` reports many items, all or nothing;
//! - `GET  /ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}` reads one item with its
//!   version (whatever its status), so that an engine can catch up after a 409.
//!
//! Callers need the service role. Every write names the version it creates; see
//! `csbs_domain::plan_write` for the rules. An `Idempotency-Key` header makes a retried request
//! answer as the first time even after its item moved on.

use actix_web::http::header::{ContentType, HeaderName};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use csbs_domain::{
    plan_status, plan_write, CurrentItem, IngestError, ItemError, ItemId, ItemWrite, ParamError,
    Plan, ProjectId, StatusUpdate,
};
use csbs_storage::{Decision, IdempotencyKey, Selection, StoredAnswer, WriteOutcome};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;

use super::{query_pairs, register};
use crate::authentication::Authenticated;
use crate::errors::ApiError;
use crate::openapi::{self as doc, parameter, string};
use crate::request_body::RequestBody;
use crate::state::AppState;
use crate::wire::{self, BulkAnswer, BulkOutcome, BulkResult, IngestItemAnswer};

/// This module's part of the document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(put_item, get_item, change_status, bulk))]
pub(super) struct Paths;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    register(
        cfg,
        "/ingest/v1/{project_id}/checkpoint_items",
        [(Method::POST, web::to(bulk))],
    );
    register(
        cfg,
        "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
        [
            (Method::GET, web::to(get_item)),
            (Method::PUT, web::to(put_item)),
        ],
    );
    register(
        cfg,
        "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}/status",
        [(Method::POST, web::to(change_status))],
    );
}

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// What every ingest request checks first: the service role, the tenant, no query string, and
/// a usable `Idempotency-Key` when one is sent.
fn admit(
    caller: &Authenticated,
    project: &str,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(ProjectId, Option<IdempotencyKey>), ApiError> {
    caller.0.authorize_ingest()?;
    let project = ProjectId::parse("project_id", project)?;
    caller.0.authorize_ingest_into(&project)?;
    if let Some((key, _)) = query_pairs(req).first() {
        return Err(ParamError::new(key.as_str(), "unknown query parameter").into());
    }
    let key = match req.headers().get(&IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ParamError::new(
                        "Idempotency-Key",
                        "must be 1 to 255 visible ASCII characters",
                    )
                })?;
            let mut digest = Sha256::new();
            digest.update(req.method().as_str());
            digest.update(b" ");
            digest.update(req.path());
            digest.update(b"\n");
            digest.update(body);
            let hash: String = digest
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Some(IdempotencyKey {
                key: key.to_owned(),
                request_hash: hash,
            })
        }
    };
    Ok((project, key))
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ParamError::new("(body)", format!("not JSON: {e}")).into())
}

/// The current time in microseconds since the epoch: `updated_at` is the service's clock.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Maps a refused write to its answer; `field_prefix` places an item of a bulk request.
pub(super) fn refusal(error: IngestError, field_prefix: &str) -> ApiError {
    match error {
        IngestError::Invalid(ItemError { field, reason }) => {
            ParamError::new(format!("{field_prefix}{field}"), reason).into()
        }
        IngestError::NotFound(id) => ApiError::NotFound(format!("Backup {id} does not exist")),
        conflict @ (IngestError::VersionConflict { .. } | IngestError::Transition { .. }) => {
            ApiError::Conflict(format!("{field_prefix}{conflict}"))
        }
    }
}

/// Runs a write and turns its outcome into the HTTP answer.
pub(super) async fn run_write(
    state: &AppState,
    project: ProjectId,
    selection: Selection,
    key: Option<IdempotencyKey>,
    decide: impl FnOnce(Vec<Option<CurrentItem>>) -> Result<Decision, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let now = now_micros();
    let outcome = state
        .run(move |repository| repository.write(&project, &selection, key.as_ref(), now, decide))
        .await?;
    let outcome_label = match &outcome {
        WriteOutcome::Done(_) => "stored",
        WriteOutcome::Replayed(_) => "replayed",
        WriteOutcome::Refused(_) => "refused",
        WriteOutcome::KeyReused | WriteOutcome::Raced => "conflict",
    };
    state.metrics.ingest_outcome(outcome_label);
    let answer = match outcome {
        WriteOutcome::Done(answer) | WriteOutcome::Replayed(answer) => answer,
        WriteOutcome::Refused(error) => return Err(error),
        WriteOutcome::KeyReused => {
            return Err(ApiError::Conflict("this Idempotency-Key was already used with another request".into()))
        }
        WriteOutcome::Raced => {
            return Err(ApiError::Conflict(
                "the item changed while this write was applied; read it again and retry with the next version".into(),
            ))
        }
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    Ok(HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(answer.body))
}

/// The item as stored and its version, 201 when it was created.
fn item_answer(item: &CurrentItem, created: bool) -> Result<StoredAnswer, ApiError> {
    let answer = IngestItemAnswer {
        checkpoint_item: wire::stored(item.record.document.clone())?,
        version: item.version,
    };
    Ok(StoredAnswer {
        status: if created { 201 } else { 200 },
        body: wire::to_json(&answer)?,
    })
}

/// Create or replace a backup
///
/// Stores the item with the version the body names: 1 creates it, the stored version + 1
/// replaces it (a status change must follow the lifecycle), the stored version again is a
/// retry answered as the first time.
#[utoipa::path(
    put,
    path = "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
    tag = "ingest",
    operation_id = "ingest_put_item",
    params(doc::ProjectPath, doc::ItemPath, IdempotencyHeader),
    request_body = doc::ItemWrite,
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created.", body = wire::IngestItemAnswer),
        (status = 200, description = "Replaced, or a retry of the stored version.", body = wire::IngestItemAnswer),
        doc::IngestWriteErrors,
    )
)]
async fn put_item(
    caller: Authenticated,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    RequestBody(body): RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let (project, key) = admit(&caller, &project, &req, &body)?;
    let id = ItemId::parse("checkpoint_item_id", &id)?;
    let write = ItemWrite::from_json(&project, Some(&id), parse_json(&body)?, now_micros())
        .map_err(|e| refusal(e.into(), ""))?;
    run_write(
        &state,
        project,
        Selection::Items(vec![id]),
        key,
        move |current| {
            let plan = plan_write(current.first().and_then(Option::as_ref), write)
                .map_err(|e| refusal(e, ""))?;
            let answer = item_answer(plan.item(), plan.item().version == 1)?;
            Ok((vec![plan], answer))
        },
    )
    .await
}

/// Read a backup with its version
///
/// Whatever its status, `deleted` included, so that an engine can catch up after a 409.
#[utoipa::path(
    get,
    path = "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
    tag = "ingest",
    operation_id = "ingest_get_item",
    params(doc::ProjectPath, doc::ItemPath),
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The backup and its version.", body = wire::IngestItemAnswer),
        doc::ReadErrors,
    )
)]
async fn get_item(
    caller: Authenticated,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let (project, _) = admit(&caller, &project, &req, &[])?;
    let id = ItemId::parse("checkpoint_item_id", &id)?;
    let lookup = id.clone();
    let item = state
        .run(move |repository| repository.find_current(&project, &lookup))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Backup {id} does not exist")))?;
    let answer = item_answer(&item, false)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(answer.body))
}

/// Change the status of a backup
///
/// Moves the item along its lifecycle (or keeps its status, to report progress) and merges
/// `extend_info`; an unknown item is 404.
#[utoipa::path(
    post,
    path = "/ingest/v1/{project_id}/checkpoint_items/{checkpoint_item_id}/status",
    tag = "ingest",
    operation_id = "ingest_change_status",
    params(doc::ProjectPath, doc::ItemPath, IdempotencyHeader),
    request_body = doc::StatusChange,
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The backup as stored now, and its version.", body = wire::IngestItemAnswer),
        doc::IngestWriteErrors,
    )
)]
async fn change_status(
    caller: Authenticated,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    RequestBody(body): RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let (project, key) = admit(&caller, &project, &req, &body)?;
    let id = ItemId::parse("checkpoint_item_id", &id)?;
    let update = StatusUpdate::from_json(parse_json(&body)?).map_err(|e| refusal(e.into(), ""))?;
    let now = now_micros();
    run_write(
        &state,
        project,
        Selection::Items(vec![id.clone()]),
        key,
        move |current| {
            let plan = plan_status(current.first().and_then(Option::as_ref), &id, update, now)
                .map_err(|e| refusal(e, ""))?;
            let answer = item_answer(plan.item(), false)?;
            Ok((vec![plan], answer))
        },
    )
    .await
}

/// Report many backups
///
/// Creates or replaces every item under the rules of a single `PUT`, all or nothing.
#[utoipa::path(
    post,
    path = "/ingest/v1/{project_id}/checkpoint_items",
    tag = "ingest",
    operation_id = "ingest_bulk",
    params(doc::ProjectPath, IdempotencyHeader),
    request_body = doc::BulkRequest,
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every item was stored (or was already).", body = wire::BulkAnswer),
        doc::IngestWriteErrors,
    )
)]
async fn bulk(
    caller: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    RequestBody(body): RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = admit(&caller, &path, &req, &body)?;
    let mut value = parse_json(&body)?;
    let Some(Value::Array(items)) = value.get_mut("checkpoint_items").map(Value::take) else {
        return Err(ParamError::new("checkpoint_items", "must be a list of items").into());
    };
    if items.is_empty() || items.len() > state.max_bulk_items {
        return Err(ParamError::new(
            "checkpoint_items",
            format!("must hold 1 to {} items", state.max_bulk_items),
        )
        .into());
    }
    let now = now_micros();
    let mut writes = Vec::with_capacity(items.len());
    let mut ids: Vec<ItemId> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let prefix = format!("checkpoint_items[{index}].");
        let write = ItemWrite::from_json(&project, None, item, now)
            .map_err(|e| refusal(e.into(), &prefix))?;
        if ids.contains(&write.record.id) {
            return Err(ParamError::new(
                format!("{prefix}id"),
                "appears more than once in this request",
            )
            .into());
        }
        ids.push(write.record.id.clone());
        writes.push(write);
    }
    run_write(
        &state,
        project,
        Selection::Items(ids),
        key,
        move |current| {
            let plans = writes
                .into_iter()
                .zip(current)
                .enumerate()
                .map(|(index, (write, current))| {
                    plan_write(current.as_ref(), write)
                        .map_err(|e| refusal(e, &format!("checkpoint_items[{index}]: ")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let answer = BulkAnswer {
                checkpoint_items: plans
                    .iter()
                    .map(|plan| BulkResult {
                        id: plan.item().record.id.as_str(),
                        status: plan.item().record.status,
                        version: plan.item().version,
                        result: match plan {
                            Plan::Replay(_) => BulkOutcome::Unchanged,
                            Plan::Write(_) => BulkOutcome::Stored,
                        },
                    })
                    .collect(),
            };
            let body = wire::to_json(&answer)?;
            Ok((plans, StoredAnswer { status: 200, body }))
        },
    )
    .await
}

/// The header that makes an ingest write safe to retry.
pub struct IdempotencyHeader;

impl IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "Idempotency-Key",
            ParameterIn::Header,
            "1–255 visible ASCII characters. The answer is kept with the write for 24 hours: \
             the same key with the same request gets the first answer again, with another \
             request 409.",
            string()
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$")),
        )
        .build()]
    }
}
