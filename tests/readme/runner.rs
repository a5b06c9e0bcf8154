//! Runs a Markdown file's blocks in a temporary directory against the kpki under test,
//! and matches `console` output with the `…` wildcard. See the crate doc (main.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::markdown::{console_commands, expected_status, script_commands, Block, Doc, Kind};
use crate::support::KPKI;

/// The wildcard: a line of its own matches any lines, within a line any text.
pub const WILD: &str = "…";

/// No command of a README takes long; one that waits (on a prompt) is stopped.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Variables the shell sets itself, not carried from one block to the next.
const SHELL_OWN: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_", ENV_OUT];
const ENV_OUT: &str = "README_TEST_ENV";

/// Whether `text` matches `pattern`, in which `…` stands for any text.
pub fn line_matches(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split(WILD).collect();
    if pieces.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for p in &pieces[1..pieces.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the output lines `actual` match the `expected` lines, in which a line `…`
/// stands for any number of lines.
pub fn output_matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((p, rest)) if p.trim() == WILD => {
            (0..=actual.len()).any(|k| output_matches(rest, &actual[k..]))
        }
        Some((p, rest)) => {
            !actual.is_empty() && line_matches(p, &actual[0]) && output_matches(rest, &actual[1..])
        }
    }
}

/// Output as compared: trailing spaces and trailing blank lines removed.
fn lines(output: &str) -> Vec<String> {
    let mut v: Vec<String> = output.lines().map(|l| l.trim_end().to_string()).collect();
    while v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

/// At most `n` lines of `text`, for a message.
fn excerpt(text: &str, n: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    if v.len() <= n {
        return text.trim_end().to_string();
    }
    let head = v[..n / 2].join("\n");
    let tail = v[v.len() - n / 2..].join("\n");
    format!("{head}\n[… {} lines …]\n{tail}", v.len() - n)
}

/// What a run of one file did.
#[derive(Debug, Default)]
pub struct Report {
    /// Commands run (a script block counts its command lines).
    pub ran: usize,
    /// `file:line: reason` of each block or command not run.
    pub skipped: Vec<String>,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

struct Outcome {
    /// None: killed by a signal, or stopped after TIMEOUT.
    status: Option<i32>,
    output: String,
}

/// The directories and the environment a file's blocks run in.
struct Tour {
    root: PathBuf,
    /// The tour's working directory.
    dir: PathBuf,
    home: PathBuf,
    /// The exported variables, carried from block to block.
    env: Vec<(String, String)>,
    count: usize,
}

/// A directory as a fresh clone looks to the README: `examples/` and the built binary at
/// `target/release/kpki`.
fn prepare(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for e in walkdir::WalkDir::new(repo.join("examples")) {
        let e = e.unwrap();
        let to = dir.join(e.path().strip_prefix(repo).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
    let bin = dir.join("target/release");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(KPKI, bin.join("kpki")).unwrap();
}

/// The system's PATH without a directory that holds a kpki: the README must say how
/// the built one gets on the PATH.
fn system_path() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("kpki").exists())
        .collect();
    std::env::join_paths(dirs)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

impl Tour {
    fn new(root: &Path) -> Tour {
        let dir = root.join("tour");
        let home = root.join("home");
        prepare(&dir);
        std::fs::create_dir_all(&home).unwrap();
        Tour {
            root: root.to_path_buf(),
            env: vec![
                ("PATH".into(), system_path()),
                ("HOME".into(), home.to_string_lossy().into_owned()),
            ],
            dir,
            home,
            count: 0,
        }
    }

    /// A new directory set up as the tour's, with a HOME of its own: (dir, home).
    fn new_dir(&mut self) -> (PathBuf, PathBuf) {
        self.count += 1;
        let dir = self.root.join(format!("new-{}", self.count));
        let home = self.root.join(format!("new-{}-home", self.count));
        prepare(&dir);
        std::fs::create_dir_all(&home).unwrap();
        (dir, home)
    }

    /// Runs `script` with `bash -euo pipefail` in `dir`. With `carry`, the variables it
    /// exports are kept for the next run.
    fn run(
        &mut self,
        dir: &Path,
        home: &Path,
        script: &str,
        prologue: &str,
        carry: bool,
    ) -> Outcome {
        self.count += 1;
        let out_path = self.root.join(format!("out-{}", self.count));
        let env_path = self.root.join(format!("env-{}", self.count));
        let out = std::fs::File::create(&out_path).unwrap();
        let full =
            format!("cargo() {{ :; }}\ntrap 'env -0 > \"${ENV_OUT}\"' EXIT\n{prologue}{script}\n");
        let mut cmd = Command::new("bash");
        cmd.args([
            "--noprofile",
            "--norc",
            "-e",
            "-u",
            "-o",
            "pipefail",
            "-c",
            &full,
        ])
        .current_dir(dir)
        .env_clear()
        .envs(self.env.iter().map(|(k, v)| (k, v)))
        .env("HOME", home)
        .env(ENV_OUT, &env_path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("bash");
        let start = Instant::now();
        let mut nap = Duration::from_millis(1);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.code();
            }
            if start.elapsed() > TIMEOUT {
                // The command's own process group: bash and whatever it started.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        };
        if carry {
            if let Ok(bytes) = std::fs::read(&env_path) {
                self.env = String::from_utf8_lossy(&bytes)
                    .split('\0')
                    .filter_map(|kv| kv.split_once('='))
                    .filter(|(k, _)| !SHELL_OWN.contains(k) && *k != "HOME")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
        }
        let output = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();
        Outcome { status, output }
    }
}

fn status_text(s: Option<i32>) -> String {
    match s {
        Some(c) => format!("exit status {c}"),
        None => format!("killed (signal, or still running after {TIMEOUT:?})"),
    }
}

/// Runs every block of `doc` that is run, in order, in a new tour under `root`.
pub fn run_doc(doc: &Doc, root: &Path) -> Report {
    let start = Instant::now();
    let mut tour = Tour::new(root);
    let mut report = Report::default();
    for block in &doc.blocks {
        run_block(doc, block, &mut tour, &mut report);
    }
    report.elapsed = start.elapsed();
    report
}

fn run_block(doc: &Doc, block: &Block, tour: &mut Tour, report: &mut Report) {
    let at = |line: usize| format!("{}:{line}", doc.name);
    if block.kind == Kind::Other {
        if !block.directives.is_empty() {
            report.failures.push(format!(
                "{}: a readme-test marker on a `{}` block, which is not run anyway",
                at(block.line),
                block.info
            ));
        }
        return;
    }
    if let Some(reason) = block.skip_reason() {
        report
            .skipped
            .push(format!("{}: block: {reason}", at(block.line)));
        return;
    }
    let skips = block.skipped_commands();
    let mut used = vec![false; skips.len()];
    let mut skipped = |line: usize, cmd: &str, report: &mut Report| -> bool {
        match skips.iter().position(|(p, _)| cmd.starts_with(p)) {
            Some(i) => {
                used[i] = true;
                report
                    .skipped
                    .push(format!("{}: `{cmd}`: {}", at(line), skips[i].1));
                true
            }
            None => false,
        }
    };

    // Each command in a directory of its own, after the setup command.
    let each = block.each();
    let place = |tour: &mut Tour, line: usize, report: &mut Report| -> Option<(PathBuf, PathBuf)> {
        let Some(after) = each else {
            return Some((tour.dir.clone(), tour.home.clone()));
        };
        let (dir, home) = tour.new_dir();
        if let Some(setup) = after {
            let o = tour.run(&dir, &home, setup, "", false);
            if o.status != Some(0) {
                report.failures.push(format!(
                    "{}: setup `{setup}` failed: {}\n{}",
                    at(line),
                    status_text(o.status),
                    excerpt(&o.output, 40)
                ));
                return None;
            }
        }
        Some((dir, home))
    };

    // Commands run as whoever runs the tests, root on CI: one that names a path outside
    // the test's directories could change the machine.
    let outside = |line: usize, cmd: &str, report: &mut Report| -> bool {
        let paths = crate::shell::absolute_paths(cmd).unwrap_or_default();
        if paths.is_empty() {
            return false;
        }
        report.failures.push(format!(
            "{}: `{cmd}` names {}, outside the test's directory: the tests may run as root; \
             use a relative path, or mark the command skip with a reason",
            at(line),
            paths.join(", ")
        ));
        true
    };

    match block.kind {
        Kind::Script if each.is_none() => {
            // The whole block as one script; skipped lines become blank, so the shell's
            // line numbers stay the block's.
            let mut script = Vec::new();
            for (n, l) in &block.body {
                let t = l.trim();
                let is_cmd = !t.is_empty() && !t.starts_with('#');
                if is_cmd && skipped(*n, t, report) {
                    script.push(String::new());
                } else if is_cmd && outside(*n, t, report) {
                    return;
                } else {
                    if is_cmd {
                        report.ran += 1;
                    }
                    script.push(l.clone());
                }
            }
            // On a failure, say which line: the trap reports the script's line number.
            let prologue = "trap 'echo \"[readme-test: line $((LINENO - 3))]\"' ERR\n";
            let (dir, home) = (tour.dir.clone(), tour.home.clone());
            let o = tour.run(&dir, &home, &script.join("\n"), prologue, true);
            if o.status != Some(0) {
                let failed = o
                    .output
                    .rfind("[readme-test: line ")
                    .and_then(|i| {
                        let rest = &o.output[i + "[readme-test: line ".len()..];
                        rest[..rest.find(']')?].parse::<usize>().ok()
                    })
                    .and_then(|k| block.body.get(k.checked_sub(1)?));
                let (line, what) = match failed {
                    Some((n, l)) => (*n, format!("`{}`", l.trim())),
                    None => (block.line, "the block".to_string()),
                };
                report.failures.push(format!(
                    "{}: {what} failed: {}\n{}",
                    at(line),
                    status_text(o.status),
                    excerpt(&o.output, 60)
                ));
            }
        }
        Kind::Script => {
            for (n, cmd) in script_commands(block) {
                if skipped(n, &cmd, report) || outside(n, &cmd, report) {
                    continue;
                }
                let Some((dir, home)) = place(tour, n, report) else {
                    continue;
                };
                report.ran += 1;
                let o = tour.run(&dir, &home, &cmd, "", false);
                if o.status != Some(0) {
                    report.failures.push(format!(
                        "{}: `{cmd}` failed: {}\n{}",
                        at(n),
                        status_text(o.status),
                        excerpt(&o.output, 60)
                    ));
                }
            }
        }
        Kind::Console => {
            let commands = match console_commands(block) {
                Ok(c) => c,
                Err(e) => {
                    report.failures.push(format!("{}: {e}", at(block.line)));
                    return;
                }
            };
            for (n, cmd, expected) in commands {
                if skipped(n, &cmd, report) || outside(n, &cmd, report) {
                    continue;
                }
                let want = match expected_status(&cmd) {
                    Ok(s) => s,
                    Err(e) => {
                        report.failures.push(format!("{}: {e}", at(n)));
                        continue;
                    }
                };
                let Some((dir, home)) = place(tour, n, report) else {
                    continue;
                };
                report.ran += 1;
                let o = tour.run(&dir, &home, &cmd, "", each.is_none());
                let actual = lines(&o.output);
                let status_ok = o.status == Some(want);
                let output_ok = expected.is_empty() || output_matches(&expected, &actual);
                if !status_ok || !output_ok {
                    let mut msg = format!("{}: `$ {cmd}`:", at(n));
                    if !status_ok {
                        msg += &format!(" {} (expected {want})", status_text(o.status));
                    }
                    if !output_ok {
                        msg += " output differs";
                    }
                    if !expected.is_empty() {
                        msg += &format!("\n--- expected\n{}", expected.join("\n"));
                    }
                    msg += &format!("\n--- actual\n{}", excerpt(&o.output, 60));
                    report.failures.push(msg);
                }
            }
        }
        Kind::Other => unreachable!(),
    }
    for (i, (p, _)) in skips.iter().enumerate() {
        if !used[i] {
            report.failures.push(format!(
                "{}: ``skip `{p}` `` matches no command of the block",
                at(block.line)
            ));
        }
    }
}
