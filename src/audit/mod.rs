//! The expiry and health audit: find every certificate under some paths, say how long
//! each has left, and check what can be checked around it (the chain to the CA, the key
//! next to it and that key's mode, what the inventory and profiles expect to be there).
//!
//! It runs from cron on every node and on the CA host, so it is built to be fast and to
//! never stop on one bad file:
//!
//! * `discover` walks the paths in parallel (a shared work queue of directories and
//!   batches of files over `available_parallelism` threads) and hands each file to
//!   `scan`, which reads it once and finds the certificates and keys in it, whatever
//!   the encoding (PEM with any number of sections, DER, kubeconfig `*-data` fields).
//!   Anything wrong with one file (unreadable, vanished, garbage, a symlink loop) becomes
//!   a [`Finding`], never an error of the whole run.
//!   Each distinct certificate is parsed once ([`CertInfo`], shared by its copies) and
//!   checked against the trusted CAs there, by signature.
//! * `evaluate` turns what was found into states and findings, from an injected `now`;
//!   nothing here reads the clock, the environment or the terminal, and nothing prints.
//! * [`layout`] knows where kpki's files live (the store, a node's install paths, a
//!   staged tree) and what the inventory and profiles expect there; [`configs`] lists
//!   what a node's daemon configs reference, through `render::refs`.
//! * [`report`] renders a [`Report`] as a table, JSON or Prometheus text.
//!
//! An [`AuditError`] means the audit itself could not run (exit status 3).

pub mod configs;
mod discover;
mod evaluate;
pub mod layout;
pub mod report;
mod scan;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

pub use crate::finding::{Embedded, Finding, FindingKind, NamedBy, Severity};
pub use layout::{Expected, ExpectedFile, Layout};

/// Hex without separators, for short fingerprint prefixes.
pub(crate) fn scan_hex(bytes: &[u8]) -> String {
    scan::hex(bytes, false)
}
pub use scan::TrustedCa;

/// Why the audit could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("nothing to audit: none of {} exists", list(.0))]
    NothingToAudit(Vec<PathBuf>),
    #[error("cannot use {path} as a CA: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("--warn {warn} is shorter than --critical {critical}")]
    Thresholds { warn: String, critical: String },
    #[error("cannot read the configs under {path}: {reason}")]
    Configs { path: PathBuf, reason: String },
    #[error("node '{0}' is not in the inventory")]
    UnknownNode(String),
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl AuditError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            AuditError::NothingToAudit(_) => {
                "name the directories or files to audit, or point --store at the store".into()
            }
            AuditError::BadCa { .. } => {
                "pass a PEM or DER file holding the CA certificate(s), such as pki/ca/root/ca.crt"
                    .into()
            }
            AuditError::Thresholds { .. } => {
                "the warning threshold must be at least the critical one, such as --warn 30d --critical 7d"
                    .into()
            }
            AuditError::Configs { .. } => {
                "pass a staged node tree (DIR/<node>) from `kpki apply`, or / on a node".into()
            }
            AuditError::UnknownNode(_) => {
                "name a node of the inventory's [[nodes]] with --node".into()
            }
        })
    }
}

/// A certificate's validity at `now`, against the warning and critical thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Warn,
    Critical,
    Expired,
    NotYetValid,
}

impl State {
    /// Classifies a validity period at `now`. A certificate is valid through its notAfter
    /// second (RFC 5280 §4.1.2.5); "within" a threshold includes the threshold itself.
    pub fn at(
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
        warn_seconds: i64,
        critical_seconds: i64,
    ) -> State {
        let left = (not_after - now).whole_seconds();
        if now < not_before {
            State::NotYetValid
        } else if now > not_after {
            State::Expired
        } else if left <= critical_seconds {
            State::Critical
        } else if left <= warn_seconds {
            State::Warn
        } else {
            State::Ok
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warn => "warn",
            State::Critical => "critical",
            State::Expired => "expired",
            State::NotYetValid => "not_yet_valid",
        }
    }

    /// The exit status this state alone calls for.
    pub fn exit_code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warn => 1,
            State::Critical | State::Expired | State::NotYetValid => 2,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a certificate was found in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Pem,
    Der,
    Kubeconfig,
}

/// The first value of each distinguished-name attribute enix's exporter turns into a
/// label (`subject_C`, …, `issuer_CN`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameParts {
    pub c: Option<String>,
    pub st: Option<String>,
    pub l: Option<String>,
    pub o: Option<String>,
    pub ou: Option<String>,
    pub cn: Option<String>,
}

/// A distinguished name, formatted once however many certificates carry it.
#[derive(Debug, PartialEq, Eq)]
pub struct Name {
    /// As `kpki inspect` and x509-parser print it: `O=example, CN=example root CA`.
    pub text: String,
    pub parts: NameParts,
    pub(crate) raw: Vec<u8>,
}

