//! Private keys at rest: age-encrypted to the store's recipients.
//!
//! Encrypting needs only the recipients (public), so issuing a leaf encrypts its new key
//! without any unlock. Decrypting (a CA key, to sign) needs an identity: an X25519
//! identity file, or, for a passphrase store, the store's own identity, which is kept
//! encrypted with the passphrase (age's scrypt, paid once per process, on purpose).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// How the store's keys are unlocked.
#[derive(Debug, Clone)]
pub enum Unlock {
    /// An age identity file (`AGE-SECRET-KEY-1…` lines).
    IdentityFile(PathBuf),
    /// A passphrase that opens the store's own identity.
    Passphrase(SecretString),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read identity file {path}: {source}")]
    ReadIdentity {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("identity file {0} holds no AGE-SECRET-KEY line")]
    NoIdentity(PathBuf),
    #[error("identity file {0} is readable by others (mode {1:o})")]
    IdentityMode(PathBuf, u32),
    #[error("the identity in {0} is not one of this store's recipients")]
    WrongIdentity(PathBuf),
    #[error("wrong passphrase for the store")]
    WrongPassphrase,
    #[error("cannot decrypt {path}: {reason}")]
    Decrypt { path: PathBuf, reason: String },
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error("bad recipient '{0}': {1}")]
    BadRecipient(String, String),
}

/// The identities that open this store's keys, held in memory for one process.
pub struct Keyring {
    identities: Vec<age::x25519::Identity>,
}

/// Parses recipients (`age1…`).
pub fn parse_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>, SecretError> {
    list.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r)
                .map_err(|e| SecretError::BadRecipient(r.clone(), e.to_string()))
        })
        .collect()
}

/// Reads the X25519 identities of an age identity file.
pub fn read_identity_file(path: &Path) -> Result<Vec<age::x25519::Identity>, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| SecretError::ReadIdentity {
        path: path.into(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::IdentityMode(path.into(), mode));
    }
    let text = Zeroizing::new(crate::source::read_to_string(path).map_err(|source| {
        SecretError::ReadIdentity {
            path: path.into(),
            source,
        }
    })?);
    let ids = parse_identities(&text);
    if ids.is_empty() {
        return Err(SecretError::NoIdentity(path.into()));
    }
    Ok(ids)
}

/// The X25519 identities of an age identity file's text (`AGE-SECRET-KEY-1…` lines;
/// comments and anything else are skipped).
pub fn parse_identities(text: &str) -> Vec<age::x25519::Identity> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect()
}

/// The identity file text for a new identity, in age-keygen's format.
pub fn identity_file_text(id: &age::x25519::Identity) -> Zeroizing<String> {
    let now = time::OffsetDateTime::now_utc();
    Zeroizing::new(format!(
        "# created: {} by kpki\n# public key: {}\n{}\n",
        crate::pki::rfc3339(now),
        id.to_public(),
        id.to_string().expose_secret()
    ))
}

impl Keyring {
    /// A keyring of identities already read (by [`parse_identities`]).
    pub fn from_identities(identities: Vec<age::x25519::Identity>) -> Keyring {
        Keyring { identities }
    }

    /// Opens the keyring: from an identity file, which must match a store recipient, or by
    /// decrypting the store's own identity with the passphrase.
    pub fn open(
        unlock: &Unlock,
        recipients: &[String],
        wrapped_identity: Option<&[u8]>,
    ) -> Result<Keyring, SecretError> {
        let identities = match unlock {
            Unlock::IdentityFile(path) => {
                let ids = read_identity_file(path)?;
                if !ids
                    .iter()
                    .any(|i| recipients.contains(&i.to_public().to_string()))
                {
                    return Err(SecretError::WrongIdentity(path.clone()));
                }
                ids
            }
            Unlock::Passphrase(pass) => {
                let Some(wrapped) = wrapped_identity else {
                    return Err(SecretError::Decrypt {
                        path: "store-identity.age".into(),
                        reason: "this store is not passphrase-protected; unlock it with --identity"
                            .into(),
                    });
                };
                let id = age::scrypt::Identity::new(pass.clone());
                let plain = decrypt_with(wrapped, &id as &dyn age::Identity)
                    .map_err(|_| SecretError::WrongPassphrase)?;
                let text = std::str::from_utf8(&plain).map_err(|_| SecretError::WrongPassphrase)?;
                let id = text
                    .lines()
                    .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                    .and_then(|l| age::x25519::Identity::from_str(l.trim()).ok())
                    .ok_or(SecretError::WrongPassphrase)?;
                vec![id]
            }
        };
        Ok(Keyring { identities })
    }

