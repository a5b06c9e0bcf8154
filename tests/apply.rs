//! `kpki apply` and `kpki plan`: the store is created when missing, what is missing is
//! issued, one tree per node is staged with modes set and a manifest; a second apply
//! issues and rewrites nothing; plan shows the same and changes nothing.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::{snapshot, TestEnv};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn manifest(tree: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(tree.join("var/lib/kpki/manifest.json")).unwrap())
        .unwrap()
}

#[test]
fn first_apply_initialises_issues_and_stages_every_node() {
    let env = TestEnv::new();
    let out = env.path().join("staged");
    let out_s = out.to_str().unwrap();

    // plan on nothing: says what apply would do, creates nothing.
    let plan = env.ok(&["plan", "--out", out_s]);
    assert!(plan.starts_with("init store pki"), "{plan}");
    assert!(plan.contains("issue etcd-peer for etcd01"), "{plan}");
    assert!(
        plan.contains("create etcd01:/etc/ssl/etcd/etcd.key"),
        "{plan}"
    );
    assert!(
        !env.store().exists() && !out.exists(),
        "plan changed nothing"
    );

    let text = env.ok(&["apply", "--out", out_s]);
    assert!(
        text.contains("no store at pki: initialised it as `kpki init` does"),
        "{text}"
    );
    assert!(text.contains("created identity"), "{text}");
    assert!(text.contains("apply: 38 issued; 10 tree(s)"), "{text}");

    // Every node tree: each manifest entry exists with its mode; keys 0600.
    for node in [
        "etcd01",
        "master01",
        "worker03",
        "_cluster",
        "_loadbalancer",
    ] {
        let tree = out.join(node);
        let m = manifest(&tree);
        assert_eq!(m["tree"], node);
        let files = m["files"].as_array().unwrap();
        assert!(!files.is_empty());
        for e in files {
            let path = e["path"].as_str().unwrap();
            let f = tree.join(path.trim_start_matches('/'));
            let want = u32::from_str_radix(e["mode"].as_str().unwrap(), 8).unwrap();
            assert_eq!(mode(&f), want, "{node}:{path}");
            if e["kind"] == "key" || e["kind"] == "secret" {
                assert_eq!(want, 0o600, "{node}:{path}");
            }
            let sha: String =
                ring::digest::digest(&ring::digest::SHA256, &std::fs::read(&f).unwrap())
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
            assert_eq!(e["sha256"], sha, "{node}:{path}");
        }
    }
    let etcd = manifest(&out.join("etcd01"));
    let key = etcd["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/etc/ssl/etcd/etcd.key")
        .unwrap();
    assert_eq!(
        (key["owner"].as_str(), key["group"].as_str()),
        (Some("etcd"), Some("etcd"))
    );

    // A staged certificate is the store's, with the CA appended where the profile says.
    let stored =
        std::fs::read_to_string(env.store().join("issued/etcd-peer/etcd02/1/cert.pem")).unwrap();
    let staged = std::fs::read_to_string(out.join("etcd02/etc/ssl/etcd/etcd.crt")).unwrap();
    assert!(staged.starts_with(&stored) && staged.matches("BEGIN CERTIFICATE").count() == 2);
    let (ok, msg) = support::openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        out.join("etcd02/etc/ssl/etcd/ca.crt").to_str().unwrap(),
        out.join("etcd02/etc/ssl/etcd/etcd.crt").to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");

    // The staged keys are the store's keys: the checker pairs every key with its cert.
    env.ok(&["render", "--check", "--out", out_s]);

    // The operator's kubeconfig embeds the admin certificate; kubectl reads it raw.
    let o = Command::new("kubectl")
        .args(["config", "view", "--raw", "--kubeconfig"])
        .arg(out.join("_cluster/admin.kubeconfig"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = String::from_utf8_lossy(&o.stdout);
    assert!(raw.contains("client-certificate-data:") && raw.contains("client-key-data:"));
    assert_eq!(mode(&out.join("_cluster/admin.kubeconfig")), 0o600);
    // Node kubeconfigs name files.
    let kubelet =
        std::fs::read_to_string(out.join("worker01/etc/kubernetes/kubelet.kubeconfig")).unwrap();
    assert!(!kubelet.contains("-data:"));

    // Second run: nothing issued, nothing rewritten (store and staged trees byte-equal).
    let before = (snapshot(&env.store()), snapshot(&out));
    let mtime = std::fs::metadata(out.join("master01/etc/kubernetes/ssl/apiserver.key"))
        .unwrap()
        .modified()
        .unwrap();
    let text = env.ok(&["apply", "--out", out_s]);
    assert!(text.contains("apply: 0 issued; 10 tree(s)"), "{text}");
    assert!(
        !text.contains("create") && !text.contains("update"),
        "{text}"
    );
    assert_eq!(before, (snapshot(&env.store()), snapshot(&out)));
    assert_eq!(
        mtime,
        std::fs::metadata(out.join("master01/etc/kubernetes/ssl/apiserver.key"))
            .unwrap()
            .modified()
            .unwrap(),
        "an unchanged key is not rewritten"
    );
    let plan = env.ok(&["plan", "--out", out_s]);
    // Every decision is "keep", with its reason; no staged file would change.
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines.len(), 39, "{plan}");
    assert!(
        lines[..38]
            .iter()
            .all(|l| l.starts_with("keep  ") && l.contains(": ok")),
        "{plan}"
    );
    assert!(
        lines[38].starts_with("plan: 0 to issue, 38 to keep; staged files in "),
        "{plan}"
    );
    assert!(plan.trim_end().ends_with(": 189 unchanged"), "{plan}");
}

#[test]
fn apply_restores_drift_and_prunes_what_is_no_longer_staged() {
    let env = TestEnv::new();
    let out = env.path().join("staged");
    let out_s = out.to_str().unwrap();
    env.ok(&["apply", "--out", out_s, "--cluster-signing"]);
    let key = out.join("master01/etc/kubernetes/ssl/cluster-signing-ca.key");
    assert_eq!(mode(&key), 0o600);
    let manifest = std::fs::read_to_string(
        out.join("master01/etc/kubernetes/manifests/kube-controller-manager.yaml"),
    )
    .unwrap();
    assert!(
        manifest.contains("--cluster-signing-key-file=/etc/kubernetes/ssl/cluster-signing-ca.key")
    );
    env.ok(&["render", "--check", "--out", out_s]);

    // Drift: a changed config and a loosened mode are put back.
    let cfg = out.join("worker02/etc/flanneld/options.env");
    std::fs::write(&cfg, "FLANNELD_ETCD_ENDPOINTS=https://10.9.9.9:2379\n").unwrap();
    let crt = out.join("worker02/etc/kubernetes/ssl/kubelet.key");
    std::fs::set_permissions(&crt, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plan = env.ok(&["plan", "--out", out_s, "--cluster-signing"]);
    assert!(
        plan.contains("update worker02:/etc/flanneld/options.env"),
        "{plan}"
    );
    assert!(
        plan.contains("chmod worker02:/etc/kubernetes/ssl/kubelet.key"),
        "{plan}"
    );
    let text = env.ok(&["apply", "--out", out_s, "--cluster-signing"]);
    assert!(
        text.contains("update worker02:/etc/flanneld/options.env"),
        "{text}"
    );
    assert_eq!(mode(&crt), 0o600);

    // Without --cluster-signing the CA key leaves the staged trees.
    let text = env.ok(&["apply", "--out", out_s]);
    assert!(
        text.contains("remove master01:/etc/kubernetes/ssl/cluster-signing-ca.key"),
        "{text}"
    );
    assert!(!key.exists());
    let manifest = std::fs::read_to_string(
        out.join("master01/etc/kubernetes/manifests/kube-controller-manager.yaml"),
    )
    .unwrap();
    assert!(!manifest.contains("cluster-signing"));
    env.ok(&["render", "--check", "--out", out_s]);
}

#[test]
fn apply_refuses_a_broken_template_before_writing_anything() {
    let env = TestEnv::new();
    let tpl = env.path().join("tpl/etcd");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(tpl.join("options.env"), "ETCD_NAME={{node.nmae}}\n").unwrap();
    let out = env.path().join("staged");
    let err = env.fails(
        &[
            "apply",
            "--out",
            out.to_str().unwrap(),
            "--templates",
            env.path().join("tpl").to_str().unwrap(),
        ],
        1,
    );
    assert!(
        err.contains("options.env:1: unknown name '{{node.nmae}}'"),
        "{err}"
    );
    assert!(!env.store().exists() && !out.exists(), "nothing written");
}

/// A staged tree is laid out like the node's `/`: its directories are 0755 as the node's
/// own are, so `rsync -a staged/etcd01/ root@etcd01:/` changes no directory's mode; keys
/// stay 0600 and the directory holding the trees is 0700. A tree staged by an older kpki
/// with 0700 directories is corrected.
#[test]
fn staged_directories_have_the_modes_of_a_node() {
    let env = TestEnv::new();
    let out = env.path().join("staged");
    let out_s = out.to_str().unwrap();
    env.ok(&["apply", "--out", out_s]);
    assert_eq!(mode(&out), 0o700);
    for d in [
        "etcd01",
        "etcd01/etc",
        "etcd01/etc/ssl",
        "etcd01/etc/ssl/etcd",
        "etcd01/var/lib/kpki",
    ] {
        assert_eq!(mode(&out.join(d)), 0o755, "{d}");
    }
    assert_eq!(mode(&out.join("etcd01/etc/ssl/etcd/etcd.key")), 0o600);
    for d in ["etcd01", "etcd01/etc/ssl/etcd"] {
        std::fs::set_permissions(out.join(d), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::remove_file(out.join("etcd01/etc/etcd/options.env")).unwrap();
    env.ok(&["apply", "--out", out_s]);
    for d in ["etcd01", "etcd01/etc/ssl/etcd"] {
        assert_eq!(mode(&out.join(d)), 0o755, "{d} corrected");
    }
    // issue --out lays its files out the same way.
    env.ok(&[
        "issue",
        "--force",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--out",
        "exp",
    ]);
    assert_eq!(mode(&env.path().join("exp")), 0o700);
    assert_eq!(
        mode(&env.path().join("exp/worker01/etc/kubernetes/ssl")),
        0o755
    );
    assert_eq!(
        mode(
            &env.path()
                .join("exp/worker01/etc/kubernetes/ssl/kubelet.key")
        ),
        0o600
    );
}

/// A kpki killed while staging leaves temporary files, maybe holding plaintext keys:
/// `render --check` reports them, and the next `apply` removes them.
#[test]
fn temporary_files_of_a_killed_run_are_reported_and_removed() {
    let env = TestEnv::new();
    let out = env.path().join("staged");
    let out_s = out.to_str().unwrap();
    env.ok(&["apply", "--out", out_s]);
    // PIDs stop far below this one (pid_max is at most 2^22): its process is gone.
    let left = out.join("etcd01/etc/ssl/etcd/.etcd.key.kpki-tmp.999999999.3");
    std::fs::write(&left, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let o = env.run(&["render", "--check", "--out", out_s]);
    assert_eq!(o.status.code(), Some(2));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(
            ".etcd.key.kpki-tmp.999999999.3: a temporary file of an interrupted kpki run"
        ),
        "{text}"
    );
    env.ok(&["apply", "--out", out_s]);
    assert!(!left.exists());
    env.ok(&["render", "--check", "--out", out_s]);
}
