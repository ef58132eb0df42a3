//! `csbs-api counters check|rebuild`: compare the trigger-kept counters with the rows, or
//! recompute them.

use csbs_storage::CounterDrift;

use crate::cli::CountersAction;
use crate::settings::{Reach, Settings};

/// Runs the action; `Ok(false)` when `check` found drift.
pub fn run(settings: &Settings, action: &CountersAction) -> anyhow::Result<bool> {
    let repository = settings.open_repository(Reach::Now)?;
    repository.migrate()?;
    match action {
        CountersAction::Check => {
            let drift = repository.check_counters()?;
            report(&drift);
            if drift.is_empty() {
                println!("every counter agrees with the rows");
            }
            Ok(drift.is_empty())
        }
        CountersAction::Rebuild => {
            let repaired = repository.rebuild_counters()?;
            report(&repaired);
            println!(
                "counters rebuilt from the rows; {} were wrong",
                repaired.len()
            );
            Ok(true)
        }
    }
}

fn report(drift: &[CounterDrift]) {
    for d in drift {
        let dimensions = d
            .dimensions
            .as_ref()
            .map(|dimensions| format!(" {dimensions}"))
            .unwrap_or_default();
        println!(
            "{} {}{dimensions} {}: counter {} but {} rows",
            d.project_id, d.status, d.bucket, d.counted, d.actual
        );
    }
}
