//! `kpki render`, `kpki apply`, `kpki plan`: inventory + profiles + templates (+ store)
//! → rendered configs and staged trees, and `render --check` over staged or installed trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::Printer;
use crate::cli::render::{ApplyArgs, PlanArgs, RenderArgs, TemplateArgs};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::issue::{self, Options};
use crate::plan::{self, Overrides, Plan, Target};
use crate::profile::{Body, Profile, Profiles, Scope};
use crate::render::{self, check, refs, PkiPart, RenderError, Selection, Templates, Tree};
use crate::stage::{self, Change, FileKind, StagedFile};
use crate::store::{CaModel, InitSpec, Keyring, Protection, Store};

fn templates(g: &Global, a: &TemplateArgs) -> Result<Templates> {
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
            .push(config_file(f));
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

fn config_file(f: render::RenderedFile) -> StagedFile {
    StagedFile {
        path: f.path,
        contents: Some(f.contents),
        mode: f.mode,
        owner: f.owner,
        group: f.group,
        kind: FileKind::Config,
        source: f.template.to_owned(),
    }
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
        for f in check::check(root, now) {
            problems += 1;
            p.data(format!("{name}: {f}"))?;
        }
    }
    p.line(format!(
        "checked {} tree(s): {references} reference(s), {problems} problem(s)",
        roots.len()
    ))?;
    if problems > 0 {
        return Err(RenderError::CheckFailed {
            problems,
            trees: roots.len(),
        }
        .into());
    }
    Ok(())
}

/// What a PKI file of the staged tree holds, as far as it is known.
enum Content {
    Known(Zeroizing<Vec<u8>>),
    /// Not issued yet (`kpki plan` before `kpki apply`).
    Pending,
    /// Signed from a node's CSR: the key never left the node and is not staged.
    OnNode,
}

/// The store, and its keyring when unlocked.
struct Source<'a> {
    store: Option<&'a Store>,
    keyring: Option<&'a Keyring>,
}

impl Source<'_> {
    fn target(p: &Profile, node: &crate::inventory::Node) -> String {
        match p.scope {
            Scope::Node => Target::Node(node.name.clone()).key(),
            Scope::Cluster => Target::Cluster.key(),
        }
    }

    fn content(
        &self,
        p: &Profile,
        part: &PkiPart,
        node: &crate::inventory::Node,
    ) -> Result<Content> {
        let Some(store) = self.store else {
            return Ok(Content::Pending);
        };
        let target = Self::target(p, node);
        let issued = |name: &str| store.read_issued(&p.name, &target, name);
        let known = |b: Vec<u8>| Content::Known(Zeroizing::new(b));
        Ok(match part {
            PkiPart::Key => {
                let has_key = store
                    .issued_dir(&p.name, &target)
                    .join("key.pem.age")
                    .exists();
                match (has_key, self.keyring) {
                    (true, Some(k)) => Content::Known(store.open_key(&p.name, &target, k)?),
                    (true, None) => Content::Pending,
                    (false, _) if issued("cert.pem")?.is_some() => Content::OnNode,
                    (false, _) => Content::Pending,
                }
            }
            PkiPart::Cert => match (issued("cert.pem")?, &p.body) {
                (Some(mut cert), Body::Certificate(spec)) => {
                    if spec.append_ca {
                        cert.extend_from_slice(store.ca_cert_pem(spec.ca)?.as_bytes());
                    }
                    known(cert)
                }
                _ => Content::Pending,
            },
            PkiPart::Ca => match &p.body {
                Body::Certificate(spec) => known(store.ca_cert_pem(spec.ca)?.into_bytes()),
                Body::KeyPair { .. } => Content::Pending,
            },
            PkiPart::Public => match issued("public.pem")? {
                Some(b) => known(b),
                None => Content::Pending,
            },
            PkiPart::SingleCa(role) => known(store.ca_cert_pem(*role)?.into_bytes()),
            PkiPart::CaKey(role) => match self.keyring {
                Some(k) => Content::Known(store.open_ca_key(*role, k)?),
                None => Content::Pending,
            },
        })
    }

    /// The admin certificate for the operator's kubeconfig, when issued and unlocked.
    fn admin(&self, profiles: &Profiles) -> Result<Option<render::AdminData>> {
        let (Some(store), Some(k)) = (self.store, self.keyring) else {
            return Ok(None);
        };
        let Ok(p) = profiles.get("admin") else {
            return Ok(None);
        };
        let Some(spec) = p.cert_spec() else {
            return Ok(None);
        };
        let target = Target::Cluster.key();
        let Some(cert) = store.read_issued(&p.name, &target, "cert.pem")? else {
            return Ok(None);
        };
        if !store
            .issued_dir(&p.name, &target)
            .join("key.pem.age")
            .exists()
        {
            return Ok(None);
        }
        let key = store.open_key(&p.name, &target, k)?;
        Ok(Some(render::AdminData {
            ca_pem: store.ca_cert_pem(spec.ca)?,
            cert_pem: String::from_utf8_lossy(&cert).into_owned(),
            key_pem: Zeroizing::new(String::from_utf8_lossy(&key).into_owned()),
        }))
    }
}

