//! Reading configs back: which certificate, key, CA and encryption config files a node's
//! daemons are told to use, by which config file and which key in it.
//!
//! [`references`] reads one node's tree: a staged tree (`DIR/<node>`, as `kpki apply`
//! writes it) or an installed system (`/`), or a tree still in memory ([`scan_tree`],
//! through [`TreeFiles`]). Paths in [`Reference`] are always the absolute install paths,
//! whatever the root; resolve them with [`resolve`].
//!
//! Where it looks (relative to the root):
//! - systemd units `/etc/systemd/system/*.service` and their drop-ins
//!   (`*.service.d/*.conf`): the flags of `ExecStart` for etcd, flanneld, kubelet,
//!   kube-proxy and the control-plane daemons, and the `EnvironmentFile`s of etcd and
//!   flanneld (`ETCD_*`, `FLANNELD_*`);
//! - static pods `/etc/kubernetes/manifests/*.{yaml,yml,json,manifest}` (container
//!   `command` + `args`), including an etcd static pod;
//! - kubeconfigs `/etc/kubernetes/*.kubeconfig`, `/etc/kubernetes/*.conf` and
//!   `/*.kubeconfig` (the operator's tree), plus every kubeconfig a flag names;
//! - the `KubeletConfiguration` the kubelet's `--config` names, and the
//!   `KubeProxyConfiguration` kube-proxy's `--config` names (for its kubeconfig);
//! - `/etc/etcd/options.env` and `/etc/flanneld/options.env`.
//!
//! Nothing here judges what it finds ([`super::check`] does); it only reports it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Component as PathComponent, Path, PathBuf};

use yaml_rust2::Yaml;
use zeroize::Zeroizing;

use super::daemons::{self, ConfigFormat, Daemon, Hosts, Names, DAEMONS};
use super::tree::{DiskTree, TreeFiles};
use crate::material::file::FileError;
use crate::material::{kubeconfig, yaml};

/// The daemon (or kind of file) a reference belongs to, by name. The daemons are
/// declared in [`super::daemons`]; a declaration may name a component of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Component(pub &'static str);

impl Component {
    pub const ETCD: Component = Component("etcd");
    pub const FLANNELD: Component = Component("flanneld");
    pub const KUBELET: Component = Component("kubelet");
    pub const KUBE_PROXY: Component = Component("kube-proxy");
    pub const KUBE_APISERVER: Component = Component("kube-apiserver");
    pub const KUBE_CONTROLLER_MANAGER: Component = Component("kube-controller-manager");
    pub const KUBE_SCHEDULER: Component = Component("kube-scheduler");
    /// A kubeconfig (its user may be any of the daemons, or the operator).
    pub const KUBECONFIG: Component = Component("kubeconfig");

    pub fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the referenced file (or embedded value) holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefKind {
    /// A certificate file (the leaf first; a chain may follow).
    Cert,
    /// A private key file.
    Key,
    /// A CA certificate file (one CA or a bundle).
    Ca,
    /// A public key file (the service-account verification key).
    PublicKey,
    /// An EncryptionConfiguration: the keys that encrypt resources at rest.
    EncryptionConfig,
    /// Another config file (a kubeconfig, a KubeletConfiguration, an environment file).
    Config,
    /// A kubeconfig's `client-certificate-data`, decoded (PEM text).
    EmbeddedCert(String),
    /// A kubeconfig's `certificate-authority-data`, decoded (PEM text).
    EmbeddedCa(String),
    /// A kubeconfig's `client-key-data`; read it with [`embedded_key`] (kept out of
    /// this struct so a `Debug` print never shows a key).
    EmbeddedKey,
}

impl RefKind {
    /// Whether the value sits in the config itself rather than in a file it names.
    pub fn is_embedded(&self) -> bool {
        matches!(
            self,
            RefKind::EmbeddedCert(_) | RefKind::EmbeddedCa(_) | RefKind::EmbeddedKey
        )
    }
}

/// What the daemon does with the file, which decides what the certificate must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Usage {
    /// A serving certificate: serverAuth, and SANs for [`Reference::hosts`].
    Server,
    /// A client certificate: clientAuth.
    Client,
    /// Both (etcd members dial each other with their serving certificate).
    ServerClient,
    /// CA certificates trusted to verify peers (a bundle is fine).
    Trust,
    /// Exactly one CA certificate (flags that do not take a bundle).
    SingleCa,
    /// A CA certificate and key that the daemon signs with.
    Signing,
    /// The service-account token key pair.
    ServiceAccount,
    /// Encrypts resources at rest in etcd (kube-apiserver's encryption providers).
    Encryption,
    /// A config file named by another config.
    Config,
}

