//! `kpki rotate`: plans with [`crate::rotate::plan`], then runs the steps with the
//! store's issuing, the staging `apply` does and [`crate::distribute`]'s push, recording
//! each step in the rotation's journal; `plan`, `status` and `timer` print.

use std::path::Path;
use std::time::Duration as StdDuration;

use time::OffsetDateTime;

use super::Printer;
use crate::cli::rotate::{RotateArgs, RotateCommand, RotateSelect};
use crate::cli::Global;
use crate::distribute::{
    self, restart, Job, NodeReport, Options, Outcome, SshOptions, StagedTree, Target,
};
use crate::error::{Error, Result};
use crate::inventory::{Inventory, Role};
use crate::issue::{self, KeySource, Request};
use crate::plan::{self, Overrides, Reason};
use crate::rotate::{
    self, Phase, Rotation, RotationPlan, Selection, State, Step, Window, EXIT_PAUSED,
};
use crate::span::Span;
use crate::store::Store;

/// Exit status when a node failed its gate (rolled back) or could not be reached.
const EXIT_FAILED: u8 = 3;

/// The clock for window decisions: the real one, or `KPKI_ROTATE_NOW` (RFC 3339), which
/// tests use to stand at a window's edge. It moves windows only: certificates are always
/// issued on the real clock.
fn window_clock(real: OffsetDateTime) -> Result<OffsetDateTime> {
    match std::env::var("KPKI_ROTATE_NOW") {
        Ok(v) if !v.is_empty() => {
            let t = OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    Error::usage(
                        format!("KPKI_ROTATE_NOW={v:?}: {e}"),
                        "write it as 2026-12-05T02:30:00Z",
                    )
                })?;
            // The injected clock advances with the real one, so steps take time.
            let started = *START.get_or_init(|| real);
            Ok(t + (real - started))
        }
        _ => Ok(real),
    }
}

static START: std::sync::OnceLock<OffsetDateTime> = std::sync::OnceLock::new();

fn now_real() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub(super) fn run(g: &Global, a: &RotateArgs, now: OffsetDateTime, p: &mut Printer) -> Result<u8> {
    match &a.command {
        Some(RotateCommand::Plan(x)) => {
            let inv = Inventory::load(&g.inventory)?;
            let profiles = super::profiles(g)?;
            let store = Store::open(&g.store, now)?;
            let plan = build(&store, &profiles, &inv, &x.select, now)?;
            if x.json {
                p.data(serde_json::to_string_pretty(&plan).expect("a plan serializes"))?;
            } else {
                print_plan(&plan, p)?;
            }
            Ok(0)
        }
        Some(RotateCommand::Status(x)) => status(g, x.json, p),
        Some(RotateCommand::Timer(x)) => timer(g, x, p).map(|()| 0),
        None => rotate(g, a, now, p),
    }
}

fn selection(s: &RotateSelect) -> Result<Selection> {
    let within = match &s.within {
        Some(w) => Some(
            w.parse::<Span>()
                .map_err(|e| {
                    Error::usage(format!("--within {w:?}: {e}"), "write a span such as 30d")
                })?
                .duration(),
        ),
        None => None,
    };
    Ok(Selection {
        within,
        force: s.force,
        profiles: s.profile.clone(),
        nodes: s.node.clone(),
        renew: s.renew,
    })
}

fn build(
    store: &Store,
    profiles: &crate::profile::Profiles,
    inv: &Inventory,
    s: &RotateSelect,
    now: OffsetDateTime,
) -> Result<RotationPlan> {
    // To the nanosecond: two rotations in one second are two rotations.
    let id = super::push::stamp(now);
    let out = s.out.as_ref().ok_or_else(|| {
        Error::usage(
            "rotate needs the staging directory",
            "pass --out DIR, the directory `kpki apply --out DIR` wrote",
        )
    })?;
    rotate::plan(store, profiles, inv, out, &selection(s)?, id, now)
}

