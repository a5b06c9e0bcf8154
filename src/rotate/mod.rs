//! Leaf rotation in a maintenance window: the planner's `expiring`, `issuer` and `drift`
//! decisions (or every selected certificate, with `--force`) issued as new generations,
//! staged, and delivered node by node by push's machinery in the order that keeps the
//! cluster up, with an immutable plan and an append-only journal so that a rotation cut
//! short (a closing window, a failed gate, a killed process) resumes where it stopped
//! and never issues twice.
//!
//! A rotation lives in `STORE/rotations/<id>/`: `plan.json` (written once) and `journal`
//! (one JSON line per step event, each flushed to disk before the step's effects are
//! relied on). Steps: issue, stage, then one per etcd member (followers first, the
//! leader last: decided when the etcd phase starts), one per master, and one for the
//! other nodes together (they restart in parallel).

pub mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::inventory::{Inventory, Role};
use crate::plan::{self, Decision, Overrides, Reason, Target};
use crate::profile::Profiles;
use crate::stage::{self, FileKind};
use crate::store::Store;

pub use window::Window;

/// Exit status of a rotation that stopped at a window's end (or was refused outside it):
/// sysexits' EX_TEMPFAIL, "try again later".
pub const EXIT_PAUSED: u8 = 75;

/// Why a rotation cannot be planned or run.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{0}")]
    Usage(String, String),
    #[error("{path}: {message}")]
    Journal { path: PathBuf, message: String },
}

impl RotateError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RotateError::Usage(_, h) => Some(h.clone()),
            RotateError::Journal { .. } => Some(
                "look at `kpki rotate status`; the journal is append-only, never edit it".into(),
            ),
        }
    }
}

/// What to rotate.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Rotate what expires within this (beyond each profile's own renew-before).
    pub within: Option<Duration>,
    /// Every selected certificate, whatever its state.
    pub force: bool,
    pub profiles: Vec<String>,
    pub nodes: Vec<String>,
    /// Keep each key (`--renew`); a new key otherwise.
    pub renew: bool,
}

/// One certificate to reissue.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Item {
    pub profile: String,
    /// The store's target (`etcd01`, `cluster`).
    pub target: String,
    pub reason: String,
    /// The generation held when planned: a resumed issue step reissues only items whose
    /// current generation is still this one.
    pub from_generation: Option<u64>,
    /// The nodes whose staged files it changes.
    pub nodes: Vec<String>,
}

/// What a node step restarts, and in which phase it runs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Etcd,
    Master,
    Nodes,
}

/// One step of a rotation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Step {
    /// Issue every item as a new generation.
    Issue,
    /// Stage every node's tree (as `kpki apply`).
    Stage,
    /// Push to these nodes with --restart (one node for etcd members and masters).
    Push {
        phase: Phase,
        nodes: Vec<String>,
        restarts: Vec<String>,
    },
}

/// An immutable rotation plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotationPlan {
    pub id: String,
    pub created: String,
    pub out: PathBuf,
    pub renew: bool,
    pub items: Vec<Item>,
    pub steps: Vec<Step>,
    /// Seconds each step is expected to take (the window check uses them).
    pub estimates: Vec<u64>,
}

impl RotationPlan {
    pub fn total_estimate(&self) -> u64 {
        self.estimates.iter().sum()
    }
}

/// Seconds a step is expected to take: an etcd member's restart and gate, a master's,
/// the other nodes' (in parallel).
fn estimate(step: &Step, items: usize) -> u64 {
    match step {
        Step::Issue => 2 + items as u64 / 4,
        Step::Stage => 3,
        Step::Push {
            phase: Phase::Etcd, ..
        } => 20,
        Step::Push {
            phase: Phase::Master,
            ..
        } => 15,
        Step::Push { nodes, .. } => 10 + nodes.len() as u64 / 8,
    }
}

