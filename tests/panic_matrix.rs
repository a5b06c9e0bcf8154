//! No panics from input: every subcommand (as the clap definition lists them) is run with
//! extreme and malformed values for every flag that takes one (empty, huge and negative
//! numbers, `0`, 10 KB strings, bytes that are not UTF-8, control characters, `../`,
//! /dev/null, a FIFO, a directory, a path that does not exist) against a copy of one
//! scratch store, and every run must end with an exit status the README documents (0, 1
//! or 2; `audit` also 3), by itself (no signal, no timeout), and without "panicked".
//!
//! The runs are independent (each in its own directory with its own copy of the store) and
//! go through a small pool of threads.

mod support;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use support::{example_inventory, TestEnv, KPKI};

/// Parallel runs; the machine has two cores and the runs wait on the disk too.
const THREADS: usize = 4;
/// A run that takes longer has hung (kpki's own lock wait is a minute; no run shares a
/// store, so none waits for it).
const TIMEOUT: Duration = Duration::from_secs(60);

/// One malformed value. Paths are made per run, inside the run's directory.
#[derive(Clone, Copy, Debug)]
enum Value {
    Lit(&'static str),
    Bytes(&'static [u8]),
    Long,
    DevNull,
    Fifo,
    Dir,
    Missing,
}

/// Values for every flag that takes text (names, lifetimes, numbers, times).
const TEXT: &[Value] = &[
    Value::Lit(""),
    Value::Lit("0"),
    Value::Lit("-1"),
    Value::Lit("18446744073709551616"),
    Value::Lit("9223372036854775807y"),
    Value::Lit("100000y"),
    Value::Lit("7999y"),
    Value::Lit("9999-12-31T23:59:59Z"),
    Value::Lit("0000-01-01T00:00:00Z"),
    Value::Long,
    Value::Bytes(b"n\xff\xfe\x80o"),
    Value::Lit("a\x01\x07\x1b[2J\u{202e}\r\n\tb"),
    Value::Lit("../../escape"),
];

/// Values for a flag that names a file or a directory.
const PATHS: &[Value] = &[
    Value::Lit(""),
    Value::Lit("-1"),
    Value::Long,
    Value::Bytes(b"n\xff\xfe\x80o"),
    Value::Lit("a\x01\x07\x1b[2J\u{202e}\r\n\tb"),
    Value::Lit("../../escape"),
    Value::DevNull,
    Value::Fifo,
    Value::Dir,
    Value::Missing,
];

/// Values for the global flags (all paths), which every subcommand takes.
const GLOBAL_PATHS: &[Value] = &[
    Value::Lit(""),
    Value::Bytes(b"n\xff\xfe\x80o"),
    Value::DevNull,
    Value::Fifo,
    Value::Dir,
];

/// Which argument of a case is varied.
#[derive(Clone, Copy, Debug)]
enum Arg {
    /// `--name VALUE`: replaced where the case has it, added where it has not.
    Flag(&'static str),
    /// The positional argument at this index of the case's arguments.
    Pos(usize),
}

/// A command line that works on the scratch store, and the arguments to vary in it:
/// `(arg, is a path, clap's id of the argument)`.
struct Case {
    args: Vec<String>,
    vary: Vec<(Arg, bool, &'static str)>,
}

fn case(args: &[&str], vary: &[(Arg, bool, &'static str)]) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        vary: vary.to_vec(),
    }
}

use Arg::{Flag, Pos};

/// The global flags the first case of every subcommand varies too.
const GLOBALS: &[(Arg, bool, &str)] = &[
    (Flag("--store"), true, "store"),
    (Flag("--identity"), true, "identity"),
    (Flag("--inventory"), true, "inventory"),
    (Flag("--profiles"), true, "profiles"),
    (Flag("--color"), false, "color"),
];

/// Every subcommand, with every argument that takes a value. `{csr}`, `{cert}`,
/// `{staged}` are files of the scratch world (read, never written).
fn cases() -> Vec<(&'static str, Case)> {
    vec![
        (
            "init",
            case(
                &["init", "--store", "fresh", "--ca-model", "single"],
                &[
                    (Flag("--algorithm"), false, "algorithm"),
                    (Flag("--validity"), false, "validity"),
                    (Flag("--recipient"), false, "recipient"),
                    (Flag("--ca-model"), false, "ca_model"),
                ],
            ),
        ),
        (
            "issue",
            case(
                &[
                    "issue",
                    "--profile",
                    "kubelet",
                    "--node",
                    "worker01",
                    "--force",
                    "--out",
                    "out",
                ],
                &[
                    (Flag("--profile"), false, "profile"),
                    (Flag("--node"), false, "node"),
                    (Flag("--san"), false, "san"),
                    (Flag("--out"), true, "out"),
                    (Flag("--validity"), false, "validity"),
                    (Flag("--algorithm"), false, "algorithm"),
                ],
            ),
        ),
        (
            "issue",
            case(
                &["issue", "--profile", "admin", "--cn", "job", "--force"],
                &[
                    (Flag("--cn"), false, "cn"),
                    (Flag("--san"), false, "san"),
                    (Flag("--validity"), false, "validity"),
                ],
            ),
        ),
        (
            "issue",
            case(
                &["issue", "--profile", "kubelet", "--all", "--force"],
                &[(Flag("--validity"), false, "validity")],
            ),
        ),
        (
            "csr",
            case(
                &[
                    "csr",
                    "--profile",
                    "etcd-peer",
                    "--node",
                    "etcd01",
                    "--out",
                    "node",
                    "--force",
                ],
                &[
                    (Flag("--profile"), false, "profile"),
                    (Flag("--node"), false, "node"),
                    (Flag("--out"), true, "out"),
                    (Flag("--algorithm"), false, "algorithm"),
                ],
            ),
        ),
        (
            "sign",
            case(
                &[
                    "sign",
                    "--csr",
                    "{csr}",
                    "--profile",
                    "etcd-peer",
                    "--node",
                    "etcd01",
                    "--force",
                    "--out",
                    "signed",
                ],
                &[
                    (Flag("--csr"), true, "csr"),
                    (Flag("--profile"), false, "profile"),
                    (Flag("--node"), false, "node"),
                    (Flag("--san"), false, "san"),
                    (Flag("--out"), true, "out"),
                    (Flag("--validity"), false, "validity"),
                ],
            ),
        ),
        (
            "sign",
            case(
                &[
                    "sign",
                    "--csr",
                    "{csr}",
                    "--profile",
                    "etcd-client",
                    "--cn",
                    "etcd-peer",
                    "--force",
                ],
                &[(Flag("--cn"), false, "cn")],
            ),
        ),
        (
            "inspect",
            case(&["inspect", "--json", "{cert}"], &[(Pos(2), true, "files")]),
        ),
        (
            "render",
            case(
                &["render", "--node", "etcd01"],
                &[
                    (Flag("--node"), false, "node"),
                    (Flag("--templates"), true, "templates"),
                ],
            ),
        ),
        (
            "render",
            case(
                &["render", "--all", "--out", "rendered"],
                &[(Flag("--out"), true, "out")],
            ),
        ),
        (
            "render",
            case(
                &["render", "--check", "--out", "{staged}"],
                &[(Flag("--out"), true, "out")],
            ),
        ),
        (
            "render",
            case(
                &["render", "--check", "--root", "{staged}/etcd01"],
                &[(Flag("--root"), true, "root")],
            ),
        ),
        (
            "apply",
            case(
                &["apply", "--out", "staged"],
                &[
                    (Flag("--out"), true, "out"),
                    (Flag("--templates"), true, "templates"),
                ],
            ),
        ),
        (
            "plan",
            case(
                &["plan", "--out", "{staged}"],
                &[
                    (Flag("--out"), true, "out"),
                    (Flag("--templates"), true, "templates"),
                ],
            ),
        ),
        (
            "audit",
            case(
                &["audit", "{staged}/etcd01", "--node", "etcd01"],
                &[
                    (Pos(1), true, "paths"),
                    (Flag("--warn"), false, "warn"),
                    (Flag("--critical"), false, "critical"),
                    (Flag("--format"), false, "format"),
                    (Flag("--output"), true, "output"),
                    (Flag("--ca"), true, "ca"),
                    (Flag("--node"), false, "node"),
                    (Flag("--cliff"), false, "cliff"),
                    (Flag("--window"), false, "window"),
                    (Flag("--threads"), false, "threads"),
                    (Flag("--now"), false, "now"),
                ],
            ),
        ),
        (
            "audit",
            case(
                &["audit", "--configs", "{staged}/etcd01", "--node", "etcd01"],
                &[(Flag("--configs"), true, "configs")],
            ),
        ),
        ("profiles list", case(&["profiles", "list"], &[])),
        (
            "profiles show",
            case(
                &["profiles", "show", "etcd-peer"],
                &[(Pos(2), false, "name")],
            ),
        ),
        (
            "ledger",
            case(
                &["ledger", "--profile", "etcd-peer", "--node", "etcd01"],
                &[
                    (Flag("--profile"), false, "profile"),
                    (Flag("--node"), false, "node"),
                ],
            ),
        ),
        ("store verify", case(&["store", "verify"], &[])),
        (
            "store prune",
            case(
                &["store", "prune", "--keep", "2"],
                &[(Flag("--keep"), false, "keep")],
            ),
        ),
        (
            "store retire",
            case(
                &["store", "retire", "--ca", "deadbeef"],
                &[(Flag("--ca"), false, "ca")],
            ),
        ),
        (
            "store retire",
            case(
                &["store", "retire", "--profile", "service-account"],
                &[(Flag("--profile"), false, "profile")],
            ),
        ),
        (
            "push",
            case(
                &["push", "--out", "{staged}", "--node", "etcd01", "--dry-run"],
                &[
                    (Flag("--out"), true, "out"),
                    (Flag("--node"), false, "node"),
                    (Flag("--parallel"), false, "parallel"),
                    (Flag("--gate-timeout"), false, "gate_timeout"),
                    (Flag("--ssh-config"), true, "ssh_config"),
                ],
            ),
        ),
        (
            "push",
            case(
                &["push", "--out", "{staged}", "--role", "etcd", "--json"],
                &[(Flag("--role"), false, "role")],
            ),
        ),
        (
            "bundle",
            case(
                &[
                    "bundle", "--out", "{staged}", "--node", "worker01", "--file", "b", "--force",
                ],
                &[
                    (Flag("--out"), true, "out"),
                    (Flag("--node"), false, "node"),
                    (Flag("--file"), true, "file"),
                    (Flag("--recipient"), false, "recipient"),
                ],
            ),
        ),
        (
            "unbundle",
            case(&["unbundle", "{cert}"], &[(Pos(1), true, "file")]),
        ),
        (
            "export ansible",
            case(
                &[
                    "export", "ansible", "--out", "{staged}", "--dest", "ans", "--force",
                ],
                &[
                    (Flag("--out"), true, "out"),
                    (Flag("--dest"), true, "dest"),
                    (Flag("--ssh-config"), true, "ssh_config"),
                ],
            ),
        ),
        (
            "rotate plan",
            case(
                &["rotate", "plan", "--out", "{staged}", "--within", "30d"],
                &[
                    (Flag("--out"), true, "out"),
                    (Flag("--within"), false, "within"),
                    (Flag("--profile"), false, "profile"),
                    (Flag("--node"), false, "node"),
                    (Flag("--templates"), true, "templates"),
                ],
            ),
        ),
        ("rotate status", case(&["rotate", "status"], &[])),
        (
            "rotate timer",
            case(
                &[
                    "rotate",
                    "timer",
                    "--out",
                    "{staged}",
                    "--window",
                    "Sat 02:00-04:00 UTC",
                ],
                &[
                    (Flag("--out"), true, "out"),
                    (Flag("--window"), false, "window"),
                    (Flag("--within"), false, "within"),
                    (Flag("--dest"), true, "dest"),
                ],
            ),
        ),
        (
            "completions",
            case(&["completions", "bash"], &[(Pos(1), false, "shell")]),
        ),
        (
            "generate-man",
            case(
                &["generate-man", "--out", "man"],
                &[(Flag("--out"), true, "out")],
            ),
        ),
    ]
}

/// Every leaf subcommand of the clap definition (`store verify`, `audit`, …) with the
/// ids of its arguments that take a value, global ones apart.
fn clap_subcommands() -> Vec<(String, BTreeSet<String>)> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, BTreeSet<String>)>) {
        let mut subs = cmd.get_subcommands().peekable();
        if subs.peek().is_none() {
            let args = cmd
                .get_arguments()
                .filter(|a| a.get_action().takes_values() && !a.is_global_set())
                .map(|a| a.get_id().to_string())
                .collect();
            out.push((prefix.to_string(), args));
            return;
        }
        for s in subs {
            let name = if prefix.is_empty() {
                s.get_name().to_string()
            } else {
                format!("{prefix} {}", s.get_name())
            };
            walk(s, &name, out);
        }
    }
    let mut cmd = kpki::cli::Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "", &mut out);
    out
}

/// The world the runs start from: a store with everything issued, a staged tree, a CSR.
struct World {
    env: TestEnv,
}

impl World {
    fn build() -> World {
        let env = TestEnv::new();
        env.ok(&["init"]);
        env.ok(&["apply", "--out", "staged"]);
        env.ok(&[
            "csr",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--out",
            "node",
        ]);
        std::fs::create_dir(env.path().join("runs")).unwrap();
        World { env }
    }

