//! `kpki render --check` catches each kind of mismatch, planted one at a time into a copy
//! of a tree `kpki apply` staged: a config naming a missing file, a key that does not
//! match its certificate, a certificate from another CA, an etcd peer certificate whose
//! SANs lack the peer URL's IP, and a client certificate without clientAuth. Each
//! problem is one line naming the config, the key and what is wrong; exit status 2.
//! The same trees, loaded into memory, get exactly the same findings from `check_tree`
//! as from `check` on disk, so a tree can be judged before it is written. And `audit
//! --configs`, reading the same tree through the same config reader and verifier, reports
//! each problem `render --check` prints, and no other from the configs.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use support::TestEnv;

/// One staged cluster for all cases (as `kpki apply` stages the example cluster).
struct Staged {
    env: TestEnv,
    out: PathBuf,
}

impl Staged {
    fn new() -> Staged {
        let env = TestEnv::new();
        let out = env.path().join("staged");
        env.ok(&["apply", "--out", out.to_str().unwrap()]);
        Staged { env, out }
    }

    /// A fresh copy of one node's tree, to plant a problem in.
    fn copy(&self, node: &str, case: &str) -> PathBuf {
        let dst = self.env.path().join("cases").join(case);
        copy_dir(&self.out.join(node), &dst);
        dst
    }

