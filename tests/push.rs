//! `kpki push` against real nodes on this machine: one throwaway OpenSSH sshd per node,
//! each in its own mount, UTS and PID namespace with overlays over /etc, /var, /usr/local,
//! /opt and /root (tests/support/nodes.rs), reached with the system's ssh client and a
//! generated ssh config. A fake systemctl on each node records restarts and fails on
//! demand; in the etcd test it runs the real etcd from the pushed options.env.
//!
//! Skipped (with a line on stderr) where nodes cannot run: not root, no sshd or unshare.
//! CI runs as root with openssh-server installed, so there they run.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use support::nodes::Nodes;
use support::TestEnv;

/// etcd members on 127.0.0.21-23 (the etcd test's nodes listen there), a master and a
/// worker. Every node is reached by its name, an alias of the test's ssh config.
const INVENTORY: &str = r#"
[cluster]
name = "push"
domain = "push.test"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[loadbalancer]
fqdn = "lb.push.test"
ip = "127.0.0.20"

[etcd]
heartbeat_interval_ms = 50
election_timeout_ms = 500

[[nodes]]
name = "etcd01"
fqdn = "etcd01.push.test"
ip = "127.0.0.21"
roles = ["etcd"]
ssh_host = "etcd01"

[[nodes]]
name = "etcd02"
fqdn = "etcd02.push.test"
ip = "127.0.0.22"
roles = ["etcd"]
ssh_host = "etcd02"

[[nodes]]
name = "etcd03"
fqdn = "etcd03.push.test"
ip = "127.0.0.23"
roles = ["etcd"]
ssh_host = "etcd03"

[[nodes]]
name = "master01"
fqdn = "master01.push.test"
ip = "127.0.0.24"
roles = ["master"]
ssh_host = "master01"

[[nodes]]
name = "worker01"
fqdn = "worker01.push.test"
ip = "127.0.0.25"
roles = ["worker"]
ssh_host = "worker01"
"#;

struct World {
    env: TestEnv,
    nodes: Nodes,
}

impl World {
    /// A store, the staged trees of every node, and test nodes for `names` at `addrs`.
    fn new(names: &[(&str, [u8; 4])]) -> Option<World> {
        let list: Vec<(&str, Ipv4Addr)> = names
            .iter()
            .map(|(n, a)| (*n, Ipv4Addr::from(*a)))
            .collect();
        let nodes = Nodes::start_or_skip(&list)?;
        let env = TestEnv::new();
        std::fs::write(env.path().join("cluster.toml"), INVENTORY).unwrap();
        let w = World { env, nodes };
        w.apply();
        for (n, _) in names {
            if n.starts_with("etcd") {
                w.nodes.add_user(n, "etcd");
            }
        }
        Some(w)
    }

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

    fn apply(&self) {
        self.ok(&["apply", "--out", "staged"]);
    }

    fn staged(&self) -> PathBuf {
        self.env.path().join("staged")
    }

    fn push(&self, extra: &[&str]) -> Output {
        let cfg = self.nodes.ssh_config().to_str().unwrap().to_owned();
        let mut args = vec!["push", "--out", "staged", "--ssh-config", &cfg];
        args.extend_from_slice(extra);
        self.kpki(&args)
    }

