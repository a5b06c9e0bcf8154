//! The ledger: an append-only JSON-lines history of everything that changed the store's
//! keys and certificates, so the store can answer "what did we issue, to whom, until
//! when, and what replaced it" without parsing every certificate.
//!
//! One event is one line, appended with `O_APPEND` and made durable with `fdatasync`
//! before the command returns: the cost of an issuance does not grow with the history.
//! A line without its newline is a write torn by a crash: readers report it and skip it,
//! and the next append cuts it off first (under the store lock), since it was never
//! acknowledged to anyone. [`replay`] folds the events into the state the store's files
//! must have; `kpki store verify` and the tests compare the two.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::profile::CaRole;

/// One issued certificate or key pair.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Hex serial as openssl prints it (colon-separated); empty for a key pair or a secret.
    pub serial: String,
    pub profile: String,
    /// The node name, `cluster`, or `cn-<name>` of an ad-hoc certificate.
    pub target: String,
    pub node: Option<String>,
    /// The generation in the store (`issued/<profile>/<target>/<generation>/`).
    #[serde(default)]
    pub generation: u64,
    /// The name of the CA that signed it (empty for a key pair or a secret).
    pub ca: String,
    /// The signing CA's key identifier (hex), empty for a key pair or a secret.
    #[serde(default)]
    pub ca_id: String,
    pub subject: String,
    pub sans: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The certificate's fingerprint, a key pair's public key's; empty for a secret
    /// (nothing derived from a secret key is recorded).
    pub sha256: String,
    /// The key algorithm (`ecdsa-p256`, …), or a secret's encryption provider
    /// (`secretbox`, `aescbc`).
    pub key_algorithm: String,
    /// `generated` (kpki made the key), `csr` (signed a node's CSR), `imported`.
    pub source: String,
    /// Why it was issued: `missing`, `drift`, `issuer`, `expiring`, `forced`, `requested`.
    #[serde(default)]
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl Record {
    /// A key pair or a secret: no certificate, no serial. Its earlier generations stay
    /// trusted until `kpki store retire --profile`.
    pub fn is_key(&self) -> bool {
        self.serial.is_empty()
    }

    /// A secret (a key for an encryption provider), by its provider.
    pub fn secret_provider(&self) -> Option<crate::encryption::Provider> {
        if !self.is_key() {
            return None;
        }
        self.key_algorithm.parse().ok()
    }
}

/// A CA generation as the ledger records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaRecord {
    /// Subject key identifier, lowercase hex: how kpki names a CA.
    pub id: String,
    pub name: String,
    pub roles: Vec<CaRole>,
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub sha256: String,
}

/// Everything that changes the store's keys, certificates and trust.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A CA was created (or adopted): it signs for `roles` from now on, and the CAs
    /// that signed for them before stay trusted.
    CaCreated {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        ca: CaRecord,
    },
    /// A new generation became current.
    Issued(Record),
    /// A generation stopped being current; `by` replaced it.
    Superseded {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        profile: String,
        target: String,
        generation: u64,
        by: u64,
    },
    /// A previous CA, key pair or secret generation is no longer trusted or published.
    Retired {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// A CA id, or `<profile>/<target>/<generation>` of a key pair or a secret.
        what: String,
    },
    /// A generation was revoked before its end.
    Revoked {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        profile: String,
        target: String,
        generation: u64,
        serial: String,
        reason: String,
    },
    /// A generation's files were removed from the store (`kpki store prune`).
    Pruned {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        profile: String,
        target: String,
        generation: u64,
    },
    /// The store was migrated from an older format; the events before this line were
    /// rewritten from the old ledger.
    Migrated {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        from: u32,
        to: u32,
    },
}

impl Event {
    pub fn at(&self) -> OffsetDateTime {
        match self {
            Event::CaCreated { at, .. }
            | Event::Superseded { at, .. }
            | Event::Retired { at, .. }
            | Event::Revoked { at, .. }
            | Event::Pruned { at, .. }
            | Event::Migrated { at, .. } => *at,
            Event::Issued(r) => r.issued_at,
        }
    }
}

