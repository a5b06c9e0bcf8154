//! Orchestration: turns what the user typed into core requests, runs them, and prints
//! the result. The only layer that reads the environment, the clock and the terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use time::OffsetDateTime;

use crate::cli::{
    CaModelArg, Cli, Command, CsrArgs, InitArgs, InspectArgs, IssueArgs, ProfilesCommand, SignArgs,
};
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::issue::{self, Options};
use crate::pki::{self, pem::Object, KeyAlgorithm, San};
use crate::plan::{self, Overrides, Selector};
use crate::profile::Profiles;
use crate::span::{human_left, Span};
use crate::store::{self, CaModel, InitSpec, Keyring, Protection, Store, Unlock};

/// Where output goes; errors are rendered by `main`.
pub struct Printer {
    out: Box<dyn Write>,
    quiet: bool,
}

impl Printer {
    pub fn stdout(quiet: bool) -> Printer {
        Printer {
            out: Box::new(std::io::stdout().lock()),
            quiet,
        }
    }

    fn line(&mut self, s: impl AsRef<str>) -> Result<()> {
        if !self.quiet {
            self.data(s)?;
        }
        Ok(())
    }

    /// Output that is the command's product (PEM, JSON): printed even with --quiet.
    fn data(&mut self, s: impl AsRef<str>) -> Result<()> {
        match writeln!(self.out, "{}", s.as_ref()) {
            // A closed pipe (`| head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(Error::io("standard output")),
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let mut p = Printer::stdout(cli.global.quiet);
    let now = OffsetDateTime::now_utc();
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => init(g, a, now, &mut p),
        Command::Issue(a) => issue_cmd(g, a, now, &mut p),
        Command::Csr(a) => csr_cmd(g, a, &mut p),
        Command::Sign(a) => sign_cmd(g, a, now, &mut p),
        Command::Inspect(a) => inspect_cmd(a, now, &mut p),
        Command::Profiles(c) => profiles_cmd(g, c, &mut p),
        Command::GenerateMan { out } => {
            std::fs::create_dir_all(out).map_err(Error::io(out))?;
            for (name, body) in crate::cli::man::pages().map_err(Error::io("man"))? {
                let path = out.join(&name);
                crate::store::atomic::write(&path, &body, 0o644, crate::store::Existing::Replace)
                    .map_err(Error::io(&path))?;
                p.line(format!("wrote {}", path.display()))?;
            }
            Ok(())
        }
    }
}

fn default_identity() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kpki").join("identity.txt")
}

fn passphrase(confirm: bool) -> Result<SecretString> {
    if let Ok(p) = std::env::var("KPKI_PASSPHRASE") {
        if p.is_empty() {
            return Err(Error::usage(
                "KPKI_PASSPHRASE is empty",
                "set it to the store's passphrase",
            ));
        }
        return Ok(SecretString::from(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "this store needs its passphrase and there is no terminal to ask on",
            "set KPKI_PASSPHRASE",
        ));
    }
    let p = rpassword::prompt_password("kpki store passphrase: ").map_err(Error::io("terminal"))?;
    if confirm {
        let again = rpassword::prompt_password("again: ").map_err(Error::io("terminal"))?;
        if again != p {
            return Err(Error::usage(
                "the passphrases differ",
                "type the same passphrase twice",
            ));
        }
    }
    if p.is_empty() {
        return Err(Error::usage("the passphrase is empty", "type a passphrase"));
    }
    Ok(SecretString::from(p))
}

fn unlock(g: &crate::cli::Global, store: &Store) -> Result<Keyring> {
    let how = match (&g.identity, store.is_passphrase()) {
        (Some(f), _) => Unlock::IdentityFile(f.clone()),
        (None, true) => Unlock::Passphrase(passphrase(false)?),
        (None, false) => Unlock::IdentityFile(default_identity()),
    };
    Ok(store.keyring(&how)?)
}

fn profiles(g: &crate::cli::Global) -> Result<Profiles> {
    let dir = g
        .profiles
        .clone()
        .unwrap_or_else(|| g.store.join("profiles"));
    Ok(Profiles::load(Some(&dir))?)
}

fn parse_span(s: &str, flag: &str) -> Result<Span> {
    s.parse().map_err(|m: String| {
        Error::usage(
            format!("invalid value for --{flag}: {m}"),
            "write it like 90d, 1y or 12h",
        )
    })
}

fn parse_alg(s: &str) -> Result<KeyAlgorithm> {
    s.parse().map_err(|m: String| {
        Error::usage(
            format!("invalid value for --algorithm: {m}"),
            format!("use one of {}", pki::ALGORITHM_NAMES),
        )
    })
}

