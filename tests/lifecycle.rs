//! The store's lifecycle: generations, the append-only ledger, the planner's reasons, and
//! the sequences that used to leave a broken tree behind with exit status 0. After every
//! step that changes something, a fresh `apply` must stage trees that `render --check`
//! accepts and `kpki store verify` must find the store and its ledger in agreement.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{openssl, TestEnv};

/// A copy of the example inventory the test may edit.
fn own_inventory(env: &TestEnv) -> PathBuf {
    let p = env.path().join("cluster.toml");
    std::fs::copy(support::example_inventory(), &p).unwrap();
    p
}

/// apply, then render --check and store verify: the invariant every step must keep.
fn apply_clean(env: &TestEnv, inv: &Path) -> String {
    let inv = inv.to_str().unwrap();
    let out = env.ok(&["-i", inv, "apply", "--out", "staged"]);
    let check = env.ok(&["-i", inv, "render", "--check", "--out", "staged"]);
    assert!(check.contains(", 0 problem(s)"), "{check}");
    let verify = env.ok(&["store", "verify"]);
    assert!(verify.contains(", 0 problem(s)"), "{verify}");
    out
}

fn ledger(env: &TestEnv) -> Vec<serde_json::Value> {
    serde_json::from_str(&env.ok(&["ledger", "--json"])).unwrap()
}

fn count(events: &[serde_json::Value], event: &str, profile: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == event && profile.is_none_or(|p| e["profile"] == p))
        .count()
}

fn pem_blocks(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .matches("-----BEGIN")
        .count()
}

/// Starts `n` kpki processes with the same arguments at once and waits for them all.
fn at_once(env: &TestEnv, n: usize, args: &[&str]) -> Vec<std::process::Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            env.kpki()
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn verify_chain(ca: &Path, cert: &Path) {
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(ok, "{}: {out}", cert.display());
}

#[test]
fn changed_node_ip_reissues_its_certificates_with_drift() {
    let env = TestEnv::new();
    let inv = own_inventory(&env);
    apply_clean(&env, &inv);
    let text = std::fs::read_to_string(&inv)
        .unwrap()
        .replace("\"192.168.2.1\"", "\"192.168.2.21\"");
    std::fs::write(&inv, text).unwrap();
    let inv_s = inv.to_str().unwrap();
    let plan = env.ok(&["-i", inv_s, "plan", "--out", "staged"]);
    assert!(
        plan.contains("issue kubelet-serving for worker01 (generation 1): drift: SAN IP:192.168.2.21 added; SAN IP:192.168.2.1 removed"),
        "{plan}"
    );
    assert!(
        plan.contains("keep  kubelet-serving for worker02"),
        "{plan}"
    );
    // What apply will write, the reissued pair and the manifest included.
    for f in [
        "update worker01:/etc/kubernetes/ssl/kubelet-serving.crt",
        "update worker01:/etc/kubernetes/ssl/kubelet-serving.key",
        "update worker01:/var/lib/kpki/manifest.json",
    ] {
        assert!(plan.contains(f), "{f}: {plan}");
    }
    let out = apply_clean(&env, &inv);
    assert!(
        out.contains("issued kubelet-serving for worker01  (drift)"),
        "{out}"
    );
    assert!(
        out.contains("because drift: SAN IP:192.168.2.21 added"),
        "{out}"
    );
    let (ok, text) = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "subjectAltName",
        "-in",
        env.path()
            .join("staged/worker01/etc/kubernetes/ssl/kubelet-serving.crt")
            .to_str()
            .unwrap(),
    ]);
    assert!(ok && text.contains("192.168.2.21"), "{text}");
    // Nothing else moved, and the old generation is kept.
    let again = env.ok(&["-i", inv_s, "apply", "--out", "staged"]);
    assert!(again.contains("apply: 0 issued"), "{again}");
    assert!(env
        .store()
        .join("issued/kubelet-serving/worker01/1/cert.pem")
        .is_file());
}

fn staged_kubelet_serving(env: &TestEnv) -> PathBuf {
    env.path()
        .join("staged/worker01/etc/kubernetes/ssl/kubelet-serving.crt")
}

