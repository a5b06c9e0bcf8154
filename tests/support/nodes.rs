//! Throwaway SSH "nodes" on this machine, for tests that deliver files over the system
//! OpenSSH client (`kpki push`): real sshd, real ssh, real `chown`, no mocks.
//!
//! Each node is one Debian OpenSSH `sshd` (/usr/sbin/sshd, never the machine's own daemon,
//! port or config) run by `unshare --mount --uts --pid --fork --propagation private` as
//! PID 1 of its own mount, UTS and PID namespaces (root only). Inside, before sshd starts:
//!
//! - overlayfs over `/etc`, `/var`, `/usr/local`, `/opt` and `/root`: the lower layer is the
//!   host's directory, the upper and work directories are the node's, in the test's temp
//!   dir. The node sees the host's files and writes only its upper dir; the host and the
//!   other nodes never see what it writes ([`Nodes::upper_path`]);
//! - tmpfs on `/run` and `/tmp`, a fresh `/proc` for the new PID namespace;
//! - the hostname is the node's name.
//!
//! Mount propagation is private (unshare's default, stated explicitly), so no mount leaks
//! to the host. Stopping PID 1 (sshd) by its PID ends the namespace: the kernel kills every
//! other process in it (sessions, an etcd started there). If the test process dies without
//! dropping [`Nodes`], `unshare` gets SIGKILL (parent-death signal of the thread that
//! started the nodes: keep a `Nodes` in the thread that created it) and takes its node
//! with it (`--kill-child`).
//!
//! The client side is ordinary OpenSSH: [`Nodes::ssh_config`] is a file for `ssh -F` (and
//! `kpki push --ssh-config`) with one `Host <name>` block per node, one client key shared by
//! all nodes (authorized for root in the node's `/root/.ssh/authorized_keys`), and a
//! known_hosts with each node's own ed25519 host key under its name and `[addr]:port`.
//! The harness's own helpers ([`Nodes::ssh`], [`Nodes::read`], …) go through one
//! connection master per node that it owns (`ControlPath` in the temp dir), ~10 ms a
//! command instead of a key exchange each; the config file itself has no multiplexing.
//! The nodes share the host's network namespace: a server on a node (etcd) listens on the
//! host's loopback, reachable from the test directly.
//!
//! Each node has a fake `systemctl` at `/usr/local/bin/systemctl` (before `/usr/bin` in
//! root's PATH over ssh) that records every call in `/var/log/fake-systemctl.log`, fails
//! on demand ([`Nodes::fail_unit`]) and can really run etcd ([`Nodes::real_etcd`]): see
//! `tests/support/fake-systemctl.sh` for what each command does.
//!
//! The node's root gets a minimal `/root/.bashrc` (the host's may run slow or
//! host-specific start-up code on every ssh command) and a `/root/.ssh` of its own (opaque:
//! nothing of the host's `/root/.ssh` shows through). Nothing else is put in the upper dirs
//! before the node starts except `/usr/local/bin/systemctl`.
//!
//! Addresses: loopback only (127.0.0.0/8); every node its own address, given by the
//! caller, so that tests running in parallel (threads or test binaries) never share one.
//! Reserved ranges:
//!
//! - 127.0.0.1–.10: tests/e2e_etcd.rs (members on .1–.3) and inventories (not for nodes);
//! - 127.0.0.11–.39: `kpki push` tests;
//! - 127.0.0.40–.59: tests/nodes_smoke.rs (this harness's own test);
//! - 127.0.0.60 and up: `kpki push` tests.
//!
//! Port: sshd listens on the node's address only, port 2222 when free there (the
//! machine's own sshd may hold 0.0.0.0:22), else the next free one (probed up to 2321).
//! A test that runs a server on a node (etcd) uses the node's address and any port.
//!
//! Every wait is bounded; every process started is stopped by its PID. Without root, or
//! without unshare/sshd/ssh/ssh-keygen, [`Nodes::available`] says why and
//! [`Nodes::start_or_skip`] returns `None` (the test returns early) unless
//! `KPKI_REQUIRE_NODES` is set in the environment, where it panics instead (so a CI that
//! must run these tests cannot skip them silently).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// util-linux's unshare.
pub const UNSHARE: &str = "/usr/bin/unshare";
/// Debian's OpenSSH server (package openssh-server).
pub const SSHD: &str = "/usr/sbin/sshd";
/// The OpenSSH client.
pub const SSH: &str = "/usr/bin/ssh";
/// OpenSSH's key generator.
pub const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// The first port tried for a node's sshd (then the next ones, up to 100 of them).
pub const FIRST_PORT: u16 = 2222;

