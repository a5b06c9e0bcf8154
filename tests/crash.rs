//! Crash consistency: kpki is killed with SIGKILL at its 1st, 2nd, … durable step (the
//! debug-build test switch `KPKI_TEST_CRASH_AFTER=N`: every temporary file written, every
//! rename, flush, ledger append, journal write, removal) during `init`, `issue`, `apply`
//! (a first one, and one after the inventory changed), `store prune`, `store retire` and
//! `csr`, until a run completes. After each kill:
//!
//! * the store opens and its ledger replays: `kpki store verify` exits 0 (or, killed
//!   before a new store existed, finds none);
//! * no final path holds a half-written file (every PEM, age file, pointer, JSON and TOML
//!   file kpki wrote is whole);
//! * running the command again completes the work, after which no temporary file (a
//!   staged plaintext key, say) survives anywhere, and the ledger holds exactly the
//!   events an uninterrupted run records: nothing issued twice, no CA made twice.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{example_inventory, KPKI};

/// The steps a command is killed at: every one of the first and of the last
/// [`EDGE`], and [`MIDDLE`] more spread evenly between (every step of a short command).
const EDGE: u64 = 6;
const MIDDLE: u64 = 8;

fn kill_points(steps: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (1..=steps.min(EDGE)).collect();
    let (lo, hi) = (EDGE + 1, steps.saturating_sub(EDGE));
    if hi > lo {
        v.extend((0..MIDDLE).map(|i| lo + (hi - lo) * i / MIDDLE));
    }
    v.extend(steps.saturating_sub(EDGE - 1).max(1)..=steps);
    v.sort_unstable();
    v.dedup();
    v
}

/// A scenario: how to prepare the directory, the command that is killed, and what its
/// second run may answer besides success (`init` finds the store a completed run made).
struct Scenario {
    name: &'static str,
    prepare: &'static [&'static [&'static str]],
    command: &'static [&'static str],
    /// Exit status 2 with this in stderr is also a completed rerun.
    rerun_refusal: Option<&'static str>,
    /// Whether the scenario stages into `staged/` (checked with `render --check`).
    staged: bool,
    /// Files the completed work includes.
    done: &'static [&'static str],
    /// The inventory of the killed command and its reruns (the example's, or one where a
    /// worker moved).
    moved: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "first apply",
        prepare: &[],
        command: &["apply", "--out", "staged"],
        rerun_refusal: None,
        staged: true,
        done: &["pki/kpki.toml", "staged/etcd01/var/lib/kpki/manifest.json"],
        moved: false,
    },
    Scenario {
        name: "issue",
        prepare: &[&["init"]],
        command: &["issue", "--all"],
        rerun_refusal: Some("already issued"),
        staged: false,
        done: &["pki/issued/service-account/cluster/current"],
        moved: false,
    },
    Scenario {
        name: "init",
        prepare: &[],
        command: &["init"],
        rerun_refusal: Some("already exists"),
        staged: false,
        done: &["pki/kpki.toml", "cfg/kpki/identity.txt"],
        moved: false,
    },
    Scenario {
        name: "apply after a worker moved",
        prepare: &[&["apply", "--out", "staged"]],
        command: &["apply", "--out", "staged"],
        rerun_refusal: None,
        staged: true,
        done: &[],
        moved: true,
    },
    Scenario {
        name: "prune",
        prepare: &[
            &["init"],
            &["issue", "--profile", "kubelet", "--all"],
            &["issue", "--profile", "kubelet", "--all", "--force"],
            &["issue", "--profile", "kubelet", "--all", "--force"],
        ],
        command: &["store", "prune", "--keep", "1"],
        rerun_refusal: None,
        staged: false,
        done: &[],
        moved: false,
    },
    Scenario {
        name: "retire",
        prepare: &[
            &["init"],
            &["issue", "--profile", "service-account", "--all"],
            &["issue", "--profile", "service-account", "--all", "--force"],
        ],
        command: &["store", "retire", "--profile", "service-account"],
        rerun_refusal: None,
        staged: false,
        done: &[],
        moved: false,
    },
    Scenario {
        name: "csr",
        prepare: &[],
        command: &[
            "csr",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--out",
            "node",
        ],
        // Killed after both files were in place: the work was done.
        rerun_refusal: Some("already exists"),
        staged: false,
        done: &["node/etcd.key", "node/etcd.csr"],
        moved: false,
    },
];

