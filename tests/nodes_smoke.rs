//! The test-node harness (tests/support/nodes.rs) does what push tests rely on: nodes
//! answer over ssh with the generated config under their own names, each in its own
//! namespaces with its own overlay (what one writes, the host and the others do not see),
//! the fake systemctl records and fails on demand, users are per node, real-etcd mode runs
//! a real etcd, and nothing a test started survives the drop. Skipped without root.
//!
//! Addresses 127.0.0.41–.48 (the harness reserves .40–.59 for this file).

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::nodes::{output_text, pid_alive, Nodes};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

#[test]
fn nodes_answer_under_their_names_with_their_own_files() {
    let host_systemctl = Path::new("/usr/local/bin/systemctl").exists();
    let Some(mut nodes) = Nodes::start_or_skip(&[("a", ip(41)), ("b", ip(42)), ("c", ip(43))])
    else {
        return;
    };
    let dir = nodes.dir().to_path_buf();

    // The generated config is self-contained and strict.
    let cfg = std::fs::read_to_string(nodes.ssh_config()).unwrap();
    for want in [
        "Host a\n",
        "HostName 127.0.0.41",
        "User root",
        "IdentitiesOnly yes",
        "StrictHostKeyChecking yes",
        "GlobalKnownHostsFile /dev/null",
        "BatchMode yes",
    ] {
        assert!(cfg.contains(want), "{want:?} not in:\n{cfg}");
    }
    let kh = std::fs::read_to_string(nodes.known_hosts()).unwrap();
    let a = nodes.node("a");
    assert!(
        kh.contains(&format!("a,[127.0.0.41]:{} ssh-ed25519 ", a.port)),
        "{kh}"
    );

    // Plain `ssh -F config node`, as kpki push will run it: the node's hostname, sshd as
    // PID 1 of its PID namespace, the fake systemctl first on root's PATH.
    for n in ["a", "b", "c"] {
        let o = Command::new("ssh")
            .arg("-F")
            .arg(nodes.ssh_config())
            .args([
                n,
                "--",
                "hostname; cat /proc/1/comm; command -v systemctl; echo $PATH",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{n}: {}", output_text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..3], [n, "sshd", "/usr/local/bin/systemctl"], "{out}");
        let path: Vec<&str> = lines[3].split(':').collect();
        let pos = |d: &str| path.iter().position(|p| *p == d);
        assert!(pos("/usr/local/bin") < pos("/usr/bin"), "{out}");
        assert!(pid_alive(nodes.node(n).pid));
    }
    assert_eq!(
        Path::new("/usr/local/bin/systemctl").exists(),
        host_systemctl,
        "the host's /usr/local changed"
    );

    // Private mounts: none shared inside, none of the nodes' on the host.
    let info = nodes.ssh_ok("a", "cat /proc/self/mountinfo");
    assert!(
        info.contains(" /etc ") && info.contains("overlay"),
        "{info}"
    );
    assert!(
        !info.contains("shared:"),
        "a shared mount in the node:\n{info}"
    );
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains(dir.to_str().unwrap()) && !host.contains("/run/kpki-node"),
        "a node's mount leaked to the host:\n{host}"
    );

    // A file written on a: there (read, stat, upper dir), not on b, not on the host.
    let x = "/etc/ssl/etcd/nodes-smoke-x";
    assert!(!Path::new(x).exists(), "the host has {x}");
    nodes.ssh_ok(
        "a",
        &format!("mkdir -p /etc/ssl/etcd && printf 'on a\\n' > {x} && chmod 640 {x}"),
    );
    assert_eq!(nodes.read("a", x).as_deref(), Some(&b"on a\n"[..]));
    assert_eq!(
        nodes.stat("a", x),
        Some((0o640, "root".into(), "root".into()))
    );
    let up = nodes.upper_path("a", x).expect("in a's upper dir");
    assert_eq!(std::fs::read(&up).unwrap(), b"on a\n");
    assert!(up.starts_with(nodes.upper("a", "/etc")));
    assert_eq!(nodes.read("b", x), None);
    assert_eq!(nodes.stat("b", x), None);
    assert_eq!(nodes.upper_path("b", x), None);
    assert!(!Path::new(x).exists() && !Path::new("/etc/ssl/etcd").exists());
    nodes.write("b", "/opt/kpki/y", b"on b");
    assert_eq!(
        nodes.read("b", "/opt/kpki/y").as_deref(),
        Some(&b"on b"[..])
    );
    assert!(!Path::new("/opt/kpki").exists());

    // A host file: seen through, and a node's delete is its own (a whiteout, not the host's).
    let host_file = "/etc/debian_version";
    if let Ok(bytes) = std::fs::read(host_file) {
        assert_eq!(nodes.read("b", host_file).as_deref(), Some(&bytes[..]));
        assert_eq!(nodes.upper_path("b", host_file), None);
        nodes.ssh_ok("b", &format!("rm {host_file}"));
        assert_eq!(nodes.read("b", host_file), None);
        assert_eq!(nodes.upper_path("b", host_file), None);
        assert_eq!(nodes.read("a", host_file).as_deref(), Some(&bytes[..]));
        assert_eq!(std::fs::read(host_file).unwrap(), bytes);
    }
    // /tmp and /run are the node's own tmpfs.
    nodes.ssh_ok("c", "touch /tmp/nodes-smoke-c /run/nodes-smoke-c");
    assert!(!Path::new("/tmp/nodes-smoke-c").exists() && !Path::new("/run/nodes-smoke-c").exists());

    // A node stopped: its processes are gone, ssh to it fails, the others still answer.
    let c_pid = nodes.node("c").pid;
    let c_procs = nodes.processes("c");
    assert!(
        c_procs.iter().any(|p| p.pid == c_pid && p.ns_pid == 1),
        "{c_procs:?}"
    );
    nodes.stop("c");
    assert!(!pid_alive(c_pid));
    assert!(c_procs.iter().all(|p| !p.alive()), "{c_procs:?}");
    assert!(!nodes.ssh("c", "true").status.success());
    assert_eq!(nodes.ssh_ok("a", "hostname").trim(), "a");
    assert!(nodes.upper_path("a", x).is_some());

    let pids: Vec<u32> = nodes.nodes().iter().map(|n| n.pid).collect();
    drop(nodes);
    for pid in pids {
        assert!(!pid_alive(pid), "sshd {pid} survived the drop");
    }
    assert!(!dir.exists(), "{} survived the drop", dir.display());
}

/// The node's systemctl with `args`: (exit code, stdout).
fn systemctl(nodes: &Nodes, node: &str, args: &str) -> (i32, String) {
    let o = nodes.ssh(node, &format!("systemctl {args}"));
    let code = o.status.code().expect("exit code");
    assert_ne!(code, 255, "ssh failed: {}", output_text(&o));
    (code, String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

#[test]
fn fake_systemctl_records_and_fails_on_demand() {
    let Some(nodes) = Nodes::start_or_skip(&[("sys", ip(44))]) else {
        return;
    };
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert_eq!(systemctl(&nodes, "sys", "daemon-reload").0, 0);
    assert_eq!(
        systemctl(&nodes, "sys", "is-active kubelet"),
        (3, "inactive".into())
    );
    assert_eq!(systemctl(&nodes, "sys", "restart kubelet").0, 0);
    assert_eq!(
        systemctl(&nodes, "sys", "is-active kubelet"),
        (0, "active".into())
    );
    let pid = |n: &Nodes| n.read("sys", "/run/fake-systemctl/kubelet.pid");
    let first = pid(&nodes);
    assert_eq!(systemctl(&nodes, "sys", "start kubelet.service").0, 0);
    assert_eq!(pid(&nodes), first, "start of an active unit restarted it");
    assert_eq!(systemctl(&nodes, "sys", "reload-or-restart kubelet").0, 0);
    assert_ne!(pid(&nodes), first, "no new process");

    // Failing on demand: the restart fails, the unit is left failed.
    nodes.fail_unit("sys", "kubelet", true);
    for _ in 0..2 {
        assert_eq!(systemctl(&nodes, "sys", "restart kubelet").0, 1);
    }
    assert_eq!(
        systemctl(&nodes, "sys", "is-active kubelet"),
        (3, "failed".into())
    );
    assert_eq!(systemctl(&nodes, "sys", "start kubelet").0, 1);
    nodes.fail_unit("sys", "kubelet", false);
    assert_eq!(systemctl(&nodes, "sys", "restart kubelet").0, 0);
    assert_eq!(systemctl(&nodes, "sys", "is-active kubelet").0, 0);
    // Once: the restart fails, the next (a rollback's) works.
    nodes.fail_unit_next("sys", "kubelet", 1);
    assert_eq!(systemctl(&nodes, "sys", "restart kubelet").0, 1);
    assert_eq!(systemctl(&nodes, "sys", "restart kubelet").0, 0);
    // try-restart leaves an inactive unit alone; stop, enable, is-enabled.
    assert_eq!(systemctl(&nodes, "sys", "try-restart flanneld").0, 0);
    assert_eq!(systemctl(&nodes, "sys", "is-active flanneld").0, 3);
    assert_eq!(systemctl(&nodes, "sys", "stop kubelet").0, 0);
    assert_eq!(
        systemctl(&nodes, "sys", "is-active kubelet"),
        (3, "inactive".into())
    );
    assert_eq!(
        systemctl(&nodes, "sys", "is-enabled kubelet"),
        (1, "disabled".into())
    );
    assert_eq!(systemctl(&nodes, "sys", "enable --now kubelet").0, 0);
    assert_eq!(systemctl(&nodes, "sys", "is-enabled kubelet").0, 0);
    assert_eq!(
        systemctl(&nodes, "sys", "-q is-active kubelet"),
        (0, String::new())
    );
    assert_eq!(systemctl(&nodes, "sys", "frobnicate kubelet").0, 1);

    let log = nodes.systemctl_log("sys");
    let args: Vec<&str> = log.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        args,
        [
            "daemon-reload",
            "is-active kubelet",
            "restart kubelet",
            "is-active kubelet",
            "start kubelet.service",
            "reload-or-restart kubelet",
            "restart kubelet",
            "restart kubelet",
            "is-active kubelet",
            "start kubelet",
            "restart kubelet",
            "is-active kubelet",
            "restart kubelet",
            "restart kubelet",
            "try-restart flanneld",
            "is-active flanneld",
            "stop kubelet",
            "is-active kubelet",
            "is-enabled kubelet",
            "enable --now kubelet",
            "is-enabled kubelet",
            "-q is-active kubelet",
            "frobnicate kubelet",
        ]
    );
    assert!(log[0].0 >= before, "{} < {before}", log[0].0);
    assert!(log.windows(2).all(|w| w[0].0 <= w[1].0), "{log:?}");
}

#[test]
fn add_user_is_per_node() {
    let user = "kpkismoke";
    let Some(nodes) = Nodes::start_or_skip(&[("ua", ip(45)), ("ub", ip(46))]) else {
        return;
    };
    let on_host = |cmd: &str| Command::new("getent").args([cmd, user]).output().unwrap();
    assert!(
        !on_host("passwd").status.success(),
        "the host has a user {user}"
    );
    nodes.add_user("ua", user);
    nodes.add_user("ua", user); // twice: nothing
    let chown = format!("touch /opt/f && chown {user}:{user} /opt/f");
    nodes.ssh_ok("ua", &chown);
    assert_eq!(
        nodes.stat("ua", "/opt/f"),
        Some((0o644, user.into(), user.into()))
    );
    assert!(!nodes.ssh("ub", &chown).status.success(), "ub knows {user}");
    assert!(!on_host("passwd").status.success() && !on_host("group").status.success());
    // A user the node already has (root, the host's) is left alone.
    nodes.add_user("ub", "root");
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

/// Waits (at most 15 s) until etcd at `endpoint` is healthy.
fn wait_healthy(nodes: &Nodes, node: &str, endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let o = etcdctl(&["--endpoints", endpoint, "endpoint", "health"]);
        if o.status.success() {
            return;
        }
        if Instant::now() >= deadline {
            let log = nodes
                .upper_path(node, "/var/log/etcd.log")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            panic!(
                "{endpoint} not healthy in 15 s: {}\netcd.log:\n{log}",
                output_text(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host process of the node's etcd, from the PID file the fake systemctl wrote.
fn etcd_process(nodes: &Nodes, node: &str) -> support::nodes::NodeProcess {
    let ns_pid: u32 = String::from_utf8(nodes.read(node, "/run/fake-systemctl/etcd.pid").unwrap())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let p = nodes
        .process(node, ns_pid)
        .unwrap_or_else(|| panic!("no process {ns_pid} on {node}: {:?}", nodes.processes(node)));
    assert_eq!(p.comm, "etcd", "{p:?}");
    p
}

#[test]
fn real_etcd_starts_restarts_and_dies_with_its_node() {
    let Some(nodes) = Nodes::start_or_skip(&[("etcd1", ip(47))]) else {
        return;
    };
    let endpoint = "http://127.0.0.47:23790";
    let options = "# A single plain-HTTP member on the node's address.\n\
                   ETCD_NAME=etcd1\n\
                   ETCD_DATA_DIR=/var/lib/etcd/nodes-smoke\n\
                   \n\
                   ETCD_LISTEN_CLIENT_URLS=http://127.0.0.47:23790\n\
                   ETCD_ADVERTISE_CLIENT_URLS=\"http://127.0.0.47:23790\"\n\
                   ETCD_LISTEN_PEER_URLS=http://127.0.0.47:23800\n\
                   ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.47:23800\n\
                   ETCD_INITIAL_CLUSTER=etcd1=http://127.0.0.47:23800\n\
                   ETCD_INITIAL_CLUSTER_STATE=new\n\
                   ETCD_INITIAL_CLUSTER_TOKEN=nodes-smoke\n";
    nodes.write("etcd1", "/etc/etcd/options.env", options.as_bytes());
    nodes.real_etcd("etcd1", true);

    assert_eq!(systemctl(&nodes, "etcd1", "start etcd").0, 0);
    wait_healthy(&nodes, "etcd1", endpoint);
    assert_eq!(systemctl(&nodes, "etcd1", "is-active etcd").0, 0);
    let first = etcd_process(&nodes, "etcd1");
    let o = etcdctl(&["--endpoints", endpoint, "put", "/smoke", "kept"]);
    assert!(o.status.success(), "{}", output_text(&o));

    // A restart: a new process, the old one gone, the data kept (in the node's /var).
    assert_eq!(systemctl(&nodes, "etcd1", "restart etcd").0, 0);
    let second = etcd_process(&nodes, "etcd1");
    assert_ne!(second.pid, first.pid);
    assert!(!first.alive(), "the old etcd survived the restart");
    wait_healthy(&nodes, "etcd1", endpoint);
    let o = etcdctl(&[
        "--endpoints",
        endpoint,
        "get",
        "/smoke",
        "--print-value-only",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "kept",
        "{}",
        output_text(&o)
    );
    assert!(nodes
        .upper_path("etcd1", "/var/lib/etcd/nodes-smoke/member")
        .is_some());
    assert!(!Path::new("/var/lib/etcd/nodes-smoke").exists());

    // A start that fails (bad options): exit 1, the unit failed, etcd's complaint shown.
    nodes.write(
        "etcd1",
        "/etc/etcd/options.env",
        format!("{options}ETCD_LISTEN_CLIENT_URLS=not-a-url\n").as_bytes(),
    );
    let o = nodes.ssh("etcd1", "systemctl restart etcd");
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not-a-url"),
        "{}",
        output_text(&o)
    );
    assert!(!second.alive());
    assert_eq!(
        systemctl(&nodes, "etcd1", "is-active etcd"),
        (3, "failed".into())
    );
    nodes.write("etcd1", "/etc/etcd/options.env", options.as_bytes());
    assert_eq!(systemctl(&nodes, "etcd1", "start etcd").0, 0);
    wait_healthy(&nodes, "etcd1", endpoint);
    let third = etcd_process(&nodes, "etcd1");

    // Nothing survives the drop: not the node's sshd, not its etcd.
    let sshd = nodes.node("etcd1").pid;
    drop(nodes);
    assert!(!third.alive(), "etcd {} survived the drop", third.pid);
    assert!(!pid_alive(sshd), "sshd {sshd} survived the drop");
    assert!(
        std::net::TcpStream::connect_timeout(
            &"127.0.0.47:23790".parse().unwrap(),
            Duration::from_secs(1)
        )
        .is_err(),
        "something still listens on etcd's client port"
    );
}

#[test]
fn a_failing_test_still_stops_its_nodes() {
    let mut seen = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(nodes) = Nodes::start_or_skip(&[("boom", ip(48))]) else {
            return;
        };
        nodes.ssh_ok("boom", "systemctl start kubelet");
        let kubelet = nodes.ssh_ok("boom", "cat /run/fake-systemctl/kubelet.pid");
        let kubelet: u32 = kubelet.trim().parse().unwrap();
        seen = Some((nodes.processes("boom"), kubelet, nodes.dir().to_path_buf()));
        panic!("a test fails with its nodes running");
    }));
    let Some((procs, kubelet, dir)) = seen else {
        return; // skipped
    };
    assert!(r.is_err());
    // sshd (PID 1) and the fake kubelet's placeholder, at least.
    assert!(
        procs.iter().any(|p| p.ns_pid == 1 && p.comm == "sshd"),
        "{procs:?}"
    );
    assert!(procs.iter().any(|p| p.ns_pid == kubelet), "{procs:?}");
    let alive: Vec<_> = procs.iter().filter(|p| p.alive()).collect();
    assert!(alive.is_empty(), "survived the unwinding: {alive:?}");
    assert!(!dir.exists(), "{} survived the unwinding", dir.display());
}
