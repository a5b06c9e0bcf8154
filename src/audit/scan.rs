//! Reading one file: which certificates and private keys it holds, whatever its name.
//!
//! A file is read once, into a buffer the worker thread reuses, and sniffed in this
//! order: PEM (any `-----BEGIN`, every section read), DER (a SEQUENCE whose length is
//! exactly the file's: a check of four bytes), kubeconfig (`*-data` fields). Anything
//! else is not a certificate and is skipped without a word, unless its name says it is
//! one (`.crt`, `.cer`, `.der`): then it is reported as unparsable.
//!
//! Chain checks happen here too, while the parsed certificate is at hand, so no DER
//! outlives its file: each certificate is verified against the trusted CAs whose
//! subject is its issuer (or, with none given, against an issuer later in the same
//! file). Verifications are cached by (certificate, issuer) fingerprint, since a fleet
//! holds many copies of the same few certificates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use super::kubeconfig;
use super::{
    AuditError, AuditedCert, ChainStatus, Embedded, Encoding, Finding, FindingKind, NameParts,
    State,
};

/// A CA that certificates are checked against.
#[derive(Clone, Debug)]
pub struct TrustedCa {
    /// The store's name for it (`root`, `etcd`, …), or its CN for a `--ca` file.
    pub name: String,
    pub path: PathBuf,
    pub subject: String,
    pub not_after: OffsetDateTime,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) subject_raw: Vec<u8>,
    pub(crate) spki: Vec<u8>,
}

impl TrustedCa {
    /// Every CA certificate in a PEM or DER file. `name` names them (the store's CA
    /// directory); without it each is named by its CN.
    pub fn load(path: &Path, name: Option<&str>) -> Result<Vec<TrustedCa>, AuditError> {
        let bad = |reason: String| AuditError::BadCa {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let ders: Vec<Vec<u8>> = if kubeconfig::find(&bytes, b"-----BEGIN").is_some() {
            let mut v = Vec::new();
            for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
                match item {
                    Ok((SectionKind::Certificate, der)) => v.push(der),
                    Ok(_) => {}
                    Err(e) => return Err(bad(format!("broken PEM: {e}"))),
                }
            }
            v
        } else {
            vec![bytes]
        };
        let mut out = Vec::new();
        for der in &ders {
            let (_, x) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
            if !x.is_ca() {
                continue;
            }
            let subject = x.subject().to_string();
            out.push(TrustedCa {
                name: name
                    .map(str::to_owned)
                    .unwrap_or_else(|| first(x.subject(), Attr::Cn).unwrap_or(subject.clone())),
                path: path.to_path_buf(),
                subject,
                not_after: x.validity().not_after.to_datetime(),
                fingerprint: sha256(der),
                subject_raw: x.subject().as_raw().to_vec(),
                spki: x.public_key().raw.to_vec(),
            });
        }
        if out.is_empty() {
            return Err(bad("it holds no CA certificate".into()));
        }
        Ok(out)
    }
}

/// Signature checks done so far: (certificate, issuer) fingerprints → verified.
type Verified = HashMap<([u8; 32], [u8; 32]), bool>;

/// What the workers share: the trusted CAs and the verification cache.
pub(crate) struct Context<'a> {
    pub trusted: &'a [TrustedCa],
    cache: Mutex<Verified>,
}

