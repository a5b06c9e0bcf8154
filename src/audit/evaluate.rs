//! From what the walk found to states and findings, all from the injected `now`.
//!
//! Per certificate: its state, its chain status, its key. Across the run: which CA
//! expires before leaves it signed, which day many certificates expire on (the cliff of
//! a cluster issued in one night), and what the inventory expects that is missing or
//! wrong.
//!
//! This part runs on one thread after the parallel walk, so it stays linear in the
//! number of certificates with cheap steps: paths are compared and hashed as bytes,
//! maps are built only over the few files that hold keys or are expected.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Date, OffsetDateTime};

use super::discover::Walked;
use super::layout::{self, Expected, ExpectedFile};
use super::scan::{FileScan, FoundKey, RawChain, TrustedCa};

type File = FileScan;
use super::{
    AuditConfig, AuditedCert, CertInfo, ChainStatus, Cliff, Encoding, Finding, FindingKind,
    KeyCheck, NextExpiry, Report, Severity, State, Summary,
};

fn date(t: OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    day(d)
}

fn day(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

pub(crate) fn evaluate(cfg: &AuditConfig, walked: Walked) -> Report {
    let Walked {
        mut files,
        mut findings,
        sources,
    } = walked;
    let trusted = &cfg.trusted;
    findings.extend(cfg.findings.iter().cloned());
    let mut late = LateLeaves::default();
    for f in &mut files {
        findings.append(&mut f.findings);
        for (c, raw) in f.certs.iter().zip(&f.chains) {
            late.add(raw, &c.info, &f.path, trusted);
        }
    }
    findings.extend(late.findings());

    // Node and profile from the store's layout (…/issued/<profile>/<target>/cert.pem).
    for f in &mut files {
        if !contains(f.path.as_os_str().as_bytes(), b"issued/") {
            continue;
        }
        if let Some((profile, node)) = layout::store_labels(&f.path) {
            for c in &mut f.certs {
                c.node.clone_from(&node);
                if c.index == 0 {
                    c.profile = Some(profile.clone());
                }
            }
        }
    }

    // What the inventory expects: labels, then checks.
    let expected: HashMap<&OsStr, usize> = cfg
        .expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_os_str(), i))
        .collect();
    let mut file_of_expected: HashMap<usize, usize> = HashMap::new();
    if !expected.is_empty() {
        for (fi, f) in files.iter_mut().enumerate() {
            let Some(&ei) = expected.get(f.path.as_os_str()) else {
                continue;
            };
            file_of_expected.insert(ei, fi);
            let e = &cfg.expected[ei];
            for c in &mut f.certs {
                if e.node.is_some() {
                    c.node.clone_from(&e.node);
                }
                if c.index == 0 && e.profile.is_some() {
                    c.profile.clone_from(&e.profile);
                }
            }
        }
    }
    let reported: HashSet<PathBuf> = findings.iter().filter_map(|f| f.path.clone()).collect();
    for (ei, e) in cfg.expected.iter().enumerate() {
        let file = file_of_expected.get(&ei).map(|fi| &files[*fi]);
        findings.extend(check_expected(e, file, &reported, trusted));
    }

    // Keys: which key goes with which certificate, and key modes.
    findings.extend(keys(&mut files, &cfg.expected));

    // Flatten and sort by time left.
    let with_certs = files.iter().filter(|f| !f.certs.is_empty()).count();
    let mut certificates: Vec<AuditedCert> = files.into_iter().flat_map(|f| f.certs).collect();
    certificates.sort_unstable_by(|a, b| {
        a.seconds_left
            .cmp(&b.seconds_left)
            .then_with(|| a.path.as_os_str().cmp(b.path.as_os_str()))
            .then(a.index.cmp(&b.index))
    });

    let cliffs = cliffs(&certificates, cfg, &mut findings);
    if cfg.configs.is_some() {
        findings = verified_first(findings, cfg);
    }
    findings.sort_by(|a, b| {
        (b.severity, &a.path, a.kind, &a.message).cmp(&(a.severity, &b.path, b.kind, &b.message))
    });
    findings.dedup_by(|a, b| a.path == b.path && a.kind == b.kind && a.message == b.message);

    let summary = summarize(&certificates, with_certs, &findings, cliffs, sources, cfg);
    Report {
        certificates,
        findings,
        summary,
    }
}

