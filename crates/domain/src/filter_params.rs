//! The filter parameters of count and list (spec §3) in one table: each one's wire name, what
//! it means and the kind of value it takes. The query-string parser, the reference meaning,
//! the SQL, the counters' guard and the OpenAPI document each match on [`FilterParam`]
//! without a catch-all, so a parameter added here that one of them forgets does not build.

/// Declares [`FilterParam`] and [`FilterParam::ALL`] from one list, so that no variant can be
/// missing from `ALL`.
macro_rules! filter_params {
    ($($variant:ident),+ $(,)?) => {
        /// A filter parameter of count and list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FilterParam {
            $($variant,)+
        }

        impl FilterParam {
            /// Every filter parameter, in the document's order.
            pub const ALL: [FilterParam; [$(stringify!($variant)),+].len()] =
                [$(Self::$variant),+];
        }
    };
}

filter_params![
    Status,
    Name,
    ResourceName,
    ResourceId,
    CheckpointId,
    ResourceType,
    Az,
    ImageType,
    PolicyId,
    Ip,
    StartTime,
    EndTime,
    AllTenants,
    Dec,
];

/// The kind of value a filter parameter takes, as the parser validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterValue {
    /// A status name (`BackupStatus::parse`).
    Status,
    /// 1–255 characters without control characters (`TextValue::parse`).
    Text,
    /// A UUID in any spelling (`ItemId::parse`).
    Uuid,
    /// An IPv4 or IPv6 address, compared canonically (`normalize_ip`).
    Ip,
    /// A time in the request grammar (`parse_timestamp`).
    Time,
    /// A boolean as clients send it (`parse_bool`).
    Boolean,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterSpec {
    /// The query-string name.
    pub name: &'static str,
    /// What it selects, for people (the OpenAPI document says it).
    pub meaning: &'static str,
    /// The kind of value.
    pub value: FilterValue,
    /// Whether it may be given several times (its values then combine with OR).
    pub repeatable: bool,
}

impl FilterParam {
    /// The parameter's row of the table.
    pub const fn spec(self) -> FilterSpec {
        const fn repeated(
            name: &'static str,
            meaning: &'static str,
            value: FilterValue,
        ) -> FilterSpec {
            FilterSpec {
                name,
                meaning,
                value,
                repeatable: true,
            }
        }
        match self {
            Self::Status => repeated(
                "status",
                "Exact status. Items in `deleted` are counted and listed only when asked for.",
                FilterValue::Status,
            ),
            Self::Name => repeated(
                "name",
                "A substring of the name, case-sensitive; `%` and `_` are ordinary characters.",
                FilterValue::Text,
            ),
            Self::ResourceName => repeated(
                "resource_name",
                "A substring of `extend_info.resource_name`, as `name`.",
                FilterValue::Text,
            ),
            Self::ResourceId => repeated(
                "resource_id",
                "The protected server, exact.",
                FilterValue::Text,
            ),
            Self::CheckpointId => repeated(
                "checkpoint_id",
                "The backup record, exact (a UUID).",
                FilterValue::Uuid,
            ),
            Self::ResourceType => repeated(
                "resource_type",
                "The kind of resource, exact (e.g. `OS::Nova::Server`).",
                FilterValue::Text,
            ),
            Self::Az => repeated("az", "`extend_info.resource_az`, exact.", FilterValue::Text),
            Self::ImageType => repeated(
                "image_type",
                "`extend_info.image_type`, exact.",
                FilterValue::Text,
            ),
            Self::PolicyId => repeated(
                "policy_id",
                "The backup policy that produced the item, exact.",
                FilterValue::Text,
            ),
            Self::Ip => repeated(
                "ip",
                "`backup_data.private_ip` or `backup_data.eip`, compared as addresses \
                 (`2001:DB8::0:1` equals `2001:db8::1`).",
                FilterValue::Ip,
            ),
            Self::StartTime => repeated(
                "start_time",
                "`created_at` ≥ this time; given several times, the earliest applies.",
                FilterValue::Time,
            ),
            Self::EndTime => repeated(
                "end_time",
                "`created_at` ≤ this time; given several times, the latest applies. Before \
                 `start_time` is 400.",
                FilterValue::Time,
            ),
            Self::AllTenants => FilterSpec {
                name: "all_tenants",
                meaning: "`true` drops the tenant scope: administrators only (else 403). A \
                          boolean: `true/false/yes/no/y/n/1/0` in any case.",
                value: FilterValue::Boolean,
                repeatable: false,
            },
            Self::Dec => FilterSpec {
                name: "dec",
                meaning: "Accepted (a boolean, as `all_tenants`) and ignored: the Huawei \
                          dedicated-cloud flag.",
                value: FilterValue::Boolean,
                repeatable: false,
            },
        }
    }

    /// The parameter with this query-string name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|param| param.spec().name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_found_again() {
        for param in FilterParam::ALL {
            assert_eq!(FilterParam::from_name(param.spec().name), Some(param));
        }
        let mut names: Vec<_> = FilterParam::ALL.iter().map(|p| p.spec().name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FilterParam::ALL.len());
    }
}
