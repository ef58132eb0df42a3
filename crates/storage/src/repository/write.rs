//! Writes from backup engines and deletion requests: read the items, let the caller decide,
//! store the decision, all in one transaction, with optimistic version checks so that no write
//! ever lands on a state it was not based on.

use csbs_domain::{BackupRecord, CurrentItem, ItemId, Micros, Plan, ProjectId};
use diesel::prelude::*;
use serde_json::Value;

use crate::connection::DbConnection;
use crate::rows::NewItemRow;
use crate::schema::{backup_items, ingest_requests};
use crate::{Repository, StorageError};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Which items a write reads.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These items, in this order; absent ones are `None`.
    Items(Vec<ItemId>),
    /// Every item of a backup record (or the one named), all present.
    Checkpoint {
        checkpoint_id: ItemId,
        item: Option<ItemId>,
    },
}

/// A request's `Idempotency-Key` and a digest of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// The PostgreSQL advisory lock of this key in `project`: the first eight bytes of
    /// SHA-256 over both. Two keys sharing a lock only wait for each other.
    fn lock_id(&self, project: &ProjectId) -> i64 {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"csbs idempotency key\0")
            .chain_update(project.as_str())
            .chain_update(b"\0")
            .chain_update(&self.key)
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }
}

/// An HTTP answer kept for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
}

/// How a write ended.
#[derive(Debug)]
pub enum WriteOutcome<E> {
    /// The decision was stored (or was a replay); this is its answer.
    Done(StoredAnswer),
    /// The key was seen before with the same request: the first answer.
    Replayed(StoredAnswer),
    /// The key was seen before with another request.
    KeyReused,
    /// The caller refused the write; nothing was stored.
    Refused(E),
    /// Another writer changed an item between the read and the write; nothing was stored.
    Raced,
}

/// What the caller decided: the plans (one per item to store) and the answer to give.
pub type Decision = (Vec<Plan>, StoredAnswer);

/// Raised inside the transaction to roll it back.
enum Abort<E> {
    Refused(E),
    Raced,
    Storage(StorageError),
}

impl<E> From<diesel::result::Error> for Abort<E> {
    fn from(error: diesel::result::Error) -> Self {
        Abort::Storage(error.into())
    }
}

impl Repository {
    /// Reads the `selection` of `project`'s items, passes them to `decide`, and stores what it
    /// decides, in one transaction. With an idempotency key, a request seen before is answered
    /// from the stored answer without deciding again.
    pub fn write<E>(
        &self,
        project: &ProjectId,
        selection: &Selection,
        idempotency: Option<&IdempotencyKey>,
        now: Micros,
        decide: impl FnOnce(Vec<Option<CurrentItem>>) -> Result<Decision, E>,
    ) -> Result<WriteOutcome<E>, StorageError> {
        let mut conn = self.connection()?;
        let result = write_transaction::<_, Abort<E>>(&mut conn, |conn| {
            if let (Some(key), DbConnection::Postgresql(pg)) = (idempotency, &mut *conn) {
                // Requests with one key wait for each other here, so that a retry racing its
                // first attempt finds the answer stored rather than inserting the key twice.
                diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(key.lock_id(project))
                    .execute(pg)?;
            }
            diesel::delete(
                ingest_requests::table
                    .filter(ingest_requests::project_id.eq(project.as_str()))
                    .filter(ingest_requests::created_at_us.lt(now - IDEMPOTENCY_WINDOW_MICROS)),
            )
            .execute(conn)?;
            if let Some(key) = idempotency {
                let seen: Option<(String, i32, String)> = ingest_requests::table
                    .select((
                        ingest_requests::request_hash,
                        ingest_requests::status_code,
                        ingest_requests::response_body,
                    ))
                    .filter(ingest_requests::project_id.eq(project.as_str()))
                    .filter(ingest_requests::idempotency_key.eq(&key.key))
                    .first(conn)
                    .optional()?;
                if let Some((hash, status, body)) = seen {
                    return Ok(if hash == key.request_hash {
                        WriteOutcome::Replayed(StoredAnswer {
                            status: u16::try_from(status).unwrap_or(500),
                            body,
                        })
                    } else {
                        WriteOutcome::KeyReused
                    });
                }
            }
            let current = load(conn, project, selection).map_err(Abort::Storage)?;
            let versions: Vec<Option<(ItemId, i64)>> = current
                .iter()
                .map(|c| c.as_ref().map(|c| (c.record.id.clone(), c.version)))
                .collect();
            let (mut plans, answer) = decide(current).map_err(Abort::Refused)?;
            // Rows are written in key order, so that overlapping writers cannot deadlock.
            plans.sort_by(|a, b| a.item().record.id.cmp(&b.item().record.id));
            for plan in &plans {
                if let Plan::Write(item) = plan {
                    let before = versions
                        .iter()
                        .flatten()
                        .find(|(id, _)| *id == item.record.id)
                        .map(|(_, v)| *v);
                    store(conn, item, before)?;
                }
            }
            if let Some(key) = idempotency {
                diesel::insert_into(ingest_requests::table)
                    .values((
                        ingest_requests::project_id.eq(project.as_str()),
                        ingest_requests::idempotency_key.eq(&key.key),
                        ingest_requests::request_hash.eq(&key.request_hash),
                        ingest_requests::status_code.eq(i32::from(answer.status)),
                        ingest_requests::response_body.eq(&answer.body),
                        ingest_requests::created_at_us.eq(now),
                    ))
                    .execute(conn)
                    .map_err(|error| match error {
                        // Only if another writer stored the key past the lock (it cannot on
                        // either backend): a conflict to retry, not an error.
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        ) => Abort::Raced,
                        other => other.into(),
                    })?;
            }
            Ok(WriteOutcome::Done(answer))
        });
        match result {
            Ok(outcome) => Ok(outcome),
            Err(Abort::Refused(error)) => Ok(WriteOutcome::Refused(error)),
            Err(Abort::Raced) => Ok(WriteOutcome::Raced),
            Err(Abort::Storage(error)) => Err(error),
        }
    }
}

