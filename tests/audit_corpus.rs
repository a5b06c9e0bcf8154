//! `kpki audit` on a corpus with known answers, made here by rcgen (exact dates) and by
//! the real openssl: every state, DER, a chain file, a bundle of three CAs, a kubeconfig
//! with embedded data, a mismatched key, a key with mode 0644, a truncated PEM, binary
//! junk named `.crt`, symlink loops, a dangling link, an unreadable file and a FIFO, a
//! leaf from a foreign CA, a same-day expiry cliff and a CA that expires before a leaf
//! it signed. Each one's state, finding and the exit status are asserted, through the
//! JSON (parsed), the table and the Prometheus text (checked line by line, and by
//! `promtool check metrics` where it is installed).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, SanType,
};
use serde_json::Value;
use support::TestEnv;
use time::{Duration, OffsetDateTime};

const DAY: i64 = 86_400;

/// A CA made with rcgen: its certificate PEM and an issuer to sign with.
struct Ca {
    pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "audit-test");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca(cn: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = not_before;
    p.not_after = not_after;
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A leaf signed by `ca`: (certificate PEM, DER, key PEM).
fn leaf(
    ca: &Ca,
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> (String, Vec<u8>, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::DnsName(
        format!("{cn}.example.com").try_into().unwrap(),
    )];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = not_before;
    p.not_after = not_after;
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), cert.der().to_vec(), key.serialize_pem())
}

fn write(path: &Path, bytes: impl AsRef<[u8]>, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("runs");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap()
}

/// The corpus, its trusted CAs, and the time it was made for.
struct Corpus {
    env: TestEnv,
    dir: PathBuf,
    trust: PathBuf,
    now: OffsetDateTime,
    cliff_day: String,
}

impl Corpus {
    fn rel(&self, p: &str) -> String {
        self.dir.join(p).display().to_string()
    }

    fn audit(&self, extra: &[&str]) -> std::process::Output {
        let now = self
            .now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let ca = self.trust.join("corpus-ca.crt");
        let short = self.trust.join("short-ca.crt");
        let mut args = vec![
            "audit",
            "--now",
            &now,
            "--ca",
            ca.to_str().unwrap(),
            "--ca",
            short.to_str().unwrap(),
            self.dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.env
            .kpki()
            .env_remove("KPKI_INVENTORY")
            .args(&args)
            .output()
            .unwrap()
    }
}

fn build() -> Corpus {
    let env = TestEnv::new();
    // A couple of minutes ahead: the openssl-made certificates start "now" by the real
    // clock while the corpus is built, and must not look not-yet-valid at the audit's time.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::minutes(2);
    let days = |n: i64| now + Duration::seconds(n * DAY);
    let dir = env.path().join("corpus");
    let trust = env.path().join("trust");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&trust).unwrap();

    let root = ca("corpus CA", days(-365), days(5 * 365));
    write(&trust.join("corpus-ca.crt"), &root.pem, 0o644);
    write(&trust.join("corpus-ca.key"), &root.key_pem, 0o600);
    let short = ca("short-lived CA", days(-30), days(60));
    write(&trust.join("short-ca.crt"), &short.pem, 0o644);
    let foreign = ca("foreign CA", days(-30), days(900));
    let foreign2 = ca("other foreign CA", days(-30), days(1200));

