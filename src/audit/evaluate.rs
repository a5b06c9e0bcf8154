//! From what the walk found to states and findings, all from the injected `now`.
//!
//! Per certificate: its state, its chain status, its key. Across the run: which CA
//! expires before leaves it signed, which day many certificates expire on (the cliff of
//! a cluster issued in one night), and what the inventory expects that is missing or
//! wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::discover::Walked;
use super::layout::{self, Expected, ExpectedFile};
use super::scan::{FileScan, Found, RawChain, TrustedCa};
use super::{
    AuditConfig, AuditedCert, ChainStatus, Cliff, Encoding, Finding, FindingKind, KeyCheck,
    NextExpiry, Report, Severity, State, Summary,
};

fn date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    t.format(&f).unwrap_or_default()
}

pub(crate) fn evaluate(cfg: &AuditConfig, walked: Walked) -> Report {
    let Walked {
        mut files,
        mut findings,
        sources,
    } = walked;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let by_path: HashMap<PathBuf, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();

    // Findings of the files themselves (unparsable, …).
    for f in &mut files {
        findings.append(&mut f.findings);
    }

    // Per certificate: state and chain.
    let now = cfg.now;
    for f in &mut files {
        for c in &mut f.certs {
            c.cert.seconds_left = (c.cert.not_after - now).whole_seconds();
            c.cert.state = State::at(
                c.cert.not_before,
                c.cert.not_after,
                now,
                cfg.warn_seconds,
                cfg.critical_seconds,
            );
            c.cert.chain = chain_status(c, &cfg.trusted);
            if let Some(fi) = chain_finding(c, &cfg.trusted) {
                findings.push(fi);
            }
        }
    }
    findings.extend(ca_expires_first(&files, &cfg.trusted));

    // Node and profile labels from the store's layout, then from the expectations.
    for f in &mut files {
        if let Some((profile, node)) = layout::store_labels(&f.path) {
            for c in &mut f.certs {
                c.cert.node.clone_from(&node);
                if c.cert.index == 0 {
                    c.cert.profile = Some(profile.clone());
                }
            }
        }
    }
    let mut explicit_keys: HashMap<PathBuf, PathBuf> = HashMap::new();
    let reported: HashSet<PathBuf> = findings.iter().filter_map(|f| f.path.clone()).collect();
    for e in &cfg.expected {
        if let Some(fi) = by_path.get(&e.path) {
            for c in &mut files[*fi].certs {
                if e.node.is_some() {
                    c.cert.node.clone_from(&e.node);
                }
                if c.cert.index == 0 && e.profile.is_some() {
                    c.cert.profile.clone_from(&e.profile);
                }
            }
        }
        if let ExpectedFile::Cert { key: Some(k), .. } = &e.file {
            explicit_keys.insert(e.path.clone(), k.clone());
        }
        let file = by_path.get(&e.path).map(|i| &files[*i]);
        findings.extend(check_expected(e, file, &reported, cfg));
    }

    // Keys: which key goes with which certificate, and key modes.
    findings.extend(keys(&mut files, &by_path, &explicit_keys));

    // Flatten and sort.
    let mut certificates: Vec<AuditedCert> = files
        .into_iter()
        .flat_map(|f| f.certs.into_iter().map(|c| c.cert))
        .collect();
    certificates.sort_by(|a, b| {
        (a.seconds_left, &a.path, a.index).cmp(&(b.seconds_left, &b.path, b.index))
    });

    let cliffs = cliffs(&certificates, cfg, &mut findings);
    findings.sort_by(|a, b| {
        (b.severity, &a.path, a.kind, &a.message).cmp(&(a.severity, &b.path, b.kind, &b.message))
    });
    findings.dedup_by(|a, b| a.path == b.path && a.kind == b.kind && a.message == b.message);

    let summary = summarize(&certificates, &findings, cliffs, sources, cfg);
    Report {
        certificates,
        findings,
        summary,
    }
}

