//! An advisory lock on the store, held for the whole of a command that writes to it, so
//! two kpki processes never interleave their writes to the ledger or to one certificate.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a second kpki waits for the first before giving up.
const WAIT: Duration = Duration::from_secs(60);

/// Held while alive; the OS releases it when the process ends, even on a crash.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// Takes the lock of the store at `dir` (its `.lock`), waiting at most a minute for
/// another holder. Every command that writes to the store takes it first, so a store
/// directory that is a symbolic link is refused here, before anything is written.
pub fn acquire(dir: &Path) -> Result<StoreLock, super::StoreError> {
    // The store's files that are written in place rather than replaced (the lock, the
    // ledger) and the config: none may be a link, checked before anything is written.
    for name in [".lock", super::LEDGER, super::CONFIG] {
        let p = dir.join(name);
        super::atomic::check_target(dir, &p)
            .map_err(|source| super::StoreError::Io { path: p, source })?;
    }
    take(&dir.join(".lock")).map_err(|e| super::StoreError::Locked(e.to_string()))
}

fn take(path: &Path) -> std::io::Result<StoreLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        // Never through a symlink planted at the lock's path.
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(StoreLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "another kpki process has held the store lock for over a minute",
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}