/// With `--configs`, the config verifier (the findings that name a config) speaks for the
/// files the configs name; the walk adds what only the audit knows (the chain to the
/// store's CAs, what the inventory and profiles expect, CA expiry, cliffs). A walk
/// finding is dropped when the verifier has one of the same kind about the same file,
/// when it says the file could not be read and the verifier has said something about
/// it, and when it pairs a referenced certificate with a key by file name (the configs
/// pair them, and the verifier checked that pairing).
fn verified_first(mut findings: Vec<Finding>, cfg: &AuditConfig) -> Vec<Finding> {
    let verified: HashSet<(&Path, FindingKind)> = cfg
        .findings
        .iter()
        .filter(|f| !f.named_by.is_empty())
        .filter_map(|f| Some((f.path.as_deref()?, f.kind)))
        .collect();
    let about: HashSet<&Path> = verified.iter().map(|(p, _)| *p).collect();
    let referenced: HashSet<&Path> = cfg.referenced.iter().map(|r| r.path.as_path()).collect();
    let reading = |k: FindingKind| {
        matches!(
            k,
            FindingKind::Unreadable
                | FindingKind::TooLarge
                | FindingKind::Unparsable
                | FindingKind::Vanished
                | FindingKind::BrokenSymlink
                | FindingKind::SymlinkLoop
                | FindingKind::Missing
        )
    };
    findings.retain(|f| {
        let Some(path) = f.path.as_deref().filter(|_| f.named_by.is_empty()) else {
            return true;
        };
        !(verified.contains(&(path, f.kind))
            || (reading(f.kind) && about.contains(path))
            || (f.kind == FindingKind::KeyMismatch && referenced.contains(path)))
    });
    findings
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    crate::pki::pem::find(hay, needle).is_some()
}

fn where_in(c: &AuditedCert) -> String {
    match &c.embedded {
        Some(e) => format!("{} '{}': ", e.kind, e.key),
        None if c.index > 0 => format!("certificate #{}: ", c.index),
        None => String::new(),
    }
}

fn cert_finding(c: &AuditedCert, kind: FindingKind, message: String) -> Finding {
    let mut f = Finding::new(Some(&c.path), kind, format!("{}{message}", where_in(c)));
    f.embedded = c.embedded.as_deref().cloned();
    f
}

fn names(trusted: &[TrustedCa]) -> String {
    let mut v: Vec<&str> = trusted.iter().map(|t| t.ca.name.as_str()).collect();
    v.dedup();
    v.join(", ")
}

pub(crate) fn chain_finding(c: &AuditedCert, trusted: &[TrustedCa]) -> Option<Finding> {
    Some(match &c.chain {
        ChainStatus::Untrusted => cert_finding(
            c,
            FindingKind::UntrustedIssuer,
            format!(
                "{} is issued by {}, which is none of the trusted CAs ({}); reissue it from the store or pass its CA with --ca",
                c.short_subject(),
                c.info.issuer.text,
                names(trusted)
            ),
        ),
        ChainStatus::BadSignature(ca) => cert_finding(
            c,
            FindingKind::BadSignature,
            format!(
                "{} names CA '{}' as issuer but that CA's key did not sign it (a CA of the same name with another key?); reissue it",
                c.short_subject(),
                ca.name
            ),
        ),
        ChainStatus::ForeignRoot if c.info.is_ca => cert_finding(
            c,
            FindingKind::ForeignCa,
            format!(
                "self-signed CA {} is not one of the trusted CAs ({})",
                c.info.subject.text,
                names(trusted)
            ),
        ),
        ChainStatus::ForeignRoot => cert_finding(
            c,
            FindingKind::UntrustedIssuer,
            format!(
                "{} is self-signed, not issued by a trusted CA ({})",
                c.short_subject(),
                names(trusted)
            ),
        ),
        _ => return None,
    })
}

