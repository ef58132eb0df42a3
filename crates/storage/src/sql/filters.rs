//! Criteria to SQL: one `.filter()` per criterion given, on a boxed query that count and list
//! both start from, so that the two can never disagree about which items match.

use std::borrow::Cow;

use csbs_domain::{BackupFilter, BackupStatus, FilterParam, TenantScope, TextValue};
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;

use crate::connection::MultiBackend;
use crate::schema::backup_items;
use crate::sql::prepared::{any_of, Comparison};

/// A boxed query over the items table.
pub(crate) type ItemsQuery<'a> = backup_items::BoxedQuery<'a, MultiBackend>;

/// `%value%` with `\`, `%` and `_` escaped, for `LIKE … ESCAPE '\'`: the wildcards of the
/// caller's text are ordinary characters.
fn contains_pattern(value: &TextValue) -> Cow<'static, str> {
    let mut pattern = String::with_capacity(value.as_str().len() + 2);
    pattern.push('%');
    for c in value.as_str().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Cow::Owned(pattern)
}

pub(crate) fn texts(values: &[TextValue]) -> Vec<Cow<'_, str>> {
    values.iter().map(|v| Cow::Borrowed(v.as_str())).collect()
}

fn patterns(values: &[TextValue]) -> Vec<Cow<'static, str>> {
    values.iter().map(contains_pattern).collect()
}

/// `query` narrowed to rows whose `column` matches one of `values`; unchanged when there are
/// none (the criterion was not given).
fn matching<'a, C>(
    query: ItemsQuery<'a>,
    column: C,
    comparison: Comparison,
    values: Vec<Cow<'a, str>>,
) -> ItemsQuery<'a>
where
    C: Column<Table = backup_items::table>
        + AppearsOnTable<backup_items::table>
        + QueryFragment<MultiBackend>
        + Send
        + 'a,
{
    if values.is_empty() {
        query
    } else {
        query.filter(any_of(column, comparison, values))
    }
}

/// The rows `filter` selects, unordered and unpaged.
pub(crate) fn filtered(filter: &BackupFilter) -> ItemsQuery<'_> {
    use backup_items::dsl as items;

    let mut query = items::backup_items.into_boxed();
    if let TenantScope::Project(project) = &filter.scope {
        query = query.filter(items::project_id.eq(project.as_str()));
    }
    let criteria = &filter.criteria;
    for param in FilterParam::ALL {
        query = match param {
            FilterParam::Status if criteria.statuses.is_empty() => {
                query.filter(items::status.ne(BackupStatus::Deleted.as_str()))
            }
            FilterParam::Status => {
                let statuses = criteria
                    .effective_statuses()
                    .iter()
                    .map(|s| Cow::Borrowed(s.as_str()))
                    .collect();
                query.filter(any_of(items::status, Comparison::Equals, statuses))
            }
            FilterParam::Name => matching(
                query,
                items::name,
                Comparison::Like,
                patterns(&criteria.names),
            ),
            FilterParam::ResourceName => matching(
                query,
                items::resource_name,
                Comparison::Like,
                patterns(&criteria.resource_names),
            ),
            FilterParam::ResourceId => matching(
                query,
                items::resource_id,
                Comparison::Equals,
                texts(&criteria.resource_ids),
            ),
            FilterParam::CheckpointId => {
                let checkpoint_ids = criteria
                    .checkpoint_ids
                    .iter()
                    .map(|id| Cow::Borrowed(id.as_str()))
                    .collect();
                matching(
                    query,
                    items::checkpoint_id,
                    Comparison::Equals,
                    checkpoint_ids,
                )
            }
            FilterParam::ResourceType => matching(
                query,
                items::resource_type,
                Comparison::Equals,
                texts(&criteria.resource_types),
            ),
            FilterParam::Az => matching(
                query,
                items::resource_az,
                Comparison::Equals,
                texts(&criteria.azs),
            ),
            FilterParam::ImageType => matching(
                query,
                items::image_type,
                Comparison::Equals,
                texts(&criteria.image_types),
            ),
            FilterParam::PolicyId => matching(
                query,
                items::policy_id,
                Comparison::Equals,
                texts(&criteria.policy_ids),
            ),
            FilterParam::Ip if criteria.ips.is_empty() => query,
            FilterParam::Ip => {
                let ips: Vec<Cow<'_, str>> = criteria
                    .ips
                    .iter()
                    .map(|ip| Cow::Borrowed(ip.as_str()))
                    .collect();
                query.filter(
                    any_of(items::private_ip, Comparison::Equals, ips.clone()).or(any_of(
                        items::eip,
                        Comparison::Equals,
                        ips,
                    )),
                )
            }
            FilterParam::StartTime => match criteria.created_from {
                Some(from) => query.filter(items::created_at_us.ge(from)),
                None => query,
            },
            FilterParam::EndTime => match criteria.created_to {
                Some(to) => query.filter(items::created_at_us.le(to)),
                None => query,
            },
            // The scope is applied above; `dec` selects nothing.
            FilterParam::AllTenants | FilterParam::Dec => query,
        };
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
            assert_eq!(contains_pattern(&value), Cow::<str>::Borrowed(expected));
        }
    }
}
