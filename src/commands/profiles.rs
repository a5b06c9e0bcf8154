//! `kpki profiles list|show`.

use super::*;

pub(super) fn run(g: &crate::cli::Global, c: &ProfilesCommand, p: &mut Printer) -> Result<()> {
    let profiles = profiles(g)?;
    match c {
        ProfilesCommand::List { json: true } => {
            let all: Vec<ProfileJson> = profiles.iter().map(ProfileJson::of).collect();
            p.data(serde_json::to_string_pretty(&all).expect("serializes"))
        }
        ProfilesCommand::List { json: false } => {
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
        ProfilesCommand::Show { name, json } => {
            let pr = profiles.get(name)?;
            if *json {
                #[derive(serde::Serialize)]
                struct Shown<'a> {
                    #[serde(flatten)]
                    profile: ProfileJson<'a>,
                    toml: &'a str,
                }
                let shown = Shown {
                    profile: ProfileJson::of(pr),
                    toml: &pr.text,
                };
                return p.data(serde_json::to_string_pretty(&shown).expect("serializes"));
            }
            p.data(pr.text.trim_end())
        }
    }
}

/// A profile as `profiles list --json` and `profiles show --json` print it; the fields
/// are documented in the commands' help (`crate::cli::ProfilesCommand`).
#[derive(serde::Serialize)]
struct ProfileJson<'a> {
    name: &'a str,
    description: &'a str,
    kind: &'static str,
    scope: crate::profile::Scope,
    roles: Vec<String>,
    ca: Option<crate::profile::CaRole>,
    key: &'static str,
    validity: Option<String>,
    ext_key_usage: Vec<crate::profile::Eku>,
    files: Vec<FileJson<'a>>,
    origin: &'static str,
    file: Option<&'a Path>,
}

#[derive(serde::Serialize)]
struct FileJson<'a> {
    what: &'static str,
    path: &'a str,
    owner: &'a str,
    group: &'a str,
    mode: String,
}

impl<'a> ProfileJson<'a> {
    fn of(pr: &'a crate::profile::Profile) -> ProfileJson<'a> {
        use crate::profile::{Body, InstallFile, Origin};
        let file = |what, f: &'a InstallFile| FileJson {
            what,
            path: &f.path,
            owner: &f.owner,
            group: &f.group,
            mode: format!("{:04o}", f.mode),
        };
        let mut files = Vec::new();
        let kind = match &pr.body {
            Body::Certificate(c) => {
                files.push(file("cert", &c.cert));
                files.push(file("ca", &c.ca_file));
                "certificate"
            }
            Body::KeyPair { public } => {
                files.push(file("public", public));
                "key-pair"
            }
            Body::Secret { config } => {
                files.push(file("config", config));
                "secret"
            }
        };
        if let Some(k) = &pr.key_file {
            files.insert(1.min(files.len()), file("key", k));
        }
        let spec = pr.cert_spec();
        ProfileJson {
            name: &pr.name,
            description: &pr.description,
            kind,
            scope: pr.scope,
            roles: pr.roles.iter().map(|r| r.to_string()).collect(),
            ca: spec.map(|s| s.ca),
            key: pr.key.name(),
            validity: spec.map(|s| s.validity.to_string()),
            ext_key_usage: spec.map(|s| s.ext_key_usage.clone()).unwrap_or_default(),
            files,
            origin: match pr.origin {
                Origin::Builtin => "builtin",
                Origin::File(_) => "file",
            },
            file: match &pr.origin {
                Origin::Builtin => None,
                Origin::File(f) => Some(f),
            },
        }
    }
}
