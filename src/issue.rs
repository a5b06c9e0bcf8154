//! Issuing: turns plans into keys and signed certificates, keeps them in the store,
//! records them in the ledger and exports them for installation.
//!
//! Everything that can be refused (a leaf outliving its CA, an existing issuance, a CSR
//! asking for more than its node may have) is decided before the first byte is written,
//! so a refused command leaves the store as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rcgen::{PublicKeyData, SubjectPublicKeyInfo};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::pki::{self, pem, CsrInfo, LeafSpec, PkiError, San, Signer};
use crate::plan::{CertContent, Decision, Plan, Reason};
use crate::profile::{Body, CaRole, KeyKind, Profile, Profiles};
use crate::store::{atomic, Artifact, Event, Existing, Keyring, Record, Store, StoreError};

/// Why kpki refuses to issue.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{what} would be valid until {leaf}, after its CA '{ca}' expires ({ca_end})")]
    LeafOutlivesCa {
        what: String,
        leaf: String,
        ca: String,
        ca_end: String,
    },
    #[error("already issued: {0}")]
    AlreadyIssued(String),
    #[error(
        "the CSR asks to be a CA (basicConstraints CA:TRUE); kpki signs leaf certificates only"
    )]
    CsrRequestsCa,
    #[error("the CSR asks for SANs {sans} that {whom} may not have")]
    CsrSanNotAllowed { sans: String, whom: String },
    #[error("{0} already exists")]
    OutputExists(PathBuf),
    #[error("{what} failed verification, nothing was written: {problems}")]
    Unverified { what: String, problems: String },
    #[error("the CSR asks for subject {asked}; profile {profile} gives {gives}")]
    CsrSubject {
        asked: String,
        gives: String,
        profile: String,
    },
}

impl PolicyError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PolicyError::LeafOutlivesCa { .. } => "shorten it with --validity, pass --clamp to end it with the CA, or rotate the CA first".into(),
            PolicyError::AlreadyIssued(_) => "pass --force for a new generation (the current one stays in the store), or use `kpki apply`, which reissues only what `kpki plan` says".into(),
            PolicyError::CsrRequestsCa => "make the CSR without a CA:TRUE basicConstraints extension".into(),
            PolicyError::CsrSanNotAllowed { .. } => "make the CSR with the node's own names, or allow a name explicitly with --san".into(),
            PolicyError::OutputExists(_) => "pass --force to replace it (an old certificate is kept as <name>.<time>.bak; an old key stays in the store only), or choose another --out".into(),
            PolicyError::Unverified { .. } => "this is a kpki bug or a damaged store: run `kpki store verify` and report it".into(),
            PolicyError::CsrSubject { .. } => "make the CSR with the subject the profile gives (or none: kpki sets it), or sign it for the right --node / --cn".into(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Stage(#[from] crate::stage::StageError),
}

/// How to issue.
#[derive(Clone, Debug)]
pub struct Options {
    pub force: bool,
    /// End a leaf with its CA instead of refusing one that would outlive it.
    pub clamp: bool,
    /// Where to export the files for installation, `<out>/<target>/<file>`.
    pub out: Option<PathBuf>,
    pub now: OffsetDateTime,
}

/// One thing to issue, and why.
#[derive(Clone, Debug)]
pub struct Request {
    pub plan: Plan,
    pub reason: Reason,
    pub key: KeySource,
}

/// Where a new certificate's key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A new key, made here and sealed in the store.
    Generate,
    /// The key of the held certificate (DER SubjectPublicKeyInfo), which kpki does not
    /// hold: a certificate signed from a node's CSR is renewed for the node's same key.
    Reuse(Vec<u8>),
}

impl Request {
    /// A request for what the planner decided: a certificate whose key is on its node is
    /// renewed for that key; everything else gets a new key.
    pub fn from_decision(d: Decision) -> Request {
        let key = match &d.held {
            Some(h) if !h.has_key => match &h.cert {
                Some(c) => KeySource::Reuse(c.facts.spki.clone()),
                None => KeySource::Generate,
            },
            _ => KeySource::Generate,
        };
        Request {
            plan: d.plan,
            reason: d.reason,
            key,
        }
    }
}

