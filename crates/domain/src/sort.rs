//! The `sort` parameter of a list.

use crate::ParamError;

/// A column a list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    CreatedAt,
    UpdatedAt,
    Name,
    Status,
    ProtectedAt,
    Id,
}

impl SortKey {
    /// Every sortable key.
    pub const ALL: [SortKey; 6] = [
        Self::CreatedAt,
        Self::UpdatedAt,
        Self::Name,
        Self::Status,
        Self::ProtectedAt,
        Self::Id,
    ];

    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::Name => "name",
            Self::Status => "status",
            Self::ProtectedAt => "protected_at",
            Self::Id => "id",
        }
    }
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortDirection {
    Asc,
    Desc,
}

/// An ordering of a list: one or more keys, always ending with `id` so that every item has
/// one place and pages are stable.
///
/// When `id` is not named it is appended with the direction of the last named key, which lets
/// the database walk one index in one direction for the common orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortSpec {
    keys: Vec<(SortKey, SortDirection)>,
}

impl Default for SortSpec {
    /// `created_at:desc`, then `id:desc`.
    fn default() -> Self {
        Self {
            keys: vec![
                (SortKey::CreatedAt, SortDirection::Desc),
                (SortKey::Id, SortDirection::Desc),
            ],
        }
    }
}

impl SortSpec {
    /// The longest `sort` value accepted.
    pub const MAX_LEN: usize = 255;

    /// Parses `key[:asc|desc][,key[:dir]…]`; the direction defaults to `desc`.
    pub fn parse(parameter: &str, value: &str) -> Result<Self, ParamError> {
        if value.len() > Self::MAX_LEN {
            return Err(ParamError::new(
                parameter,
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        let mut keys: Vec<(SortKey, SortDirection)> = Vec::new();
        for part in value.split(',') {
            let (key_text, direction_text) = match part.split_once(':') {
                Some((key, direction)) => (key.trim(), Some(direction.trim())),
                None => (part.trim(), None),
            };
            let key = SortKey::ALL
                .into_iter()
                .find(|k| k.as_str() == key_text)
                .ok_or_else(|| {
                    let known: Vec<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
                    ParamError::new(
                        parameter,
                        format!(
                            "unknown sort key '{key_text}' (expected one of {})",
                            known.join(", ")
                        ),
                    )
                })?;
            let direction = match direction_text {
                None | Some("desc") => SortDirection::Desc,
                Some("asc") => SortDirection::Asc,
                Some(other) => {
                    return Err(ParamError::new(
                        parameter,
                        format!("unknown sort direction '{other}' (expected asc or desc)"),
                    ))
                }
            };
            if keys.iter().any(|(k, _)| *k == key) {
                return Err(ParamError::new(
                    parameter,
                    format!("sort key '{key_text}' is given more than once"),
                ));
            }
            keys.push((key, direction));
        }
        // Keys after `id` could never decide anything: `id` is unique.
        if let Some(position) = keys.iter().position(|(k, _)| *k == SortKey::Id) {
            keys.truncate(position + 1);
        } else if let Some(&(_, last_direction)) = keys.last() {
            keys.push((SortKey::Id, last_direction));
        }
        Ok(Self { keys })
    }

    /// The keys in order; the last one is always `id`.
    pub fn keys(&self) -> &[(SortKey, SortDirection)] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::SortDirection::{Asc, Desc};
    use super::SortKey::*;
    use super::*;

    #[test]
    fn parsed_orders() {
        let cases: &[(&str, &[(SortKey, SortDirection)])] = &[
            ("created_at", &[(CreatedAt, Desc), (Id, Desc)]),
            ("created_at:asc", &[(CreatedAt, Asc), (Id, Asc)]),
            (
                "name:asc,created_at",
                &[(Name, Asc), (CreatedAt, Desc), (Id, Desc)],
            ),
            (
                "status:asc, updated_at:asc",
                &[(Status, Asc), (UpdatedAt, Asc), (Id, Asc)],
            ),
            ("id:asc,name", &[(Id, Asc)]),
            ("protected_at:desc", &[(ProtectedAt, Desc), (Id, Desc)]),
        ];
        for (input, expected) in cases {
            assert_eq!(
                SortSpec::parse("sort", input).unwrap().keys(),
                *expected,
                "{input}"
            );
        }
    }

    #[test]
    fn refused_orders() {
        for input in [
            "",
            "size",
            "name:up",
            "name:ASC",
            "Name",
            "name,name:asc",
            "name:",
            ",",
            &format!("name:asc,{}", " ".repeat(250)),
        ] {
            let err = SortSpec::parse("sort", input).unwrap_err();
            assert_eq!(err.parameter, "sort", "{input}");
        }
    }

    #[test]
    fn default_is_newest_first() {
        assert_eq!(SortSpec::default().keys(), &[(CreatedAt, Desc), (Id, Desc)]);
    }
}
