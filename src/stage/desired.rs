//! What every tree holds: the PKI files from the store (the current generation of each
//! issuance, each role's trust file, published public keys, the encryption keys in their
//! EncryptionConfiguration) and the rendered configs, merged per tree. `apply` and `plan`
//! stage it; distribution and rotation will read it; [`verify`] runs `render --check`'s
//! code on it before anything is written.

use std::collections::BTreeMap;
use std::path::PathBuf;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{merge, FileKind, StagedFile};
use crate::inventory::Inventory;
use crate::plan::Target;
use crate::profile::{Body, Profile, Profiles, Scope};
use crate::render::{self, check, PkiPart, RenderError, Selection, Templates};
use crate::store::{Keyring, Store};
use crate::Result;

/// A rendered config as a staged file.
pub fn config_file(f: render::RenderedFile) -> StagedFile {
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

/// What a PKI file of the staged tree holds, as far as it is known.
enum Content {
    Known(Zeroizing<Vec<u8>>),
    /// Not issued yet (`kpki plan` before `kpki apply`).
    Pending,
    /// Signed from a node's CSR: the key never left the node and is not staged.
    OnNode,
}

/// The store, and its keyring when unlocked.
pub struct Source<'a> {
    pub store: Option<&'a Store>,
    pub keyring: Option<&'a Keyring>,
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
        let current = store.current(&p.name, &target)?;
        let known = |b: Vec<u8>| Content::Known(Zeroizing::new(b));
        Ok(match part {
            PkiPart::Key => match (&current, self.keyring) {
                (Some(g), Some(k)) if g.has("key.pem.age") => {
                    Content::Known(store.open_key(&p.name, &target, k)?)
                }
                (Some(g), _) if !g.has("key.pem.age") && g.has("cert.pem") => Content::OnNode,
                _ => Content::Pending,
            },
            PkiPart::Cert => match (
                current
                    .as_ref()
                    .map(|g| g.read("cert.pem"))
                    .transpose()?
                    .flatten(),
                &p.body,
            ) {
                (Some(mut cert), Body::Certificate(spec)) => {
                    if spec.append_ca {
                        // The CA that signed this generation, which is the signing CA
                        // unless the planner is about to reissue it (`issuer`).
                        let issuer = crate::pki::pem::first_cert(&cert)
                            .and_then(|d| crate::pki::facts(&d).ok())
                            .and_then(|f| f.issuer_key_id)
                            .filter(|id| store.ca_by_id(id).is_some());
                        let ca = match issuer {
                            Some(id) => store.ca_pem_by_id(&id)?,
                            None => store.ca_cert_pem(spec.ca)?,
                        };
                        cert.extend_from_slice(ca.as_bytes());
                    }
                    known(cert)
                }
                _ => Content::Pending,
            },
            // Every CA the role trusts: during a CA rotation the old and the new.
            PkiPart::Ca => match &p.body {
                Body::Certificate(spec) => known(store.trust_pem(spec.ca)?.into_bytes()),
                Body::KeyPair { .. } | Body::Secret { .. } => Content::Pending,
            },
            // The current key, which encrypts, then the earlier ones still trusted, so
            // what they encrypted stays readable. Made here, in memory, from the store.
            PkiPart::SecretConfig => match self.keyring {
                Some(k) => match crate::encryption::keys_from_store(store, &p.name, &target, k)? {
                    Some(keys) => Content::Known(crate::encryption::config(&p.name, &keys)),
                    None => Content::Pending,
                },
                None => Content::Pending,
            },
            // The current public key and the earlier ones still published, so tokens
            // signed with the previous service-account key keep verifying.
            PkiPart::Public => match &current {
                Some(g) => match g.read("public.pem")? {
                    Some(mut b) => {
                        for n in store.trusted_generations(&p.name, &target)?.iter().rev() {
                            if let Some(old) =
                                store.generation(&p.name, &target, *n).read("public.pem")?
                            {
                                b.extend_from_slice(&old);
                            }
                        }
                        known(b)
                    }
                    None => Content::Pending,
                },
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
        let Some(g) = store.current(&p.name, &target)? else {
            return Ok(None);
        };
        let (Some(cert), true) = (g.read("cert.pem")?, g.has("key.pem.age")) else {
            return Ok(None);
        };
        let key = store.open_key(&p.name, &target, k)?;
        Ok(Some(render::AdminData {
            ca_pem: store.trust_pem(spec.ca)?,
            cert_pem: String::from_utf8_lossy(&cert).into_owned(),
            key_pem: Zeroizing::new(String::from_utf8_lossy(&key).into_owned()),
        }))
    }
}

/// Notes for the operator about files not staged (keys kept on their nodes).
pub type Notes = Vec<String>;

/// Each tree's name and its merged files.
pub type Trees = Vec<(String, Vec<StagedFile>)>;

/// Every tree's files: PKI files from the store and rendered configs, merged per tree.
pub fn desired(
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
                    files.push(StagedFile {
                        path: f.install.path,
                        contents: None,
                        mode: f.install.mode,
                        owner: f.install.owner,
                        group: f.install.group,
                        kind: FileKind::OnNode,
                        source: f.profile,
                    });
                    continue;
                }
            };
            let kind = match f.part {
                PkiPart::Key | PkiPart::CaKey(_) => FileKind::Key,
                PkiPart::Cert => FileKind::Cert,
                PkiPart::Ca | PkiPart::SingleCa(_) => FileKind::Ca,
                PkiPart::Public => FileKind::Public,
                PkiPart::SecretConfig => FileKind::Secret,
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
        let merged = merge(&tree, files)?;
        out.push((tree, merged));
    }
    Ok((out, notes))
}

/// Verifies every tree as it would be written, with `render --check`'s code, before
/// any is: a tree that check would reject is never staged.
pub fn verify(trees: &Trees, now: OffsetDateTime) -> std::result::Result<(), RenderError> {
    let mut problems = Vec::new();
    for (tree, files) in trees {
        let mem: crate::render::tree::MemTree = files
            .iter()
            .filter_map(|f| {
                f.contents
                    .as_ref()
                    .map(|c| (PathBuf::from(&f.path), Zeroizing::new(c.to_vec()), f.mode))
            })
            .collect();
        let on_node: Vec<String> = files
            .iter()
            .filter(|f| f.kind == FileKind::OnNode)
            .map(|f| f.path.clone())
            .collect();
        for f in check::on_node_present(check::check_tree(&mem, now), &on_node) {
            problems.push(format!("{tree}: {f}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(RenderError::Unverified { problems })
}
