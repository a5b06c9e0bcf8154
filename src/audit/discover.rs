//! The parallel walk: finding the files, reading each once, in parallel.
//!
//! Auditing is mostly opening and reading small files, so the walk itself is spread
//! over the cores: a shared LIFO queue holds directories still to list and batches of
//! files still to read, and `threads` workers take from it until it is empty and no
//! worker is busy. A directory of 100 000 files is cut into batches, so one big
//! directory keeps every core busy too. Order does not matter here: the report sorts.
//!
//! Symbolic links are followed, but never in circles: a link to a directory is not
//! followed when the directory is its own ancestor (a loop, reported) or lies inside a
//! walked root anyway (it is audited under its real path). The kernel's pseudo file
//! systems (proc, sysfs, debugfs, cgroup, …) are told by their `statfs` type, wherever
//! they are mounted or a link leads, and never walked. Every error about one entry
//! (unreadable, vanished, a loop, a dangling link, a FIFO named like a certificate)
//! becomes a finding and the walk goes on.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use super::scan::{self, Cache, Context, FileScan, RawChain, Scanner};
use super::{AuditConfig, AuditedCert, Finding, FindingKind, Source};
use crate::material::file::{self as material_file, MAX_FILE};

/// How many files one queue item carries.
const BATCH: usize = 64;
/// How deep symlinked directories may nest, a last guard against pathological trees.
const MAX_DEPTH: usize = 64;
/// Files up to this size are remembered by content (per worker), up to
/// `SEEN_BYTES` in all: an identical copy (the same CA file on every node, a
/// certificate staged, exported and installed) is then not decoded again.
const SEEN_FILE: usize = 16 * 1024;
const SEEN_BYTES: usize = 8 * 1024 * 1024;

/// A file's certificates and how each chains.
type Scanned = (Vec<AuditedCert>, Vec<RawChain>);

/// Files already scanned by one worker, by their bytes, when they held certificates
/// only (no keys, whose mode must be read, and no findings, which name their path).
/// Where copies are rare it turns itself off, so hashing every file costs nothing.
#[derive(Default)]
struct Seen {
    files: HashMap<Box<[u8]>, Scanned>,
    bytes: usize,
    lookups: usize,
    hits: usize,
    off: bool,
}

impl Seen {
    fn get(&mut self, bytes: &[u8]) -> Option<&Scanned> {
        if self.off || bytes.len() > SEEN_FILE {
            return None;
        }
        self.lookups += 1;
        // After a fair sample, keep it only if at least one file in ten was a copy.
        if self.lookups == 4096 && self.hits < 400 {
            self.off = true;
            self.files = HashMap::new();
            return None;
        }
        let found = self.files.get(bytes);
        self.hits += usize::from(found.is_some());
        found
    }

    fn put(&mut self, bytes: &[u8], scanned: &FileScan) {
        if self.off
            || bytes.len() > SEEN_FILE
            || self.bytes + bytes.len() > SEEN_BYTES
            || scanned.certs.is_empty()
            || !scanned.keys.is_empty()
            || !scanned.findings.is_empty()
        {
            return;
        }
        self.bytes += bytes.len();
        self.files.insert(
            bytes.into(),
            (scanned.certs.clone(), scanned.chains.clone()),
        );
    }
}

/// What the walk found.
pub(crate) struct Walked {
    pub files: Vec<FileScan>,
    pub findings: Vec<Finding>,
    pub sources: Vec<Source>,
}

enum Job {
    Dir {
        path: PathBuf,
        depth: usize,
    },
    Files {
        files: Vec<(PathBuf, Entry)>,
        depth: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A regular file as listed.
    File,
    /// A symbolic link, resolved when processed.
    Link,
    /// A file named explicitly (a root or a referenced file): follow, and report missing.
    Named,
}

struct Queue {
    state: Mutex<(Vec<Job>, usize)>,
    cond: Condvar,
}

impl Queue {
    fn push(&self, job: Job) {
        self.state.lock().expect("queue lock").0.push(job);
        self.cond.notify_one();
    }

    /// The next job, or `None` when the queue is empty and no worker can add to it.
    fn pop(&self) -> Option<Job> {
        let mut s = self.state.lock().expect("queue lock");
        loop {
            if let Some(job) = s.0.pop() {
                s.1 += 1;
                return Some(job);
            }
            if s.1 == 0 {
                return None;
            }
            s = self.cond.wait(s).expect("queue lock");
        }
    }

