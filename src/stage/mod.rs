//! The staged tree: `DIR/<tree>/<absolute install path>` for every file a node gets (CA,
//! certificates, keys, secrets, configs, units), each written with its install mode, and a
//! manifest of them all installed at [`MANIFEST`] in the same tree.
//!
//! This layout is the contract with distribution: copying `DIR/<node>/` onto the node's
//! `/` and applying the manifest's owners and groups installs it. The manifest records
//! mode, owner, group, kind and SHA-256 of every file; owners are recorded only (a
//! staging host need not have an `etcd` user), modes are also set on the staged files.
//!
//! Writing is idempotent: a file whose bytes and mode are already right is not touched,
//! so a second `kpki apply` rewrites nothing. Files that an earlier manifest listed and
//! the new one does not are removed; nothing else in the tree is ever deleted. Every
//! write goes through [`crate::store::atomic`]; no component of a staged path may be a
//! symbolic link, so a planted link cannot redirect a key outside the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::atomic::{self, Existing};

mod desired;

pub use desired::{config_file, desired, verify, Notes, Source, Trees};

/// Where the manifest is installed on the node (and so where it sits in the tree).
pub const MANIFEST: &str = "/var/lib/kpki/manifest.json";
const FORMAT: u32 = 1;
/// Directories inside a staged tree are the node's own system directories (`etc`,
/// `etc/kubernetes`, …): 0755 there, so copying the tree onto `/` changes none of them.
/// The directory that holds the trees (`OUT`) is 0700; keys inside are 0600.
pub const TREE_DIR_MODE: u32 = 0o755;

/// What a staged file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Config,
    Cert,
    Key,
    Ca,
    Public,
    /// A config that holds a secret key (kube-apiserver's EncryptionConfiguration).
    Secret,
    Manifest,
    /// A key that stays on its node (its certificate was signed from the node's CSR):
    /// listed in the manifest so `render --check` and distribution expect it there, but
    /// never staged. A file found at its path in the tree is a stale key and is removed.
    #[serde(rename = "on-node")]
    OnNode,
}

/// One file to stage.
pub struct StagedFile {
    /// Absolute install path.
    pub path: String,
    /// The bytes; `None` when they are not known yet (a certificate `kpki plan` has not
    /// issued). Only [`plan`] accepts `None`.
    pub contents: Option<Zeroizing<Vec<u8>>>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub kind: FileKind,
    /// The profile or template it comes from.
    pub source: String,
}

/// One line of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    /// Octal, as `chmod` takes it: `"0600"`.
    pub mode: String,
    pub owner: String,
    pub group: String,
    pub kind: FileKind,
    pub source: String,
    pub sha256: String,
}

/// The manifest of one tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The tree (node name, `_cluster` or `_loadbalancer`).
    pub tree: String,
    /// Sorted by path; the manifest itself is not listed.
    pub files: Vec<Entry>,
}

impl Manifest {
    /// The mode of an entry as a number.
    pub fn mode_of(e: &Entry) -> Option<u32> {
        u32::from_str_radix(&e.mode, 8).ok()
    }
}

/// Why staging failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{tree}:{path} would get different contents from {first} and from {second}")]
    Conflict {
        tree: String,
        path: String,
        first: String,
        second: String,
    },
    #[error("{tree}:{path} is owned by {first} for one profile and by {second} for another")]
    OwnerConflict {
        tree: String,
        path: String,
        first: String,
        second: String,
    },
    #[error("'{0}' is not an absolute path without '.' or '..'")]
    BadPath(String),
    #[error("{0} is a symbolic link; kpki does not stage through links")]
    Symlink(PathBuf),
    #[error("{0} can be written by anyone; kpki does not stage keys into it")]
    WorldWritable(PathBuf),
    #[error("{path} is not a kpki manifest: {reason}")]
    BadManifest { path: PathBuf, reason: String },
}

