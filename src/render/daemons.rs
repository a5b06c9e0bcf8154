//! One place per daemon: the settings by which each daemon kpki configures is told which
//! certificate, key, CA or config file to use, what it does with each (serve, dial,
//! trust, sign), which CA file a certificate must chain to, and which addresses a serving
//! certificate must cover; the systemd unit or static pod that runs it; and the files
//! kpki renders for it (template, install path, mode, on which nodes).
//!
//! Rendering takes its file list from here ([`super::FILES`] is these files in order),
//! and [`super::refs`] reads a node's configs through these declarations alone, so
//! `render --check` and the audit check every setting declared here: a daemon added here,
//! with its files and settings, is rendered and checked without a line elsewhere. Push and
//! rotation will take from the same table which unit to restart when a file changes.

use super::refs::{Component, Usage};
use super::{FileSpec, On, K8S};
use crate::inventory::Role;

macro_rules! spec {
    ($t:literal, $var:literal, $path:literal, $on:expr, $mode:literal, $pod:literal) => {
        FileSpec {
            template: $t,
            var: $var,
            path: $path,
            mode: $mode,
            on: $on,
            static_pod: $pod,
            builtin: include_str!(concat!("../../templates/", $t)),
        }
    };
}

const ETCD_FILES: &[FileSpec] = &[
    spec!(
        "etcd/options.env",
        "etcd_env",
        "/etc/etcd/options.env",
        On::Roles(&[Role::Etcd]),
        0o644,
        false
    ),
    spec!(
        "etcd/etcd.service",
        "etcd_unit",
        "/etc/systemd/system/etcd.service",
        On::Roles(&[Role::Etcd]),
        0o644,
        false
    ),
    spec!(
        "etcd/sysusers.conf",
        "etcd_sysusers",
        "/etc/sysusers.d/kpki-etcd.conf",
        On::Roles(&[Role::Etcd]),
        0o644,
        false
    ),
    spec!(
        "etcd/tmpfiles.conf",
        "etcd_tmpfiles",
        "/etc/tmpfiles.d/kpki-etcd.conf",
        On::Roles(&[Role::Etcd]),
        0o644,
        false
    ),
];

const FLANNELD_FILES: &[FileSpec] = &[
    spec!(
        "flanneld/options.env",
        "flanneld_env",
        "/etc/flanneld/options.env",
        On::Roles(K8S),
        0o644,
        false
    ),
    spec!(
        "cluster/put-network-config.sh",
        "flannel_put_node",
        "/usr/local/lib/kpki/put-flannel-network-config.sh",
        On::Roles(&[Role::Master]),
        0o755,
        false
    ),
    spec!(
        "flanneld/network-config.service",
        "flannel_network_unit",
        "/etc/systemd/system/kpki-flannel-network.service",
        On::Roles(&[Role::Master]),
        0o644,
        false
    ),
    spec!(
        "flanneld/flanneld.service",
        "flanneld_unit",
        "/etc/systemd/system/flanneld.service",
        On::Roles(K8S),
        0o644,
        false
    ),
    spec!(
        "cni/10-flannel.conflist",
        "cni_conf",
        "/etc/cni/net.d/10-flannel.conflist",
        On::Roles(K8S),
        0o644,
        false
    ),
    spec!(
        "cluster/network-config.json",
        "flannel_network",
        "/flannel/network-config.json",
        On::Cluster,
        0o644,
        false
    ),
    spec!(
        "cluster/put-network-config.sh",
        "flannel_put",
        "/flannel/put-network-config.sh",
        On::Cluster,
        0o755,
        false
    ),
];

const CONTAINERD_FILES: &[FileSpec] = &[
    spec!(
        "containerd/10-flannel.conf",
        "containerd_dropin",
        "/etc/systemd/system/containerd.service.d/10-flannel.conf",
        On::Roles(K8S),
        0o644,
        false
    ),
    spec!(
        "containerd/config.toml",
        "containerd_config",
        "/etc/containerd/config.toml",
        On::Roles(K8S),
        0o644,
        false
    ),
];

const KUBELET_FILES: &[FileSpec] = &[
    spec!(
        "kubelet/kubelet.kubeconfig",
        "kubelet_kubeconfig",
        "/etc/kubernetes/kubelet.kubeconfig",
        On::Roles(K8S),
        0o600,
        false
    ),
    spec!(
        "kubelet/kubelet-config.yaml",
        "kubelet_config",
        "/etc/kubernetes/kubelet-config.yaml",
        On::Roles(K8S),
        0o644,
        false
    ),
    spec!(
        "kubelet/kubelet.service",
        "kubelet_unit",
        "/etc/systemd/system/kubelet.service",
        On::Roles(K8S),
        0o644,
        false
    ),
];

