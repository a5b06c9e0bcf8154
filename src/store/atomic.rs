//! The one way kpki writes a file: a temp file in the same directory, opened with its
//! final mode, written, fsynced, then renamed (or linked, when the target must not
//! exist yet), and the directory fsynced. A crash leaves the old file or the new one,
//! never half of either, and a key is never briefly world-readable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How to treat an existing file at the target path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Fail with `AlreadyExists`.
    Refuse,
    /// Replace it atomically.
    Replace,
}

fn temp_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}.kpki-tmp.{}.{n}", std::process::id()))
}

/// fsyncs a directory so a rename or link in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its parents with mode 0700 where they do not exist.
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically with `mode`; the parent directory must exist.
pub fn write(path: &Path, bytes: &[u8], mode: u32, existing: Existing) -> io::Result<()> {
    write_inner(path, bytes, mode, existing, true)
}

/// Writes several files of one directory atomically, each one as [`write`] does, with a
/// single directory fsync at the end (each file's own data is fsynced before its rename).
pub fn write_all_in(
    dir: &Path,
    files: &[(&str, &[u8], u32)],
    existing: Existing,
) -> io::Result<()> {
    for (name, bytes, mode) in files {
        write_inner(&dir.join(name), bytes, *mode, existing, false)?;
    }
    sync_dir(dir)
}

fn write_inner(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
    dir_sync: bool,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if existing == Existing::Refuse && fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", path.display()),
        ));
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // The umask may have narrowed the mode given at open; a 0644 certificate must be 0644.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        match existing {
            Existing::Replace => fs::rename(&tmp, path)?,
            Existing::Refuse => {
                // link() fails if the target appeared meanwhile: no clobbering race.
                fs::hard_link(&tmp, path)?;
                fs::remove_file(&tmp)?;
            }
        }
        if dir_sync {
            sync_dir(&dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_mode_and_refuses_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        write(&p, b"one", 0o600, Existing::Refuse).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = write(&p, b"two", 0o600, Existing::Refuse).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write(&p, b"three", 0o644, Existing::Replace).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left behind"
        );
    }
}
