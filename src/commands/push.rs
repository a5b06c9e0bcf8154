//! `kpki push`: reads the inventory and the staged trees, runs [`crate::distribute`],
//! prints progress, the table or JSON, and picks the exit status.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use super::Printer;
use crate::cli::push::{BundleArgs, PushArgs, UnbundleArgs};
use crate::cli::Global;
use crate::distribute::{
    self, restart, Job, NodeReport, Options, Outcome, Progress, SshOptions, StagedTree, Target,
};
use crate::error::{Error, Result};
use crate::inventory::{Inventory, Role};

/// Exit status when a node refused (owner missing, a directory at a target path).
const EXIT_REFUSED: u8 = 2;
/// Exit status when a node failed (unreachable, install failed, gate failed).
const EXIT_FAILED: u8 = 3;

pub(super) fn run(g: &Global, a: &PushArgs, now: OffsetDateTime, p: &mut Printer) -> Result<u8> {
    let inv = Inventory::load(&g.inventory)?;
    let names = selected(&inv, a)?;
    let mut jobs = Vec::with_capacity(names.len());
    for n in &names {
        let target = Target::of(&inv, n).expect("selected from the inventory");
        let tree = StagedTree::read(&a.out, n)?;
        jobs.push(Job { target, tree });
    }
    let etcd_endpoints: Vec<String> = inv
        .nodes()
        .iter()
        .filter(|n| n.has_role(Role::Etcd))
        .filter_map(|n| restart::etcd_gate(&a.out.join(n.name.as_str()), Vec::new()))
        .map(|g| g.endpoint)
        .collect();
    let opts = Options {
        ssh: SshOptions::from_env(a.ssh_config.clone()),
        parallel: usize::from(a.parallel),
        dry_run: a.dry_run,
        restart: a.restart,
        gate_timeout: Duration::from_secs(u64::from(a.gate_timeout)),
        script_timeout: Duration::from_secs(300),
        stamp: stamp(now),
    };
    let progress = Lines::new(g.quiet || a.json);
    let reports: Vec<NodeReport> = if a.rollback {
        jobs.iter()
            .map(|j| distribute::rollback(j, &opts, &progress))
            .collect()
    } else {
        distribute::push(&jobs, &opts, &etcd_endpoints, &progress)
    };
    progress.finish();
    if a.json {
        p.data(serde_json::to_string_pretty(&reports).expect("reports serialize"))?;
    } else {
        table(&reports, a, p)?;
    }
    let failed = reports.iter().any(|r| {
        matches!(r.outcome, Outcome::Failed | Outcome::RolledBack) && !r.refused
            || r.error.is_some() && r.outcome == Outcome::Installed
    });
    let refused = reports.iter().any(|r| r.refused);
    let color = super::color(g.color, std::io::stderr().is_terminal());
    for r in reports.iter().filter(|r| r.error.is_some()) {
        eprintln!(
            "{} {}: {}",
            crate::terminal::paint(color, crate::terminal::RED, "error:"),
            r.node,
            crate::terminal::printable(r.error.as_deref().unwrap_or_default())
        );
    }
    Ok(if failed {
        EXIT_FAILED
    } else if refused {
        EXIT_REFUSED
    } else {
        0
    })
}

/// The nodes named by --node, --role or --all, in inventory order.
fn selected(inv: &Inventory, a: &PushArgs) -> Result<Vec<String>> {
    let mut roles = Vec::new();
    for r in &a.role {
        roles.push(match r.as_str() {
            "etcd" => Role::Etcd,
            "master" => Role::Master,
            "worker" => Role::Worker,
            other => {
                return Err(Error::usage(
                    format!("unknown role {:?}", crate::terminal::printable(other)),
                    "use etcd, master or worker",
                ))
            }
        });
    }
    for n in &a.node {
        if !inv.nodes().iter().any(|x| x.name.as_str() == n) {
            return Err(Error::usage(
                format!(
                    "no node {:?} in {}",
                    crate::terminal::printable(n),
                    inv.source.display()
                ),
                "name a [[nodes]] entry of the inventory",
            ));
        }
    }
    if !a.all && a.node.is_empty() && roles.is_empty() {
        return Err(Error::usage(
            "push needs the nodes to push to",
            "pass --node NAME, --role ROLE or --all",
        ));
    }
    Ok(inv
        .nodes()
        .iter()
        .filter(|n| {
            a.all
                || a.node.iter().any(|x| x == n.name.as_str())
                || roles.iter().any(|r| n.has_role(*r))
        })
        .map(|n| n.name.as_str().to_owned())
        .collect())
}

/// The node's backup directory name: UTC time to the nanosecond, sortable, no dot.
pub(super) fn stamp(now: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}{:09}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.nanosecond()
    )
}

