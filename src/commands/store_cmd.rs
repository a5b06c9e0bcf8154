//! `kpki ledger` and `kpki store verify | prune | retire`.

use super::*;
use crate::cli::{LedgerArgs, StoreCommand};
use crate::store::ledger::{self, Event};

fn datetime(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.format(&f).unwrap_or_default()
}

/// `kpki ledger`.
pub(super) fn ledger(
    g: &crate::cli::Global,
    a: &LedgerArgs,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let store = Store::open(&g.store, now)?;
    let read = store.ledger()?;
    if let Some(w) = &read.torn {
        eprintln!("kpki: warning: {}: {w}", store.ledger_path().display());
    }
    let state = ledger::replay(&read.events);
    let state_of = |profile: &str, target: &str, gen: u64| -> &'static str {
        let Some(i) = state
            .issuances
            .get(&(profile.to_owned(), target.to_owned()))
        else {
            return "unknown";
        };
        if i.revoked.contains(&gen) {
            "revoked"
        } else if i.current == Some(gen) {
            "current"
        } else if i.trusted.contains(&gen) {
            "published"
        } else if !i.kept.contains(&gen) {
            "pruned"
        } else {
            "superseded"
        }
    };
    let filtered = a.profile.is_some() || a.node.is_some();
    let wanted = |profile: &str, target: &str| {
        a.profile.as_deref().is_none_or(|p| p == profile)
            && a.node.as_deref().is_none_or(|n| n == target)
    };
    let events: Vec<&Event> = read
        .events
        .iter()
        .filter(|e| match e {
            Event::Issued(r) => wanted(&r.profile, &r.target),
            Event::Superseded {
                profile, target, ..
            }
            | Event::Pruned {
                profile, target, ..
            }
            | Event::Revoked {
                profile, target, ..
            } => wanted(profile, target),
            _ => !filtered,
        })
        .collect();
    if a.json {
        let v: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).expect("an event serializes");
                if let Event::Issued(r) = e {
                    v["state"] = state_of(&r.profile, &r.target, r.generation).into();
                }
                v
            })
            .collect();
        return p.data(serde_json::to_string_pretty(&v).expect("json"));
    }
    for e in events {
        let line = match e {
            Event::CaCreated { at, ca } => format!(
                "{}  ca-created  CA {} {}  for {}  until {}  {}",
                datetime(*at),
                ca.name,
                ca.id,
                ca.roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(","),
                date(ca.not_after),
                if store.is_signing(&ca.id) {
                    "signing"
                } else if store.trusted_ids().contains(&ca.id) {
                    "trusted"
                } else {
                    "retired"
                }
            ),
            Event::Issued(r) => {
                let what = if let Some(provider) = r.secret_provider() {
                    format!("secret {provider} ({}-byte key)", crate::encryption::Provider::KEY_LEN)
                } else if r.is_key() {
                    format!("key {}", r.key_algorithm)
                } else {
                    format!(
                        "serial {}  CA {}  until {}",
                        r.serial,
                        r.ca,
                        date(r.not_after)
                    )
                };
                format!(
                    "{}  issued      {} for {}  gen {}  {}  {what}  {}",
                    datetime(r.issued_at),
                    r.profile,
                    r.target,
                    r.generation,
                    if r.reason.is_empty() { "-" } else { &r.reason },
                    state_of(&r.profile, &r.target, r.generation)
                )
            }
            Event::Superseded {
                at,
                profile,
                target,
                generation,
                by,
            } => format!(
                "{}  superseded  {profile} for {target}  gen {generation} by gen {by}",
                datetime(*at)
            ),
            Event::Retired { at, what } => format!("{}  retired     {what}", datetime(*at)),
            Event::Revoked {
                at,
                profile,
                target,
                generation,
                serial,
                reason,
            } => format!(
                "{}  revoked     {profile} for {target}  gen {generation}  serial {serial}  {reason}",
                datetime(*at)
            ),
            Event::Pruned {
                at,
                profile,
                target,
                generation,
            } => format!(
                "{}  pruned      {profile} for {target}  gen {generation}",
                datetime(*at)
            ),
            Event::Migrated { at, from, to } => format!(
                "{}  migrated    store format {from} to {to}",
                datetime(*at)
            ),
        };
        p.data(line)?;
    }
    Ok(())
}

/// `kpki store …`.
pub(super) fn run(
    g: &crate::cli::Global,
    c: &StoreCommand,
    now: OffsetDateTime,
    p: &mut Printer,
) -> Result<()> {
    let (mut store, _lock) = Store::lock_open(&g.store, now)?;
    if let Some(r) = store.recovered() {
        p.line(format!("{}: {r}", store.dir().display()))?;
    }
    match c {
        StoreCommand::Verify => {
            let read = store.ledger()?;
            if let Some(w) = &read.torn {
                p.line(format!("warning: {}: {w}", store.ledger_path().display()))?;
            }
            let problems = store.verify(now)?;
            for pr in &problems {
                p.data(pr)?;
            }
            p.line(format!(
                "verified {}: {} ledger event(s), {} problem(s)",
                store.dir().display(),
                read.events.len(),
                problems.len()
            ))?;
            if !problems.is_empty() {
                return Err(crate::store::StoreError::Refused(
                    format!(
                        "the store and its ledger disagree in {} place(s)",
                        problems.len()
                    ),
                    "restore what is listed from the store's git history or backup/".into(),
                )
                .into());
            }
            Ok(())
        }
        StoreCommand::Prune { keep } => {
            let gone = store.prune(*keep as usize, now)?;
            for (pr, t, n) in &gone {
                p.line(format!("pruned {pr} for {t} generation {n}"))?;
            }
            p.line(format!(
                "pruned {} generation(s); kept the newest {keep} of each issuance",
                gone.len()
            ))
        }
        StoreCommand::Retire { ca: Some(id), .. } => {
            let c = store.retire_ca(id, now)?;
            p.line(format!(
                "retired CA '{}' ({}): it is no longer in the trust files; run `kpki apply` to restage them",
                c.name, c.id
            ))
        }
        StoreCommand::Retire {
            profile: Some(name),
            ..
        } => {
            let profiles = profiles(g)?;
            let prof = profiles.get(name)?;
            if prof.cert_spec().is_some() {
                return Err(Error::usage(
                    format!("profile {name} makes certificates; `--profile` retires the earlier keys of a key pair or a secret"),
                    "retire a CA with --ca KEYID, or name a key pair or secret profile such as service-account or encryption-config",
                ));
            }
            let mut total = 0;
            for (pr, t) in store.issuances()? {
                if &pr == name {
                    let gens = store.retire_previous(&pr, &t, now)?;
                    total += gens.len();
                    for n in gens {
                        p.line(format!("retired {pr} for {t} generation {n}"))?;
                    }
                }
            }
            let gone = match prof.body {
                crate::profile::Body::Secret { .. } => "no longer in the encryption config",
                _ => "no longer published",
            };
            p.line(format!(
                "{total} earlier key(s) of {name} {gone}; run `kpki apply` to restage, then restart the apiservers"
            ))
        }
        StoreCommand::Retire { .. } => Err(Error::usage(
            "'kpki store retire' requires '--ca KEYID' or '--profile NAME'",
            "name what to retire",
        )),
    }
}