/// How long [`Nodes::start`] waits for every node to accept an ssh connection.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The directories covered by each node's overlay: (mount point, name of its upper dir).
pub const OVERLAYS: [(&str, &str); 5] = [
    ("/etc", "etc"),
    ("/var", "var"),
    ("/usr/local", "usr-local"),
    ("/opt", "opt"),
    ("/root", "root"),
];

/// Where the fake systemctl records its calls, on the node.
pub const SYSTEMCTL_LOG: &str = "/var/log/fake-systemctl.log";

/// The fake systemctl installed in every node.
pub const FAKE_SYSTEMCTL: &str = include_str!("fake-systemctl.sh");

const BASHRC: &str = "# A kpki test node's root .bashrc (tests/support/nodes.rs): the host's is not \
                      used,\n# so commands over ssh run with sshd's PATH and no host start-up code.\n";

/// One running (or stopped) node.
pub struct Node {
    /// The node's name: its ssh `Host` alias and its hostname.
    pub name: String,
    /// Its loopback address, where sshd listens (and where a server on it should).
    pub addr: Ipv4Addr,
    /// sshd's port on `addr`.
    pub port: u16,
    /// The host PID of the namespace's PID 1 (the node's sshd); 0 before it is known.
    pub pid: u32,
    /// `<temp>/nodes/<name>`: ctl/ (sshd_config, host key, init.sh; bound at
    /// /run/kpki-node in the node), upper/ and work/ (overlay layers), sshd.log.
    pub dir: PathBuf,
    /// The `unshare` process; `None` once stopped.
    unshare: Option<Child>,
    /// The harness's ssh connection master for this node (`ssh -N -o ControlMaster=yes`),
    /// which its own commands go through; `None` once stopped.
    master: Option<Child>,
    /// The master's control socket, `<temp>/m<index>` (a socket path has at most 107
    /// bytes, and ssh adds 17 while it creates it); `None`: no multiplexing (a too long
    /// temp dir).
    control: Option<PathBuf>,
}

impl Node {
    /// Whether the node has not been stopped (it may still have died on its own).
    pub fn running(&self) -> bool {
        self.unshare.is_some()
    }

    /// What sshd (and the namespace's start-up script) logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

/// A set of throwaway nodes, stopped and removed when dropped.
pub struct Nodes {
    /// Holds everything: client key, known_hosts, ssh config, each node's dir.
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    ssh_config: PathBuf,
    known_hosts: PathBuf,
    client_key: PathBuf,
}

/// A process of a node's PID namespace, seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProcess {
    /// Its PID on the host (what the host can signal).
    pub pid: u32,
    /// Its PID inside the node (what `$!` and pid files on the node hold).
    pub ns_pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub comm: String,
    /// Its start time (clock ticks after boot), so that a reused PID is not taken for it.
    pub start: u64,
}

impl NodeProcess {
    /// Whether this very process (same PID and start time) is still alive (not a zombie).
    pub fn alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some(s) => s.start == self.start && s.state != 'Z' && s.state != 'X',
            None => false,
        }
    }
}

/// What /proc/PID/stat says that the harness uses.
struct ProcStat {
    state: char,
    ppid: u32,
    start: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ..."; comm may hold spaces and parentheses: split at the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        // Field 22 of stat; `rest` starts at field 3.
        start: f.get(19)?.parse().ok()?,
    })
}

fn host_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a host PID names a live process (not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// `s` quoted for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// stdout and stderr of an output, for messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Waits (bounded) for a child to exit; true if it did.
fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", output_text(&o));
    o
}

fn keygen(path: &Path, comment: &str) {
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path)
            .stdin(Stdio::null()),
    );
}