    fn expand(&self, arg: &str) -> OsString {
        let p = self.env.path();
        arg.replace("{csr}", p.join("node/etcd.csr").to_str().unwrap())
            .replace(
                "{cert}",
                p.join("staged/etcd01/etc/ssl/etcd/etcd.crt")
                    .to_str()
                    .unwrap(),
            )
            .replace("{staged}", p.join("staged").to_str().unwrap())
            .into()
    }
}

/// A copy of the store for one run: its files hard-linked (kpki replaces files, never
/// writes into them) but for the ledger, which it appends to, and the lock.
fn copy_store(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if rel == Path::new("ledger.jsonl") {
            std::fs::copy(e.path(), &dest).unwrap();
        } else if e.file_type().is_file() && rel != Path::new(".lock") {
            std::fs::hard_link(e.path(), &dest).unwrap();
        }
    }
}

/// One run: a command line and where it runs.
struct Run {
    label: String,
    audit: bool,
    args: Vec<OsString>,
    value: Option<Value>,
    slot: Option<usize>,
}

/// `/dev/null` for a flag kpki reads; for one it writes (`audit --output`), a device
/// node of the same kind made in the run's directory, so that a kpki that replaced a
/// device by its output would replace that one and not the machine's /dev/null (or, where
/// no device can be made, the FIFO).
fn dev_null_for(flag: &OsStr, dir: &Path) -> OsString {
    if flag != "--output" {
        return "/dev/null".into();
    }
    let node = dir.join("null");
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    );
    match made {
        Ok(()) => node.into(),
        Err(_) => dir.join("fifo").into(),
    }
}