fn print_plan(plan: &RotationPlan, p: &mut Printer) -> Result<()> {
    if plan.items.is_empty() {
        return p.line("nothing to rotate");
    }
    p.text(format!(
        "rotation {}: {} certificate(s), {} step(s), about {}",
        plan.id,
        plan.items.len(),
        plan.steps.len(),
        minutes(plan.total_estimate())
    ))?;
    for i in &plan.items {
        let to = if i.nodes.is_empty() {
            "the operator's files (_cluster)".to_owned()
        } else {
            i.nodes.join(", ")
        };
        p.text(format!(
            "  {} {} -> {to}  ({})",
            i.profile, i.target, i.reason
        ))?;
    }
    for (n, s) in plan.steps.iter().enumerate() {
        p.text(format!(
            "{:>2}. {}  (~{} s)",
            n + 1,
            describe(s, plan.renew),
            plan.estimates[n]
        ))?;
    }
    Ok(())
}

fn minutes(s: u64) -> String {
    if s < 120 {
        format!("{s} s")
    } else {
        format!("{} min", s.div_ceil(60))
    }
}

fn describe(s: &Step, renew: bool) -> String {
    match s {
        Step::Issue => format!(
            "issue the new certificates ({})",
            if renew { "same keys" } else { "new keys" }
        ),
        Step::Stage => "stage every node's tree (as kpki apply)".into(),
        Step::Push {
            phase,
            nodes,
            restarts,
        } => {
            let what = match phase {
                Phase::Etcd => {
                    "etcd member, one at a time, followers first, the leader last; gated"
                }
                Phase::Master => "master, one at a time; gated",
                Phase::Nodes => "the other nodes, in parallel; gated",
            };
            format!(
                "push {} ({what}): restart {}",
                nodes.join(", "),
                if restarts.is_empty() {
                    "nothing".to_owned()
                } else {
                    restarts.join(" ")
                }
            )
        }
    }
}

