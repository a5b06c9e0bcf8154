//! Reading certificate signing requests. The CSR contributes its public key and nothing
//! else: the profile decides usages and constraints. Its requested SANs are returned only
//! so the caller can check them against what the node may have.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::{inspect, PkiError, San};

/// What kpki takes from a verified CSR.
#[derive(Debug, Clone)]
pub struct CsrInfo {
    /// The DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub key: inspect::KeyInfo,
    pub subject: String,
    /// The subject's CN and O values: compared with the profile's, never copied.
    pub subject_cn: Vec<String>,
    pub subject_o: Vec<String>,
    pub requested_sans: Vec<San>,
    /// Whether the CSR asks for basicConstraints CA:TRUE.
    pub requests_ca: bool,
}

/// Parses a DER CSR, verifies its self-signature and refuses weak or unknown keys.
pub fn parse_csr(der: &[u8]) -> Result<CsrInfo, PkiError> {
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| PkiError::BadCsr(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::BadCsr("trailing bytes after the CSR".into()));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let key = inspect::key_info(spki);
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < 2048 {
                return Err(PkiError::WeakKey(format!(
                    "RSA {bits} bits; at least 2048 bits are required"
                )));
            }
            if bits > 8192 {
                return Err(PkiError::UnsupportedKey(format!(
                    "RSA {bits} bits is larger than 8192"
                )));
            }
        }
        _ if key.algorithm == "ECDSA P-256"
            || key.algorithm == "ECDSA P-384"
            || key.algorithm == "Ed25519" => {}
        _ => {
            return Err(PkiError::UnsupportedKey(format!(
                "{}; use RSA (2048+), ECDSA P-256/P-384 or Ed25519",
                key.algorithm
            )))
        }
    }
    // Key strength first: ring will not even verify a signature made with RSA-1024, and
    // "too weak" is the useful message there.
    csr.verify_signature().map_err(|_| PkiError::CsrSignature)?;
    let mut requested_sans = Vec::new();
    let mut requests_ca = false;
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for n in &san.general_names {
                        requested_sans.push(match n {
                            GeneralName::DNSName(d) => San::Dns(d.to_ascii_lowercase()),
                            GeneralName::IPAddress(b) => San::Ip(ip_from(b).ok_or_else(|| {
                                PkiError::BadCsr("an IP SAN of odd length".into())
                            })?),
                            other => {
                                return Err(PkiError::BadCsr(format!(
                                    "unsupported SAN {other}; kpki issues DNS and IP SANs only"
                                )))
                            }
                        });
                    }
                }
                ParsedExtension::BasicConstraints(bc) => requests_ca |= bc.ca,
                _ => {}
            }
        }
    }
    Ok(CsrInfo {
        spki: spki.raw.to_vec(),
        key,
        subject: info.subject.to_string(),
        subject_cn: info
            .subject
            .iter_common_name()
            .map(|a| a.as_str().unwrap_or("?").to_owned())
            .collect(),
        subject_o: info
            .subject
            .iter_organization()
            .map(|a| a.as_str().unwrap_or("?").to_owned())
            .collect(),
        requested_sans,
        requests_ca,
    })
}

pub(crate) fn ip_from(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(<[u8; 4]>::try_from(b).ok()?.into()),
        16 => Some(<[u8; 16]>::try_from(b).ok()?.into()),
        _ => None,
    }
}
