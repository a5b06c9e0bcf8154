//! PEM and DER input: certificates, chains and CSRs arrive in either encoding, whatever
//! the file is called.

use rustls_pki_types::pem::{PemObject, SectionKind};

/// One decoded object of a PEM or DER input.
#[derive(Debug)]
pub enum Object {
    Certificate(Vec<u8>),
    Csr(Vec<u8>),
    PrivateKey,
    Other,
}

/// Splits `bytes` into the objects it holds. PEM input yields one entry per section
/// (private keys are noted, never decoded further); anything else is taken as one DER
/// object whose kind is guessed by parsing.
pub fn objects(bytes: &[u8]) -> Result<Vec<Object>, String> {
    if looks_like_pem(bytes) {
        let mut out = Vec::new();
        for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
            let (kind, der) = item.map_err(|e| format!("broken PEM: {e}"))?;
            out.push(match kind {
                SectionKind::Certificate => Object::Certificate(der),
                SectionKind::Csr => Object::Csr(der),
                SectionKind::PrivateKey
                | SectionKind::RsaPrivateKey
                | SectionKind::EcPrivateKey => Object::PrivateKey,
                _ => Object::Other,
            });
        }
        if out.is_empty() {
            return Err("no PEM section found".into());
        }
        return Ok(out);
    }
    if x509_parser::parse_x509_certificate(bytes).is_ok() {
        return Ok(vec![Object::Certificate(bytes.to_vec())]);
    }
    if <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(bytes).is_ok() {
        return Ok(vec![Object::Csr(bytes.to_vec())]);
    }
    Err("neither PEM nor a DER certificate or CSR".into())
}

/// The first certificate of a PEM or DER input (a chain file's leaf).
pub fn first_cert(bytes: &[u8]) -> Option<Vec<u8>> {
    objects(bytes).ok()?.into_iter().find_map(|o| match o {
        Object::Certificate(d) => Some(d),
        _ => None,
    })
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// PEM-encodes DER with the given label, 64 columns and LF line ends (RFC 7468).
pub fn encode(label: &str, der: &[u8]) -> String {
    ::pem::encode_config(
        &::pem::Pem::new(label, der),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0u8..=200).collect();
        let pem = encode("CERTIFICATE", &der);
        let back: Vec<_> = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()).collect();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].as_ref().unwrap().1, der);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(objects(b"\x00\x01junk").is_err());
        assert!(objects(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").is_err());
    }
}
