//! Bad input gets one clear line naming what and where (and the fix), a non-zero exit,
//! and a store left byte-for-byte as it was.

mod support;

use support::{snapshot, TestEnv};

fn one_line(err: &str) {
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("kpki: error: "), "{err}");
}

#[test]
fn missing_store() {
    let env = TestEnv::new();
    let err = env.fails(&["issue", "--profile", "etcd-peer", "--node", "etcd01"], 1);
    one_line(&err);
    assert!(err.contains("no kpki store at pki"), "{err}");
    assert!(err.contains("hint: create one with `kpki init`"), "{err}");
    assert!(!env.store().exists());
}

#[test]
fn wrong_identity_and_unknown_profile() {
    let env = TestEnv::new();
    env.init();
    let other = TestEnv::new();
    other.init();
    let before = snapshot(&env.store());
    let id = other.identity();
    let err = env.fails(
        &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--identity",
            id.to_str().unwrap(),
        ],
        1,
    );
    one_line(&err);
    assert!(
        err.contains("is not one of this store's recipients"),
        "{err}"
    );
    assert_eq!(snapshot(&env.store()), before);

    let err = env.fails(&["issue", "--profile", "etcd-per", "--node", "etcd01"], 1);
    one_line(&err);
    assert!(
        err.contains("unknown profile 'etcd-per'; hint: did you mean 'etcd-peer'?"),
        "{err}"
    );
    let err = env.fails(&["issue", "--profile", "etcd-peer", "--node", "etcd1"], 1);
    assert!(
        err.contains("node 'etcd1' is not in the inventory"),
        "{err}"
    );
    assert_eq!(snapshot(&env.store()), before);

    // A node whose roles the profile is not for: refused by policy.
    let err = env.fails(
        &["issue", "--profile", "etcd-peer", "--node", "worker01"],
        2,
    );
    assert!(
        err.contains("profile etcd-peer is for etcd nodes; worker01 has roles worker"),
        "{err}"
    );
    // An identity file others can read is refused.
    let loose = env.path().join("loose.txt");
    std::fs::copy(env.identity(), &loose).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = env.fails(
        &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--identity",
            loose.to_str().unwrap(),
        ],
        1,
    );
    assert!(
        err.contains("readable by others") && err.contains("chmod 600"),
        "{err}"
    );
    assert_eq!(snapshot(&env.store()), before);
}

