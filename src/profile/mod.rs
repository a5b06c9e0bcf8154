//! Profiles: what a certificate (or key pair, or secret) for one purpose looks like, as
//! data.
//!
//! A profile file is strict TOML (`profiles/*.toml` are built in and embedded; a user's
//! profile directory adds to or overrides them by file name). It is turned into a typed
//! [`Profile`] once, at load, so template mistakes are reported against the profile file.

mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use template::{Template, Var};

use crate::encryption::Provider;
use crate::inventory::Role;
use crate::pki::KeyAlgorithm;
use crate::source::{self, Located};
use crate::span::Span;

/// The built-in profiles, embedded from `profiles/`.
const BUILTIN: &[(&str, &str)] = &[
    ("etcd-peer", include_str!("../../profiles/etcd-peer.toml")),
    (
        "etcd-client",
        include_str!("../../profiles/etcd-client.toml"),
    ),
    ("apiserver", include_str!("../../profiles/apiserver.toml")),
    (
        "apiserver-etcd-client",
        include_str!("../../profiles/apiserver-etcd-client.toml"),
    ),
    (
        "apiserver-kubelet-client",
        include_str!("../../profiles/apiserver-kubelet-client.toml"),
    ),
    ("kubelet", include_str!("../../profiles/kubelet.toml")),
    (
        "kubelet-serving",
        include_str!("../../profiles/kubelet-serving.toml"),
    ),
    ("kube-proxy", include_str!("../../profiles/kube-proxy.toml")),
    (
        "controller-manager",
        include_str!("../../profiles/controller-manager.toml"),
    ),
    ("scheduler", include_str!("../../profiles/scheduler.toml")),
    ("admin", include_str!("../../profiles/admin.toml")),
    (
        "front-proxy-client",
        include_str!("../../profiles/front-proxy-client.toml"),
    ),
    (
        "service-account",
        include_str!("../../profiles/service-account.toml"),
    ),
    (
        "encryption-config",
        include_str!("../../profiles/encryption-config.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{0}")]
    Invalid(Located),
    #[error("cannot read profile directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown profile '{name}'")]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
}

impl ProfileError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ProfileError::Invalid(l) => l.hint.clone(),
            ProfileError::ReadDir { .. } => None,
            ProfileError::Unknown { suggestion, .. } => Some(match suggestion {
                Some(s) => format!("did you mean '{s}'? `kpki profiles list` shows them all"),
                None => "`kpki profiles list` shows the profiles".into(),
            }),
        }
    }
}

/// The logical CA that signs a profile. A single-CA store maps all three to its root;
/// a kubeadm-style store keeps one CA for each.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CaRole {
    Kubernetes,
    Etcd,
    FrontProxy,
}

impl CaRole {
    pub const ALL: [CaRole; 3] = [CaRole::Kubernetes, CaRole::Etcd, CaRole::FrontProxy];

    pub fn name(self) -> &'static str {
        match self {
            CaRole::Kubernetes => "kubernetes",
            CaRole::Etcd => "etcd",
            CaRole::FrontProxy => "front-proxy",
        }
    }
}

impl fmt::Display for CaRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a profile is issued once per matching node, or once for the whole cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Node,
    Cluster,
}

/// Extended key usages kpki issues.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
pub enum Eku {
    #[serde(rename = "serverAuth")]
    ServerAuth,
    #[serde(rename = "clientAuth")]
    ClientAuth,
}

impl fmt::Display for Eku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Eku::ServerAuth => "serverAuth",
            Eku::ClientAuth => "clientAuth",
        })
    }
}

/// Where and how a file is installed on a node.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstallFile {
    pub path: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    pub mode: u32,
}

fn root() -> String {
    "root".into()
}

impl InstallFile {
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// What a certificate profile puts in the certificate.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub ca: CaRole,
    pub validity: Span,
    pub cn: Template,
    pub o: Vec<Template>,
    pub sans: Vec<Template>,
    pub ext_key_usage: Vec<Eku>,
    pub cert: InstallFile,
    pub ca_file: InstallFile,
    /// Append the CA to the certificate file (the guides do so for etcd and the apiserver).
    pub append_ca: bool,
    /// Renew when this little is left; `None`: one third of the certificate's lifetime.
    pub renew_before: Option<Span>,
    /// Spread notAfter over the last tenth of the lifetime, by profile and target, so a
    /// cluster issued in one night does not expire on one day.
    pub stagger: bool,
}

