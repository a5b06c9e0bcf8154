//! `--format prometheus`: the Prometheus text exposition format (version 0.0.4), for the
//! node_exporter textfile collector.
//!
//! Metric and label names are those of enix's x509-certificate-exporter, so its Grafana
//! dashboard and alert rules work unchanged:
//!
//! * `x509_cert_not_before`, `x509_cert_not_after` (Unix seconds), `x509_cert_expired`
//!   (0/1), `x509_cert_expires_in_seconds`, `x509_cert_valid_since_seconds`: one series per
//!   certificate, labelled `filename`, `filepath`, `serial_number` (decimal, as Go's
//!   `big.Int` prints it), `subject_C`/`_ST`/`_L`/`_O`/`_OU`/`_CN`, the same six `issuer_*`,
//!   `embedded_kind` (`cluster` or `user`) and `embedded_key` for kubeconfig data, plus
//!   kpki's `node` and `profile` where it knows them. Empty labels are left out, which
//!   Prometheus reads the same as empty. When two certificates would get the same label
//!   set (the same certificate twice in one bundle), both get enix's `discriminator`
//!   label, so the textfile collector never sees a duplicate series.
//! * `x509_cert_error`: 1 for a file (or kubeconfig entry) that could not be read or
//!   parsed, 0 for a file whose certificates were read.
//! * `x509_read_errors`: how many files could not be read or parsed.
//! * `x509_source_up{source_kind, source_name}`: 1 for each path audited, 0 for one that
//!   could not be.
//!
//! and kpki's own: `kpki_audit_certificates{state}`, `kpki_audit_findings{kind,severity}`
//! (every kind, 0 when absent, so alerts see 0 rather than nothing),
//! `kpki_audit_exit_status` and `kpki_audit_timestamp_seconds`.
//!
//! No sample carries a timestamp: the textfile collector refuses them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::audit::{AuditedCert, FindingKind, Report, State};

/// Escapes a label value: backslash, double quote and line feed.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn labels(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = String::from("{");
    for (k, v) in pairs {
        let Some(v) = v.filter(|v| !v.is_empty()) else {
            continue;
        };
        if s.len() > 1 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape(v));
    }
    s.push('}');
    s
}