impl StageError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            StageError::Conflict { .. } | StageError::OwnerConflict { .. } => {
                "give the two profiles different install paths (`kpki profiles show NAME`)".into()
            }
            StageError::Symlink(_) => {
                "remove the link, or name the real directory (--out $(realpath DIR))".into()
            }
            StageError::WorldWritable(_) => {
                "stage into a directory only you can write, such as ./staged".into()
            }
            StageError::BadManifest { .. } => {
                "stage into an empty --out directory, or remove the damaged manifest".into()
            }
            _ => return None,
        })
    }
}

/// What staging does (or would do) to one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Create,
    Update,
    /// Same bytes, different mode.
    Mode,
    Unchanged,
    Remove,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Mode => "chmod",
            Change::Unchanged => "unchanged",
            Change::Remove => "remove",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StageError + '_ {
    move |source| StageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file under `root` for an install path, refusing `..`, `.` and relative paths.
/// Touches nothing on disk (see [`place_under`] for the check against links).
pub fn target(root: &Path, install: &str) -> Result<PathBuf, StageError> {
    let p = Path::new(install);
    let mut rel = PathBuf::new();
    let mut comps = p.components();
    if comps.next() != Some(Component::RootDir) {
        return Err(StageError::BadPath(install.into()));
    }
    for c in comps {
        match c {
            Component::Normal(n) => rel.push(n),
            _ => return Err(StageError::BadPath(install.into())),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(StageError::BadPath(install.into()));
    }
    Ok(root.join(rel))
}

/// The file under `root` for an install path, refusing `..`, relative paths, and a
/// symbolic link at `root` or anywhere on the way: where `issue --out` and `sign --out`
/// write, as `apply` does.
pub fn place_under(root: &Path, install: &str) -> Result<PathBuf, StageError> {
    let p = target(root, install)?;
    no_links(root, &p)?;
    Ok(p)
}

/// Refuses to stage into a directory anyone may write (`/tmp` itself, a 0777 directory):
/// another user could plant or swap files beside the keys. Checks the tree's directory
/// and the one that holds it, where they exist.
pub fn safe_out(root: &Path) -> Result<(), StageError> {
    if let Some(out) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        safe_dir(out)?;
    }
    safe_dir(root)
}

/// Refuses a symbolic link anywhere in `dir` (`dir` included): kpki makes none in the
/// trees it stages or exports, so one found there was planted. Checked before anything is
/// issued, so a command refused here has changed nothing.
pub fn no_links_in(dir: &Path) -> Result<(), StageError> {
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        match e {
            Ok(e) if e.path_is_symlink() => {
                return Err(StageError::Symlink(e.into_path()));
            }
            Ok(_) => {}
            Err(e) if e.io_error().map(|i| i.kind()) == Some(std::io::ErrorKind::NotFound) => {}
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                return Err(StageError::Io {
                    path,
                    source: e.into(),
                });
            }
        }
    }
    Ok(())
}

/// Refuses `dir` when it is a symbolic link, or exists and anyone may write it.
pub fn safe_dir(dir: &Path) -> Result<(), StageError> {
    if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(StageError::Symlink(dir.to_path_buf()));
    }
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() && m.permissions().mode() & 0o002 != 0 => {
            Err(StageError::WorldWritable(dir.to_path_buf()))
        }
        _ => Ok(()),
    }
}

/// Refuses a symbolic link at `root` or anywhere between it and `file`.
fn no_links(root: &Path, file: &Path) -> Result<(), StageError> {
    atomic::no_links(root, file).map_err(|e| staging(file, e))
}

/// An I/O error of staging: a refused link or special file says so, naming it.
fn staging(path: &Path, e: std::io::Error) -> StageError {
    match e
        .get_ref()
        .and_then(|i| i.downcast_ref::<atomic::Refused>())
    {
        Some(r) if r.is_link() => StageError::Symlink(r.path.clone()),
        _ => io(path)(e),
    }
}

/// The directory that holds a tree (`OUT`).
fn out_of(root: &Path) -> PathBuf {
    atomic::parent_of(root)
}

