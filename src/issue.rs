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
use crate::plan::{CertContent, Plan, Target};
use crate::profile::{Body, CaRole, Profile, Profiles};
use crate::store::{atomic, Artifact, Existing, Keyring, Record, Store, StoreError};

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
}

impl PolicyError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PolicyError::LeafOutlivesCa { .. } => "shorten it with --validity, pass --clamp to end it with the CA, or rotate the CA first".into(),
            PolicyError::AlreadyIssued(_) => "pass --force to replace (the old files go to the store's backup/), or use `kpki apply` to issue only what is missing".into(),
            PolicyError::CsrRequestsCa => "make the CSR without a CA:TRUE basicConstraints extension".into(),
            PolicyError::CsrSanNotAllowed { .. } => "make the CSR with the node's own names, or allow a name explicitly with --san".into(),
            PolicyError::OutputExists(_) => "pass --force to replace it (the old file is kept as <name>.<time>.bak), or choose another --out".into(),
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

/// One completed issuance.
pub struct Issued {
    pub plan: Plan,
    pub record: Record,
    /// Certificate PEM (leaf only); `None` for a key pair.
    pub cert_pem: Option<String>,
    pub ca_pem: Option<String>,
    /// Public key PEM of a key pair.
    pub public_pem: Option<String>,
    pub key_pem: Option<Zeroizing<String>>,
    pub exported: Vec<PathBuf>,
}

/// notBefore is set a few minutes back so a node whose clock runs slow still accepts a
/// certificate issued moments ago.
const BACKDATE: time::Duration = time::Duration::minutes(5);

