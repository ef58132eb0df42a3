//! The shared pieces of the OpenAPI 3.1 document served at `GET /openapi.json`: the
//! description, the value schemas and parameter builders the route modules and `wire` use,
//! the shared error answers, and the modifiers that complete the document once every route
//! module's operations are in (`routes::document`).
//!
//! Each operation comes from the `#[utoipa::path]` annotation beside its handler in `routes/`,
//! and each answer's schema from the `wire` type the handler serializes, so neither has a copy
//! here. `tests/api/openapi.rs` checks that the document lists exactly the routes the
//! application serves, and `scripts/fuzz-api.sh` checks real answers against it.

use std::collections::BTreeMap;

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Schema};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use csbs_domain::{BackupStatus, ProjectId, TextValue, PROVIDER_ID};

use crate::envelope::MAX_REQUEST_ID_LEN;
use crate::errors::{ErrorBody, ErrorCode, RETRY_AFTER_SECONDS};
use crate::wire::{
    BackupData, BulkAnswer, BulkItemWrite, BulkRequest, BulkResult, CheckpointItem, CopyStatus,
    CountAnswer, DeleteAnswer, ExtendInfo, FailCode, ImageType, IngestItemAnswer, ItemWriteBody,
    ListAnswer, Liveness, OsImage, PageLink, Readiness, ShowAnswer, StatusChange, Tag,
    VolumeBackup,
};

/// The document: every route of `routes::configure`, and the schemas they answer with.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "CSBS backup query service",
        description = "The backup (\"checkpoint item\") query API of the Cloud Server Backup \
            Service, and the ingest API through which backup engines report their backups.\n\n\
            Every answer carries `X-Request-Id` and the same value in `X-Openstack-Request-Id`; \
            every error answer, whatever produced it, is the JSON `ErrorBody`. A path no route \
            has is 404 and a known path with another method is 405, both `APIGW.0101`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(
        ErrorBody,
        ErrorCode,
        BackupStatus,
        CheckpointItem,
        BackupData,
        ExtendInfo,
        FailCode,
        VolumeBackup,
        OsImage,
        Tag,
        CopyStatus,
        ImageType,
        CountAnswer,
        ListAnswer,
        PageLink,
        ShowAnswer,
        DeleteAnswer,
        ItemWriteBody,
        BulkItemWrite,
        BulkRequest,
        BulkAnswer,
        BulkResult,
        StatusChange,
        IngestItemAnswer,
        Liveness,
        Readiness,
        OpenApiDocument,
    )),
    tags(
        (name = "checkpoint_items", description = "The public CSBS backup API (spec §1–§6)."),
        (name = "ingest", description = "For backup engines: create, replace and move items \
            through their lifecycle. Needs the service role."),
        (name = "operations", description = "Health, metrics and this document; no token."),
    )
)]
/// The document without its paths: the description, the shared schemas and the tags. Each
/// route module adds its own operations (`routes::document`).
pub struct ApiDoc;

/// Completes a document whose paths are all in: the security schemes, the shared error
/// answers, the headers every answer carries, the links between operations and the closed
/// objects. Each of these walks the paths, so it runs after every route module's part is
/// merged.
pub fn complete(document: &mut utoipa::openapi::OpenApi) {
    let modifiers: [&dyn Modify; 5] = [
        &SecuritySchemes,
        &ErrorAnswers,
        &Envelope,
        &ObjectKeys,
        &Links,
    ];
    for modifier in modifiers {
        modifier.modify(document);
    }
}

// ---------------------------------------------------------------------------------------------
// Value schemas shared by parameters and bodies.

/// A UUID as the service writes it: lowercase and hyphenated.
const CANONICAL_UUID_PATTERN: &str =
    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// No control characters (Unicode category Cc), as `TextValue::parse` requires.
const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// The time grammar of filters and ingest bodies: `YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|±HH:MM]`.
/// Years 0001–9999, as the parser takes them.
const REQUEST_TIME_PATTERN: &str = "^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])\
    T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$";
