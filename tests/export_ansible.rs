//! `kpki export ansible`: the export of the example cluster passes `ansible-playbook
//! --syntax-check` (Debian's ansible-core), and the playbook, run against three throwaway
//! SSH nodes (tests/support/nodes.rs; the etcd member runs a real etcd), installs what
//! `kpki push` installs, restarts what push restarts in push's order (gated), changes
//! nothing on a second run or with --check, leaves backups that `kpki push --rollback`
//! restores, and fails as push fails (a SHA-256 mismatch, a missing owner, a failed
//! restart rolled back).
//!
//! Skipped (with a line on stderr) without ansible-playbook; the node test also where
//! nodes cannot run (not root, no sshd or unshare), unless KPKI_REQUIRE_NODES is set.
//! CI installs ansible-core (scripts/test.sh) and runs as root.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::nodes::Nodes;
use support::TestEnv;

/// How long one ansible-playbook run may take (two nodes, some 50 files each).
const PLAYBOOK_TIMEOUT: Duration = Duration::from_secs(600);

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

fn ansible_or_skip() -> bool {
    if which("ansible-playbook").is_some() {
        return true;
    }
    eprintln!("skipped: ansible-playbook is missing (apt-get install ansible-core)");
    false
}

fn text(o: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An Ansible command run in `dir`, with its home, temporary and control directories
/// under `home` (nothing written to the user's ~/.ansible), bounded by `timeout`.
fn ansible(program: &str, dir: &Path, home: &Path, args: &[&str], timeout: Duration) -> Output {
    let out = home.join(format!("{program}.out"));
    let err = home.join(format!("{program}.err"));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_LOCAL_TEMP", home.join(".ansible/tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        // Connection masters end soon after the run (the nodes' sshd go with the test).
        .env(
            "ANSIBLE_SSH_ARGS",
            "-o ControlMaster=auto -o ControlPersist=10s",
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{program} {args:?} still running after {timeout:?}; its output:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn the_export_of_the_example_cluster_passes_the_syntax_check() {
    let env = TestEnv::new();
    env.ok(&["apply", "--out", "staged"]);
    env.ok(&["export", "ansible", "--out", "staged", "--dest", "ansible"]);
    let dest = env.path().join("ansible");
    let staged = env.path().join("staged");

    // One host_vars file per node; the layout the README describes.
    for f in [
        "inventory.yml",
        "site.yml",
        "ansible.cfg",
        "tasks/install.yml",
        "tasks/etcd-order.yml",
        "tasks/restart.yml",
        "files/kpki-commit.sh",
        "files/kpki-rollback.sh",
        "group_vars/all.yml",
    ] {
        assert!(dest.join(f).is_file(), "{f}");
    }
    let nodes = [
        "etcd01", "etcd02", "etcd03", "master01", "master02", "worker01", "worker02", "worker03",
    ];
    let mut host_vars: Vec<String> = std::fs::read_dir(dest.join("host_vars"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host_vars.sort();
    assert_eq!(
        host_vars,
        nodes.map(|n| format!("{n}.yml")),
        "one host_vars file per node"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // No key is copied into the export: it names the staged files, it holds none.
    let keys: Vec<Vec<u8>> = files_under(&staged)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(keys.len() > 5);
    for f in files_under(&dest) {
        let b = std::fs::read(&f).unwrap();
        for k in &keys {
            let body = &k[40..k.len().min(100)];
            assert!(
                !b.windows(body.len()).any(|w| w == body),
                "{} holds key material",
                f.display()
            );
        }
    }

    // Written again, the same bytes; a file the export did not write is not replaced.
    let before: Vec<(PathBuf, Vec<u8>)> = support::snapshot(&dest);
    env.ok(&["export", "ansible", "--out", "staged", "--dest", "ansible"]);
    assert_eq!(support::snapshot(&dest), before);
    std::fs::write(dest.join("site.yml"), "# mine\n").unwrap();
    let err = env.fails(
        &["export", "ansible", "--out", "staged", "--dest", "ansible"],
        1,
    );
    assert!(err.contains("not written by kpki export"), "{err}");
    env.ok(&[
        "export", "ansible", "--out", "staged", "--dest", "ansible", "--force",
    ]);
    assert_eq!(support::snapshot(&dest), before);
    // Not into the staging directory, and not without a staged tree.
    env.fails(
        &["export", "ansible", "--out", "staged", "--dest", "staged/x"],
        1,
    );
    let err = env.fails(
        &["export", "ansible", "--out", "nothing", "--dest", "a2"],
        1,
    );
    assert!(err.contains("kpki apply"), "{err}");

    // What each file restarts, combined as the playbook combines it, is what push
    // restarts: for every file alone and for the whole tree.
    for n in nodes {
        let root = staged.join(n);
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("var/lib/kpki/manifest.json")).unwrap(),
        )
        .unwrap();
        let paths: Vec<&str> = m["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] != "on-node")
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        let per_file = kpki::distribute::ansible::FileRestarts::of(&root, &paths);
        for (p, f) in paths.iter().zip(&per_file) {
            assert_eq!(
                kpki::distribute::ansible::FileRestarts::combine(&[f]),
                kpki::distribute::restart::restarts(&root, &[p]),
                "{n}: {p}"
            );
        }
        let all: Vec<&_> = per_file.iter().collect();
        let whole = kpki::distribute::restart::restarts(&root, &paths);
        assert!(!whole.units.is_empty(), "{n}");
        assert_eq!(
            kpki::distribute::ansible::FileRestarts::combine(&all),
            whole,
            "{n}"
        );
    }

    if !ansible_or_skip() {
        return;
    }
    let o = ansible(
        "ansible-playbook",
        &dest,
        env.path(),
        &["--syntax-check", "-i", "inventory.yml", "site.yml"],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", text(&o));
    // Ansible reads the inventory as written: groups by role in inventory order, each
    // node's ssh host, and its files from host_vars.
    let o = ansible(
        "ansible-inventory",
        &dest,
        env.path(),
        &["-i", "inventory.yml", "--list"],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", text(&o));
    let inv: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        inv["etcd"]["hosts"],
        serde_json::json!(["etcd01", "etcd02", "etcd03"])
    );
    assert_eq!(
        inv["master"]["hosts"],
        serde_json::json!(["master01", "master02"])
    );
    assert_eq!(
        inv["worker"]["hosts"],
        serde_json::json!(["worker01", "worker02", "worker03"])
    );
    let hv = &inv["_meta"]["hostvars"]["etcd01"];
    assert_eq!(hv["ansible_host"], "192.168.0.1");
    assert_eq!(
        hv["kpki_tree"],
        std::fs::canonicalize(&staged)
            .unwrap()
            .join("etcd01")
            .to_str()
            .unwrap()
    );
    let key = hv["kpki_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/ssl/etcd/etcd.key")
        .unwrap();
    assert_eq!(key["mode"], "0600");
    assert_eq!(key["owner"], "etcd");
    assert_eq!(key["units"], serde_json::json!(["etcd.service"]));
    assert_eq!(hv["kpki_etcd"]["cert"], "/etc/ssl/etcd/etcd.crt");
}

/// A worker, a master and a one-member etcd on test nodes 127.0.0.60-62 (etcd listens on
/// its node's address). Each node is reached by its name, an alias of the test's ssh
/// config.
const INVENTORY: &str = r#"
[cluster]
name = "ansible"
domain = "ansible.test"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[loadbalancer]
fqdn = "lb.ansible.test"
ip = "127.0.0.69"

[[nodes]]
name = "etcd01"
fqdn = "etcd01.ansible.test"
ip = "127.0.0.62"
roles = ["etcd"]
ssh_host = "etcd01"

[[nodes]]
name = "master01"
fqdn = "master01.ansible.test"
ip = "127.0.0.61"
roles = ["master"]
ssh_host = "master01"

[[nodes]]
name = "worker01"
fqdn = "worker01.ansible.test"
ip = "127.0.0.60"
roles = ["worker"]
ssh_host = "worker01"
"#;

struct World {
    env: TestEnv,
    nodes: Nodes,
}

impl World {
    fn kpki(&self, args: &[&str]) -> Output {
        self.env
            .kpki()
            .env("KPKI_INVENTORY", self.env.path().join("cluster.toml"))
            .args(args)
            .output()
            .expect("run kpki")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.kpki(args);
        assert!(o.status.success(), "kpki {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn staged(&self) -> PathBuf {
        self.env.path().join("staged")
    }

    fn export(&self) {
        let cfg = self.nodes.ssh_config().to_str().unwrap().to_owned();
        self.ok(&[
            "export",
            "ansible",
            "--out",
            "staged",
            "--dest",
            "ansible",
            "--ssh-config",
            &cfg,
        ]);
    }

    /// `kpki push --all` with `extra` flags, as JSON: one report per node.
    fn push_json(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let cfg = self.nodes.ssh_config().to_str().unwrap().to_owned();
        let mut args = vec![
            "push",
            "--out",
            "staged",
            "--ssh-config",
            &cfg,
            "--all",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = self.kpki(&args);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
            .as_array()
            .unwrap()
            .clone()
    }

    /// ansible-playbook site.yml; its output.
    fn playbook(&self) -> String {
        let o = ansible(
            "ansible-playbook",
            &self.env.path().join("ansible"),
            self.env.path(),
            &["site.yml"],
            PLAYBOOK_TIMEOUT,
        );
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn manifest(&self, node: &str) -> serde_json::Value {
        let p = self.staged().join(node).join("var/lib/kpki/manifest.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// Every staged file of `node` (but keys that stay on the node) as the node holds it:
    /// contents, mode, owner and group as the manifest says; the manifest itself too.
    fn assert_installed(&self, node: &str) {
        let m = self.manifest(node);
        let files = m["files"].as_array().unwrap();
        assert!(files.len() > 3, "{node}: {m}");
        for e in files {
            if e["kind"] == "on-node" {
                continue;
            }
            let path = e["path"].as_str().unwrap();
            let staged = std::fs::read(self.staged().join(node).join(&path[1..])).unwrap();
            let held = self
                .nodes
                .read(node, path)
                .unwrap_or_else(|| panic!("{node}: {path} missing"));
            assert!(
                held == staged,
                "{node}: {path} differs from the staged file"
            );
            let (mode, owner, group) = self.nodes.stat(node, path).unwrap();
            let want = u32::from_str_radix(e["mode"].as_str().unwrap(), 8).unwrap();
            assert_eq!(mode, want, "{node}: {path} mode");
            assert_eq!(owner, e["owner"].as_str().unwrap(), "{node}: {path} owner");
            assert_eq!(group, e["group"].as_str().unwrap(), "{node}: {path} group");
        }
        let m_node = self
            .nodes
            .read(node, "/var/lib/kpki/manifest.json")
            .unwrap();
        let m_staged =
            std::fs::read(self.staged().join(node).join("var/lib/kpki/manifest.json")).unwrap();
        assert!(m_node == m_staged, "{node}: manifest");
        let left = self
            .nodes
            .ssh_ok(node, "find /etc /var -name '.kpki-push.*' | head -1");
        assert!(left.trim().is_empty(), "{node}: {left}");
    }

    /// The node's fake systemctl calls from the `from`th on, restarts and reloads only.
    fn restarts(&self, node: &str, from: usize) -> Vec<(u128, String)> {
        self.nodes.systemctl_log(node)[from..]
            .iter()
            .filter(|(_, a)| a.starts_with("restart ") || a == "daemon-reload")
            .cloned()
            .collect()
    }

    fn backups(&self, node: &str) -> Vec<String> {
        self.nodes
            .ssh_ok(node, "ls -1 /var/lib/kpki/backup")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// What a push report says it restarts, as the fake systemctl logs it.
fn push_restarts(report: &serde_json::Value) -> Vec<String> {
    report["restarts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("restart {}", r.as_str().unwrap()))
        .collect()
}

fn node_report<'a>(reports: &'a [serde_json::Value], node: &str) -> &'a serde_json::Value {
    reports
        .iter()
        .find(|r| r["node"] == node)
        .unwrap_or_else(|| panic!("no report for {node}: {reports:?}"))
}

/// The serial the etcd member serves on its client port, as openssl sees it, and the
/// one of its staged certificate.
fn etcd_serials(w: &World) -> (String, String) {
    let tree = w.staged().join("etcd01");
    let sh = |cmd: String| {
        let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_owned()
    };
    let (c, k, ca) = (
        tree.join("etc/ssl/etcd/etcd.crt"),
        tree.join("etc/ssl/etcd/etcd.key"),
        tree.join("etc/ssl/etcd/ca.crt"),
    );
    (
        sh(format!(
            "openssl s_client -connect 127.0.0.62:2379 -cert {} -key {} -CAfile {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
            c.display(),
            k.display(),
            ca.display()
        )),
        sh(format!("openssl x509 -noout -serial -in {}", c.display())),
    )
}

#[test]
fn the_playbook_installs_and_restarts_what_push_would() {
    if !ansible_or_skip() {
        return;
    }
    if which("etcd").is_none() || which("etcdctl").is_none() {
        eprintln!("skipped: etcd or etcdctl missing (apt-get install etcd-server etcd-client)");
        return;
    }
    let Some(nodes) = Nodes::start_or_skip(&[
        ("worker01", Ipv4Addr::new(127, 0, 0, 60)),
        ("master01", Ipv4Addr::new(127, 0, 0, 61)),
        ("etcd01", Ipv4Addr::new(127, 0, 0, 62)),
    ]) else {
        return;
    };
    let env = TestEnv::new();
    std::fs::write(env.path().join("cluster.toml"), INVENTORY).unwrap();
    let w = World { env, nodes };
    w.nodes.add_user("etcd01", "etcd");
    // etcd really runs on its node: started by the playbook's restart, then gated.
    w.nodes.real_etcd("etcd01", true);
    w.ok(&["apply", "--out", "staged"]);
    w.export();
    let names = ["etcd01", "master01", "worker01"];

    // What push would do: every file new, and its restarts.
    let dry = w.push_json(&["--dry-run"]);
    for n in names {
        let r = node_report(&dry, n);
        assert_eq!(r["outcome"], "would-change", "{r}");
        assert!(!push_restarts(r).is_empty(), "{r}");
    }

    // The playbook: every file with its content, mode, owner and group, the manifest.
    let out = w.playbook();
    for n in names {
        w.assert_installed(n);
        assert_eq!(w.nodes.stat(n, "/var/lib/kpki").unwrap().0, 0o755);
        assert_eq!(w.nodes.stat(n, "/var/lib/kpki/backup").unwrap().0, 0o700);
        assert_eq!(w.backups(n).len(), 1, "{n}");
    }
    // The restarts push would do, in its order: a daemon-reload first (unit files are
    // new), then each unit; etcd, then the master, then the worker. etcd passed its gate:
    // it serves its certificate.
    for n in names {
        let got = w.restarts(n, 0);
        let want = push_restarts(node_report(&dry, n));
        assert_eq!(
            got.first().map(|(_, a)| a.as_str()),
            Some("daemon-reload"),
            "{n}: {got:?}"
        );
        let units: Vec<&str> = got[1..].iter().map(|(_, a)| a.as_str()).collect();
        assert_eq!(units, want, "{n}: {out}");
    }
    let first = |n| w.restarts(n, 0).first().unwrap().0;
    let last = |n| w.restarts(n, 0).last().unwrap().0;
    assert!(last("etcd01") < first("master01"), "etcd restarts first");
    assert!(last("master01") < first("worker01"), "then the master");
    let (served, staged) = etcd_serials(&w);
    assert_eq!(served, staged);
    for gate in [
        "healthy",
        "agrees on one leader",
        "serves its new certificate",
    ] {
        assert!(
            out.lines()
                .skip_while(|l| !(l.starts_with("TASK") && l.contains(gate)))
                .skip(1)
                .take_while(|l| !l.starts_with("TASK"))
                .any(|l| l.starts_with("ok: [etcd01]")),
            "the gate '{gate}' passed: {out}"
        );
    }

    // Push finds nothing to change: the same files, modes, owners and manifests.
    for r in w.push_json(&["--dry-run"]) {
        assert_eq!(r["outcome"], "unchanged", "{r}");
    }

    // Again: nothing changes, nothing restarts, no new backup.
    let logs: Vec<usize> = names
        .iter()
        .map(|n| w.nodes.systemctl_log(n).len())
        .collect();
    let out = w.playbook();
    for n in names {
        assert!(
            out.lines()
                .any(|l| l.starts_with(n) && l.contains(" changed=0 ") && l.contains(" failed=0 ")),
            "{n}: {out}"
        );
    }
    for (n, from) in names.iter().zip(&logs) {
        assert!(w.restarts(n, *from).is_empty(), "{n} restarted: {out}");
        assert_eq!(w.backups(n).len(), 1, "{n}");
    }

    // An update: the worker's kubelet certificate and etcd's renewed. The playbook
    // refuses to run on trees staged after the export; exported again, it installs and
    // restarts what push would: etcd (its leader asked of the running cluster) and the
    // worker's kubelet, nothing on the master.
    let v1 = w
        .nodes
        .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
        .unwrap();
    w.ok(&[
        "issue",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--force",
    ]);
    w.ok(&[
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--force",
    ]);
    w.ok(&["apply", "--out", "staged"]);
    let o = ansible(
        "ansible-playbook",
        &w.env.path().join("ansible"),
        w.env.path(),
        &["site.yml"],
        PLAYBOOK_TIMEOUT,
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("run kpki export ansible again"),
        "{}",
        text(&o)
    );
    assert_eq!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1
    );
    w.export();
    let dry = w.push_json(&["--dry-run"]);
    assert_eq!(node_report(&dry, "master01")["outcome"], "unchanged");
    let logs: Vec<usize> = names
        .iter()
        .map(|n| w.nodes.systemctl_log(n).len())
        .collect();
    // --check says what would change and restart, and changes nothing (push --dry-run).
    let o = ansible(
        "ansible-playbook",
        &w.env.path().join("ansible"),
        w.env.path(),
        &["site.yml", "--check"],
        PLAYBOOK_TIMEOUT,
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("would change 3 files; restarts: kubelet.service"),
        "{out}"
    );
    assert!(out.contains("restarts: etcd.service"), "{out}");
    for (n, from) in names.iter().zip(&logs) {
        assert!(w.restarts(n, *from).is_empty(), "{n}: {out}");
        assert_eq!(w.backups(n).len(), 1, "{n}");
    }
    assert_eq!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1
    );
    let out = w.playbook();
    for (n, from) in names.iter().zip(&logs) {
        w.assert_installed(n);
        let got: Vec<String> = w.restarts(n, *from).into_iter().map(|(_, a)| a).collect();
        assert_eq!(got, push_restarts(node_report(&dry, n)), "{n}: {out}");
    }
    assert!(
        w.restarts("worker01", logs[2])
            .iter()
            .any(|(_, a)| a == "restart kubelet.service"),
        "{out}"
    );
    let (served, staged) = etcd_serials(&w);
    assert_eq!(served, staged, "etcd serves its renewed certificate");
    assert!(out.contains("(item=etcd01 (the leader: last))"), "{out}");
    assert_eq!(w.backups("worker01").len(), 2);
    assert_ne!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1
    );

    // kpki push --rollback restores what the playbook replaced: its backup is push's.
    let cfg = w.nodes.ssh_config().to_str().unwrap().to_owned();
    let o = w.kpki(&[
        "push",
        "--out",
        "staged",
        "--ssh-config",
        &cfg,
        "--node",
        "worker01",
        "--rollback",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r[0]["outcome"], "restored", "{r}");
    assert_eq!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1
    );

    // Three failures in one run, each as push fails: on etcd01 a staged file that no
    // longer matches its manifest (and is missing on the node) fails its SHA-256 check,
    // and nothing is written; master01's manifest names an owner the node does not have,
    // and it is refused before anything is written; on worker01 (v2 again) the kubelet's
    // restart fails, and the node is rolled back to v1 and restarted.
    w.nodes.ssh_ok("etcd01", "rm /etc/etcd/options.env");
    let env_file = w.staged().join("etcd01/etc/etcd/options.env");
    let mut t = std::fs::read(&env_file).unwrap();
    t.extend_from_slice(b"ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379\n");
    std::fs::write(&env_file, t).unwrap();
    let mpath = w.staged().join("master01/var/lib/kpki/manifest.json");
    let m = std::fs::read_to_string(&mpath).unwrap();
    std::fs::write(
        &mpath,
        m.replacen("\"owner\": \"root\"", "\"owner\": \"kubenobody\"", 1),
    )
    .unwrap();
    w.export();
    let manifests: Vec<Vec<u8>> = names
        .iter()
        .map(|n| w.nodes.read(n, "/var/lib/kpki/manifest.json").unwrap())
        .collect();
    w.nodes.fail_unit_next("worker01", "kubelet", 1);
    let from = w.nodes.systemctl_log("worker01").len();
    let o = ansible(
        "ansible-playbook",
        &w.env.path().join("ansible"),
        w.env.path(),
        &["site.yml"],
        PLAYBOOK_TIMEOUT,
    );
    assert!(!o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("SHA-256 mismatch"), "{out}");
    assert!(
        out.contains("owner kubenobody does not exist on the node; nothing was written"),
        "{out}"
    );
    assert!(
        out.contains("rolled back to the files before this run and restarted"),
        "{out}"
    );
    for (n, before) in names.iter().zip(&manifests).take(2) {
        assert_eq!(
            &w.nodes.read(n, "/var/lib/kpki/manifest.json").unwrap(),
            before,
            "{n} is as it was"
        );
        let left = w
            .nodes
            .ssh_ok(n, "find /etc /var -name '.kpki-push.*' | head -1");
        assert!(left.trim().is_empty(), "{n}: {left}");
    }
    assert!(w.nodes.read("etcd01", "/etc/etcd/options.env").is_none());
    assert_eq!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1,
        "worker01 holds v1 again"
    );
    let kubelet = w
        .restarts("worker01", from)
        .iter()
        .filter(|(_, a)| a == "restart kubelet.service")
        .count();
    assert!(kubelet >= 2, "restarted, and again after the rollback");
    assert!(w
        .nodes
        .ssh("worker01", "systemctl is-active kubelet")
        .status
        .success());
}
