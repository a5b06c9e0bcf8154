//! The ledger: one JSON line per issuance, so the store can answer "what did we issue,
//! to whom, until when" without parsing every certificate, and rotation knows what to renew.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One issued certificate or key pair.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Hex serial as openssl prints it (colon-separated); empty for a key pair.
    pub serial: String,
    pub profile: String,
    /// The node name, `cluster`, or the CN of an ad-hoc certificate.
    pub target: String,
    pub node: Option<String>,
    /// The CA directory that signed it (empty for a key pair).
    pub ca: String,
    pub subject: String,
    pub sans: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub sha256: String,
    pub key_algorithm: String,
    /// `generated` (kpki made the key) or `csr` (signed a node's CSR).
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

/// Parses the ledger; a torn or foreign line is reported with its number.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// The ledger text with `records` appended.
pub fn append(existing: &[u8], records: &[Record]) -> Vec<u8> {
    let mut out = existing.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for r in records {
        out.extend_from_slice(
            serde_json::to_string(r)
                .expect("a record serializes")
                .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}
