//! `kpki init`: a new store and its CA(s).

use super::*;

pub(super) fn run(
    g: &crate::cli::Global,
    a: &InitArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let key = parse_alg(&a.algorithm)?;
    let validity = parse_span(&a.validity, "validity")?;
    // Before anything is made: a lifetime past the year 9999 is bad input.
    pki::end_of(now, validity)?;
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
            file: identity_file(g)?,
            extra: a.recipient.clone(),
        }
    };
    let spec = InitSpec {
        cluster,
        model: a.ca_model.map(|m| match m {
            CaModelArg::Single => CaModel::Single,
            CaModelArg::Kubeadm => CaModel::Kubeadm,
        }),
        key,
        validity,
        protection,
        force: a.force,
    };
    let (store, _lock, report) = Store::init(&g.store, spec, now)?;
    if let Some(id) = &report.identity_created {
        p.line(format!("created identity {} (mode 0600): keep it safe and out of the store; it opens every key", id.display()))?;
    }
    for (name, path) in &report.cas {
        p.line(format!(
            "created CA '{name}' ({key}, until {}): {}",
            pki::end_of(now, validity).map(date).unwrap_or_default(),
            path.display()
        ))?;
    }
    for c in &report.kept {
        p.line(format!(
            "kept CA '{}' ({}): still trusted beside the new one, so its leaves keep working; `kpki apply` reissues them, then `kpki store retire --ca {}`",
            c.label(false),
            c.cert_path.display(),
            &c.id[..c.id.len().min(8)]
        ))?;
    }
    p.line(format!(
        "store ready at {} for cluster '{}'",
        store.dir().display(),
        store.cluster()
    ))
}