/// One completed issuance.
pub struct Issued {
    pub plan: Plan,
    pub reason: Reason,
    pub record: Record,
    /// Certificate PEM (leaf only); `None` for a key pair.
    pub cert_pem: Option<String>,
    /// The signing CA's certificate.
    pub ca_pem: Option<String>,
    /// Public key PEM of a key pair.
    pub public_pem: Option<String>,
    pub key_pem: Option<Zeroizing<String>>,
    /// A secret's key (an encryption provider's), sealed into the store.
    pub secret: Option<Zeroizing<Vec<u8>>>,
    pub exported: Vec<PathBuf>,
}

/// notBefore is set a few minutes back so a node whose clock runs slow still accepts a
/// certificate issued moments ago.
const BACKDATE: time::Duration = time::Duration::minutes(5);

fn leaf_spec(
    plan: &Plan,
    c: &CertContent,
    rsa_key: bool,
    signer: &Signer,
    what: &str,
    opts: &Options,
) -> Result<LeafSpec, PolicyError> {
    let lifetime = c.validity.duration();
    // Checked: a lifetime that ends after the last date a certificate can hold (9999)
    // certainly outlives its CA.
    let end = opts.now.checked_add(lifetime).map(|t| {
        if c.stagger {
            t.saturating_sub(crate::plan::stagger(
                &plan.profile,
                &plan.target.key(),
                lifetime,
            ))
        } else {
            t
        }
    });
    let not_after = match end {
        Some(t) if t <= signer.not_after => t,
        _ if opts.clamp => signer.not_after,
        _ => {
            return Err(PolicyError::LeafOutlivesCa {
                what: what.to_owned(),
                leaf: end.map_or_else(
                    || format!("{} from now, after the year 9999", c.validity),
                    pki::rfc3339,
                ),
                ca: String::new(),
                ca_end: pki::rfc3339(signer.not_after),
            });
        }
    };
    Ok(LeafSpec {
        cn: c.cn.clone(),
        o: c.o.clone(),
        sans: c.sans.clone(),
        ext_key_usage: c.ext_key_usage.clone(),
        rsa_key,
        not_before: opts.now.saturating_sub(BACKDATE),
        not_after,
    })
}

/// Opens each CA that the plans need, once: keyed by CA name, since a single-CA store
/// signs all three roles with its root.
fn signers(
    store: &Store,
    keyring: &Keyring,
    roles: impl Iterator<Item = CaRole>,
) -> Result<BTreeMap<String, Signer>, StoreError> {
    let mut m = BTreeMap::new();
    for r in roles {
        if let std::collections::btree_map::Entry::Vacant(e) = m.entry(store.ca_id(r).to_owned()) {
            e.insert(store.signer(r, keyring)?);
        }
    }
    Ok(m)
}

/// Whether a request needs an unlocked store: a certificate needs its CA, and a secret
/// exported with `out` is written inside a config with the earlier keys still trusted.
pub fn needs_unlock(requests: &[Request], opts: &Options) -> bool {
    requests.iter().any(|r| {
        r.plan.cert.is_some() || (opts.out.is_some() && matches!(r.plan.key, KeyKind::Secret(_)))
    })
}

/// The ledger record of a key pair or a secret: no certificate, so no serial, no CA,
/// no subject.
fn key_record(plan: &Plan, reason: &Reason, sha256: String, now: OffsetDateTime) -> Record {
    Record {
        serial: String::new(),
        profile: plan.profile.clone(),
        target: plan.target.key(),
        node: plan.target.node().map(|n| n.to_string()),
        generation: 0,
        ca: String::new(),
        ca_id: String::new(),
        subject: String::new(),
        sans: vec![],
        not_before: now,
        not_after: now,
        sha256,
        key_algorithm: plan.key.name().into(),
        source: "generated".into(),
        reason: reason.word().into(),
        issued_at: now,
    }
}

