//! Criteria to SQL: one `.filter()` per criterion given, on a boxed query that count and list
//! both start from, so that the two can never disagree about which items match.

use csbs_domain::{BackupFilter, BackupStatus, TenantScope, TextValue};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::connection::MultiBackend;
use crate::prepared::in_list;
use crate::schema::backup_items;

/// A boxed query over the items table.
pub(crate) type ItemsQuery<'a> = backup_items::BoxedQuery<'a, MultiBackend>;

/// A boxed boolean condition on the items table.
type Predicate<'a> =
    Box<dyn BoxableExpression<backup_items::table, MultiBackend, SqlType = Bool> + 'a>;

/// The OR of one condition per value; `None` when there are no values (criterion not given).
fn any_of<'a, T>(
    values: &'a [T],
    condition: impl Fn(&'a T) -> Predicate<'a>,
) -> Option<Predicate<'a>> {
    values
        .iter()
        .map(condition)
        .reduce(|all, next| Box::new(all.or(next)))
}

/// `%value%` with `\`, `%` and `_` escaped, for `LIKE … ESCAPE '\'`: the wildcards of the
/// caller's text are ordinary characters.
fn contains_pattern(value: &TextValue) -> String {
    let mut pattern = String::with_capacity(value.as_str().len() + 2);
    pattern.push('%');
    for c in value.as_str().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn texts(values: &[TextValue]) -> Vec<&str> {
    values.iter().map(TextValue::as_str).collect()
}

/// The rows `filter` selects, unordered and unpaged.
pub(crate) fn filtered(filter: &BackupFilter) -> ItemsQuery<'_> {
    use backup_items::dsl as items;

    let mut query = items::backup_items.into_boxed();
    if let TenantScope::Project(project) = &filter.scope {
        query = query.filter(items::project_id.eq(project.as_str()));
    }
    let criteria = &filter.criteria;

    if criteria.statuses.is_empty() {
        query = query.filter(items::status.ne(BackupStatus::Deleted.as_str()));
    } else {
        let statuses: Vec<&str> = criteria
            .effective_statuses()
            .iter()
            .map(|s| s.as_str())
            .collect();
        query = query.filter(in_list(items::status, statuses));
    }
    if let Some(p) = any_of(&criteria.names, |v| {
        Box::new(items::name.like(contains_pattern(v)).escape('\\'))
    }) {
        query = query.filter(p);
    }
    if let Some(p) = any_of(&criteria.resource_names, |v| {
        Box::new(
            items::resource_name
                .assume_not_null()
                .like(contains_pattern(v))
                .escape('\\'),
        )
    }) {
        query = query.filter(p);
    }
    if !criteria.resource_ids.is_empty() {
        query = query.filter(in_list(items::resource_id, texts(&criteria.resource_ids)));
    }
    if !criteria.checkpoint_ids.is_empty() {
        let ids: Vec<&str> = criteria
            .checkpoint_ids
            .iter()
            .map(|id| id.as_str())
            .collect();
        query = query.filter(in_list(items::checkpoint_id, ids));
    }
    if !criteria.resource_types.is_empty() {
        query = query.filter(in_list(
            items::resource_type,
            texts(&criteria.resource_types),
        ));
    }
    if !criteria.azs.is_empty() {
        query = query.filter(in_list(items::resource_az, texts(&criteria.azs)));
    }
    if !criteria.image_types.is_empty() {
        query = query.filter(in_list(items::image_type, texts(&criteria.image_types)));
    }
    if !criteria.policy_ids.is_empty() {
        query = query.filter(in_list(items::policy_id, texts(&criteria.policy_ids)));
    }
    if !criteria.ips.is_empty() {
        let ips: Vec<&str> = criteria.ips.iter().map(String::as_str).collect();
        query = query.filter(in_list(items::private_ip, ips.clone()).or(in_list(items::eip, ips)));
    }
    if let Some(from) = criteria.created_from {
        query = query.filter(items::created_at_us.ge(from));
    }
    if let Some(to) = criteria.created_to {
        query = query.filter(items::created_at_us.le(to));
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_escaped() {
        let cases = [
            ("web", "%web%"),
            ("50%", "%50\\%%"),
            ("a_b", "%a\\_b%"),
            ("back\\slash", "%back\\\\slash%"),
        ];
        for (input, expected) in cases {
            let value = TextValue::parse("name", input).unwrap();
            assert_eq!(contains_pattern(&value), expected);
        }
    }
}