/// What a profile produces.
#[derive(Clone, Debug)]
pub enum Body {
    Certificate(Box<CertSpec>),
    /// A bare key pair, such as the service-account signing key.
    KeyPair {
        public: InstallFile,
    },
    /// A symmetric key kept in the store and installed inside the config that uses it:
    /// kube-apiserver's EncryptionConfiguration, made from the store at stage time.
    Secret {
        config: InstallFile,
    },
}

/// The key a profile makes: an asymmetric key pair, or a secret for an encryption
/// provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Pair(KeyAlgorithm),
    Secret(Provider),
}

impl KeyKind {
    /// The algorithm's name (`ecdsa-p256`), or the provider's (`secretbox`).
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Pair(a) => a.name(),
            KeyKind::Secret(p) => p.name(),
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a profile came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

/// A validated profile.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub scope: Scope,
    pub roles: BTreeSet<Role>,
    pub key: KeyKind,
    /// Where the private key is installed; `None` for a secret, which is installed
    /// inside its config ([`Body::Secret`]).
    pub key_file: Option<InstallFile>,
    pub body: Body,
    pub origin: Origin,
    /// The TOML the profile was read from, for `kpki profiles show`.
    pub text: String,
}

impl Profile {
    pub fn cert_spec(&self) -> Option<&CertSpec> {
        match &self.body {
            Body::Certificate(c) => Some(c),
            Body::KeyPair { .. } | Body::Secret { .. } => None,
        }
    }

