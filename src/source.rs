//! Where in a user's file something went wrong: `file:line:col`, for the inventory and
//! profile loaders, which both read strict TOML.

use std::fmt;
use std::path::{Path, PathBuf};

/// A message about a place in a file the user wrote, with the fix when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// Builds a [`Located`] for a byte range of `text`.
pub fn at(path: &Path, text: &str, offset: usize, message: String, hint: Option<&str>) -> Located {
    let (line, col) = line_col(text, offset);
    Located {
        path: path.to_path_buf(),
        line,
        col,
        message,
        hint: hint.map(str::to_owned),
    }
}

/// Turns a TOML parse error into one line with its place, and a hint for the common cases
/// (an unknown key, a missing field, a value of the wrong kind).
pub fn toml_error(path: &Path, text: &str, err: &toml::de::Error, what: &str) -> Located {
    let offset = err.span().map_or(0, |s| s.start);
    let message = err.message().trim().replace('\n', " ");
    let hint = if message.starts_with("unknown field") {
        Some(format!(
            "remove or rename the key; the keys {what} accepts are listed after 'expected'"
        ))
    } else if message.starts_with("missing field") {
        Some(format!("add the field to this table of the {what}"))
    } else if message.starts_with("unknown variant") {
        Some("use one of the values listed after 'expected'".to_string())
    } else {
        None
    };
    at(path, text, offset, message, hint.as_deref())
}

/// The most kpki reads from one file the user names (an inventory, a profile, a template,
/// a CSR, a certificate to inspect, a CA file, an identity): far more than any of them
/// holds, so `/dev/zero` or a runaway pipe is an error rather than exhausted memory.
pub const MAX_INPUT: u64 = 16 << 20;

/// Reads a file the user named, as `fs::read` does, but a FIFO that no process writes to
/// reads as empty instead of waiting forever for a writer (a pipe with a writer, such as
/// `<(…)`, is read to its end), and more than [`MAX_INPUT`] bytes is an error. A regular
/// file is read into a buffer of its size, so no partial copy of it is left behind in
/// freed memory by a growing buffer (it may be a key).
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    use rustix::fs::OFlags;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)?;
    // Blocking again: the open did not wait for a writer; the reads wait for what it writes.
    rustix::fs::fcntl_setfl(&f, OFlags::empty())?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0).min(MAX_INPUT);
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
    f.take(MAX_INPUT + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB, more than kpki reads", MAX_INPUT >> 20),
        ));
    }
    Ok(buf)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| {
        // What was read may be a key: wiped, not just freed.
        zeroize::Zeroize::zeroize(&mut e.into_bytes());
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let t = "a\nbc\ndef";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 2), (2, 1));
        assert_eq!(line_col(t, 3), (2, 2));
        assert_eq!(line_col(t, 7), (3, 3));
    }

    #[test]
    fn a_fifo_without_a_writer_reads_as_empty_and_a_big_input_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(super::read(&fifo).unwrap(), b"");
        let e = super::read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let f = d.path().join("f");
        std::fs::write(&f, "text").unwrap();
        assert_eq!(super::read_to_string(&f).unwrap(), "text");
    }
}