impl<'a> Context<'a> {
    pub fn new(trusted: &'a [TrustedCa]) -> Context<'a> {
        Context {
            trusted,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn verify(
        &self,
        cert: &X509Certificate<'_>,
        cert_fp: &[u8; 32],
        issuer_spki: &[u8],
        issuer_fp: &[u8; 32],
    ) -> bool {
        let key = (*cert_fp, *issuer_fp);
        if let Some(v) = self.cache.lock().expect("cache lock").get(&key) {
            return *v;
        }
        let ok = SubjectPublicKeyInfo::from_der(issuer_spki)
            .map(|(_, spki)| cert.verify_signature(Some(&spki)).is_ok())
            .unwrap_or(false);
        self.cache.lock().expect("cache lock").insert(key, ok);
        ok
    }
}

/// How a certificate relates to the CAs, before names are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawChain {
    Unchecked,
    Anchor(usize),
    Trusted(usize),
    /// Signed by the certificate at this index of the same file (and section group).
    InFile(usize),
    Untrusted,
    BadSignature(usize),
    ForeignRoot,
}

/// One certificate as found, before evaluation.
pub(crate) struct Found {
    pub cert: AuditedCert,
    pub chain: RawChain,
    /// The subject public key bits, for matching a private key.
    pub public_key: Vec<u8>,
    /// The not_after of the in-file issuer, for `RawChain::InFile`.
    pub in_file_issuer: Option<(String, OffsetDateTime, [u8; 32])>,
}

/// A private key found in a file.
pub(crate) struct FoundKey {
    /// The raw public key (as in a certificate's subjectPublicKey bits); `None` when the
    /// key could not be read (encrypted, unknown algorithm).
    pub public: Option<Vec<u8>>,
    pub embedded: Option<Embedded>,
}

/// Everything found in one file.
pub(crate) struct FileScan {
    pub path: PathBuf,
    pub mode: u32,
    pub certs: Vec<Found>,
    pub keys: Vec<FoundKey>,
    pub findings: Vec<Finding>,
}

impl FileScan {
    pub fn empty(path: PathBuf, mode: u32) -> FileScan {
        FileScan {
            path,
            mode,
            certs: Vec::new(),
            keys: Vec::new(),
            findings: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty() && self.keys.is_empty() && self.findings.is_empty()
    }

    fn finding(&mut self, kind: FindingKind, message: String, embedded: Option<&Embedded>) {
        let mut f = Finding::new(Some(&self.path), kind, message);
        f.embedded = embedded.cloned();
        self.findings.push(f);
    }
}

/// File name extensions that say "this is a certificate".
pub(crate) fn named_like_cert(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("crt" | "cer" | "cert" | "der" | "pem")
    )
}

fn named_strictly_like_cert(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("crt" | "cer" | "cert" | "der")
    )
}

/// Whether `bytes` is exactly one DER SEQUENCE (the cheap test before parsing).
fn looks_like_der(bytes: &[u8]) -> bool {
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

/// Scans the bytes of one file.
pub(crate) fn scan(path: PathBuf, mode: u32, bytes: &[u8], ctx: &Context<'_>) -> FileScan {
    let mut out = FileScan::empty(path, mode);
    if kubeconfig::find(bytes, b"-----BEGIN").is_some() {
        pem(&mut out, bytes, Encoding::Pem, None, ctx);
        if out.certs.is_empty()
            && out.keys.is_empty()
            && out.findings.is_empty()
            && named_strictly_like_cert(&out.path)
        {
            out.finding(
                FindingKind::Unparsable,
                "holds no certificate (its PEM sections are of other kinds)".into(),
                None,
            );
        }
    } else if looks_like_der(bytes) {
        match X509Certificate::from_der(bytes) {
            Ok((_, x)) => {
                let fp = sha256(bytes);
                let chain = chain_one(&x, &fp, &[], ctx);
                let found = found(&out.path, 0, Encoding::Der, None, &x, fp, chain, None);
                out.certs.push(found);
            }
            Err(e) if named_like_cert(&out.path) => out.finding(
                FindingKind::Unparsable,
                format!("not a valid DER certificate: {e}"),
                None,
            ),
            Err(_) => {}
        }
    } else if kubeconfig::sniff(bytes) {
        kubeconfig_file(&mut out, bytes, ctx);
    } else if named_like_cert(&out.path) {
        out.finding(
            FindingKind::Unparsable,
            "named like a certificate but holds neither PEM nor DER".into(),
            None,
        );
    }
    out
}

fn kubeconfig_file(out: &mut FileScan, bytes: &[u8], ctx: &Context<'_>) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        out.finding(
            FindingKind::Unparsable,
            "looks like a kubeconfig but is not UTF-8 text".into(),
            None,
        );
        return;
    };
    for f in kubeconfig::fields(text) {
        let Some(data) = kubeconfig::base64(f.value) else {
            out.finding(
                FindingKind::Unparsable,
                format!(
                    "line {}: {} of {} '{}' is not valid base64",
                    f.line, f.name, f.embedded.kind, f.embedded.key
                ),
                Some(&f.embedded),
            );
            continue;
        };
        let before = (out.certs.len(), out.keys.len(), out.findings.len());
        if kubeconfig::find(&data, b"-----BEGIN").is_some() {
            pem(out, &data, Encoding::Kubeconfig, Some(&f.embedded), ctx);
        } else if f.name == "client-key-data" {
            // A DER private key: kubectl always writes PEM, but accept it.
            let public = key_public(SectionKind::PrivateKey, data);
            out.keys.push(FoundKey {
                public,
                embedded: Some(f.embedded.clone()),
            });
        } else if let Ok((_, x)) = X509Certificate::from_der(&data) {
            let fp = sha256(&data);
            let chain = chain_one(&x, &fp, &[], ctx);
            let index = out.certs.len();
            out.certs.push(found(
                &out.path,
                index,
                Encoding::Kubeconfig,
                Some(&f.embedded),
                &x,
                fp,
                chain,
                None,
            ));
        }
        if (out.certs.len(), out.keys.len(), out.findings.len()) == before {
            out.finding(
                FindingKind::Unparsable,
                format!(
                    "line {}: {} of {} '{}' holds no {}",
                    f.line,
                    f.name,
                    f.embedded.kind,
                    f.embedded.key,
                    if f.name == "client-key-data" {
                        "private key"
                    } else {
                        "certificate"
                    }
                ),
                Some(&f.embedded),
            );
        }
    }
}