/// The time format of answers: UTC, microseconds, no zone.
const STORED_TIME_PATTERN: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}$";
/// A tenant id: what `ProjectId::parse` accepts.
fn project_id_pattern() -> String {
    format!("^[A-Za-z0-9_-]{{1,{}}}$", ProjectId::MAX_LEN)
}

/// A request id the service echoes: short and plain, else it makes its own (`req-<uuid>`).
fn request_id_pattern() -> String {
    format!("^[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LEN}}}$")
}

pub(crate) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

pub(crate) fn nullable(schema_type: Type) -> SchemaType {
    SchemaType::from_iter([schema_type, Type::Null])
}

/// Any spelling `uuid::Uuid::try_parse` accepts is taken; the hyphenated form is documented.
pub(crate) fn any_uuid() -> ObjectBuilder {
    string().format(Some(SchemaFormat::Custom("uuid".to_owned())))
}

pub(crate) fn canonical_uuid() -> ObjectBuilder {
    any_uuid()
        .pattern(Some(CANONICAL_UUID_PATTERN))
        .description(Some("A UUID, lowercase and hyphenated."))
}

pub(crate) fn text_value() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(TextValue::MAX_CHARS))
        .pattern(Some(NO_CONTROL_PATTERN))
        .description(Some(format!(
            "1–{} characters, no control characters.",
            TextValue::MAX_CHARS
        )))
}

pub(crate) fn nullable_text_value() -> ObjectBuilder {
    text_value().schema_type(nullable(Type::String))
}

pub(crate) fn request_time() -> ObjectBuilder {
    string()
        .pattern(Some(REQUEST_TIME_PATTERN))
        .description(Some(
            "`YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1–6 digits and an optional `Z` or \
         `±HH:MM`; no zone means UTC.",
        ))
}

pub(crate) fn stored_time() -> ObjectBuilder {
    string()
        .pattern(Some(STORED_TIME_PATTERN))
        .description(Some(
            "UTC with microseconds and no zone: `2017-04-15T04:20:37.277880`.",
        ))
}

// ---------------------------------------------------------------------------------------------
// Parameters. Written out rather than derived: a derived parameter whose schema comes from a
// function loses its description and its `required`.

/// A parameter `name` in `location` with `schema`.
pub(crate) fn parameter(
    name: &str,
    location: ParameterIn,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> ParameterBuilder {
    // `parameter_in` first: utoipa's `required` forces `true` while the location is still its
    // default, the path.
    let required = if location == ParameterIn::Path {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .required(required)
        .description(Some(description))
        .schema(Some(schema))
}

/// A query parameter that may be repeated: `name=a&name=b`.
pub(crate) fn repeatable(
    name: &str,
    description: &str,
    item: impl Into<RefOr<Schema>>,
) -> Parameter {
    parameter(
        name,
        ParameterIn::Query,
        description,
        ArrayBuilder::new()
            .items(item.into())
            .min_items(Some(1))
            .max_items(Some(csbs_domain::MAX_VALUES_PER_FILTER)),
    )
    .style(Some(ParameterStyle::Form))
    .explode(Some(true))
    .build()
}

/// A query parameter that may be given once.
pub(crate) fn once(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    parameter(name, ParameterIn::Query, description, schema).build()
}

/// The path of every public and ingest route.
pub struct ProjectPath;

impl IntoParams for ProjectPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "project_id",
            ParameterIn::Path,
            "The tenant: 1–64 characters of `[A-Za-z0-9_-]`. It must be the token's \
             `project_id` unless the caller holds the administrator role (else 403).",
            string()
                .pattern(Some(project_id_pattern()))
                .examples(["0123456789abcdef0123456789abcdef"]),
        )
        .build()]
    }
}

/// A route of one item.
pub struct ItemPath;

