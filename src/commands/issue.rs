//! `kpki issue`: plans from the profile and inventory, issued into the store.

use super::*;

pub(super) fn run(
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
    // Where the files go is checked before anything is issued into the store.
    if let Some(out) = &a.out {
        crate::stage::safe_dir(out)?;
        for plan in &plans {
            crate::stage::no_links_in(&out.join(plan.target.key()))?;
        }
    }
    let (store, _lock) = Store::lock_open(&g.store, now)?;
    // Decided under the lock: what the store holds cannot change underneath.
    let named = a.profile.is_some();
    let mut requests = Vec::new();
    let mut taken = Vec::new();
    for d in plan::decide(Some(&store), &profiles, plans, now)? {
        let reason = match (&d.held, a.force) {
            (None, _) => Reason::Missing,
            // A new service-account key or encryption key is never a side effect of
            // `--all --force`: the one would end every live token, the other start a
            // rotation of what etcd holds encrypted. Name the profile to roll it.
            (Some(_), true) if d.plan.cert.is_none() && !named => continue,
            (Some(_), true) => Reason::Forced,
            (Some(_), false) => {
                taken.push(format!("{} for {}", d.plan.profile, d.plan.target));
                continue;
            }
        };
        requests.push(crate::issue::Request {
            plan: d.plan,
            reason,
            key: crate::issue::KeySource::Generate,
        });
    }
    if !taken.is_empty() {
        return Err(
            crate::issue::PolicyError::AlreadyIssued(crate::issue::summarize_list(&taken)).into(),
        );
    }
    let opts = Options {
        force: a.force,
        clamp: a.clamp,
        out: a.out.clone(),
        now,
    };
    let keyring = if crate::issue::needs_unlock(&requests, &opts) {
        Some(unlock(g, &store)?)
    } else {
        None
    };
    let done = crate::issue::issue(&store, keyring.as_ref(), &profiles, requests, &opts)?;
    for i in &done {
        p.line(issued_line(i, now))?;
    }
    p.line(format!(
        "{} issued into {}",
        done.len(),
        store.dir().display()
    ))
}

/// The one line kpki prints for each issuance (`issue` and `apply` alike).
pub(super) fn issued_line(i: &crate::issue::Issued, now: OffsetDateTime) -> String {
    let r = &i.record;
    let mut line = if let Some(provider) = r.secret_provider() {
        format!(
            "generated {} for {}  ({})  {provider} key",
            r.profile,
            i.plan.target,
            i.reason.word(),
        )
    } else if r.is_key() {
        format!(
            "generated {} for {}  ({})  {}",
            r.profile,
            i.plan.target,
            i.reason.word(),
            r.key_algorithm
        )
    } else {
        format!(
            "issued {} for {}  ({})  CA {}  until {} ({})  serial {}",
            r.profile,
            i.plan.target,
            i.reason.word(),
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
    line
}
