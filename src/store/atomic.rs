//! The one way kpki writes a file: a temp file in the same directory, opened with its
//! final mode, written, fsynced, then renamed (or linked, when the target must not
//! exist yet), and the directory fsynced. A crash leaves the old file or the new one,
//! never half of either, and a key is never briefly world-readable.
//!
//! Every write names the directory it belongs under (the store, a staged or exported
//! tree, the directory of a single output file): no symbolic link may stand there or on
//! the way down to the file, and the file itself must be a regular file or absent, so a
//! planted link never redirects a write. Temporary files are created exclusively
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::crash;

/// How to treat an existing file at the target path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Fail with `AlreadyExists`.
    Refuse,
    /// Replace it atomically.
    Replace,
}

/// Why kpki refused to write somewhere: a symbolic link on the way, or something other
/// than a regular file where a file goes. Carried inside an [`io::Error`].
#[derive(Debug)]
pub struct Refused {
    pub path: PathBuf,
    why: &'static str,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path.display(), self.why)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// A symbolic link (rather than a special file) was refused.
    pub fn is_link(&self) -> bool {
        self.why == LINK
    }
}

const LINK: &str = "is a symbolic link; kpki does not write through one";

fn refused(path: &Path, why: &'static str) -> io::Error {
    io::Error::other(Refused {
        path: path.to_path_buf(),
        why,
    })
}

/// Whether an I/O error is kpki refusing a link or a special file (for the hint).
pub fn is_refused(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<Refused>())
}

/// Refuses a symbolic link at `root` or at any component between it and `path` (`path`
/// itself included). A `path` outside `root` is checked from its own first component.
pub fn no_links(root: &Path, path: &Path) -> io::Result<()> {
    let check = |p: &Path| match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(p, LINK)),
        _ => Ok(()),
    };
    let (mut cur, rest) = match path.strip_prefix(root) {
        Ok(rest) => {
            if !root.as_os_str().is_empty() {
                check(root)?;
            }
            (root.to_path_buf(), rest)
        }
        Err(_) => (PathBuf::new(), path),
    };
    for c in rest.components() {
        cur.push(c);
        if matches!(c, std::path::Component::Normal(_)) {
            check(&cur)?;
        }
    }
    Ok(())
}

/// The checks before a file is written at `path` under `root`: no link on the way, and
/// at `path` nothing or a regular file.
pub fn check_target(root: &Path, path: &Path) -> io::Result<()> {
    no_links(root, path)?;
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(refused(
            path,
            "is not a regular file; kpki writes only regular files",
        )),
        _ => Ok(()),
    }
}

/// The directory that holds a single file kpki writes (an identity, an audit report): its
/// parent, or `.`.
pub fn parent_of(path: &Path) -> PathBuf {
    parent(path)
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
                .is_some_and(gone)
        })
        .map(|e| e.into_path())
        .collect()
}