impl IntoParams for ItemPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "checkpoint_item_id",
            ParameterIn::Path,
            "The backup's id, a UUID (any case).",
            any_uuid().examples(["7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12"]),
        )
        .build()]
    }
}

// ---------------------------------------------------------------------------------------------
// Error answers.

/// The codes an error answer may carry, each with what it means there.
type CodeMeanings = &'static [(ErrorCode, &'static str)];

/// The values of `WWW-Authenticate` on a 401 (each header line one of them).
const WWW_AUTHENTICATE_PATTERN: &str = r#"^(Bearer|Keystone uri="[^"]*")$"#;

/// The statuses every error answer can have, as reusable responses named like this, with the
/// codes each may carry (from the one [`ErrorCode`] table) and what each means there.
const ERROR_ANSWERS: [(u16, &str, CodeMeanings); 8] = [
    (
        400,
        "BadRequest",
        &[(
            ErrorCode::InvalidParameter,
            "an invalid parameter, path segment or body; the message names it.",
        )],
    ),
    (
        401,
        "Unauthorized",
        &[(
            ErrorCode::Unauthenticated,
            "no token, or a token that fails validation.",
        )],
    ),
    (
        403,
        "Forbidden",
        &[(
            ErrorCode::Forbidden,
            "another tenant's path, `all_tenants` without the administrator role, or an \
             ingest route without the service role.",
        )],
    ),
    (
        404,
        "NotFound",
        &[
            (
                ErrorCode::NotFound,
                "no such backup (or backup record) for this tenant",
            ),
            (
                ErrorCode::NoRoute,
                "a path that matches no route (an empty path segment).",
            ),
        ],
    ),
    (
        409,
        "Conflict",
        &[(
            ErrorCode::Conflict,
            "a stale version, a transition the lifecycle forbids, a reused idempotency key, \
             or a concurrent write to the same items.",
        )],
    ),
    (
        413,
        "PayloadTooLarge",
        &[(
            ErrorCode::InvalidParameter,
            "a body larger than `ingest.max_body_bytes`.",
        )],
    ),
    (
        500,
        "InternalError",
        &[(
            ErrorCode::Internal,
            "anything unexpected; the cause is logged, never shown.",
        )],
    ),
    (
        503,
        "Unavailable",
        &[(
            ErrorCode::Unavailable,
            "the database is down, not migrated yet, too slow or its pool is exhausted, or the \
             identity service (Keystone) cannot validate the token now. Retry after \
             `Retry-After` seconds.",
        )],
    ),
];

/// The description of an error answer: each code it may carry, and what it means there.
fn error_description(codes: CodeMeanings) -> String {
    codes
        .iter()
        .map(|(code, meaning)| format!("`{}`: {meaning}", code.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// References to the named error answers of `statuses`.
fn error_refs(statuses: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    ERROR_ANSWERS
        .iter()
        .filter(|(status, _, _)| statuses.contains(status))
        .map(|(status, name, _)| {
            (
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(*name)),
            )
        })
        .collect()
}

/// The errors of a read: count, list, show and the ingest read.
pub struct ReadErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[400, 401, 403, 404, 500, 503])
    }
}

/// The errors of a deletion: a read's, and 409 when another write changed the items meanwhile.
pub struct DeleteErrors;

impl IntoResponses for DeleteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[400, 401, 403, 404, 409, 500, 503])
    }
}

/// The errors of an ingest write.
pub struct IngestWriteErrors;

impl IntoResponses for IngestWriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[400, 401, 403, 404, 409, 413, 500, 503])
    }
}

/// The errors of an operations route, which reads no input.
pub struct OperationErrors;

impl IntoResponses for OperationErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[500])
    }
}

/// The errors of `/readyz`: 503 until the database answers.
pub struct ReadinessErrors;

impl IntoResponses for ReadinessErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[500, 503])
    }
}

