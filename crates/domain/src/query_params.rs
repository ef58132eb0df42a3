//! From the query string as it came (pairs of strings) to validated queries.
//!
//! This is the first of the three stages of a query: wire parameters → validated criteria →
//! SQL. Every refusal names the parameter, and any parameter this service does not know is
//! refused, because a mistyped filter must never silently widen a count.

use std::collections::HashMap;

use crate::{
    normalize_ip, parse_timestamp, BackupStatus, Criteria, FilterParam, ItemId, PageRequest,
    ParamError, SortSpec, TextValue, MAX_PAGE_LIMIT,
};

/// The most values one filter parameter may be given (`status=a&status=b&…`).
///
/// Every value becomes a bound parameter of the query (and, for a substring filter, one more
/// term of an OR), so the number must be bounded for the query to stay cheap to build, send
/// and plan; a hundred alternatives are far beyond what a console or script asks.
pub const MAX_VALUES_PER_FILTER: usize = 100;

/// The most filter values one query may hold, over all its filter parameters together.
pub const MAX_FILTER_VALUES: usize = 200;

/// The paging parameters a count accepts and ignores, as one public SDK sends them with every
/// count.
pub const COUNT_IGNORED_PARAMS: [&str; 4] = ["limit", "marker", "offset", "sort"];

/// A query string's validated form: what a route takes, built from the pairs the query string
/// holds (in order, repeated keys included), or refused naming the parameter.
pub trait FromQueryPairs: Sized {
    /// Validates the pairs.
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self, ParamError>;
}

/// The query of a route that takes no parameters: any is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoQuery;

impl FromQueryPairs for NoQuery {
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self, ParamError> {
        match pairs.first() {
            Some((key, _)) => Err(ParamError::new(key.as_ref(), "unknown query parameter")),
            None => Ok(Self),
        }
    }
}

/// The query of a backup record's deletion: `checkpoint_items=ID` narrows it to one backup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteQuery {
    /// The one backup of the record to delete; all of them when `None`.
    pub item: Option<ItemId>,
}

impl FromQueryPairs for DeleteQuery {
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self, ParamError> {
        let mut item = None;
        for (key, value) in pairs {
            match key.as_ref() {
                key @ "checkpoint_items" if item.is_none() => {
                    item = Some(ItemId::parse(key, value.as_ref())?)
                }
                key @ "checkpoint_items" => {
                    return Err(ParamError::new(key, "may be given only once"))
                }
                key => return Err(ParamError::new(key, "unknown query parameter")),
            }
        }
        Ok(Self { item })
    }
}

/// A validated `count` query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountQuery {
    /// The filter criteria.
    pub criteria: Criteria,
    /// Whether the caller asked to drop the tenant scope.
    pub all_tenants: bool,
}

/// A validated `list` query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// The filter criteria.
    pub criteria: Criteria,
    /// Whether the caller asked to drop the tenant scope.
    pub all_tenants: bool,
    /// The order of the items.
    pub sort: SortSpec,
    /// Which page.
    pub page: PageRequest,
}

/// `limit`, `marker`, `offset` and `sort` are accepted and ignored, as one public SDK sends them
/// with every count.
impl FromQueryPairs for CountQuery {
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self, ParamError> {
        let mut parsed = Parsed::default();
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            if !COUNT_IGNORED_PARAMS.contains(&key) {
                parsed.take(key, value)?;
            }
        }
        Ok(Self {
            criteria: parsed.finish_criteria()?,
            all_tenants: parsed.all_tenants.unwrap_or(false),
        })
    }
}

impl FromQueryPairs for ListQuery {
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Self, ParamError> {
        let mut parsed = Parsed::default();
        let mut limit = None;
        let mut marker = None;
        let mut offset = None;
        let mut sort = None;
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "limit" => set_once(&mut limit, key, parse_limit(key, value)?)?,
                "marker" => set_once(
                    &mut marker,
                    key,
                    ItemId::parse(key, non_empty(key, value)?)?,
                )?,
                "offset" => set_once(&mut offset, key, parse_offset(key, value)?)?,
                "sort" => set_once(
                    &mut sort,
                    key,
                    SortSpec::parse(key, non_empty(key, value)?)?,
                )?,
                _ => parsed.take(key, value)?,
            }
        }
        let defaults = PageRequest::default();
        Ok(Self {
            criteria: parsed.finish_criteria()?,
            all_tenants: parsed.all_tenants.unwrap_or(false),
            sort: sort.unwrap_or_default(),
            page: PageRequest {
                limit: limit.unwrap_or(defaults.limit),
                marker,
                offset: offset.unwrap_or(defaults.offset),
            },
        })
    }
}

