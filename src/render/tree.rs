//! A node tree's files, on disk or in memory, so that [`super::refs`] and
//! [`super::check`] verify a tree the same way before it is written as after.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::refs::resolve;
use crate::material::file::{read_regular, FileError, Links, MAX_FILE};

/// A node's files by absolute install path: a directory on disk or a tree in memory.
pub trait TreeFiles: Sync {
    /// The bytes of the file at an install path ([`FileError::Missing`] when absent).
    /// Zeroized on drop: the file may be a private key or a kubeconfig embedding one. On
    /// disk only a regular file (or a link to one) up to [`MAX_FILE`] is read, without
    /// blocking: a FIFO, a device or an endless file is refused, never read.
    fn read(&self, install_path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError>;
    /// The permission bits of the file at an install path (`NotFound` when absent). On
    /// disk this follows links and answers for directories and FIFOs too, as the checker
    /// always has; reading them is what fails.
    fn mode(&self, install_path: &Path) -> io::Result<u32>;
    /// The UTF-8 names directly inside a directory, sorted; empty when it is absent.
    fn list(&self, install_dir: &Path) -> Vec<String>;
    /// How an error message names the file: the on-disk path for a disk tree, the install
    /// path for one in memory.
    fn display(&self, install_path: &Path) -> PathBuf;
}

/// A staged tree (`DIR/<node>`) or an installed system (`/`): install paths resolve
/// under `root` ([`resolve`]).
#[derive(Clone, Debug)]
pub struct DiskTree {
    pub root: PathBuf,
}

impl DiskTree {
    pub fn new(root: impl Into<PathBuf>) -> DiskTree {
        DiskTree { root: root.into() }
    }
}

impl TreeFiles for DiskTree {
    fn read(&self, install_path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
        read_regular(&resolve(&self.root, install_path), MAX_FILE, Links::Follow)
    }

    fn mode(&self, install_path: &Path) -> io::Result<u32> {
        std::fs::metadata(resolve(&self.root, install_path))
            .map(|m| m.permissions().mode() & 0o7777)
    }

    fn list(&self, install_dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(resolve(&self.root, install_dir))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    }

    fn display(&self, install_path: &Path) -> PathBuf {
        resolve(&self.root, install_path)
    }
}

/// A tree not written yet: regular files only, each with the mode it will be installed
/// with. Paths are normalised as [`resolve`] does, so a lookup finds what disk would.
#[derive(Default)]
pub struct MemTree {
    files: BTreeMap<PathBuf, (Zeroizing<Vec<u8>>, u32)>,
}

/// `/` plus the normal components of a path: the key a [`MemTree`] files under.
fn key(install_path: &Path) -> PathBuf {
    resolve(Path::new("/"), install_path)
}

impl MemTree {
    pub fn new() -> MemTree {
        MemTree::default()
    }

    /// Adds (or replaces) the file at an install path.
    pub fn insert(&mut self, install_path: impl AsRef<Path>, bytes: Zeroizing<Vec<u8>>, mode: u32) {
        self.files
            .insert(key(install_path.as_ref()), (bytes, mode & 0o7777));
    }
}

impl FromIterator<(PathBuf, Zeroizing<Vec<u8>>, u32)> for MemTree {
    fn from_iter<I: IntoIterator<Item = (PathBuf, Zeroizing<Vec<u8>>, u32)>>(iter: I) -> MemTree {
        let mut t = MemTree::new();
        for (path, bytes, mode) in iter {
            t.insert(path, bytes, mode);
        }
        t
    }
}

/// Paths and modes only: the bytes may be private keys.
impl fmt::Debug for MemTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.files.iter().map(|(p, (_, m))| (p, format!("{m:04o}"))))
            .finish()
    }
}

impl TreeFiles for MemTree {
    fn read(&self, install_path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
        self.files
            .get(&key(install_path))
            .map(|(b, _)| b.clone())
            .ok_or(FileError::Missing)
    }

    fn mode(&self, install_path: &Path) -> io::Result<u32> {
        self.files
            .get(&key(install_path))
            .map(|(_, m)| *m)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn list(&self, install_dir: &Path) -> Vec<String> {
        let dir = key(install_dir);
        let names: BTreeSet<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&dir).ok())
            .filter_map(|rest| rest.components().next())
            .filter_map(|c| c.as_os_str().to_str().map(str::to_owned))
            .collect();
        names.into_iter().collect()
    }

    fn display(&self, install_path: &Path) -> PathBuf {
        install_path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_tree_reads_lists_and_normalises() {
        let t: MemTree = [
            ("/etc/a/x.conf", 0o644),
            ("/etc/a/b.d/y.conf", 0o600),
            ("/top.kubeconfig", 0o100600),
        ]
        .into_iter()
        .map(|(p, m)| {
            (
                PathBuf::from(p),
                Zeroizing::new(format!("secret {p}").into()),
                m,
            )
        })
        .collect();
        assert_eq!(t.list(Path::new("/etc/a")), ["b.d", "x.conf"]);
        assert_eq!(t.list(Path::new("/")), ["etc", "top.kubeconfig"]);
        assert!(t.list(Path::new("/nope")).is_empty());
        assert!(t.list(Path::new("/etc/a/x.conf")).is_empty());
        assert_eq!(
            t.read(Path::new("/etc/./a//b.d/y.conf"))
                .unwrap()
                .as_slice(),
            b"secret /etc/a/b.d/y.conf"
        );
        assert_eq!(t.mode(Path::new("/top.kubeconfig")).unwrap(), 0o600);
        let absent = t.read(Path::new("/etc/a")).unwrap_err();
        assert!(matches!(absent, FileError::Missing), "{absent}");
        assert_eq!(
            t.mode(Path::new("/etc/a/z")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(!format!("{t:?}").contains("secret"), "{t:?}");
    }
}