    /// What the profile makes, for messages: `certificate`, `key pair` or `secret`.
    pub fn kind_name(&self) -> &'static str {
        match &self.body {
            Body::Certificate(_) => "certificate",
            Body::KeyPair { .. } => "key pair",
            Body::Secret { .. } => "secret",
        }
    }

    pub fn applies_to(&self, roles: &BTreeSet<Role>) -> bool {
        !self.roles.is_disjoint(roles)
    }

    /// Parses one profile file.
    pub fn parse(name: &str, path: &Path, text: &str, origin: Origin) -> Result<Profile, Located> {
        // The kind decides which keys the file may have: a secret has no subject, no CA
        // and no private key file, and saying one is an error at its line.
        let peek: RawKind =
            toml::from_str(text).map_err(|e| source::toml_error(path, text, &e, "profile"))?;
        if peek.kind == Kind::Secret {
            return Profile::parse_secret(name, path, text, origin);
        }
        let raw: RawProfile =
            toml::from_str(text).map_err(|e| source::toml_error(path, text, &e, "profile"))?;
        let err =
            |off: usize, msg: String, hint: &str| source::at(path, text, off, msg, Some(hint));
        let tpl = |s: &Spanned<String>, single: bool| {
            Template::parse(s.get_ref(), single).map_err(|m| {
                err(
                    s.span().start,
                    m,
                    "see `kpki profiles show etcd-peer` for the placeholders in use",
                )
            })
        };
        let check_install = |f: &InstallFile, what: &str| check_install(path, text, 0, f, what);
        let install = raw.install;
        check_install(&install.key, "key")?;
        if install.key.mode & 0o077 != 0 {
            return Err(err(
                0,
                format!(
                    "install.key.mode {:o} lets others read the private key",
                    install.key.mode
                ),
                "private keys are installed 0o600 (or 0o400)",
            ));
        }
        let roles: BTreeSet<Role> = raw.roles.into_iter().collect();
        let body = match raw.kind {
            Kind::Certificate => {
                let (Some(subject), Some(cert), Some(ca_file)) =
                    (raw.subject, install.cert, install.ca)
                else {
                    return Err(err(
                        0,
                        "a certificate profile needs [subject], [install.cert] and [install.ca]"
                            .into(),
                        "add the missing tables, as in `kpki profiles show etcd-peer`",
                    ));
                };
                check_install(&cert, "cert")?;
                check_install(&ca_file, "ca")?;
                let Some(ca) = raw.ca else {
                    return Err(err(0, "a certificate profile needs ca = \"kubernetes\" | \"etcd\" | \"front-proxy\"".into(), "name the CA that signs it"));
                };
                let Some(validity) = raw.validity else {
                    return Err(err(
                        0,
                        "a certificate profile needs a validity, such as \"1y\"".into(),
                        "add validity = \"1y\"",
                    ));
                };
                if let Some(rb) = raw.renew_before {
                    if rb.seconds() >= validity.seconds() {
                        return Err(err(
                            0,
                            format!("renew_before \"{rb}\" is not shorter than validity \"{validity}\""),
                            "renew some time before the end, such as renew_before = \"30d\" for a 1y certificate",
                        ));
                    }
                }
                if raw.ext_key_usage.is_empty() {
                    return Err(err(
                        0,
                        "ext_key_usage is empty".into(),
                        "list serverAuth, clientAuth or both",
                    ));
                }
                let cn = tpl(&subject.cn, true)?;
                let o = subject
                    .o
                    .iter()
                    .map(|s| tpl(s, true))
                    .collect::<Result<Vec<_>, _>>()?;
                let sans = raw
                    .sans
                    .iter()
                    .map(|s| tpl(s, false))
                    .collect::<Result<Vec<_>, _>>()?;
                if raw.scope == Scope::Cluster {
                    if let Some(s) = raw
                        .sans
                        .iter()
                        .chain(std::iter::once(&subject.cn))
                        .find(|s| {
                            Template::parse(s.get_ref(), false)
                                .map(|t| t.needs_node())
                                .unwrap_or(false)
                        })
                    {
                        return Err(err(s.span().start, format!("'{}' names the node, but the profile is issued once for the cluster", s.get_ref()), "use scope = \"node\", or drop the {node.*} placeholder"));
                    }
                }
                Body::Certificate(Box::new(CertSpec {
                    ca,
                    validity,
                    cn,
                    o,
                    sans,
                    ext_key_usage: raw.ext_key_usage,
                    cert,
                    ca_file,
                    append_ca: raw.append_ca,
                    renew_before: raw.renew_before,
                    stagger: raw.stagger,
                }))
            }
            Kind::KeyPair => {
                let Some(public) = install.public else {
                    return Err(err(
                        0,
                        "a keypair profile needs [install.public]".into(),
                        "add [install.public] with path and mode",
                    ));
                };
                check_install(&public, "public")?;
                Body::KeyPair { public }
            }
            Kind::Secret => unreachable!("secret profiles are parsed by parse_secret"),
        };
        Ok(Profile {
            name: name.to_owned(),
            description: raw.description,
            scope: raw.scope,
            roles,
            key: KeyKind::Pair(raw.key),
            key_file: Some(install.key),
            body,
            origin,
            text: text.to_owned(),
        })
    }

    /// Parses a `kind = "secret"` profile: a provider and the one file it is installed in.
    fn parse_secret(
        name: &str,
        path: &Path,
        text: &str,
        origin: Origin,
    ) -> Result<Profile, Located> {
        let raw: RawSecret = toml::from_str(text)
            .map_err(|e| source::toml_error(path, text, &e, "secret profile"))?;
        let err =
            |off: usize, msg: String, hint: &str| source::at(path, text, off, msg, Some(hint));
        if *raw.scope.get_ref() != Scope::Cluster {
            return Err(err(
                raw.scope.span().start,
                "a secret is issued once for the cluster: every apiserver must read what the others encrypted".into(),
                "use scope = \"cluster\"",
            ));
        }
        let config = raw.install.config;
        let at = config.span().start;
        let config = config.into_inner();
        check_install(path, text, at, &config, "config")?;
        if config.mode & 0o077 != 0 {
            return Err(err(
                at,
                format!(
                    "install.config.mode {:o} lets others read the key it holds",
                    config.mode
                ),
                "a file holding a secret is installed 0o600 (or 0o400)",
            ));
        }
        Ok(Profile {
            name: name.to_owned(),
            description: raw.description,
            scope: Scope::Cluster,
            roles: raw.roles.into_iter().collect(),
            key: KeyKind::Secret(raw.provider),
            key_file: None,
            body: Body::Secret { config },
            origin,
            text: text.to_owned(),
        })
    }
}

