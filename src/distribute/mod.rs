//! Distribution: each node's staged tree (`OUT/<node>/`, as `kpki apply` writes it) onto
//! the node over SSH, atomically, with owners, backups, gated restarts and rollback.
//!
//! The flow for one node: open one SSH connection ([`ssh::Session`]); read what the node
//! holds at every path of the staged manifest and of the node's own kpki manifest
//! ([`script::probe`]); [`diff`] the two (new, updated, removed; unchanged is left
//! alone); send one install script that uploads, verifies, backs up and renames
//! ([`script::install`]). Restarts come after every node is installed, in the order that
//! keeps the cluster up ([`push`]): etcd members one at a time, followers first, each
//! gated on the cluster agreeing on one leader and the member serving its new
//! certificate; then the masters one at a time; then the other nodes in parallel. A gate
//! that fails rolls that node back and stops the push.

pub mod ansible;
pub mod bundle;
pub mod restart;
pub mod script;
pub mod ssh;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::inventory::{Inventory, Role};
use crate::stage::{self, FileKind, Manifest, MANIFEST};

pub use restart::Restarts;
use script::Safe;
pub use ssh::SshOptions;

/// Where a node keeps the files a push replaced (one directory per push).
pub const BACKUP_DIR: &str = "/var/lib/kpki/backup";
/// How many pushes' backups a node keeps.
pub const KEEP_BACKUPS: usize = 5;
/// The name prefix of the temporary files a push writes beside their targets.
pub const TEMP_PREFIX: &str = ".kpki-push.";

/// Why a push could not start, or failed on a node.
#[derive(Debug, thiserror::Error)]
pub enum DistributeError {
    #[error("{node}: {message}")]
    Ssh { node: String, message: String },
    #[error("{node}: {message}")]
    Staged { node: String, message: String },
    #[error("{node}: {message}")]
    Refused { node: String, message: String },
    #[error("{node}: {message}")]
    Remote { node: String, message: String },
    #[error("{node}: {message}")]
    Gate { node: String, message: String },
}

impl DistributeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DistributeError::Ssh { .. } => Some(
                "check that `ssh` reaches the node with the same user, port and --ssh-config, without a prompt (BatchMode)".into(),
            ),
            DistributeError::Staged { .. } => {
                Some("run `kpki apply --out DIR` to stage the node's tree again".into())
            }
            DistributeError::Refused { message, .. } if message.contains("does not exist") => Some(
                "create it on the node (the staged /etc/sysusers.d/ entry does: `systemd-sysusers`), then push again".into(),
            ),
            _ => None,
        }
    }
}

/// Where and as whom to reach a node.
#[derive(Clone, Debug)]
pub struct Target {
    pub node: String,
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub roles: BTreeSet<Role>,
}

impl Target {
    pub fn of(inv: &Inventory, name: &str) -> Option<Target> {
        inv.nodes()
            .iter()
            .find(|n| n.name.as_str() == name)
            .map(|n| Target {
                node: name.to_owned(),
                host: n.ssh.host.clone(),
                user: n.ssh.user.clone(),
                port: n.ssh.port,
                roles: n.roles.clone(),
            })
    }
}

/// One file to upload.
pub(crate) struct Upload<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
    pub sha256: &'a str,
    pub mode: u32,
    pub owner: &'a str,
    pub group: &'a str,
}

fn kind_word(k: FileKind) -> &'static str {
    match k {
        FileKind::Config => "config",
        FileKind::Cert => "certificate",
        FileKind::Key => "key",
        FileKind::Ca => "CA",
        FileKind::Public => "public key",
        FileKind::Secret => "secret",
        FileKind::Manifest => "manifest",
        FileKind::OnNode => "on-node key",
    }
}

/// What a push does to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Update,
    Remove,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Update => "update",
            Change::Remove => "remove",
        }
    }
}

/// One file that changes, and why.
#[derive(Clone, Debug, Serialize)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
    /// `content`, `mode 0644 -> 0600`, `owner root:root -> etcd:etcd`.
    pub detail: String,
}

/// A file as the node holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub sha256: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// What the probe found on a node.
#[derive(Clone, Debug, Default)]
pub struct RemoteState {
    /// `None`: absent.
    pub files: BTreeMap<String, Option<RemoteFile>>,
    /// Paths holding something other than a regular file (a directory, a link).
    pub not_regular: Vec<String>,
    pub missing_users: Vec<String>,
    pub missing_groups: Vec<String>,
    /// The manifest of the last push, when the node has one.
    pub manifest: Option<Manifest>,
    /// SHA-256 of that manifest file.
    pub manifest_sha256: Option<String>,
}

/// A staged tree read for pushing: its manifest, checked, and the manifest's own bytes.
pub struct StagedTree {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub(crate) manifest_bytes: Vec<u8>,
}

