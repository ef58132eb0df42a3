//! Read replicas: PostgreSQL standbys that serve the public reads while they are close enough
//! to the primary.
//!
//! Background threads measure each replica's lag every `check_interval`, never per request:
//! it records the primary's WAL position (`pg_current_wal_lsn()`) with the time it was read,
//! and a replica's lag is how long ago the primary was at the first recorded position the
//! replica has not replayed yet (`pg_last_wal_replay_lsn()`); a replica that has replayed the
//! newest recorded position has no lag. A replica is used while it is a standby, answered the
//! last check, and lags no more than `max_lag`. When the primary cannot be asked, no lag can be
//! known and no replica is used (reads go to the primary, which answers 503 while it is away).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::connection::DbConnection;
use crate::{DatabaseUrl, PoolSettings, Repository, StorageError};

/// How replicas are chosen.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// A replica further behind than this is not read from.
    pub max_lag: Duration,
    /// How often every replica's lag is measured.
    pub check_interval: Duration,
}

/// A replica and what the last check found.
struct Replica {
    label: String,
    repository: Repository,
    usable: AtomicBool,
    /// Microseconds, `u64::MAX` when unknown.
    lag_micros: AtomicU64,
    /// When the last check ended, in microseconds since `Replicas::epoch`.
    checked_at_micros: AtomicU64,
}

/// What a replica looked like at its last check, for metrics and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// The replica's URL without its password.
    pub label: String,
    /// Whether reads go to it now.
    pub usable: bool,
    /// Its lag behind the primary, when known.
    pub lag: Option<Duration>,
}

/// The replicas of one primary, and the thread that watches them.
#[derive(Clone)]
pub struct Replicas {
    members: Arc<Vec<Replica>>,
    next: Arc<AtomicUsize>,
    /// What `checked_at_micros` counts from.
    epoch: Instant,
    /// How recent a replica's last check must be for it to be read from.
    fresh_for: Duration,
}

impl Replicas {
    /// Opens a pool on each of `urls` (all PostgreSQL) and starts watching them against
    /// `primary`. No replica is used before its first check.
    pub fn start(
        primary: &Repository,
        urls: &[DatabaseUrl],
        pool: &PoolSettings,
        settings: &ReplicaSettings,
    ) -> Result<Self, StorageError> {
        let mut members = Vec::with_capacity(urls.len());
        for url in urls {
            if !matches!(url, DatabaseUrl::Postgres(_)) {
                return Err(StorageError::Configuration(
                    "database.replica_urls must be postgres:// URLs".into(),
                ));
            }
            members.push(Replica {
                label: url.redacted(),
                repository: Repository::open(url, pool)?,
                usable: AtomicBool::new(false),
                lag_micros: AtomicU64::new(u64::MAX),
                checked_at_micros: AtomicU64::new(0),
            });
        }
        let replicas = Self {
            members: Arc::new(members),
            next: Arc::new(AtomicUsize::new(0)),
            epoch: Instant::now(),
            // A check answers within a few intervals, or its replica is out of reads.
            fresh_for: settings.max_lag + settings.check_interval * 4,
        };
        replicas.watch(primary.clone(), settings.clone())?;
        Ok(replicas)
    }

    /// A replica to read from now, in turn, or `None` when none is usable.
    pub fn pick(&self) -> Option<(usize, &Repository)> {
        let count = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&index| self.is_usable(index))
            .map(|index| (index, &self.members[index].repository))
    }

    /// Takes replica `index` out of reads until its next check, after a read on it failed.
    pub fn set_aside(&self, index: usize) {
        if let Some(replica) = self.members.get(index) {
            replica.usable.store(false, Ordering::Relaxed);
        }
    }

    /// Every replica as its last check found it.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.members
            .iter()
            .enumerate()
            .map(|(index, replica)| {
                let lag = replica.lag_micros.load(Ordering::Relaxed);
                ReplicaStatus {
                    label: replica.label.clone(),
                    usable: self.is_usable(index),
                    lag: (lag != u64::MAX).then(|| Duration::from_micros(lag)),
                }
            })
            .collect()
    }

    /// The threads that keep the replicas' state for the life of the process (the service
    /// makes one set at start-up): one samples the primary's position, and one per replica
    /// measures it, so that a server that stops answering (its queries hang, and a
    /// stopped server enforces no statement timeout) holds up only its own check. A replica is
    /// read from only while its last check is recent, so one whose check hangs leaves reads.
    fn watch(&self, primary: Repository, settings: ReplicaSettings) -> Result<(), StorageError> {
        let history = Arc::new(Mutex::new(WalHistory::new(
            settings.max_lag * 4 + settings.check_interval * 4,
        )));
        let spawn = |name: String, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(work)
                .map(|_| ())
                .map_err(|e| {
                    StorageError::Configuration(format!("cannot start the replica check: {e}"))
                })
        };
        let sampled = Arc::clone(&history);
        let interval = settings.check_interval;
        spawn(
            "csbs-primary-wal".into(),
            Box::new(move || loop {
                let position = wal_position(&primary, "pg_current_wal_lsn()");
                let mut history = sampled.lock().unwrap_or_else(|p| p.into_inner());
                match position {
                    Ok(Some(position)) => history.record(Instant::now(), position),
                    _ => history.clear(),
                }
                drop(history);
                std::thread::sleep(interval);
            }),
        )?;
        for index in 0..self.members.len() {
            let (replicas, history, settings) =
                (self.clone(), Arc::clone(&history), settings.clone());
            spawn(
                format!("csbs-replica-{index}"),
                Box::new(move || {
                    let replica = &replicas.members[index];
                    loop {
                        // A server out of recovery is no standby (a replica URL that now names
                        // the primary, or a split brain): reads go to the primary's pool.
                        let replayed =
                            wal_position(&replica.repository, "pg_last_wal_replay_lsn()");
                        let lag = match replayed {
                            Ok(Some(replayed)) => history
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .lag(Instant::now(), replayed),
                            _ => None,
                        };
                        replicas.checked(index, lag, settings.max_lag);
                        std::thread::sleep(settings.check_interval);
                    }
                }),
            )?;
        }
        Ok(())
    }

    /// Records a check of replica `index` that found `lag`.
    fn checked(&self, index: usize, lag: Option<Duration>, max_lag: Duration) {
        let replica = &self.members[index];
        let usable = lag.is_some_and(|lag| lag <= max_lag);
        replica
            .checked_at_micros
            .store(self.micros_now(), Ordering::Relaxed);
        replica.lag_micros.store(
            lag.map_or(u64::MAX, |lag| {
                u64::try_from(lag.as_micros()).unwrap_or(u64::MAX)
            }),
            Ordering::Relaxed,
        );
        if replica.usable.swap(usable, Ordering::Relaxed) != usable {
            tracing::info!(replica = %replica.label, usable, lag_ms = lag.map(|l| l.as_millis()),
                "replica {}", if usable { "back in reads" } else { "taken out of reads" });
        }
    }

    fn micros_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether replica `index` is read from now: usable at its last check, which is recent.
    fn is_usable(&self, index: usize) -> bool {
        let replica = &self.members[index];
        let checked_at = replica.checked_at_micros.load(Ordering::Relaxed);
        let age = Duration::from_micros(self.micros_now().saturating_sub(checked_at));
        replica.usable.load(Ordering::Relaxed) && age <= self.fresh_for
    }
}