/// Issues every request: keys generated here (or the node's key reused), certificates
/// signed and verified, each a new generation in the store, the ledger appended, files
/// exported. All refusals happen before anything is written; the caller holds the lock.
pub fn issue(
    store: &Store,
    keyring: Option<&Keyring>,
    profiles: &Profiles,
    requests: Vec<Request>,
    opts: &Options,
) -> Result<Vec<Issued>, IssueError> {
    // 1. A `missing` request for something the store holds was decided without the
    // lock, or by a caller that forgot to look: refuse them all at once.
    let mut taken = Vec::new();
    for r in &requests {
        if r.reason == Reason::Missing
            && store
                .current(&r.plan.profile, &r.plan.target.key())?
                .is_some()
        {
            taken.push(format!("{} for {}", r.plan.profile, r.plan.target));
        }
    }
    if !taken.is_empty() {
        return Err(PolicyError::AlreadyIssued(summarize_list(&taken)).into());
    }
    if keyring.is_none() && needs_unlock(&requests, opts) {
        return Err(PolicyError::Unverified {
            what: summarize_list(
                &requests
                    .iter()
                    .map(|r| format!("{} for {}", r.plan.profile, r.plan.target))
                    .collect::<Vec<_>>(),
            ),
            problems: "issuing or exporting them needs the store unlocked".into(),
        }
        .into());
    }
    // 2. Keys and certificates, in memory, each verified before anything is written.
    let signers = match keyring {
        Some(k) => signers(
            store,
            k,
            requests
                .iter()
                .filter_map(|r| r.plan.cert.as_ref().map(|c| c.ca)),
        )?,
        None => BTreeMap::new(),
    };
    let mut done = Vec::with_capacity(requests.len());
    for Request { plan, reason, key } in requests {
        let what = format!("{} for {}", plan.profile, plan.target);
        let alg = match plan.key {
            KeyKind::Pair(a) => a,
            KeyKind::Secret(provider) => {
                // Nothing derived from the key is recorded: no fingerprint.
                let record = key_record(&plan, &reason, String::new(), opts.now);
                done.push(Issued {
                    plan,
                    reason,
                    record,
                    cert_pem: None,
                    ca_pem: None,
                    public_pem: None,
                    key_pem: None,
                    secret: Some(provider.generate()?),
                    exported: vec![],
                });
                continue;
            }
        };
        let (key_pem, spki) = match &key {
            KeySource::Generate => {
                let k = alg.generate()?;
                (Some(pki::private_pem(&k)), k.subject_public_key_info())
            }
            KeySource::Reuse(spki) => (None, spki.clone()),
        };
        let (cert_pem, ca_pem, public_pem, record) = match &plan.cert {
            Some(c) => {
                let signer = signers
                    .get(store.ca_id(c.ca))
                    .expect("a signer for every planned CA");
                let rsa = pki::public_key_info(&spki).is_some_and(|k| k.algorithm == "RSA");
                let spec = leaf_spec(&plan, c, rsa, signer, &what, opts)
                    .map_err(|e| with_ca(e, store, c.ca))?;
                let spki_obj = SubjectPublicKeyInfo::from_der(&spki)
                    .map_err(|e| PkiError::UnsupportedKey(e.to_string()))?;
                let der = pki::sign(&spec, &spki_obj, signer)?;
                let cert_pem = pem::encode("CERTIFICATE", &der);
                let problems = pki::verify::leaf_file(
                    cert_pem.as_bytes(),
                    Some(&spki),
                    signer.cert_pem.as_bytes(),
                    &c.sans,
                    &c.ext_key_usage,
                );
                if !problems.is_empty() {
                    return Err(PolicyError::Unverified {
                        what,
                        problems: problems.join("; "),
                    }
                    .into());
                }
                let source = match key {
                    KeySource::Generate => "generated",
                    KeySource::Reuse(_) => "csr",
                };
                let record = record_for(&plan, store, c.ca, &der, source, &reason, opts.now)?;
                (Some(cert_pem), Some(signer.cert_pem.clone()), None, record)
            }
            None => {
                let record = key_record(&plan, &reason, pki::fingerprint(&spki), opts.now);
                let public = pem::encode("PUBLIC KEY", &spki);
                (None, None, Some(public), record)
            }
        };
        done.push(Issued {
            plan,
            reason,
            record,
            cert_pem,
            ca_pem,
            public_pem,
            key_pem,
            secret: None,
            exported: vec![],
        });
    }
    // 3. The store: a new generation per issuance, flushed together, then the ledger;
    // one change, which a killed kpki's successor completes or rolls back.
    let mut change = store.change();
    let mut events = Vec::new();
    for i in &mut done {
        let mut files = Vec::new();
        if let Some(c) = &i.cert_pem {
            files.push(Artifact {
                name: "cert.pem",
                bytes: c.clone().into_bytes(),
                mode: 0o644,
            });
        }
        if let Some(p) = &i.public_pem {
            files.push(Artifact {
                name: "public.pem",
                bytes: p.clone().into_bytes(),
                mode: 0o644,
            });
        }
        if let Some(k) = &i.key_pem {
            files.push(Artifact {
                name: "key.pem.age",
                bytes: store.seal(k.as_bytes())?,
                mode: 0o600,
            });
        }
        if let (Some(k), KeyKind::Secret(provider)) = (&i.secret, i.plan.key) {
            files.push(Artifact {
                name: provider.file_name(),
                bytes: store.seal(k)?,
                mode: 0o600,
            });
        }
        let target = i.plan.target.key();
        let g = store.stage_generation(
            &mut change,
            &i.plan.profile,
            &target,
            &files,
            i.reason != Reason::Missing,
            i.plan.cert.is_none(),
        )?;
        i.record.generation = g.n;
        if let Some(prev) = g.previous {
            events.push(Event::Superseded {
                at: opts.now,
                profile: i.plan.profile.clone(),
                target: target.clone(),
                generation: prev,
                by: g.n,
            });
        }
        events.push(Event::Issued(i.record.clone()));
    }
    change.events(events);
    change.commit()?;
    // 4. Export for installation. A secret goes out inside its config, with the earlier
    // keys the store still trusts.
    if let Some(out) = &opts.out {
        for i in &mut done {
            let p = profiles
                .get(&i.plan.profile)
                .expect("planned from these profiles");
            let config = match &p.body {
                Body::Secret { .. } => crate::encryption::keys_from_store(
                    store,
                    &i.plan.profile,
                    &i.plan.target.key(),
                    keyring.expect("checked before anything was written"),
                )?
                .map(|keys| crate::encryption::config(&i.plan.profile, &keys)),
                _ => None,
            };
            i.exported = export(
                out,
                p,
                &i.plan,
                i.cert_pem.as_deref(),
                i.ca_pem.as_deref(),
                i.public_pem.as_deref(),
                i.key_pem.as_deref().map(|s| s.as_str()),
                None,
                config.as_deref().map(|c| &c[..]),
                opts,
            )?;
        }
    }
    Ok(done)
}