impl StagedTree {
    /// Reads `OUT/<node>/` and its manifest; every path, owner, group and mode in it must
    /// be one a script can carry ([`Safe`]).
    pub fn read(out: &Path, node: &str) -> Result<StagedTree, DistributeError> {
        let root = out.join(node);
        let err = |message: String| DistributeError::Staged {
            node: node.to_owned(),
            message,
        };
        let manifest_path = root.join(MANIFEST.trim_start_matches('/'));
        let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| {
            err(format!(
                "no staged tree: cannot read {}: {e}",
                manifest_path.display()
            ))
        })?;
        let manifest = stage::read_manifest(&root)
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| err(format!("no manifest at {}", manifest_path.display())))?;
        check_manifest(&manifest).map_err(|m| err(format!("{}: {m}", manifest_path.display())))?;
        Ok(StagedTree {
            root,
            manifest,
            manifest_bytes,
        })
    }

    pub(crate) fn manifest_sha256(&self) -> String {
        stage::sha256(&self.manifest_bytes)
    }
}

/// Every entry of a manifest is one the scripts can carry safely.
fn check_manifest(m: &Manifest) -> Result<(), String> {
    for e in &m.files {
        if !Safe::path(&e.path) {
            return Err(format!("unsafe path {:?}", e.path));
        }
        if e.kind == FileKind::OnNode {
            continue;
        }
        if !Safe::name(&e.owner) || !Safe::name(&e.group) {
            return Err(format!(
                "{}: unsafe owner or group {:?}:{:?}",
                e.path, e.owner, e.group
            ));
        }
        if Safe::mode(&e.mode).is_none() {
            return Err(format!(
                "{}: mode {:?} is not four octal digits without set-id bits",
                e.path, e.mode
            ));
        }
        if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{}: bad SHA-256 {:?}", e.path, e.sha256));
        }
    }
    Ok(())
}

/// Parses the probe's output.
pub fn parse_probe(node: &str, out: &str) -> Result<RemoteState, DistributeError> {
    let err = |message: String| DistributeError::Remote {
        node: node.to_owned(),
        message,
    };
    if !out.lines().any(|l| l == "kpki-probe end") {
        return Err(err(format!(
            "the node did not answer the probe (is /bin/sh there?): {}",
            crate::terminal::printable(out.lines().last().unwrap_or("no output"))
        )));
    }
    let mut st = RemoteState::default();
    for line in out.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "F" => {
                let mut it = rest.splitn(5, ' ');
                let (Some(h), Some(m), Some(o), Some(g), Some(p)) =
                    (it.next(), it.next(), it.next(), it.next(), it.next())
                else {
                    return Err(err(format!("bad probe line {line:?}")));
                };
                st.files.insert(
                    p.to_owned(),
                    Some(RemoteFile {
                        sha256: h.to_owned(),
                        mode: u32::from_str_radix(m, 8).unwrap_or(u32::MAX),
                        owner: o.to_owned(),
                        group: g.to_owned(),
                    }),
                );
            }
            "A" => {
                st.files.insert(rest.to_owned(), None);
            }
            "X" => st.not_regular.push(rest.to_owned()),
            "U" | "G" => {
                if let Some((name, "no")) = rest.rsplit_once(' ') {
                    if tag == "U" {
                        st.missing_users.push(name.to_owned());
                    } else {
                        st.missing_groups.push(name.to_owned());
                    }
                }
            }
            "M" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .map_err(|e| err(format!("cannot decode the node's manifest: {e}")))?;
                st.manifest_sha256 = Some(stage::sha256(&bytes));
                // A node's manifest that cannot be read is ignored for removals (nothing is
                // removed on its say) but still replaced.
                st.manifest = serde_json::from_slice::<Manifest>(&bytes)
                    .ok()
                    .filter(|m| check_manifest(m).is_ok());
            }
            _ => {}
        }
    }
    Ok(st)
}

/// What pushing `staged` onto a node holding `remote` changes.
pub fn diff(staged: &StagedTree, remote: &RemoteState) -> Vec<FileChange> {
    let mut v = Vec::new();
    for e in &staged.manifest.files {
        if e.kind == FileKind::OnNode {
            continue;
        }
        let mode = Safe::mode(&e.mode).unwrap_or(0);
        match remote.files.get(&e.path) {
            Some(Some(r)) => {
                let mut why = Vec::new();
                if r.sha256 != e.sha256 {
                    why.push("content".to_owned());
                }
                if r.mode != mode {
                    why.push(format!("mode {:04o} -> {:04o}", r.mode, mode));
                }
                if r.owner != e.owner || r.group != e.group {
                    why.push(format!(
                        "owner {}:{} -> {}:{}",
                        r.owner, r.group, e.owner, e.group
                    ));
                }
                if !why.is_empty() {
                    v.push(FileChange {
                        path: e.path.clone(),
                        change: Change::Update,
                        detail: why.join(", "),
                    });
                }
            }
            _ => v.push(FileChange {
                path: e.path.clone(),
                change: Change::New,
                detail: format!("{} {} {}:{}", kind_word(e.kind), e.mode, e.owner, e.group),
            }),
        }
    }
    // Only files an earlier kpki manifest listed are ever removed.
    if let Some(old) = &remote.manifest {
        let now: BTreeSet<&str> = staged
            .manifest
            .files
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        for e in &old.files {
            if e.kind == FileKind::OnNode || now.contains(e.path.as_str()) {
                continue;
            }
            if matches!(remote.files.get(&e.path), Some(Some(_))) {
                v.push(FileChange {
                    path: e.path.clone(),
                    change: Change::Remove,
                    detail: "no longer staged".into(),
                });
            }
        }
    }
    let staged_sha = staged.manifest_sha256();
    if !v.is_empty() || remote.manifest_sha256.as_deref() != Some(staged_sha.as_str()) {
        v.push(FileChange {
            path: MANIFEST.into(),
            change: if remote.manifest_sha256.is_some() {
                Change::Update
            } else {
                Change::New
            },
            detail: "kpki manifest".into(),
        });
    }
    v
}

