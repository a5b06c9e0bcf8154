//! X.509 mechanics: keys, certificates, CSRs and their summaries. No file system, no
//! printing, no clock: times come in as arguments.

mod csr;
mod inspect;
mod issue;
mod keys;
pub mod pem;
pub mod verify;

use std::fmt;
use std::net::IpAddr;

pub use csr::{parse_csr, CsrInfo};
pub use inspect::{
    eku_names, facts, fingerprint, public_key_info, rfc3339, san_strings, summarize, CertFacts,
    CertSummary, KeyInfo,
};
pub use issue::{csr, new_ca, sign, CaSpec, LeafSpec, Signer};
pub use keys::{load_private_pem, private_pem, KeyAlgorithm, PrivateKey, ALGORITHM_NAMES};

/// Errors from X.509 work.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate a {0} key: {1}")]
    KeyGeneration(&'static str, String),
    #[error("cannot read private key: {0}")]
    BadKey(String),
    #[error("cannot build the certificate: {0}")]
    Build(String),
    #[error("not a certificate: {0}")]
    BadCertificate(String),
    #[error("not a certificate signing request: {0}")]
    BadCsr(String),
    #[error(
        "the CSR's signature does not verify: it was altered, or not made with the key it carries"
    )]
    CsrSignature,
    #[error("the CSR's key is too weak: {0}")]
    WeakKey(String),
    #[error("the CSR's key type is not accepted: {0}")]
    UnsupportedKey(String),
    #[error(
        "a lifetime of {0} from now ends after the year 9999, the last date a certificate can hold"
    )]
    Validity(String),
}

/// The fix for [`PkiError::Validity`].
pub const VALIDITY_HINT: &str = "shorten --validity (a year is 365 days; 10y is usual for a CA)";

/// The end of a lifetime of `span` from `start`, or an error when it is past the last date
/// a certificate can hold (checked: no overflow).
pub fn end_of(
    start: time::OffsetDateTime,
    span: crate::span::Span,
) -> Result<time::OffsetDateTime, PkiError> {
    start
        .checked_add(span.duration())
        .ok_or_else(|| PkiError::Validity(span.to_string()))
}

/// A subject alternative name.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(untagged)]
pub enum San {
    Ip(IpAddr),
    Dns(String),
}

impl San {
    /// An IP SAN when `s` is an address, a DNS SAN otherwise.
    pub fn parse(s: &str) -> Result<San, String> {
        let s = s.trim();
        let s = s
            .strip_prefix("IP:")
            .or_else(|| s.strip_prefix("DNS:"))
            .unwrap_or(s);
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.split('.').enumerate().all(|(i, l)| {
                (i == 0 && l == "*")
                    || (!l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-'))
            });
        if ok {
            Ok(San::Dns(s.to_ascii_lowercase()))
        } else {
            Err(format!("'{s}' is neither an IP address nor a DNS name"))
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Dns(d) => write!(f, "DNS:{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_kinds() {
        assert_eq!(
            San::parse("127.0.0.1").unwrap(),
            San::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            San::parse("DNS:Etcd01.example.com").unwrap(),
            San::Dns("etcd01.example.com".into())
        );
        assert!(San::parse("bad name").is_err());
        assert!(San::parse("a..b").is_err());
    }
}