fn rotate(g: &Global, a: &RotateArgs, now: OffsetDateTime, p: &mut Printer) -> Result<u8> {
    let inv = Inventory::load(&g.inventory)?;
    let profiles = super::profiles(g)?;
    let window = match &a.deliver.window {
        Some(w) => Some(
            w.parse::<Window>()
                .map_err(|e| Error::usage(e, "see `kpki rotate --help`"))?,
        ),
        None => None,
    };
    // Every decision below is taken under the store lock, held to the end.
    let (store, _lock) = Store::lock_open(&g.store, now)?;
    let mut rot = match Rotation::latest(store.dir())? {
        Some(r) if a.resume => {
            if matches!(r.state(), Some(State::Finished)) {
                p.line(format!(
                    "rotation {} is finished: nothing to resume",
                    r.plan.id
                ))?;
                return Ok(0);
            }
            r
        }
        None if a.resume => {
            p.line("no rotation to resume")?;
            return Ok(0);
        }
        // An unfinished rotation (paused at a window's end, or interrupted) goes on
        // before anything new is planned: the timer's next run resumes it.
        Some(r) if !matches!(r.state(), Some(State::Finished) | Some(State::Failed)) => {
            p.line(format!(
                "resuming rotation {} (unfinished; `kpki rotate status` shows it)",
                r.plan.id
            ))?;
            r
        }
        _ => {
            let plan = build(&store, &profiles, &inv, &a.select, now)?;
            if plan.items.is_empty() {
                p.line("nothing to rotate")?;
                return Ok(0);
            }
            if a.dry_run {
                print_plan(&plan, p)?;
                return Ok(0);
            }
            if let Some(code) = outside(&window, window_clock(now_real())?, &plan, 0, p)? {
                return Ok(code);
            }
            let r = Rotation::create(store.dir(), plan)?;
            p.line(format!(
                "rotation {}: {} certificate(s), journal in {}",
                r.plan.id,
                r.plan.items.len(),
                r.dir.display()
            ))?;
            r
        }
    };
    if a.dry_run {
        print_plan(&rot.plan, p)?;
        return Ok(0);
    }
    if let Some(o) = &a.select.out {
        if *o != rot.plan.out {
            return Err(Error::usage(
                format!(
                    "rotation {} stages into {}, not {}",
                    rot.plan.id,
                    rot.plan.out.display(),
                    o.display()
                ),
                "leave --out out with --resume, or pass the rotation's own",
            ));
        }
    }
    let keyring = super::unlock(g, &store)?;
    let out = rot.plan.out.clone();
    let opts = Options {
        ssh: SshOptions::from_env(a.deliver.ssh_config.clone()),
        parallel: usize::from(a.deliver.parallel),
        dry_run: false,
        restart: true,
        gate_timeout: StdDuration::from_secs(u64::from(a.deliver.gate_timeout)),
        script_timeout: StdDuration::from_secs(300),
        stamp: super::push::stamp(now_real()),
    };
    let endpoints: Vec<String> = inv
        .nodes()
        .iter()
        .filter(|n| n.has_role(Role::Etcd))
        .filter_map(|n| restart::etcd_gate(&out.join(n.name.as_str()), Vec::new()))
        .map(|g| g.endpoint)
        .collect();
    let steps = rot.plan.steps.clone();
    let mut preflight_done = false;
    let mut etcd_order: Option<Vec<usize>> = None;
    let mut i = 0;
    while i < steps.len() {
        if rot.step_state(i) == Some(State::Done) {
            i += 1;
            continue;
        }
        // The etcd phase runs the leader last: decided once, when it starts.
        let step_index = if matches!(
            steps[i],
            Step::Push {
                phase: Phase::Etcd,
                ..
            }
        ) {
            let order = etcd_order
                .get_or_insert_with(|| leader_last(&steps, &inv, &out, &opts, &endpoints));
            match order
                .iter()
                .copied()
                .find(|k| rot.step_state(*k) != Some(State::Done))
            {
                Some(k) => k,
                None => {
                    i += 1;
                    continue;
                }
            }
        } else {
            i
        };
        let wnow = window_clock(now_real())?;
        if let Some(code) = outside(&window, wnow, &rot.plan, step_index, p)? {
            rot.record(None, State::Paused, "window", now_real())?;
            return Ok(code);
        }
        if matches!(steps[step_index], Step::Push { .. }) && !preflight_done {
            if let Some(why) = preflight(&rot, &steps, &inv, &out, &opts, &endpoints) {
                rot.record(None, State::Failed, why.clone(), now_real())?;
                eprintln!("error: preflight: {why}");
                return Ok(EXIT_FAILED);
            }
            preflight_done = true;
        }
        rot.record(Some(step_index), State::Started, "", now_real())?;
        p.line(format!(
            "step {}: {}",
            step_index + 1,
            describe(&steps[step_index], rot.plan.renew)
        ))?;
        let result: std::result::Result<(), String> = match &steps[step_index] {
            Step::Issue => {
                issue_step(&store, &keyring, &profiles, &inv, &rot.plan, now_real(), p)?;
                Ok(())
            }
            Step::Stage => {
                let templates = super::render::templates(g, &a.select.templates)?;
                super::render::stage_all(
                    &store,
                    &keyring,
                    &inv,
                    &profiles,
                    &templates,
                    a.select.templates.cluster_signing,
                    &out,
                    now_real(),
                    p,
                )?;
                Ok(())
            }
            Step::Push {
                nodes, restarts, ..
            } => push_step(nodes, restarts, &inv, &out, &opts, &endpoints, p)?,
        };
        match result {
            Ok(()) => rot.record(Some(step_index), State::Done, "", now_real())?,
            Err(why) => {
                rot.record(Some(step_index), State::Failed, why.clone(), now_real())?;
                rot.record(None, State::Failed, why.clone(), now_real())?;
                eprintln!(
                    "error: rotation {} stopped: {why}; hint: `kpki rotate status` shows the journal; fix the node, then `kpki rotate --resume` goes on from this step",
                    rot.plan.id
                );
                return Ok(EXIT_FAILED);
            }
        }
        if a.stage_only && matches!(steps[step_index], Step::Stage) {
            rot.record(None, State::Paused, "stage-only", now_real())?;
            p.line(format!(
                "staged; push with `kpki rotate --resume --out {}`",
                out.display()
            ))?;
            return Ok(0);
        }
        if step_index == i {
            i += 1;
        }
    }
    rot.record(None, State::Finished, "", now_real())?;
    p.line(format!(
        "rotation {} finished: {} certificate(s) renewed",
        rot.plan.id,
        rot.plan.items.len()
    ))?;
    Ok(0)
}

