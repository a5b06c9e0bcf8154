//! `kpki completions SHELL` prints a script its shell accepts; `--color` and NO_COLOR
//! decide colour, and output that is not a terminal gets none by default.

mod support;

use support::TestEnv;

#[test]
fn completion_scripts() {
    let env = TestEnv::new();
    for (shell, check) in [
        ("bash", Some(("bash", "-n"))),
        ("zsh", Some(("zsh", "-n"))),
        ("fish", Some(("fish", "--no-execute"))),
    ] {
        let script = env.ok(&["completions", shell]);
        // fish names long options without their dashes (`-l color`).
        for word in ["rotate", "render", "json", "color", "completions", "always"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        let Some((prog, flag)) = check else { continue };
        let file = env.path().join(format!("kpki.{shell}"));
        std::fs::write(&file, &script).unwrap();
        match std::process::Command::new(prog)
            .arg(flag)
            .arg(&file)
            .output()
        {
            Ok(o) => assert!(
                o.status.success(),
                "{prog} rejects the script: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(_) => eprintln!("skipped: no {prog} to check the {shell} script"),
        }
    }
    env.fails(&["completions", "tcsh"], 1);
}

#[test]
fn colour_follows_the_flag_then_no_color_then_the_terminal() {
    let env = TestEnv::new();
    let args = ["issue", "--profile", "etcd-peer", "--node", "etcd01"];
    let stderr = |color: Option<&str>, no_color: bool| {
        let mut c = env.kpki();
        if let Some(w) = color {
            c.args(["--color", w]);
        }
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let o = c.args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Not a terminal: none by default.
    assert!(!stderr(None, false).contains('\x1b'));
    assert!(!stderr(Some("auto"), false).contains('\x1b'));
    assert!(!stderr(Some("never"), false).contains('\x1b'));
    // The flag overrides NO_COLOR.
    assert!(stderr(Some("always"), true).contains("\x1b[31merror:"));
    assert!(!stderr(Some("never"), true).contains('\x1b'));

    // The audit table in colour on request; its JSON and metrics never.
    env.init();
    env.ok(&["apply", "--out", "staged", "--quiet"]);
    let table = env
        .kpki()
        .args(["--color", "always", "audit", "staged"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains('\x1b'));
    for format in ["json", "prometheus"] {
        let o = env
            .kpki()
            .args(["--color", "always", "audit", "--format", format, "staged"])
            .output()
            .unwrap();
        assert!(
            !o.stdout.is_empty() && !o.stdout.contains(&0x1b),
            "{format}"
        );
    }
    let plain = env.kpki().args(["audit", "staged"]).output().unwrap();
    assert!(!plain.stdout.contains(&0x1b));
}
