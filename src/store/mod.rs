//! The store: the only code that reads or writes the store directory.
//!
//! ```text
//! <store>/kpki.toml                        format, cluster, recipients, the CAs, and per CA
//!                                          role which CA signs and which CAs are trusted
//! <store>/store-identity.age               passphrase stores only: the store's identity
//! <store>/ca/<name>/<key-id>/              ca.crt + ca.key.age of every CA generation
//! <store>/issued/<profile>/<target>/current  the number of the current generation
//! <store>/issued/<profile>/<target>/<n>/   generation n: cert.pem + key.pem.age, cert.pem
//!                                          alone (signed from a CSR), public.pem +
//!                                          key.pem.age (a key pair), or
//!                                          <provider>.key.age alone (a secret such as
//!                                          secretbox.key.age: 32 bytes, age-encrypted)
//! <store>/issued/<profile>/<target>/trusted  key pairs and secrets: earlier generations
//!                                          still published (sa.pub) or still decrypting
//! <store>/ledger.jsonl                     append-only history, one JSON event per line
//! <store>/journal.json                     a change under way, or one a killed kpki left
//!                                          (completed or rolled back on the next open)
//! <store>/backup/<time>-format-1/…         the store before its migration from format 1
//! ```
//! Nothing secret lies in clear here, so the directory can be committed to git.
//!
//! Nothing is overwritten: a new certificate is a new generation and the `current`
//! pointer is replaced atomically, so a rotation can roll back and a revocation can find
//! a serial's issuer; old generations go only by `kpki store prune`. A CA is named by its
//! subject key identifier, so an old and a new CA of the same name can both be trusted.
//! Every decision that depends on what the store holds is taken under the store lock.

pub mod atomic;
pub mod crash;
pub mod journal;
pub mod ledger;
mod lock;
mod migrate;
mod secrets;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use atomic::Existing;
pub use journal::{Change, Recovered};
pub use ledger::{CaRecord, Event, Record};
pub use lock::StoreLock;
pub use secrets::{
    encrypt, identity_file_text, keep_memory_private, parse_identities, parse_recipients,
    read_identity_file, Keyring, SecretError, Unlock,
};

use crate::encryption::Provider;
use crate::pki::{self, KeyAlgorithm, PkiError, Signer};
use crate::profile::CaRole;

const CONFIG: &str = "kpki.toml";
const WRAPPED_IDENTITY: &str = "store-identity.age";
const LEDGER: &str = "ledger.jsonl";
const CURRENT: &str = "current";
const TRUSTED: &str = "trusted";
/// The store format this kpki writes. Format 1 (kpki 0.1) is migrated on first open.
pub const FORMAT: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no kpki store at {0}")]
    NotAStore(PathBuf),
    #[error("a kpki store already exists at {0}")]
    AlreadyExists(PathBuf),
    #[error("{what} already exists at {path}")]
    Exists { what: String, path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: store format {found} is newer than the format {FORMAT} this kpki reads")]
    TooNew { path: PathBuf, found: u32 },
    #[error("the store has no {0} CA")]
    MissingCa(String),
    #[error("the store has issued no {0}")]
    NotIssued(String),
    #[error("store is locked: {0}")]
    Locked(String),
    #[error("{0}")]
    Refused(String, String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

impl StoreError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            StoreError::NotAStore(_) => "create one with `kpki init`, or point --store / KPKI_STORE at it".into(),
            StoreError::AlreadyExists(_) => "use it as it is, or `kpki init --force` to make new CAs (the old ones stay trusted until `kpki store retire`)".into(),
            StoreError::Exists { .. } => "pass --force to issue a new generation; the old one stays in the store".into(),
            StoreError::TooNew { .. } => "use the kpki release that wrote this store, or a newer one".into(),
            StoreError::Corrupt { .. } => "restore the file from the store's git history or its backup/, then `kpki store verify`".into(),
            StoreError::Refused(_, hint) => hint.clone(),
            StoreError::Secret(SecretError::WrongIdentity(_)) | StoreError::Secret(SecretError::NoIdentity(_)) => {
                "pass the identity this store was created with (--identity FILE or KPKI_IDENTITY)".into()
            }
            StoreError::Secret(SecretError::ReadIdentity { .. }) => "pass the store's identity with --identity FILE, or set KPKI_PASSPHRASE for a passphrase store".into(),
            StoreError::Secret(SecretError::IdentityMode(p, _)) => format!("chmod 600 {}", p.display()),
            StoreError::Secret(SecretError::WrongPassphrase) => "check KPKI_PASSPHRASE (or what you typed at the prompt)".into(),
            StoreError::Locked(_) => "wait for the other kpki process to finish".into(),
            StoreError::NotIssued(_) => "issue it with `kpki apply` (or `kpki issue`)".into(),
            StoreError::Pki(PkiError::Validity(_)) => pki::VALIDITY_HINT.into(),
            StoreError::MissingCa(_) => "restore the CA's directory from the store's git history, then `kpki store verify`".into(),
            _ => return None,
        })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether the store uses one root CA or kubeadm's three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaModel {
    Single,
    Kubeadm,
}

/// How keys are protected at rest.
pub enum Protection {
    /// To the identity in this file (created when missing), plus extra recipients.
    Identity { file: PathBuf, extra: Vec<String> },
    /// With a passphrase (age scrypt) that wraps the store's own identity.
    Passphrase(SecretString),
}

