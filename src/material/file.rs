//! Reading a file from a tree kpki does not control: only a regular file, only up to a
//! size limit, and never blocking. A FIFO, socket or device where a config or certificate
//! is expected (or a symbolic link to one, such as `/dev/zero`) is refused without being
//! read; a file over the limit is refused without being read whole.
//!
//! [`read_regular`] checks what the path is (following links, which installed systems
//! use for certificates), opens it with `O_NONBLOCK` (and `O_NOFOLLOW` where the caller
//! has already seen a regular file), checks the opened descriptor again with `fstat` (the
//! path may have changed in between), and reads at most one byte past the limit.
//!
//! [`pseudo_fs`] tells the kernel's pseudo file systems (proc, sysfs, debugfs, …) by their
//! `statfs` type, whatever path they are mounted at or reached through.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// Files larger than this are not certificates, keys or configs; they are not read.
pub const MAX_FILE: u64 = 8 * 1024 * 1024;

/// Why a file was not read. Each message is a phrase that follows the file's name.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("does not exist")]
    Missing,
    #[error("is {0}, not a regular file; not read: put the file itself there")]
    NotRegular(&'static str),
    #[error("is larger than {limit} bytes, too large for a certificate, key or config; not read")]
    TooLarge { limit: u64 },
    #[error("cannot be read: {}", plain(.0))]
    Io(io::Error),
}

impl FileError {
    fn from_io(e: io::Error) -> FileError {
        if e.kind() == io::ErrorKind::NotFound {
            FileError::Missing
        } else {
            FileError::Io(e)
        }
    }
}

/// An I/O error without the "(os error N)" tail.
fn plain(e: &io::Error) -> String {
    match e.kind() {
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

/// What a file that is not a regular file is, for messages.
pub fn kind_of(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Whether to follow a symbolic link at the path itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Follow it (a referenced file may be a link, as kubelet's rotated certificates are).
    Follow,
    /// The caller saw a regular file there: a link now means the file was swapped.
    Refuse,
}

/// Opens `path` for reading if it is a regular file, without blocking: the file and its
/// metadata from the opened descriptor.
pub fn open_regular(path: &Path, links: Links) -> Result<(File, fs::Metadata), FileError> {
    let seen = match links {
        Links::Follow => fs::metadata(path),
        Links::Refuse => fs::symlink_metadata(path),
    }
    .map_err(FileError::from_io)?;
    if !seen.is_file() {
        return Err(FileError::NotRegular(kind_of(seen.file_type())));
    }
    let mut flags = rustix::fs::OFlags::NONBLOCK;
    if links == Links::Refuse {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                FileError::NotRegular("a symbolic link")
            } else {
                FileError::from_io(e)
            }
        })?;
    let meta = file.metadata().map_err(FileError::Io)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(kind_of(meta.file_type())));
    }
    if (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) {
        return Err(FileError::Io(io::Error::other(
            "it was replaced while being opened",
        )));
    }
    Ok((file, meta))
}

/// The bytes of the regular file at `path`, at most `limit` of them (wiped from memory
/// when dropped: the file may hold a key).
pub fn read_regular(
    path: &Path,
    limit: u64,
    links: Links,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let (file, meta) = open_regular(path, links)?;
    if meta.len() > limit {
        return Err(FileError::TooLarge { limit });
    }
    // Room for the whole file and one byte more, so the buffer (which may hold a key)
    // is not reallocated and copied while it is read.
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(FileError::Io)?;
    if buf.len() as u64 > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(buf)
}

/// The kernel's pseudo file systems, by `statfs` type (linux/magic.h): they hold no
/// certificates, and walking or reading them can take forever. devtmpfs reports tmpfs's
/// type and is not told apart; what it holds are device nodes, which are never opened.
const PSEUDO: [(u32, &str); 17] = [
    (0x0000_9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x0000_1cd1, "devpts"),
    (0xcafe_4a11, "bpf"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
    (0x6265_6570, "configfs"),
    (0x6573_5543, "fusectl"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x1980_0202, "mqueue"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
];

/// The name of the pseudo file system `path` is on (following links), if it is on one.
pub fn pseudo_fs(path: &Path) -> Option<&'static str> {
    let st = rustix::fs::statfs(path).ok()?;
    // f_type is a signed word on some targets: its low 32 bits are the magic number.
    let magic = st.f_type as u64 as u32;
    PSEUDO.iter().find(|(m, _)| *m == magic).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.crt");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(
            read_regular(&f, 10, Links::Refuse).unwrap().as_slice(),
            b"0123456789"
        );
        assert!(matches!(
            read_regular(&f, 9, Links::Follow),
            Err(FileError::TooLarge { limit: 9 })
        ));
        assert!(matches!(
            read_regular(&dir.path().join("nope"), 10, Links::Follow),
            Err(FileError::Missing)
        ));
        let link = dir.path().join("link.crt");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read_regular(&link, 10, Links::Follow).is_ok());
        assert!(matches!(
            read_regular(&link, 10, Links::Refuse),
            Err(FileError::NotRegular("a symbolic link"))
        ));
        let e = read_regular(dir.path(), 10, Links::Follow).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a directory, not a regular file; not read: put the file itself there"
        );
    }

    #[test]
    fn devices_and_links_to_them_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let zero = dir.path().join("zero.crt");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_regular(&zero, MAX_FILE, Links::Follow),
            Err(FileError::NotRegular("a character device"))
        ));
    }

    #[test]
    fn proc_and_sys_are_pseudo_file_systems() {
        assert_eq!(pseudo_fs(Path::new("/proc/self")), Some("proc"));
        if Path::new("/sys/kernel").is_dir() {
            assert_eq!(pseudo_fs(Path::new("/sys/kernel")), Some("sysfs"));
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pseudo_fs(dir.path()), None);
    }
}