fn moved_inventory(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example_inventory()).unwrap();
    assert!(text.contains("\"192.168.2.1\""));
    let p = dir.join("moved.toml");
    std::fs::write(&p, text.replace("\"192.168.2.1\"", "\"192.168.2.21\"")).unwrap();
    p
}

fn kpki(dir: &Path, inventory: &Path, args: &[&str], crash: Option<u64>) -> std::process::Output {
    let mut c = Command::new(KPKI);
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("cfg"))
        .env("KPKI_INVENTORY", inventory);
    if let Some(n) = crash {
        c.env("KPKI_TEST_CRASH_AFTER", n.to_string());
    }
    c.output().unwrap()
}

fn ok(dir: &Path, inventory: &Path, args: &[&str]) -> String {
    let o = kpki(dir, inventory, args, None);
    assert!(
        o.status.success(),
        "kpki {args:?} in {}: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

fn is_temp(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains(".kpki-tmp."))
}

/// Whether a file kpki wrote is whole, by what it is; `None` when fine.
fn torn(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?;
    if is_temp(p) || name == "ledger.jsonl" || name == ".lock" {
        return None;
    }
    let bytes = std::fs::read(p).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let bad = if name.ends_with(".age") {
        !text.ends_with("-----END AGE ENCRYPTED FILE-----\n")
    } else if text.starts_with("-----BEGIN") {
        !text.trim_end().ends_with("-----") || !text.contains("-----END")
    } else if name.ends_with(".json") {
        serde_json::from_slice::<serde_json::Value>(&bytes).is_err()
    } else if name == "current" || name == "trusted" {
        text.is_empty() || !text.lines().all(|l| l.parse::<u64>().is_ok())
    } else if name.ends_with(".toml") {
        toml::from_str::<toml::Table>(&text).is_err()
    } else {
        bytes.is_empty()
    };
    bad.then(|| format!("{} is not whole: {:?}", p.display(), text))
}

/// Events of the ledger that say what was made: (event, profile, target) and counts.
fn made(dir: &Path, inventory: &Path) -> BTreeMap<String, usize> {
    if !dir.join("pki/kpki.toml").exists() {
        return BTreeMap::new();
    }
    let json = ok(dir, inventory, &["ledger", "--json"]);
    let events: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let mut m = BTreeMap::new();
    for e in events {
        let key = match e["event"].as_str().unwrap() {
            "ca-created" => format!("ca-created {}", e["ca"]["name"]),
            "issued" => format!("issued {} {}", e["profile"], e["target"]),
            "superseded" => format!("superseded {} {}", e["profile"], e["target"]),
            "pruned" => format!(
                "pruned {} {} {}",
                e["profile"], e["target"], e["generation"]
            ),
            "retired" => format!("retired {}", e["what"]),
            other => other.to_string(),
        };
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

fn check_crashed(s: &Scenario, dir: &Path, inventory: &Path, n: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let store_before = dir.join("pki/kpki.toml").exists();
    let v = kpki(dir, inventory, &["store", "verify"], None);
    let err = String::from_utf8_lossy(&v.stderr);
    let exists = dir.join("pki/kpki.toml").exists();
    match v.status.code() {
        Some(0) => {}
        Some(1) if !exists && err.contains("no kpki store") => {}
        _ => problems.push(format!(
            "{} killed at step {n}: store verify (store {}): {}{err}",
            s.name,
            if store_before { "present" } else { "absent" },
            String::from_utf8_lossy(&v.stdout)
        )),
    }
    for f in files(dir) {
        if let Some(t) = torn(&f) {
            problems.push(format!("{} killed at step {n}: {t}", s.name));
        }
    }
    problems
}

fn run_scenario(s: &Scenario, work: &Path) -> Vec<String> {
    let base = work.join("prepared");
    std::fs::create_dir_all(&base).unwrap();
    let example = example_inventory();
    for args in s.prepare {
        ok(&base, &example, args);
    }
    let inventory = if s.moved {
        moved_inventory(work)
    } else {
        example.clone()
    };
    // How many durable steps an uninterrupted run makes: a run armed past its end says.
    let counted = work.join("counted");
    copy_dir(&base, &counted);
    let o = kpki(&counted, &inventory, s.command, Some(u64::MAX));
    assert!(
        o.status.success(),
        "{}: {}",
        s.name,
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let steps: u64 = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("kpki: test: ")?
                .strip_suffix(" durable steps")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}: no step count: {err}", s.name));
    assert!(steps > 3, "{}: {steps} steps", s.name);
    // What an uninterrupted run records.
    let want = made(&counted, &inventory);
    if std::env::var_os("KPKI_CRASH_TIMES").is_some() {
        eprintln!("{}: {steps} steps", s.name);
    }
    let mut problems = Vec::new();
    for n in kill_points(steps) {
        let dir = work.join(format!("n{n}"));
        copy_dir(&base, &dir);
        let o = kpki(&dir, &inventory, s.command, Some(n));
        if o.status.signal() != Some(9) {
            problems.push(format!(
                "{} with a kill at step {n} of {steps} ended otherwise ({}): {}",
                s.name,
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
            break;
        }
        problems.extend(check_crashed(s, &dir, &inventory, n));
        // Running it again completes the work.
        let again = kpki(&dir, &inventory, s.command, None);
        let err = String::from_utf8_lossy(&again.stderr);
        let refused_ok =
            again.status.code() == Some(2) && s.rerun_refusal.is_some_and(|r| err.contains(r));
        if !again.status.success() && !refused_ok {
            problems.push(format!(
                "{} killed at step {n}: the rerun failed ({}): {err}",
                s.name, again.status
            ));
        }
        for f in s.done {
            if !dir.join(f).is_file() {
                problems.push(format!(
                    "{} killed at step {n}: {f} is missing after the rerun",
                    s.name
                ));
            }
        }
        let leftovers: Vec<PathBuf> = files(&dir).into_iter().filter(|p| is_temp(p)).collect();
        if !leftovers.is_empty() {
            problems.push(format!(
                "{} killed at step {n}: temporary files survive the rerun: {leftovers:?}",
                s.name
            ));
        }
        let got = made(&dir, &inventory);
        if got != want {
            problems.push(format!(
                "{} killed at step {n}: the ledger after the rerun differs from an uninterrupted run's:\n  want {want:?}\n  got  {got:?}",
                s.name
            ));
        }
        if dir.join("pki/kpki.toml").exists() {
            let v = kpki(&dir, &inventory, &["store", "verify"], None);
            if !v.status.success() {
                problems.push(format!(
                    "{} killed at step {n}: store verify after the rerun: {}{}",
                    s.name,
                    String::from_utf8_lossy(&v.stdout),
                    String::from_utf8_lossy(&v.stderr)
                ));
            }
        }
        if s.staged {
            let c = kpki(
                &dir,
                &inventory,
                &["render", "--check", "--out", "staged"],
                None,
            );
            if !c.status.success() {
                problems.push(format!(
                    "{} killed at step {n}: render --check after the rerun: {}",
                    s.name,
                    String::from_utf8_lossy(&c.stdout)
                ));
            }
        }
        if problems.len() > 20 {
            break;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    problems
}

#[test]
fn killed_at_every_step_kpki_leaves_a_store_the_next_run_completes() {
    // A kill is a kill whatever the file system: on a tmpfs, where there is one, the
    // thousands of flushes the runs make cost nothing.
    let work = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    // Three at a time, the longest first.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let problems = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..3 {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(s) = SCENARIOS.get(i) else { break };
                let start = std::time::Instant::now();
                let found = run_scenario(s, &work.path().join(i.to_string()));
                if std::env::var_os("KPKI_CRASH_TIMES").is_some() {
                    eprintln!("{}: {:?}", s.name, start.elapsed());
                }
                problems.lock().unwrap().extend(found);
            });
        }
    });
    let problems = problems.into_inner().unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