/// What a certificate's DER says: parsed once per distinct certificate and shared by
/// every copy of it in the fleet (a CA appended to fifty chain files is one of these).
#[derive(Debug)]
pub struct CertInfo {
    pub subject: Arc<Name>,
    pub issuer: Arc<Name>,
    /// The serial's DER content octets (big-endian, two's complement).
    pub serial: Vec<u8>,
    pub sans: Vec<String>,
    pub ext_key_usage: Vec<String>,
    pub is_ca: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER.
    pub fingerprint: [u8; 32],
    /// The subjectPublicKey bits, for matching a private key.
    pub(crate) public_key: Vec<u8>,
    /// The whole SubjectPublicKeyInfo (DER), for verifying what it signed.
    pub(crate) spki: Vec<u8>,
    /// Subject and authority key identifiers, for linking a chain file's certificates.
    pub(crate) subject_key_id: Option<Vec<u8>>,
    pub(crate) authority_key_id: Option<Vec<u8>>,
}

impl CertInfo {
    /// The subject's CN, or the whole subject when it has none.
    pub fn short_subject(&self) -> &str {
        self.subject
            .parts
            .cn
            .as_deref()
            .unwrap_or(&self.subject.text)
    }

    /// The serial in hex, colon-separated, as `openssl x509 -serial` and `kpki inspect`.
    pub fn serial_hex(&self) -> String {
        scan::hex(&self.serial, true)
    }

    /// The serial in decimal, as enix's exporter (Go's `big.Int`) prints `serial_number`.
    pub fn serial_decimal(&self) -> String {
        decimal(&self.serial)
    }

    /// The fingerprint as colon-separated hex (`openssl x509 -fingerprint -sha256`).
    pub fn sha256(&self) -> String {
        scan::hex(&self.fingerprint, true)
    }

    pub(crate) fn self_signed(&self) -> bool {
        self.subject.raw == self.issuer.raw
    }
}

/// Big-endian two's complement bytes in decimal (serials are positive; a negative one,
/// which RFC 5280 forbids but the wild has, gets a minus sign).
fn decimal(bytes: &[u8]) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut mag: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut v: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in v.iter_mut().rev() {
            let (n, carry) = b.overflowing_add(1);
            *b = n;
            if !carry {
                break;
            }
        }
        v
    } else {
        bytes.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII digits")
}

/// A trusted CA as certificates refer to it.
#[derive(Debug, PartialEq, Eq)]
pub struct CaRef {
    /// The store's name for it (`root`, `etcd`, …), or its CN for a `--ca` file.
    pub name: String,
    pub path: PathBuf,
    pub not_after: OffsetDateTime,
}

/// What the chain check found for a certificate. Serialized as
/// `{"status": …, "ca": …, "ca_path": …, "ca_not_after": …}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    /// Nothing to check against: no trusted CA given and no issuer in the same file.
    Unchecked,
    /// The certificate is one of the trusted CAs.
    Anchor(Arc<CaRef>),
    /// Signed by this trusted CA (signature verified).
    Trusted(Arc<CaRef>),
    /// Signed by a certificate later in the same file (a chain file); no trusted CA given.
    InFile(Arc<CertInfo>),
    /// Trusted CAs were given and none of them is this certificate's issuer.
    Untrusted,
    /// A trusted CA has the issuer's name, but its key did not make the signature.
    BadSignature(Arc<CaRef>),
    /// A self-signed certificate that is not one of the trusted CAs.
    ForeignRoot,
}

impl PartialEq for CertInfo {
    fn eq(&self, other: &CertInfo) -> bool {
        self.fingerprint == other.fingerprint
    }
}
impl Eq for CertInfo {}

impl ChainStatus {
    pub fn name(&self) -> &'static str {
        match self {
            ChainStatus::Unchecked => "unchecked",
            ChainStatus::Anchor(_) => "anchor",
            ChainStatus::Trusted(_) => "trusted",
            ChainStatus::InFile(_) => "in_file",
            ChainStatus::Untrusted => "untrusted",
            ChainStatus::BadSignature(_) => "bad_signature",
            ChainStatus::ForeignRoot => "foreign_root",
        }
    }
}

impl Serialize for ChainStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("status", self.name())?;
        match self {
            ChainStatus::Anchor(ca) | ChainStatus::BadSignature(ca) => {
                m.serialize_entry("ca", &ca.name)?;
                m.serialize_entry("ca_path", &ca.path)?;
            }
            ChainStatus::Trusted(ca) => {
                m.serialize_entry("ca", &ca.name)?;
                m.serialize_entry("ca_path", &ca.path)?;
                m.serialize_entry("ca_not_after", &crate::pki::rfc3339(ca.not_after))?;
            }
            ChainStatus::InFile(ca) => {
                m.serialize_entry("ca", &ca.subject.text)?;
                m.serialize_entry("ca_not_after", &crate::pki::rfc3339(ca.not_after))?;
            }
            _ => {}
        }
        m.end()
    }
}

