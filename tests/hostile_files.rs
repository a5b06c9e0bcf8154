//! Bounded work on hostile files: each bomb is built here and handed to the kpki binary,
//! which runs under a memory limit (RLIMIT_AS, set in the child before exec) and a time
//! limit (the test waits so long, then kills the child by its PID and fails). A bomb
//! passes when kpki finishes on its own, with its usual exit status, and reports the bad
//! file as one line naming it and what is wrong; it fails when kpki hangs, is killed,
//! or aborts out of memory.

mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::TestEnv;

/// Address space for one kpki run: a normal run of the debug build needs a fraction.
const MEMORY: u64 = 1 << 30;
/// How long one kpki run may take before it counts as hung. Far above what a run takes
/// on a loaded machine; a bomb that is not defused runs for minutes, or forever.
const TIME: Duration = Duration::from_secs(60);

/// What a bounded run of kpki gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout and stderr together, for messages.
    fn all(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` under [`MEMORY`] and [`TIME`]; panics when it is still running by then
/// (after killing it) or when it ended by a signal (an abort out of memory).
fn bounded(mut cmd: Command) -> Run {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is a single system call, async-signal-safe as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            let limit = rustix::process::Rlimit {
                current: Some(MEMORY),
                maximum: Some(MEMORY),
            };
            rustix::process::setrlimit(rustix::process::Resource::As, limit)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().expect("start kpki");
    // Drain the pipes while waiting, so a chatty child cannot block on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TIME;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kpki") {
            break status;
        }
        if Instant::now() > deadline {
            let pid = child.id();
            child.kill().expect("kill kpki by its pid");
            let _ = child.wait();
            panic!("{what} (pid {pid}) still ran after {TIME:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        status.code().is_some(),
        "{what} ended by {status} (out of memory under RLIMIT_AS {MEMORY}?):\n{}",
        run.all()
    );
    run
}

fn kpki(env: &TestEnv, args: &[&str]) -> Run {
    let mut cmd = env.kpki();
    cmd.args(args);
    bounded(cmd)
}

/// Asserts one line of `text` names `file` and contains each of `words`.
fn line_names(run: &Run, text: &str, file: &str, words: &[&str]) {
    assert!(
        text.lines()
            .any(|l| l.contains(file) && words.iter().all(|w| l.contains(w))),
        "no line names {file} with {words:?}:\n{}",
        run.all()
    );
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A node tree with one kubeconfig where the configs are read (`/etc/kubernetes`).
fn tree_with_kubeconfig(env: &TestEnv, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = env.path().join(name);
    let file = root.join("etc/kubernetes/admin.kubeconfig");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    (root, file)
}

/// render --check and audit --configs on a tree: both must finish, exit 2, and name the
/// config with each of `words`.
fn both_report(env: &TestEnv, root: &Path, words: &[&str]) {
    let root_s = root.to_str().unwrap();
    let check = kpki(env, &["render", "--check", "--root", root_s]);
    assert_eq!(check.code, 2, "{}", check.all());
    line_names(
        &check,
        &check.stdout,
        "/etc/kubernetes/admin.kubeconfig",
        words,
    );
    let audit = kpki(env, &["audit", "--threads", "2", "--configs", root_s]);
    assert_eq!(audit.code, 2, "{}", audit.all());
    line_names(
        &audit,
        &audit.stdout,
        "etc/kubernetes/admin.kubeconfig",
        words,
    );
}

/// Nine levels of nine aliases: 342 bytes that yaml-rust2 would expand to 9^9 strings.
fn billion_laughs() -> String {
    let mut s = String::from("apiVersion: v1\nkind: Config\nclient-certificate-data: x\n");
    s.push_str("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let mut prev = 'a';
    for c in 'b'..='i' {
        let refs = vec![format!("*{prev}"); 9].join(",");
        s.push_str(&format!("{c}: &{c} [{refs}]\n"));
        prev = c;
    }
    s
}

#[test]
fn a_yaml_alias_bomb_at_a_kubeconfig_path_is_refused() {
    let env = TestEnv::new();
    let (root, file) = tree_with_kubeconfig(&env, "laughs");
    let bomb = billion_laughs();
    assert!(bomb.len() < 600, "{} bytes", bomb.len());
    write(&file, &bomb);
    both_report(&env, &root, &["aliases would expand it past", "not read"]);
    // The audit's walk reads the kubeconfigs it meets with the same reader.
    let walk = kpki(&env, &["audit", "--threads", "2", root.to_str().unwrap()]);
    assert_eq!(walk.code, 2, "{}", walk.all());
    line_names(
        &walk,
        &walk.stdout,
        "admin.kubeconfig",
        &["aliases would expand it past"],
    );
}

/// render --check and audit --configs on `root`: render --check exits 2 and audit
/// --configs `audit_code`, each with a line naming `file` (an install path) with `words`.
fn both_name(env: &TestEnv, root: &Path, file: &str, words: &[&str], audit_code: i32) {
    let root_s = root.to_str().unwrap();
    let check = kpki(env, &["render", "--check", "--root", root_s]);
    assert_eq!(check.code, 2, "{}", check.all());
    line_names(&check, &check.stdout, file, words);
    let audit = kpki(env, &["audit", "--threads", "2", "--configs", root_s]);
    assert_eq!(audit.code, audit_code, "{}", audit.all());
    line_names(&audit, &audit.stdout, &format!("{root_s}{file}"), words);
}

fn mkfifo(path: &Path) {
    let o = Command::new("mkfifo").arg(path).output().expect("mkfifo");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A FIFO at a kubeconfig path hung both readers (opening it waits for a writer); a link
/// to /dev/zero at a kubeconfig or CA path was read without end.
#[test]
fn fifos_and_links_to_dev_zero_are_refused_unread() {
    let env = TestEnv::new();
    let (root, file) = tree_with_kubeconfig(&env, "fifo");
    mkfifo(&file);
    // An unreadable config is a warning for the audit, a failed check for render --check.
    both_name(
        &env,
        &root,
        "/etc/kubernetes/admin.kubeconfig",
        &["is a FIFO, not a regular file; not read"],
        1,
    );

    let (root, file) = tree_with_kubeconfig(&env, "zero");
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    both_name(
        &env,
        &root,
        "/etc/kubernetes/admin.kubeconfig",
        &["is a character device, not a regular file; not read"],
        1,
    );

    // A kubeconfig naming a CA file that is a link to /dev/zero: the checker reads the CA
    // file, the audit trusts the CA files the configs name (and reports the file).
    let (root, file) = tree_with_kubeconfig(&env, "zero-ca");
    write(
        &file,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    certificate-authority: /etc/kubernetes/ssl/ca.crt\n    server: https://127.0.0.1:6443\n",
    );
    let ca = root.join("etc/kubernetes/ssl/ca.crt");
    std::fs::create_dir_all(ca.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &ca).unwrap();
    both_name(
        &env,
        &root,
        "/etc/kubernetes/ssl/ca.crt",
        &["is a character device, not a regular file"],
        1,
    );
}

/// A symbolic link to /proc or /sys inside an audited tree was walked (only the literal
/// paths /proc and /sys were skipped): minutes of reading the kernel's files. Pseudo file
/// systems are now told by their type; the certificate beside the links is still read.
#[test]
fn links_to_proc_and_sys_inside_a_tree_are_not_walked() {
    let env = TestEnv::new();
    let tree = env.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::os::unix::fs::symlink("/proc", tree.join("proc")).unwrap();
    std::os::unix::fs::symlink("/sys", tree.join("etc/sys")).unwrap();
    std::os::unix::fs::symlink("/proc/self", tree.join("self")).unwrap();
    let ca = rcgen::CertificateParams::new(vec!["ca.example".into()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    write(&tree.join("etc/ca.crt"), ca.pem());
    let tree_s = tree.to_str().unwrap();
    let run = kpki(
        &env,
        &["audit", "--threads", "2", "--format", "json", tree_s],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let j: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(j["summary"]["certificates"], 1, "{}", run.all());
    assert_eq!(j["findings"], serde_json::json!([]), "{}", run.all());

    // Named as a root, a pseudo file system is a warning, not a walk.
    let run = kpki(
        &env,
        &["audit", "--threads", "2", &format!("{tree_s}/proc")],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    line_names(
        &run,
        &run.stdout,
        "/proc",
        &["is on proc, a pseudo file system"],
    );
}

/// Certificates under two names, A and B, with two keys: every A is signed by B's key
/// and every B by A's, and none carries a key identifier, so each is a verified issuer
/// of every certificate of the other name. The in-file chain search had no memo: with a
/// trusted CA given it tried every path up to its depth limit, for minutes.
#[test]
fn certificates_that_sign_each_other_in_a_cycle_are_settled_once() {
    use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};
    let env = TestEnv::new();
    let dn = |cn: &str| {
        let mut d = DistinguishedName::new();
        d.push(DnType::CommonName, cn);
        d
    };
    let params = |cn: &str, serial: u64| {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.serial_number = Some(serial.into());
        p
    };
    let (ka, kb) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
    let by_a = Issuer::new(params("cycle A", 0), &ka);
    let by_b = Issuer::new(params("cycle B", 0), &kb);
    let mut pem = String::new();
    let mut serial = 1;
    while pem.len() < 16 * 1024 {
        pem.push_str(
            &params("cycle A", serial)
                .signed_by(&ka, &by_b)
                .unwrap()
                .pem(),
        );
        pem.push_str(
            &params("cycle B", serial + 1)
                .signed_by(&kb, &by_a)
                .unwrap()
                .pem(),
        );
        serial += 2;
    }
    assert!(
        !pem.contains("MA0GA1UdDgQ") && serial > 30,
        "no key identifiers, and enough certificates to blow up"
    );
    let bomb = env.path().join("cycle.pem");
    write(&bomb, &pem);
    // Some CA, so that chains are verified rather than linked by name.
    let mut ca = CertificateParams::new(vec![]).unwrap();
    ca.distinguished_name = dn("unrelated CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_file = env.path().join("ca.crt");
    write(
        &ca_file,
        ca.self_signed(&KeyPair::generate().unwrap()).unwrap().pem(),
    );

    let run = kpki(
        &env,
        &[
            "audit",
            "--threads",
            "2",
            "--format",
            "json",
            "--ca",
            ca_file.to_str().unwrap(),
            bomb.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    let j: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let certs = j["certificates"].as_array().unwrap();
    let in_bomb: Vec<&serde_json::Value> = certs
        .iter()
        .filter(|c| c["path"] == bomb.to_str().unwrap())
        .collect();
    assert_eq!(in_bomb.len(), serial as usize - 1);
    assert!(
        in_bomb.iter().all(|c| c["chain"]["status"] == "untrusted"),
        "none of them chains to the CA: {}",
        run.stdout
    );
}
