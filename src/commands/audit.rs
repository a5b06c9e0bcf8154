//! `kpki audit`: decides what to audit (paths, the store, the node's directories, a
//! `--configs` tree), which CAs to trust and what the inventory expects, runs the audit
//! and writes the report. Returns the audit's exit status (0, 1 or 2); any error here
//! means the audit could not run, which `main` turns into exit status 3.

use std::path::{Path, PathBuf};

use time::format_description::well_known::Rfc3339;

use super::*;
use crate::audit::{self, layout, AuditConfig, Layout, Referenced, Root, TrustedCa};
use crate::cli::audit::{AuditArgs, AuditFormat};

/// Where certificates live on a node, besides the profiles' install directories.
const NODE_DIRS: [&str; 4] = [
    "/etc/kubernetes",
    "/etc/ssl/etcd",
    "/etc/etcd",
    "/var/lib/kubelet/pki",
];

/// The inventory when there is one: a missing file at the default path means "no
/// inventory"; a missing file anywhere else is an error.
fn inventory(g: &crate::cli::Global) -> Result<Option<Inventory>> {
    if g.inventory == Path::new("cluster.toml") && !g.inventory.exists() {
        return Ok(None);
    }
    Ok(Some(Inventory::load(&g.inventory)?))
}

/// This host's name, from the kernel.
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn this_node(inv: &Inventory, host: &str) -> Option<String> {
    let short = host.split('.').next().unwrap_or(host);
    inv.nodes()
        .iter()
        .find(|n| n.name.as_str() == short || n.fqdn == host)
        .map(|n| n.name.to_string())
}

fn inside(path: &Path, roots: &[Root]) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let p = canon(path);
    roots.iter().any(|r| p.starts_with(canon(&r.path)))
}