/// How a node's push ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// `--dry-run`: what would change.
    WouldChange,
    Installed,
    /// Installed, then put back (a restart or gate failed).
    RolledBack,
    /// `--rollback`: the last backup restored.
    Restored,
    Failed,
    /// Not reached: the push stopped before this node's turn.
    Skipped,
}

/// What a push did on one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub host: String,
    pub outcome: Outcome,
    pub files: Vec<FileChange>,
    /// Units and pods restarted (or, with --dry-run or without --restart, to restart).
    pub restarts: Vec<String>,
    /// Whether `restarts` were done.
    pub restarted: bool,
    /// The node's backup directory of this push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The class of the error, for the exit status: `refused` or `failed`.
    #[serde(skip)]
    pub refused: bool,
}

/// How to push.
#[derive(Clone, Debug)]
pub struct Options {
    pub ssh: SshOptions,
    pub parallel: usize,
    pub dry_run: bool,
    pub restart: bool,
    /// How long a restarted member or node may take to pass its gate.
    pub gate_timeout: Duration,
    /// How long one script may run.
    pub script_timeout: Duration,
    /// The backup directory name of this push (`20261202T101500Z`).
    pub stamp: String,
}

/// One node to push.
pub struct Job {
    pub target: Target,
    pub tree: StagedTree,
}

/// Progress, one line per event (the command prints them).
pub trait Progress: Sync {
    fn line(&self, node: &str, message: &str);
}

struct Live {
    job_index: usize,
    session: ssh::Session,
    changed: Vec<String>,
}

/// Pushes every job: install on all nodes (in parallel), then, with `restart`, the
/// gated restarts in cluster order. `etcd_endpoints` are every member's client URL.
pub fn push(
    jobs: &[Job],
    opts: &Options,
    etcd_endpoints: &[String],
    progress: &dyn Progress,
) -> Vec<NodeReport> {
    let dir = match control_dir() {
        Ok(d) => d,
        Err(e) => {
            return jobs
                .iter()
                .map(|j| {
                    failed(
                        j,
                        format!("cannot make a private directory for ssh: {e}"),
                        false,
                    )
                })
                .collect()
        }
    };
    let reports: Mutex<Vec<Option<NodeReport>>> = Mutex::new(vec![None; jobs.len()]);
    let live: Mutex<Vec<Live>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("not poisoned");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(job) = jobs.get(i) else { break };
                let (report, session) = install_node(job, opts, &dir, progress);
                if let Some(session) = session {
                    live.lock().expect("not poisoned").push(Live {
                        job_index: i,
                        session,
                        changed: report.files.iter().map(|f| f.path.clone()).collect(),
                    });
                }
                reports.lock().expect("not poisoned")[i] = Some(report);
            });
        }
    });
    let mut reports: Vec<NodeReport> = reports
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|r| r.expect("every job reported"))
        .collect();
    let mut live = live.into_inner().expect("not poisoned");
    live.sort_by_key(|l| l.job_index);
    if opts.restart && !opts.dry_run {
        restart_in_order(
            jobs,
            &mut live,
            &mut reports,
            opts,
            etcd_endpoints,
            progress,
        );
    }
    drop(live);
    let _ = std::fs::remove_dir_all(&dir);
    reports
}

fn failed(job: &Job, error: String, refused: bool) -> NodeReport {
    NodeReport {
        node: job.target.node.clone(),
        host: job.target.host.clone(),
        outcome: Outcome::Failed,
        files: Vec::new(),
        restarts: Vec::new(),
        restarted: false,
        backup: None,
        error: Some(error),
        refused,
    }
}

/// A private directory for the ssh control sockets: short (a socket path is limited to
/// about 100 bytes), 0700.
fn control_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for i in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let d = base.join(format!("kpki-ssh-{}-{nanos:x}{i}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free name"))
}

