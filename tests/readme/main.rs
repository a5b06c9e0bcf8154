//! Executable documentation: every command the README (and each user guide under
//! `docs/`) shows runs, as written, against the kpki under test; every `kpki …` example
//! of the `--help` texts and man pages parses with the current CLI.
//!
//! # How a Markdown file runs
//!
//! Its fenced code blocks run in order, in one temporary directory (the *tour*), as a
//! new user runs them in a fresh clone. The tour holds a copy of `examples/` and
//! `target/release/kpki`, a link to the binary under test; `HOME` is a directory of its
//! own (the identity goes to `$HOME/.config/kpki/`); the `PATH` is the system's, minus
//! any directory holding a kpki, so the README's first block must put
//! `target/release` on it, as it tells the reader to. `cargo` is a shell function that
//! does nothing (the binary is already built): `cargo build --release && …` runs the
//! rest of the line.
//!
//! What a block is, by the first word of its info string:
//!
//! * `sh`, `bash`, `shell`: a script, run as a whole by `bash -euo pipefail`: every
//!   command must succeed. Trailing `# comments` are the shell's own.
//! * `console`: `$ command` lines, each run on its own. The lines under a command, up
//!   to the next `$ ` line, are the output it must print (standard output and error
//!   together), compared line by line after trailing spaces and trailing blank lines are
//!   removed. A command with no lines under it: only its exit status is checked. That
//!   status must be 0, or N when the command's trailing comment ends in `(exit N)`:
//!   `$ kpki init   # a store is already there (exit 2)`.
//! * anything else (`toml`, `text`, `json`, `yaml`, no info string, …): not a command,
//!   not run. Use `text` for file layouts and sample output that no command prints here.
//!
//! The wildcard is `…` (U+2026) in a console block's output: a line that is only `…`
//! matches any number of lines (none included), and `…` within a line matches any text
//! on that line. It stands for what varies from run to run (serials, key ids, dates,
//! temporary paths, timings) and for the lines an example leaves out. It is a wildcard
//! in output only; in a command, `…` is the character.
//!
//! State: the tour's files carry over from block to block, and so do exported
//! variables; shell variables, functions and `cd` last one block (a `console` command is
//! a block of its own).
//!
//! Safety: the tests may run as root (CI does), so a command that is run may not name
//! an absolute path (`/dev/null` aside): a command that must (`--root /`,
//! `--out /etc/ssl/etcd`) belongs on a node and is marked skip. Standard input is
//! `/dev/null`, and a command still running after two minutes is killed.
//!
//! Markers are HTML comments (invisible on GitHub), one line each, right before a block
//! (blank lines between are allowed):
//!
//! * `<!-- readme-test: skip: REASON -->`: the block is not run. For what a test machine
//!   lacks: a real node, a terminal, root-only paths, the reader's own values.
//! * ``<!-- readme-test: skip `COMMAND`: REASON -->``: the block's commands (lines)
//!   that start with COMMAND are not run; the others are. Several may precede a block.
//! * `<!-- readme-test: each in a new directory -->`: the block's commands are
//!   alternatives, not a sequence: each runs in a new directory set up as the tour was,
//!   with a HOME of its own and the tour's exported variables, and changes nothing in
//!   the tour. ``<!-- readme-test: each in a new directory after `SETUP` -->`` runs
//!   SETUP there first (``after `kpki init` ``: each command gets a new store with no
//!   certificates).
//! * `<!-- readme-test: not a guide: REASON -->`, anywhere in a file: the file is a
//!   report (the benchmarks), not a user guide: nothing in it is run or parsed.
//!
//! A marker that matches no command, or that precedes a block that is not run anyway,
//! fails the test, so markers cannot go stale silently. Skipped commands are still
//! parsed.
//!
//! # What is parsed
//!
//! With `kpki::cli::Cli::try_parse_from`, split into words as the shell would
//! (`VAR=value` prefixes, pipes, `&&`, `;`, redirections and `# comments` are the
//! shell's; `$variables` and globs stay words):
//!
//! * every `kpki …` invocation in the `sh` and `console` blocks, run or skipped;
//! * every inline code span of the prose that starts with `kpki `, as far as it goes
//!   (`kpki apply` without its required `--out` names the command; an unknown flag or
//!   subcommand fails);
//! * every line of the `Examples:` sections of each command's long help, and of the
//!   same sections in the man pages in `man/` (comment lines `# …` aside).
//!
//! `cargo test --test readme -- --nocapture` prints what ran, what was skipped and why,
//! and the time taken.