    fn done(&self) {
        let mut s = self.state.lock().expect("queue lock");
        s.1 -= 1;
        if s.1 == 0 && s.0.is_empty() {
            self.cond.notify_all();
        }
    }
}

struct Worker<'a> {
    ctx: &'a Context<'a>,
    queue: &'a Queue,
    /// Canonical forms of the walked roots.
    roots: &'a [PathBuf],
    /// The read buffer, reused for every file (its length is its capacity).
    buf: Vec<u8>,
    cache: Cache,
    seen: Seen,
    files: Vec<FileScan>,
    findings: Vec<Finding>,
}

/// Walks the roots and reads the referenced files of `cfg`, in parallel.
pub(crate) fn walk(cfg: &AuditConfig) -> Walked {
    let ctx = Context::new(cfg);
    let queue = Queue {
        state: Mutex::new((Vec::new(), 0)),
        cond: Condvar::new(),
    };
    let mut findings = Vec::new();
    let mut sources = Vec::new();
    let mut canonical = Vec::new();
    let mut named = Vec::new();
    for root in &cfg.roots {
        match fs::metadata(&root.path) {
            Ok(m) if m.is_dir() => {
                sources.push(Source {
                    kind: "file",
                    path: root.path.clone(),
                    up: true,
                });
                if let Ok(c) = fs::canonicalize(&root.path) {
                    canonical.push(c);
                }
                queue.push(Job::Dir {
                    path: root.path.clone(),
                    depth: 0,
                });
            }
            Ok(_) => {
                sources.push(Source {
                    kind: "file",
                    path: root.path.clone(),
                    up: true,
                });
                named.push((root.path.clone(), Entry::Named));
            }
            Err(e) => {
                if root.required {
                    let kind = if e.kind() == io::ErrorKind::NotFound {
                        FindingKind::Missing
                    } else {
                        FindingKind::Unreadable
                    };
                    findings.push(Finding::new(
                        Some(&root.path),
                        kind,
                        format!("cannot audit it: {}", plain(&e)),
                    ));
                    sources.push(Source {
                        kind: "file",
                        path: root.path.clone(),
                        up: false,
                    });
                }
            }
        }
    }
    if let Some(tree) = &cfg.configs {
        sources.push(Source {
            kind: "configs",
            path: tree.clone(),
            up: true,
        });
    }
    // Referenced files: read as named. A missing one is the config verifier's finding.
    for r in &cfg.referenced {
        if fs::symlink_metadata(&r.path).is_ok() {
            named.push((r.path.clone(), Entry::Named));
        }
    }
    for chunk in named.chunks(BATCH) {
        queue.push(Job::Files {
            files: chunk.to_vec(),
            depth: 0,
        });
    }
    let threads = cfg.threads.max(1);
    let results: Vec<(Vec<FileScan>, Vec<Finding>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (ctx, queue, roots) = (&ctx, &queue, &canonical[..]);
                s.spawn(move || {
                    let mut w = Worker {
                        ctx,
                        queue,
                        roots,
                        buf: vec![0; 64 * 1024],
                        cache: Cache::default(),
                        seen: Seen::default(),
                        files: Vec::new(),
                        findings: Vec::new(),
                    };
                    while let Some(job) = queue.pop() {
                        match job {
                            Job::Dir { path, depth } => w.list(&path, depth),
                            Job::Files { files, depth } => {
                                for (path, entry) in files {
                                    w.file_at(path, entry, depth);
                                }
                            }
                        }
                        queue.done();
                    }
                    (w.files, w.findings)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("audit worker panicked"))
            .collect()
    });
    let mut files = Vec::new();
    for (f, mut fi) in results {
        files.extend(f);
        findings.append(&mut fi);
    }
    Walked {
        files,
        findings,
        sources,
    }
}