/// Probe, diff and (unless a dry run) install one node. Returns the session when the
/// node was reached, for the restarts.
fn install_node(
    job: &Job,
    opts: &Options,
    dir: &Path,
    progress: &dyn Progress,
) -> (NodeReport, Option<ssh::Session>) {
    let t = &job.target;
    let session = match ssh::Session::open(&opts.ssh, t, dir) {
        Ok(s) => s,
        Err(e) => return (failed(job, e.to_string(), false), None),
    };
    let m = &job.tree.manifest;
    let mut paths: BTreeSet<&str> = m.files.iter().map(|e| e.path.as_str()).collect();
    paths.insert(MANIFEST);
    let users: BTreeSet<&str> = m
        .files
        .iter()
        .filter(|e| e.kind != FileKind::OnNode)
        .map(|e| e.owner.as_str())
        .collect();
    let groups: BTreeSet<&str> = m
        .files
        .iter()
        .filter(|e| e.kind != FileKind::OnNode)
        .map(|e| e.group.as_str())
        .collect();
    // The node's own manifest may list files the staged one does not: probe those too.
    let probe1 = script::probe(
        &paths.iter().copied().collect::<Vec<_>>(),
        &users.iter().copied().collect::<Vec<_>>(),
        &groups.iter().copied().collect::<Vec<_>>(),
    );
    let mut state = match session
        .run(probe1.as_bytes(), opts.script_timeout)
        .and_then(|o| parse_probe(&t.node, &o.stdout))
    {
        Ok(s) => s,
        Err(e) => return (failed(job, e.to_string(), false), Some(session)),
    };
    if let Some(old) = &state.manifest {
        let extra: Vec<&str> = old
            .files
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| !paths.contains(p))
            .collect();
        if !extra.is_empty() {
            match session
                .run(
                    script::probe(&extra, &[], &[]).as_bytes(),
                    opts.script_timeout,
                )
                .and_then(|o| parse_probe(&t.node, &o.stdout))
            {
                Ok(more) => {
                    state.files.extend(more.files);
                    state.not_regular.extend(more.not_regular);
                }
                Err(e) => return (failed(job, e.to_string(), false), Some(session)),
            }
        }
    }
    let files = diff(&job.tree, &state);
    let changed: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let restarts = restart::restarts(&job.tree.root, &changed);
    let mut report = NodeReport {
        node: t.node.clone(),
        host: t.host.clone(),
        outcome: Outcome::Unchanged,
        restarts: restarts.names(),
        files,
        restarted: false,
        backup: None,
        error: None,
        refused: false,
    };
    if report.files.is_empty() {
        progress.line(&t.node, "unchanged");
        return (report, Some(session));
    }
    // Refusals before anything is written.
    let targets: BTreeSet<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
    let blocked: Vec<&String> = state
        .not_regular
        .iter()
        .filter(|p| targets.contains(p.as_str()))
        .collect();
    let mut refusal = None;
    if let Some(p) = blocked.first() {
        refusal = Some(format!(
            "{p} on the node is not a regular file (a directory or a symbolic link); kpki does not replace it"
        ));
    } else if let Some(u) = state.missing_users.first() {
        refusal = Some(format!("owner {u} does not exist on the node"));
    } else if let Some(g) = state.missing_groups.first() {
        refusal = Some(format!("group {g} does not exist on the node"));
    }
    if let Some(r) = refusal {
        report.outcome = Outcome::Failed;
        report.error = Some(r);
        report.refused = true;
        return (report, Some(session));
    }
    if opts.dry_run {
        report.outcome = Outcome::WouldChange;
        progress.line(
            &t.node,
            &format!("would change {} files", report.files.len()),
        );
        return (report, Some(session));
    }
    // Contents, read from the staged tree into memory only.
    let mut contents: Vec<(Zeroizing<Vec<u8>>, &stage::Entry)> = Vec::new();
    let manifest_entry = stage::Entry {
        path: MANIFEST.into(),
        mode: "0644".into(),
        owner: "root".into(),
        group: "root".into(),
        kind: FileKind::Manifest,
        source: "kpki".into(),
        sha256: job.tree.manifest_sha256(),
    };
    let mut removals: Vec<&str> = Vec::new();
    for f in &report.files {
        if f.change == Change::Remove {
            removals.push(&f.path);
            continue;
        }
        let entry = if f.path == MANIFEST {
            &manifest_entry
        } else {
            match m.files.iter().find(|e| e.path == f.path) {
                Some(e) => e,
                None => continue,
            }
        };
        let file = crate::render::refs::resolve(&job.tree.root, Path::new(&entry.path));
        match read_regular(&file) {
            Ok(b) => contents.push((b, entry)),
            Err(e) => {
                let r = failed(
                    job,
                    format!("cannot read staged {}: {e}", file.display()),
                    false,
                );
                return (r, Some(session));
            }
        }
    }
    let uploads: Vec<Upload<'_>> = contents
        .iter()
        .map(|(b, e)| Upload {
            path: &e.path,
            bytes: b,
            sha256: &e.sha256,
            mode: Safe::mode(&e.mode).unwrap_or(0o644),
            owner: &e.owner,
            group: &e.group,
        })
        .collect();
    let script = match script::install(&uploads, &removals, &opts.stamp) {
        Ok(s) => s,
        Err(e) => return (failed(job, e.to_string(), false), Some(session)),
    };
    progress.line(&t.node, &format!("installing {} files", report.files.len()));
    match session.run(script.as_bytes(), opts.script_timeout) {
        Ok(o) => match result_line(&o.stdout) {
            Some(Ok(backup)) => {
                report.outcome = Outcome::Installed;
                report.backup = Some(backup);
                progress.line(&t.node, &format!("installed {} files", report.files.len()));
            }
            Some(Err(why)) => {
                report.outcome = Outcome::Failed;
                report.error = Some(why);
            }
            None => {
                report.outcome = Outcome::Failed;
                report.error = Some(format!(
                    "the install script ended without a result (exit {:?}): {}",
                    o.code,
                    crate::terminal::printable(o.stderr.trim())
                ));
            }
        },
        Err(e) => {
            report.outcome = Outcome::Failed;
            report.error = Some(e.to_string());
        }
    }
    (report, Some(session))
}