/// Leaves that outlive the CA that signed them, by CA.
#[derive(Default)]
struct LateLeaves {
    by_ca: BTreeMap<[u8; 32], Late>,
}

struct Late {
    ca: String,
    ca_path: PathBuf,
    ca_not_after: OffsetDateTime,
    /// The distinct leaves, and one place each was found.
    leaves: BTreeMap<[u8; 32], (Arc<CertInfo>, Arc<Path>)>,
}

impl LateLeaves {
    fn add(&mut self, chain: &RawChain, info: &Arc<CertInfo>, path: &Arc<Path>, t: &[TrustedCa]) {
        let ca_not_after = match chain {
            RawChain::Trusted(a) => t[*a].ca.not_after,
            RawChain::InFile(i) => i.not_after,
            _ => return,
        };
        if info.not_after <= ca_not_after {
            return;
        }
        let (key, ca, ca_path) = match chain {
            RawChain::Trusted(a) => (
                t[*a].fingerprint,
                t[*a].ca.name.clone(),
                t[*a].ca.path.clone(),
            ),
            RawChain::InFile(i) => (i.fingerprint, i.subject.text.clone(), path.to_path_buf()),
            _ => return,
        };
        self.by_ca
            .entry(key)
            .or_insert_with(|| Late {
                ca,
                ca_path,
                ca_not_after,
                leaves: BTreeMap::new(),
            })
            .leaves
            .entry(info.fingerprint)
            .or_insert_with(|| (Arc::clone(info), Arc::clone(path)));
    }

    /// One finding per CA that expires before leaves it signed.
    fn findings(self) -> Vec<Finding> {
        self.by_ca
            .into_values()
            .map(|l| {
                let (latest, at) = l
                    .leaves
                    .values()
                    .max_by_key(|(c, _)| c.not_after)
                    .expect("at least one leaf");
                Finding::new(
                    Some(&l.ca_path),
                    FindingKind::CaExpiresFirst,
                    format!(
                        "CA {} expires {}, before {} certificate(s) it signed (the last, {} in {}, until {}): they stop working on {}; renew the CA before then",
                        l.ca,
                        date(l.ca_not_after),
                        l.leaves.len(),
                        latest.short_subject(),
                        at.display(),
                        date(latest.not_after),
                        date(l.ca_not_after),
                    ),
                )
            })
            .collect()
    }
}

fn what(e: &Expected) -> String {
    let thing = match &e.file {
        ExpectedFile::Cert { .. } => "certificate",
        ExpectedFile::Key => "private key",
        ExpectedFile::Ca { .. } => "CA certificate",
        ExpectedFile::Present => "file",
    };
    match (&e.profile, &e.node) {
        (Some(p), Some(n)) => format!("the {p} {thing} of {n}"),
        (Some(p), None) => format!("the {p} {thing}"),
        (None, Some(n)) => format!("the {thing} of {n}"),
        (None, None) => format!("the {thing}"),
    }
}