/// The ledger as read: its events, and a warning when the last line was torn.
#[derive(Debug, Default)]
pub struct Ledger {
    pub events: Vec<Event>,
    pub torn: Option<String>,
}

/// Parses the ledger text. A last line without its newline is torn (reported, skipped);
/// any other line that does not parse is damage, reported with its number.
pub fn parse(text: &str) -> Result<Ledger, String> {
    let mut out = Ledger::default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let tail = &text[complete.len()..];
    if !tail.trim().is_empty() {
        out.torn = Some(format!(
            "line {}: a torn last line ({} bytes, no newline) from an interrupted write; ignored",
            complete.lines().count() + 1,
            tail.len()
        ));
    }
    for (i, l) in complete.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        out.events
            .push(serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(out)
}

/// Reads the ledger file; a missing file is an empty ledger.
pub fn read(path: &Path) -> Result<Ledger, ReadError> {
    match std::fs::read(path) {
        Ok(b) => parse(&String::from_utf8_lossy(&b)).map_err(ReadError::Damaged),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Ledger::default()),
        Err(e) => Err(ReadError::Io(e)),
    }
}

#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Damaged(String),
}

/// One line per event.
pub fn encode(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(
            serde_json::to_string(e)
                .expect("an event serializes")
                .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}

/// Appends events with one write and one `fdatasync`; the caller holds the store lock.
/// A torn tail left by a crash is cut off first, so the new lines start on a line of
/// their own. Returns whether a torn tail was cut.
pub fn append(path: &Path, events: &[Event]) -> io::Result<bool> {
    if events.is_empty() {
        return Ok(false);
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc_o_nofollow())
        .open(path)?;
    let cut = cut_torn_tail(&mut f)?;
    let lines = encode(events);
    // A test may stop kpki half way through the lines (as a crash can tear a write).
    let half = if super::crash::armed() {
        lines.len() / 2
    } else {
        0
    };
    f.write_all(&lines[..half])?;
    super::crash::point();
    f.write_all(&lines[half..])?;
    super::crash::point();
    f.sync_data()?;
    super::crash::point();
    Ok(cut)
}

/// `O_NOFOLLOW`: the ledger is never written through a symlink.
fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn cut_torn_tail(f: &mut File) -> io::Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(false);
    }
    // Find the end of the last complete line, reading backwards in blocks.
    let mut end = len;
    let mut buf = vec![0u8; 4096];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    f.set_len(keep)?;
    Ok(true)
}

/// What one (profile, target) holds, according to the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuanceState {
    pub current: Option<u64>,
    /// Generations whose files are in the store (not pruned).
    pub kept: BTreeSet<u64>,
    /// Key pairs and secrets: earlier generations still trusted (published, decrypting).
    pub trusted: BTreeSet<u64>,
    pub revoked: BTreeSet<u64>,
}

/// Which CAs sign and which are trusted, per role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustState {
    pub signing: Option<String>,
    pub trusted: BTreeSet<String>,
}

/// The store's state, as the ledger tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub issuances: BTreeMap<(String, String), IssuanceState>,
    pub roles: BTreeMap<CaRole, TrustState>,
    pub cas: BTreeMap<String, CaRecord>,
}

