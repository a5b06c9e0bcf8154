//! Never write through a link: a symbolic link planted at any place kpki writes (the
//! store and every file and directory in it, the lock, the ledger, the backup of a
//! migration, an exported or staged tree and every directory and file in it, a CSR's
//! key, an audit report, a new identity, the man pages) is refused with one line naming
//! it, and nothing is written where it points.

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use support::{snapshot, TestEnv};

/// Where every planted link points: a directory and a file that must stay as they are.
struct Elsewhere {
    dir: PathBuf,
}

impl Elsewhere {
    fn new(env: &TestEnv) -> Elsewhere {
        let dir = env.path().join("elsewhere");
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("file"), "not kpki's\n").unwrap();
        Elsewhere { dir }
    }

    /// An empty directory elsewhere.
    fn dir(&self) -> PathBuf {
        self.dir.join("d")
    }

    /// A file elsewhere.
    fn file(&self) -> PathBuf {
        self.dir.join("file")
    }
}

/// Plants a link at `at` (replacing what is there) pointing at `to`.
fn plant(at: &Path, to: &Path) {
    if let Ok(m) = at.symlink_metadata() {
        if m.is_dir() {
            std::fs::remove_dir_all(at).unwrap();
        } else {
            std::fs::remove_file(at).unwrap();
        }
    }
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    symlink(to, at).unwrap();
}

fn unplant(at: &Path) {
    std::fs::remove_file(at).unwrap();
}

/// Runs kpki, expects it to refuse with `code` and one line of error that names a
/// symbolic link, and checks that nothing changed under `elsewhere` nor in the store.
fn refused(env: &TestEnv, args: &[&str], code: i32, elsewhere: &Elsewhere) {
    let before = snapshot(&elsewhere.dir);
    let store = snapshot(&env.store());
    let o = env.run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "kpki {args:?} should refuse: stdout {} stderr {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("is a symbolic link") && err.contains("hint:"),
        "kpki {args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        snapshot(&elsewhere.dir) == before,
        "kpki {args:?} wrote through the link"
    );
    let dirs: Vec<_> = walkdir::WalkDir::new(elsewhere.dir())
        .min_depth(1)
        .into_iter()
        .collect();
    assert!(dirs.is_empty(), "kpki {args:?} made {dirs:?}");
    assert!(
        snapshot(&env.store()) == store,
        "kpki {args:?} changed the store though it refused"
    );
}

#[test]
fn the_store_and_every_file_in_it() {
    let env = TestEnv::new();
    let el = Elsewhere::new(&env);
    // The store itself: `init` and `apply` would create it there.
    plant(&env.store(), &el.dir());
    refused(&env, &["init"], 1, &el);
    refused(&env, &["apply", "--out", "staged"], 1, &el);
    assert!(!env.path().join("staged").exists(), "nothing staged");
    unplant(&env.store());
    env.ok(&["init"]);
    env.ok(&["issue", "--profile", "kubelet", "--node", "worker01"]);
    let issued = env.store().join("issued/kubelet");
    let ledger = || std::fs::read(env.store().join("ledger.jsonl")).unwrap();
    let events = ledger();
    let force = [
        "issue",
        "--profile",
        "kubelet",
        "--node",
        "worker01",
        "--force",
    ];
    // A profile's directory, an issuance's, its `current` pointer.
    for (at, to) in [
        (issued.clone(), el.dir()),
        (issued.join("worker01"), el.dir()),
        (issued.join("worker01/current"), el.file()),
    ] {
        let keep = env.path().join("kept");
        std::fs::rename(&at, &keep).unwrap();
        if keep.is_file() {
            std::fs::copy(&keep, el.file()).unwrap();
        }
        plant(&at, &to);
        refused(&env, &force, 1, &el);
        unplant(&at);
        std::fs::rename(&keep, &at).unwrap();
    }
    // The files written in place (lock, ledger) and the config.
    for name in [".lock", "ledger.jsonl", "kpki.toml"] {
        let at = env.store().join(name);
        let keep = env.path().join("kept");
        std::fs::rename(&at, &keep).unwrap();
        std::fs::copy(&keep, el.file()).unwrap();
        plant(&at, &el.file());
        refused(&env, &force, 1, &el);
        refused(&env, &["init", "--force"], 1, &el);
        unplant(&at);
        std::fs::rename(&keep, &at).unwrap();
        std::fs::write(el.file(), "not kpki's\n").unwrap();
    }
    // The CAs' directory: `init --force` makes new CAs in it.
    let ca = env.store().join("ca");
    std::fs::rename(&ca, env.path().join("kept")).unwrap();
    plant(&ca, &el.dir());
    refused(&env, &["init", "--force"], 1, &el);
    unplant(&ca);
    std::fs::rename(env.path().join("kept"), &ca).unwrap();
    assert!(ledger() == events, "nothing recorded by a refused command");
    env.ok(&force);
    env.ok(&["store", "verify"]);
}

