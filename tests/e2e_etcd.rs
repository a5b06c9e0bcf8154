//! End to end on a real etcd: `kpki apply` (the default trust: separate kubernetes, etcd
//! and front-proxy CAs) for three etcd members on 127.0.0.1-3, a worker and a master, then
//! three `etcd` processes started from the rendered options.env files and the staged
//! certificates, peer TLS and client certificate auth on. With `etcdctl` and the worker's
//! flanneld client certificate: the rendered put-network-config.sh stores flannel's network
//! config, it reads back, `endpoint health --cluster` is healthy; the apiserver's own etcd
//! client certificate reads it too. Refused on the client port: no certificate, a
//! certificate from another store's CA, the kubelet's and kube-proxy's (kubernetes CA).
//! Refused on the peer port: every client certificate, though from the etcd CA (etcd
//! allows the members' CN only); a member's certificate is let in.
//!
//! The files are kpki's; the test only moves them: install paths are rewritten under the
//! staged tree, the data directory into a temp dir, and ports 2379/2380 to a free pair
//! (members share the port numbers on their own loopback addresses). Every process is
//! killed by its PID when its guard drops, failures included; every wait is bounded.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::TestEnv;

const INVENTORY: &str = r#"
[cluster]
name = "loop"
domain = "loop.test"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[loadbalancer]
fqdn = "lb.loop.test"
ip = "127.0.0.10"

# Tunables etcd must accept as rendered (the WAL is moved into the test's temp dir).
[etcd]
heartbeat_interval_ms = 50
election_timeout_ms = 500
wal_dir = "/var/lib/etcd-wal"

[[nodes]]
name = "etcd01"
fqdn = "etcd01.loop.test"
ip = "127.0.0.1"
roles = ["etcd"]

[[nodes]]
name = "etcd02"
fqdn = "etcd02.loop.test"
ip = "127.0.0.2"
roles = ["etcd"]

[[nodes]]
name = "etcd03"
fqdn = "etcd03.loop.test"
ip = "127.0.0.3"
roles = ["etcd"]

[[nodes]]
name = "worker01"
fqdn = "worker01.loop.test"
ip = "127.0.0.4"
roles = ["worker"]

[[nodes]]
name = "master01"
fqdn = "master01.loop.test"
ip = "127.0.0.5"
roles = ["master"]
"#;

const MEMBERS: [(&str, &str); 3] = [
    ("etcd01", "127.0.0.1"),
    ("etcd02", "127.0.0.2"),
    ("etcd03", "127.0.0.3"),
];

/// A running etcd member; killed by PID and reaped when dropped.
struct Member {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client and peer port free on all three member addresses.
fn free_ports() -> (u16, u16) {
    let seed = (std::process::id() as u64)
        .wrapping_mul(2_654_435_761)
        .wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64,
        );
    for i in 0..200u64 {
        let base = 20_000 + ((seed + i * 7_919) % 20_000) as u16 * 2;
        let free = MEMBERS.iter().all(|(_, ip)| {
            [base, base + 1]
                .iter()
                .all(|p| TcpListener::bind((*ip, *p)).is_ok())
        });
        if free {
            return (base, base + 1);
        }
    }
    panic!("no free port pair on 127.0.0.1-3");
}

/// `KEY=VALUE` lines of an environment file, as systemd's EnvironmentFile reads them.
fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Moves install paths under a staged tree and the standard ports to the test's.
struct Rewrite {
    client: u16,
    peer: u16,
}

impl Rewrite {
    fn value(&self, v: &str, tree: &Path) -> String {
        let v = v
            .replace(":2379", &format!(":{}", self.client))
            .replace(":2380", &format!(":{}", self.peer));
        if v.starts_with("/etc/") {
            tree.join(v.trim_start_matches('/')).display().to_string()
        } else {
            v
        }
    }

    fn text(&self, t: &str, tree: &Path) -> String {
        t.replace(":2379", &format!(":{}", self.client))
            .replace(":2380", &format!(":{}", self.peer))
            .replace("/etc/ssl/", &format!("{}/etc/ssl/", tree.display()))
    }
}