/// Merges files that several profiles put at one path (a shared `ca.crt`): the contents
/// must be equal; the narrowest mode wins; a daemon owner (not root) wins over root.
pub fn merge(tree: &str, files: Vec<StagedFile>) -> Result<Vec<StagedFile>, StageError> {
    let mut by_path: BTreeMap<String, StagedFile> = BTreeMap::new();
    for f in files {
        match by_path.get_mut(&f.path) {
            None => {
                by_path.insert(f.path.clone(), f);
            }
            Some(old) => {
                let same = match (&old.contents, &f.contents) {
                    (Some(a), Some(b)) => a[..] == b[..],
                    _ => true,
                };
                if !same || old.kind != f.kind {
                    return Err(StageError::Conflict {
                        tree: tree.into(),
                        path: f.path,
                        first: old.source.clone(),
                        second: f.source,
                    });
                }
                for (mine, theirs) in [(&mut old.owner, &f.owner), (&mut old.group, &f.group)] {
                    if mine != theirs {
                        if mine == "root" {
                            *mine = theirs.clone();
                        } else if theirs != "root" {
                            return Err(StageError::OwnerConflict {
                                tree: tree.into(),
                                path: f.path.clone(),
                                first: mine.clone(),
                                second: theirs.clone(),
                            });
                        }
                    }
                }
                old.mode &= f.mode;
                if old.contents.is_none() {
                    old.contents = f.contents;
                }
                let mut sources: BTreeSet<&str> = old.source.split(',').collect();
                sources.insert(&f.source);
                old.source = sources.into_iter().collect::<Vec<_>>().join(",");
            }
        }
    }
    Ok(by_path.into_values().collect())
}