fn check_expected(
    e: &Expected,
    file: Option<&File>,
    reported: &HashSet<PathBuf>,
    trusted: &[TrustedCa],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let missing = |why: &str| {
        Finding::new(
            Some(&e.path),
            FindingKind::Missing,
            format!("{} {why}", what(e)),
        )
    };
    if matches!(e.file, ExpectedFile::Present) {
        if std::fs::symlink_metadata(&e.path).is_err() {
            out.push(missing(
                "is not there; issue it with `kpki issue` or `kpki apply`",
            ));
        }
        return out;
    }
    let Some(file) = file else {
        // The walk found nothing usable there: missing, or there but empty of
        // certificates and keys (the walk has said why if it could not read it).
        if reported.contains(&e.path) {
            // Already said: missing where a config points, unreadable, vanished.
        } else if std::fs::metadata(&e.path).is_err() {
            out.push(missing(
                "is not there; issue it with `kpki issue` or `kpki apply`, and install it",
            ));
        } else {
            out.push(missing("is there but holds nothing kpki can read"));
        }
        return out;
    };
    match &e.file {
        ExpectedFile::Key if file.keys.is_empty() => {
            out.push(missing("is there but holds no private key"))
        }
        ExpectedFile::Cert {
            cn,
            sans,
            ext_key_usage,
            ca,
            ..
        } => {
            let Some(c) = file.certs.iter().find(|c| c.index == 0) else {
                out.push(missing("is there but holds no certificate"));
                return out;
            };
            let i = &c.info;
            if i.subject.parts.cn.as_deref() != Some(cn.as_str()) {
                out.push(cert_finding(
                    c,
                    FindingKind::SubjectMismatch,
                    format!(
                        "subject is {}, but {} must have CN={cn}; reissue it",
                        i.subject.text,
                        what(e)
                    ),
                ));
            }
            let have: HashSet<String> = i.sans.iter().map(|s| s.to_ascii_lowercase()).collect();
            let lacking: Vec<String> = sans
                .iter()
                .map(|s| s.to_string())
                .filter(|s| !have.contains(&s.to_ascii_lowercase()))
                .collect();
            if !lacking.is_empty() {
                out.push(cert_finding(
                    c,
                    FindingKind::SanMissing,
                    format!(
                        "lacks SAN(s) {} that {} requires; reissue it with `kpki issue --force`",
                        lacking.join(", "),
                        what(e)
                    ),
                ));
            }
            let lacking: Vec<String> = ext_key_usage
                .iter()
                .map(|u| u.to_string())
                .filter(|u| !i.ext_key_usage.contains(u))
                .collect();
            if !lacking.is_empty() {
                out.push(cert_finding(
                    c,
                    FindingKind::EkuMissing,
                    format!(
                        "lacks extended key usage {} that {} requires; reissue it",
                        lacking.join(", "),
                        what(e)
                    ),
                ));
            }
            if let (Some(want), ChainStatus::Trusted(got)) = (ca, &c.chain) {
                if *want != got.name {
                    out.push(cert_finding(
                        c,
                        FindingKind::WrongCa,
                        format!(
                            "is signed by CA '{}', but {} must be signed by CA '{want}'",
                            got.name,
                            what(e)
                        ),
                    ));
                }
            }
        }
        ExpectedFile::Ca { ca } => {
            let Some(first) = file.certs.first() else {
                out.push(missing("is there but holds no certificate"));
                return out;
            };
            let want: Vec<&TrustedCa> = match ca {
                Some(name) => trusted.iter().filter(|t| &t.ca.name == name).collect(),
                None => Vec::new(),
            };
            if !first.info.is_ca {
                out.push(cert_finding(
                    first,
                    FindingKind::CaMismatch,
                    format!(
                        "{} holds {}, which is not a CA",
                        what(e),
                        first.info.subject.text
                    ),
                ));
            } else if !want.is_empty()
                && !file
                    .certs
                    .iter()
                    .any(|c| want.iter().any(|t| t.fingerprint == c.info.fingerprint))
            {
                out.push(cert_finding(
                    first,
                    FindingKind::CaMismatch,
                    format!(
                        "{} holds {} but not the store's CA '{}' ({}); install {}",
                        what(e),
                        first.info.subject.text,
                        want[0].ca.name,
                        want[0].subject,
                        want[0].ca.path.display()
                    ),
                ));
            }
        }
        _ => {}
    }
    out
}

