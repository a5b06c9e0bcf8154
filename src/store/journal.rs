//! Crash consistency of the store: every change that touches more than one file, or a file
//! and the ledger, is one [`Change`], described in `journal.json` before the first file of
//! it is touched and removed after its events are in the ledger. The ledger is the commit
//! point: a change whose events reached the ledger happened, one whose events did not
//! never did.
//!
//! So a kpki killed anywhere in a change leaves a journal, and the next kpki to open the
//! store (under its lock) either completes the change (some of its events are in the
//! ledger, possibly not all: the rest are appended, and what it removes after the ledger
//! is removed) or rolls it back (none are: the files it created go, the files it replaced
//! or removed get their earlier contents back, and its temporary files go). The store then
//! replays from its ledger exactly (`kpki store verify`), no generation exists that the
//! ledger does not know, and nothing is issued twice: what was rolled back was never
//! recorded.
//!
//! The journal is written before any directory or temporary file of the change is made,
//! and is made durable by the change's first flush, before any rename; a change without
//! files (prune) flushes it by itself before its ledger append.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::{self, Existing};
use super::crash;
use super::ledger::{self, Event};
use super::{io_err, StoreError, LEDGER};

/// The journal's name in the store.
pub const JOURNAL: &str = "journal.json";

/// What a change does, relative to the store directory.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Journal {
    /// The events it appends to the ledger, in order.
    events: Vec<Event>,
    /// Files it creates (they did not exist).
    created: Vec<String>,
    /// Files it replaces or removes, with their earlier contents (`None`: absent) and
    /// mode. Only small files that hold nothing secret in clear (pointers, the config, an
    /// age-encrypted identity).
    replaced: Vec<(String, Option<String>, u32)>,
    /// Directories it removes once its events are in the ledger.
    removes: Vec<String>,
}

/// One change to the store, made atomically with respect to crashes. The caller holds
/// the store lock.
pub struct Change {
    dir: PathBuf,
    journal: Journal,
    /// (path, contents, mode, existing) of every file to write.
    files: Vec<(PathBuf, Vec<u8>, u32, Existing)>,
    /// Files to remove (before the ledger append).
    remove: Vec<PathBuf>,
    /// Directories to remove after the ledger append.
    remove_dirs: Vec<PathBuf>,
}

impl Change {
    /// A change to the store at `dir`.
    pub fn new(dir: &Path) -> Change {
        Change {
            dir: dir.to_path_buf(),
            journal: Journal::default(),
            files: Vec::new(),
            remove: Vec::new(),
            remove_dirs: Vec::new(),
        }
    }

