//! The cluster inventory: one TOML file that names the cluster, its load balancer and its
//! nodes. Everything kpki issues, renders and ships is derived from a validated
//! [`Inventory`]; nothing else in the crate reads the raw file.
//!
//! Loading is strict: unknown keys, missing fields, bad addresses, duplicate names or IPs
//! and unknown roles are each one [`Located`] error naming the file, line and fix.

mod net;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use net::Cidr;

use crate::source::{self, Located};

/// Errors from reading an inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Located),
}

impl InventoryError {
    pub fn hint(&self) -> Option<String> {
        match self {
            InventoryError::Read { .. } => Some(
                "pass the cluster inventory with --inventory FILE (see examples/ha-cluster.toml)"
                    .into(),
            ),
            InventoryError::Invalid(l) => l.hint.clone(),
        }
    }
}

/// What a node does in the cluster; a node may have several roles.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Etcd,
    Master,
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Etcd => "etcd",
            Role::Master => "master",
            Role::Worker => "worker",
        })
    }
}

/// A node name that is safe as a file name and a DNS label: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NodeName(String);

impl NodeName {
    pub fn parse(s: &str) -> Result<NodeName, String> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(NodeName(s.to_owned()))
        } else {
            Err(format!(
                "node name '{s}' must be a DNS label: lowercase letters, digits and '-', at most 63"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a DNS name (FQDN or single label): labels of letters, digits and '-'.
pub fn valid_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub name: String,
    pub domain: String,
    pub service_cidr: Cidr,
    pub cluster_domain: String,
    pub pod_cidr: Cidr,
    pub flannel_subnet_len: u8,
    pub flannel_backend: String,
    pub flannel_etcd_prefix: String,
    /// The cluster DNS service IP (kubelet's `clusterDNS`).
    pub cluster_dns: IpAddr,
    /// The resolv.conf the kubelet gives pods for upstream names (`resolvConf`).
    pub resolv_conf: String,
    /// VXLAN options (the vxlan backend only): VNI, UDP port, direct routing.
    pub flannel_vxlan: Option<VxlanOptions>,
}

/// flannel's VXLAN backend options; `None` fields are flannel's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VxlanOptions {
    pub vni: Option<u32>,
    pub port: Option<u16>,
    pub direct_routing: Option<bool>,
}

/// etcd's tunables; `None` is etcd's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `ETCD_HEARTBEAT_INTERVAL`, milliseconds.
    pub heartbeat_interval_ms: Option<u32>,
    /// `ETCD_ELECTION_TIMEOUT`, milliseconds.
    pub election_timeout_ms: Option<u32>,
    /// `ETCD_WAL_DIR`: the write-ahead log on its own (faster) disk.
    pub wal_dir: Option<String>,
}

impl Cluster {
    /// The first service IP: the `kubernetes` service the apiserver certificate must name.
    pub fn kubernetes_service_ip(&self) -> IpAddr {
        self.service_cidr
            .nth(1)
            .expect("validated: the service CIDR has room for hosts")
    }
}

#[derive(Clone, Debug)]
pub struct LoadBalancer {
    pub fqdn: String,
    pub ip: IpAddr,
}

/// How kpki reaches a node over SSH (used by `kpki push`). User and port are `None`
/// when the inventory leaves them to the user's ssh config (`~/.ssh/config` or
/// `--ssh-config`), where `host` may be an alias.
#[derive(Clone, Debug)]
pub struct Ssh {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub host: String,
}

/// An SSH host: a DNS name, an address or an ssh config alias. Never starting with `-`
/// (ssh would read it as an option) and nothing a shell or ssh would interpret.
pub(crate) fn valid_ssh_host(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && !v.starts_with('-')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
}

/// A login name as POSIX and useradd take it.
pub(crate) fn valid_user_name(v: &str) -> bool {
    let mut b = v.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && v.len() <= 32
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.".contains(&c))
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: NodeName,
    pub fqdn: String,
    pub ip: IpAddr,
    pub roles: BTreeSet<Role>,
    pub ssh: Ssh,
}