/// Candidate key files for a certificate file, by the usual naming conventions:
/// `etcd.crt` + `etcd.key`, cfssl's `ca.pem` + `ca-key.pem`, `tls.crt` + `tls.key`,
/// `cert.pem` + `key.pem`.
fn sibling_keys(cert: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name), Some(stem)) = (
        cert.parent(),
        cert.file_name().and_then(|n| n.to_str()),
        cert.file_stem().and_then(|n| n.to_str()),
    ) else {
        return vec![];
    };
    let mut v = vec![
        format!("{stem}.key"),
        format!("{stem}-key.pem"),
        format!("{stem}.key.pem"),
        format!("{stem}_key.pem"),
        name.replace("cert", "key"),
        name.replace("crt", "key"),
    ];
    v.retain(|n| n != name);
    v.dedup();
    v.into_iter().map(|n| dir.join(n)).collect()
}

fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

fn keys(files: &mut [File], expected: &[Expected]) -> Vec<Finding> {
    let mut out = Vec::new();
    // Key modes.
    for f in files.iter() {
        if f.keys.is_empty() || f.mode & 0o077 == 0 {
            continue;
        }
        let what = if f.keys.iter().any(|k| k.embedded.is_some()) {
            "holds a private key (client-key-data)"
        } else {
            "holds a private key"
        };
        out.push(Finding::new(
            Some(&f.path),
            FindingKind::KeyMode,
            format!(
                "{what} and is mode {}, readable by {}; chmod 600 {}",
                mode_text(f.mode),
                if f.mode & 0o004 != 0 {
                    "everyone"
                } else {
                    "its group"
                },
                f.path.display()
            ),
        ));
    }
    // Key files by path, and the install pairings the profiles make.
    let key_files: HashMap<&OsStr, usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.keys.is_empty())
        .map(|(i, f)| (f.path.as_os_str(), i))
        .collect();
    if key_files.is_empty() {
        return out;
    }
    let explicit: HashMap<&OsStr, &Path> = expected
        .iter()
        .filter_map(|e| match &e.file {
            ExpectedFile::Cert { key: Some(k), .. } => Some((e.path.as_os_str(), k.as_path())),
            _ => None,
        })
        .collect();
    let mut checks: Vec<(usize, usize, KeyCheck, Option<Finding>)> = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        for (ci, c) in f.certs.iter().enumerate() {
            let key: Option<(usize, &FoundKey)> = match c.encoding {
                Encoding::Kubeconfig => {
                    let Some(user) = c.embedded.as_ref().filter(|e| e.kind == "user") else {
                        continue;
                    };
                    f.keys
                        .iter()
                        .find(|k| k.embedded.as_ref().map(|e| &e.key) == Some(&user.key))
                        .map(|k| (fi, k))
                }
                _ if c.index == 0 => {
                    let same = f
                        .keys
                        .iter()
                        .find(|k| k.embedded.is_none())
                        .map(|k| (fi, k));
                    same.or_else(|| {
                        let cands: Vec<PathBuf> = match explicit.get(f.path.as_os_str()) {
                            Some(k) => vec![k.to_path_buf()],
                            None => sibling_keys(&f.path),
                        };
                        cands.iter().find_map(|p| {
                            let kf = *key_files.get(p.as_os_str())?;
                            files[kf].keys.first().map(|k| (kf, k))
                        })
                    })
                }
                _ => None,
            };
            let Some((kf, k)) = key else { continue };
            let matches = k.public.as_ref().map(|p| *p == c.info.public_key);
            let check = KeyCheck {
                path: files[kf].path.to_path_buf(),
                matches,
                mode: mode_text(files[kf].mode),
            };
            let finding = (matches == Some(false)).then(|| {
                let whose = if kf == fi {
                    "the private key in the same file".to_string()
                } else {
                    format!("the private key {}", files[kf].path.display())
                };
                cert_finding(
                    c,
                    FindingKind::KeyMismatch,
                    format!(
                        "{whose} does not belong to this certificate ({}); install the matching key or reissue both",
                        c.short_subject()
                    ),
                )
            });
            checks.push((fi, ci, check, finding));
        }
    }
    for (fi, ci, check, finding) in checks {
        files[fi].certs[ci].key = Some(check);
        out.extend(finding);
    }
    out
}

