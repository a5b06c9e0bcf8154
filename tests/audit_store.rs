//! `kpki audit` on what kpki itself makes: the example cluster's store, the tree
//! `kpki apply` stages, and `--configs` on a staged node, clean and then with one thing
//! broken at a time (a referenced file removed, another node's certificate installed, a
//! key left readable, an issuance missing from the store).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::TestEnv;

struct Cluster {
    env: TestEnv,
    staged: PathBuf,
}

fn cluster() -> Cluster {
    let env = TestEnv::new();
    let staged = env.path().join("staged");
    env.ok(&["apply", "--out", staged.to_str().unwrap()]);
    Cluster { env, staged }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dst = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

impl Cluster {
    fn audit(&self, args: &[&str]) -> Output {
        let mut a = vec!["audit"];
        a.extend_from_slice(args);
        self.env.run(&a)
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut a = vec!["--format", "json"];
        a.extend_from_slice(args);
        let o = self.audit(&a);
        let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap(), v)
    }

    /// A copy of the staged tree to break things in.
    fn copy(&self, name: &str) -> PathBuf {
        let dst = self.env.path().join(name);
        copy_dir(&self.staged, &dst);
        dst
    }
}

fn kinds(j: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_store_and_the_staged_tree_audit_clean_with_nodes_and_profiles() {
    let c = cluster();
    // Without a path: the store.
    let (code, j) = c.json(&[]);
    assert_eq!(code, 0, "{j}");
    let certs = j["certificates"].as_array().unwrap();
    assert_eq!(
        certs.len(),
        39,
        "36 issued certificates and the kubernetes, etcd and front-proxy CAs"
    );
    assert_eq!(
        kinds(&j)
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        Vec::<&str>::new(),
        "a cluster issued in one night is staggered: no expiry cliff, nothing else: {}",
        j["findings"]
    );
    let peer = certs
        .iter()
        .find(|c| c["path"] == "pki/issued/etcd-peer/etcd01/1/cert.pem")
        .unwrap();
    assert_eq!(peer["node"], "etcd01");
    assert_eq!(peer["profile"], "etcd-peer");
    assert_eq!(peer["chain"]["status"], "trusted");
    assert_eq!(peer["chain"]["ca"], "etcd");
    assert_eq!(peer["state"], "ok");
    let ca_path = c.env.ca_cert("etcd");
    let ca_rel = ca_path
        .strip_prefix(c.env.path())
        .unwrap()
        .to_str()
        .unwrap();
    let ca = certs.iter().find(|c| c["path"] == ca_rel).unwrap();
    assert_eq!(ca["chain"]["status"], "anchor");

    // The staged tree: every node's certificates, with their keys, by the profiles.
    let staged = c.staged.to_str().unwrap();
    let (code, j) = c.json(&[staged]);
    assert_eq!(code, 0, "{}", j["findings"]);
    let certs = j["certificates"].as_array().unwrap();
    let kubelet = certs
        .iter()
        .find(|x| {
            x["path"]
                .as_str()
                .unwrap()
                .ends_with("worker01/etc/kubernetes/ssl/kubelet.crt")
        })
        .unwrap();
    assert_eq!(kubelet["node"], "worker01");
    assert_eq!(kubelet["profile"], "kubelet");
    assert_eq!(kubelet["key"]["matches"], true);
    assert_eq!(kubelet["key"]["mode"], "0600");
    let admin: Vec<&Value> = certs
        .iter()
        .filter(|x| x["encoding"] == "kubeconfig")
        .collect();
    assert!(
        admin.iter().any(|x| x["embedded_kind"] == "user"),
        "the operator's admin kubeconfig embeds its certificate"
    );

    // The table names node/profile and says the exit status.
    let o = c.audit(&[staged]);
    let t = String::from_utf8(o.stdout).unwrap();
    assert!(t.contains("NODE/PROFILE"), "{t}");
    assert!(t.contains("etcd01/etcd-peer"), "{t}");
    assert!(t.trim_end().ends_with("exit status 0"), "{t}");

    // Prometheus: node and profile labels, absolute file paths (cron runs anywhere),
    // accepted by promtool where installed.
    let o = c.audit(&["--format", "prometheus"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("x509_cert_not_after{")
            && l.contains("node=\"etcd01\"")
            && l.contains("profile=\"etcd-peer\"")
            && l.contains("subject_CN=\"etcd-peer\"")
            && l.contains("filepath=\"/")),
        "{text}"
    );
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok()
    {
        let f = c.env.path().join("store.prom");
        std::fs::write(&f, &text).unwrap();
        let o = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&f).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn configs_audit_exactly_the_referenced_files_and_report_a_missing_one() {
    let c = cluster();
    let node = c.staged.join("etcd01");
    let (code, j) = c.json(&["--configs", node.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", j["findings"]);
    let mut paths: Vec<String> = j["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let p = x["path"].as_str().unwrap();
            format!(
                "{}#{}",
                p.strip_prefix(node.to_str().unwrap()).unwrap(),
                x["index"]
            )
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/etc/ssl/etcd/ca.crt#0",
            "/etc/ssl/etcd/etcd.crt#0",
            "/etc/ssl/etcd/etcd.crt#1"
        ],
        "exactly what etcd's options.env names"
    );
    assert_eq!(j["summary"]["sources"][0]["kind"], "configs");

    // Remove the key etcd is told to use.
    let broken = c.copy("no-key");
    let key = broken.join("etcd01/etc/ssl/etcd/etcd.key");
    std::fs::remove_file(&key).unwrap();
    let (code, j) = c.json(&["--configs", broken.join("etcd01").to_str().unwrap()]);
    assert_eq!(code, 2);
    let f = &j["findings"].as_array().unwrap();
    let missing: Vec<&Value> = f.iter().filter(|f| f["kind"] == "missing").collect();
    assert_eq!(
        missing.len(),
        1,
        "one finding, not one per way of noticing: {f:?}"
    );
    assert_eq!(missing[0]["path"], key.to_str().unwrap());
    let m = missing[0]["message"].as_str().unwrap();
    assert!(
        m.contains("etcd01:/etc/etcd/options.env") && m.contains("ETCD_"),
        "names the config and its key: {m}"
    );
    // The whole staged cluster, through the configs: the same finding.
    let (code, j) = c.json(&["--configs", broken.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(kinds(&j).contains(&("missing".into(), key.display().to_string())));
}

#[test]
fn wrong_certificates_keys_and_missing_issuances_are_findings() {
    let c = cluster();
    let t = c.copy("tampered");
    // worker01 gets worker02's serving certificate; master01's apiserver key is 0644.
    std::fs::copy(
        t.join("worker02/etc/kubernetes/ssl/kubelet-serving.crt"),
        t.join("worker01/etc/kubernetes/ssl/kubelet-serving.crt"),
    )
    .unwrap();
    let key = t.join("master01/etc/kubernetes/ssl/apiserver.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, j) = c.json(&[t.to_str().unwrap()]);
    assert_eq!(code, 2);
    let serving = t
        .join("worker01/etc/kubernetes/ssl/kubelet-serving.crt")
        .display()
        .to_string();
    let k = kinds(&j);
    for kind in ["key_mismatch", "san_missing", "subject_mismatch"] {
        assert!(
            k.contains(&(kind.into(), serving.clone())),
            "{kind} on {serving}: {k:?}"
        );
    }
    assert!(
        k.contains(&("key_mode".into(), key.display().to_string())),
        "{k:?}"
    );
    let san = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "san_missing")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        san.contains("IP:192.168.2.1") && san.contains("DNS:worker01"),
        "{san}"
    );

    // An issuance missing from the store.
    std::fs::remove_file(c.env.path().join("pki/issued/kubelet/worker03/1/cert.pem")).unwrap();
    let (code, j) = c.json(&[]);
    assert_eq!(code, 2);
    assert!(
        kinds(&j).contains(&(
            "missing".into(),
            "pki/issued/kubelet/worker03/1/cert.pem".into()
        )),
        "{}",
        j["findings"]
    );
}
