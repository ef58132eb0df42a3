//! `csbs-api migrate`: apply pending migrations and exit.

use crate::settings::{Reach, Settings};

/// Applies pending migrations.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let repository = settings.open_repository(Reach::Now)?;
    let applied = repository.migrate()?;
    println!(
        "{applied} migration(s) applied to {}",
        settings.database.database_url()?.redacted()
    );
    Ok(())
}
