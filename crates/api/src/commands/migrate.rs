//! `csbs-api migrate`: apply pending migrations and exit.

use csbs_storage::{DatabaseUrl, Repository};
use secrecy::ExposeSecret;

use crate::settings::Settings;

/// Applies pending migrations.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let url = DatabaseUrl::parse(settings.database.url.expose_secret())?;
    let repository = Repository::open(&url, &settings.database.pool_settings())?;
    let applied = repository.migrate()?;
    println!("{applied} migration(s) applied to {}", url.redacted());
    Ok(())
}