    /// Decrypts an age file read from `path` (the path is for messages).
    pub fn decrypt(
        &self,
        path: &Path,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let ids = self.identities.iter().map(|i| i as &dyn age::Identity);
        let dec = age::Decryptor::new(age::armor::ArmoredReader::new(ciphertext)).map_err(|e| {
            SecretError::Decrypt {
                path: path.into(),
                reason: e.to_string(),
            }
        })?;
        let mut r = dec.decrypt(ids).map_err(|e| SecretError::Decrypt {
            path: path.into(),
            reason: e.to_string(),
        })?;
        // Sized for the whole plaintext (never longer than the ciphertext): a buffer that
        // grew would leave copies of the key in freed memory.
        let mut out = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
        r.read_to_end(&mut out).map_err(|e| SecretError::Decrypt {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(out)
    }
}

fn decrypt_with(ciphertext: &[u8], id: &dyn age::Identity) -> Result<Zeroizing<Vec<u8>>, String> {
    let dec = age::Decryptor::new(age::armor::ArmoredReader::new(ciphertext))
        .map_err(|e| e.to_string())?;
    let mut r = dec
        .decrypt(std::iter::once(id))
        .map_err(|e| e.to_string())?;
    let mut out = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Encrypts `plain` to every recipient, ASCII-armored so the store diffs well in git.
pub fn encrypt(
    recipients: &[age::x25519::Recipient],
    plain: &[u8],
) -> Result<Vec<u8>, SecretError> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| SecretError::Encrypt(e.to_string()))?;
    armored(enc, plain)
}

/// Encrypts `plain` with a passphrase (scrypt).
pub fn encrypt_passphrase(pass: &SecretString, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
    armored(age::Encryptor::with_user_passphrase(pass.clone()), plain)
}

fn armored(enc: age::Encryptor, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
    let err = |e: std::io::Error| SecretError::Encrypt(e.to_string());
    let mut out = Vec::with_capacity(plain.len() + 400);
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(err)?;
    let mut w = enc.wrap_output(armor).map_err(err)?;
    w.write_all(plain).map_err(err)?;
    w.finish().and_then(|a| a.finish()).map_err(err)?;
    Ok(out)
}

/// Makes this process keep its memory to itself before any key is decrypted: no core
/// dump (a panic with `panic = "abort"` would otherwise write the CA's key into a core
/// file, where core dumps are on) and not dumpable, so another process of the same user
/// cannot attach to it or read its memory through /proc. Best effort: a platform without
/// either leaves the defaults, which is no worse than before.
pub fn keep_memory_private() {
    use rustix::process::{
        getrlimit, set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit,
    };
    let _ = set_dumpable_behavior(DumpableBehavior::NotDumpable);
    let hard = getrlimit(Resource::Core).maximum;
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: hard.map(|_| 0).or(Some(0)),
        },
    );
}

#[cfg(test)]
mod memory_tests {
    #[test]
    fn no_core_dump_and_not_dumpable() {
        super::keep_memory_private();
        assert_eq!(
            rustix::process::getrlimit(rustix::process::Resource::Core).current,
            Some(0)
        );
        assert_eq!(
            rustix::process::dumpable_behavior().ok(),
            Some(rustix::process::DumpableBehavior::NotDumpable)
        );
    }
}