fn cliffs(certs: &[AuditedCert], cfg: &AuditConfig, findings: &mut Vec<Finding>) -> Vec<Cliff> {
    let mut by_day: BTreeMap<Date, HashMap<[u8; 32], &AuditedCert>> = BTreeMap::new();
    for c in certs.iter().filter(|c| c.seconds_left >= 0) {
        by_day
            .entry(c.info.not_after.to_offset(time::UtcOffset::UTC).date())
            .or_default()
            .entry(c.info.fingerprint)
            .or_insert(c);
    }
    let mut out = Vec::new();
    for (d, set) in by_day {
        if set.len() < cfg.cliff_min.max(2) {
            continue;
        }
        let first = set.values().map(|c| c.seconds_left).min().unwrap_or(0);
        let mut names: Vec<&str> = set.values().map(|c| c.short_subject()).collect();
        names.sort_unstable();
        names.dedup();
        let shown = names.iter().take(4).copied().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 4 {
            format!(" and {} other names", names.len() - 4)
        } else {
            String::new()
        };
        findings.push(Finding::new(
            None,
            FindingKind::ExpiryCliff,
            format!(
                "{} certificates expire on {} (in {}): {shown}{more}; plan their renewal in one maintenance window before then, or stagger it",
                set.len(),
                day(d),
                crate::span::human_left(first),
            ),
        ));
        out.push(Cliff {
            date: day(d),
            count: set.len(),
        });
    }
    out
}

fn summarize(
    certs: &[AuditedCert],
    files: usize,
    findings: &[Finding],
    cliffs: Vec<Cliff>,
    sources: Vec<super::Source>,
    cfg: &AuditConfig,
) -> Summary {
    let mut s = Summary {
        now: Some(cfg.now),
        warn_seconds: cfg.warn_seconds,
        critical_seconds: cfg.critical_seconds,
        files,
        certificates: certs.len(),
        cliffs,
        sources,
        ..Summary::default()
    };
    let mut distinct = HashSet::new();
    let mut exit = 0;
    for c in certs {
        distinct.insert(c.info.fingerprint);
        match c.state {
            State::Ok => s.ok += 1,
            State::Warn => s.warn += 1,
            State::Critical => s.critical += 1,
            State::Expired => s.expired += 1,
            State::NotYetValid => s.not_yet_valid += 1,
        }
        exit = exit.max(c.state.exit_code());
    }
    for f in findings {
        match f.severity {
            Severity::Error => s.findings_error += 1,
            Severity::Warn => s.findings_warn += 1,
            Severity::Info => s.findings_info += 1,
        }
        exit = exit.max(f.severity.exit_code());
    }
    s.distinct = distinct.len();
    s.next_expiry = certs
        .iter()
        .find(|c| c.seconds_left >= 0 && c.state != State::NotYetValid)
        .map(|c| NextExpiry {
            path: c.path.to_path_buf(),
            subject: c.info.subject.text.clone(),
            not_after: c.info.not_after,
            seconds_left: c.seconds_left,
        });
    s.exit_code = exit;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_key_names() {
        let v: Vec<String> = sibling_keys(Path::new("/e/etcd.crt"))
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert!(v.contains(&"/e/etcd.key".to_string()));
        let v: Vec<String> = sibling_keys(Path::new("/e/ca.pem"))
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert!(v.contains(&"/e/ca-key.pem".to_string()));
        let v: Vec<String> = sibling_keys(Path::new("/e/cert.pem"))
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert!(v.contains(&"/e/key.pem".to_string()));
    }

    #[test]
    fn days_are_iso() {
        let d = Date::from_calendar_date(2027, time::Month::January, 5).unwrap();
        assert_eq!(day(d), "2027-01-05");
    }
}
