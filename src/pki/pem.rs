//! PEM and DER input: certificates, chains, CSRs, private and public keys arrive in either
//! encoding, whatever the file is called. This is kpki's one reader of certificate and key
//! material: the commands, the store, `render --check` and the audit all decode through
//! it (PEM sections with rustls-pki-types, DER with x509-parser), and a private key's
//! public half comes from [`PrivateKey::public_key`] alone.

use rustls_pki_types::pem::{self, PemObject, SectionKind};
use zeroize::Zeroizing;

/// Why bytes are not PEM or DER kpki can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("truncated PEM: a section has no END line")]
    Truncated,
    #[error("broken PEM: a BEGIN line is malformed ({0})")]
    BadBegin(String),
    #[error("broken PEM: {0}")]
    Base64(String),
    #[error("broken PEM: a section is larger than any certificate or key")]
    TooLarge,
    #[error("no PEM section found")]
    NoSection,
    #[error("neither PEM nor a DER certificate or CSR")]
    NotPemOrDer,
}

impl From<pem::Error> for PemError {
    fn from(e: pem::Error) -> PemError {
        match e {
            pem::Error::MissingSectionEnd { .. } => PemError::Truncated,
            pem::Error::IllegalSectionStart { line } => {
                PemError::BadBegin(String::from_utf8_lossy(&line).trim().to_owned())
            }
            pem::Error::Base64Decode(m) => PemError::Base64(format!("base64 decode error: {m}")),
            pem::Error::SectionTooLarge => PemError::TooLarge,
            e => PemError::Base64(e.to_string()),
        }
    }
}

/// How a private key is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// `PRIVATE KEY`: PKCS#8 (RFC 5958), as kpki writes keys.
    Pkcs8,
    /// `RSA PRIVATE KEY`: PKCS#1 (RFC 8017).
    Pkcs1,
    /// `EC PRIVATE KEY`: SEC1 (RFC 5915).
    Sec1,
}

/// A private key as found: its encoding and DER, wiped from memory when dropped. A `Debug`
/// print shows the format only.
pub struct PrivateKey {
    pub format: KeyFormat,
    der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?})", self.format)
    }
}

impl PrivateKey {
    pub fn new(format: KeyFormat, der: Vec<u8>) -> PrivateKey {
        PrivateKey {
            format,
            der: Zeroizing::new(der),
        }
    }

    /// The raw public key (what a certificate's subjectPublicKey bits hold for the same
    /// key), or `None` when it cannot be read (an unknown algorithm, broken DER).
    pub fn public_key(&self) -> Option<Vec<u8>> {
        super::keys::public_of_private(self.format, &self.der)
    }
}

/// One decoded object of a PEM or DER input.
#[derive(Debug)]
pub enum Object {
    Certificate(Vec<u8>),
    Csr(Vec<u8>),
    PrivateKey(PrivateKey),
    /// A SubjectPublicKeyInfo (`PUBLIC KEY`).
    PublicKey(Vec<u8>),
    Other,
}

fn object(kind: SectionKind, der: Vec<u8>) -> Object {
    match kind {
        SectionKind::Certificate => Object::Certificate(der),
        SectionKind::Csr => Object::Csr(der),
        SectionKind::PublicKey => Object::PublicKey(der),
        SectionKind::PrivateKey => Object::PrivateKey(PrivateKey::new(KeyFormat::Pkcs8, der)),
        SectionKind::RsaPrivateKey => Object::PrivateKey(PrivateKey::new(KeyFormat::Pkcs1, der)),
        SectionKind::EcPrivateKey => Object::PrivateKey(PrivateKey::new(KeyFormat::Sec1, der)),
        _ => Object::Other,
    }
}

/// The PEM sections of `bytes`, in order, up to the first broken one: what was read
/// before it, and why it stopped (a chain file cut short still yields its first
/// certificates). Sections of kinds kpki does not know are skipped.
pub fn sections(bytes: &[u8]) -> (Vec<Object>, Option<PemError>) {
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        match item {
            Ok((kind, der)) => out.push(object(kind, der)),
            Err(e) => return (out, Some(e.into())),
        }
    }
    (out, None)
}

