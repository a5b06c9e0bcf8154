//! Rendering: the config files, units, kubeconfigs and static pod manifests that the
//! guides write by hand, made from the inventory and the profiles.
//!
//! Pure: no store, no clock, no printing. Every certificate, key and CA path in a rendered
//! file comes from the profile that produces that file ([`pki_files`] and the `pki.*`
//! names of the template context), so a profile's `install` table is the only place a
//! path is written. Templates are data: the built-in ones are embedded from `templates/`,
//! and a user's templates directory overrides them file by file ([`Templates::load`]).
//! Output is deterministic (sorted, no timestamps), so a second render is byte-identical.
//!
//! [`refs`] reads such files back (from a staged tree or an installed node, or a tree
//! still in memory through [`tree::TreeFiles`]) and [`check`] verifies what they
//! reference.

pub mod check;
mod context;
pub mod daemons;
pub mod refs;
mod template;
pub mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use template::{Scope, Template, TemplateError, Value};

use crate::inventory::{Inventory, Node, NodeName, Role};
use crate::profile::{Body, CaRole, InstallFile, Profiles};

/// Where a rendered file goes: one tree per node, plus the operator's files and the
/// load balancer's. The directory names of the last two cannot clash with a node name,
/// which is a DNS label and so never starts with `_`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    Node(NodeName),
    /// Files for the operator: the admin kubeconfig and the flannel network config.
    Cluster,
    /// The HAProxy host in front of the masters.
    LoadBalancer,
}

impl Tree {
    /// The directory of this tree under a staging directory.
    pub fn dir_name(&self) -> String {
        match self {
            Tree::Node(n) => n.to_string(),
            Tree::Cluster => "_cluster".into(),
            Tree::LoadBalancer => "_loadbalancer".into(),
        }
    }
}

impl std::fmt::Display for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dir_name())
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum On {
    Roles(&'static [Role]),
    Cluster,
    LoadBalancer,
}

pub(crate) const K8S: &[Role] = &[Role::Master, Role::Worker];

/// One file kpki renders: its template, where it is installed, for whom, and its mode.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec {
    /// The template's path under `templates/` (and under a user's templates directory).
    pub template: &'static str,
    /// Its name in the template context: `files.<var>` is `path`.
    pub var: &'static str,
    /// The install path (for the cluster tree, a path inside the operator's directory).
    pub path: &'static str,
    pub mode: u32,
    pub(crate) on: On,
    /// A static pod manifest: gets `mounts`, the host directories of what it names.
    pub(crate) static_pod: bool,
    pub(crate) builtin: &'static str,
}

/// Every file kpki renders, from the daemon declarations ([`daemons::DAEMONS`]), in
/// their order. Kubeconfigs and manifests are 0600 (kubeadm's choice: they say where the
/// keys are); the rest is 0644. Rendered files are owned by root.
pub static FILES: std::sync::LazyLock<Vec<FileSpec>> = std::sync::LazyLock::new(|| {
    daemons::DAEMONS
        .iter()
        .flat_map(|d| d.files.iter().copied())
        .collect()
});

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {0}")]
    Template(#[from] TemplateError),
    #[error("cannot read templates from {path}: {source}")]
    ReadTemplates {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not one of kpki's templates")]
    UnknownTemplate { path: PathBuf, known: Vec<String> },
    #[error("the inventory has masters or workers but no [loadbalancer] and no master for their kubeconfigs to reach")]
    NoApiserver,
    #[error(
        "the inventory has masters or workers but no etcd node for flanneld and kube-apiserver"
    )]
    NoEtcd,
    #[error("{template} for {node} names {path}, which no profile installs on {node}")]
    NotInstalled {
        template: String,
        node: String,
        path: String,
    },
    #[error("node '{0}' is not in the inventory")]
    UnknownNode(String),
    #[error(
        "profile etcd-peer's CN '{0}' differs per member, but etcd allows one CN on its peer port"
    )]
    PeerCnPerNode(String),
    #[error("{what} {value:?} cannot be written into a config: only letters, digits and . _ : @ - are allowed")]
    UnsafeValue { what: String, value: String },
    #[error("profile {0} is needed to render the configs but is not a {1} profile")]
    ProfileKind(String, &'static str),
    /// `render --check` found problems (each one printed as a line).
    #[error("{problems} problem(s) in {trees} tree(s): the configs name files that are missing or do not fit")]
    CheckFailed { problems: usize, trees: usize },
    /// The trees `apply` was about to stage fail `render --check`; nothing was written.
    #[error("nothing staged: the trees would fail `render --check` with {} problem(s): {}", problems.len(), problems.join(" | "))]
    Unverified { problems: Vec<String> },
}

