//! TEST-ONLY: a switch that kills kpki with SIGKILL at its N-th durable step, so the crash
//! tests (`tests/crash.rs`) can stop a run at every point where the disk changes and
//! check what the next run finds.
//!
//! The steps are counted where a write becomes visible or durable: each temporary file
//! written, each rename or link into place, each flush, each ledger append, the journal
//! written and removed, each file or directory removed. `commands::run` arms it from
//! `KPKI_TEST_CRASH_AFTER=N` in debug builds only (`cfg(debug_assertions)`, which is how
//! `cargo test` builds the binary); in a release build [`arm`] and [`point`] do nothing
//! and the variable is never read.

#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(debug_assertions)]
static AFTER: AtomicU64 = AtomicU64::new(0);
#[cfg(debug_assertions)]
static COUNT: AtomicU64 = AtomicU64::new(0);

/// Test-only: kill this process at the `n`-th step (0: never).
pub fn arm(n: u64) {
    #[cfg(debug_assertions)]
    AFTER.store(n, Ordering::SeqCst);
    #[cfg(not(debug_assertions))]
    let _ = n;
}

/// Test-only: how many steps this process has made.
pub fn steps() -> u64 {
    #[cfg(debug_assertions)]
    return COUNT.load(Ordering::SeqCst);
    #[cfg(not(debug_assertions))]
    0
}

/// Test-only: whether the switch is armed (a step may then be split in two, as a torn
/// write would split it).
pub fn armed() -> bool {
    #[cfg(debug_assertions)]
    return AFTER.load(Ordering::Relaxed) != 0;
    #[cfg(not(debug_assertions))]
    false
}

/// A durable step: with the switch armed, the `n`-th one kills the process as a power
/// cut or `kill -9` would (no destructor, no flush, no cleanup).
#[inline]
pub fn point() {
    #[cfg(debug_assertions)]
    {
        let after = AFTER.load(Ordering::Relaxed);
        if after != 0 && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == after {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            // kill(2) of itself does not return; should it, nothing more happens either.
            std::process::abort();
        }
    }
}