/// One file (or embedded value) that a config names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The config file, as an absolute install path (`/etc/etcd/options.env`).
    pub config: PathBuf,
    pub component: Component,
    /// The key in the config: `ETCD_PEER_CERT_FILE`, `--tls-cert-file`,
    /// `users[system:node:worker01].user.client-certificate`, `tlsCertFile`.
    pub key: String,
    /// The referenced file as an absolute install path; for embedded data, the config.
    pub path: PathBuf,
    pub kind: RefKind,
    pub usage: Usage,
    /// Groups the certificate and key of one identity within a config (`peer`,
    /// `serving`, `etcd`, `user admin`, …).
    pub identity: String,
    /// For a certificate: the key, in the same config, of the CA file it must chain to.
    pub chains_to: Option<String>,
    /// For a serving certificate: the names and addresses it must carry, from the
    /// config's listen/advertise settings.
    pub hosts: Vec<String>,
    /// The keys the hosts came from (for messages), such as `ETCD_LISTEN_PEER_URLS`.
    pub hosts_from: Vec<String>,
}

/// Why a config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{} {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("{} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{config}: {message}")]
    Parse { config: PathBuf, message: String },
}

/// Why a config could not be read: the file itself, or what it says.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// Missing files are not problems of the scan: the reference naming them is.
    #[error("{0}")]
    File(FileError),
    #[error("{0}")]
    Parse(String),
}

/// Everything [`scan`] found: the references, and the configs it could not read.
#[derive(Debug, Default)]
pub struct Scan {
    pub references: Vec<Reference>,
    /// `(config install path, what is wrong)`.
    pub problems: Vec<(PathBuf, ConfigProblem)>,
}

/// The file under `root` for an absolute install path (`/` + path for an installed node).
pub fn resolve(root: &Path, install_path: &Path) -> PathBuf {
    let rel: PathBuf = install_path
        .components()
        .filter(|c| matches!(c, PathComponent::Normal(_)))
        .collect();
    root.join(rel)
}

/// Every reference in the node tree at `root`. Fails on the first config that cannot be
/// read or parsed; [`scan`] reports those and goes on.
pub fn references(root: &Path) -> Result<Vec<Reference>, ReadError> {
    let s = scan(root);
    if let Some((config, problem)) = s.problems.into_iter().next() {
        return Err(ReadError::Parse {
            config,
            message: problem.to_string(),
        });
    }
    Ok(s.references)
}

/// What a config file is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Format {
    Unit,
    StaticPod,
    Kubeconfig,
    /// A KubeProxyConfiguration: it names kube-proxy's kubeconfig.
    KubeProxyConfig,
    /// A KubeletConfiguration, with the hosts its serving certificate must name.
    KubeletConfig {
        hosts: Vec<String>,
        from: Vec<String>,
    },
    Env(Component),
}

/// Reads every config under `root`, collecting what cannot be read as problems.
pub fn scan(root: &Path) -> Scan {
    scan_tree(&DiskTree::new(root))
}

/// [`scan`] of any tree, such as one not written yet.
pub fn scan_tree(tree: &dyn TreeFiles) -> Scan {
    scan_tree_with(tree, DAEMONS)
}

