//! CSR signing: a CSR made by `openssl req -new` is signed; a broken signature, a CSR
//! asking for CA:TRUE or for SANs its node does not own, and an RSA-1024 key are each
//! refused with one clear line, exit 2, and the store unchanged.

mod support;

use std::path::{Path, PathBuf};

use support::{cert_pubkey, key_pubkey, openssl, snapshot, TestEnv};

fn cnf(dir: &Path, sans: &str, ca: bool) -> PathBuf {
    let p = dir.join(format!("req-{}.cnf", sans.len() + usize::from(ca)));
    let bc = if ca {
        "basicConstraints = critical, CA:TRUE\n"
    } else {
        ""
    };
    std::fs::write(
        &p,
        format!(
            "[req]\ndistinguished_name = dn\nreq_extensions = v3_req\nprompt = no\n[dn]\nCN = etcd-peer\n[v3_req]\n{bc}keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = {sans}\n"
        ),
    )
    .unwrap();
    p
}

/// Makes a key and CSR with openssl, as the guides do on the node.
fn openssl_csr(dir: &Path, name: &str, newkey: &str, sans: &str, ca: bool) -> PathBuf {
    let cnf = cnf(dir, sans, ca);
    let csr = dir.join(format!("{name}.csr"));
    let key = dir.join(format!("{name}.key"));
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-newkey",
        newkey,
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
        "-config",
        cnf.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    csr
}

#[test]
fn signs_an_openssl_csr_for_its_node() {
    let env = TestEnv::new();
    env.init();
    let (ok, out) = openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        env.path().join("p256.key").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let cnf = cnf(env.path(), "IP:192.168.0.1, DNS:etcd01.example.com", false);
    let csr = env.path().join("etcd01.csr");
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-key",
        env.path().join("p256.key").to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
        "-config",
        cnf.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");

    let pem = env.ok(&[
        "sign",
        "--csr",
        "etcd01.csr",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
    ]);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        2,
        "etcd-peer appends the CA"
    );
    let cert = env.path().join("etcd01.crt");
    std::fs::write(&cert, &pem).unwrap();
    let ca = env.ca_cert("etcd");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        "-purpose",
        "sslserver",
        cert.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let (_, t) = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"]);
    // The profile, not the CSR, decides: no keyEncipherment on an EC key, the profile's SANs.
    assert!(
        t.contains("X509v3 Key Usage: critical\n                Digital Signature\n"),
        "{t}"
    );
    assert!(t.contains("IP Address:192.168.0.1, DNS:etcd01.example.com, DNS:etcd01, DNS:localhost, IP Address:127.0.0.1"), "{t}");
    // The certificate carries the node's key.
    assert_eq!(cert_pubkey(&cert), key_pubkey(&env.path().join("p256.key")));
    // Recorded in the ledger as a CSR signing.
    let ledger = std::fs::read_to_string(env.store().join("ledger.jsonl")).unwrap();
    assert!(ledger.contains("\"source\":\"csr\""), "{ledger}");

    // kpki's own csr command, the key never leaving the node, then sign into --out.
    env.ok(&[
        "csr",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--out",
        "node",
    ]);
    let key = env.path().join("node/kubelet.key");
    assert!(key.exists());
    env.ok(&[
        "sign",
        "--csr",
        "node/kubelet.csr",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--out",
        "signed",
    ]);
    let signed = env
        .path()
        .join("signed/worker01/etc/kubernetes/ssl/kubelet.crt");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        signed.with_file_name("ca.crt").to_str().unwrap(),
        "-purpose",
        "sslclient",
        signed.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(cert_pubkey(&signed), key_pubkey(&key));
}

fn refused(env: &TestEnv, csr: &Path, extra: &[&str], expect: &str) {
    let before = snapshot(&env.store());
    let mut args = vec![
        "sign",
        "--csr",
        csr.to_str().unwrap(),
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
    ];
    args.extend_from_slice(extra);
    let err = env.fails(&args, 2);
    assert!(err.contains(expect), "expected '{expect}' in: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert_eq!(snapshot(&env.store()), before, "store unchanged");
}

#[test]
fn refuses_bad_csrs_and_leaves_the_store_alone() {
    let env = TestEnv::new();
    env.init();
    let d = env.path();

    // A broken signature: flip a byte inside the signature of a good CSR.
    let good = openssl_csr(d, "tamper", "rsa:2048", "IP:192.168.0.1", false);
    let (_, der) = {
        let out = d.join("tamper.der");
        let r = openssl(&[
            "req",
            "-in",
            good.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            out.to_str().unwrap(),
        ]);
        (r, out)
    };
    let mut bytes = std::fs::read(&der).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&der, &bytes).unwrap();
    refused(&env, &der, &[], "signature does not verify");

    // CA:TRUE requested.
    let ca = openssl_csr(d, "ca", "rsa:2048", "IP:192.168.0.1", true);
    refused(&env, &ca, &[], "asks to be a CA");

    // SANs the node does not own.
    let foreign = openssl_csr(
        d,
        "foreign",
        "rsa:2048",
        "IP:192.168.0.1, DNS:evil.example.net, IP:10.9.9.9",
        false,
    );
    refused(&env, &foreign, &[], "DNS:evil.example.net, IP:10.9.9.9");
    // ... which --san explicitly allows.
    env.ok(&[
        "sign",
        "--csr",
        foreign.to_str().unwrap(),
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--san",
        "evil.example.net",
        "--san",
        "10.9.9.9",
    ]);

    // An RSA-1024 key.
    let env2 = TestEnv::new();
    env2.init();
    let weak = openssl_csr(env2.path(), "weak", "rsa:1024", "IP:192.168.0.1", false);
    refused(&env2, &weak, &[], "RSA 1024 bits");

    // Not a CSR at all: an input error (exit 1), store unchanged.
    let junk = env2.path().join("junk.csr");
    std::fs::write(&junk, b"hello").unwrap();
    let before = snapshot(&env2.store());
    let err = env2.fails(
        &[
            "sign",
            "--csr",
            junk.to_str().unwrap(),
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
        ],
        1,
    );
    assert!(err.contains("junk.csr"), "{err}");
    assert_eq!(snapshot(&env2.store()), before);
}
