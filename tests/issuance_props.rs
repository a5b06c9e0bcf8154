//! Properties of every certificate kpki signs, checked through the library: random
//! distinct serials even when the key is reused, AKI = the CA's SKI, usages that follow
//! the key type, and a notAfter that never passes the CA's.

mod support;

use std::collections::HashSet;

use kpki::inventory::Inventory;
use kpki::pki::{self, CaSpec, KeyAlgorithm, LeafSpec, Signer};
use kpki::plan::{plan_profile, Overrides, Selector};
use kpki::profile::Profiles;
use time::{Duration, OffsetDateTime};

fn ca(now: OffsetDateTime) -> Signer {
    let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
    let pem = pki::new_ca(
        &CaSpec {
            cn: "test CA",
            o: "test",
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(3650),
        },
        &key,
    )
    .unwrap();
    Signer::new(&pem, key).unwrap()
}

fn etcd_peer_spec(now: OffsetDateTime, rsa: bool) -> LeafSpec {
    let inv = Inventory::load(&support::example_inventory()).unwrap();
    let profiles = Profiles::builtin();
    let plan = plan_profile(
        profiles.get("etcd-peer").unwrap(),
        &inv,
        &Selector::Node("etcd01".into()),
        &Overrides::default(),
    )
    .unwrap()
    .remove(0);
    let c = plan.cert.unwrap();
    LeafSpec {
        cn: c.cn,
        o: c.o,
        sans: c.sans,
        ext_key_usage: c.ext_key_usage,
        rsa_key: rsa,
        not_before: now - Duration::minutes(5),
        not_after: now + c.validity.duration(),
    }
}

#[test]
fn a_thousand_issues_with_one_key_have_distinct_serials() {
    let now = OffsetDateTime::now_utc();
    let signer = ca(now);
    let ca_summary = pki::summarize(&signer.cert_der, now).unwrap();
    let ca_ski = ca_summary.subject_key_id.clone().expect("CA has an SKI");
    let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
    let spec = etcd_peer_spec(now, false);
    let mut serials = HashSet::new();
    for _ in 0..1000 {
        let der = pki::sign(&spec, &key, &signer).unwrap();
        let s = pki::summarize(&der, now).unwrap();
        // RFC 5280: positive, at most 20 octets; kpki uses 16 random-filled octets.
        let bytes: Vec<&str> = s.serial.split(':').collect();
        assert_eq!(bytes.len(), 16, "{}", s.serial);
        assert!(
            u8::from_str_radix(bytes[0], 16).unwrap() < 0x80,
            "positive serial"
        );
        assert!(
            serials.insert(s.serial.clone()),
            "serial repeated: {}",
            s.serial
        );
        assert_eq!(s.authority_key_id.as_deref(), Some(ca_ski.as_str()));
        assert!(s.subject_key_id.is_some());
        assert_eq!(s.key_usage, vec!["digitalSignature"]);
        assert!(!s.is_ca);
        assert!(s.not_after <= signer.not_after);
    }
    assert_eq!(serials.len(), 1000);
}

#[test]
fn usages_follow_the_key_type() {
    let now = OffsetDateTime::now_utc();
    let signer = ca(now);
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
    ] {
        let key = alg.generate().unwrap();
        let der = pki::sign(&etcd_peer_spec(now, alg.is_rsa()), &key, &signer).unwrap();
        let s = pki::summarize(&der, now).unwrap();
        if alg.is_rsa() {
            assert_eq!(
                s.key_usage,
                vec!["digitalSignature", "keyEncipherment"],
                "{alg}"
            );
        } else {
            assert_eq!(
                s.key_usage,
                vec!["digitalSignature"],
                "{alg}: no keyEncipherment on a non-RSA key"
            );
        }
        assert_eq!(s.ext_key_usage, vec!["serverAuth", "clientAuth"]);
        assert!(s.not_before < now, "backdated for clock skew");
    }
}

#[test]
fn every_cluster_certificate_respects_the_ca() {
    // Through the CLI: one root CA of 2 years, leaves of 1 year, all under it, AKI = SKI.
    let env = support::TestEnv::new();
    env.ok(&["init", "--ca-model", "single", "--validity", "2y"]);
    env.ok(&["issue", "--all"]);
    let now = OffsetDateTime::now_utc();
    let ca_pem = std::fs::read(env.ca_cert("root")).unwrap();
    let ca_der = match pki::pem::objects(&ca_pem).unwrap().remove(0) {
        pki::pem::Object::Certificate(d) => d,
        _ => panic!("CA file"),
    };
    let ca = pki::summarize(&ca_der, now).unwrap();
    let mut n = 0;
    for e in walkdir::WalkDir::new(env.store().join("issued"))
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_name() != "cert.pem" {
            continue;
        }
        let pem = std::fs::read(e.path()).unwrap();
        for o in pki::pem::objects(&pem).unwrap() {
            if let pki::pem::Object::Certificate(der) = o {
                let s = pki::summarize(&der, now).unwrap();
                assert!(s.not_after <= ca.not_after, "{}", e.path().display());
                assert_eq!(
                    s.authority_key_id,
                    ca.subject_key_id,
                    "{}",
                    e.path().display()
                );
                assert!(
                    !s.key_usage.contains(&"keyEncipherment".to_string()),
                    "{}",
                    e.path().display()
                );
                n += 1;
            }
        }
    }
    assert_eq!(n, 36);
}