const KUBE_PROXY_FILES: &[FileSpec] = &[
    spec!(
        "kube-proxy/kube-proxy.kubeconfig",
        "kube_proxy_kubeconfig",
        "/etc/kubernetes/kube-proxy.kubeconfig",
        On::Roles(K8S),
        0o600,
        false
    ),
    spec!(
        "kube-proxy/kube-proxy-config.yaml",
        "kube_proxy_config",
        "/etc/kubernetes/kube-proxy-config.yaml",
        On::Roles(K8S),
        0o644,
        false
    ),
    spec!(
        "kube-proxy/kube-proxy.service",
        "kube_proxy_unit",
        "/etc/systemd/system/kube-proxy.service",
        On::Roles(K8S),
        0o644,
        false
    ),
];

const KUBE_APISERVER_FILES: &[FileSpec] = &[spec!(
    "control-plane/kube-apiserver.yaml",
    "apiserver_manifest",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    On::Roles(&[Role::Master]),
    0o600,
    true
)];

const KUBE_CONTROLLER_MANAGER_FILES: &[FileSpec] = &[
    spec!(
        "control-plane/controller-manager.kubeconfig",
        "controller_manager_kubeconfig",
        "/etc/kubernetes/controller-manager.kubeconfig",
        On::Roles(&[Role::Master]),
        0o600,
        false
    ),
    spec!(
        "control-plane/kube-controller-manager.yaml",
        "controller_manager_manifest",
        "/etc/kubernetes/manifests/kube-controller-manager.yaml",
        On::Roles(&[Role::Master]),
        0o600,
        true
    ),
];

const KUBE_SCHEDULER_FILES: &[FileSpec] = &[
    spec!(
        "control-plane/scheduler.kubeconfig",
        "scheduler_kubeconfig",
        "/etc/kubernetes/scheduler.kubeconfig",
        On::Roles(&[Role::Master]),
        0o600,
        false
    ),
    spec!(
        "control-plane/kube-scheduler.yaml",
        "scheduler_manifest",
        "/etc/kubernetes/manifests/kube-scheduler.yaml",
        On::Roles(&[Role::Master]),
        0o600,
        true
    ),
];

const COREDNS_FILES: &[FileSpec] = &[spec!(
    "cluster/coredns.yaml",
    "coredns",
    "/coredns.yaml",
    On::Cluster,
    0o644,
    false
)];

const HAPROXY_FILES: &[FileSpec] = &[spec!(
    "loadbalancer/haproxy.cfg",
    "haproxy_cfg",
    "/etc/haproxy/haproxy.cfg",
    On::LoadBalancer,
    0o644,
    false
)];

const OPERATOR_FILES: &[FileSpec] = &[spec!(
    "cluster/admin.kubeconfig",
    "admin_kubeconfig",
    "/admin.kubeconfig",
    On::Cluster,
    0o600,
    false
)];

/// What a setting names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    Cert,
    Key,
    Ca,
    /// A public key file (the service-account verification keys).
    PublicKey,
    /// An EncryptionConfiguration (the keys that encrypt resources at rest).
    EncryptionConfig,
}

/// Where the names and addresses a serving certificate must carry come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hosts {
    None,
    /// Settings holding one address or name each (`--advertise-address`, `--node-ip`).
    Addresses(&'static [&'static str]),
    /// Settings holding comma-separated URLs (`ETCD_LISTEN_PEER_URLS`).
    Urls(&'static [&'static str]),
}

/// One file-naming setting of a daemon: a flag without its dashes (`tls-cert-file`), or
/// for a daemon with an environment prefix the variable (`ETCD_PEER_CERT_FILE`).
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub key: &'static str,
    pub names: Names,
    pub usage: Usage,
    /// Groups a certificate with its key (`serving`, `peer`, `etcd`, …).
    pub identity: &'static str,
    /// For a certificate: the setting naming the CA file it must chain to.
    pub chains_to: Option<&'static str>,
    pub hosts: Hosts,
    /// Another usage when a setting has a value: etcd's serving certificate is also
    /// dialed with by its own gateway once client certificate auth is on.
    pub usage_if: Option<(&'static str, &'static str, Usage)>,
}

