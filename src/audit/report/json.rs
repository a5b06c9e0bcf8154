//! `--format json`: one object, `{"certificates": […], "findings": […], "summary": {…}}`.
//! The field names are the serde names of [`Report`] and its parts, documented in
//! kpki-audit(1); renaming one is a breaking change.

use crate::audit::Report;

/// The report as pretty-printed JSON, with a final newline.
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("a report serializes");
    s.push('\n');
    s
}
