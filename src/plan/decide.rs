//! The planner's judgement: for every certificate and key the inventory and profiles
//! call for, what the store holds and why it must be issued, reissued or renewed, or kept.
//! `kpki plan` prints these decisions, `kpki apply` acts on them, and rotation will
//! order them; there is one such function so the three never disagree.

use std::fmt;

use time::{Duration, OffsetDateTime};

use super::Plan;
use crate::encryption::Provider;
use crate::pki::{self, CertFacts, KeyAlgorithm};
use crate::profile::{KeyKind, Profile, Profiles};
use crate::store::{Store, StoreError};

/// What the store holds for a plan: its current generation.
#[derive(Clone, Debug)]
pub struct Held {
    pub generation: u64,
    /// The store holds the private key or the secret (kpki made it); `false` for a
    /// certificate signed from a node's CSR, whose key stays on the node.
    pub has_key: bool,
    pub cert: Option<HeldCert>,
    /// A key pair's algorithm (from its public key).
    pub public_key: Option<KeyAlgorithm>,
    /// A secret's encryption provider (from its file's name; the secret stays sealed).
    pub secret: Option<Provider>,
}

/// A held certificate, with the facts the planner compares.
#[derive(Clone, Debug)]
pub struct HeldCert {
    pub facts: CertFacts,
}

/// Why a certificate or key is (re)issued, or kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The store has none.
    Missing,
    /// Its content is no longer what the profile and inventory ask for.
    Drift(Vec<String>),
    /// Signed by a CA that is no longer the role's signing CA.
    Issuer {
        held: String,
        signing: String,
    },
    /// Within the profile's `renew_before` of its end.
    Expiring {
        not_after: OffsetDateTime,
        renew_at: OffsetDateTime,
    },
    /// The user asked for a new one (`--force`).
    Forced,
    Ok,
}

impl Reason {
    pub fn word(&self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Drift(_) => "drift",
            Reason::Issuer { .. } => "issuer",
            Reason::Expiring { .. } => "expiring",
            Reason::Forced => "forced",
            Reason::Ok => "ok",
        }
    }

    /// Whether the decision is to issue.
    pub fn issues(&self) -> bool {
        !matches!(self, Reason::Ok)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("missing: the store has none"),
            Reason::Drift(d) => write!(f, "drift: {}", d.join("; ")),
            Reason::Issuer { held, signing } => write!(
                f,
                "issuer: signed by CA {held}, the role's signing CA is {signing}"
            ),
            Reason::Expiring {
                not_after,
                renew_at,
            } => write!(
                f,
                "expiring: valid until {}, renewed from {}",
                pki::rfc3339(*not_after),
                pki::rfc3339(*renew_at)
            ),
            Reason::Forced => f.write_str("forced: --force"),
            Reason::Ok => f.write_str("ok"),
        }
    }
}

/// One decision: the plan, what the store holds for it, and the reason.
#[derive(Clone, Debug)]
pub struct Decision {
    pub plan: Plan,
    pub held: Option<Held>,
    pub reason: Reason,
}

/// Reads what the store holds for a profile and target (its current generation).
pub fn held(store: &Store, profile: &str, target: &str) -> Result<Option<Held>, StoreError> {
    let Some(g) = store.current(profile, target)? else {
        return Ok(None);
    };
    let cert = match g.read("cert.pem")? {
        Some(b) => {
            let der = pki::pem::first_cert(&b).ok_or_else(|| StoreError::Corrupt {
                path: g.dir.join("cert.pem"),
                reason: "no certificate in it".into(),
            })?;
            Some(HeldCert {
                facts: pki::facts(&der)?,
            })
        }
        None => None,
    };
    let public_key = g
        .read("public.pem")?
        .and_then(|b| pki::public_key_info(&b))
        .and_then(|k| k.kpki_algorithm());
    let secret = g.secret();
    Ok(Some(Held {
        generation: g.n,
        has_key: g.has("key.pem.age") || secret.is_some(),
        cert,
        public_key,
        secret,
    }))
}