pub(crate) fn sha256(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The manifest of merged, fully known files.
pub fn manifest(tree: &str, files: &[StagedFile]) -> Manifest {
    let mut entries: Vec<Entry> = files
        .iter()
        .map(|f| Entry {
            path: f.path.clone(),
            mode: format!("{:04o}", f.mode),
            owner: f.owner.clone(),
            group: f.group.clone(),
            kind: f.kind,
            source: f.source.clone(),
            sha256: f.contents.as_ref().map_or_else(String::new, |c| sha256(c)),
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest {
        format: FORMAT,
        tree: tree.into(),
        files: entries,
    }
}

fn manifest_file(m: &Manifest) -> StagedFile {
    let mut text = serde_json::to_string_pretty(m).expect("a manifest serializes");
    text.push('\n');
    StagedFile {
        path: MANIFEST.into(),
        contents: Some(Zeroizing::new(text.into_bytes())),
        mode: 0o644,
        owner: "root".into(),
        group: "root".into(),
        kind: FileKind::Manifest,
        source: "kpki".into(),
    }
}

/// The install paths the manifest of the tree at `root` lists as `on-node` (keys that stay
/// on their node); none when there is no readable manifest.
pub fn on_node_paths(root: &Path) -> Vec<String> {
    read_manifest(root)
        .ok()
        .flatten()
        .map(|m| {
            m.files
                .into_iter()
                .filter(|e| e.kind == FileKind::OnNode)
                .map(|e| e.path)
                .collect()
        })
        .unwrap_or_default()
}

/// Parses a manifest's bytes (JSON, unknown fields refused).
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Reads the manifest of the tree at `root`, if there is one.
pub fn read_manifest(root: &Path) -> Result<Option<Manifest>, StageError> {
    let path = target(root, MANIFEST)?;
    // A tree to check may be anybody's: the manifest is read only if it is a regular file
    // of sane size, never blocking.
    use crate::material::file::{read_regular, FileError, Links, MAX_FILE};
    match read_regular(&path, MAX_FILE, Links::Follow) {
        Ok(b) => parse_manifest(&b)
            .map(Some)
            .map_err(|reason| StageError::BadManifest { path, reason }),
        Err(FileError::Missing) => Ok(None),
        Err(FileError::Io(e)) => Err(io(&path)(e)),
        Err(e) => Err(StageError::BadManifest {
            path,
            reason: format!("it {e}"),
        }),
    }
}

fn change_of(root: &Path, f: &StagedFile) -> Result<Change, StageError> {
    let path = target(root, &f.path)?;
    no_links(root, &path)?;
    if f.kind == FileKind::OnNode {
        return Ok(if fs::symlink_metadata(&path).is_ok() {
            Change::Remove
        } else {
            Change::Unchanged
        });
    }
    let old = match fs::read(&path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Change::Create),
        Err(e) => return Err(io(&path)(e)),
    };
    let Some(new) = &f.contents else {
        return Ok(Change::Update);
    };
    if old[..] != new[..] {
        return Ok(Change::Update);
    }
    let mode = fs::metadata(&path).map_err(io(&path))?.permissions().mode() & 0o7777;
    Ok(if mode == f.mode {
        Change::Unchanged
    } else {
        Change::Mode
    })
}

/// What writing `files` into the tree at `root` would change, without changing anything.
/// With `with_manifest`, the manifest and the removal of files the old manifest lists
/// and `files` does not are included. Sorted by path.
pub fn plan(
    root: &Path,
    tree: &str,
    files: &[StagedFile],
    with_manifest: bool,
) -> Result<Vec<(String, Change)>, StageError> {
    let mut out = Vec::new();
    for f in files {
        out.push((f.path.clone(), change_of(root, f)?));
    }
    if with_manifest {
        let complete = files
            .iter()
            .all(|f| f.contents.is_some() || f.kind == FileKind::OnNode);
        let m = manifest_file(&manifest(tree, files));
        let c = if complete {
            change_of(root, &m)?
        } else if target(root, MANIFEST)?.exists() {
            Change::Update
        } else {
            Change::Create
        };
        out.push((m.path, c));
        out.extend(
            removals(root, files)?
                .into_iter()
                .map(|p| (p, Change::Remove)),
        );
    }
    out.sort();
    Ok(out)
}

/// Paths the old manifest lists that are no longer staged and still exist.
fn removals(root: &Path, files: &[StagedFile]) -> Result<Vec<String>, StageError> {
    let Some(old) = read_manifest(root)? else {
        return Ok(vec![]);
    };
    let keep: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut gone = Vec::new();
    for e in old.files {
        if keep.contains(e.path.as_str()) || e.path == MANIFEST {
            continue;
        }
        let p = target(root, &e.path)?;
        if fs::symlink_metadata(&p).is_ok() {
            gone.push(e.path);
        }
    }
    Ok(gone)
}

/// Writes `files` (merged, all contents known) into the tree at `root`, creating
/// directories 0700. With `with_manifest`, also writes the manifest and removes what
/// the old manifest listed and `files` no longer does. Returns what changed, by path.
pub fn write(
    root: &Path,
    tree: &str,
    files: &[StagedFile],
    with_manifest: bool,
) -> Result<Vec<(String, Change)>, StageError> {
    let out_dir = out_of(root);
    no_links(&out_dir, root)?;
    safe_out(root)?;
    atomic::tree_dirs(root, root, TREE_DIR_MODE).map_err(|e| staging(root, e))?;
    // A run killed mid-write left temporary files, plaintext keys among them: gone now.
    for f in atomic::leftovers(root) {
        fs::remove_file(&f).map_err(io(&f))?;
    }
    let mut all: Vec<&StagedFile> = files.iter().collect();
    let m = with_manifest.then(|| manifest_file(&manifest(tree, files)));
    let gone = if with_manifest {
        removals(root, files)?
    } else {
        vec![]
    };
    all.extend(m.as_ref());
    // Every directory of the tree at the node's mode, those of unchanged files too (a
    // tree an older kpki staged had them 0700).
    let mut dirs = BTreeSet::new();
    for f in &all {
        let path = target(root, &f.path)?;
        if f.kind != FileKind::OnNode {
            dirs.insert(path.parent().expect("below the root").to_path_buf());
        }
    }
    for d in &dirs {
        no_links(root, d)?;
        atomic::tree_dirs(root, d, TREE_DIR_MODE).map_err(|e| staging(d, e))?;
    }
    let mut out = Vec::new();
    // One flush for the whole tree (the manifest goes in last), not two per file.
    let mut batch = atomic::Batch::new(&out_dir);
    let mut stale = Vec::new();
    for f in all {
        let path = target(root, &f.path)?;
        if f.kind == FileKind::OnNode {
            if fs::symlink_metadata(&path).is_ok() {
                stale.push(f.path.clone());
            }
            continue;
        }
        let contents = f
            .contents
            .as_ref()
            .expect("write() is given every file's contents");
        let change = change_of(root, f)?;
        match change {
            Change::Unchanged => {}
            Change::Mode => {
                fs::set_permissions(&path, fs::Permissions::from_mode(f.mode)).map_err(io(&path))?
            }
            _ => {
                no_links(root, &path)?;
                batch
                    .add(&path, contents, f.mode, Existing::Replace)
                    .map_err(|e| staging(&path, e))?;
            }
        }
        out.push((f.path.clone(), change));
    }
    batch.commit().map_err(|e| staging(root, e))?;
    for p in stale.into_iter().chain(gone) {
        let path = target(root, &p)?;
        no_links(root, &path)?;
        fs::remove_file(&path).map_err(io(&path))?;
        crate::store::crash::point();
        out.push((p, Change::Remove));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, body: &str, mode: u32, owner: &str, source: &str) -> StagedFile {
        StagedFile {
            path: path.into(),
            contents: Some(Zeroizing::new(body.as_bytes().to_vec())),
            mode,
            owner: owner.into(),
            group: owner.into(),
            kind: FileKind::Ca,
            source: source.into(),
        }
    }

    #[test]
    fn merge_shared_ca_and_refuse_conflicts() {
        let m = merge(
            "n",
            vec![
                file("/etc/ssl/etcd/ca.crt", "CA", 0o644, "root", "etcd-client"),
                file("/etc/ssl/etcd/ca.crt", "CA", 0o644, "etcd", "etcd-peer"),
            ],
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].owner.as_str(), m[0].source.as_str()),
            ("etcd", "etcd-client,etcd-peer")
        );
        assert!(matches!(
            merge(
                "n",
                vec![
                    file("/a", "1", 0o644, "root", "x"),
                    file("/a", "2", 0o644, "root", "y")
                ]
            ),
            Err(StageError::Conflict { .. })
        ));
    }

    #[test]
    fn idempotent_write_with_modes_and_pruning() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("n1");
        let files = vec![
            file("/etc/a.key", "k", 0o600, "root", "p"),
            file("/etc/b.crt", "c", 0o644, "root", "p"),
        ];
        let first = write(&root, "n1", &files, true).unwrap();
        assert!(first.iter().all(|(_, c)| *c == Change::Create), "{first:?}");
        let mode = fs::metadata(root.join("etc/a.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = write(&root, "n1", &files, true).unwrap();
        assert!(
            again.iter().all(|(_, c)| *c == Change::Unchanged),
            "{again:?}"
        );
        let m = read_manifest(&root).unwrap().unwrap();
        assert_eq!(m.files.len(), 2);
        let fewer = write(&root, "n1", &files[..1], true).unwrap();
        assert!(fewer.contains(&("/etc/b.crt".to_string(), Change::Remove)));
        assert!(!root.join("etc/b.crt").exists());
    }

    #[test]
    fn refuses_dotdot_and_links() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("n1");
        assert!(matches!(
            write(
                &root,
                "n1",
                &[file("/etc/../x", "1", 0o644, "root", "p")],
                false
            ),
            Err(StageError::BadPath(_))
        ));
        fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(d.path(), root.join("etc")).unwrap();
        assert!(matches!(
            write(
                &root,
                "n1",
                &[file("/etc/x", "1", 0o644, "root", "p")],
                false
            ),
            Err(StageError::Symlink(_))
        ));
    }
}