/// Notes for the operator about files not staged (keys kept on their nodes).
type Notes = Vec<String>;

/// Each tree's name and its merged files.
type Trees = Vec<(String, Vec<StagedFile>)>;

/// Every tree's files: PKI files from the store and rendered configs, merged per tree.
fn desired(
    src: &Source<'_>,
    inv: &Inventory,
    profiles: &Profiles,
    templates: &Templates,
    cluster_signing: bool,
) -> Result<(Trees, Notes)> {
    let admin = src.admin(profiles)?;
    let admin_known = admin.is_some();
    let opts = render::Options {
        cluster_signing,
        admin,
    };
    let rendered = render::render(templates, inv, profiles, &opts, &Selection::All)?;
    let mut trees: BTreeMap<String, Vec<StagedFile>> = BTreeMap::new();
    let mut notes = Vec::new();
    for node in inv.nodes() {
        let files = trees.entry(node.name.to_string()).or_default();
        for f in render::pki_files(profiles, node, &opts)? {
            let p = profiles.get(&f.profile)?;
            let contents = match src.content(p, &f.part, node)? {
                Content::Known(b) => Some(b),
                Content::Pending => None,
                Content::OnNode => {
                    notes.push(format!(
                        "{}:{} is not staged: {} for {} was signed from the node's CSR, so its key stays on the node",
                        node.name, f.install.path, f.profile, node.name
                    ));
                    continue;
                }
            };
            let kind = match f.part {
                PkiPart::Key | PkiPart::CaKey(_) => FileKind::Key,
                PkiPart::Cert => FileKind::Cert,
                PkiPart::Ca | PkiPart::SingleCa(_) => FileKind::Ca,
                PkiPart::Public => FileKind::Public,
            };
            files.push(StagedFile {
                path: f.install.path,
                contents,
                mode: f.install.mode,
                owner: f.install.owner,
                group: f.install.group,
                kind,
                source: f.profile,
            });
        }
    }
    for f in rendered {
        let pending = f.template == "cluster/admin.kubeconfig" && !admin_known;
        let tree = f.tree.dir_name();
        let mut s = config_file(f);
        if pending {
            s.contents = None;
        }
        trees.entry(tree).or_default().push(s);
    }
    let mut out = Vec::new();
    for (tree, files) in trees {
        let merged = stage::merge(&tree, files)?;
        out.push((tree, merged));
    }
    Ok((out, notes))
}

/// The plans of the whole cluster that the store has no issuance for.
fn missing(store: Option<&Store>, profiles: &Profiles, inv: &Inventory) -> Result<Vec<Plan>> {
    let plans = plan::plan_cluster(profiles, inv, &Overrides::default())?;
    Ok(match store {
        None => plans,
        Some(s) => plans
            .into_iter()
            .filter(|p| {
                let d = s.issued_dir(&p.profile, &p.target.key());
                !d.join("key.pem.age").exists() && !d.join("cert.pem").exists()
            })
            .collect(),
    })
}