/// A setting that names another config file, read on in its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    Kubeconfig,
    /// A KubeletConfiguration; its serving certificate must cover these settings' hosts.
    KubeletConfig(Hosts),
    /// A KubeProxyConfiguration (it names kube-proxy's kubeconfig).
    KubeProxyConfig,
}

/// How a daemon runs on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// A systemd unit.
    Unit(&'static str),
    /// A static pod under the kubelet's manifest directory (the kubelet restarts it when
    /// its manifest changes; a change of a file it reads needs its container restarted).
    StaticPod(&'static str),
    /// Objects the operator applies to the cluster (`kubectl apply -f`).
    Applied,
    /// Not run by kpki's files: the operator's own (the admin kubeconfig).
    Operator,
}

/// A daemon kpki configures.
#[derive(Clone, Copy, Debug)]
pub struct Daemon {
    pub component: Component,
    /// The executable's file name in a unit's `ExecStart` or a static pod's command.
    pub binary: &'static str,
    /// etcd and flanneld also read their settings from environment files (`ETCD_…`):
    /// the flag `--peer-cert-file` is the variable `ETCD_PEER_CERT_FILE`.
    pub env_prefix: Option<&'static str>,
    /// Environment files read even when no unit names them (as the guides install them).
    pub env_files: &'static [&'static str],
    pub settings: &'static [Setting],
    pub configs: &'static [(&'static str, ConfigFormat)],
    pub runs: Runs,
    /// The files kpki renders for it: template, install path, mode, on which nodes.
    pub files: &'static [FileSpec],
}

const fn s(
    key: &'static str,
    names: Names,
    usage: Usage,
    identity: &'static str,
    chains_to: Option<&'static str>,
    hosts: Hosts,
) -> Setting {
    Setting {
        key,
        names,
        usage,
        identity,
        chains_to,
        hosts,
        usage_if: None,
    }
}

use Names::{Ca, Cert, Key, PublicKey};

/// The kubeconfigs any daemon without environment files may be given, besides the
/// config files it declares.
pub const KUBECONFIGS: &[(&str, ConfigFormat)] = &[
    ("kubeconfig", ConfigFormat::Kubeconfig),
    ("authentication-kubeconfig", ConfigFormat::Kubeconfig),
    ("authorization-kubeconfig", ConfigFormat::Kubeconfig),
];