fn etcdctl(args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ETCDCTL_API", "3")
        .args(["--dial-timeout=2s", "--command-timeout=4s"])
        .args(args)
        .output()
        .expect("etcdctl is installed (scripts/test.sh installs etcd-client)")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn logs(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| {
            let l = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = l.lines().rev().take(15).collect();
            format!(
                "--- {} (last lines)\n{}",
                m.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn three_member_tls_etcd_cluster_from_kpki_files() {
    let env = TestEnv::new();
    let inv = env.path().join("loop.toml");
    std::fs::write(&inv, INVENTORY).unwrap();
    let inv = inv.to_str().unwrap().to_owned();
    let staged = env.path().join("staged");
    env.ok(&[
        "--inventory",
        &inv,
        "apply",
        "--out",
        staged.to_str().unwrap(),
    ]);
    env.ok(&["render", "--check", "--out", staged.to_str().unwrap()]);

    let (client, peer) = free_ports();
    let rw = Rewrite { client, peer };
    let data = env.path().join("data");
    let mut members: Vec<Member> = Vec::new();
    for (name, _) in MEMBERS {
        let tree = staged.join(name);
        let mut vars = read_env(&tree.join("etc/etcd/options.env"));
        for v in vars.values_mut() {
            *v = rw.value(v, &tree);
        }
        vars.insert(
            "ETCD_DATA_DIR".into(),
            data.join(name).display().to_string(),
        );
        assert_eq!(vars["ETCD_WAL_DIR"], "/var/lib/etcd-wal");
        assert_eq!(vars["ETCD_HEARTBEAT_INTERVAL"], "50");
        vars.insert(
            "ETCD_WAL_DIR".into(),
            data.join(format!("{name}-wal")).display().to_string(),
        );
        // Debian's etcd 3.4 refuses to start on architectures other than amd64 without it.
        if std::env::consts::ARCH != "x86_64" {
            vars.insert(
                "ETCD_UNSUPPORTED_ARCH".into(),
                match std::env::consts::ARCH {
                    "aarch64" => "arm64".into(),
                    other => other.into(),
                },
            );
        }
        let log = env.path().join(format!("{name}.log"));
        let child = Command::new("etcd")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap().try_clone().unwrap())
            .spawn()
            .expect("etcd is installed (scripts/test.sh installs etcd-server)");
        members.push(Member { name, child, log });
    }

    // The worker's flanneld settings, moved under its staged tree.
    let worker = staged.join("worker01");
    let flannel = read_env(&worker.join("etc/flanneld/options.env"));
    let f = |k: &str| rw.value(&flannel[k], &worker);
    let (endpoints, ca, cert, key) = (
        f("FLANNELD_ETCD_ENDPOINTS"),
        f("FLANNELD_ETCD_CAFILE"),
        f("FLANNELD_ETCD_CERTFILE"),
        f("FLANNELD_ETCD_KEYFILE"),
    );
    assert_eq!(endpoints.split(',').count(), 3, "{endpoints}");
    let auth = [
        format!("--endpoints={endpoints}"),
        format!("--cacert={ca}"),
        format!("--cert={cert}"),
        format!("--key={key}"),
    ];
    let with_auth = |extra: &[&str]| {
        let mut a: Vec<&str> = auth.iter().map(String::as_str).collect();
        a.extend_from_slice(extra);
        etcdctl(&a)
    };

    // A healthy cluster, within 25 s.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let exited = members
            .iter_mut()
            .find_map(|m| m.child.try_wait().ok().flatten().map(|s| (m.name, s)));
        if let Some((name, status)) = exited {
            panic!("etcd {name} exited ({status}):\n{}", logs(&members));
        }
        let o = with_auth(&["endpoint", "health", "--cluster"]);
        if o.status.success() && text(&o).matches("is healthy").count() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no healthy cluster in 25 s: {}\n{}",
            text(&o),
            logs(&members)
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Three members, peers over https.
    let o = with_auth(&["member", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let list = text(&o);
    for (name, ip) in MEMBERS {
        assert!(
            list.contains(name) && list.contains(&format!("https://{ip}:{peer}")),
            "{list}"
        );
    }

    // kpki's etcdctl put command, with the worker's certificate, stores flannel's config.
    let script =
        std::fs::read_to_string(staged.join("_cluster/flannel/put-network-config.sh")).unwrap();
    let o = Command::new("sh")
        .arg("-c")
        .arg(rw.text(&script, &worker))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(o.status.success(), "put-network-config.sh: {}", text(&o));
    let o = with_auth(&["get", "/coreos.com/network/config", "--print-value-only"]);
    assert!(o.status.success(), "{}", text(&o));
    let stored: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rendered: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(staged.join("_cluster/flannel/network-config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stored, rendered);
    assert_eq!(stored["Network"], "10.2.0.0/16");

    let o = with_auth(&["endpoint", "health", "--cluster"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("is healthy").count(), 3, "{}", text(&o));

    // Refused: no client certificate.
    let first = format!("--endpoints=https://127.0.0.1:{client}");
    let o = etcdctl(&[
        &first,
        &format!("--cacert={ca}"),
        "get",
        "/coreos.com/network/config",
    ]);
    assert!(
        !o.status.success(),
        "a client without a certificate got in: {}",
        text(&o)
    );

    // Refused: a client certificate from another CA.
    let other = env.path().join("other-pki");
    let foreign = env.path().join("foreign");
    env.ok(&[
        "--store",
        other.to_str().unwrap(),
        "--inventory",
        &inv,
        "init",
    ]);
    env.ok(&[
        "--store",
        other.to_str().unwrap(),
        "--inventory",
        &inv,
        "issue",
        "--profile",
        "etcd-client",
        "--node",
        "worker01",
        "--out",
        foreign.to_str().unwrap(),
    ]);
    let fdir = foreign.join("worker01");
    let o = etcdctl(&[
        &first,
        &format!("--cacert={ca}"),
        &format!("--cert={}", fdir.join("etcd-client.crt").display()),
        &format!("--key={}", fdir.join("etcd-client.key").display()),
        "get",
        "/coreos.com/network/config",
    ]);
    assert!(
        !o.status.success(),
        "a foreign CA's client got in: {}",
        text(&o)
    );

    // And the right certificate still works on that endpoint (the refusals were not outages).
    let o = etcdctl(&[
        &first,
        &format!("--cacert={ca}"),
        &format!("--cert={cert}"),
        &format!("--key={key}"),
        "get",
        "/coreos.com/network/config",
        "--print-value-only",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // The apiserver's own etcd client certificate (a master's tree) reads the same key.
    let master = staged.join("master01");
    let ssl = master.join("etc/kubernetes/ssl");
    let etcd_ca = master.join("etc/ssl/etcd/ca.crt");
    let apiserver = [
        format!("--cacert={}", etcd_ca.display()),
        format!("--cert={}", ssl.join("apiserver-etcd-client.crt").display()),
        format!("--key={}", ssl.join("apiserver-etcd-client.key").display()),
    ];
    let o = etcdctl(&[
        &first,
        &apiserver[0],
        &apiserver[1],
        &apiserver[2],
        "get",
        "/coreos.com/network/config",
        "--print-value-only",
    ]);
    assert!(o.status.success(), "apiserver-etcd-client: {}", text(&o));

    // Refused on the client port: node credentials of the kubernetes CA.
    let wssl = worker.join("etc/kubernetes/ssl");
    for who in ["kubelet", "kube-proxy"] {
        let o = etcdctl(&[
            &first,
            &format!("--cacert={ca}"),
            &format!("--cert={}", wssl.join(format!("{who}.crt")).display()),
            &format!("--key={}", wssl.join(format!("{who}.key")).display()),
            "get",
            "/coreos.com/network/config",
        ]);
        assert!(
            !o.status.success(),
            "the {who} certificate got into etcd: {}",
            text(&o)
        );
    }

    // The peer port takes members only: every client certificate is refused there, the
    // etcd CA's included; a member's certificate is let in (the refusals are not an outage).
    let peer_url = format!("https://127.0.0.1:{peer}/members");
    let curl = |cert: &Path, key: &Path| -> Output {
        Command::new("curl")
            .args(["-sS", "--http1.1", "--max-time", "5", "--cacert"])
            .arg(&ca)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg(&peer_url)
            .output()
            .expect("curl is installed (scripts/test.sh installs it)")
    };
    let clients = [
        (
            "flanneld's etcd-client",
            PathBuf::from(&cert),
            PathBuf::from(&key),
        ),
        (
            "apiserver-etcd-client",
            ssl.join("apiserver-etcd-client.crt"),
            ssl.join("apiserver-etcd-client.key"),
        ),
        (
            "kubelet",
            wssl.join("kubelet.crt"),
            wssl.join("kubelet.key"),
        ),
    ];
    for (who, c, k) in &clients {
        let o = curl(c, k);
        assert!(
            !o.status.success(),
            "{who} was let in on the peer port: {}",
            text(&o)
        );
    }
    let m = staged.join("etcd02/etc/ssl/etcd");
    let o = curl(&m.join("etcd.crt"), &m.join("etcd.key"));
    assert!(
        o.status.success(),
        "a member on the peer port: {}",
        text(&o)
    );
    assert!(text(&o).contains("etcd01"), "{}", text(&o));

    drop(members);
}