/// The private key found with a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyCheck {
    /// The key file (the certificate's own file when they share one).
    pub path: PathBuf,
    /// Whether the key belongs to the certificate; `null` when the key could not be read
    /// (an encrypted key, say).
    pub matches: Option<bool>,
    /// The key file's permission bits, in octal (`0600`).
    pub mode: String,
}

/// One certificate as the audit reports it: where it was found, what it is (shared with
/// its copies) and what the audit concluded. The serialized field names are stable and
/// documented in `kpki audit --help` and kpki-audit(1).
#[derive(Clone, Debug)]
pub struct AuditedCert {
    pub path: Arc<Path>,
    /// Position in its file, from 0 (a chain file's leaf is 0).
    pub index: usize,
    pub encoding: Encoding,
    pub embedded: Option<Arc<Embedded>>,
    pub info: Arc<CertInfo>,
    /// Seconds from the audit's `now` to notAfter; negative once expired.
    pub seconds_left: i64,
    pub state: State,
    /// The inventory node and the profile this certificate is for, where kpki knows them.
    pub node: Option<String>,
    pub profile: Option<String>,
    pub chain: ChainStatus,
    pub key: Option<KeyCheck>,
}

impl AuditedCert {
    /// The subject's CN, or the whole subject when it has none.
    pub fn short_subject(&self) -> &str {
        self.info.short_subject()
    }
}

impl Serialize for AuditedCert {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let i = &self.info;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("path", &*self.path)?;
        m.serialize_entry("index", &self.index)?;
        m.serialize_entry("encoding", &self.encoding)?;
        if let Some(e) = &self.embedded {
            m.serialize_entry("embedded_kind", e.kind)?;
            m.serialize_entry("embedded_key", &e.key)?;
        }
        m.serialize_entry("subject", &i.subject.text)?;
        m.serialize_entry("issuer", &i.issuer.text)?;
        m.serialize_entry("serial", &i.serial_hex())?;
        m.serialize_entry("sans", &i.sans)?;
        m.serialize_entry("ext_key_usage", &i.ext_key_usage)?;
        m.serialize_entry("is_ca", &i.is_ca)?;
        m.serialize_entry("not_before", &crate::pki::rfc3339(i.not_before))?;
        m.serialize_entry("not_after", &crate::pki::rfc3339(i.not_after))?;
        m.serialize_entry("seconds_left", &self.seconds_left)?;
        m.serialize_entry("state", &self.state)?;
        m.serialize_entry("sha256", &i.sha256())?;
        m.serialize_entry("node", &self.node)?;
        m.serialize_entry("profile", &self.profile)?;
        m.serialize_entry("chain", &self.chain)?;
        m.serialize_entry("key", &self.key)?;
        m.end()
    }
}

/// A place the audit was asked to look, and whether it could.
#[derive(Clone, Debug, Serialize)]
pub struct Source {
    /// `file` for walked paths, `configs` for a `--configs` tree.
    pub kind: &'static str,
    pub path: PathBuf,
    pub up: bool,
}

/// A day on which many certificates expire.
#[derive(Clone, Debug, Serialize)]
pub struct Cliff {
    /// The UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// Distinct certificates (by fingerprint) expiring that day.
    pub count: usize,
}

/// Totals for the whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    #[serde(with = "time::serde::rfc3339::option")]
    pub now: Option<OffsetDateTime>,
    pub warn_seconds: i64,
    pub critical_seconds: i64,
    /// Files that hold at least one certificate.
    pub files: usize,
    pub certificates: usize,
    /// Certificates counted once however many files hold them.
    pub distinct: usize,
    pub ok: usize,
    pub warn: usize,
    pub critical: usize,
    pub expired: usize,
    pub not_yet_valid: usize,
    pub findings_error: usize,
    pub findings_warn: usize,
    pub findings_info: usize,
    /// The certificate that expires first among those not yet expired.
    pub next_expiry: Option<NextExpiry>,
    pub cliffs: Vec<Cliff>,
    pub sources: Vec<Source>,
    /// 0 all ok, 1 something within --warn, 2 within --critical, expired, not yet valid
    /// or a failed check.
    pub exit_code: u8,
}

#[derive(Clone, Debug, Serialize)]
pub struct NextExpiry {
    pub path: PathBuf,
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub seconds_left: i64,
}

/// Everything one audit found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Sorted by time left, then path and position.
    pub certificates: Vec<AuditedCert>,
    /// Sorted by severity (errors first), then path.
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        self.summary.exit_code
    }
}