/// Registers the error answers referenced by the sets above.
struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, codes) in ERROR_ANSWERS {
            let mut response = ResponseBuilder::new()
                .description(error_description(codes))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                );
            if status == 401 {
                response = response.header(
                    "WWW-Authenticate",
                    required_header(
                        string().pattern(Some(WWW_AUTHENTICATE_PATTERN)),
                        "One per kind of token accepted: `Keystone uri=\"<identity URL>\"` when \
                         Keystone tokens are, `Bearer` when JWTs are.",
                    ),
                );
            }
            if status == 503 {
                response = response.header(
                    "Retry-After",
                    required_header(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(0))
                            .examples([RETRY_AFTER_SECONDS]),
                        "Seconds to wait before retrying.",
                    ),
                );
            }
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response.build()));
        }
    }
}

/// A response header the answer always carries.
///
/// utoipa's `Header` has no `required` field although OpenAPI's Header Object does; it is
/// written through the extensions map, which is flattened into the header object.
fn required_header(schema: impl Into<RefOr<Schema>>, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(schema))
        .description(Some(description))
        .extensions(Some(Extensions::from_iter([("required", true)])))
        .build()
}

// ---------------------------------------------------------------------------------------------
// What the envelope middleware adds to every answer, and the security schemes.

/// The request ids of `envelope.rs`, on every operation and answer.
struct Envelope;

impl Envelope {
    fn add_headers(response: &mut Response) {
        for name in ["X-Request-Id", "X-Openstack-Request-Id"] {
            response.headers.insert(
                name.to_owned(),
                RefOr::T(required_header(
                    string().pattern(Some(request_id_pattern())),
                    &format!(
                        "The request's id: the caller's `X-Request-Id` if it is a plain one of \
                         at most {MAX_REQUEST_ID_LEN} characters, else generated \
                         (`req-<uuid>`)."
                    ),
                )),
            );
        }
    }

    fn add_to_operation(operation: &mut Operation) {
        operation.parameters.get_or_insert_with(Vec::new).push(
            ParameterBuilder::new()
                .name("X-Request-Id")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Echoed in the answer when it is 1–{MAX_REQUEST_ID_LEN} characters of \
                     `[A-Za-z0-9._:-]`; anything else is replaced by a generated id."
                )))
                .schema(Some(string()))
                .build()
                .into(),
        );
        for response in operation.responses.responses.values_mut() {
            if let RefOr::T(response) = response {
                Self::add_headers(response);
            }
        }
    }
}

impl Modify for Envelope {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
                &mut item.query,
            ]
            .into_iter()
            .flatten()
            {
                Self::add_to_operation(operation);
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            for response in components.responses.values_mut() {
                if let RefOr::T(response) = response {
                    Self::add_headers(response);
                }
            }
        }
    }
}

/// Links between operations (OpenAPI Link Objects): where an answer names an item or a backup
/// record, the operations that take it. Clients may follow them; `scripts/fuzz-api.sh` runs
/// stateful sequences along them (create, read back, change, list, delete).
struct Links;

