//! Every command that reads has `--json` (the audit: `--format json`), and what it prints
//! parses and carries the fields its help documents. One store and one staged tree serve
//! every command, in the order an operator would run them.

mod support;

use serde_json::Value;
use support::TestEnv;

/// Runs kpki, asserts the exit status, parses standard output as JSON, and checks that no
/// escape sequence got into it (JSON is never coloured, `--color always` or not).
fn json(env: &TestEnv, args: &[&str], code: i32) -> Value {
    let o = env.kpki().args(args).output().expect("run kpki");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(code),
        "kpki {args:?}: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !out.contains('\x1b'),
        "kpki {args:?} coloured its JSON: {out}"
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kpki {args:?}: {e}: {out}"))
}

fn str_field<'a>(v: &'a Value, f: &str) -> &'a str {
    v[f].as_str()
        .unwrap_or_else(|| panic!("{f} is not a string in {v}"))
}

fn array<'a>(v: &'a Value, f: &str) -> &'a Vec<Value> {
    v[f].as_array()
        .unwrap_or_else(|| panic!("{f} is not an array in {v}"))
}

#[test]
fn profiles_list_and_show() {
    let env = TestEnv::new();
    let list = json(
        &env,
        &["profiles", "list", "--json", "--color", "always"],
        0,
    );
    let list = list.as_array().expect("an array");
    let peer = list
        .iter()
        .find(|p| p["name"] == "etcd-peer")
        .expect("etcd-peer is listed");
    assert_eq!(str_field(peer, "kind"), "certificate");
    assert_eq!(str_field(peer, "scope"), "node");
    assert_eq!(peer["roles"], serde_json::json!(["etcd"]));
    assert_eq!(str_field(peer, "ca"), "etcd");
    assert_eq!(str_field(peer, "key"), "ecdsa-p256");
    assert!(str_field(peer, "validity").ends_with('y'), "{peer}");
    assert_eq!(
        peer["ext_key_usage"],
        serde_json::json!(["serverAuth", "clientAuth"])
    );
    assert_eq!(str_field(peer, "origin"), "builtin");
    assert!(peer["file"].is_null());
    let files = array(peer, "files");
    let whats: Vec<&str> = files.iter().map(|f| str_field(f, "what")).collect();
    assert_eq!(whats, ["cert", "key", "ca"]);
    let key = &files[1];
    assert_eq!(str_field(key, "mode"), "0600");
    assert!(str_field(key, "path").starts_with('/'), "{key}");
    assert!(key["owner"].is_string() && key["group"].is_string());

    // The key pair and the secret have no CA, no validity, and their own files.
    let sa = list
        .iter()
        .find(|p| p["name"] == "service-account")
        .unwrap();
    assert_eq!(str_field(sa, "kind"), "key-pair");
    assert!(sa["ca"].is_null() && sa["validity"].is_null());
    assert_eq!(str_field(sa, "scope"), "cluster");
    let enc = list
        .iter()
        .find(|p| p["name"] == "encryption-config")
        .unwrap();
    assert_eq!(str_field(enc, "kind"), "secret");
    assert_eq!(str_field(&array(enc, "files")[0], "what"), "config");
    // As many objects as the table has rows.
    let table = env.ok(&["profiles", "list"]);
    assert_eq!(table.lines().count() - 1, list.len());

    let shown = json(&env, &["profiles", "show", "etcd-peer", "--json"], 0);
    assert_eq!(str_field(&shown, "name"), "etcd-peer");
    assert_eq!(&shown["files"], &peer["files"]);
    assert_eq!(
        str_field(&shown, "toml").trim_end(),
        env.ok(&["profiles", "show", "etcd-peer"]).trim_end()
    );
}

