//! `kpki csr` (on the node) and `kpki sign` (on the CA host).

use super::*;
use crate::store::atomic;

pub(super) fn csr(g: &crate::cli::Global, a: &CsrArgs, p: &mut Printer) -> Result<()> {
    let profiles = profiles(g)?;
    let prof = profiles.get(&a.profile)?;
    let spec = prof.cert_spec().ok_or_else(|| {
        Error::usage(
            format!(
                "profile {} makes a {}, not a certificate",
                prof.name,
                prof.kind_name()
            ),
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
    let (key_pem, csr_pem) = crate::issue::make_csr(&plan)?;
    let out = &a.out;
    atomic::create_dirs(out, out).map_err(Error::io(out))?;
    // A killed kpki's temporary key does not outlive it.
    atomic::remove_leftovers(out, 1).map_err(Error::io(out))?;
    let key_file = prof
        .key_file
        .as_ref()
        .expect("certificate profiles install a key");
    let key_path = a.out.join(key_file.file_name());
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
    for f in [&key_path, &csr_path] {
        atomic::no_links(out, f).map_err(Error::io(f))?;
    }
    if !a.force && key_path.exists() {
        return Err(crate::issue::PolicyError::OutputExists(key_path).into());
    }
    if a.force && key_path.exists() {
        let bak = key_path.with_extension(format!(
            "key.{}.bak",
            OffsetDateTime::now_utc().unix_timestamp()
        ));
        // The node's key until the new CSR is signed: kept, 0600, written as kpki writes
        // (never through a link planted at the backup's name, never over a file).
        let old = zeroize::Zeroizing::new(std::fs::read(&key_path).map_err(Error::io(&key_path))?);
        atomic::write(out, &bak, &old, 0o600, store::Existing::Refuse).map_err(Error::io(&bak))?;
    }
    // The CSR first: killed between the two, kpki leaves a CSR whose key is not there
    // (the next run makes both again), never a key without its CSR (which it would refuse
    // to replace without --force).
    atomic::write(
        out,
        &csr_path,
        csr_pem.as_bytes(),
        0o644,
        store::Existing::Replace,
    )
    .map_err(Error::io(&csr_path))?;
    atomic::write(out, &key_path, key_pem.as_bytes(), 0o600, existing)
        .map_err(Error::io(&key_path))?;
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
    let bytes = crate::source::read(path).map_err(Error::io(path))?;
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

pub(super) fn sign(
    g: &crate::cli::Global,
    a: &SignArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let der = read_csr(&a.csr)?;
    let info = pki::parse_csr(&der)?;
    let profiles = profiles(g)?;
    let prof = profiles.get(&a.profile)?;
    if prof.cert_spec().is_none() {
        return Err(Error::usage(
            format!(
                "profile {} makes a {}, not a certificate",
                prof.name,
                prof.kind_name()
            ),
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
    // The plan's key algorithm goes unused here: the CSR brings the key. The subject
    // comes from the profile and --node, or from --cn: never from the CSR's text.
    let plan = match (&a.node, &a.cn) {
        (Some(node), _) => {
            let inv = Inventory::load(&g.inventory)?;
            plan::plan_profile(prof, &inv, &Selector::Node(node.clone()), &overrides)?.remove(0)
        }
        (None, Some(cn)) => plan::plan_adhoc(prof, cn, &overrides)?,
        (None, None) => {
            return Err(Error::usage(
                "'kpki sign' requires '--node NAME' or '--cn CN'",
                format!(
                    "pass --node for an inventory node, or --cn for an ad-hoc certificate (the CSR asks for subject {})",
                    if info.subject.is_empty() { "none".to_owned() } else { format!("'{}'", info.subject) }
                ),
            ))
        }
    };
    if let Some(out) = &a.out {
        crate::stage::safe_dir(out)?;
        crate::stage::no_links_in(&out.join(plan.target.key()))?;
    }
    let (store, _lock) = Store::lock_open(&g.store, now)?;
    let keyring = unlock(g, &store)?;
    let opts = Options {
        force: a.force,
        clamp: a.clamp,
        out: None,
        now,
    };
    let done = crate::issue::sign_csr(&store, &keyring, &profiles, plan, &info, &opts)?;
    let cert = done.cert_pem.clone().unwrap_or_default();
    let ca = done.ca_pem.clone().unwrap_or_default();
    match &a.out {
        Some(out) => {
            let files = crate::issue::export(
                out,
                prof,
                &done.plan,
                Some(&cert),
                Some(&ca),
                None,
                None,
                Some(&info.spki),
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