/// (operation, statuses, link name, linked operation, parameters as runtime expressions).
type LinkSpec = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const LINKS: &[LinkSpec] = &[
    (
        "ingest_put_item",
        &["200", "201"],
        "ReadBack",
        "ingest_get_item",
        &[
            ("project_id", "$request.path.project_id"),
            ("checkpoint_item_id", "$response.body#/checkpoint_item/id"),
        ],
    ),
    (
        "ingest_put_item",
        &["200", "201"],
        "Show",
        "show_checkpoint_item",
        &[
            ("project_id", "$request.path.project_id"),
            ("checkpoint_item_id", "$response.body#/checkpoint_item/id"),
        ],
    ),
    (
        "ingest_put_item",
        &["200", "201"],
        "ChangeStatus",
        "ingest_change_status",
        &[
            ("project_id", "$request.path.project_id"),
            ("checkpoint_item_id", "$response.body#/checkpoint_item/id"),
        ],
    ),
    (
        "ingest_put_item",
        &["200", "201"],
        "DeleteRecord",
        "delete_checkpoint",
        &[
            ("project_id", "$request.path.project_id"),
            ("provider_id", PROVIDER_ID),
            (
                "checkpoint_id",
                "$response.body#/checkpoint_item/checkpoint_id",
            ),
        ],
    ),
    (
        "ingest_change_status",
        &["200"],
        "ReadBack",
        "ingest_get_item",
        &[
            ("project_id", "$request.path.project_id"),
            ("checkpoint_item_id", "$response.body#/checkpoint_item/id"),
        ],
    ),
    (
        "ingest_bulk",
        &["200"],
        "ReadFirst",
        "ingest_get_item",
        &[
            ("project_id", "$request.path.project_id"),
            (
                "checkpoint_item_id",
                "$response.body#/checkpoint_items/0/id",
            ),
        ],
    ),
    (
        "list_checkpoint_items",
        &["200"],
        "ShowFirst",
        "show_checkpoint_item",
        &[
            ("project_id", "$request.path.project_id"),
            (
                "checkpoint_item_id",
                "$response.body#/checkpoint_items/0/id",
            ),
        ],
    ),
    (
        "list_checkpoint_items",
        &["200"],
        "DeleteFirstRecord",
        "delete_checkpoint",
        &[
            ("project_id", "$request.path.project_id"),
            ("provider_id", PROVIDER_ID),
            (
                "checkpoint_id",
                "$response.body#/checkpoint_items/0/checkpoint_id",
            ),
        ],
    ),
    (
        "show_checkpoint_item",
        &["200"],
        "ReadVersion",
        "ingest_get_item",
        &[
            ("project_id", "$request.path.project_id"),
            ("checkpoint_item_id", "$response.body#/checkpoint_item/id"),
        ],
    ),
];

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let Some(id) = operation.operation_id.clone() else {
                    continue;
                };
                for (from, statuses, name, to, parameters) in LINKS {
                    if *from != id {
                        continue;
                    }
                    for status in *statuses {
                        let Some(RefOr::T(response)) =
                            operation.responses.responses.get_mut(*status)
                        else {
                            continue;
                        };
                        let mut link = LinkBuilder::new().operation_id(*to);
                        for (parameter, expression) in *parameters {
                            link = link.parameter(*parameter, *expression);
                        }
                        response
                            .links
                            .insert((*name).to_owned(), RefOr::T(link.build()));
                    }
                }
            }
        }
    }
}

/// `X-Auth-Token` (as OpenStack-family clients send it) or `Authorization: Bearer`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "x_auth_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Auth-Token",
                "A JWT, as OpenStack-family clients send it.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The same JWT in `Authorization: Bearer`."))
                    .build(),
            ),
        );
    }
}

/// Which objects keep keys the document does not name. Item documents are stored and answered
/// with every key they came with; a status change takes only its own keys.
struct ObjectKeys;

impl Modify for ObjectKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let open = [
            "CheckpointItem",
            "ItemWrite",
            "BackupData",
            "ExtendInfo",
            "FailCode",
            "VolumeBackup",
            "OsImage",
            "Tag",
        ];
        for (name, schema) in components.schemas.iter_mut() {
            let allowed = if open.contains(&name.as_str()) {
                true
            } else if name == "StatusChange" {
                false
            } else {
                continue;
            };
            if let RefOr::T(Schema::Object(object)) = schema {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(allowed)));
            }
        }
    }
}

/// An OpenAPI 3.1 document.
pub struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property("openapi", string().pattern(Some("^3\\.1\\.[0-9]+$")))
            .required("openapi")
            .property("info", ObjectBuilder::new())
            .required("info")
            .property("paths", ObjectBuilder::new())
            .required("paths")
            .into()
    }
}

impl ToSchema for OpenApiDocument {}
