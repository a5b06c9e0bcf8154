//! What `render --check` and the audit find: one [`Finding`] type for both, with a
//! [`FindingKind`] whose name is stable (JSON, metrics) and decides its [`Severity`].
//! A finding of the config verifier also says which config and key name the file
//! ([`NamedBy`]); `render --check` prints it as `config: key: problem`, the audit as a
//! row of its report.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How much a finding matters: `error` fails the run (exit 2), `warn` warns (exit 1),
/// `info` is printed but leaves the exit status alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Warn => 1,
            Severity::Error => 2,
        }
    }
}

/// What a finding is about. The names (snake_case in JSON and metrics) are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A file or directory could not be read (permissions, I/O error, a FIFO or socket
    /// where a certificate is expected).
    Unreadable,
    /// A file disappeared between listing and reading it (normal churn, e.g. a rename).
    Vanished,
    /// A file named like a certificate is too large to be one; not read.
    TooLarge,
    /// A file that holds or claims to hold certificates or keys cannot be parsed:
    /// truncated PEM, bad base64, broken DER, binary junk named `.crt`.
    Unparsable,
    /// A symbolic link that leads back to itself or to a directory above it; not followed.
    SymlinkLoop,
    /// A symbolic link whose target does not exist.
    BrokenSymlink,
    /// Issued by a CA that is not among the trusted ones (the store's, `--ca`).
    UntrustedIssuer,
    /// Names a trusted CA as issuer, but that CA's key did not sign it.
    BadSignature,
    /// A self-signed CA that is not among the trusted ones.
    ForeignCa,
    /// A CA expires before certificates it signed: they stop working with it.
    CaExpiresFirst,
    /// The private key next to a certificate does not belong to it.
    KeyMismatch,
    /// A private key is readable by group or others (not 0600 or tighter).
    KeyMode,
    /// A file the inventory, the profiles or a daemon config call for is not there.
    Missing,
    /// A certificate's subject CN is not the one its profile gives.
    SubjectMismatch,
    /// A certificate lacks SANs its profile requires for its node.
    SanMissing,
    /// A certificate lacks extended key usages its profile requires.
    EkuMissing,
    /// A certificate is signed by another of the store's CAs than its profile's.
    WrongCa,
    /// A CA file holds something other than the store's CA for it.
    CaMismatch,
    /// Many certificates expire on the same day.
    ExpiryCliff,
    /// A file does not fit the use a config makes of it: a CA certificate where a leaf
    /// belongs, a leaf or several CAs where one CA belongs, an EncryptionConfiguration
    /// kube-apiserver would refuse or that writes Secrets in clear.
    WrongUse,
    /// A certificate a config names has expired or is not valid yet (the audit also
    /// gives it the certificate's state).
    OutsideValidity,
    /// No maintenance window (`--window`) opens between the time a certificate is due
    /// for renewal and its end: a rotation run in the windows would renew it too late.
    WindowTooLate,
}