impl RenderError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            RenderError::Template(_) => "fix the template (user templates: --templates DIR); `{{name}}` names must be in the render context listed in the README".into(),
            RenderError::ReadTemplates { .. } => "check --templates (or KPKI_TEMPLATES)".into(),
            RenderError::UnknownTemplate { known, .. } => format!("user templates override built-in ones by relative path; known: {}", known.join(", ")),
            RenderError::NoApiserver => "add a [loadbalancer] table (or a master node) to the inventory".into(),
            RenderError::NoEtcd => "give at least one node the \"etcd\" role".into(),
            RenderError::NotInstalled { .. } => "give the profile that installs it the node's role, or change the template to name a file the node gets".into(),
            RenderError::UnknownNode(_) => "name a node of the inventory's [[nodes]], or pass --all".into(),
            RenderError::UnsafeValue { .. } => "change the value in the profile (`kpki profiles show NAME` shows where it comes from)".into(),
            RenderError::PeerCnPerNode(_) => "give etcd-peer one CN for every member (the built-in profile uses \"etcd-peer\"); the SANs name the member".into(),
            RenderError::ProfileKind(..) => "restore the built-in profile of that name (remove the override from the profiles directory)".into(),
            RenderError::CheckFailed { .. } => "`kpki apply` restages what kpki issued; a file changed by hand must be put back or reissued".into(),
            RenderError::Unverified { .. } => "a user profile or template names files that do not fit together, or the store is damaged (`kpki store verify`); fix that and run apply again".into(),
        })
    }
}

/// Where a template came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateOrigin {
    Builtin,
    File(PathBuf),
}

/// The templates in force: built-in, overridden by a user's directory.
#[derive(Clone, Debug)]
pub struct Templates {
    by_name: BTreeMap<&'static str, (Template, TemplateOrigin)>,
}

impl Templates {
    /// The embedded templates.
    pub fn builtin() -> Templates {
        let by_name = FILES
            .iter()
            .map(|f| {
                let t = Template::parse(&format!("templates/{}", f.template), f.builtin)
                    .unwrap_or_else(|e| panic!("built-in template is invalid: {e}"));
                (f.template, (t, TemplateOrigin::Builtin))
            })
            .collect();
        Templates { by_name }
    }

    /// The built-in templates, each replaced by `DIR/<same relative path>` where that
    /// file exists. A file in `dir` that matches no built-in template is an error (a
    /// misspelt override would otherwise be ignored); dot-files are skipped.
    pub fn load(dir: Option<&Path>) -> Result<Templates, RenderError> {
        let mut t = Templates::builtin();
        let Some(dir) = dir else { return Ok(t) };
        if !dir.exists() {
            return Ok(t);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RenderError::ReadTemplates { path, source }
        };
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.map_err(|e| RenderError::ReadTemplates {
                path: e
                    .path()
                    .map_or_else(|| dir.to_path_buf(), Path::to_path_buf),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("loop")),
            })?;
            let hidden = entry
                .path()
                .strip_prefix(dir)
                .ok()
                .and_then(|r| r.to_str())
                .is_some_and(|r| r.split('/').any(|c| c.starts_with('.')));
            if entry.file_type().is_file() && !hidden {
                files.push(entry.into_path());
            }
        }
        for path in files {
            let rel = path
                .strip_prefix(dir)
                .ok()
                .and_then(|r| r.to_str())
                .unwrap_or_default()
                .to_owned();
            let Some(spec) = FILES.iter().find(|f| f.template == rel) else {
                return Err(RenderError::UnknownTemplate {
                    path,
                    known: FILES.iter().map(|f| f.template.to_owned()).collect(),
                });
            };
            let text = crate::source::read_to_string(&path).map_err(io(&path))?;
            let parsed = Template::parse(&path.display().to_string(), &text)?;
            t.by_name
                .insert(spec.template, (parsed, TemplateOrigin::File(path.clone())));
        }
        Ok(t)
    }

    /// Every template with where it came from, in the order of [`FILES`].
    pub fn origins(&self) -> Vec<(&'static str, TemplateOrigin)> {
        FILES
            .iter()
            .map(|f| (f.template, self.by_name[f.template].1.clone()))
            .collect()
    }

    fn get(&self, name: &str) -> &Template {
        &self.by_name[name].0
    }
}