pub(super) fn run(
    g: &crate::cli::Global,
    a: &AuditArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<u8> {
    let warn = parse_span(&a.warn, "warn")?;
    let critical = parse_span(&a.critical, "critical")?;
    let now = match &a.now {
        Some(t) => OffsetDateTime::parse(t, &Rfc3339).map_err(|e| {
            Error::usage(
                format!("invalid value for --now: {e}"),
                "write it like 2026-11-25T00:00:00Z",
            )
        })?,
        None => now,
    };
    // Whole seconds: every time the audit prints is to the second.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let profiles = profiles(g)?;
    let inv = inventory(g)?;
    // Metrics name files by absolute path (`filepath`), whatever directory cron runs in.
    let abs = |p: &Path| -> PathBuf {
        if a.format == AuditFormat::Prometheus {
            std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
        } else {
            p.to_path_buf()
        }
    };
    let paths: Vec<PathBuf> = a.paths.iter().map(|p| abs(p)).collect();
    let ca_args: Vec<PathBuf> = a.ca.iter().map(|p| abs(p)).collect();
    let configs_tree: Option<PathBuf> = a.configs.as_deref().map(abs);
    let store = if Store::exists(&g.store) {
        Some(Store::open(&abs(&g.store), now)?)
    } else {
        None
    };
    if let (Some(node), Some(inv)) = (&a.node, &inv) {
        if inv.node(node).is_none() {
            return Err(audit::AuditError::UnknownNode(node.clone()).into());
        }
    }

    // What to walk, and which layouts of kpki files it holds.
    let mut roots: Vec<Root> = Vec::new();
    let mut layouts: Vec<Layout> = Vec::new();
    let mut referenced: Vec<Referenced> = Vec::new();
    let mut early_findings = Vec::new();
    let mut config_cas: Vec<TrustedCa> = Vec::new();
    let mut config_layouts: Vec<Layout> = Vec::new();
    if let Some(tree) = &configs_tree {
        let node = a.node.clone().or_else(|| {
            if tree != Path::new("/") {
                return None;
            }
            this_node(inv.as_ref()?, &hostname()?)
        });
        let c = audit::configs::read(tree, node.as_deref(), inv.as_ref(), now)?;
        referenced = c.referenced;
        early_findings = c.findings;
        config_cas = c.trusted;
        config_layouts = c
            .roots
            .into_iter()
            .filter_map(|r| {
                Some(Layout::Node {
                    root: r.root,
                    node: r.node?,
                })
            })
            .collect();
    }
    if !paths.is_empty() {
        for path in &paths {
            let found = layout::detect(path, inv.as_ref(), &profiles);
            // A store is read as its current generations, not its history.
            let live = match found.first() {
                Some(Layout::Store { dir }) => Store::open(dir, now)
                    .map(|s| layout::store_live_paths(&s))
                    .unwrap_or_else(|_| vec![path.clone()]),
                _ => vec![path.clone()],
            };
            for path in live {
                roots.push(Root {
                    path,
                    required: true,
                    extra: false,
                });
            }
            if found.is_empty() {
                if let Some(node) = &a.node {
                    layouts.push(Layout::Node {
                        root: path.clone(),
                        node: node.clone(),
                    });
                }
            }
            layouts.extend(found);
        }
    } else if configs_tree.is_none() {
        match &store {
            Some(s) => {
                roots.extend(layout::store_live_paths(s).into_iter().map(|path| Root {
                    path,
                    required: true,
                    extra: false,
                }));
                layouts.push(Layout::Store {
                    dir: s.dir().to_path_buf(),
                });
            }
            None => {
                let mut dirs: Vec<PathBuf> = NODE_DIRS.iter().map(PathBuf::from).collect();
                for d in layout::install_dirs(&profiles) {
                    if !dirs.iter().any(|r| d.starts_with(r)) {
                        dirs.push(d);
                    }
                }
                roots.extend(dirs.into_iter().map(|path| Root {
                    path,
                    required: false,
                    extra: false,
                }));
                let node = a.node.clone().or_else(|| {
                    let inv = inv.as_ref()?;
                    this_node(inv, &hostname()?)
                });
                if let Some(node) = node {
                    layouts.push(Layout::Node {
                        root: PathBuf::from("/"),
                        node,
                    });
                }
            }
        }
    }

    // The CAs to check against: the store's, then --ca files. They are audited too.
    let mut trusted: Vec<TrustedCa> = Vec::new();
    let mut ca_files: Vec<PathBuf> = Vec::new();
    if let Some(s) = &store {
        for (c, label) in s.trusted_cas() {
            trusted.extend(TrustedCa::load(&c.cert_path, Some(&label))?);
            ca_files.push(c.cert_path);
        }
    }
    for f in &ca_args {
        trusted.extend(TrustedCa::load(f, None)?);
        ca_files.push(f.clone());
    }
    // The CAs the daemons are told to trust, last: a store CA keeps its store name.
    for t in config_cas {
        if !trusted.iter().any(|k| k.fingerprint == t.fingerprint) {
            trusted.push(t);
        }
    }
    if configs_tree.is_none() || !paths.is_empty() {
        for f in ca_files {
            if !inside(&f, &roots) {
                roots.push(Root {
                    path: f,
                    required: true,
                    extra: true,
                });
            }
        }
    }

    let mut expected = match &inv {
        Some(inv) => layout::expectations(&layouts, inv, &profiles, store.as_ref(), now)?,
        None => Vec::new(),
    };
    // With --configs, what the profiles expect is checked only where a config points.
    if let (Some(inv), false) = (&inv, config_layouts.is_empty()) {
        let wanted: std::collections::HashSet<&Path> =
            referenced.iter().map(|r| r.path.as_path()).collect();
        expected.extend(
            layout::expectations(&config_layouts, inv, &profiles, store.as_ref(), now)?
                .into_iter()
                .filter(|e| wanted.contains(e.path.as_path())),
        );
    }
    if let Some(w) = &a.window {
        let w: crate::rotate::Window = w
            .parse()
            .map_err(|e| Error::usage(e, "see `kpki rotate --help`"))?;
        if let Some(s) = &store {
            early_findings.extend(window_findings(s, &profiles, &w, now)?);
        }
    }
    let cfg = AuditConfig {
        roots,
        referenced,
        now,
        warn_seconds: warn.seconds(),
        critical_seconds: critical.seconds(),
        trusted,
        expected,
        cliff_min: a.cliff,
        threads: a
            .threads
            .filter(|n| *n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(2),
        configs: configs_tree,
        findings: early_findings,
    };
    let report = audit::run(&cfg)?;

    let text = match a.format {
        AuditFormat::Table => {
            let color = super::color(
                g.color,
                a.output.is_none() && std::io::stdout().is_terminal(),
            );
            audit::report::table(
                &report,
                audit::report::TableOptions {
                    color,
                    quiet: g.quiet,
                },
            )
        }
        AuditFormat::Json => audit::report::json(&report),
        AuditFormat::Prometheus => audit::report::prometheus(&report),
    };
    match &a.output {
        Some(out) => crate::store::atomic::write(
            &crate::store::atomic::parent_of(out),
            out,
            text.as_bytes(),
            0o644,
            crate::store::Existing::Replace,
        )
        .map_err(Error::io(out))?,
        None if text.is_empty() => {}
        None => p.data(text.strip_suffix('\n').unwrap_or(&text))?,
    }
    let code = report.exit_code();
    // The process ends right after this: freeing a fleet's worth of certificates one
    // by one would only delay the exit (by a tenth of a second per 100 000).
    std::mem::forget(report);
    std::mem::forget(text);
    Ok(code)
}

/// Every current certificate of the store whose renewal margin holds no opening of the
/// window (with an hour for the rotation itself).
fn window_findings(
    store: &crate::store::Store,
    profiles: &crate::profile::Profiles,
    w: &crate::rotate::Window,
    now: OffsetDateTime,
) -> Result<Vec<crate::finding::Finding>> {
    use crate::finding::{Finding, FindingKind};
    let mut out = Vec::new();
    for (profile, target) in store.issuances()? {
        let Ok(p) = profiles.get(&profile) else {
            continue;
        };
        let Some(held) = crate::plan::held(store, &profile, &target)? else {
            continue;
        };
        let Some(c) = &held.cert else { continue };
        let f = &c.facts;
        if f.not_after <= now {
            continue;
        }
        let due = crate::plan::renew_at(p, f).max(now);
        let open = w.next_open(due);
        if open + time::Duration::hours(1) > f.not_after {
            let path = store
                .current(&profile, &target)?
                .map(|g| g.dir.join("cert.pem"));
            out.push(Finding::new(
                path.as_deref(),
                FindingKind::WindowTooLate,
                format!(
                    "{profile} {target}: due for renewal {}, but the window \"{w}\" opens next {} and the certificate ends {}; give the profile a longer renew_before or the window more openings",
                    crate::pki::rfc3339(due),
                    crate::pki::rfc3339(open),
                    crate::pki::rfc3339(f.not_after)
                ),
            ));
        }
    }
    Ok(out)
}