/// [`scan_tree`] with other daemon declarations than kpki's own ([`DAEMONS`]).
pub fn scan_tree_with(tree: &dyn TreeFiles, daemons: &[Daemon]) -> Scan {
    let mut scan = Scan::default();
    let mut queue: VecDeque<(PathBuf, Format)> = discover(tree, daemons).into();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    while let Some((config, format)) = queue.pop_front() {
        if !seen.insert(config.clone()) {
            continue;
        }
        let text = match tree.read(&config) {
            // Zeroized: a kubeconfig may embed a key.
            Ok(b) => Zeroizing::new(String::from_utf8_lossy(&b).into_owned()),
            // A followed config that is missing is reported by the checker through the
            // Config reference that named it.
            Err(FileError::Missing) => continue,
            Err(e) => {
                scan.problems.push((config, ConfigProblem::File(e)));
                continue;
            }
        };
        let mut out = Out {
            config: config.clone(),
            refs: &mut scan.references,
            follow: &mut queue,
            daemons,
        };
        let r = match &format {
            Format::Unit => read_unit(&text, &mut out),
            Format::StaticPod => read_static_pod(&text, &mut out),
            Format::Kubeconfig => read_kubeconfig(&text, &mut out),
            Format::KubeProxyConfig => read_kube_proxy_config(&text, &mut out),
            Format::KubeletConfig { hosts, from } => {
                read_kubelet_config(&text, hosts, from, &mut out)
            }
            Format::Env(c) => {
                let vars = parse_env(&text);
                table_refs(*c, &vars, &mut out);
                Ok(())
            }
        };
        if let Err(m) = r {
            scan.problems.push((config, ConfigProblem::Parse(m)));
        }
    }
    scan.references
        .sort_by(|a, b| (&a.config, &a.key, &a.path).cmp(&(&b.config, &b.key, &b.path)));
    scan.references.dedup();
    scan
}

/// The decoded `client-key-data` of an [`RefKind::EmbeddedKey`] reference.
pub fn embedded_key(root: &Path, r: &Reference) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    embedded_key_tree(&DiskTree::new(root), r)
}

/// [`embedded_key`] of any tree.
pub fn embedded_key_tree(
    tree: &dyn TreeFiles,
    r: &Reference,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let bytes = tree.read(&r.config).map_err(|source| ReadError::File {
        path: tree.display(&r.config),
        source,
    })?;
    // `scan` reads configs lossily; a key is read from UTF-8 text only.
    let text = std::str::from_utf8(&bytes).map_err(|_| ReadError::NotText {
        path: tree.display(&r.config),
    })?;
    let parse = |message: String| ReadError::Parse {
        config: r.config.clone(),
        message,
    };
    let k = kubeconfig::parse(text).map_err(|e| parse(e.to_string()))?;
    let user = r.identity.strip_prefix("user ").unwrap_or(&r.identity);
    for u in k.users.iter().filter(|u| u.name == user) {
        if let Some(d) = &u.key_data {
            return kubeconfig::decode(d).map_err(|e| parse(format!("{}: not base64: {e}", r.key)));
        }
    }
    Err(parse(format!("{} is gone", r.key)))
}

fn list_dir(tree: &dyn TreeFiles, dir: &str, ok: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = tree
        .list(Path::new(dir))
        .into_iter()
        .filter(|n| ok(n))
        .map(|n| Path::new(dir).join(n))
        .collect();
    v.sort();
    v
}

fn discover(tree: &dyn TreeFiles, daemons: &[Daemon]) -> Vec<(PathBuf, Format)> {
    let mut out = Vec::new();
    for unit in list_dir(tree, "/etc/systemd/system", |n| n.ends_with(".service")) {
        out.push((unit, Format::Unit));
    }
    for d in list_dir(tree, "/etc/systemd/system", |n| n.ends_with(".service.d")) {
        for f in list_dir(tree, d.to_str().unwrap_or_default(), |n| {
            n.ends_with(".conf")
        }) {
            out.push((f, Format::Unit));
        }
    }
    for m in list_dir(tree, "/etc/kubernetes/manifests", |n| {
        [".yaml", ".yml", ".json", ".manifest"]
            .iter()
            .any(|x| n.ends_with(x))
    }) {
        out.push((m, Format::StaticPod));
    }
    for k in list_dir(tree, "/etc/kubernetes", |n| {
        n.ends_with(".kubeconfig") || n.ends_with(".conf")
    }) {
        out.push((k, Format::Kubeconfig));
    }
    for k in list_dir(tree, "/", |n| n.ends_with(".kubeconfig")) {
        out.push((k, Format::Kubeconfig));
    }
    for d in daemons {
        for f in d.env_files {
            out.push((PathBuf::from(f), Format::Env(d.component)));
        }
    }
    out
}

