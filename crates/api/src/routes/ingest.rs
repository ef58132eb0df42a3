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

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use csbs_domain::{
    plan_status, plan_write, CurrentItem, ItemId, ItemWrite, ParamError, Plan, StatusUpdate,
};
use csbs_storage::{Selection, StoredAnswer, IDEMPOTENCY_WINDOW_MICROS};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;

use super::register;
use super::writes::{
    admit_ingest, parse_json, refusal, run_write, stored_response, MAX_IDEMPOTENCY_KEY_LEN,
};
use crate::authentication::Authenticated;
use crate::errors::ApiError;
use crate::openapi::{self as doc, parameter, string};
use crate::request_body::RequestBody;
use crate::state::AppState;
use crate::wire::{self, BulkAnswer, BulkOutcome, BulkResult, IngestItemAnswer, StoredDocument};

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

/// The item as stored and its version, 201 when it was created.
fn item_answer(item: &CurrentItem, created: bool) -> Result<StoredAnswer, ApiError> {
    let answer = IngestItemAnswer {
        checkpoint_item: StoredDocument::new(item.record.document.clone())?,
        version: item.version,
    };
    Ok(StoredAnswer {
        status: if created { 201 } else { 200 },
        body: answer.to_json()?,
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
    request_body = wire::ItemWriteBody,
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
    let pending = admit_ingest(&caller, &project, &req, &body)?;
    let id = ItemId::parse("checkpoint_item_id", &id)?;
    let write = ItemWrite::from_json(&pending.project, Some(&id), parse_json(&body)?, pending.now)
        .map_err(|e| refusal(e.into(), ""))?;
    run_write(
        &state,
        pending,
        Selection::Items(vec![id]),
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
    let project = admit_ingest(&caller, &project, &req, &[])?.project;
    let id = ItemId::parse("checkpoint_item_id", &id)?;
    let lookup = id.clone();
    let item = state
        .run(move |repository| repository.find_current(&project, &lookup))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Backup {id} does not exist")))?;
    Ok(stored_response(item_answer(&item, false)?))
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
    request_body = wire::StatusChange,
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
    let pending = admit_ingest(&caller, &project, &req, &body)?;
    let id = ItemId::parse("checkpoint_item_id", &id)?;
    let update = StatusUpdate::from_json(parse_json(&body)?).map_err(|e| refusal(e.into(), ""))?;
    let now = pending.now;
    run_write(
        &state,
        pending,
        Selection::Items(vec![id.clone()]),
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
    request_body = wire::BulkRequest,
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
    let pending = admit_ingest(&caller, &path, &req, &body)?;
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
    let mut writes = Vec::with_capacity(items.len());
    let mut ids: Vec<ItemId> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let prefix = format!("checkpoint_items[{index}].");
        let write = ItemWrite::from_json(&pending.project, None, item, pending.now)
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
    run_write(&state, pending, Selection::Items(ids), move |current| {
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
    })
    .await
}

/// The header that makes an ingest write safe to retry.
pub struct IdempotencyHeader;

impl IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "Idempotency-Key",
            ParameterIn::Header,
            &format!(
                "1–{MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters. The answer is kept with \
                 the write for {} hours: the same key with the same request gets the first \
                 answer again, with another request 409.",
                IDEMPOTENCY_WINDOW_MICROS / 3_600_000_000
            ),
            string()
                .min_length(Some(1))
                .max_length(Some(MAX_IDEMPOTENCY_KEY_LEN))
                .pattern(Some("^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$")),
        )
        .build()]
    }
}