/// `Some(75)` (after saying why) when a window is set and the step's estimate does not
/// fit in what is left of it.
fn outside(
    window: &Option<Window>,
    now: OffsetDateTime,
    plan: &RotationPlan,
    step: usize,
    p: &mut Printer,
) -> Result<Option<u8>> {
    let Some(w) = window else { return Ok(None) };
    let need = time::Duration::seconds(plan.estimates.get(step).copied().unwrap_or(0) as i64);
    match w.closes(now) {
        Some(close) if now + need <= close => Ok(None),
        Some(_) => {
            let next = w.next_open(now + time::Duration::minutes(1));
            p.line(format!(
                "paused: the window \"{w}\" closes before step {} would end; the next opens {}; run `kpki rotate --resume` then",
                step + 1,
                crate::pki::rfc3339(next)
            ))?;
            Ok(Some(EXIT_PAUSED))
        }
        None => {
            p.line(format!(
                "outside the window \"{w}\": nothing changed; the next opens {}",
                crate::pki::rfc3339(w.next_open(now))
            ))?;
            Ok(Some(EXIT_PAUSED))
        }
    }
}

/// Issues every item still on its planned generation (so a resumed step never issues
/// twice).
fn issue_step(
    store: &Store,
    keyring: &crate::store::Keyring,
    profiles: &crate::profile::Profiles,
    inv: &Inventory,
    plan: &RotationPlan,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let plans = plan::plan_cluster(profiles, inv, &Overrides::default())?;
    let mut requests = Vec::new();
    for pl in plans {
        let Some(item) = plan
            .items
            .iter()
            .find(|i| i.profile == pl.profile && i.target == pl.target.key())
        else {
            continue;
        };
        let held = plan::held(store, &pl.profile, &pl.target.key())?;
        if held.as_ref().map(|h| h.generation) != item.from_generation {
            p.line(format!(
                "  {} {}: already renewed",
                item.profile, item.target
            ))?;
            continue;
        }
        let key = match &held {
            Some(h) if !h.has_key || plan.renew => match &h.cert {
                Some(c) => KeySource::Reuse(c.facts.spki.clone()),
                None => KeySource::Generate,
            },
            _ => KeySource::Generate,
        };
        requests.push(Request {
            plan: pl,
            reason: Reason::Forced,
            key,
        });
    }
    if requests.is_empty() {
        return Ok(());
    }
    let issued = issue::issue(
        store,
        Some(keyring),
        profiles,
        requests,
        &issue::Options {
            force: true,
            clamp: false,
            out: None,
            now,
        },
    )?;
    for i in &issued {
        p.line(super::issue::issued_line(i, now))?;
    }
    Ok(())
}

fn job(inv: &Inventory, out: &Path, node: &str) -> Result<Job> {
    Ok(Job {
        target: Target::of(inv, node).ok_or_else(|| {
            Error::usage(
                format!("node {node} of the rotation is not in the inventory"),
                "restore the inventory the rotation was planned with",
            )
        })?,
        tree: StagedTree::read(out, node)?,
    })
}

/// The etcd steps, followers first and the leader last.
fn leader_last(
    steps: &[Step],
    inv: &Inventory,
    out: &Path,
    opts: &Options,
    endpoints: &[String],
) -> Vec<usize> {
    let idx: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            matches!(
                s,
                Step::Push {
                    phase: Phase::Etcd,
                    ..
                }
            )
        })
        .map(|(k, _)| k)
        .collect();
    let jobs: Vec<(usize, Job)> = idx
        .iter()
        .filter_map(|&k| match &steps[k] {
            Step::Push { nodes, .. } => job(inv, out, &nodes[0]).ok().map(|j| (k, j)),
            _ => None,
        })
        .collect();
    let refs: Vec<&Job> = jobs.iter().map(|(_, j)| j).collect();
    match distribute::etcd_leader_of(&refs, opts, endpoints) {
        Some(l) => {
            let leader = jobs[l].0;
            let mut v: Vec<usize> = idx.into_iter().filter(|k| *k != leader).collect();
            v.push(leader);
            v
        }
        None => idx,
    }
}