/// Where references and configs to follow go while reading one config.
struct Out<'a> {
    config: PathBuf,
    refs: &'a mut Vec<Reference>,
    follow: &'a mut VecDeque<(PathBuf, Format)>,
    daemons: &'a [Daemon],
}

impl Out<'_> {
    /// Makes an absolute install path of a value (relative values are relative to the
    /// config's directory, as kubeconfigs define).
    fn abs(&self, v: &str) -> PathBuf {
        let p = Path::new(v);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.config.parent().unwrap_or(Path::new("/")).join(p)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        component: Component,
        key: &str,
        path: PathBuf,
        kind: RefKind,
        usage: Usage,
        identity: &str,
        chains_to: Option<String>,
        hosts: (Vec<String>, Vec<String>),
    ) {
        self.refs.push(Reference {
            config: self.config.clone(),
            component,
            key: key.to_owned(),
            path,
            kind,
            usage,
            identity: identity.to_owned(),
            chains_to,
            hosts: hosts.0,
            hosts_from: hosts.1,
        });
    }

    fn config_ref(&mut self, component: Component, key: &str, value: &str, format: Format) {
        let path = self.abs(value);
        self.push(
            component,
            key,
            path.clone(),
            RefKind::Config,
            Usage::Config,
            "config",
            None,
            (vec![], vec![]),
        );
        self.follow.push_back((path, format));
    }
}

/// `KEY=VALUE` lines of a systemd environment file.
pub(crate) fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            m.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    m
}

/// Host names and addresses of comma-separated URLs, without wildcard addresses.
fn url_hosts(urls: &str) -> Vec<String> {
    urls.split(',')
        .filter_map(|u| {
            let rest = u.trim().split_once("://").map_or(u.trim(), |(_, r)| r);
            let hostport = rest.split('/').next().unwrap_or(rest);
            let host = if let Some(h) = hostport.strip_prefix('[') {
                h.split(']').next().unwrap_or(h)
            } else {
                hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
            };
            (!host.is_empty() && host != "0.0.0.0" && host != "::").then(|| host.to_owned())
        })
        .collect()
}

/// The names and addresses a serving certificate must carry, from the settings `hosts`
/// points at, and those settings (for messages). `get` reads a setting's value.
fn hosts_of<'v>(
    hosts: Hosts,
    get: impl Fn(&str) -> Option<&'v str>,
    shown: impl Fn(&str) -> String,
) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut from = Vec::new();
    let (keys, urls) = match hosts {
        Hosts::None => return (names, from),
        Hosts::Addresses(k) => (k, false),
        Hosts::Urls(k) => (k, true),
    };
    for k in keys {
        let Some(v) = get(k) else { continue };
        let found = if urls {
            url_hosts(v)
        } else if v != "0.0.0.0" && v != "::" && !v.is_empty() {
            vec![v.to_owned()]
        } else {
            vec![]
        };
        if urls || !found.is_empty() {
            from.push(shown(k));
        }
        for h in found {
            if !names.contains(&h) {
                names.push(h);
            }
        }
    }
    (names, from)
}

