//! `csbs-api import FILE`: load backup items from JSON Lines.
//!
//! Each line is one item object (spec §2) plus `project_id` and an optional `policy_id`.
//! Items are upserted by tenant and id in batches, one transaction each, so importing the same
//! file twice changes nothing. A bad line is reported with its number and reason and skipped;
//! the good ones are stored. Parsing and writing run on separate threads so the database is
//! never idle while the next batch is read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::time::Instant;

use anyhow::Context;
use csbs_domain::BackupRecord;
use csbs_storage::{BulkLoad, BulkWriter, Repository};

use crate::cli::ImportArgs;
use crate::commands::progress;
use crate::settings::{Reach, Settings};

/// The outcome of an import. Every non-blank line is an item or a bad line; every item was
/// written, found stored as it is, or superseded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Non-blank lines read: `items + bad_lines`.
    pub lines: u64,
    /// Valid items.
    pub items: u64,
    /// Rows inserted or changed.
    pub written: u64,
    /// Items not stored because a later line of the same batch holds the same tenant and id
    /// (the last one wins).
    pub superseded: u64,
    /// Lines refused.
    pub bad_lines: u64,
}

impl ImportSummary {
    /// Items already stored exactly as they are.
    pub fn unchanged(&self) -> u64 {
        self.items - self.written - self.superseded
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "{} read: {}, {}; {} new or changed, {} unchanged",
            plural(self.lines, "line", "lines"),
            plural(self.items, "item", "items"),
            plural(self.bad_lines, "bad line", "bad lines"),
            self.written,
            self.unchanged(),
        )?;
        if self.superseded > 0 {
            write!(
                f,
                ", {} replaced by a later line for the same item",
                self.superseded
            )?;
        }
        Ok(())
    }
}

/// Runs the import; the summary says whether any line was bad.
pub fn run(settings: &Settings, args: &ImportArgs) -> anyhow::Result<ImportSummary> {
    let repository = settings.open_repository(Reach::Now)?;
    repository
        .migrate()
        .context("cannot prepare the database")?;
    let batch_size = settings
        .import
        .batch_size_or(args.batch_size, repository.backend());
    let writers = settings.import.writers_or(args.writers);

    let (input, length): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let length = file.metadata().ok().map(|m| m.len());
        (Box::new(file), length)
    };
    let progress = progress::bytes(length);
    let started = Instant::now();
    // Into an empty database (or going on with an initial load that stopped), indexes and
    // counters are made after the rows.
    let load = repository.begin_bulk_load()?;
    let summary = import(
        &repository,
        BufReader::with_capacity(1 << 20, progress.wrap_read(input)),
        batch_size,
        writers,
        |line, reason| progress.suspend(|| eprintln!("line {line}: {reason}")),
    )?;
    progress.finish_and_clear();
    if summary.written > 0 || load == BulkLoad::Initial {
        repository.finish_bulk_load()?;
    }

    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{summary}; in {seconds:.1} s ({} items/s)",
        progress::per_second(summary.items as f64 / seconds.max(1e-9)),
    );
    Ok(summary)
}

/// Reads `input` line by line into batches for `writers` writer threads (see
/// [`BulkWriter`]); `report` hears of each bad line. Stops at the first database error
/// (batches already written stay written).
pub fn import(
    repository: &Repository,
    input: impl BufRead,
    batch_size: usize,
    writers: usize,
    mut report: impl FnMut(u64, String),
) -> anyhow::Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let writer = BulkWriter::start(repository, writers, |_| {});

    let mut batch = Vec::with_capacity(batch_size);
    let mut send_failed = false;
    for (index, line) in input.lines().enumerate() {
        let number = index as u64 + 1;
        let line = match line {
            Ok(line) => line,
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                summary.lines += 1;
                summary.bad_lines += 1;
                report(number, "not valid UTF-8".into());
                continue;
            }
            Err(error) => return Err(error).context("cannot read the input"),
        };
        if line.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        let parsed = serde_json::from_str(&line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|value| BackupRecord::from_json(value).map_err(|e| e.to_string()));
        match parsed {
            Ok(record) => {
                summary.items += 1;
                batch.push(record);
                if batch.len() >= batch_size {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if writer.write(full).is_err() {
                        send_failed = true;
                        break;
                    }
                }
            }
            Err(reason) => {
                summary.bad_lines += 1;
                report(number, reason);
            }
        }
    }
    if !batch.is_empty() && !send_failed {
        send_failed = writer.write(batch).is_err();
    }
    let stored = writer.finish().context("cannot store a batch")?;
    summary.written = stored.written;
    summary.superseded = stored.superseded;
    if send_failed {
        anyhow::bail!("the writer stopped early");
    }
    Ok(summary)
}
