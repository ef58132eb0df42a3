//! `GET /v1/{project_id}/checkpoint_items/count`, `GET /v1/{project_id}/checkpoint_items` and
//! `GET /v1/{project_id}/checkpoint_items/{checkpoint_item_id}` (spec §1–§4).

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use csbs_auth::Caller;
use csbs_domain::{
    BackupFilter, BackupStatus, CountQuery, Criteria, ItemId, ListQuery, ParamError, ProjectId,
    TenantScope,
};
use csbs_storage::ItemPage;

use super::{query_pairs, register};
use crate::authentication::Authenticated;
use crate::errors::ApiError;
use crate::openapi as doc;
use crate::public_url;
use crate::state::AppState;
use crate::wire::{self, CountAnswer, LinkRel, ListAnswer, PageLink, ShowAnswer};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    // `count` is registered before `{checkpoint_item_id}`, which would otherwise take it.
    register(
        cfg,
        "/v1/{project_id}/checkpoint_items/count",
        [(Method::GET, web::to(count))],
    );
    register(
        cfg,
        "/v1/{project_id}/checkpoint_items",
        [(Method::GET, web::to(list))],
    );
    register(
        cfg,
        "/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
        [(Method::GET, web::to(show))],
    );
}

/// The path's tenant, validated, after checking that the caller may act on it.
fn authorized_project(caller: &Caller, path_project: &str) -> Result<ProjectId, ApiError> {
    let project = ProjectId::parse("project_id", path_project)?;
    caller.authorize_project(&project)?;
    Ok(project)
}

/// The filter of a count or list: the path's tenant, or every tenant for an administrator who
/// asked for `all_tenants`.
fn scoped_filter(
    caller: &Caller,
    project: ProjectId,
    criteria: Criteria,
    all_tenants: bool,
) -> Result<BackupFilter, ApiError> {
    let scope = if all_tenants {
        caller.authorize_all_tenants()?;
        TenantScope::AllTenants
    } else {
        TenantScope::Project(project)
    };
    Ok(BackupFilter { scope, criteria })
}

/// Count backups
///
/// How many backups of the tenant (or, for an administrator with `all_tenants=true`, of every
/// tenant) match the filters. `limit`, `marker`, `offset` and `sort` are accepted and ignored.
#[utoipa::path(
    get,
    path = "/v1/{project_id}/checkpoint_items/count",
    tag = "checkpoint_items",
    operation_id = "count_checkpoint_items",
    params(doc::ProjectPath, doc::FilterQuery, doc::IgnoredPageQuery),
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The number of matching backups.", body = wire::CountAnswer),
        doc::ReadErrors,
    )
)]
async fn count(
    Authenticated(caller): Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let project = authorized_project(&caller, &path)?;
    let query = CountQuery::from_pairs(&query_pairs(&req))?;
    let filter = scoped_filter(&caller, project, query.criteria, query.all_tenants)?;
    let count = state
        .run(move |repository| repository.count(&filter))
        .await?;
    wire::json(StatusCode::OK, &CountAnswer { count })
}

/// List backups
///
/// A page of the backups that match the filters (the same filters as the count, which
/// always agrees with paging through the list).
#[utoipa::path(
    get,
    path = "/v1/{project_id}/checkpoint_items",
    tag = "checkpoint_items",
    operation_id = "list_checkpoint_items",
    params(doc::ProjectPath, doc::FilterQuery, doc::PageQuery),
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of matching backups.", body = wire::ListAnswer),
        doc::ReadErrors,
    )
)]
async fn list(
    Authenticated(caller): Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let project = authorized_project(&caller, &path)?;
    let pairs = query_pairs(&req);
    let query = ListQuery::from_pairs(&pairs)?;
    let filter = scoped_filter(&caller, project, query.criteria, query.all_tenants)?;
    let (sort, page) = (query.sort, query.page);
    let items = state
        .run(move |repository| repository.list(&filter, &sort, &page))
        .await?;
    let next = next_link(&req, &state, &pairs, &items).transpose()?;
    let answer = ListAnswer {
        checkpoint_items: items
            .documents
            .into_iter()
            .map(wire::stored)
            .collect::<Result<_, _>>()?,
        checkpoint_items_links: next
            .map(|href| PageLink {
                rel: LinkRel::Next,
                href,
            })
            .into_iter()
            .collect(),
    };
    wire::json(StatusCode::OK, &answer)
}

/// This request's URL with `marker` set to the last item of the page (and `offset` dropped:
/// the marker already places the next page). `None` on the last page; a refusal when the
/// request's host (or a trusted proxy's forwarding headers) cannot make a URL.
fn next_link(
    req: &HttpRequest,
    state: &AppState,
    pairs: &[(String, String)],
    page: &ItemPage,
) -> Option<Result<String, ParamError>> {
    let last_id = page.last_id.as_deref().filter(|_| page.has_more)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if key != "marker" && key != "offset" {
            query.append_pair(key, value);
        }
    }
    query.append_pair("marker", last_id);
    let base = public_url::base_url(
        req,
        state.public_base_url.as_deref(),
        &state.trusted_proxies,
    );
    Some(base.map(|base| format!("{base}{}?{}", req.path(), query.finish())))
}

/// Show a backup
///
/// One backup of the tenant, whatever its status but `deleted`. Takes no query parameters.
#[utoipa::path(
    get,
    path = "/v1/{project_id}/checkpoint_items/{checkpoint_item_id}",
    tag = "checkpoint_items",
    operation_id = "show_checkpoint_item",
    params(doc::ProjectPath, doc::ItemPath),
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The backup.", body = wire::ShowAnswer),
        doc::ReadErrors,
    )
)]
async fn show(
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (path_project, path_id) = path.into_inner();
    let project = authorized_project(&caller, &path_project)?;
    let id = ItemId::parse("checkpoint_item_id", &path_id)?;
    if let Some((key, _)) = query_pairs(&req).first() {
        return Err(ParamError::new(key.as_str(), "unknown query parameter").into());
    }
    let lookup_id = id.clone();
    let item = state
        .run(move |repository| repository.find(&project, &lookup_id))
        .await?
        .filter(|item| item.status != BackupStatus::Deleted)
        .ok_or_else(|| ApiError::NotFound(format!("Backup {id} does not exist")))?;
    let answer = ShowAnswer {
        checkpoint_item: wire::stored(item.document)?,
    };
    wire::json(StatusCode::OK, &answer)
}