    // One file per state, all from the trusted CA.
    let (valid, _, valid_key) = leaf(&root, "valid", days(-10), days(200));
    write(&dir.join("valid.crt"), &valid, 0o644);
    write(&dir.join("valid.key"), &valid_key, 0o600);
    write(
        &dir.join("warn.crt"),
        leaf(&root, "warn", days(-300), days(20)).0,
        0o644,
    );
    write(
        &dir.join("critical.crt"),
        leaf(&root, "critical", days(-300), days(3)).0,
        0o644,
    );
    write(
        &dir.join("expired.crt"),
        leaf(&root, "expired", days(-300), days(-2)).0,
        0o644,
    );
    write(
        &dir.join("future.crt"),
        leaf(&root, "future", days(5), days(400)).0,
        0o644,
    );
    // DER, named .cer.
    write(
        &dir.join("der.cer"),
        leaf(&root, "der", days(-1), days(100)).1,
        0o644,
    );
    // A chain file: leaf then CA.
    let (chained, _, _) = leaf(&root, "chained", days(-1), days(150));
    write(
        &dir.join("chain.pem"),
        format!("{chained}{}", root.pem),
        0o644,
    );
    // A bundle of three CAs, two of them foreign.
    write(
        &dir.join("bundle.pem"),
        format!("{}{}{}", root.pem, foreign.pem, foreign2.pem),
        0o644,
    );
    // A kubeconfig with embedded CA, client certificate and its key.
    let (client, _, client_key) = leaf(&root, "admin", days(-1), days(100));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://192.168.3.1:443\n  name: example\ncontexts:\n- context:\n    cluster: example\n    user: admin\n  name: admin@example\ncurrent-context: admin@example\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&root.pem),
        b64(&client),
        b64(&client_key)
    );
    write(&dir.join("admin.kubeconfig"), kubeconfig, 0o600);
    // A certificate with somebody else's key next to it.
    let (mismatch, _, _) = leaf(&root, "mismatch", days(-1), days(100));
    let (_, _, other_key) = leaf(&root, "other", days(-1), days(100));
    write(&dir.join("mismatch.crt"), &mismatch, 0o644);
    write(&dir.join("mismatch.key"), &other_key, 0o600);
    // A matching key that everyone can read.
    let (loose, _, loose_key) = leaf(&root, "loose", days(-1), days(100));
    write(&dir.join("loose.crt"), &loose, 0o644);
    write(&dir.join("loose.key"), &loose_key, 0o644);
    // Truncated PEM, and binary junk named .crt.
    write(&dir.join("truncated.pem"), &valid[..valid.len() / 2], 0o644);
    let mut junk = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..512 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        junk.push((x >> 16) as u8);
    }
    junk[0] = 0;
    write(&dir.join("junk.crt"), &junk, 0o644);
    // A leaf from a foreign CA.
    write(
        &dir.join("foreign-leaf.crt"),
        leaf(&foreign, "intruder", days(-1), days(100)).0,
        0o644,
    );
    // A leaf that outlives its (short-lived, trusted) CA.
    write(
        &dir.join("outlives.crt"),
        leaf(&short, "outlives", days(-1), days(300)).0,
        0o644,
    );
    // The expiry cliff: twelve certificates issued in one night.
    for i in 0..12 {
        let (c, _, _) = leaf(&root, &format!("cliff{i:02}"), days(-1), days(150));
        write(&dir.join(format!("cliff/c{i:02}.crt")), c, 0o644);
    }
    // Symlink loops (a directory link to its own parent; two file links to each other),
    // a dangling link, a FIFO named like a certificate, a file nobody may read.
    std::os::unix::fs::symlink(".", dir.join("cliff/loop")).unwrap();
    std::os::unix::fs::symlink("b.crt", dir.join("a.crt")).unwrap();
    std::os::unix::fs::symlink("a.crt", dir.join("b.crt")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/gone.crt", dir.join("dangling.crt")).unwrap();
    run(Command::new("mkfifo").arg(dir.join("fifo.crt")));
    let (secret, _, _) = leaf(&root, "secret", days(-1), days(100));
    write(&dir.join("secret.crt"), secret, 0o000);

    // And some made by the real openssl, signed by the same CA: a SEC1 EC key, a PKCS#1
    // RSA key (expiring in 5 days: critical), a DER copy, and a self-signed CA.
    let ossl = dir.join("openssl");
    std::fs::create_dir_all(&ossl).unwrap();
    let ca_crt = trust.join("corpus-ca.crt");
    let ca_key = trust.join("corpus-ca.key");
    let (ca_crt, ca_key) = (ca_crt.to_str().unwrap(), ca_key.to_str().unwrap());
    openssl(
        &ossl,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.key",
        ],
    );
    openssl(
        &ossl,
        &[
            "req",
            "-new",
            "-key",
            "ec.key",
            "-subj",
            "/CN=openssl-ec",
            "-out",
            "ec.csr",
        ],
    );
    openssl(
        &ossl,
        &[
            "x509",
            "-req",
            "-in",
            "ec.csr",
            "-CA",
            ca_crt,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "90",
            "-out",
            "ec.crt",
        ],
    );
    openssl(
        &ossl,
        &["x509", "-in", "ec.crt", "-outform", "DER", "-out", "ec.der"],
    );
    openssl(
        &ossl,
        &["genrsa", "-traditional", "-out", "rsa.key", "2048"],
    );
    openssl(
        &ossl,
        &[
            "req",
            "-new",
            "-key",
            "rsa.key",
            "-subj",
            "/CN=openssl-rsa",
            "-out",
            "rsa.csr",
        ],
    );
    openssl(
        &ossl,
        &[
            "x509",
            "-req",
            "-in",
            "rsa.csr",
            "-CA",
            ca_crt,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "5",
            "-out",
            "rsa.crt",
        ],
    );
    openssl(
        &ossl,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "self.key",
            "-subj",
            "/CN=openssl-self-signed",
            "-days",
            "365",
            "-out",
            "self.crt",
        ],
    );
    for f in ["ec.csr", "rsa.csr"] {
        std::fs::remove_file(ossl.join(f)).unwrap();
    }
    for k in ["ec.key", "rsa.key", "self.key"] {
        std::fs::set_permissions(ossl.join(k), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    let d = days(150).date();
    let cliff_day = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    Corpus {
        env,
        dir,
        trust,
        now,
        cliff_day,
    }
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// (state, chain status) of the certificate at `path` and position `index`.
fn cert<'a>(certs: &'a [Value], path: &str, index: u64) -> &'a Value {
    certs
        .iter()
        .find(|c| c["path"] == path && c["index"] == index)
        .unwrap_or_else(|| panic!("no certificate {path} #{index} in the report"))
}

