//! `kpki render --check`: verifies what the configs of one node tree reference.
//!
//! For every [`Reference`] the tree's configs make ([`refs::scan`]): the file exists;
//! certificates, keys and CAs parse; a key matches the certificate it is paired with;
//! a certificate chains to the CA file the same config names for it; a serving or peer
//! certificate carries the SANs its listen/advertise settings need and the EKUs its use
//! needs; CA files hold CAs (one, where a flag takes one); keys are not readable by
//! others; certificates are within their validity at `now`; an EncryptionConfiguration
//! is not readable by others and holds keys kube-apiserver takes
//! ([`crate::encryption::problems`]). Each problem is one [`Finding`] (the type the audit
//! reports too) about a file, with its kind and the config and key that name the file.
//! Nothing here prints.
//!
//! [`check`] reads a tree on disk; [`check_tree`] any [`TreeFiles`], so a tree still in
//! memory gets the same verdict before anything is written. [`verify()`] judges a scan
//! already made: `audit --configs` runs it on the trees it audits.

use std::collections::BTreeMap;
use std::path::Path;

use ::time::OffsetDateTime;
use x509_parser::prelude::*;

use super::refs::{self, ConfigProblem, RefKind, Reference, Scan, Usage};
use super::tree::{DiskTree, TreeFiles};
use crate::finding::FindingKind;
use crate::material::file::FileError;
use crate::pki::pem::{self, Object, PrivateKey};
use crate::pki::verify::issued_by;

pub use crate::finding::Finding;

/// A certificate as read from a file or a kubeconfig.
struct Cert {
    der: Vec<u8>,
}

impl Cert {
    fn parsed(&self) -> X509Certificate<'_> {
        parse_x509_certificate(&self.der)
            .expect("parsed once when loaded")
            .1
    }
}

/// What a referenced file holds, once read.
enum Loaded {
    Missing,
    /// Not read, or not what it should hold: the kind of finding, and why.
    Unreadable(FindingKind, String),
    Certs(Vec<Cert>),
    /// A private key: its public half (subjectPublicKey bits) and the file's mode.
    Key {
        public: Vec<u8>,
        mode: Option<u32>,
    },
    /// Public keys (subjectPublicKey bits).
    Public(Vec<Vec<u8>>),
    /// An EncryptionConfiguration: the file's mode and what is wrong with it.
    Encryption {
        mode: u32,
        problems: Vec<String>,
    },
    Present,
}

/// The PEM sections of a file the daemons read (they take PEM only: a DER file holds
/// no section), through the one reader of certificate and key material.
fn pem_objects(bytes: &[u8]) -> Result<Vec<Object>, String> {
    match pem::sections(bytes) {
        (_, Some(e)) => Err(e.to_string()),
        (objects, None) => Ok(objects),
    }
}

fn load_certs(bytes: &[u8]) -> Loaded {
    let objects = match pem_objects(bytes) {
        Ok(o) => o,
        Err(e) => return Loaded::Unreadable(FindingKind::Unparsable, e),
    };
    let mut certs = Vec::new();
    for o in objects {
        let Object::Certificate(der) = o else {
            continue;
        };
        if let Err(e) = parse_x509_certificate(&der) {
            return Loaded::Unreadable(
                FindingKind::Unparsable,
                format!("holds a certificate that does not parse: {e}"),
            );
        }
        certs.push(Cert { der });
    }
    if certs.is_empty() {
        return Loaded::Unreadable(FindingKind::Unparsable, "holds no PEM CERTIFICATE".into());
    }
    Loaded::Certs(certs)
}

fn load_key(bytes: &[u8], mode: Option<u32>) -> Loaded {
    let key = match pem_objects(bytes) {
        Ok(objects) => objects.into_iter().find_map(|o| match o {
            Object::PrivateKey(k) => Some(k),
            _ => None,
        }),
        Err(e) => return Loaded::Unreadable(FindingKind::Unparsable, e),
    };
    match key.as_ref().and_then(PrivateKey::public_key) {
        Some(public) => Loaded::Key { public, mode },
        None => Loaded::Unreadable(
            FindingKind::Unparsable,
            "holds no private key kpki can read".into(),
        ),
    }
}

