//! The values a template can name. Every name is listed here, in one place:
//!
//! | name | value |
//! |---|---|
//! | `cluster.{name,domain,cluster_domain,service_cidr,pod_cidr,dns,kubernetes_ip,resolv_conf}` | from the inventory |
//! | `flannel.{prefix,config_key,config_key_sh,subnet_len,backend,backend_json,subnet_file,network_json_sh}` | flannel settings; `*_sh` are quoted for sh |
//! | `node.{name,fqdn,ip}`, `node.{etcd,master,worker}` (yes/no) | the node being rendered |
//! | `etcd.{endpoints,initial_cluster,token,data_dir,state_directory,peer_url,client_url,listen_client_urls,peer_cn,heartbeat_interval,election_timeout,wal_dir,has_wal_dir}`, `etcd.members[]` | etcd cluster; `peer_cn` is the etcd-peer profile's CN, the one etcd allows on its peer port |
//! | `apiserver.{url,local_url,port,count}`, `masters[]` (`name`, `fqdn`, `ip`) | control plane |
//! | `lb.{fqdn,ip}` | the load balancer, when the inventory has one |
//! | `pki.<profile>.{cert,key,ca}`, `.{key,public}` or `.config` | install paths, from each profile (`.config`: a secret's, such as the EncryptionConfiguration) |
//! | `single_ca.{client_ca,signing_cert,signing_key}`, `cluster_signing` | kube-controller-manager's single-CA files |
//! | `files.<var>` | install path of each rendered file ([`super::FILES`]) |
//! | `front_proxy.cn`, `admin.{user,embed,ca_data,cert_data,key_data}` | from profiles / the store |
//! | `kubernetes.{version,image_repository}`, `kubelet.static_pod_path`, `bin` | install choices |
//! | `mounts[]` (`name`, `path`) | static pods only: host directories of the files they name |

use std::net::IpAddr;

use base64::Engine;

use super::template::{s, scope, Scope, Value};
use super::{single_ca_files, Options, RenderError, FILES};
use crate::inventory::{Inventory, Node, Role};
use crate::profile::{Body, Profiles};

/// The Kubernetes release the static pod manifests run; a user template may pin another.
pub const KUBERNETES_VERSION: &str = "v1.34.2";
/// Where the daemons' binaries are installed (release tarballs, as in the guides).
const BIN: &str = "/usr/local/bin";
const ETCD_PEER_PORT: u16 = 2380;
const ETCD_CLIENT_PORT: u16 = 2379;
const APISERVER_PORT: u16 = 443;
const FLANNEL_SUBNET_FILE: &str = "/run/flannel/subnet.env";

fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}:{port}"),
        IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
    }
}

/// Quotes a word for POSIX sh.
fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Values shared by every tree.
pub(super) struct Base {
    scope: Scope,
}