/// Folds events into the state the store must be in.
pub fn replay(events: &[Event]) -> State {
    let mut s = State::default();
    for e in events {
        match e {
            Event::CaCreated { ca, .. } => {
                for role in &ca.roles {
                    let t = s.roles.entry(*role).or_default();
                    t.signing = Some(ca.id.clone());
                    t.trusted.insert(ca.id.clone());
                }
                s.cas.insert(ca.id.clone(), ca.clone());
            }
            Event::Issued(r) => {
                let i = s
                    .issuances
                    .entry((r.profile.clone(), r.target.clone()))
                    .or_default();
                if let (Some(prev), true) = (i.current, r.is_key()) {
                    if prev != r.generation {
                        i.trusted.insert(prev);
                    }
                }
                i.current = Some(r.generation);
                i.kept.insert(r.generation);
            }
            Event::Superseded { .. } | Event::Migrated { .. } => {}
            Event::Retired { what, .. } => {
                for t in s.roles.values_mut() {
                    t.trusted.remove(what);
                }
                if let Some((key, g)) = what.rsplit_once('/') {
                    if let (Some((p, t)), Ok(g)) = (key.split_once('/'), g.parse::<u64>()) {
                        if let Some(i) = s.issuances.get_mut(&(p.to_owned(), t.to_owned())) {
                            i.trusted.remove(&g);
                        }
                    }
                }
            }
            Event::Revoked {
                profile,
                target,
                generation,
                ..
            } => {
                s.issuances
                    .entry((profile.clone(), target.clone()))
                    .or_default()
                    .revoked
                    .insert(*generation);
            }
            Event::Pruned {
                profile,
                target,
                generation,
                ..
            } => {
                if let Some(i) = s.issuances.get_mut(&(profile.clone(), target.clone())) {
                    i.kept.remove(generation);
                    i.trusted.remove(generation);
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(profile: &str, g: u64, serial: &str) -> Record {
        Record {
            serial: serial.into(),
            profile: profile.into(),
            target: "n1".into(),
            node: Some("n1".into()),
            generation: g,
            ca: "root".into(),
            ca_id: "ab".into(),
            subject: "CN=x".into(),
            sans: vec![],
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
            sha256: String::new(),
            key_algorithm: "ecdsa-p256".into(),
            source: "generated".into(),
            reason: "missing".into(),
            issued_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn torn_last_line_is_reported_and_skipped() {
        let good = encode(&[Event::Issued(rec("p", 1, "01"))]);
        let mut text = String::from_utf8(good.clone()).unwrap();
        text.push_str("{\"event\":\"iss");
        let r = parse(&text).unwrap();
        assert_eq!(r.events.len(), 1);
        assert!(r.torn.as_deref().unwrap().starts_with("line 2: a torn"));
        // A damaged line in the middle is not a torn write: it is an error.
        let bad = format!("garbage\n{}", String::from_utf8(good).unwrap());
        assert!(parse(&bad).unwrap_err().starts_with("line 1:"));
    }

    #[test]
    fn append_cuts_a_torn_tail_and_never_rewrites() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ledger.jsonl");
        append(&p, &[Event::Issued(rec("p", 1, "01"))]).unwrap();
        let before = std::fs::read(&p).unwrap();
        let mut torn = before.clone();
        torn.extend_from_slice(b"{\"event\":\"issued\",\"ser");
        std::fs::write(&p, &torn).unwrap();
        assert!(append(&p, &[Event::Issued(rec("p", 2, "02"))]).unwrap());
        let after = std::fs::read(&p).unwrap();
        assert!(
            after.starts_with(&before),
            "earlier lines stay byte for byte"
        );
        let r = parse(std::str::from_utf8(&after).unwrap()).unwrap();
        assert!(r.torn.is_none());
        assert_eq!(r.events.len(), 2);
    }

    #[test]
    fn replay_tracks_current_trusted_and_pruned() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let ev = vec![
            Event::Issued(rec("sa", 1, "")),
            Event::Issued(rec("sa", 2, "")),
            Event::Superseded {
                at,
                profile: "sa".into(),
                target: "n1".into(),
                generation: 1,
                by: 2,
            },
            Event::Issued(rec("leaf", 1, "01")),
            Event::Issued(rec("leaf", 2, "02")),
            Event::Pruned {
                at,
                profile: "leaf".into(),
                target: "n1".into(),
                generation: 1,
            },
        ];
        let s = replay(&ev);
        let sa = &s.issuances[&("sa".to_string(), "n1".to_string())];
        assert_eq!(sa.current, Some(2));
        assert_eq!(sa.trusted, BTreeSet::from([1]));
        let leaf = &s.issuances[&("leaf".to_string(), "n1".to_string())];
        assert_eq!(leaf.kept, BTreeSet::from([2]));
        assert!(
            leaf.trusted.is_empty(),
            "a certificate's old generation is not published"
        );
        let mut ev2 = ev.clone();
        ev2.push(Event::Retired {
            at,
            what: "sa/n1/1".into(),
        });
        assert!(
            replay(&ev2).issuances[&("sa".to_string(), "n1".to_string())]
                .trusted
                .is_empty()
        );
    }
}
