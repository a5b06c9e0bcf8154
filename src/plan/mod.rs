//! Planning: from a request, the inventory and the profiles to fully concrete plans of
//! what to issue (pure: no files, no keys, no clock), and [`decide`]: for each plan, what
//! the store holds and why it must be issued, reissued, renewed or kept.

mod decide;

pub use decide::{decide, held, renew_at, stagger, Decision, Held, HeldCert, Reason};

use std::collections::BTreeSet;
use std::fmt;

use crate::inventory::{Inventory, Node, NodeName, Role};
use crate::pki::{KeyAlgorithm, San};
use crate::profile::{Body, CaRole, Eku, KeyKind, Profile, Profiles, Scope};
use crate::span::Span;

/// Who a certificate is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Node(NodeName),
    Cluster,
    /// An ad-hoc certificate named by its CN.
    Adhoc(String),
}

impl Target {
    /// The directory name under the profile in the store.
    pub fn key(&self) -> String {
        match self {
            Target::Node(n) => n.to_string(),
            Target::Cluster => "cluster".into(),
            Target::Adhoc(cn) => format!(
                "cn-{}",
                cn.chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    })
                    .collect::<String>()
            ),
        }
    }

    pub fn node(&self) -> Option<&NodeName> {
        match self {
            Target::Node(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::Cluster => f.write_str("cluster"),
            Target::Adhoc(cn) => write!(f, "CN={cn}"),
        }
    }
}

/// A certificate's content, decided before any key exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertContent {
    pub ca: CaRole,
    pub cn: String,
    pub o: Vec<String>,
    pub sans: Vec<San>,
    pub ext_key_usage: Vec<Eku>,
    pub validity: Span,
    /// Spread notAfter (see [`stagger`]); off when the user gave the validity.
    pub stagger: bool,
}

/// One thing to issue.
#[derive(Clone, Debug)]
pub struct Plan {
    pub profile: String,
    pub target: Target,
    /// The key to make: a key pair's algorithm, or a secret's encryption provider.
    pub key: KeyKind,
    /// `None` for a bare key pair or a secret.
    pub cert: Option<CertContent>,
}

/// Which targets a request names.
#[derive(Clone, Debug)]
pub enum Selector {
    Node(String),
    All,
}

/// Overrides the user may give on the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub validity: Option<Span>,
    pub key: Option<KeyAlgorithm>,
    pub extra_sans: Vec<San>,
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("node '{0}' is not in the inventory")]
    UnknownNode(String, Option<String>),
    #[error("profile {profile} is for {wanted} nodes; {node} has roles {has}")]
    RoleMismatch {
        profile: String,
        wanted: String,
        node: String,
        has: String,
    },
    #[error("profile {0} is issued once for the cluster, not per node")]
    ClusterScoped(String),
    #[error("profile {0} is issued per node")]
    NeedsNode(String),
    #[error("profile {0} makes a {1}, not a certificate with a CN")]
    NotACertificate(String, &'static str),
    #[error("profile {0} makes a {1} key; --algorithm chooses a key pair's algorithm")]
    SecretAlgorithm(String, &'static str),
    #[error("{0}")]
    BadSan(String),
}

impl PlanError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PlanError::UnknownNode(_, Some(s)) => {
                format!("did you mean '{s}'? the nodes are the [[nodes]] of the inventory")
            }
            PlanError::UnknownNode(_, None) => "name a node of the inventory's [[nodes]]".into(),
            PlanError::RoleMismatch { .. } => {
                "pick a node with that role, or give the node the role in the inventory".into()
            }
            PlanError::ClusterScoped(_) => "drop --node".into(),
            PlanError::NeedsNode(_) => {
                "add --node NAME or --all, or --cn CN --san … for an ad-hoc certificate".into()
            }
            PlanError::NotACertificate(..) => "drop --cn and --san".into(),
            PlanError::SecretAlgorithm(..) => {
                "drop --algorithm; the profile's provider decides the key".into()
            }
            PlanError::BadSan(_) => {
                "write SANs as IP addresses or DNS names, such as 10.0.0.5 or etcd01.example.com"
                    .into()
            }
        })
    }
}

fn roles_text(r: &BTreeSet<Role>) -> String {
    if r.is_empty() {
        return "no".into();
    }
    r.iter().map(Role::to_string).collect::<Vec<_>>().join("/")
}

