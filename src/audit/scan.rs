//! Reading one file: which certificates and private keys it holds, whatever its name.
//!
//! A file is read once, into a buffer the worker thread reuses, and sniffed in this
//! order: PEM (any `-----BEGIN`, every section read), DER (a SEQUENCE whose length is
//! exactly the file's: a check of four bytes), kubeconfig (`*-data` fields). Anything
//! else is not a certificate and is skipped without a word, unless its name says it is
//! one (`.crt`, `.cer`, `.der`): then it is reported as unparsable.
//!
//! A fleet holds many copies of few certificates (the CA in every chain file and
//! kubeconfig, the same leaf staged, exported and installed), so each worker keeps what
//! it parsed by SHA-256 of the DER, and names by their DER: a copy costs a base64
//! decode, a hash and a lookup, and every copy shares one [`CertInfo`].
//!
//! Chain checks happen here too, while the DER is at hand: each certificate is verified
//! against the trusted CAs whose subject is its issuer (or, with none given, against an
//! issuer later in the same file). Verifications are cached by (certificate, issuer)
//! fingerprint for the whole run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::{PemObject, SectionKind};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use time::OffsetDateTime;

use super::evaluate::chain_finding;
use super::kubeconfig;
use super::{
    AuditConfig, AuditError, AuditedCert, CaRef, CertInfo, ChainStatus, Embedded, Encoding,
    Finding, FindingKind, Name, NameParts, State,
};

/// A CA that certificates are checked against.
#[derive(Clone, Debug)]
pub struct TrustedCa {
    /// Name, path and expiry, shared by every certificate that chains to it.
    pub ca: Arc<CaRef>,
    pub subject: String,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) subject_raw: Vec<u8>,
    pub(crate) spki: Vec<u8>,
}

