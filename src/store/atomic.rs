//! The one way kpki writes a file: a temp file in the same directory, opened with its
//! final mode, written, fsynced, then renamed (or linked, when the target must not
//! exist yet), and the directory fsynced. A crash leaves the old file or the new one,
//! never half of either, and a key is never briefly world-readable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

/// Whether `name` is one of kpki's temporary files, and the PID that made it.
fn temp_owner(name: &str) -> Option<u32> {
    let (_, rest) = name.strip_prefix('.')?.rsplit_once(".kpki-tmp.")?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// kpki's temporary files under `dir` (not following links) left by a process that is
/// gone: a run killed between writing them and renaming them into place. They may hold
/// plaintext keys (a staged tree's).
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(temp_owner)
                .is_some_and(|pid| {
                    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
                })
        })
        .map(|e| e.into_path())
        .collect()
}

/// fsyncs a directory so a rename or link in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes every directory from `top` (which must exist, or is created 0700) down to
/// `dir` exist with exactly `mode`, creating what is missing and correcting what differs.
/// For trees laid out like a node's `/`: `rsync -a tree/ /` copies directory modes, so a
/// staged `etc/` must be 0755 like the node's own; the files inside keep their modes (keys
/// 0600). Callers check for symbolic links first.
pub fn tree_dirs(top: &Path, dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    create_dir_private(
        top.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    let rel = dir.strip_prefix(top).unwrap_or(Path::new(""));
    let mut cur = top.to_path_buf();
    let mut chain = vec![cur.clone()];
    for c in rel.components() {
        cur.push(c);
        chain.push(cur.clone());
    }
    for d in chain {
        match fs::DirBuilder::new().mode(mode).create(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if fs::metadata(&d)?.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(&d, fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

/// Creates `dir` and its parents with mode 0700 where they do not exist.
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically with `mode`; the parent directory must exist.
pub fn write(path: &Path, bytes: &[u8], mode: u32, existing: Existing) -> io::Result<()> {
    write_inner(path, bytes, mode, existing, true)
}

/// Several files written as one step, for commands that write many (a whole cluster's
/// issuance, a staged tree). Every temp file is written first, then one `syncfs` per
/// file system makes all their data durable, then each is renamed (or linked) into place
/// in the order added, then one more `syncfs` makes the new names durable. Each file is
/// still replaced atomically; the batch costs two flushes instead of two per file, and
/// directories created along the way are flushed too.
///
/// Dropping an uncommitted batch removes its temp files.
#[derive(Default)]
pub struct Batch {
    items: Vec<(PathBuf, PathBuf, Existing)>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Writes the temp file for `path` now; the rename waits for [`Batch::commit`].
    pub fn add(
        &mut self,
        path: &Path,
        bytes: &[u8],
        mode: u32,
        existing: Existing,
    ) -> io::Result<()> {
        if existing == Existing::Refuse && fs::symlink_metadata(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        let tmp = temp_path(path);
        if let Err(e) = write_temp(&tmp, bytes, mode, false) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.items.push((path.to_path_buf(), tmp, existing));
        Ok(())
    }

    /// Makes every file durable and puts it in place.
    pub fn commit(mut self) -> io::Result<()> {
        let items = std::mem::take(&mut self.items);
        let mut roots: Vec<File> = Vec::new();
        let mut devs: Vec<u64> = Vec::new();
        for (path, ..) in &items {
            let dir = parent(path);
            let meta = fs::metadata(&dir)?;
            if !devs.contains(&std::os::unix::fs::MetadataExt::dev(&meta)) {
                devs.push(std::os::unix::fs::MetadataExt::dev(&meta));
                roots.push(File::open(&dir)?);
            }
        }
        let flush = |roots: &[File]| {
            roots
                .iter()
                .try_for_each(|f| rustix::fs::syncfs(f).map_err(io::Error::from))
        };
        let result = (|| {
            flush(&roots)?;
            for (i, (path, tmp, existing)) in items.iter().enumerate() {
                if let Err(e) = place(tmp, path, *existing) {
                    for (_, t, _) in &items[i..] {
                        let _ = fs::remove_file(t);
                    }
                    return Err(e);
                }
            }
            flush(&roots)
        })();
        if result.is_err() {
            for (_, t, _) in &items {
                let _ = fs::remove_file(t);
            }
        }
        result
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for (_, tmp, _) in &self.items {
            let _ = fs::remove_file(tmp);
        }
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `tmp` with `mode` from the start (never briefly readable by others).
fn write_temp(tmp: &Path, bytes: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    f.write_all(bytes)?;
    // The umask may have narrowed the mode given at open; a 0644 certificate must be 0644.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}

fn place(tmp: &Path, path: &Path, existing: Existing) -> io::Result<()> {
    match existing {
        Existing::Replace => fs::rename(tmp, path),
        Existing::Refuse => {
            // link() fails if the target appeared meanwhile: no clobbering race.
            fs::hard_link(tmp, path)?;
            fs::remove_file(tmp)
        }
    }
}

fn write_inner(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
    dir_sync: bool,
) -> io::Result<()> {
    if existing == Existing::Refuse && fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", path.display()),
        ));
    }
    let tmp = temp_path(path);
    let result = write_temp(&tmp, bytes, mode, true).and_then(|()| place(&tmp, path, existing));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if dir_sync {
        sync_dir(&parent(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn batch_puts_every_file_in_place_or_none_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        create_dir_private(&sub).unwrap();
        let mut b = Batch::new();
        b.add(&sub.join("k"), b"key", 0o600, Existing::Refuse)
            .unwrap();
        b.add(&d.path().join("c"), b"cert", 0o644, Existing::Replace)
            .unwrap();
        assert!(!sub.join("k").exists(), "nothing in place before commit");
        b.commit().unwrap();
        assert_eq!(fs::read(sub.join("k")).unwrap(), b"key");
        assert_eq!(
            fs::metadata(sub.join("k")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(d.path().join("c")).unwrap(), b"cert");
        let mut b = Batch::new();
        b.add(&d.path().join("x"), b"x", 0o644, Existing::Replace)
            .unwrap();
        assert!(b
            .add(&sub.join("k"), b"again", 0o600, Existing::Refuse)
            .is_err());
        drop(b);
        assert!(!d.path().join("x").exists());
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            2,
            "no temp files left: a/ and c"
        );
    }

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
