//! Reading one file: which certificates and private keys it holds, whatever its name.
//!
//! A file is read once, into a buffer the worker thread reuses, and sniffed in this
//! order: PEM (any `-----BEGIN`, every section read), DER (a SEQUENCE whose length is
//! exactly the file's: a check of four bytes), kubeconfig (`*-data` fields, read by
//! [`crate::material::kubeconfig`] as `render --check` reads them). Anything else is not
//! a certificate and is skipped without a word, unless its name says it is one (`.crt`,
//! `.cer`, `.der`): then it is reported as unparsable. Certificates and keys are decoded
//! by [`crate::pki::pem`].
//!
//! A fleet holds many copies of few certificates (the CA in every chain file and
//! kubeconfig, the same leaf staged, exported and installed), so each worker keeps what
//! it parsed by SHA-256 of the DER, and names by their DER: a copy costs a base64
//! decode, a hash and a lookup, and every copy shares one [`CertInfo`].
//!
//! Chain checks happen here too, while the DER is at hand: each certificate is verified
//! against the trusted CAs whose subject is its issuer, or through an intermediate in the
//! same file (or, with none given, linked to an issuer in the same file by name). Each
//! certificate is settled once and tries a bounded number of issuers, so a file of
//! certificates that sign each other in circles costs no more than any other file.
//! Verifications are cached by (certificate, issuer) fingerprint for the whole run.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use time::OffsetDateTime;

use super::evaluate::chain_finding;
use super::{
    AuditConfig, AuditError, AuditedCert, CaRef, CertInfo, ChainStatus, Embedded, Encoding,
    Finding, FindingKind, Name, NameParts, State,
};
use crate::material::{file, kubeconfig};
use crate::pki::pem::{self, KeyFormat, Object, PrivateKey};

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
        let bytes = file::read_regular(path, file::MAX_FILE, file::Links::Follow).map_err(|e| {
            AuditError::BadCa {
                path: path.to_path_buf(),
                reason: format!("it {e}"),
            }
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
        let ders: Vec<Vec<u8>> = if pem::is_pem(bytes) {
            let (objects, err) = pem::sections(bytes);
            if let Some(e) = err {
                return Err(bad(e.to_string()));
            }
            objects
                .into_iter()
                .filter_map(|o| match o {
                    Object::Certificate(der) => Some(der),
                    _ => None,
                })
                .collect()
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

/// The embedded fields of a kubeconfig.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Ca,
    Cert,
    Key,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Ca => "certificate-authority-data",
            Field::Cert => "client-certificate-data",
            Field::Key => "client-key-data",
        }
    }
}

/// What a scan of one file's bytes needs besides them.
pub(crate) struct Scanner<'a, 'c> {
    pub ctx: &'a Context<'c>,
    pub cache: &'a mut Cache,
}