fn parse_sans(list: &[String]) -> Result<Vec<San>> {
    list.iter()
        .map(|s| {
            San::parse(s).map_err(|m| {
                Error::usage(
                    format!("invalid value for --san: {m}"),
                    "write an IP address or a DNS name",
                )
            })
        })
        .collect()
}

fn date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    t.format(&f).unwrap_or_default()
}

fn init(g: &crate::cli::Global, a: &InitArgs, now: OffsetDateTime, p: &mut Printer) -> Result<()> {
    let key = parse_alg(&a.algorithm)?;
    let validity = parse_span(&a.validity, "validity")?;
    // The inventory names the cluster when there is one; init works without it.
    let cluster = match Inventory::load(&g.inventory) {
        Ok(inv) => inv.cluster.name,
        Err(crate::inventory::InventoryError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            "kubernetes".into()
        }
        Err(e) => return Err(e.into()),
    };
    let protection = if a.passphrase {
        Protection::Passphrase(passphrase(true)?)
    } else {
        Protection::Identity {
            file: g.identity.clone().unwrap_or_else(default_identity),
            extra: a.recipient.clone(),
        }
    };
    let spec = InitSpec {
        cluster,
        model: match a.ca_model {
            CaModelArg::Single => CaModel::Single,
            CaModelArg::Kubeadm => CaModel::Kubeadm,
        },
        key,
        validity,
        protection,
        force: a.force,
    };
    let (store, report) = Store::init(&g.store, spec, now)?;
    if let Some(id) = &report.identity_created {
        p.line(format!("created identity {} (mode 0600): keep it safe and out of the store; it opens every key", id.display()))?;
    }
    for (name, path) in &report.cas {
        p.line(format!(
            "created CA '{name}' ({key}, until {}): {}",
            date(now + validity.duration()),
            path.display()
        ))?;
    }
    p.line(format!(
        "store ready at {} for cluster '{}'",
        store.dir().display(),
        store.cluster()
    ))
}

fn issue_cmd(
    g: &crate::cli::Global,
    a: &IssueArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let overrides = Overrides {
        validity: a
            .validity
            .as_deref()
            .map(|v| parse_span(v, "validity"))
            .transpose()?,
        key: a.algorithm.as_deref().map(parse_alg).transpose()?,
        extra_sans: parse_sans(&a.san)?,
    };
    let store = Store::open(&g.store)?;
    let profiles = profiles(g)?;
    let sel = &a.selector;
    if sel.cn.is_none() && !a.san.is_empty() && sel.all {
        return Err(Error::usage(
            "flag '--san' is incompatible with '--all'",
            "add SANs per node with --node, or change the profile",
        ));
    }
    let plans = if let Some(cn) = &sel.cn {
        let name = a.profile.as_deref().ok_or_else(|| {
            Error::usage(
                "'--cn' requires the '--profile' flag",
                "name the profile whose usages the certificate gets",
            )
        })?;
        vec![plan::plan_adhoc(profiles.get(name)?, cn, &overrides)?]
    } else {
        let inv = Inventory::load(&g.inventory)?;
        match (&a.profile, &sel.node) {
            (Some(name), Some(node)) => plan::plan_profile(
                profiles.get(name)?,
                &inv,
                &Selector::Node(node.clone()),
                &overrides,
            )?,
            (Some(name), None) => {
                plan::plan_profile(profiles.get(name)?, &inv, &Selector::All, &overrides)?
            }
            (None, _) => plan::plan_cluster(&profiles, &inv, &overrides)?,
        }
    };
    if plans.is_empty() {
        return Err(Error::usage(
            "no node of the inventory has a role this profile is for",
            "check the profile's roles (`kpki profiles show NAME`) and the nodes' roles",
        ));
    }
    let _lock = store.lock()?;
    let keyring = if issue::needs_unlock(&plans) {
        Some(unlock(g, &store)?)
    } else {
        None
    };
    let opts = Options {
        force: a.force,
        clamp: a.clamp,
        out: a.out.clone(),
        now,
    };
    let done = issue::issue(&store, keyring.as_ref(), &profiles, plans, &opts)?;
    for i in &done {
        let r = &i.record;
        let mut line = if r.serial.is_empty() {
            format!(
                "generated {} for {}  {}",
                r.profile, i.plan.target, r.key_algorithm
            )
        } else {
            format!(
                "issued {} for {}  CA {}  until {} ({})  serial {}",
                r.profile,
                i.plan.target,
                r.ca,
                date(r.not_after),
                human_left((r.not_after - now).whole_seconds()),
                r.serial
            )
        };
        if let Some(first) = i.exported.first() {
            line.push_str(&format!(
                "  -> {}",
                first.parent().unwrap_or(first).display()
            ));
        }
        p.line(line)?;
    }
    p.line(format!(
        "{} issued into {}",
        done.len(),
        store.dir().display()
    ))
}