    fn rel(&self, path: &Path) -> Result<String, StoreError> {
        path.strip_prefix(&self.dir)
            .ok()
            .and_then(|r| r.to_str())
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: "not a UTF-8 path inside the store".into(),
            })
    }

    /// The earlier contents and mode of a file the change replaces or removes.
    fn before(&self, path: &Path) -> Result<(String, Option<String>, u32), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        atomic::check_target(&self.dir, path).map_err(io_err(path))?;
        let rel = self.rel(path)?;
        match fs::read(path) {
            Ok(b) => {
                let mode = fs::metadata(path)
                    .map_err(io_err(path))?
                    .permissions()
                    .mode()
                    & 0o777;
                let text = String::from_utf8(b).map_err(|_| StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "not text".into(),
                })?;
                Ok((rel, Some(text), mode))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((rel, None, 0o644)),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// A new file, which must not exist (a rollback removes it: it must be this change's).
    pub fn create(&mut self, path: &Path, bytes: Vec<u8>, mode: u32) -> Result<(), StoreError> {
        atomic::check_target(&self.dir, path).map_err(io_err(path))?;
        if fs::symlink_metadata(path).is_ok() {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: "already in the store, though nothing records it".into(),
            });
        }
        self.journal.created.push(self.rel(path)?);
        self.files
            .push((path.to_path_buf(), bytes, mode, Existing::Refuse));
        Ok(())
    }

    /// A file replaced (or created) atomically; a small one without secrets in clear.
    pub fn replace(&mut self, path: &Path, bytes: Vec<u8>, mode: u32) -> Result<(), StoreError> {
        let before = self.before(path)?;
        self.journal.replaced.push(before);
        self.files
            .push((path.to_path_buf(), bytes, mode, Existing::Replace));
        Ok(())
    }

    /// A file removed; a small one without secrets in clear.
    pub fn remove(&mut self, path: &Path) -> Result<(), StoreError> {
        let before = self.before(path)?;
        self.journal.replaced.push(before);
        self.remove.push(path.to_path_buf());
        Ok(())
    }

    /// A directory removed once the change's events are in the ledger (pruning).
    pub fn remove_dir_after(&mut self, path: &Path) -> Result<(), StoreError> {
        atomic::no_links(&self.dir, path).map_err(io_err(path))?;
        self.journal.removes.push(self.rel(path)?);
        self.remove_dirs.push(path.to_path_buf());
        Ok(())
    }

    pub fn event(&mut self, e: Event) {
        self.journal.events.push(e);
    }

    pub fn events(&mut self, e: impl IntoIterator<Item = Event>) {
        self.journal.events.extend(e);
    }

    /// Makes the change: the journal, the directories and files (one batch: two flushes),
    /// the removals, the ledger, then the journal goes. A change that fails half way is
    /// completed or rolled back at once, as a killed one is by the next kpki.
    pub fn commit(self) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        let pending = dir.join(JOURNAL).exists();
        let result = self.apply();
        if result.is_err() && !pending && dir.join(JOURNAL).exists() {
            let _ = recover(&dir);
        }
        result
    }

    fn apply(self) -> Result<(), StoreError> {
        let Change {
            dir,
            journal,
            files,
            remove,
            remove_dirs,
        } = self;
        if journal.events.is_empty() && files.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let jpath = dir.join(JOURNAL);
        let text = serde_json::to_vec(&journal).expect("a journal serializes");
        // With files, the batch's first flush makes the journal durable before any
        // rename; without, it is flushed here, before the ledger is appended to.
        if files.is_empty() {
            atomic::write(&dir, &jpath, &text, 0o644, Existing::Refuse)
        } else {
            atomic::write_unsynced(&dir, &jpath, &text, 0o644, Existing::Refuse)
        }
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => StoreError::Corrupt {
                path: jpath.clone(),
                reason: "an interrupted change is still pending".into(),
            },
            _ => io_err(&jpath)(e),
        })?;
        crash::point();
        if !files.is_empty() {
            let mut batch = atomic::Batch::new(&dir);
            for (path, bytes, mode, existing) in &files {
                let parent = atomic::parent_of(path);
                atomic::create_dirs(&dir, &parent).map_err(io_err(&parent))?;
                batch
                    .add(path, bytes, *mode, *existing)
                    .map_err(io_err(path))?;
            }
            batch.commit().map_err(io_err(&dir))?;
        }
        for p in &remove {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(p)(e)),
            }
            crash::point();
        }
        for p in &remove {
            atomic::sync_dir(&atomic::parent_of(p)).map_err(io_err(p))?;
        }
        let lpath = dir.join(LEDGER);
        ledger::append(&lpath, &journal.events).map_err(io_err(&lpath))?;
        for d in &remove_dirs {
            remove_dir(d)?;
            crash::point();
        }
        fs::remove_file(&jpath).map_err(io_err(&jpath))?;
        crash::point();
        Ok(())
    }
}

fn remove_dir(d: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(d)(e)),
    }
}

/// What [`recover`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Some of the change's events were in the ledger: the rest were appended.
    Completed { events: usize },
    /// None were: the change was undone.
    RolledBack { events: usize },
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovered::Completed { events } => write!(
                f,
                "completed a change a killed kpki left half done ({events} ledger event(s))"
            ),
            Recovered::RolledBack { events } => write!(
                f,
                "rolled back a change a killed kpki left unrecorded ({events} ledger event(s) it never wrote)"
            ),
        }
    }
}

/// How many of `journal`'s first events the ledger ends with.
fn recorded(ledger: &[Event], journal: &[Event]) -> usize {
    (1..=journal.len())
        .rev()
        .find(|&k| ledger.ends_with(&journal[..k]))
        .unwrap_or(0)
}

