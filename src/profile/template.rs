//! Subject and SAN templates such as `{node.fqdn}` or `kubernetes.default.svc.{cluster.cluster_domain}`.
//!
//! Templates are parsed when a profile loads, so an unknown placeholder is an error in the
//! profile file, not a surprise at issue time. A template holds at most one placeholder that
//! stands for several values (`{masters.ip}`), and expands to one value per match.

use std::fmt;

use crate::inventory::{Inventory, Node, Role};

/// A placeholder a template may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    NodeName,
    NodeFqdn,
    NodeIp,
    LbFqdn,
    LbIp,
    MastersName,
    MastersFqdn,
    MastersIp,
    EtcdFqdn,
    EtcdIp,
    ClusterName,
    ClusterDomain,
    ClusterClusterDomain,
    ClusterKubernetesIp,
}

const VARS: &[(&str, Var)] = &[
    ("node.name", Var::NodeName),
    ("node.fqdn", Var::NodeFqdn),
    ("node.ip", Var::NodeIp),
    ("lb.fqdn", Var::LbFqdn),
    ("lb.ip", Var::LbIp),
    ("masters.name", Var::MastersName),
    ("masters.fqdn", Var::MastersFqdn),
    ("masters.ip", Var::MastersIp),
    ("etcd.fqdn", Var::EtcdFqdn),
    ("etcd.ip", Var::EtcdIp),
    ("cluster.name", Var::ClusterName),
    ("cluster.domain", Var::ClusterDomain),
    ("cluster.cluster_domain", Var::ClusterClusterDomain),
    ("cluster.kubernetes_ip", Var::ClusterKubernetesIp),
];

impl Var {
    pub fn needs_node(self) -> bool {
        matches!(self, Var::NodeName | Var::NodeFqdn | Var::NodeIp)
    }

    fn multi(self) -> bool {
        matches!(
            self,
            Var::MastersName | Var::MastersFqdn | Var::MastersIp | Var::EtcdFqdn | Var::EtcdIp
        )
    }

    fn name(self) -> &'static str {
        VARS.iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// The values of this placeholder; empty when the inventory has nothing for it
    /// (no load balancer, say), which drops the template's SAN.
    fn values(self, inv: &Inventory, node: Option<&Node>) -> Vec<String> {
        let each = |role: Role, f: fn(&Node) -> String| inv.with_role(role).map(f).collect();
        match self {
            Var::NodeName => node.map(|n| n.name.to_string()).into_iter().collect(),
            Var::NodeFqdn => node.map(|n| n.fqdn.clone()).into_iter().collect(),
            Var::NodeIp => node.map(|n| n.ip.to_string()).into_iter().collect(),
            Var::LbFqdn => inv.loadbalancer.iter().map(|l| l.fqdn.clone()).collect(),
            Var::LbIp => inv.loadbalancer.iter().map(|l| l.ip.to_string()).collect(),
            Var::MastersName => each(Role::Master, |n| n.name.to_string()),
            Var::MastersFqdn => each(Role::Master, |n| n.fqdn.clone()),
            Var::MastersIp => each(Role::Master, |n| n.ip.to_string()),
            Var::EtcdFqdn => each(Role::Etcd, |n| n.fqdn.clone()),
            Var::EtcdIp => each(Role::Etcd, |n| n.ip.to_string()),
            Var::ClusterName => vec![inv.cluster.name.clone()],
            Var::ClusterDomain => vec![inv.cluster.domain.clone()],
            Var::ClusterClusterDomain => vec![inv.cluster.cluster_domain.clone()],
            Var::ClusterKubernetesIp => vec![inv.cluster.kubernetes_service_ip().to_string()],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `single` refuses placeholders that stand for several values.
    pub fn parse(text: &str, single: bool) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut multi = 0;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("'{text}' has a '{{' without a closing '}}'"))?;
            let name = rest[open + 1..open + close].trim();
            let var = VARS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let known: Vec<&str> = VARS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown placeholder '{{{name}}}' in '{text}'; known: {}",
                        known.join(", ")
                    )
                })?;
            if var.multi() {
                multi += 1;
                if single {
                    return Err(format!(
                        "'{{{name}}}' stands for several values and cannot be used in '{text}'"
                    ));
                }
            }
            parts.push(Part::Var(var));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        if multi > 1 {
            return Err(format!(
                "'{text}' names more than one multi-valued placeholder"
            ));
        }
        if parts.is_empty() {
            return Err("an empty template".into());
        }
        Ok(Template { parts })
    }

    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Lit(_) => None,
        })
    }

    pub fn needs_node(&self) -> bool {
        self.vars().any(Var::needs_node)
    }

    /// Every value of the template; empty when a placeholder has no value.
    pub fn expand(&self, inv: &Inventory, node: Option<&Node>) -> Vec<String> {
        let mut out = vec![String::new()];
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.iter_mut().for_each(|o| o.push_str(s)),
                Part::Var(v) => {
                    let vals = v.values(inv, node);
                    out = out
                        .iter()
                        .flat_map(|o| vals.iter().map(move |val| format!("{o}{val}")))
                        .collect();
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Lit(s) => f.write_str(s)?,
                Part::Var(v) => write!(f, "{{{}}}", v.name())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let t = Template::parse("kubernetes.default.svc.{cluster.cluster_domain}", true).unwrap();
        assert_eq!(
            t.to_string(),
            "kubernetes.default.svc.{cluster.cluster_domain}"
        );
        assert!(Template::parse("{node.color}", false)
            .unwrap_err()
            .contains("unknown placeholder"));
        assert!(Template::parse("{masters.ip}", true).is_err());
        assert!(Template::parse("{masters.ip}-{etcd.ip}", false).is_err());
        assert!(Template::parse("{node.ip", false).is_err());
    }
}