fn with_ca(e: PolicyError, store: &Store, role: CaRole) -> PolicyError {
    match e {
        PolicyError::LeafOutlivesCa {
            what, leaf, ca_end, ..
        } => PolicyError::LeafOutlivesCa {
            what,
            leaf,
            ca: store.ca_name(role).to_owned(),
            ca_end,
        },
        other => other,
    }
}

/// A list shortened for one line: the first few items and how many more.
pub fn summarize_list(items: &[String]) -> String {
    if items.len() <= 4 {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..3].join(", "), items.len() - 3)
    }
}

fn record_for(
    plan: &Plan,
    store: &Store,
    role: CaRole,
    der: &[u8],
    source: &str,
    reason: &Reason,
    now: OffsetDateTime,
) -> Result<Record, PkiError> {
    let s = pki::summarize(der, now)?;
    Ok(Record {
        serial: s.serial,
        profile: plan.profile.clone(),
        target: plan.target.key(),
        node: plan.target.node().map(|n| n.to_string()),
        generation: 0,
        ca: store.ca_name(role).to_owned(),
        ca_id: store.ca_id(role).to_owned(),
        subject: s.subject,
        sans: s.sans,
        not_before: s.not_before,
        not_after: s.not_after,
        sha256: s.sha256,
        key_algorithm: match s.key.algorithm.as_str() {
            "RSA" => format!("rsa-{}", s.key.bits),
            other => other.to_owned(),
        },
        source: source.into(),
        reason: reason.word().into(),
        issued_at: now,
    })
}