/// The admin certificate, embedded into the operator's kubeconfig by `apply` (it travels
/// with the operator, unlike node kubeconfigs, which name files).
pub struct AdminData {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// What to render beyond the inventory and the profiles.
#[derive(Default)]
pub struct Options {
    /// Give kube-controller-manager the kubernetes CA's key so it signs CSRs
    /// (`--cluster-signing-cert-file`/`--cluster-signing-key-file`). Off by default: the
    /// CA key then never leaves the store.
    pub cluster_signing: bool,
    /// Embed the admin certificate into the admin kubeconfig; without it the admin
    /// kubeconfig names the admin profile's install paths.
    pub admin: Option<AdminData>,
}

/// What part of a profile's output a PKI file is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PkiPart {
    Key,
    Cert,
    Ca,
    Public,
    /// One CA certificate alone, for a flag that takes a single CA (not a bundle).
    SingleCa(CaRole),
    /// The CA's private key, for kube-controller-manager's CSR signing.
    CaKey(CaRole),
    /// A secret's config, made from the store: kube-apiserver's EncryptionConfiguration
    /// with the current key and the earlier ones still trusted.
    SecretConfig,
}

/// One certificate, key or CA file a node gets.
#[derive(Clone, Debug)]
pub struct PkiFile {
    /// The profile it comes from (for the single-CA files, the profile whose CA it is).
    pub profile: String,
    pub part: PkiPart,
    pub install: InstallFile,
}

/// The files that hold a single CA, for kube-controller-manager flags that take one CA
/// and not a bundle. They sit beside the controller-manager profile's CA file, so its
/// `install.ca` decides their directory.
pub struct SingleCaFiles {
    pub ca: CaRole,
    pub client_ca: InstallFile,
    pub signing_cert: InstallFile,
    pub signing_key: InstallFile,
}

/// The single-CA files of kube-controller-manager.
pub fn single_ca_files(profiles: &Profiles) -> Result<SingleCaFiles, RenderError> {
    let p = profiles
        .get("controller-manager")
        .map_err(|_| RenderError::ProfileKind("controller-manager".into(), "certificate"))?;
    let spec = p
        .cert_spec()
        .ok_or_else(|| RenderError::ProfileKind(p.name.clone(), "certificate"))?;
    let dir = spec
        .ca_file
        .path
        .rsplit_once('/')
        .map_or("", |(d, _)| d)
        .to_owned();
    let file = |name: &str, mode: u32| InstallFile {
        path: format!("{dir}/{name}"),
        owner: "root".into(),
        group: "root".into(),
        mode,
    };
    Ok(SingleCaFiles {
        ca: spec.ca,
        client_ca: file("controller-manager-client-ca.crt", 0o644),
        signing_cert: file("cluster-signing-ca.crt", 0o644),
        signing_key: file("cluster-signing-ca.key", 0o600),
    })
}

/// Every certificate, key, CA and secret file `node` gets: those of each profile its
/// roles call for, and on masters the single-CA files (the signing key only with
/// `cluster_signing`). Sorted by path; a path named by several profiles is listed once
/// per profile (the stage merges them).
pub fn pki_files(
    profiles: &Profiles,
    node: &Node,
    opts: &Options,
) -> Result<Vec<PkiFile>, RenderError> {
    let mut out = Vec::new();
    for p in profiles.iter().filter(|p| p.applies_to(&node.roles)) {
        let mut push = |part: PkiPart, f: &InstallFile| {
            out.push(PkiFile {
                profile: p.name.clone(),
                part,
                install: f.clone(),
            })
        };
        if let Some(k) = &p.key_file {
            push(PkiPart::Key, k);
        }
        match &p.body {
            Body::Certificate(c) => {
                push(PkiPart::Cert, &c.cert);
                push(PkiPart::Ca, &c.ca_file);
            }
            Body::KeyPair { public } => push(PkiPart::Public, public),
            Body::Secret { config } => push(PkiPart::SecretConfig, config),
        }
    }
    if node.has_role(Role::Master) {
        let s = single_ca_files(profiles)?;
        let mut add = |part: PkiPart, f: InstallFile| {
            out.push(PkiFile {
                profile: "controller-manager".into(),
                part,
                install: f,
            })
        };
        add(PkiPart::SingleCa(s.ca), s.client_ca);
        if opts.cluster_signing {
            add(PkiPart::SingleCa(s.ca), s.signing_cert);
            add(PkiPart::CaKey(s.ca), s.signing_key);
        }
    }
    out.sort_by(|a, b| {
        a.install
            .path
            .cmp(&b.install.path)
            .then(a.profile.cmp(&b.profile))
    });
    Ok(out)
}

/// One rendered file.
pub struct RenderedFile {
    pub tree: Tree,
    /// Absolute install path (in the cluster tree, a path under the operator's directory).
    pub path: String,
    pub contents: Zeroizing<Vec<u8>>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// The template it came from (relative name, such as `etcd/options.env`).
    pub template: &'static str,
}