/// Parses the booleans that clients send: `true/false/yes/no/y/n/1/0` in any case (Python
/// SDKs send `True`).
pub fn parse_bool(parameter: &str, value: &str) -> Result<bool, ParamError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        _ => Err(ParamError::new(
            parameter,
            format!("'{value}' is not a boolean (expected true/false, yes/no, y/n or 1/0)"),
        )),
    }
}

/// The filter parameters and flags shared by count and list, gathered pair by pair.
#[derive(Default)]
struct Parsed {
    criteria: Criteria,
    /// Values taken so far, per filter parameter and in total.
    values_per_filter: HashMap<String, usize>,
    values_in_total: usize,
    starts: Vec<i64>,
    ends: Vec<i64>,
    all_tenants: Option<bool>,
    dec: Option<bool>,
}

impl Parsed {
    /// Takes one pair; the values of one filter and of all filters together are bounded.
    fn take(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        self.take_value(key, value)?;
        self.count_value(key)
    }

    fn take_value(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        let Some(param) = FilterParam::from_name(key) else {
            return Err(if key.is_empty() {
                ParamError::new("(empty name)", "a query parameter has no name")
            } else {
                ParamError::new(key, "unknown query parameter")
            });
        };
        let c = &mut self.criteria;
        let text = |v: &str| TextValue::parse(key, v);
        match param {
            FilterParam::Status => c
                .statuses
                .push(BackupStatus::parse(key, non_empty(key, value)?)?),
            FilterParam::Name => c.names.push(text(value)?),
            FilterParam::ResourceName => c.resource_names.push(text(value)?),
            FilterParam::ResourceId => c.resource_ids.push(text(value)?),
            FilterParam::CheckpointId => c
                .checkpoint_ids
                .push(ItemId::parse(key, non_empty(key, value)?)?),
            FilterParam::ResourceType => c.resource_types.push(text(value)?),
            FilterParam::Az => c.azs.push(text(value)?),
            FilterParam::ImageType => c.image_types.push(text(value)?),
            FilterParam::PolicyId => c.policy_ids.push(text(value)?),
            FilterParam::Ip => c.ips.push(normalize_ip(key, non_empty(key, value)?)?),
            FilterParam::StartTime => self
                .starts
                .push(parse_timestamp(key, non_empty(key, value)?)?),
            FilterParam::EndTime => self
                .ends
                .push(parse_timestamp(key, non_empty(key, value)?)?),
            FilterParam::AllTenants => set_once(
                &mut self.all_tenants,
                key,
                parse_bool(key, non_empty(key, value)?)?,
            )?,
            // The Huawei dedicated-cloud flag: validated, then ignored.
            FilterParam::Dec => {
                set_once(&mut self.dec, key, parse_bool(key, non_empty(key, value)?)?)?
            }
        }
        Ok(())
    }

    /// Counts one more accepted value of `key`, refusing it beyond [`MAX_VALUES_PER_FILTER`]
    /// for the parameter or [`MAX_FILTER_VALUES`] in all. (The flags, given once, never come
    /// near either.)
    fn count_value(&mut self, key: &str) -> Result<(), ParamError> {
        let of_this = self.values_per_filter.entry(key.to_owned()).or_default();
        *of_this += 1;
        self.values_in_total += 1;
        if *of_this > MAX_VALUES_PER_FILTER {
            return Err(ParamError::new(
                key,
                format!("may be given at most {MAX_VALUES_PER_FILTER} times"),
            ));
        }
        if self.values_in_total > MAX_FILTER_VALUES {
            return Err(ParamError::new(
                key,
                format!(
                    "too many filter values: a query may hold at most {MAX_FILTER_VALUES} in all"
                ),
            ));
        }
        Ok(())
    }

    /// Folds the time bounds: several `start_time` values are alternatives (OR), so the
    /// earliest one bounds the result; likewise the latest `end_time`.
    fn finish_criteria(&mut self) -> Result<Criteria, ParamError> {
        let mut criteria = std::mem::take(&mut self.criteria);
        criteria.created_from = self.starts.iter().copied().min();
        criteria.created_to = self.ends.iter().copied().max();
        if let (Some(from), Some(to)) = (criteria.created_from, criteria.created_to) {
            if from > to {
                return Err(ParamError::new(
                    "start_time",
                    "must not be later than end_time",
                ));
            }
        }
        Ok(criteria)
    }
}

fn non_empty<'a>(key: &str, value: &'a str) -> Result<&'a str, ParamError> {
    if value.is_empty() {
        Err(ParamError::new(key, "must not be empty"))
    } else {
        Ok(value)
    }
}