#[path = "../support/mod.rs"]
mod support;

mod markdown;
mod runner;
mod shell;

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use kpki::cli::Cli;

use markdown::{console_commands, Doc, Kind};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files under docs/ (recursively), as (path, name).
fn docs_files() -> Vec<(PathBuf, String)> {
    let mut v: Vec<(PathBuf, String)> = walkdir::WalkDir::new(repo().join("docs"))
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| {
            let name = e.path().strip_prefix(repo()).unwrap().display().to_string();
            (e.path().to_path_buf(), name)
        })
        .collect();
    v.sort();
    v
}

fn readme() -> Doc {
    markdown::read(&repo().join("README.md"), "README.md")
}

/// Runs a guide and fails with every failure it had.
fn run_guide(doc: &Doc) {
    let env = support::TestEnv::new();
    let r = runner::run_doc(doc, env.path());
    eprintln!(
        "{}: {} command(s) run in {:.1?}; {} not run:",
        doc.name,
        r.ran,
        r.elapsed,
        r.skipped.len()
    );
    for s in &r.skipped {
        eprintln!("  {s}");
    }
    assert!(r.ran > 0, "{}: nothing ran", doc.name);
    assert!(
        r.failures.is_empty(),
        "{}: {} failure(s); the first may cause the others:\n\n{}",
        doc.name,
        r.failures.len(),
        r.failures.join("\n\n")
    );
}

#[test]
fn readme_runs_as_written() {
    run_guide(&readme());
}

#[test]
fn docs_guides_run_as_written() {
    let files = docs_files();
    assert!(!files.is_empty(), "docs/ has Markdown files");
    for (path, name) in files {
        let doc = markdown::read(&path, &name);
        match &doc.not_a_guide {
            Some(reason) => eprintln!("{name}: not a guide, not run: {reason}"),
            None => run_guide(&doc),
        }
    }
}

/// Parses `words` (`kpki` first) as the CLI would.
fn parse(words: &[String]) -> Result<(), clap::Error> {
    Cli::try_parse_from(words).map(|_| ())
}

/// Checks every `kpki …` invocation in `line`; returns how many there were.
fn check_line(at: &str, line: &str, problems: &mut Vec<String>) -> usize {
    match shell::kpki_invocations(line) {
        Ok(cmds) => {
            for words in &cmds {
                if let Err(e) = parse(words) {
                    problems.push(format!("{at}: `{line}`: {}", e.render()));
                }
            }
            cmds.len()
        }
        Err(e) => {
            problems.push(format!("{at}: `{line}`: {e}"));
            0
        }
    }
}

/// Every `kpki …` command of a guide's blocks (run or skipped) and of its prose.
fn check_doc(doc: &Doc, problems: &mut Vec<String>) -> usize {
    let mut n = 0;
    for b in &doc.blocks {
        let lines: Vec<(usize, String)> = match b.kind {
            Kind::Script => markdown::script_commands(b),
            Kind::Console => console_commands(b)
                .unwrap_or_default()
                .into_iter()
                .map(|(l, c, _)| (l, c))
                .collect(),
            Kind::Other => continue,
        };
        for (l, line) in lines {
            n += check_line(&format!("{}:{l}", doc.name), &line, problems);
        }
    }
    for (l, span) in &doc.spans {
        if !span.starts_with("kpki ") {
            continue;
        }
        let words = match shell::kpki_invocations(span) {
            Ok(mut c) if c.len() == 1 => c.remove(0),
            _ => {
                problems.push(format!("{}:{l}: `{span}`: not one kpki command", doc.name));
                continue;
            }
        };
        n += 1;
        use clap::error::ErrorKind::*;
        match parse(&words) {
            Ok(()) => {}
            // Prose names a command without its required arguments.
            Err(e)
                if matches!(
                    e.kind(),
                    MissingRequiredArgument
                        | MissingSubcommand
                        | DisplayHelp
                        | DisplayVersion
                        | DisplayHelpOnMissingArgumentOrSubcommand
                ) => {}
            Err(e) => problems.push(format!("{}:{l}: `{span}`: {}", doc.name, e.render())),
        }
    }
    n
}