/// A staged file: regular, not through a link, into memory.
pub(crate) fn read_regular(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut v = Zeroizing::new(Vec::new());
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// `OK <dir>` or `FAIL <why>`: the last such line of a script's output.
pub(crate) fn result_line(out: &str) -> Option<Result<String, String>> {
    out.lines().rev().find_map(|l| {
        if let Some(d) = l.strip_prefix("OK ") {
            Some(Ok(d.to_owned()))
        } else {
            l.strip_prefix("FAIL ")
                .map(|w| Err(crate::terminal::printable(w).into_owned()))
        }
    })
}

/// The restarts, in cluster order: etcd members one at a time (followers first, the
/// leader last), then masters one at a time, then the other nodes in parallel. The
/// first failure rolls its node back and stops the push.
fn restart_in_order(
    jobs: &[Job],
    live: &mut [Live],
    reports: &mut [NodeReport],
    opts: &Options,
    etcd_endpoints: &[String],
    progress: &dyn Progress,
) {
    let installed: Vec<usize> = (0..live.len())
        .filter(|&k| reports[live[k].job_index].outcome == Outcome::Installed)
        .collect();
    let plan: BTreeMap<usize, Restarts> = installed
        .iter()
        .map(|&k| {
            let l = &live[k];
            let changed: Vec<&str> = l.changed.iter().map(String::as_str).collect();
            (k, restart::restarts(&jobs[l.job_index].tree.root, &changed))
        })
        .filter(|(_, r)| !r.is_empty())
        .collect();
    // 1. etcd members.
    let mut members: Vec<usize> = plan
        .iter()
        .filter(|(_, r)| r.units.iter().any(|u| u == ETCD_UNIT))
        .map(|(&k, _)| k)
        .collect();
    if let Some(leader) = members
        .iter()
        .find_map(|&k| etcd_leader(&live[k], jobs, etcd_endpoints, opts))
    {
        // Followers first, the leader last (it hands leadership over once, at the end).
        members.sort_by_key(|&k| endpoint_of(jobs, &live[k]).as_deref() == Some(leader.as_str()));
    }
    let mut stopped = false;
    let done = |reports: &mut [NodeReport], k: usize, r: Result<(), String>| {
        let rep = &mut reports[live[k].job_index];
        match r {
            Ok(()) => {
                rep.restarted = true;
                true
            }
            Err(e) => {
                rep.outcome = Outcome::RolledBack;
                rep.error = Some(e);
                false
            }
        }
    };
    for &k in &members {
        let step = Step {
            units: vec![ETCD_UNIT.to_owned()],
            pods: Vec::new(),
            reload: plan[&k].daemon_reload,
        };
        let r = restart_node(
            &jobs[live[k].job_index],
            &live[k],
            &step,
            opts,
            etcd_endpoints,
            progress,
        );
        if !done(reports, k, r) {
            stopped = true;
            break;
        }
    }
    // 2. masters one at a time, 3. the rest in parallel.
    let step_of = |k: usize| -> Step {
        let r = &plan[&k];
        let etcd_done = members.contains(&k);
        Step {
            units: r
                .units
                .iter()
                .filter(|u| !(etcd_done && *u == ETCD_UNIT))
                .cloned()
                .collect(),
            pods: r.pods.clone(),
            reload: r.daemon_reload && !etcd_done,
        }
    };
    let is_master = |k: usize| jobs[live[k].job_index].target.roles.contains(&Role::Master);
    let masters: Vec<usize> = plan.keys().copied().filter(|&k| is_master(k)).collect();
    let others: Vec<usize> = plan.keys().copied().filter(|&k| !is_master(k)).collect();
    if !stopped {
        for &k in &masters {
            let step = step_of(k);
            let r = if step.is_empty() {
                Ok(())
            } else {
                restart_node(
                    &jobs[live[k].job_index],
                    &live[k],
                    &step,
                    opts,
                    etcd_endpoints,
                    progress,
                )
            };
            if !done(reports, k, r) {
                stopped = true;
                break;
            }
        }
    }
    if !stopped {
        let results: Mutex<Vec<(usize, Result<(), String>)>> = Mutex::new(Vec::new());
        let failed = std::sync::atomic::AtomicBool::new(false);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let live_ref: &[Live] = live;
        std::thread::scope(|s| {
            for _ in 0..opts.parallel.clamp(1, others.len().max(1)) {
                s.spawn(|| loop {
                    use std::sync::atomic::Ordering::SeqCst;
                    if failed.load(SeqCst) {
                        break;
                    }
                    let Some(&k) = others.get(next.fetch_add(1, SeqCst)) else {
                        break;
                    };
                    let step = step_of(k);
                    let r = if step.is_empty() {
                        Ok(())
                    } else {
                        restart_node(
                            &jobs[live_ref[k].job_index],
                            &live_ref[k],
                            &step,
                            opts,
                            etcd_endpoints,
                            progress,
                        )
                    };
                    if r.is_err() {
                        failed.store(true, SeqCst);
                    }
                    results.lock().expect("not poisoned").push((k, r));
                });
            }
        });
        for (k, r) in results.into_inner().expect("not poisoned") {
            if !done(reports, k, r) {
                stopped = true;
            }
        }
    }
    if stopped {
        for &k in plan.keys() {
            let j = live[k].job_index;
            if reports[j].outcome == Outcome::Installed && !reports[j].restarted {
                reports[j].error.get_or_insert_with(|| {
                    "installed; not restarted: the push stopped at an earlier node".into()
                });
            }
        }
    }
}

const ETCD_UNIT: &str = "etcd.service";

/// A member's own client URL, from its staged options.env.
fn endpoint_of(jobs: &[Job], l: &Live) -> Option<String> {
    restart::etcd_gate(&jobs[l.job_index].tree.root, Vec::new()).map(|g| g.endpoint)
}

/// The current leader's client URL, asked through one member.
fn etcd_leader(l: &Live, jobs: &[Job], all: &[String], opts: &Options) -> Option<String> {
    let g = restart::etcd_gate(&jobs[l.job_index].tree.root, all.to_vec())?;
    let o = l
        .session
        .run(script::etcd_gate(&g).as_bytes(), opts.script_timeout)
        .ok()?;
    let status = o.stdout.lines().find_map(|x| x.strip_prefix("S "))?;
    let members = etcd_status(status).ok()?;
    let leader = members.first()?.leader;
    members
        .iter()
        .find(|m| m.member_id == leader)
        .map(|m| m.endpoint.clone())
}

/// One row of `etcdctl endpoint status -w json`.
#[derive(Debug)]
struct MemberStatus {
    endpoint: String,
    member_id: u64,
    leader: u64,
    raft_term: u64,
}

fn etcd_status(json: &str) -> Result<Vec<MemberStatus>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("unreadable endpoint status: {e}"))?;
    let rows = v.as_array().ok_or("endpoint status is not a list")?;
    rows.iter()
        .map(|r| {
            let st = &r["Status"];
            Ok(MemberStatus {
                endpoint: r["Endpoint"].as_str().unwrap_or_default().to_owned(),
                member_id: st["header"]["member_id"].as_u64().unwrap_or(0),
                leader: st["leader"].as_u64().unwrap_or(0),
                raft_term: st["raft_term"]
                    .as_u64()
                    .or_else(|| st["raftTerm"].as_u64())
                    .or_else(|| st["header"]["raft_term"].as_u64())
                    .unwrap_or(0),
            })
        })
        .collect()
}