    fn manifest(&self, node: &str) -> serde_json::Value {
        let p = self.staged().join(node).join("var/lib/kpki/manifest.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// Every staged file of `node` (but keys that stay on the node) as the node holds it:
    /// contents, mode, owner and group as the manifest says.
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
    }

    /// Changes the inventory's etcd tunables and stages again: every etcd member's
    /// options.env changes, nothing else.
    fn change_etcd_config(&self, heartbeat: u32) {
        let inv = INVENTORY.replace(
            "heartbeat_interval_ms = 50",
            &format!("heartbeat_interval_ms = {heartbeat}"),
        );
        std::fs::write(self.env.path().join("cluster.toml"), inv).unwrap();
        self.apply();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

#[test]
fn push_installs_every_file_then_changes_nothing() {
    let Some(w) = World::new(&[
        ("etcd01", [127, 0, 0, 11]),
        ("master01", [127, 0, 0, 12]),
        ("worker01", [127, 0, 0, 13]),
    ]) else {
        return;
    };
    let sel = [
        "--node", "etcd01", "--node", "master01", "--node", "worker01",
    ];

    // --dry-run: what would change, nothing written.
    let mut args = sel.to_vec();
    args.extend(["--dry-run", "--json"]);
    let o = w.push(&args);
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&o);
    for n in r.as_array().unwrap() {
        assert_eq!(n["outcome"], "would-change", "{n}");
        assert!(n["files"].as_array().unwrap().len() > 3);
    }
    for node in ["etcd01", "master01", "worker01"] {
        assert!(w.nodes.read(node, "/var/lib/kpki/manifest.json").is_none());
        assert!(w.nodes.upper_path(node, "/etc/kubernetes").is_none());
        assert!(w.nodes.systemctl_log(node).is_empty());
    }

    // The push: every file with its content, mode, owner and group.
    let o = w.push(&sel);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("node"), "{out}");
    assert_eq!(out.matches("installed").count(), 3, "{out}");
    for node in ["etcd01", "master01", "worker01"] {
        w.assert_installed(node);
        // New directories are system directories (0755), backups private.
        assert_eq!(w.nodes.stat(node, "/var/lib/kpki").unwrap().0, 0o755);
        assert_eq!(w.nodes.stat(node, "/var/lib/kpki/backup").unwrap().0, 0o700);
        // No temporary file left beside a target.
        let left = w
            .nodes
            .ssh_ok(node, "find /etc /var -name '.kpki-push.*' | head -1");
        assert!(left.trim().is_empty(), "{node}: {left}");
    }
    assert_eq!(
        w.nodes.stat("etcd01", "/etc/ssl/etcd/etcd.key").unwrap(),
        (0o600, "etcd".into(), "etcd".into())
    );

    // Again: nothing changes, nothing restarts, no new backup.
    let backups = w.nodes.ssh_ok("etcd01", "ls /var/lib/kpki/backup | wc -l");
    let mut args = sel.to_vec();
    args.extend(["--restart", "--json"]);
    let o = w.push(&args);
    assert!(o.status.success(), "{}", text(&o));
    for n in json(&o).as_array().unwrap() {
        assert_eq!(n["outcome"], "unchanged", "{n}");
        assert_eq!(n["files"].as_array().unwrap().len(), 0, "{n}");
    }
    for node in ["etcd01", "master01", "worker01"] {
        assert!(w.nodes.systemctl_log(node).is_empty(), "{node} restarted");
    }
    assert_eq!(
        w.nodes.ssh_ok("etcd01", "ls /var/lib/kpki/backup | wc -l"),
        backups
    );
}

#[test]
fn a_missing_owner_refuses_the_node_before_anything_is_written() {
    let Some(w) = World::new(&[("worker01", [127, 0, 0, 14])]) else {
        return;
    };
    // A manifest whose files belong to a user the node does not have (as a profile
    // with `owner = "kube"` would make them).
    let mpath = w.staged().join("worker01/var/lib/kpki/manifest.json");
    let m = std::fs::read_to_string(&mpath).unwrap();
    let m = m.replacen("\"owner\": \"root\"", "\"owner\": \"kubenobody\"", 1);
    std::fs::write(&mpath, m).unwrap();
    let o = w.push(&["--node", "worker01"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("owner kubenobody does not exist"), "{err}");
    assert!(w
        .nodes
        .read("worker01", "/var/lib/kpki/manifest.json")
        .is_none());
    assert!(w.nodes.upper_path("worker01", "/etc/ssl").is_none());
}

/// What etcd01 holds at its config and manifest.
fn etcd_files(w: &World) -> (Vec<u8>, Vec<u8>) {
    (
        w.nodes.read("etcd01", "/etc/etcd/options.env").unwrap(),
        w.nodes
            .read("etcd01", "/var/lib/kpki/manifest.json")
            .unwrap(),
    )
}

#[test]
fn a_checksum_mismatch_leaves_the_node_as_it_was() {
    let Some(w) = World::new(&[("etcd01", [127, 0, 0, 15])]) else {
        return;
    };
    assert!(w.push(&["--node", "etcd01"]).status.success());
    let before = etcd_files(&w);
    w.change_etcd_config(60);
    // The staged file no longer matches its manifest (changed after apply).
    let env = w.staged().join("etcd01/etc/etcd/options.env");
    let mut t = std::fs::read(&env).unwrap();
    t.extend_from_slice(b"ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379\n");
    std::fs::write(&env, t).unwrap();
    let o = w.push(&["--node", "etcd01"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("SHA-256 mismatch"), "{err}");
    assert_eq!(etcd_files(&w), before);
    let left = w
        .nodes
        .ssh_ok("etcd01", "find /etc /var -name '.kpki-push.*' | head -1");
    assert!(left.trim().is_empty(), "{left}");
}

#[test]
fn killing_ssh_mid_upload_leaves_the_node_as_it_was() {
    let Some(w) = World::new(&[("etcd01", [127, 0, 0, 16])]) else {
        return;
    };
    assert!(w.push(&["--node", "etcd01"]).status.success());
    let before = etcd_files(&w);
    w.change_etcd_config(70);
    // An ssh that passes on the first 4 KiB of the install script, then is killed with
    // SIGKILL while its connection is still open; the probe (small) goes through whole.
    let wrapper = w.env.path().join("ssh-killed");
    std::fs::write(
        &wrapper,
        r#"#!/bin/sh
case "$*" in
*"sh -s"*)
  d=$(mktemp -d); mkfifo "$d/in"
  ssh "$@" < "$d/in" & pid=$!
  exec 3>"$d/in"
  head -c 4096 >&3
  cat > "$d/rest"
  if [ "$(wc -c < "$d/rest")" -gt 4096 ]; then
    sleep 0.5; kill -9 $pid; wait $pid; rm -rf "$d"; exit 255
  fi
  cat "$d/rest" >&3; exec 3>&-; wait $pid; s=$?; rm -rf "$d"; exit $s ;;
*) exec ssh "$@" ;;
esac
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = w.nodes.ssh_config().to_str().unwrap().to_owned();
    let o = w
        .env
        .kpki()
        .env("KPKI_INVENTORY", w.env.path().join("cluster.toml"))
        .env("KPKI_SSH", &wrapper)
        .args([
            "push",
            "--out",
            "staged",
            "--ssh-config",
            &cfg,
            "--node",
            "etcd01",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // Give the node's shell time to see the end of its input, then look.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(etcd_files(&w), before);
    let left = w
        .nodes
        .ssh_ok("etcd01", "find /etc /var -name '.kpki-push.*' | head -1");
    assert!(left.trim().is_empty(), "{left}");
    // The next push completes.
    let o = w.push(&["--node", "etcd01"]);
    assert!(o.status.success(), "{}", text(&o));
    w.assert_installed("etcd01");
}

#[test]
fn a_failing_restart_rolls_the_node_back_and_rollback_restores_the_last_push() {
    let Some(w) = World::new(&[("worker01", [127, 0, 0, 17])]) else {
        return;
    };
    let o = w.push(&["--node", "worker01", "--restart"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = w.nodes.systemctl_log("worker01");
    let restarted: Vec<&str> = log.iter().map(|(_, a)| a.as_str()).collect();
    for unit in ["flanneld", "containerd", "kubelet", "kube-proxy"] {
        assert!(
            restarted
                .iter()
                .any(|a| a.starts_with("restart") && a.contains(unit)),
            "{unit} not restarted: {restarted:?}"
        );
    }
    assert!(restarted.contains(&"daemon-reload"), "{restarted:?}");
    let v1 = w
        .nodes
        .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
        .unwrap();

    // A second version: the kubelet's client certificate reissued.
    w.ok(&[
        "issue",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--force",
    ]);
    w.apply();
    w.nodes.fail_unit_next("worker01", "kubelet", 1);
    let n = w.nodes.systemctl_log("worker01").len();
    let o = w.push(&["--node", "worker01", "--restart", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = json(&o);
    assert_eq!(r[0]["outcome"], "rolled-back", "{r}");
    assert!(r[0]["error"].as_str().unwrap().contains("kubelet"), "{r}");
    assert_eq!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1,
        "the node holds the first version again"
    );
    // Restarted again after the rollback, and up.
    let after: Vec<String> = w.nodes.systemctl_log("worker01")[n..]
        .iter()
        .map(|(_, a)| a.clone())
        .collect();
    assert!(
        after
            .iter()
            .filter(|a| a.starts_with("restart") && a.contains("kubelet"))
            .count()
            >= 2,
        "{after:?}"
    );
    assert!(w
        .nodes
        .ssh("worker01", "systemctl is-active kubelet")
        .status
        .success());

    // Push the second version for real, then --rollback: the first version is back.
    let o = w.push(&["--node", "worker01", "--restart"]);
    assert!(o.status.success(), "{}", text(&o));
    w.assert_installed("worker01");
    assert_ne!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1
    );
    let o = w.push(&["--node", "worker01", "--rollback", "--restart", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&o);
    assert_eq!(r[0]["outcome"], "restored", "{r}");
    assert_eq!(r[0]["restarted"], true, "{r}");
    assert_eq!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        v1
    );
}

/// The members' client URLs as the test reaches them (the nodes listen on their
/// inventory addresses, port 2379).
const ENDPOINTS: &str = "https://127.0.0.21:2379,https://127.0.0.22:2379,https://127.0.0.23:2379";

fn etcdctl(w: &World, args: &[&str]) -> Output {
    let tree = w.staged().join("etcd01");
    std::process::Command::new("etcdctl")
        .arg(format!("--endpoints={ENDPOINTS}"))
        .arg(format!(
            "--cacert={}",
            tree.join("etc/ssl/etcd/ca.crt").display()
        ))
        .arg(format!(
            "--cert={}",
            tree.join("etc/ssl/etcd/etcd.crt").display()
        ))
        .arg(format!(
            "--key={}",
            tree.join("etc/ssl/etcd/etcd.key").display()
        ))
        .args(["--dial-timeout=2s", "--command-timeout=4s"])
        .args(args)
        .output()
        .expect("run etcdctl")
}

/// The serial each member serves on its client port, as openssl sees it.
fn served_serial(w: &World, addr: &str) -> String {
    let tree = w.staged().join("etcd01");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr}:2379 -cert {c} -key {k} -CAfile {ca} </dev/null 2>/dev/null | openssl x509 -noout -serial",
            c = tree.join("etc/ssl/etcd/etcd.crt").display(),
            k = tree.join("etc/ssl/etcd/etcd.key").display(),
            ca = tree.join("etc/ssl/etcd/ca.crt").display(),
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

fn staged_serial(w: &World, node: &str) -> String {
    let o = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(w.staged().join(node).join("etc/ssl/etcd/etcd.crt"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

#[test]
fn renewed_etcd_certificates_roll_through_a_real_cluster_one_member_at_a_time() {
    if which("etcd").is_none() || which("etcdctl").is_none() {
        eprintln!("skipped: etcd or etcdctl missing (apt-get install etcd-server etcd-client)");
        return;
    }
    let Some(w) = World::new(&[
        ("etcd01", [127, 0, 0, 21]),
        ("etcd02", [127, 0, 0, 22]),
        ("etcd03", [127, 0, 0, 23]),
    ]) else {
        return;
    };
    let members = ["etcd01", "etcd02", "etcd03"];
    // First install, then the cluster's first start: all members at once (a new cluster
    // has no quorum until two are up, so a first start is not a rolling restart).
    let o = w.push(&["--role", "etcd"]);
    assert!(o.status.success(), "{}", text(&o));
    for m in members {
        w.nodes.real_etcd(m, true);
    }
    let starts: Vec<_> = members
        .iter()
        .map(|m| {
            w.nodes
                .ssh_command(m, "systemctl start etcd")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut s in starts {
        let st = s.wait().unwrap();
        assert!(st.success());
    }
    wait_healthy(&w);
    assert!(etcdctl(&w, &["put", "/kpki/test", "before"])
        .status
        .success());
    let old: Vec<String> = ["127.0.0.21", "127.0.0.22", "127.0.0.23"]
        .iter()
        .map(|a| served_serial(&w, a))
        .collect();

    // Leader before the rotation: it must be restarted last.
    let st = etcdctl(&w, &["endpoint", "status", "-w", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let leader_id = status[0]["Status"]["leader"].as_u64().unwrap();
    let leader_ep = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader_id))
        .unwrap()["Endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let leader = ["etcd01", "etcd02", "etcd03"][["127.0.0.21", "127.0.0.22", "127.0.0.23"]
        .iter()
        .position(|a| leader_ep.contains(a))
        .unwrap()];

    // Renew every member's certificate and push with --restart.
    w.ok(&["issue", "--profile", "etcd-peer", "--all", "--force"]);
    w.apply();
    let logs_before: Vec<usize> = members
        .iter()
        .map(|m| w.nodes.systemctl_log(m).len())
        .collect();
    let o = w.push(&["--role", "etcd", "--restart", "--gate-timeout", "60"]);
    assert!(o.status.success(), "{}", text(&o));

    // Every member serves its new serial; the cluster is healthy and kept its data.
    wait_healthy(&w);
    for (i, (m, a)) in members
        .iter()
        .zip(["127.0.0.21", "127.0.0.22", "127.0.0.23"])
        .enumerate()
    {
        let s = served_serial(&w, a);
        assert_eq!(s, staged_serial(&w, m), "{m} serves its new certificate");
        assert_ne!(s, old[i], "{m}: a new serial");
    }
    let got = etcdctl(&w, &["get", "/kpki/test", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "before");

    // One restart per member, one at a time, the leader last: each member's restart came
    // after the previous member's restart and its gate (the push waited for it).
    let mut restarts: Vec<(u128, &str)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let log = w.nodes.systemctl_log(m);
        let r: Vec<u128> = log[logs_before[i]..]
            .iter()
            .filter(|(_, a)| a.starts_with("restart") && a.contains("etcd"))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(r.len(), 1, "{m}: {log:?}");
        restarts.push((r[0], m));
    }
    restarts.sort();
    assert_eq!(
        restarts.last().unwrap().1,
        leader,
        "the leader restarts last: {restarts:?}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    for pair in restarts.windows(2) {
        // The gate: the next member was restarted only after the previous one passed.
        assert!(pair[1].0 > pair[0].0, "{restarts:?}");
    }
    assert_eq!(err.matches("gate passed").count(), 3, "{err}");
}

fn wait_healthy(w: &World) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = etcdctl(w, &["endpoint", "health"]);
        if o.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster not healthy: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

#[test]
fn bundles_round_trip_plain_and_encrypted() {
    let Some(w) = World::new(&[("worker01", [127, 0, 0, 18]), ("etcd01", [127, 0, 0, 19])]) else {
        return;
    };
    // Plain: a shell script holding the tree, 0600; installed with `kpki unbundle`.
    let plain = w.env.path().join("worker01.bundle");
    w.ok(&[
        "bundle",
        "--out",
        "staged",
        "--node",
        "worker01",
        "--file",
        plain.to_str().unwrap(),
    ]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Refused without --force the second time.
    let o = w.kpki(&[
        "bundle",
        "--out",
        "staged",
        "--node",
        "worker01",
        "--file",
        plain.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    w.nodes.write(
        "worker01",
        "/root/worker01.bundle",
        &std::fs::read(&plain).unwrap(),
    );
    // The node's own copy of kpki: the test's binary may sit under /tmp, which is the
    // node's own tmpfs (a CI clone in /tmp would be invisible there).
    for n in ["worker01", "etcd01"] {
        w.nodes.write(
            n,
            "/usr/local/bin/kpki",
            &std::fs::read(support::KPKI).unwrap(),
        );
        w.nodes.ssh_ok(n, "chmod 0755 /usr/local/bin/kpki");
    }
    let kpki = "/usr/local/bin/kpki";
    w.nodes.ssh_ok(
        "worker01",
        &format!("{kpki} unbundle /root/worker01.bundle"),
    );
    w.assert_installed("worker01");
    // Twice: the same files, the first install backed up.
    w.nodes.ssh_ok(
        "worker01",
        &format!("{kpki} unbundle /root/worker01.bundle"),
    );
    w.assert_installed("worker01");
    assert_eq!(
        w.nodes
            .ssh_ok("worker01", "ls /var/lib/kpki/backup | wc -l")
            .trim(),
        "2"
    );

    // Encrypted to the node's key: unreadable without it, installed with it.
    let id = std::fs::read_to_string(w.env.identity()).unwrap();
    let recipient = id
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("identity file names its public key")
        .to_owned();
    let enc = w.env.path().join("etcd01.bundle");
    w.ok(&[
        "bundle",
        "--out",
        "staged",
        "--node",
        "etcd01",
        "--file",
        enc.to_str().unwrap(),
        "--recipient",
        &recipient,
    ]);
    let bytes = std::fs::read(&enc).unwrap();
    assert!(bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    let key = std::fs::read(w.staged().join("etcd01/etc/ssl/etcd/etcd.key")).unwrap();
    assert!(!bytes.windows(40).any(|x| key.windows(40).any(|k| k == x)));
    w.nodes.write("etcd01", "/root/etcd01.bundle", &bytes);
    w.nodes.write(
        "etcd01",
        "/root/other.txt",
        b"AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQGKYQ9\n",
    );
    w.nodes.ssh_ok("etcd01", "chmod 600 /root/other.txt");
    let o = w.nodes.ssh(
        "etcd01",
        &format!("{kpki} unbundle /root/etcd01.bundle --identity /root/other.txt"),
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(w
        .nodes
        .read("etcd01", "/var/lib/kpki/manifest.json")
        .is_none());
    w.nodes.write("etcd01", "/root/id.txt", id.as_bytes());
    w.nodes.ssh_ok("etcd01", "chmod 600 /root/id.txt");
    w.nodes.ssh_ok(
        "etcd01",
        &format!("{kpki} unbundle /root/etcd01.bundle --identity /root/id.txt"),
    );
    w.assert_installed("etcd01");
}
