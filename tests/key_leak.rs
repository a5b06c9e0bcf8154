//! Secrets stay secret: a full run (init, issue --all --out, apply, apply
//! --cluster-signing, csr, sign, plan, ledger, audit, inspect, render, render --check,
//! store verify, prune) on a scratch store, then every private key that legitimately
//! exists is collected (each age file of the store decrypted with the test's identity, the
//! node key `csr` wrote) and searched for, as its PKCS#8 DER, its PEM body lines, base64 of
//! its PEM (as a kubeconfig embeds it), its raw private scalar or primes and their hex,
//! and the encryption keys and the age identity likewise, in everything kpki printed and
//! in every file under the scratch directories but the explicit key outputs (the staged
//! and exported key and secret files, the admin kubeconfig that embeds its key, the node
//! key, the identity file).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use support::TestEnv;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One secret to look for, with what it is (never the secret itself in a message).
struct Needle {
    what: String,
    bytes: Vec<u8>,
}

/// Splits one DER TLV off the front: (tag, value, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    Some((tag, b.get(head..head + len)?, b.get(head + len..)?))
}

/// The private numbers inside a PKCS#8 key: the EC scalar, the Ed25519 seed, or RSA's d, p
/// and q (big-endian, without a leading zero), each with its offset in the DER.
fn private_numbers(pkcs8: &[u8]) -> Vec<(usize, &[u8])> {
    let at = |v: &[u8]| v.as_ptr() as usize - pkcs8.as_ptr() as usize;
    let (0x30, body, _) = tlv(pkcs8).expect("PKCS#8 SEQUENCE") else {
        panic!("not PKCS#8")
    };
    let (_, _version, rest) = tlv(body).unwrap();
    let (_, _alg, rest) = tlv(rest).unwrap();
    let (0x04, inner, _) = tlv(rest).unwrap() else {
        panic!("no privateKey OCTET STRING")
    };
    let numbers: Vec<&[u8]> = match tlv(inner).unwrap() {
        // Ed25519: CurvePrivateKey, an OCTET STRING of the seed.
        (0x04, seed, _) => vec![seed],
        (0x30, key, _) => {
            let (_, _version, rest) = tlv(key).unwrap();
            match tlv(rest).unwrap() {
                // ECPrivateKey: version, privateKey OCTET STRING, …
                (0x04, scalar, _) => vec![scalar],
                // RSAPrivateKey: version, n, e, d, p, q, …
                (0x02, _n, rest) => {
                    let (_, _e, rest) = tlv(rest).unwrap();
                    let (_, d, rest) = tlv(rest).unwrap();
                    let (_, p, rest) = tlv(rest).unwrap();
                    let (_, q, _) = tlv(rest).unwrap();
                    vec![d, p, q]
                }
                (t, ..) => panic!("unknown private key structure (tag {t:#x})"),
            }
        }
        (t, ..) => panic!("unknown privateKey contents (tag {t:#x})"),
    };
    numbers
        .into_iter()
        .map(|v| {
            let skip = v.iter().take_while(|b| **b == 0).count();
            (at(v) + skip, &v[skip..])
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Everything a private key (PKCS#8 DER) may leak as. PEM lines and base64 are looked
/// for where they encode private numbers (the rest of a key is its algorithm and its public
/// key, which certificates hold too).
fn key_needles(what: &str, pkcs8: &[u8]) -> Vec<Needle> {
    let mut v = vec![Needle {
        what: format!("{what}: PKCS#8 DER"),
        bytes: pkcs8.to_vec(),
    }];
    let private = private_numbers(pkcs8);
    let secret =
        |from: usize, to: usize| private.iter().any(|(o, n)| from < o + n.len() && *o < to);
    let body = B64.encode(pkcs8);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    for (i, line) in lines.iter().enumerate() {
        // Line i encodes DER bytes [48 i, 48 i + 48).
        if line.len() >= 24 && secret(48 * i, 48 * i + 48) {
            v.push(Needle {
                what: format!("{what}: PEM body line {}", i + 1),
                bytes: line.as_bytes().to_vec(),
            });
        }
    }
    // The PEM base64-encoded from its start, as a kubeconfig's client-key-data holds it:
    // the part of it that encodes each line above.
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
    let pem = format!("{BEGIN}{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
    let enc = B64.encode(&pem);
    for (i, line) in lines.iter().enumerate() {
        if line.len() >= 24 && secret(48 * i, 48 * i + 48) {
            let start = BEGIN.len() + 65 * i;
            let (a, b) = (start.div_ceil(3) * 4, (start + line.len()) / 3 * 4);
            v.push(Needle {
                what: format!("{what}: base64 of its PEM (line {})", i + 1),
                bytes: enc.as_bytes()[a..b].to_vec(),
            });
        }
    }
    for (_, n) in &private {
        v.push(Needle {
            what: format!("{what}: private scalar"),
            bytes: n.to_vec(),
        });
        v.push(Needle {
            what: format!("{what}: private scalar in hex"),
            bytes: hex(n).into_bytes(),
        });
    }
    v
}

/// Everything a raw secret (an encryption key) may leak as.
fn secret_needles(what: &str, secret: &[u8]) -> Vec<Needle> {
    vec![
        Needle {
            what: format!("{what}: raw"),
            bytes: secret.to_vec(),
        },
        Needle {
            what: format!("{what}: base64"),
            bytes: B64.encode(secret).trim_end_matches('=').as_bytes().to_vec(),
        },
        Needle {
            what: format!("{what}: hex"),
            bytes: hex(secret).into_bytes(),
        },
    ]
}

/// A multi-needle search: needles indexed by their first 8 bytes.
struct Finder {
    needles: Vec<Needle>,
    by_prefix: HashMap<[u8; 8], Vec<usize>>,
}

impl Finder {
    fn new(needles: Vec<Needle>) -> Finder {
        let mut by_prefix: HashMap<[u8; 8], Vec<usize>> = HashMap::new();
        for (i, n) in needles.iter().enumerate() {
            assert!(n.bytes.len() >= 16, "{}: too short to look for", n.what);
            by_prefix
                .entry(n.bytes[..8].try_into().unwrap())
                .or_default()
                .push(i);
        }
        Finder { needles, by_prefix }
    }

    /// What of the needles `hay` holds.
    fn find(&self, hay: &[u8]) -> Vec<&str> {
        let mut found = Vec::new();
        for i in 0..hay.len().saturating_sub(7) {
            let Some(ids) = self
                .by_prefix
                .get(&<[u8; 8]>::try_from(&hay[i..i + 8]).unwrap())
            else {
                continue;
            };
            for &id in ids {
                let n = &self.needles[id];
                if hay[i..].starts_with(&n.bytes) && !found.contains(&n.what.as_str()) {
                    found.push(n.what.as_str());
                }
            }
        }
        found
    }
}

fn age_identity(env: &TestEnv) -> age::x25519::Identity {
    use std::str::FromStr;
    let text = std::fs::read_to_string(env.identity()).unwrap();
    text.lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(|l| age::x25519::Identity::from_str(l).unwrap())
        .unwrap()
}

fn age_decrypt(id: &age::x25519::Identity, path: &Path) -> Vec<u8> {
    use std::io::Read;
    let enc = std::fs::read(path).unwrap();
    let dec = age::Decryptor::new(age::armor::ArmoredReader::new(&enc[..])).unwrap();
    let mut out = Vec::new();
    dec.decrypt(std::iter::once(id as &dyn age::Identity))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn pkcs8_of_pem(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    B64.decode(body).unwrap()
}

/// The files of the staged trees under `out` that are explicit key outputs: the manifest's
/// keys and secrets, and the admin kubeconfig (apply embeds its key: it travels).
fn staged_key_files(out: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for tree in std::fs::read_dir(out).unwrap() {
        let tree = tree.unwrap().path();
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tree.join("var/lib/kpki/manifest.json")).unwrap(),
        )
        .unwrap();
        for f in m["files"].as_array().unwrap() {
            let path = f["path"].as_str().unwrap();
            if ["key", "secret"].contains(&f["kind"].as_str().unwrap())
                || path == "/admin.kubeconfig"
            {
                v.push(tree.join(path.trim_start_matches('/')));
            }
        }
    }
    v
}

#[test]
fn no_output_and_no_file_but_the_key_outputs_holds_key_material() {
    let env = TestEnv::new();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut run = |args: &[&str], ok: bool| {
        let o = env.run(args);
        if ok {
            assert!(
                o.status.success(),
                "kpki {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        outputs.push((format!("stdout of kpki {args:?}"), o.stdout));
        outputs.push((format!("stderr of kpki {args:?}"), o.stderr));
    };
    run(&["init"], true);
    run(&["issue", "--all", "--out", "out"], true);
    run(&["apply", "--out", "staged"], true);
    run(&["apply", "--out", "staged-cs", "--cluster-signing"], true);
    run(
        &[
            "csr",
            "--profile",
            "etcd-peer",
            "--node",
            "etcd01",
            "--out",
            "node",
        ],
        true,
    );
    let sign = [
        "sign",
        "--csr",
        "node/etcd.csr",
        "--profile",
        "etcd-peer",
        "--node",
        "etcd01",
        "--force",
    ];
    run(&sign, true);
    run(&[&sign[..], &["--out", "signed"]].concat(), true);
    run(&["issue", "--profile", "kubelet", "--all", "--force"], true);
    run(
        &[
            "issue",
            "--profile",
            "encryption-config",
            "--all",
            "--force",
            "--out",
            "out",
        ],
        true,
    );
    run(&["plan", "--out", "staged"], true);
    run(&["plan", "--out", "staged", "--json"], true);
    run(&["apply", "--out", "staged"], true);
    run(&["ledger"], true);
    run(&["ledger", "--json"], true);
    run(&["store", "verify"], true);
    run(&["render", "--all"], true);
    run(&["render", "--check", "--out", "staged"], true);
    run(&["render", "--check", "--out", "staged-cs"], true);
    run(&["audit", "pki"], false);
    run(&["audit", "staged", "--format", "json"], false);
    run(
        &[
            "audit",
            "staged",
            "--format",
            "prometheus",
            "--output",
            "report.prom",
        ],
        false,
    );
    run(
        &[
            "audit",
            "--configs",
            "staged/master01",
            "--node",
            "master01",
        ],
        false,
    );
    let key = "staged/etcd02/etc/ssl/etcd/etcd.key";
    run(
        &["inspect", "staged/etcd01/etc/ssl/etcd/etcd.crt", key],
        false,
    );
    run(
        &["inspect", "--json", key, "staged/_cluster/admin.kubeconfig"],
        false,
    );
    run(
        &["inspect", "staged/master01/etc/kubernetes/ssl/sa.key"],
        false,
    );
    run(&["store", "prune", "--keep", "1"], true);
    run(&["store", "retire", "--profile", "encryption-config"], true);

    // Every private key and secret that legitimately exists.
    let id = age_identity(&env);
    let mut needles = Vec::new();
    let mut keys = 0;
    for f in walkdir::WalkDir::new(env.store()) {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().into_owned();
        let rel = f
            .path()
            .strip_prefix(env.path())
            .unwrap()
            .display()
            .to_string();
        if name == "key.pem.age" || name == "ca.key.age" {
            let pem = age_decrypt(&id, f.path());
            needles.extend(key_needles(&rel, &pkcs8_of_pem(&pem)));
            keys += 1;
        } else if name.ends_with(".key.age") {
            needles.extend(secret_needles(&rel, &age_decrypt(&id, f.path())));
            keys += 1;
        }
    }
    let node_key = std::fs::read(env.path().join("node/etcd.key")).unwrap();
    needles.extend(key_needles("node/etcd.key", &pkcs8_of_pem(&node_key)));
    let age_secret = std::fs::read_to_string(env.identity()).unwrap();
    let age_secret = age_secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    needles.push(Needle {
        what: "the age identity".into(),
        bytes: age_secret.as_bytes()["AGE-SECRET-KEY-".len()..].to_vec(),
    });
    // 3 CAs, 38 issuances (some in two generations), the node's key, the identity.
    assert!(keys >= 41, "{keys} keys and secrets in the store");
    let finder = Finder::new(needles);

    // The explicit key outputs.
    let mut allowed: Vec<PathBuf> = staged_key_files(&env.path().join("staged"));
    allowed.extend(staged_key_files(&env.path().join("staged-cs")));
    for dir in ["out", "signed"] {
        for f in walkdir::WalkDir::new(env.path().join(dir)) {
            let f = f.unwrap();
            let n = f.file_name().to_string_lossy();
            if n.ends_with(".key") || n == "encryption-config.yaml" {
                allowed.push(f.into_path());
            }
        }
    }
    allowed.push(env.path().join("node/etcd.key"));
    allowed.push(env.identity());
    // The allowed files do hold keys: the search finds what it looks for.
    assert!(
        !finder
            .find(&std::fs::read(env.path().join(key)).unwrap())
            .is_empty(),
        "the search finds a staged key"
    );
    let admin = std::fs::read(env.path().join("staged/_cluster/admin.kubeconfig")).unwrap();
    assert!(
        finder
            .find(&admin)
            .iter()
            .any(|w| w.contains("base64 of its PEM")),
        "the search finds the admin key a kubeconfig embeds"
    );

    let mut leaks = Vec::new();
    for (what, bytes) in &outputs {
        for f in finder.find(bytes) {
            leaks.push(format!("{what} holds {f}"));
        }
    }
    let mut scanned = 0;
    for f in walkdir::WalkDir::new(env.path()) {
        let f = f.unwrap();
        if !f.file_type().is_file() || allowed.contains(&f.path().to_path_buf()) {
            continue;
        }
        scanned += 1;
        let bytes =
            std::fs::read(f.path()).unwrap_or_else(|e| panic!("{}: {e}", f.path().display()));
        for w in finder.find(&bytes) {
            leaks.push(format!("{} holds {w}", f.path().display()));
        }
    }
    assert!(scanned > 300, "{scanned} files scanned");
    assert!(
        leaks.is_empty(),
        "key material where it must not be:\n{}",
        leaks.join("\n")
    );
}
