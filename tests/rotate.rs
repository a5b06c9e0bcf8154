//! `kpki rotate` on real nodes (tests/support/nodes.rs): a three-member etcd cluster run
//! from kpki's pushed files inside the nodes' namespaces (their systemctl stand-in starts
//! and restarts the real etcd), rotated member by member while a writer puts keys with
//! etcdctl; a restart that fails; windows with an injected clock; and kpki killed with
//! SIGKILL after every journal step, then resumed.

mod support;

use std::net::Ipv4Addr;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::nodes::Nodes;
use support::TestEnv;

fn inventory(base: u8) -> String {
    let mut s = String::from(
        r#"
[cluster]
name = "rot"
domain = "rot.test"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[loadbalancer]
fqdn = "lb.rot.test"
ip = "127.0.0.9"

[etcd]
heartbeat_interval_ms = 50
election_timeout_ms = 500
"#,
    );
    for (i, name) in ["etcd01", "etcd02", "etcd03"].iter().enumerate() {
        s.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nfqdn = \"{name}.rot.test\"\nip = \"127.0.0.{}\"\nroles = [\"etcd\"]\nssh_host = \"{name}\"\n",
            base + i as u8
        ));
    }
    s.push_str(&format!(
        "\n[[nodes]]\nname = \"master01\"\nfqdn = \"master01.rot.test\"\nip = \"127.0.0.{}\"\nroles = [\"master\"]\nssh_host = \"master01\"\n\n[[nodes]]\nname = \"worker01\"\nfqdn = \"worker01.rot.test\"\nip = \"127.0.0.{}\"\nroles = [\"worker\"]\nssh_host = \"worker01\"\n",
        base + 3,
        base + 4
    ));
    s
}

struct World {
    env: TestEnv,
    nodes: Nodes,
    base: u8,
}

impl World {
    fn new(base: u8, names: &[&str]) -> Option<World> {
        let all = ["etcd01", "etcd02", "etcd03", "master01", "worker01"];
        let list: Vec<(&str, Ipv4Addr)> = names
            .iter()
            .map(|n| {
                let i = all.iter().position(|a| a == n).unwrap() as u8;
                (*n, Ipv4Addr::new(127, 0, 0, base + i))
            })
            .collect();
        let nodes = Nodes::start_or_skip(&list)?;
        let env = TestEnv::new();
        std::fs::write(env.path().join("cluster.toml"), inventory(base)).unwrap();
        let w = World { env, nodes, base };
        w.ok(&["apply", "--out", "staged"]);
        Some(w)
    }

