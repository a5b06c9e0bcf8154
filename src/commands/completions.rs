//! `kpki completions SHELL`: a completion script from the clap definitions.

use clap::CommandFactory;

use super::*;

pub(super) fn run(a: &crate::cli::CompletionsArgs, p: &mut Printer) -> Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "kpki", &mut script);
    p.data(String::from_utf8_lossy(&script).trim_end())
}
