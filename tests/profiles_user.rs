//! User profiles add to and override the built-in ones, and are checked as strictly; and
//! `kpki inspect` reads what kpki and openssl write, as text and as JSON.

mod support;

use support::{openssl, TestEnv};

#[test]
fn a_store_profile_overrides_a_builtin_and_adds_one() {
    let env = TestEnv::new();
    env.init();
    let dir = env.store().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let builtin = env.ok(&["profiles", "show", "etcd-peer"]);
    std::fs::write(
        dir.join("etcd-peer.toml"),
        builtin.replace("validity = \"1y\"", "validity = \"90d\""),
    )
    .unwrap();
    std::fs::write(
        dir.join("registry.toml"),
        r#"description = "in-cluster registry"
ca = "kubernetes"
scope = "cluster"
roles = ["worker"]
validity = "30d"
key = "ecdsa-p384"
ext_key_usage = ["serverAuth"]
sans = ["registry.{cluster.domain}"]

[subject]
cn = "registry"

[install]
cert = { path = "/etc/registry/tls.crt", mode = 0o644 }
key = { path = "/etc/registry/tls.key", mode = 0o600 }
ca = { path = "/etc/registry/ca.crt", mode = 0o644 }
"#,
    )
    .unwrap();
    let list = env.ok(&["profiles", "list"]);
    assert!(
        list.contains("registry") && list.contains("registry.toml"),
        "{list}"
    );
    env.ok(&[
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd02",
        "--out",
        "out",
    ]);
    env.ok(&["issue", "--profile", "registry", "--all", "--out", "out"]);
    let cert = env.path().join("out/etcd02/etc/ssl/etcd/etcd.crt");
    let p = cert.to_str().unwrap();
    assert!(
        openssl(&[
            "x509",
            "-in",
            p,
            "-noout",
            "-checkend",
            &(80 * 86400).to_string()
        ])
        .0
    );
    assert!(
        !openssl(&[
            "x509",
            "-in",
            p,
            "-noout",
            "-checkend",
            &(91 * 86400).to_string()
        ])
        .0
    );
    let (_, t) = openssl(&[
        "x509",
        "-in",
        env.path()
            .join("out/cluster/etc/registry/tls.crt")
            .to_str()
            .unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(
        t.contains("DNS:registry.example.com") && t.contains("secp384r1"),
        "{t}"
    );
}

#[test]
fn a_broken_user_profile_is_one_line_with_its_place() {
    let env = TestEnv::new();
    env.init();
    let dir = env.store().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let builtin = env.ok(&["profiles", "show", "kubelet"]);
    std::fs::write(
        dir.join("kubelet.toml"),
        builtin.replace(
            "cn = \"system:node:{node.name}\"",
            "cn = \"system:node:{node.hostname}\"",
        ),
    )
    .unwrap();
    let err = env.fails(&["issue", "--profile", "kubelet", "--all"], 1);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("kubelet.toml:"), "{err}");
    assert!(
        err.contains("unknown placeholder '{node.hostname}'"),
        "{err}"
    );
    std::fs::write(
        dir.join("kubelet.toml"),
        builtin.replace("validity = \"1y\"", "validity = \"1y\"\nvalidty = \"2y\""),
    )
    .unwrap();
    let err = env.fails(&["profiles", "list"], 1);
    assert!(err.contains("unknown field `validty`"), "{err}");
    std::fs::write(
        dir.join("kubelet.toml"),
        builtin.replace("mode = 0o600", "mode = 0o644"),
    )
    .unwrap();
    let err = env.fails(&["profiles", "list"], 1);
    assert!(err.contains("lets others read the private key"), "{err}");
}

#[test]
fn inspect_reads_pem_der_chains_and_csrs() {
    let env = TestEnv::new();
    env.init();
    env.ok(&[
        "issue",
        "--profile",
        "apiserver",
        "--node",
        "master01",
        "--out",
        "out",
    ]);
    let chain = env
        .path()
        .join("out/master01/etc/kubernetes/ssl/apiserver.crt");
    let der = env.path().join("leaf.bin");
    assert!(
        openssl(&[
            "x509",
            "-in",
            chain.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap()
        ])
        .0
    );
    let text = env.ok(&["inspect", chain.to_str().unwrap(), der.to_str().unwrap()]);
    assert_eq!(text.matches(": certificate").count(), 3, "{text}");
    assert!(
        text.contains("DNS:kubernetes.default.svc.cluster.local"),
        "{text}"
    );
    assert!(text.contains("left)"), "{text}");
    // A key file is recognized and never printed.
    let key = env
        .path()
        .join("out/master01/etc/kubernetes/ssl/apiserver.key");
    let out = env.ok(&[
        "inspect",
        "--json",
        chain.to_str().unwrap(),
        key.to_str().unwrap(),
    ]);
    assert!(!out.contains("PRIVATE"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["type"], "certificate");
    assert_eq!(arr[0]["subject"], "CN=kube-apiserver");
    assert_eq!(arr[0]["ext_key_usage"][0], "serverAuth");
    // A year less the stagger (at most a tenth of it).
    assert!(arr[0]["seconds_left"].as_i64().unwrap() > 328 * 86400);
    assert_eq!(arr[1]["is_ca"], true);
    // The fingerprint is openssl's.
    let (_, fp) = openssl(&[
        "x509",
        "-in",
        der.to_str().unwrap(),
        "-inform",
        "DER",
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(fp.contains(arr[0]["sha256"].as_str().unwrap()), "{fp}");
    // A CSR.
    env.ok(&[
        "csr",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--out",
        "node",
    ]);
    let out = env.ok(&["inspect", "node/etcd.csr"]);
    assert!(
        out.contains("certificate signing request (signature verified)")
            && out.contains("IP:192.168.0.1"),
        "{out}"
    );
    // Garbage is an input error.
    std::fs::write(env.path().join("junk.crt"), b"\x00\x01\x02").unwrap();
    let err = env.fails(&["inspect", "junk.crt"], 1);
    assert!(err.contains("junk.crt"), "{err}");
}

/// A subject holding a terminal escape and a newline is printed escaped by `inspect` and
/// the audit table: it can neither drive the terminal nor forge a line of output.
#[test]
fn hostile_subjects_are_printed_escaped() {
    let env = TestEnv::new();
    let (crt, key) = (env.path().join("e.crt"), env.path().join("e.key"));
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
        "-days",
        "30",
        "-utf8",
        "-subj",
        "/CN=evil\u{1b}[2J\nok   forged line",
    ]);
    assert!(ok, "{out}");
    let text = env.ok(&["inspect", crt.to_str().unwrap()]);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.contains("CN=evil\\x1b[2J\\nok   forged line"),
        "{text}"
    );
    let o = env.run(&[
        "audit",
        "--ca",
        crt.to_str().unwrap(),
        crt.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert!(
        !table.lines().any(|l| l.starts_with("ok   forged")),
        "{table}"
    );
    assert!(table.contains("evil\\x1b[2J\\nok"), "{table}");
}
