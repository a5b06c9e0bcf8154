use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// `kpki audit` exits 3 when the audit itself could not run, usage errors included, as
/// monitoring plugins expect ("unknown"); its 1 and 2 mean warning and critical.
const AUDIT_CANNOT_RUN: u8 = 3;

fn main() -> ExitCode {
    let cli = match kpki::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on usage errors; kpki keeps 2 for "refused by policy".
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ if is_audit() => ExitCode::from(AUDIT_CANNOT_RUN),
                _ => ExitCode::from(1),
            };
        }
    };
    let audit = matches!(cli.command, kpki::cli::Command::Audit(_));
    let color = kpki::commands::color(cli.global.color, std::io::stderr().is_terminal());
    match kpki::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let line = format!("kpki: {}", e.render());
            eprintln!("{}", kpki::terminal::error_line(color, &line));
            ExitCode::from(if audit {
                AUDIT_CANNOT_RUN
            } else {
                e.class().code()
            })
        }
    }
}

/// Whether the command line that failed to parse was for `kpki audit`.
fn is_audit() -> bool {
    kpki::cli::Cli::command()
        .ignore_errors(true)
        .try_get_matches()
        .is_ok_and(|m| m.subcommand_name() == Some("audit"))
}
