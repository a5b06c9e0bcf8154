//! Orchestration: turns what the user typed into core requests, runs them, and prints
//! the result. The only layer that reads the environment, the clock and the terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use time::OffsetDateTime;

mod audit;
mod completions;
mod export;
mod init;
mod inspect;
mod issue;
mod profiles;
mod push;
mod render;
mod rotate;
mod sign;
mod store_cmd;

use crate::cli::{
    CaModelArg, Cli, Command, CsrArgs, InitArgs, InspectArgs, IssueArgs, ProfilesCommand, SignArgs,
};
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::issue::Options;
use crate::pki::{self, pem::Object, KeyAlgorithm, San};
use crate::plan::{self, Overrides, Reason, Selector};
use crate::profile::Profiles;
use crate::span::{human_left, Span};
use crate::store::{self, CaModel, InitSpec, Keyring, Protection, Store, Unlock};

/// Where output goes; errors are rendered by `main`.
pub struct Printer {
    out: Box<dyn Write>,
    quiet: bool,
    /// Whether standard output may be coloured (`--color`, NO_COLOR, a terminal).
    pub(crate) color: bool,
}

impl Printer {
    pub fn stdout(quiet: bool) -> Printer {
        Printer {
            out: Box::new(std::io::stdout().lock()),
            quiet,
            color: false,
        }
    }

    pub(crate) fn line(&mut self, s: impl AsRef<str>) -> Result<()> {
        if !self.quiet {
            self.data(s)?;
        }
        Ok(())
    }

    /// One line of text made of values from certificates or file names, printed even
    /// with --quiet, with every character a terminal would obey escaped
    /// ([`crate::terminal::printable`]).
    pub(crate) fn text(&mut self, s: impl AsRef<str>) -> Result<()> {
        self.data(crate::terminal::printable(s.as_ref()))
    }

    /// Output that is the command's product (PEM, JSON): printed even with --quiet.
    pub(crate) fn data(&mut self, s: impl AsRef<str>) -> Result<()> {
        match writeln!(self.out, "{}", s.as_ref()) {
            // A closed pipe (`| head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(Error::io("standard output")),
        }
    }
}

/// Runs a parsed command line; returns the exit status (0 unless the command has its
/// own, as `audit` does).
pub fn run(cli: Cli) -> Result<u8> {
    // Before any key is decrypted: no core dump, no other process reading our memory.
    crate::store::keep_memory_private();
    // TEST-ONLY (debug builds): stop at the N-th durable step, for tests/crash.rs; a
    // run that ends before says how many steps it made.
    #[cfg(debug_assertions)]
    if let Some(n) = std::env::var("KPKI_TEST_CRASH_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        crate::store::crash::arm(n);
        let r = run_command(cli);
        eprintln!("kpki: test: {} durable steps", crate::store::crash::steps());
        return r;
    }
    run_command(cli)
}

fn run_command(cli: Cli) -> Result<u8> {
    let mut p = Printer::stdout(cli.global.quiet);
    p.color = color(cli.global.color, std::io::stdout().is_terminal());
    let now = OffsetDateTime::now_utc();
    let g = &cli.global;
    let done = match &cli.command {
        Command::Audit(a) => return audit::run(g, a, now, &mut p),
        Command::Push(a) => return push::run(g, a, now, &mut p),
        Command::Rotate(a) => return rotate::run(g, a, now, &mut p),
        Command::Bundle(a) => push::bundle(g, a, now, &mut p),
        Command::Unbundle(a) => return push::unbundle(g, a, &mut p),
        Command::Export(a) => export::run(g, a, &mut p),
        Command::Init(a) => init::run(g, a, now, &mut p),
        Command::Issue(a) => issue::run(g, a, now, &mut p),
        Command::Csr(a) => sign::csr(g, a, &mut p),
        Command::Sign(a) => sign::sign(g, a, now, &mut p),
        Command::Inspect(a) => inspect::run(a, now, &mut p),
        Command::Render(a) => render::render_cmd(g, a, now, &mut p),
        Command::Apply(a) => render::apply_cmd(g, a, now, &mut p),
        Command::Plan(a) => render::plan_cmd(g, a, now, &mut p),
        Command::Profiles(c) => profiles::run(g, c, &mut p),
        Command::Ledger(a) => store_cmd::ledger(g, a, now, &mut p),
        Command::Store(c) => return store_cmd::run(g, c, now, &mut p).map(|()| 0),
        Command::Completions(a) => completions::run(a, &mut p),
        Command::GenerateMan { out } => {
            crate::store::atomic::create_dirs(out, out).map_err(Error::io(out))?;
            for (name, body) in crate::cli::man::pages().map_err(Error::io("man"))? {
                let path = out.join(&name);
                crate::store::atomic::write(
                    out,
                    &path,
                    &body,
                    0o644,
                    crate::store::Existing::Replace,
                )
                .map_err(Error::io(&path))?;
                p.line(format!("wrote {}", path.display()))?;
            }
            Ok(())
        }
    };
    done.map(|()| 0)
}