impl Node {
    pub fn has_role(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
}

/// A validated cluster inventory.
#[derive(Clone, Debug)]
pub struct Inventory {
    pub source: PathBuf,
    pub cluster: Cluster,
    pub loadbalancer: Option<LoadBalancer>,
    pub etcd: EtcdOptions,
    nodes: Vec<Node>,
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = crate::source::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Inventory::parse(path, &text)
    }

    /// Validates inventory text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let raw: RawInventory = toml::from_str(text).map_err(|e| {
            InventoryError::Invalid(source::toml_error(path, text, &e, "inventory"))
        })?;
        validate(path, text, raw).map_err(InventoryError::Invalid)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }

    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.has_role(role))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    cluster: RawCluster,
    loadbalancer: Option<RawLoadBalancer>,
    etcd: Option<RawEtcd>,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
    domain: Spanned<String>,
    service_cidr: Spanned<Cidr>,
    cluster_domain: Spanned<String>,
    pod_cidr: Spanned<Cidr>,
    #[serde(default = "default_subnet_len")]
    flannel_subnet_len: Spanned<u8>,
    #[serde(default = "default_backend")]
    flannel_backend: String,
    #[serde(default = "default_prefix")]
    flannel_etcd_prefix: Spanned<String>,
    cluster_dns: Option<Spanned<IpAddr>>,
    #[serde(default = "default_resolv_conf")]
    resolv_conf: Spanned<String>,
    flannel_vni: Option<Spanned<u32>>,
    flannel_port: Option<Spanned<u16>>,
    flannel_direct_routing: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEtcd {
    heartbeat_interval_ms: Option<Spanned<u32>>,
    election_timeout_ms: Option<Spanned<u32>>,
    wal_dir: Option<Spanned<String>>,
}

/// systemd-resolved's list of the real upstream servers: /etc/resolv.conf there names
/// 127.0.0.53, which inside a pod is the pod itself, and CoreDNS would loop on it.
fn default_resolv_conf() -> Spanned<String> {
    Spanned::new(0..0, "/run/systemd/resolve/resolv.conf".into())
}

/// A value that is written into configs as a path or an etcd key: `/` and then letters,
/// digits and `. _ - /` only, no `..`, so it can end no line and start no setting.
pub(crate) fn safe_path(v: &str) -> bool {
    v.starts_with('/')
        && v.len() <= 4096
        && !v.split('/').any(|c| c == "..")
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

fn default_subnet_len() -> Spanned<u8> {
    Spanned::new(0..0, 24)
}
fn default_backend() -> String {
    "vxlan".into()
}
fn default_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/coreos.com/network".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoadBalancer {
    fqdn: Spanned<String>,
    ip: IpAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    fqdn: Spanned<String>,
    ip: Spanned<IpAddr>,
    roles: Spanned<Vec<Role>>,
    ssh_user: Option<Spanned<String>>,
    ssh_port: Option<u16>,
    ssh_host: Option<Spanned<String>>,
}

const FLANNEL_BACKENDS: &[&str] = &["vxlan", "host-gw", "udp", "wireguard", "ipip", "ipsec"];

