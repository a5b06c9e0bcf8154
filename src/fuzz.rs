//! The loaders kpki runs on files it did not write, as the fuzz targets call them.
//!
//! Each function takes arbitrary bytes the way kpki takes such a file and goes as far as
//! kpki goes with what loads (an inventory that parses is planned, a kubeconfig's embedded
//! key is decoded); none may panic or hang, whatever the bytes. `fuzz/` (cargo fuzz, run
//! by `scripts/fuzz.sh`) calls them with libFuzzer's inputs, and
//! `tests/fuzz_regressions.rs` calls them with every input under
//! `tests/fixtures/fuzz/<target>/`, so an input that once crashed stays a test of the
//! default run. Nothing here prints: a key the bytes may hold is never shown.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::inventory::Inventory;
use crate::pki::{self, pem::Object};
use crate::plan::{self, Overrides, Selector};
use crate::profile::{Origin, Profile, Profiles};
use crate::render::{check, refs, tree::MemTree};
use crate::stage;
use crate::store::{self, Keyring};

/// A fuzz target: arbitrary bytes in, nothing out, no panic.
pub type Target = fn(&[u8]);

/// Every target by name: the `fuzz/fuzz_targets/<name>.rs` files and the directories of
/// `tests/fixtures/fuzz/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("cert", cert),
    ("csr", csr),
    ("inventory", inventory),
    ("profile", profile),
    ("config_reader", config_reader),
    ("manifest", manifest),
    ("age_key", age_key),
];

/// A fixed clock: the same input takes the same path on every run.
fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-01-01 0:00 UTC)
}

/// The example cluster, which a fuzzed profile is planned against.
const EXAMPLE_INVENTORY: &str = include_str!("../examples/ha-cluster.toml");

/// A certificate or chain file as `kpki inspect`, the store and `render --check` load it:
/// PEM or DER, summarized, its facts read, checked as a leaf against itself as CA file.
pub fn cert(data: &[u8]) {
    if let Ok(objects) = pki::pem::objects(data) {
        for o in objects {
            if let Object::Certificate(der) = o {
                let _ = pki::summarize(&der, now()).map(|s| s.subject.len());
                let _ = pki::facts(&der);
                let _ = store::key_id_of(data);
            }
        }
    }
    let _ = pki::public_key_info(data);
    let _ = pki::verify::leaf_file(data, None, data, &[], &[]);
}

/// A CSR as `kpki sign --csr` loads it (PEM or DER), then verified and read.
pub fn csr(data: &[u8]) {
    if let Ok(objects) = pki::pem::objects(data) {
        for o in objects {
            if let Object::Csr(der) = o {
                if let Ok(info) = pki::parse_csr(&der) {
                    for s in &info.requested_sans {
                        let _ = s.to_string();
                    }
                }
            }
        }
    }
}

/// An inventory as `--inventory` reads it (UTF-8 text, as `read_to_string` takes it); the
/// error's line and column are computed, and an inventory that loads is planned with
/// the built-in profiles.
pub fn inventory(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Inventory::parse(Path::new("cluster.toml"), text) {
        Ok(inv) => {
            let _ = plan::plan_cluster(&Profiles::builtin(), &inv, &Overrides::default());
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint());
        }
    }
}

/// A user profile (`pki/profiles/*.toml`); one that loads is planned for every node of
/// the example cluster.
pub fn profile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = PathBuf::from("profiles/fuzz.toml");
    match Profile::parse("fuzz", &path, text, Origin::File(path.clone())) {
        Ok(p) => {
            static INV: OnceLock<Inventory> = OnceLock::new();
            let inv = INV.get_or_init(|| {
                Inventory::parse(Path::new("ha-cluster.toml"), EXAMPLE_INVENTORY)
                    .expect("the example inventory loads")
            });
            let _ = plan::plan_profile(&p, inv, &Selector::All, &Overrides::default());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The config reader of `render --check` and the audit, and the checker after it, on a
/// tree in memory. The input is files, each after a line `@@ <install path>`; text
/// before the first such line is `/etc/kubernetes/admin.kubeconfig`.
pub fn config_reader(data: &[u8]) {
    let tree = mem_tree(data);
    let scan = refs::scan_tree(&tree);
    for r in &scan.references {
        if r.kind == refs::RefKind::EmbeddedKey {
            let _ = refs::embedded_key_tree(&tree, r);
        }
    }
    for f in check::check_tree(&tree, now()) {
        let _ = f.to_string();
    }
}

/// The files of a [`config_reader`] input.
pub fn mem_tree(data: &[u8]) -> MemTree {
    let mut tree = MemTree::new();
    let mut path = b"/etc/kubernetes/admin.kubeconfig".to_vec();
    let mut body: Vec<u8> = Vec::new();
    let mut mode = 0o600;
    for line in data.split_inclusive(|b| *b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"@@ ") {
            tree.insert(
                path_of(&path),
                Zeroizing::new(std::mem::take(&mut body)),
                mode,
            );
            let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
            // `@@ 0644 /etc/…` sets the mode too.
            (mode, path) = match rest.split_first_chunk::<5>() {
                Some((m, p))
                    if m[4] == b' ' && m[..4].iter().all(|b| (b'0'..=b'7').contains(b)) =>
                {
                    let m = std::str::from_utf8(&m[..4]).unwrap_or("0600");
                    (u32::from_str_radix(m, 8).unwrap_or(0o600), p.to_vec())
                }
                _ => (0o600, rest.to_vec()),
            };
        } else {
            body.extend_from_slice(line);
        }
    }
    tree.insert(path_of(&path), Zeroizing::new(body), mode);
    tree
}

fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// A staged tree's manifest as `kpki apply` reads the previous one: every path it lists
/// resolves under the tree, or is refused.
pub fn manifest(data: &[u8]) {
    let Ok(m) = stage::parse_manifest(data) else {
        return;
    };
    let root = Path::new("/nonexistent/kpki-fuzz/out/node");
    for e in &m.files {
        let _ = stage::Manifest::mode_of(e);
        if let Ok(p) = stage::target(root, &e.path) {
            assert!(
                p.starts_with(root)
                    && p != root
                    && p.components().all(|c| matches!(
                        c,
                        std::path::Component::RootDir | std::path::Component::Normal(_)
                    )),
                "manifest path {:?} resolved outside the tree: {}",
                e.path,
                p.display()
            );
        }
    }
}

/// age key loading: an identity file's text, an age file (`*.age`, armored or binary)
/// decrypted with the identities it names and one of kpki's, and a decrypted private key
/// PEM loaded as kpki loads a CA key.
pub fn age_key(data: &[u8]) {
    static OWN: OnceLock<String> = OnceLock::new();
    let text = String::from_utf8_lossy(data);
    let mut ids = store::parse_identities(&text);
    let own = OWN.get_or_init(|| {
        use age::secrecy::ExposeSecret;
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret()
            .to_owned()
    });
    ids.extend(store::parse_identities(own));
    let keyring = Keyring::from_identities(ids);
    if let Ok(plain) = keyring.decrypt(Path::new("fuzz.age"), data) {
        if let Ok(pem) = std::str::from_utf8(&plain) {
            let _ = pki::load_private_pem(pem);
        }
    }
    if let Ok(pem) = std::str::from_utf8(data) {
        let _ = pki::load_private_pem(pem);
    }
}