fn write_mode(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir_mode(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A node name usable as a hostname, an ssh alias and a path component.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
}

/// The first port from [`FIRST_PORT`] that binds on `addr`.
fn free_port(addr: Ipv4Addr) -> u16 {
    (FIRST_PORT..FIRST_PORT + 100)
        .find(|p| TcpListener::bind((addr, *p)).is_ok())
        .unwrap_or_else(|| panic!("no free port from {FIRST_PORT} on {addr}"))
}

impl Nodes {
    /// Whether nodes can run here: root, and unshare, sshd, ssh and ssh-keygen installed.
    /// `Err` says what is missing.
    pub fn available() -> Result<(), String> {
        if !rustix::process::geteuid().is_root() {
            return Err("test nodes need root (unshare, mounts)".into());
        }
        for (bin, package) in [
            (UNSHARE, "util-linux"),
            (SSHD, "openssh-server"),
            (SSH, "openssh-client"),
            (SSH_KEYGEN, "openssh-client"),
        ] {
            if !Path::new(bin).is_file() {
                return Err(format!("{bin} is missing (apt-get install {package})"));
            }
        }
        Ok(())
    }

    /// [`Nodes::start`] if [`Nodes::available`], else `None` after saying why on stderr
    /// (the caller returns: the test is skipped). With `KPKI_REQUIRE_NODES` set, an
    /// unavailable harness panics instead.
    pub fn start_or_skip(nodes: &[(&str, Ipv4Addr)]) -> Option<Nodes> {
        match Nodes::available() {
            Ok(()) => Some(Nodes::start(nodes)),
            Err(why) if std::env::var_os("KPKI_REQUIRE_NODES").is_some() => {
                panic!("KPKI_REQUIRE_NODES is set but test nodes cannot run: {why}")
            }
            Err(why) => {
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    /// Starts one node per `(name, address)` and waits (at most [`START_TIMEOUT`]) until
    /// each accepts an ssh connection with the generated config. Panics with the node's
    /// sshd log if one does not (the nodes already started are stopped by the drop).
    /// Names: lowercase letters, digits and `-`; addresses: distinct, in 127.0.0.0/8.
    pub fn start(nodes: &[(&str, Ipv4Addr)]) -> Nodes {
        if let Err(why) = Nodes::available() {
            panic!("test nodes cannot run here: {why}");
        }
        for (i, (name, addr)) in nodes.iter().enumerate() {
            assert!(valid_name(name), "node name {name:?}");
            assert!(addr.is_loopback(), "{name}: {addr} is not in 127.0.0.0/8");
            assert!(
                !nodes[..i].iter().any(|(n, a)| n == name || a == addr),
                "{name} {addr}: names and addresses must be distinct"
            );
        }
        let dir = temp_dir();
        let root = dir.path().to_path_buf();
        let client_key = root.join("client/id_ed25519");
        mkdir_mode(&root.join("client"), 0o700);
        keygen(&client_key, "kpki-test-client");
        let client_pub = std::fs::read_to_string(client_key.with_extension("pub")).unwrap();

        let mut all = Nodes {
            dir,
            nodes: Vec::new(),
            ssh_config: root.join("ssh_config"),
            known_hosts: root.join("known_hosts"),
            client_key,
        };
        let mut known_hosts = String::new();
        let mut config = String::from(
            "# Test nodes of tests/support/nodes.rs: use with ssh -F this-file <node>.\n",
        );
        for (name, addr) in nodes {
            let port = free_port(*addr);
            let nd = root.join("nodes").join(name);
            let host_key = prepare_node(&nd, name, *addr, port, &client_pub);
            let key = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            known_hosts.push_str(&format!("{name},[{addr}]:{port} {}\n", key.join(" ")));
            config.push_str(&format!(
                "\nHost {name}\n  HostName {addr}\n  Port {port}\n  User root\n  \
                 IdentityFile \"{}\"\n  IdentitiesOnly yes\n  UserKnownHostsFile \"{}\"\n  \
                 GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  \
                 UpdateHostKeys no\n  BatchMode yes\n  ConnectTimeout 5\n",
                all.client_key.display(),
                all.known_hosts.display()
            ));
            let unshare = spawn_node(&nd);
            all.nodes.push(Node {
                name: name.to_string(),
                addr: *addr,
                port,
                pid: 0,
                dir: nd,
                unshare: Some(unshare),
                master: None,
                control: Some(root.join(format!("m{}", all.nodes.len())))
                    .filter(|p| p.as_os_str().len() <= 80),
            });
        }
        write_mode(&all.known_hosts, known_hosts, 0o644);
        write_mode(&all.ssh_config, config, 0o644);

        let deadline = Instant::now() + START_TIMEOUT;
        for i in 0..all.nodes.len() {
            all.wait_ready(i, deadline);
        }
        all
    }

    /// Waits until node `i` answers `ssh node true`, then records its PID 1.
    fn wait_ready(&mut self, i: usize, deadline: Instant) {
        let (name, sock) = {
            let n = &self.nodes[i];
            (n.name.clone(), SocketAddr::from((n.addr, n.port)))
        };
        let mut last = String::new();
        loop {
            let n = &mut self.nodes[i];
            let child = n.unshare.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "node {name} exited at start ({status}); its log:\n{}",
                    n.log()
                );
            }
            if TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok() {
                let o = self.ssh(&name, "true");
                if o.status.success() {
                    break;
                }
                last = output_text(&o);
            }
            if Instant::now() >= deadline {
                panic!(
                    "node {name} did not accept ssh within {START_TIMEOUT:?} (last ssh: \
                     {last}); its log:\n{}",
                    self.nodes[i].log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // sshd is PID 1 of the namespace: the one child of unshare.
        let n = &mut self.nodes[i];
        let upid = n.unshare.as_ref().unwrap().id();
        let init: Vec<u32> = host_pids()
            .into_iter()
            .filter(|p| proc_stat(*p).is_some_and(|s| s.ppid == upid))
            .collect();
        assert_eq!(init.len(), 1, "node {name}: children of unshare: {init:?}");
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", init[0])).unwrap_or_default();
        assert_eq!(comm.trim(), "sshd", "node {name}: PID 1 is {comm:?}");
        n.pid = init[0];
        self.start_master(i);
    }

    /// Starts the harness's connection master to node `i` and waits (at most 5 s) for its
    /// socket. The harness's own ssh commands then skip the key exchange (~0.2 s of CPU
    /// each on a loaded machine); without the socket they connect directly.
    fn start_master(&mut self, i: usize) {
        let Some(sock) = self.nodes[i].control.clone() else {
            return;
        };
        let name = self.nodes[i].name.clone();
        let mut c = Command::new(SSH);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("-F")
            .arg(&self.ssh_config)
            .args(["-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"])
            .arg("-o")
            .arg(format!("ControlPath={}", sock.display()))
            .arg(&name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut master = c.spawn().unwrap_or_else(|e| panic!("{SSH}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sock.exists() && Instant::now() < deadline {
            if let Ok(Some(_)) = master.try_wait() {
                return; // reaped: its PID is not ours to signal any more
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.nodes[i].master = Some(master);
    }

    /// The test's temp dir (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The ssh config file: `ssh -F <it> <node>` (and `kpki push --ssh-config <it>`).
    pub fn ssh_config(&self) -> &Path {
        &self.ssh_config
    }

    /// The known_hosts file listing every node's host key (under its name and [addr]:port).
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The client's private key, authorized for root on every node.
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// All nodes, in the order given to [`Nodes::start`].
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node called `name` (panics if there is none).
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no test node {name}"))
    }

    /// An `ssh -F <config> <node> -- <command>` command with a clean environment (no
    /// agent) and stdin from /dev/null (change stdio before running it). It goes through
    /// the harness's connection master for the node (`-o ControlPath=…`, no new key
    /// exchange); the generated config itself has no multiplexing, so a plain
    /// `ssh -F <config>` (and kpki push) makes its own connections.
    pub fn ssh_command(&self, node: &str, command: &str) -> Command {
        let n = self.node(node);
        let mut c = Command::new(SSH);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("-F")
            .arg(&self.ssh_config)
            .args(["-o", "ControlMaster=no", "-o"])
            .arg(match &n.control {
                Some(p) => format!("ControlPath={}", p.display()),
                None => "ControlPath=none".into(),
            })
            .args([node, "--", command])
            .stdin(Stdio::null());
        c
    }

    /// Runs `command` (a shell command line) on the node as root over ssh.
    pub fn ssh(&self, node: &str, command: &str) -> Output {
        self.ssh_command(node, command)
            .output()
            .unwrap_or_else(|e| panic!("{SSH}: {e}"))
    }

    /// Runs `command` on the node, asserts it succeeded, returns its stdout.
    pub fn ssh_ok(&self, node: &str, command: &str) -> String {
        let o = self.ssh(node, command);
        assert!(
            o.status.success(),
            "on {node}: {command}: {} {}",
            o.status,
            output_text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Writes `contents` to `abs_path` on the node (over ssh: `mkdir -p` of its directory,
    /// then `cat >`), as a test's stand-in for files a node already had.
    pub fn write(&self, node: &str, abs_path: &str, contents: &[u8]) {
        use std::io::Write;
        assert!(abs_path.starts_with('/'), "{abs_path}: not absolute");
        let q = shell_quote(abs_path);
        let mut child = self
            .ssh_command(node, &format!("mkdir -p \"$(dirname {q})\" && cat > {q}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{SSH}: {e}"));
        child.stdin.take().unwrap().write_all(contents).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "writing {abs_path} on {node}: {}",
            output_text(&o)
        );
    }

    /// The node's overlay upper dir for one of the [`OVERLAYS`] mount points (`"/etc"`, …):
    /// what the node wrote there, and only that.
    pub fn upper(&self, node: &str, mount_root: &str) -> PathBuf {
        let (_, dir) = OVERLAYS
            .iter()
            .find(|(m, _)| *m == mount_root)
            .unwrap_or_else(|| panic!("{mount_root} is not one of {OVERLAYS:?}"));
        self.node(node).dir.join("upper").join(dir)
    }

    /// Where the node's upper dir holds `abs_path`, if the node wrote it (created, changed,
    /// chmod'ed or chown'ed it, which copies a host file up): `None` for a path the node
    /// did not touch (even if the host has it), deleted (a whiteout) or outside the
    /// overlays. Read from the host's side, so it also works once the node is stopped;
    /// see [`Nodes::read`] for the node's own view.
    pub fn upper_path(&self, node: &str, abs_path: &str) -> Option<PathBuf> {
        let p = Path::new(abs_path);
        let (mount, _) = OVERLAYS.iter().find(|(m, _)| p.starts_with(m))?;
        let rest = p.strip_prefix(mount).unwrap();
        assert!(
            rest.components().all(|c| matches!(c, Component::Normal(_))),
            "{abs_path}: not a plain absolute path"
        );
        let up = self.upper(node, mount).join(rest);
        let md = std::fs::symlink_metadata(&up).ok()?;
        let whiteout = md.file_type().is_char_device() && md.rdev() == 0;
        (!whiteout).then_some(up)
    }

    /// The bytes the node holds at `abs_path` (a regular file, symlinks followed), `None` if
    /// it has none. Read over ssh (`cat`), because that is the node's own merged view: the
    /// host's file where the node did not write, the node's where it did, nothing where it
    /// deleted one. Panics if ssh fails (a node down is not an absent file).
    pub fn read(&self, node: &str, abs_path: &str) -> Option<Vec<u8>> {
        let q = shell_quote(abs_path);
        let o = self.ssh(
            node,
            &format!("if [ -f {q} ]; then exec cat -- {q}; else exit 3; fi"),
        );
        match o.status.code() {
            Some(0) => Some(o.stdout),
            Some(3) => None,
            _ => panic!("reading {abs_path} on {node}: {}", output_text(&o)),
        }
    }

    /// `(mode, owner, group)` of `abs_path` on the node (not following a final symlink),
    /// `None` if there is nothing there: `stat -c '%a %U %G'` over ssh. `mode` is the
    /// permission bits (e.g. `0o600`, with setuid/setgid/sticky).
    pub fn stat(&self, node: &str, abs_path: &str) -> Option<(u32, String, String)> {
        let q = shell_quote(abs_path);
        let o = self.ssh(
            node,
            &format!(
                "if [ -e {q} ] || [ -L {q} ]; then exec stat -c '%a %U %G' -- {q}; else exit 3; fi"
            ),
        );
        match o.status.code() {
            Some(0) => {
                let s = String::from_utf8_lossy(&o.stdout).into_owned();
                let f: Vec<&str> = s.split_whitespace().collect();
                assert_eq!(f.len(), 3, "stat of {abs_path} on {node}: {s}");
                let mode = u32::from_str_radix(f[0], 8).unwrap();
                Some((mode, f[1].to_owned(), f[2].to_owned()))
            }
            Some(3) => None,
            _ => panic!("stat of {abs_path} on {node}: {}", output_text(&o)),
        }
    }

    /// Every call of the node's fake systemctl, oldest first: (unix time in ns, args
    /// joined by spaces). Read from the node's upper dir, so it works after the node is
    /// stopped too; empty if systemctl was never called.
    pub fn systemctl_log(&self, node: &str) -> Vec<(u128, String)> {
        let Some(p) = self.upper_path(node, SYSTEMCTL_LOG) else {
            return Vec::new();
        };
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .lines()
            .map(|l| {
                let (t, args) = l.split_once(' ').unwrap_or((l, ""));
                let t = t
                    .parse()
                    .unwrap_or_else(|_| panic!("{node}: bad systemctl log line {l:?}"));
                (t, args.to_owned())
            })
            .collect()
    }

    /// Makes `systemctl start|restart <unit>` fail on the node (exit 1, unit left stopped
    /// and "failed") until called again with `fail = false`.
    pub fn fail_unit(&self, node: &str, unit: &str, fail: bool) {
        self.set_flag(node, &format!("fail-{unit}"), fail.then_some(""));
    }

    /// Makes the next `times` starts/restarts of `unit` on the node fail, then succeed again
    /// (e.g. a restart fails, the rollback's restart works).
    pub fn fail_unit_next(&self, node: &str, unit: &str, times: u32) {
        self.set_flag(node, &format!("fail-{unit}"), Some(&times.to_string()));
    }

    /// Real mode for etcd on the node: `systemctl start|restart|stop etcd` runs
    /// /usr/bin/etcd from /etc/etcd/options.env (see fake-systemctl.sh). Off: a fake unit.
    pub fn real_etcd(&self, node: &str, on: bool) {
        self.set_flag(node, "real-etcd", on.then_some(""));
    }

    /// Creates or removes /etc/fake-systemctl/<flag> on the node (over ssh: an overlay's
    /// upper dir must not be changed behind a mounted overlay's back).
    fn set_flag(&self, node: &str, flag: &str, contents: Option<&str>) {
        let f = shell_quote(&format!("/etc/fake-systemctl/{flag}"));
        let cmd = match contents {
            Some(c) => format!(
                "mkdir -p /etc/fake-systemctl && printf %s {} > {f}",
                shell_quote(c)
            ),
            None => format!("rm -f {f}"),
        };
        self.ssh_ok(node, &cmd);
    }

    /// Adds a system user `user` with a group of the same name on the node only (`useradd`
    /// over ssh, in its overlay /etc), so `chown user:user` works there. Does nothing if
    /// the node already has the user (the host's users show through: the host may have
    /// `etcd` already); joins an existing group of that name.
    pub fn add_user(&self, node: &str, user: &str) {
        assert!(valid_name(user), "user name {user:?}");
        self.ssh_ok(
            node,
            &format!(
                "id -u {user} >/dev/null 2>&1 && exit 0; \
                 if getent group {user} >/dev/null; then g='-g {user}'; else g=--user-group; fi; \
                 useradd --system $g --no-create-home --no-log-init --home-dir /nonexistent \
                 --shell /usr/sbin/nologin {user}"
            ),
        );
    }

    /// Adds a system group on the node only (nothing if it has one of that name).
    pub fn add_group(&self, node: &str, group: &str) {
        assert!(valid_name(group), "group name {group:?}");
        self.ssh_ok(
            node,
            &format!("getent group {group} >/dev/null || groupadd --system {group}"),
        );
    }

    /// Every process in the node's PID namespace (sshd, sessions, etcd, fake units), with
    /// its host PID. Empty once the node is stopped.
    pub fn processes(&self, node: &str) -> Vec<NodeProcess> {
        let n = self.node(node);
        if !n.running() || n.pid == 0 {
            return Vec::new();
        }
        let Ok(ns) = std::fs::read_link(format!("/proc/{}/ns/pid", n.pid)) else {
            return Vec::new();
        };
        host_pids()
            .into_iter()
            .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|l| l == ns))
            .filter_map(|pid| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let ns_pid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))?
                    .split_whitespace()
                    .last()?
                    .parse()
                    .ok()?;
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                Some(NodeProcess {
                    pid,
                    ns_pid,
                    comm: comm.trim().to_owned(),
                    start: proc_stat(pid)?.start,
                })
            })
            .collect()
    }

    /// The node's process whose PID inside the node is `ns_pid` (e.g. from a pid file).
    pub fn process(&self, node: &str, ns_pid: u32) -> Option<NodeProcess> {
        self.processes(node)
            .into_iter()
            .find(|p| p.ns_pid == ns_pid)
    }

    /// Stops one node (a node going down): SIGTERM to its sshd (PID 1 of the namespace,
    /// so every process in there dies with it), SIGKILL after 5 s, and reaps unshare.
    /// Its upper dirs stay for inspection until the drop.
    pub fn stop(&mut self, node: &str) {
        let i = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .unwrap_or_else(|| panic!("no test node {node}"));
        stop_node(&mut self.nodes[i]);
    }
}

fn stop_node(n: &mut Node) {
    use rustix::process::Signal;
    let master = n.master.take();
    let Some(mut child) = n.unshare.take() else {
        return;
    };
    // A child already reaped (it died at start) keeps its status: its PID is not ours any
    // more, nor is PID 1 of its namespace (killed with it by --kill-child).
    if !matches!(child.try_wait(), Ok(Some(_))) {
        if n.pid != 0 {
            signal(n.pid, Signal::TERM);
        } else {
            // Not known yet (start failed early): unshare's --kill-child ends the namespace.
            signal(child.id(), Signal::KILL);
        }
        if !wait_child(&mut child, Duration::from_secs(5)) {
            if n.pid != 0 {
                signal(n.pid, Signal::KILL);
            }
            signal(child.id(), Signal::KILL);
            wait_child(&mut child, Duration::from_secs(5));
        }
    }
    // The connection master lost its server; it may have exited already.
    if let Some(mut m) = master {
        if !matches!(m.try_wait(), Ok(Some(_))) {
            signal(m.id(), Signal::TERM);
            if !wait_child(&mut m, Duration::from_secs(2)) {
                signal(m.id(), Signal::KILL);
                wait_child(&mut m, Duration::from_secs(2));
            }
        }
    }
}

impl Drop for Nodes {
    /// Stops every node by its PID (bounded), then the temp dir goes.
    fn drop(&mut self) {
        for n in &mut self.nodes {
            stop_node(n);
        }
    }
}

/// A temp dir the nodes can use: not under a directory the namespace covers (their overlay
/// or tmpfs would hide or overlap it) other than /tmp, which start-up binds before hiding.
fn temp_dir() -> tempfile::TempDir {
    let base = std::env::temp_dir();
    let covered = ["/etc", "/var", "/usr/local", "/opt", "/root", "/run"]
        .iter()
        .any(|c| base.starts_with(c));
    let base = if covered { PathBuf::from("/tmp") } else { base };
    let dir = tempfile::Builder::new()
        .prefix("kpki-nodes-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("temp dir in {}: {e}", base.display()));
    let s = dir.path().to_str().expect("UTF-8 temp dir");
    assert!(
        !s.contains([',', ':', '"', '\'', ' ', '\n']),
        "temp dir {s}: unusable in mount options and ssh config"
    );
    dir
}

/// Lays out a node's dir: upper/work layers (with the fake systemctl, root's ssh key and
/// .bashrc), its host key, sshd_config and start-up script. Returns the host key's path.
fn prepare_node(nd: &Path, name: &str, addr: Ipv4Addr, port: u16, client_pub: &str) -> PathBuf {
    let ctl = nd.join("ctl");
    mkdir_mode(&ctl, 0o700);
    for (mount, dir) in OVERLAYS {
        let upper = nd.join("upper").join(dir);
        mkdir_mode(&nd.join("work").join(dir), 0o700);
        // The merged root takes the upper dir's mode and owner: the host dir's.
        let md = std::fs::metadata(mount).unwrap_or_else(|e| panic!("{mount}: {e}"));
        mkdir_mode(&upper, md.mode() & 0o7777);
        std::os::unix::fs::chown(&upper, Some(md.uid()), Some(md.gid())).unwrap();
    }
    let up = nd.join("upper");
    let bin = up.join("usr-local/bin");
    mkdir_mode(&bin, 0o755);
    write_mode(&bin.join("systemctl"), FAKE_SYSTEMCTL, 0o755);
    write_mode(&up.join("root/.bashrc"), BASHRC, 0o644);
    let ssh_dir = up.join("root/.ssh");
    mkdir_mode(&ssh_dir, 0o700);
    // Opaque: the host's /root/.ssh does not show through.
    rustix::fs::setxattr(
        &ssh_dir,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap_or_else(|e| panic!("{}: setxattr: {e}", ssh_dir.display()));
    write_mode(&ssh_dir.join("authorized_keys"), client_pub, 0o600);

    let host_key = ctl.join("ssh_host_ed25519_key");
    keygen(&host_key, name);
    // Paths as the node sees them: ctl/ is bound at /run/kpki-node. Key exchange with
    // curve25519 only: the post-quantum default (sntrup761) costs ~0.2 s of CPU per
    // connection on a loaded machine, and these nodes test file delivery, not crypto.
    let sshd_config = format!(
        "# sshd of test node {name} (tests/support/nodes.rs): self-contained, no Include.\n\
         ListenAddress {addr}:{port}\n\
         HostKey /run/kpki-node/ssh_host_ed25519_key\n\
         PidFile /run/sshd.pid\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         StrictModes yes\n\
         PermitUserEnvironment no\n\
         UseDNS no\n\
         KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         X11Forwarding no\n\
         MaxStartups 100\n\
         MaxSessions 50\n\
         Subsystem sftp internal-sftp\n"
    );
    write_mode(&ctl.join("sshd_config"), sshd_config, 0o600);

    let mut init = String::from("set -eu\n");
    for (mount, dir) in OVERLAYS {
        let opts = format!(
            "lowerdir={mount},upperdir={},workdir={}",
            up.join(dir).display(),
            nd.join("work").join(dir).display()
        );
        init.push_str(&format!(
            "mount -t overlay overlay -o {} {mount}\n",
            shell_quote(&opts)
        ));
    }
    init.push_str(&format!(
        "mount -t tmpfs -o mode=0755,size=64m tmpfs /run\n\
         mkdir -m 0755 /run/sshd /run/kpki-node /run/lock\n\
         mount --bind {} /run/kpki-node\n\
         mount -t tmpfs -o mode=1777,size=256m tmpfs /tmp\n\
         mount -t proc -o nosuid,nodev,noexec proc /proc\n\
         hostname {}\n\
         exec {SSHD} -D -e -f /run/kpki-node/sshd_config\n",
        shell_quote(ctl.to_str().unwrap()),
        shell_quote(name),
    ));
    write_mode(&ctl.join("init.sh"), init, 0o600);
    host_key
}

/// Starts a node's namespace: unshare runs init.sh as PID 1, which execs sshd.
fn spawn_node(nd: &Path) -> Child {
    let log = std::fs::File::create(nd.join("sshd.log")).unwrap();
    let mut c = Command::new(UNSHARE);
    c.args([
        "--mount",
        "--uts",
        "--pid",
        "--fork",
        "--propagation",
        "private",
        "--kill-child=SIGKILL",
        "/bin/sh",
    ])
    .arg(nd.join("ctl/init.sh"))
    .env_clear()
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    .current_dir("/")
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory. If the
    // test process dies without dropping the Nodes, unshare is killed, and its
    // --kill-child takes the namespace's PID 1 (and so the whole node) with it.
    unsafe {
        c.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    c.spawn().unwrap_or_else(|e| panic!("{UNSHARE}: {e}"))
}