/// Decides every plan against the store (none: every plan is missing).
pub fn decide(
    store: Option<&Store>,
    profiles: &Profiles,
    plans: Vec<Plan>,
    now: OffsetDateTime,
) -> Result<Vec<Decision>, crate::Error> {
    plans
        .into_iter()
        .map(|plan| {
            let held = match store {
                Some(s) => held(s, &plan.profile, &plan.target.key())?,
                None => None,
            };
            let profile = profiles.get(&plan.profile)?;
            let signing = match (&plan.cert, store) {
                (Some(c), Some(s)) => Some(s.ca_id(c.ca).to_owned()),
                _ => None,
            };
            let reason = judge(&plan, held.as_ref(), profile, signing.as_deref(), now);
            Ok(Decision { plan, held, reason })
        })
        .collect()
}

/// The judgement itself, pure: what the plan asks, what is held, which CA signs now.
pub fn judge(
    plan: &Plan,
    held: Option<&Held>,
    profile: &Profile,
    signing: Option<&str>,
    now: OffsetDateTime,
) -> Reason {
    let Some(held) = held else {
        return Reason::Missing;
    };
    let Some(want) = &plan.cert else {
        // A key pair or a secret: only its algorithm or provider can drift; neither
        // expires.
        return match plan.key {
            KeyKind::Pair(want) => match held.public_key {
                Some(have) if have != want => {
                    Reason::Drift(vec![format!("key {} → {}", have.name(), want.name())])
                }
                Some(_) => Reason::Ok,
                None => Reason::Drift(vec!["no public key in the store".into()]),
            },
            KeyKind::Secret(want) => match held.secret {
                Some(have) if have != want => {
                    Reason::Drift(vec![format!("provider {have} → {want}")])
                }
                Some(_) => Reason::Ok,
                None => Reason::Drift(vec!["no secret in the store".into()]),
            },
        };
    };
    let Some(cert) = &held.cert else {
        return Reason::Drift(vec!["a key pair where a certificate belongs".into()]);
    };
    let f = &cert.facts;
    let mut diff = Vec::new();
    if f.cn != [want.cn.clone()] {
        diff.push(format!("CN {} → {}", f.cn.join(","), want.cn));
    }
    let (mut have_o, mut want_o) = (f.o.clone(), want.o.clone());
    have_o.sort();
    want_o.sort();
    if have_o != want_o {
        diff.push(format!("O [{}] → [{}]", have_o.join(","), want_o.join(",")));
    }
    let want_sans: Vec<String> = want.sans.iter().map(|s| s.to_string()).collect();
    for s in &want_sans {
        if !f.sans.contains(s) {
            diff.push(format!("SAN {s} added"));
        }
    }
    for s in &f.sans {
        if !want_sans.contains(s) {
            diff.push(format!("SAN {s} removed"));
        }
    }
    let want_eku: Vec<String> = want.ext_key_usage.iter().map(|e| e.to_string()).collect();
    let (mut he, mut we) = (f.ext_key_usage.clone(), want_eku);
    he.sort();
    we.sort();
    if he != we {
        diff.push(format!("EKU [{}] → [{}]", he.join(","), we.join(",")));
    }
    // A CSR-signed certificate's key is the node's choice.
    if held.has_key {
        match f.key.kpki_algorithm() {
            Some(a) if KeyKind::Pair(a) == plan.key => {}
            Some(a) => diff.push(format!("key {} → {}", a.name(), plan.key.name())),
            None => diff.push(format!("key {} → {}", f.key.algorithm, plan.key.name())),
        }
    }
    if !diff.is_empty() {
        return Reason::Drift(diff);
    }
    if let Some(signing) = signing {
        if f.issuer_key_id.as_deref() != Some(signing) {
            return Reason::Issuer {
                held: short(f.issuer_key_id.as_deref().unwrap_or("unknown")),
                signing: short(signing),
            };
        }
    }
    let renew_at = renew_at(profile, f);
    if now >= renew_at {
        return Reason::Expiring {
            not_after: f.not_after,
            renew_at,
        };
    }
    Reason::Ok
}