/// Reads every PEM section of `bytes`: certificates (in order, as a chain) and keys.
fn pem(
    out: &mut FileScan,
    bytes: &[u8],
    encoding: Encoding,
    embedded: Option<&Embedded>,
    ctx: &Context<'_>,
) {
    let mut ders: Vec<Vec<u8>> = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        match item {
            Ok((SectionKind::Certificate, der)) => ders.push(der),
            Ok((
                kind @ (SectionKind::PrivateKey
                | SectionKind::RsaPrivateKey
                | SectionKind::EcPrivateKey),
                der,
            )) => out.keys.push(FoundKey {
                public: key_public(kind, der),
                embedded: embedded.cloned(),
            }),
            Ok(_) => {}
            Err(e) => {
                let what = match e {
                    rustls_pki_types::pem::Error::MissingSectionEnd { .. } => {
                        "truncated PEM: a section has no END line".to_string()
                    }
                    e => format!("broken PEM: {e}"),
                };
                let after = if ders.is_empty() {
                    String::new()
                } else {
                    format!(" (after {} good certificate(s))", ders.len())
                };
                out.finding(FindingKind::Unparsable, format!("{what}{after}"), embedded);
                break;
            }
        }
    }
    let base = out.certs.len();
    let mut parsed: Vec<(X509Certificate<'_>, [u8; 32])> = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok((_, x)) => parsed.push((x, sha256(der))),
            Err(e) => out.finding(
                FindingKind::Unparsable,
                format!("certificate #{} is not valid DER: {e}", base + i),
                embedded,
            ),
        }
    }
    for i in 0..parsed.len() {
        let (x, fp) = &parsed[i];
        let chain = chain_one(x, fp, &parsed, ctx);
        let in_file = match chain {
            RawChain::InFile(j) => {
                let (ix, ifp) = &parsed[j];
                Some((
                    ix.subject().to_string(),
                    ix.validity().not_after.to_datetime(),
                    *ifp,
                ))
            }
            _ => None,
        };
        let chain = match chain {
            RawChain::InFile(j) => RawChain::InFile(base + j),
            c => c,
        };
        out.certs.push(found(
            &out.path,
            base + i,
            encoding,
            embedded,
            x,
            *fp,
            chain,
            in_file,
        ));
    }
}

/// The raw public key of a private key (what a certificate's subjectPublicKey bits
/// hold for the same key), or `None` when it cannot be read (encrypted, unknown type).
///
/// SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys carry their public half,
/// so it is read from the structure; PKCS#8 keys go through rcgen (ring), which derives
/// it, with the same structural reading as a fallback.
fn key_public(kind: SectionKind, der: Vec<u8>) -> Option<Vec<u8>> {
    let der = zeroize::Zeroizing::new(der);
    match kind {
        SectionKind::RsaPrivateKey => der::rsa_public(&der),
        SectionKind::EcPrivateKey => der::sec1_public(&der),
        _ => {
            let key: PrivateKeyDer<'_> = PrivatePkcs8KeyDer::from(der.as_slice()).into();
            match rcgen::KeyPair::try_from(&key) {
                Ok(k) => Some(k.public_key_raw().to_vec()),
                Err(_) => der::pkcs8_public(&der),
            }
        }
    }
}