/// Restarts units and pods on one node and waits for its gate; on a failure rolls the
/// node back, restarts it again and returns why.
fn restart_node(
    job: &Job,
    l: &Live,
    step: &Step,
    opts: &Options,
    etcd_endpoints: &[String],
    progress: &dyn Progress,
) -> Result<(), String> {
    let node = &job.target.node;
    let u: Vec<&str> = step.units.iter().map(String::as_str).collect();
    let p: Vec<&str> = step.pods.iter().map(String::as_str).collect();
    progress.line(node, &format!("restarting {}", names(&u, &p)));
    let result = run_restart(l, &u, &p, step.reload, opts).and_then(|()| {
        if u.contains(&ETCD_UNIT) {
            wait_etcd(job, l, etcd_endpoints, opts)
        } else {
            wait_active(l, &u, opts)
        }
    });
    match result {
        Ok(()) => {
            progress.line(node, "restarted, gate passed");
            Ok(())
        }
        Err(why) => {
            progress.line(node, &format!("{why}; rolling back"));
            let back = rollback_session(l, opts).and_then(|_| run_restart(l, &u, &p, true, opts));
            Err(match back {
                Ok(()) => {
                    format!("{why}; rolled back to the files before this push and restarted")
                }
                Err(e) => format!("{why}; rollback failed too: {e}"),
            })
        }
    }
}

/// What one node restarts in one phase.
struct Step {
    units: Vec<String>,
    pods: Vec<String>,
    reload: bool,
}

impl Step {
    fn is_empty(&self) -> bool {
        self.units.is_empty() && self.pods.is_empty() && !self.reload
    }
}

