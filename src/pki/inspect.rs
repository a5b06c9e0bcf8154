//! A readable summary of a certificate, shared by `kpki inspect` and the audit.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use super::csr::ip_from;
use super::PkiError;

/// The key type of a certificate or CSR.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// "ECDSA P-256", "ECDSA P-384", "Ed25519", "RSA" …
    pub algorithm: String,
    pub bits: usize,
}

/// What a person (or a monitoring system) wants to know about a certificate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sans: Vec<String>,
    pub is_ca: bool,
    pub key_usage: Vec<String>,
    pub ext_key_usage: Vec<String>,
    #[serde(with = "::time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "::time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub seconds_left: i64,
    pub key: KeyInfo,
    pub sha256: String,
    pub subject_key_id: Option<String>,
    pub authority_key_id: Option<String>,
}

fn hex(b: &[u8], sep: &str) -> String {
    b.iter()
        .map(|x| format!("{x:02X}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// SHA-256 fingerprint in the colon-separated form `openssl x509 -fingerprint` prints.
pub fn fingerprint(der: &[u8]) -> String {
    hex(
        ring::digest::digest(&ring::digest::SHA256, der).as_ref(),
        ":",
    )
}

/// SANs as `DNS:name` / `IP:addr` strings, as openssl names them.
pub fn san_strings(san: &x509_parser::extensions::SubjectAlternativeName<'_>) -> Vec<String> {
    san.general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(b) => match ip_from(b) {
                Some(ip) => format!("IP:{ip}"),
                None => "IP:?".into(),
            },
            other => other.to_string(),
        })
        .collect()
}

/// Extended key usages by their RFC 5280 names (unknown ones as dotted OIDs).
pub fn eku_names(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let names = [
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
        (e.any, "anyExtendedKeyUsage"),
    ];
    let mut out: Vec<String> = names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect();
    out.extend(e.other.iter().map(|o| o.to_id_string()));
    out
}

pub(crate) fn key_info(spki: &SubjectPublicKeyInfo<'_>) -> KeyInfo {
    let oid = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let (algorithm, bits) = match (oid.as_str(), curve.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => ("ECDSA P-256".into(), 256),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => ("ECDSA P-384".into(), 384),
        ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => ("ECDSA P-521".into(), 521),
        ("1.2.840.10045.2.1", c) => (format!("ECDSA curve {}", c.unwrap_or("?")), 0),
        ("1.3.101.112", _) => ("Ed25519".into(), 256),
        ("1.2.840.113549.1.1.1", _) => (
            "RSA".into(),
            match spki.parsed() {
                Ok(PublicKey::RSA(r)) => r.key_size(),
                _ => 0,
            },
        ),
        (other, _) => (format!("key algorithm {other}"), 0),
    };
    KeyInfo { algorithm, bits }
}

/// Summarizes a DER certificate; `now` decides `seconds_left`.
pub fn summarize(der: &[u8], now: OffsetDateTime) -> Result<CertSummary, PkiError> {
    let (_, x) =
        parse_x509_certificate(der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let mut sans = Vec::new();
    let mut key_usage = Vec::new();
    let mut ext_key_usage = Vec::new();
    let mut ski = None;
    let mut aki = None;
    for ext in x.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(s) => sans = san_strings(s),
            ParsedExtension::KeyUsage(k) => {
                let names = [
                    (k.digital_signature(), "digitalSignature"),
                    (k.non_repudiation(), "nonRepudiation"),
                    (k.key_encipherment(), "keyEncipherment"),
                    (k.data_encipherment(), "dataEncipherment"),
                    (k.key_agreement(), "keyAgreement"),
                    (k.key_cert_sign(), "keyCertSign"),
                    (k.crl_sign(), "cRLSign"),
                ];
                key_usage = names
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| n.to_string())
                    .collect();
            }
            ParsedExtension::ExtendedKeyUsage(e) => ext_key_usage = eku_names(e),
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(hex(k.0, ":")),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| hex(k.0, ":"))
            }
            _ => {}
        }
    }
    let not_before = x.validity().not_before.to_datetime();
    let not_after = x.validity().not_after.to_datetime();
    Ok(CertSummary {
        subject: x.subject().to_string(),
        issuer: x.issuer().to_string(),
        serial: hex(x.raw_serial(), ":"),
        sans,
        is_ca: x.is_ca(),
        key_usage,
        ext_key_usage,
        not_before,
        not_after,
        seconds_left: (not_after - now).whole_seconds(),
        key: key_info(x.public_key()),
        sha256: fingerprint(der),
        subject_key_id: ski,
        authority_key_id: aki,
    })
}

/// RFC 3339 in UTC, second precision.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

impl KeyInfo {
    /// The kpki algorithm this key is, when it is one kpki issues.
    pub fn kpki_algorithm(&self) -> Option<super::KeyAlgorithm> {
        use super::KeyAlgorithm as A;
        Some(match (self.algorithm.as_str(), self.bits) {
            ("ECDSA P-256", _) => A::EcdsaP256,
            ("ECDSA P-384", _) => A::EcdsaP384,
            ("Ed25519", _) => A::Ed25519,
            ("RSA", 2048) => A::Rsa2048,
            ("RSA", 3072) => A::Rsa3072,
            ("RSA", 4096) => A::Rsa4096,
            _ => return None,
        })
    }
}

/// What the planner compares between a held certificate and what a profile asks for.
#[derive(Clone, Debug)]
pub struct CertFacts {
    pub cn: Vec<String>,
    pub o: Vec<String>,
    /// SANs in kpki's form (`IP:…`, `DNS:…`), as [`super::San`] displays them.
    pub sans: Vec<String>,
    pub ext_key_usage: Vec<String>,
    pub key: KeyInfo,
    /// The DER SubjectPublicKeyInfo, to renew a certificate for a key kpki does not hold.
    pub spki: Vec<u8>,
    /// The authority key identifier, lowercase hex: which CA signed it.
    pub issuer_key_id: Option<String>,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Reads the facts of a DER certificate.
pub fn facts(der: &[u8]) -> Result<CertFacts, PkiError> {
    let (_, x) =
        parse_x509_certificate(der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let mut sans = Vec::new();
    let mut ext_key_usage = Vec::new();
    let mut issuer_key_id = None;
    for ext in x.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(s) => sans = san_strings(s),
            ParsedExtension::ExtendedKeyUsage(e) => ext_key_usage = eku_names(e),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                issuer_key_id = a
                    .key_identifier
                    .as_ref()
                    .map(|k| hex(k.0, "").to_ascii_lowercase())
            }
            _ => {}
        }
    }
    Ok(CertFacts {
        cn: x
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap_or("?").to_owned())
            .collect(),
        o: x.subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap_or("?").to_owned())
            .collect(),
        sans,
        ext_key_usage,
        key: key_info(x.public_key()),
        spki: x.public_key().raw.to_vec(),
        issuer_key_id,
        serial: hex(x.raw_serial(), ":"),
        not_before: x.validity().not_before.to_datetime(),
        not_after: x.validity().not_after.to_datetime(),
    })
}

/// The key type of a PEM or DER public key (SubjectPublicKeyInfo).
pub fn public_key_info(bytes: &[u8]) -> Option<KeyInfo> {
    let der = match super::pem::objects(bytes) {
        Ok(objects) => objects.into_iter().find_map(|o| match o {
            super::pem::Object::PublicKey(d) => Some(d),
            _ => None,
        })?,
        Err(_) => bytes.to_vec(),
    };
    let (_, spki) = SubjectPublicKeyInfo::from_der(&der).ok()?;
    Some(key_info(&spki))
}