fn validate(path: &Path, text: &str, raw: RawInventory) -> Result<Inventory, Located> {
    let err = |span: std::ops::Range<usize>, msg: String, hint: &str| {
        source::at(path, text, span.start, msg, Some(hint))
    };
    let c = raw.cluster;
    if NodeName::parse(c.name.get_ref()).is_err() {
        return Err(err(
            c.name.span(),
            format!("cluster name '{}' is not a DNS label", c.name.get_ref()),
            "use lowercase letters, digits and '-'",
        ));
    }
    for f in [&c.domain, &c.cluster_domain] {
        if !valid_dns_name(f.get_ref()) {
            return Err(err(
                f.span(),
                format!("'{}' is not a DNS name", f.get_ref()),
                "write a domain such as example.com or cluster.local",
            ));
        }
    }
    let service = *c.service_cidr.get_ref();
    if service.nth(2).is_none() {
        return Err(err(
            c.service_cidr.span(),
            format!("service_cidr {service} has no room for the kubernetes and DNS service IPs"),
            "use a /24 or larger, such as 10.3.0.0/24",
        ));
    }
    let pod = *c.pod_cidr.get_ref();
    let sublen = *c.flannel_subnet_len.get_ref();
    let max = if pod.addr().is_ipv4() { 30 } else { 126 };
    if sublen <= pod.prefix() || sublen > max {
        return Err(err(
            c.flannel_subnet_len.span(),
            format!(
                "flannel_subnet_len {sublen} does not fit pod_cidr {pod} (each node's subnet must be smaller than the pod network)"
            ),
            &format!("choose a value between {} and {max}, such as 24", pod.prefix() + 1),
        ));
    }
    if !FLANNEL_BACKENDS.contains(&c.flannel_backend.as_str()) {
        return Err(err(
            0..0,
            format!("flannel_backend '{}' is unknown", c.flannel_backend),
            &format!("use one of {}", FLANNEL_BACKENDS.join(", ")),
        ));
    }
    if !safe_path(c.flannel_etcd_prefix.get_ref()) {
        return Err(err(
            c.flannel_etcd_prefix.span(),
            format!(
                "flannel_etcd_prefix {:?} is not an absolute etcd key of letters, digits and . _ - /",
                c.flannel_etcd_prefix.get_ref()
            ),
            "write it like /coreos.com/network",
        ));
    }
    if !safe_path(c.resolv_conf.get_ref()) {
        return Err(err(
            c.resolv_conf.span(),
            format!(
                "resolv_conf {:?} is not an absolute path of letters, digits and . _ - /",
                c.resolv_conf.get_ref()
            ),
            "write it like /etc/resolv.conf (hosts without systemd-resolved) or /run/systemd/resolve/resolv.conf",
        ));
    }
    let cluster_dns = match &c.cluster_dns {
        Some(ip) => {
            if !service.contains(*ip.get_ref()) {
                return Err(err(
                    ip.span(),
                    format!(
                        "cluster_dns {} lies outside service_cidr {service}",
                        ip.get_ref()
                    ),
                    "pick an address inside the service network, such as its 10th host",
                ));
            }
            *ip.get_ref()
        }
        None => service
            .nth(10)
            .or_else(|| service.nth(2))
            .expect("checked above"),
    };
    let vxlan_fields = [
        c.flannel_vni.as_ref().map(|v| v.span()),
        c.flannel_port.as_ref().map(|v| v.span()),
        c.flannel_direct_routing.as_ref().map(|v| v.span()),
    ];
    let flannel_vxlan = if let Some(span) = vxlan_fields.iter().flatten().next() {
        if c.flannel_backend != "vxlan" {
            return Err(err(
                span.clone(),
                format!(
                    "flannel_vni, flannel_port and flannel_direct_routing are vxlan options; flannel_backend is {}",
                    c.flannel_backend
                ),
                "drop them, or set flannel_backend = \"vxlan\"",
            ));
        }
        if let Some(v) = &c.flannel_vni {
            if !(1..=16_777_215).contains(v.get_ref()) {
                return Err(err(
                    v.span(),
                    format!("flannel_vni {} is not a VXLAN network id", v.get_ref()),
                    "choose 1 to 16777215 (flannel's default is 1)",
                ));
            }
        }
        if let Some(p) = c.flannel_port.as_ref().filter(|p| *p.get_ref() == 0) {
            return Err(err(
                p.span(),
                "flannel_port 0 is not a UDP port".into(),
                "choose a port such as 8472 (flannel's default on Linux)",
            ));
        }
        Some(VxlanOptions {
            vni: c.flannel_vni.map(|v| v.into_inner()),
            port: c.flannel_port.map(|v| v.into_inner()),
            direct_routing: c.flannel_direct_routing.map(|v| v.into_inner()),
        })
    } else {
        None
    };
    let etcd = match raw.etcd {
        None => EtcdOptions::default(),
        Some(e) => {
            let hb = e.heartbeat_interval_ms.as_ref().map(|v| *v.get_ref());
            if let Some(v) = &e.heartbeat_interval_ms {
                if !(10..=10_000).contains(v.get_ref()) {
                    return Err(err(
                        v.span(),
                        format!("etcd heartbeat_interval_ms {} is out of range", v.get_ref()),
                        "choose 10 to 10000 ms; etcd's default is 100, about the round trip between members",
                    ));
                }
            }
            if let Some(v) = &e.election_timeout_ms {
                // etcd refuses to start otherwise.
                let floor = 5 * hb.unwrap_or(100);
                if *v.get_ref() < floor || *v.get_ref() > 50_000 {
                    return Err(err(
                        v.span(),
                        format!(
                            "etcd election_timeout_ms {} must be at least 5 × the heartbeat ({floor}) and at most 50000",
                            v.get_ref()
                        ),
                        "etcd's default is 1000 ms, ten heartbeats",
                    ));
                }
            } else if hb.is_some_and(|h| 5 * h > 1000) {
                let v = e.heartbeat_interval_ms.as_ref().expect("some");
                return Err(err(
                    v.span(),
                    format!(
                        "etcd heartbeat_interval_ms {} needs an election_timeout_ms of at least {}",
                        v.get_ref(),
                        5 * v.get_ref()
                    ),
                    "set election_timeout_ms too (about ten heartbeats)",
                ));
            }
            if let Some(w) = &e.wal_dir {
                if !safe_path(w.get_ref()) {
                    return Err(err(
                        w.span(),
                        format!(
                            "etcd wal_dir {:?} is not an absolute path of letters, digits and . _ - /",
                            w.get_ref()
                        ),
                        "write it like /var/lib/etcd-wal",
                    ));
                }
            }
            EtcdOptions {
                heartbeat_interval_ms: hb,
                election_timeout_ms: e.election_timeout_ms.map(|v| v.into_inner()),
                wal_dir: e.wal_dir.map(|v| v.into_inner()),
            }
        }
    };
    let cluster = Cluster {
        name: c.name.into_inner(),
        domain: c.domain.into_inner(),
        service_cidr: service,
        cluster_domain: c.cluster_domain.into_inner(),
        pod_cidr: pod,
        flannel_subnet_len: sublen,
        flannel_backend: c.flannel_backend,
        flannel_etcd_prefix: c.flannel_etcd_prefix.into_inner(),
        cluster_dns,
        resolv_conf: c.resolv_conf.into_inner(),
        flannel_vxlan,
    };

    let loadbalancer = match raw.loadbalancer {
        Some(lb) => {
            if !valid_dns_name(lb.fqdn.get_ref()) {
                return Err(err(
                    lb.fqdn.span(),
                    format!(
                        "load balancer fqdn '{}' is not a DNS name",
                        lb.fqdn.get_ref()
                    ),
                    "write a name such as loadbalancer.example.com",
                ));
            }
            Some(LoadBalancer {
                fqdn: lb.fqdn.into_inner(),
                ip: lb.ip,
            })
        }
        None => None,
    };

    if raw.nodes.is_empty() {
        return Err(err(
            text.len()..text.len(),
            "the inventory has no [[nodes]]".into(),
            "add a [[nodes]] table for every host, with name, fqdn, ip and roles",
        ));
    }
    let mut nodes: Vec<Node> = Vec::with_capacity(raw.nodes.len());
    let mut spans: Vec<(
        std::ops::Range<usize>,
        std::ops::Range<usize>,
        std::ops::Range<usize>,
    )> = Vec::new();
    for n in raw.nodes {
        let name = NodeName::parse(n.name.get_ref())
            .map_err(|m| err(n.name.span(), m, "rename the node, such as etcd01"))?;
        if !valid_dns_name(n.fqdn.get_ref()) {
            return Err(err(
                n.fqdn.span(),
                format!("node {name}: fqdn '{}' is not a DNS name", n.fqdn.get_ref()),
                "write a name such as etcd01.example.com",
            ));
        }
        if n.roles.get_ref().is_empty() {
            return Err(err(
                n.roles.span(),
                format!("node {name} has no roles"),
                "give it at least one of \"etcd\", \"master\", \"worker\"",
            ));
        }
        let line_of = |s: &std::ops::Range<usize>| source::line_col(text, s.start).0;
        for (i, prev) in nodes.iter().enumerate() {
            if prev.name == name {
                return Err(err(
                    n.name.span(),
                    format!(
                        "duplicate node name {name} (already used on line {})",
                        line_of(&spans[i].0)
                    ),
                    "give every [[nodes]] entry its own name",
                ));
            }
            if prev.ip == *n.ip.get_ref() {
                return Err(err(
                    n.ip.span(),
                    format!(
                        "duplicate node ip {} (already used by {} on line {})",
                        n.ip.get_ref(),
                        prev.name,
                        line_of(&spans[i].1)
                    ),
                    "give every [[nodes]] entry its own ip",
                ));
            }
            if prev.fqdn == *n.fqdn.get_ref() {
                return Err(err(
                    n.fqdn.span(),
                    format!(
                        "duplicate node fqdn {} (already used by {} on line {})",
                        n.fqdn.get_ref(),
                        prev.name,
                        line_of(&spans[i].2)
                    ),
                    "give every [[nodes]] entry its own fqdn",
                ));
            }
        }
        let ip = *n.ip.get_ref();
        if let Some(h) = &n.ssh_host {
            if !valid_ssh_host(h.get_ref()) {
                return Err(err(
                    h.span(),
                    format!("node {name}: ssh_host '{}' is not a host name, address or ssh config alias", h.get_ref().escape_debug()),
                    "write a name such as etcd01.example.com or an alias of your ssh config (letters, digits, '.', '-', '_', ':'; not starting with '-')",
                ));
            }
        }
        if let Some(u) = &n.ssh_user {
            if !valid_user_name(u.get_ref()) {
                return Err(err(
                    u.span(),
                    format!(
                        "node {name}: ssh_user '{}' is not a login name",
                        u.get_ref().escape_debug()
                    ),
                    "write a user such as root or admin (lowercase letters, digits, '_', '-', '.')",
                ));
            }
        }
        let host = n
            .ssh_host
            .map_or_else(|| ip.to_string(), Spanned::into_inner);
        spans.push((n.name.span(), n.ip.span(), n.fqdn.span()));
        nodes.push(Node {
            name,
            fqdn: n.fqdn.into_inner(),
            ip,
            roles: n.roles.into_inner().into_iter().collect(),
            ssh: Ssh {
                user: n.ssh_user.map(Spanned::into_inner),
                port: n.ssh_port,
                host,
            },
        });
    }
    Ok(Inventory {
        source: path.to_path_buf(),
        cluster,
        loadbalancer,
        etcd,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[cluster]
name = "example"
domain = "example.com"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[[nodes]]
name = "etcd01"
fqdn = "etcd01.example.com"
ip = "192.168.0.1"
roles = ["etcd"]
"#;

    fn fails(text: &str) -> Located {
        match Inventory::parse(Path::new("inv.toml"), text) {
            Err(InventoryError::Invalid(l)) => l,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn loads_good() {
        let inv = Inventory::parse(Path::new("inv.toml"), GOOD).unwrap();
        assert_eq!(inv.nodes().len(), 1);
        assert_eq!(inv.cluster.kubernetes_service_ip().to_string(), "10.3.0.1");
        assert_eq!(inv.cluster.cluster_dns.to_string(), "10.3.0.10");
    }

    #[test]
    fn duplicate_ip_names_both_lines() {
        let t = format!("{GOOD}\n[[nodes]]\nname = \"etcd02\"\nfqdn = \"etcd02.example.com\"\nip = \"192.168.0.1\"\nroles = [\"etcd\"]\n");
        let e = fails(&t);
        assert_eq!(e.line, 18);
        assert!(
            e.message
                .contains("duplicate node ip 192.168.0.1 (already used by etcd01 on line 12)"),
            "{e}"
        );
    }

    #[test]
    fn bad_values() {
        let e = fails(&GOOD.replace("192.168.0.1", "192.168.0.300"));
        assert_eq!(e.line, 12);
        let e = fails(&GOOD.replace("[\"etcd\"]", "[\"etdc\"]"));
        assert!(e.message.contains("unknown variant"), "{e}");
        let e = fails(&GOOD.replace("roles", "rolez"));
        assert!(e.message.contains("unknown field"), "{e}");
        let e = fails(&GOOD.replace("10.3.0.0/24", "10.3.0.0/33"));
        assert_eq!(e.line, 5);
        let e = fails(&GOOD.replace("fqdn = \"etcd01.example.com\"\n", ""));
        assert!(e.message.contains("missing field `fqdn`"), "{e}");
    }
}