impl Scanner<'_, '_> {
    /// Scans the bytes of one file.
    pub fn scan(&mut self, out: &mut FileScan, bytes: &[u8]) {
        if pem::is_pem(bytes) {
            self.pem(out, bytes, Encoding::Pem, None);
            if out.is_empty() && named_strictly_like_cert(&out.path) {
                out.finding(
                    FindingKind::Unparsable,
                    "holds no certificate (its PEM sections are of other kinds)".into(),
                    None,
                );
            }
        } else if pem::is_der(bytes) {
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
        let k = match kubeconfig::parse(text) {
            Ok(k) => k,
            Err(e) => {
                out.finding(
                    FindingKind::Unparsable,
                    format!("looks like a kubeconfig but cannot be read: {e}"),
                    None,
                );
                return;
            }
        };
        let clusters = k.clusters.iter().filter_map(|c| {
            let v = c.ca_data.as_deref()?;
            Some((Field::Ca, "cluster", &c.name, v))
        });
        let users = k.users.iter().flat_map(|u| {
            [
                u.cert_data
                    .as_deref()
                    .map(|v| (Field::Cert, "user", &u.name, v)),
                u.key_data
                    .as_deref()
                    .map(|v| (Field::Key, "user", &u.name, v.as_str())),
            ]
            .into_iter()
            .flatten()
        });
        for (field, kind, name, value) in clusters.chain(users) {
            let embedded = Arc::new(Embedded {
                kind,
                key: name.clone(),
            });
            let key = format!("{kind}s[{name}].{kind}.{}", field.name());
            let Ok(data) = kubeconfig::decode(value) else {
                out.finding(
                    FindingKind::Unparsable,
                    format!("{key} is not valid base64"),
                    Some(&embedded),
                );
                continue;
            };
            let before = (out.certs.len(), out.keys.len(), out.findings.len());
            if pem::is_pem(&data) {
                self.pem(out, &data, Encoding::Kubeconfig, Some(&embedded));
            } else if field == Field::Key {
                // A DER private key: kubectl writes PEM, but accept it.
                out.keys.push(FoundKey {
                    public: PrivateKey::new(KeyFormat::Pkcs8, data.to_vec()).public_key(),
                    embedded: Some(Arc::clone(&embedded)),
                });
            } else {
                self.ders(
                    out,
                    vec![data.to_vec()],
                    Encoding::Kubeconfig,
                    Some(&embedded),
                    false,
                );
            }
            if (out.certs.len(), out.keys.len(), out.findings.len()) == before {
                let what = if field == Field::Key {
                    "private key"
                } else {
                    "certificate"
                };
                out.finding(
                    FindingKind::Unparsable,
                    format!("{key} holds no {what}"),
                    Some(&embedded),
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
        let (objects, err) = pem::sections(bytes);
        let mut ders: Vec<Vec<u8>> = Vec::new();
        for o in objects {
            match o {
                Object::Certificate(der) => ders.push(der),
                Object::PrivateKey(k) => out.keys.push(FoundKey {
                    public: k.public_key(),
                    embedded: embedded.cloned(),
                }),
                _ => {}
            }
        }
        if let Some(e) = err {
            let after = if ders.is_empty() {
                String::new()
            } else {
                format!(" (after {} good certificate(s))", ders.len())
            };
            out.finding(
                FindingKind::Unparsable,
                format!("{e}{after}"),
                embedded.map(|e| &**e),
            );
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
        let raws = chains(ctx, &group);
        for (i, raw) in raws.into_iter().enumerate() {
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
            spki: x.public_key().raw.to_vec(),
            subject_key_id: ski,
            authority_key_id: aki,
        }
    }
}

/// In-file links followed from a certificate towards a trusted CA (intermediates
/// shipped in a chain file).
const MAX_IN_FILE_HOPS: usize = 4;
/// Certificates of the same group tried as the issuer of one certificate.
const MAX_IN_FILE_ISSUERS: usize = 8;

/// Whether `issuer` may have issued `cert` by their key identifiers (when both have one).
fn key_ids_match(cert: &CertInfo, issuer: &CertInfo) -> bool {
    match (&cert.authority_key_id, &issuer.subject_key_id) {
        (Some(aki), Some(ski)) => aki == ski,
        _ => true,
    }
}

/// Decides how each certificate of a group (one file's sections, or one embedded value)
/// chains: to a trusted CA, directly or through certificates of the same group (an
/// intermediate shipped in a chain file, at most [`MAX_IN_FILE_HOPS`] links), or, with
/// no trusted CA given, to an issuer of the same group by name and key identifier.
///
/// Trust spreads from the certificates the trusted CAs signed, breadth first: each
/// certificate is settled once, and is tried against at most [`MAX_IN_FILE_ISSUERS`]
/// certificates of the group, so the work is linear in the size of the group however
/// its certificates name and sign each other (certificates that sign each other in a
/// cycle are settled like any others).
fn chains(ctx: &Context<'_>, group: &[(Arc<CertInfo>, Vec<u8>)]) -> Vec<RawChain> {
    let n = group.len();
    let mut by_subject: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (j, (info, _)) in group.iter().enumerate() {
        by_subject.entry(&info.subject.raw).or_default().push(j);
    }
    if ctx.trusted.is_empty() {
        // Without trust anchors a link is informational (which CA's expiry bounds this
        // certificate), so issuer name and key identifier suffice; a signature check
        // here would cost more than the rest of the audit.
        return group
            .iter()
            .map(|(info, _)| {
                if info.self_signed() {
                    return RawChain::Unchecked;
                }
                by_subject
                    .get(info.issuer.raw.as_slice())
                    .into_iter()
                    .flatten()
                    .map(|&j| &group[j].0)
                    .find(|ij| ij.fingerprint != info.fingerprint && key_ids_match(info, ij))
                    .map_or(RawChain::Unchecked, |ij| RawChain::InFile(Arc::clone(ij)))
            })
            .collect();
    }
    let mut settled: Vec<Option<RawChain>> = vec![None; n];
    let mut bad: Vec<Option<usize>> = vec![None; n];
    // Certificates that chain to trusted CA `a` in `hops` in-file links.
    let mut queue: VecDeque<(usize, usize, usize)> = VecDeque::new();
    for (i, (info, der)) in group.iter().enumerate() {
        let fp = &info.fingerprint;
        if let Some(a) = ctx.trusted.iter().position(|t| t.fingerprint == *fp) {
            settled[i] = Some(RawChain::Anchor(a));
            queue.push_back((i, a, 0));
            continue;
        }
        if info.self_signed() {
            settled[i] = Some(RawChain::ForeignRoot);
            continue;
        }
        for (a, t) in ctx.trusted.iter().enumerate() {
            if t.subject_raw == info.issuer.raw {
                if ctx.verify(der, fp, &t.spki, &t.fingerprint) {
                    settled[i] = Some(RawChain::Trusted(a));
                    queue.push_back((i, a, 0));
                    break;
                }
                bad[i].get_or_insert(a);
            }
        }
    }
    // The unsettled certificates by issuer name, each tried a bounded number of times.
    let mut by_issuer: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, (info, _)) in group.iter().enumerate() {
        if settled[i].is_none() {
            by_issuer.entry(&info.issuer.raw).or_default().push(i);
        }
    }
    let mut tries = vec![0usize; n];
    while let Some((j, a, hops)) = queue.pop_front() {
        if hops >= MAX_IN_FILE_HOPS {
            continue;
        }
        let issuer = &group[j].0;
        let Some(waiting) = by_issuer.get_mut(issuer.subject.raw.as_slice()) else {
            continue;
        };
        for &i in waiting.iter() {
            let (info, der) = &group[i];
            if settled[i].is_some() || info.fingerprint == issuer.fingerprint {
                continue;
            }
            tries[i] += 1;
            if key_ids_match(info, issuer)
                && ctx.verify(der, &info.fingerprint, &issuer.spki, &issuer.fingerprint)
            {
                settled[i] = Some(RawChain::Trusted(a));
                queue.push_back((i, a, hops + 1));
            }
        }
        waiting.retain(|&i| settled[i].is_none() && tries[i] < MAX_IN_FILE_ISSUERS);
    }
    settled
        .into_iter()
        .zip(bad)
        .map(|(s, bad)| {
            s.unwrap_or(match bad {
                Some(a) => RawChain::BadSignature(a),
                None => RawChain::Untrusted,
            })
        })
        .collect()
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

    /// Certificates of one group, read the way `ders` reads them.
    fn group(scanner: &mut Scanner<'_, '_>, pems: &[String]) -> Vec<(Arc<CertInfo>, Vec<u8>)> {
        pems.iter()
            .map(|p| {
                let der = match &pem::sections(p.as_bytes()).0[..] {
                    [Object::Certificate(d)] => d.clone(),
                    other => panic!("{other:?}"),
                };
                let (_, x) = X509Certificate::from_der(&der).unwrap();
                let info = Arc::new(scanner.info(&x, sha256(&der)));
                (info, der)
            })
            .collect()
    }

    fn params(cn: &str, ca: bool) -> rcgen::CertificateParams {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p
    }

    #[test]
    fn trust_reaches_a_leaf_through_an_intermediate_in_the_same_file() {
        let root_key = rcgen::KeyPair::generate().unwrap();
        let root = params("root", true).self_signed(&root_key).unwrap();
        let root_issuer = rcgen::Issuer::new(params("root", true), &root_key);
        let mid_key = rcgen::KeyPair::generate().unwrap();
        let mid = params("mid", true)
            .signed_by(&mid_key, &root_issuer)
            .unwrap();
        let mid_issuer = rcgen::Issuer::new(params("mid", true), &mid_key);
        let leaf = params("leaf", false)
            .signed_by(&rcgen::KeyPair::generate().unwrap(), &mid_issuer)
            .unwrap();
        let mut cfg = config();
        cfg.trusted = TrustedCa::parse(root.pem().as_bytes(), Path::new("root.crt"), None).unwrap();
        let ctx = Context::new(&cfg);
        let mut cache = Cache::default();
        let mut scanner = Scanner {
            ctx: &ctx,
            cache: &mut cache,
        };
        let g = group(&mut scanner, &[leaf.pem(), mid.pem()]);
        let raws = chains(&ctx, &g);
        assert!(matches!(raws[0], RawChain::Trusted(0)), "{:?}", raws[0]);
        assert!(matches!(raws[1], RawChain::Trusted(0)), "{:?}", raws[1]);
        // Without the intermediate, the leaf is nobody's.
        let raws = chains(&ctx, &g[..1]);
        assert!(matches!(raws[0], RawChain::Untrusted), "{:?}", raws[0]);
    }

    /// Two names, two keys, each certificate signed by the other name's key, no key
    /// identifiers: every certificate of one name is a verified issuer of every one of
    /// the other. Each is settled once, with a bounded number of signature checks.
    #[test]
    fn a_cycle_of_cross_signed_certificates_costs_linear_work() {
        let (ka, kb) = (
            rcgen::KeyPair::generate().unwrap(),
            rcgen::KeyPair::generate().unwrap(),
        );
        let by_a = rcgen::Issuer::new(params("A", false), &ka);
        let by_b = rcgen::Issuer::new(params("B", false), &kb);
        let mut pems = Vec::new();
        for serial in 0..30u64 {
            let mut a = params("A", false);
            a.serial_number = Some((2 * serial + 1).into());
            pems.push(a.signed_by(&ka, &by_b).unwrap().pem());
            let mut b = params("B", false);
            b.serial_number = Some((2 * serial + 2).into());
            pems.push(b.signed_by(&kb, &by_a).unwrap().pem());
        }
        let other = params("other CA", true)
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let mut cfg = config();
        cfg.trusted = TrustedCa::parse(other.pem().as_bytes(), Path::new("ca.crt"), None).unwrap();
        let ctx = Context::new(&cfg);
        let mut cache = Cache::default();
        let mut scanner = Scanner {
            ctx: &ctx,
            cache: &mut cache,
        };
        let g = group(&mut scanner, &pems);
        let raws = chains(&ctx, &g);
        assert!(raws.iter().all(|r| matches!(r, RawChain::Untrusted)));
        let checks = ctx.verified.lock().unwrap().len();
        assert!(
            checks <= MAX_IN_FILE_ISSUERS * g.len(),
            "{checks} signature checks"
        );

        // With the key of A trusted, trust spreads around the cycle within the bound.
        let a_ca = params("A", true).self_signed(&ka).unwrap();
        let mut cfg = config();
        cfg.trusted = TrustedCa::parse(a_ca.pem().as_bytes(), Path::new("a.crt"), None).unwrap();
        let ctx = Context::new(&cfg);
        let raws = chains(&ctx, &g);
        assert!(
            raws.iter().all(|r| matches!(r, RawChain::Trusted(0))),
            "{raws:?}"
        );
        let checks = ctx.verified.lock().unwrap().len();
        assert!(
            checks <= (MAX_IN_FILE_ISSUERS + 1) * g.len(),
            "{checks} signature checks"
        );
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