/// Every daemon kpki configures.
pub const DAEMONS: &[Daemon] = &[
    Daemon {
        component: Component::ETCD,
        binary: "etcd",
        env_prefix: Some("ETCD_"),
        env_files: &["/etc/etcd/options.env"],
        settings: &[
            s(
                "ETCD_PEER_CERT_FILE",
                Cert,
                Usage::ServerClient,
                "peer",
                Some("ETCD_PEER_TRUSTED_CA_FILE"),
                Hosts::Urls(&["ETCD_LISTEN_PEER_URLS", "ETCD_INITIAL_ADVERTISE_PEER_URLS"]),
            ),
            s(
                "ETCD_PEER_KEY_FILE",
                Key,
                Usage::ServerClient,
                "peer",
                None,
                Hosts::None,
            ),
            s(
                "ETCD_PEER_TRUSTED_CA_FILE",
                Ca,
                Usage::Trust,
                "peer",
                None,
                Hosts::None,
            ),
            Setting {
                usage_if: Some(("ETCD_CLIENT_CERT_AUTH", "true", Usage::ServerClient)),
                ..s(
                    "ETCD_CERT_FILE",
                    Cert,
                    Usage::Server,
                    "client",
                    Some("ETCD_TRUSTED_CA_FILE"),
                    Hosts::Urls(&["ETCD_LISTEN_CLIENT_URLS", "ETCD_ADVERTISE_CLIENT_URLS"]),
                )
            },
            Setting {
                usage_if: Some(("ETCD_CLIENT_CERT_AUTH", "true", Usage::ServerClient)),
                ..s(
                    "ETCD_KEY_FILE",
                    Key,
                    Usage::Server,
                    "client",
                    None,
                    Hosts::None,
                )
            },
            s(
                "ETCD_TRUSTED_CA_FILE",
                Ca,
                Usage::Trust,
                "client",
                None,
                Hosts::None,
            ),
        ],
        configs: &[],
        runs: Runs::Unit("etcd.service"),
        files: ETCD_FILES,
    },
    Daemon {
        component: Component::FLANNELD,
        binary: "flanneld",
        env_prefix: Some("FLANNELD_"),
        env_files: &["/etc/flanneld/options.env"],
        settings: &[
            s(
                "FLANNELD_ETCD_CERTFILE",
                Cert,
                Usage::Client,
                "etcd",
                Some("FLANNELD_ETCD_CAFILE"),
                Hosts::None,
            ),
            s(
                "FLANNELD_ETCD_KEYFILE",
                Key,
                Usage::Client,
                "etcd",
                None,
                Hosts::None,
            ),
            s(
                "FLANNELD_ETCD_CAFILE",
                Ca,
                Usage::Trust,
                "etcd",
                None,
                Hosts::None,
            ),
        ],
        configs: &[],
        runs: Runs::Unit("flanneld.service"),
        files: FLANNELD_FILES,
    },
    Daemon {
        component: Component::KUBELET,
        binary: "kubelet",
        env_prefix: None,
        env_files: &[],
        settings: &[
            s(
                "tls-cert-file",
                Cert,
                Usage::Server,
                "serving",
                Some("client-ca-file"),
                Hosts::Addresses(&["node-ip", "hostname-override"]),
            ),
            s(
                "tls-private-key-file",
                Key,
                Usage::Server,
                "serving",
                None,
                Hosts::None,
            ),
            s(
                "client-ca-file",
                Ca,
                Usage::Trust,
                "clients",
                None,
                Hosts::None,
            ),
        ],
        configs: &[(
            "config",
            ConfigFormat::KubeletConfig(Hosts::Addresses(&["node-ip", "hostname-override"])),
        )],
        runs: Runs::Unit("kubelet.service"),
        files: KUBELET_FILES,
    },
    Daemon {
        component: Component::KUBE_PROXY,
        binary: "kube-proxy",
        env_prefix: None,
        env_files: &[],
        settings: &[],
        configs: &[("config", ConfigFormat::KubeProxyConfig)],
        runs: Runs::Unit("kube-proxy.service"),
        files: KUBE_PROXY_FILES,
    },
    Daemon {
        component: Component::KUBE_APISERVER,
        binary: "kube-apiserver",
        env_prefix: None,
        env_files: &[],
        settings: &[
            s(
                "tls-cert-file",
                Cert,
                Usage::Server,
                "serving",
                Some("client-ca-file"),
                Hosts::Addresses(&["advertise-address", "bind-address"]),
            ),
            s(
                "tls-private-key-file",
                Key,
                Usage::Server,
                "serving",
                None,
                Hosts::None,
            ),
            s(
                "client-ca-file",
                Ca,
                Usage::Trust,
                "clients",
                None,
                Hosts::None,
            ),
            s(
                "etcd-certfile",
                Cert,
                Usage::Client,
                "etcd",
                Some("etcd-cafile"),
                Hosts::None,
            ),
            s(
                "etcd-keyfile",
                Key,
                Usage::Client,
                "etcd",
                None,
                Hosts::None,
            ),
            s("etcd-cafile", Ca, Usage::Trust, "etcd", None, Hosts::None),
            s(
                "kubelet-client-certificate",
                Cert,
                Usage::Client,
                "kubelet-client",
                Some("client-ca-file"),
                Hosts::None,
            ),
            s(
                "kubelet-client-key",
                Key,
                Usage::Client,
                "kubelet-client",
                None,
                Hosts::None,
            ),
            s(
                "kubelet-certificate-authority",
                Ca,
                Usage::Trust,
                "kubelets",
                None,
                Hosts::None,
            ),
            s(
                "proxy-client-cert-file",
                Cert,
                Usage::Client,
                "front-proxy",
                Some("requestheader-client-ca-file"),
                Hosts::None,
            ),
            s(
                "proxy-client-key-file",
                Key,
                Usage::Client,
                "front-proxy",
                None,
                Hosts::None,
            ),
            s(
                "requestheader-client-ca-file",
                Ca,
                Usage::Trust,
                "front-proxy",
                None,
                Hosts::None,
            ),
            s(
                "service-account-key-file",
                PublicKey,
                Usage::ServiceAccount,
                "service-account",
                None,
                Hosts::None,
            ),
            s(
                "service-account-signing-key-file",
                Key,
                Usage::ServiceAccount,
                "service-account",
                None,
                Hosts::None,
            ),
            s(
                "encryption-provider-config",
                Names::EncryptionConfig,
                Usage::Encryption,
                "encryption",
                None,
                Hosts::None,
            ),
        ],
        configs: &[],
        runs: Runs::StaticPod("kube-apiserver"),
        files: KUBE_APISERVER_FILES,
    },
    Daemon {
        component: Component::KUBE_CONTROLLER_MANAGER,
        binary: "kube-controller-manager",
        env_prefix: None,
        env_files: &[],
        settings: &[
            s(
                "service-account-private-key-file",
                Key,
                Usage::ServiceAccount,
                "service-account",
                None,
                Hosts::None,
            ),
            s(
                "root-ca-file",
                Ca,
                Usage::Trust,
                "root-ca",
                None,
                Hosts::None,
            ),
            s(
                "client-ca-file",
                Ca,
                Usage::SingleCa,
                "clients",
                None,
                Hosts::None,
            ),
            s(
                "requestheader-client-ca-file",
                Ca,
                Usage::Trust,
                "front-proxy",
                None,
                Hosts::None,
            ),
            s(
                "cluster-signing-cert-file",
                Cert,
                Usage::Signing,
                "cluster-signing",
                None,
                Hosts::None,
            ),
            s(
                "cluster-signing-key-file",
                Key,
                Usage::Signing,
                "cluster-signing",
                None,
                Hosts::None,
            ),
            s(
                "tls-cert-file",
                Cert,
                Usage::Server,
                "serving",
                None,
                Hosts::Addresses(&["bind-address"]),
            ),
            s(
                "tls-private-key-file",
                Key,
                Usage::Server,
                "serving",
                None,
                Hosts::None,
            ),
        ],
        configs: &[],
        runs: Runs::StaticPod("kube-controller-manager"),
        files: KUBE_CONTROLLER_MANAGER_FILES,
    },
    Daemon {
        component: Component::KUBE_SCHEDULER,
        binary: "kube-scheduler",
        env_prefix: None,
        env_files: &[],
        settings: &[
            s(
                "tls-cert-file",
                Cert,
                Usage::Server,
                "serving",
                None,
                Hosts::Addresses(&["bind-address"]),
            ),
            s(
                "tls-private-key-file",
                Key,
                Usage::Server,
                "serving",
                None,
                Hosts::None,
            ),
        ],
        configs: &[],
        runs: Runs::StaticPod("kube-scheduler"),
        files: KUBE_SCHEDULER_FILES,
    },
    files_only(
        Component("containerd"),
        "containerd",
        Runs::Unit("containerd.service"),
        CONTAINERD_FILES,
    ),
    files_only(
        Component("coredns"),
        "coredns",
        Runs::Applied,
        COREDNS_FILES,
    ),
    files_only(
        Component("haproxy"),
        "haproxy",
        Runs::Unit("haproxy.service"),
        HAPROXY_FILES,
    ),
    files_only(
        Component("kubectl"),
        "kubectl",
        Runs::Operator,
        OPERATOR_FILES,
    ),
];

