//! `kpki render`, `kpki apply`, `kpki plan`: inventory + profiles + templates (+ store)
//! → rendered configs and staged trees, and `render --check` over staged or installed trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::Printer;
use crate::cli::render::{ApplyArgs, PlanArgs, RenderArgs, TemplateArgs};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::issue::{self, Options};
use crate::plan::{self, Overrides, Reason};
use crate::render::{self, check, refs, RenderError, Selection, Templates, Tree};
use crate::stage::{self, Change, FileKind, StagedFile};
use crate::store::{CaModel, InitSpec, Protection, Store};

pub(super) fn templates(g: &Global, a: &TemplateArgs) -> Result<Templates> {
    let dir = a
        .templates
        .clone()
        .unwrap_or_else(|| g.store.join("templates"));
    Ok(Templates::load(Some(&dir))?)
}

/// `kpki render`.
pub(super) fn render_cmd(
    g: &Global,
    a: &RenderArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    if a.check {
        return check_cmd(a, now, p);
    }
    let sel = match (a.all, a.node.is_empty()) {
        (true, _) => Selection::All,
        (false, false) => Selection::Nodes(a.node.clone()),
        (false, true) => {
            return Err(Error::usage(
                "'kpki render' requires '--node NAME' or '--all'",
                "name the nodes to render, or pass --all for every node and the cluster files",
            ))
        }
    };
    let inv = Inventory::load(&g.inventory)?;
    let profiles = super::profiles(g)?;
    let templates = templates(g, &a.templates)?;
    let opts = render::Options {
        cluster_signing: a.templates.cluster_signing,
        admin: None,
    };
    let files = render::render(&templates, &inv, &profiles, &opts, &sel)?;
    let Some(out) = &a.out else {
        for (n, f) in files.iter().enumerate() {
            if n > 0 {
                p.data("")?;
            }
            p.data(format!(
                "==> {}:{} ({:04o} {}:{}) <==",
                f.tree, f.path, f.mode, f.owner, f.group
            ))?;
            p.data(String::from_utf8_lossy(&f.contents).trim_end_matches('\n'))?;
        }
        return Ok(());
    };
    let mut by_tree: BTreeMap<Tree, Vec<StagedFile>> = BTreeMap::new();
    for f in files {
        by_tree
            .entry(f.tree.clone())
            .or_default()
            .push(stage::config_file(f));
    }
    let mut counts: BTreeMap<Change, usize> = BTreeMap::new();
    for (tree, files) in &by_tree {
        let name = tree.dir_name();
        for (_, c) in stage::write(&out.join(&name), &name, files, false)? {
            *counts.entry(c).or_default() += 1;
        }
    }
    p.line(format!(
        "rendered {} tree(s) into {}: {}",
        by_tree.len(),
        out.display(),
        count_text(&counts)
    ))
}

