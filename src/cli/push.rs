//! `kpki push`: what the user types.

use std::path::PathBuf;

use clap::Args;

/// Deliver each node's staged tree over SSH: atomically, with owners, backups, gated
/// restarts and rollback.
///
/// Reads OUT/<node>/ and its manifest (as `kpki apply` stages them) and, over one SSH
/// connection per node (the system's OpenSSH client: your ~/.ssh/config, agent and
/// known_hosts; --ssh-config is passed on as -F; BatchMode, so nothing prompts), compares
/// the node's files with the manifest: SHA-256, mode, owner and group. Only what differs
/// is sent, into temporary files beside their targets; each is verified by SHA-256 and
/// given its owner, group and mode, the files it replaces are backed up under
/// /var/lib/kpki/backup/<time>/ (the last 5 pushes kept), and then everything is renamed
/// into place, the node's manifest last. A failure before the renames leaves the node
/// untouched; a failure during them puts the backed-up files back. Files an earlier push
/// installed and the manifest no longer lists are removed (backed up first); no other
/// file is. A missing owner or group on the node refuses that node before anything is
/// written. The node needs only sh and coreutils.
///
/// With --restart, after every node is installed, restarts the units whose files changed
/// (the daemon declarations say which unit reads which file) in an order that keeps the
/// cluster up: etcd members one at a time, followers first and the leader last, each
/// gated (the member healthy, every member agreeing on one leader and raft term, the
/// member serving the new certificate's serial); then the masters one at a time; then
/// the other nodes in parallel, each gated on its units being active. A gate that fails
/// within --gate-timeout rolls that node back, restarts it again and stops the push.
///
/// Private keys leave this host only inside the SSH session, read from the staged tree
/// into memory: never as a temporary file here.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  kpki push --out staged/ --all --dry-run       # what would change and restart, per node
  kpki push --out staged/ --all --restart
  kpki push --out staged/ --role etcd --restart --ssh-config ~/.ssh/cluster.conf
  kpki push --out staged/ --rollback --node etcd02 --restart

The inventory's ssh_host (an address, name or ssh config alias; the node's ip by default),
ssh_user and ssh_port name each node; user and port left out are your ssh config's.
KPKI_SSH names another ssh client program to run instead of ssh.

JSON (--json): a list with one object per node: node, host, outcome (unchanged,
would-change, installed, rolled-back, restored, failed, skipped), files [{path, change
(new, update, remove), detail}], restarts [unit or pod/NAME], restarted, backup, error.

Exit status:
  0  every node is installed (or unchanged, or with --dry-run: could be)
  1  bad input (unknown node or role, no staged tree, invalid inventory)
  2  refused on a node: its owner or group does not exist there, or a target path is
     a directory or link (nothing written on that node)
  3  a node failed: unreachable, the upload or a rename failed (node left as it was),
     or a restart's gate failed (node rolled back)")]
pub struct PushArgs {
    /// The staging directory (`kpki apply --out DIR`): one tree per node.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A node of the inventory (repeatable).
    #[arg(long, value_name = "NAME")]
    pub node: Vec<String>,
    /// Every node with this role (repeatable): etcd, master or worker.
    #[arg(long, value_name = "ROLE", conflicts_with = "rollback")]
    pub role: Vec<String>,
    /// Every node of the inventory.
    #[arg(long, conflicts_with_all = ["node", "role", "rollback"])]
    pub all: bool,
    /// Nodes to install at once (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// Show per node what would change and restart; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restart the units whose files changed, gated, in cluster order.
    #[arg(long)]
    pub restart: bool,
    /// Seconds a restarted node may take to pass its gate (1 to 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u16).range(1..=3600))]
    pub gate_timeout: u16,
    /// An ssh config file, passed to ssh as -F.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Restore the node's newest backup (the files the last push replaced, removed or
    /// created) instead of pushing; with --restart, restart what they feed.
    #[arg(long, requires = "node", conflicts_with = "dry_run")]
    pub rollback: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Write one node's staged tree as one file, for a node kpki cannot reach over SSH.
///
/// The bundle is the install script a push sends (the same temporary files, SHA-256
/// checks, owners, modes, backups and renames, the manifest last); with --recipient it is
/// age-encrypted to that key (armored), otherwise it is a plain shell script that holds
/// the node's private keys, written 0600. On the node, `kpki unbundle FILE` (or `sh FILE`
/// for a plain one) installs it. Without a connection there is no diff: every file of the
/// tree is written (the node's old ones backed up); files an earlier push installed that
/// the tree no longer lists stay.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  kpki bundle --out staged/ --node worker03 --file worker03.bundle --recipient age1…
  # on worker03, as root:
  kpki unbundle worker03.bundle --identity /root/worker03.age

Exit status: 0 written; 1 bad input (unknown node, no staged tree, bad recipient, the file exists without --force).")]
pub struct BundleArgs {
    /// The staging directory (`kpki apply --out DIR`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The node whose tree to bundle.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// The bundle file to write (0600).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Encrypt to this age recipient (age1…; repeatable): the node's own key.
    #[arg(long, value_name = "RECIPIENT")]
    pub recipient: Vec<String>,
    /// Replace an existing bundle file.
    #[arg(long)]
    pub force: bool,
}

/// Install a bundle made by `kpki bundle` on this node (as root).
///
/// Decrypts it with --identity when it is age-encrypted, then runs the same steps as a
/// push: every file into a temporary file beside its target, verified by SHA-256, owner,
/// group and mode set, the replaced files backed up under /var/lib/kpki/backup/<time>/,
/// then renamed into place, the manifest last. Nothing is changed when a step before the
/// renames fails; a failed rename puts back what was replaced.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Exit status: 0 installed; 1 bad input (not a bundle, wrong identity); 3 the install failed (the node left as it was)."
)]
pub struct UnbundleArgs {
    /// The bundle file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}
