//! Which daemons a changed file restarts, from the daemon declarations
//! ([`crate::render::daemons`]) and the node's own configs, and how etcd is gated.
//!
//! A daemon depends on the files it is rendered with (its unit, its environment file,
//! its static pod manifest), on every file its configs name, and on what those named
//! configs name in turn (the kubelet's kubeconfig and the certificate it names). When
//! any of them changes, its unit is restarted; a static pod whose manifest changed is
//! restarted by the kubelet itself, one whose other files changed has its container
//! stopped so that the kubelet starts it again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::render::daemons::{Runs, DAEMONS};
use crate::render::refs::{self, Component};
use crate::render::tree::{DiskTree, TreeFiles};

/// What to restart on one node, in the order the daemons are declared (etcd first, the
/// node agents, the control plane).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restarts {
    /// A unit file or drop-in changed: `systemctl daemon-reload` first.
    pub daemon_reload: bool,
    /// systemd units, such as `etcd.service`.
    pub units: Vec<String>,
    /// Static pods whose container must be restarted (their manifest did not change).
    pub pods: Vec<String>,
}

impl Restarts {
    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.pods.is_empty() && !self.daemon_reload
    }

    /// Everything as the user reads it: `etcd.service`, `pod/kube-apiserver`.
    pub fn names(&self) -> Vec<String> {
        self.units
            .iter()
            .cloned()
            .chain(self.pods.iter().map(|p| format!("pod/{p}")))
            .collect()
    }
}

/// The files each daemon on the node at `root` depends on, by component.
pub fn dependencies(root: &Path) -> BTreeMap<Component, BTreeSet<PathBuf>> {
    let tree = DiskTree::new(root);
    let scan = refs::scan_tree(&tree);
    let mut by_config: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut deps: BTreeMap<Component, BTreeSet<PathBuf>> = BTreeMap::new();
    for r in &scan.references {
        by_config
            .entry(r.config.clone())
            .or_default()
            .push(r.path.clone());
        if r.component != Component::KUBECONFIG {
            let d = deps.entry(r.component).or_default();
            d.insert(r.config.clone());
            d.insert(r.path.clone());
        }
    }
    for d in DAEMONS {
        for f in d.files {
            if tree.mode(Path::new(f.path)).is_ok() {
                deps.entry(d.component)
                    .or_default()
                    .insert(PathBuf::from(f.path));
            }
        }
    }
    // What named configs name in turn, to a fixed point (bounded: each round adds).
    for set in deps.values_mut() {
        for _ in 0..8 {
            let more: Vec<PathBuf> = set
                .iter()
                .filter_map(|p| by_config.get(p))
                .flatten()
                .filter(|p| !set.contains(*p))
                .cloned()
                .collect();
            if more.is_empty() {
                break;
            }
            set.extend(more);
        }
    }
    deps
}

/// What changing `changed` (install paths) on the node at `root` restarts.
pub fn restarts(root: &Path, changed: &[&str]) -> Restarts {
    let changed: BTreeSet<PathBuf> = changed.iter().map(PathBuf::from).collect();
    let deps = dependencies(root);
    let mut r = Restarts {
        daemon_reload: changed.iter().any(|p| {
            p.starts_with("/etc/systemd/system") || p.starts_with("/usr/lib/systemd/system")
        }),
        ..Restarts::default()
    };
    for d in in_boot_order() {
        let Some(files) = deps.get(&d.component) else {
            continue;
        };
        if files.is_disjoint(&changed) {
            continue;
        }
        match d.runs {
            Runs::Unit(u) => r.units.push(u.to_owned()),
            Runs::StaticPod(name) => {
                let manifest_changed = d
                    .files
                    .iter()
                    .any(|f| f.static_pod && changed.contains(Path::new(f.path)));
                if !manifest_changed {
                    r.pods.push(name.to_owned());
                }
            }
            Runs::Applied | Runs::Operator => {}
        }
    }
    r
}

/// The daemons in the node's boot order: restarts follow it (here and in the Ansible
/// export), so a daemon comes back after what it needs.
pub fn in_boot_order() -> Vec<&'static crate::render::daemons::Daemon> {
    let mut daemons: Vec<_> = DAEMONS.iter().collect();
    daemons.sort_by_key(|d| boot_rank(d.component));
    daemons
}

/// The node's boot order (etcd, flanneld, containerd, kubelet, kube-proxy, the control
/// plane).
fn boot_rank(c: Component) -> usize {
    const ORDER: &[&str] = &[
        "etcd",
        "flanneld",
        "containerd",
        "kubelet",
        "kube-proxy",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ];
    ORDER
        .iter()
        .position(|n| *n == c.name())
        .unwrap_or(ORDER.len())
}

/// How to ask an etcd member whether it is back: from its staged environment file.
#[derive(Clone, Debug)]
pub struct EtcdGate {
    /// The member's own client URL.
    pub endpoint: String,
    /// `host:port` of that URL, for the serial check.
    pub host_port: String,
    /// Every member's client URL.
    pub all_endpoints: Vec<String>,
    pub cert: String,
    pub key: String,
    pub ca: String,
}

/// The gate of the member staged at `root`, when its options.env names what is needed.
pub fn etcd_gate(root: &Path, all_endpoints: Vec<String>) -> Option<EtcdGate> {
    let env = etcd_env(root)?;
    let endpoint = env
        .get("ETCD_ADVERTISE_CLIENT_URLS")?
        .split(',')
        .next()?
        .trim()
        .to_owned();
    let host_port = endpoint
        .split_once("://")?
        .1
        .trim_end_matches('/')
        .to_owned();
    let get = |k: &str| env.get(k).filter(|v| super::script::Safe::path(v)).cloned();
    let g = EtcdGate {
        cert: get("ETCD_CERT_FILE")?,
        key: get("ETCD_KEY_FILE")?,
        ca: get("ETCD_TRUSTED_CA_FILE")?,
        all_endpoints,
        endpoint,
        host_port,
    };
    let url_ok = |u: &str| {
        u.starts_with("https://")
            && u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:/[]-".contains(&b))
    };
    (url_ok(&g.endpoint) && g.all_endpoints.iter().all(|u| url_ok(u))).then_some(g)
}

/// The staged `/etc/etcd/options.env` of the tree at `root`.
pub fn etcd_env(root: &Path) -> Option<BTreeMap<String, String>> {
    // The staged tree is read as any tree: regular files of sane size, never blocking.
    let bytes = read_staged(root, "/etc/etcd/options.env")?;
    Some(refs::parse_env(&String::from_utf8_lossy(&bytes)))
}

fn read_staged(root: &Path, install_path: &str) -> Option<Vec<u8>> {
    use crate::material::file::{read_regular, Links, MAX_FILE};
    read_regular(
        &refs::resolve(root, Path::new(install_path)),
        MAX_FILE,
        Links::Follow,
    )
    .ok()
    .map(|b| b.to_vec())
}

/// The serial (uppercase hex, as `openssl x509 -serial` prints it) of the first
/// certificate in the staged file at `install_path`.
pub fn staged_serial(root: &Path, install_path: &str) -> Option<String> {
    let bytes = read_staged(root, install_path)?;
    let der = crate::pki::pem::first_cert(&bytes)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let hex: String = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Some(hex)
}