/// The references a daemon's settings make, read by `get`; `shown` writes a setting's
/// key as the config spells it (`--tls-cert-file`, `ETCD_PEER_CERT_FILE`).
fn setting_refs<'v>(
    d: &Daemon,
    get: impl Fn(&str) -> Option<&'v str> + Copy,
    shown: impl Fn(&str) -> String + Copy,
    out: &mut Out<'_>,
) {
    for st in d.settings {
        let Some(v) = get(st.key).filter(|v| !v.is_empty()) else {
            continue;
        };
        let usage = match st.usage_if {
            Some((k, want, u)) if get(k) == Some(want) => u,
            _ => st.usage,
        };
        let kind = match st.names {
            Names::Cert => RefKind::Cert,
            Names::Key => RefKind::Key,
            Names::Ca => RefKind::Ca,
            Names::PublicKey => RefKind::PublicKey,
            Names::EncryptionConfig => RefKind::EncryptionConfig,
        };
        let path = out.abs(v);
        out.push(
            d.component,
            &shown(st.key),
            path,
            kind,
            usage,
            st.identity,
            st.chains_to.map(shown),
            hosts_of(st.hosts, get, shown),
        );
    }
}

/// A daemon's settings from an environment file (or from flags turned into the
/// environment names: `--peer-cert-file` is `ETCD_PEER_CERT_FILE`).
fn table_refs(c: Component, vars: &BTreeMap<String, String>, out: &mut Out<'_>) {
    let Some(d) = daemons::of(out.daemons, c).copied() else {
        return;
    };
    setting_refs(&d, |k| vars.get(k).map(String::as_str), str::to_owned, out);
}

/// Splits a command line into words (double and single quotes, backslash escapes).
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                any = true;
            }
            (None, '\\') => cur.extend(chars.next()),
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `--flag=value` and `--flag value` pairs (single-dash flags too, as flanneld takes).
fn parse_flags(args: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) {
            if let Some((n, v)) = name.split_once('=') {
                out.push((n.to_owned(), v.to_owned()));
            } else if let Some(v) = args.get(i + 1).filter(|v| !v.starts_with('-')) {
                out.push((name.to_owned(), v.clone()));
                i += 1;
            } else {
                out.push((name.to_owned(), "true".into()));
            }
        }
        i += 1;
    }
    out
}

