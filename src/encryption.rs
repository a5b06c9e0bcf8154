//! Encryption at rest: the symmetric keys kube-apiserver encrypts Secrets in etcd with
//! (`--encryption-provider-config`), the EncryptionConfiguration staged from them, and the
//! reader `render --check` runs over such a file.
//!
//! A key is 32 random bytes from ring's `SystemRandom`. It lives in memory zeroized, in
//! the store age-encrypted (`<provider>.key.age` in its generation, 0600), and in clear
//! only in the staged 0600 EncryptionConfiguration. kpki never prints it.
//!
//! Rotation keeps existing Secrets readable: the staged file lists the current
//! generation's key first (it encrypts) and the earlier generations the store still
//! trusts after it (they only decrypt), then `identity: {}` so Secrets written before
//! encryption was turned on stay readable. `kpki store retire` drops the earlier keys.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use ring::rand::SecureRandom;
use yaml_rust2::Yaml;

use crate::material::yaml::YamlError;
use zeroize::Zeroizing;

use crate::pki::PkiError;
use crate::store::{Keyring, Store, StoreError};

/// The resources the staged configuration encrypts.
pub const RESOURCES: &[&str] = &["secrets"];
const API_VERSION: &str = "apiserver.config.k8s.io/v1";
const KIND: &str = "EncryptionConfiguration";

/// An encryption provider of kube-apiserver that takes a local key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    /// XSalsa20-Poly1305 (NaCl secretbox), a 32-byte key: upstream's advice for a new
    /// cluster without a KMS.
    Secretbox,
    /// AES-CBC with PKCS#7 padding; kpki makes 32-byte keys (AES-256).
    Aescbc,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Secretbox, Provider::Aescbc];
    /// The length of the keys kpki makes, for either provider.
    pub const KEY_LEN: usize = 32;

    /// The provider's name in an EncryptionConfiguration and in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Secretbox => "secretbox",
            Provider::Aescbc => "aescbc",
        }
    }

    /// The file of a store generation that holds a key for this provider (age-encrypted).
    pub fn file_name(self) -> &'static str {
        match self {
            Provider::Secretbox => "secretbox.key.age",
            Provider::Aescbc => "aescbc.key.age",
        }
    }

    /// The key lengths kube-apiserver accepts for the provider.
    pub fn key_lengths(self) -> &'static [usize] {
        match self {
            Provider::Secretbox => &[32],
            Provider::Aescbc => &[16, 24, 32],
        }
    }

    fn lengths_text(self) -> &'static str {
        match self {
            Provider::Secretbox => "32",
            Provider::Aescbc => "16, 24 or 32",
        }
    }

    /// Makes a new key: [`Provider::KEY_LEN`] bytes from the system's random source.
    pub fn generate(self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let mut key = Zeroizing::new(vec![0u8; Provider::KEY_LEN]);
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| {
                PkiError::KeyGeneration(self.name(), "the system random source failed".into())
            })?;
        Ok(key)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown encryption provider '{s}'; use secretbox (recommended) or aescbc")
            })
    }
}

