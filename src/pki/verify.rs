//! The checks a certificate file must pass before kpki writes it anywhere: its key is the
//! one it is paired with, it chains to the CA file written beside it, and it carries the
//! SANs and extended key usages its plan asked for. `issue --out`, `sign --out` and the
//! store's own issuance run these on the exact bytes they are about to write.

use x509_parser::prelude::*;

use super::{facts, San};
use crate::profile::Eku;

/// Whether `leaf` is signed by `ca` (names and signature).
pub fn issued_by(leaf: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Every certificate of a PEM (or DER) file, as DER.
fn certs(bytes: &[u8]) -> Vec<Vec<u8>> {
    super::pem::objects(bytes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| match o {
            super::pem::Object::Certificate(d) => Some(d),
            _ => None,
        })
        .collect()
}

/// What is wrong with a certificate file about to be written: `spki` is the DER public
/// key it must carry (from its private key or CSR), `ca_file` the trust file beside it.
/// An empty list means it may be written.
pub fn leaf_file(
    cert_file: &[u8],
    spki: Option<&[u8]>,
    ca_file: &[u8],
    sans: &[San],
    ekus: &[Eku],
) -> Vec<String> {
    let mut out = Vec::new();
    let leaf_ders = certs(cert_file);
    let Some(leaf_der) = leaf_ders.first() else {
        return vec!["the certificate file holds no certificate".into()];
    };
    let Ok((_, leaf)) = parse_x509_certificate(leaf_der) else {
        return vec!["the certificate does not parse".into()];
    };
    if let Some(spki) = spki {
        if leaf.public_key().raw != spki {
            out.push("the certificate is not for the key written beside it".into());
        }
    }
    let cas = certs(ca_file);
    let chains = cas.iter().any(|d| {
        parse_x509_certificate(d)
            .map(|(_, ca)| issued_by(&leaf, &ca))
            .unwrap_or(false)
    });
    if !chains {
        out.push(format!(
            "the certificate ({}) is not signed by a CA of the CA file written beside it",
            leaf.issuer()
        ));
    }
    if let Ok(f) = facts(leaf_der) {
        for s in sans {
            if !f.sans.contains(&s.to_string()) {
                out.push(format!("the certificate lacks SAN {s}"));
            }
        }
        for e in ekus {
            if !f.ext_key_usage.contains(&e.to_string()) {
                out.push(format!("the certificate lacks extended key usage {e}"));
            }
        }
    }
    out
}
