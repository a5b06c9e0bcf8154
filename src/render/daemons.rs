//! One place per daemon: the settings by which each daemon kpki configures is told which
//! certificate, key, CA or config file to use, what it does with each (serve, dial,
//! trust, sign), which CA file a certificate must chain to, and which addresses a serving
//! certificate must cover; the systemd unit or static pod that runs it; the templates
//! kpki renders for it.
//!
//! [`super::refs`] reads a node's configs through these declarations alone, so
//! `render --check` and the audit check every setting declared here, and a daemon added
//! here is checked without another line elsewhere. Push and rotation will take from the
//! same table which unit to restart when a file changes.

use super::refs::{Component, Usage};

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
    /// The templates kpki renders for it (`templates/…`).
    pub templates: &'static [&'static str],
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
        templates: &[
            "etcd/options.env",
            "etcd/etcd.service",
            "etcd/sysusers.conf",
            "etcd/tmpfiles.conf",
        ],
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
        templates: &[
            "flanneld/options.env",
            "flanneld/flanneld.service",
            "flanneld/network-config.service",
            "cluster/put-network-config.sh",
            "cluster/network-config.json",
            "cni/10-flannel.conflist",
        ],
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
        templates: &[
            "kubelet/kubelet.kubeconfig",
            "kubelet/kubelet-config.yaml",
            "kubelet/kubelet.service",
            "containerd/config.toml",
            "containerd/10-flannel.conf",
        ],
    },
    Daemon {
        component: Component::KUBE_PROXY,
        binary: "kube-proxy",
        env_prefix: None,
        env_files: &[],
        settings: &[],
        configs: &[("config", ConfigFormat::KubeProxyConfig)],
        runs: Runs::Unit("kube-proxy.service"),
        templates: &[
            "kube-proxy/kube-proxy.kubeconfig",
            "kube-proxy/kube-proxy-config.yaml",
            "kube-proxy/kube-proxy.service",
        ],
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
        templates: &["control-plane/kube-apiserver.yaml"],
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
        templates: &[
            "control-plane/kube-controller-manager.yaml",
            "control-plane/controller-manager.kubeconfig",
        ],
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
        templates: &[
            "control-plane/kube-scheduler.yaml",
            "control-plane/scheduler.kubeconfig",
        ],
    },
];

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
        let files: Vec<&str> = crate::render::FILES.iter().map(|f| f.template).collect();
        let mut claimed = Vec::new();
        for d in DAEMONS {
            assert!(
                by_binary(DAEMONS, d.binary).is_some_and(|x| x.component == d.component),
                "{}: one daemon per binary",
                d.binary
            );
            for t in d.templates {
                assert!(
                    files.contains(t),
                    "{t} ({}) is not a rendered template",
                    d.binary
                );
                assert!(!claimed.contains(t), "{t} claimed twice");
                claimed.push(*t);
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