fn findings_of<'a>(findings: &'a [Value], path: &str) -> Vec<&'a str> {
    let mut v: Vec<&str> = findings
        .iter()
        .filter(|f| f["path"] == path)
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn every_case_gets_its_state_finding_and_exit_status() {
    let c = build();
    let out = c.audit(&["--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(&out);
    let certs = j["certificates"].as_array().unwrap();
    let findings = j["findings"].as_array().unwrap();
    let p = |f: &str| c.rel(f);

    // States.
    for (file, state) in [
        ("valid.crt", "ok"),
        ("warn.crt", "warn"),
        ("critical.crt", "critical"),
        ("expired.crt", "expired"),
        ("future.crt", "not_yet_valid"),
        ("der.cer", "ok"),
        ("openssl/ec.crt", "ok"),
        ("openssl/ec.der", "ok"),
        ("openssl/rsa.crt", "critical"),
    ] {
        let x = cert(certs, &p(file), 0);
        assert_eq!(x["state"], state, "{file}: {x}");
        assert!(
            x["not_after"].as_str().unwrap().ends_with('Z'),
            "RFC 3339 UTC"
        );
        assert!(x["seconds_left"].is_i64());
        for field in [
            "subject",
            "issuer",
            "serial",
            "sans",
            "not_before",
            "sha256",
            "chain",
        ] {
            assert!(!x[field].is_null(), "{file}: {field} missing");
        }
    }
    assert_eq!(
        cert(certs, &p("expired.crt"), 0)["seconds_left"]
            .as_i64()
            .unwrap(),
        -2 * DAY
    );
    assert_eq!(
        cert(certs, &p("valid.crt"), 0)["seconds_left"]
            .as_i64()
            .unwrap(),
        200 * DAY
    );
    assert_eq!(cert(certs, &p("der.cer"), 0)["encoding"], "der");
    assert_eq!(cert(certs, &p("openssl/ec.der"), 0)["encoding"], "der");
    assert_eq!(
        cert(certs, &p("valid.crt"), 0)["sans"],
        serde_json::json!(["DNS:valid.example.com"])
    );

    // Chains: trusted leaves, the chain file, the bundle, foreign issuers.
    assert_eq!(
        cert(certs, &p("valid.crt"), 0)["chain"]["status"],
        "trusted"
    );
    assert_eq!(cert(certs, &p("valid.crt"), 0)["chain"]["ca"], "corpus CA");
    assert_eq!(
        cert(certs, &p("openssl/ec.crt"), 0)["chain"]["status"],
        "trusted"
    );
    assert_eq!(
        cert(certs, &p("chain.pem"), 0)["chain"]["status"],
        "trusted"
    );
    assert_eq!(cert(certs, &p("chain.pem"), 1)["chain"]["status"], "anchor");
    assert_eq!(cert(certs, &p("chain.pem"), 1)["is_ca"], true);
    assert_eq!(
        cert(certs, &p("bundle.pem"), 0)["chain"]["status"],
        "anchor"
    );
    assert_eq!(
        cert(certs, &p("bundle.pem"), 1)["chain"]["status"],
        "foreign_root"
    );
    assert_eq!(
        cert(certs, &p("bundle.pem"), 2)["chain"]["status"],
        "foreign_root"
    );
    assert_eq!(
        findings_of(findings, &p("bundle.pem")),
        ["foreign_ca", "foreign_ca"]
    );
    assert_eq!(
        cert(certs, &p("foreign-leaf.crt"), 0)["chain"]["status"],
        "untrusted"
    );
    assert_eq!(
        findings_of(findings, &p("foreign-leaf.crt")),
        ["untrusted_issuer"]
    );
    assert_eq!(
        cert(certs, &p("openssl/self.crt"), 0)["chain"]["status"],
        "foreign_root"
    );

    // The kubeconfig: the cluster's CA and the user's certificate with its own key.
    let kc = p("admin.kubeconfig");
    let user = certs
        .iter()
        .find(|x| x["path"] == kc && x["embedded_kind"] == "user")
        .expect("the user's certificate");
    assert_eq!(user["embedded_key"], "admin");
    assert_eq!(user["encoding"], "kubeconfig");
    assert_eq!(user["key"]["matches"], true);
    let cluster = certs
        .iter()
        .find(|x| x["path"] == kc && x["embedded_kind"] == "cluster")
        .expect("the cluster's CA");
    assert_eq!(cluster["embedded_key"], "example");
    assert_eq!(cluster["chain"]["status"], "anchor");
    assert!(findings_of(findings, &kc).is_empty(), "{findings:?}");

    // Keys: a match, a mismatch, a loose mode; openssl's SEC1, PKCS#1 and PKCS#8 keys.
    let key = &cert(certs, &p("valid.crt"), 0)["key"];
    assert_eq!(key["path"], p("valid.key"));
    assert_eq!(key["matches"], true);
    assert_eq!(key["mode"], "0600");
    assert_eq!(cert(certs, &p("mismatch.crt"), 0)["key"]["matches"], false);
    assert_eq!(findings_of(findings, &p("mismatch.crt")), ["key_mismatch"]);
    assert_eq!(cert(certs, &p("loose.crt"), 0)["key"]["matches"], true);
    assert_eq!(cert(certs, &p("loose.crt"), 0)["key"]["mode"], "0644");
    assert_eq!(findings_of(findings, &p("loose.key")), ["key_mode"]);
    for f in ["openssl/ec.crt", "openssl/rsa.crt", "openssl/self.crt"] {
        assert_eq!(cert(certs, &p(f), 0)["key"]["matches"], true, "{f}");
    }

    // Files that are not what they claim, and the walk's troubles.
    assert_eq!(findings_of(findings, &p("truncated.pem")), ["unparsable"]);
    assert_eq!(findings_of(findings, &p("junk.crt")), ["unparsable"]);
    assert_eq!(findings_of(findings, &p("cliff/loop")), ["symlink_loop"]);
    assert_eq!(findings_of(findings, &p("a.crt")), ["symlink_loop"]);
    assert_eq!(findings_of(findings, &p("b.crt")), ["symlink_loop"]);
    assert_eq!(
        findings_of(findings, &p("dangling.crt")),
        ["broken_symlink"]
    );
    assert_eq!(findings_of(findings, &p("fifo.crt")), ["unreadable"]);
    if euid() == 0 {
        // root reads a mode-000 file anyway: it is just a certificate.
        assert_eq!(cert(certs, &p("secret.crt"), 0)["state"], "ok");
    } else {
        assert_eq!(findings_of(findings, &p("secret.crt")), ["unreadable"]);
    }
    let severity: BTreeMap<&str, &str> = findings
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(severity["unparsable"], "error");
    assert_eq!(severity["key_mismatch"], "error");
    assert_eq!(severity["key_mode"], "error");
    assert_eq!(severity["unreadable"], "warn");
    assert_eq!(severity["broken_symlink"], "warn");
    assert_eq!(severity["symlink_loop"], "info");
    assert_eq!(severity["foreign_ca"], "info");

    // Across the run: the cliff with its date, the CA that dies before its leaf.
    let cliff: Vec<&Value> = findings
        .iter()
        .filter(|f| f["kind"] == "expiry_cliff")
        .collect();
    assert_eq!(cliff.len(), 1, "{findings:?}");
    assert!(cliff[0]["path"].is_null());
    let m = cliff[0]["message"].as_str().unwrap();
    assert!(
        m.starts_with("13 certificates expire on ") && m.contains(&c.cliff_day),
        "{m}"
    );
    assert_eq!(j["summary"]["cliffs"][0]["date"], c.cliff_day.as_str());
    let short = c.trust.join("short-ca.crt").display().to_string();
    assert_eq!(findings_of(findings, &short), ["ca_expires_first"]);
    let m = findings
        .iter()
        .find(|f| f["kind"] == "ca_expires_first")
        .unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(
        m.contains("CA short-lived CA expires") && m.contains("outlives"),
        "{m}"
    );

    // The summary adds up, and sorting is by time left.
    let s = &j["summary"];
    assert_eq!(s["exit_code"], 2);
    assert_eq!(s["expired"], 1);
    assert_eq!(s["not_yet_valid"], 1);
    assert_eq!(s["warn"], 1);
    assert_eq!(s["critical"], 2);
    assert_eq!(s["certificates"].as_u64().unwrap() as usize, certs.len());
    let lefts: Vec<i64> = certs
        .iter()
        .map(|c| c["seconds_left"].as_i64().unwrap())
        .collect();
    assert!(
        lefts.windows(2).all(|w| w[0] <= w[1]),
        "sorted by time left"
    );
    assert_eq!(certs[0]["path"], p("expired.crt"));
}

#[test]
fn exit_status_follows_the_worst_case() {
    let c = build();
    let now = c
        .now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let audit = |paths: &[PathBuf], extra: &[&str]| -> i32 {
        let mut args = vec!["audit", "--now", now.as_str()];
        args.extend_from_slice(extra);
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        let o = c
            .env
            .kpki()
            .env_remove("KPKI_INVENTORY")
            .args(&args)
            .output()
            .unwrap();
        o.status.code().unwrap()
    };
    let f = |n: &str| c.dir.join(n);
    assert_eq!(audit(&[f("valid.crt")], &[]), 0);
    assert_eq!(audit(&[f("valid.crt"), f("warn.crt")], &[]), 1);
    assert_eq!(audit(&[f("valid.crt"), f("critical.crt")], &[]), 2);
    assert_eq!(audit(&[f("expired.crt")], &[]), 2);
    assert_eq!(audit(&[f("future.crt")], &[]), 2);
    // --warn and --critical move the thresholds.
    assert_eq!(audit(&[f("warn.crt")], &["--warn", "10d"]), 0);
    assert_eq!(
        audit(&[f("warn.crt")], &["--warn", "60d", "--critical", "21d"]),
        2
    );
    // A warning finding alone (a FIFO named .crt) warns; an info finding alone does not.
    assert_eq!(audit(&[f("valid.crt"), f("fifo.crt")], &[]), 1);
    assert_eq!(audit(&[f("valid.crt"), f("cliff/loop")], &[]), 0);
    assert_eq!(audit(&[f("junk.crt")], &[]), 2);
    // The audit could not run: 3, for bad flags too.
    assert_eq!(audit(&[c.env.path().join("nowhere")], &[]), 3);
    // ... even when a CA file given for the chain check could be read.
    let ca = c.trust.join("corpus-ca.crt");
    assert_eq!(
        audit(
            &[c.env.path().join("nowhere")],
            &["--ca", ca.to_str().unwrap()]
        ),
        3
    );
    // One of two paths missing is a finding of an audit that ran.
    assert_eq!(
        audit(&[f("valid.crt"), c.env.path().join("nowhere")], &[]),
        2
    );
    assert_eq!(audit(&[f("valid.crt")], &["--warn", "5x"]), 3);
    assert_eq!(
        audit(&[f("valid.crt")], &["--warn", "7d", "--critical", "30d"]),
        3
    );
    assert_eq!(audit(&[f("valid.crt")], &["--no-such-flag"]), 3);
    assert_eq!(
        audit(
            &[f("valid.crt")],
            &["--ca", f("valid.crt").to_str().unwrap()]
        ),
        3
    );
    let o = c
        .env
        .kpki()
        .args(["audit", "--warn", "5x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid value for --warn"));
}

#[test]
fn table_is_sorted_with_findings_and_a_summary_and_quiet_keeps_problems() {
    let c = build();
    let out = c.audit(&[]);
    assert_eq!(out.status.code(), Some(2));
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(!t.contains("\x1b["), "no colours when not on a terminal");
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("STATE"), "{t}");
    assert!(
        lines[1].starts_with("expired") && lines[1].contains("expired 2d 0h ago"),
        "{t}"
    );
    assert!(t.contains("\nFINDINGS\n"), "{t}");
    assert!(t.contains("error unparsable"), "{t}");
    let last = lines.last().unwrap();
    assert!(
        last.contains(" ok, 1 warn, 2 critical, 1 expired, 1 not yet valid"),
        "{last}"
    );
    assert!(last.ends_with("exit status 2"), "{last}");

    let quiet = c.audit(&["--quiet"]);
    let q = String::from_utf8(quiet.stdout).unwrap();
    assert_eq!(quiet.status.code(), Some(2));
    assert!(!q.lines().any(|l| l.starts_with("ok ")), "{q}");
    assert!(
        q.contains("warn ") && q.contains("critical ") && q.contains("not_yet_valid"),
        "{q}"
    );
    assert!(!q.contains("expiry_cliff"), "notes are not problems: {q}");
    assert!(!q.contains("exit status"), "no summary line: {q}");
}

/// Samples by metric name: (labels, value).
type Families = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Checks the text exposition format line by line: comments, names, labels, values.
fn check_exposition(text: &str) -> Families {
    let mut families = Families::new();
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut current = String::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
            current = name.to_owned();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge", "{line}");
            assert_eq!(name, current, "TYPE right after its HELP");
            assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        assert!(name_ok(name), "metric name {name}");
        assert_eq!(name, current, "{name} outside its family block");
        // Labels: name="value" pairs with \\, \" and \n escapes only.
        let mut map = BTreeMap::new();
        let b = labels.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let eq = labels[i..].find("=\"").expect("label=\"") + i;
            let lname = &labels[i..eq];
            assert!(name_ok(lname) && !lname.contains(':'), "label name {lname}");
            let mut j = eq + 2;
            let mut v = String::new();
            loop {
                match b[j] {
                    b'\\' => {
                        v.push(match b[j + 1] {
                            b'\\' => '\\',
                            b'"' => '"',
                            b'n' => '\n',
                            c => panic!("bad escape \\{} in {line}", c as char),
                        });
                        j += 2;
                    }
                    b'"' => break,
                    _ => {
                        let ch = labels[j..].chars().next().unwrap();
                        v.push(ch);
                        j += ch.len_utf8();
                    }
                }
            }
            assert!(
                map.insert(lname.to_owned(), v).is_none(),
                "label twice in {line}"
            );
            i = j + 1;
            if i < b.len() {
                assert_eq!(b[i], b',', "{line}");
                i += 1;
            }
        }
        families
            .entry(name.to_owned())
            .or_default()
            .push((map, value));
    }
    assert_eq!(typed, helped);
    for (name, series) in &families {
        let mut sets = BTreeSet::new();
        for (l, _) in series {
            assert!(sets.insert(l.clone()), "duplicate series in {name}: {l:?}");
        }
    }
    families
}