impl FindingKind {
    pub const ALL: [FindingKind; 22] = [
        FindingKind::Unreadable,
        FindingKind::Vanished,
        FindingKind::TooLarge,
        FindingKind::Unparsable,
        FindingKind::SymlinkLoop,
        FindingKind::BrokenSymlink,
        FindingKind::UntrustedIssuer,
        FindingKind::BadSignature,
        FindingKind::ForeignCa,
        FindingKind::CaExpiresFirst,
        FindingKind::KeyMismatch,
        FindingKind::KeyMode,
        FindingKind::Missing,
        FindingKind::SubjectMismatch,
        FindingKind::SanMissing,
        FindingKind::EkuMissing,
        FindingKind::WrongCa,
        FindingKind::CaMismatch,
        FindingKind::ExpiryCliff,
        FindingKind::WrongUse,
        FindingKind::OutsideValidity,
        FindingKind::WindowTooLate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Unreadable => "unreadable",
            FindingKind::Vanished => "vanished",
            FindingKind::TooLarge => "too_large",
            FindingKind::Unparsable => "unparsable",
            FindingKind::SymlinkLoop => "symlink_loop",
            FindingKind::BrokenSymlink => "broken_symlink",
            FindingKind::UntrustedIssuer => "untrusted_issuer",
            FindingKind::BadSignature => "bad_signature",
            FindingKind::ForeignCa => "foreign_ca",
            FindingKind::CaExpiresFirst => "ca_expires_first",
            FindingKind::KeyMismatch => "key_mismatch",
            FindingKind::KeyMode => "key_mode",
            FindingKind::Missing => "missing",
            FindingKind::SubjectMismatch => "subject_mismatch",
            FindingKind::SanMissing => "san_missing",
            FindingKind::EkuMissing => "eku_missing",
            FindingKind::WrongCa => "wrong_ca",
            FindingKind::CaMismatch => "ca_mismatch",
            FindingKind::ExpiryCliff => "expiry_cliff",
            FindingKind::WrongUse => "wrong_use",
            FindingKind::OutsideValidity => "outside_validity",
            FindingKind::WindowTooLate => "window_too_late",
        }
    }

    /// The severity of every finding of this kind.
    pub fn severity(self) -> Severity {
        match self {
            FindingKind::Vanished
            | FindingKind::SymlinkLoop
            | FindingKind::ForeignCa
            // A cliff is planning information: a cluster issued in one night would
            // otherwise warn every night for a year. Its certificates warn on their own
            // once they come within --warn.
            | FindingKind::ExpiryCliff => Severity::Info,
            FindingKind::Unreadable
            | FindingKind::TooLarge
            | FindingKind::BrokenSymlink
            | FindingKind::WindowTooLate => {
                Severity::Warn
            }
            _ => Severity::Error,
        }
    }

    /// Whether this finding means a file's certificates could not be read, which the
    /// Prometheus output reports as `x509_cert_error 1`.
    pub fn is_read_error(self) -> bool {
        matches!(
            self,
            FindingKind::Unreadable | FindingKind::TooLarge | FindingKind::Unparsable
        )
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where in a kubeconfig a certificate or key was embedded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Embedded {
    /// `cluster` (certificate-authority-data) or `user` (client-certificate-data,
    /// client-key-data), as enix's x509-certificate-exporter labels them.
    pub kind: &'static str,
    /// The name of the cluster or user entry.
    pub key: String,
}

/// A config and the key in it that names a file (or embeds a value), for findings of
/// the config verifier ([`crate::render::check`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NamedBy {
    /// The config, as an absolute install path (`/etc/etcd/options.env`).
    pub config: PathBuf,
    /// The key in it (`ETCD_PEER_CERT_FILE`, `--tls-cert-file`,
    /// `users[admin].user.client-key`), or `(file)` for the config itself.
    pub key: String,
}

/// One problem with a file, a certificate or a whole run: what `render --check` prints
/// (one per config key) and what the audit reports (with a severity), the same type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file (or directory) it is about; `null` for findings about the whole run.
    pub path: Option<PathBuf>,
    pub kind: FindingKind,
    pub severity: Severity,
    /// One line for a person, with what to do where there is something to do.
    pub message: String,
    /// For findings about a kubeconfig's embedded data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded: Option<Embedded>,
    /// For findings of the config verifier: the configs and keys that name the file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub named_by: Vec<NamedBy>,
}

impl Finding {
    pub fn new(path: Option<&Path>, kind: FindingKind, message: impl Into<String>) -> Finding {
        Finding {
            path: path.map(Path::to_path_buf),
            kind,
            severity: kind.severity(),
            message: message.into(),
            embedded: None,
            named_by: Vec::new(),
        }
    }

    /// A finding about a file that `key` of `config` names.
    pub fn named(
        path: &Path,
        kind: FindingKind,
        message: impl Into<String>,
        config: &Path,
        key: &str,
    ) -> Finding {
        let mut f = Finding::new(Some(path), kind, message);
        f.named_by.push(NamedBy {
            config: config.to_path_buf(),
            key: key.to_owned(),
        });
        f
    }
}

/// As `render --check` prints a finding: `config: key: problem`; one that no config
/// names, `path: problem`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.named_by.first(), &self.path) {
            (Some(n), _) => write!(f, "{}: {}: {}", n.config.display(), n.key, self.message),
            (None, Some(p)) => write!(f, "{}: {}", p.display(), self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_decide_the_exit_status() {
        for k in FindingKind::ALL {
            assert!(k.severity().exit_code() <= 2);
        }
        assert_eq!(FindingKind::ExpiryCliff.severity(), Severity::Info);
        assert_eq!(FindingKind::Unreadable.severity(), Severity::Warn);
        assert_eq!(FindingKind::KeyMode.severity(), Severity::Error);
        assert_eq!(FindingKind::WrongUse.severity(), Severity::Error);
        let names: std::collections::BTreeSet<&str> =
            FindingKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), FindingKind::ALL.len());
    }

    #[test]
    fn printed_as_render_check_prints_it() {
        let f = Finding::named(
            Path::new("/etc/ssl/etcd/etcd.key"),
            FindingKind::Missing,
            "/etc/ssl/etcd/etcd.key does not exist",
            Path::new("/etc/etcd/options.env"),
            "ETCD_KEY_FILE",
        );
        assert_eq!(
            f.to_string(),
            "/etc/etcd/options.env: ETCD_KEY_FILE: /etc/ssl/etcd/etcd.key does not exist"
        );
        let f = Finding::new(Some(Path::new("/x.crt")), FindingKind::Unparsable, "junk");
        assert_eq!(f.to_string(), "/x.crt: junk");
    }
}