fn leaf_spec(
    c: &CertContent,
    rsa_key: bool,
    signer: &Signer,
    what: &str,
    opts: &Options,
) -> Result<LeafSpec, PolicyError> {
    let mut not_after = opts.now + c.validity.duration();
    if not_after > signer.not_after {
        if !opts.clamp {
            return Err(PolicyError::LeafOutlivesCa {
                what: what.to_owned(),
                leaf: pki::rfc3339(not_after),
                ca: String::new(),
                ca_end: pki::rfc3339(signer.not_after),
            });
        }
        not_after = signer.not_after;
    }
    Ok(LeafSpec {
        cn: c.cn.clone(),
        o: c.o.clone(),
        sans: c.sans.clone(),
        ext_key_usage: c.ext_key_usage.clone(),
        rsa_key,
        not_before: opts.now - BACKDATE,
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
        if let std::collections::btree_map::Entry::Vacant(e) = m.entry(store.ca_name(r).to_owned())
        {
            e.insert(store.signer(r, keyring)?);
        }
    }
    Ok(m)
}

/// Whether a plan needs a CA (and so an unlocked store).
pub fn needs_unlock(plans: &[Plan]) -> bool {
    plans.iter().any(|p| p.cert.is_some())
}

/// Issues every plan: keys generated here, certificates signed, store and ledger updated,
/// files exported. All refusals happen before anything is written.
pub fn issue(
    store: &Store,
    keyring: Option<&Keyring>,
    profiles: &Profiles,
    plans: Vec<Plan>,
    opts: &Options,
) -> Result<Vec<Issued>, IssueError> {
    // 1. Refuse what exists, all at once.
    if !opts.force {
        let taken: Vec<String> = plans
            .iter()
            .filter(|p| {
                store
                    .issued_dir(&p.profile, &p.target.key())
                    .join("key.pem.age")
                    .exists()
            })
            .map(|p| format!("{} for {}", p.profile, p.target))
            .collect();
        if !taken.is_empty() {
            return Err(PolicyError::AlreadyIssued(summarize_list(&taken)).into());
        }
    }
    // 2. Keys and certificates, in memory.
    let signers = match keyring {
        Some(k) => signers(
            store,
            k,
            plans.iter().filter_map(|p| p.cert.as_ref().map(|c| c.ca)),
        )?,
        None => BTreeMap::new(),
    };
    let mut done = Vec::with_capacity(plans.len());
    for plan in plans {
        let key = plan.key.generate()?;
        let key_pem = pki::private_pem(&key);
        let what = format!("{} for {}", plan.profile, plan.target);
        let (cert_pem, ca_pem, public_pem, record) = match &plan.cert {
            Some(c) => {
                let signer = signers
                    .get(store.ca_name(c.ca))
                    .expect("a signer for every planned CA");
                let spec = leaf_spec(c, plan.key.is_rsa(), signer, &what, opts)
                    .map_err(|e| with_ca(e, store, c.ca))?;
                let der = pki::sign(&spec, &key, signer)?;
                let record = record_for(&plan, store.ca_name(c.ca), &der, "generated", opts.now)?;
                (
                    Some(pem::encode("CERTIFICATE", &der)),
                    Some(signer.cert_pem.clone()),
                    None,
                    record,
                )
            }
            None => {
                let record = Record {
                    serial: String::new(),
                    profile: plan.profile.clone(),
                    target: plan.target.key(),
                    node: plan.target.node().map(|n| n.to_string()),
                    ca: String::new(),
                    subject: String::new(),
                    sans: vec![],
                    not_before: opts.now,
                    not_after: opts.now,
                    sha256: pki::fingerprint(&key.subject_public_key_info()),
                    key_algorithm: plan.key.name().into(),
                    source: "generated".into(),
                    issued_at: opts.now,
                };
                (None, None, Some(key.public_key_pem()), record)
            }
        };
        done.push(Issued {
            plan,
            record,
            cert_pem,
            ca_pem,
            public_pem,
            key_pem: Some(key_pem),
            exported: vec![],
        });
    }
    // 3. The store: files, then one ledger update, flushed together.
    let mut batch = atomic::Batch::new();
    for i in &done {
        let mut files = vec![Artifact {
            name: "key.pem.age",
            bytes: store.seal(i.key_pem.as_ref().expect("generated").as_bytes())?,
            mode: 0o600,
        }];
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
        store.save_issued(
            &mut batch,
            &i.plan.profile,
            &i.plan.target.key(),
            &files,
            opts.force,
            opts.now,
        )?;
    }
    store.append_ledger(
        &mut batch,
        &done.iter().map(|i| i.record.clone()).collect::<Vec<_>>(),
    )?;
    batch.commit().map_err(|source| IssueError::Io {
        path: store.dir().to_path_buf(),
        source,
    })?;
    // 4. Export for installation.
    if let Some(out) = &opts.out {
        for i in &mut done {
            let p = profiles
                .get(&i.plan.profile)
                .expect("planned from these profiles");
            i.exported = export(
                out,
                p,
                &i.plan.target,
                i.cert_pem.as_deref(),
                i.ca_pem.as_deref(),
                i.public_pem.as_deref(),
                i.key_pem.as_deref().map(|s| s.as_str()),
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

fn summarize_list(items: &[String]) -> String {
    if items.len() <= 4 {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..3].join(", "), items.len() - 3)
    }
}

fn record_for(
    plan: &Plan,
    ca: &str,
    der: &[u8],
    source: &str,
    now: OffsetDateTime,
) -> Result<Record, PkiError> {
    let s = pki::summarize(der, now)?;
    Ok(Record {
        serial: s.serial,
        profile: plan.profile.clone(),
        target: plan.target.key(),
        node: plan.target.node().map(|n| n.to_string()),
        ca: ca.to_owned(),
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
        issued_at: now,
    })
}

/// Writes a profile's files for installation into `<out>/<target>/`: the certificate
/// (with the CA appended when the profile says so), the key (0600) and the CA.
#[allow(clippy::too_many_arguments)]
pub fn export(
    out: &Path,
    p: &Profile,
    target: &Target,
    cert_pem: Option<&str>,
    ca_pem: Option<&str>,
    public_pem: Option<&str>,
    key_pem: Option<&str>,
    opts: &Options,
) -> Result<Vec<PathBuf>, IssueError> {
    let dir = out.join(target.key());
    atomic::create_dir_private(&dir).map_err(|source| IssueError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut files: Vec<(String, String, u32)> = Vec::new();
    if let Some(k) = key_pem {
        files.push((p.key_file.file_name().into(), k.to_owned(), 0o600));
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
                files.push((spec.cert.file_name().into(), body, 0o644));
            }
            if let Some(ca) = ca_pem {
                files.push((spec.ca_file.file_name().into(), ca.to_owned(), 0o644));
            }
        }
        Body::KeyPair { public } => {
            if let Some(pubk) = public_pem {
                files.push((public.file_name().into(), pubk.to_owned(), 0o644));
            }
        }
    }
    // Check every target first so a refusal writes nothing.
    let mut plan = Vec::new();
    for (name, body, mode) in files {
        let path = dir.join(&name);
        match std::fs::read(&path) {
            Ok(old) if old == body.as_bytes() => continue,
            Ok(_) if !opts.force => return Err(PolicyError::OutputExists(path).into()),
            Ok(_) => plan.push((path, body, mode, true)),
            Err(_) => plan.push((path, body, mode, false)),
        }
    }
    for (path, _, _, replace) in &plan {
        if *replace {
            let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
            let bak = path.with_file_name(format!(
                "{}.{}.bak",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
                opts.now.format(&f).unwrap_or_default()
            ));
            std::fs::rename(path, &bak).map_err(|source| IssueError::Io {
                path: path.clone(),
                source,
            })?;
        }
    }
    let mut batch = atomic::Batch::new();
    for (path, body, mode, _) in &plan {
        batch
            .add(path, body.as_bytes(), *mode, Existing::Refuse)
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
/// everything else. Requested SANs must be among what the plan allows.
pub fn sign_csr(
    store: &Store,
    keyring: &Keyring,
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
    if !opts.force
        && store
            .read_issued(&plan.profile, &plan.target.key(), "cert.pem")?
            .is_some()
    {
        return Err(
            PolicyError::AlreadyIssued(format!("{} for {}", plan.profile, plan.target)).into(),
        );
    }
    let signer = store.signer(c.ca, keyring)?;
    let what = format!("{} for {}", plan.profile, plan.target);
    let spec = leaf_spec(c, csr.key.algorithm == "RSA", &signer, &what, opts)
        .map_err(|e| with_ca(e, store, c.ca))?;
    let spki = SubjectPublicKeyInfo::from_der(&csr.spki)
        .map_err(|e| PkiError::UnsupportedKey(e.to_string()))?;
    let der = pki::sign(&spec, &spki, &signer)?;
    let record = record_for(&plan, store.ca_name(c.ca), &der, "csr", opts.now)?;
    let cert_pem = pem::encode("CERTIFICATE", &der);
    let mut batch = atomic::Batch::new();
    store.save_issued(
        &mut batch,
        &plan.profile,
        &plan.target.key(),
        &[Artifact {
            name: "cert.pem",
            bytes: cert_pem.clone().into_bytes(),
            mode: 0o644,
        }],
        true,
        opts.now,
    )?;
    store.append_ledger(&mut batch, std::slice::from_ref(&record))?;
    batch.commit().map_err(|source| IssueError::Io {
        path: store.dir().to_path_buf(),
        source,
    })?;
    Ok(Issued {
        plan,
        record,
        cert_pem: Some(cert_pem),
        ca_pem: Some(signer.cert_pem.clone()),
        public_pem: None,
        key_pem: None,
        exported: vec![],
    })
}

/// Makes a key and a CSR for a plan, as a node does so its key never leaves it.
pub fn make_csr(plan: &Plan) -> Result<(Zeroizing<String>, String), PkiError> {
    let c = plan.cert.as_ref().expect("CSR plans are certificate plans");
    let key = plan.key.generate()?;
    let csr_pem = pki::csr(&c.cn, &c.o, &c.sans, &key)?;
    Ok((pki::private_pem(&key), csr_pem))
}