impl Base {
    pub(super) fn new(
        inv: &Inventory,
        profiles: &Profiles,
        opts: &Options,
    ) -> Result<Base, RenderError> {
        let c = &inv.cluster;
        let etcd: Vec<&Node> = inv.with_role(Role::Etcd).collect();
        let masters: Vec<&Node> = inv.with_role(Role::Master).collect();
        let k8s = inv
            .nodes()
            .iter()
            .any(|n| n.has_role(Role::Master) || n.has_role(Role::Worker));
        if k8s && etcd.is_empty() {
            return Err(RenderError::NoEtcd);
        }
        let apiserver_url = match (&inv.loadbalancer, masters.first()) {
            (Some(lb), _) => format!("https://{}:{APISERVER_PORT}", lb.fqdn),
            (None, Some(m)) => format!("https://{}:{APISERVER_PORT}", m.fqdn),
            (None, None) if k8s => return Err(RenderError::NoApiserver),
            (None, None) => String::new(),
        };
        // flannel's backend, with the inventory's VXLAN options: one JSON object for the
        // network-config.json file and the etcdctl command that stores it.
        let mut backend = format!("{{\"Type\":\"{}\"", c.flannel_backend);
        if let Some(v) = &c.flannel_vxlan {
            if let Some(vni) = v.vni {
                backend.push_str(&format!(",\"VNI\":{vni}"));
            }
            if let Some(port) = v.port {
                backend.push_str(&format!(",\"Port\":{port}"));
            }
            if let Some(d) = v.direct_routing {
                backend.push_str(&format!(",\"DirectRouting\":{d}"));
            }
        }
        backend.push('}');
        let network_json = format!(
            "{{\"Network\":\"{}\",\"SubnetLen\":{},\"Backend\":{backend}}}",
            c.pod_cidr, c.flannel_subnet_len
        );
        let e = &inv.etcd;
        let config_key = format!("{}/config", c.flannel_etcd_prefix.trim_end_matches('/'));

        let mut pki = Scope::new();
        for p in profiles.iter() {
            let mut m: Vec<(&str, Value)> =
                p.key_file.iter().map(|k| ("key", s(&k.path))).collect();
            match &p.body {
                Body::Certificate(c) => {
                    m.push(("cert", s(&c.cert.path)));
                    m.push(("ca", s(&c.ca_file.path)));
                }
                Body::KeyPair { public } => m.push(("public", s(&public.path))),
                Body::Secret { config } => m.push(("config", s(&config.path))),
            }
            pki.insert(p.name.clone(), map(m));
        }
        let single = single_ca_files(profiles)?;
        let files: Scope = FILES
            .iter()
            .map(|f| (f.var.to_owned(), s(f.path)))
            .collect();
        let static_pod_dir = FILES
            .iter()
            .find(|f| f.var == "apiserver_manifest")
            .and_then(|f| f.path.rsplit_once('/'))
            .map_or("", |(d, _)| d);

        let cn_of = |profile: &str| -> Option<String> {
            profiles
                .get(profile)
                .ok()
                .and_then(|p| p.cert_spec())
                .and_then(|c| c.cn.expand(inv, None).into_iter().next())
        };
        // etcd allows one CN on its peer port: every member's certificate must carry it.
        let peer_cn = match profiles.get("etcd-peer").ok().and_then(|p| p.cert_spec()) {
            Some(spec) if spec.cn.needs_node() => {
                return Err(RenderError::PeerCnPerNode(spec.cn.to_string()))
            }
            Some(_) => cn_of("etcd-peer").unwrap_or_default(),
            None => String::new(),
        };
        // It is written into an environment file: a name, nothing that could end the line
        // or start another setting.
        if !peer_cn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
        {
            return Err(RenderError::UnsafeValue {
                what: "profile etcd-peer's CN".into(),
                value: peer_cn,
            });
        }
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v.as_bytes());
        let admin = match &opts.admin {
            Some(a) => vec![
                ("embed", Value::Bool(true)),
                ("ca_data", s(b64(&a.ca_pem))),
                ("cert_data", s(b64(&a.cert_pem))),
                ("key_data", s(b64(&a.key_pem))),
            ],
            None => vec![("embed", Value::Bool(false))],
        };
        let mut admin = admin;
        admin.push(("user", s(cn_of("admin").unwrap_or_else(|| "admin".into()))));

