//! Generates a certificate corpus for benchmarking `kpki audit` (scripts/bench-audit.sh).
//!
//!     cargo run --release --example audit_corpus -- OUT COUNT [DISTINCT]
//!
//! Makes DISTINCT (default 300) different ECDSA P-256 leaves signed by one CA, with
//! notAfter spread from a month ago to two years ahead (so every state occurs), then
//! writes COUNT files round-robin from them into nested folders,
//! `OUT/aNN/bNN/cert-NNNNNN.crt`, 100 files per folder: one in five a chain file (leaf
//! then CA), the rest a single PEM certificate. Every file is a real copy; there are no
//! symlinks. Only PEM, so `openssl x509` and Python's `cryptography` read every file too
//! and the comparison is like for like.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
};
use time::{Duration, OffsetDateTime};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: audit_corpus OUT COUNT [DISTINCT]");
        std::process::exit(2);
    }
    let out = PathBuf::from(&args[0]);
    let count: usize = args[1].parse().expect("COUNT is a number");
    let distinct: usize = args
        .get(2)
        .map(|d| d.parse().expect("DISTINCT is a number"))
        .unwrap_or(300)
        .max(1);
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "bench");
    dn.push(DnType::CommonName, "bench root CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = now - Duration::days(400);
    ca.not_after = now + Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaves = Vec::with_capacity(distinct);
    for i in 0..distinct {
        let key = KeyPair::generate().expect("leaf key");
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("node{i:04}.bench.example.com"));
        p.distinguished_name = dn;
        p.subject_alt_names = vec![
            SanType::DnsName(format!("node{i:04}.bench.example.com").try_into().unwrap()),
            SanType::IpAddress(std::net::IpAddr::from([
                10,
                0,
                (i / 250) as u8,
                (i % 250) as u8,
            ])),
        ];
        p.serial_number = Some(rcgen::SerialNumber::from((i as u64 + 1) * 7919));
        // From 30 days ago to two years ahead, one day apart.
        let days = (i as i64 * 761 / distinct as i64) - 30;
        p.not_before = now - Duration::days(365);
        p.not_after = now + Duration::days(days) + Duration::hours(1);
        let cert = p.signed_by(&key, &issuer).expect("leaf");
        leaves.push(cert.pem());
    }

    let mut dir = PathBuf::new();
    for n in 0..count {
        if n % 100 == 0 {
            dir = out
                .join(format!("a{:02}", n / 10_000))
                .join(format!("b{:02}", (n / 100) % 100));
            std::fs::create_dir_all(&dir).expect("create folder");
        }
        let leaf = &leaves[n % distinct];
        let body = if n % 5 == 4 {
            format!("{leaf}{ca_pem}")
        } else {
            leaf.clone()
        };
        std::fs::write(dir.join(format!("cert-{n:06}.crt")), body).expect("write");
    }
    eprintln!(
        "wrote {count} files ({distinct} distinct leaves, one CA) under {}",
        out.display()
    );
}
