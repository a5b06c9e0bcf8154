//! Every input the fuzzers (fuzz/, scripts/fuzz.sh) ever crashed kpki with, run again in
//! the default test run: `tests/fixtures/fuzz/<target>/<input>` goes through
//! `kpki::fuzz::<target>`, the very function the fuzz target calls, and must not panic.

use std::path::Path;

#[test]
fn every_crash_input_stays_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut ran = 0;
    for (name, run) in kpki::fuzz::TARGETS {
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.is_file()) {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "{name}: {} panics again", f.display());
            ran += 1;
        }
    }
    for d in std::fs::read_dir(&root).into_iter().flatten() {
        let n = d.unwrap().file_name().into_string().unwrap();
        assert!(
            kpki::fuzz::TARGETS.iter().any(|(t, _)| *t == n),
            "tests/fixtures/fuzz/{n} names no fuzz target"
        );
    }
    eprintln!("{ran} regression inputs");
}

#[test]
fn edge_inputs_do_not_panic() {
    for (_, run) in kpki::fuzz::TARGETS {
        for data in [
            &b""[..],
            b"\0",
            b"@@ ",
            b"@@ \n@@ \n",
            b"-----BEGIN ",
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            b"\xff\xfe",
            b"[[nodes]]\n",
            b"{\"format\":1,\"tree\":\"x\",\"files\":[]}",
        ] {
            run(data);
        }
    }
}

/// The fuzz crate builds one target per entry of `kpki::fuzz::TARGETS`, no more, no less.
#[test]
fn fuzz_targets_match_the_library() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    let script = std::fs::read_to_string(fuzz.join("../scripts/fuzz.sh")).unwrap();
    let mut bins: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|n| n.trim_end_matches('"').to_owned())
        .filter(|n| n != "kpki-fuzz")
        .collect();
    bins.sort();
    let mut lib: Vec<String> = kpki::fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    lib.sort();
    assert_eq!(
        bins, lib,
        "fuzz/Cargo.toml's [[bin]]s and kpki::fuzz::TARGETS"
    );
    for n in &lib {
        let src = std::fs::read_to_string(fuzz.join(format!("fuzz_targets/{n}.rs"))).unwrap();
        assert!(
            src.contains(&format!("kpki::fuzz::{n}(")),
            "fuzz_targets/{n}.rs calls kpki::fuzz::{n}"
        );
        assert!(script.contains(n.as_str()), "scripts/fuzz.sh runs {n}");
    }
}