#[test]
fn prometheus_output_is_valid_text_with_enix_names_and_written_atomically() {
    let c = build();
    let prom = c.env.path().join("textfile/kpki.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let out = c.audit(&["--format", "prometheus", "--output", prom.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "with --output nothing goes to stdout"
    );
    let names: Vec<String> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["kpki.prom"],
        "no temporary file left for the collector to read"
    );
    assert_eq!(
        std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    let fam = check_exposition(&text);
    for name in [
        "x509_cert_not_before",
        "x509_cert_not_after",
        "x509_cert_expired",
        "x509_cert_expires_in_seconds",
        "x509_cert_error",
        "x509_source_up",
        "x509_read_errors",
        "kpki_audit_exit_status",
    ] {
        assert!(fam.contains_key(name), "{name} missing");
    }
    let after = &fam["x509_cert_not_after"];
    let valid = c.rel("valid.crt");
    let (labels, value) = after
        .iter()
        .find(|(l, _)| l["filepath"] == valid)
        .expect("valid.crt has a series");
    assert_eq!(labels["filename"], "valid.crt");
    assert_eq!(labels["subject_CN"], "valid");
    assert_eq!(labels["issuer_CN"], "corpus CA");
    assert_eq!(labels["issuer_O"], "audit-test");
    assert_eq!(
        *value as i64,
        (c.now + Duration::days(200)).unix_timestamp()
    );
    // serial_number is decimal, as Go's big.Int prints it: compare with openssl's hex.
    let (_, hex) = support::openssl(&["x509", "-noout", "-serial", "-in", &valid]);
    let hex = hex.trim().strip_prefix("serial=").unwrap();
    let mut dec = num(hex);
    dec = dec.trim_start_matches('0').to_owned();
    assert_eq!(labels["serial_number"], dec);
    // One series per certificate, kubeconfig data labelled like enix's.
    assert_eq!(after.len(), fam["x509_cert_expired"].len());
    let kinds: BTreeSet<&str> = after
        .iter()
        .filter_map(|(l, _)| l.get("embedded_kind").map(String::as_str))
        .collect();
    assert_eq!(kinds, BTreeSet::from(["cluster", "user"]));
    let expired = &fam["x509_cert_expired"];
    let e = expired
        .iter()
        .find(|(l, _)| l["filepath"] == c.rel("expired.crt"))
        .unwrap();
    assert_eq!(e.1, 1.0);
    let left = &fam["x509_cert_expires_in_seconds"];
    let l = left.iter().find(|(l, _)| l["filepath"] == valid).unwrap();
    assert_eq!(l.1 as i64, 200 * DAY);
    // Read errors per file, sources, the exit status.
    let errors = &fam["x509_cert_error"];
    let err = |f: &str| {
        errors
            .iter()
            .find(|(l, _)| l["filepath"] == c.rel(f))
            .map(|x| x.1)
    };
    assert_eq!(err("junk.crt"), Some(1.0));
    assert_eq!(err("truncated.pem"), Some(1.0));
    assert_eq!(err("fifo.crt"), Some(1.0));
    assert_eq!(err("valid.crt"), Some(0.0));
    assert!(fam["x509_read_errors"][0].1 >= 3.0);
    let up = &fam["x509_source_up"];
    assert!(up
        .iter()
        .any(|(l, v)| l["source_name"] == c.dir.display().to_string()
            && l["source_kind"] == "file"
            && *v == 1.0));
    assert_eq!(fam["kpki_audit_exit_status"][0].1, 2.0);

    // promtool, where Debian's prometheus package provides it.
    if Command::new("promtool").arg("--version").output().is_ok() {
        let o = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&prom).unwrap())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    } else {
        eprintln!(
            "promtool not installed (apt-get install prometheus); checked by the parser above only"
        );
    }
}