/// Just enough DER to find the public half of a private key.
mod der {
    /// Splits one TLV off the front: (tag, value, rest).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *b.first()?;
        let first = *b.get(1)? as usize;
        let (len, head) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let end = head.checked_add(len)?;
        Some((tag, b.get(head..end)?, b.get(end..)?))
    }

    fn encode_len(len: usize, out: &mut Vec<u8>) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }

    /// PKCS#1 RSAPrivateKey → the DER RSAPublicKey `SEQUENCE { n, e }`.
    pub(super) fn rsa_public(der: &[u8]) -> Option<Vec<u8>> {
        let (0x30, body, _) = tlv(der)? else {
            return None;
        };
        let (0x02, _version, rest) = tlv(body)? else {
            return None;
        };
        let (0x02, _, after_n) = tlv(rest)? else {
            return None;
        };
        let n_tlv = &rest[..rest.len() - after_n.len()];
        let (0x02, _, after_e) = tlv(after_n)? else {
            return None;
        };
        let e_tlv = &after_n[..after_n.len() - after_e.len()];
        let mut out = vec![0x30];
        encode_len(n_tlv.len() + e_tlv.len(), &mut out);
        out.extend_from_slice(n_tlv);
        out.extend_from_slice(e_tlv);
        Some(out)
    }

    /// SEC1 ECPrivateKey → the public point of its `[1] publicKey` field.
    pub(super) fn sec1_public(der: &[u8]) -> Option<Vec<u8>> {
        let (0x30, mut rest, _) = tlv(der)? else {
            return None;
        };
        while !rest.is_empty() {
            let (tag, value, next) = tlv(rest)?;
            if tag == 0xa1 {
                let (0x03, bits, _) = tlv(value)? else {
                    return None;
                };
                // A BIT STRING's first octet counts the unused bits (0 for a point).
                return bits.get(1..).map(<[u8]>::to_vec);
            }
            rest = next;
        }
        None
    }

    /// PKCS#8 PrivateKeyInfo → the public key of the key inside it.
    pub(super) fn pkcs8_public(der: &[u8]) -> Option<Vec<u8>> {
        let (0x30, body, _) = tlv(der)? else {
            return None;
        };
        let (0x02, _, rest) = tlv(body)? else {
            return None;
        };
        let (0x30, alg, rest) = tlv(rest)? else {
            return None;
        };
        let (0x04, inner, mut rest) = tlv(rest)? else {
            return None;
        };
        // OneAsymmetricKey (v2) may carry the public key itself: [1] IMPLICIT BIT STRING.
        while !rest.is_empty() {
            let (tag, value, next) = tlv(rest)?;
            if tag == 0x81 {
                return value.get(1..).map(<[u8]>::to_vec);
            }
            rest = next;
        }
        let (0x06, oid, _) = tlv(alg)? else {
            return None;
        };
        match oid {
            // rsaEncryption
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] => rsa_public(inner),
            // id-ecPublicKey
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => sec1_public(inner),
            // id-Ed25519: the inner OCTET STRING is the seed.
            [0x2b, 0x65, 0x70] => {
                let (0x04, seed, _) = tlv(inner)? else {
                    return None;
                };
                let kp = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
                Some(ring::signature::KeyPair::public_key(&kp).as_ref().to_vec())
            }
            _ => None,
        }
    }
}