#[test]
fn passphrase_store() {
    let env = TestEnv::new();
    let o = env
        .kpki()
        .args(["init", "--passphrase"])
        .env("KPKI_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !env.identity().exists(),
        "no identity file for a passphrase store"
    );
    let before = snapshot(&env.store());
    let o = env
        .kpki()
        .args(["issue", "--profile", "etcd-peer", "--node", "etcd01"])
        .env("KPKI_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    one_line(&err);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(snapshot(&env.store()), before);
    // No terminal and no KPKI_PASSPHRASE: a clear line, not a hang.
    let o = env
        .kpki()
        .args(["issue", "--profile", "etcd-peer", "--node", "etcd01"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("set KPKI_PASSPHRASE"), "{err}");
    // The right one works, for several certificates with one unlock.
    let o = env
        .kpki()
        .args(["issue", "--profile", "kubelet", "--all"])
        .env("KPKI_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

const GOOD: &str = r#"[cluster]
name = "t"
domain = "example.com"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[[nodes]]
name = "etcd01"
fqdn = "etcd01.example.com"
ip = "192.168.0.1"
roles = ["etcd"]

[[nodes]]
name = "etcd02"
fqdn = "etcd02.example.com"
ip = "192.168.0.2"
roles = ["etcd"]
"#;

#[test]
fn invalid_inventories() {
    let env = TestEnv::new();
    env.init();
    let before = snapshot(&env.store());
    let cases: &[(&str, String, &str)] = &[
        (
            "bad ip",
            GOOD.replace("192.168.0.2", "192.168.0.256"),
            "inv.toml:17:6: invalid IP address syntax",
        ),
        (
            "bad cidr",
            GOOD.replace("10.3.0.0/24", "10.3.0.0/40"),
            "inv.toml:4:16: prefix /40 in '10.3.0.0/40' is longer than the address",
        ),
        (
            "host bits",
            GOOD.replace("10.2.0.0/16", "10.2.0.1/16"),
            "has host bits set; did you mean 10.2.0.0/16?",
        ),
        (
            "duplicate name",
            GOOD.replace("\"etcd02\"", "\"etcd01\""),
            "inv.toml:15:8: duplicate node name etcd01 (already used on line 9)",
        ),
        (
            "duplicate ip",
            GOOD.replace("192.168.0.2", "192.168.0.1"),
            "inv.toml:17:6: duplicate node ip 192.168.0.1 (already used by etcd01 on line 11)",
        ),
        (
            "unknown role",
            GOOD.replacen("[\"etcd\"]", "[\"ectd\"]", 1),
            "inv.toml:12:10: unknown variant `ectd`, expected one of `etcd`, `master`, `worker`",
        ),
        (
            "missing field",
            GOOD.replacen("fqdn = \"etcd01.example.com\"\n", "", 1),
            "missing field `fqdn`",
        ),
        (
            "unknown key",
            GOOD.replacen("roles = [\"etcd\"]", "roles = [\"etcd\"]\nrole = \"x\"", 1),
            "inv.toml:13:1: unknown field `role`",
        ),
        ("not toml", "[cluster\nname=".to_string(), "inv.toml:1:"),
        (
            // A newline would add a second FLANNELD_ETCD_* line to flanneld's options.env.
            "etcd prefix with a newline",
            GOOD.replacen(
                "[cluster]\n",
                "[cluster]\nflannel_etcd_prefix = \"/x\\nFLANNELD_ETCD_ENDPOINTS=http://evil:2379\"\n",
                1,
            ),
            "is not an absolute etcd key of letters, digits and . _ - /",
        ),
        (
            "election timeout below five heartbeats",
            format!("{GOOD}\n[etcd]\nheartbeat_interval_ms = 200\nelection_timeout_ms = 500\n"),
            "etcd election_timeout_ms 500 must be at least 5 × the heartbeat (1000)",
        ),
        (
            "a vxlan option on another backend",
            GOOD.replacen(
                "[cluster]\n",
                "[cluster]\nflannel_backend = \"host-gw\"\nflannel_vni = 4096\n",
                1,
            ),
            "are vxlan options; flannel_backend is host-gw",
        ),
        (
            "wal_dir with a newline",
            format!("{GOOD}\n[etcd]\nwal_dir = \"/var/lib/w\\nETCD_NAME=x\"\n"),
            "etcd wal_dir \"/var/lib/w\\nETCD_NAME=x\" is not an absolute path",
        ),
        (
            "resolv_conf not absolute",
            GOOD.replacen("[cluster]\n", "[cluster]\nresolv_conf = \"resolv.conf\"\n", 1),
            "resolv_conf \"resolv.conf\" is not an absolute path",
        ),
        (
            "resolv_conf with ..",
            GOOD.replacen(
                "[cluster]\n",
                "[cluster]\nresolv_conf = \"/etc/../root/x\"\n",
                1,
            ),
            "is not an absolute path of letters",
        ),
    ];
    for (what, text, expect) in cases {
        std::fs::write(env.path().join("inv.toml"), text).unwrap();
        let err = env.fails(&["issue", "--all", "--inventory", "inv.toml"], 1);
        one_line(&err);
        assert!(
            err.contains(expect),
            "{what}: expected '{expect}' in: {err}"
        );
        assert_eq!(snapshot(&env.store()), before, "{what}: store unchanged");
    }
    // The hints name the fix.
    std::fs::write(
        env.path().join("inv.toml"),
        GOOD.replace("192.168.0.2", "192.168.0.1"),
    )
    .unwrap();
    let err = env.fails(&["issue", "--all", "--inventory", "inv.toml"], 1);
    assert!(
        err.contains("hint: give every [[nodes]] entry its own ip"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_1_not_2() {
    let env = TestEnv::new();
    let err = env.fails(
        &["issue", "--profile", "etcd-peer", "--node", "a", "--all"],
        1,
    );
    assert!(err.contains("cannot be used with"), "{err}");
    env.init();
    let err = env.fails(
        &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--validity",
            "10months",
        ],
        1,
    );
    assert!(err.contains("invalid value for --validity"), "{err}");
    let err = env.fails(
        &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--algorithm",
            "rsa-1024",
        ],
        1,
    );
    assert!(
        err.contains("RSA keys below 2048 bits are refused"),
        "{err}"
    );
    assert!(env.run(&["--help"]).status.success());
}

#[test]
fn leaf_never_outlives_its_ca() {
    let env = TestEnv::new();
    env.ok(&["init", "--validity", "30d"]);
    let before = snapshot(&env.store());
    let err = env.fails(&["issue", "--profile", "etcd-peer", "--node", "etcd01"], 2);
    one_line(&err);
    assert!(err.contains("after its CA 'etcd' expires"), "{err}");
    assert!(err.contains("--clamp"), "{err}");
    assert_eq!(snapshot(&env.store()), before);
    env.ok(&[
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--clamp",
    ]);
    let ca = std::fs::read_to_string(env.ca_cert("etcd")).unwrap();
    let leaf = std::fs::read_to_string(env.issued("etcd-peer", "etcd01").join("cert.pem")).unwrap();
    let end = |pem: &str| {
        let p = env.path().join("x.pem");
        std::fs::write(&p, pem).unwrap();
        support::openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-enddate"]).1
    };
    assert_eq!(end(&ca), end(&leaf));
}

#[test]
fn force_issues_a_new_generation_and_keeps_the_old() {
    let env = TestEnv::new();
    env.init();
    env.ok(&[
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--out",
        "out",
    ]);
    let old_key = std::fs::read(env.issued("etcd-peer", "etcd01").join("key.pem.age")).unwrap();
    let old_out = std::fs::read(env.path().join("out/etcd01/etc/ssl/etcd/etcd.key")).unwrap();
    // Without --force: refused, exit 2, nothing changed.
    let before = snapshot(env.path());
    let err = env.fails(
        &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--out",
            "out",
        ],
        2,
    );
    assert!(
        err.contains("already issued: etcd-peer for etcd01"),
        "{err}"
    );
    assert_eq!(snapshot(env.path()), before);
    env.ok(&[
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--out",
        "out",
        "--force",
    ]);
    // The new generation is current; the old one stays in the store, untouched.
    assert!(env.issued("etcd-peer", "etcd01").ends_with("etcd01/2"));
    assert_eq!(
        std::fs::read(env.store().join("issued/etcd-peer/etcd01/1/key.pem.age")).unwrap(),
        old_key
    );
    // The exported certificate is kept as a .bak; the key is not copied (no second
    // plaintext key): its old generation is in the store, encrypted.
    let baks: Vec<String> = std::fs::read_dir(env.path().join("out/etcd01/etc/ssl/etcd"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bak"))
        .collect();
    assert_eq!(baks.len(), 1, "{baks:?}");
    assert!(baks[0].starts_with("etcd.crt."), "{baks:?}");
    assert_ne!(
        std::fs::read(env.path().join("out/etcd01/etc/ssl/etcd/etcd.key")).unwrap(),
        old_out,
        "the new key is exported"
    );
    let ledger = std::fs::read_to_string(env.store().join("ledger.jsonl")).unwrap();
    let events: Vec<&str> = ledger
        .lines()
        .map(|l| l.split('"').nth(3).unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "ca-created",
            "ca-created",
            "ca-created",
            "issued",
            "superseded",
            "issued"
        ]
    );
    // init over an existing store is refused, and --force keeps the old CA.
    let err = env.fails(&["init"], 2);
    assert!(err.contains("a kpki store already exists at pki"), "{err}");
}

#[test]
fn an_absurd_thread_count_is_a_usage_error_not_a_crash() {
    let env = TestEnv::new();
    for n in ["100000000000", "0"] {
        let err = env.fails(&["audit", "--threads", n, "."], 3);
        assert!(err.contains("is not in 1..=256"), "{err}");
    }
}

#[test]
fn unsafe_places_and_modes_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    // No HOME and no XDG_CONFIG_HOME: the identity has no safe default place.
    let env = TestEnv::new();
    let o = env
        .kpki()
        .env_remove("HOME")
        .env_remove("XDG_CONFIG_HOME")
        .arg("init")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    one_line(&err);
    assert!(
        err.contains("neither HOME nor XDG_CONFIG_HOME is set"),
        "{err}"
    );
    assert!(!env.store().exists() && !env.path().join("kpki").exists());

    // Staging into a directory anyone can write.
    env.init();
    let open = env.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        vec!["apply", "--out", "open"],
        vec![
            "issue",
            "--profile",
            "kubelet",
            "--node",
            "worker01",
            "--out",
            "open",
        ],
    ] {
        let err = env.fails(&args, 1);
        one_line(&err);
        assert!(
            err.contains("open can be written by anyone"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&open).unwrap().count(),
        0,
        "nothing staged"
    );
    assert!(
        !env.store().join("issued").exists(),
        "nothing issued either: the place is checked first"
    );

    // A profile installing a certificate anyone may overwrite.
    let dir = env.store().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let text = env
        .ok(&["profiles", "show", "kubelet"])
        .replace("mode = 0o644", "mode = 0o666");
    std::fs::write(dir.join("kubelet.toml"), text).unwrap();
    let err = env.fails(&["profiles", "list"], 1);
    one_line(&err);
    assert!(err.contains("lets anyone write the file"), "{err}");
}

/// A profile's install path reaches configs, units and static pods: one that could end a
/// line and add a flag (to the apiserver, say) is refused where the profile is read.
#[test]
fn a_profile_path_that_would_inject_a_setting_is_refused() {
    let env = TestEnv::new();
    env.init();
    let dir = env.store().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let before = snapshot(&env.store());
    let builtin = env.ok(&["profiles", "show", "apiserver"]);
    for (from, to, want) in [
        (
            "/etc/kubernetes/ssl/apiserver.key",
            "/etc/kubernetes/ssl/apiserver.key\\n    - --authorization-mode=AlwaysAllow",
            "is not an absolute file path of letters",
        ),
        (
            "owner = \"root\"",
            "owner = \"root;rm\"",
            "is not a user or group name",
        ),
    ] {
        let text = if from.starts_with('/') {
            builtin.replace(from, to)
        } else {
            builtin.replacen("mode = 0o600 }", &format!("mode = 0o600, {to} }}"), 1)
        };
        std::fs::write(dir.join("apiserver.toml"), text).unwrap();
        let err = env.fails(&["render", "--node", "master01"], 1);
        one_line(&err);
        assert!(
            err.contains("apiserver.toml") && err.contains(want),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(snapshot(&env.store()), before);
}