impl<'de> serde::Deserialize<'de> for Provider {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One key of the staged configuration: the store generation it comes from names it.
pub struct Key {
    pub provider: Provider,
    pub generation: u64,
    pub secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("provider", &self.provider)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The EncryptionConfiguration of `profile` for `keys`, the one that encrypts first:
/// keys of one provider next to each other share its entry, and `identity: {}` comes
/// last so data written before encryption stays readable.
pub fn config(profile: &str, keys: &[Key]) -> Zeroizing<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    // Sized up front: a String that grows leaves copies of what it held in freed memory.
    let mut y = Zeroizing::new(String::with_capacity(1024 + 160 * keys.len()));
    y.push_str(&format!(
        "# kube-apiserver --encryption-provider-config, made by kpki from its store (profile\n\
         # {profile}). It holds the keys that encrypt Secrets in etcd: keep it 0600.\n\
         # The first key encrypts; every key listed decrypts.\n"
    ));
    y.push_str(&format!(
        "apiVersion: {API_VERSION}\nkind: {KIND}\nresources:\n"
    ));
    y.push_str("  - resources:\n");
    for r in RESOURCES {
        y.push_str(&format!("      - {r}\n"));
    }
    y.push_str("    providers:\n");
    let mut last: Option<Provider> = None;
    for k in keys {
        if last != Some(k.provider) {
            y.push_str(&format!(
                "      - {}:\n          keys:\n",
                k.provider.name()
            ));
            last = Some(k.provider);
        }
        y.push_str(&format!("            - name: key{}\n", k.generation));
        y.push_str("              secret: ");
        let mut enc = Zeroizing::new(String::with_capacity(4 * k.secret.len().div_ceil(3)));
        b64.encode_string(&k.secret[..], &mut enc);
        y.push_str(&enc);
        y.push('\n');
    }
    y.push_str("      - identity: {}\n");
    debug_assert!(y.len() <= 1024 + 160 * keys.len(), "no reallocation");
    Zeroizing::new(std::mem::take(&mut *y).into_bytes())
}

/// The keys of an issuance the apiservers need: its current generation's first, then the
/// earlier generations still trusted, newest first. `None` when nothing is issued.
pub fn keys_from_store(
    store: &Store,
    profile: &str,
    target: &str,
    keyring: &Keyring,
) -> Result<Option<Vec<Key>>, StoreError> {
    let Some(current) = store.current(profile, target)? else {
        return Ok(None);
    };
    let mut gens = vec![current.n];
    gens.extend(
        store
            .trusted_generations(profile, target)?
            .iter()
            .rev()
            .filter(|n| **n != current.n),
    );
    let mut keys = Vec::with_capacity(gens.len());
    for n in gens {
        let (provider, secret) = store.open_secret(profile, target, n, keyring)?;
        keys.push(Key {
            provider,
            generation: n,
            secret,
        });
    }
    Ok(Some(keys))
}

/// What is wrong with an EncryptionConfiguration, each problem a phrase that follows the
/// file's name ("… holds no secretbox or aescbc key"). Empty when kube-apiserver would
/// take it and it encrypts Secrets with a local key.
pub fn problems(text: &str) -> Vec<String> {
    let docs = match crate::material::yaml::load(text) {
        Ok(d) => d,
        Err(YamlError::Syntax(e)) => return vec![format!("is not valid YAML: {e}")],
        Err(e) => return vec![format!("is refused: {e}")],
    };
    let Some(doc) = docs.first() else {
        return vec!["is empty".into()];
    };
    let mut out = Vec::new();
    match doc["kind"].as_str() {
        Some(KIND) => {}
        Some(k) => return vec![format!("is a {k}, not an {KIND}")],
        None => return vec![format!("is not an {KIND} (it has no kind)")],
    }
    if doc["apiVersion"].as_str() != Some(API_VERSION) {
        out.push(format!(
            "has apiVersion {}; an {KIND} is {API_VERSION}",
            doc["apiVersion"].as_str().unwrap_or("(none)")
        ));
    }
    let entries = doc["resources"].as_vec().map(Vec::as_slice).unwrap_or(&[]);
    let mut good_keys = 0;
    let mut covers_secrets = false;
    for entry in entries {
        let resources: Vec<&str> = entry["resources"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(Yaml::as_str)
            .collect();
        let secrets = resources
            .iter()
            .any(|r| matches!(*r, "secrets" | "*.*" | "*."));
        covers_secrets |= secrets;
        let providers = entry["providers"]
            .as_vec()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let first = providers
            .first()
            .and_then(Yaml::as_hash)
            .and_then(|h| h.keys().next())
            .and_then(Yaml::as_str);
        if first == Some("identity") && secrets {
            out.push(format!(
                "writes {} in clear: identity is its first provider",
                resources.join(", ")
            ));
        }
        for p in providers {
            let Some(h) = p.as_hash() else { continue };
            for (name, body) in h {
                let Some(provider) = name.as_str().and_then(|n| n.parse::<Provider>().ok()) else {
                    continue;
                };
                let mut names = Vec::new();
                for k in body["keys"].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
                    let kname = k["name"].as_str().unwrap_or_default();
                    if kname.is_empty() {
                        out.push(format!("has a {provider} key without a name"));
                    } else if names.contains(&kname) {
                        out.push(format!("has two {provider} keys named {kname}"));
                    }
                    names.push(kname);
                    let shown = if kname.is_empty() { "(unnamed)" } else { kname };
                    let secret = k["secret"].as_str().unwrap_or_default();
                    match base64::engine::general_purpose::STANDARD.decode(secret.trim()) {
                        Ok(b) => {
                            let b = Zeroizing::new(b);
                            if provider.key_lengths().contains(&b.len()) {
                                good_keys += 1;
                            } else {
                                out.push(format!(
                                    "has {provider} key {shown} of {} bytes after base64 decoding; {provider} takes {}",
                                    b.len(),
                                    provider.lengths_text()
                                ));
                            }
                        }
                        Err(_) => out.push(format!(
                            "has {provider} key {shown} whose secret is not base64"
                        )),
                    }
                }
            }
        }
    }
    if !covers_secrets {
        out.push("encrypts no secrets: no resources entry names them".into());
    }
    if good_keys == 0 && out.is_empty() {
        out.push("holds no secretbox or aescbc key".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(provider: Provider, generation: u64, byte: u8) -> Key {
        Key {
            provider,
            generation,
            secret: Zeroizing::new(vec![byte; Provider::KEY_LEN]),
        }
    }

    #[test]
    fn keys_are_random_and_32_bytes() {
        let a = Provider::Secretbox.generate().unwrap();
        let b = Provider::Secretbox.generate().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a[..], b[..]);
    }

    #[test]
    fn config_lists_the_current_key_first_then_identity() {
        let text = config(
            "p",
            &[
                key(Provider::Secretbox, 2, 2),
                key(Provider::Secretbox, 1, 1),
            ],
        );
        let text = std::str::from_utf8(&text).unwrap();
        assert!(problems(text).is_empty(), "{:?}", problems(text));
        let doc = &yaml_rust2::YamlLoader::load_from_str(text).unwrap()[0];
        let providers = doc["resources"][0]["providers"].as_vec().unwrap();
        assert_eq!(providers.len(), 2);
        let keys = providers[0]["secretbox"]["keys"].as_vec().unwrap();
        assert_eq!(keys[0]["name"].as_str(), Some("key2"));
        assert_eq!(keys[1]["name"].as_str(), Some("key1"));
        assert!(providers[1]["identity"].as_hash().unwrap().is_empty());
        // A provider change keeps each key under its own provider.
        let mixed = config(
            "p",
            &[key(Provider::Aescbc, 3, 3), key(Provider::Secretbox, 2, 2)],
        );
        let mixed = std::str::from_utf8(&mixed).unwrap();
        let doc = &yaml_rust2::YamlLoader::load_from_str(mixed).unwrap()[0];
        let providers = doc["resources"][0]["providers"].as_vec().unwrap();
        assert_eq!(providers.len(), 3);
        assert_eq!(
            providers[0]["aescbc"]["keys"][0]["name"].as_str(),
            Some("key3")
        );
    }

    #[test]
    fn problems_name_what_the_apiserver_would_refuse() {
        let good = config("p", &[key(Provider::Secretbox, 1, 7)]);
        let good = std::str::from_utf8(&good).unwrap().to_owned();
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let short = good.replace(
            &b64,
            &base64::engine::general_purpose::STANDARD.encode([7u8; 31]),
        );
        assert_eq!(
            problems(&short),
            ["has secretbox key key1 of 31 bytes after base64 decoding; secretbox takes 32"]
        );
        assert_eq!(
            problems(&good.replace(&b64, "not*base64")),
            ["has secretbox key key1 whose secret is not base64"]
        );
        assert!(problems("a: [")[0].starts_with("is not valid YAML"));
        assert_eq!(
            problems("apiVersion: v1\nkind: Pod\n"),
            ["is a Pod, not an EncryptionConfiguration"]
        );
        let clear = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n";
        assert_eq!(
            problems(clear),
            ["writes secrets in clear: identity is its first provider"]
        );
        let none = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys: []\n";
        assert_eq!(problems(none), ["holds no secretbox or aescbc key"]);
    }
}