fn chain_status(c: &Found, trusted: &[TrustedCa]) -> ChainStatus {
    match c.chain {
        RawChain::Unchecked => ChainStatus::Unchecked,
        RawChain::Anchor(i) => ChainStatus::Anchor {
            ca: trusted[i].name.clone(),
        },
        RawChain::Trusted(i) => ChainStatus::Trusted {
            ca: trusted[i].name.clone(),
            ca_path: trusted[i].path.clone(),
            ca_not_after: trusted[i].not_after,
        },
        RawChain::InFile(_) => match &c.in_file_issuer {
            Some((subject, not_after, _)) => ChainStatus::InFile {
                ca: subject.clone(),
                ca_not_after: *not_after,
            },
            None => ChainStatus::Unchecked,
        },
        RawChain::Untrusted => ChainStatus::Untrusted,
        RawChain::BadSignature(i) => ChainStatus::BadSignature {
            ca: trusted[i].name.clone(),
        },
        RawChain::ForeignRoot => ChainStatus::ForeignRoot,
    }
}

fn where_in(c: &AuditedCert) -> String {
    match (&c.embedded_kind, &c.embedded_key) {
        (Some(k), Some(n)) => format!("{k} '{n}': "),
        _ if c.index > 0 => format!("certificate #{}: ", c.index),
        _ => String::new(),
    }
}

fn cert_finding(c: &AuditedCert, kind: FindingKind, message: String) -> Finding {
    let mut f = Finding::new(Some(&c.path), kind, format!("{}{message}", where_in(c)));
    if let (Some(k), Some(n)) = (c.embedded_kind, &c.embedded_key) {
        f.embedded = Some(super::Embedded {
            kind: k,
            key: n.clone(),
        });
    }
    f
}

fn names(trusted: &[TrustedCa]) -> String {
    let mut v: Vec<&str> = trusted.iter().map(|t| t.name.as_str()).collect();
    v.dedup();
    v.join(", ")
}

fn chain_finding(c: &Found, trusted: &[TrustedCa]) -> Option<Finding> {
    let cert = &c.cert;
    Some(match c.chain {
        RawChain::Untrusted => cert_finding(
            cert,
            FindingKind::UntrustedIssuer,
            format!(
                "{} is issued by {}, which is none of the trusted CAs ({}); reissue it from the store or pass its CA with --ca",
                cert.short_subject(),
                cert.issuer,
                names(trusted)
            ),
        ),
        RawChain::BadSignature(i) => cert_finding(
            cert,
            FindingKind::BadSignature,
            format!(
                "{} names CA '{}' as issuer but that CA's key did not sign it (a CA of the same name with another key?); reissue it",
                cert.short_subject(),
                trusted[i].name
            ),
        ),
        RawChain::ForeignRoot if cert.is_ca => cert_finding(
            cert,
            FindingKind::ForeignCa,
            format!(
                "self-signed CA {} is not one of the trusted CAs ({})",
                cert.subject,
                names(trusted)
            ),
        ),
        RawChain::ForeignRoot => cert_finding(
            cert,
            FindingKind::UntrustedIssuer,
            format!(
                "{} is self-signed, not issued by a trusted CA ({})",
                cert.short_subject(),
                names(trusted)
            ),
        ),
        _ => return None,
    })
}

