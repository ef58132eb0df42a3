//! A statement timeout for SQLite, which has none of its own: without one, four heavy lists of
//! one tenant held every pooled connection and every other tenant got 503s.
//!
//! SQLite calls a connection's progress handler every few thousand virtual-machine
//! instructions, and a non-zero answer interrupts the running statement (`SQLITE_INTERRUPT`,
//! "interrupted", which the storage errors classify as a timeout). The handler here reads a
//! [`StatementClock`]: the deadline of the statement running now, armed by the connection's
//! instrumentation when a statement starts.
//!
//! diesel does not hand out SQLite's connection handle, so the handle is caught when SQLite
//! opens the connection: an auto-extension (which SQLite calls for every connection it opens,
//! on the opening thread, before `sqlite3_open_v2` returns) leaves it in a thread-local slot,
//! and [`install`] takes it from there right after diesel's `establish`. This module is the
//! only one that needs `unsafe`: foreign calls into SQLite, with the invariants stated at each.

#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

/// Virtual-machine instructions between two calls of the progress handler: often enough that
/// a statement overruns its deadline by well under a millisecond, rarely enough that reading
/// the clock costs nothing measurable.
const INSTRUCTIONS_PER_CHECK: c_int = 4000;

/// The deadline of the statement a connection is running, if any.
#[derive(Debug, Default)]
pub(crate) struct StatementClock {
    /// Microseconds after [`epoch`] at which the statement is interrupted; 0: no deadline.
    deadline: AtomicU64,
    /// Whether deadlines are suspended (bulk imports, migrations, counter checks).
    suspended: AtomicBool,
}

/// The instant that clock deadlines count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl StatementClock {
    /// A statement starts: it may run for `timeout` (zero: for ever).
    pub(crate) fn arm(&self, timeout: Duration) {
        let deadline = if timeout.is_zero() || self.suspended.load(Ordering::Relaxed) {
            0
        } else {
            let timeout = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
            micros_since_epoch().saturating_add(timeout).max(1)
        };
        self.deadline.store(deadline, Ordering::Relaxed);
    }

    /// The statement is over.
    pub(crate) fn disarm(&self) {
        self.deadline.store(0, Ordering::Relaxed);
    }

    /// Suspends deadlines until the returned guard is dropped (for work that must read or
    /// write everything, as PostgreSQL's `SET LOCAL statement_timeout = 0` does).
    pub(crate) fn suspend(self: &Arc<Self>) -> Suspended {
        self.suspended.store(true, Ordering::Relaxed);
        self.disarm();
        Suspended(Arc::clone(self))
    }

    fn expired(&self) -> bool {
        let deadline = self.deadline.load(Ordering::Relaxed);
        deadline != 0 && micros_since_epoch() >= deadline
    }
}

/// Deadlines are suspended while this lives.
pub(crate) struct Suspended(Arc<StatementClock>);

impl Drop for Suspended {
    fn drop(&mut self) {
        self.0.suspended.store(false, Ordering::Relaxed);
    }
}

thread_local! {
    /// The handle of the connection SQLite opened last on this thread.
    static OPENED: Cell<*mut ffi::sqlite3> = const { Cell::new(ptr::null_mut()) };
}

/// The auto-extension: remembers the connection being opened.
///
/// # Safety
/// Called by SQLite with a valid handle of the connection it is opening.
unsafe extern "C" fn remember_opened(
    db: *mut ffi::sqlite3,
    _error_message: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    OPENED.with(|opened| opened.set(db));
    ffi::SQLITE_OK
}

/// The progress handler: interrupts the statement once the clock says so.
///
/// # Safety
/// `clock` is the pointer [`install`] registered, which stays valid until the [`Installed`]
/// guard has removed the handler.
unsafe extern "C" fn check_deadline(clock: *mut c_void) -> c_int {
    // SAFETY: see above; the clock is only read.
    let clock = unsafe { &*(clock as *const StatementClock) };
    c_int::from(clock.expired())
}

/// Registers the auto-extension once per process; call before opening a connection.
pub(crate) fn prepare() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: `remember_opened` has the signature SQLite calls auto-extensions with, and
        // is a plain function that lives as long as the process.
        let code = unsafe { ffi::sqlite3_auto_extension(Some(remember_opened)) };
        if code != ffi::SQLITE_OK {
            tracing::warn!(
                code,
                "SQLite statements cannot be timed out: auto-extension refused"
            );
        }
        OPENED.with(|opened| opened.set(ptr::null_mut()));
    });
}

/// Forgets the handle left by a connection opened earlier on this thread; call right before
/// opening the one [`install`] is for.
pub(crate) fn forget_opened() {
    OPENED.with(|opened| opened.set(ptr::null_mut()));
}

/// The progress handler installed on one connection, with the clock it reads. Dropping it
/// removes the handler and releases the clock; it must be dropped before the connection.
pub(crate) struct Installed {
    db: *mut ffi::sqlite3,
    clock: *const StatementClock,
}

// SAFETY: the handle is only used to remove the progress handler, by whoever owns the
// connection (connections move between threads, never serve two at once), and SQLite is built
// thread-safe (`SQLITE_THREADSAFE=1` in the bundled build).
unsafe impl Send for Installed {}

/// Installs `clock` as the progress handler of the connection opened last on this thread,
/// after [`prepare`] and [`forget_opened`]; `None` when no connection was seen opening.
pub(crate) fn install(clock: &Arc<StatementClock>) -> Option<Installed> {
    let db = OPENED.with(|opened| opened.replace(ptr::null_mut()));
    if db.is_null() {
        return None;
    }
    let raw = Arc::into_raw(Arc::clone(clock));
    // SAFETY: `db` is the live connection just opened on this thread (nothing else has it
    // yet); `raw` stays valid until `Installed::drop` has removed the handler.
    unsafe {
        ffi::sqlite3_progress_handler(
            db,
            INSTRUCTIONS_PER_CHECK,
            Some(check_deadline),
            raw as *mut c_void,
        );
    }
    Some(Installed { db, clock: raw })
}

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: the connection is still open (this guard is dropped before it), and with the
        // handler removed SQLite no longer holds the clock's pointer, so it can be released.
        unsafe {
            ffi::sqlite3_progress_handler(self.db, 0, None, ptr::null_mut());
            drop(Arc::from_raw(self.clock));
        }
    }
}
