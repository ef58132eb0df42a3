//! The backup item repository: every query the service makes, on either backend.

use csbs_domain::{
    BackupFilter, BackupStatus, ItemId, PageRequest, ProjectId, SortSpec, TenantScope,
    MAX_PAGE_BYTES,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use diesel::prelude::*;

use crate::connection::{
    without_statement_timeout, Backend, DatabaseUrl, DbConnection, MultiBackend,
};
use crate::filters::filtered;
use crate::migrations;
use crate::ordering::{after_marker, full_order, order_by};
use crate::pool::{build_pool, Pool, PoolSettings};
use crate::schema::backup_items;
use crate::StorageError;
use diesel::sql_types::Text;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPage {
    /// The item documents (JSON text), in order.
    pub documents: Vec<String>,
    /// The id of the last item of the page: the `marker` of the next one.
    pub last_id: Option<String>,
    /// Whether at least one more item follows this page.
    pub has_more: bool,
}

/// One stored item, as `show` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub status: BackupStatus,
    /// The item document (JSON text).
    pub document: String,
}

/// Access to the backup items. Cheap to clone: clones share one pool.
///
/// Every method blocks on the database; call them from a blocking thread.
#[derive(Clone)]
pub struct Repository {
    pub(crate) pool: Pool,
    backend: Backend,
    /// Callers waiting for a connection right now (r2d2 does not say).
    waiting: Arc<AtomicI64>,
}

/// The pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections.
    pub connections: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Callers waiting for a connection.
    pub waiting: i64,
    /// The pool's size limit.
    pub max: u32,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// A checked-out connection, used as the `DbConnection` it holds.
pub struct Checkout(r2d2::PooledConnection<crate::pool::ConnectionManager>);

impl Checkout {
    /// Suspends SQLite's statement timeout while the guard lives (see
    /// [`crate::pool::PooledDb::without_sqlite_timeout`]).
    pub(crate) fn without_sqlite_timeout(&self) -> crate::sqlite_timeout::Suspended {
        self.0.without_sqlite_timeout()
    }
}

impl Checkout {
    /// Prepared statements this connection has cached so far.
    pub fn cached_statements(&self) -> usize {
        self.0.cached_statements()
    }
}

impl std::ops::Deref for Checkout {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.0
    }
}

impl std::ops::DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.0
    }
}

impl Repository {
    /// A repository over a new pool for `url`. Does not connect: see [`Repository::migrate`].
    pub fn open(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, StorageError> {
        Ok(Self {
            pool: build_pool(url, settings)?,
            backend: url.backend(),
            waiting: Arc::new(AtomicI64::new(0)),
        })
    }

    /// The backend behind this repository.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool's current state.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            waiting: self.waiting.load(Ordering::Relaxed),
            max: self.pool.max_size(),
        }
    }

    /// A connection of the pool, held until the [`Checkout`] is dropped: for work the
    /// repository has no method for (operators' SQL, tests that hold or inspect a connection).
    /// Waits at most the pool's timeout, as every query does.
    pub fn connection(&self) -> Result<Checkout, StorageError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let connection = self.pool.get();
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Ok(Checkout(connection?))
    }

    /// Applies pending migrations; returns how many were applied.
    pub fn migrate(&self) -> Result<usize, StorageError> {
        let mut conn = self.connection()?;
        // A migration may rewrite or index the whole table.
        let _unbounded = conn.without_sqlite_timeout();
        migrations::run_migrations(&mut conn)
    }

    /// Whether the database answers and every migration is applied.
    pub fn is_ready(&self) -> Result<bool, StorageError> {
        migrations::migrations_complete(&mut *self.connection()?)
    }

    /// Tidies up after a bulk load: refreshes the planner's statistics, so that the next
    /// queries are planned for the data as it now is rather than as it was (a tenant that grew
    /// from nothing to most of the table would otherwise be planned as tiny), and on
    /// PostgreSQL compacts the counters' indexes.
    pub fn finish_bulk_load(&self) -> Result<(), StorageError> {
        use diesel::connection::SimpleConnection;
        let mut conn = self.connection()?;
        let _unbounded = conn.without_sqlite_timeout();
        match &mut *conn {
            // ANALYZE of a large table takes longer than the statement timeout meant for
            // the service's reads; it is exempt, in a transaction of its own.
            DbConnection::Postgresql(pg) => {
                pg.transaction(|pg| {
                    pg.batch_execute(
                        "SET LOCAL statement_timeout = 0; \
                         ANALYZE backup_items, item_counts, item_counts_daily, item_counts_hourly",
                    )
                })?;
                // A bulk load updates each counter row many times between vacuums, and each
                // update leaves an entry in the counters' covering indexes: at 10M items
                // their pages were 5× the live entries, and a tenant's time-range sum read 3×
                // the pages it needs (0.64 vs 0.35 ms). Rebuilt without blocking reads or
                // writes; REINDEX CONCURRENTLY cannot run in a transaction.
                // One statement per message: several in one run as one transaction.
                without_statement_timeout(pg, |pg| {
                    for table in ["item_counts", "item_counts_daily", "item_counts_hourly"] {
                        pg.batch_execute(&format!("REINDEX TABLE CONCURRENTLY {table}"))?;
                    }
                    Ok(())
                })?;
            }
            DbConnection::Sqlite(sqlite) => sqlite.batch_execute("PRAGMA optimize")?,
        }
        Ok(())
    }

    /// Whether the database answers a trivial query.
    pub fn ping(&self) -> Result<(), StorageError> {
        use diesel::connection::SimpleConnection;
        self.connection()?.batch_execute("SELECT 1")?;
        Ok(())
    }

    /// One page of the items `filter` selects, in `sort` order.
    ///
    /// A marker that names no item in the filter's tenant scope is
    /// [`StorageError::UnknownMarker`]; the marker item itself need not match the other
    /// criteria (it may have changed status since the previous page).
    pub fn list(
        &self,
        filter: &BackupFilter,
        sort: &SortSpec,
        page: &PageRequest,
    ) -> Result<ItemPage, StorageError> {
        let mut conn = self.connection()?;
        let rows: Vec<(String, String)> = list_query(filter, sort, page).load(&mut *conn)?;
        if rows.is_empty() {
            if let Some(marker) = &page.marker {
                // An empty page after a marker: the end of the list, or a marker that names
                // nothing, which the caller must hear about.
                if !marker_exists(&mut conn, &filter.scope, marker)? {
                    return Err(StorageError::UnknownMarker);
                }
            }
        }

        Ok(page_of(rows, page.limit as usize, MAX_PAGE_BYTES))
    }

    /// The item `id` of `project`, whatever its status.
    pub fn find(
        &self,
        project: &ProjectId,
        id: &ItemId,
    ) -> Result<Option<StoredItem>, StorageError> {
        let mut conn = self.connection()?;
        let row: Option<(String, String)> = backup_items::table
            .select((backup_items::status, backup_items::document))
            .filter(backup_items::project_id.eq(project.as_str()))
            .filter(backup_items::id.eq(id.as_str()))
            .first(&mut *conn)
            .optional()?;
        row.map(|(status, document)| {
            let status = status
                .parse()
                .map_err(|()| StorageError::CorruptRow(format!("unknown status '{status}'")))?;
            Ok(StoredItem { status, document })
        })
        .transpose()
    }
}

