//! Generates realistic, deterministic backups (see [`crate::SampleData`]) and stores them as
//! `csbs-api import` does, upserted by tenant and id in batches of one transaction each. The
//! same items, projects and seed always store the same items, so seeding twice changes nothing.
//!
//! A generator thread makes the next batch while the current one is written, so the database
//! is never idle waiting for data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::Context;
use csbs_domain::BackupRecord;
use csbs_storage::{BulkWriter, Repository};

use crate::SampleData;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOptions {
    /// How many items.
    pub items: u64,
    /// How many tenants share them.
    pub projects: usize,
    /// The random seed.
    pub seed: u64,
    /// Items per transaction.
    pub batch_size: usize,
    /// Connections writing at once (PostgreSQL).
    pub writers: usize,
}

/// The outcome of a seed run.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSummary {
    /// Items generated and sent to the database.
    pub items: u64,
    /// Rows inserted or changed (the rest were already stored as they are).
    pub written: u64,
    /// Wall-clock time of generating and storing.
    pub seconds: f64,
    /// Items per tenant (project id), the largest first.
    pub tenants: Vec<(String, u64)>,
}

impl SeedSummary {
    /// Items stored per second.
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

/// Generates `options.items` items into `repository` (already migrated); `on_stored` hears,
/// from the writer threads, how many items each stored share of a batch held. Stops at the
/// first database error (batches already written stay written).
pub fn seed(
    repository: &Repository,
    options: &SeedOptions,
    on_stored: impl Fn(u64) + Send + Sync + 'static,
) -> anyhow::Result<SeedSummary> {
    let started = Instant::now();
    // Into an empty database, indexes and counters are made after the rows.
    repository
        .begin_bulk_load()
        .context("cannot prepare the bulk load")?;
    let batch_size = options.batch_size.max(1) as u64;
    let data = SampleData::new(options.seed, options.projects);
    let project_ids: Vec<String> = data.project_ids().into_iter().map(str::to_owned).collect();
    let items = options.items;

    // Two batches in flight: one being written, one ready.
    let (batches, receiver) = mpsc::sync_channel::<Vec<BackupRecord>>(1);
    let generator = std::thread::spawn(move || -> anyhow::Result<HashMap<String, u64>> {
        let mut per_tenant: HashMap<String, u64> = HashMap::new();
        let mut start = 0;
        while start < items {
            let end = items.min(start + batch_size);
            let batch = (start..end)
                .map(|index| {
                    data.record(index)
                        .with_context(|| format!("generated item {index} is invalid"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            for record in &batch {
                *per_tenant
                    .entry(record.project_id.as_str().to_owned())
                    .or_default() += 1;
            }
            if batches.send(batch).is_err() {
                // The writer stopped on an error, which it reports.
                break;
            }
            start = end;
        }
        Ok(per_tenant)
    });

    let stored = Arc::new(AtomicU64::new(0));
    let writer = {
        let stored = Arc::clone(&stored);
        BulkWriter::start(repository, options.writers, move |items| {
            stored.fetch_add(items, Ordering::Relaxed);
            on_stored(items);
        })
    };
    for batch in receiver.iter() {
        if writer.write(batch).is_err() {
            // A writer failed; `finish` says why.
            break;
        }
    }
    // Dropping the receiver ends a generator blocked on a full channel.
    drop(receiver);
    let written = writer.finish();
    let per_tenant = generator
        .join()
        .map_err(|_| anyhow::anyhow!("the generator thread panicked"))??;
    let written = written.context("cannot store a batch")?.written;
    let stored = stored.load(Ordering::Relaxed);

    let mut tenants: Vec<(String, u64)> = project_ids
        .into_iter()
        .filter_map(|project| {
            let count = per_tenant.get(&project).copied()?;
            Some((project, count))
        })
        .collect();
    tenants.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(SeedSummary {
        items: stored,
        written,
        seconds: started.elapsed().as_secs_f64(),
        tenants,
    })
}

#[cfg(test)]
mod tests {
    use csbs_domain::{BackupFilter, BackupStatus, Criteria, PageRequest, SortSpec, TenantScope};
    use csbs_test_support::TestDatabase;

    use super::*;

    fn options(items: u64, seed: u64) -> SeedOptions {
        SeedOptions {
            items,
            projects: 5,
            seed,
            batch_size: 64,
            writers: 2,
        }
    }

    /// Every stored document of every status, in one order (the tests store under 1000).
    fn stored_documents(repository: &Repository) -> Vec<String> {
        let filter = BackupFilter {
            scope: TenantScope::AllTenants,
            criteria: Criteria {
                statuses: BackupStatus::ALL.to_vec(),
                ..Criteria::default()
            },
        };
        let page = PageRequest {
            limit: 1000,
            ..PageRequest::default()
        };
        let listed = repository
            .list(&filter, &SortSpec::default(), &page)
            .unwrap();
        assert!(!listed.has_more);
        listed.documents
    }

    #[test]
    fn seeding_is_deterministic_and_repeatable() {
        let first = TestDatabase::sqlite();
        let second = TestDatabase::sqlite();
        let (a, b) = (first.repository(), second.repository());

        let summary = seed(&a, &options(300, 9), |_| {}).unwrap();
        assert_eq!(summary.items, 300);
        assert_eq!(summary.written, 300);
        assert_eq!(summary.tenants.iter().map(|(_, n)| n).sum::<u64>(), 300);
        assert!(summary.tenants.windows(2).all(|w| w[0].1 >= w[1].1));
        seed(&b, &options(300, 9), |_| {}).unwrap();
        let documents = stored_documents(&a);
        assert_eq!(documents.len(), 300);
        assert_eq!(documents, stored_documents(&b), "same arguments, same data");

        // Seeding again stores nothing new.
        let again = seed(&a, &options(300, 9), |_| {}).unwrap();
        assert_eq!(again.written, 0);
        assert_eq!(stored_documents(&a), documents);

        // Another seed, other data.
        let third = TestDatabase::sqlite();
        let c = third.repository();
        seed(&c, &options(300, 10), |_| {}).unwrap();
        assert_ne!(stored_documents(&c), documents);
    }
}