/// What `kpki init` asks for.
pub struct InitSpec {
    pub cluster: String,
    /// `None`: the existing store's model with `--force`, else [`CaModel::Kubeadm`].
    pub model: Option<CaModel>,
    pub key: KeyAlgorithm,
    pub validity: crate::span::Span,
    pub protection: Protection,
    pub force: bool,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Config {
    format: u32,
    cluster: String,
    protection: String,
    recipients: Vec<String>,
    /// Every CA generation the store holds.
    ca: Vec<CaEntry>,
    roles: Roles,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct CaEntry {
    /// Subject key identifier, lowercase hex.
    id: String,
    name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Roles {
    kubernetes: RoleTrust,
    etcd: RoleTrust,
    front_proxy: RoleTrust,
}

impl Roles {
    fn get(&self, r: CaRole) -> &RoleTrust {
        match r {
            CaRole::Kubernetes => &self.kubernetes,
            CaRole::Etcd => &self.etcd,
            CaRole::FrontProxy => &self.front_proxy,
        }
    }
    fn get_mut(&mut self, r: CaRole) -> &mut RoleTrust {
        match r {
            CaRole::Kubernetes => &mut self.kubernetes,
            CaRole::Etcd => &mut self.etcd,
            CaRole::FrontProxy => &mut self.front_proxy,
        }
    }
}

/// Which CA signs for a role, and which CAs the role's relying parties trust.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RoleTrust {
    signing: String,
    /// Always holds `signing`; an older CA stays until it is retired.
    trusted: Vec<String>,
}

/// One CA generation of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaRef {
    /// Subject key identifier, lowercase hex.
    pub id: String,
    pub name: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl CaRef {
    /// A name that tells generations apart: `root` for the CA that signs, `root@1a2b3c4d`
    /// for an older one still trusted.
    pub fn label(&self, signing: bool) -> String {
        if signing {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, &self.id[..self.id.len().min(8)])
        }
    }
}

/// An opened store.
pub struct Store {
    dir: PathBuf,
    config: Config,
    /// A change a killed kpki had left, completed or rolled back when the store was opened.
    recovered: Option<Recovered>,
}

/// One file of an issuance.
pub struct Artifact {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// One generation of an issuance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub n: u64,
    pub dir: PathBuf,
}

impl Generation {
    /// Reads a file of this generation, if present.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.dir.join(name);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.dir.join(name).is_file()
    }

    /// The provider of the secret this generation holds (`<provider>.key.age`), if any.
    pub fn secret(&self) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| self.has(p.file_name()))
    }
}

/// A generation staged in a batch, for the ledger.
#[derive(Clone, Copy, Debug)]
pub struct NewGeneration {
    pub n: u64,
    pub previous: Option<u64>,
}

/// What `init` did, for the report.
pub struct InitReport {
    /// Each new CA: its name and certificate path.
    pub cas: Vec<(String, PathBuf)>,
    pub identity_created: Option<PathBuf>,
    /// CAs that signed before `--force` and stay trusted.
    pub kept: Vec<CaRef>,
}

fn new_roles(model: CaModel, ids: &[(String, String)]) -> Roles {
    let id_of = |name: &str| -> String {
        ids.iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.clone())
            .expect("a CA per role")
    };
    let rt = |name: &str| RoleTrust {
        signing: id_of(name),
        trusted: vec![id_of(name)],
    };
    match model {
        CaModel::Single => Roles {
            kubernetes: rt("root"),
            etcd: rt("root"),
            front_proxy: rt("root"),
        },
        CaModel::Kubeadm => Roles {
            kubernetes: rt("kubernetes"),
            etcd: rt("etcd"),
            front_proxy: rt("front-proxy"),
        },
    }
}

/// The key identifier of a CA certificate, lowercase hex.
pub fn key_id_of(cert: &[u8]) -> Result<String, PkiError> {
    let der = pki::pem::first_cert(cert)
        .ok_or_else(|| PkiError::BadCertificate("no certificate in the file".into()))?;
    let s = pki::summarize(&der, OffsetDateTime::UNIX_EPOCH)?;
    Ok(match s.subject_key_id {
        Some(k) => k.replace(':', "").to_ascii_lowercase(),
        // A CA without a SKI (not one kpki made): name it by its certificate's hash.
        None => s.sha256.replace(':', "").to_ascii_lowercase()[..40].to_owned(),
    })
}

impl Store {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cluster(&self) -> &str {
        &self.config.cluster
    }

    pub fn exists(dir: &Path) -> bool {
        dir.join(CONFIG).is_file()
    }

    /// Creates a store with its CA(s), or with `--force` new CAs in an existing store.
    /// The existence check, the CA creation and the config write happen under the lock.
    pub fn init(
        dir: &Path,
        spec: InitSpec,
        now: OffsetDateTime,
    ) -> Result<(Store, StoreLock, InitReport), StoreError> {
        atomic::create_dirs(dir, dir).map_err(io_err(dir))?;
        let lock = lock::acquire(dir)?;
        let recovered = journal::recover(dir)?;
        let existing = if Store::exists(dir) {
            if !spec.force {
                return Err(StoreError::AlreadyExists(dir.into()));
            }
            Some(Store::open_locked(dir, now)?)
        } else {
            None
        };
        let report = Store::create_cas(dir, spec, existing, now)?;
        let mut store = Store::open_locked(dir, now)?;
        store.recovered = recovered;
        Ok((store, lock, report))
    }

    /// Opens the store at `dir` under its lock, creating it first when there is none.
    /// Two processes that both find no store make one CA between them, never two.
    pub fn open_or_init(
        dir: &Path,
        spec: InitSpec,
        now: OffsetDateTime,
    ) -> Result<(Store, StoreLock, Option<InitReport>), StoreError> {
        atomic::create_dirs(dir, dir).map_err(io_err(dir))?;
        let lock = lock::acquire(dir)?;
        let recovered = journal::recover(dir)?;
        let report = if Store::exists(dir) {
            None
        } else {
            Some(Store::create_cas(dir, spec, None, now)?)
        };
        let mut store = Store::open_locked(dir, now)?;
        store.recovered = recovered;
        Ok((store, lock, report))
    }