fn count_text(counts: &BTreeMap<Change, usize>) -> String {
    let parts: Vec<String> = [
        Change::Create,
        Change::Update,
        Change::Mode,
        Change::Remove,
        Change::Unchanged,
    ]
    .iter()
    .filter_map(|c| counts.get(c).map(|n| format!("{n} {}", c.word())))
    .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// `kpki render --check`.
fn check_cmd(a: &RenderArgs, now: OffsetDateTime, p: &mut Printer) -> Result<()> {
    let roots: Vec<(String, PathBuf)> = match (&a.root, &a.out) {
        (Some(root), _) => vec![(root.display().to_string(), root.clone())],
        (None, Some(out)) if !a.node.is_empty() => a
            .node
            .iter()
            .map(|n| (n.clone(), out.join(n)))
            .collect(),
        (None, Some(out)) => {
            let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(out)
                .map_err(Error::io(out))?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .map(|n| (n.to_owned(), e.path()))
                })
                .collect();
            v.sort();
            v
        }
        (None, None) => {
            return Err(Error::usage(
                "'--check' requires '--out DIR' (a staged directory) or '--root DIR' (an installed node)",
                "pass the directory `kpki apply --out` wrote, or --root /",
            ))
        }
    };
    if roots.is_empty() {
        return Err(Error::usage(
            format!(
                "{} holds no staged tree",
                a.out.as_deref().unwrap_or(Path::new(".")).display()
            ),
            "stage one with `kpki apply --out DIR`",
        ));
    }
    let (mut problems, mut references) = (0, 0);
    // With --json, the problems as objects, printed once at the end.
    #[derive(serde::Serialize)]
    struct Problem<'a> {
        tree: &'a str,
        path: Option<PathBuf>,
        kind: &'static str,
        severity: crate::finding::Severity,
        message: String,
        named_by: Vec<crate::finding::NamedBy>,
    }
    let mut found: Vec<Problem> = Vec::new();
    for (name, root) in &roots {
        if !root.is_dir() {
            return Err(Error::Io {
                path: root.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such staged or installed tree",
                ),
            });
        }
        references += refs::scan(root).references.len();
        // Keys the manifest says stay on the node are checked there (`--root /`).
        for f in check::on_node_present(check::check(root, now), &stage::on_node_paths(root)) {
            problems += 1;
            if a.json {
                found.push(Problem {
                    tree: name,
                    message: f.message.clone(),
                    path: f.path,
                    kind: f.kind.name(),
                    severity: f.severity,
                    named_by: f.named_by,
                });
                continue;
            }
            p.data(format!("{name}: {f}"))?;
        }
        // A staged tree (not a whole system) is small enough to look for what a killed
        // kpki left: temporary files that may hold plaintext keys.
        if a.root.is_none() {
            for f in crate::store::atomic::leftovers(root) {
                problems += 1;
                if a.json {
                    found.push(Problem {
                        tree: name,
                        message: format!("{}: a temporary file of an interrupted kpki run (it may hold a key); `kpki apply` removes it", f.display()),
                        path: Some(f),
                        kind: "interrupted_write",
                        severity: crate::finding::Severity::Error,
                        named_by: Vec::new(),
                    });
                    continue;
                }
                p.data(format!(
                    "{name}: {}: a temporary file of an interrupted kpki run (it may hold a key); `kpki apply` removes it",
                    f.display()
                ))?;
            }
        }
    }
    if a.json {
        let out = serde_json::json!({
            "trees": roots.len(),
            "references": references,
            "problems": found,
        });
        p.data(serde_json::to_string_pretty(&out).expect("serializes"))?;
    } else {
        p.line(format!(
            "checked {} tree(s): {references} reference(s), {problems} problem(s)",
            roots.len()
        ))?;
    }
    if problems > 0 {
        return Err(RenderError::CheckFailed {
            problems,
            trees: roots.len(),
        }
        .into());
    }
    Ok(())
}

fn init_spec(g: &Global, inv: &Inventory) -> Result<InitSpec> {
    Ok(InitSpec {
        cluster: inv.cluster.name.clone(),
        model: Some(CaModel::Kubeadm),
        key: crate::pki::KeyAlgorithm::EcdsaP256,
        validity: super::parse_span("10y", "validity")?,
        protection: Protection::Identity {
            file: super::identity_file(g)?,
            extra: vec![],
        },
        force: false,
    })
}