/// Runs `body` in a transaction that holds the database's write lock from its start: on
/// SQLite `BEGIN IMMEDIATE`, which waits for another writer within the busy timeout. (A
/// deferred transaction would read first and then fail at once with "database is locked" if
/// another writer committed before it could write; PostgreSQL takes row locks as it goes.)
fn write_transaction<T, E>(
    conn: &mut DbConnection,
    body: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(body);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    let outcome = body(conn);
    // (The connection is still the SQLite one; the other arm only satisfies the match.)
    if let DbConnection::Sqlite(sqlite) = conn {
        match &outcome {
            Ok(_) => AnsiTransactionManager::commit_transaction(sqlite)?,
            Err(_) => AnsiTransactionManager::rollback_transaction(sqlite)?,
        }
    }
    outcome
}

/// Stores `item`: an insert when there was no row (`before` is `None`), else a replacement of
/// the row at version `before`. Zero rows touched means another writer got there first.
fn store<E>(
    conn: &mut DbConnection,
    item: &CurrentItem,
    before: Option<i64>,
) -> Result<(), Abort<E>> {
    use backup_items::dsl;
    let row = NewItemRow::versioned(&item.record, item.version);
    let touched = match before {
        None => {
            let inserted = diesel::insert_into(dsl::backup_items)
                .values(&row)
                .execute(conn);
            match inserted {
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => 0,
                other => other?,
            }
        }
        Some(version) => diesel::update(
            dsl::backup_items
                .filter(dsl::project_id.eq(item.record.project_id.as_str()))
                .filter(dsl::id.eq(item.record.id.as_str()))
                .filter(dsl::version.eq(version)),
        )
        .set(&row)
        .execute(conn)?,
    };
    if touched == 1 {
        Ok(())
    } else {
        Err(Abort::Raced)
    }
}

pub(crate) fn load(
    conn: &mut DbConnection,
    project: &ProjectId,
    selection: &Selection,
) -> Result<Vec<Option<CurrentItem>>, StorageError> {
    use backup_items::dsl;
    let mut query = dsl::backup_items
        .select((dsl::id, dsl::document, dsl::policy_id, dsl::version))
        .filter(dsl::project_id.eq(project.as_str()))
        .into_boxed();
    query = match selection {
        Selection::Items(ids) => {
            query.filter(dsl::id.eq_any(ids.iter().map(ItemId::as_str).collect::<Vec<_>>()))
        }
        Selection::Checkpoint {
            checkpoint_id,
            item,
        } => {
            let query = query.filter(dsl::checkpoint_id.eq(checkpoint_id.as_str()));
            match item {
                Some(id) => query.filter(dsl::id.eq(id.as_str())),
                None => query,
            }
        }
    };
    let rows: Vec<(String, String, Option<String>, i64)> = query.order(dsl::id.asc()).load(conn)?;
    let mut items = Vec::with_capacity(rows.len());
    for (id, document, policy_id, version) in rows {
        let mut value: Value = serde_json::from_str(&document)
            .map_err(|e| StorageError::CorruptRow(format!("item {id}: {e}")))?;
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "project_id".into(),
                Value::String(project.as_str().to_owned()),
            );
            object.insert(
                "policy_id".into(),
                policy_id.map_or(Value::Null, Value::String),
            );
        }
        let record = BackupRecord::from_json(value)
            .map_err(|e| StorageError::CorruptRow(format!("item {id}: {e}")))?;
        items.push(CurrentItem { record, version });
    }
    Ok(match selection {
        Selection::Items(ids) => ids
            .iter()
            .map(|id| items.iter().find(|item| &item.record.id == id).cloned())
            .collect(),
        Selection::Checkpoint { .. } => items.into_iter().map(Some).collect(),
    })
}
