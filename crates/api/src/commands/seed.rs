//! `csbs-api seed --items N [--projects P] [--seed S]`: generated backups (see
//! [`csbs_sample_data`]) stored as `import` stores its items. The same N, P and S always store
//! the same items, so seeding twice changes nothing.

use anyhow::Context;
use csbs_sample_data::{SeedOptions, SeedSummary};

use crate::cli::SeedArgs;
use crate::commands::progress;
use crate::settings::{Reach, Settings};

/// Runs `seed`: migrations, then the items; prints the tenants (stdout) and a summary line
/// (stderr).
pub fn run(settings: &Settings, args: &SeedArgs) -> anyhow::Result<SeedSummary> {
    let repository = settings.open_repository(Reach::Now)?;
    repository
        .migrate()
        .context("cannot prepare the database")?;
    let options = SeedOptions {
        items: args.items,
        projects: args.projects as usize,
        seed: args.seed,
        batch_size: settings
            .import
            .batch_size_or(args.batch_size, repository.backend()),
        writers: settings.import.writers_or(args.writers),
    };
    let progress = progress::items(options.items);
    let summary = {
        let progress = progress.clone();
        csbs_sample_data::seed(&repository, &options, move |items| progress.inc(items))?
    };
    repository.finish_bulk_load()?;
    progress.finish_and_clear();

    for (project, items) in &summary.tenants {
        println!("{project} {items}");
    }
    // Each tenant gets an item before any gets a second: only fewer items than tenants
    // leave some without any.
    let short = if summary.tenants.len() < options.projects {
        format!(
            " (of the {} asked for: fewer items than projects)",
            options.projects
        )
    } else {
        String::new()
    };
    eprintln!(
        "{} items generated for {} projects{short} (seed {}), {} new or changed, in {:.1} s ({} items/s)",
        summary.items,
        summary.tenants.len(),
        options.seed,
        summary.written,
        summary.seconds,
        progress::per_second(summary.items_per_second()),
    );
    Ok(summary)
}