/// `kpki apply`.
pub(super) fn apply_cmd(
    g: &Global,
    a: &ApplyArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let inv = Inventory::load(&g.inventory)?;
    let profiles = super::profiles(g)?;
    let templates = templates(g, &a.templates)?;
    // Fail on templates before anything is written: render once without the store.
    render::render(
        &templates,
        &inv,
        &profiles,
        &render::Options {
            cluster_signing: a.templates.cluster_signing,
            admin: None,
        },
        &Selection::All,
    )?;
    // Where the trees go is checked before anything is issued into the store.
    stage::safe_dir(&a.out)?;
    stage::no_links_in(&a.out)?;
    // The existence check and the CA creation happen under the store lock, which is
    // held to the end: every decision below is taken on what the store holds now.
    let (store, _lock, created) = Store::open_or_init(&g.store, init_spec(g, &inv)?, now)?;
    if let Some(report) = &created {
        if let Some(id) = &report.identity_created {
            p.line(format!(
                "created identity {} (mode 0600): keep it safe and out of the store; it opens every key",
                id.display()
            ))?;
        }
        p.line(format!(
            "no store at {}: initialised it as `kpki init` does (CAs {}: ecdsa-p256, 10 years, keys encrypted to the identity)",
            store.dir().display(),
            report
                .cas
                .iter()
                .map(|(n, _)| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    let keyring = super::unlock(g, &store)?;
    let plans = plan::plan_cluster(&profiles, &inv, &Overrides::default())?;
    let requests: Vec<issue::Request> = plan::decide(Some(&store), &profiles, plans, now)?
        .into_iter()
        .filter(|d| d.reason.issues())
        .map(issue::Request::from_decision)
        .collect();
    let issued = if requests.is_empty() {
        vec![]
    } else {
        issue::issue(
            &store,
            Some(&keyring),
            &profiles,
            requests,
            &Options {
                force: false,
                clamp: false,
                out: None,
                now,
            },
        )?
    };
    for i in &issued {
        p.line(super::issue::issued_line(i, now))?;
        if !matches!(i.reason, Reason::Missing) {
            p.line(format!("  because {}", i.reason))?;
        }
    }
    let (trees, totals) = stage_all(
        &store,
        &keyring,
        &inv,
        &profiles,
        &templates,
        a.templates.cluster_signing,
        &a.out,
        now,
        p,
    )?;
    p.line(format!(
        "apply: {} issued; {} tree(s) in {}: {}",
        issued.len(),
        trees,
        a.out.display(),
        count_text(&totals)
    ))
}

/// Stages every tree from what the store holds (after issuing), as `kpki apply` does:
/// verifies them in memory first, then writes each; returns the number of trees and the
/// counts of changes. Shared by `apply` and `rotate`.
#[allow(clippy::too_many_arguments)]
pub(super) fn stage_all(
    store: &Store,
    keyring: &crate::store::Keyring,
    inv: &Inventory,
    profiles: &crate::profile::Profiles,
    templates: &Templates,
    cluster_signing: bool,
    out: &Path,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<(usize, BTreeMap<Change, usize>)> {
    let src = stage::Source {
        store: Some(store),
        keyring: Some(keyring),
    };
    let (trees, notes) = stage::desired(&src, inv, profiles, templates, cluster_signing)?;
    for n in &notes {
        p.line(format!("note: {n}"))?;
    }
    for (tree, files) in &trees {
        if let Some(f) = files
            .iter()
            .find(|f| f.contents.is_none() && f.kind != FileKind::OnNode)
        {
            return Err(Error::usage(
                format!("{tree}:{} has no contents after issuing", f.path),
                "run `kpki plan` to see what is missing from the store",
            ));
        }
    }
    stage::verify(&trees, now)?;
    let mut totals: BTreeMap<Change, usize> = BTreeMap::new();
    for (tree, files) in &trees {
        let changes = stage::write(&out.join(tree), tree, files, true)?;
        let mut counts: BTreeMap<Change, usize> = BTreeMap::new();
        for (path, c) in &changes {
            *counts.entry(*c).or_default() += 1;
            *totals.entry(*c).or_default() += 1;
            if matches!(c, Change::Update | Change::Mode | Change::Remove) {
                p.line(format!("  {} {tree}:{path}", c.word()))?;
            }
        }
        p.line(format!("staged {tree}: {}", count_text(&counts)))?;
    }
    Ok((trees.len(), totals))
}

/// `kpki plan`.
pub(super) fn plan_cmd(
    g: &Global,
    a: &PlanArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let inv = Inventory::load(&g.inventory)?;
    let profiles = super::profiles(g)?;
    let templates = templates(g, &a.templates)?;
    let store = if Store::exists(&g.store) {
        Some(Store::open(&g.store, now)?)
    } else {
        if !a.json {
            p.data(format!(
                "init store {} (kubernetes, etcd and front-proxy CAs, ecdsa-p256, 10 years; identity {})",
                g.store.display(),
                super::identity_file(g)?.display()
            ))?;
        }
        None
    };
    let keyring = store.as_ref().map(|s| super::unlock(g, s)).transpose()?;
    let plans = plan::plan_cluster(&profiles, &inv, &Overrides::default())?;
    let decisions = plan::decide(store.as_ref(), &profiles, plans, now)?;
    let src = stage::Source {
        store: store.as_ref(),
        keyring: keyring.as_ref(),
    };
    let (trees, notes) = stage::desired(
        &src,
        &inv,
        &profiles,
        &templates,
        a.templates.cluster_signing,
    )?;
    // Files of what is about to be (re)issued change too, though the store still holds
    // their current generation: count them as apply will write them.
    let reissued: std::collections::BTreeSet<(String, String)> = decisions
        .iter()
        .filter(|d| d.reason.issues())
        .map(|d| (d.plan.profile.clone(), d.plan.target.key()))
        .collect();
    let changes_with_issuance = |tree: &str, f: &StagedFile| -> bool {
        matches!(
            f.kind,
            FileKind::Cert | FileKind::Key | FileKind::Public | FileKind::Secret
        ) && f.source.split(',').any(|src| {
            let target = match profiles.get(src).map(|p| p.scope) {
                Ok(crate::profile::Scope::Node) => tree.to_owned(),
                _ => "cluster".to_owned(),
            };
            reissued.contains(&(src.to_owned(), target))
        })
    };
    let mut totals: BTreeMap<Change, usize> = BTreeMap::new();
    let mut changes = Vec::new();
    for (tree, files) in &trees {
        let planned = stage::plan(&a.out.join(tree), tree, files, true)?;
        let reissues_here = files.iter().any(|f| changes_with_issuance(tree, f));
        for (path, mut c) in planned {
            let reissued_file = files
                .iter()
                .any(|f| f.path == path && changes_with_issuance(tree, f));
            // The manifest lists their hashes: it changes with them.
            if c == Change::Unchanged
                && (reissued_file || (reissues_here && path == stage::MANIFEST))
            {
                c = Change::Update;
            }
            *totals.entry(c).or_default() += 1;
            if c != Change::Unchanged {
                changes.push((tree.clone(), path, c));
            }
        }
    }
    let to_issue = decisions.iter().filter(|d| d.reason.issues()).count();
    if a.json {
        let json = serde_json::json!({
            "decisions": decisions.iter().map(|d| {
                let f = d.held.as_ref().and_then(|h| h.cert.as_ref()).map(|c| &c.facts);
                serde_json::json!({
                    "profile": d.plan.profile,
                    "target": d.plan.target.key(),
                    "action": if d.reason.issues() { "issue" } else { "keep" },
                    "reason": d.reason.word(),
                    "detail": d.reason.to_string(),
                    "generation": d.held.as_ref().map(|h| h.generation),
                    "serial": f.map(|f| f.serial.clone()),
                    "not_after": f.map(|f| crate::pki::rfc3339(f.not_after)),
                })
            }).collect::<Vec<_>>(),
            "files": changes.iter().map(|(tree, path, c)| serde_json::json!({
                "tree": tree, "path": path, "change": c.word(),
            })).collect::<Vec<_>>(),
            "notes": notes,
        });
        return p.data(serde_json::to_string_pretty(&json).expect("json"));
    }
    for d in &decisions {
        let verb = if d.reason.issues() { "issue" } else { "keep " };
        let gen = d
            .held
            .as_ref()
            .map(|h| format!(" (generation {})", h.generation))
            .unwrap_or_default();
        let detail = match (&d.reason, d.held.as_ref().and_then(|h| h.cert.as_ref())) {
            (Reason::Ok, Some(c)) => format!("ok: valid until {}", super::date(c.facts.not_after)),
            (r, _) => r.to_string(),
        };
        p.data(format!(
            "{verb} {} for {}{gen}: {detail}",
            d.plan.profile, d.plan.target
        ))?;
    }
    for n in &notes {
        p.line(format!("note: {n}"))?;
    }
    for (tree, path, c) in &changes {
        p.data(format!("{} {tree}:{path}", c.word()))?;
    }
    p.line(format!(
        "plan: {to_issue} to issue, {} to keep; staged files in {}: {}",
        decisions.len() - to_issue,
        a.out.display(),
        count_text(&totals)
    ))
}