/// Whether to colour a stream: `--color always` does, `never` does not; `auto` does
/// on a terminal when NO_COLOR is unset or empty (<https://no-color.org>: a command-line
/// flag overrides NO_COLOR). JSON and metrics are never coloured whatever this says.
pub fn color(choice: crate::cli::ColorChoice, is_terminal: bool) -> bool {
    match choice {
        crate::cli::ColorChoice::Always => true,
        crate::cli::ColorChoice::Never => false,
        crate::cli::ColorChoice::Auto => {
            is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// `--identity`, or $XDG_CONFIG_HOME/kpki/identity.txt (~/.config/kpki/identity.txt).
/// With neither variable set there is no safe default: the identity would land beside
/// the store (in the directory kpki runs in), where it must never be.
pub(crate) fn identity_file(g: &crate::cli::Global) -> Result<PathBuf> {
    if let Some(f) = &g.identity {
        return Ok(f.clone());
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .map(|base| base.join("kpki").join("identity.txt"))
        .ok_or_else(|| {
            Error::usage(
                "neither HOME nor XDG_CONFIG_HOME is set: no place for the store's identity",
                "pass --identity FILE (or KPKI_IDENTITY), kept outside the store, or set HOME",
            )
        })
}

pub(crate) fn passphrase(confirm: bool) -> Result<SecretString> {
    if let Ok(p) = std::env::var("KPKI_PASSPHRASE") {
        if p.is_empty() {
            return Err(Error::usage(
                "KPKI_PASSPHRASE is empty",
                "set it to the store's passphrase",
            ));
        }
        return Ok(SecretString::from(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "this store needs its passphrase and there is no terminal to ask on",
            "set KPKI_PASSPHRASE",
        ));
    }
    let p = rpassword::prompt_password("kpki store passphrase: ").map_err(Error::io("terminal"))?;
    if confirm {
        let again = rpassword::prompt_password("again: ").map_err(Error::io("terminal"))?;
        if again != p {
            return Err(Error::usage(
                "the passphrases differ",
                "type the same passphrase twice",
            ));
        }
    }
    if p.is_empty() {
        return Err(Error::usage("the passphrase is empty", "type a passphrase"));
    }
    Ok(SecretString::from(p))
}

pub(crate) fn unlock(g: &crate::cli::Global, store: &Store) -> Result<Keyring> {
    let how = match (&g.identity, store.is_passphrase()) {
        (Some(f), _) => Unlock::IdentityFile(f.clone()),
        (None, true) => Unlock::Passphrase(passphrase(false)?),
        (None, false) => Unlock::IdentityFile(identity_file(g)?),
    };
    Ok(store.keyring(&how)?)
}

pub(crate) fn profiles(g: &crate::cli::Global) -> Result<Profiles> {
    let dir = g
        .profiles
        .clone()
        .unwrap_or_else(|| g.store.join("profiles"));
    Ok(Profiles::load(Some(&dir))?)
}

pub(crate) fn parse_span(s: &str, flag: &str) -> Result<Span> {
    s.parse().map_err(|m: String| {
        Error::usage(
            format!("invalid value for --{flag}: {m}"),
            "write it like 90d, 1y or 12h",
        )
    })
}

pub(crate) fn parse_alg(s: &str) -> Result<KeyAlgorithm> {
    s.parse().map_err(|m: String| {
        Error::usage(
            format!("invalid value for --algorithm: {m}"),
            format!("use one of {}", pki::ALGORITHM_NAMES),
        )
    })
}

pub(crate) fn parse_sans(list: &[String]) -> Result<Vec<San>> {
    list.iter()
        .map(|s| {
            San::parse(s).map_err(|m| {
                Error::usage(
                    format!("invalid value for --san: {m}"),
                    "write an IP address or a DNS name",
                )
            })
        })
        .collect()
}

pub(crate) fn date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    t.format(&f).unwrap_or_default()
}