/// Removes kpki's temporary files that a process which is gone left under `dir`, at most
/// `max_depth` levels down (1: `dir`'s own files), not following links. Returns how many.
pub fn remove_leftovers(dir: &Path, max_depth: usize) -> io::Result<usize> {
    let mut n = 0;
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .max_depth(max_depth)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
    {
        if e.file_name()
            .to_str()
            .and_then(temp_owner)
            .is_some_and(gone)
        {
            match fs::remove_file(e.path()) {
                Ok(()) => n += 1,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(n)
}

/// Whether the process that made a temporary file is gone (not this one, not running).
fn gone(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// fsyncs a directory so a rename or link in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes every directory from `top` down to `dir` exist with exactly `mode`, creating
/// what is missing and correcting what differs; the directory that holds `top` is created
/// 0700 where it does not exist, and is no link. For trees laid out like a node's `/`:
/// `rsync -a tree/ /` copies directory modes, so a staged `etc/` must be 0755 like the
/// node's own; the files inside keep their modes (keys 0600). A symbolic link on the way
/// is refused.
pub fn tree_dirs(top: &Path, dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let out = parent(top);
    create_dirs(&out, &out)?;
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
        let m = fs::symlink_metadata(&d)?;
        if m.file_type().is_symlink() {
            return Err(refused(&d, LINK));
        }
        if m.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(&d, fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

/// Makes `dir` exist under `root`: `root` and its parents are created 0700 where they do
/// not exist (the place the user named), then each directory from `root` down to `dir`,
/// 0700; a symbolic link at `root` or below it is refused, not followed.
pub fn create_dirs(root: &Path, dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.mode(0o700);
    if !root.as_os_str().is_empty() {
        if fs::symlink_metadata(root).is_err() {
            b.recursive(true).create(root)?;
            b.recursive(false);
        }
        no_links(root, root)?;
    }
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut cur = if dir.starts_with(root) {
        root.to_path_buf()
    } else {
        PathBuf::new()
    };
    for c in rel.components() {
        cur.push(c);
        if !matches!(c, std::path::Component::Normal(_)) {
            continue;
        }
        match b.create(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let m = fs::symlink_metadata(&cur)?;
        if m.file_type().is_symlink() {
            return Err(refused(&cur, LINK));
        }
        if !m.is_dir() {
            return Err(refused(&cur, "is not a directory"));
        }
    }
    Ok(())
}

/// Creates `dir` (and missing parents) 0700, refusing a symbolic link at it.
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Ok(m) = fs::symlink_metadata(dir) {
        if m.file_type().is_symlink() {
            return Err(refused(dir, LINK));
        }
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` under `root` atomically with `mode`; the parent directory
/// must exist. A symbolic link at `root`, on the way or at `path`, or something other
/// than a regular file at `path`, is refused.
pub fn write(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> io::Result<()> {
    check_target(root, path)?;
    write_inner(path, bytes, mode, existing, true, true)
}

/// [`write`] without the flushes: the file is in place, whole, when this returns, but
/// durable only with the next flush of its file system (such as a [`Batch`]'s first).
pub fn write_unsynced(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> io::Result<()> {
    check_target(root, path)?;
    write_inner(path, bytes, mode, existing, false, false)
}

/// Several files written as one step, for commands that write many (a whole cluster's
/// issuance, a staged tree). Every temp file is written first, then one `syncfs` per
/// file system makes all their data durable, then each is renamed (or linked) into place
/// in the order added, then one more `syncfs` makes the new names durable. Each file is
/// still replaced atomically; the batch costs two flushes instead of two per file, and
/// directories created along the way are flushed too.
///
/// Dropping an uncommitted batch removes its temp files.
pub struct Batch {
    root: PathBuf,
    items: Vec<(PathBuf, PathBuf, Existing)>,
}

impl Batch {
    /// A batch of files under `root`: no symbolic link there or on the way down to a file.
    pub fn new(root: &Path) -> Batch {
        Batch {
            root: root.to_path_buf(),
            items: Vec::new(),
        }
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
        check_target(&self.root, path)?;
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
        crash::point();
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
            crash::point();
            for (i, (path, tmp, existing)) in items.iter().enumerate() {
                // Again just before the rename: nothing swapped a link in meanwhile.
                if let Err(e) =
                    check_target(&self.root, path).and_then(|()| place(tmp, path, *existing))
                {
                    for (_, t, _) in &items[i..] {
                        let _ = fs::remove_file(t);
                    }
                    return Err(e);
                }
                crash::point();
            }
            flush(&roots)?;
            crash::point();
            Ok(())
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
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
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
    sync: bool,
    dir_sync: bool,
) -> io::Result<()> {
    if existing == Existing::Refuse && fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", path.display()),
        ));
    }
    let tmp = temp_path(path);
    let result = write_temp(&tmp, bytes, mode, sync).and_then(|()| {
        crash::point();
        place(&tmp, path, existing)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    crash::point();
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
        create_dirs(d.path(), &sub).unwrap();
        let mut b = Batch::new(d.path());
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
        let mut b = Batch::new(d.path());
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
        write(d.path(), &p, b"one", 0o600, Existing::Refuse).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = write(d.path(), &p, b"two", 0o600, Existing::Refuse).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write(d.path(), &p, b"three", 0o644, Existing::Replace).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left behind"
        );
    }

    #[test]
    fn refuses_links_on_the_way_and_at_the_target_and_special_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let elsewhere = d.path().join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        create_dirs(&root, &root.join("a")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("link")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("f"), root.join("a/f")).unwrap();
        for (path, existing) in [
            (root.join("link/f"), Existing::Replace),
            (root.join("link/f"), Existing::Refuse),
            (root.join("a/f"), Existing::Replace),
            (root.join("a/f"), Existing::Refuse),
        ] {
            let e = write(&root, &path, b"k", 0o600, existing).unwrap_err();
            assert!(is_refused(&e), "{}: {e}", path.display());
            let mut b = Batch::new(&root);
            assert!(b.add(&path, b"k", 0o600, existing).is_err());
        }
        let e = create_dirs(&root, &root.join("link/sub")).unwrap_err();
        assert!(is_refused(&e), "{e}");
        let e = tree_dirs(&root.join("link"), &root.join("link/etc"), 0o755).unwrap_err();
        assert!(is_refused(&e), "{e}");
        // The root itself may not be a link either.
        let e = write(
            &root.join("link"),
            &root.join("link/g"),
            b"k",
            0o600,
            Existing::Replace,
        )
        .unwrap_err();
        assert!(is_refused(&e), "{e}");
        // Nothing other than a regular file is replaced.
        let e = write(d.path(), &root, b"k", 0o600, Existing::Replace).unwrap_err();
        assert!(is_refused(&e), "{e}");
        assert_eq!(
            fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "nothing written through"
        );
        assert!(root
            .join("a/f")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