    fn create_cas(
        dir: &Path,
        spec: InitSpec,
        existing: Option<Store>,
        now: OffsetDateTime,
    ) -> Result<InitReport, StoreError> {
        let mut identity_created = None;
        let (protection, recipients, wrapped) = match (&spec.protection, &existing) {
            // New CAs in an existing store: its keys stay encrypted to its recipients.
            (p, Some(old)) => {
                let same = match p {
                    Protection::Passphrase(_) => old.is_passphrase(),
                    Protection::Identity { file, extra } => {
                        !old.is_passphrase()
                            && extra.iter().all(|r| old.config.recipients.contains(r))
                            && read_identity_file(file).is_ok_and(|ids| {
                                ids.iter().any(|id| {
                                    old.config.recipients.contains(&id.to_public().to_string())
                                })
                            })
                    }
                };
                if !same {
                    return Err(StoreError::Refused(
                        format!("`init --force` makes new CAs in the store at {}, whose keys are encrypted to other recipients than the ones given", dir.display()),
                        "pass the store's own identity (or passphrase); to re-encrypt a store, make a new one".into(),
                    ));
                }
                (
                    old.config.protection.clone(),
                    old.config.recipients.clone(),
                    None,
                )
            }
            (Protection::Identity { file, extra }, None) => {
                // A killed kpki's temporary identity (a secret) does not outlive it, even
                // one killed after the identity itself was in place.
                let parent = atomic::parent_of(file);
                if parent.is_dir() {
                    atomic::remove_leftovers(&parent, 1).map_err(io_err(&parent))?;
                }
                let ids = match read_identity_file(file) {
                    Ok(ids) => ids,
                    Err(SecretError::ReadIdentity { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        let id = age::x25519::Identity::generate();
                        atomic::create_dirs(&parent, &parent).map_err(io_err(&parent))?;
                        match atomic::write(
                            &parent,
                            file,
                            identity_file_text(&id).as_bytes(),
                            0o600,
                            Existing::Refuse,
                        ) {
                            Ok(()) => {
                                identity_created = Some(file.clone());
                                vec![id]
                            }
                            // Another kpki (on another store) made it a moment ago.
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                                read_identity_file(file)?
                            }
                            Err(e) => return Err(io_err(file)(e)),
                        }
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut r = vec![ids[0].to_public().to_string()];
                secrets::parse_recipients(extra)?;
                r.extend(extra.iter().cloned());
                ("identity".to_string(), r, None)
            }
            (Protection::Passphrase(pass), None) => {
                let id = age::x25519::Identity::generate();
                let text = identity_file_text(&id);
                let wrapped = secrets::encrypt_passphrase(pass, text.as_bytes())?;
                (
                    "passphrase".to_string(),
                    vec![id.to_public().to_string()],
                    Some(wrapped),
                )
            }
        };
        let parsed = secrets::parse_recipients(&recipients)?;
        let model = spec.model.unwrap_or_else(|| match &existing {
            Some(old) if old.ca_id(CaRole::Etcd) == old.ca_id(CaRole::Kubernetes) => {
                CaModel::Single
            }
            _ => CaModel::Kubeadm,
        });
        let names: Vec<&str> = match model {
            CaModel::Single => vec!["root"],
            CaModel::Kubeadm => vec!["kubernetes", "etcd", "front-proxy"],
        };
        let mut change = Change::new(dir);
        if let Some(w) = &wrapped {
            change.replace(&dir.join(WRAPPED_IDENTITY), w.clone(), 0o600)?;
        }
        let mut ids = Vec::new();
        let mut made = Vec::new();
        let mut events = Vec::new();
        for name in names {
            let key = spec.key.generate()?;
            let cn = if name == "root" {
                format!("{} root CA", spec.cluster)
            } else {
                format!("{} {} CA", spec.cluster, name)
            };
            let pem = pki::new_ca(
                &pki::CaSpec {
                    cn: &cn,
                    o: &spec.cluster,
                    not_before: now.saturating_sub(time::Duration::minutes(5)),
                    not_after: pki::end_of(now, spec.validity)?,
                },
                &key,
            )?;
            let id = key_id_of(pem.as_bytes())?;
            let cadir = dir.join("ca").join(name).join(&id);
            let enc = secrets::encrypt(&parsed, pki::private_pem(&key).as_bytes())?;
            for (file, bytes, mode) in [
                ("ca.key.age", enc, 0o600),
                ("ca.crt", pem.clone().into_bytes(), 0o644),
            ] {
                change.create(&cadir.join(file), bytes, mode)?;
            }
            let der = pki::pem::first_cert(pem.as_bytes()).expect("a CA PEM just made");
            let s = pki::summarize(&der, now)?;
            let roles: Vec<CaRole> = CaRole::ALL
                .into_iter()
                .filter(|r| model == CaModel::Single || r.name() == name)
                .collect();
            events.push(Event::CaCreated {
                at: now,
                ca: CaRecord {
                    id: id.clone(),
                    name: name.into(),
                    roles,
                    subject: s.subject,
                    not_after: s.not_after,
                    sha256: s.sha256,
                },
            });
            made.push((name.to_string(), cadir.join("ca.crt")));
            ids.push((name.to_string(), id));
        }
        let mut roles = new_roles(model, &ids);
        let mut cas: Vec<CaEntry> = Vec::new();
        let mut kept = Vec::new();
        if let Some(old) = &existing {
            // The CAs that signed until now stay trusted beside the new ones.
            cas = old.config.ca.clone();
            for r in CaRole::ALL {
                let before = old.config.roles.get(r).trusted.clone();
                let t = &mut roles.get_mut(r).trusted;
                for id in before {
                    if !t.contains(&id) {
                        t.push(id);
                    }
                }
            }
            for id in old.trusted_ids() {
                if let Some(c) = old.ca_by_id(&id) {
                    kept.push(c);
                }
            }
        }
        cas.extend(ids.iter().map(|(name, id)| CaEntry {
            id: id.clone(),
            name: name.clone(),
        }));
        let config = Config {
            format: FORMAT,
            cluster: existing
                .as_ref()
                .map_or(spec.cluster.clone(), |o| o.config.cluster.clone()),
            protection,
            recipients,
            ca: cas,
            roles,
        };
        // The config goes last: it is what makes the new CAs the signing ones.
        change.replace(&dir.join(CONFIG), config_text(&config), 0o644)?;
        if wrapped.is_none() && existing.is_none() && dir.join(WRAPPED_IDENTITY).exists() {
            change.remove(&dir.join(WRAPPED_IDENTITY))?;
        }
        change.events(events);
        change.commit()?;
        Ok(InitReport {
            cas: made,
            identity_created,
            kept,
        })
    }

    /// Opens an existing store; a format-1 store is migrated first (under the lock).
    /// A change a killed kpki left is completed or rolled back first (also under the lock).
    pub fn open(dir: &Path, now: OffsetDateTime) -> Result<Store, StoreError> {
        if dir.join(journal::JOURNAL).exists() {
            let _lock = lock::acquire(dir)?;
            let recovered = journal::recover(dir)?;
            let mut store = Store::open_locked(dir, now)?;
            store.recovered = recovered;
            return Ok(store);
        }
        match Store::read_config(dir)? {
            ConfigRead::Current(config) => Ok(Store {
                dir: dir.into(),
                config: *config,
                recovered: None,
            }),
            ConfigRead::Old(_) => {
                let _lock = lock::acquire(dir)?;
                Store::open_locked(dir, now)
            }
        }
    }

    /// What opening the store completed or rolled back of a killed kpki's change.
    pub fn recovered(&self) -> Option<&Recovered> {
        self.recovered.as_ref()
    }

    /// Opens the store while the caller holds its lock, migrating an old format.
    fn open_locked(dir: &Path, now: OffsetDateTime) -> Result<Store, StoreError> {
        let config = match Store::read_config(dir)? {
            ConfigRead::Current(c) => c,
            ConfigRead::Old(text) => {
                migrate::from_v1(dir, &text, now)?;
                match Store::read_config(dir)? {
                    ConfigRead::Current(c) => c,
                    ConfigRead::Old(_) => unreachable!("migration writes the current format"),
                }
            }
        };
        Ok(Store {
            dir: dir.into(),
            config: *config,
            recovered: None,
        })
    }

    fn read_config(dir: &Path) -> Result<ConfigRead, StoreError> {
        let path = dir.join(CONFIG);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotAStore(dir.into()))
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let value: toml::Table = toml::from_str(&text).map_err(|e| corrupt(e.message().into()))?;
        let format = value
            .get("format")
            .and_then(|v| v.as_integer())
            .ok_or_else(|| corrupt("no `format` number".into()))?;
        match u32::try_from(format) {
            Ok(1) => Ok(ConfigRead::Old(text)),
            Ok(FORMAT) => {
                let config: Config =
                    toml::from_str(&text).map_err(|e| corrupt(e.message().into()))?;
                validate_config(&config).map_err(corrupt)?;
                Ok(ConfigRead::Current(Box::new(config)))
            }
            Ok(found) if found > FORMAT => Err(StoreError::TooNew { path, found }),
            _ => Err(corrupt(format!("unknown store format {format}"))),
        }
    }

    /// Takes the store lock, then reads the store: everything the command decides from
    /// it is what the store holds while the lock is held (another kpki's `init --force`
    /// cannot change the signing CA between the read and the decision).
    pub fn lock_open(dir: &Path, now: OffsetDateTime) -> Result<(Store, StoreLock), StoreError> {
        if !Store::exists(dir) && !dir.join(journal::JOURNAL).exists() {
            return Err(StoreError::NotAStore(dir.into()));
        }
        let lock = lock::acquire(dir)?;
        let recovered = journal::recover(dir)?;
        let mut store = Store::open_locked(dir, now)?;
        store.recovered = recovered;
        Ok((store, lock))
    }

    pub fn is_passphrase(&self) -> bool {
        self.config.protection == "passphrase"
    }

    /// Opens the keyring that decrypts this store's keys.
    pub fn keyring(&self, unlock: &Unlock) -> Result<Keyring, StoreError> {
        let wrapped = if self.is_passphrase() {
            let p = self.dir.join(WRAPPED_IDENTITY);
            Some(fs::read(&p).map_err(io_err(&p))?)
        } else {
            None
        };
        Ok(Keyring::open(
            unlock,
            &self.config.recipients,
            wrapped.as_deref(),
        )?)
    }

    // ----- CAs -----

    /// A CA generation by its key identifier (or a unique prefix of at least 8 digits).
    pub fn ca_by_id(&self, id: &str) -> Option<CaRef> {
        let id = id.to_ascii_lowercase().replace(':', "");
        let mut found = self
            .config
            .ca
            .iter()
            .filter(|c| c.id == id || (id.len() >= 8 && c.id.starts_with(&id)));
        let c = found.next()?;
        if found.next().is_some() {
            return None;
        }
        let dir = self.dir.join("ca").join(&c.name).join(&c.id);
        Some(CaRef {
            id: c.id.clone(),
            name: c.name.clone(),
            cert_path: dir.join("ca.crt"),
            key_path: dir.join("ca.key.age"),
        })
    }

    fn signing(&self, role: CaRole) -> CaRef {
        self.ca_by_id(&self.config.roles.get(role).signing)
            .expect("validated: every signing CA is listed")
    }

    /// The key identifier of the CA that signs for a role.
    pub fn ca_id(&self, role: CaRole) -> &str {
        &self.config.roles.get(role).signing
    }

    /// The name of the CA that signs for a role (`root`, `etcd`, …).
    pub fn ca_name(&self, role: CaRole) -> &str {
        let id = self.ca_id(role);
        self.config
            .ca
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.as_str())
            .expect("validated: every signing CA is listed")
    }