/// The page made of `rows` (one more than `limit` was asked for, to tell whether more follow):
/// at most `limit` items and, beyond the first, at most `max_bytes` of documents; a page cut
/// short by the bytes says that more follow, and the next one starts after its last item.
fn page_of(rows: Vec<(String, String)>, limit: usize, max_bytes: usize) -> ItemPage {
    let mut has_more = rows.len() > limit;
    let mut documents = Vec::with_capacity(rows.len().min(limit));
    let mut last_id = None;
    let mut bytes = 0usize;
    for (id, document) in rows.into_iter().take(limit) {
        bytes += document.len();
        if !documents.is_empty() && bytes > max_bytes {
            has_more = true;
            break;
        }
        documents.push(document);
        last_id = Some(id);
    }
    ItemPage {
        documents,
        last_id,
        has_more,
    }
}

/// The rows of one page (id and document), one more than the limit so that the caller knows
/// whether another page follows.
pub(crate) fn list_query<'a>(
    filter: &'a BackupFilter,
    sort: &SortSpec,
    page: &PageRequest,
) -> backup_items::BoxedQuery<'a, MultiBackend, (Text, Text)> {
    let across_tenants = filter.scope == TenantScope::AllTenants;
    let order = full_order(sort.keys(), across_tenants);
    let mut query = order_by(filtered(filter), &order);
    if let Some(marker) = &page.marker {
        query = query.filter(after_marker(&order, &filter.scope, marker));
    }
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    query
        .select((backup_items::id, backup_items::document))
        .offset(offset)
        .limit(i64::from(page.limit) + 1)
}

/// Whether the marker names an item in the filter's tenant scope.
fn marker_exists(
    conn: &mut DbConnection,
    scope: &TenantScope,
    marker: &ItemId,
) -> Result<bool, StorageError> {
    let mut query = backup_items::table
        .select(backup_items::id)
        .filter(backup_items::id.eq(marker.as_str()))
        .into_boxed();
    if let TenantScope::Project(project) = scope {
        query = query.filter(backup_items::project_id.eq(project.as_str()));
    }
    Ok(query.first::<String>(conn).optional()?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(sizes: &[usize]) -> Vec<(String, String)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| (format!("id-{i}"), "x".repeat(*size)))
            .collect()
    }

    #[test]
    fn a_page_ends_at_its_limit_or_its_bytes() {
        let cases: &[(&[usize], usize, usize, usize, bool)] = &[
            // sizes, limit, max bytes → items, more follow
            (&[10, 10, 10], 5, 100, 3, false),
            (&[10, 10, 10], 2, 100, 2, true),
            (&[40, 40, 40, 40], 10, 100, 2, true),
            (&[40, 60, 1], 10, 100, 2, true),
            (&[500, 1], 10, 100, 1, true),
            (&[500], 10, 100, 1, false),
            (&[], 10, 100, 0, false),
        ];
        for (sizes, limit, max_bytes, items, more) in cases {
            let page = page_of(rows(sizes), *limit, *max_bytes);
            assert_eq!(
                page.documents.len(),
                *items,
                "{sizes:?} {limit} {max_bytes}"
            );
            assert_eq!(page.has_more, *more, "{sizes:?} {limit} {max_bytes}");
            assert_eq!(
                page.last_id,
                items.checked_sub(1).map(|i| format!("id-{i}")),
                "{sizes:?}"
            );
        }
    }
}
