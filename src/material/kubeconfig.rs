//! A kubeconfig's clusters, users and contexts: the fields that name or embed
//! certificates and keys, read with the YAML parser (within [`super::yaml`]'s alias
//! budget) by `render --check`'s config reader and by the audit alike. Embedded values
//! are kept as the base64 text they are written in; [`decode`] turns them into bytes.

use base64::Engine;
use yaml_rust2::Yaml;
use zeroize::Zeroizing;

use super::yaml::{self, YamlError};

/// One `clusters[]` entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// `certificate-authority`: a file.
    pub ca_file: Option<String>,
    /// `certificate-authority-data`: base64.
    pub ca_data: Option<String>,
}

/// One `users[]` entry. A `Debug` print leaves the key out.
#[derive(Default)]
pub struct User {
    pub name: String,
    /// `client-certificate`, `client-key`: files.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// `client-certificate-data`: base64.
    pub cert_data: Option<String>,
    /// `client-key-data`: base64 of a private key, wiped from memory when dropped.
    pub key_data: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("cert_data", &self.cert_data.is_some())
            .field("key_data", &self.key_data.is_some())
            .finish()
    }
}

/// One `contexts[]` entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    pub cluster: Option<String>,
    pub user: Option<String>,
}

/// What kpki reads of a kubeconfig.
#[derive(Debug, Default)]
pub struct Kubeconfig {
    /// `kind`, when the document has one (`Config` for a kubeconfig).
    pub kind: Option<String>,
    pub current_context: Option<String>,
    pub clusters: Vec<Cluster>,
    pub users: Vec<User>,
    pub contexts: Vec<Context>,
}

impl Kubeconfig {
    /// Whether the document says it is something else than a kubeconfig.
    pub fn is_other_kind(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| k != "Config")
    }

    /// The cluster each user talks to: through the current context first, then through
    /// any context naming the user.
    pub fn cluster_of(&self, user: &str) -> Option<&str> {
        let current = self.current_context.as_deref();
        let mut ctxs: Vec<&Context> = self.contexts.iter().collect();
        ctxs.sort_by_key(|c| Some(c.name.as_str()) != current);
        ctxs.into_iter()
            .filter(|c| c.user.as_deref() == Some(user))
            .find_map(|c| c.cluster.as_deref())
    }
}

fn string(y: &Yaml) -> Option<String> {
    y.as_str().map(str::to_owned)
}

fn seq(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// Reads a kubeconfig (YAML or JSON). A document that is not a mapping reads as an empty
/// kubeconfig; text that is not YAML, or whose aliases pass the budget, is an error.
pub fn parse(text: &str) -> Result<Kubeconfig, YamlError> {
    let doc = yaml::load_first(text)?;
    Ok(Kubeconfig {
        kind: string(&doc["kind"]),
        current_context: string(&doc["current-context"]),
        clusters: seq(&doc["clusters"])
            .iter()
            .map(|c| Cluster {
                name: string(&c["name"]).unwrap_or_default(),
                ca_file: string(&c["cluster"]["certificate-authority"]),
                ca_data: string(&c["cluster"]["certificate-authority-data"]),
            })
            .collect(),
        users: seq(&doc["users"])
            .iter()
            .map(|u| User {
                name: string(&u["name"]).unwrap_or_default(),
                cert_file: string(&u["user"]["client-certificate"]),
                key_file: string(&u["user"]["client-key"]),
                cert_data: string(&u["user"]["client-certificate-data"]),
                key_data: string(&u["user"]["client-key-data"]).map(Zeroizing::new),
            })
            .collect(),
        contexts: seq(&doc["contexts"])
            .iter()
            .map(|c| Context {
                name: string(&c["name"]).unwrap_or_default(),
                cluster: string(&c["context"]["cluster"]),
                user: string(&c["context"]["user"]),
            })
            .collect(),
    })
}

/// Decodes a `*-data` value: standard base64 (RFC 4648 §4), whitespace ignored, as
/// client-go reads it.
pub fn decode(value: &str) -> Result<Zeroizing<Vec<u8>>, base64::DecodeError> {
    let compact: Zeroizing<String> =
        Zeroizing::new(value.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
}

/// Whether `bytes` may be a kubeconfig with embedded certificates: the cheap test before
/// parsing a file met during a walk.
pub fn sniff(bytes: &[u8]) -> bool {
    use crate::pki::pem::find;
    find(bytes, b"certificate-authority-data").is_some()
        || find(bytes, b"client-certificate-data").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://192.168.3.1:443
  name: example
contexts:
- context:
    cluster: other
    user: admin
  name: old
- context:
    cluster: example
    user: admin
  name: admin@example
current-context: admin@example
kind: Config
users:
- name: admin
  user:
    client-certificate-data: \"Q0VSVA==\"
    client-key-data: S0VZ
- name: other
  user:
    exec:
      env:
      - name: FOO
        value: bar
";

    #[test]
    fn reads_fields_with_their_entries() {
        let k = parse(KUBECONFIG).unwrap();
        assert!(!k.is_other_kind());
        assert_eq!(
            k.clusters,
            [Cluster {
                name: "example".into(),
                ca_file: None,
                ca_data: Some("Q0E=".into()),
            }]
        );
        assert_eq!(k.users.len(), 2);
        assert_eq!(k.users[0].cert_data.as_deref(), Some("Q0VSVA=="));
        assert_eq!(
            k.users[0].key_data.as_deref().map(String::as_str),
            Some("S0VZ")
        );
        assert!(k.users[1].cert_data.is_none());
        assert_eq!(
            k.cluster_of("admin"),
            Some("example"),
            "the current context first"
        );
        assert!(!format!("{:?}", k.users[0]).contains("S0VZ"));
        assert!(sniff(KUBECONFIG.as_bytes()));
        assert!(!sniff(b"apiVersion: v1\nkind: Config\n"));
    }

    #[test]
    fn other_documents_and_junk() {
        assert!(parse("kind: Pod\n").unwrap().is_other_kind());
        assert!(parse("- a\n- b\n").unwrap().users.is_empty());
        assert!(parse("users: [").is_err());
    }

    #[test]
    fn base64_round_trips_and_rejects_junk() {
        assert_eq!(*decode("Q0VSVA==").unwrap(), b"CERT");
        assert_eq!(*decode("Q0\nVS VA==").unwrap(), b"CERT");
        assert!(decode("Q0VSVA=x").is_err());
        assert!(decode("!!!!").is_err());
        assert!(decode("Q0VSV").is_err());
    }
}