#[test]
fn init_force_keeps_the_old_ca_trusted_and_apply_reissues_by_issuer() {
    let env = TestEnv::new();
    let inv = support::example_inventory();
    apply_clean(&env, &inv);
    let init = env.ok(&["init", "--force"]);
    let old: Vec<String> = init
        .lines()
        .filter_map(|l| l.split("`kpki store retire --ca ").nth(1))
        .map(|s| s.trim_end_matches('`').to_owned())
        .collect();
    assert_eq!(old.len(), 3, "{init}");
    let out = apply_clean(&env, &inv);
    assert!(
        out.contains("apply: 36 issued"),
        "every certificate; the SA key stays: {out}"
    );
    assert!(out.contains("because issuer: signed by CA "), "{out}");
    // The trust files hold the new CA and the old one until it is retired.
    let ca = env.path().join("staged/etcd01/etc/ssl/etcd/ca.crt");
    assert_eq!(pem_blocks(&ca), 2);
    verify_chain(&ca, &env.path().join("staged/etcd01/etc/ssl/etcd/etcd.crt"));
    // The signing CA cannot be retired; the old one can, now that nothing uses it.
    let config = std::fs::read_to_string(env.store().join("kpki.toml")).unwrap();
    for id in &old {
        assert!(config.contains(id.as_str()));
        env.ok(&["store", "retire", "--ca", id]);
    }
    apply_clean(&env, &inv);
    assert_eq!(pem_blocks(&ca), 1);
    let ca_k = env.path().join("staged/worker01/etc/kubernetes/ssl/ca.crt");
    verify_chain(&ca_k, &staged_kubelet_serving(&env));
    let events = ledger(&env);
    assert_eq!(count(&events, "ca-created", None), 6);
    assert_eq!(count(&events, "retired", None), 3);
}

#[test]
fn retiring_a_ca_that_still_signs_is_refused() {
    let env = TestEnv::new();
    apply_clean(&env, &support::example_inventory());
    env.ok(&["init", "--force"]);
    let events = ledger(&env);
    let first = events.iter().find(|e| e["event"] == "ca-created").unwrap()["ca"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = events
        .iter()
        .rev()
        .find(|e| e["event"] == "ca-created")
        .unwrap()["ca"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = support::snapshot(&env.store());
    let err = env.fails(&["store", "retire", "--ca", &last], 2);
    assert!(err.contains("signs for a role now"), "{err}");
    // Leaves are still signed by the old CA until apply reissues them.
    let err = env.fails(&["store", "retire", "--ca", &first[..8]], 2);
    assert!(
        err.contains("CA kubernetes@") && err.contains("still signs 24 current certificate(s)"),
        "{err}"
    );
    assert_eq!(
        before,
        support::snapshot(&env.store()),
        "refusals change nothing"
    );
}

#[test]
fn sign_force_after_issue_leaves_one_consistent_generation() {
    let env = TestEnv::new();
    let inv = support::example_inventory();
    apply_clean(&env, &inv);
    env.ok(&[
        "csr",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--out",
        "node",
    ]);
    env.ok(&[
        "sign",
        "--force",
        "--csr",
        "node/kubelet.csr",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
    ]);
    let g2 = env.store().join("issued/kubelet/worker01/2");
    assert!(g2.join("cert.pem").is_file());
    assert!(
        !g2.join("key.pem.age").exists(),
        "no stale key beside a CSR-signed cert"
    );
    assert!(env
        .store()
        .join("issued/kubelet/worker01/1/key.pem.age")
        .is_file());
    let out = apply_clean(&env, &inv);
    assert!(out.contains("its key stays on the node"), "{out}");
    // The staged tree has the node's certificate and no key of ours; the node's own
    // key pairs with the staged certificate.
    let tree = env.path().join("staged/worker01");
    let manifest = std::fs::read_to_string(tree.join("var/lib/kpki/manifest.json")).unwrap();
    assert!(manifest.contains("\"on-node\""), "{manifest}");
    let crt = tree.join("etc/kubernetes/ssl/kubelet.crt");
    assert!(!tree.join("etc/kubernetes/ssl/kubelet.key").exists());
    assert_eq!(
        support::cert_pubkey(&crt),
        support::key_pubkey(&env.path().join("node/kubelet.key"))
    );
    // The audit of the staged tree expects the key on the node, not in the tree.
    let audit = env.run(&["audit", "staged"]);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    // issue --force takes the certificate back: a new key, staged again.
    env.ok(&[
        "issue",
        "--force",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
    ]);
    apply_clean(&env, &inv);
    assert!(tree.join("etc/kubernetes/ssl/kubelet.key").is_file());
}

#[test]
fn sign_takes_the_subject_from_the_profile_never_the_csr() {
    let env = TestEnv::new();
    env.init();
    let dir = env.path();
    let key = dir.join("k.pem");
    let gen = |subj: &str, name: &str| -> String {
        let csr = dir.join(name);
        let (ok, out) = openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-subj",
            subj,
            "-out",
            csr.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        csr.to_str().unwrap().to_owned()
    };
    // An O whose value reads "CN=admin": without --node or --cn there is no subject.
    let tricky = gen("/O=CN=admin", "tricky.csr");
    let err = env.fails(&["sign", "--csr", &tricky, "--profile", "etcd-client"], 1);
    assert!(err.contains("requires '--node NAME' or '--cn CN'"), "{err}");
    // A CSR naming another CN than --cn is refused, saying both.
    let other = gen("/CN=evil", "other.csr");
    let err = env.fails(
        &[
            "sign",
            "--csr",
            &other,
            "--profile",
            "etcd-client",
            "--cn",
            "backup-job",
        ],
        2,
    );
    assert!(
        err.contains(
            "the CSR asks for subject CN=\"evil\"; profile etcd-client gives CN=\"backup-job\""
        ),
        "{err}"
    );
    let err = env.fails(
        &[
            "sign",
            "--csr",
            &tricky,
            "--profile",
            "etcd-client",
            "--cn",
            "backup-job",
        ],
        2,
    );
    assert!(err.contains("O=\"CN=admin\""), "{err}");
    // The same CN, or no subject at all, is signed with the profile's subject.
    let good = gen("/CN=backup-job", "good.csr");
    let pem = env.ok(&[
        "sign",
        "--csr",
        &good,
        "--profile",
        "etcd-client",
        "--cn",
        "backup-job",
    ]);
    std::fs::write(dir.join("good.crt"), pem).unwrap();
    let (ok, subj) = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        dir.join("good.crt").to_str().unwrap(),
    ]);
    assert!(ok && subj.trim() == "subject=CN=backup-job", "{subj}");
}