/// A path to walk.
#[derive(Clone, Debug)]
pub struct Root {
    pub path: PathBuf,
    /// A missing required root is a finding; a missing default one is skipped quietly.
    pub required: bool,
    /// Audited alongside what was asked for (a CA file given for the chain check); it
    /// alone does not make an audit that found none of the asked-for paths a success.
    pub extra: bool,
}

/// A file a daemon config references (`--configs`), audited without walking. The
/// config verifier has judged it already ([`configs`]); the audit adds its certificates'
/// states and what the store, the inventory and the profiles say of them.
#[derive(Clone, Debug)]
pub struct Referenced {
    pub path: PathBuf,
}

/// What to audit and how.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub roots: Vec<Root>,
    pub referenced: Vec<Referenced>,
    pub now: OffsetDateTime,
    pub warn_seconds: i64,
    pub critical_seconds: i64,
    /// CAs that certificates must chain to (the store's and `--ca` files).
    pub trusted: Vec<TrustedCa>,
    /// Files the inventory and profiles call for, with what they must hold.
    pub expected: Vec<Expected>,
    /// Report a day on which at least this many distinct certificates expire.
    pub cliff_min: usize,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// The `--configs` tree the referenced files come from, reported as a source.
    pub configs: Option<PathBuf>,
    /// Findings made before the walk: the config verifier's, for a `--configs` tree.
    /// They speak for the files they are about (see `evaluate`).
    pub findings: Vec<Finding>,
}

#[cfg(test)]
impl AuditConfig {
    /// A config for unit tests: no roots, a fixed clock, 30d/7d thresholds, one thread.
    pub(crate) fn for_tests() -> AuditConfig {
        AuditConfig {
            roots: vec![],
            referenced: vec![],
            now: time::macros::datetime!(2026-11-25 00:00 UTC),
            warn_seconds: 30 * 86_400,
            critical_seconds: 7 * 86_400,
            trusted: vec![],
            expected: vec![],
            cliff_min: 10,
            threads: 1,
            configs: None,
            findings: vec![],
        }
    }
}

/// Runs the audit.
pub fn run(cfg: &AuditConfig) -> Result<Report, AuditError> {
    if cfg.warn_seconds < cfg.critical_seconds {
        return Err(AuditError::Thresholds {
            warn: span_text(cfg.warn_seconds),
            critical: span_text(cfg.critical_seconds),
        });
    }
    let walked = discover::walk(cfg);
    let asked: Vec<&Root> = cfg.roots.iter().filter(|r| !r.extra).collect();
    let up = |r: &Root| walked.sources.iter().any(|s| s.up && s.path == r.path);
    if cfg.referenced.is_empty() && !asked.is_empty() && !asked.iter().any(|r| up(r)) {
        return Err(AuditError::NothingToAudit(
            asked.iter().map(|r| r.path.clone()).collect(),
        ));
    }
    Ok(evaluate::evaluate(cfg, walked))
}

/// A threshold as the user wrote it: `30d`, `36h`, `90s`.
fn span_text(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn states_at_their_edges() {
        let nb = datetime!(2026-01-01 00:00 UTC);
        let na = datetime!(2026-12-31 00:00 UTC);
        let (w, c) = (30 * 86_400, 7 * 86_400);
        let at = |now| State::at(nb, na, now, w, c);
        assert_eq!(at(datetime!(2025-12-31 23:59:59 UTC)), State::NotYetValid);
        assert_eq!(at(nb), State::Ok);
        assert_eq!(
            at(datetime!(2026-12-01 00:00 UTC)),
            State::Warn,
            "exactly 30 days left"
        );
        assert_eq!(at(datetime!(2026-11-30 23:59:59 UTC)), State::Ok);
        assert_eq!(
            at(datetime!(2026-12-24 00:00 UTC)),
            State::Critical,
            "exactly 7 days left"
        );
        assert_eq!(at(na), State::Critical, "valid through its notAfter second");
        assert_eq!(at(datetime!(2026-12-31 00:00:01 UTC)), State::Expired);
        assert_eq!(State::Warn.exit_code(), 1);
        assert_eq!(State::NotYetValid.exit_code(), 2);
    }

    #[test]
    fn serials_in_decimal_as_go_prints_them() {
        assert_eq!(decimal(&[0x00]), "0");
        assert_eq!(decimal(&[0x01, 0x00]), "256");
        assert_eq!(decimal(&[0x00, 0xff]), "255");
        assert_eq!(
            decimal(&[0x74, 0x8a, 0x0d, 0x88, 0x60, 0x5e, 0x9c, 0x4a, 0xe6, 0xde]),
            "550341137830329553970910"
        );
        assert_eq!(decimal(&[0xff]), "-1");
        assert_eq!(decimal(&[0x80]), "-128");
    }
}
