//! Man pages from the clap definitions (one per command), with the sections clap cannot
//! know: the examples and exit status from each command's long help, and for kpki(1) the
//! environment and the store's files. `tests/man_pages.rs` fails when `man/` is stale.

use std::io::Write;

use clap::CommandFactory;
use clap_mangen::Man;

const ENVIRONMENT: &str = "\
KPKI_STORE       the store directory (as --store; default ./pki)
KPKI_INVENTORY   the inventory file (as --inventory; default ./cluster.toml)
KPKI_IDENTITY    the age identity file that unlocks the store (as --identity)
KPKI_PASSPHRASE  the passphrase of a passphrase store (else kpki asks on the terminal)
KPKI_PROFILES    a directory of profiles adding to or overriding the built-in ones
XDG_CONFIG_HOME  the default identity is $XDG_CONFIG_HOME/kpki/identity.txt (~/.config/kpki/identity.txt)";

const FILES: &str = "\
pki/kpki.toml                          recipients, the CAs, per CA role the signing and trusted CAs
pki/ca/<name>/<key id>/                ca.crt and ca.key.age of each CA generation; the key age-encrypted
pki/issued/<profile>/<target>/current  the current generation's number
pki/issued/<profile>/<target>/<n>/     generation n: cert.pem and key.pem.age (or public.pem and key.pem.age; or secretbox.key.age)
pki/issued/<profile>/<target>/trusted  key pairs and secrets: earlier generations still published or decrypting
pki/ledger.jsonl                       append-only events: ca-created, issued, superseded, retired, pruned, migrated
pki/backup/<time>-format-1/            the store before its migration from kpki 0.1
pki/profiles/                          the store's own profiles, when present";

fn escape(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\\\");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn page(cmd: clap::Command, extra: &[(&str, &str)]) -> std::io::Result<Vec<u8>> {
    let man = Man::new(cmd.clone())
        .date("")
        .source(format!("kpki {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(after) = cmd.get_after_long_help() {
        writeln!(
            out,
            ".SH \"EXAMPLES AND EXIT STATUS\"\n.nf\n{}\n.fi",
            escape(&after.to_string())
        )?;
    }
    for (title, body) in extra {
        writeln!(out, ".SH {title}\n.nf\n{}\n.fi", escape(body))?;
    }
    Ok(out)
}

/// Every page: `(file name, roff)`.
pub fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut root = super::Cli::command();
    root.build();
    let mut out = vec![(
        "kpki.1".to_string(),
        page(
            root.clone(),
            &[("ENVIRONMENT", ENVIRONMENT), ("FILES", FILES)],
        )?,
    )];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("kpki-{}", sub.get_name());
        let cmd = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("kpki {}", sub.get_name()));
        out.push((format!("{name}.1"), page(cmd, &[])?));
        for subsub in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            let n2 = format!("{name}-{}", subsub.get_name());
            let cmd = subsub.clone().name(n2.clone()).bin_name(format!(
                "kpki {} {}",
                sub.get_name(),
                subsub.get_name()
            ));
            out.push((format!("{n2}.1"), page(cmd, &[])?));
        }
    }
    Ok(out)
}
