//! Building certificates with rcgen, with every field set by kpki rather than left to
//! rcgen's defaults (which give a serial derived from the public key, a 1975–4096
//! validity and no authority key identifier).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::{PkiError, PrivateKey, San};
use crate::profile::Eku;

/// What a new CA certificate holds.
pub struct CaSpec<'a> {
    pub cn: &'a str,
    pub o: &'a str,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// What a leaf certificate holds; fully concrete, nothing left to defaults.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    pub cn: String,
    pub o: Vec<String>,
    pub sans: Vec<San>,
    pub ext_key_usage: Vec<Eku>,
    /// RSA subject keys also get keyEncipherment; ECDSA and Ed25519 keys must not
    /// (RFC 5480 §3, RFC 8813 §3, RFC 8410 §5).
    pub rsa_key: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A CA ready to sign: its certificate and its private key, decrypted in memory only.
pub struct Signer {
    issuer: Issuer<'static, PrivateKey>,
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
    pub not_after: OffsetDateTime,
}

impl Signer {
    pub fn new(cert_pem: &str, key: PrivateKey) -> Result<Signer, PkiError> {
        let bad = |m: String| PkiError::BadCertificate(format!("CA certificate: {m}"));
        let der = super::pem::objects(cert_pem.as_bytes())
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .find_map(|o| match o {
                super::pem::Object::Certificate(d) => Some(CertificateDer::from(d)),
                _ => None,
            })
            .ok_or_else(|| bad("it holds no certificate".into()))?;
        let (_, x) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
        if x.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::BadKey(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        let not_after = x.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| PkiError::BadCertificate(format!("CA certificate: {e}")))?;
        Ok(Signer {
            issuer,
            cert_der: der,
            cert_pem: cert_pem.to_owned(),
            not_after,
        })
    }
}

/// A random positive serial of 126 bits (RFC 5280 §4.1.2.2 allows 20 octets; CA/B
/// Forum asks for at least 64 random bits). The top bits are fixed so the encoding is
/// always 16 octets and positive.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PkiError::Build("the system random generator failed".into()))?;
    b[0] = (b[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

fn name(cn: &str, o: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in o {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn san_types(sans: &[San]) -> Result<Vec<SanType>, PkiError> {
    sans.iter()
        .map(|s| match s {
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            San::Dns(d) => d
                .as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| PkiError::Build(format!("bad DNS name {d}"))),
        })
        .collect()
}

/// A PEM CSR for `key` naming `cn`, `o` and `sans`, as a node sends to the CA host.
pub fn csr(cn: &str, o: &[String], sans: &[San], key: &PrivateKey) -> Result<String, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn, o);
    p.subject_alt_names = san_types(sans)?;
    let csr = p
        .serialize_request(key)
        .map_err(|e| PkiError::Build(e.to_string()))?;
    csr.pem().map_err(|e| PkiError::Build(e.to_string()))
}

/// Makes a self-signed CA certificate and its key.
pub fn new_ca(spec: &CaSpec<'_>, key: &PrivateKey) -> Result<String, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(spec.cn, &[spec.o.to_owned()]);
    p.serial_number = Some(random_serial()?);
    p.not_before = spec.not_before;
    p.not_after = spec.not_after;
    // No path length limit: a later CA rotation cross-signs the new root with the old one,
    // and a pathLenConstraint of 0 would make that path invalid.
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.key_identifier_method = KeyIdMethod::Sha256;
    let cert = p
        .self_signed(key)
        .map_err(|e| PkiError::Build(e.to_string()))?;
    Ok(cert.pem())
}

/// Signs a leaf for `public_key` with `signer`.
pub fn sign(
    spec: &LeafSpec,
    public_key: &impl PublicKeyData,
    signer: &Signer,
) -> Result<CertificateDer<'static>, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(&spec.cn, &spec.o);
    p.serial_number = Some(random_serial()?);
    p.not_before = spec.not_before;
    p.not_after = spec.not_after;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = if spec.rsa_key {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ]
    } else {
        vec![KeyUsagePurpose::DigitalSignature]
    };
    p.extended_key_usages = spec
        .ext_key_usage
        .iter()
        .map(|e| match e {
            Eku::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Eku::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    p.subject_alt_names = san_types(&spec.sans)?;
    // The AKI carries the CA's key identifier only (no issuer name and serial), so a
    // cross-signed successor CA with the same key can vouch for these leaves too.
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    let cert = p
        .signed_by(public_key, &signer.issuer)
        .map_err(|e| PkiError::Build(e.to_string()))?;
    Ok(cert.der().clone())
}
