//! `GET /v1/{project_id}/checkpoint_items/count`, `GET /v1/{project_id}/checkpoint_items` and
//! `GET /v1/{project_id}/checkpoint_items/{checkpoint_item_id}` (spec §1–§4).

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use csbs_auth::Caller;
use csbs_domain::{
    BackupFilter, BackupStatus, CountQuery, Criteria, ItemId, ListQuery, NoQuery, ParamError,
    ProjectId, TenantScope,
};
use csbs_domain::{
    FilterParam, FilterValue, SortKey, SortSpec, COUNT_IGNORED_PARAMS, DEFAULT_PAGE_LIMIT,
    MAX_PAGE_LIMIT,
};
use csbs_storage::{ItemPage, Repository};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::IntoParams;

use super::query::{self, Query};
use super::register;
use crate::authentication::TenantCaller;
use crate::errors::ApiError;
use crate::openapi::{self as doc, any_uuid, once, repeatable, request_time, string, text_value};
use crate::public_url;
use crate::state::AppState;
use crate::wire::{self, CountAnswer, LinkRel, ListAnswer, PageLink, ShowAnswer, StoredDocument};

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

/// This module's part of the document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(count, list, show))]
pub(super) struct Paths;

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
    params(doc::ProjectPath, FilterQuery, IgnoredPageQuery),
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The number of matching backups.", body = wire::CountAnswer),
        doc::ReadErrors,
    )
)]
async fn count(
    TenantCaller { caller, project }: TenantCaller,
    Query(query): Query<CountQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filter = scoped_filter(&caller, project, query.criteria, query.all_tenants)?;
    let count = state
        .run_read(move |repository| repository.count(&filter))
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
    params(doc::ProjectPath, FilterQuery, PageQuery),
    security(("x_auth_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of matching backups.", body = wire::ListAnswer),
        doc::ReadErrors,
    )
)]
async fn list(
    TenantCaller { caller, project }: TenantCaller,
    Query(query): Query<ListQuery>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filter = scoped_filter(&caller, project, query.criteria, query.all_tenants)?;
    let (sort, page) = (query.sort, query.page);
    // See AppState::run_read: a page after a marker is read from the primary.
    let query_has_marker = page.marker.is_some();
    let list = move |repository: &Repository| repository.list(&filter, &sort, &page);
    let items = if query_has_marker {
        state.run(list).await?
    } else {
        state.run_read(list).await?
    };
    let next = next_link(&req, &state, &items).transpose()?;
    let answer = ListAnswer {
        checkpoint_items: items
            .documents
            .into_iter()
            .map(StoredDocument::new)
            .collect::<Result<_, _>>()?,
        checkpoint_items_links: next
            .map(|href| PageLink {
                rel: LinkRel::Next,
                href,
            })
            .into_iter()
            .collect(),
    };
    Ok(wire::json_text(StatusCode::OK, answer.to_json()?))
}

/// This request's URL with `marker` set to the last item of the page (and `offset` dropped:
/// the marker already places the next page). `None` on the last page; a refusal when the
/// request's host (or a trusted proxy's forwarding headers) cannot make a URL.
fn next_link(
    req: &HttpRequest,
    state: &AppState,
    page: &ItemPage,
) -> Option<Result<String, ParamError>> {
    let last_id = page.last_id.as_deref().filter(|_| page.has_more)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in query::pairs(req.query_string()) {
        if key != "marker" && key != "offset" {
            query.append_pair(&key, &value);
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
    TenantCaller { project, .. }: TenantCaller,
    Query(NoQuery): Query<NoQuery>,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = ItemId::parse("checkpoint_item_id", &path.1)?;
    let lookup_id = id.clone();
    let item = state
        .run_read(move |repository| repository.find(&project, &lookup_id))
        .await?
        .filter(|item| item.status != BackupStatus::Deleted)
        .ok_or_else(|| ApiError::NotFound(format!("Backup {id} does not exist")))?;
    let answer = ShowAnswer {
        checkpoint_item: StoredDocument::new(item.document)?,
    };
    Ok(wire::json_text(StatusCode::OK, answer.to_json()))
}

// ---------------------------------------------------------------------------------------------
// The query parameters, as documented. Written out rather than derived: a derived parameter
// whose schema comes from a function loses its description and its `required`.

/// `sort`: `key[:asc|desc][,…]` over the sortable keys, as `SortSpec::parse` takes it.
fn sort_pattern() -> String {
    let keys = SortKey::ALL.map(SortKey::as_str).join("|");
    format!("^ *({keys}) *(: *(asc|desc) *)?(, *({keys}) *(: *(asc|desc) *)?)*$")
}

/// A boolean as clients send it: `true/false/yes/no/y/n/1/0` in any case.
const BOOLEAN_PATTERN: &str =
    "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|[YyNn01])$";

/// The filters of count and list (spec §3). Filters combine with AND; a filter given several
/// times means any of its values (OR). An empty or bad value, or any other parameter, is 400.
pub struct FilterQuery;

impl IntoParams for FilterQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        FilterParam::ALL
            .into_iter()
            .map(|param| {
                let spec = param.spec();
                let schema: RefOr<Schema> = match spec.value {
                    FilterValue::Status => Ref::from_schema_name("BackupStatus").into(),
                    FilterValue::Text => text_value().into(),
                    FilterValue::Uuid => any_uuid().into(),
                    FilterValue::Ip => OneOfBuilder::new()
                        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))))
                        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))))
                        .into(),
                    FilterValue::Time => request_time().into(),
                    FilterValue::Boolean => boolean().into(),
                };
                if spec.repeatable {
                    repeatable(spec.name, spec.meaning, schema)
                } else {
                    once(spec.name, spec.meaning, schema)
                }
            })
            .collect()
    }
}

fn boolean() -> ObjectBuilder {
    string().pattern(Some(BOOLEAN_PATTERN))
}

/// Paging and sorting of a list (spec §4).
pub struct PageQuery;

impl IntoParams for PageQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            once(
                "limit",
                "Items per page.",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(MAX_PAGE_LIMIT))
                    .default(Some(DEFAULT_PAGE_LIMIT.into())),
            ),
            once(
                "marker",
                "The id of the last item of the previous page (a UUID); the page starts after \
                 it. 400 if it names no item of the tenant (of any tenant, with `all_tenants`).",
                any_uuid(),
            ),
            once(
                "offset",
                "Items skipped, after the marker.",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0))
                    .default(Some(0.into())),
            ),
            once(
                "sort",
                &format!(
                    "`key[:asc|desc][,…]` over `{}`, each key at most once; the direction \
                     defaults to `desc`, the order to `created_at:desc`.",
                    SortKey::ALL.map(SortKey::as_str).join(", ")
                ),
                string()
                    .pattern(Some(sort_pattern()))
                    .max_length(Some(SortSpec::MAX_LEN))
                    .examples(["name:asc,created_at"]),
            ),
        ]
    }
}

/// What a count accepts and ignores, because one public SDK sends them with every count.
pub struct IgnoredPageQuery;

impl IntoParams for IgnoredPageQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        COUNT_IGNORED_PARAMS
            .into_iter()
            .map(|name| once(name, "Accepted and ignored.", string()))
            .collect()
    }
}
