//! `DELETE /v1/{project_id}/providers/{provider_id}/checkpoints/{checkpoint_id}` (spec §1):
//! asks for the deletion of a backup record's items (or of the one named by
//! `?checkpoint_items=ID`). The items move to `waiting_delete`; the backup engine carries on
//! through the ingest API. Repeating the request is harmless.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use csbs_domain::{
    deletion_requested, DeleteQuery, Deletion, ItemId, ParamError, Plan, PROVIDER_ID,
};
use csbs_storage::{Selection, StoredAnswer};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;

use super::query::Query;
use super::register;
use super::writes::{refusal, run_write, PendingWrite};
use crate::authentication::TenantCaller;
use crate::errors::ApiError;
use crate::openapi::{self as doc, any_uuid, once, parameter};
use crate::state::AppState;
use crate::wire::{self, DeleteAnswer};

/// This module's part of the document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(delete_checkpoint))]
pub(super) struct Paths;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    register(
        cfg,
        "/v1/{project_id}/providers/{provider_id}/checkpoints/{checkpoint_id}",
        [(Method::DELETE, web::to(delete_checkpoint))],
    );
}

/// Delete a backup record
///
/// Asks for the deletion of the record's backups (or of the one named by `checkpoint_items`):
/// those in `available` or `error` move to `waiting_delete`, those already on their way are
/// left alone, so repeating the request is harmless. If any is busy (`waiting_protect`,
/// `protecting`, `waiting_restore`, `restoring`) nothing changes and the answer is 400.
#[utoipa::path(
    delete,
    path = "/v1/{project_id}/providers/{provider_id}/checkpoints/{checkpoint_id}",
    tag = "checkpoint_items",
    operation_id = "delete_checkpoint",
    params(doc::ProjectPath, CheckpointPath, DeleteParams),
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The deletion was asked for.", body = wire::DeleteAnswer),
        doc::DeleteErrors,
    )
)]
async fn delete_checkpoint(
    TenantCaller { project, .. }: TenantCaller,
    Query(DeleteQuery { item }): Query<DeleteQuery>,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, provider, checkpoint) = path.into_inner();
    let provider = ItemId::parse("provider_id", &provider)?;
    if provider.as_str() != PROVIDER_ID {
        return Err(ApiError::NotFound(format!(
            "Provider {provider} does not exist"
        )));
    }
    let checkpoint_id = ItemId::parse("checkpoint_id", &checkpoint)?;
    let pending = PendingWrite::new(project, None);
    let now = pending.now;
    let selection = Selection::Checkpoint {
        checkpoint_id: checkpoint_id.clone(),
        item: item.clone(),
    };
    run_write(&state, pending, selection, move |current| {
        let items: Vec<_> = current.into_iter().flatten().collect();
        if items.is_empty() {
            return Err(ApiError::NotFound(match item {
                Some(id) => format!("Backup {id} of backup record {checkpoint_id} does not exist"),
                None => format!("Backup record {checkpoint_id} does not exist"),
            }));
        }
        if let Some(busy) = items
            .iter()
            .find(|i| i.record.status.deletion() == Deletion::Refused)
        {
            return Err(ParamError::new(
                "checkpoint_items",
                format!(
                    "backup {} is {} and cannot be deleted now",
                    busy.record.id, busy.record.status
                ),
            )
            .into());
        }
        let plans = items
            .iter()
            .map(|current| match current.record.status.deletion() {
                Deletion::Start => deletion_requested(current, now)
                    .map(Plan::Write)
                    .map_err(|e| refusal(e, "")),
                _ => Ok(Plan::Replay(current.clone())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            plans,
            StoredAnswer {
                status: 200,
                body: wire::to_json(&DeleteAnswer {})?,
            },
        ))
    })
    .await
}

/// The backup record of a deletion.
pub struct CheckpointPath;

impl IntoParams for CheckpointPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter(
                "provider_id",
                ParameterIn::Path,
                "The provider: the real service has exactly this one; any other is 404.",
                any_uuid().enum_values(Some([PROVIDER_ID])),
            )
            .build(),
            parameter(
                "checkpoint_id",
                ParameterIn::Path,
                "The backup record, a UUID.",
                any_uuid().examples(["2eefe592-8424-4778-8d0d-962c8a5dd6a4"]),
            )
            .build(),
        ]
    }
}

/// The `?checkpoint_items=ID` of a deletion.
pub struct DeleteParams;

impl IntoParams for DeleteParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![once(
            "checkpoint_items",
            "Narrows the deletion to this one backup of the record (a UUID).",
            any_uuid().examples(["7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12"]),
        )]
    }
}