fn set_once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), ParamError> {
    if slot.is_some() {
        return Err(ParamError::new(key, "may be given only once"));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_limit(key: &str, value: &str) -> Result<u32, ParamError> {
    let refuse = || {
        ParamError::new(
            key,
            format!("'{value}' is not an integer from 1 to {MAX_PAGE_LIMIT}"),
        )
    };
    let limit: u32 = strict_integer(value).ok_or_else(refuse)?;
    if (1..=MAX_PAGE_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(refuse())
    }
}

fn parse_offset(key: &str, value: &str) -> Result<u64, ParamError> {
    strict_integer::<u64>(value)
        .filter(|offset| i64::try_from(*offset).is_ok())
        .ok_or_else(|| ParamError::new(key, format!("'{value}' is not an integer of 0 or more")))
}

/// An unsigned decimal integer with nothing around it (`+5`, ` 5` and `5.0` are refused).
fn strict_integer<T: std::str::FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SortDirection, SortKey};

    fn list(query: &[(&str, &str)]) -> Result<ListQuery, ParamError> {
        ListQuery::from_pairs(query)
    }

    fn count(query: &[(&str, &str)]) -> Result<CountQuery, ParamError> {
        CountQuery::from_pairs(query)
    }

    #[test]
    fn no_parameters_is_everything_but_deleted() {
        let query = list(&[]).unwrap();
        assert_eq!(query.criteria, Criteria::default());
        assert!(!query.all_tenants);
        assert_eq!(query.page, PageRequest::default());
        assert_eq!(query.sort, SortSpec::default());
        assert!(!query
            .criteria
            .effective_statuses()
            .contains(&BackupStatus::Deleted));
    }

    #[test]
    fn repeated_filters_are_alternatives() {
        let query = count(&[
            ("status", "error"),
            ("status", "deleting"),
            ("name", "a"),
            ("name", "b"),
        ])
        .unwrap();
        assert_eq!(
            query.criteria.statuses,
            vec![BackupStatus::Error, BackupStatus::Deleting]
        );
        assert_eq!(query.criteria.names.len(), 2);
    }

    #[test]
    fn every_filter_is_read() {
        let query = list(&[
            ("status", "deleted"),
            ("name", "web"),
            ("resource_name", "ecs"),
            ("resource_id", "r-1"),
            ("checkpoint_id", "2EEFE592-8424-4778-8D0D-962C8A5DD6A4"),
            ("resource_type", "OS::Nova::Server"),
            ("az", "eu-de-02"),
            ("image_type", "backup"),
            ("policy_id", "p-1"),
            ("ip", "2001:DB8::1"),
            ("start_time", "2020-01-01T00:00:00"),
            ("end_time", "2020-01-02T00:00:00+01:00"),
            ("all_tenants", "True"),
            ("dec", "0"),
            ("limit", "10"),
            ("marker", "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12"),
            ("offset", "5"),
            ("sort", "name:asc"),
        ])
        .unwrap();
        let c = &query.criteria;
        assert_eq!(c.statuses, vec![BackupStatus::Deleted]);
        assert_eq!(
            c.checkpoint_ids[0].as_str(),
            "2eefe592-8424-4778-8d0d-962c8a5dd6a4"
        );
        assert_eq!(c.ips, vec!["2001:db8::1".to_owned()]);
        assert_eq!(c.created_from, Some(1_577_836_800_000_000));
        assert_eq!(c.created_to, Some(1_577_919_600_000_000));
        assert!(query.all_tenants);
        assert_eq!(query.page.limit, 10);
        assert_eq!(query.page.offset, 5);
        assert!(query.page.marker.is_some());
        assert_eq!(query.sort.keys()[0], (SortKey::Name, SortDirection::Asc));
        for (field, len) in [
            (c.names.len(), 1),
            (c.resource_names.len(), 1),
            (c.resource_ids.len(), 1),
            (c.resource_types.len(), 1),
            (c.azs.len(), 1),
            (c.image_types.len(), 1),
            (c.policy_ids.len(), 1),
        ] {
            assert_eq!(field, len);
        }
    }

    #[test]
    fn refusals_name_the_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("status", "availble")], "status"),
            (&[("status", "")], "status"),
            (&[("name", "")], "name"),
            (&[("resource_name", "")], "resource_name"),
            (&[("resource_id", "")], "resource_id"),
            (&[("checkpoint_id", "x")], "checkpoint_id"),
            (&[("resource_type", "")], "resource_type"),
            (&[("az", "")], "az"),
            (&[("image_type", "")], "image_type"),
            (&[("policy_id", "")], "policy_id"),
            (&[("ip", "300.1.1.1")], "ip"),
            (&[("ip", "")], "ip"),
            (&[("start_time", "yesterday")], "start_time"),
            (&[("end_time", "2020-01-01")], "end_time"),
            (
                &[
                    ("start_time", "2020-01-02T00:00:00"),
                    ("end_time", "2020-01-01T00:00:00"),
                ],
                "start_time",
            ),
            (&[("all_tenants", "maybe")], "all_tenants"),
            (&[("all_tenants", "")], "all_tenants"),
            (&[("all_tenants", "1"), ("all_tenants", "1")], "all_tenants"),
            (&[("dec", "2")], "dec"),
            (&[("limit", "0")], "limit"),
            (&[("limit", "1001")], "limit"),
            (&[("limit", "-1")], "limit"),
            (&[("limit", "ten")], "limit"),
            (&[("limit", "")], "limit"),
            (&[("limit", "5"), ("limit", "6")], "limit"),
            (&[("offset", "-1")], "offset"),
            (&[("offset", "1.5")], "offset"),
            (&[("offset", "99999999999999999999")], "offset"),
            (&[("marker", "abc")], "marker"),
            (&[("marker", "")], "marker"),
            (&[("sort", "size")], "sort"),
            (&[("sort", "")], "sort"),
            (&[("stauts", "available")], "stauts"),
            (&[("project_id", "x")], "project_id"),
        ];
        for (query, parameter) in cases {
            let err = list(query).unwrap_err();
            assert_eq!(err.parameter, *parameter, "{query:?}: {err}");
        }
    }

    #[test]
    fn count_ignores_paging_but_not_filters() {
        let query = count(&[
            ("limit", "-5"),
            ("marker", ""),
            ("offset", "x"),
            ("sort", "bogus"),
        ])
        .unwrap();
        assert_eq!(query, CountQuery::default());
        assert_eq!(
            count(&[("stauts", "error")]).unwrap_err().parameter,
            "stauts"
        );
        assert_eq!(
            count(&[("all_tenants", "nope")]).unwrap_err().parameter,
            "all_tenants"
        );
    }

    #[test]
    fn booleans() {
        for (input, expected) in [
            ("true", Some(true)),
            ("True", Some(true)),
            ("YES", Some(true)),
            ("y", Some(true)),
            ("1", Some(true)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("no", Some(false)),
            ("N", Some(false)),
            ("0", Some(false)),
            ("2", None),
            ("on", None),
            ("", None),
        ] {
            assert_eq!(parse_bool("all_tenants", input).ok(), expected, "{input}");
        }
    }

    #[test]
    fn the_values_of_a_filter_are_bounded() {
        let names: Vec<(&str, String)> = (0..MAX_VALUES_PER_FILTER)
            .map(|i| ("name", format!("n{i}")))
            .collect();
        assert_eq!(
            count(&pairs(&names)).unwrap().criteria.names.len(),
            MAX_VALUES_PER_FILTER
        );
        let mut one_more = names.clone();
        one_more.push(("name", "last".to_owned()));
        let err = count(&pairs(&one_more)).unwrap_err();
        assert_eq!(err.parameter, "name", "{err}");
        assert!(err.reason.contains("at most 100"), "{err}");

        // Within each filter's bound, but beyond the bound of the query as a whole.
        let mut spread: Vec<(&str, String)> = names;
        spread.extend((0..MAX_VALUES_PER_FILTER).map(|i| ("resource_id", format!("r{i}"))));
        assert!(count(&pairs(&spread)).is_ok());
        spread.push(("az", "eu-de-01".to_owned()));
        let err = list(&pairs(&spread)).unwrap_err();
        assert_eq!(err.parameter, "az", "{err}");
        assert!(err.reason.contains("at most 200"), "{err}");

        // An unknown parameter is refused by its name however often it comes.
        let unknown: Vec<(&str, String)> = (0..500).map(|_| ("nme", "x".to_owned())).collect();
        assert_eq!(
            count(&pairs(&unknown)).unwrap_err().reason,
            "unknown query parameter"
        );
    }

    fn pairs<'a>(owned: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
        owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn several_time_bounds_widen() {
        let query = count(&[
            ("start_time", "2020-01-05T00:00:00"),
            ("start_time", "2020-01-03T00:00:00"),
            ("end_time", "2020-01-04T00:00:00"),
            ("end_time", "2020-01-06T00:00:00"),
        ])
        .unwrap();
        assert_eq!(
            query.criteria.created_from,
            parse_timestamp("t", "2020-01-03T00:00:00").ok()
        );
        assert_eq!(
            query.criteria.created_to,
            parse_timestamp("t", "2020-01-06T00:00:00").ok()
        );
    }
}