/// The references of a daemon's command line (a unit's `ExecStart`, a static pod's
/// command and args), by its declaration.
fn command_refs(c: Component, flags: &[(String, String)], out: &mut Out<'_>) {
    let Some(d) = daemons::of(out.daemons, c).copied() else {
        return;
    };
    if let Some(prefix) = d.env_prefix {
        let vars: BTreeMap<String, String> = flags
            .iter()
            .map(|(k, v)| {
                (
                    format!("{prefix}{}", k.to_uppercase().replace('-', "_")),
                    v.clone(),
                )
            })
            .collect();
        table_refs(c, &vars, out);
        return;
    }
    // The last occurrence of a flag wins, as in the daemons' own parsers.
    let get = |n: &str| {
        flags
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let shown = |k: &str| format!("--{k}");
    setting_refs(&d, get, shown, out);
    let configs = d.configs.iter().chain(
        daemons::KUBECONFIGS
            .iter()
            .filter(|(k, _)| !d.configs.iter().any(|(own, _)| own == k)),
    );
    for (flag, format) in configs {
        let Some(v) = get(flag).filter(|v| !v.is_empty()) else {
            continue;
        };
        let format = match format {
            ConfigFormat::Kubeconfig => Format::Kubeconfig,
            ConfigFormat::KubeProxyConfig => Format::KubeProxyConfig,
            ConfigFormat::KubeletConfig(hosts) => {
                let (hosts, from) = hosts_of(*hosts, get, shown);
                Format::KubeletConfig { hosts, from }
            }
        };
        out.config_ref(c, &shown(flag), v, format);
    }
}

fn read_unit(text: &str, out: &mut Out<'_>) -> Result<(), String> {
    // Join continuation lines, then take the [Service] settings.
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let l = line.trim_end();
        if let Some(stripped) = l.strip_suffix('\\') {
            cur.push_str(stripped);
            cur.push(' ');
        } else {
            cur.push_str(l);
            logical.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        logical.push(cur);
    }
    let mut exec: Option<String> = None;
    let mut env_files = Vec::new();
    for l in &logical {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("ExecStart=") {
            // An empty ExecStart= resets the list (drop-ins).
            exec = (!v.trim().is_empty()).then(|| v.trim().to_owned());
        } else if let Some(v) = l.strip_prefix("EnvironmentFile=") {
            let v = v.trim();
            let (optional, path) = v.strip_prefix('-').map_or((false, v), |p| (true, p));
            env_files.push((optional, path.to_owned()));
        }
    }
    let Some(exec) = exec else { return Ok(()) };
    // Prefixes such as '-' or '@' or '+' on the command.
    let words = split_words(exec.trim_start_matches(['-', '@', '+', '!', ':']));
    let Some(cmd) = words.first() else {
        return Ok(());
    };
    let Some(d) = daemons::by_binary(out.daemons, cmd).copied() else {
        return Ok(());
    };
    let c = d.component;
    // Daemons that read environment files: what the unit names is read as theirs.
    if d.env_prefix.is_some() {
        for (optional, path) in &env_files {
            if *optional && !path.starts_with('/') {
                continue;
            }
            out.config_ref(c, "EnvironmentFile", path, Format::Env(c));
        }
    }
    let args: Vec<String> = words[1..]
        .iter()
        .filter(|w| !w.contains('$'))
        .cloned()
        .collect();
    command_refs(c, &parse_flags(&args), out);
    Ok(())
}

fn load_yaml(text: &str) -> Result<Yaml, String> {
    yaml::load_first(text).map_err(|e| e.to_string())
}

fn read_static_pod(text: &str, out: &mut Out<'_>) -> Result<(), String> {
    let doc = load_yaml(text)?;
    for container in doc["spec"]["containers"]
        .as_vec()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let words: Vec<String> = container["command"]
            .as_vec()
            .into_iter()
            .flatten()
            .chain(container["args"].as_vec().into_iter().flatten())
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect();
        // `kube-apiserver …`, or an image whose entry point is named by the container.
        let c = words
            .first()
            .and_then(|w| daemons::by_binary(out.daemons, w))
            .or_else(|| {
                container["name"]
                    .as_str()
                    .and_then(|n| daemons::by_binary(out.daemons, n))
            })
            .map(|d| d.component);
        if let Some(c) = c {
            let skip = usize::from(words.first().is_some_and(|w| !w.starts_with('-')));
            command_refs(c, &parse_flags(&words[skip..]), out);
        }
    }
    Ok(())
}

fn read_kubeconfig(text: &str, out: &mut Out<'_>) -> Result<(), String> {
    let k = kubeconfig::parse(text).map_err(|e| e.to_string())?;
    if k.is_other_kind() {
        return Ok(()); // some other YAML under /etc/kubernetes
    }
    let b64 = |key: &str, v: &str| -> Result<String, String> {
        kubeconfig::decode(v)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("{key}: not base64: {e}"))
    };
    let c = Component::KUBECONFIG;
    let none = || (vec![], vec![]);
    let mut ca_key_of: BTreeMap<&str, String> = BTreeMap::new();
    for cl in &k.clusters {
        let id = format!("cluster {}", cl.name);
        let base = format!("clusters[{}].cluster", cl.name);
        if let Some(v) = &cl.ca_file {
            let key = format!("{base}.certificate-authority");
            let path = out.abs(v);
            out.push(c, &key, path, RefKind::Ca, Usage::Trust, &id, None, none());
            ca_key_of.insert(&cl.name, key);
        }
        if let Some(v) = &cl.ca_data {
            let key = format!("{base}.certificate-authority-data");
            let pem = b64(&key, v)?;
            let path = out.config.clone();
            out.push(
                c,
                &key,
                path,
                RefKind::EmbeddedCa(pem),
                Usage::Trust,
                &id,
                None,
                none(),
            );
            ca_key_of.insert(&cl.name, key);
        }
    }
    for u in &k.users {
        let id = format!("user {}", u.name);
        let base = format!("users[{}].user", u.name);
        let chain = k
            .cluster_of(&u.name)
            .and_then(|cl| ca_key_of.get(cl))
            .cloned();
        if let Some(v) = &u.cert_file {
            let path = out.abs(v);
            let key = format!("{base}.client-certificate");
            out.push(
                c,
                &key,
                path,
                RefKind::Cert,
                Usage::Client,
                &id,
                chain.clone(),
                none(),
            );
        }
        if let Some(v) = &u.key_file {
            let path = out.abs(v);
            let key = format!("{base}.client-key");
            out.push(
                c,
                &key,
                path,
                RefKind::Key,
                Usage::Client,
                &id,
                None,
                none(),
            );
        }
        if let Some(v) = &u.cert_data {
            let key = format!("{base}.client-certificate-data");
            let pem = b64(&key, v)?;
            let path = out.config.clone();
            out.push(
                c,
                &key,
                path,
                RefKind::EmbeddedCert(pem),
                Usage::Client,
                &id,
                chain.clone(),
                none(),
            );
        }
        if u.key_data.is_some() {
            let path = out.config.clone();
            let key = format!("{base}.client-key-data");
            out.push(
                c,
                &key,
                path,
                RefKind::EmbeddedKey,
                Usage::Client,
                &id,
                None,
                none(),
            );
        }
    }
    Ok(())
}