/// Splits `bytes` into the objects it holds. PEM input yields one entry per section;
/// anything else is taken as one DER object whose kind is guessed by parsing.
pub fn objects(bytes: &[u8]) -> Result<Vec<Object>, PemError> {
    if is_pem(bytes) {
        let (out, err) = sections(bytes);
        if let Some(e) = err {
            return Err(e);
        }
        if out.is_empty() {
            return Err(PemError::NoSection);
        }
        return Ok(out);
    }
    if x509_parser::parse_x509_certificate(bytes).is_ok() {
        return Ok(vec![Object::Certificate(bytes.to_vec())]);
    }
    if <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(bytes).is_ok() {
        return Ok(vec![Object::Csr(bytes.to_vec())]);
    }
    Err(PemError::NotPemOrDer)
}

/// The first certificate of a PEM or DER input (a chain file's leaf).
pub fn first_cert(bytes: &[u8]) -> Option<Vec<u8>> {
    objects(bytes).ok()?.into_iter().find_map(|o| match o {
        Object::Certificate(d) => Some(d),
        _ => None,
    })
}

/// Whether `bytes` holds a PEM BEGIN line anywhere.
pub fn is_pem(bytes: &[u8]) -> bool {
    find(bytes, b"-----BEGIN").is_some()
}

/// Whether `bytes` is exactly one DER SEQUENCE (a check of a few bytes, before parsing).
pub fn is_der(bytes: &[u8]) -> bool {
    if bytes.len() < 4 || bytes[0] != 0x30 {
        return false;
    }
    let (len, head) = match bytes[1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (bytes[2] as usize, 3),
        0x82 => (((bytes[2] as usize) << 8) | bytes[3] as usize, 4),
        0x83 if bytes.len() >= 5 => (
            ((bytes[2] as usize) << 16) | ((bytes[3] as usize) << 8) | bytes[4] as usize,
            5,
        ),
        _ => return false,
    };
    head + len == bytes.len()
}

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = 0;
    while at + needle.len() <= hay.len() {
        let i = hay[at..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        let start = at + i;
        if &hay[start..start + needle.len()] == needle {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// PEM-encodes DER with the given label, 64 columns and LF line ends (RFC 7468).
pub fn encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        for n in [0usize, 1, 47, 48, 49, 201] {
            let der: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let pem = encode("CERTIFICATE", &der);
            assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
            let (back, err) = sections(pem.as_bytes());
            assert!(err.is_none());
            match &back[..] {
                [Object::Certificate(d)] => assert_eq!(*d, der),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(objects(b"\x00\x01junk").unwrap_err(), PemError::NotPemOrDer);
        assert!(matches!(
            objects(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(PemError::Base64(_))
        ));
        assert_eq!(
            objects(b"-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap_err(),
            PemError::Truncated
        );
    }

    #[test]
    fn sections_keep_what_came_before_a_break() {
        let good = encode("CERTIFICATE", b"\x30\x00");
        let text = format!("{good}{good}-----BEGIN CERTIFICATE-----\nAAAA\n");
        let (got, err) = sections(text.as_bytes());
        assert_eq!(got.len(), 2);
        assert_eq!(err, Some(PemError::Truncated));
    }

    #[test]
    fn der_sniff_is_exact() {
        assert!(is_der(&[0x30, 0x02, 0x05, 0x00]));
        assert!(!is_der(&[0x30, 0x03, 0x05, 0x00]));
        assert!(!is_der(b"hello world"));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.resize(4 + 256, 0);
        assert!(is_der(&long));
    }

    #[test]
    fn find_substring() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abd"), None);
        assert_eq!(find(b"-----BEGIN X", b"-----BEGIN"), Some(0));
    }

    #[test]
    fn a_private_key_never_prints() {
        let k = PrivateKey::new(KeyFormat::Pkcs8, vec![1, 2, 3]);
        assert_eq!(format!("{k:?}"), "PrivateKey(Pkcs8)");
    }
}
