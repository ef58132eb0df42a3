//! The reads, side by side: count (from the counters when the filter allows it, else from the
//! rows), list and show, and the ingest API's read of an item with its version. Count and list
//! select their rows with the same `sql::filters::filtered`, so they always agree.

use csbs_domain::{
    BackupFilter, CurrentItem, ItemId, PageRequest, ProjectId, SortSpec, TenantScope,
    MAX_PAGE_BYTES,
};
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::write::{load, Selection};
use super::{ItemPage, StoredItem};
use crate::connection::{DbConnection, MultiBackend};
use crate::schema::backup_items;
use crate::sql::counters::{counters_for, with_counter_statement, INITIAL_LOAD_PENDING};
use crate::sql::filters::{filtered, filtered_searching, SubstringSearch};
use crate::sql::ordering::{after_marker, full_order, order_by};
use crate::{Repository, StorageError};

impl Repository {
    /// How many items `filter` selects, from the counters when the filter allows it.
    pub fn count(&self, filter: &BackupFilter) -> Result<u64, StorageError> {
        let mut conn = self.connection()?;
        // Either path is one statement, and one statement reads one snapshot on both
        // backends: no transaction (and none of its round trips) is needed for exactness.
        let count: i64 = match counters_for(&filter.criteria) {
            Some(counters) => with_counter_statement(filter, counters, |statement| {
                statement.get_result(&mut *conn)
            })?,
            None => {
                let search = SubstringSearch::for_filter(&mut conn, filter)?;
                filtered_searching(filter, search)
                    .count()
                    .get_result(&mut *conn)?
            }
        };
        if count == INITIAL_LOAD_PENDING {
            return Err(StorageError::Unavailable(
                "an initial load has not finished; the next import or seed completes it".into(),
            ));
        }
        u64::try_from(count).map_err(|_| StorageError::CorruptRow("negative count".into()))
    }

    /// How many items `filter` selects, counted from the rows whatever the filter: the
    /// reference the counters are checked against.
    pub fn count_rows(&self, filter: &BackupFilter) -> Result<u64, StorageError> {
        let mut conn = self.connection()?;
        let count: i64 = filtered(filter).count().get_result(&mut *conn)?;
        u64::try_from(count).map_err(|_| StorageError::CorruptRow("negative count".into()))
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
        let search = SubstringSearch::for_filter(&mut conn, filter)?;
        let rows: Vec<(String, String)> =
            list_query(filter, search, sort, page).load(&mut *conn)?;
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

    /// The item `id` of `project` with its version, whatever its status.
    pub fn find_current(
        &self,
        project: &ProjectId,
        id: &ItemId,
    ) -> Result<Option<CurrentItem>, StorageError> {
        let mut conn = self.connection()?;
        let mut items = load(&mut conn, project, &Selection::Items(vec![id.clone()]))?;
        Ok(items.pop().flatten())
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
    search: SubstringSearch,
    sort: &SortSpec,
    page: &PageRequest,
) -> backup_items::BoxedQuery<'a, MultiBackend, (Text, Text)> {
    let across_tenants = filter.scope == TenantScope::AllTenants;
    let order = full_order(sort.keys(), across_tenants);
    let mut query = order_by(filtered_searching(filter, search), &order);
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