/// Completes or rolls back the change a killed kpki left in the store at `dir`, if any.
/// The caller holds the store lock.
pub fn recover(dir: &Path) -> Result<Option<Recovered>, StoreError> {
    let jpath = dir.join(JOURNAL);
    let text = match fs::read(&jpath) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A journal being written when kpki was killed: its temporary file.
            atomic::remove_leftovers(dir, 1).map_err(io_err(dir))?;
            return Ok(None);
        }
        Err(e) => return Err(io_err(&jpath)(e)),
    };
    let journal: Journal = serde_json::from_slice(&text).map_err(|e| StoreError::Corrupt {
        path: jpath.clone(),
        reason: e.to_string(),
    })?;
    let inside = |rel: &str| -> Result<PathBuf, StoreError> {
        let p = Path::new(rel);
        if p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            Ok(dir.join(p))
        } else {
            Err(StoreError::Corrupt {
                path: jpath.clone(),
                reason: format!("'{rel}' is not a path inside the store"),
            })
        }
    };
    let lpath = dir.join(LEDGER);
    let ledger = ledger::read(&lpath).map_err(|e| match e {
        ledger::ReadError::Io(source) => StoreError::Io {
            path: lpath.clone(),
            source,
        },
        ledger::ReadError::Damaged(reason) => StoreError::Corrupt {
            path: lpath.clone(),
            reason,
        },
    })?;
    let k = recorded(&ledger.events, &journal.events);
    // Directories holding the change's files: its temporary files go too.
    let mut parents = BTreeSet::new();
    for rel in journal
        .created
        .iter()
        .chain(journal.replaced.iter().map(|(r, ..)| r))
    {
        let p = inside(rel)?;
        atomic::no_links(dir, &p).map_err(io_err(&p))?;
        parents.insert(atomic::parent_of(&p));
    }
    let done = if k > 0 || journal.events.is_empty() {
        // It happened: the rest of its events, then what it removes after them.
        ledger::append(&lpath, &journal.events[k..]).map_err(io_err(&lpath))?;
        for rel in &journal.removes {
            let d = inside(rel)?;
            atomic::no_links(dir, &d).map_err(io_err(&d))?;
            remove_dir(&d)?;
        }
        Recovered::Completed {
            events: journal.events.len() - k,
        }
    } else {
        // It never happened: undo it.
        for rel in &journal.created {
            let p = inside(rel)?;
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        for (rel, before, mode) in &journal.replaced {
            let p = inside(rel)?;
            match before {
                Some(b) => {
                    let parent = atomic::parent_of(&p);
                    atomic::create_dirs(dir, &parent).map_err(io_err(&parent))?;
                    atomic::write(dir, &p, b.as_bytes(), *mode, Existing::Replace)
                        .map_err(io_err(&p))?;
                }
                None => match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&p)(e)),
                },
            }
        }
        Recovered::RolledBack {
            events: journal.events.len(),
        }
    };
    for d in &parents {
        if d.is_dir() {
            atomic::remove_leftovers(d, 1).map_err(io_err(d))?;
        }
    }
    if matches!(done, Recovered::RolledBack { .. }) {
        // Directories the change made and left empty (a generation's, a CA's), deepest
        // first, up to the store itself.
        let mut dirs: Vec<PathBuf> = parents
            .iter()
            .flat_map(|p| p.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
            .filter(|a| a.starts_with(dir) && a != dir)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            // Only when empty: fails otherwise, which is fine.
            let _ = fs::remove_dir(&d);
        }
    }
    for d in parents.iter().filter(|d| d.is_dir()) {
        atomic::sync_dir(d).map_err(io_err(d))?;
    }
    atomic::remove_leftovers(dir, 1).map_err(io_err(dir))?;
    fs::remove_file(&jpath).map_err(io_err(&jpath))?;
    atomic::sync_dir(dir).map_err(io_err(dir))?;
    Ok(Some(done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event::Retired {
            at: time::OffsetDateTime::UNIX_EPOCH,
            what: n.to_string(),
        }
    }

    #[test]
    fn counts_the_journal_events_the_ledger_ends_with() {
        let j = [ev(3), ev(4), ev(5)];
        assert_eq!(recorded(&[ev(1), ev(2)], &j), 0);
        assert_eq!(recorded(&[ev(1), ev(3)], &j), 1);
        assert_eq!(recorded(&[ev(1), ev(3), ev(4)], &j), 2);
        assert_eq!(recorded(&[ev(3), ev(4), ev(5)], &j), 3);
        assert_eq!(recorded(&[], &j), 0);
    }
}