impl std::fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedFile")
            .field("tree", &self.tree)
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// Which trees a render covers.
#[derive(Clone, Debug)]
pub enum Selection {
    All,
    Nodes(Vec<String>),
}

/// Renders the selected trees: each selected node's files by its roles, and with
/// [`Selection::All`] the cluster's and the load balancer's too. Sorted by tree, then path.
pub fn render(
    templates: &Templates,
    inv: &Inventory,
    profiles: &Profiles,
    opts: &Options,
    sel: &Selection,
) -> Result<Vec<RenderedFile>, RenderError> {
    let nodes: Vec<&Node> = match sel {
        Selection::All => inv.nodes().iter().collect(),
        Selection::Nodes(names) => names
            .iter()
            .map(|n| {
                inv.node(n)
                    .ok_or_else(|| RenderError::UnknownNode(n.clone()))
            })
            .collect::<Result<_, _>>()?,
    };
    let base = context::Base::new(inv, profiles, opts)?;
    let mut out = Vec::new();
    for node in nodes {
        let specs: Vec<&FileSpec> = FILES
            .iter()
            .filter(|f| matches!(f.on, On::Roles(r) if r.iter().any(|r| node.has_role(*r))))
            .collect();
        if specs.is_empty() {
            continue;
        }
        let ctx = base.node_scope(inv, profiles, node)?;
        let installed: BTreeSet<String> = pki_files(profiles, node, opts)?
            .into_iter()
            .map(|f| f.install.path)
            .collect();
        out.extend(render_tree(
            templates,
            &ctx,
            Tree::Node(node.name.clone()),
            &specs,
            Some(&installed),
        )?);
    }
    if matches!(sel, Selection::All) {
        let ctx = base.cluster_scope(inv, profiles)?;
        let specs: Vec<&FileSpec> = FILES
            .iter()
            .filter(|f| matches!(f.on, On::Cluster))
            .collect();
        out.extend(render_tree(templates, &ctx, Tree::Cluster, &specs, None)?);
        if inv.loadbalancer.is_some() && inv.with_role(Role::Master).next().is_some() {
            let specs: Vec<&FileSpec> = FILES
                .iter()
                .filter(|f| matches!(f.on, On::LoadBalancer))
                .collect();
            out.extend(render_tree(
                templates,
                &ctx,
                Tree::LoadBalancer,
                &specs,
                None,
            )?);
        }
    }
    out.sort_by(|a, b| a.tree.cmp(&b.tree).then_with(|| a.path.cmp(&b.path)));
    Ok(out)
}

/// Resolves a dotted name against the context, for the names a template used.
fn resolve<'a>(ctx: &'a Scope, name: &str) -> Option<&'a str> {
    let mut parts = name.split('.');
    let mut v = ctx.get(parts.next()?)?;
    for p in parts {
        v = match v {
            Value::Map(m) => m.get(p)?,
            _ => return None,
        };
    }
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// The paths (certificates, keys, CAs, rendered files) among the names a template used.
fn named_paths(ctx: &Scope, used: &BTreeSet<String>) -> BTreeSet<String> {
    used.iter()
        .filter(|n| n.starts_with("pki.") || n.starts_with("single_ca.") || n.starts_with("files."))
        .filter_map(|n| resolve(ctx, n))
        .map(str::to_owned)
        .collect()
}

/// Volume name for a host directory: a DNS-1123 label made from its path.
fn volume_name(dir: &str) -> String {
    let mut s: String = dir
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.truncate(63);
    s.trim_matches('-').to_owned()
}