fn content(
    p: &Profile,
    inv: &Inventory,
    node: Option<&Node>,
    o: &Overrides,
) -> Result<Option<CertContent>, PlanError> {
    let Body::Certificate(spec) = &p.body else {
        return Ok(None);
    };
    let cn = spec
        .cn
        .expand(inv, node)
        .into_iter()
        .next()
        .unwrap_or_default();
    let orgs = spec.o.iter().flat_map(|t| t.expand(inv, node)).collect();
    let mut sans: Vec<San> = Vec::new();
    for t in &spec.sans {
        for v in t.expand(inv, node) {
            let s = San::parse(&v)
                .map_err(|m| PlanError::BadSan(format!("profile {}: {m}", p.name)))?;
            if !sans.contains(&s) {
                sans.push(s);
            }
        }
    }
    for s in &o.extra_sans {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    Ok(Some(CertContent {
        ca: spec.ca,
        cn,
        o: orgs,
        sans,
        ext_key_usage: spec.ext_key_usage.clone(),
        validity: o.validity.unwrap_or(spec.validity),
        stagger: spec.stagger && o.validity.is_none(),
    }))
}

/// Plans one profile for the selected targets.
pub fn plan_profile(
    p: &Profile,
    inv: &Inventory,
    sel: &Selector,
    o: &Overrides,
) -> Result<Vec<Plan>, PlanError> {
    let key = match (p.key, o.key) {
        (KeyKind::Pair(a), o) => KeyKind::Pair(o.unwrap_or(a)),
        (KeyKind::Secret(_), Some(_)) => {
            return Err(PlanError::SecretAlgorithm(p.name.clone(), p.key.name()))
        }
        (k @ KeyKind::Secret(_), None) => k,
    };
    let mk = |target: Target, node: Option<&Node>| -> Result<Plan, PlanError> {
        Ok(Plan {
            profile: p.name.clone(),
            target,
            key,
            cert: content(p, inv, node, o)?,
        })
    };
    match sel {
        Selector::Node(name) => {
            if p.scope == Scope::Cluster {
                return Err(PlanError::ClusterScoped(p.name.clone()));
            }
            let node = inv.node(name).ok_or_else(|| {
                PlanError::UnknownNode(
                    name.clone(),
                    inv.nodes()
                        .iter()
                        .map(|n| n.name.to_string())
                        .find(|n| n.starts_with(&name[..name.len().min(3)])),
                )
            })?;
            if !p.applies_to(&node.roles) {
                return Err(PlanError::RoleMismatch {
                    profile: p.name.clone(),
                    wanted: roles_text(&p.roles),
                    node: name.clone(),
                    has: roles_text(&node.roles),
                });
            }
            Ok(vec![mk(Target::Node(node.name.clone()), Some(node))?])
        }
        Selector::All => match p.scope {
            Scope::Node => inv
                .nodes()
                .iter()
                .filter(|n| p.applies_to(&n.roles))
                .map(|n| mk(Target::Node(n.name.clone()), Some(n)))
                .collect(),
            Scope::Cluster => {
                let wanted =
                    p.roles.is_empty() || inv.nodes().iter().any(|n| p.applies_to(&n.roles));
                if wanted {
                    Ok(vec![mk(Target::Cluster, None)?])
                } else {
                    Ok(vec![])
                }
            }
        },
    }
}

/// Plans an ad-hoc certificate named by its CN: the profile's usages, lifetime and CA,
/// and only the SANs given on the command line (nothing is drawn from the inventory).
pub fn plan_adhoc(p: &Profile, cn: &str, o: &Overrides) -> Result<Plan, PlanError> {
    let (Body::Certificate(spec), KeyKind::Pair(key)) = (&p.body, p.key) else {
        return Err(PlanError::NotACertificate(p.name.clone(), p.kind_name()));
    };
    Ok(Plan {
        profile: p.name.clone(),
        target: Target::Adhoc(cn.to_owned()),
        key: KeyKind::Pair(o.key.unwrap_or(key)),
        cert: Some(CertContent {
            ca: spec.ca,
            cn: cn.to_owned(),
            o: vec![],
            sans: o.extra_sans.clone(),
            ext_key_usage: spec.ext_key_usage.clone(),
            validity: o.validity.unwrap_or(spec.validity),
            stagger: spec.stagger && o.validity.is_none(),
        }),
    })
}

/// Plans every profile for every node whose roles call for it: the whole cluster.
pub fn plan_cluster(
    profiles: &Profiles,
    inv: &Inventory,
    o: &Overrides,
) -> Result<Vec<Plan>, PlanError> {
    let mut out = Vec::new();
    for p in profiles.iter() {
        out.extend(plan_profile(p, inv, &Selector::All, o)?);
    }
    Ok(out)
}
