//! `csbs-api migrate`: apply pending migrations and exit.

use crate::settings::Settings;

/// Applies pending migrations.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let repository = settings.database.open_repository()?;
    let applied = repository.migrate()?;
    println!(
        "{applied} migration(s) applied to {}",
        settings.database.database_url()?.redacted()
    );
    Ok(())
}