/// Writes a profile's files for installation into `<out>/<target>/`: the certificate
/// (with the CA appended when the profile says so), the key (0600) and the CA; for a
/// secret, `secret_config`, the config that holds it.
///
/// The files are verified as they will be written (the key is the certificate's, the
/// certificate chains to the CA file, SANs and usages are the plan's) before any is;
/// `csr_spki` is the key of a certificate signed from a CSR, whose key is not written.
#[allow(clippy::too_many_arguments)]
pub fn export(
    out: &Path,
    p: &Profile,
    plan: &Plan,
    cert_pem: Option<&str>,
    ca_pem: Option<&str>,
    public_pem: Option<&str>,
    key_pem: Option<&str>,
    csr_spki: Option<&[u8]>,
    secret_config: Option<&[u8]>,
    opts: &Options,
) -> Result<Vec<PathBuf>, IssueError> {
    let dir = out.join(plan.target.key());
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IssueError::Io { path, source }
    };
    crate::stage::safe_out(&dir)?;
    // Never write a key through a symlink planted where the node's directory goes.
    atomic::no_links(out, &dir).map_err(io(&dir))?;
    if let (Some(cert), Some(ca), Some(c)) = (cert_pem, ca_pem, &plan.cert) {
        let spki = match key_pem {
            Some(k) => Some(pki::load_private_pem(k).map(|k| k.subject_public_key_info())?),
            None => csr_spki.map(<[u8]>::to_vec),
        };
        let problems = pki::verify::leaf_file(
            cert.as_bytes(),
            spki.as_deref(),
            ca.as_bytes(),
            &c.sans,
            &c.ext_key_usage,
        );
        if !problems.is_empty() {
            return Err(PolicyError::Unverified {
                what: format!("{} for {}", plan.profile, plan.target),
                problems: problems.join("; "),
            }
            .into());
        }
    }
    // Zeroized: a key, or a config holding a secret.
    let bytes = |s: &str| Zeroizing::new(s.as_bytes().to_vec());
    let mut files: Vec<(&str, Zeroizing<Vec<u8>>, u32)> = Vec::new();
    if let (Some(k), Some(f)) = (key_pem, &p.key_file) {
        files.push((&f.path, bytes(k), 0o600));
    }
    match &p.body {
        Body::Certificate(spec) => {
            if let Some(c) = cert_pem {
                let mut body = c.to_owned();
                if spec.append_ca {
                    if let Some(ca) = ca_pem {
                        body.push_str(ca);
                    }
                }
                files.push((&spec.cert.path, bytes(&body), 0o644));
            }
            if let Some(ca) = ca_pem {
                files.push((&spec.ca_file.path, bytes(ca), 0o644));
            }
        }
        Body::KeyPair { public } => {
            if let Some(pubk) = public_pem {
                files.push((&public.path, bytes(pubk), 0o644));
            }
        }
        Body::Secret { config } => {
            if let Some(c) = secret_config {
                files.push((&config.path, Zeroizing::new(c.to_vec()), config.mode));
            }
        }
    }
    // Check every target first so a refusal writes nothing. Each file goes to its
    // install path under OUT/<target>/, as in a staged tree: two profiles' `ca.crt`
    // (the etcd CA's, the kubernetes CA's) never meet.
    let mut plan = Vec::new();
    for (install, body, mode) in files {
        let path = crate::stage::place_under(&dir, install)?;
        match std::fs::read(&path).map(Zeroizing::new) {
            Ok(old) if old[..] == body[..] => continue,
            Ok(_) if !opts.force => return Err(PolicyError::OutputExists(path).into()),
            Ok(_) => plan.push((path, body, mode, true)),
            Err(_) => plan.push((path, body, mode, false)),
        }
    }
    // What --force replaces: a certificate or CA file is kept beside it as
    // <name>.<time>.bak; a key is not copied (a second plaintext key is a leak, and the
    // store keeps the earlier generation, encrypted). Each file is replaced atomically.
    for (path, _, mode, replace) in &plan {
        if *replace && mode & 0o077 != 0 {
            let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
            let bak = path.with_file_name(format!(
                "{}.{}.bak",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
                opts.now.format(&f).unwrap_or_default()
            ));
            std::fs::hard_link(path, &bak).map_err(|source| IssueError::Io {
                path: bak.clone(),
                source,
            })?;
        }
    }
    // A killed kpki's temporary files (plaintext keys among them) do not outlive it.
    if dir.is_dir() {
        atomic::remove_leftovers(&dir, usize::MAX).map_err(io(&dir))?;
    }
    let mut batch = atomic::Batch::new(out);
    for (path, body, mode, replace) in &plan {
        let parent = path.parent().expect("under OUT/<target>");
        atomic::tree_dirs(&dir, parent, crate::stage::TREE_DIR_MODE).map_err(io(parent))?;
        let existing = if *replace {
            Existing::Replace
        } else {
            Existing::Refuse
        };
        batch
            .add(path, body, *mode, existing)
            .map_err(|source| IssueError::Io {
                path: path.clone(),
                source,
            })?;
    }
    batch.commit().map_err(|source| IssueError::Io {
        path: dir.clone(),
        source,
    })?;
    let written = plan.into_iter().map(|(p, ..)| p).collect();
    Ok(written)
}