/// One finding per CA that expires before leaves it signed.
fn ca_expires_first(files: &[FileScan], trusted: &[TrustedCa]) -> Vec<Finding> {
    struct Late<'a> {
        ca: String,
        ca_path: PathBuf,
        ca_not_after: OffsetDateTime,
        leaves: BTreeMap<[u8; 32], &'a AuditedCert>,
    }
    let mut by_ca: BTreeMap<[u8; 32], Late<'_>> = BTreeMap::new();
    for f in files {
        for c in &f.certs {
            let (key, ca, ca_path, ca_not_after) = match (c.chain, &c.in_file_issuer) {
                (RawChain::Trusted(i), _) => (
                    trusted[i].fingerprint,
                    trusted[i].name.clone(),
                    trusted[i].path.clone(),
                    trusted[i].not_after,
                ),
                (RawChain::InFile(_), Some((subject, not_after, fp))) => {
                    (*fp, subject.clone(), f.path.clone(), *not_after)
                }
                _ => continue,
            };
            if c.cert.not_after <= ca_not_after {
                continue;
            }
            by_ca
                .entry(key)
                .or_insert_with(|| Late {
                    ca,
                    ca_path,
                    ca_not_after,
                    leaves: BTreeMap::new(),
                })
                .leaves
                .entry(c.cert.fingerprint)
                .or_insert(&c.cert);
        }
    }
    by_ca
        .into_values()
        .map(|l| {
            let latest = l
                .leaves
                .values()
                .max_by_key(|c| c.not_after)
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
                    latest.path.display(),
                    date(latest.not_after),
                    date(l.ca_not_after),
                ),
            )
        })
        .collect()
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
    file: Option<&FileScan>,
    reported: &HashSet<PathBuf>,
    cfg: &AuditConfig,
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
        // The walk saw nothing there: missing, or there but holding nothing usable
        // (the walk has reported why when it could not read or parse it).
        if std::fs::metadata(&e.path).is_err() {
            out.push(missing(
                "is not there; issue it with `kpki issue` or `kpki apply`, and install it",
            ));
        } else if !reported.contains(&e.path) {
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
            let Some(c) = file.certs.iter().find(|c| c.cert.index == 0) else {
                out.push(missing("is there but holds no certificate"));
                return out;
            };
            let c = &c.cert;
            if c.subject_parts.cn.as_deref() != Some(cn.as_str()) {
                out.push(cert_finding(
                    c,
                    FindingKind::SubjectMismatch,
                    format!(
                        "subject is {}, but {} must have CN={cn}; reissue it",
                        c.subject,
                        what(e)
                    ),
                ));
            }
            let have: HashSet<String> = c.sans.iter().map(|s| s.to_ascii_lowercase()).collect();
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
                .filter(|u| !c.ext_key_usage.contains(u))
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
            if let (Some(want), ChainStatus::Trusted { ca: got, .. }) = (ca, &c.chain) {
                if want != got {
                    out.push(cert_finding(
                        c,
                        FindingKind::WrongCa,
                        format!(
                            "is signed by CA '{got}', but {} must be signed by CA '{want}'",
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
                Some(name) => cfg.trusted.iter().filter(|t| &t.name == name).collect(),
                None => Vec::new(),
            };
            if !first.cert.is_ca {
                out.push(cert_finding(
                    &first.cert,
                    FindingKind::CaMismatch,
                    format!(
                        "{} holds {}, which is not a CA",
                        what(e),
                        first.cert.subject
                    ),
                ));
            } else if !want.is_empty()
                && !file
                    .certs
                    .iter()
                    .any(|c| want.iter().any(|t| t.fingerprint == c.cert.fingerprint))
            {
                out.push(cert_finding(
                    &first.cert,
                    FindingKind::CaMismatch,
                    format!(
                        "{} holds {} but not the store's CA '{}' ({}); install {}",
                        what(e),
                        first.cert.subject,
                        want[0].name,
                        want[0].subject,
                        want[0].path.display()
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

fn keys(
    files: &mut [FileScan],
    by_path: &HashMap<PathBuf, usize>,
    explicit: &HashMap<PathBuf, PathBuf>,
) -> Vec<Finding> {
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
    // Key matches: the key in the same file (a kubeconfig user's own key), an explicit
    // install pairing, or a sibling by name.
    let mut checks: Vec<(usize, usize, KeyCheck, Option<Finding>)> = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        for (ci, c) in f.certs.iter().enumerate() {
            let key = match c.cert.encoding {
                Encoding::Kubeconfig => {
                    if c.cert.embedded_kind != Some("user") {
                        continue;
                    }
                    f.keys
                        .iter()
                        .find(|k| {
                            k.embedded.as_ref().map(|e| &e.key) == c.cert.embedded_key.as_ref()
                        })
                        .map(|k| (fi, k))
                }
                _ if c.cert.index == 0 => {
                    let same = f
                        .keys
                        .iter()
                        .find(|k| k.embedded.is_none())
                        .map(|k| (fi, k));
                    same.or_else(|| {
                        let mut cands: Vec<PathBuf> =
                            explicit.get(&f.path).cloned().into_iter().collect();
                        if cands.is_empty() {
                            cands = sibling_keys(&f.path);
                        }
                        cands.iter().find_map(|p| {
                            let kf = *by_path.get(p)?;
                            files[kf].keys.first().map(|k| (kf, k))
                        })
                    })
                }
                _ => None,
            };
            let Some((kf, k)) = key else { continue };
            let matches = k.public.as_ref().map(|p| p == &c.public_key);
            let check = KeyCheck {
                path: files[kf].path.clone(),
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
                    &c.cert,
                    FindingKind::KeyMismatch,
                    format!(
                        "{whose} does not belong to this certificate ({}); install the matching key or reissue both",
                        c.cert.short_subject()
                    ),
                )
            });
            checks.push((fi, ci, check, finding));
        }
    }
    for (fi, ci, check, finding) in checks {
        files[fi].certs[ci].cert.key = Some(check);
        out.extend(finding);
    }
    out
}

fn cliffs(certs: &[AuditedCert], cfg: &AuditConfig, findings: &mut Vec<Finding>) -> Vec<Cliff> {
    let mut by_day: BTreeMap<String, BTreeMap<[u8; 32], &AuditedCert>> = BTreeMap::new();
    for c in certs.iter().filter(|c| c.seconds_left >= 0) {
        by_day
            .entry(date(c.not_after))
            .or_default()
            .entry(c.fingerprint)
            .or_insert(c);
    }
    let mut out = Vec::new();
    for (day, set) in by_day {
        if set.len() < cfg.cliff_min.max(2) {
            continue;
        }
        let first = set.values().map(|c| c.seconds_left).min().unwrap_or(0);
        let mut names: Vec<&str> = set.values().map(|c| c.short_subject()).collect();
        names.sort();
        names.dedup();
        let shown = names.iter().take(4).copied().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 4 {
            format!(" and {} more", names.len() - 4)
        } else {
            String::new()
        };
        findings.push(Finding::new(
            None,
            FindingKind::ExpiryCliff,
            format!(
                "{} certificates expire on {day} (in {}): {shown}{more}; plan their renewal in one maintenance window before then, or stagger it",
                set.len(),
                crate::span::human_left(first),
            ),
        ));
        out.push(Cliff {
            date: day,
            count: set.len(),
        });
    }
    out
}

fn summarize(
    certs: &[AuditedCert],
    findings: &[Finding],
    cliffs: Vec<Cliff>,
    sources: Vec<super::Source>,
    cfg: &AuditConfig,
) -> Summary {
    let mut s = Summary {
        now: Some(cfg.now),
        warn_seconds: cfg.warn_seconds,
        critical_seconds: cfg.critical_seconds,
        cliffs,
        sources,
        ..Summary::default()
    };
    let mut files = HashSet::new();
    let mut distinct = HashSet::new();
    let mut exit = 0;
    for c in certs {
        files.insert(&c.path);
        distinct.insert(c.fingerprint);
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
    s.files = files.len();
    s.certificates = certs.len();
    s.distinct = distinct.len();
    s.next_expiry = certs
        .iter()
        .filter(|c| c.seconds_left >= 0 && c.state != State::NotYetValid)
        .min_by_key(|c| c.seconds_left)
        .map(|c| NextExpiry {
            path: c.path.clone(),
            subject: c.subject.clone(),
            not_after: c.not_after,
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
}