/// A daemon whose files kpki renders but whose settings name no certificate or key.
const fn files_only(
    component: Component,
    binary: &'static str,
    runs: Runs,
    files: &'static [FileSpec],
) -> Daemon {
    Daemon {
        component,
        binary,
        env_prefix: None,
        env_files: &[],
        settings: &[],
        configs: &[],
        runs,
        files,
    }
}

/// The daemon a command runs, by the executable's file name.
pub fn by_binary<'a>(daemons: &'a [Daemon], cmd: &str) -> Option<&'a Daemon> {
    let base = cmd.rsplit('/').next().unwrap_or(cmd);
    daemons.iter().find(|d| d.binary == base)
}

/// A daemon's declaration by component.
pub fn of(daemons: &[Daemon], c: Component) -> Option<&Daemon> {
    daemons.iter().find(|d| d.component == c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_are_consistent_with_what_kpki_renders() {
        let mut claimed = Vec::new();
        for d in DAEMONS {
            assert!(
                by_binary(DAEMONS, d.binary).is_some_and(|x| x.component == d.component),
                "{}: one daemon per binary",
                d.binary
            );
            // Each file is declared once, by one daemon: `files.<var>` names one path.
            for f in d.files {
                assert!(!claimed.contains(&f.var), "files.{} declared twice", f.var);
                claimed.push(f.var);
            }
            let keys: Vec<&str> = d.settings.iter().map(|s| s.key).collect();
            for s in d.settings {
                if let Some(c) = s.chains_to {
                    assert!(
                        keys.contains(&c),
                        "{}: {} chains to undeclared {c}",
                        d.binary,
                        s.key
                    );
                }
                if let Some(p) = d.env_prefix {
                    assert!(s.key.starts_with(p), "{}: {} lacks {p}", d.binary, s.key);
                }
            }
        }
    }
}