    fn kpki(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let cfg = self.nodes.ssh_config().to_str().unwrap().to_owned();
        let mut c = self.env.kpki();
        c.env("KPKI_INVENTORY", self.env.path().join("cluster.toml"));
        for (k, v) in vars {
            c.env(k, v);
        }
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if args.first() == Some(&"rotate") && !args.contains(&"status") && !args.contains(&"plan") {
            a.extend(["--ssh-config".to_owned(), cfg]);
        }
        c.args(&a).output().expect("run kpki")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.kpki(args, &[]);
        assert!(o.status.success(), "kpki {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn push(&self, extra: &[&str]) {
        let cfg = self.nodes.ssh_config().to_str().unwrap().to_owned();
        let mut a = vec!["push", "--out", "staged", "--ssh-config", &cfg];
        a.extend_from_slice(extra);
        self.ok(&a);
    }

    fn endpoints(&self) -> String {
        (0..3)
            .map(|i| format!("https://127.0.0.{}:2379", self.base + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// etcdctl with etcd01's staged member certificate (it carries clientAuth).
    fn etcdctl(&self, args: &[&str]) -> Output {
        let tree = self.env.path().join("staged/etcd01");
        std::process::Command::new("etcdctl")
            .arg(format!("--endpoints={}", self.endpoints()))
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

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = self.etcdctl(&["endpoint", "health"]);
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

    /// Pushes the etcd trees and starts the three members at once.
    fn start_etcd(&self) {
        self.push(&["--role", "etcd"]);
        for m in ["etcd01", "etcd02", "etcd03"] {
            self.nodes.real_etcd(m, true);
        }
        let starts: Vec<_> = ["etcd01", "etcd02", "etcd03"]
            .iter()
            .map(|m| {
                self.nodes
                    .ssh_command(m, "systemctl start etcd")
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut s in starts {
            assert!(s.wait().unwrap().success());
        }
        self.wait_healthy();
    }

    fn served_serial(&self, i: u8) -> String {
        let tree = self.env.path().join("staged/etcd01");
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.{}:2379 -cert {c} -key {k} -CAfile {ca} </dev/null 2>/dev/null | openssl x509 -noout -serial",
                self.base + i,
                c = tree.join("etc/ssl/etcd/etcd.crt").display(),
                k = tree.join("etc/ssl/etcd/etcd.key").display(),
                ca = tree.join("etc/ssl/etcd/ca.crt").display(),
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    fn staged_serial(&self, node: &str) -> String {
        let o = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(
                self.env
                    .path()
                    .join("staged")
                    .join(node)
                    .join("etc/ssl/etcd/etcd.crt"),
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    fn ledger(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["ledger", "--json"])).unwrap()
    }

    /// How many issuances the ledger records.
    fn issued(&self) -> usize {
        self.ledger()
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "issued")
            .count()
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

fn have_etcd() -> bool {
    ["etcd", "etcdctl", "openssl"].iter().all(|b| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {b}"))
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A writer putting keys one after another until stopped (bounded to 5000 writes):
/// every acknowledged write, and the largest gap between two acknowledgements.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<String>, Duration)>,
}

fn writer(w: &World) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let tree = w.env.path().join("staged/etcd01");
    let endpoints = w.endpoints();
    let handle = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut last = Instant::now();
        let mut gap = Duration::ZERO;
        for i in 0..5000 {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let key = format!("/rotate/k{i:05}");
            let o = std::process::Command::new("etcdctl")
                .arg(format!("--endpoints={endpoints}"))
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
                .args([
                    "--dial-timeout=1s",
                    "--command-timeout=2s",
                    "put",
                    &key,
                    "v",
                ])
                .output();
            if o.is_ok_and(|o| o.status.success()) {
                gap = gap.max(last.elapsed());
                last = Instant::now();
                acked.push(key);
            }
        }
        (acked, gap)
    });
    Writer { stop, handle }
}

#[test]
fn leaf_rotation_rolls_member_by_member_and_loses_no_write() {
    if !have_etcd() {
        eprintln!("skipped: etcd, etcdctl or openssl missing");
        return;
    }
    let Some(w) = World::new(31, &["etcd01", "etcd02", "etcd03"]) else {
        return;
    };
    w.start_etcd();
    let old: Vec<String> = (0..3).map(|i| w.served_serial(i)).collect();

    // The plan reads clearly and changes nothing.
    let plan = w.ok(&[
        "rotate",
        "plan",
        "--out",
        "staged",
        "--force",
        "--profile",
        "etcd-peer",
    ]);
    assert!(plan.contains("3 certificate(s)"), "{plan}");
    assert!(plan.contains("followers first, the leader last"), "{plan}");
    let dry = w.kpki(
        &[
            "rotate",
            "--out",
            "staged",
            "--force",
            "--profile",
            "etcd-peer",
            "--dry-run",
        ],
        &[],
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        !w.env.store().join("rotations").exists(),
        "a dry run writes no rotation"
    );

    let wr = writer(&w);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let o = w.kpki(
        &[
            "rotate",
            "--out",
            "staged",
            "--force",
            "--profile",
            "etcd-peer",
            "--gate-timeout",
            "60",
        ],
        &[],
    );
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    wr.stop.store(true, Ordering::SeqCst);
    let (acked, gap) = wr.handle.join().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    eprintln!(
        "rotation of 3 members: {} writes acknowledged, largest gap {gap:?}",
        acked.len()
    );
    assert!(acked.len() > 10, "the writer ran: {}", acked.len());

    // Every acknowledged write is there; the cluster is healthy; new serials served.
    w.wait_healthy();
    let got = w.etcdctl(&["get", "/rotate/", "--prefix", "--keys-only"]);
    let keys: std::collections::BTreeSet<String> = String::from_utf8_lossy(&got.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|k| !keys.contains(*k)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    eprintln!(
        "BENCH rotate 3 members: total {:.1} s, {} writes acknowledged, largest gap {} ms, {} lost",
        took.as_secs_f64(),
        acked.len(),
        gap.as_millis(),
        lost.len()
    );
    for (i, m) in ["etcd01", "etcd02", "etcd03"].iter().enumerate() {
        let s = w.served_serial(i as u8);
        assert_eq!(s, w.staged_serial(m), "{m} serves its new certificate");
        assert_ne!(s, old[i], "{m}");
        // No member refused a peer.
        let log =
            String::from_utf8_lossy(&w.nodes.read(m, "/var/log/etcd.log").unwrap_or_default())
                .into_owned();
        // A refused peer is a TLS verification error; a client that hangs up before its
        // handshake ends (the gate's and this test's probes) logs EOF, which is no refusal.
        // etcd reloads its certificate and key on every new connection, and a push renames
        // them one after the other: a handshake that falls between the two renames is
        // refused with "private key does not match public key" and retried by the client
        // (no write is lost, asserted above). That is the pair's reload, not a peer refused.
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("rejected connection"))
            .filter(|l| !l.contains("private key does not match public key"))
            .filter(|l| {
                ["certificate", "x509", "tls:"]
                    .iter()
                    .any(|x| l.contains(x))
            })
            .collect();
        assert!(bad.is_empty(), "{m} refused a peer:\n{}", bad.join("\n"));
    }
    let st = w.ok(&["rotate", "status"]);
    assert!(st.contains("finished"), "{st}");
    // The ledger: each member's old certificate superseded by exactly one new one.
    let l = w.ledger();
    let current = l
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["event"] == "issued" && e["profile"] == "etcd-peer" && e["state"] == "current"
        })
        .count();
    assert_eq!(current, 3, "{l}");
}

#[test]
fn a_failed_restart_stops_the_rotation_and_restores_the_member() {
    if !have_etcd() {
        eprintln!("skipped: etcd, etcdctl or openssl missing");
        return;
    }
    let Some(w) = World::new(36, &["etcd01", "etcd02", "etcd03"]) else {
        return;
    };
    w.start_etcd();
    let before: Vec<String> = (0..3).map(|i| w.served_serial(i)).collect();
    for m in ["etcd01", "etcd02", "etcd03"] {
        w.nodes.fail_unit_next(m, "etcd", 1);
    }
    let o = w.kpki(
        &[
            "rotate",
            "--out",
            "staged",
            "--force",
            "--profile",
            "etcd-peer",
            "--gate-timeout",
            "20",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rolled back"), "{err}");
    // One member was tried, restored and restarted; the others were not touched.
    w.wait_healthy();
    let after: Vec<String> = (0..3).map(|i| w.served_serial(i)).collect();
    assert_eq!(after, before, "every member serves its old certificate");
    let st = w.ok(&["rotate", "status"]);
    assert!(st.contains("failed") && st.contains("FAILED"), "{st}");
}

#[test]
fn windows_refuse_pause_and_resume() {
    let Some(w) = World::new(51, &["worker01"]) else {
        return;
    };
    w.push(&["--node", "worker01"]);
    let sel = [
        "rotate",
        "--out",
        "staged",
        "--force",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--window",
        "Sat 02:00-04:00 UTC",
    ];
    // Outside: refused, nothing written, the next opening named.
    let o = w.kpki(&sel, &[("KPKI_ROTATE_NOW", "2026-12-02T10:00:00Z")]);
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("outside the window") && out.contains("2026-12-05T02:00:00Z"),
        "{out}"
    );
    assert!(!w.env.store().join("rotations").exists());
    // 10 s before the end: issue and stage fit, the push does not: paused at that boundary.
    let before = w.issued();
    let o = w.kpki(&sel, &[("KPKI_ROTATE_NOW", "2026-12-05T03:59:50Z")]);
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("paused") && out.contains("2026-12-12T02:00:00Z"),
        "{out}"
    );
    let st = w.ok(&["rotate", "status"]);
    assert!(st.contains("paused"), "{st}");
    assert!(
        st.contains(" 1. done") && st.contains(" 3. pending"),
        "{st}"
    );
    let kubelet_before = w
        .nodes
        .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
        .unwrap();
    // In the next window: resumed, finished, issued once.
    let o = w.kpki(
        &["rotate", "--resume", "--window", "Sat 02:00-04:00 UTC"],
        &[("KPKI_ROTATE_NOW", "2026-12-12T02:00:00Z")],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(w.ok(&["rotate", "status"]).contains("finished"));
    assert_ne!(
        w.nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap(),
        kubelet_before
    );
    let issued = w.issued() - before;
    assert_eq!(issued, 1, "one issuance for the one certificate");
}

#[test]
fn sigkill_at_every_journal_step_then_resume_issues_once() {
    let Some(w) = World::new(56, &["worker01"]) else {
        return;
    };
    w.push(&["--node", "worker01"]);
    let mut n = 1;
    loop {
        assert!(n < 20, "the rotation never finished");
        let before = w.issued();
        let kill = n.to_string();
        let o = w.kpki(
            &[
                "rotate",
                "--out",
                "staged",
                "--force",
                "--profile",
                "kubelet",
                "--node",
                "worker01",
            ],
            &[("KPKI_TEST_ROTATE_KILL_AT", &kill)],
        );
        let killed = o.status.code().is_none();
        // Resume (or, once nothing was killed, a no-op) finishes it.
        let r = w.kpki(&["rotate", "--resume"], &[]);
        assert!(
            r.status.success(),
            "resume after a kill at {n}: {}",
            text(&r)
        );
        assert!(
            w.ok(&["rotate", "status"]).contains("finished"),
            "after kill at {n}"
        );
        let after = w.issued();
        assert_eq!(after - before, 1, "kill at {n}: issued exactly once");
        w.ok(&["store", "verify"]);
        // The node holds a certificate and key that match.
        let crt = w
            .nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.crt")
            .unwrap();
        let key = w
            .nodes
            .read("worker01", "/etc/kubernetes/ssl/kubelet.key")
            .unwrap();
        let staged = w.env.path().join("staged/worker01/etc/kubernetes/ssl");
        assert_eq!(
            crt,
            std::fs::read(staged.join("kubelet.crt")).unwrap(),
            "kill at {n}"
        );
        assert_eq!(
            key,
            std::fs::read(staged.join("kubelet.key")).unwrap(),
            "kill at {n}"
        );
        assert_eq!(
            support::cert_pubkey(&staged.join("kubelet.crt")),
            support::key_pubkey(&staged.join("kubelet.key"))
        );
        if !killed {
            break;
        }
        n += 1;
    }
    assert!(n > 4, "the kill points covered the steps: {n}");
}

#[test]
fn the_audit_warns_when_no_window_opens_in_a_renewal_margin() {
    let env = TestEnv::new();
    env.init();
    // kubelet certificates renewed only in their last 2 hours: a weekly window misses.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/kubelet.toml"),
    )
    .unwrap()
    .replace(
        "validity = \"1y\"",
        "validity = \"1y\"\nrenew_before = \"2h\"",
    );
    std::fs::create_dir_all(env.store().join("profiles")).unwrap();
    std::fs::write(env.store().join("profiles/kubelet.toml"), text).unwrap();
    env.ok(&["issue", "--all"]);
    let o = env.run(&[
        "audit",
        "--format",
        "json",
        "--window",
        "Sat 02:00-04:00 UTC",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text_of(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let late: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "window_too_late")
        .collect();
    // Every kubelet certificate (two masters, three workers), nothing else.
    assert_eq!(late.len(), 5, "{v}");
    for f in &late {
        assert!(
            f["message"].as_str().unwrap().starts_with("kubelet "),
            "{f}"
        );
    }
    let o = env.run(&["audit", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        !v.to_string().contains("window_too_late"),
        "no --window, no finding"
    );
}

fn text_of(o: &Output) -> String {
    text(o)
}