/// Plans a rotation: which certificates, which nodes, which restarts, in which order.
/// `out` is the staging directory `kpki apply` wrote (its manifests say which node gets
/// which profile's files).
pub fn plan(
    store: &Store,
    profiles: &Profiles,
    inv: &Inventory,
    out: &Path,
    sel: &Selection,
    id: String,
    now: OffsetDateTime,
) -> Result<RotationPlan, crate::Error> {
    for p in &sel.profiles {
        profiles.get(p)?;
    }
    for n in &sel.nodes {
        if !inv.nodes().iter().any(|x| x.name.as_str() == n) {
            return Err(RotateError::Usage(
                format!("no node {n:?} in the inventory"),
                "name a [[nodes]] entry".into(),
            )
            .into());
        }
    }
    let plans = plan::plan_cluster(profiles, inv, &Overrides::default())?;
    let horizon = now
        .checked_add(sel.within.unwrap_or(Duration::ZERO))
        .filter(|h| h.year() <= 9999)
        .ok_or_else(|| {
            RotateError::Usage(
                "--within reaches past the year 9999".into(),
                "give a span shorter than the certificates' lifetime, such as 30d".into(),
            )
        })?;
    let decisions: Vec<Decision> = plan::decide(Some(store), profiles, plans, horizon)?;
    // Which nodes hold which profile's files, from the staged manifests.
    let mut holders: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for n in inv.nodes() {
        let root = out.join(n.name.as_str());
        let Ok(Some(m)) = stage::read_manifest(&root) else {
            return Err(RotateError::Usage(
                format!("no staged tree for {} in {}", n.name, out.display()),
                format!("run `kpki apply --out {}` first", out.display()),
            )
            .into());
        };
        for e in m.files {
            if matches!(e.kind, FileKind::Ca | FileKind::Manifest | FileKind::Config) {
                continue;
            }
            holders
                .entry(e.source.clone())
                .or_default()
                .entry(n.name.as_str().to_owned())
                .or_default()
                .push(e.path);
        }
    }
    let mut items = Vec::new();
    let mut restarts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in decisions {
        let target = d.plan.target.key();
        if !sel.profiles.is_empty() && !sel.profiles.contains(&d.plan.profile) {
            continue;
        }
        // Rotation renews what exists; a missing certificate is `kpki apply`'s job.
        let reason = match (&d.reason, sel.force) {
            (Reason::Missing, _) => continue,
            (_, true) => Reason::Forced,
            (Reason::Ok, false) => continue,
            (r, false) => r.clone(),
        };
        let by_node = holders.get(&d.plan.profile).cloned().unwrap_or_default();
        let nodes: Vec<String> = match &d.plan.target {
            Target::Node(n) => vec![n.to_string()],
            _ => by_node.keys().cloned().collect(),
        };
        if !sel.nodes.is_empty() && !nodes.iter().any(|n| sel.nodes.contains(n)) {
            continue;
        }
        for n in &nodes {
            let paths: Vec<&str> = by_node
                .get(n)
                .map(|v| v.iter().map(String::as_str).collect())
                .unwrap_or_default();
            let r = crate::distribute::restart::restarts(&out.join(n), &paths);
            restarts.entry(n.clone()).or_default().extend(r.names());
        }
        items.push(Item {
            profile: d.plan.profile.clone(),
            target,
            reason: reason.to_string(),
            from_generation: d.held.as_ref().map(|h| h.generation),
            nodes,
        });
    }
    let touched: BTreeSet<&String> = items.iter().flat_map(|i| &i.nodes).collect();
    let mut steps = vec![Step::Issue, Step::Stage];
    let role_of = |name: &str, r: Role| {
        inv.nodes()
            .iter()
            .any(|n| n.name.as_str() == name && n.has_role(r))
    };
    let restarts_of = |n: &str| {
        restarts
            .get(n)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    };
    for n in inv.nodes() {
        let name = n.name.as_str().to_owned();
        if touched.contains(&name) && role_of(&name, Role::Etcd) {
            steps.push(Step::Push {
                phase: Phase::Etcd,
                restarts: restarts_of(&name),
                nodes: vec![name],
            });
        }
    }
    for n in inv.nodes() {
        let name = n.name.as_str().to_owned();
        if touched.contains(&name) && !role_of(&name, Role::Etcd) && role_of(&name, Role::Master) {
            steps.push(Step::Push {
                phase: Phase::Master,
                restarts: restarts_of(&name),
                nodes: vec![name],
            });
        }
    }
    let rest: Vec<String> = inv
        .nodes()
        .iter()
        .map(|n| n.name.as_str().to_owned())
        .filter(|n| touched.contains(n) && !role_of(n, Role::Etcd) && !role_of(n, Role::Master))
        .collect();
    if !rest.is_empty() {
        let mut r: BTreeSet<String> = BTreeSet::new();
        for n in &rest {
            r.extend(restarts_of(n));
        }
        steps.push(Step::Push {
            phase: Phase::Nodes,
            nodes: rest,
            restarts: r.into_iter().collect(),
        });
    }
    let estimates = steps.iter().map(|s| estimate(s, items.len())).collect();
    Ok(RotationPlan {
        id,
        created: crate::pki::rfc3339(now),
        out: out.to_path_buf(),
        renew: sel.renew,
        items,
        steps,
        estimates,
    })
}

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The step's index in the plan; `None` for the rotation as a whole.
    pub step: Option<usize>,
    pub state: State,
    pub at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Done,
    Failed,
    Paused,
    Finished,
}

