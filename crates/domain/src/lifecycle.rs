//! The status lifecycle of a backup item, as backup engines must follow it:
//!
//! ```text
//! waiting_protect → protecting → available | error
//! available → waiting_restore → restoring → available | error
//! available | error → waiting_delete → deleting → deleted | error
//! ```
//!
//! Staying in the same status is not a transition: it is how engines report progress.

use crate::BackupStatus;

impl BackupStatus {
    /// The statuses an item in this status may move to next.
    pub fn successors(self) -> &'static [BackupStatus] {
        use BackupStatus::*;
        match self {
            WaitingProtect => &[Protecting],
            Protecting => &[Available, Error],
            Available => &[WaitingRestore, WaitingDelete],
            WaitingRestore => &[Restoring],
            Restoring => &[Available, Error],
            Error => &[WaitingDelete],
            WaitingDelete => &[Deleting],
            Deleting => &[Deleted, Error],
            Deleted => &[],
        }
    }

    /// Whether an item may go from this status to `next` (staying put is allowed).
    pub fn may_become(self, next: BackupStatus) -> bool {
        self == next || self.successors().contains(&next)
    }

    /// Whether the public API may ask for this item's deletion: only finished items
    /// (`available`, `error`) can be deleted; items already on their way out are left as they
    /// are, so that repeating a deletion is harmless.
    pub fn deletion(self) -> Deletion {
        match self {
            BackupStatus::Available | BackupStatus::Error => Deletion::Start,
            BackupStatus::WaitingDelete | BackupStatus::Deleting | BackupStatus::Deleted => {
                Deletion::AlreadyUnderway
            }
            _ => Deletion::Refused,
        }
    }
}

/// What a deletion request means for an item in a given status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Move it to `waiting_delete`.
    Start,
    /// Nothing to do: it is already being deleted, or gone.
    AlreadyUnderway,
    /// It is busy (being made or restored) and cannot be deleted now.
    Refused,
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackupStatus::*;

    /// Every allowed transition, written out independently of `successors`.
    const ALLOWED: &[(BackupStatus, BackupStatus)] = &[
        (WaitingProtect, Protecting),
        (Protecting, Available),
        (Protecting, Error),
        (Available, WaitingRestore),
        (WaitingRestore, Restoring),
        (Restoring, Available),
        (Restoring, Error),
        (Available, WaitingDelete),
        (Error, WaitingDelete),
        (WaitingDelete, Deleting),
        (Deleting, Deleted),
        (Deleting, Error),
    ];

    #[test]
    fn every_pair_of_statuses() {
        for from in BackupStatus::ALL {
            for to in BackupStatus::ALL {
                let expected = from == to || ALLOWED.contains(&(from, to));
                assert_eq!(from.may_become(to), expected, "{from} → {to}");
            }
        }
    }

    #[test]
    fn deletion_by_status() {
        for status in BackupStatus::ALL {
            let expected = match status {
                Available | Error => Deletion::Start,
                WaitingDelete | Deleting | Deleted => Deletion::AlreadyUnderway,
                WaitingProtect | Protecting | WaitingRestore | Restoring => Deletion::Refused,
            };
            assert_eq!(status.deletion(), expected, "{status}");
        }
    }

    #[test]
    fn deleted_is_final() {
        assert!(Deleted.successors().is_empty());
    }
}
