use std::process::ExitCode;

use clap::Parser;

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
                _ => ExitCode::from(1),
            };
        }
    };
    match kpki::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kpki: {}", e.render());
            ExitCode::from(e.class().code())
        }
    }
}