/// Test-only (debug builds): with `KPKI_TEST_ROTATE_KILL_AT=N`, the process kills itself
/// with SIGKILL right after the N-th journal line of this run is on disk, as a power cut
/// would; the crash tests then resume. Compiled out of release builds.
fn crash_point(_written: usize) {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst) + 1;
        if std::env::var("KPKI_TEST_ROTATE_KILL_AT")
            .ok()
            .and_then(|v| v.parse().ok())
            == Some(n)
        {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
    }
}

/// A rotation's directory: its plan and journal.
pub struct Rotation {
    pub dir: PathBuf,
    pub plan: RotationPlan,
    pub journal: Vec<Entry>,
}

/// Where rotations live in a store.
pub fn rotations_dir(store: &Path) -> PathBuf {
    store.join("rotations")
}

impl Rotation {
    /// Creates the rotation's directory and writes its plan (once).
    pub fn create(store: &Path, plan: RotationPlan) -> Result<Rotation, RotateError> {
        let base = rotations_dir(store);
        let dir = base.join(&plan.id);
        let err = |p: &Path, e: std::io::Error| RotateError::Journal {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        for d in [&base, &dir] {
            match std::fs::symlink_metadata(d) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(RotateError::Journal {
                        path: d.clone(),
                        message: "not a directory".into(),
                    })
                }
                Err(_) => {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .mode(0o700)
                        .create(d)
                        .map_err(|e| err(d, e))?;
                }
            }
        }
        let text = serde_json::to_string_pretty(&plan).expect("a plan serializes") + "\n";
        let p = dir.join("plan.json");
        crate::store::atomic::write(
            store,
            &p,
            text.as_bytes(),
            0o600,
            crate::store::Existing::Refuse,
        )
        .map_err(|e| err(&p, e))?;
        Ok(Rotation {
            dir,
            plan,
            journal: Vec::new(),
        })
    }

    /// Reads a rotation: its plan, and its journal up to the last whole line (a torn last
    /// line, from a crash mid-append, is ignored).
    pub fn load(dir: &Path) -> Result<Rotation, RotateError> {
        let err = |p: &Path, m: String| RotateError::Journal {
            path: p.to_path_buf(),
            message: m,
        };
        let p = dir.join("plan.json");
        let text = std::fs::read(&p).map_err(|e| err(&p, e.to_string()))?;
        let plan: RotationPlan =
            serde_json::from_slice(&text).map_err(|e| err(&p, e.to_string()))?;
        let j = dir.join("journal");
        let text = match std::fs::read_to_string(&j) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(err(&j, e.to_string())),
        };
        let mut journal = Vec::new();
        let whole = text.rfind('\n').map_or("", |i| &text[..i]);
        for (i, line) in whole.lines().enumerate() {
            journal.push(
                serde_json::from_str(line).map_err(|e| err(&j, format!("line {}: {e}", i + 1)))?,
            );
        }
        Ok(Rotation {
            dir: dir.to_path_buf(),
            plan,
            journal,
        })
    }

    /// The newest rotation of a store, if any.
    pub fn latest(store: &Path) -> Result<Option<Rotation>, RotateError> {
        let base = rotations_dir(store);
        let mut ids: Vec<String> = match std::fs::read_dir(&base) {
            Ok(r) => r
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => return Ok(None),
        };
        ids.sort();
        match ids.pop() {
            Some(id) => Rotation::load(&base.join(id)).map(Some),
            None => Ok(None),
        }
    }

    /// Appends one event and flushes it to disk before returning.
    pub fn record(
        &mut self,
        step: Option<usize>,
        state: State,
        note: impl Into<String>,
        now: OffsetDateTime,
    ) -> Result<(), RotateError> {
        use std::os::unix::fs::OpenOptionsExt;
        let e = Entry {
            step,
            state,
            at: crate::pki::rfc3339(now),
            note: note.into(),
        };
        let p = self.dir.join("journal");
        let err = |m: std::io::Error| RotateError::Journal {
            path: p.clone(),
            message: m.to_string(),
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&p)
            .map_err(err)?;
        // A torn line from a crash is cut off first, so the journal stays line-aligned.
        let len = f.metadata().map_err(err)?.len();
        if len > 0 {
            let text = std::fs::read(&p).map_err(err)?;
            if text.last() != Some(&b'\n') {
                let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                f.set_len(keep as u64).map_err(err)?;
            }
        }
        let mut line = serde_json::to_string(&e).expect("an entry serializes");
        line.push('\n');
        f.write_all(line.as_bytes()).map_err(err)?;
        f.sync_data().map_err(err)?;
        self.journal.push(e);
        crash_point(self.journal.len());
        Ok(())
    }

    /// The last state of each step.
    pub fn step_state(&self, step: usize) -> Option<State> {
        self.journal
            .iter()
            .rev()
            .find(|e| e.step == Some(step))
            .map(|e| e.state)
    }

    /// The rotation's own state: finished, failed, paused, running (None).
    pub fn state(&self) -> Option<State> {
        self.journal
            .iter()
            .rev()
            .find(|e| e.step.is_none())
            .map(|e| e.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_appends_and_survives_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let plan = RotationPlan {
            id: "r1".into(),
            created: "2026-12-02T00:00:00Z".into(),
            out: "staged".into(),
            renew: false,
            items: vec![],
            steps: vec![Step::Issue, Step::Stage],
            estimates: vec![1, 1],
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut r = Rotation::create(d.path(), plan.clone()).unwrap();
        assert!(
            Rotation::create(d.path(), plan).is_err(),
            "a plan is written once"
        );
        r.record(Some(0), State::Started, "", now).unwrap();
        r.record(Some(0), State::Done, "", now).unwrap();
        // A crash mid-append leaves half a line.
        let j = r.dir.join("journal");
        let mut t = std::fs::read(&j).unwrap();
        t.extend_from_slice(b"{\"step\":1,\"sta");
        std::fs::write(&j, t).unwrap();
        let mut back = Rotation::load(&r.dir).unwrap();
        assert_eq!(back.journal.len(), 2);
        assert_eq!(back.step_state(0), Some(State::Done));
        assert_eq!(back.step_state(1), None);
        back.record(Some(1), State::Started, "", now).unwrap();
        let again = Rotation::load(&r.dir).unwrap();
        assert_eq!(again.journal.len(), 3);
        assert_eq!(Rotation::latest(d.path()).unwrap().unwrap().plan.id, "r1");
    }
}