/// Decides how `x` chains: to a trusted CA, or (with none given) to a certificate of
/// the same file, following at most a few in-file links to reach a trusted CA.
fn chain_one(
    x: &X509Certificate<'_>,
    fp: &[u8; 32],
    same_file: &[(X509Certificate<'_>, [u8; 32])],
    ctx: &Context<'_>,
) -> RawChain {
    chain_depth(x, fp, same_file, ctx, 0)
}

fn chain_depth(
    x: &X509Certificate<'_>,
    fp: &[u8; 32],
    same_file: &[(X509Certificate<'_>, [u8; 32])],
    ctx: &Context<'_>,
    depth: usize,
) -> RawChain {
    if let Some(a) = ctx.trusted.iter().position(|t| t.fingerprint == *fp) {
        return RawChain::Anchor(a);
    }
    let issuer = x.issuer().as_raw();
    if issuer == x.subject().as_raw() {
        return if ctx.trusted.is_empty() {
            RawChain::Unchecked
        } else {
            RawChain::ForeignRoot
        };
    }
    let mut bad = None;
    for (i, t) in ctx.trusted.iter().enumerate() {
        if t.subject_raw == issuer {
            if ctx.verify(x, fp, &t.spki, &t.fingerprint) {
                return RawChain::Trusted(i);
            }
            bad.get_or_insert(i);
        }
    }
    // An issuer in the same file: the chain file's next certificate.
    for (j, (ix, ifp)) in same_file.iter().enumerate() {
        if ifp == fp || ix.subject().as_raw() != issuer {
            continue;
        }
        if !ctx.verify(x, fp, ix.public_key().raw, ifp) {
            continue;
        }
        if ctx.trusted.is_empty() {
            return RawChain::InFile(j);
        }
        if depth < 4 {
            if let RawChain::Trusted(a) | RawChain::Anchor(a) =
                chain_depth(ix, ifp, same_file, ctx, depth + 1)
            {
                return RawChain::Trusted(a);
            }
        }
    }
    match (bad, ctx.trusted.is_empty()) {
        (Some(i), _) => RawChain::BadSignature(i),
        (None, true) => RawChain::Unchecked,
        (None, false) => RawChain::Untrusted,
    }
}

pub(crate) fn sha256(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn hex(bytes: &[u8], sep: bool) -> String {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if sep && i > 0 {
            s.push(':');
        }
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

#[derive(Clone, Copy)]
enum Attr {
    C,
    St,
    L,
    O,
    Ou,
    Cn,
}

fn first(name: &X509Name<'_>, a: Attr) -> Option<String> {
    let v = match a {
        Attr::C => name.iter_country().next(),
        Attr::St => name.iter_state_or_province().next(),
        Attr::L => name.iter_locality().next(),
        Attr::O => name.iter_organization().next(),
        Attr::Ou => name.iter_organizational_unit().next(),
        Attr::Cn => name.iter_common_name().next(),
    }?;
    v.as_str().ok().map(str::to_owned)
}

fn parts(name: &X509Name<'_>) -> NameParts {
    NameParts {
        c: first(name, Attr::C),
        st: first(name, Attr::St),
        l: first(name, Attr::L),
        o: first(name, Attr::O),
        ou: first(name, Attr::Ou),
        cn: first(name, Attr::Cn),
    }
}

#[allow(clippy::too_many_arguments)]
fn found(
    path: &Path,
    index: usize,
    encoding: Encoding,
    embedded: Option<&Embedded>,
    x: &X509Certificate<'_>,
    fp: [u8; 32],
    chain: RawChain,
    in_file_issuer: Option<(String, OffsetDateTime, [u8; 32])>,
) -> Found {
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = x.subject_alternative_name() {
        for n in &ext.value.general_names {
            sans.push(match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) => match ip(b) {
                    Some(ip) => format!("IP:{ip}"),
                    None => "IP:?".into(),
                },
                other => other.to_string(),
            });
        }
    }
    let mut ext_key_usage = Vec::new();
    if let Ok(Some(e)) = x.extended_key_usage() {
        let e = e.value;
        for (on, name) in [
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.code_signing, "codeSigning"),
            (e.email_protection, "emailProtection"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "OCSPSigning"),
            (e.any, "anyExtendedKeyUsage"),
        ] {
            if on {
                ext_key_usage.push(name.to_owned());
            }
        }
        ext_key_usage.extend(e.other.iter().map(|o| o.to_id_string()));
    }
    let v = x.validity();
    Found {
        cert: AuditedCert {
            path: path.to_path_buf(),
            index,
            encoding,
            embedded_kind: embedded.map(|e| e.kind),
            embedded_key: embedded.map(|e| e.key.clone()),
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            serial: hex(x.raw_serial(), true),
            sans,
            ext_key_usage,
            is_ca: x.is_ca(),
            not_before: v.not_before.to_datetime(),
            not_after: v.not_after.to_datetime(),
            seconds_left: 0,
            state: State::Ok,
            sha256: hex(&fp, true),
            node: None,
            profile: None,
            chain: ChainStatus::Unchecked,
            key: None,
            serial_decimal: x.serial.to_string(),
            subject_parts: parts(x.subject()),
            issuer_parts: parts(x.issuer()),
            fingerprint: fp,
        },
        chain,
        public_key: x.public_key().subject_public_key.data.to_vec(),
        in_file_issuer,
    }
}

fn ip(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_sniff_is_exact() {
        assert!(looks_like_der(&[0x30, 0x02, 0x05, 0x00]));
        assert!(!looks_like_der(&[0x30, 0x03, 0x05, 0x00]));
        assert!(!looks_like_der(b"hello world"));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.resize(4 + 256, 0);
        assert!(looks_like_der(&long));
    }

    #[test]
    fn names_like_cert() {
        assert!(named_like_cert(Path::new("/x/etcd.CRT")));
        assert!(named_like_cert(Path::new("a.pem")));
        assert!(!named_like_cert(Path::new("a.key")));
        assert!(!named_like_cert(Path::new("crt")));
    }
}