    /// Whether a CA signs for some role now.
    pub fn is_signing(&self, id: &str) -> bool {
        CaRole::ALL.iter().any(|r| self.ca_id(*r) == id)
    }

    /// Every CA some role trusts: the signing ones first, then older ones still trusted.
    pub fn trusted_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in CaRole::ALL {
            let s = &self.config.roles.get(r).signing;
            if !v.contains(s) {
                v.push(s.clone());
            }
        }
        for r in CaRole::ALL {
            for id in &self.config.roles.get(r).trusted {
                if !v.contains(id) {
                    v.push(id.clone());
                }
            }
        }
        v
    }

    /// The trusted CAs with the name the audit and messages give them.
    pub fn trusted_cas(&self) -> Vec<(CaRef, String)> {
        self.trusted_ids()
            .iter()
            .filter_map(|id| self.ca_by_id(id))
            .map(|c| {
                let label = c.label(self.is_signing(&c.id));
                (c, label)
            })
            .collect()
    }

    /// The CAs a role's relying parties trust, signing CA first.
    pub fn role_trusted(&self, role: CaRole) -> Vec<CaRef> {
        let t = self.config.roles.get(role);
        let mut ids = vec![t.signing.clone()];
        ids.extend(t.trusted.iter().filter(|i| **i != t.signing).cloned());
        ids.iter().filter_map(|i| self.ca_by_id(i)).collect()
    }

    /// The signing CA's certificate path for a role.
    pub fn ca_cert_path(&self, role: CaRole) -> PathBuf {
        self.signing(role).cert_path
    }

    /// The signing CA's certificate for a role (PEM).
    pub fn ca_cert_pem(&self, role: CaRole) -> Result<String, StoreError> {
        read_ca(&self.signing(role))
    }

    /// The trust file of a role: every CA it trusts, signing CA first (PEM).
    pub fn trust_pem(&self, role: CaRole) -> Result<String, StoreError> {
        let mut out = String::new();
        for c in self.role_trusted(role) {
            out.push_str(&read_ca(&c)?);
        }
        Ok(out)
    }

    /// The certificate of a CA generation by id (PEM).
    pub fn ca_pem_by_id(&self, id: &str) -> Result<String, StoreError> {
        let c = self
            .ca_by_id(id)
            .ok_or_else(|| StoreError::MissingCa(id.to_owned()))?;
        read_ca(&c)
    }

    /// Decrypts the signing CA's private key (PEM), for staging it where the operator
    /// asked for it (kube-controller-manager's CSR signing). Prefer [`Store::signer`].
    pub fn open_ca_key(
        &self,
        role: CaRole,
        keyring: &Keyring,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let kpath = self.signing(role).key_path;
        let enc = fs::read(&kpath).map_err(io_err(&kpath))?;
        Ok(keyring.decrypt(&kpath, &enc)?)
    }

    /// Decrypts the signing CA key of a role and makes a signer (the key stays in memory).
    pub fn signer(&self, role: CaRole, keyring: &Keyring) -> Result<Signer, StoreError> {
        let ca = self.signing(role);
        let cert = read_ca(&ca)?;
        let enc = fs::read(&ca.key_path).map_err(io_err(&ca.key_path))?;
        let plain = keyring.decrypt(&ca.key_path, &enc)?;
        let pem = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt {
            path: ca.key_path.clone(),
            reason: "the decrypted key is not PEM".into(),
        })?;
        let key = pki::load_private_pem(pem)?;
        Ok(Signer::new(&cert, key)?)
    }

    /// Stops trusting an older CA. Refused for a CA that signs, or while a current
    /// certificate of the store is still signed by it.
    pub fn retire_ca(&mut self, id: &str, now: OffsetDateTime) -> Result<CaRef, StoreError> {
        let ca = self.ca_by_id(id).ok_or_else(|| {
            StoreError::Refused(
                format!("no CA of this store has the key identifier '{id}'"),
                "`kpki ledger --json` lists every CA's id (ca-created events)".into(),
            )
        })?;
        if self.is_signing(&ca.id) {
            return Err(StoreError::Refused(
                format!("CA '{}' ({}) signs for a role now", ca.name, ca.id),
                "only a previous CA can be retired; make a new one first with `kpki init --force`"
                    .into(),
            ));
        }
        if !self.trusted_ids().contains(&ca.id) {
            return Err(StoreError::Refused(
                format!("CA {} is not trusted any more", ca.id),
                "nothing to do".into(),
            ));
        }
        let users: Vec<String> = self
            .issuances()?
            .into_iter()
            .filter_map(|(p, t)| {
                let g = self.current(&p, &t).ok()??;
                let der = pki::pem::first_cert(&g.read("cert.pem").ok()??)?;
                let aki = pki::summarize(&der, now).ok()?.authority_key_id?;
                (aki.replace(':', "").to_ascii_lowercase() == ca.id).then(|| format!("{p} for {t}"))
            })
            .collect();
        if !users.is_empty() {
            return Err(StoreError::Refused(
                format!(
                    "CA {} still signs {} current certificate(s): {}",
                    ca.label(false),
                    users.len(),
                    crate::issue::summarize_list(&users)
                ),
                "reissue them first with `kpki apply` (their reason is `issuer`)".into(),
            ));
        }
        let mut config = self.config.clone();
        for r in CaRole::ALL {
            config.roles.get_mut(r).trusted.retain(|i| *i != ca.id);
        }
        let mut change = Change::new(&self.dir);
        change.replace(&self.dir.join(CONFIG), config_text(&config), 0o644)?;
        change.event(Event::Retired {
            at: now,
            what: ca.id.clone(),
        });
        change.commit()?;
        self.config = config;
        Ok(ca)
    }

    // ----- issuances and their generations -----

    fn issuance_dir(&self, profile: &str, target: &str) -> PathBuf {
        self.dir.join("issued").join(profile).join(target)
    }

    /// Every (profile, target) the store has issued for.
    pub fn issuances(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let issued = self.dir.join("issued");
        for p in list_dir(&issued)? {
            for t in list_dir(&issued.join(&p))? {
                if issued.join(&p).join(&t).is_dir() {
                    out.push((p.clone(), t));
                }
            }
        }
        Ok(out)
    }

    /// The current generation of an issuance, if any.
    pub fn current(&self, profile: &str, target: &str) -> Result<Option<Generation>, StoreError> {
        let base = self.issuance_dir(profile, target);
        let p = base.join(CURRENT);
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&p)(e)),
        };
        let n: u64 = text.trim().parse().map_err(|_| StoreError::Corrupt {
            path: p.clone(),
            reason: format!("'{}' is not a generation number", text.trim()),
        })?;
        let dir = base.join(n.to_string());
        if !dir.is_dir() {
            return Err(StoreError::Corrupt {
                path: p,
                reason: format!("it names generation {n}, which is not in the store"),
            });
        }
        Ok(Some(Generation { n, dir }))
    }

    /// The generation numbers whose directories are in the store, ascending.
    pub fn generations(&self, profile: &str, target: &str) -> Result<Vec<u64>, StoreError> {
        let mut v: Vec<u64> = list_dir(&self.issuance_dir(profile, target))?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// One generation by number.
    pub fn generation(&self, profile: &str, target: &str, n: u64) -> Generation {
        Generation {
            n,
            dir: self.issuance_dir(profile, target).join(n.to_string()),
        }
    }

    /// Key pairs and secrets: earlier generations still trusted (public keys still
    /// published, encryption keys still decrypting).
    pub fn trusted_generations(
        &self,
        profile: &str,
        target: &str,
    ) -> Result<BTreeSet<u64>, StoreError> {
        let p = self.issuance_dir(profile, target).join(TRUSTED);
        match fs::read_to_string(&p) {
            Ok(t) => t
                .split_whitespace()
                .map(|w| {
                    w.parse().map_err(|_| StoreError::Corrupt {
                        path: p.clone(),
                        reason: format!("'{w}' is not a generation number"),
                    })
                })
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Reads a file of the current generation, if present.
    pub fn read_issued(
        &self,
        profile: &str,
        target: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.current(profile, target)? {
            Some(g) => g.read(name),
            None => Ok(None),
        }
    }

    /// Decrypts the key of the current generation.
    pub fn open_key(
        &self,
        profile: &str,
        target: &str,
        keyring: &Keyring,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let g = self
            .current(profile, target)?
            .ok_or_else(|| StoreError::NotIssued(format!("{profile} for {target}")))?;
        let p = g.dir.join("key.pem.age");
        let enc = fs::read(&p).map_err(io_err(&p))?;
        Ok(keyring.decrypt(&p, &enc)?)
    }

    /// Decrypts the secret of generation `n` of an issuance (a key for an encryption
    /// provider): its provider and its bytes, which are the length kpki makes them.
    pub fn open_secret(
        &self,
        profile: &str,
        target: &str,
        n: u64,
        keyring: &Keyring,
    ) -> Result<(Provider, zeroize::Zeroizing<Vec<u8>>), StoreError> {
        let g = self.generation(profile, target, n);
        let provider = g.secret().ok_or_else(|| StoreError::Corrupt {
            path: g.dir.clone(),
            reason: format!(
                "generation {n} of {profile} for {target} holds no secret (secretbox.key.age or aescbc.key.age)"
            ),
        })?;
        let p = g.dir.join(provider.file_name());
        let enc = fs::read(&p).map_err(io_err(&p))?;
        let secret = keyring.decrypt(&p, &enc)?;
        if secret.len() != Provider::KEY_LEN {
            return Err(StoreError::Corrupt {
                path: p,
                reason: format!(
                    "the decrypted key is {} bytes, not {}",
                    secret.len(),
                    Provider::KEY_LEN
                ),
            });
        }
        Ok((provider, secret))
    }

    /// Encrypts a private key PEM or a secret to the store's recipients (no unlock needed).
    pub fn seal(&self, private: &[u8]) -> Result<Vec<u8>, StoreError> {
        let r = secrets::parse_recipients(&self.config.recipients)?;
        Ok(secrets::encrypt(&r, private)?)
    }

    /// Adds a new generation of an issuance to `batch`, and the `current` pointer after
    /// its files. An issuance that has a current generation gets a new one only with
    /// `force` (or when the planner decided it); the old one stays. With `keep_previous`
    /// (a key pair, a secret) the previous generation stays trusted until retired: a
    /// service-account key stays published so live tokens keep verifying, an encryption
    /// key stays in the apiservers' configuration so what it encrypted stays readable.
    /// The caller holds the lock and records the result in the ledger after the commit.
    pub fn stage_generation(
        &self,
        change: &mut Change,
        profile: &str,
        target: &str,
        files: &[Artifact],
        replace: bool,
        keep_previous: bool,
    ) -> Result<NewGeneration, StoreError> {
        let base = self.issuance_dir(profile, target);
        let previous = self.current(profile, target)?.map(|g| g.n);
        if previous.is_some() && !replace {
            return Err(StoreError::Exists {
                what: format!("a {profile} issuance for {target}"),
                path: base,
            });
        }
        let n = self
            .generations(profile, target)?
            .into_iter()
            .chain(previous)
            .max()
            .unwrap_or(0)
            + 1;
        let dir = base.join(n.to_string());
        // Nothing is written until the change is committed (its directory is made then).
        for f in files {
            change.create(&dir.join(f.name), f.bytes.clone(), f.mode)?;
        }
        if let (Some(prev), true) = (previous, keep_previous) {
            let mut t = self.trusted_generations(profile, target)?;
            t.insert(prev);
            change.replace(&base.join(TRUSTED), numbers_text(&t).into_bytes(), 0o644)?;
        }
        change.replace(&base.join(CURRENT), format!("{n}\n").into_bytes(), 0o644)?;
        Ok(NewGeneration { n, previous })
    }

    /// Stops trusting the earlier generations of a key pair or a secret (the
    /// service-account key's old public keys, the old encryption keys). Returns the
    /// generations retired.
    pub fn retire_previous(
        &self,
        profile: &str,
        target: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<u64>, StoreError> {
        let t = self.trusted_generations(profile, target)?;
        if t.is_empty() {
            return Ok(vec![]);
        }
        let mut change = Change::new(&self.dir);
        change.remove(&self.issuance_dir(profile, target).join(TRUSTED))?;
        change.events(t.iter().map(|g| Event::Retired {
            at: now,
            what: format!("{profile}/{target}/{g}"),
        }));
        change.commit()?;
        Ok(t.into_iter().collect())
    }

    /// Removes all but the newest `keep` generations of every issuance (the current one
    /// and trusted key pair and secret generations are always kept). Returns what was
    /// removed.
    pub fn prune(
        &self,
        keep: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut gone = Vec::new();
        for (p, t) in self.issuances()? {
            let current = self.current(&p, &t)?.map(|g| g.n);
            let trusted = self.trusted_generations(&p, &t)?;
            let mut gens = self.generations(&p, &t)?;
            gens.reverse();
            let mut kept = 0;
            for g in gens {
                if Some(g) == current || trusted.contains(&g) || kept + 1 < keep.max(1) {
                    if Some(g) != current {
                        kept += 1;
                    }
                    continue;
                }
                gone.push((p.clone(), t.clone(), g));
            }
        }
        // The ledger first, then the directories (a killed prune is completed by the next
        // kpki): never a ledger that names files that are gone.
        let mut change = Change::new(&self.dir);
        for (p, t, g) in &gone {
            change.event(Event::Pruned {
                at: now,
                profile: p.clone(),
                target: t.clone(),
                generation: *g,
            });
            change.remove_dir_after(&self.generation(p, t, *g).dir)?;
        }
        change.commit()?;
        Ok(gone)
    }

    // ----- the ledger -----

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.join(LEDGER)
    }

    /// A change to this store ([`Change::commit`] makes it); the caller holds the lock.
    pub fn change(&self) -> Change {
        Change::new(&self.dir)
    }

    /// Every event of the ledger, and a warning when its last line was torn.
    pub fn ledger(&self) -> Result<ledger::Ledger, StoreError> {
        let p = self.ledger_path();
        ledger::read(&p).map_err(|e| match e {
            ledger::ReadError::Io(source) => StoreError::Io { path: p, source },
            ledger::ReadError::Damaged(reason) => StoreError::Corrupt { path: p, reason },
        })
    }

    /// Compares the store's files with what the ledger replays to. Each problem is one
    /// line; an empty list means the two agree.
    pub fn verify(&self, now: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        let read = self.ledger()?;
        let state = ledger::replay(&read.events);
        let mut problems = Vec::new();
        let mut on_disk = BTreeSet::new();
        for (p, t) in self.issuances()? {
            on_disk.insert((p.clone(), t.clone()));
            let want = state.issuances.get(&(p.clone(), t.clone()));
            let current = match self.current(&p, &t) {
                Ok(c) => c.map(|g| g.n),
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            let Some(want) = want else {
                problems.push(format!(
                    "issued/{p}/{t}: in the store, but the ledger never issued it"
                ));
                continue;
            };
            if current != want.current {
                problems.push(format!(
                    "issued/{p}/{t}: current generation is {}, the ledger says {}",
                    opt(current),
                    opt(want.current)
                ));
            }
            let gens: BTreeSet<u64> = self.generations(&p, &t)?.into_iter().collect();
            for g in gens.difference(&want.kept) {
                problems.push(format!(
                    "issued/{p}/{t}/{g}: in the store, but not in the ledger"
                ));
            }
            for g in want.kept.difference(&gens) {
                problems.push(format!(
                    "issued/{p}/{t}/{g}: the ledger issued it and never pruned it, but it is gone"
                ));
            }
            let trusted = self.trusted_generations(&p, &t)?;
            if trusted != want.trusted {
                problems.push(format!(
                    "issued/{p}/{t}: publishes generations {:?}, the ledger says {:?}",
                    trusted, want.trusted
                ));
            }
            if let Some(n) = current {
                problems.extend(self.verify_generation(&p, &t, n, now));
            }
        }
        for (p, t) in state.issuances.keys() {
            if !on_disk.contains(&(p.clone(), t.clone()))
                && state.issuances[&(p.clone(), t.clone())].current.is_some()
            {
                problems.push(format!(
                    "issued/{p}/{t}: the ledger issued it, but it is not in the store"
                ));
            }
        }
        for r in CaRole::ALL {
            let cfg = self.config.roles.get(r);
            let Some(want) = state.roles.get(&r) else {
                problems.push(format!("role {r}: the ledger created no CA for it"));
                continue;
            };
            if want.signing.as_deref() != Some(cfg.signing.as_str()) {
                problems.push(format!(
                    "role {r}: kpki.toml signs with {}, the ledger with {}",
                    cfg.signing,
                    want.signing.as_deref().unwrap_or("nothing")
                ));
            }
            let have: BTreeSet<String> = cfg.trusted.iter().cloned().collect();
            if have != want.trusted {
                problems.push(format!(
                    "role {r}: kpki.toml trusts {:?}, the ledger {:?}",
                    have, want.trusted
                ));
            }
        }
        for c in &self.config.ca {
            let r = self.ca_by_id(&c.id).expect("listed");
            match fs::read(&r.cert_path)
                .map_err(|e| e.to_string())
                .and_then(|b| key_id_of(&b).map_err(|e| e.to_string()))
            {
                Ok(id) if id == c.id => {}
                Ok(id) => problems.push(format!(
                    "{}: holds the CA with key id {id}, not {}",
                    r.cert_path.display(),
                    c.id
                )),
                Err(e) => problems.push(format!("{}: {e}", r.cert_path.display())),
            }
            if !r.key_path.is_file() {
                problems.push(format!("{}: missing", r.key_path.display()));
            }
        }
        Ok(problems)
    }

    /// The files of a current generation are there and its certificate's issuer is one
    /// of the store's CAs.
    fn verify_generation(&self, p: &str, t: &str, n: u64, now: OffsetDateTime) -> Vec<String> {
        let g = self.generation(p, t, n);
        let mut out = Vec::new();
        let at = format!("issued/{p}/{t}/{n}");
        if g.has("public.pem") {
            if !g.has("key.pem.age") {
                out.push(format!("{at}: a key pair without its key.pem.age"));
            }
            return out;
        }
        if let Some(p) = g.secret() {
            if g.has("cert.pem") || g.has("key.pem.age") {
                out.push(format!(
                    "{at}: a {} secret beside a certificate or a private key",
                    p.name()
                ));
            }
            return out;
        }
        let Some(der) = g
            .read("cert.pem")
            .ok()
            .flatten()
            .and_then(|b| pki::pem::first_cert(&b))
        else {
            out.push(format!(
                "{at}: no certificate (cert.pem), no public.pem and no secret (<provider>.key.age)"
            ));
            return out;
        };
        match pki::summarize(&der, now) {
            Ok(s) => {
                let aki = s
                    .authority_key_id
                    .map(|a| a.replace(':', "").to_ascii_lowercase());
                if aki.as_deref().is_none_or(|a| self.ca_by_id(a).is_none()) {
                    out.push(format!(
                        "{at}: signed by {}, which is not a CA of this store",
                        s.issuer
                    ));
                }
            }
            Err(e) => out.push(format!("{at}/cert.pem: {e}")),
        }
        out
    }
}

fn opt(n: Option<u64>) -> String {
    n.map_or("none".into(), |n| n.to_string())
}

fn numbers_text(s: &BTreeSet<u64>) -> String {
    s.iter().map(|n| format!("{n}\n")).collect()
}

fn list_dir(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(io_err(dir)(e)),
    };
    v.sort();
    Ok(v)
}

fn read_ca(c: &CaRef) -> Result<String, StoreError> {
    fs::read_to_string(&c.cert_path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::MissingCa(format!("{} ({})", c.name, c.id)),
        _ => io_err(&c.cert_path)(e),
    })
}

enum ConfigRead {
    Current(Box<Config>),
    Old(String),
}

fn config_text(c: &Config) -> Vec<u8> {
    format!(
        "# kpki store. Safe to commit: every private key here is age-encrypted.\n{}",
        toml::to_string(c).expect("config serializes")
    )
    .into_bytes()
}

/// Every id a role names is a listed CA, ids and names are safe path components.
fn validate_config(c: &Config) -> Result<(), String> {
    for e in &c.ca {
        if e.id.is_empty() || !e.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("CA id '{}' is not a hex key identifier", e.id));
        }
        if !["root", "kubernetes", "etcd", "front-proxy"].contains(&e.name.as_str()) {
            return Err(format!("CA name '{}' is not one kpki makes", e.name));
        }
    }
    for r in CaRole::ALL {
        let t = c.roles.get(r);
        for id in std::iter::once(&t.signing).chain(&t.trusted) {
            if !c.ca.iter().any(|e| &e.id == id) {
                return Err(format!(
                    "role {r} names CA '{id}', which [[ca]] does not list"
                ));
            }
        }
        if !t.trusted.contains(&t.signing) {
            return Err(format!("role {r}: the signing CA is not in `trusted`"));
        }
    }
    Ok(())
}

fn backup_stamp(now: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "{}-{}",
        now.format(&f).unwrap_or_default(),
        std::process::id()
    )
}
