//! `--configs TREE`: the certificates, keys, CA files and embedded kubeconfig data that
//! a node's daemon configs reference, so monitoring audits exactly the paths the daemons
//! use and cannot drift from them.
//!
//! The configs are read by [`crate::render::refs`], the reader `kpki render --check`
//! uses (systemd units and drop-ins, static pods, kubeconfigs, the KubeletConfiguration,
//! etcd's and flanneld's `options.env`). TREE is one node's root (`/` on the node, or
//! `DIR/<node>` staged by `kpki apply`), or a staged tree holding one directory per node.
//! The CA files the configs name become trusted CAs, so every referenced certificate is
//! checked against the CAs its daemons actually use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{AuditError, Finding, FindingKind, Referenced, TrustedCa};
use crate::inventory::Inventory;
use crate::material::file::FileError;
use crate::render::refs::{self, ConfigProblem, RefKind};

/// One node root under the tree, and the inventory node it is, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRoot {
    pub root: PathBuf,
    pub node: Option<String>,
}

/// What the configs under a tree reference.
#[derive(Debug, Default)]
pub struct Configs {
    pub roots: Vec<NodeRoot>,
    /// Every referenced file (certificates, keys, CA files, public keys, and the configs
    /// holding embedded data), once each, with who references it.
    pub referenced: Vec<Referenced>,
    /// The CA files and embedded CAs the configs name.
    pub trusted: Vec<TrustedCa>,
    /// Configs that could not be read or parsed.
    pub findings: Vec<Finding>,
}

fn has_configs(dir: &Path) -> bool {
    dir.join("etc").is_dir() || dir.join("var").is_dir()
}

/// The node roots of a tree: the tree itself when it is one node's root (it has `etc/`),
/// else each directory in it (a staged cluster tree: `DIR/<node>`, `DIR/_cluster`).
fn node_roots(tree: &Path, inv: Option<&Inventory>) -> Vec<NodeRoot> {
    let node_of = |dir: &Path| -> Option<String> {
        let name = dir.file_name()?.to_str()?;
        inv?.node(name).map(|n| n.name.to_string())
    };
    if has_configs(tree) || tree == Path::new("/") {
        return vec![NodeRoot {
            root: tree.to_path_buf(),
            node: node_of(tree),
        }];
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tree)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|root| NodeRoot {
            node: node_of(&root),
            root,
        })
        .collect()
}

/// Reads the configs under `tree`. `node` names the node when `tree` is one node's root
/// whose name says nothing (such as `/`).
pub fn read(
    tree: &Path,
    node: Option<&str>,
    inv: Option<&Inventory>,
) -> Result<Configs, AuditError> {
    if !tree.is_dir() {
        return Err(AuditError::Configs {
            path: tree.to_path_buf(),
            reason: "it is not a directory".into(),
        });
    }
    let mut roots = node_roots(tree, inv);
    if let ([one], Some(n)) = (roots.as_mut_slice(), node) {
        one.node = Some(n.to_owned());
    }
    let mut out = Configs::default();
    let mut referenced: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut ca_files: Vec<PathBuf> = Vec::new();
    for r in &roots {
        let scan = refs::scan(&r.root);
        let label = |config: &Path| match &r.node {
            Some(n) => format!("{n}:{}", config.display()),
            None => config.display().to_string(),
        };
        for (config, problem) in scan.problems {
            let path = refs::resolve(&r.root, &config);
            out.findings.push(match problem {
                ConfigProblem::File(e @ FileError::TooLarge { .. }) => {
                    Finding::new(Some(&path), FindingKind::TooLarge, e.to_string())
                }
                ConfigProblem::File(e) => {
                    Finding::new(Some(&path), FindingKind::Unreadable, e.to_string())
                }
                ConfigProblem::Parse(m) => Finding::new(
                    Some(&path),
                    FindingKind::Unparsable,
                    format!("cannot read this config: {m}"),
                ),
            });
        }
        for reference in scan.references {
            // Keys that encrypt Secrets, not certificates: the audit never reads them
            // (`render --check` checks the file).
            if reference.kind == RefKind::EncryptionConfig {
                continue;
            }
            let file = refs::resolve(&r.root, &reference.path);
            let by = format!("{} ({})", label(&reference.config), reference.key);
            match &reference.kind {
                RefKind::Ca => ca_files.push(file.clone()),
                RefKind::EmbeddedCa(pem) => {
                    if let Ok(cas) = TrustedCa::parse(pem.as_bytes(), &file, None) {
                        out.trusted.extend(cas);
                    }
                }
                _ => {}
            }
            referenced.entry(file).or_insert(by);
        }
    }
    ca_files.sort();
    ca_files.dedup();
    for f in ca_files {
        // A missing or broken CA file is reported by the audit of the file itself.
        if let Ok(cas) = TrustedCa::load(&f, None) {
            out.trusted.extend(cas);
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.trusted.retain(|t| seen.insert(t.fingerprint));
    if referenced.is_empty() && out.findings.is_empty() {
        return Err(AuditError::Configs {
            path: tree.to_path_buf(),
            reason: "no etcd, flanneld, kubelet, kube-proxy or control-plane config there references a certificate".into(),
        });
    }
    out.referenced = referenced
        .into_iter()
        .map(|(path, by)| Referenced { path, by })
        .collect();
    out.roots = roots;
    Ok(out)
}