/// Hex (openssl's serial) to decimal, by long division.
fn num(hex: &str) -> String {
    let mut digits: Vec<u8> = hex.chars().map(|c| c.to_digit(16).unwrap() as u8).collect();
    let mut out = Vec::new();
    while digits.iter().any(|d| *d != 0) {
        let mut rem = 0u32;
        for d in digits.iter_mut() {
            let cur = rem * 16 + u32::from(*d);
            *d = (cur / 10) as u8;
            rem = cur % 10;
        }
        out.push(char::from(b'0' + rem as u8));
    }
    out.iter().rev().collect()
}

/// The library API on its own: `audit::run` with an injected time, and the table's
/// colours (on only when the caller asks, as `commands` does for a terminal).
#[test]
fn the_library_runs_from_an_injected_time_and_colours_on_request() {
    use kpki::audit::{self, report, AuditConfig, Root, State};
    let dir = tempfile::tempdir().unwrap();
    let now = time::macros::datetime!(2030-06-01 00:00 UTC);
    let root = ca(
        "lib CA",
        now - Duration::days(10),
        now + Duration::days(1000),
    );
    let (fresh, _, _) = leaf(
        &root,
        "fresh",
        now - Duration::days(1),
        now + Duration::days(90),
    );
    let (stale, _, _) = leaf(
        &root,
        "stale",
        now - Duration::days(90),
        now - Duration::days(1),
    );
    write(&dir.path().join("fresh.crt"), fresh, 0o644);
    write(&dir.path().join("stale.crt"), stale, 0o644);
    let cfg = AuditConfig {
        roots: vec![Root {
            path: dir.path().to_path_buf(),
            required: true,
            extra: false,
        }],
        referenced: vec![],
        now,
        warn_seconds: 30 * DAY,
        critical_seconds: 7 * DAY,
        trusted: vec![],
        expected: vec![],
        cliff_min: 10,
        threads: 2,
        configs: None,
        findings: vec![],
    };
    let r = audit::run(&cfg).unwrap();
    assert_eq!(r.certificates.len(), 2);
    assert_eq!(r.certificates[0].state, State::Expired);
    assert_eq!(r.certificates[0].seconds_left, -DAY);
    assert_eq!(r.certificates[1].state, State::Ok);
    assert_eq!(r.exit_code(), 2);
    let plain = report::table(&r, report::TableOptions::default());
    assert!(!plain.contains('\x1b'));
    let coloured = report::table(
        &r,
        report::TableOptions {
            color: true,
            quiet: false,
        },
    );
    assert!(coloured.contains("\x1b[1;31mexpired"), "{coloured}");
    assert!(coloured.contains("\x1b[32mok"), "{coloured}");
    assert!(coloured.contains("\x1b[31mexit status 2"), "{coloured}");
}
