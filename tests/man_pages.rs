//! The committed man pages are what the clap definitions generate today.

use std::path::Path;

#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = kpki::cli::man::pages().unwrap();
    let mut stale = Vec::new();
    for (name, body) in &pages {
        match std::fs::read(dir.join(name)) {
            Ok(old) if &old == body => {}
            _ => stale.push(name.clone()),
        }
    }
    let mut extra: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    extra.retain(|f| !pages.iter().any(|(n, _)| n == f));
    assert!(
        stale.is_empty() && extra.is_empty(),
        "man/ is stale ({stale:?} differ, {extra:?} are no longer generated); run `cargo run -- generate-man --out man`"
    );
    for (name, body) in &pages {
        let text = String::from_utf8_lossy(body);
        assert!(text.contains(".SH NAME"), "{name}");
    }
    assert!(pages.iter().any(|(n, _)| n == "kpki-issue.1"));
}