fn names(u: &[&str], p: &[&str]) -> String {
    u.iter()
        .map(|s| (*s).to_owned())
        .chain(p.iter().map(|p| format!("pod/{p}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_restart(
    l: &Live,
    u: &[&str],
    p: &[&str],
    reload: bool,
    opts: &Options,
) -> Result<(), String> {
    let o = l
        .session
        .run(
            script::restart(u, reload, p).as_bytes(),
            opts.script_timeout,
        )
        .map_err(|e| e.to_string())?;
    if let Some(bad) = o
        .stdout
        .lines()
        .find(|x| x.starts_with("R ") && x.ends_with(" failed"))
    {
        let what = bad.trim_start_matches("R ").trim_end_matches(" failed");
        return Err(format!("systemctl restart {what} failed"));
    }
    Ok(())
}

/// Every unit active, within the gate timeout.
fn wait_active(l: &Live, u: &[&str], opts: &Options) -> Result<(), String> {
    if u.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + opts.gate_timeout;
    loop {
        let o = l
            .session
            .run(script::active(u).as_bytes(), opts.script_timeout)
            .map_err(|e| e.to_string())?;
        let down: Vec<&str> = o
            .stdout
            .lines()
            .filter_map(|x| x.strip_prefix("A ")?.strip_suffix(" no"))
            .collect();
        if down.is_empty() && o.stdout.lines().count() >= u.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not active within {:?}",
                down.join(", "),
                opts.gate_timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// etcd's gate: the member healthy, every member agreeing on one leader and one raft
/// term, and the member serving the certificate just installed.
fn wait_etcd(job: &Job, l: &Live, all: &[String], opts: &Options) -> Result<(), String> {
    let Some(g) = restart::etcd_gate(&job.tree.root, all.to_vec()) else {
        return Err("cannot gate etcd: the staged options.env does not name its client URL, certificate, key and CA".into());
    };
    let want = restart::staged_serial(&job.tree.root, &g.cert);
    let deadline = Instant::now() + opts.gate_timeout;
    let mut last;
    loop {
        match l
            .session
            .run(script::etcd_gate(&g).as_bytes(), opts.script_timeout)
        {
            Ok(o) => match judge_etcd(&o.stdout, all, want.as_deref()) {
                Ok(()) => return Ok(()),
                Err(why) => last = why,
            },
            Err(e) => last = e.to_string(),
        }
        if Instant::now() > deadline {
            return Err(format!(
                "etcd member not back within {:?}: {last}",
                opts.gate_timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn judge_etcd(out: &str, all: &[String], want_serial: Option<&str>) -> Result<(), String> {
    let line = |tag: &str| out.lines().find_map(|l| l.strip_prefix(tag)).map(str::trim);
    if line("H ") != Some("yes") {
        return Err("the member is not healthy".into());
    }
    let members = etcd_status(line("S ").unwrap_or("")).map_err(|e| format!("status: {e}"))?;
    if members.len() < all.len() {
        return Err(format!(
            "{} of {} members answered",
            members.len(),
            all.len()
        ));
    }
    let leaders: BTreeSet<u64> = members.iter().map(|m| m.leader).collect();
    let terms: BTreeSet<u64> = members.iter().map(|m| m.raft_term).collect();
    if leaders.len() != 1 || leaders.contains(&0) {
        return Err(format!("members disagree on the leader ({leaders:?})"));
    }
    if terms.len() != 1 {
        return Err(format!("members disagree on the raft term ({terms:?})"));
    }
    if let Some(want) = want_serial {
        match line("C ") {
            Some("no-openssl") | None => {}
            Some(got) => {
                let got = got.trim_start_matches("serial=").trim_start_matches('0');
                if !got.eq_ignore_ascii_case(want.trim_start_matches('0')) {
                    return Err(format!(
                        "the member serves serial {got}, not the new {want}"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn rollback_session(l: &Live, opts: &Options) -> Result<Vec<String>, String> {
    let o = l
        .session
        .run(script::rollback().as_bytes(), opts.script_timeout)
        .map_err(|e| e.to_string())?;
    match result_line(&o.stdout) {
        Some(Ok(_)) => Ok(o
            .stdout
            .lines()
            .filter_map(|x| x.strip_prefix("P "))
            .map(str::to_owned)
            .collect()),
        Some(Err(w)) => Err(w),
        None => Err("the rollback script ended without a result".into()),
    }
}

/// `kpki push --rollback`: restores the node's newest backup; with `restart`, restarts
/// what the restored files feed.
pub fn rollback(job: &Job, opts: &Options, progress: &dyn Progress) -> NodeReport {
    let dir = match control_dir() {
        Ok(d) => d,
        Err(e) => {
            return failed(
                job,
                format!("cannot make a private directory for ssh: {e}"),
                false,
            )
        }
    };
    let report = (|| {
        let session = match ssh::Session::open(&opts.ssh, &job.target, &dir) {
            Ok(s) => s,
            Err(e) => return failed(job, e.to_string(), false),
        };
        let l = Live {
            job_index: 0,
            session,
            changed: Vec::new(),
        };
        let paths = match rollback_session(&l, opts) {
            Ok(p) => p,
            Err(e) => return failed(job, e, false),
        };
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let r = restart::restarts(&job.tree.root, &refs);
        let mut report = NodeReport {
            node: job.target.node.clone(),
            host: job.target.host.clone(),
            outcome: Outcome::Restored,
            files: paths
                .iter()
                .map(|p| FileChange {
                    path: p.clone(),
                    change: Change::Update,
                    detail: "restored".into(),
                })
                .collect(),
            restarts: r.names(),
            restarted: false,
            backup: None,
            error: None,
            refused: false,
        };
        progress.line(&job.target.node, &format!("restored {} files", paths.len()));
        if opts.restart && !r.is_empty() {
            let u: Vec<&str> = r.units.iter().map(String::as_str).collect();
            let p: Vec<&str> = r.pods.iter().map(String::as_str).collect();
            match run_restart(&l, &u, &p, r.daemon_reload, opts)
                .and_then(|()| wait_active(&l, &u, opts))
            {
                Ok(()) => report.restarted = true,
                Err(e) => {
                    report.outcome = Outcome::Failed;
                    report.error = Some(format!("restored, but {e}"));
                }
            }
        }
        report
    })();
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// Opens a session to one node for a one-off question, with its own control directory.
fn with_session<T>(
    job: &Job,
    opts: &Options,
    f: impl FnOnce(&Live) -> Result<T, String>,
) -> Result<T, String> {
    let dir = control_dir().map_err(|e| format!("cannot make a private directory for ssh: {e}"))?;
    let r = ssh::Session::open(&opts.ssh, &job.target, &dir)
        .map_err(|e| e.to_string())
        .and_then(|session| {
            f(&Live {
                job_index: 0,
                session,
                changed: Vec::new(),
            })
        });
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// Which of `members` (etcd members' jobs) is the leader now, asked through the first
/// one that answers.
pub fn etcd_leader_of(members: &[&Job], opts: &Options, all: &[String]) -> Option<usize> {
    for m in members {
        let ep = with_session(m, opts, |l| {
            etcd_leader(l, std::slice::from_ref(*m), all, opts).ok_or_else(String::new)
        });
        if let Ok(ep) = ep {
            return members.iter().position(|j| {
                restart::etcd_gate(&j.tree.root, Vec::new()).map(|g| g.endpoint) == Some(ep.clone())
            });
        }
    }
    None
}

/// Whether a node passes its gate now: for an etcd member the cluster gate (healthy,
/// one leader and term, serving the staged certificate), otherwise every unit active.
pub fn check_gate(
    job: &Job,
    opts: &Options,
    all: &[String],
    units: &[String],
) -> Result<(), String> {
    with_session(job, opts, |l| {
        if units.iter().any(|u| u == ETCD_UNIT) {
            wait_etcd(job, l, all, opts)
        } else {
            let u: Vec<&str> = units.iter().map(String::as_str).collect();
            wait_active(l, &u, opts)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_etcd_status() {
        let s = r#"[{"Endpoint":"https://a:2379","Status":{"header":{"member_id":1,"raft_term":3},"leader":2,"raftTerm":3}},{"Endpoint":"https://b:2379","Status":{"header":{"member_id":2,"raft_term":3},"leader":2,"raftTerm":3}}]"#;
        let out = format!("H yes\nS {s}\nC serial=0ABC\n");
        let all = vec!["https://a:2379".into(), "https://b:2379".into()];
        assert_eq!(judge_etcd(&out, &all, Some("0ABC")), Ok(()));
        assert!(judge_etcd(&out, &all, Some("0ABD"))
            .unwrap_err()
            .contains("serial"));
        let split = s.replacen("\"leader\":2", "\"leader\":1", 1);
        assert!(judge_etcd(&format!("H yes\nS {split}\n"), &all, None)
            .unwrap_err()
            .contains("leader"));
        assert!(judge_etcd("H no\n", &all, None).is_err());
    }

    #[test]
    fn probe_output_parses() {
        let out = "kpki-probe 1\nF abc 600 etcd etcd /etc/ssl/etcd/etcd.key\nA /etc/x\nX /etc/d\nU etcd no\nG etcd yes\nkpki-probe end\n";
        let st = parse_probe("n", out).unwrap();
        assert_eq!(
            st.files["/etc/ssl/etcd/etcd.key"],
            Some(RemoteFile {
                sha256: "abc".into(),
                mode: 0o600,
                owner: "etcd".into(),
                group: "etcd".into()
            })
        );
        assert_eq!(st.files["/etc/x"], None);
        assert_eq!(st.not_regular, vec!["/etc/d"]);
        assert_eq!(st.missing_users, vec!["etcd"]);
        assert!(st.missing_groups.is_empty());
        assert!(parse_probe("n", "kpki-probe 1\n").is_err());
    }
}