impl TrustedCa {
    /// Every CA certificate in a PEM or DER file. `name` names them (the store's CA
    /// directory); without it each is named by its CN.
    pub fn load(path: &Path, name: Option<&str>) -> Result<Vec<TrustedCa>, AuditError> {
        let bytes = crate::source::read(path).map_err(|e| AuditError::BadCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        TrustedCa::parse(&bytes, path, name)
    }

    /// Every CA certificate in PEM or DER `bytes` read from `path`.
    pub fn parse(
        bytes: &[u8],
        path: &Path,
        name: Option<&str>,
    ) -> Result<Vec<TrustedCa>, AuditError> {
        let bad = |reason: String| AuditError::BadCa {
            path: path.to_path_buf(),
            reason,
        };
        let ders: Vec<Vec<u8>> = if kubeconfig::find(bytes, b"-----BEGIN").is_some() {
            let mut v = Vec::new();
            for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
                match item {
                    Ok((SectionKind::Certificate, der)) => v.push(der),
                    Ok(_) => {}
                    Err(e) => return Err(bad(format!("broken PEM: {e}"))),
                }
            }
            v
        } else {
            vec![bytes.to_vec()]
        };
        let mut out = Vec::new();
        for der in &ders {
            let (_, x) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
            if !x.is_ca() {
                continue;
            }
            let subject = x.subject().to_string();
            let cn = first(x.subject(), Attr::Cn);
            out.push(TrustedCa {
                ca: Arc::new(CaRef {
                    name: name
                        .map(str::to_owned)
                        .or(cn)
                        .unwrap_or_else(|| subject.clone()),
                    path: path.to_path_buf(),
                    not_after: x.validity().not_after.to_datetime(),
                }),
                subject,
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

/// What the workers share: the audit's time and thresholds, the trusted CAs and the
/// verification cache.
pub(crate) struct Context<'a> {
    pub trusted: &'a [TrustedCa],
    pub now: OffsetDateTime,
    pub warn_seconds: i64,
    pub critical_seconds: i64,
    verified: Mutex<Verified>,
}

impl<'a> Context<'a> {
    pub fn new(cfg: &'a AuditConfig) -> Context<'a> {
        Context {
            trusted: &cfg.trusted,
            now: cfg.now,
            warn_seconds: cfg.warn_seconds,
            critical_seconds: cfg.critical_seconds,
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn chain_status(&self, raw: &RawChain) -> ChainStatus {
        let t = self.trusted;
        match raw {
            RawChain::Unchecked => ChainStatus::Unchecked,
            RawChain::Anchor(a) => ChainStatus::Anchor(Arc::clone(&t[*a].ca)),
            RawChain::Trusted(a) => ChainStatus::Trusted(Arc::clone(&t[*a].ca)),
            RawChain::InFile(i) => ChainStatus::InFile(Arc::clone(i)),
            RawChain::Untrusted => ChainStatus::Untrusted,
            RawChain::BadSignature(a) => ChainStatus::BadSignature(Arc::clone(&t[*a].ca)),
            RawChain::ForeignRoot => ChainStatus::ForeignRoot,
        }
    }

    /// Whether `issuer_spki` verifies the signature of the certificate `der`.
    fn verify(&self, der: &[u8], fp: &[u8; 32], issuer_spki: &[u8], issuer_fp: &[u8; 32]) -> bool {
        let key = (*fp, *issuer_fp);
        if let Some(v) = self.verified.lock().expect("cache lock").get(&key) {
            return *v;
        }
        let ok = match (
            X509Certificate::from_der(der),
            SubjectPublicKeyInfo::from_der(issuer_spki),
        ) {
            (Ok((_, x)), Ok((_, spki))) => x.verify_signature(Some(&spki)).is_ok(),
            _ => false,
        };
        self.verified.lock().expect("cache lock").insert(key, ok);
        ok
    }
}

/// What one worker has parsed so far: certificates by fingerprint, names by DER.
#[derive(Default)]
pub(crate) struct Cache {
    certs: HashMap<[u8; 32], Arc<CertInfo>>,
    names: HashMap<Vec<u8>, Arc<Name>>,
}

/// How a certificate relates to the CAs, before evaluation.
#[derive(Clone, Debug)]
pub(crate) enum RawChain {
    Unchecked,
    Anchor(usize),
    Trusted(usize),
    /// Signed by this certificate, found in the same file.
    InFile(Arc<CertInfo>),
    Untrusted,
    BadSignature(usize),
    ForeignRoot,
}

/// A private key found in a file.
pub(crate) struct FoundKey {
    /// The raw public key (as in a certificate's subjectPublicKey bits); `None` when the
    /// key could not be read (encrypted, unknown algorithm).
    pub public: Option<Vec<u8>>,
    pub embedded: Option<Arc<Embedded>>,
}

/// Everything found in one file.
pub(crate) struct FileScan {
    pub path: Arc<Path>,
    /// Permission bits; read only for files that hold a private key.
    pub mode: u32,
    /// The certificates, evaluated as far as one file allows (state, chain).
    pub certs: Vec<AuditedCert>,
    /// How each certificate chains, for the run-wide CA-expiry check.
    pub chains: Vec<RawChain>,
    pub keys: Vec<FoundKey>,
    pub findings: Vec<Finding>,
}

impl FileScan {
    pub fn new(path: PathBuf) -> FileScan {
        FileScan {
            path: Arc::from(path),
            mode: 0,
            certs: Vec::new(),
            chains: Vec::new(),
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

/// What a scan of one file's bytes needs besides them.
pub(crate) struct Scanner<'a, 'c> {
    pub ctx: &'a Context<'c>,
    pub cache: &'a mut Cache,
}

impl Scanner<'_, '_> {
    /// Scans the bytes of one file.
    pub fn scan(&mut self, out: &mut FileScan, bytes: &[u8]) {
        if kubeconfig::find(bytes, b"-----BEGIN").is_some() {
            self.pem(out, bytes, Encoding::Pem, None);
            if out.is_empty() && named_strictly_like_cert(&out.path) {
                out.finding(
                    FindingKind::Unparsable,
                    "holds no certificate (its PEM sections are of other kinds)".into(),
                    None,
                );
            }
        } else if looks_like_der(bytes) {
            self.ders(out, vec![bytes.to_vec()], Encoding::Der, None, false);
        } else if kubeconfig::sniff(bytes) {
            self.kubeconfig(out, bytes);
        } else if named_like_cert(&out.path) {
            out.finding(
                FindingKind::Unparsable,
                "named like a certificate but holds neither PEM nor DER".into(),
                None,
            );
        }
    }

    fn kubeconfig(&mut self, out: &mut FileScan, bytes: &[u8]) {
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
            let embedded = Arc::new(f.embedded.clone());
            let before = (out.certs.len(), out.keys.len(), out.findings.len());
            if kubeconfig::find(&data, b"-----BEGIN").is_some() {
                self.pem(out, &data, Encoding::Kubeconfig, Some(&embedded));
            } else if f.name == "client-key-data" {
                // A DER private key: kubectl writes PEM, but accept it.
                out.keys.push(FoundKey {
                    public: key_public(SectionKind::PrivateKey, data),
                    embedded: Some(embedded),
                });
            } else {
                self.ders(
                    out,
                    vec![data],
                    Encoding::Kubeconfig,
                    Some(&embedded),
                    false,
                );
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
        &mut self,
        out: &mut FileScan,
        bytes: &[u8],
        encoding: Encoding,
        embedded: Option<&Arc<Embedded>>,
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
                    out.finding(
                        FindingKind::Unparsable,
                        format!("{what}{after}"),
                        embedded.map(|e| &**e),
                    );
                    break;
                }
            }
        }
        self.ders(out, ders, encoding, embedded, true);
    }

    /// Adds the certificates of one group of DERs (a file's sections, or one embedded
    /// value), checking each one's chain. `report` reports DER that does not parse.
    fn ders(
        &mut self,
        out: &mut FileScan,
        ders: Vec<Vec<u8>>,
        encoding: Encoding,
        embedded: Option<&Arc<Embedded>>,
        report: bool,
    ) {
        let base = out.certs.len();
        let mut group: Vec<(Arc<CertInfo>, Vec<u8>)> = Vec::with_capacity(ders.len());
        for (i, der) in ders.into_iter().enumerate() {
            let fp = sha256(&der);
            let info = match self.cache.certs.get(&fp) {
                Some(info) => Arc::clone(info),
                None => match X509Certificate::from_der(&der) {
                    Ok((_, x)) => {
                        let info = Arc::new(self.info(&x, fp));
                        self.cache.certs.insert(fp, Arc::clone(&info));
                        info
                    }
                    Err(e) => {
                        let what = if encoding == Encoding::Der {
                            "not a valid DER certificate".to_string()
                        } else {
                            format!("certificate #{} is not valid DER", base + i)
                        };
                        if report || named_like_cert(&out.path) {
                            out.finding(
                                FindingKind::Unparsable,
                                format!("{what}: {e}"),
                                embedded.map(|e| &**e),
                            );
                        }
                        continue;
                    }
                },
            };
            group.push((info, der));
        }
        let ctx = self.ctx;
        for i in 0..group.len() {
            let raw = chain(ctx, &group, i, 0);
            let info = Arc::clone(&group[i].0);
            let cert = AuditedCert {
                path: Arc::clone(&out.path),
                index: base + i,
                encoding,
                embedded: embedded.cloned(),
                seconds_left: (info.not_after - ctx.now).whole_seconds(),
                state: State::at(
                    info.not_before,
                    info.not_after,
                    ctx.now,
                    ctx.warn_seconds,
                    ctx.critical_seconds,
                ),
                info,
                node: None,
                profile: None,
                chain: ctx.chain_status(&raw),
                key: None,
            };
            if let Some(f) = chain_finding(&cert, ctx.trusted) {
                out.findings.push(f);
            }
            out.certs.push(cert);
            out.chains.push(raw);
        }
    }

    fn name(&mut self, n: &X509Name<'_>) -> Arc<Name> {
        if let Some(v) = self.cache.names.get(n.as_raw()) {
            return Arc::clone(v);
        }
        let v = Arc::new(Name {
            text: n.to_string(),
            parts: parts(n),
            raw: n.as_raw().to_vec(),
        });
        self.cache.names.insert(v.raw.clone(), Arc::clone(&v));
        v
    }

    fn info(&mut self, x: &X509Certificate<'_>, fp: [u8; 32]) -> CertInfo {
        let sans = match x.subject_alternative_name() {
            Ok(Some(ext)) => crate::pki::san_strings(ext.value),
            _ => Vec::new(),
        };
        let ext_key_usage = match x.extended_key_usage() {
            Ok(Some(e)) => crate::pki::eku_names(e.value),
            _ => Vec::new(),
        };
        let (mut ski, mut aki) = (None, None);
        for ext in x.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => {}
            }
        }
        let v = x.validity();
        CertInfo {
            subject: self.name(x.subject()),
            issuer: self.name(x.issuer()),
            serial: x.raw_serial().to_vec(),
            sans,
            ext_key_usage,
            is_ca: x.is_ca(),
            not_before: v.not_before.to_datetime(),
            not_after: v.not_after.to_datetime(),
            fingerprint: fp,
            public_key: x.public_key().subject_public_key.data.to_vec(),
            subject_key_id: ski,
            authority_key_id: aki,
        }
    }
}

/// The SubjectPublicKeyInfo of a certificate's DER.
fn spki_of(der: &[u8]) -> Option<Vec<u8>> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(_, x)| x.public_key().raw.to_vec())
}

/// Decides how certificate `i` of a group chains: to a trusted CA, or (with none given)
/// to a certificate of the same group, following a few in-group links to reach a
/// trusted CA (an intermediate shipped in the chain file).
fn chain(
    ctx: &Context<'_>,
    group: &[(Arc<CertInfo>, Vec<u8>)],
    i: usize,
    depth: usize,
) -> RawChain {
    let (info, der) = &group[i];
    let fp = &info.fingerprint;
    if let Some(a) = ctx.trusted.iter().position(|t| t.fingerprint == *fp) {
        return RawChain::Anchor(a);
    }
    if info.self_signed() {
        return if ctx.trusted.is_empty() {
            RawChain::Unchecked
        } else {
            RawChain::ForeignRoot
        };
    }
    let issuer = &info.issuer.raw;
    let mut bad = None;
    for (a, t) in ctx.trusted.iter().enumerate() {
        if t.subject_raw == *issuer {
            if ctx.verify(der, fp, &t.spki, &t.fingerprint) {
                return RawChain::Trusted(a);
            }
            bad.get_or_insert(a);
        }
    }
    for (j, (ij, dj)) in group.iter().enumerate() {
        if j == i || ij.fingerprint == *fp || ij.subject.raw != *issuer {
            continue;
        }
        if let (Some(aki), Some(ski)) = (&info.authority_key_id, &ij.subject_key_id) {
            if aki != ski {
                continue;
            }
        }
        if ctx.trusted.is_empty() {
            // Without trust anchors this link is informational (which CA's expiry
            // bounds this certificate), so issuer name and key identifier suffice; a
            // signature check here would cost more than the rest of the audit.
            return RawChain::InFile(Arc::clone(ij));
        }
        let Some(spki) = spki_of(dj) else { continue };
        if !ctx.verify(der, fp, &spki, &ij.fingerprint) {
            continue;
        }
        if depth < 4 {
            if let RawChain::Trusted(a) | RawChain::Anchor(a) = chain(ctx, group, j, depth + 1) {
                return RawChain::Trusted(a);
            }
        }
    }
    match (bad, ctx.trusted.is_empty()) {
        (Some(a), _) => RawChain::BadSignature(a),
        (None, true) => RawChain::Unchecked,
        (None, false) => RawChain::Untrusted,
    }
}

/// The raw public key of a private key (what a certificate's subjectPublicKey bits
/// hold for the same key), or `None` when it cannot be read (encrypted, unknown type).
///
/// SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys carry their public half,
/// so it is read from the structure; PKCS#8 keys go through ring (kpki's
/// [`crate::pki::PrivateKey`], which wipes the key it holds), which derives it, with the
/// same structural reading as a fallback.
fn key_public(kind: SectionKind, der: Vec<u8>) -> Option<Vec<u8>> {
    use rcgen::PublicKeyData;
    let der = zeroize::Zeroizing::new(der);
    match kind {
        SectionKind::RsaPrivateKey => der::rsa_public(&der),
        SectionKind::EcPrivateKey => der::sec1_public(&der),
        _ => match crate::pki::PrivateKey::from_pkcs8(zeroize::Zeroizing::new(der.to_vec())) {
            Ok(k) => Some(k.der_bytes().to_vec()),
            Err(_) => der::pkcs8_public(&der),
        },
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

    fn config() -> AuditConfig {
        AuditConfig::for_tests()
    }

    fn cert_and_key() -> (String, Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.example.com".into()]).unwrap();
        p.not_before = time::macros::datetime!(2026-01-01 00:00 UTC);
        p.not_after = time::macros::datetime!(2027-01-01 00:00 UTC);
        let c = p.self_signed(&key).unwrap();
        (c.pem(), c.der().to_vec(), key.serialize_pem())
    }

    /// x509-parser's `run_all_fuzz_files` idea: garbage in, findings out, never a panic.
    #[test]
    fn garbage_never_panics() {
        let cfg = config();
        let ctx = Context::new(&cfg);
        let mut cache = Cache::default();
        let (pem, der, key) = cert_and_key();
        let kubeconfig = format!(
            "users:\n- name: u\n  user:\n    client-certificate-data: {}\n",
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUI="
        );
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"-----BEGIN ".to_vec(),
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".to_vec(),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
            b"-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n".to_vec(),
            b"-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n".to_vec(),
            kubeconfig.into_bytes(),
            b"client-certificate-data: ???\n".to_vec(),
            vec![0x30, 0x83, 0xff, 0xff],
            vec![0x30, 0x81],
        ];
        // Every truncation of a PEM certificate and key, of the DER, and bit flips.
        for n in (0..pem.len()).step_by(7) {
            inputs.push(pem.as_bytes()[..n].to_vec());
        }
        for n in (0..key.len()).step_by(11) {
            inputs.push(key.as_bytes()[..n].to_vec());
        }
        for n in 0..der.len() {
            inputs.push(der[..n].to_vec());
            let mut flipped = der.clone();
            flipped[n] ^= 0x55;
            inputs.push(flipped);
        }
        let mut x: u32 = 7;
        for len in [1usize, 3, 16, 100, 1000, 5000] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            inputs.push(bytes);
        }
        for (i, bytes) in inputs.iter().enumerate() {
            for name in ["x.crt", "x.pem", "x.key", "x.kubeconfig"] {
                let mut out = FileScan::new(PathBuf::from(format!("/t/{i}/{name}")));
                Scanner {
                    ctx: &ctx,
                    cache: &mut cache,
                }
                .scan(&mut out, bytes);
            }
        }
        // And the good ones are still read right after all that.
        let mut out = FileScan::new(PathBuf::from("/t/good.pem"));
        let both = format!("{pem}{key}");
        Scanner {
            ctx: &ctx,
            cache: &mut cache,
        }
        .scan(&mut out, both.as_bytes());
        assert_eq!(out.certs.len(), 1);
        assert_eq!(out.keys.len(), 1);
        assert_eq!(
            out.keys[0].public.as_deref(),
            Some(out.certs[0].info.public_key.as_slice())
        );
        assert!(out.findings.is_empty());
    }

    #[test]
    fn junk_is_reported_only_where_the_name_claims_a_certificate() {
        let cfg = config();
        let ctx = Context::new(&cfg);
        let mut cache = Cache::default();
        for (name, reported) in [
            ("junk.crt", true),
            ("junk.pem", true),
            ("junk.der", true),
            ("notes.txt", false),
            ("kubelet.conf", false),
            ("id.key", false),
        ] {
            let mut out = FileScan::new(PathBuf::from(name));
            Scanner {
                ctx: &ctx,
                cache: &mut cache,
            }
            .scan(&mut out, b"\x00\x01 not a certificate");
            assert_eq!(out.findings.len(), usize::from(reported), "{name}");
        }
    }

    #[test]
    fn state_is_computed_from_the_given_time() {
        let cfg = config();
        let ctx = Context::new(&cfg);
        let mut cache = Cache::default();
        let (pem, _, _) = cert_and_key();
        let mut out = FileScan::new(PathBuf::from("a.crt"));
        Scanner {
            ctx: &ctx,
            cache: &mut cache,
        }
        .scan(&mut out, pem.as_bytes());
        // 2026-11-25 to 2027-01-01 is 37 days: more than --warn 30d.
        assert_eq!(out.certs[0].state, State::Ok);
        assert_eq!(out.certs[0].seconds_left, 37 * 86_400);
    }
}