        let mut scope = scope([
            (
                "cluster",
                map(vec![
                    ("name", s(&c.name)),
                    ("domain", s(&c.domain)),
                    ("cluster_domain", s(&c.cluster_domain)),
                    ("service_cidr", s(c.service_cidr)),
                    ("pod_cidr", s(c.pod_cidr)),
                    ("dns", s(c.cluster_dns)),
                    ("resolv_conf", s(&c.resolv_conf)),
                    ("kubernetes_ip", s(c.kubernetes_service_ip())),
                ]),
            ),
            (
                "flannel",
                map(vec![
                    ("prefix", s(&c.flannel_etcd_prefix)),
                    ("config_key", s(&config_key)),
                    ("config_key_sh", s(sh_quote(&config_key))),
                    ("subnet_len", s(c.flannel_subnet_len)),
                    ("backend", s(&c.flannel_backend)),
                    ("backend_json", s(&backend)),
                    ("subnet_file", s(FLANNEL_SUBNET_FILE)),
                    ("network_json_sh", s(sh_quote(&network_json))),
                ]),
            ),
            (
                "etcd",
                map(vec![
                    (
                        "endpoints",
                        s(etcd
                            .iter()
                            .map(|n| url(n.ip, ETCD_CLIENT_PORT))
                            .collect::<Vec<_>>()
                            .join(",")),
                    ),
                    (
                        "initial_cluster",
                        s(etcd
                            .iter()
                            .map(|n| format!("{}={}", n.name, url(n.ip, ETCD_PEER_PORT)))
                            .collect::<Vec<_>>()
                            .join(",")),
                    ),
                    ("token", s(format!("{}-etcd", c.name))),
                    ("peer_cn", s(peer_cn)),
                    // Written always, upstream's defaults unless the inventory says.
                    (
                        "heartbeat_interval",
                        s(e.heartbeat_interval_ms.unwrap_or(100)),
                    ),
                    ("election_timeout", s(e.election_timeout_ms.unwrap_or(1000))),
                    ("wal_dir", s(e.wal_dir.as_deref().unwrap_or(""))),
                    ("has_wal_dir", Value::Bool(e.wal_dir.is_some())),
                    ("data_dir", s("/var/lib/etcd")),
                    ("state_directory", s("etcd")),
                    (
                        "members",
                        Value::List(
                            etcd.iter()
                                .map(|n| {
                                    scope([
                                        ("name", s(&n.name)),
                                        ("fqdn", s(&n.fqdn)),
                                        ("ip", s(n.ip)),
                                        ("peer_url", s(url(n.ip, ETCD_PEER_PORT))),
                                        ("client_url", s(url(n.ip, ETCD_CLIENT_PORT))),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ]),
            ),
            (
                "apiserver",
                map(vec![
                    ("url", s(apiserver_url)),
                    (
                        "local_url",
                        s(url(IpAddr::from([127, 0, 0, 1]), APISERVER_PORT)),
                    ),
                    ("port", s(APISERVER_PORT)),
                    ("count", s(masters.len().max(1))),
                ]),
            ),
            (
                "masters",
                Value::List(
                    masters
                        .iter()
                        .map(|n| {
                            scope([("name", s(&n.name)), ("fqdn", s(&n.fqdn)), ("ip", s(n.ip))])
                        })
                        .collect(),
                ),
            ),
            ("pki", Value::Map(pki)),
            (
                "single_ca",
                map(vec![
                    ("client_ca", s(&single.client_ca.path)),
                    ("signing_cert", s(&single.signing_cert.path)),
                    ("signing_key", s(&single.signing_key.path)),
                ]),
            ),
            ("cluster_signing", Value::Bool(opts.cluster_signing)),
            ("files", Value::Map(files)),
            (
                "front_proxy",
                map(vec![(
                    "cn",
                    s(cn_of("front-proxy-client").unwrap_or_else(|| "front-proxy-client".into())),
                )]),
            ),
            ("admin", map(admin)),
            (
                "kubernetes",
                map(vec![
                    ("version", s(KUBERNETES_VERSION)),
                    ("image_repository", s("registry.k8s.io")),
                ]),
            ),
            ("kubelet", map(vec![("static_pod_path", s(static_pod_dir))])),
            ("bin", s(BIN)),
        ]);
        if let Some(lb) = &inv.loadbalancer {
            scope.insert(
                "lb".into(),
                map(vec![("fqdn", s(&lb.fqdn)), ("ip", s(lb.ip))]),
            );
        }
        Ok(Base { scope })
    }

    /// The context of one node.
    pub(super) fn node_scope(
        &self,
        _inv: &Inventory,
        _profiles: &Profiles,
        node: &Node,
    ) -> Result<Scope, RenderError> {
        let mut ctx = self.scope.clone();
        ctx.insert(
            "node".into(),
            map(vec![
                ("name", s(&node.name)),
                ("fqdn", s(&node.fqdn)),
                ("ip", s(node.ip)),
                ("etcd", Value::Bool(node.has_role(Role::Etcd))),
                ("master", Value::Bool(node.has_role(Role::Master))),
                ("worker", Value::Bool(node.has_role(Role::Worker))),
            ]),
        );
        // The node's own etcd URLs. etcdctl on the node dials 127.0.0.1, so a member also
        // listens there, unless its own address is a loopback one (then 127.0.0.1 may be
        // another member's, as on a test machine).
        let mut listen = vec![url(node.ip, ETCD_CLIENT_PORT)];
        if !node.ip.is_loopback() {
            listen.push(url(IpAddr::from([127, 0, 0, 1]), ETCD_CLIENT_PORT));
        }
        if let Some(Value::Map(e)) = ctx.get_mut("etcd") {
            e.insert("peer_url".into(), s(url(node.ip, ETCD_PEER_PORT)));
            e.insert("client_url".into(), s(url(node.ip, ETCD_CLIENT_PORT)));
            e.insert("listen_client_urls".into(), s(listen.join(",")));
        }
        Ok(ctx)
    }

    /// The context of the cluster and load balancer trees (no `node`).
    pub(super) fn cluster_scope(
        &self,
        _inv: &Inventory,
        _profiles: &Profiles,
    ) -> Result<Scope, RenderError> {
        Ok(self.scope.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_urls() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(
            url("fd00::1".parse().unwrap(), 2379),
            "https://[fd00::1]:2379"
        );
    }
}