fn csr_cmd(g: &crate::cli::Global, a: &CsrArgs, p: &mut Printer) -> Result<()> {
    let profiles = profiles(g)?;
    let prof = profiles.get(&a.profile)?;
    let spec = prof.cert_spec().ok_or_else(|| {
        Error::usage(
            format!("profile {} makes a key pair, not a certificate", prof.name),
            "use a certificate profile",
        )
    })?;
    let inv = Inventory::load(&g.inventory)?;
    let overrides = Overrides {
        key: a.algorithm.as_deref().map(parse_alg).transpose()?,
        ..Default::default()
    };
    let plan =
        plan::plan_profile(prof, &inv, &Selector::Node(a.node.clone()), &overrides)?.remove(0);
    let (key_pem, csr_pem) = issue::make_csr(&plan)?;
    crate::store::atomic::create_dir_private(&a.out).map_err(Error::io(&a.out))?;
    let key_path = a.out.join(prof.key_file.file_name());
    let stem = spec
        .cert
        .file_name()
        .rsplit_once('.')
        .map_or(spec.cert.file_name(), |(s, _)| s);
    let csr_path = a.out.join(format!("{stem}.csr"));
    let existing = if a.force {
        store::Existing::Replace
    } else {
        store::Existing::Refuse
    };
    if !a.force && key_path.exists() {
        return Err(crate::issue::PolicyError::OutputExists(key_path).into());
    }
    if a.force && key_path.exists() {
        let bak = key_path.with_extension(format!(
            "key.{}.bak",
            OffsetDateTime::now_utc().unix_timestamp()
        ));
        std::fs::copy(&key_path, &bak).map_err(Error::io(&bak))?;
    }
    crate::store::atomic::write(&key_path, key_pem.as_bytes(), 0o600, existing)
        .map_err(Error::io(&key_path))?;
    crate::store::atomic::write(
        &csr_path,
        csr_pem.as_bytes(),
        0o644,
        store::Existing::Replace,
    )
    .map_err(Error::io(&csr_path))?;
    p.line(format!(
        "wrote key {} (0600) and CSR {}",
        key_path.display(),
        csr_path.display()
    ))?;
    p.line(format!(
        "sign it on the CA host: kpki sign --csr {} --profile {} --node {}",
        csr_path.file_name().unwrap_or_default().to_string_lossy(),
        prof.name,
        a.node
    ))
}

fn read_csr(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let objs = pki::pem::objects(&bytes)
        .map_err(|m| Error::Pki(pki::PkiError::BadCsr(format!("{}: {m}", path.display()))))?;
    objs.into_iter()
        .find_map(|o| match o {
            Object::Csr(d) => Some(d),
            _ => None,
        })
        .ok_or_else(|| {
            Error::Pki(pki::PkiError::BadCsr(format!(
                "{} holds no CERTIFICATE REQUEST",
                path.display()
            )))
        })
}

fn sign_cmd(
    g: &crate::cli::Global,
    a: &SignArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let der = read_csr(&a.csr)?;
    let info = pki::parse_csr(&der)?;
    let store = Store::open(&g.store)?;
    let profiles = profiles(g)?;
    let prof = profiles.get(&a.profile)?;
    if prof.cert_spec().is_none() {
        return Err(Error::usage(
            format!("profile {} makes a key pair, not a certificate", prof.name),
            "use a certificate profile",
        ));
    }
    let overrides = Overrides {
        validity: a
            .validity
            .as_deref()
            .map(|v| parse_span(v, "validity"))
            .transpose()?,
        key: None,
        extra_sans: parse_sans(&a.san)?,
    };
    // The plan's key algorithm goes unused here: the CSR brings the key.
    let plan = match &a.node {
        Some(node) => {
            let inv = Inventory::load(&g.inventory)?;
            plan::plan_profile(prof, &inv, &Selector::Node(node.clone()), &overrides)?.remove(0)
        }
        None => {
            let cn = info
                .subject
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix("CN="))
                .unwrap_or("")
                .to_owned();
            if cn.is_empty() {
                return Err(Error::usage(
                    "the CSR has no CN and no --node was given",
                    "pass --node NAME to sign for an inventory node",
                ));
            }
            plan::plan_adhoc(prof, &cn, &overrides)?
        }
    };
    let _lock = store.lock()?;
    let keyring = unlock(g, &store)?;
    let opts = Options {
        force: a.force,
        clamp: a.clamp,
        out: None,
        now,
    };
    let done = issue::sign_csr(&store, &keyring, plan, &info, &opts)?;
    let cert = done.cert_pem.clone().unwrap_or_default();
    let ca = done.ca_pem.clone().unwrap_or_default();
    match &a.out {
        Some(out) => {
            let files = issue::export(
                out,
                prof,
                &done.plan.target,
                Some(&cert),
                Some(&ca),
                None,
                None,
                &Options {
                    force: a.force,
                    ..opts
                },
            )?;
            for f in files {
                p.line(format!("wrote {}", f.display()))?;
            }
            p.line(format!(
                "signed {} for {}  serial {}  until {}",
                done.record.profile,
                done.plan.target,
                done.record.serial,
                date(done.record.not_after)
            ))
        }
        None => {
            let append = prof.cert_spec().is_some_and(|s| s.append_ca);
            p.data(format!("{}{}", cert, if append { ca.as_str() } else { "" }).trim_end())
        }
    }
}

