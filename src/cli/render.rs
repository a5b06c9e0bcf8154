//! `kpki render`, `kpki apply` and `kpki plan`: what the user types.

use std::path::PathBuf;

use clap::Args;

/// Where the templates come from and what to render beyond the inventory.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// A directory of templates overriding the built-in ones by relative path (such as
    /// etcd/options.env).
    ///
    /// Defaults to the store's templates/ directory when it exists. `kpki render --all`
    /// shows what each built-in template makes; the names a template may use are listed
    /// in the README ("Render and apply").
    #[arg(long, env = "KPKI_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Let kube-controller-manager sign CSRs: stage the kubernetes CA and its key on the
    /// masters and pass --cluster-signing-cert-file/--cluster-signing-key-file.
    ///
    /// Off by default: the CA key then never leaves the store, and kpki alone issues
    /// certificates.
    #[arg(long)]
    pub cluster_signing: bool,
}

/// Render each node's configs, units, kubeconfigs and static pod manifests.
///
/// For each node, by its roles: etcd's options.env and unit; flanneld's options.env and
/// unit, the containerd drop-in and CNI config fed by flannel's subnet file, the kubelet's
/// kubeconfig, KubeletConfiguration and unit, kube-proxy's kubeconfig and unit; on masters
/// the kube-apiserver, kube-controller-manager and kube-scheduler static pods and their
/// kubeconfigs. With --all also the operator's files (admin kubeconfig, flannel network
/// config and the etcdctl command that stores it) and the load balancer's haproxy.cfg.
/// Every certificate, key and CA path in them is the install path of the profile that
/// makes that file. Nothing is issued and the store is not read: `kpki apply` issues and
/// stages certificates and configs together.
///
/// With --check, reads staged trees (DIR/<node>/, as `kpki apply` writes them) or an
/// installed node (--root /) and verifies every certificate, key and CA path the configs
/// name: the file exists, the key matches its certificate, the certificate chains to the
/// CA file the same config names, serving and peer certificates carry the SANs their
/// listen and advertise URLs need and the extended key usages their role needs. Each
/// problem is one line: tree, config file, key, what is wrong.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  kpki render --inventory examples/ha-cluster.toml --node etcd01
  kpki render --all --out rendered/
  kpki render --check --out staged/            # every tree kpki apply staged
  kpki render --check --out staged/ --node worker01
  kpki render --check --root /                 # on a node, what is installed
  kpki render --check --out staged/ --json | jq -r '.problems[].message'

Exit status:
  0  rendered; with --check, no problem found
  1  bad input (unknown node, invalid inventory or template, unreadable tree)
  2  --check found problems (each printed on standard output)")]
pub struct RenderArgs {
    /// A node of the inventory (repeatable).
    #[arg(long, value_name = "NAME")]
    pub node: Vec<String>,
    /// Every node, plus the operator's files and the load balancer's.
    #[arg(long, conflicts_with = "node")]
    pub all: bool,
    /// Write the files into DIR/<node>/<install path> instead of printing them.
    ///
    /// With --check, the staged directory to read.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub templates: TemplateArgs,
    /// Check what the configs of a staged or installed tree reference, instead of rendering.
    #[arg(long)]
    pub check: bool,
    /// With --check: the root of one node's installed files, such as /.
    #[arg(long, value_name = "DIR", requires = "check", conflicts_with_all = ["node", "all", "out"])]
    pub root: Option<PathBuf>,
    /// With --check: print JSON instead of lines, one object: trees (count), references
    /// (count), problems (array of {tree, path, kind, severity, message, named_by:
    /// [{config, key}]}; kind is a finding kind as the audit names them, or
    /// interrupted_write for a temporary file a killed kpki left).
    ///
    /// The exit status is the same as without --json.
    #[arg(long, requires = "check")]
    pub json: bool,
}

/// Issue what is missing and stage every node's files: certificates, keys, CAs, configs.
///
/// Plans every profile for every node its roles call for (as `kpki issue --all`), issues
/// the certificates and keys the store does not have yet, renders each node's configs
/// (as `kpki render`), and stages one tree per node: OUT/<node>/<absolute install path>
/// for every file the node gets, written with its install mode, and a manifest of paths,
/// modes, owners, groups and SHA-256 at OUT/<node>/var/lib/kpki/manifest.json. Keys are
/// decrypted into the staged tree only (mode 0600). OUT/_cluster/ holds the operator's
/// files (admin kubeconfig with the admin certificate embedded, flannel network config);
/// OUT/_loadbalancer/ the load balancer's haproxy.cfg.
///
/// Idempotent: a second run issues nothing and rewrites nothing. A file a manifest listed
/// that is no longer staged is removed; nothing else in OUT is. When there is no store
/// yet, apply creates one as `kpki init` does (one root CA, keys encrypted to the
/// identity file) and says so.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  kpki apply --inventory examples/ha-cluster.toml --out staged/
  kpki plan --out staged/       # what apply would do, changing nothing
  kpki render --check --out staged/

Exit status:
  0  applied (or nothing to do)
  1  bad input (invalid inventory, profile or template, wrong identity)
  2  refused: a certificate would outlive its CA, or two profiles stage different files at one path")]
pub struct ApplyArgs {
    /// The staging directory: one tree per node.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub templates: TemplateArgs,
}

/// Show what `kpki apply` would do: what it would issue and which staged files it would
/// create, update or remove. Changes nothing.
///
/// Reads the store (unlocking it to compare staged keys) and the staging directory; with
/// no store yet, says that apply would create one.
#[derive(Debug, Args)]
#[command(after_long_help = "Example:
  kpki plan --inventory examples/ha-cluster.toml --out staged/

Exit status: 0 shown (whether or not there is something to do); 1 bad input.")]
pub struct PlanArgs {
    /// The staging directory apply would write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print JSON: every decision (profile, target, action, reason, detail, generation,
    /// serial, not_after), the staged files that would change, and notes.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub templates: TemplateArgs,
}
