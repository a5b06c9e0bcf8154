//! Throwaway SSH nodes for `scripts/bench-push.sh`, served until the script says stop.
//! Not a test of anything: one `#[ignore]`d function, so the default `cargo test` never
//! runs it, and without `KPKI_BENCH_DIR` it returns at once (so `--ignored` does not hang).
//!
//! The script runs this test binary directly (not through cargo, so that its PID is the
//! process that holds the nodes) with:
//!
//! - `KPKI_BENCH_DIR`: a directory the script made; written here: `ssh_config` (every
//!   node's `Host` block, for `ssh -F` and `kpki push --ssh-config`), `nodes` (one line
//!   per node: name, address, port, host PID of its sshd, the namespace's PID 1, whose
//!   children's CPU time is the node's), and `ready` last, once every node answers ssh. The
//!   script ends the nodes by creating `stop` there (or, if it must, by signalling this
//!   process: the nodes then die with it, see tests/support/nodes.rs);
//! - `KPKI_BENCH_NODES`: how many nodes, 1 to 50 (default 20): `node01`… on 127.0.1.1…,
//!   a range no test uses;
//! - `KPKI_BENCH_SERVE_SECS`: the longest it serves without `stop` (default 3600).
//!
//! The nodes start in groups of [`GROUP`], each its own [`Nodes`] (its own client key,
//! known_hosts and start-up deadline); their ssh configs, which name their files by
//! absolute path, are joined into one.

mod support;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::nodes::Nodes;

/// Nodes started (and waited for) together.
const GROUP: usize = 10;
/// At most this many nodes: 127.0.1.1–.50.
const MAX_NODES: usize = 50;

#[test]
#[ignore = "serves SSH nodes for scripts/bench-push.sh; needs KPKI_BENCH_DIR"]
fn bench_nodes_serve() {
    let Some(dir) = std::env::var_os("KPKI_BENCH_DIR").map(PathBuf::from) else {
        eprintln!("KPKI_BENCH_DIR is not set: nothing to serve (scripts/bench-push.sh runs this)");
        return;
    };
    let count: usize = std::env::var("KPKI_BENCH_NODES")
        .map_or(20, |v| v.parse().expect("KPKI_BENCH_NODES: a number"));
    assert!(
        (1..=MAX_NODES).contains(&count),
        "KPKI_BENCH_NODES: 1 to {MAX_NODES}"
    );
    let serve = Duration::from_secs(
        std::env::var("KPKI_BENCH_SERVE_SECS")
            .map_or(3600, |v| v.parse().expect("KPKI_BENCH_SERVE_SECS: seconds")),
    );
    if let Err(why) = Nodes::available() {
        panic!("bench nodes cannot run here: {why}");
    }
    let names: Vec<(String, Ipv4Addr)> = (1..=count)
        .map(|i| {
            let last = u8::try_from(i).expect("at most 50");
            (format!("node{i:02}"), Ipv4Addr::new(127, 0, 1, last))
        })
        .collect();
    let mut groups = Vec::new();
    let mut config = String::new();
    let mut list = String::new();
    for chunk in names.chunks(GROUP) {
        let spec: Vec<(&str, Ipv4Addr)> = chunk.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        let nodes = Nodes::start(&spec);
        config.push_str(&std::fs::read_to_string(nodes.ssh_config()).expect("ssh config"));
        for n in nodes.nodes() {
            list.push_str(&format!("{} {} {} {}\n", n.name, n.addr, n.port, n.pid));
        }
        groups.push(nodes);
    }
    std::fs::write(dir.join("ssh_config"), config).expect("write ssh_config");
    std::fs::write(dir.join("nodes"), list).expect("write nodes");
    std::fs::write(dir.join("ready.tmp"), format!("{}\n", std::process::id())).unwrap();
    std::fs::rename(dir.join("ready.tmp"), dir.join("ready")).expect("write ready");
    eprintln!(
        "{count} nodes ready; waiting for {}",
        dir.join("stop").display()
    );

    let deadline = Instant::now() + serve;
    while !dir.join("stop").exists() {
        assert!(
            Instant::now() < deadline,
            "no stop file within {serve:?}: stopping the nodes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Dropped in this thread, which started them: every node stopped by its PID.
    drop(groups);
}