/// An install path is an absolute file path and its mode a file mode; `off` is where the
/// error points.
fn check_install(
    path: &Path,
    text: &str,
    off: usize,
    f: &InstallFile,
    what: &str,
) -> Result<(), Located> {
    // The path is written into configs, units and static pods: nothing in it may end a
    // line or start another setting (the inventory's paths are held to the same rule).
    if !crate::inventory::safe_path(&f.path) || f.path.ends_with('/') {
        return Err(source::at(
            path,
            text,
            off,
            format!(
                "install.{what}.path {:?} is not an absolute file path of letters, digits and . _ - /",
                f.path
            ),
            Some("write it like /etc/ssl/etcd/etcd.crt"),
        ));
    }
    // Owners go into the manifest that distribution applies with chown: system names only.
    for (field, name) in [("owner", &f.owner), ("group", &f.group)] {
        let ok = name.len() <= 32
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
        if !ok {
            return Err(source::at(
                path,
                text,
                off,
                format!("install.{what}.{field} {name:?} is not a user or group name"),
                Some("use a system name such as root or etcd"),
            ));
        }
    }
    if f.mode > 0o7777 {
        return Err(source::at(
            path,
            text,
            off,
            format!("install.{what}.mode {:o} is not a file mode", f.mode),
            Some("write modes as TOML octal, such as 0o600"),
        ));
    }
    // Anyone could replace a world-writable certificate or CA file on the node (and so
    // choose whom the daemon trusts); set-id bits have no place on them.
    if f.mode & 0o7002 != 0 {
        return Err(source::at(
            path,
            text,
            off,
            format!(
                "install.{what}.mode {:o} lets anyone write the file, or sets set-id/sticky bits",
                f.mode
            ),
            Some("certificates and CA files are installed 0o644 (keys 0o600)"),
        ));
    }
    Ok(())
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Certificate,
    KeyPair,
    Secret,
}

/// The `kind` of a profile file alone, read first: it decides the file's other keys.
#[derive(Deserialize)]
struct RawKind {
    #[serde(default = "cert_kind")]
    kind: Kind,
}

/// A `kind = "secret"` profile: every key it may have.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    description: String,
    #[allow(dead_code)]
    kind: Kind,
    scope: Spanned<Scope>,
    roles: Vec<Role>,
    /// The encryption provider the key is for: `secretbox` or `aescbc`.
    provider: Provider,
    install: RawSecretInstall,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretInstall {
    /// The config that holds the key.
    config: Spanned<InstallFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: String,
    #[serde(default = "cert_kind")]
    kind: Kind,
    ca: Option<CaRole>,
    scope: Scope,
    roles: Vec<Role>,
    validity: Option<Span>,
    key: KeyAlgorithm,
    #[serde(default)]
    sans: Vec<Spanned<String>>,
    #[serde(default)]
    ext_key_usage: Vec<Eku>,
    #[serde(default)]
    append_ca: bool,
    renew_before: Option<Span>,
    #[serde(default = "yes")]
    stagger: bool,
    subject: Option<RawSubject>,
    install: RawInstall,
}

fn yes() -> bool {
    true
}