/// Signs a node's CSR under a profile. The CSR brings its public key; the plan decides
/// everything else. Requested SANs must be among what the plan allows, and a subject the
/// CSR names must be the one the plan gives. The result is a new generation holding the
/// certificate alone: the key stays on the node, and no earlier key survives beside it.
pub fn sign_csr(
    store: &Store,
    keyring: &Keyring,
    profiles: &Profiles,
    plan: Plan,
    csr: &CsrInfo,
    opts: &Options,
) -> Result<Issued, IssueError> {
    let c = plan
        .cert
        .as_ref()
        .expect("sign plans are certificate plans");
    if csr.requests_ca {
        return Err(PolicyError::CsrRequestsCa.into());
    }
    let foreign: Vec<String> = csr
        .requested_sans
        .iter()
        .filter(|s| !c.sans.contains(s))
        .map(San::to_string)
        .collect();
    if !foreign.is_empty() {
        return Err(PolicyError::CsrSanNotAllowed {
            sans: foreign.join(", "),
            whom: plan.target.to_string(),
        }
        .into());
    }
    let (mut asked_o, mut gives_o) = (csr.subject_o.clone(), c.o.clone());
    asked_o.sort();
    gives_o.sort();
    let cn_differs = !csr.subject_cn.is_empty() && csr.subject_cn != [c.cn.clone()];
    let o_differs = !asked_o.is_empty() && asked_o != gives_o;
    if cn_differs || o_differs {
        let show = |cn: &[String], o: &[String]| {
            let mut parts: Vec<String> = cn.iter().map(|v| format!("CN={v:?}")).collect();
            parts.extend(o.iter().map(|v| format!("O={v:?}")));
            parts.join(", ")
        };
        return Err(PolicyError::CsrSubject {
            asked: show(&csr.subject_cn, &asked_o),
            gives: show(std::slice::from_ref(&c.cn), &gives_o),
            profile: plan.profile.clone(),
        }
        .into());
    }
    let exists = store.current(&plan.profile, &plan.target.key())?.is_some();
    if exists && !opts.force {
        return Err(
            PolicyError::AlreadyIssued(format!("{} for {}", plan.profile, plan.target)).into(),
        );
    }
    let request = Request {
        plan,
        reason: if exists {
            Reason::Forced
        } else {
            Reason::Missing
        },
        key: KeySource::Reuse(csr.spki.clone()),
    };
    let opts = Options {
        out: None,
        ..opts.clone()
    };
    let mut done = issue(store, Some(keyring), profiles, vec![request], &opts)?;
    Ok(done.remove(0))
}

/// Makes a key and a CSR for a plan, as a node does so its key never leaves it.
pub fn make_csr(plan: &Plan) -> Result<(Zeroizing<String>, String), PkiError> {
    let c = plan.cert.as_ref().expect("CSR plans are certificate plans");
    let KeyKind::Pair(alg) = plan.key else {
        unreachable!("CSR plans are certificate plans")
    };
    let key = alg.generate()?;
    let csr_pem = pki::csr(&c.cn, &c.o, &c.sans, &key)?;
    Ok((pki::private_pem(&key), csr_pem))
}
