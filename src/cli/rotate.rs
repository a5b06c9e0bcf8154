//! `kpki rotate`: what the user types.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Which certificates a rotation renews.
#[derive(Debug, Args)]
pub struct RotateSelect {
    /// The staging directory `kpki apply` wrote (its manifests say which node gets which
    /// files); the rotation stages into it again. Required but for `--resume`, which takes
    /// the rotation's own.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Renew what expires within this span (a number and h, d, w or y), beyond each
    /// profile's own renew-before margin. Without it: what the planner calls expiring,
    /// drifted or signed by a CA that no longer signs.
    #[arg(long, value_name = "SPAN", conflicts_with = "force")]
    pub within: Option<String>,
    /// Renew every selected certificate, whatever its state.
    #[arg(long)]
    pub force: bool,
    /// Only this profile (repeatable).
    #[arg(long, value_name = "NAME")]
    pub profile: Vec<String>,
    /// Only certificates this node holds (repeatable).
    #[arg(long, value_name = "NAME")]
    pub node: Vec<String>,
    /// A new key for every certificate (the default for scheduled rotations).
    #[arg(long, conflicts_with = "renew")]
    pub rekey: bool,
    /// Keep each certificate's key (a certificate signed from a node's CSR always keeps it).
    #[arg(long)]
    pub renew: bool,
    /// As for `kpki apply` (the rotation stages the trees again).
    #[command(flatten)]
    pub templates: super::render::TemplateArgs,
}

/// How a rotation reaches the nodes.
#[derive(Debug, Args)]
pub struct RotateDeliver {
    /// The maintenance window: "Sat 02:00-04:00 UTC", "Mon,Thu 01:30-03:00 UTC", "daily
    /// 02:00-04:00 UTC". Nothing changes outside it; a rotation that reaches its end pauses
    /// at a step boundary (exit 75) and says when the next window opens.
    #[arg(long, value_name = "WINDOW")]
    pub window: Option<String>,
    /// An ssh config file, passed to ssh as -F.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Seconds a restarted node may take to pass its gate (1 to 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u16).range(1..=3600))]
    pub gate_timeout: u16,
    /// Nodes pushed at once in the last phase (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
}

/// Renew leaf certificates in a maintenance window: rolling, gated, resumable.
///
/// Plans from the planner's decisions (expiring, drifted, issued by a CA that no longer
/// signs; or every selected certificate with --force), then runs the plan's steps in
/// order, each recorded in an append-only journal in the store (STORE/rotations/<id>/):
/// issue the new generations (a new key unless --renew); stage every tree as `kpki apply`
/// does; check that every node is reachable and etcd is healthy; then push with restarts,
/// etcd members one at a time (followers first, the leader last, each gated on one leader,
/// one raft term and the member serving its new serial), the masters one at a time, then
/// the other nodes. A failed gate restores that node's backup, restarts it and stops the
/// rotation (exit 3). The store stays locked while a rotation runs.
///
/// An unfinished rotation (paused at a window's end, or interrupted) is continued before
/// anything new is planned, so the timer's next run picks it up; --resume only continues.
/// A rotation continues where its journal stopped: an issue
/// step cut short reissues only what is still on its planned generation, so nothing is
/// issued twice; a push step is run again (a push is idempotent) and its gate checked.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_long_help = "Examples:
  kpki rotate plan --out staged/ --within 30d
  kpki rotate --out staged/ --within 30d --window \"Sat 02:00-04:00 UTC\"
  kpki rotate --resume --out staged/
  kpki rotate status
  kpki rotate timer --out staged/ --window \"Sat 02:00-04:00 UTC\"

Exit status:
  0  rotated (or nothing to rotate, or --dry-run / --stage-only done)
  1  bad input (unknown profile or node, no staged tree, bad window, an unfinished rotation)
  2  refused by policy (a certificate would outlive its CA)
  3  a node failed its gate and was rolled back, or a node is unreachable (nothing after it ran)
  75 outside the window, or paused at its end: run again (or --resume) in the next window"
)]
pub struct RotateArgs {
    #[command(subcommand)]
    pub command: Option<RotateCommand>,
    #[command(flatten)]
    pub select: RotateSelect,
    #[command(flatten)]
    pub deliver: RotateDeliver,
    /// Continue the newest unfinished rotation.
    #[arg(long, conflicts_with_all = ["within", "force", "profile", "node", "rekey", "renew"])]
    pub resume: bool,
    /// Issue and stage, then stop: push later with `kpki rotate --resume`.
    #[arg(long)]
    pub stage_only: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// Print the ordered steps: which certificates, which nodes, which restarts, the time.
    Plan(RotatePlanArgs),
    /// Show the newest rotation: its plan and how far its journal got.
    Status(RotateStatusArgs),
    /// Write a systemd timer and service that run the rotation in the window on this CA host.
    Timer(RotateTimerArgs),
}

#[derive(Debug, Args)]
pub struct RotatePlanArgs {
    #[command(flatten)]
    pub select: RotateSelect,
    /// Print JSON: id, items [{profile, target, reason, from_generation, nodes}], steps
    /// [{kind, phase, nodes, restarts}], estimates (seconds).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RotateStatusArgs {
    /// Print JSON: the plan and the journal [{step, state, at, note}].
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RotateTimerArgs {
    /// The staging directory the rotation uses.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The maintenance window (as for `kpki rotate --window`).
    #[arg(long, value_name = "WINDOW")]
    pub window: String,
    /// Rotate what expires within this span (default 30d).
    #[arg(long, value_name = "SPAN", default_value = "30d")]
    pub within: String,
    /// Write kpki-rotate.service and kpki-rotate.timer into this directory instead of
    /// printing them (such as /etc/systemd/system).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
}
