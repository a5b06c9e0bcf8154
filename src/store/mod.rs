//! The store: the only code that reads or writes the store directory.
//!
//! ```text
//! <store>/kpki.toml                    format, cluster, recipients, which CA signs which role
//! <store>/store-identity.age           passphrase stores only: the store's identity, scrypt-wrapped
//! <store>/ca/<ca>/ca.crt, ca.key.age   each CA
//! <store>/issued/<profile>/<target>/   cert.pem + key.pem.age (or public.pem + key.pem.age)
//! <store>/ledger.jsonl                 one line per issuance
//! <store>/backup/<time>/…              what --force replaced
//! ```
//! Nothing secret lies in clear here, so the directory can be committed to git.

pub mod atomic;
mod ledger;
mod lock;
mod secrets;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use atomic::Existing;
pub use ledger::Record;
pub use lock::StoreLock;
pub use secrets::{identity_file_text, read_identity_file, Keyring, SecretError, Unlock};

use crate::pki::{self, KeyAlgorithm, PkiError, Signer};
use crate::profile::CaRole;

const CONFIG: &str = "kpki.toml";
const WRAPPED_IDENTITY: &str = "store-identity.age";
const LEDGER: &str = "ledger.jsonl";
const FORMAT: u32 = 1;

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
    #[error("the store has no {0} CA")]
    MissingCa(String),
    #[error("store is locked: {0}")]
    Locked(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

impl StoreError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            StoreError::NotAStore(_) => "create one with `kpki init`, or point --store / KPKI_STORE at it".into(),
            StoreError::AlreadyExists(_) => "use it as it is, or `kpki init --force` to make new CAs (the old ones are kept under backup/)".into(),
            StoreError::Exists { .. } => "pass --force to replace it; the old files are kept under the store's backup/".into(),
            StoreError::Secret(SecretError::WrongIdentity(_)) | StoreError::Secret(SecretError::NoIdentity(_)) => {
                "pass the identity this store was created with (--identity FILE or KPKI_IDENTITY)".into()
            }
            StoreError::Secret(SecretError::ReadIdentity { .. }) => "pass the store's identity with --identity FILE, or set KPKI_PASSPHRASE for a passphrase store".into(),
            StoreError::Secret(SecretError::IdentityMode(p, _)) => format!("chmod 600 {}", p.display()),
            StoreError::Secret(SecretError::WrongPassphrase) => "check KPKI_PASSPHRASE (or what you typed at the prompt)".into(),
            StoreError::Locked(_) => "wait for the other kpki process to finish".into(),
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
    pub model: CaModel,
    pub key: KeyAlgorithm,
    pub validity: crate::span::Span,
    pub protection: Protection,
    pub force: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    format: u32,
    cluster: String,
    protection: String,
    recipients: Vec<String>,
    cas: CaMap,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CaMap {
    kubernetes: String,
    etcd: String,
    front_proxy: String,
}

/// An opened store.
pub struct Store {
    dir: PathBuf,
    config: Config,
}

/// One file to put in the store for an issuance.
pub struct Artifact {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// What `init` did, for the report.
pub struct InitReport {
    pub cas: Vec<(String, PathBuf)>,
    pub identity_created: Option<PathBuf>,
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

    /// Creates a store with its CA(s).
    pub fn init(
        dir: &Path,
        spec: InitSpec,
        now: OffsetDateTime,
    ) -> Result<(Store, InitReport), StoreError> {
        let existed = Store::exists(dir);
        if existed && !spec.force {
            return Err(StoreError::AlreadyExists(dir.into()));
        }
        atomic::create_dir_private(dir).map_err(io_err(dir))?;
        let _lock =
            lock::acquire(&dir.join(".lock")).map_err(|e| StoreError::Locked(e.to_string()))?;
        let mut identity_created = None;
        let (protection, recipients, wrapped) = match &spec.protection {
            Protection::Identity { file, extra } => {
                let ids = match read_identity_file(file) {
                    Ok(ids) => ids,
                    Err(SecretError::ReadIdentity { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        let id = age::x25519::Identity::generate();
                        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                            atomic::create_dir_private(parent).map_err(io_err(parent))?;
                        }
                        atomic::write(
                            file,
                            identity_file_text(&id).as_bytes(),
                            0o600,
                            Existing::Refuse,
                        )
                        .map_err(io_err(file))?;
                        identity_created = Some(file.clone());
                        vec![id]
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut r = vec![ids[0].to_public().to_string()];
                secrets::parse_recipients(extra)?;
                r.extend(extra.iter().cloned());
                ("identity", r, None)
            }
            Protection::Passphrase(pass) => {
                let id = age::x25519::Identity::generate();
                let text = identity_file_text(&id);
                let wrapped = secrets::encrypt_passphrase(pass, text.as_bytes())?;
                (
                    "passphrase",
                    vec![id.to_public().to_string()],
                    Some(wrapped),
                )
            }
        };
        let cas = match spec.model {
            CaModel::Single => CaMap {
                kubernetes: "root".into(),
                etcd: "root".into(),
                front_proxy: "root".into(),
            },
            CaModel::Kubeadm => CaMap {
                kubernetes: "kubernetes".into(),
                etcd: "etcd".into(),
                front_proxy: "front-proxy".into(),
            },
        };
        let config = Config {
            format: FORMAT,
            cluster: spec.cluster.clone(),
            protection: protection.into(),
            recipients,
            cas: cas.clone(),
        };
        let store = Store {
            dir: dir.to_path_buf(),
            config,
        };
        let stamp = backup_stamp(now);
        if existed {
            for f in [CONFIG, WRAPPED_IDENTITY] {
                store.backup(Path::new(f), &stamp)?;
            }
        }
        match &wrapped {
            Some(w) => store.write(Path::new(WRAPPED_IDENTITY), w, 0o600, Existing::Replace)?,
            None => {
                let p = dir.join(WRAPPED_IDENTITY);
                if p.exists() {
                    fs::remove_file(&p).map_err(io_err(&p))?;
                }
            }
        }
        let recipients = secrets::parse_recipients(&store.config.recipients)?;
        let mut names: Vec<String> = vec![
            cas.kubernetes.clone(),
            cas.etcd.clone(),
            cas.front_proxy.clone(),
        ];
        names.dedup();
        let mut made = Vec::new();
        for name in names {
            let rel = Path::new("ca").join(&name);
            let absdir = dir.join(&rel);
            if existed {
                store.backup(&rel.join("ca.crt"), &stamp)?;
                store.backup(&rel.join("ca.key.age"), &stamp)?;
            }
            atomic::create_dir_private(&absdir).map_err(io_err(&absdir))?;
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
                    not_before: now - time::Duration::minutes(5),
                    not_after: now + spec.validity.duration(),
                },
                &key,
            )?;
            let enc = secrets::encrypt(&recipients, pki::private_pem(&key).as_bytes())?;
            store.write(&rel.join("ca.key.age"), &enc, 0o600, Existing::Replace)?;
            store.write(
                &rel.join("ca.crt"),
                pem.as_bytes(),
                0o644,
                Existing::Replace,
            )?;
            made.push((name, absdir.join("ca.crt")));
        }
        let text = format!(
            "# kpki store. Safe to commit: every private key here is age-encrypted.\n{}",
            toml::to_string(&store.config).expect("config serializes")
        );
        store.write(Path::new(CONFIG), text.as_bytes(), 0o644, Existing::Replace)?;
        Ok((
            store,
            InitReport {
                cas: made,
                identity_created,
            },
        ))
    }

    /// Opens an existing store.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(CONFIG);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotAStore(dir.into()))
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let config: Config = toml::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.message().to_string(),
        })?;
        if config.format != FORMAT {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "store format {} is not the {FORMAT} this kpki reads",
                    config.format
                ),
            });
        }
        Ok(Store {
            dir: dir.into(),
            config,
        })
    }

    /// Takes the store lock for the rest of the command.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        lock::acquire(&self.dir.join(".lock")).map_err(|e| StoreError::Locked(e.to_string()))
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

    /// The CA directory name that signs a role.
    pub fn ca_name(&self, role: CaRole) -> &str {
        match role {
            CaRole::Kubernetes => &self.config.cas.kubernetes,
            CaRole::Etcd => &self.config.cas.etcd,
            CaRole::FrontProxy => &self.config.cas.front_proxy,
        }
    }

    /// Every CA of the store, by name.
    pub fn ca_names(&self) -> Vec<String> {
        let mut v: Vec<String> = CaRole::ALL
            .iter()
            .map(|r| self.ca_name(*r).to_owned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn ca_cert_path(&self, role: CaRole) -> PathBuf {
        self.dir.join("ca").join(self.ca_name(role)).join("ca.crt")
    }

    pub fn ca_cert_pem(&self, role: CaRole) -> Result<String, StoreError> {
        let p = self.ca_cert_path(role);
        fs::read_to_string(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingCa(self.ca_name(role).to_owned()),
            _ => io_err(&p)(e),
        })
    }

    /// Decrypts a CA's private key (PEM), for staging it where the operator asked for it
    /// (kube-controller-manager's CSR signing). Prefer [`Store::signer`] for signing here.
    pub fn open_ca_key(
        &self,
        role: CaRole,
        keyring: &Keyring,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let kpath = self
            .dir
            .join("ca")
            .join(self.ca_name(role))
            .join("ca.key.age");
        let enc = fs::read(&kpath).map_err(io_err(&kpath))?;
        Ok(keyring.decrypt(&kpath, &enc)?)
    }

    /// Decrypts a CA key and makes a signer from it (the key stays in memory).
    pub fn signer(&self, role: CaRole, keyring: &Keyring) -> Result<Signer, StoreError> {
        let cert = self.ca_cert_pem(role)?;
        let kpath = self
            .dir
            .join("ca")
            .join(self.ca_name(role))
            .join("ca.key.age");
        let enc = fs::read(&kpath).map_err(io_err(&kpath))?;
        let plain = keyring.decrypt(&kpath, &enc)?;
        let pem = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt {
            path: kpath.clone(),
            reason: "the decrypted key is not PEM".into(),
        })?;
        let key = pki::load_private_pem(pem)?;
        Ok(Signer::new(&cert, key)?)
    }

    /// Encrypts a private key PEM to the store's recipients (no unlock needed).
    pub fn seal(&self, private_pem: &[u8]) -> Result<Vec<u8>, StoreError> {
        let r = secrets::parse_recipients(&self.config.recipients)?;
        Ok(secrets::encrypt(&r, private_pem)?)
    }

    /// Decrypts a sealed key of an issuance.
    pub fn open_key(
        &self,
        profile: &str,
        target: &str,
        keyring: &Keyring,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let p = self.issued_dir(profile, target).join("key.pem.age");
        let enc = fs::read(&p).map_err(io_err(&p))?;
        Ok(keyring.decrypt(&p, &enc)?)
    }

    pub fn issued_dir(&self, profile: &str, target: &str) -> PathBuf {
        self.dir.join("issued").join(profile).join(target)
    }

    /// Reads a file of an issuance, if present.
    pub fn read_issued(
        &self,
        profile: &str,
        target: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.issued_dir(profile, target).join(name);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Adds the files of one issuance to `batch`. An existing issuance is replaced only
    /// with `force`, and then copied to `backup/<stamp>/` first (right away, so the copy
    /// is durable before anything is replaced).
    pub fn save_issued(
        &self,
        batch: &mut atomic::Batch,
        profile: &str,
        target: &str,
        files: &[Artifact],
        force: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let rel = Path::new("issued").join(profile).join(target);
        let abs = self.dir.join(&rel);
        if abs.join("key.pem.age").exists() {
            if !force {
                return Err(StoreError::Exists {
                    what: format!("a {profile} issuance for {target}"),
                    path: abs,
                });
            }
            let stamp = backup_stamp(now);
            for f in files {
                self.backup(&rel.join(f.name), &stamp)?;
            }
        }
        atomic::create_dir_private(&abs).map_err(io_err(&abs))?;
        // The key goes last: its presence is what marks an issuance complete.
        let mut ordered: Vec<&Artifact> = files.iter().collect();
        ordered.sort_by_key(|f| f.name == "key.pem.age");
        for f in ordered {
            let p = abs.join(f.name);
            batch
                .add(&p, &f.bytes, f.mode, Existing::Replace)
                .map_err(io_err(&p))?;
        }
        Ok(())
    }

    /// Adds the ledger with `records` appended to `batch` (the ledger is rewritten
    /// atomically, under the caller's lock; add it last so it never names an issuance
    /// whose files are not in place).
    pub fn append_ledger(
        &self,
        batch: &mut atomic::Batch,
        records: &[Record],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let p = self.dir.join(LEDGER);
        let existing = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&p)(e)),
        };
        batch
            .add(
                &p,
                &ledger::append(&existing, records),
                0o644,
                Existing::Replace,
            )
            .map_err(io_err(&p))
    }

    /// Every ledger record.
    pub fn ledger(&self) -> Result<Vec<Record>, StoreError> {
        let p = self.dir.join(LEDGER);
        match fs::read_to_string(&p) {
            Ok(t) => ledger::parse(&t).map_err(|reason| StoreError::Corrupt { path: p, reason }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    fn write(
        &self,
        rel: &Path,
        bytes: &[u8],
        mode: u32,
        existing: Existing,
    ) -> Result<(), StoreError> {
        let p = self.dir.join(rel);
        atomic::write(&p, bytes, mode, existing).map_err(io_err(&p))
    }

    /// Copies a store file to `backup/<stamp>/<rel>` (if it exists), keeping its mode.
    fn backup(&self, rel: &Path, stamp: &str) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let src = self.dir.join(rel);
        let (bytes, mode) = match fs::read(&src) {
            Ok(b) => (
                b,
                fs::metadata(&src)
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0o600),
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&src)(e)),
        };
        let dst = self.dir.join("backup").join(stamp).join(rel);
        let parent = dst.parent().expect("has a parent");
        atomic::create_dir_private(parent).map_err(io_err(parent))?;
        atomic::write(&dst, &bytes, mode, Existing::Replace).map_err(io_err(&dst))
    }
}

fn backup_stamp(now: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "{}-{}",
        now.format(&f).unwrap_or_default(),
        std::process::id()
    )
}
