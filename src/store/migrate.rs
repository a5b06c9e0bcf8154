//! Migration of a format-1 store (kpki 0.1: one certificate per profile and target, CAs
//! by name, a ledger of bare records) to generations, CAs by key identifier and the
//! event ledger. It runs once, under the store lock, on the first open by a newer kpki.
//!
//! Every step can be run again after a crash: the whole store is first copied to
//! `backup/<time>-format-1/`, files are moved (renamed) rather than rewritten, a step that
//! finds its work done skips it, and `kpki.toml` in the new format is written last: until
//! then the store still reads as format 1 and the next open resumes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Deserialize;
use time::OffsetDateTime;

use super::ledger::{self, CaRecord, Event, Record};
use super::{
    atomic, backup_stamp, config_text, io_err, key_id_of, list_dir, CaEntry, Config, Existing,
    RoleTrust, Roles, StoreError, CONFIG, CURRENT, FORMAT, LEDGER,
};
use crate::pki;
use crate::profile::CaRole;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigV1 {
    #[allow(dead_code)]
    format: u32,
    cluster: String,
    protection: String,
    recipients: Vec<String>,
    cas: CaMapV1,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CaMapV1 {
    kubernetes: String,
    etcd: String,
    front_proxy: String,
}

impl CaMapV1 {
    fn get(&self, r: CaRole) -> &str {
        match r {
            CaRole::Kubernetes => &self.kubernetes,
            CaRole::Etcd => &self.etcd,
            CaRole::FrontProxy => &self.front_proxy,
        }
    }
}

/// Migrates the format-1 store at `dir`; the caller holds the lock.
pub(super) fn from_v1(
    dir: &Path,
    config_text_v1: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let cpath = dir.join(CONFIG);
    let old: ConfigV1 = toml::from_str(config_text_v1).map_err(|e| StoreError::Corrupt {
        path: cpath.clone(),
        reason: format!("a format-1 store config: {}", e.message()),
    })?;
    backup_all(dir, &format!("{}-format-1", backup_stamp(now)))?;

    // 1. CAs: ca/<name>/ca.crt → ca/<name>/<key id>/ca.crt.
    let mut ca_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut ca_events = Vec::new();
    for role in CaRole::ALL {
        let name = old.cas.get(role).to_owned();
        if ca_ids.contains_key(&name) || !safe_name(&name) {
            continue;
        }
        let base = dir.join("ca").join(&name);
        let flat = base.join("ca.crt");
        let id = if flat.is_file() {
            let pem = fs::read(&flat).map_err(io_err(&flat))?;
            let id = key_id_of(&pem)?;
            let to = base.join(&id);
            atomic::create_dirs(dir, &to).map_err(io_err(&to))?;
            for f in ["ca.key.age", "ca.crt"] {
                let from = base.join(f);
                if from.exists() {
                    fs::rename(&from, to.join(f)).map_err(io_err(&from))?;
                }
            }
            atomic::sync_dir(&base).map_err(io_err(&base))?;
            id
        } else {
            // Moved by an earlier, interrupted run.
            list_dir(&base)?
                .into_iter()
                .find(|d| base.join(d).join("ca.crt").is_file())
                .ok_or_else(|| StoreError::MissingCa(name.clone()))?
        };
        let cert = base.join(&id).join("ca.crt");
        let der =
            pki::pem::first_cert(&fs::read(&cert).map_err(io_err(&cert))?).ok_or_else(|| {
                StoreError::Corrupt {
                    path: cert.clone(),
                    reason: "no certificate".into(),
                }
            })?;
        let s = pki::summarize(&der, now)?;
        ca_events.push(Event::CaCreated {
            at: s.not_before,
            ca: CaRecord {
                id: id.clone(),
                name: name.clone(),
                roles: CaRole::ALL
                    .into_iter()
                    .filter(|r| old.cas.get(*r) == name)
                    .collect(),
                subject: s.subject,
                not_after: s.not_after,
                sha256: s.sha256,
            },
        });
        ca_ids.insert(name, id);
    }

    // 2. The ledger's history per issuance decides each one's generation number: the
    // files in place are the last record's; earlier ones went to backup/ under format 1.
    let lpath = dir.join(LEDGER);
    let ltext = match fs::read_to_string(&lpath) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_err(&lpath)(e)),
    };
    let converted = ledger::parse(&ltext)
        .ok()
        .filter(|r| r.events.iter().any(|e| matches!(e, Event::Migrated { .. })));
    let mut history: BTreeMap<(String, String), Vec<Record>> = BTreeMap::new();
    if converted.is_none() {
        for (i, line) in ltext.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut r: Record = serde_json::from_str(line).map_err(|e| StoreError::Corrupt {
                path: lpath.clone(),
                reason: format!("line {}: {e}", i + 1),
            })?;
            r.ca_id = ca_ids.get(&r.ca).cloned().unwrap_or_default();
            r.reason = "migrated".into();
            history
                .entry((r.profile.clone(), r.target.clone()))
                .or_default()
                .push(r);
        }
    }

    // 3. Issuances: issued/<p>/<t>/{files} → issued/<p>/<t>/<n>/{files} + current.
    let mut events = ca_events;
    let issued = dir.join("issued");
    for p in list_dir(&issued)? {
        for t in list_dir(&issued.join(&p))? {
            let base = issued.join(&p).join(&t);
            if !base.is_dir() || base.join(CURRENT).exists() {
                continue;
            }
            let records = history.remove(&(p.clone(), t.clone())).unwrap_or_default();
            let n = records.len().max(1) as u64;
            let gen = base.join(n.to_string());
            atomic::create_dirs(dir, &gen).map_err(io_err(&gen))?;
            // Format 1 left the old key beside a certificate signed from a CSR: it does
            // not belong to that certificate (it is kept in the backup).
            let csr_signed = records.last().is_some_and(|r| r.source == "csr");
            for f in ["cert.pem", "public.pem", "key.pem.age"] {
                let from = base.join(f);
                if !from.exists() {
                    continue;
                }
                if f == "key.pem.age" && csr_signed {
                    fs::remove_file(&from).map_err(io_err(&from))?;
                } else {
                    fs::rename(&from, gen.join(f)).map_err(io_err(&from))?;
                }
            }
            let cur = base.join(CURRENT);
            atomic::write(
                dir,
                &cur,
                format!("{n}\n").as_bytes(),
                0o644,
                Existing::Replace,
            )
            .map_err(io_err(&cur))?;
            if converted.is_none() {
                for (i, mut r) in records.into_iter().enumerate() {
                    r.generation = i as u64 + 1;
                    let at = r.issued_at;
                    events.push(Event::Issued(r));
                    if i > 0 {
                        events.push(Event::Superseded {
                            at,
                            profile: p.clone(),
                            target: t.clone(),
                            generation: i as u64,
                            by: i as u64 + 1,
                        });
                        events.push(Event::Pruned {
                            at: now,
                            profile: p.clone(),
                            target: t.clone(),
                            generation: i as u64,
                        });
                    }
                }
            }
        }
    }
    // Records whose files are gone entirely stay as history: issued, then pruned.
    for ((p, t), records) in history {
        for (i, mut r) in records.into_iter().enumerate() {
            r.generation = i as u64 + 1;
            events.push(Event::Issued(r));
            events.push(Event::Pruned {
                at: now,
                profile: p.clone(),
                target: t.clone(),
                generation: i as u64 + 1,
            });
        }
    }
    events.push(Event::Migrated {
        at: now,
        from: 1,
        to: FORMAT,
    });

    // 4. The new ledger and config, the config last.
    let roles = {
        let rt = |r: CaRole| {
            let id = ca_ids.get(old.cas.get(r)).cloned().unwrap_or_default();
            RoleTrust {
                signing: id.clone(),
                trusted: vec![id],
            }
        };
        Roles {
            kubernetes: rt(CaRole::Kubernetes),
            etcd: rt(CaRole::Etcd),
            front_proxy: rt(CaRole::FrontProxy),
        }
    };
    let config = Config {
        format: FORMAT,
        cluster: old.cluster,
        protection: old.protection,
        recipients: old.recipients,
        ca: ca_ids
            .iter()
            .map(|(name, id)| CaEntry {
                id: id.clone(),
                name: name.clone(),
            })
            .collect(),
        roles,
    };
    super::validate_config(&config).map_err(|reason| StoreError::Corrupt {
        path: cpath.clone(),
        reason,
    })?;
    let mut batch = atomic::Batch::new(dir);
    if converted.is_none() {
        batch
            .add(&lpath, &ledger::encode(&events), 0o644, Existing::Replace)
            .map_err(io_err(&lpath))?;
    }
    batch
        .add(&cpath, &config_text(&config), 0o644, Existing::Replace)
        .map_err(io_err(&cpath))?;
    batch.commit().map_err(io_err(dir))
}

fn safe_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Copies every file of the store (but earlier backups and the lock) to `backup/<stamp>/`,
/// keeping modes. Symlinks are not followed.
fn backup_all(dir: &Path, stamp: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let dest = dir.join("backup").join(stamp);
    let mut batch = atomic::Batch::new(dir);
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.map_err(|e| StoreError::Io {
            path: dir.into(),
            source: e.into(),
        })?;
        let rel = e.path().strip_prefix(dir).expect("under the store");
        if rel.starts_with("backup") || rel == Path::new(".lock") || !e.file_type().is_file() {
            continue;
        }
        let to = dest.join(rel);
        let parent = to.parent().expect("a file has a parent");
        atomic::create_dirs(dir, parent).map_err(io_err(parent))?;
        let bytes = fs::read(e.path()).map_err(io_err(e.path()))?;
        let mode = e
            .metadata()
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o600);
        batch
            .add(&to, &bytes, mode, Existing::Refuse)
            .map_err(io_err(&to))?;
    }
    batch.commit().map_err(io_err(&dest))
}