/// A WAL position (`pg_lsn`) as text, e.g. `0/16B3748`.
#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    lsn: Option<String>,
}

/// `function` (a WAL position) on one of `repository`'s connections; `None` when it is null
/// (`pg_last_wal_replay_lsn()` on a server not in recovery).
fn wal_position(repository: &Repository, function: &str) -> Result<Option<u64>, StorageError> {
    let mut conn = repository.connection()?;
    let DbConnection::Postgresql(pg) = &mut *conn else {
        return Ok(None);
    };
    let row: Position =
        diesel::sql_query(format!("SELECT {function}::text AS lsn")).get_result(pg)?;
    Ok(row.lsn.as_deref().and_then(parse_lsn))
}

/// `X/Y` (two hexadecimal halves) as one number.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// The primary's WAL positions, with when each was read, for as long as lags are measured.
struct WalHistory {
    samples: VecDeque<(Instant, u64)>,
    keep: Duration,
}

impl WalHistory {
    fn new(keep: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            keep,
        }
    }

    fn record(&mut self, at: Instant, position: u64) {
        // Only a change of position is worth keeping: the oldest sample at a position says
        // since when the primary has been there.
        if self.samples.back().is_none_or(|&(_, last)| last < position) {
            self.samples.push_back((at, position));
        }
        // The oldest sample is kept until a newer one is old enough to answer for it.
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|&(time, _)| at.duration_since(time) > self.keep)
        {
            self.samples.pop_front();
        }
    }

    fn clear(&mut self) {
        self.samples.clear();
    }

    /// How far behind a server that has replayed up to `replayed` is at `now`: zero when it has
    /// the newest recorded position, else the age of the oldest position it lacks (at least:
    /// when that is older than the history, the history's age).
    fn lag(&self, now: Instant, replayed: u64) -> Option<Duration> {
        let (_, newest) = *self.samples.back()?;
        if replayed >= newest {
            return Some(Duration::ZERO);
        }
        self.samples
            .iter()
            .find(|&&(_, position)| position > replayed)
            .map(|&(time, _)| now.duration_since(time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_postgres_writes_them() {
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B_3748));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("16B3748"), None);
        assert_eq!(parse_lsn("x/1"), None);
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_position_not_replayed() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut history = WalHistory::new(Duration::from_secs(10));
        assert_eq!(history.lag(at(0), 0), None, "nothing known yet");
        history.record(at(0), 100);
        history.record(at(250), 100); // no write meanwhile: not a new sample
        history.record(at(500), 200);
        history.record(at(750), 300);
        assert_eq!(history.lag(at(1000), 300), Some(Duration::ZERO));
        assert_eq!(history.lag(at(1000), 350), Some(Duration::ZERO));
        // It has 100 but not 200, which the primary had reached 500 ms ago.
        assert_eq!(history.lag(at(1000), 150), Some(Duration::from_millis(500)));
        assert_eq!(history.lag(at(1000), 200), Some(Duration::from_millis(250)));
        // Older than every sample: as old as the history.
        assert_eq!(history.lag(at(1000), 50), Some(Duration::from_millis(1000)));
        history.clear();
        assert_eq!(history.lag(at(1000), 300), None);
    }

    #[test]
    fn the_history_forgets_what_it_no_longer_needs() {
        let start = Instant::now();
        let mut history = WalHistory::new(Duration::from_secs(1));
        for step in 0..100u64 {
            history.record(start + Duration::from_millis(step * 100), step);
        }
        // A second of samples, and the one before them.
        assert!(history.samples.len() <= 12, "{}", history.samples.len());
        let now = start + Duration::from_millis(9_900);
        assert_eq!(history.lag(now, 99), Some(Duration::ZERO));
        assert!(history.lag(now, 0).unwrap() >= Duration::from_secs(1));
    }
}
