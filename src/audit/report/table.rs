//! The table for people: one row per certificate, the one that expires first on top,
//! then the findings, then one summary line.

use std::fmt::Write;

use super::date;
use crate::audit::{AuditedCert, Report, Severity, State};
use crate::span::human_left;

/// How to draw the table.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableOptions {
    /// ANSI colours (the caller decides: a terminal, and no NO_COLOR).
    pub color: bool,
    /// Only problems: certificates that are not ok, findings that warn or fail, no summary.
    pub quiet: bool,
}

const RESET: &str = "\x1b[0m";

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}{RESET}")
    } else {
        text.to_owned()
    }
}

fn state_color(s: State) -> &'static str {
    match s {
        State::Ok => "32",
        State::Warn => "33",
        State::Critical => "31",
        State::Expired => "1;31",
        State::NotYetValid => "35",
    }
}

fn severity_color(s: Severity) -> &'static str {
    match s {
        Severity::Error => "31",
        Severity::Warn => "33",
        Severity::Info => "36",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max || s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn left(c: &AuditedCert) -> String {
    match c.state {
        State::NotYetValid => format!(
            "starts in {}",
            human_left((c.info.not_before - now(c)).whole_seconds())
        ),
        _ => human_left(c.seconds_left),
    }
}

/// The audit's time, back from a certificate's notAfter and time left.
fn now(c: &AuditedCert) -> time::OffsetDateTime {
    c.info.not_after - time::Duration::seconds(c.seconds_left)
}

fn owner(c: &AuditedCert) -> String {
    match (&c.node, &c.profile) {
        (Some(n), Some(p)) => format!("{n}/{p}"),
        (Some(n), None) => n.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => "-".into(),
    }
}

/// Renders the report as a table.
pub fn table(r: &Report, o: TableOptions) -> String {
    let rows: Vec<&AuditedCert> = r
        .certificates
        .iter()
        .filter(|c| !o.quiet || c.state != State::Ok)
        .collect();
    let mut out = String::with_capacity(rows.len() * 160 + 1024);
    let owners = rows.iter().any(|c| c.node.is_some() || c.profile.is_some());
    if !rows.is_empty() {
        let _ = write!(
            out,
            "{:<13} {:<18} {:<10}  {:<40}  ",
            "STATE", "TIME LEFT", "NOT AFTER", "SUBJECT"
        );
        if owners {
            let _ = write!(out, "{:<30}  ", "NODE/PROFILE");
        }
        out.push_str("PATH\n");
    }
    // Written straight into the buffer: this loop runs once per certificate of a fleet.
    for c in &rows {
        if o.color {
            let _ = write!(
                out,
                "\x1b[{}m{:<13}{RESET} ",
                state_color(c.state),
                c.state.name()
            );
        } else {
            let _ = write!(out, "{:<13} ", c.state.name());
        }
        let d = c.info.not_after.to_offset(time::UtcOffset::UTC).date();
        let _ = write!(
            out,
            "{:<18} {:04}-{:02}-{:02}  ",
            left(c),
            d.year(),
            u8::from(d.month()),
            d.day()
        );
        let subject = crate::terminal::printable(c.short_subject());
        let subject = subject.as_ref();
        if subject.len() <= 40 {
            let _ = write!(out, "{subject:<40}  ");
        } else {
            let _ = write!(out, "{:<40}  ", truncate(subject, 40));
        }
        if owners {
            let _ = write!(out, "{:<30}  ", truncate(&owner(c), 30));
        }
        match c.path.to_str() {
            Some(p) => out.push_str(&crate::terminal::printable(p)),
            None => {
                let shown = c.path.display().to_string();
                out.push_str(&crate::terminal::printable(&shown));
            }
        }
        match &c.embedded {
            Some(e) => {
                let _ = write!(out, " [{} {}]", e.kind, e.key);
            }
            None if c.index > 0 => {
                let _ = write!(out, " #{}", c.index);
            }
            None => {}
        }
        out.push('\n');
    }
    let findings: Vec<_> = r
        .findings
        .iter()
        .filter(|f| !o.quiet || f.severity > Severity::Info)
        .collect();
    if !findings.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("FINDINGS\n");
        for f in findings {
            let sev = format!("{:<5}", f.severity.name());
            let _ = write!(
                out,
                "{} {:<17} ",
                paint(o.color, severity_color(f.severity), &sev),
                f.kind.name()
            );
            if let Some(p) = &f.path {
                let shown = p.display().to_string();
                let _ = write!(out, "{}: ", crate::terminal::printable(&shown));
            }
            out.push_str(&crate::terminal::printable(&f.message));
            out.push('\n');
        }
    }
    if o.quiet {
        return out;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary_line(r, o.color));
    out.push('\n');
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The one-line summary: counts by state, findings, the next expiry, cliffs, exit status.
pub fn summary_line(r: &Report, color: bool) -> String {
    let s = &r.summary;
    let mut parts = vec![format!(
        "{} ({} distinct) in {}: {} ok, {} warn, {} critical, {} expired, {} not yet valid",
        plural(s.certificates, "certificate", "certificates"),
        s.distinct,
        plural(s.files, "file", "files"),
        s.ok,
        s.warn,
        s.critical,
        s.expired,
        s.not_yet_valid
    )];
    parts.push(format!(
        "findings: {}, {}, {}",
        plural(s.findings_error, "error", "errors"),
        plural(s.findings_warn, "warning", "warnings"),
        plural(s.findings_info, "note", "notes")
    ));
    if let Some(n) = &s.next_expiry {
        parts.push(format!(
            "next expiry {} (in {}): {}",
            date(n.not_after),
            human_left(n.seconds_left),
            n.path.display()
        ));
    }
    if !s.cliffs.is_empty() {
        parts.push(format!(
            "expiry cliffs: {}",
            s.cliffs
                .iter()
                .map(|c| format!("{} ({} certificates)", c.date, c.count))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let status = format!("exit status {}", s.exit_code);
    let code = match s.exit_code {
        0 => "32",
        1 => "33",
        _ => "31",
    };
    parts.push(paint(color, code, &status));
    parts.join("; ")
}
