//! What every write shares, the ingest routes' and the public deletion's: the admission of an
//! ingest request, the `Idempotency-Key`, the one reading of the clock a write is stamped
//! with, refusals as answers, and running the write to its HTTP answer.

use actix_web::http::header::{ContentType, HeaderName};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use csbs_domain::{CurrentItem, IngestError, ItemError, Micros, NoQuery, ParamError, ProjectId};
use csbs_storage::{Decision, IdempotencyKey, Selection, StoredAnswer, WriteOutcome};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::query;
use crate::authentication::Authenticated;
use crate::errors::ApiError;
use crate::state::AppState;

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The longest `Idempotency-Key` taken.
pub(super) const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A write about to run: its tenant, its idempotency key, and the instant it happens. The
/// clock is read once, here: the `updated_at` the write stamps and the idempotency window it
/// is judged in are the same "now".
#[derive(Debug)]
pub(super) struct PendingWrite {
    pub project: ProjectId,
    pub key: Option<IdempotencyKey>,
    pub now: Micros,
}

impl PendingWrite {
    /// A write into `project` now.
    pub fn new(project: ProjectId, key: Option<IdempotencyKey>) -> Self {
        Self {
            project,
            key,
            now: now_micros(),
        }
    }
}

/// What every ingest request checks first: the service role, the tenant, no query string, and
/// a usable `Idempotency-Key` when one is sent.
pub(super) fn admit_ingest(
    caller: &Authenticated,
    project: &str,
    req: &HttpRequest,
    body: &[u8],
) -> Result<PendingWrite, ApiError> {
    caller.0.authorize_ingest()?;
    let project = ProjectId::parse("project_id", project)?;
    caller.0.authorize_ingest_into(&project)?;
    query::parse::<NoQuery>(req)?;
    let key = idempotency_key(req, body)?;
    Ok(PendingWrite::new(project, key))
}

/// The request's `Idempotency-Key`, with a digest of what it asks (method, path and body), so
/// that the same key with another request is told apart.
fn idempotency_key(req: &HttpRequest, body: &[u8]) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
        .ok_or_else(|| {
            ParamError::new(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
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
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        request_hash: hash,
    }))
}

/// A request body as JSON.
pub(super) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ParamError::new("(body)", format!("not JSON: {e}")).into())
}

/// The current time in microseconds since the epoch: `updated_at` is the service's clock.
fn now_micros() -> Micros {
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

/// Runs `write` on the items of `selection` and turns its outcome into the HTTP answer.
pub(super) async fn run_write(
    state: &AppState,
    write: PendingWrite,
    selection: Selection,
    decide: impl FnOnce(Vec<Option<CurrentItem>>) -> Result<Decision, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let PendingWrite { project, key, now } = write;
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
    Ok(stored_response(answer))
}

/// The HTTP answer a write stored (and replays for a retried idempotency key).
pub(super) fn stored_response(answer: StoredAnswer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(answer.body)
}