fn render_tree(
    templates: &Templates,
    ctx: &Scope,
    tree: Tree,
    specs: &[&FileSpec],
    installed: Option<&BTreeSet<String>>,
) -> Result<Vec<RenderedFile>, RenderError> {
    // Plain files first: a static pod mounts the directories of what its kubeconfigs name.
    let mut paths_named: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut ordered: Vec<&&FileSpec> = specs.iter().collect();
    ordered.sort_by_key(|f| f.static_pod);
    for spec in ordered {
        let t = templates.get(spec.template);
        let mut used = BTreeSet::new();
        let text = if spec.static_pod {
            let mut probe = ctx.clone();
            probe.insert("mounts".into(), Value::List(vec![]));
            t.render(&probe, &mut used)?;
            let mut named = named_paths(ctx, &used);
            for p in named.clone() {
                if let Some(inner) = specs.iter().find(|s| s.path == p) {
                    named.extend(paths_named.get(inner.path).cloned().unwrap_or_default());
                }
            }
            let mut dirs: BTreeSet<String> = named
                .iter()
                .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d.to_owned()))
                .filter(|d| !d.is_empty())
                .collect();
            // Mount a directory once, not again under a parent that is mounted.
            let all = dirs.clone();
            dirs.retain(|d| {
                !all.iter()
                    .any(|a| a != d && d.starts_with(&format!("{a}/")))
            });
            let mounts = dirs
                .iter()
                .map(|d| {
                    template::scope([
                        ("name", template::s(volume_name(d))),
                        ("path", template::s(d)),
                    ])
                })
                .collect();
            let mut full = ctx.clone();
            full.insert("mounts".into(), Value::List(mounts));
            used.clear();
            t.render(&full, &mut used)?
        } else {
            t.render(ctx, &mut used)?
        };
        let named = named_paths(ctx, &used);
        if let (Some(installed), Tree::Node(n)) = (installed, &tree) {
            let rendered: BTreeSet<&str> = specs.iter().map(|s| s.path).collect();
            if let Some(missing) = named
                .iter()
                .find(|p| !installed.contains(*p) && !rendered.contains(p.as_str()))
            {
                return Err(RenderError::NotInstalled {
                    template: spec.template.into(),
                    node: n.to_string(),
                    path: missing.clone(),
                });
            }
        }
        paths_named.insert(spec.path, named);
        out.push(RenderedFile {
            tree: tree.clone(),
            path: spec.path.to_owned(),
            contents: Zeroizing::new(text.into_bytes()),
            mode: spec.mode,
            owner: "root".into(),
            group: "root".into(),
            template: spec.template,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Inventory {
        Inventory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ha-cluster.toml"))
            .unwrap()
    }

    #[test]
    fn every_builtin_template_renders_on_the_example() {
        let files = render(
            &Templates::builtin(),
            &example(),
            &Profiles::builtin(),
            &Options::default(),
            &Selection::All,
        )
        .unwrap();
        let used: BTreeSet<&str> = files.iter().map(|f| f.template).collect();
        let all: BTreeSet<&str> = FILES.iter().map(|f| f.template).collect();
        assert_eq!(used, all, "every template is used somewhere");
        // One template may make files at several places (the flannel config script: in
        // the cluster tree for the operator, on the masters for the boot-time unit).
        let paths: BTreeSet<(String, &str)> = files
            .iter()
            .filter(|f| f.template == "cluster/put-network-config.sh")
            .map(|f| (f.tree.dir_name(), f.path.as_str()))
            .collect();
        assert!(paths.len() >= 2, "{paths:?}");
        let worker: Vec<&str> = files
            .iter()
            .filter(|f| f.tree.dir_name() == "worker01")
            .map(|f| f.path.as_str())
            .collect();
        assert!(worker.contains(&"/etc/flanneld/options.env"));
        assert!(!worker
            .iter()
            .any(|p| p.contains("manifests") || p.contains("etcd/")));
    }

    #[test]
    fn volume_names_are_labels() {
        assert_eq!(volume_name("/etc/kubernetes/ssl"), "etc-kubernetes-ssl");
        assert_eq!(volume_name("/etc/ssl/etcd"), "etc-ssl-etcd");
    }

    #[test]
    fn user_template_overrides_and_unknown_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etcd")).unwrap();
        std::fs::write(
            d.path().join("etcd/options.env"),
            "ETCD_NAME={{node.name}}\n",
        )
        .unwrap();
        let t = Templates::load(Some(d.path())).unwrap();
        let files = render(
            &t,
            &example(),
            &Profiles::builtin(),
            &Options::default(),
            &Selection::Nodes(vec!["etcd02".into()]),
        )
        .unwrap();
        let env = files
            .iter()
            .find(|f| f.path == "/etc/etcd/options.env")
            .unwrap();
        assert_eq!(&env.contents[..], b"ETCD_NAME=etcd02\n");
        std::fs::write(d.path().join("etcd/option.env"), "x").unwrap();
        assert!(matches!(
            Templates::load(Some(d.path())),
            Err(RenderError::UnknownTemplate { .. })
        ));
    }

    #[test]
    fn a_path_the_node_does_not_get_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("flanneld")).unwrap();
        std::fs::write(
            d.path().join("flanneld/options.env"),
            "X={{pki.etcd-peer.key}}\n",
        )
        .unwrap();
        let e = render(
            &Templates::load(Some(d.path())).unwrap(),
            &example(),
            &Profiles::builtin(),
            &Options::default(),
            &Selection::Nodes(vec!["worker01".into()]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("names /etc/ssl/etcd/etcd.key, which no profile installs on worker01"),
            "{e}"
        );
    }
}