fn resolve(v: Value, dir: &Path) -> OsString {
    match v {
        Value::Lit(s) => s.into(),
        Value::Bytes(b) => OsString::from_vec(b.to_vec()),
        Value::Long => "A".repeat(10 * 1024).into(),
        Value::DevNull => "/dev/null".into(),
        Value::Fifo => dir.join("fifo").into(),
        Value::Dir => dir.join("adir").into(),
        Value::Missing => dir.join("missing/deeper").into(),
    }
}

fn runs(world: &World) -> Vec<Run> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, c) in cases() {
        let base: Vec<OsString> = c.args.iter().map(|a| world.expand(a)).collect();
        // audit, push, unbundle and rotate document exit 3 (a node failed, or the audit
        // could not run); rotate also 75 (outside its window).
        let audit = matches!(name, "audit" | "push" | "unbundle") || name.starts_with("rotate");
        let mut vary: Vec<(Arg, &[Value])> = c
            .vary
            .iter()
            .map(|(a, path, _)| (*a, if *path { PATHS } else { TEXT }))
            .collect();
        if seen.insert(name) {
            vary.extend(GLOBALS.iter().map(|(a, ..)| (*a, GLOBAL_PATHS)));
        }
        for (arg, values) in vary {
            for v in values {
                let mut args = base.clone();
                let slot = match arg {
                    Pos(i) => i,
                    Flag(f) => match args.iter().position(|a| a == f) {
                        Some(i) => i + 1,
                        None => {
                            args.push(f.into());
                            args.push(OsString::new());
                            args.len() - 1
                        }
                    },
                };
                out.push(Run {
                    label: format!("{name} {arg:?} = {v:?}"),
                    audit,
                    args,
                    value: Some(*v),
                    slot: Some(slot),
                });
            }
        }
        out.push(Run {
            label: format!("{name} (as is)"),
            audit,
            args: base,
            value: None,
            slot: None,
        });
    }
    out
}

