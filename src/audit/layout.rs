//! Where kpki's files live, so the audit can say which node and profile a certificate is
//! for, and which expected files are missing.
//!
//! Three layouts hold kpki's certificates:
//!
//! * the store: `<store>/issued/<profile>/<target>/cert.pem`, `<store>/ca/<name>/ca.crt`;
//! * a node's file system, or one node's part of a staged tree: every profile's install
//!   path under a root (`/` on the node, `DIR/<node>` in a tree from `kpki apply`);
//! * `kpki issue --out OUT`: each node's files flat in `OUT/<node>/`.
//!
//! The profiles' install paths are the only source of these paths, so the audit cannot
//! drift from what `issue`, `render` and `apply` write.

use std::path::{Component, Path, PathBuf};

use crate::encryption::Provider;
use crate::inventory::Inventory;
use crate::pki::San;
use crate::plan::{self, Overrides, PlanError, Selector, Target};
use crate::profile::{Body, Eku, KeyKind, Profile, Profiles, Scope};
use crate::store::Store;

/// A set of kpki files the audit recognises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A kpki store.
    Store { dir: PathBuf },
    /// One node's files at their install paths under `root`.
    Node { root: PathBuf, node: String },
    /// One node's files flat in `dir`, as `kpki issue --out` exports them.
    Flat { dir: PathBuf, node: String },
}

/// A file that should exist, and what it should hold.
#[derive(Clone, Debug)]
pub struct Expected {
    pub path: PathBuf,
    pub node: Option<String>,
    /// The profile that installs it; `None` for a CA certificate that several share.
    pub profile: Option<String>,
    pub file: ExpectedFile,
}

#[derive(Clone, Debug)]
pub enum ExpectedFile {
    /// A certificate with the profile's CN, SANs and usages, signed by the named store
    /// CA (when the store is known), with its private key at `key` (when installed).
    Cert {
        cn: String,
        sans: Vec<San>,
        ext_key_usage: Vec<Eku>,
        ca: Option<String>,
        key: Option<PathBuf>,
    },
    /// A private key.
    Key,
    /// A CA file holding the store's CA of this name (when the store is known).
    Ca { ca: Option<String> },
    /// A file that must exist but is not a certificate (an encrypted key, a public key, a
    /// config holding a secret).
    Present,
}

/// The layouts a path holds: a store, a staged tree's node directories, one node's
/// directory. A directory named after a node, or holding directories named after nodes,
/// is taken as staged files (install paths when it has any, else flat).
pub fn detect(path: &Path, inv: Option<&Inventory>, profiles: &Profiles) -> Vec<Layout> {
    if Store::exists(path) {
        return vec![Layout::Store {
            dir: path.to_path_buf(),
        }];
    }
    let Some(inv) = inv else { return vec![] };
    let node_dir = |dir: &Path, node: &str| -> Layout {
        let installed = profiles.iter().any(|p| {
            install_paths(p)
                .iter()
                .any(|ip| under(dir, ip).parent().is_some_and(Path::is_dir))
        });
        if installed {
            Layout::Node {
                root: dir.to_path_buf(),
                node: node.to_owned(),
            }
        } else {
            Layout::Flat {
                dir: dir.to_path_buf(),
                node: node.to_owned(),
            }
        }
    };
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        if inv.node(name).is_some() && path.is_dir() {
            return vec![node_dir(path, name)];
        }
    }
    inv.nodes()
        .iter()
        .filter(|n| path.join(n.name.as_str()).is_dir())
        .map(|n| node_dir(&path.join(n.name.as_str()), n.name.as_str()))
        .collect()
}

fn install_paths(p: &Profile) -> Vec<&str> {
    let mut v: Vec<&str> = p.key_file.iter().map(|k| k.path.as_str()).collect();
    match &p.body {
        Body::Certificate(c) => {
            v.push(&c.cert.path);
            v.push(&c.ca_file.path);
        }
        Body::KeyPair { public } => v.push(&public.path),
        Body::Secret { config } => v.push(&config.path),
    }
    v
}

/// The directories the profiles install into, for auditing a node without arguments.
pub fn install_dirs(profiles: &Profiles) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = profiles
        .iter()
        .flat_map(install_paths)
        .filter_map(|p| Path::new(p).parent().map(Path::to_path_buf))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// An absolute install path under a root: `under("/srv/t/etcd01", "/etc/ssl/etcd/ca.crt")`.
pub fn under(root: &Path, install: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in Path::new(install).components() {
        if let Component::Normal(c) = c {
            p.push(c);
        }
    }
    p
}

