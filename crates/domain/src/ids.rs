//! Identifiers and free-text filter values.

use std::fmt;

use crate::ParamError;

/// The provider id of the real service's backup provider, the only one there is: the
/// deletion route names it (`/providers/{provider_id}/checkpoints/…`).
pub const PROVIDER_ID: &str = "fc4d5750-22e7-4798-8a46-f48f62c4c1da";

/// A tenant: 1–64 characters of `[A-Za-z0-9_-]` (real clouds use 32 lowercase hex characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);

impl ProjectId {
    /// The longest project id accepted.
    pub const MAX_LEN: usize = 64;

    /// Validates `value` as a project id; `parameter` names it in the error.
    pub fn parse(parameter: &str, value: &str) -> Result<Self, ParamError> {
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(ParamError::new(
                parameter,
                format!("must be 1 to {} characters long", Self::MAX_LEN),
            ));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ParamError::new(
                parameter,
                "may contain only letters, digits, '_' and '-'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a backup item or backup record: a UUID, kept in its canonical lowercase,
/// hyphenated form so that `7B99…` and `7b99…` name the same item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(String);

impl ItemId {
    /// Validates `value` as a UUID; `parameter` names it in the error.
    pub fn parse(parameter: &str, value: &str) -> Result<Self, ParamError> {
        uuid::Uuid::try_parse(value)
            .map(|uuid| Self(uuid.hyphenated().to_string()))
            .map_err(|_| ParamError::new(parameter, format!("'{value}' is not a UUID")))
    }

    /// The canonical text of the id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty exact-match or substring value of at most 255 characters (names, resource ids,
/// availability zones, …), as the columns that hold them are bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TextValue(String);

impl TextValue {
    /// The longest value accepted, in characters.
    pub const MAX_CHARS: usize = 255;

    /// Validates `value`; `parameter` names it in the error.
    pub fn parse(parameter: &str, value: &str) -> Result<Self, ParamError> {
        if value.is_empty() {
            return Err(ParamError::new(parameter, "must not be empty"));
        }
        if value.chars().count() > Self::MAX_CHARS {
            return Err(ParamError::new(
                parameter,
                format!("must be at most {} characters long", Self::MAX_CHARS),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(ParamError::new(
                parameter,
                "must not contain control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids() {
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases: &[(&str, bool)] = &[
            ("0123456789abcdef0123456789abcdef", true),
            ("Tenant_A-1", true),
            (&long, true),
            ("", false),
            (&too_long, false),
            ("a b", false),
            ("a/b", false),
            ("ä", false),
            ("a%20", false),
        ];
        for (input, ok) in cases {
            assert_eq!(
                ProjectId::parse("project_id", input).is_ok(),
                *ok,
                "{input:?}"
            );
        }
    }

    #[test]
    fn item_ids_are_canonical() {
        let id = ItemId::parse("id", "7B99ACFD-18C3-4F26-9D39-B4EBD2EA3E12").unwrap();
        assert_eq!(id.as_str(), "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12");
        let err = ItemId::parse("marker", "nope").unwrap_err();
        assert_eq!(err.parameter, "marker");
        assert!(ItemId::parse("id", "").is_err());
    }

    #[test]
    fn text_values() {
        assert!(TextValue::parse("name", "").is_err());
        assert!(TextValue::parse("name", &"x".repeat(256)).is_err());
        assert!(TextValue::parse("name", &"é".repeat(255)).is_ok());
        assert!(TextValue::parse("name", "a\nb").is_err());
        assert_eq!(TextValue::parse("name", "50%_x").unwrap().as_str(), "50%_x");
    }
}
