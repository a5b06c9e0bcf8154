//! The whole standard error of representative failures, pinned as snapshots in
//! `tests/snapshots/`, so that a changed message (or hint, or exit status) is a reviewed
//! diff. Each case runs in a new temporary directory; its path is written `[TMP]` and the
//! repository's `[REPO]`.
//!
//! A message changed on purpose: run `INSTA_UPDATE=always cargo test --test
//! error_snapshots` (or `cargo insta review`) and commit the new `.snap` files with the
//! change.

mod support;

use support::TestEnv;

/// What a case needs before its command runs.
#[derive(Clone, Copy)]
enum Setup {
    Nothing,
    Store,
    /// A store and `kpki apply --out staged`.
    Staged,
}

struct Case {
    name: &'static str,
    setup: Setup,
    /// Files written into the directory first: (name, contents).
    files: &'static [(&'static str, &'static str)],
    /// Commands run (and required to succeed) after the setup.
    before: &'static [&'static [&'static str]],
    args: &'static [&'static str],
}

const INVENTORY: &str = r#"[cluster]
name = "t"
domain = "example.com"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[[nodes]]
name = "etcd01"
fqdn = "etcd01.example.com"
ip = "192.168.0.1"
roles = ["etcd"]

[[nodes]]
name = "etcd02"
fqdn = "etcd02.example.com"
ip = "192.168.0.1"
roles = ["etcd"]
"#;

const CASES: &[Case] = &[
    Case {
        name: "missing_store",
        setup: Setup::Nothing,
        files: &[],
        before: &[],
        args: &["issue", "--profile", "etcd-peer", "--node", "etcd01"],
    },
    Case {
        name: "store_exists",
        setup: Setup::Store,
        files: &[],
        before: &[],
        args: &["init"],
    },
    Case {
        name: "unknown_profile",
        setup: Setup::Store,
        files: &[],
        before: &[],
        args: &["issue", "--profile", "etcd-per", "--node", "etcd01"],
    },
    Case {
        name: "unknown_node",
        setup: Setup::Store,
        files: &[],
        before: &[],
        args: &["issue", "--profile", "etcd-peer", "--node", "etcd1"],
    },
    Case {
        name: "role_mismatch",
        setup: Setup::Store,
        files: &[],
        before: &[],
        args: &["issue", "--profile", "etcd-peer", "--node", "worker01"],
    },
    Case {
        name: "already_issued",
        setup: Setup::Store,
        files: &[],
        before: &[&["issue", "--profile", "etcd-peer", "--node", "etcd01"]],
        args: &["issue", "--profile", "etcd-peer", "--node", "etcd01"],
    },
    Case {
        name: "wrong_identity",
        setup: Setup::Store,
        files: &[],
        // Another store's identity.
        before: &[&["init", "--store", "other", "--identity", "other.txt"]],
        args: &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--identity",
            "other.txt",
        ],
    },
    Case {
        name: "bad_validity",
        setup: Setup::Store,
        files: &[],
        before: &[],
        args: &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--validity",
            "10months",
        ],
    },
    Case {
        name: "weak_algorithm",
        setup: Setup::Store,
        files: &[],
        before: &[],
        args: &[
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--algorithm",
            "rsa-1024",
        ],
    },
    Case {
        name: "inventory_duplicate_ip",
        setup: Setup::Store,
        files: &[("inv.toml", INVENTORY)],
        before: &[],
        args: &["issue", "--all", "--inventory", "inv.toml"],
    },
    Case {
        name: "inventory_not_toml",
        setup: Setup::Nothing,
        files: &[("inv.toml", "[cluster\nname=")],
        before: &[],
        args: &["render", "--all", "--inventory", "inv.toml"],
    },
    Case {
        name: "clap_conflict",
        setup: Setup::Nothing,
        files: &[],
        before: &[],
        args: &["issue", "--profile", "etcd-peer", "--node", "a", "--all"],
    },
    Case {
        name: "render_check_without_tree",
        setup: Setup::Nothing,
        files: &[],
        before: &[],
        args: &["render", "--check"],
    },
    Case {
        name: "push_unknown_node",
        setup: Setup::Staged,
        files: &[],
        before: &[],
        args: &["push", "--out", "staged", "--node", "nope"],
    },
    Case {
        name: "push_no_selection",
        setup: Setup::Staged,
        files: &[],
        before: &[],
        args: &["push", "--out", "staged"],
    },
    Case {
        name: "rotate_bad_window",
        setup: Setup::Staged,
        files: &[],
        before: &[],
        args: &[
            "rotate",
            "--out",
            "staged",
            "--within",
            "30d",
            "--window",
            "Funday 02:00-04:00 UTC",
        ],
    },
    Case {
        name: "audit_bad_threshold",
        setup: Setup::Nothing,
        files: &[],
        before: &[],
        args: &["audit", "--warn", "soon", "staged"],
    },
    Case {
        name: "color_always",
        setup: Setup::Nothing,
        files: &[],
        before: &[],
        args: &[
            "--color",
            "always",
            "issue",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
        ],
    },
];

/// `s` with the case's directory and the repository written as placeholders, and the
/// escape character visible (`--color always`).
fn redact(s: &str, env: &TestEnv) -> String {
    let tmp = env.path().to_str().unwrap();
    let tmp_canon = env.path().canonicalize().unwrap();
    s.replace(tmp_canon.to_str().unwrap(), "[TMP]")
        .replace(tmp, "[TMP]")
        .replace(env!("CARGO_MANIFEST_DIR"), "[REPO]")
        .replace('\x1b', "\\e")
}

#[test]
fn error_messages_are_pinned() {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let _guard = settings.bind_to_scope();
    for case in CASES {
        let env = TestEnv::new();
        match case.setup {
            Setup::Nothing => {}
            Setup::Store => {
                env.init();
            }
            Setup::Staged => {
                env.init();
                env.ok(&["apply", "--out", "staged", "--quiet"]);
            }
        }
        for (name, text) in case.files {
            std::fs::write(env.path().join(name), text).unwrap();
        }
        for args in case.before {
            env.ok(args);
        }
        let o = env.run(case.args);
        assert!(
            !o.status.success(),
            "{}: kpki {:?} succeeded",
            case.name,
            case.args
        );
        let snap = format!(
            "$ kpki {}\nexit status: {}\n--- stderr\n{}",
            case.args
                .iter()
                .map(|a| if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.to_string()
                })
                .collect::<Vec<_>>()
                .join(" "),
            o.status.code().map_or("signal".into(), |c| c.to_string()),
            redact(&String::from_utf8_lossy(&o.stderr), &env)
        );
        insta::assert_snapshot!(case.name, snap);
    }
}