fn filename(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn cert_labels(c: &AuditedCert) -> String {
    let path = c.path.display().to_string();
    let name = filename(&c.path);
    let s = &c.info.subject.parts;
    let i = &c.info.issuer.parts;
    let serial = c.info.serial_decimal();
    labels(&[
        ("filename", Some(&name)),
        ("filepath", Some(&path)),
        ("embedded_kind", c.embedded.as_ref().map(|e| e.kind)),
        ("embedded_key", c.embedded.as_ref().map(|e| e.key.as_str())),
        ("serial_number", Some(&serial)),
        ("issuer_C", i.c.as_deref()),
        ("issuer_ST", i.st.as_deref()),
        ("issuer_L", i.l.as_deref()),
        ("issuer_O", i.o.as_deref()),
        ("issuer_OU", i.ou.as_deref()),
        ("issuer_CN", i.cn.as_deref()),
        ("subject_C", s.c.as_deref()),
        ("subject_ST", s.st.as_deref()),
        ("subject_L", s.l.as_deref()),
        ("subject_O", s.o.as_deref()),
        ("subject_OU", s.ou.as_deref()),
        ("subject_CN", s.cn.as_deref()),
        ("node", c.node.as_deref()),
        ("profile", c.profile.as_deref()),
    ])
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders the report in the Prometheus text format.
pub fn prometheus(r: &Report) -> String {
    let now = r.summary.now.map(|t| t.unix_timestamp()).unwrap_or(0);
    let mut certs: Vec<&AuditedCert> = r.certificates.iter().collect();
    certs.sort_unstable_by(|a, b| {
        a.path
            .as_os_str()
            .cmp(b.path.as_os_str())
            .then(a.index.cmp(&b.index))
    });
    let mut sets: Vec<String> = certs.iter().map(|c| cert_labels(c)).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for s in &sets {
        *seen.entry(s.as_str()).or_default() += 1;
    }
    let dup: Vec<bool> = sets.iter().map(|s| seen[s.as_str()] > 1).collect();
    drop(seen);
    for ((s, c), d) in sets.iter_mut().zip(&certs).zip(dup) {
        if d {
            s.pop();
            let _ = write!(
                s,
                ",discriminator=\"{}-{}\"}}",
                crate::audit::scan_hex(&c.info.fingerprint[..4]).to_ascii_lowercase(),
                c.index
            );
        }
    }
    let mut out = String::with_capacity(certs.len() * 5 * 400 + 4096);
    type Value = fn(&AuditedCert, i64) -> i64;
    let per_cert: [(&str, &str, Value); 5] = [
        (
            "x509_cert_not_before",
            "Unix time of the certificate's notBefore.",
            |c, _| c.info.not_before.unix_timestamp(),
        ),
        (
            "x509_cert_not_after",
            "Unix time of the certificate's notAfter.",
            |c, _| c.info.not_after.unix_timestamp(),
        ),
        (
            "x509_cert_expired",
            "1 if the certificate is expired, 0 otherwise.",
            |c, _| i64::from(c.state == State::Expired),
        ),
        (
            "x509_cert_expires_in_seconds",
            "Seconds from the audit to the certificate's notAfter (negative once expired).",
            |c, _| c.seconds_left,
        ),
        (
            "x509_cert_valid_since_seconds",
            "Seconds from the certificate's notBefore to the audit.",
            |c, now| now - c.info.not_before.unix_timestamp(),
        ),
    ];
    for (name, help, value) in per_cert {
        family(&mut out, name, help, "gauge");
        for (c, l) in certs.iter().zip(&sets) {
            let _ = writeln!(out, "{name}{l} {}", value(c, now));
        }
    }

    // Per-file read errors: 1 where a file (or kubeconfig entry) could not be read or
    // parsed, 0 where certificates were read.
    let mut errors: BTreeMap<String, u8> = BTreeMap::new();
    for f in r.findings.iter().filter(|f| f.kind.is_read_error()) {
        let Some(p) = &f.path else { continue };
        let path = p.display().to_string();
        let name = filename(p);
        let e = f.embedded.as_ref();
        let l = labels(&[
            ("filename", Some(&name)),
            ("filepath", Some(&path)),
            ("embedded_kind", e.map(|e| e.kind)),
            ("embedded_key", e.map(|e| e.key.as_str())),
        ]);
        errors.insert(l, 1);
    }
    let read_errors = errors.len();
    for c in &certs {
        let path = c.path.display().to_string();
        let name = filename(&c.path);
        let l = labels(&[("filename", Some(&name)), ("filepath", Some(&path))]);
        errors.entry(l).or_insert(0);
    }
    family(
        &mut out,
        "x509_cert_error",
        "1 if the file could not be read or parsed, 0 if its certificates were read.",
        "gauge",
    );
    for (l, v) in &errors {
        let _ = writeln!(out, "x509_cert_error{l} {v}");
    }
    family(
        &mut out,
        "x509_read_errors",
        "Number of files that could not be read or parsed.",
        "gauge",
    );
    let _ = writeln!(out, "x509_read_errors {read_errors}");
    family(
        &mut out,
        "x509_source_up",
        "1 if the audited path could be read, 0 otherwise.",
        "gauge",
    );
    let mut sources: Vec<String> = r
        .summary
        .sources
        .iter()
        .map(|s| {
            let name = s.path.display().to_string();
            format!(
                "x509_source_up{} {}",
                labels(&[("source_kind", Some(s.kind)), ("source_name", Some(&name))]),
                u8::from(s.up)
            )
        })
        .collect();
    sources.sort();
    sources.dedup();
    for s in sources {
        let _ = writeln!(out, "{s}");
    }

    family(
        &mut out,
        "kpki_audit_certificates",
        "Certificates found by kpki audit, by state.",
        "gauge",
    );
    let s = &r.summary;
    for (state, n) in [
        (State::Ok, s.ok),
        (State::Warn, s.warn),
        (State::Critical, s.critical),
        (State::Expired, s.expired),
        (State::NotYetValid, s.not_yet_valid),
    ] {
        let _ = writeln!(
            out,
            "kpki_audit_certificates{{state=\"{}\"}} {n}",
            state.name()
        );
    }
    family(
        &mut out,
        "kpki_audit_findings",
        "Findings of kpki audit, by kind and severity.",
        "gauge",
    );
    let mut by_kind: HashMap<FindingKind, usize> = HashMap::new();
    for f in &r.findings {
        *by_kind.entry(f.kind).or_default() += 1;
    }
    for k in FindingKind::ALL {
        let _ = writeln!(
            out,
            "kpki_audit_findings{{kind=\"{}\",severity=\"{}\"}} {}",
            k.name(),
            k.severity().name(),
            by_kind.get(&k).copied().unwrap_or(0)
        );
    }
    family(
        &mut out,
        "kpki_audit_exit_status",
        "The exit status of the audit: 0 ok, 1 warning, 2 critical or failed check.",
        "gauge",
    );
    let _ = writeln!(out, "kpki_audit_exit_status {}", s.exit_code);
    family(
        &mut out,
        "kpki_audit_timestamp_seconds",
        "Unix time the audit evaluated the certificates at.",
        "gauge",
    );
    let _ = writeln!(out, "kpki_audit_timestamp_seconds {now}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(
            labels(&[
                ("a", Some("1")),
                ("b", None),
                ("c", Some("")),
                ("d", Some("\""))
            ]),
            r#"{a="1",d="\""}"#
        );
    }
}