fn table(reports: &[NodeReport], a: &PushArgs, p: &mut Printer) -> Result<()> {
    let rows: Vec<[String; 4]> = reports
        .iter()
        .map(|r| {
            let files = if r.files.is_empty() {
                "-".to_owned()
            } else {
                let count = |c| r.files.iter().filter(|f| f.change == c).count();
                let mut parts = Vec::new();
                for (c, word) in [
                    (distribute::Change::New, "new"),
                    (distribute::Change::Update, "updated"),
                    (distribute::Change::Remove, "removed"),
                ] {
                    let n = count(c);
                    if n > 0 {
                        parts.push(format!("{n} {word}"));
                    }
                }
                if r.outcome == Outcome::Restored {
                    format!("{} restored", r.files.len())
                } else {
                    parts.join(", ")
                }
            };
            let restarts = if r.restarts.is_empty() {
                "-".to_owned()
            } else if r.restarted || !a.restart {
                r.restarts.join(" ")
            } else {
                format!("{} (not restarted)", r.restarts.join(" "))
            };
            let result = match r.outcome {
                Outcome::Unchanged => "unchanged",
                Outcome::WouldChange => "would change",
                Outcome::Installed if r.restarted => "installed, restarted",
                Outcome::Installed => "installed",
                Outcome::RolledBack => "rolled back",
                Outcome::Restored if r.restarted => "restored, restarted",
                Outcome::Restored => "restored",
                Outcome::Failed if r.refused => "refused",
                Outcome::Failed => "failed",
                Outcome::Skipped => "skipped",
            };
            [r.node.clone(), files, restarts, result.to_owned()]
        })
        .collect();
    let head = ["node", "files", "restarts", "result"];
    let w: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let fmt = |r: [&str; 4]| {
        format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        )
        .trim_end()
        .to_owned()
    };
    p.text(fmt(head))?;
    for (r, report) in rows.iter().zip(reports) {
        let line = fmt([&r[0], &r[1], &r[2], &r[3]]);
        // The result, last on the line, in colour: what failed red, what changes yellow.
        let style = match report.outcome {
            Outcome::Failed | Outcome::RolledBack => crate::terminal::RED,
            Outcome::WouldChange | Outcome::Restored | Outcome::Skipped => crate::terminal::YELLOW,
            Outcome::Installed | Outcome::Unchanged => crate::terminal::GREEN,
        };
        let (rest, result) = line.split_at(line.len() - r[3].len());
        p.data(format!(
            "{}{}",
            crate::terminal::printable(rest),
            crate::terminal::paint(p.color, style, result)
        ))?;
    }
    if a.dry_run {
        for r in reports.iter().filter(|r| !r.files.is_empty()) {
            for f in &r.files {
                p.text(format!(
                    "  {}: {} {} ({})",
                    r.node,
                    f.change.word(),
                    f.path,
                    f.detail
                ))?;
            }
        }
    }
    Ok(())
}

/// Progress: one line per event on standard error, `node: message`.
struct Lines {
    quiet: bool,
    out: Mutex<()>,
    bars: Option<indicatif::MultiProgress>,
    by_node: Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
}

impl Lines {
    fn new(quiet: bool) -> Lines {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
        Lines {
            quiet,
            out: Mutex::new(()),
            bars,
            by_node: Mutex::new(Default::default()),
        }
    }

    fn finish(&self) {
        for b in self.by_node.lock().expect("not poisoned").values() {
            b.finish();
        }
    }
}

impl Progress for Lines {
    fn line(&self, node: &str, message: &str) {
        if self.quiet {
            return;
        }
        let message = crate::terminal::printable(message).into_owned();
        if let Some(m) = &self.bars {
            let mut by = self.by_node.lock().expect("not poisoned");
            let bar = by.entry(node.to_owned()).or_insert_with(|| {
                let b = m.add(indicatif::ProgressBar::new_spinner());
                b.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {prefix:12} {wide_msg}")
                        .expect("a valid template"),
                );
                b.set_prefix(node.to_owned());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            });
            bar.set_message(message);
            return;
        }
        let _g = self.out.lock().expect("not poisoned");
        eprintln!("{node}: {message}");
    }
}

/// `kpki bundle`: one node's tree as one file.
pub(super) fn bundle(
    g: &Global,
    a: &BundleArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let inv = Inventory::load(&g.inventory)?;
    if !inv.nodes().iter().any(|n| n.name.as_str() == a.node) {
        return Err(Error::usage(
            format!(
                "no node {:?} in {}",
                crate::terminal::printable(&a.node),
                inv.source.display()
            ),
            "name a [[nodes]] entry of the inventory",
        ));
    }
    let tree = StagedTree::read(&a.out, &a.node)?;
    let bytes = distribute::bundle::bundle(&tree, &a.node, &stamp(now), &a.recipient)?;
    let existing = if a.force {
        crate::store::Existing::Replace
    } else {
        crate::store::Existing::Refuse
    };
    crate::store::atomic::write(
        &crate::store::atomic::parent_of(&a.file),
        &a.file,
        &bytes,
        0o600,
        existing,
    )
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::usage(
                format!("{} exists", a.file.display()),
                "pass --force to replace it, or another --file",
            )
        } else {
            Error::io(&a.file)(e)
        }
    })?;
    p.line(format!(
        "wrote {} ({} files for {}, {})",
        a.file.display(),
        tree.manifest
            .files
            .iter()
            .filter(|e| e.kind != crate::stage::FileKind::OnNode)
            .count()
            + 1,
        a.node,
        if a.recipient.is_empty() {
            "plain: it holds private keys, keep it 0600"
        } else {
            "age-encrypted"
        }
    ))
}

/// `kpki unbundle`: installs a bundle on this node.
pub(super) fn unbundle(g: &Global, a: &UnbundleArgs, p: &mut Printer) -> Result<u8> {
    let bytes = read_bundle(&a.file)?;
    let script = if distribute::bundle::is_encrypted(&bytes) {
        let id = super::identity_file(g)?;
        distribute::bundle::decrypt(&bytes, &id)?
    } else {
        bytes
    };
    match distribute::bundle::unbundle(&script) {
        Ok(backup) => {
            p.line(format!(
                "installed {}; replaced files backed up in {backup}",
                a.file.display()
            ))?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(EXIT_FAILED)
        }
    }
}

fn read_bundle(path: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    // Without waiting for a FIFO's writer, and bounded (crate::source::read).
    crate::source::read(path)
        .map(zeroize::Zeroizing::new)
        .map_err(Error::io(path))
}
