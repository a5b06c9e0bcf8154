//! `kpki profiles list|show`.

use super::*;

pub(super) fn run(g: &crate::cli::Global, c: &ProfilesCommand, p: &mut Printer) -> Result<()> {
    let profiles = profiles(g)?;
    match c {
        ProfilesCommand::List => {
            p.data(format!(
                "{:<26} {:<14} {:<12} {:<8} {:<11} {}",
                "PROFILE", "ROLES", "CA", "SCOPE", "KEY", "PURPOSE"
            ))?;
            for pr in profiles.iter() {
                let roles = if pr.roles.is_empty() {
                    "-".to_string()
                } else {
                    pr.roles
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let ca = pr.cert_spec().map_or("-".to_string(), |s| s.ca.to_string());
                let scope = match pr.scope {
                    crate::profile::Scope::Node => "node",
                    crate::profile::Scope::Cluster => "cluster",
                };
                let origin = match &pr.origin {
                    crate::profile::Origin::Builtin => String::new(),
                    crate::profile::Origin::File(f) => format!(" [{}]", f.display()),
                };
                p.data(format!(
                    "{:<26} {:<14} {:<12} {:<8} {:<11} {}{origin}",
                    pr.name,
                    roles,
                    ca,
                    scope,
                    pr.key.name(),
                    pr.description
                ))?;
            }
            Ok(())
        }
        ProfilesCommand::Show { name } => {
            let pr = profiles.get(name)?;
            p.data(pr.text.trim_end())
        }
    }
}
