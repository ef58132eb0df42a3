//! The lifecycle states of a backup item.

use std::fmt;
use std::str::FromStr;

use crate::ParamError;

/// The status of a backup. `waiting_protect → protecting → available | error`;
/// `available → waiting_restore → restoring → available | error`;
/// `available | error → waiting_delete → deleting → deleted | error`.
// Serialized as `as_str` spells it (a test holds the two together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BackupStatus {
    /// Queued for backup.
    WaitingProtect,
    /// Being backed up.
    Protecting,
    /// Done and usable.
    Available,
    /// Queued for restore.
    WaitingRestore,
    /// Being restored.
    Restoring,
    /// Failed.
    Error,
    /// Deletion asked for.
    WaitingDelete,
    /// Being deleted.
    Deleting,
    /// Gone; answered only when asked for.
    Deleted,
}

impl BackupStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [BackupStatus; 9] = [
        Self::WaitingProtect,
        Self::Protecting,
        Self::Available,
        Self::WaitingRestore,
        Self::Restoring,
        Self::Error,
        Self::WaitingDelete,
        Self::Deleting,
        Self::Deleted,
    ];

    /// The wire and database spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WaitingProtect => "waiting_protect",
            Self::Protecting => "protecting",
            Self::Available => "available",
            Self::WaitingRestore => "waiting_restore",
            Self::Restoring => "restoring",
            Self::Error => "error",
            Self::WaitingDelete => "waiting_delete",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }

    /// Validates a status value; `parameter` names it in the error.
    pub fn parse(parameter: &str, value: &str) -> Result<Self, ParamError> {
        value.parse().map_err(|()| {
            let known: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
            ParamError::new(
                parameter,
                format!(
                    "unknown status '{value}' (expected one of {})",
                    known.join(", ")
                ),
            )
        })
    }
}

impl FromStr for BackupStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips() {
        for status in BackupStatus::ALL {
            assert_eq!(BackupStatus::parse("status", status.as_str()), Ok(status));
        }
    }

    #[test]
    fn serialized_statuses_are_spelled_as_stored() {
        for status in BackupStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
    }

    #[test]
    fn unknown_and_miscased_statuses_are_refused() {
        for bad in ["availble", "Available", "AVAILABLE", " available", ""] {
            let err = BackupStatus::parse("status", bad).unwrap_err();
            assert_eq!(err.parameter, "status");
            assert!(err.reason.contains(&format!("'{bad}'")), "{err}");
        }
    }
}
