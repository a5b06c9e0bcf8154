//! Several kpki processes against one store at once: each either succeeds or fails
//! cleanly, the ledger holds every issuance exactly once, and no file is torn.

mod support;

use kpki::pki;
use support::TestEnv;

#[test]
fn concurrent_issues_serialize_on_the_store_lock() {
    let env = TestEnv::new();
    env.init();
    let profiles = ["kubelet", "kube-proxy", "etcd-client", "kubelet-serving"];
    let children: Vec<_> = profiles
        .iter()
        .map(|p| {
            env.kpki()
                .args(["issue", "--profile", p, "--all"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // The same certificate asked for twice at once: exactly one wins, the other is refused.
    let twins: Vec<_> = (0..2)
        .map(|_| {
            env.kpki()
                .args(["issue", "--profile", "etcd-peer", "--node", "etcd01"])
                .output()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let codes: Vec<i32> = twins
        .into_iter()
        .map(|o| o.unwrap().status.code().unwrap())
        .collect();
    // Both ran at once: one issued, the other waited for the lock and was refused (exit 2).
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 2], "{codes:?}");

    let ledger = std::fs::read_to_string(env.store().join("ledger.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = ledger
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("no torn ledger line"))
        .filter(|r| r["event"] == "issued")
        .collect();
    // 5 nodes each for the four profiles, plus etcd-peer for etcd01 once or twice in sequence.
    let etcd = records
        .iter()
        .filter(|r| r["profile"] == "etcd-peer")
        .count();
    assert_eq!(records.len(), 4 * 5 + etcd);
    assert_eq!(etcd, codes.iter().filter(|c| **c == 0).count());
    let mut serials: Vec<&str> = records
        .iter()
        .map(|r| r["serial"].as_str().unwrap())
        .collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), records.len());
    for e in walkdir::WalkDir::new(env.store().join("issued"))
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_name() == "cert.pem" {
            let pem = std::fs::read(e.path()).unwrap();
            assert!(
                matches!(
                    pki::pem::objects(&pem).unwrap()[0],
                    pki::pem::Object::Certificate(_)
                ),
                "{}",
                e.path().display()
            );
        }
    }
    // No temp files left behind.
    for e in walkdir::WalkDir::new(env.store())
        .into_iter()
        .filter_map(|e| e.ok())
    {
        assert!(
            !e.file_name().to_string_lossy().contains("kpki-tmp"),
            "{}",
            e.path().display()
        );
    }
}