fn init_spec(g: &Global, inv: &Inventory) -> Result<InitSpec> {
    Ok(InitSpec {
        cluster: inv.cluster.name.clone(),
        model: CaModel::Single,
        key: crate::pki::KeyAlgorithm::EcdsaP256,
        validity: super::parse_span("10y", "validity")?,
        protection: Protection::Identity {
            file: g.identity.clone().unwrap_or_else(super::default_identity),
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
    if !Store::exists(&g.store) {
        let (store, report) = Store::init(&g.store, init_spec(g, &inv)?, now)?;
        if let Some(id) = &report.identity_created {
            p.line(format!(
                "created identity {} (mode 0600): keep it safe and out of the store; it opens every key",
                id.display()
            ))?;
        }
        p.line(format!(
            "no store at {}: initialised it as `kpki init` does (one root CA '{}', ecdsa-p256, 10 years, keys encrypted to the identity)",
            store.dir().display(),
            report.cas.first().map_or("root", |(n, _)| n.as_str())
        ))?;
    }
    let store = Store::open(&g.store)?;
    let _lock = store.lock()?;
    let keyring = super::unlock(g, &store)?;
    let todo = missing(Some(&store), &profiles, &inv)?;
    let issued = if todo.is_empty() {
        vec![]
    } else {
        issue::issue(
            &store,
            Some(&keyring),
            &profiles,
            todo,
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
    }
    let src = Source {
        store: Some(&store),
        keyring: Some(&keyring),
    };
    let (trees, notes) = desired(
        &src,
        &inv,
        &profiles,
        &templates,
        a.templates.cluster_signing,
    )?;
    for n in &notes {
        p.line(format!("note: {n}"))?;
    }
    let mut totals: BTreeMap<Change, usize> = BTreeMap::new();
    for (tree, files) in &trees {
        if let Some(f) = files.iter().find(|f| f.contents.is_none()) {
            return Err(Error::usage(
                format!("{tree}:{} has no contents after issuing", f.path),
                "run `kpki plan` to see what is missing from the store",
            ));
        }
        let changes = stage::write(&a.out.join(tree), tree, files, true)?;
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
    p.line(format!(
        "apply: {} issued; {} tree(s) in {}: {}",
        issued.len(),
        trees.len(),
        a.out.display(),
        count_text(&totals)
    ))
}

/// `kpki plan`.
pub(super) fn plan_cmd(g: &Global, a: &PlanArgs, p: &mut Printer) -> Result<()> {
    let inv = Inventory::load(&g.inventory)?;
    let profiles = super::profiles(g)?;
    let templates = templates(g, &a.templates)?;
    let store = if Store::exists(&g.store) {
        Some(Store::open(&g.store)?)
    } else {
        p.data(format!(
            "init store {} (one root CA, ecdsa-p256, 10 years; identity {})",
            g.store.display(),
            g.identity
                .clone()
                .unwrap_or_else(super::default_identity)
                .display()
        ))?;
        None
    };
    let keyring = store.as_ref().map(|s| super::unlock(g, s)).transpose()?;
    let todo = missing(store.as_ref(), &profiles, &inv)?;
    for t in &todo {
        p.data(format!("issue {} for {}", t.profile, t.target))?;
    }
    let src = Source {
        store: store.as_ref(),
        keyring: keyring.as_ref(),
    };
    let (trees, notes) = desired(
        &src,
        &inv,
        &profiles,
        &templates,
        a.templates.cluster_signing,
    )?;
    for n in &notes {
        p.line(format!("note: {n}"))?;
    }
    let mut totals: BTreeMap<Change, usize> = BTreeMap::new();
    for (tree, files) in &trees {
        for (path, c) in stage::plan(&a.out.join(tree), tree, files, true)? {
            *totals.entry(c).or_default() += 1;
            if c != Change::Unchanged {
                p.data(format!("{} {tree}:{path}", c.word()))?;
            }
        }
    }
    p.line(format!(
        "plan: {} to issue; staged files in {}: {}",
        todo.len(),
        a.out.display(),
        count_text(&totals)
    ))
}