#[test]
fn the_service_account_key_is_rolled_only_when_named_and_old_tokens_keep_verifying() {
    let env = TestEnv::new();
    let inv = support::example_inventory();
    apply_clean(&env, &inv);
    let out = env.ok(&["issue", "--all", "--force"]);
    assert!(out.contains("36 issued"), "{out}");
    assert_eq!(count(&ledger(&env), "issued", Some("service-account")), 1);
    let sa_pub = env.path().join("staged/master01/etc/kubernetes/ssl/sa.pub");
    apply_clean(&env, &inv);
    assert_eq!(pem_blocks(&sa_pub), 1);
    env.ok(&["issue", "--force", "--profile", "service-account", "--all"]);
    apply_clean(&env, &inv);
    // The new key signs; the apiservers verify tokens of both until the old is retired.
    assert_eq!(pem_blocks(&sa_pub), 2);
    assert_eq!(
        std::fs::read(&sa_pub).unwrap(),
        std::fs::read(env.path().join("staged/master02/etc/kubernetes/ssl/sa.pub")).unwrap(),
        "every master publishes the same keys"
    );
    let (ok, derived) = openssl(&[
        "pkey",
        "-pubout",
        "-in",
        env.path()
            .join("staged/master01/etc/kubernetes/ssl/sa.key")
            .to_str()
            .unwrap(),
    ]);
    assert!(ok);
    assert!(std::fs::read_to_string(&sa_pub)
        .unwrap()
        .starts_with(derived.trim()));
    let out = env.ok(&["store", "retire", "--profile", "service-account"]);
    assert!(
        out.contains("1 earlier key(s) of service-account no longer published"),
        "{out}"
    );
    apply_clean(&env, &inv);
    assert_eq!(pem_blocks(&sa_pub), 1);
}

