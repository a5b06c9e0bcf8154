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

/// Takes the lock on `path`, waiting at most a minute for another holder.
pub fn acquire(path: &Path) -> std::io::Result<StoreLock> {
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