/// When a certificate is due for renewal: its profile's `renew_before` ahead of its end,
/// or (as cert-manager does) the last third of its lifetime.
pub fn renew_at(profile: &Profile, f: &crate::pki::CertFacts) -> OffsetDateTime {
    let lifetime = f.not_after - f.not_before;
    let renew_before = match profile.cert_spec().and_then(|s| s.renew_before) {
        Some(rb) => rb.duration().min(lifetime),
        None => lifetime / 3,
    };
    f.not_after - renew_before
}

fn short(id: &str) -> String {
    id[..id.len().min(8)].to_owned()
}

/// How much earlier than `validity` a leaf for this profile and target ends: a fixed
/// share of up to a tenth of the lifetime, derived from the names alone, so a cluster
/// issued in one night spreads its expiries over weeks, and the same certificate issued
/// again lands on the same day.
pub fn stagger(profile: &str, target: &str, validity: Duration) -> Duration {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{profile}\0{target}").as_bytes(),
    );
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    let tenth = validity.whole_seconds().max(0) / 10;
    if tenth == 0 {
        return Duration::ZERO;
    }
    Duration::seconds((u64::from_be_bytes(b) % tenth as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{KeyInfo, San};
    use crate::plan::{CertContent, Target};
    use crate::profile::{Body, CaRole, Eku};

    fn plan() -> Plan {
        Plan {
            profile: "etcd-peer".into(),
            target: Target::Adhoc("etcd01".into()),
            key: KeyKind::Pair(KeyAlgorithm::EcdsaP256),
            cert: Some(CertContent {
                ca: CaRole::Etcd,
                cn: "etcd01.example.com".into(),
                o: vec![],
                sans: vec![
                    San::parse("10.0.0.1").unwrap(),
                    San::parse("etcd01").unwrap(),
                ],
                ext_key_usage: vec![Eku::ServerAuth, Eku::ClientAuth],
                validity: "1y".parse().unwrap(),
                stagger: true,
            }),
        }
    }

    fn held(not_before: OffsetDateTime, days: i64) -> Held {
        Held {
            generation: 3,
            has_key: true,
            public_key: None,
            secret: None,
            cert: Some(HeldCert {
                facts: CertFacts {
                    cn: vec!["etcd01.example.com".into()],
                    o: vec![],
                    sans: vec!["IP:10.0.0.1".into(), "DNS:etcd01".into()],
                    ext_key_usage: vec!["clientAuth".into(), "serverAuth".into()],
                    key: KeyInfo {
                        algorithm: "ECDSA P-256".into(),
                        bits: 256,
                    },
                    spki: vec![],
                    issuer_key_id: Some("aaaa1111".into()),
                    serial: "01".into(),
                    not_before,
                    not_after: not_before + Duration::days(days),
                },
            }),
        }
    }

    fn profile() -> Profile {
        Profiles::builtin().get("etcd-peer").unwrap().clone()
    }

    const T0: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn missing_ok_and_expiring_at_the_last_third() {
        let (p, prof) = (plan(), profile());
        assert_eq!(
            judge(&p, None, &prof, Some("aaaa1111"), T0),
            Reason::Missing
        );
        let h = held(T0, 300);
        let day = |d: i64| T0 + Duration::days(d);
        assert_eq!(
            judge(&p, Some(&h), &prof, Some("aaaa1111"), day(199)),
            Reason::Ok
        );
        assert_eq!(
            judge(&p, Some(&h), &prof, Some("aaaa1111"), day(200)),
            Reason::Expiring {
                not_after: day(300),
                renew_at: day(200)
            }
        );
        // A profile's renew_before wins over the third.
        let mut prof30 = prof.clone();
        if let Body::Certificate(spec) = &mut prof30.body {
            spec.renew_before = Some("30d".parse().unwrap());
        }
        assert_eq!(
            judge(&p, Some(&h), &prof30, Some("aaaa1111"), day(269)),
            Reason::Ok
        );
        assert!(matches!(
            judge(&p, Some(&h), &prof30, Some("aaaa1111"), day(270)),
            Reason::Expiring { .. }
        ));
    }

    #[test]
    fn drift_names_the_difference_and_comes_before_issuer() {
        let (mut p, prof) = (plan(), profile());
        let h = held(T0, 300);
        if let Some(c) = &mut p.cert {
            c.sans[0] = San::parse("10.0.0.7").unwrap();
        }
        assert_eq!(
            judge(&p, Some(&h), &prof, Some("bbbb2222"), T0),
            Reason::Drift(vec![
                "SAN IP:10.0.0.7 added".into(),
                "SAN IP:10.0.0.1 removed".into()
            ])
        );
        p.key = KeyKind::Pair(KeyAlgorithm::EcdsaP384);
        p.cert.as_mut().unwrap().sans = plan().cert.unwrap().sans;
        assert_eq!(
            judge(&p, Some(&h), &prof, Some("aaaa1111"), T0),
            Reason::Drift(vec!["key ecdsa-p256 → ecdsa-p384".into()])
        );
        // A CSR-signed certificate's key is the node's choice: no key drift.
        let mut csr = h.clone();
        csr.has_key = false;
        assert_eq!(
            judge(&p, Some(&csr), &prof, Some("aaaa1111"), T0),
            Reason::Ok
        );
        // Signed by a CA that no longer signs for the role.
        let p = plan();
        assert_eq!(
            judge(&p, Some(&h), &prof, Some("bbbb2222cccc"), T0),
            Reason::Issuer {
                held: "aaaa1111".into(),
                signing: "bbbb2222".into()
            }
        );
    }

    #[test]
    fn a_secret_is_missing_or_ok_and_drifts_only_with_its_provider() {
        let prof = Profiles::builtin()
            .get("encryption-config")
            .unwrap()
            .clone();
        let p = Plan {
            profile: prof.name.clone(),
            target: Target::Cluster,
            key: KeyKind::Secret(Provider::Secretbox),
            cert: None,
        };
        assert_eq!(judge(&p, None, &prof, None, T0), Reason::Missing);
        let h = Held {
            generation: 1,
            has_key: true,
            cert: None,
            public_key: None,
            secret: Some(Provider::Secretbox),
        };
        // It does not expire: still ok in a hundred years.
        assert_eq!(
            judge(&p, Some(&h), &prof, None, T0 + Duration::days(36500)),
            Reason::Ok
        );
        let aescbc = Plan {
            key: KeyKind::Secret(Provider::Aescbc),
            ..p.clone()
        };
        assert_eq!(
            judge(&aescbc, Some(&h), &prof, None, T0),
            Reason::Drift(vec!["provider secretbox → aescbc".into()])
        );
    }

    #[test]
    fn stagger_is_stable_bounded_and_spread() {
        let y = Duration::days(365);
        let a = stagger("kubelet", "worker01", y);
        assert_eq!(a, stagger("kubelet", "worker01", y));
        let mut days: Vec<i64> = ["etcd01", "etcd02", "etcd03", "master01", "worker01"]
            .iter()
            .flat_map(|t| ["kubelet", "etcd-peer", "kube-proxy"].map(|p| (p, *t)))
            .map(|(p, t)| {
                let s = stagger(p, t, y);
                assert!(s >= Duration::ZERO && s < Duration::days(37));
                s.whole_days()
            })
            .collect();
        days.sort();
        days.dedup();
        assert!(
            days.len() >= 10,
            "15 certificates spread over {} days",
            days.len()
        );
        assert_eq!(stagger("p", "t", Duration::seconds(5)), Duration::ZERO);
    }
}