#[test]
fn the_ledger_is_appended_never_rewritten_and_survives_a_torn_line() {
    let env = TestEnv::new();
    let inv = support::example_inventory();
    apply_clean(&env, &inv);
    let path = env.store().join("ledger.jsonl");
    let before = std::fs::read(&path).unwrap();
    env.ok(&[
        "issue",
        "--force",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
    ]);
    let after = std::fs::read(&path).unwrap();
    assert!(
        after.starts_with(&before),
        "earlier lines stay byte for byte"
    );
    let tail = String::from_utf8_lossy(&after[before.len()..]).into_owned();
    assert_eq!(tail.lines().count(), 2, "superseded + issued: {tail}");
    // A crash mid-append leaves a torn last line: reported, ignored, then cut.
    let mut torn = after.clone();
    torn.extend_from_slice(b"{\"event\":\"issued\",\"serial\":\"AB:");
    std::fs::write(&path, &torn).unwrap();
    let o = env.run(&["ledger"]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("torn last line"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = env.ok(&["store", "verify"]);
    assert!(
        v.contains("torn last line") && v.contains(", 0 problem(s)"),
        "{v}"
    );
    env.ok(&[
        "issue",
        "--force",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd02",
    ]);
    let fixed = std::fs::read(&path).unwrap();
    assert!(fixed.starts_with(&after));
    assert!(!String::from_utf8_lossy(&fixed).contains("\"serial\":\"AB:\n"));
    apply_clean(&env, &inv);
    let events = ledger(&env);
    assert_eq!(count(&events, "superseded", Some("etcd-peer")), 2);
    let states: Vec<&str> = events
        .iter()
        .filter(|e| {
            e["event"] == "issued" && e["profile"] == "etcd-peer" && e["target"] == "etcd01"
        })
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["superseded", "current"]);
    // Prune keeps the newest generation only; history stays in the ledger.
    env.ok(&["store", "prune", "--keep", "1"]);
    assert!(!env.store().join("issued/etcd-peer/etcd01/1").exists());
    apply_clean(&env, &inv);
}

#[test]
fn eight_first_applies_at_once_make_one_ca_and_a_complete_ledger() {
    let env = TestEnv::new();
    for o in at_once(&env, 8, &["apply", "--out", "staged"]) {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let events = ledger(&env);
    assert_eq!(count(&events, "ca-created", None), 3, "one set of CAs");
    assert_eq!(count(&events, "issued", None), 38, "each issued once");
    apply_clean(&env, &support::example_inventory());
    let ca = env.path().join("staged/etcd01/etc/ssl/etcd/ca.crt");
    for node in ["etcd01", "etcd02", "etcd03"] {
        verify_chain(
            &ca,
            &env.path()
                .join(format!("staged/{node}/etc/ssl/etcd/etcd.crt")),
        );
    }
}

#[test]
fn a_format_1_store_is_migrated_in_place_with_a_backup() {
    let env = TestEnv::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1");
    let copied = Command::new("cp")
        .args([
            "-a",
            fixture.join("pki").to_str().unwrap(),
            env.path().to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(copied.success());
    let id = env.path().join("cfg/kpki/identity.txt");
    std::fs::create_dir_all(id.parent().unwrap()).unwrap();
    std::fs::copy(fixture.join("identity.txt"), &id).unwrap();
    std::fs::set_permissions(&id, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let v = env.ok(&["store", "verify"]);
    assert!(v.contains(", 0 problem(s)"), "{v}");
    let config = std::fs::read_to_string(env.store().join("kpki.toml")).unwrap();
    assert!(config.contains("format = 2"), "{config}");
    let backups: Vec<_> = std::fs::read_dir(env.store().join("backup"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("-format-1"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert!(backups[0].path().join("kpki.toml").is_file());
    // Two etcd-peer issuances for etcd01 in format 1: the second is generation 2.
    assert!(env
        .store()
        .join("issued/etcd-peer/etcd01/2/cert.pem")
        .is_file());
    // The stale key format 1 left beside the CSR-signed kubelet certificate is gone.
    let k = env.store().join("issued/kubelet/worker01/2");
    assert!(k.join("cert.pem").is_file() && !k.join("key.pem.age").exists());
    let events = ledger(&env);
    assert_eq!(count(&events, "migrated", None), 1);
    assert_eq!(count(&events, "issued", Some("etcd-peer")), 4);
    // The migrated store works: apply stages a clean tree (issuing what this release's
    // profiles add or changed), and opening it again is a no-op.
    let out = apply_clean(&env, &support::example_inventory());
    assert!(out.contains("apply: 6 issued"), "{out}");
    assert!(
        out.contains("generated encryption-config for cluster  (missing)  secretbox key"),
        "{out}"
    );
    assert!(
        out.contains("issued apiserver-etcd-client for master01  (missing)"),
        "{out}"
    );
    assert!(
        out.contains("because drift: CN etcd01.example.com → etcd-peer"),
        "{out}"
    );
    let again = support::snapshot(&env.store());
    env.ok(&["store", "verify"]);
    assert_eq!(again, support::snapshot(&env.store()));
}

#[test]
fn a_store_of_a_newer_format_is_refused_with_one_line() {
    let env = TestEnv::new();
    env.init();
    let p = env.store().join("kpki.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("format = 2", "format = 9");
    std::fs::write(&p, text).unwrap();
    let err = env.fails(&["ledger"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("store format 9 is newer than the format 2 this kpki reads"),
        "{err}"
    );
}

/// A small deterministic generator, so a failing sequence is replayed by its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn random_sequences_of_commands_never_leave_a_broken_tree() {
    const NODES: [&str; 4] = ["etcd01", "master01", "worker01", "worker02"];
    for seed in [1u64, 7, 42, 1234] {
        let env = TestEnv::new();
        let inv = own_inventory(&env);
        let inv_s = inv.to_str().unwrap().to_owned();
        let mut rng = Lcg(seed);
        let mut log = Vec::new();
        env.ok(&["-i", &inv_s, "apply", "--out", "staged"]);
        for step in 0..8 {
            let node = NODES[rng.next(NODES.len())];
            let what = rng.next(7);
            log.push(format!("{what}:{node}"));
            let ctx = format!("seed {seed} step {step} ({log:?})");
            let ok = |args: &[&str]| {
                let o = env.run(args);
                assert!(
                    o.status.success(),
                    "{ctx}: kpki {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            };
            match what {
                0 => ok(&["-i", &inv_s, "init", "--force"]),
                1 => {
                    let profile = if node.starts_with("etcd") {
                        "etcd-peer"
                    } else {
                        "kubelet"
                    };
                    ok(&[
                        "-i",
                        &inv_s,
                        "issue",
                        "--force",
                        "--profile",
                        profile,
                        "--node",
                        node,
                    ]);
                }
                2 => {
                    let profile = if node.starts_with("etcd") {
                        "etcd-peer"
                    } else {
                        "kubelet"
                    };
                    let dir = format!("csr-{step}");
                    ok(&[
                        "-i",
                        &inv_s,
                        "csr",
                        "--profile",
                        profile,
                        "--node",
                        node,
                        "--out",
                        &dir,
                    ]);
                    let file = if profile == "etcd-peer" {
                        "etcd.csr"
                    } else {
                        "kubelet.csr"
                    };
                    ok(&[
                        "-i",
                        &inv_s,
                        "sign",
                        "--force",
                        "--csr",
                        &format!("{dir}/{file}"),
                        "--profile",
                        profile,
                        "--node",
                        node,
                    ]);
                }
                3 => {
                    // Move a node to another address.
                    let text = std::fs::read_to_string(&inv).unwrap();
                    let from = format!("name = \"{node}\"");
                    let at = text.find(&from).unwrap();
                    let ip_at = at + text[at..].find("ip = \"").unwrap() + 6;
                    let end = ip_at + text[ip_at..].find('"').unwrap();
                    let new_ip = format!("10.9.{}.{}", step, rng.next(200) + 1);
                    let text = format!("{}{new_ip}{}", &text[..ip_at], &text[end..]);
                    std::fs::write(&inv, text).unwrap();
                }
                4 => ok(&["-i", &inv_s, "issue", "--all", "--force"]),
                5 => ok(&["store", "prune", "--keep", "2"]),
                _ => ok(&["-i", &inv_s, "apply", "--out", "staged"]),
            }
            let o = env.run(&["-i", &inv_s, "apply", "--out", "staged"]);
            assert!(
                o.status.success(),
                "{ctx}: apply: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let o = env.run(&["-i", &inv_s, "render", "--check", "--out", "staged"]);
            assert!(
                o.status.success(),
                "{ctx}: render --check: {}",
                String::from_utf8_lossy(&o.stdout)
            );
            let o = env.run(&["store", "verify"]);
            assert!(
                o.status.success(),
                "{ctx}: store verify: {}",
                String::from_utf8_lossy(&o.stdout)
            );
            let o = env.run(&["-i", &inv_s, "audit", "staged", "pki"]);
            assert!(
                o.status.success(),
                "{ctx}: audit staged: {}",
                String::from_utf8_lossy(&o.stdout)
            );
            let plan = env.run(&["-i", &inv_s, "plan", "--out", "staged"]);
            let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
            assert!(
                plan.contains("plan: 0 to issue"),
                "{ctx}: after apply the plan is empty: {plan}"
            );
        }
    }
}

#[test]
fn two_first_inits_at_once_make_one_ca_and_the_second_is_refused() {
    let env = TestEnv::new();
    let mut codes: Vec<i32> = at_once(&env, 2, &["init"])
        .iter()
        .map(|o| o.status.code().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, [0, 2], "one creates the store, the other finds it");
    assert_eq!(count(&ledger(&env), "ca-created", None), 3);
    env.ca_cert("etcd");
}

#[test]
fn store_verify_finds_what_does_not_match_the_ledger() {
    let env = TestEnv::new();
    apply_clean(&env, &support::example_inventory());
    env.ok(&[
        "issue",
        "--force",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
    ]);
    let base = env.store().join("issued/etcd-peer/etcd01");
    // A generation removed by hand, and a pointer moved by hand.
    std::fs::remove_dir_all(base.join("1")).unwrap();
    std::fs::create_dir(env.store().join("issued/kubelet/worker01/7")).unwrap();
    std::fs::write(env.store().join("issued/kubelet/worker01/current"), "7\n").unwrap();
    let o = env.run(&["store", "verify"]);
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "issued/etcd-peer/etcd01/1: the ledger issued it and never pruned it, but it is gone"
        ),
        "{out}"
    );
    assert!(
        out.contains("issued/kubelet/worker01: current generation is 7, the ledger says 1"),
        "{out}"
    );
    assert!(
        out.contains("issued/kubelet/worker01/7: in the store, but not in the ledger"),
        "{out}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the store and its ledger disagree in"),
        "{err}"
    );
}

#[test]
fn plan_json_gives_each_decision_its_reason() {
    let env = TestEnv::new();
    let inv = own_inventory(&env);
    let inv_s = inv.to_str().unwrap();
    apply_clean(&env, &inv);
    let text = std::fs::read_to_string(&inv)
        .unwrap()
        .replace("\"192.168.0.1\"", "\"192.168.0.11\"");
    std::fs::write(&inv, text).unwrap();
    env.ok(&["init", "--force"]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["-i", inv_s, "plan", "--out", "staged", "--json"])).unwrap();
    let decisions = v["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 38);
    let of = |p: &str, t: &str| {
        decisions
            .iter()
            .find(|d| d["profile"] == p && d["target"] == t)
            .unwrap()
    };
    // Drift is named before the CA change: both would reissue it.
    let peer = of("etcd-peer", "etcd01");
    assert_eq!(
        (peer["action"].as_str(), peer["reason"].as_str()),
        (Some("issue"), Some("drift"))
    );
    assert!(peer["detail"]
        .as_str()
        .unwrap()
        .contains("SAN IP:192.168.0.11 added"));
    assert_eq!(of("etcd-peer", "etcd02")["reason"], "issuer");
    let sa = of("service-account", "cluster");
    assert_eq!(
        (sa["action"].as_str(), sa["reason"].as_str()),
        (Some("keep"), Some("ok"))
    );
    assert_eq!(sa["generation"], 1);
    let enc = of("encryption-config", "cluster");
    assert_eq!(
        (enc["action"].as_str(), enc["reason"].as_str()),
        (Some("keep"), Some("ok"))
    );
    // Nothing was issued or staged by plan.
    assert_eq!(count(&ledger(&env), "issued", None), 38);
}

#[test]
fn a_profile_that_renews_after_it_ends_is_refused_at_load() {
    let env = TestEnv::new();
    env.init();
    let dir = env.store().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/etcd-peer.toml"),
    )
    .unwrap()
    .replace(
        "validity = \"1y\"",
        "validity = \"30d\"\nrenew_before = \"30d\"",
    );
    std::fs::write(dir.join("etcd-peer.toml"), text).unwrap();
    let err = env.fails(&["plan", "--out", "staged"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("etcd-peer.toml"), "{err}");
    assert!(
        err.contains("renew_before \"30d\" is not shorter than validity \"30d\""),
        "{err}"
    );
}

#[test]
fn init_force_keeps_the_store_s_ca_model() {
    let env = TestEnv::new();
    env.ok(&["init", "--ca-model", "kubeadm"]);
    let out = env.ok(&["init", "--force"]);
    for ca in ["kubernetes", "etcd", "front-proxy"] {
        assert!(out.contains(&format!("created CA '{ca}'")), "{out}");
        assert!(out.contains(&format!("kept CA '{ca}@")), "{out}");
    }
    assert_eq!(count(&ledger(&env), "ca-created", None), 6);
    apply_clean(&env, &support::example_inventory());
    // The etcd trust file holds the etcd CAs only: old and new.
    let ca = env.path().join("staged/etcd01/etc/ssl/etcd/ca.crt");
    assert_eq!(pem_blocks(&ca), 2);
    let (ok, text) = openssl(&["crl2pkcs7", "-nocrl", "-certfile", ca.to_str().unwrap()]);
    assert!(ok, "{text}");
    let (_, subjects) = {
        std::fs::write(env.path().join("p7"), &text).unwrap();
        openssl(&[
            "pkcs7",
            "-print_certs",
            "-noout",
            "-in",
            env.path().join("p7").to_str().unwrap(),
        ])
    };
    assert_eq!(subjects.matches("example etcd CA").count(), 4, "{subjects}");
}

#[test]
fn an_etcd_peer_cn_that_would_break_a_config_line_is_refused() {
    let env = TestEnv::new();
    let dir = env.path().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/etcd-peer.toml"),
    )
    .unwrap();
    for (cn, want) in [
        (
            "etcd-peer\\nETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379",
            "cannot be written into a config",
        ),
        ("{node.fqdn}", "differs per member"),
    ] {
        let text = builtin.replace("cn = \"etcd-peer\"", &format!("cn = \"{cn}\""));
        std::fs::write(dir.join("etcd-peer.toml"), text).unwrap();
        let err = env.fails(
            &[
                "--profiles",
                dir.to_str().unwrap(),
                "render",
                "--node",
                "etcd01",
            ],
            1,
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// Runs kpki, asserts success, and keeps what it printed (stdout and stderr) in `seen`.
fn ok_seen(env: &TestEnv, args: &[&str], seen: &mut Vec<u8>) -> String {
    let o = env.run(args);
    assert!(
        o.status.success(),
        "kpki {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    seen.extend_from_slice(&o.stdout);
    seen.extend_from_slice(&o.stderr);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The secretbox keys of a staged EncryptionConfiguration, in order: (name, key bytes).
/// Also checks what the apiserver needs of the file: mode 0600, its kind, secrets
/// encrypted by secretbox first, identity last.
fn encryption_keys(path: &Path) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "{}", path.display());
    let text = std::fs::read_to_string(path).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    assert_eq!(
        doc["apiVersion"].as_str(),
        Some("apiserver.config.k8s.io/v1")
    );
    assert_eq!(doc["kind"].as_str(), Some("EncryptionConfiguration"));
    let entry = &doc["resources"][0];
    assert_eq!(entry["resources"][0].as_str(), Some("secrets"));
    let providers = entry["providers"].as_vec().unwrap();
    assert_eq!(providers.len(), 2, "secretbox, then identity");
    assert!(providers[1]["identity"].as_hash().unwrap().is_empty());
    providers[0]["secretbox"]["keys"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|k| {
            let key = base64::engine::general_purpose::STANDARD
                .decode(k["secret"].as_str().unwrap())
                .unwrap();
            assert_eq!(key.len(), 32, "a secretbox key is 32 bytes");
            (k["name"].as_str().unwrap().to_owned(), key)
        })
        .collect()
}

/// Decrypts an age file of the store with the test's identity, with the age crate.
fn age_decrypt(env: &TestEnv, path: &Path) -> Vec<u8> {
    use std::io::Read;
    use std::str::FromStr;
    let text = std::fs::read_to_string(env.identity()).unwrap();
    let id = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(|l| age::x25519::Identity::from_str(l).unwrap())
        .unwrap();
    let enc = std::fs::read(path).unwrap();
    let dec = age::Decryptor::new(age::armor::ArmoredReader::new(&enc[..])).unwrap();
    let mut out = Vec::new();
    dec.decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Whether any file under `dir` other than `except` holds the key: raw, base64 or hex.
fn files_holding(dir: &Path, key: &[u8], except: &[PathBuf]) -> Vec<PathBuf> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && !except.contains(&e.path().to_path_buf()))
        .filter(|e| {
            let b = std::fs::read(e.path()).unwrap();
            contains(&b, key) || contains(&b, b64.as_bytes()) || contains(&b, hex.as_bytes())
        })
        .map(|e| e.into_path())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_encryption_key_is_staged_only_in_its_config_and_rotates_keeping_the_old_key() {
    use base64::Engine;
    let env = TestEnv::new();
    let inv = support::example_inventory();
    let inv_s = inv.to_str().unwrap();
    let staged = env.path().join("staged");
    let conf =
        |node: &str| staged.join(format!("{node}/etc/kubernetes/ssl/encryption-config.yaml"));
    let confs = || vec![conf("master01"), conf("master02")];
    let mut seen = Vec::new();
    let apply = |seen: &mut Vec<u8>| -> String {
        let out = ok_seen(&env, &["-i", inv_s, "apply", "--out", "staged"], seen);
        let check = ok_seen(
            &env,
            &["-i", inv_s, "render", "--check", "--out", "staged"],
            seen,
        );
        assert!(check.contains(", 0 problem(s)"), "{check}");
        let verify = ok_seen(&env, &["store", "verify"], seen);
        assert!(verify.contains(", 0 problem(s)"), "{verify}");
        out
    };

    // The first apply issues the key and stages one config, the same on both masters.
    let out = apply(&mut seen);
    assert!(
        out.contains("generated encryption-config for cluster  (missing)  secretbox key"),
        "{out}"
    );
    let first = encryption_keys(&conf("master01"));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "key1", "named by its generation");
    assert_eq!(
        std::fs::read(conf("master01")).unwrap(),
        std::fs::read(conf("master02")).unwrap()
    );
    let key1 = first[0].1.clone();
    // Only the masters get it, and no other staged file holds the key.
    let mut holders = files_holding(&staged, &key1, &[]);
    holders.sort();
    assert_eq!(holders, confs(), "the search finds the key where it is");
    assert_eq!(
        files_holding(&staged, &key1, &confs()),
        Vec::<PathBuf>::new()
    );
    assert!(!staged
        .join("worker01/etc/kubernetes/ssl/encryption-config.yaml")
        .exists());
    let manifest =
        std::fs::read_to_string(staged.join("master01/var/lib/kpki/manifest.json")).unwrap();
    assert!(
        manifest.contains(
            "\"path\": \"/etc/kubernetes/ssl/encryption-config.yaml\",\n      \"mode\": \"0600\""
        ),
        "{manifest}"
    );
    // The store holds it age-encrypted, 0600, and nowhere in clear (nor its hash).
    let sealed = env
        .issued("encryption-config", "cluster")
        .join("secretbox.key.age");
    let text = std::fs::read_to_string(&sealed).unwrap();
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sealed).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        age_decrypt(&env, &sealed),
        key1,
        "the staged key is the store's"
    );
    assert_eq!(
        files_holding(&env.store(), &key1, &[]),
        Vec::<PathBuf>::new()
    );
    let sha = ring::digest::digest(&ring::digest::SHA256, &key1);
    let sha_hex: String = sha.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!std::fs::read_to_string(env.store().join("ledger.jsonl"))
        .unwrap()
        .contains(&sha_hex));
    let plan = ok_seen(&env, &["-i", inv_s, "plan", "--out", "staged"], &mut seen);
    assert!(
        plan.contains("keep  encryption-config for cluster (generation 1): ok"),
        "{plan}"
    );
    let ledger_text = ok_seen(
        &env,
        &["ledger", "--profile", "encryption-config"],
        &mut seen,
    );
    assert!(
        ledger_text.contains("encryption-config for cluster  gen 1  missing  secret secretbox (32-byte key)  current"),
        "{ledger_text}"
    );

    // `issue --all --force` renews every certificate and leaves the key alone.
    let out = ok_seen(&env, &["issue", "--all", "--force"], &mut seen);
    assert!(!out.contains("encryption-config"), "{out}");
    assert_eq!(count(&ledger(&env), "issued", Some("encryption-config")), 1);
    apply(&mut seen);
    assert_eq!(encryption_keys(&conf("master02")), first);

    // Rolled when named: the new key encrypts, the old one still decrypts.
    let out = ok_seen(
        &env,
        &[
            "issue",
            "--profile",
            "encryption-config",
            "--all",
            "--force",
        ],
        &mut seen,
    );
    assert!(
        out.contains("generated encryption-config for cluster  (forced)  secretbox key"),
        "{out}"
    );
    apply(&mut seen);
    let both = encryption_keys(&conf("master01"));
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0].0, "key2");
    assert_ne!(both[0].1, key1, "a new key");
    assert_eq!(
        both[1],
        ("key1".to_string(), key1.clone()),
        "the old key after it"
    );
    assert_eq!(
        std::fs::read(conf("master01")).unwrap(),
        std::fs::read(conf("master02")).unwrap()
    );
    let key2 = both[0].1.clone();
    for k in [&key1, &key2] {
        assert_eq!(files_holding(&staged, k, &confs()), Vec::<PathBuf>::new());
        assert_eq!(files_holding(&env.store(), k, &[]), Vec::<PathBuf>::new());
    }

    // Retired: the old key is gone from the config.
    let out = ok_seen(
        &env,
        &["store", "retire", "--profile", "encryption-config"],
        &mut seen,
    );
    assert!(
        out.contains("1 earlier key(s) of encryption-config no longer in the encryption config"),
        "{out}"
    );
    apply(&mut seen);
    assert_eq!(
        encryption_keys(&conf("master02")),
        vec![("key2".to_string(), key2.clone())]
    );
    let states: Vec<String> = ledger(&env)
        .iter()
        .filter(|e| e["event"] == "issued" && e["profile"] == "encryption-config")
        .map(|e| format!("{}:{}", e["generation"], e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, ["1:superseded", "2:current"]);

    // Nothing kpki printed along the way holds either key.
    for k in [&key1, &key2] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(k);
        assert!(!contains(&seen, k) && !contains(&seen, b64.as_bytes()));
    }
}

/// A store audited by its path (a copy, another cluster's) is read as the store it is:
/// its current generations and its trusted CAs, all found, nothing missing.
#[test]
fn a_store_audited_by_its_path_is_read_whole() {
    let env = TestEnv::new();
    apply_clean(&env, &support::example_inventory());
    let copy = env.path().join("pki-copy");
    let copied = Command::new("cp")
        .args(["-a", env.store().to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    for target in [copy.to_str().unwrap(), "pki"] {
        let o = env.run(&["audit", target]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "audit {target}:\n{text}");
        assert!(!text.contains("holds nothing"), "{text}");
    }
}