/// An I/O error without the "(os error N)" tail.
fn plain(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it does not exist".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

fn is_loop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

impl Worker<'_> {
    fn finding(&mut self, path: &Path, kind: FindingKind, message: String) {
        self.findings.push(Finding::new(Some(path), kind, message));
    }

    fn list(&mut self, dir: &Path, depth: usize) {
        // Pseudo file systems (proc, sysfs, …) hold no certificates and some never end:
        // told by their type, wherever they are mounted or a link leads.
        if let Some(fs) = material_file::pseudo_fs(dir) {
            if depth == 0 {
                self.finding(
                    dir,
                    FindingKind::Unreadable,
                    format!("is on {fs}, a pseudo file system that holds no certificates; not walked: name the directories that hold them"),
                );
            }
            return;
        }
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.finding(
                    dir,
                    FindingKind::Vanished,
                    "directory disappeared during the audit".into(),
                );
                return;
            }
            Err(e) => {
                self.finding(
                    dir,
                    FindingKind::Unreadable,
                    format!("cannot list directory: {}", plain(&e)),
                );
                return;
            }
        };
        let mut batch = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.finding(
                        dir,
                        FindingKind::Unreadable,
                        format!("cannot list directory: {}", plain(&e)),
                    );
                    break;
                }
            };
            let path = entry.path();
            let ft = match entry.file_type() {
                Ok(t) => t,
                Err(_) => continue,
            };
            if ft.is_dir() {
                self.queue.push(Job::Dir {
                    path,
                    depth: depth + 1,
                });
            } else if ft.is_file() {
                batch.push((path, Entry::File));
            } else if ft.is_symlink() {
                batch.push((path, Entry::Link));
            } else {
                self.special(&path, ft);
            }
            if batch.len() == BATCH {
                self.queue.push(Job::Files {
                    files: std::mem::take(&mut batch),
                    depth,
                });
            }
        }
        // The last batch is read right here: no queue round trip for small directories.
        for (path, e) in batch {
            self.file_at(path, e, depth);
        }
    }

    /// A FIFO, socket or device: never opened; reported when named like a certificate.
    fn special(&mut self, path: &Path, ft: fs::FileType) {
        if !scan::named_like_cert(path) {
            return;
        }
        let what = material_file::kind_of(ft);
        self.finding(
            path,
            FindingKind::Unreadable,
            format!("is {what}, not a regular file; not read"),
        );
    }

    fn file_at(&mut self, path: PathBuf, entry: Entry, depth: usize) {
        if entry != Entry::File {
            // Resolve the link (or named path): a file, a directory to walk, or trouble.
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(m) if m.is_dir() => {
                    if entry == Entry::Named {
                        self.queue.push(Job::Dir { path, depth: 0 });
                    } else {
                        self.linked_dir(path, depth);
                    }
                    return;
                }
                Ok(m) => {
                    self.special(&path, m.file_type());
                    return;
                }
                Err(e) if is_loop(&e) => {
                    self.finding(
                        &path,
                        FindingKind::SymlinkLoop,
                        "symbolic link loop; not followed".into(),
                    );
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if fs::symlink_metadata(&path).is_ok() {
                        let to = fs::read_link(&path)
                            .map(|t| t.display().to_string())
                            .unwrap_or_default();
                        self.finding(
                            &path,
                            FindingKind::BrokenSymlink,
                            format!("symbolic link to {to}, which does not exist"),
                        );
                    } else {
                        self.finding(
                            &path,
                            FindingKind::Vanished,
                            "disappeared during the audit".into(),
                        );
                    }
                    return;
                }
                Err(e) => {
                    self.finding(&path, FindingKind::Unreadable, plain(&e));
                    return;
                }
            }
        }
        // A file listed as regular is opened without following a link: one there now
        // took its place after the listing.
        self.read(path, entry == Entry::File);
    }

    /// A symbolic link to a directory, met during the walk.
    fn linked_dir(&mut self, path: PathBuf, depth: usize) {
        let target = match fs::canonicalize(&path) {
            Ok(t) => t,
            Err(e) => {
                self.finding(&path, FindingKind::Unreadable, plain(&e));
                return;
            }
        };
        let parent = path
            .parent()
            .and_then(|p| fs::canonicalize(p).ok())
            .unwrap_or_default();
        if parent.starts_with(&target) {
            self.finding(
                &path,
                FindingKind::SymlinkLoop,
                format!(
                    "symbolic link to {}, a directory it is inside of; not followed",
                    target.display()
                ),
            );
            return;
        }
        // Inside a walked root: audited under its real path already.
        if self.roots.iter().any(|r| target.starts_with(r)) {
            return;
        }
        if depth >= MAX_DEPTH {
            self.finding(
                &path,
                FindingKind::SymlinkLoop,
                format!("more than {MAX_DEPTH} levels of linked directories; not followed"),
            );
            return;
        }
        self.queue.push(Job::Dir {
            path,
            depth: depth + 1,
        });
    }

    /// Opens and reads one file, then scans it.
    ///
    /// Three system calls for the usual small file: open, one read into the reused
    /// buffer (a short read is the end of a regular file), close. The file's metadata
    /// is read only when it is large, or when it holds a private key (for its mode).
    fn read(&mut self, path: PathBuf, listed_regular: bool) {
        // O_NONBLOCK: a FIFO that took a file's place cannot block the worker (for regular
        // files the flag does nothing).
        let mut flags = rustix::fs::OFlags::NONBLOCK;
        if listed_regular {
            flags |= rustix::fs::OFlags::NOFOLLOW;
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(&path);
        let mut file: File = match file {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.finding(
                    &path,
                    FindingKind::Vanished,
                    "disappeared during the audit".into(),
                );
                return;
            }
            Err(e) if listed_regular && is_loop(&e) => {
                self.finding(
                    &path,
                    FindingKind::Vanished,
                    "replaced by a symbolic link during the audit; not followed".into(),
                );
                return;
            }
            Err(e) => {
                self.finding(
                    &path,
                    FindingKind::Unreadable,
                    format!("cannot open: {}", plain(&e)),
                );
                return;
            }
        };
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                // A full buffer: a big file, or something that is not a regular file.
                match file.metadata() {
                    Ok(m) if !m.is_file() => {
                        self.special(&path, m.file_type());
                        return;
                    }
                    Ok(m) if m.len() > MAX_FILE => {
                        if scan::named_like_cert(&path) {
                            self.finding(
                                &path,
                                FindingKind::TooLarge,
                                format!(
                                    "{} bytes: too large for a certificate file; not read",
                                    m.len()
                                ),
                            );
                        }
                        return;
                    }
                    _ => {}
                }
                if len as u64 > MAX_FILE {
                    return;
                }
                self.buf.resize(len * 2, 0);
            }
            match file.read(&mut self.buf[len..]) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if len < self.buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.finding(
                        &path,
                        FindingKind::Unreadable,
                        format!("cannot read: {}", plain(&e)),
                    );
                    return;
                }
            }
        }
        let bytes = &self.buf[..len];
        if let Some((certs, chains)) = self.seen.get(bytes) {
            let mut copy = FileScan::new(path);
            copy.certs = certs
                .iter()
                .map(|c| AuditedCert {
                    path: Arc::clone(&copy.path),
                    ..c.clone()
                })
                .collect();
            copy.chains.clone_from(chains);
            self.files.push(copy);
            return;
        }
        let mut scanned = FileScan::new(path);
        Scanner {
            ctx: self.ctx,
            cache: &mut self.cache,
        }
        .scan(&mut scanned, bytes);
        self.seen.put(bytes, &scanned);
        if !scanned.keys.is_empty() {
            scanned.mode = file.metadata().map(|m| m.mode() & 0o7777).unwrap_or(0);
        }
        drop(file);
        if !scanned.is_empty() {
            self.files.push(scanned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuditConfig {
        AuditConfig::for_tests()
    }

    /// A file listed by the directory walk that is gone by the time it is opened.
    #[test]
    fn a_file_that_vanishes_after_listing_is_a_finding() {
        let cfg = config();
        let ctx = Context::new(&cfg);
        let queue = Queue {
            state: Mutex::new((Vec::new(), 0)),
            cond: Condvar::new(),
        };
        let mut w = Worker {
            ctx: &ctx,
            queue: &queue,
            roots: &[],
            buf: vec![0; 64],
            cache: Cache::default(),
            seen: Seen::default(),
            files: Vec::new(),
            findings: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.crt");
        w.file_at(gone.clone(), Entry::File, 0);
        assert_eq!(w.findings.len(), 1);
        assert_eq!(w.findings[0].kind, FindingKind::Vanished);
        assert_eq!(w.findings[0].path.as_deref(), Some(gone.as_path()));
        // A file bigger than the buffer is read whole (the buffer grows).
        let big = dir.path().join("big.txt");
        std::fs::write(&big, vec![b'x'; 1000]).unwrap();
        w.file_at(big, Entry::File, 0);
        assert_eq!(w.buf.len(), 1024);
        assert_eq!(w.findings.len(), 1);
    }

    #[test]
    fn the_walk_covers_nested_directories_on_every_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            let d = dir.path().join(format!("a{}/b{}", i % 7, i % 13));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("junk{i}.crt")), b"\x01junk").unwrap();
        }
        for threads in [1, 2, 5] {
            let mut cfg = config();
            cfg.threads = threads;
            cfg.roots = vec![crate::audit::Root {
                path: dir.path().to_path_buf(),
                required: true,
                extra: false,
            }];
            let w = walk(&cfg);
            assert_eq!(w.files.len(), 300, "{threads} threads");
            assert!(w.files.iter().all(|f| f.findings.len() == 1));
            assert!(w.sources[0].up);
        }
    }
}