#[test]
fn the_backup_of_a_migration() {
    let env = TestEnv::new();
    let el = Elsewhere::new(&env);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1");
    let copied = std::process::Command::new("cp")
        .args([
            "-a",
            fixture.join("pki").to_str().unwrap(),
            env.path().to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(copied.success());
    let id = env.identity();
    std::fs::create_dir_all(id.parent().unwrap()).unwrap();
    std::fs::copy(fixture.join("identity.txt"), &id).unwrap();
    std::fs::set_permissions(&id, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let backup = env.store().join("backup");
    std::fs::rename(&backup, env.path().join("old-backups")).unwrap();
    plant(&backup, &el.dir());
    refused(&env, &["store", "verify"], 1, &el);
    unplant(&backup);
    std::fs::rename(env.path().join("old-backups"), &backup).unwrap();
    env.ok(&["store", "verify"]);
}

#[test]
fn exported_and_staged_trees() {
    let env = TestEnv::new();
    let el = Elsewhere::new(&env);
    env.init();
    env.ok(&["apply", "--out", "staged"]);
    env.ok(&[
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--force",
        "--out",
        "out",
    ]);
    let issue = [
        "issue",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--force",
        "--out",
        "out",
    ];
    let apply = ["apply", "--out", "staged"];
    let render = ["render", "--all", "--out", "staged"];
    for (root, args) in [
        ("out", &issue[..]),
        ("staged", &apply[..]),
        ("staged", &render[..]),
    ] {
        let root = env.path().join(root);
        let tree = root.join("etcd01");
        let places = [
            (root.clone(), el.dir()),
            (tree.clone(), el.dir()),
            (tree.join("etc"), el.dir()),
            (tree.join("etc/ssl/etcd"), el.dir()),
            (tree.join("etc/ssl/etcd/etcd.key"), el.file()),
            (tree.join("etc/ssl/etcd/ca.crt"), el.file()),
            (tree.join("var/lib/kpki/manifest.json"), el.file()),
        ];
        for (i, (at, to)) in places.into_iter().enumerate() {
            // `issue --out` writes no manifest; `render` no certificate, key or manifest.
            if (args[0] == "issue" && i == 6) || (args[0] == "render" && i > 2) {
                continue;
            }
            let keep = env.path().join("kept");
            std::fs::rename(&at, &keep).unwrap();
            plant(&at, &to);
            refused(&env, args, 1, &el);
            unplant(&at);
            std::fs::rename(&keep, &at).unwrap();
        }
    }
    // `sign --out` writes as `issue --out` does.
    env.ok(&[
        "csr",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--out",
        "node",
    ]);
    let signed = env.path().join("signed");
    plant(&signed, &el.dir());
    refused(
        &env,
        &[
            "sign",
            "--csr",
            "node/etcd.csr",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--force",
            "--out",
            "signed",
        ],
        1,
        &el,
    );
}

#[test]
fn a_csr_key_an_audit_report_an_identity_and_man_pages() {
    let env = TestEnv::new();
    let el = Elsewhere::new(&env);
    env.init();
    let csr = [
        "csr",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--out",
        "node",
        "--force",
    ];
    let node = env.path().join("node");
    plant(&node, &el.dir());
    refused(&env, &csr, 1, &el);
    unplant(&node);
    env.ok(&csr);
    for f in ["etcd.key", "etcd.csr"] {
        let at = node.join(f);
        plant(&at, &el.file());
        refused(&env, &csr, 1, &el);
        unplant(&at);
    }

    // The audit's report, and the directory it goes in.
    let report = env.path().join("reports");
    std::fs::create_dir(&report).unwrap();
    let audit = ["audit", "pki", "--format", "prometheus", "--output"];
    for (at, out, to) in [
        (report.join("kpki.prom"), "reports/kpki.prom", el.file()),
        (env.path().join("linked"), "linked/kpki.prom", el.dir()),
    ] {
        plant(&at, &to);
        refused(&env, &[&audit[..], &[out]].concat(), 3, &el);
        unplant(&at);
    }

    // A new identity: at a link, or in a linked directory.
    for (at, id, to) in [
        (env.path().join("id.txt"), "id.txt", el.dir().join("id.txt")),
        (env.path().join("ids"), "ids/id.txt", el.dir()),
    ] {
        plant(&at, &to);
        refused(
            &env,
            &["init", "--store", "second", "--identity", id],
            1,
            &el,
        );
        assert!(!env.path().join("second/kpki.toml").exists());
        unplant(&at);
    }

    // The man pages (a hidden command of the build).
    let man = env.path().join("man");
    plant(&man, &el.dir());
    refused(&env, &["generate-man", "--out", "man"], 1, &el);
    unplant(&man);
    env.ok(&["generate-man", "--out", "man"]);
    let page = man.join("kpki.1");
    assert!(page.is_file());
    plant(&page, &el.file());
    refused(&env, &["generate-man", "--out", "man"], 1, &el);
}