#[test]
fn every_reading_command_of_a_staged_cluster() {
    let env = TestEnv::new();
    env.init();
    env.ok(&["apply", "--out", "staged", "--quiet"]);

    // inspect: one object per certificate, in file order.
    let ca = env.ca_cert("etcd");
    let leaf = env.issued("etcd-peer", "etcd01").join("cert.pem");
    let v = json(
        &env,
        &[
            "inspect",
            "--json",
            leaf.to_str().unwrap(),
            ca.to_str().unwrap(),
        ],
        0,
    );
    let certs = v.as_array().unwrap();
    assert_eq!(certs.len(), 2, "{v}");
    let (l, c) = (&certs[0], &certs[1]);
    assert_eq!(str_field(l, "type"), "certificate");
    assert_eq!(str_field(l, "file"), leaf.to_str().unwrap());
    assert_eq!(l["is_ca"], false);
    assert_eq!(c["is_ca"], true);
    let sans = array(l, "sans");
    assert!(sans.iter().any(|s| s == "DNS:etcd01.example.com"), "{l}");
    assert!(sans.iter().any(|s| s == "IP:192.168.0.1"), "{l}");
    assert_eq!(l["issuer"], c["subject"]);
    assert_eq!(l["authority_key_id"], c["subject_key_id"]);
    assert!(l["seconds_left"].as_i64().unwrap() > 0);
    for f in ["not_before", "not_after"] {
        time::OffsetDateTime::parse(
            str_field(l, f),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    assert!(str_field(&l["key"], "algorithm").starts_with("ECDSA"));
    assert!(l["key"]["bits"].as_u64().unwrap() >= 256);
    assert!(array(l, "ext_key_usage").iter().any(|u| u == "serverAuth"));
    assert!(!array(l, "key_usage").is_empty());
    assert_eq!(str_field(l, "sha256").len(), 32 * 3 - 1);

    // plan: nothing to do right after apply.
    let v = json(&env, &["plan", "--out", "staged", "--json"], 0);
    let decisions = array(&v, "decisions");
    assert!(!decisions.is_empty());
    for d in decisions {
        for f in ["profile", "target", "action", "reason"] {
            assert!(d[f].is_string(), "{f} in {d}");
        }
        assert_eq!(str_field(d, "action"), "keep", "{d}");
    }

    // ledger: the events, each with its state now.
    let v = json(&env, &["ledger", "--json", "--profile", "etcd-peer"], 0);
    let issued: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "issued")
        .collect();
    assert_eq!(issued.len(), 3, "one per etcd member: {v}");
    for e in &issued {
        assert_eq!(str_field(e, "state"), "current", "{e}");
        assert_eq!(str_field(e, "profile"), "etcd-peer");
        assert_eq!(e["generation"], 1);
        assert!(e["issued_at"].is_string() && e["serial"].is_string(), "{e}");
    }

    // audit: certificates with their state and chain, and a summary.
    let v = json(&env, &["audit", "--format", "json", "staged"], 0);
    let certs = array(&v, "certificates");
    assert!(!certs.is_empty());
    for c in certs {
        assert_eq!(str_field(c, "state"), "ok", "{c}");
        let chain = str_field(&c["chain"], "status");
        assert!(chain == "trusted" || chain == "anchor", "{c}");
        assert!(c["path"].is_string() && c["not_after"].is_string());
    }

    // render --check: counts, and each problem as an object; the exit status as without
    // --json.
    let v = json(&env, &["render", "--check", "--out", "staged", "--json"], 0);
    assert_eq!(v["trees"].as_u64(), Some(10), "{v}");
    assert!(v["references"].as_u64().unwrap() > 50);
    assert_eq!(array(&v, "problems").len(), 0);
    std::fs::remove_file(
        env.path()
            .join("staged/worker01/etc/kubernetes/ssl/kubelet.key"),
    )
    .unwrap();
    let v = json(
        &env,
        &[
            "render", "--check", "--out", "staged", "--node", "worker01", "--json",
        ],
        2,
    );
    let problems = array(&v, "problems");
    assert_eq!(problems.len(), 1, "{v}");
    let p = &problems[0];
    assert_eq!(str_field(p, "tree"), "worker01");
    assert_eq!(str_field(p, "kind"), "missing");
    assert_eq!(str_field(p, "severity"), "error");
    assert_eq!(str_field(p, "path"), "/etc/kubernetes/ssl/kubelet.key");
    assert!(str_field(p, "message").contains("does not exist"));
    let by = &array(p, "named_by")[0];
    assert_eq!(
        str_field(by, "config"),
        "/etc/kubernetes/kubelet.kubeconfig"
    );
    assert!(str_field(by, "key").contains("client-key"), "{by}");
    env.ok(&["apply", "--out", "staged", "--quiet"]);

    // push: one object per node, also when the node cannot be reached (exit 3).
    let o = env
        .kpki()
        .env("KPKI_SSH", "false")
        .args(["push", "--out", "staged", "--node", "worker01", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = &v.as_array().unwrap()[0];
    assert_eq!(str_field(n, "node"), "worker01");
    assert!(n["host"].is_string());
    assert_eq!(str_field(n, "outcome"), "failed");
    assert!(n["files"].is_array() && n["restarts"].is_array());
    assert_eq!(n["restarted"], false);
    assert!(str_field(n, "error").contains("ssh"), "{n}");

    // rotate plan and rotate status.
    let v = json(
        &env,
        &[
            "rotate",
            "plan",
            "--out",
            "staged",
            "--force",
            "--profile",
            "etcd-peer",
            "--json",
        ],
        0,
    );
    assert!(v["id"].is_string());
    let items = array(&v, "items");
    assert_eq!(items.len(), 3, "{v}");
    for i in items {
        assert_eq!(str_field(i, "profile"), "etcd-peer");
        assert_eq!(i["from_generation"], 1);
        assert_eq!(array(i, "nodes").len(), 1);
        assert!(i["reason"].is_string());
    }
    assert!(!array(&v, "steps").is_empty());
    for s in array(&v, "steps") {
        assert!(s["kind"].is_string(), "{s}");
    }
    env.ok(&[
        "rotate",
        "--stage-only",
        "--out",
        "staged",
        "--force",
        "--profile",
        "etcd-peer",
        "--quiet",
    ]);
    let v = json(&env, &["rotate", "status", "--json"], 0);
    let journal = array(&v, "journal");
    assert!(!journal.is_empty());
    for j in journal {
        assert!(j["state"].is_string() && j["at"].is_string(), "{j}");
    }
    assert_eq!(str_field(journal.last().unwrap(), "state"), "paused");
    assert!(v["dir"].is_string());
    assert_eq!(array(&v["plan"], "items").len(), 3, "{v}");
}