/// Before the first push: every node of the rotation reachable (a dry-run push), and
/// etcd healthy. `Some(why)` when not.
fn preflight(
    rot: &Rotation,
    steps: &[Step],
    inv: &Inventory,
    out: &Path,
    opts: &Options,
    endpoints: &[String],
) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for (k, s) in steps.iter().enumerate() {
        if let Step::Push { nodes, .. } = s {
            if rot.step_state(k) != Some(State::Done) {
                names.extend(nodes.iter().map(String::as_str));
            }
        }
    }
    let mut jobs = Vec::new();
    for n in &names {
        match job(inv, out, n) {
            Ok(j) => jobs.push(j),
            Err(e) => return Some(e.to_string()),
        }
    }
    let dry = Options {
        dry_run: true,
        restart: false,
        ..opts.clone()
    };
    let reports = distribute::push(&jobs, &dry, endpoints, &Quiet);
    if let Some(r) = reports.iter().find(|r| r.outcome == Outcome::Failed) {
        return Some(format!(
            "{}: {}",
            r.node,
            r.error.clone().unwrap_or_default()
        ));
    }
    // etcd healthy now: one member's view of the cluster (leader, term).
    if let Some(m) = jobs.iter().find(|j| j.target.roles.contains(&Role::Etcd)) {
        let quick = Options {
            gate_timeout: StdDuration::from_secs(15),
            ..opts.clone()
        };
        if let Err(e) = cluster_healthy(m, &quick, endpoints) {
            return Some(format!("etcd is not healthy before the rotation: {e}"));
        }
    }
    None
}

/// The cluster's health through one member (its certificate as staged may already be
/// the new one, so the serial is not checked here).
fn cluster_healthy(
    m: &Job,
    opts: &Options,
    endpoints: &[String],
) -> std::result::Result<(), String> {
    let units = vec!["etcd.service".to_owned()];
    match distribute::check_gate(m, opts, endpoints, &units) {
        Ok(()) => Ok(()),
        Err(e) if e.contains("serves serial") => Ok(()),
        Err(e) => Err(e),
    }
}

struct Quiet;
impl distribute::Progress for Quiet {
    fn line(&self, _: &str, _: &str) {}
}

struct Lines;
impl distribute::Progress for Lines {
    fn line(&self, node: &str, message: &str) {
        eprintln!("  {node}: {}", crate::terminal::printable(message));
    }
}

/// One push step: install and restart, gated. A node whose files are already in place
/// (a resumed step) is only gated.
fn push_step(
    nodes: &[String],
    restarts: &[String],
    inv: &Inventory,
    out: &Path,
    opts: &Options,
    endpoints: &[String],
    p: &mut Printer,
) -> Result<std::result::Result<(), String>> {
    let mut jobs = Vec::new();
    for n in nodes {
        jobs.push(job(inv, out, n)?);
    }
    let reports: Vec<NodeReport> = distribute::push(&jobs, opts, endpoints, &Lines);
    for (r, j) in reports.iter().zip(&jobs) {
        p.text(format!("  {}: {}", r.node, outcome_word(r)))?;
        match r.outcome {
            Outcome::Installed if r.error.is_none() => {}
            Outcome::Unchanged => {
                let units: Vec<String> = restarts.to_vec();
                if let Err(e) = distribute::check_gate(j, opts, endpoints, &units) {
                    return Ok(Err(format!("{}: {e}", r.node)));
                }
            }
            _ => {
                return Ok(Err(format!(
                    "{}: {}",
                    r.node,
                    r.error.clone().unwrap_or_else(|| "failed".into())
                )))
            }
        }
    }
    Ok(Ok(()))
}

fn outcome_word(r: &NodeReport) -> &'static str {
    match r.outcome {
        Outcome::Installed if r.restarted => "installed, restarted, gate passed",
        Outcome::Installed => "installed",
        Outcome::Unchanged => "already in place",
        Outcome::RolledBack => "rolled back",
        _ => "failed",
    }
}

