//! `kpki export`: what the user types.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Write the staged trees out for another deployment engine.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    Ansible(AnsibleArgs),
}

/// An Ansible inventory and playbook that do what `kpki push --all --restart` does.
///
/// Writes into --dest: inventory.yml (every node of the inventory, grouped etcd, master
/// and worker, with its ssh_host as ansible_host, and ansible_user and ansible_port where
/// the inventory sets ssh_user and ssh_port), site.yml and tasks/ (the plays), files/
/// (the commit and rollback scripts they run on a node), group_vars/all.yml and
/// host_vars/<node>.yml (each node's files from its staged manifest: path, mode, owner,
/// group, SHA-256, and the units and static pods a change of it restarts), and
/// ansible.cfg. Keys that stay on their node are left out, as push leaves them.
///
/// The playbook reads each node's files from the staged tree (--out) when it runs: the
/// export holds paths and checksums, never a key, and no second copy of a key is made.
/// It refuses to run once the tree was staged again: export again after each `kpki
/// apply`.
///
/// What it does, as push does: each node gets only the files that differ (SHA-256, mode,
/// owner, group), each uploaded into a temporary file beside its target and checked
/// against the manifest's SHA-256; a missing owner or group, or a directory or link at a
/// target, refuses the node before anything is written; what is replaced or removed is
/// backed up under /var/lib/kpki/backup/<time>/ in push's layout (so `kpki push
/// --rollback` restores it), then everything is renamed into place, the node's manifest
/// last. Then the restarts, in push's order: etcd members one at a time (serial: 1),
/// followers first and the leader last (asked of the running cluster when the playbook
/// runs; the inventory's order when none answers), each gated on the member being
/// healthy, every member agreeing on one leader and raft term, and the member serving its
/// new certificate; the masters one at a time; then the other nodes; each gated on its
/// units being active. A failed restart or gate rolls that node back, restarts it again
/// and stops the run.
///
/// Where push installs a node's files with one script, Ansible uploads them one task at a
/// time (its copy module, through its remote temporary directory) before the one commit
/// step that renames them all: the same end state, more round trips.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  kpki export ansible --out staged/ --dest ansible/
  kpki export ansible --out staged/ --dest ansible/ --ssh-config ~/.ssh/cluster.conf
  # then, in ansible/ (its ansible.cfg names the inventory):
  #   ansible-playbook site.yml --check           # what would change, as push --dry-run
  #   ansible-playbook site.yml                   # push --all --restart
  #   ansible-playbook site.yml --limit worker03 -e kpki_restart=false

Exit status:
  0  written
  1  bad input: invalid inventory, a node with no staged tree (run kpki apply --out DIR),
     a file in --dest that the export did not write (see --force), a path Ansible would
     read as a template")]
pub struct AnsibleArgs {
    /// The staging directory (`kpki apply --out DIR`): one tree per node.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The directory to write the inventory and playbook into (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub dest: PathBuf,
    /// An ssh config file for every connection (ansible_ssh_common_args: -F FILE), as
    /// `kpki push --ssh-config`.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Replace files in --dest that an export did not write.
    #[arg(long)]
    pub force: bool,
}
