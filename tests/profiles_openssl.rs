//! Every built-in profile, issued for its nodes of the example cluster, checked by the
//! real openssl: chain and purpose, SANs, usages, subject, validity, key type, key file
//! mode, and that the key belongs to the certificate.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::{cert_pubkey, key_pubkey, openssl, TestEnv};

struct Expect {
    purpose: &'static [&'static str],
    cn: &'static str,
    o: Option<&'static str>,
    eku: &'static str,
    sans: &'static [&'static str],
}

/// The file called `name` somewhere under a node's export directory (`issue --out`
/// writes each file at its install path under OUT/<node>/).
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| e.file_type().is_file() && e.file_name() == name)
        .map(|e| e.into_path())
}

fn text(cert: &Path) -> String {
    let (ok, out) = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{out}");
    out
}

#[test]
fn every_profile_verifies_with_openssl() {
    let env = TestEnv::new();
    env.init();
    env.ok(&["issue", "--all", "--out", "out"]);
    let out = env.path().join("out");

    // file name under OUT/<node>/ -> what openssl must find in it
    let mut expect: BTreeMap<&str, Expect> = BTreeMap::new();
    expect.insert(
        "etcd.crt",
        Expect {
            purpose: &["sslserver", "sslclient"],
            // One CN for every member: etcd allows one on its peer port.
            cn: "CN = etcd-peer",
            o: None,
            eku: "TLS Web Server Authentication, TLS Web Client Authentication",
            sans: &[
                "IP Address:{ip}",
                "DNS:{fqdn}",
                "DNS:{name}",
                "DNS:localhost",
                "IP Address:127.0.0.1",
            ],
        },
    );
    expect.insert(
        "etcd-client.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = etcd-client-{name}",
            o: None,
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "apiserver.crt",
        Expect {
            purpose: &["sslserver"],
            cn: "CN = kube-apiserver",
            o: None,
            eku: "TLS Web Server Authentication",
            sans: &[
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "DNS:loadbalancer.example.com",
                "DNS:master01.example.com",
                "DNS:master02.example.com",
                "IP Address:127.0.0.1",
                "IP Address:10.3.0.1",
                "IP Address:192.168.3.1",
                "IP Address:192.168.1.1",
                "IP Address:192.168.1.2",
            ],
        },
    );
    expect.insert(
        "apiserver-etcd-client.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = kube-apiserver-etcd-client",
            o: None,
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "apiserver-kubelet-client.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = kube-apiserver-kubelet-client",
            o: Some("O = system:masters"),
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "kubelet.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = system:node:{name}",
            o: Some("O = system:nodes"),
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "kubelet-serving.crt",
        Expect {
            purpose: &["sslserver"],
            cn: "CN = system:node:{name}",
            o: Some("O = system:nodes"),
            eku: "TLS Web Server Authentication",
            sans: &["DNS:{name}", "DNS:{fqdn}", "IP Address:{ip}"],
        },
    );
    expect.insert(
        "kube-proxy.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = system:kube-proxy",
            o: None,
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "controller-manager.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = system:kube-controller-manager",
            o: None,
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "scheduler.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = system:kube-scheduler",
            o: None,
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "admin.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = admin",
            o: Some("O = system:masters"),
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );
    expect.insert(
        "front-proxy-client.crt",
        Expect {
            purpose: &["sslclient"],
            cn: "CN = front-proxy-client",
            o: None,
            eku: "TLS Web Client Authentication",
            sans: &[],
        },
    );

    let nodes: BTreeMap<&str, (&str, &str)> = [
        ("etcd01", ("192.168.0.1", "etcd01.example.com")),
        ("etcd02", ("192.168.0.2", "etcd02.example.com")),
        ("etcd03", ("192.168.0.3", "etcd03.example.com")),
        ("master01", ("192.168.1.1", "master01.example.com")),
        ("master02", ("192.168.1.2", "master02.example.com")),
        ("worker01", ("192.168.2.1", "worker01.example.com")),
        ("worker02", ("192.168.2.2", "worker02.example.com")),
        ("worker03", ("192.168.2.3", "worker03.example.com")),
        ("cluster", ("", "")),
    ]
    .into_iter()
    .collect();

    let mut checked = 0;
    let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (node, (ip, fqdn)) in &nodes {
        let dir = out.join(node);
        for (file, e) in &expect {
            let Some(cert) = find(&dir, file) else {
                continue;
            };
            per_node
                .entry(node.to_string())
                .or_default()
                .push(file.to_string());
            let fill = |s: &str| {
                s.replace("{ip}", ip)
                    .replace("{fqdn}", fqdn)
                    .replace("{name}", node)
            };
            // The CA file the profile installs beside it (the apiserver's etcd client
            // certificate is checked against the etcd CA's file).
            let ca = match *file {
                "front-proxy-client.crt" => cert.with_file_name("front-proxy-ca.crt"),
                "apiserver-etcd-client.crt" => dir.join("etc/ssl/etcd/ca.crt"),
                _ => cert.with_file_name("ca.crt"),
            };
            for purpose in e.purpose {
                let (ok, o) = openssl(&[
                    "verify",
                    "-CAfile",
                    ca.to_str().unwrap(),
                    "-purpose",
                    purpose,
                    cert.to_str().unwrap(),
                ]);
                assert!(
                    ok && o.contains(": OK"),
                    "{node}/{file} -purpose {purpose}: {o}"
                );
            }
            // A client-only certificate must not pass as a server.
            if !e.purpose.contains(&"sslserver") {
                let (ok, _) = openssl(&[
                    "verify",
                    "-CAfile",
                    ca.to_str().unwrap(),
                    "-purpose",
                    "sslserver",
                    cert.to_str().unwrap(),
                ]);
                assert!(!ok, "{node}/{file} must not verify as a TLS server");
            }
            let t = text(&cert);
            let subject = t
                .lines()
                .find(|l| l.trim_start().starts_with("Subject:"))
                .unwrap();
            assert!(subject.contains(&fill(e.cn)), "{node}/{file}: {subject}");
            if let Some(o) = e.o {
                assert!(subject.contains(o), "{node}/{file}: {subject}");
            }
            assert!(t.contains(e.eku), "{node}/{file}: EKU {}\n{t}", e.eku);
            assert!(
                t.contains("X509v3 Key Usage: critical\n                Digital Signature\n"),
                "{node}/{file}: key usage must be digitalSignature only for ECDSA\n{t}"
            );
            assert!(t.contains("CA:FALSE"), "{node}/{file}");
            assert!(
                t.contains("X509v3 Authority Key Identifier"),
                "{node}/{file}"
            );
            assert!(
                t.contains("ASN1 OID: prime256v1"),
                "{node}/{file}: ECDSA P-256 key"
            );
            let san_line = t
                .lines()
                .skip_while(|l| !l.contains("Subject Alternative Name"))
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_string();
            let want: Vec<String> = e.sans.iter().map(|s| fill(s)).collect();
            assert_eq!(san_line, want.join(", "), "{node}/{file} SANs");
            // one year, and notBefore in the past
            let (ok, dates) = openssl(&[
                "x509",
                "-in",
                cert.to_str().unwrap(),
                "-noout",
                "-checkend",
                "0",
            ]);
            assert!(ok, "{dates}");
            let (ok, _) = openssl(&[
                "x509",
                "-in",
                cert.to_str().unwrap(),
                "-noout",
                "-checkend",
                &(366 * 86400).to_string(),
            ]);
            assert!(!ok, "{node}/{file} must expire within a year");
            let (ok, _) = openssl(&[
                "x509",
                "-in",
                cert.to_str().unwrap(),
                "-noout",
                "-checkend",
                // Staggered: up to a tenth of the year earlier (kpki::plan::stagger).
                &(328 * 86400).to_string(),
            ]);
            assert!(
                ok,
                "{node}/{file} must be valid for the profile's year, less the stagger"
            );
            // the key
            let key = cert.with_file_name(file.replace(".crt", ".key"));
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
            assert_eq!(
                cert_pubkey(&cert),
                key_pubkey(&key),
                "{node}/{file}: key matches cert"
            );
            checked += 1;
        }
    }
    // The roles decide who gets what.
    let has = |n: &str, f: &str| per_node.get(n).is_some_and(|v| v.iter().any(|x| x == f));
    for n in ["etcd01", "etcd02", "etcd03"] {
        assert_eq!(per_node[n], vec!["etcd.crt"], "{n}");
    }
    for n in ["master01", "master02"] {
        for f in [
            "apiserver.crt",
            "apiserver-etcd-client.crt",
            "apiserver-kubelet-client.crt",
            "etcd-client.crt",
            "kubelet.crt",
            "kubelet-serving.crt",
            "kube-proxy.crt",
            "controller-manager.crt",
            "scheduler.crt",
            "front-proxy-client.crt",
        ] {
            assert!(has(n, f), "{n} lacks {f}");
        }
    }
    for n in ["worker01", "worker02", "worker03"] {
        assert_eq!(per_node[n].len(), 4, "{n}: {:?}", per_node[n]);
        assert!(!has(n, "apiserver.crt"));
    }
    assert_eq!(checked, 3 + 2 * 10 + 3 * 4 + 1);

    // The guides append the CA to etcd's and the apiserver's certificate files.
    let etcd = std::fs::read_to_string(out.join("etcd01/etc/ssl/etcd/etcd.crt")).unwrap();
    assert_eq!(etcd.matches("BEGIN CERTIFICATE").count(), 2);
    let kubelet =
        std::fs::read_to_string(out.join("worker01/etc/kubernetes/ssl/kubelet.crt")).unwrap();
    assert_eq!(kubelet.matches("BEGIN CERTIFICATE").count(), 1);

    // The service-account key pair: RSA 2048, one for the cluster, public key matches.
    let sa = out.join("cluster/etc/kubernetes/ssl/sa.key");
    assert_eq!(
        std::fs::metadata(&sa).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (ok, t) = openssl(&["pkey", "-in", sa.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok && t.contains("Private-Key: (2048 bit"), "{t}");
    assert_eq!(
        std::fs::read_to_string(out.join("cluster/etc/kubernetes/ssl/sa.pub")).unwrap(),
        key_pubkey(&sa)
    );

    // The CA: critical CA:TRUE, keyCertSign and cRLSign.
    let ca = text(&env.ca_cert("etcd"));
    assert!(
        ca.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
        "{ca}"
    );
    assert!(ca.contains("Certificate Sign, CRL Sign"), "{ca}");

    // Keys at rest in the store are age-encrypted, never PEM in clear.
    for e in walkdir::WalkDir::new(env.store())
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
    {
        let body = std::fs::read(e.path()).unwrap();
        let s = String::from_utf8_lossy(&body);
        assert!(
            !s.contains("PRIVATE KEY"),
            "{} holds a clear private key",
            e.path().display()
        );
        if e.file_name().to_string_lossy().ends_with(".age") {
            assert!(
                s.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
                "{}",
                e.path().display()
            );
            assert_eq!(e.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}

#[test]
fn rsa_leaf_gets_key_encipherment_and_kubeadm_cas_split() {
    let env = TestEnv::new();
    env.ok(&["init", "--ca-model", "kubeadm"]);
    for ca in ["kubernetes", "etcd", "front-proxy"] {
        assert!(env.ca_cert(ca).exists(), "{ca}");
    }
    env.ok(&[
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--algorithm",
        "rsa-2048",
        "--out",
        "out",
    ]);
    env.ok(&[
        "issue",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--out",
        "out",
    ]);
    let etcd = env.path().join("out/etcd01/etc/ssl/etcd/etcd.crt");
    let t = text(&etcd);
    assert!(t.contains("Digital Signature, Key Encipherment"), "{t}");
    assert!(t.contains("Public-Key: (2048 bit)"), "{t}");
    // etcd's certificate chains to the etcd CA, not to the kubernetes CA.
    let etcd_ca = env.ca_cert("etcd");
    let k8s_ca = env.ca_cert("kubernetes");
    assert!(
        openssl(&[
            "verify",
            "-CAfile",
            etcd_ca.to_str().unwrap(),
            etcd.to_str().unwrap()
        ])
        .0
    );
    assert!(
        !openssl(&[
            "verify",
            "-CAfile",
            k8s_ca.to_str().unwrap(),
            etcd.to_str().unwrap()
        ])
        .0
    );
    let kubelet = env
        .path()
        .join("out/worker01/etc/kubernetes/ssl/kubelet.crt");
    assert!(
        openssl(&[
            "verify",
            "-CAfile",
            k8s_ca.to_str().unwrap(),
            kubelet.to_str().unwrap()
        ])
        .0
    );
    // Ed25519 leaves work too, with digitalSignature only.
    env.ok(&[
        "issue",
        "--profile",
        "kube-proxy",
        "--node",
        "worker02",
        "--algorithm",
        "ed25519",
        "--out",
        "out",
    ]);
    let t = text(
        &env.path()
            .join("out/worker02/etc/kubernetes/ssl/kube-proxy.crt"),
    );
    assert!(t.contains("ED25519"), "{t}");
    assert!(!t.contains("Key Encipherment"), "{t}");
}