#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Inspected {
    Certificate {
        file: String,
        #[serde(flatten)]
        summary: Box<pki::CertSummary>,
    },
    Csr {
        file: String,
        subject: String,
        sans: Vec<String>,
        key: pki::KeyInfo,
        requests_ca: bool,
    },
}

fn inspect_cmd(a: &InspectArgs, now: OffsetDateTime, p: &mut Printer) -> Result<()> {
    let mut all = Vec::new();
    for f in &a.files {
        let bytes = std::fs::read(f).map_err(Error::io(f))?;
        let objs = pki::pem::objects(&bytes).map_err(|m| {
            Error::Pki(pki::PkiError::BadCertificate(format!(
                "{}: {m}",
                f.display()
            )))
        })?;
        for o in objs {
            let file = f.display().to_string();
            match o {
                Object::Certificate(der) => all.push(Inspected::Certificate {
                    file,
                    summary: Box::new(pki::summarize(&der, now)?),
                }),
                Object::Csr(der) => {
                    let i = pki::parse_csr(&der)?;
                    all.push(Inspected::Csr {
                        file,
                        subject: i.subject,
                        sans: i.requested_sans.iter().map(|s| s.to_string()).collect(),
                        key: i.key,
                        requests_ca: i.requests_ca,
                    });
                }
                // A key in the file is noted by type only; its contents are never printed.
                Object::PrivateKey | Object::Other => {}
            }
        }
    }
    if a.json {
        return p.data(serde_json::to_string_pretty(&all).expect("serializes"));
    }
    for (n, i) in all.iter().enumerate() {
        if n > 0 {
            p.data("")?;
        }
        match i {
            Inspected::Certificate { file, summary: s } => {
                let state = if s.seconds_left < 0 {
                    "EXPIRED".to_string()
                } else if s.not_before > now {
                    "not yet valid".to_string()
                } else {
                    format!("{} left", human_left(s.seconds_left))
                };
                p.data(format!(
                    "{file}: certificate{}",
                    if s.is_ca { " (CA)" } else { "" }
                ))?;
                p.data(format!("  subject      {}", s.subject))?;
                p.data(format!("  issuer       {}", s.issuer))?;
                p.data(format!("  serial       {}", s.serial))?;
                p.data(format!(
                    "  validity     {} .. {}  ({state})",
                    pki::rfc3339(s.not_before),
                    pki::rfc3339(s.not_after)
                ))?;
                p.data(format!("  key          {} {}", s.key.algorithm, s.key.bits))?;
                if !s.sans.is_empty() {
                    p.data(format!("  SANs         {}", s.sans.join(", ")))?;
                }
                p.data(format!("  key usage    {}", s.key_usage.join(", ")))?;
                if !s.ext_key_usage.is_empty() {
                    p.data(format!("  ext usage    {}", s.ext_key_usage.join(", ")))?;
                }
                if let Some(k) = &s.subject_key_id {
                    p.data(format!("  subject key  {k}"))?;
                }
                if let Some(k) = &s.authority_key_id {
                    p.data(format!("  issuer key   {k}"))?;
                }
                p.data(format!("  sha256       {}", s.sha256))?;
            }
            Inspected::Csr {
                file,
                subject,
                sans,
                key,
                requests_ca,
            } => {
                p.data(format!(
                    "{file}: certificate signing request (signature verified)"
                ))?;
                p.data(format!("  subject      {subject}"))?;
                p.data(format!("  key          {} {}", key.algorithm, key.bits))?;
                if !sans.is_empty() {
                    p.data(format!("  SANs         {}", sans.join(", ")))?;
                }
                if *requests_ca {
                    p.data("  asks for     CA:TRUE (kpki will refuse to sign it)")?;
                }
            }
        }
    }
    Ok(())
}

fn profiles_cmd(g: &crate::cli::Global, c: &ProfilesCommand, p: &mut Printer) -> Result<()> {
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
