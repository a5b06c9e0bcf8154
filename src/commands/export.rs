//! `kpki export ansible`: reads the inventory and the staged manifests, has
//! [`crate::distribute::ansible`] lay out the inventory and playbook, and writes them.

use std::io::Read;
use std::path::Path;

use super::Printer;
use crate::cli::export::{AnsibleArgs, ExportArgs, ExportCommand};
use crate::cli::Global;
use crate::distribute::ansible::{self, Options, MARKER};
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::store::atomic::{self, Existing};

pub(super) fn run(g: &Global, a: &ExportArgs, p: &mut Printer) -> Result<()> {
    match &a.what {
        ExportCommand::Ansible(x) => export_ansible(g, x, p),
    }
}

fn export_ansible(g: &Global, a: &AnsibleArgs, p: &mut Printer) -> Result<()> {
    let inv = Inventory::load(&g.inventory)?;
    let staged = std::fs::canonicalize(&a.out).map_err(|e| {
        Error::usage(
            format!("cannot read the staging directory {}: {e}", a.out.display()),
            "stage the trees first: kpki apply --out DIR",
        )
    })?;
    let ssh_config = match &a.ssh_config {
        Some(c) => Some(std::fs::canonicalize(c).map_err(|e| {
            Error::usage(
                format!("cannot read the ssh config {}: {e}", c.display()),
                "name an ssh config file that exists (it is passed to ssh as -F)",
            )
        })?),
        None => None,
    };
    let dest = std::fs::canonicalize(&a.dest)
        .or_else(|_| std::path::absolute(&a.dest))
        .map_err(Error::io(&a.dest))?;
    if dest.starts_with(&staged) {
        return Err(Error::usage(
            format!(
                "{} is inside the staging directory {}",
                a.dest.display(),
                staged.display()
            ),
            "export into a directory of its own, such as ./ansible",
        ));
    }
    crate::stage::safe_out(&a.dest)?;
    let files = ansible::export(
        &inv,
        &Options {
            staged: &staged,
            ssh_config: ssh_config.as_deref(),
        },
    )?;
    // Nothing is written over a file an export did not write, unless forced.
    if !a.force {
        for f in &files {
            let path = a.dest.join(&f.path);
            if generated(&path) == Some(false) {
                return Err(Error::usage(
                    format!(
                        "{} exists and was not written by kpki export",
                        path.display()
                    ),
                    "move it away, export into another --dest, or pass --force to replace it",
                ));
            }
        }
    }
    atomic::create_dir_private(&a.dest).map_err(Error::io(&a.dest))?;
    for f in &files {
        let path = a.dest.join(&f.path);
        if let Some(dir) = path.parent() {
            if !dir.is_dir() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .create(dir)
                    .map_err(Error::io(dir))?;
            }
        }
        atomic::write(&a.dest, &path, &f.contents, f.mode, Existing::Replace)
            .map_err(Error::io(&path))?;
    }
    // host_vars of nodes no longer in the inventory, written by an earlier export.
    let hv = a.dest.join("host_vars");
    let mut stale = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&hv) {
        for e in rd.flatten() {
            let path = e.path();
            let known = files.iter().any(|f| a.dest.join(&f.path) == path);
            if !known
                && path.extension().is_some_and(|x| x == "yml")
                && generated(&path) == Some(true)
            {
                stale.push(path);
            }
        }
    }
    for s in &stale {
        std::fs::remove_file(s).map_err(Error::io(s))?;
    }
    p.line(format!(
        "wrote {} ({} nodes from {}); run it there: ansible-playbook site.yml",
        a.dest.display(),
        inv.nodes().len(),
        staged.display()
    ))?;
    if !stale.is_empty() {
        p.line(format!(
            "removed {}",
            stale
                .iter()
                .map(|s| s.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    Ok(())
}

/// Whether the file at `path` was written by an export (its marker in its first two
/// lines); `None` when there is no file.
fn generated(path: &Path) -> Option<bool> {
    let f = std::fs::File::open(path).ok()?;
    let mut head = Vec::new();
    let _ = f.take(512).read_to_end(&mut head);
    let head = String::from_utf8_lossy(&head);
    Some(head.lines().take(2).any(|l| l.starts_with(MARKER)))
}