/// Runs one command line in its own directory; returns a problem, if any.
fn run_one(world: &World, n: usize, run: &Run) -> Option<String> {
    let dir = world.env.path().join("runs").join(n.to_string());
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    copy_store(&world.env.store(), &dir.join("pki"));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let mut args = run.args.clone();
    if let (Some(v), Some(slot)) = (run.value, run.slot) {
        args[slot] = match v {
            Value::DevNull => dev_null_for(&args[slot - 1], &dir),
            _ => resolve(v, &dir),
        };
    }
    let out = world.env.path().join("runs").join(format!("{n}.out"));
    let err = world.env.path().join("runs").join(format!("{n}.err"));
    let mut child = Command::new(KPKI)
        .args(&args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("XDG_CONFIG_HOME", world.env.path().join("cfg"))
        .env("KPKI_INVENTORY", example_inventory())
        // push and rotate never reach the example's addresses: `false` is their ssh.
        .env("KPKI_SSH", "false")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Some(format!("{}: hung (killed after {TIMEOUT:?})", run.label));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // KPKI_MATRIX_TIMES=1 cargo test --test panic_matrix -- --nocapture: the slow runs.
    if std::env::var_os("KPKI_MATRIX_TIMES").is_some() {
        eprintln!("{:>6} ms  {}", start.elapsed().as_millis(), run.label);
    }
    let stderr = std::fs::read(&err).unwrap();
    let stderr = String::from_utf8_lossy(&stderr);
    let shown: String = stderr.chars().take(600).collect();
    let documented: &[i32] = if run.audit {
        &[0, 1, 2, 3, 75]
    } else {
        &[0, 1, 2]
    };
    let problem = match status.code() {
        None => Some(format!("killed by a signal ({status})")),
        Some(c) if !documented.contains(&c) => Some(format!("exit status {c}")),
        Some(_) if stderr.contains("panicked") => Some("panicked".to_string()),
        Some(_) => None,
    };
    // Nothing of the run is needed any more: keep the disk use small.
    let _ = std::fs::remove_dir_all(&dir);
    problem.map(|p| {
        let shown_args: Vec<String> = args
            .iter()
            .map(|a| {
                let s = a.as_bytes();
                if s.len() > 80 {
                    format!("<{} bytes>", s.len())
                } else {
                    format!("{:?}", OsStr::from_bytes(s))
                }
            })
            .collect();
        format!(
            "{}: {p}\n  kpki {}\n  stderr: {shown}",
            run.label,
            shown_args.join(" ")
        )
    })
}

#[test]
fn the_matrix_covers_every_subcommand_and_every_flag_that_takes_a_value() {
    let cases = cases();
    for (sub, args) in clap_subcommands() {
        let mine: Vec<&Case> = cases
            .iter()
            .filter(|(n, _)| *n == sub)
            .map(|(_, c)| c)
            .collect();
        assert!(
            !mine.is_empty(),
            "subcommand `{sub}` is not in the matrix: add a case for it"
        );
        let covered: BTreeSet<String> = mine
            .iter()
            .flat_map(|c| c.vary.iter().map(|(_, _, id)| id.to_string()))
            .collect();
        for a in args {
            assert!(
                covered.contains(&a),
                "`kpki {sub}`: argument `{a}` takes a value and is not varied in the matrix"
            );
        }
    }
    let mut cmd = kpki::cli::Cli::command();
    cmd.build();
    let globals: BTreeSet<String> = cmd
        .get_arguments()
        .filter(|a| a.get_action().takes_values() && a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    let varied: BTreeSet<String> = GLOBALS.iter().map(|(_, _, id)| id.to_string()).collect();
    assert_eq!(
        globals, varied,
        "every global flag is varied with every case"
    );
}

#[test]
fn no_input_makes_kpki_panic_or_leave_the_documented_exit_statuses() {
    let world = World::build();
    let runs = runs(&world);
    assert!(runs.len() > 300, "{} runs", runs.len());
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(run) = runs.get(n) else { break };
                if let Some(p) = run_one(&world, n, run) {
                    problems.lock().unwrap().push(p);
                }
            });
        }
    });
    // The runs wrote only inside the scratch world: /dev/null is still the device.
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&null.file_type()),
        "/dev/null was replaced"
    );
    let problems = problems.into_inner().unwrap();
    assert!(
        problems.is_empty(),
        "{} of {} runs went wrong:\n{}",
        problems.len(),
        runs.len(),
        problems.join("\n")
    );
}