/// The subjectPublicKey bits of a SubjectPublicKeyInfo.
fn public_of_spki(spki: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::x509::SubjectPublicKeyInfo;
    SubjectPublicKeyInfo::from_der(spki)
        .ok()
        .map(|(_, k)| k.subject_public_key.data.to_vec())
}

fn load_public(bytes: &[u8]) -> Loaded {
    let objects = match pem_objects(bytes) {
        Ok(o) => o,
        Err(e) => return Loaded::Unreadable(FindingKind::Unparsable, e),
    };
    let keys: Vec<Vec<u8>> = objects
        .iter()
        .filter_map(|o| match o {
            Object::PublicKey(spki) => public_of_spki(spki),
            Object::Certificate(der) => parse_x509_certificate(der)
                .ok()
                .map(|(_, x)| x.public_key().subject_public_key.data.to_vec()),
            Object::PrivateKey(k) => k.public_key(),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return Loaded::Unreadable(FindingKind::Unparsable, "holds no PUBLIC KEY".into());
    }
    Loaded::Public(keys)
}

/// The kind of finding for a file that was not read.
fn file_kind(e: &FileError) -> FindingKind {
    match e {
        FileError::TooLarge { .. } => FindingKind::TooLarge,
        _ => FindingKind::Unreadable,
    }
}

fn load(tree: &dyn TreeFiles, r: &Reference) -> Loaded {
    match &r.kind {
        RefKind::EmbeddedCert(pem) | RefKind::EmbeddedCa(pem) => load_certs(pem.as_bytes()),
        RefKind::EmbeddedKey => match refs::embedded_key_tree(tree, r) {
            Ok(k) => load_key(&k, tree.mode(&r.config).ok()),
            Err(refs::ReadError::File { source, .. }) => {
                Loaded::Unreadable(file_kind(&source), source.to_string())
            }
            Err(e) => Loaded::Unreadable(FindingKind::Unparsable, e.to_string()),
        },
        kind => {
            // The mode first: it tells a missing file from an unreadable one, and a
            // config only needs to exist here (`refs` reads it).
            let mode = match tree.mode(&r.path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
                Err(e) => return Loaded::Unreadable(FindingKind::Unreadable, e.to_string()),
            };
            if *kind == RefKind::Config {
                return Loaded::Present;
            }
            let bytes = match tree.read(&r.path) {
                Ok(b) => b,
                Err(FileError::Missing) => return Loaded::Missing,
                Err(e) => return Loaded::Unreadable(file_kind(&e), e.to_string()),
            };
            match kind {
                RefKind::Key => load_key(&bytes, Some(mode)),
                RefKind::PublicKey => load_public(&bytes),
                RefKind::EncryptionConfig => {
                    let text =
                        zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                    Loaded::Encryption {
                        mode,
                        problems: crate::encryption::problems(&text),
                    }
                }
                _ => load_certs(&bytes),
            }
        }
    }
}

/// Whether a SAN list covers `host` (an IP address or a DNS name; wildcards match one label).
fn san_covers(x: &X509Certificate<'_>, host: &str) -> bool {
    let Ok(Some(san)) = x.subject_alternative_name() else {
        return false;
    };
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    san.value.general_names.iter().any(|n| match (n, ip) {
        (GeneralName::IPAddress(b), Some(ip)) => ip_from(b) == Some(ip),
        (GeneralName::DNSName(d), None) => {
            let (d, h) = (d.to_ascii_lowercase(), host.to_ascii_lowercase());
            d == h
                || d.strip_prefix("*.").is_some_and(|suffix| {
                    h.split_once('.')
                        .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
                })
        }
        _ => false,
    })
}

fn ip_from(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

fn ekus(x: &X509Certificate<'_>) -> Option<(bool, bool)> {
    match x.extended_key_usage() {
        Ok(Some(e)) => Some((
            e.value.server_auth || e.value.any,
            e.value.client_auth || e.value.any,
        )),
        // No EKU extension: any use (RFC 5280 §4.2.1.12; Go's crypto/x509 agrees).
        _ => None,
    }
}

fn eku_names(x: &X509Certificate<'_>) -> String {
    match ekus(x) {
        None => "no extended key usage".into(),
        Some((s, c)) => {
            let v: Vec<&str> = [(s, "serverAuth"), (c, "clientAuth")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| *n)
                .collect();
            if v.is_empty() {
                "neither serverAuth nor clientAuth".into()
            } else {
                v.join(", ")
            }
        }
    }
}

/// Checks the node tree at `root` (a staged `DIR/<node>` or an installed `/`). `now`
/// decides expiry. Findings are sorted by config and key.
pub fn check(root: &Path, now: OffsetDateTime) -> Vec<Finding> {
    check_tree(&DiskTree::new(root), now)
}

/// [`check`] of any tree: one on disk, or one in memory that is not written yet.
pub fn check_tree(tree: &dyn TreeFiles, now: OffsetDateTime) -> Vec<Finding> {
    check_tree_with(tree, super::daemons::DAEMONS, now)
}

/// [`check_tree`] reading the configs by other daemon declarations than kpki's own.
pub fn check_tree_with(
    tree: &dyn TreeFiles,
    daemons: &[super::daemons::Daemon],
    now: OffsetDateTime,
) -> Vec<Finding> {
    verify(tree, &refs::scan_tree_with(tree, daemons), now)
}

/// The verifier: what is wrong with what a [`Scan`] of `tree` found, at `now`. Each
/// finding is about a file (by install path): the referenced file, or the config itself
/// (when it cannot be read, or lacks a setting); it names the config and key. Sorted by
/// config and key. `render --check` prints these; `audit --configs` reports them.
pub fn verify(tree: &dyn TreeFiles, scan: &Scan, now: OffsetDateTime) -> Vec<Finding> {
    let mut findings: Vec<Finding> = scan
        .problems
        .iter()
        .map(|(config, problem)| {
            let kind = match problem {
                ConfigProblem::File(e) => file_kind(e),
                ConfigProblem::Parse(_) => FindingKind::Unparsable,
            };
            Finding::named(config, kind, problem.to_string(), config, "(file)")
        })
        .collect();
    let refs = &scan.references;
    let loaded: Vec<Loaded> = refs.iter().map(|r| load(tree, r)).collect();
    // About the referenced file (the config, for embedded data).
    let find = |r: &Reference, kind: FindingKind, problem: String| {
        Finding::named(&r.path, kind, problem, &r.config, &r.key)
    };
    // About the config: a setting it lacks.
    let lacks = |r: &Reference, problem: String| {
        Finding::named(&r.config, FindingKind::Missing, problem, &r.config, &r.key)
    };
    let shown = |r: &Reference| -> String {
        if r.kind.is_embedded() {
            "the embedded certificate".into()
        } else {
            r.path.display().to_string()
        }
    };
    // Index: (config, key) → position, to pair certificates with their CA.
    let by_key: BTreeMap<(&Path, &str), usize> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.config.as_path(), r.key.as_str()), i))
        .collect();

    for (i, r) in refs.iter().enumerate() {
        match &loaded[i] {
            Loaded::Missing => {
                findings.push(find(
                    r,
                    FindingKind::Missing,
                    format!("{} does not exist", r.path.display()),
                ));
                continue;
            }
            Loaded::Unreadable(kind, m) => {
                findings.push(find(r, *kind, format!("{} {m}", shown(r))));
                continue;
            }
            _ => {}
        }
        match (&r.kind, &loaded[i]) {
            (RefKind::Key | RefKind::EmbeddedKey, Loaded::Key { mode: Some(m), .. })
                if m & 0o077 != 0 =>
            {
                let what = if r.kind == RefKind::EmbeddedKey {
                    format!("{} (which embeds a private key)", r.config.display())
                } else {
                    r.path.display().to_string()
                };
                findings.push(find(
                    r,
                    FindingKind::KeyMode,
                    format!(
                        "{what} is readable by group or others (mode {m:04o}); chmod 600 {}",
                        if r.kind == RefKind::EmbeddedKey {
                            r.config.display()
                        } else {
                            r.path.display()
                        }
                    ),
                ));
            }
            (RefKind::EncryptionConfig, Loaded::Encryption { mode, problems }) => {
                if mode & 0o077 != 0 {
                    findings.push(find(
                        r,
                        FindingKind::KeyMode,
                        format!(
                            "{} holds encryption keys and is readable by group or others (mode {mode:04o}); chmod 600 {}",
                            shown(r),
                            r.path.display()
                        ),
                    ));
                }
                for p in problems {
                    findings.push(find(r, FindingKind::WrongUse, format!("{} {p}", shown(r))));
                }
            }
            (RefKind::Ca | RefKind::EmbeddedCa(_), Loaded::Certs(certs)) => {
                for c in certs {
                    let x = c.parsed();
                    if !x.is_ca() {
                        findings.push(find(
                            r,
                            FindingKind::WrongUse,
                            format!("{} holds {}, which is not a CA", shown(r), x.subject()),
                        ));
                    }
                }
                if r.usage == Usage::SingleCa && certs.len() != 1 {
                    findings.push(find(
                        r,
                        FindingKind::WrongUse,
                        format!(
                            "{} holds {} certificates; this flag takes a single CA",
                            shown(r),
                            certs.len()
                        ),
                    ));
                }
            }
            (RefKind::Cert | RefKind::EmbeddedCert(_), Loaded::Certs(certs)) => {
                let leaf_cert = &certs[0];
                let leaf = leaf_cert.parsed();
                let v = leaf.validity();
                if now > v.not_after.to_datetime() {
                    findings.push(find(
                        r,
                        FindingKind::OutsideValidity,
                        format!(
                            "{} expired on {}",
                            shown(r),
                            crate::pki::rfc3339(v.not_after.to_datetime())
                        ),
                    ));
                } else if now < v.not_before.to_datetime() {
                    findings.push(find(
                        r,
                        FindingKind::OutsideValidity,
                        format!(
                            "{} is not valid before {}",
                            shown(r),
                            crate::pki::rfc3339(v.not_before.to_datetime())
                        ),
                    ));
                }
                if r.usage == Usage::Signing {
                    if !leaf.is_ca() {
                        findings.push(find(
                            r,
                            FindingKind::WrongUse,
                            format!("{} is not a CA certificate, so it cannot sign", shown(r)),
                        ));
                    }
                    if certs.len() != 1 {
                        findings.push(find(
                            r,
                            FindingKind::WrongUse,
                            format!(
                                "{} holds {} certificates; this flag takes a single CA",
                                shown(r),
                                certs.len()
                            ),
                        ));
                    }
                } else if leaf.is_ca() {
                    findings.push(find(
                        r,
                        FindingKind::WrongUse,
                        format!(
                            "{} is a CA certificate, not a {}",
                            shown(r),
                            usage_word(r.usage)
                        ),
                    ));
                }
                let (need_server, need_client) = match r.usage {
                    Usage::Server => (true, false),
                    Usage::Client => (false, true),
                    Usage::ServerClient => (true, true),
                    _ => (false, false),
                };
                if let Some((server, client)) = ekus(&leaf) {
                    for (need, has, name) in [
                        (need_server, server, "serverAuth"),
                        (need_client, client, "clientAuth"),
                    ] {
                        if need && !has {
                            findings.push(find(
                                r,
                                FindingKind::EkuMissing,
                                format!(
                                    "{} lacks extended key usage {name} (it has {})",
                                    shown(r),
                                    eku_names(&leaf)
                                ),
                            ));
                        }
                    }
                }
                for host in &r.hosts {
                    if !san_covers(&leaf, host) {
                        let kind = if host.parse::<std::net::IpAddr>().is_ok() {
                            "IP"
                        } else {
                            "DNS"
                        };
                        findings.push(find(
                            r,
                            FindingKind::SanMissing,
                            format!(
                                "{} lacks SAN {kind}:{host}, which {} names",
                                shown(r),
                                r.hosts_from.join(" and ")
                            ),
                        ));
                    }
                }
                if let Some(ca_key) = &r.chains_to {
                    match by_key.get(&(r.config.as_path(), ca_key.as_str())) {
                        Some(&j) => {
                            if let Loaded::Certs(cas) = &loaded[j] {
                                if !cas.iter().any(|ca| issued_by(&leaf, &ca.parsed())) {
                                    findings.push(find(
                                        r,
                                        FindingKind::UntrustedIssuer,
                                        format!(
                                        "{} (issuer {}) does not chain to a CA in {} ({ca_key})",
                                        shown(r),
                                        leaf.issuer(),
                                        shown(&refs[j])
                                    ),
                                    ));
                                }
                            }
                        }
                        None => findings.push(lacks(
                            r,
                            format!(
                                "the config names no {ca_key} to verify {} against",
                                shown(r)
                            ),
                        )),
                    }
                }
            }
            _ => {}
        }
    }

    // Keys against their certificates: same config, same identity.
    for (i, r) in refs.iter().enumerate() {
        let Loaded::Key { public, .. } = &loaded[i] else {
            continue;
        };
        if r.usage == Usage::ServiceAccount {
            continue;
        }
        let cert = refs.iter().enumerate().find(|(_, c)| {
            c.config == r.config
                && c.identity == r.identity
                && matches!(c.kind, RefKind::Cert | RefKind::EmbeddedCert(_))
        });
        match cert {
            Some((j, c)) => {
                if let Loaded::Certs(certs) = &loaded[j] {
                    if certs[0].parsed().public_key().subject_public_key.data != public.as_slice() {
                        findings.push(find(
                            r,
                            FindingKind::KeyMismatch,
                            format!(
                                "{} does not match the certificate {} ({})",
                                shown(r),
                                shown(c),
                                c.key
                            ),
                        ));
                    }
                }
            }
            None => findings.push(lacks(
                r,
                format!("{} has no certificate beside it in this config", shown(r)),
            )),
        }
    }

    // Service-account keys: every signing key must be one the apiservers verify with.
    let publics: Vec<(&Reference, &Vec<Vec<u8>>)> = refs
        .iter()
        .zip(&loaded)
        .filter_map(|(r, l)| match l {
            Loaded::Public(k) if r.usage == Usage::ServiceAccount => Some((r, k)),
            _ => None,
        })
        .collect();
    if let Some((first, _)) = publics.first() {
        for (r, l) in refs.iter().zip(&loaded) {
            if let (Usage::ServiceAccount, Loaded::Key { public, .. }) = (r.usage, l) {
                if !publics.iter().any(|(_, keys)| keys.contains(public)) {
                    findings.push(find(
                        r,
                        FindingKind::KeyMismatch,
                        format!(
                            "{} does not match the service-account public key {} ({} {})",
                            shown(r),
                            first.path.display(),
                            first.config.display(),
                            first.key
                        ),
                    ));
                }
            }
        }
    }
    findings.sort_by(|a, b| (&a.named_by, &a.message).cmp(&(&b.named_by, &b.message)));
    findings.dedup();
    findings
}

fn usage_word(u: Usage) -> &'static str {
    match u {
        Usage::Server => "serving certificate",
        Usage::Client => "client certificate",
        Usage::ServerClient => "peer certificate",
        _ => "leaf certificate",
    }
}

/// Drops the "does not exist" findings for keys that stay on their node (signed from the
/// node's CSR, listed as `on-node` in the staged manifest): a staged tree cannot hold
/// them, and `render --check --root /` on the node checks them with their certificates.
pub fn on_node_present(findings: Vec<Finding>, on_node: &[String]) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| {
            f.kind != FindingKind::Missing
                || !on_node
                    .iter()
                    .any(|p| f.path.as_deref() == Some(Path::new(p)))
        })
        .collect()
}