/// kube-proxy's `--config`: the kubeconfig it names is followed like a flag's.
fn read_kube_proxy_config(text: &str, out: &mut Out<'_>) -> Result<(), String> {
    let doc = load_yaml(text)?;
    if let Some(v) = doc["clientConnection"]["kubeconfig"]
        .as_str()
        .filter(|v| !v.is_empty())
    {
        out.config_ref(
            Component::KUBE_PROXY,
            "clientConnection.kubeconfig",
            v,
            Format::Kubeconfig,
        );
    }
    Ok(())
}

fn read_kubelet_config(
    text: &str,
    hosts: &[String],
    from: &[String],
    out: &mut Out<'_>,
) -> Result<(), String> {
    let doc = load_yaml(text)?;
    let c = Component::KUBELET;
    let none = || (vec![], vec![]);
    let chain = doc["authentication"]["x509"]["clientCAFile"]
        .as_str()
        .map(|_| "authentication.x509.clientCAFile".to_owned());
    if let Some(v) = doc["tlsCertFile"].as_str() {
        let path = out.abs(v);
        let from: Vec<String> = from.iter().map(|f| format!("kubelet {f}")).collect();
        out.push(
            c,
            "tlsCertFile",
            path,
            RefKind::Cert,
            Usage::Server,
            "serving",
            chain,
            (hosts.to_vec(), from),
        );
    }
    if let Some(v) = doc["tlsPrivateKeyFile"].as_str() {
        let path = out.abs(v);
        out.push(
            c,
            "tlsPrivateKeyFile",
            path,
            RefKind::Key,
            Usage::Server,
            "serving",
            None,
            none(),
        );
    }
    if let Some(v) = doc["authentication"]["x509"]["clientCAFile"].as_str() {
        let path = out.abs(v);
        out.push(
            c,
            "authentication.x509.clientCAFile",
            path,
            RefKind::Ca,
            Usage::Trust,
            "clients",
            None,
            none(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_flags_and_urls() {
        assert_eq!(
            split_words(r#"/usr/bin/x --a=1 "--b=two words" -c 3"#),
            vec!["/usr/bin/x", "--a=1", "--b=two words", "-c", "3"]
        );
        let f = parse_flags(&split_words("--a=1 --b 2 --flag -etcd-cafile=/x"));
        assert_eq!(f[1], ("b".into(), "2".into()));
        assert_eq!(f[2], ("flag".into(), "true".into()));
        assert_eq!(f[3], ("etcd-cafile".into(), "/x".into()));
        assert_eq!(
            url_hosts("https://10.0.0.1:2379,https://[fd00::1]:2379,http://0.0.0.0:2379,https://etcd01:2380"),
            vec!["10.0.0.1", "fd00::1", "etcd01"]
        );
        assert_eq!(
            resolve(Path::new("/s/n1"), Path::new("/etc/x")),
            PathBuf::from("/s/n1/etc/x")
        );
    }
}