    /// Runs `render --check --root` on a tree: (exit code, stdout).
    fn check(&self, root: &Path) -> (i32, String) {
        let o = self
            .env
            .run(&["render", "--check", "--root", root.to_str().unwrap()]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// Issues an ad-hoc certificate from this store and returns (cert, key) paths.
    fn adhoc(&self, profile: &str, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let out = self.env.path().join(format!("adhoc-{profile}"));
        let mut args = vec![
            "issue",
            "--profile",
            profile,
            "--cn",
            cn,
            "--out",
            out.to_str().unwrap(),
        ];
        for s in sans {
            args.extend(["--san", s]);
        }
        self.env.ok(&args);
        pair(&out)
    }
}

/// The certificate and key files of an export directory `OUT/<target>/`.
fn pair(out: &Path) -> (PathBuf, PathBuf) {
    let dir = std::fs::read_dir(out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut cert = None;
    let mut key = None;
    // Each file is at its install path under OUT/<target>/.
    for e in walkdir::WalkDir::new(&dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
    {
        let p = e.into_path();
        let n = p.file_name().unwrap().to_str().unwrap().to_owned();
        if n.ends_with(".key") {
            key = Some(p);
        } else if n.ends_with(".crt") && n != "ca.crt" && !n.ends_with("-ca.crt") {
            cert = Some(p);
        }
    }
    (cert.unwrap(), key.unwrap())
}

fn copy_dir(src: &Path, dst: &Path) {
    for e in walkdir::WalkDir::new(src) {
        let e = e.unwrap();
        let to = dst.join(e.path().strip_prefix(src).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

fn replace(dst: &Path, src: &Path) {
    std::fs::copy(src, dst).unwrap();
}

fn assert_finds(staged: &Staged, root: &Path, want: &[&str]) {
    let (code, out) = staged.check(root);
    assert_eq!(code, 2, "a planted problem exits 2:\n{out}");
    for w in want {
        assert!(
            out.lines().any(|l| l.contains(w)),
            "no line contains {w:?}:\n{out}"
        );
    }
}

#[test]
fn check_catches_each_planted_problem() {
    let s = Staged::new();

    // The staged trees as apply wrote them are consistent.
    let o = s
        .env
        .run(&["render", "--check", "--out", s.out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("10 tree(s)") && text.contains(", 0 problem(s)"),
        "{text}"
    );

    // 1. A config naming a missing file.
    let root = s.copy("worker01", "missing");
    let env = root.join("etc/flanneld/options.env");
    let t = std::fs::read_to_string(&env).unwrap().replace(
        "FLANNELD_ETCD_CAFILE=/etc/ssl/etcd/ca.crt",
        "FLANNELD_ETCD_CAFILE=/etc/ssl/etcd/etcd-ca.crt",
    );
    std::fs::write(&env, t).unwrap();
    assert_finds(
        &s,
        &root,
        &["/etc/flanneld/options.env: FLANNELD_ETCD_CAFILE: /etc/ssl/etcd/etcd-ca.crt does not exist"],
    );

    // 1b. Reached through kube-proxy's KubeProxyConfiguration: its kubeconfig's key.
    let root = s.copy("worker01", "kube-proxy");
    std::fs::remove_file(root.join("etc/kubernetes/ssl/kube-proxy.key")).unwrap();
    assert_finds(
        &s,
        &root,
        &["/etc/kubernetes/kube-proxy.kubeconfig: users[system:kube-proxy].user.client-key: /etc/kubernetes/ssl/kube-proxy.key does not exist"],
    );

    // 2. A key that does not match its certificate.
    let root = s.copy("worker01", "mismatch");
    replace(
        &root.join("etc/kubernetes/ssl/kubelet.key"),
        &root.join("etc/kubernetes/ssl/kube-proxy.key"),
    );
    assert_finds(
        &s,
        &root,
        &["/etc/kubernetes/kubelet.kubeconfig: users[system:node:worker01].user.client-key: /etc/kubernetes/ssl/kubelet.key does not match the certificate /etc/kubernetes/ssl/kubelet.crt"],
    );

    // 3. A certificate (with its own key) from another CA.
    let other = s.env.path().join("other-pki");
    s.env.ok(&["--store", other.to_str().unwrap(), "init"]);
    let foreign = s.env.path().join("foreign");
    s.env.ok(&[
        "--store",
        other.to_str().unwrap(),
        "issue",
        "--profile",
        "etcd-client",
        "--node",
        "worker01",
        "--out",
        foreign.to_str().unwrap(),
    ]);
    let (cert, key) = pair(&foreign);
    let root = s.copy("worker01", "foreign");
    replace(&root.join("etc/ssl/etcd/etcd-client.crt"), &cert);
    replace(&root.join("etc/ssl/etcd/etcd-client.key"), &key);
    let (_, out) = s.check(&root);
    assert_finds(
        &s,
        &root,
        &["/etc/flanneld/options.env: FLANNELD_ETCD_CERTFILE: /etc/ssl/etcd/etcd-client.crt (issuer"],
    );
    assert!(
        out.contains("does not chain to a CA in /etc/ssl/etcd/ca.crt (FLANNELD_ETCD_CAFILE)"),
        "{out}"
    );
    assert!(
        !out.contains("does not match"),
        "the foreign key matches its own certificate: {out}"
    );

    // 4. An etcd peer certificate whose SANs lack the peer URL's IP.
    let (cert, key) = s.adhoc(
        "etcd-peer",
        "etcd01.example.com",
        &["etcd01.example.com", "127.0.0.1"],
    );
    let root = s.copy("etcd01", "peer-sans");
    replace(&root.join("etc/ssl/etcd/etcd.crt"), &cert);
    replace(&root.join("etc/ssl/etcd/etcd.key"), &key);
    assert_finds(
        &s,
        &root,
        &["/etc/etcd/options.env: ETCD_PEER_CERT_FILE: /etc/ssl/etcd/etcd.crt lacks SAN IP:192.168.0.1, which ETCD_LISTEN_PEER_URLS and ETCD_INITIAL_ADVERTISE_PEER_URLS names"],
    );

    // 5. A client certificate without clientAuth (a serving certificate in its place).
    let (cert, key) = s.adhoc("kubelet-serving", "system:node:worker01", &["worker01"]);
    let root = s.copy("worker01", "no-client-auth");
    replace(&root.join("etc/kubernetes/ssl/kubelet.crt"), &cert);
    replace(&root.join("etc/kubernetes/ssl/kubelet.key"), &key);
    let (_, out) = s.check(&root);
    assert_finds(
        &s,
        &root,
        &["/etc/kubernetes/kubelet.kubeconfig: users[system:node:worker01].user.client-certificate: /etc/kubernetes/ssl/kubelet.crt lacks extended key usage clientAuth (it has serverAuth)"],
    );
    assert_eq!(
        out.lines().filter(|l| l.contains(" problem(s)")).count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.lines().count(),
        2,
        "one line for the one problem, one summary:\n{out}"
    );
}

#[test]
fn check_reports_loose_key_modes_and_needs_a_tree() {
    let s = Staged::new();
    let root = s.copy("master01", "modes");
    let key = root.join("etc/kubernetes/ssl/apiserver.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_finds(
        &s,
        &root,
        &["/etc/kubernetes/manifests/kube-apiserver.yaml: --tls-private-key-file: /etc/kubernetes/ssl/apiserver.key is readable by group or others (mode 0644)"],
    );
    let err = s.env.fails(&["render", "--check"], 1);
    assert!(err.contains("'--check' requires '--out DIR'"), "{err}");
    let err = s.env.fails(
        &[
            "render",
            "--check",
            "--out",
            s.out.to_str().unwrap(),
            "--node",
            "nope",
        ],
        1,
    );
    assert!(err.contains("no such staged or installed tree"), "{err}");
}

/// Every file of a tree on disk, in memory: install path `/` + its path under `root`,
/// its bytes and its mode.
fn mem_tree(root: &Path) -> kpki::render::tree::MemTree {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let install = Path::new("/").join(e.path().strip_prefix(root).unwrap());
            let mode = e.metadata().unwrap().permissions().mode();
            let bytes = zeroize::Zeroizing::new(std::fs::read(e.path()).unwrap());
            (install, bytes, mode)
        })
        .collect()
}

/// The findings of `check` on disk, after asserting `check_tree` finds exactly the same
/// in memory.
fn same_in_memory(root: &Path) -> Vec<String> {
    use kpki::render::check;
    let now = time::OffsetDateTime::now_utc();
    let disk = check::check(root, now);
    let mem = check::check_tree(&mem_tree(root), now);
    assert_eq!(disk, mem, "{}", root.display());
    disk.iter().map(ToString::to_string).collect()
}

fn assert_has(findings: &[String], want: &str) {
    assert!(
        findings.iter().any(|f| f.contains(want)),
        "no finding contains {want:?}: {findings:#?}"
    );
}

#[test]
fn check_tree_in_memory_finds_what_check_finds_on_disk() {
    let s = Staged::new();
    use std::os::unix::fs::PermissionsExt;
    let chmod =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();

    // Every staged tree as apply wrote it: nothing, both ways.
    let mut trees = 0;
    for e in std::fs::read_dir(&s.out).unwrap() {
        let root = e.unwrap().path();
        assert_eq!(
            same_in_memory(&root),
            Vec::<String>::new(),
            "{}",
            root.display()
        );
        trees += 1;
    }
    assert_eq!(trees, 10);

    // A key that does not match its certificate.
    let root = s.copy("worker01", "mem-mismatch");
    replace(
        &root.join("etc/kubernetes/ssl/kubelet.key"),
        &root.join("etc/kubernetes/ssl/kube-proxy.key"),
    );
    assert_has(
        &same_in_memory(&root),
        "users[system:node:worker01].user.client-key: /etc/kubernetes/ssl/kubelet.key does not match the certificate /etc/kubernetes/ssl/kubelet.crt",
    );

    // A certificate (with its own key) from another CA.
    let other = s.env.path().join("other-pki");
    s.env.ok(&["--store", other.to_str().unwrap(), "init"]);
    let foreign = s.env.path().join("foreign");
    s.env.ok(&[
        "--store",
        other.to_str().unwrap(),
        "issue",
        "--profile",
        "etcd-client",
        "--node",
        "worker01",
        "--out",
        foreign.to_str().unwrap(),
    ]);
    let (cert, key) = pair(&foreign);
    let root = s.copy("worker01", "mem-foreign");
    replace(&root.join("etc/ssl/etcd/etcd-client.crt"), &cert);
    replace(&root.join("etc/ssl/etcd/etcd-client.key"), &key);
    assert_has(
        &same_in_memory(&root),
        "does not chain to a CA in /etc/ssl/etcd/ca.crt (FLANNELD_ETCD_CAFILE)",
    );

    // A missing certificate, and a missing config that another config names.
    let root = s.copy("worker01", "mem-missing");
    std::fs::remove_file(root.join("etc/kubernetes/ssl/kubelet.crt")).unwrap();
    std::fs::remove_file(root.join("etc/kubernetes/kubelet-config.yaml")).unwrap();
    let f = same_in_memory(&root);
    assert_has(
        &f,
        "client-certificate: /etc/kubernetes/ssl/kubelet.crt does not exist",
    );
    assert_has(
        &f,
        "--config: /etc/kubernetes/kubelet-config.yaml does not exist",
    );

    // A config that does not parse.
    let root = s.copy("worker01", "mem-garbage");
    std::fs::write(
        root.join("etc/kubernetes/kube-proxy.kubeconfig"),
        "users: [",
    )
    .unwrap();
    assert_has(
        &same_in_memory(&root),
        "/etc/kubernetes/kube-proxy.kubeconfig: (file): not valid YAML",
    );

    // A key, and a kubeconfig embedding one, readable by others.
    let root = s.copy("master01", "mem-modes");
    chmod(&root.join("etc/kubernetes/ssl/apiserver.key"), 0o644);
    assert_has(
        &same_in_memory(&root),
        "--tls-private-key-file: /etc/kubernetes/ssl/apiserver.key is readable by group or others (mode 0644)",
    );
    let root = s.copy("_cluster", "mem-embedded-mode");
    chmod(&root.join("admin.kubeconfig"), 0o644);
    assert_has(
        &same_in_memory(&root),
        "/admin.kubeconfig (which embeds a private key) is readable by group or others (mode 0644)",
    );
}

/// The certificate and key files a report's lines name, as install paths. CA files are
/// left out: both reports name them as context (what a certificate should chain to).
fn pki_files_named(text: &str, root: &Path) -> std::collections::BTreeSet<String> {
    let root = root.to_str().unwrap();
    text.lines()
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || "(),;".contains(c)))
        .map(|w| w.trim_end_matches(':'))
        .map(|w| w.strip_prefix(root).unwrap_or(w))
        .filter(|w| w.starts_with("/etc/") && (w.ends_with(".crt") || w.ends_with(".key")))
        .filter(|w| !w.ends_with("ca.crt"))
        .map(str::to_owned)
        .collect()
}

/// The problems of a `render --check` report: (config, key, problem) per line.
fn check_problems(text: &str, root: &Path) -> BTreeSet<(String, String, String)> {
    let prefix = format!("{}: ", root.display());
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| {
            let (config, rest) = l.split_once(": ").unwrap();
            let (key, problem) = rest.split_once(": ").unwrap();
            (config.to_owned(), key.to_owned(), problem.to_owned())
        })
        .collect()
}

/// `render --check` and `audit --configs` run the same verifier over the same config
/// reader: on each planted problem both fail, every problem `render --check` prints is an
/// audit finding naming the same config and key with the same text, the audit has no
/// finding from the configs that `render --check` lacks, and both name the same
/// certificate and key files. The cases cover each reader they share: PEM and keys,
/// kubeconfig YAML, and files that are not regular or not sane.
#[test]
fn render_check_and_audit_configs_find_the_same_problems() {
    use std::os::unix::fs::PermissionsExt;
    let s = Staged::new();
    let (foreign_cert, foreign_key) = {
        let other = s.env.path().join("other-pki");
        s.env.ok(&["--store", other.to_str().unwrap(), "init"]);
        let out = s.env.path().join("foreign");
        s.env.ok(&[
            "--store",
            other.to_str().unwrap(),
            "issue",
            "--profile",
            "kube-proxy",
            "--node",
            "worker01",
            "--out",
            out.to_str().unwrap(),
        ]);
        let d = out.join("worker01/etc/kubernetes/ssl");
        (d.join("kube-proxy.crt"), d.join("kube-proxy.key"))
    };
    let ssl = |r: &Path, f: &str| r.join("etc/kubernetes/ssl").join(f);
    type Plant = Box<dyn Fn(&Path)>;
    // (case, what to plant, the audit's exit status: 1 when its findings only warn)
    let cases: Vec<(&str, Plant, i32)> = vec![
        (
            "missing",
            Box::new(|r: &Path| {
                std::fs::remove_file(r.join("etc/ssl/etcd/etcd-client.crt")).unwrap()
            }),
            2,
        ),
        (
            "mismatch",
            Box::new(move |r: &Path| replace(&ssl(r, "kubelet.key"), &ssl(r, "kube-proxy.key"))),
            2,
        ),
        (
            "mode",
            Box::new(move |r: &Path| {
                std::fs::set_permissions(
                    ssl(r, "kube-proxy.key"),
                    std::fs::Permissions::from_mode(0o644),
                )
                .unwrap()
            }),
            2,
        ),
        (
            "foreign",
            Box::new(move |r: &Path| {
                replace(&ssl(r, "kube-proxy.crt"), &foreign_cert);
                replace(&ssl(r, "kube-proxy.key"), &foreign_key);
            }),
            2,
        ),
        (
            "truncated",
            Box::new(move |r: &Path| {
                let pem = std::fs::read(ssl(r, "kubelet.crt")).unwrap();
                std::fs::write(ssl(r, "kubelet.crt"), &pem[..pem.len() / 2]).unwrap();
            }),
            2,
        ),
        (
            "leaf-as-ca",
            Box::new(move |r: &Path| replace(&ssl(r, "ca.crt"), &ssl(r, "kubelet-serving.crt"))),
            2,
        ),
        (
            "bad-base64",
            Box::new(|r: &Path| {
                std::fs::write(
                    r.join("etc/kubernetes/kube-proxy.kubeconfig"),
                    "apiVersion: v1\nkind: Config\nusers:\n- name: p\n  user:\n    client-certificate-data: \"!!!\"\n",
                )
                .unwrap()
            }),
            2,
        ),
        (
            "fifo",
            Box::new(|r: &Path| {
                let k = r.join("etc/kubernetes/kubelet.kubeconfig");
                std::fs::remove_file(&k).unwrap();
                let o = std::process::Command::new("mkfifo")
                    .arg(&k)
                    .output()
                    .unwrap();
                assert!(o.status.success());
            }),
            1,
        ),
        (
            "dev-zero",
            Box::new(move |r: &Path| {
                std::fs::remove_file(ssl(r, "kube-proxy.crt")).unwrap();
                std::os::unix::fs::symlink("/dev/zero", ssl(r, "kube-proxy.crt")).unwrap();
            }),
            1,
        ),
        (
            "alias-bomb",
            Box::new(|r: &Path| {
                let mut y = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
                for (c, p) in ('b'..='i').zip('a'..) {
                    y.push_str(&format!(
                        "{c}: &{c} [{}]\n",
                        vec![format!("*{p}"); 9].join(", ")
                    ));
                }
                std::fs::write(r.join("etc/kubernetes/kubelet.kubeconfig"), y).unwrap();
            }),
            2,
        ),
    ];
    for (case, plant, audit_code) in cases {
        let root = s.copy("worker01", &format!("same-{case}"));
        plant(&root);
        let (code, check) = s.check(&root);
        assert_eq!(code, 2, "{case}: render --check:\n{check}");
        let o = s.env.run(&[
            "audit",
            "--configs",
            root.to_str().unwrap(),
            "--node",
            "worker01",
            "--format",
            "json",
        ]);
        let audit: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{case}: {e}: {}", String::from_utf8_lossy(&o.stderr)));
        let findings = audit["findings"].as_array().unwrap();
        let shown = serde_json::to_string_pretty(findings).unwrap();
        assert_eq!(
            o.status.code(),
            Some(audit_code),
            "{case}: audit --configs:\n{shown}"
        );
        // The verifier's findings, by (config, key): the message ends with the problem.
        let verified: Vec<(String, String, &str)> = findings
            .iter()
            .flat_map(|f| {
                let message = f["message"].as_str().unwrap();
                f["named_by"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |n| {
                        (
                            n["config"].as_str().unwrap().to_owned(),
                            n["key"].as_str().unwrap().to_owned(),
                            message,
                        )
                    })
            })
            .collect();
        let problems = check_problems(&check, &root);
        assert!(!problems.is_empty(), "{case}: {check}");
        for (config, key, problem) in &problems {
            assert!(
                verified
                    .iter()
                    .any(|(c, k, m)| c == config && k == key && m.ends_with(problem.as_str())),
                "{case}: the audit lacks {config}: {key}: {problem}\n{shown}"
            );
        }
        for (config, key, message) in &verified {
            assert!(
                problems
                    .iter()
                    .any(|(c, k, p)| c == config && k == key && message.ends_with(p.as_str())),
                "{case}: render --check lacks {config}: {key}: {message}\n{check}"
            );
        }
        // One finding per file and kind: the walk does not repeat what the verifier said.
        let mut seen = BTreeSet::new();
        for f in findings {
            assert!(
                seen.insert((f["path"].to_string(), f["kind"].to_string())),
                "{case}: two {} findings about {}:\n{shown}",
                f["kind"],
                f["path"]
            );
        }
        // And the certificate and key files both name, in all their findings.
        let audit_text: String = findings
            .iter()
            .map(|f| format!("{}: {}\n", f["path"].as_str().unwrap_or(""), f["message"]))
            .collect();
        let (a, b) = (
            pki_files_named(&check, &root),
            pki_files_named(&audit_text, &root),
        );
        assert_eq!(
            a, b,
            "{case}:\nrender --check:\n{check}\naudit --configs:\n{shown}"
        );
    }
}

/// A daemon is declared once (`kpki::render::daemons`): a declaration is all
/// `render --check` needs to read its unit and check what its settings name. Here a
/// registry kpki knows nothing else about, run by a unit, serving with a certificate.
#[test]
fn a_daemon_declaration_is_enough_for_the_check() {
    use kpki::render::check::check_tree_with;
    use kpki::render::daemons::{Daemon, Hosts, Names, Runs, Setting, DAEMONS};
    use kpki::render::refs::{Component, Usage};
    use kpki::render::tree::MemTree;
    use zeroize::Zeroizing;

    let s = Staged::new();
    let (cert, key) = s.adhoc("kubelet-serving", "registry", &["registry.example.com"]);
    let ca = s.out.join("worker01/etc/kubernetes/ssl/ca.crt");
    let setting = |key, names, usage, chains_to, hosts| Setting {
        key,
        names,
        usage,
        identity: "serving",
        chains_to,
        hosts,
        usage_if: None,
    };
    let registry = Daemon {
        component: Component("registry"),
        binary: "registry",
        env_prefix: None,
        env_files: &[],
        settings: Box::leak(Box::new([
            setting(
                "tls-cert",
                Names::Cert,
                Usage::Server,
                Some("tls-ca"),
                Hosts::Addresses(&["advertise"]),
            ),
            setting("tls-key", Names::Key, Usage::Server, None, Hosts::None),
            setting("tls-ca", Names::Ca, Usage::Trust, None, Hosts::None),
        ])),
        configs: &[],
        runs: Runs::Unit("registry.service"),
        files: &[],
    };
    let mut daemons = DAEMONS.to_vec();
    daemons.push(registry);
    let unit = |advertise: &str| {
        format!(
            "[Service]\nExecStart=/usr/local/bin/registry --tls-cert=/etc/registry/tls.crt --tls-key=/etc/registry/tls.key --tls-ca=/etc/registry/ca.crt --advertise={advertise}\n"
        )
    };
    let tree = |advertise: &str, key_mode: u32| -> MemTree {
        let read = |p: &Path| Zeroizing::new(std::fs::read(p).unwrap());
        [
            (
                PathBuf::from("/etc/systemd/system/registry.service"),
                Zeroizing::new(unit(advertise).into_bytes()),
                0o644,
            ),
            (PathBuf::from("/etc/registry/tls.crt"), read(&cert), 0o644),
            (PathBuf::from("/etc/registry/tls.key"), read(&key), key_mode),
            (PathBuf::from("/etc/registry/ca.crt"), read(&ca), 0o644),
        ]
        .into_iter()
        .collect()
    };
    let now = time::OffsetDateTime::now_utc();
    // Good: nothing to say, with the declaration; without it the unit is not read at all.
    assert_eq!(
        check_tree_with(&tree("registry.example.com", 0o600), &daemons, now),
        vec![]
    );
    // The declared settings are checked: the SAN the advertise address needs, the key mode.
    let bad = tree("other.example.com", 0o644);
    let found: Vec<String> = check_tree_with(&bad, &daemons, now)
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert!(
        found
            .iter()
            .any(|f| f.contains("--tls-cert") && f.contains("other.example.com")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("--tls-key") && f.contains("mode 0644")),
        "{found:#?}"
    );
    assert_eq!(
        check_tree_with(&bad, DAEMONS, now),
        vec![],
        "undeclared: not read"
    );
}

/// kube-apiserver's `--encryption-provider-config` is a reference of its own kind: the
/// file must be there, 0600 or tighter, and an EncryptionConfiguration whose keys the
/// apiserver takes. Findings name the file, never the key.
#[test]
fn check_catches_a_loose_truncated_or_missing_encryption_config() {
    use std::os::unix::fs::PermissionsExt;
    let s = Staged::new();
    let rel = "etc/kubernetes/ssl/encryption-config.yaml";
    let flag = "/etc/kubernetes/manifests/kube-apiserver.yaml: --encryption-provider-config: /etc/kubernetes/ssl/encryption-config.yaml";
    let staged = std::fs::read_to_string(s.out.join("master01").join(rel)).unwrap();
    let secret = staged
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    assert_eq!(secret.len(), 44, "base64 of 32 bytes");
    let no_key = |out: &str| assert!(!out.contains(&secret), "a finding shows the key: {out}");

    // Readable by others.
    let root = s.copy("master01", "enc-mode");
    std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(0o644)).unwrap();
    let want =
        format!("{flag} holds encryption keys and is readable by group or others (mode 0644)");
    assert_finds(&s, &root, &[&want]);
    assert_has(&same_in_memory(&root), &want);

    // A key cut short: 40 base64 characters are 30 bytes.
    let root = s.copy("master01", "enc-truncated");
    std::fs::write(root.join(rel), staged.replace(&secret, &secret[..40])).unwrap();
    let want = format!(
        "{flag} has secretbox key key1 of 30 bytes after base64 decoding; secretbox takes 32"
    );
    assert_finds(&s, &root, &[&want]);
    assert_has(&same_in_memory(&root), &want);
    no_key(&s.check(&root).1);

    // Missing.
    let root = s.copy("master01", "enc-missing");
    std::fs::remove_file(root.join(rel)).unwrap();
    let want = format!("{flag} does not exist");
    assert_finds(&s, &root, &[&want]);
    assert_has(&same_in_memory(&root), &want);

    // Not an EncryptionConfiguration, and one that encrypts nothing.
    let root = s.copy("master01", "enc-kind");
    std::fs::write(root.join(rel), "apiVersion: v1\nkind: ConfigMap\n").unwrap();
    assert_finds(
        &s,
        &root,
        &[&format!(
            "{flag} is a ConfigMap, not an EncryptionConfiguration"
        )],
    );
    let root = s.copy("master01", "enc-clear");
    let providers = staged.find("      - secretbox:").unwrap();
    std::fs::write(
        root.join(rel),
        format!("{}      - identity: {{}}\n", &staged[..providers]),
    )
    .unwrap();
    let (code, out) = s.check(&root);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!(
            "{flag} writes secrets in clear: identity is its first provider"
        )),
        "{out}"
    );
    no_key(&out);
}