#[test]
fn every_documented_command_parses() {
    let mut problems = Vec::new();
    let n = check_doc(&readme(), &mut problems);
    eprintln!("README.md: {n} kpki commands parse");
    assert!(
        n >= 40,
        "the README shows {n} kpki commands; expected at least 40"
    );
    for (path, name) in docs_files() {
        let doc = markdown::read(&path, &name);
        if doc.not_a_guide.is_none() {
            check_doc(&doc, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The lines of the `Examples:` (or `Example:`) sections of a help text, trimmed.
fn example_lines(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut on = false;
    for l in help.lines() {
        let t = l.trim();
        if t == "Examples:" || t == "Example:" {
            on = true;
        } else if t.is_empty() {
            on = false;
        } else if on {
            out.push(t.to_string());
        }
    }
    out
}

/// Checks example lines: each is a comment or holds kpki commands that parse.
fn check_examples(at: &str, lines: &[String], problems: &mut Vec<String>) -> usize {
    let mut n = 0;
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        let k = check_line(at, line, problems);
        if k == 0 {
            problems.push(format!(
                "{at}: `{line}`: an example line without a kpki command"
            ));
        }
        n += k;
    }
    n
}

fn help_examples(cmd: &clap::Command, path: &str, out: &mut Vec<(String, Vec<String>)>) {
    if let Some(h) = cmd.get_after_long_help() {
        let lines = example_lines(&h.to_string());
        if !lines.is_empty() {
            out.push((path.to_string(), lines));
        }
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        help_examples(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

/// Every `Examples:` section of the help texts: (command, lines).
fn help_sections() -> Vec<(String, Vec<String>)> {
    let mut sections = Vec::new();
    help_examples(&Cli::command(), "kpki", &mut sections);
    sections
}

#[test]
fn help_examples_parse() {
    let mut problems = Vec::new();
    let mut n = 0;
    for (cmd, lines) in &help_sections() {
        n += check_examples(&format!("`{cmd} --help`"), lines, &mut problems);
    }
    eprintln!("--help: {n} kpki examples parse");
    assert!(
        n >= 25,
        "{n} examples in the help texts; expected at least 25"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The text of a man page's examples section, unescaped (see `kpki::cli::man`).
fn man_examples(roff: &str) -> Vec<String> {
    let mut text = String::new();
    let mut lines = roff
        .lines()
        .skip_while(|l| !l.starts_with(".SH \"EXAMPLES"));
    if lines.next().is_none() {
        return Vec::new();
    }
    for l in lines.skip_while(|l| *l != ".nf").skip(1) {
        if l == ".fi" {
            break;
        }
        text += &l.strip_prefix("\\&").unwrap_or(l).replace("\\\\", "\\");
        text.push('\n');
    }
    example_lines(&text)
}

#[test]
fn man_page_examples_parse() {
    let mut problems = Vec::new();
    let mut n = 0;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    for page in &pages {
        let roff = std::fs::read_to_string(page).unwrap();
        let at = page.strip_prefix(repo()).unwrap().display().to_string();
        n += check_examples(&at, &man_examples(&roff), &mut problems);
    }
    eprintln!("man/: {n} kpki examples parse");
    let help: usize = help_sections().iter().map(|(_, l)| l.len()).sum();
    let man: usize = pages
        .iter()
        .map(|p| man_examples(&std::fs::read_to_string(p).unwrap()).len())
        .sum();
    // kpki.1 repeats no section; each subcommand's page holds its own help's examples.
    assert_eq!(man, help, "example lines in man/ and in --help");
    assert!(n >= 25, "{n} examples in man/; expected at least 25");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// The harness itself: it must see a wrong output, a wrong exit status and a stale marker.

fn run_text(text: &str) -> runner::Report {
    let doc = markdown::parse("t.md", text).unwrap_or_else(|e| panic!("{e}"));
    let env = support::TestEnv::new();
    runner::run_doc(&doc, env.path())
}

#[test]
fn harness_compares_output_and_exit_status() {
    let ok = run_text(
        "```console\n$ echo serial 1A:2B, until 2027-01-01\nserial …, until …\n\
         $ printf 'a\\nb\\nc\\nd\\n'\na\n…\nd\n$ false   # refused (exit 1)\n$ true\n```\n\
         ```sh\nexport X=kept   # carried to the next block\ncargo build --release\n```\n\
         ```console\n$ echo $X\nkept\n$ test -x target/release/kpki && test -d examples\n```\n\
         ```toml\nnot = \"run\"\n```\n",
    );
    assert!(ok.failures.is_empty(), "{:#?}", ok.failures);
    assert_eq!(ok.ran, 8);

    let bad = run_text(
        "```console\n$ echo hello\nhullo\n$ echo a; echo b\na\n$ true   # (exit 2)\n```\n\
         ```sh\ntrue\nfalse   # fails\ntrue\n```\n",
    );
    assert_eq!(bad.failures.len(), 4, "{:#?}", bad.failures);
    assert!(
        bad.failures[0].starts_with("t.md:2: `$ echo hello`: output differs"),
        "{}",
        bad.failures[0]
    );
    assert!(bad.failures[1].contains("output differs"));
    assert!(bad.failures[2].contains("exit status 0 (expected 2)"));
    assert!(
        bad.failures[3].starts_with("t.md:10: `false   # fails` failed: exit status 1"),
        "{}",
        bad.failures[3]
    );
}

#[test]
fn harness_markers() {
    let r = run_text(
        "<!-- readme-test: skip: needs a node -->\n```sh\nfalse\n```\n\n\
         <!-- readme-test: skip `false --on-node`: needs a node -->\n\n\
         ```sh\nfalse --on-node\ntouch here\n```\n\
         <!-- readme-test: each in a new directory after `touch setup` -->\n\
         ```console\n$ test -f setup && ! test -e here && touch there\n$ ! test -e there\n```\n\
         ```console\n$ test -f here && ! test -e setup\n```\n",
    );
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.ran, r.skipped.len()), (4, 2), "{:#?}", r.skipped);

    let stale = run_text(
        "<!-- readme-test: skip `kpki gone`: needs a node -->\n```sh\ntrue\n```\n\
         <!-- readme-test: skip: not run anyway -->\n```toml\na = 1\n```\n\
         ```sh\ntrue /nonexistent/readme-test\n```\n",
    );
    assert_eq!(stale.failures.len(), 3, "{:#?}", stale.failures);
    assert!(stale.failures[2].contains("names /nonexistent/readme-test"));
    assert_eq!(stale.ran, 1);

    for bad in [
        "<!-- readme-test: skip -->\n```sh\ntrue\n```\n",
        "<!-- readme-test: skip: a reason -->\ntext\n```sh\ntrue\n```\n",
        "<!-- readme-test: frobnicate -->\n```sh\ntrue\n```\n",
        "<!-- readme-test: each in a new directory after kpki init -->\n```sh\ntrue\n```\n",
    ] {
        assert!(markdown::parse("t.md", bad).is_err(), "{bad}");
    }
}

#[test]
fn wildcards() {
    use runner::{line_matches as m, output_matches};
    assert!(m("a…c", "abbbc") && m("a…c", "ac") && m("…", "") && m("x … y … z", "x 1 y 2 z"));
    assert!(!m("a…c", "ab") && !m("a…b…a", "aa") && !m("abc", "abcd"));
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(output_matches(&v(&["…"]), &v(&[])));
    assert!(output_matches(&v(&["a", "…", "z"]), &v(&["a", "z"])));
    assert!(output_matches(&v(&["…", "b", "…"]), &v(&["a", "b", "c"])));
    assert!(!output_matches(&v(&["a", "…", "z"]), &v(&["a", "b"])));
    assert!(!output_matches(&v(&["a"]), &v(&["a", "b"])));
}