fn cert_kind() -> Kind {
    Kind::Certificate
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    cn: Spanned<String>,
    #[serde(default)]
    o: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstall {
    cert: Option<InstallFile>,
    key: InstallFile,
    ca: Option<InstallFile>,
    public: Option<InstallFile>,
}

/// The profiles in force: the built-in set, overridden or extended by a user directory.
#[derive(Clone, Debug)]
pub struct Profiles {
    by_name: BTreeMap<String, Profile>,
}

impl Profiles {
    /// The built-in profiles only.
    pub fn builtin() -> Profiles {
        let by_name = BUILTIN
            .iter()
            .map(|(name, text)| {
                let path = PathBuf::from(format!("profiles/{name}.toml"));
                let p = Profile::parse(name, &path, text, Origin::Builtin)
                    .unwrap_or_else(|e| panic!("built-in profile is invalid: {e}"));
                (name.to_string(), p)
            })
            .collect();
        Profiles { by_name }
    }

    /// Built-in profiles plus every `*.toml` in `dir` (a missing directory adds nothing).
    pub fn load(dir: Option<&Path>) -> Result<Profiles, ProfileError> {
        let mut p = Profiles::builtin();
        let Some(dir) = dir else { return Ok(p) };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(p),
            Err(source) => {
                return Err(ProfileError::ReadDir {
                    path: dir.into(),
                    source,
                })
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_owned();
            let text =
                crate::source::read_to_string(&path).map_err(|source| ProfileError::ReadDir {
                    path: path.clone(),
                    source,
                })?;
            if crate::inventory::NodeName::parse(&name).is_err() {
                return Err(ProfileError::Invalid(source::at(
                    &path,
                    &text,
                    0,
                    format!("profile file name '{name}' is not a valid profile name"),
                    Some("name profile files like my-profile.toml"),
                )));
            }
            let profile = Profile::parse(&name, &path, &text, Origin::File(path.clone()))
                .map_err(ProfileError::Invalid)?;
            p.by_name.insert(name, profile);
        }
        Ok(p)
    }

    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.by_name.get(name).ok_or_else(|| ProfileError::Unknown {
            name: name.to_owned(),
            suggestion: self
                .by_name
                .keys()
                .min_by_key(|k| edit_distance(k, name))
                .filter(|k| edit_distance(k, name) <= 3)
                .cloned(),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_name.values()
    }
}

/// Levenshtein distance, for "did you mean" on profile names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        let p = Profiles::builtin();
        assert_eq!(p.iter().count(), BUILTIN.len());
        let e = p.get("etcd-per").unwrap_err();
        assert_eq!(
            e.hint().unwrap(),
            "did you mean 'etcd-peer'? `kpki profiles list` shows them all"
        );
    }

    #[test]
    fn a_secret_profile_is_read_as_strictly_as_the_others() {
        let p = Profiles::builtin();
        let enc = p.get("encryption-config").unwrap();
        assert_eq!(enc.key, KeyKind::Secret(Provider::Secretbox));
        assert!(enc.key_file.is_none());
        let Body::Secret { config } = &enc.body else {
            panic!("{:?}", enc.body)
        };
        assert_eq!(
            (config.path.as_str(), config.mode, config.owner.as_str()),
            ("/etc/kubernetes/ssl/encryption-config.yaml", 0o600, "root")
        );
        let text = enc.text.clone();
        let parse = |t: &str| Profile::parse("x", Path::new("x.toml"), t, Origin::Builtin);
        let line_of =
            |t: &str, needle: &str| t.lines().position(|l| l.contains(needle)).unwrap() + 1;
        // A certificate's key in a secret profile: named, at its line, with the keys allowed.
        let t = text.replace("provider = ", "validity = \"1y\"\nprovider = ");
        let e = parse(&t).unwrap_err();
        assert!(e.message.contains("unknown field `validity`"), "{e}");
        assert!(e.message.contains("`provider`"), "{e}");
        assert_eq!(e.line, line_of(&t, "validity"));
        assert!(e.hint.is_some());
        let t = text.replace("\"secretbox\"", "\"aesgcm\"");
        let e = parse(&t).unwrap_err();
        assert!(
            e.message.contains("unknown encryption provider 'aesgcm'"),
            "{e}"
        );
        assert_eq!(e.line, line_of(&t, "aesgcm"));
        let t = text.replace("mode = 0o600", "mode = 0o644");
        let e = parse(&t).unwrap_err();
        assert!(
            e.message
                .contains("install.config.mode 644 lets others read"),
            "{e}"
        );
        assert_eq!(e.line, line_of(&t, "config = "));
        assert_eq!(
            e.hint.as_deref(),
            Some("a file holding a secret is installed 0o600 (or 0o400)")
        );
        let t = text.replace("scope = \"cluster\"", "scope = \"node\"");
        let e = parse(&t).unwrap_err();
        assert!(e.message.contains("issued once for the cluster"), "{e}");
        assert_eq!(e.line, line_of(&t, "scope = "));
        let e = parse(&text.replace("provider = \"secretbox\"\n", "")).unwrap_err();
        assert!(e.message.contains("missing field `provider`"), "{e}");
        // And a certificate profile cannot borrow the secret's table.
        let cert = p.get("admin").unwrap().text.clone()
            + "config = { path = \"/etc/x.yaml\", mode = 0o600 }\n";
        let e = parse(&cert).unwrap_err();
        assert!(e.message.contains("unknown field `config`"), "{e}");
    }

    #[test]
    fn unknown_placeholder_points_at_line() {
        let text = Profiles::builtin()
            .get("etcd-peer")
            .unwrap()
            .text
            .replace("{node.fqdn}", "{node.fdqn}");
        let e = Profile::parse("x", Path::new("x.toml"), &text, Origin::Builtin).unwrap_err();
        assert!(
            e.message.contains("unknown placeholder '{node.fdqn}'"),
            "{e}"
        );
        assert!(e.line > 1);
    }
}
