//! `--configs TREE`: the certificates, keys, CA files and embedded kubeconfig data that
//! a node's daemon configs reference, so monitoring audits exactly the paths the daemons
//! use and cannot drift from them.
//!
//! The configs are read by [`crate::render::refs`], the reader `kpki render --check`
//! uses (systemd units and drop-ins, static pods, kubeconfigs, the KubeletConfiguration,
//! etcd's and flanneld's `options.env`), and what they reference is judged by its
//! verifier ([`crate::render::check::verify`]): the audit reports the same problems as
//! `render --check`, each naming the configs and keys. TREE is one node's root (`/` on the node, or
//! `DIR/<node>` staged by `kpki apply`), or a staged tree holding one directory per node.
//! The CA files the configs name become trusted CAs, so every referenced certificate is
//! checked against the CAs its daemons actually use.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{AuditError, Finding, FindingKind, Referenced, TrustedCa};
use crate::inventory::Inventory;
use crate::render::check;
use crate::render::refs::{self, RefKind};
use crate::render::tree::DiskTree;

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
    /// What the verifier found (the findings `render --check` makes), on disk.
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

/// The verifier's findings about one node root, on disk: paths under the root, and
/// the configs and keys that name each file in the message. Findings about the same file
/// with the same problem (a file several settings name) become one, naming them all.
fn on_disk(found: Vec<Finding>, root: &NodeRoot) -> Vec<Finding> {
    let label = |config: &Path| match &root.node {
        Some(n) => format!("{n}:{}", config.display()),
        None => config.display().to_string(),
    };
    let mut merged: BTreeMap<(PathBuf, FindingKind, String), Finding> = BTreeMap::new();
    for f in found {
        let path = refs::resolve(&root.root, f.path.as_deref().unwrap_or(Path::new("/")));
        match merged.entry((path, f.kind, f.message.clone())) {
            Entry::Occupied(mut e) => e.get_mut().named_by.extend(f.named_by),
            Entry::Vacant(e) => {
                let mut f = f;
                f.path = Some(e.key().0.clone());
                e.insert(f);
            }
        }
    }
    merged
        .into_values()
        .map(|mut f| {
            f.named_by.sort();
            f.named_by.dedup();
            // A config that cannot be read is the finding's own path: its problem says all.
            if !f.named_by.iter().all(|n| n.key == "(file)") {
                let mut by: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
                for n in &f.named_by {
                    by.entry(&n.config).or_default().push(&n.key);
                }
                let by: Vec<String> = by
                    .into_iter()
                    .map(|(config, keys)| format!("{} ({})", label(config), keys.join(", ")))
                    .collect();
                f.message = format!("{}: {}", by.join("; "), f.message);
            }
            f
        })
        .collect()
}

/// Reads the configs under `tree` and verifies what they reference at `now`, as
/// `render --check` does ([`check::verify`], keys that stay on their node excepted).
/// `node` names the node when `tree` is one node's root whose name says nothing (such
/// as `/`).
pub fn read(
    tree: &Path,
    node: Option<&str>,
    inv: Option<&Inventory>,
    now: OffsetDateTime,
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
    let mut referenced: BTreeSet<PathBuf> = BTreeSet::new();
    let mut ca_files: Vec<PathBuf> = Vec::new();
    for r in &roots {
        let scan = refs::scan(&r.root);
        let found = check::verify(&DiskTree::new(&r.root), &scan, now);
        let found = check::on_node_present(found, &crate::stage::on_node_paths(&r.root));
        out.findings.extend(on_disk(found, r));
        for reference in scan.references {
            // Keys that encrypt Secrets, not certificates: the audit does not read them
            // (the verifier has checked the file).
            if reference.kind == RefKind::EncryptionConfig {
                continue;
            }
            let file = refs::resolve(&r.root, &reference.path);
            match &reference.kind {
                RefKind::Ca => ca_files.push(file.clone()),
                RefKind::EmbeddedCa(pem) => {
                    if let Ok(cas) = TrustedCa::parse(pem.as_bytes(), &file, None) {
                        out.trusted.extend(cas);
                    }
                }
                _ => {}
            }
            referenced.insert(file);
        }
    }
    ca_files.sort();
    ca_files.dedup();
    for f in ca_files {
        // A missing or broken CA file is a finding of the verifier.
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
        .map(|path| Referenced { path })
        .collect();
    out.roots = roots;
    Ok(out)
}