fn status(g: &Global, json: bool, p: &mut Printer) -> Result<u8> {
    let Some(r) = Rotation::latest(&g.store)? else {
        p.line("no rotation yet")?;
        return Ok(0);
    };
    if json {
        let v = serde_json::json!({ "dir": r.dir, "plan": r.plan, "journal": r.journal });
        p.data(serde_json::to_string_pretty(&v).expect("serializes"))?;
        return Ok(0);
    }
    let state = match r.state() {
        Some(State::Finished) => "finished",
        Some(State::Failed) => "failed",
        Some(State::Paused) => "paused (kpki rotate --resume continues it)",
        _ if r.journal.is_empty() => "planned",
        _ => "running or interrupted (kpki rotate --resume continues it)",
    };
    p.text(format!("rotation {}: {state}", r.plan.id))?;
    for (k, s) in r.plan.steps.iter().enumerate() {
        let st = match r.step_state(k) {
            Some(State::Done) => "done",
            Some(State::Started) => "started",
            Some(State::Failed) => "FAILED",
            _ => "pending",
        };
        p.text(format!(
            "{:>2}. {st:8} {}",
            k + 1,
            describe(s, r.plan.renew)
        ))?;
    }
    if let Some(e) = r.journal.iter().rev().find(|e| !e.note.is_empty()) {
        p.text(format!("last note: {}", e.note))?;
    }
    Ok(0)
}

fn timer(g: &Global, a: &crate::cli::rotate::RotateTimerArgs, p: &mut Printer) -> Result<()> {
    let w: Window = a
        .window
        .parse()
        .map_err(|e| Error::usage(e, "see `kpki rotate --help`"))?;
    a.within.parse::<Span>().map_err(|e| {
        Error::usage(
            format!("--within {:?}: {e}", a.within),
            "write a span such as 30d",
        )
    })?;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let exe = std::env::current_exe().unwrap_or_else(|_| "/usr/local/bin/kpki".into());
    for (what, v) in [
        ("--store", abs(&g.store)),
        ("--inventory", abs(&g.inventory)),
        ("--out", abs(&a.out)),
        ("kpki", exe.clone()),
    ] {
        if !crate::distribute::script::Safe::path(&v.to_string_lossy()) {
            return Err(Error::usage(
                format!(
                    "{what} {} cannot go into a unit file (spaces or special characters)",
                    v.display()
                ),
                "use a path of letters, digits and ._-/",
            ));
        }
    }
    let service = format!(
        "# Rendered by kpki rotate timer: renews what expires within {within} in the window \"{w}\".\n\
[Unit]\n\
Description=kpki: rotate leaf certificates in the maintenance window\n\
Wants=network-online.target\n\
After=network-online.target\n\n\
[Service]\n\
Type=oneshot\n\
# 75: paused at the window's end or outside it; the next window's run resumes.\n\
SuccessExitStatus=75\n\
ExecStart={exe} --store {store} --inventory {inv} rotate --out {out} --within {within} --window \"{w}\"\n",
        exe = exe.display(),
        store = abs(&g.store).display(),
        inv = abs(&g.inventory).display(),
        out = abs(&a.out).display(),
        within = a.within,
    );
    let timer = format!(
        "# Rendered by kpki rotate timer.\n\
[Unit]\n\
Description=kpki: rotation in the window \"{w}\"\n\n\
[Timer]\n\
OnCalendar={cal}\n\
Persistent=false\n\n\
[Install]\n\
WantedBy=timers.target\n",
        cal = w.on_calendar()
    );
    match &a.dest {
        Some(d) => {
            for (name, body) in [
                ("kpki-rotate.service", &service),
                ("kpki-rotate.timer", &timer),
            ] {
                let path = d.join(name);
                crate::store::atomic::write(
                    d,
                    &path,
                    body.as_bytes(),
                    0o644,
                    crate::store::Existing::Replace,
                )
                .map_err(Error::io(&path))?;
                p.line(format!("wrote {}", path.display()))?;
            }
            Ok(())
        }
        None => p.data(format!(
            "# kpki-rotate.service\n{service}\n# kpki-rotate.timer\n{timer}"
        )),
    }
}