/// What the layouts call for, from the inventory and the profiles. With the store, CA
/// names are known and certificates are checked against the right CA. `now` only dates
/// a migration, should a store of kpki 0.1 be opened.
pub fn expectations(
    layouts: &[Layout],
    inv: &Inventory,
    profiles: &Profiles,
    store: Option<&Store>,
    now: time::OffsetDateTime,
) -> Result<Vec<Expected>, PlanError> {
    let mut out: Vec<Expected> = Vec::new();
    let ca_name = |p: &Profile| -> Option<String> {
        let spec = p.cert_spec()?;
        store.map(|s| s.ca_name(spec.ca).to_owned())
    };
    for layout in layouts {
        match layout {
            Layout::Store { dir } => {
                let here = Store::open(dir, now).ok();
                let here = here.as_ref().or(store);
                for plan in plan::plan_cluster(profiles, inv, &Overrides::default())? {
                    let target = plan.target.key();
                    // The current generation's files; a missing issuance is named by its
                    // directory.
                    let base = match here.map(|s| s.current(&plan.profile, &target)) {
                        Some(Ok(Some(g))) => g.dir,
                        _ => dir.join("issued").join(&plan.profile).join(&target),
                    };
                    let node = plan.target.node().map(|n| n.to_string());
                    let profile = Some(plan.profile.clone());
                    // A secret: its sealed key alone (the one it holds, whatever the
                    // provider; the planner names a provider change).
                    if let KeyKind::Secret(want) = plan.key {
                        let provider = Provider::ALL
                            .into_iter()
                            .find(|p| base.join(p.file_name()).is_file())
                            .unwrap_or(want);
                        out.push(Expected {
                            path: base.join(provider.file_name()),
                            node,
                            profile,
                            file: ExpectedFile::Present,
                        });
                        continue;
                    }
                    match &plan.cert {
                        Some(c) => out.push(Expected {
                            path: base.join("cert.pem"),
                            node: node.clone(),
                            profile: profile.clone(),
                            file: ExpectedFile::Cert {
                                cn: c.cn.clone(),
                                sans: c.sans.clone(),
                                ext_key_usage: c.ext_key_usage.clone(),
                                ca: here.map(|s| s.ca_name(c.ca).to_owned()),
                                key: None,
                            },
                        }),
                        None => out.push(Expected {
                            path: base.join("public.pem"),
                            node: node.clone(),
                            profile: profile.clone(),
                            file: ExpectedFile::Present,
                        }),
                    }
                    // A certificate signed from a CSR has its key on the node.
                    let csr_signed =
                        base.join("cert.pem").is_file() && !base.join("key.pem.age").exists();
                    if !csr_signed {
                        out.push(Expected {
                            path: base.join("key.pem.age"),
                            node,
                            profile,
                            file: ExpectedFile::Present,
                        });
                    }
                }
                if let Some(s) = here {
                    for (c, label) in s.trusted_cas() {
                        out.push(Expected {
                            path: c.cert_path,
                            node: None,
                            profile: None,
                            file: ExpectedFile::Ca { ca: Some(label) },
                        });
                    }
                }
            }
            Layout::Node { root, node } | Layout::Flat { dir: root, node } => {
                let flat = matches!(layout, Layout::Flat { .. });
                let Some(n) = inv.node(node) else { continue };
                let place = |install: &str| -> PathBuf {
                    if flat {
                        root.join(Path::new(install).file_name().unwrap_or_default())
                    } else {
                        under(root, install)
                    }
                };
                // Keys a staged tree's manifest lists as `on-node` (signed from the
                // node's CSR) are on the node, not in the tree: not expected here.
                let on_node = if flat {
                    vec![]
                } else {
                    crate::stage::on_node_paths(root)
                };
                for p in profiles.iter().filter(|p| p.applies_to(&n.roles)) {
                    let plans = match p.scope {
                        Scope::Node => plan::plan_profile(
                            p,
                            inv,
                            &Selector::Node(node.clone()),
                            &Overrides::default(),
                        )?,
                        // `issue --out` puts cluster-wide files under OUT/cluster/.
                        Scope::Cluster if flat => continue,
                        Scope::Cluster => {
                            plan::plan_profile(p, inv, &Selector::All, &Overrides::default())?
                        }
                    };
                    for plan in plans {
                        debug_assert!(matches!(plan.target, Target::Node(_) | Target::Cluster));
                        let key = p
                            .key_file
                            .as_ref()
                            .filter(|k| !on_node.contains(&k.path))
                            .map(|k| place(&k.path));
                        if let Some(key) = &key {
                            out.push(Expected {
                                path: key.clone(),
                                node: Some(node.clone()),
                                profile: Some(p.name.clone()),
                                file: ExpectedFile::Key,
                            });
                        }
                        match (&p.body, &plan.cert) {
                            (Body::Certificate(spec), Some(c)) => {
                                out.push(Expected {
                                    path: place(&spec.cert.path),
                                    node: Some(node.clone()),
                                    profile: Some(p.name.clone()),
                                    file: ExpectedFile::Cert {
                                        cn: c.cn.clone(),
                                        sans: c.sans.clone(),
                                        ext_key_usage: c.ext_key_usage.clone(),
                                        ca: ca_name(p),
                                        key,
                                    },
                                });
                                out.push(Expected {
                                    path: place(&spec.ca_file.path),
                                    node: Some(node.clone()),
                                    profile: None,
                                    file: ExpectedFile::Ca { ca: ca_name(p) },
                                });
                            }
                            (Body::KeyPair { public }, _) => out.push(Expected {
                                path: place(&public.path),
                                node: Some(node.clone()),
                                profile: Some(p.name.clone()),
                                file: ExpectedFile::Present,
                            }),
                            (Body::Secret { config }, _) => out.push(Expected {
                                path: place(&config.path),
                                node: Some(node.clone()),
                                profile: Some(p.name.clone()),
                                file: ExpectedFile::Present,
                            }),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    // One expectation per path: CA files are shared by several profiles.
    let mut seen = std::collections::HashSet::new();
    out.retain(|e| seen.insert(e.path.clone()));
    Ok(out)
}

/// The profile and node of a store file, from its path alone
/// (`…/issued/<profile>/<target>/<generation>/cert.pem`); used when there is no inventory.
pub fn store_labels(path: &Path) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let n = parts.len();
    if n >= 5 && parts[n - 5] == "issued" && parts[n - 2].parse::<u64>().is_ok() {
        let target = parts[n - 3];
        let node = (target != "cluster" && !target.starts_with("cn-")).then(|| target.to_owned());
        return Some((parts[n - 4].to_owned(), node));
    }
    None
}

/// What the audit reads of a store: the current generation of every issuance and every
/// trusted CA. Earlier generations are history, not installed anywhere: their expiry is
/// nobody's outage.
pub fn store_live_paths(store: &Store) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for (p, t) in store.issuances().unwrap_or_default() {
        if let Ok(Some(g)) = store.current(&p, &t) {
            v.push(g.dir);
        }
    }
    v.extend(store.trusted_cas().into_iter().map(|(c, _)| c.cert_path));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_paths_go_under_a_root() {
        assert_eq!(
            under(Path::new("/t/etcd01"), "/etc/ssl/etcd/ca.crt"),
            PathBuf::from("/t/etcd01/etc/ssl/etcd/ca.crt")
        );
        assert_eq!(
            under(Path::new("/"), "/etc/ssl/etcd/ca.crt"),
            PathBuf::from("/etc/ssl/etcd/ca.crt")
        );
    }

    #[test]
    fn store_paths_name_profile_and_node() {
        assert_eq!(
            store_labels(Path::new("pki/issued/etcd-peer/etcd01/3/cert.pem")),
            Some(("etcd-peer".into(), Some("etcd01".into())))
        );
        assert_eq!(
            store_labels(Path::new("pki/issued/admin/cluster/1/cert.pem")),
            Some(("admin".into(), None))
        );
        assert_eq!(store_labels(Path::new("/etc/ssl/etcd/etcd.crt")), None);
    }

    #[test]
    fn node_expectations_follow_the_profiles() {
        let inv = Inventory::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/ha-cluster.toml"
        )))
        .unwrap();
        let profiles = Profiles::builtin();
        let e = expectations(
            &[Layout::Node {
                root: "/".into(),
                node: "etcd01".into(),
            }],
            &inv,
            &profiles,
            None,
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let paths: Vec<String> = e.iter().map(|e| e.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/etc/ssl/etcd/etcd.key",
                "/etc/ssl/etcd/etcd.crt",
                "/etc/ssl/etcd/ca.crt"
            ]
        );
        let ExpectedFile::Cert { sans, .. } = &e[1].file else {
            panic!("a certificate")
        };
        assert!(sans.contains(&San::parse("192.168.0.1").unwrap()));
    }
}
