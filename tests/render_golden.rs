//! `kpki render --all` on examples/ha-cluster.toml: every rendered file against its
//! reviewed snapshot under tests/golden/ha-cluster/<tree>/<install path>, then each kind
//! of file through the tool that reads it for real: `systemd-analyze verify` for units,
//! `haproxy -c` for haproxy.cfg, `kubectl config view` for kubeconfigs, a JSON and a
//! YAML parser for the rest.
//!
//! After an intended change, regenerate the snapshots with `KPKI_BLESS=1 cargo test
//! --test render_golden` and review the diff.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::TestEnv;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ha-cluster")
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}

/// Renders the example into a fresh directory.
fn rendered(env: &TestEnv) -> PathBuf {
    let out = env.path().join("rendered");
    env.ok(&["render", "--all", "--out", out.to_str().unwrap()]);
    out
}

#[test]
fn rendered_files_match_the_reviewed_snapshots() {
    let env = TestEnv::new();
    let out = rendered(&env);
    let got = files(&out);
    assert!(got.len() > 50, "render --all made {} files", got.len());
    if std::env::var_os("KPKI_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(golden_dir());
        for f in &got {
            let dst = golden_dir().join(f);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(out.join(f), &dst).unwrap();
        }
        return;
    }
    let want = files(&golden_dir());
    assert_eq!(
        got, want,
        "the set of rendered files changed; rerun with KPKI_BLESS=1 and review"
    );
    for f in &got {
        let a = std::fs::read_to_string(out.join(f)).unwrap();
        let b = std::fs::read_to_string(golden_dir().join(f)).unwrap();
        assert!(
            a == b,
            "{} differs from its snapshot (KPKI_BLESS=1 to update after review):\n--- golden\n{b}\n--- rendered\n{a}",
            f.display()
        );
    }
    // Deterministic: a second render is byte-identical.
    let again = env.path().join("again");
    env.ok(&["render", "--all", "--out", again.to_str().unwrap()]);
    for f in &got {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{}",
            f.display()
        );
    }
}

#[test]
fn render_prints_one_node_and_refuses_unknown_ones() {
    let env = TestEnv::new();
    let text = env.ok(&["render", "--node", "etcd02"]);
    assert!(text.contains("==> etcd02:/etc/etcd/options.env (0644 root:root) <=="));
    assert!(text.contains("ETCD_INITIAL_ADVERTISE_PEER_URLS=https://192.168.0.2:2380"));
    assert!(
        !text.contains("kubelet"),
        "an etcd-only node gets no kubelet"
    );
    let err = env.fails(&["render", "--node", "etcd04"], 1);
    assert!(
        err.contains("node 'etcd04' is not in the inventory"),
        "{err}"
    );
    let err = env.fails(&["render"], 1);
    assert!(err.contains("requires '--node NAME' or '--all'"), "{err}");
}

/// Paths in rendered files are the profiles' install paths: a user profile that moves
/// a certificate moves it in every config that names it.
#[test]
fn paths_come_from_the_profiles() {
    let env = TestEnv::new();
    let dir = env.path().join("myprofiles");
    std::fs::create_dir_all(&dir).unwrap();
    let text = env.ok(&["profiles", "show", "etcd-client"]).replace(
        "/etc/ssl/etcd/etcd-client.crt",
        "/etc/flannel/certs/client.pem",
    );
    std::fs::write(dir.join("etcd-client.toml"), text).unwrap();
    let text = env
        .ok(&["profiles", "show", "apiserver-etcd-client"])
        .replace(
            "/etc/kubernetes/ssl/apiserver-etcd-client.crt",
            "/etc/kubernetes/etcd/client.pem",
        );
    std::fs::write(dir.join("apiserver-etcd-client.toml"), text).unwrap();
    let text = env.ok(&["profiles", "show", "encryption-config"]).replace(
        "/etc/kubernetes/ssl/encryption-config.yaml",
        "/etc/kubernetes/encryption/config.yaml",
    );
    std::fs::write(dir.join("encryption-config.toml"), text).unwrap();
    let out = env.ok(&[
        "--profiles",
        dir.to_str().unwrap(),
        "render",
        "--node",
        "master01",
    ]);
    assert!(out.contains("FLANNELD_ETCD_CERTFILE=/etc/flannel/certs/client.pem"));
    assert!(out.contains("--etcd-certfile=/etc/kubernetes/etcd/client.pem"));
    assert!(
        out.contains("mountPath: /etc/kubernetes/etcd"),
        "the apiserver mounts it"
    );
    assert!(out.contains("--encryption-provider-config=/etc/kubernetes/encryption/config.yaml"));
    assert!(
        out.contains("mountPath: /etc/kubernetes/encryption\n"),
        "the apiserver mounts the encryption config's directory: {out}"
    );
    assert!(!out.contains("etcd-client.crt"));
}

fn trees_with(out: &Path, rel: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(rel).exists())
        .collect();
    v.sort();
    v
}

#[test]
fn systemd_accepts_every_unit() {
    let env = TestEnv::new();
    let out = rendered(&env);
    let mut checked = 0;
    for tree in trees_with(&out, "etc/systemd/system") {
        let units = tree.join("etc/systemd/system");
        // A unit directory of its own: the units, their drop-ins, and a stand-in for
        // containerd.service so its flannel drop-in is verified merged into a unit.
        let dir = env.path().join(format!(
            "units-{}",
            tree.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut services = Vec::new();
        for e in std::fs::read_dir(&units).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_owned();
            if p.is_dir() {
                let d = dir.join(&name);
                std::fs::create_dir_all(&d).unwrap();
                for f in std::fs::read_dir(&p).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::copy(&f, d.join(f.file_name().unwrap())).unwrap();
                }
                let base = name.to_str().unwrap().trim_end_matches(".d").to_owned();
                if !units.join(&base).exists() {
                    std::fs::write(
                        dir.join(&base),
                        "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n",
                    )
                    .unwrap();
                    services.push(dir.join(&base));
                }
            } else {
                std::fs::copy(&p, dir.join(&name)).unwrap();
                services.push(dir.join(&name));
            }
        }
        services.sort();
        let o = Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .args(&services)
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
            .current_dir(&dir)
            .output()
            .expect("systemd-analyze is installed (scripts/test.sh installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // The daemons' binaries are not installed here; every other complaint counts.
        let problems: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !(l.contains("Command /usr/local/bin/")
                    && l.contains("is not executable: No such file or directory"))
            })
            .collect();
        assert!(
            problems.is_empty(),
            "systemd-analyze verify on {}:\n{}",
            tree.display(),
            problems.join("\n")
        );
        checked += services.len();
    }
    assert!(checked >= 6, "verified {checked} units");
}

#[test]
fn haproxy_accepts_its_config() {
    let env = TestEnv::new();
    let out = rendered(&env);
    let cfg = out.join("_loadbalancer/etc/haproxy/haproxy.cfg");
    let haproxy = if Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    };
    let o = Command::new(haproxy)
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .expect("haproxy is installed (scripts/test.sh installs it)");
    assert!(
        o.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    for m in ["192.168.1.1:443", "192.168.1.2:443"] {
        assert!(text.contains(&format!("{m} check")), "{m}");
    }
    assert!(text.contains("mode tcp"), "TCP passthrough");
    assert!(
        text.contains("http-check send meth GET uri /readyz") && text.contains("check-ssl"),
        "health checked over HTTPS on /readyz"
    );
}

/// containerd's own parser reads the rendered config, and takes from it the systemd
/// cgroup driver the kubelet is told to use, and flannel's CNI directories.
#[test]
fn containerd_reads_its_config_and_agrees_with_the_kubelet() {
    let env = TestEnv::new();
    let out = rendered(&env);
    let cfg = out.join("worker01/etc/containerd/config.toml");
    let o = Command::new("containerd")
        .arg("--config")
        .arg(&cfg)
        .args(["config", "dump"])
        .output()
        .expect("containerd is installed (scripts/test.sh installs it)");
    let dump = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "containerd config dump: {dump}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(dump.contains("SystemdCgroup = true"), "{dump}");
    assert!(dump.contains("conf_dir = \"/etc/cni/net.d\""), "{dump}");
    let kubelet =
        std::fs::read_to_string(out.join("worker01/etc/kubernetes/kubelet-config.yaml")).unwrap();
    assert!(kubelet.contains("cgroupDriver: systemd"), "{kubelet}");
    // The drop-in orders containerd after flanneld but does not need its lease file.
    let dropin = std::fs::read_to_string(
        out.join("worker01/etc/systemd/system/containerd.service.d/10-flannel.conf"),
    )
    .unwrap();
    assert!(!dropin.contains("EnvironmentFile"), "{dropin}");
}

#[test]
fn kubectl_reads_every_kubeconfig_and_nodes_name_files() {
    let env = TestEnv::new();
    let out = rendered(&env);
    let mut seen = 0;
    for f in files(&out) {
        if !f.to_str().unwrap().ends_with(".kubeconfig") {
            continue;
        }
        let path = out.join(&f);
        let o = Command::new("kubectl")
            .args(["config", "view", "--kubeconfig"])
            .arg(&path)
            .output()
            .expect("kubectl is installed (scripts/test.sh installs it)");
        assert!(
            o.status.success(),
            "kubectl config view {}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let view = String::from_utf8_lossy(&o.stdout);
        assert!(view.contains("current-context:"), "{view}");
        let text = std::fs::read_to_string(&path).unwrap();
        if !f.starts_with("_cluster") {
            // Node kubeconfigs name their certificate and key by path, so client-go
            // reloads a renewed pair; embedded data would never be reloaded.
            assert!(!text.contains("-data:"), "{} embeds data", f.display());
            assert!(text.contains("client-certificate: /") && text.contains("client-key: /"));
        }
        seen += 1;
    }
    // 5 per master, 2 per worker, and the admin's.
    assert_eq!(seen, 2 * 4 + 3 * 2 + 1);
}

#[test]
fn json_and_yaml_files_parse() {
    let env = TestEnv::new();
    let out = rendered(&env);
    for f in files(&out) {
        let name = f.to_str().unwrap();
        let text = std::fs::read_to_string(out.join(&f)).unwrap();
        if name.ends_with(".json") || name.ends_with(".conflist") {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        if name.ends_with(".yaml") {
            let docs = yaml_rust2::YamlLoader::load_from_str(&text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(docs[0]["kind"].as_str().is_some(), "{name} has a kind");
        }
    }
    let net: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("_cluster/flannel/network-config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(net["Network"], "10.2.0.0/16");
    assert_eq!(net["SubnetLen"], 24);
    assert_eq!(net["Backend"]["Type"], "vxlan");
    let kubelet = yaml_rust2::YamlLoader::load_from_str(
        &std::fs::read_to_string(out.join("worker02/etc/kubernetes/kubelet-config.yaml")).unwrap(),
    )
    .unwrap();
    let k = &kubelet[0];
    assert_eq!(k["rotateCertificates"].as_bool(), Some(false));
    assert_eq!(k["serverTLSBootstrap"].as_bool(), Some(false));
    assert_eq!(
        k["clusterDNS"][0].as_str(),
        Some("10.3.0.2"),
        "the inventory's cluster_dns"
    );
    assert_eq!(k["clusterDomain"].as_str(), Some("cluster.local"));
}

/// The shell command that stores flannel's network config is valid sh.
#[test]
fn etcdctl_put_script_is_valid_sh() {
    let env = TestEnv::new();
    let out = rendered(&env);
    let script = out.join("_cluster/flannel/put-network-config.sh");
    let o = Command::new("sh").arg("-n").arg(&script).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains(
        "put '/coreos.com/network/config' '{\"Network\":\"10.2.0.0/16\",\"SubnetLen\":24,\"Backend\":{\"Type\":\"vxlan\"}}'"
    ), "{text}");
}

/// The real systemd-sysusers and systemd-tmpfiles, run on a copy of an etcd node's
/// rendered tree as an alternate root, make the `etcd` user that etcd.service runs as and
/// the data directory it owns: a fresh node has what `User=etcd` needs.
#[test]
fn sysusers_and_tmpfiles_make_the_etcd_user_and_its_data_directory() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = TestEnv::new();
    let out = rendered(&env);
    let root = out.join("etcd01");
    let run = |cmd: &str, args: &[&str]| {
        let o = Command::new(cmd)
            .arg(format!("--root={}", root.display()))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd} is installed (systemd): {e}"));
        assert!(
            o.status.success(),
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let sysusers = root.join("etc/sysusers.d/kpki-etcd.conf");
    run("systemd-sysusers", &[sysusers.to_str().unwrap()]);
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("etcd:"))
        .unwrap_or_else(|| panic!("no etcd user: {passwd}"));
    let uid: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
    assert!(line.ends_with(":/var/lib/etcd:/usr/sbin/nologin"), "{line}");
    // Making a directory owned by etcd takes root (CI and scripts/test.sh run as root).
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("not root: systemd-tmpfiles --create not run");
        return;
    }
    let tmpfiles = root.join("etc/tmpfiles.d/kpki-etcd.conf");
    run(
        "systemd-tmpfiles",
        &["--create", tmpfiles.to_str().unwrap()],
    );
    let data = std::fs::metadata(root.join("var/lib/etcd")).unwrap();
    assert!(data.is_dir());
    assert_eq!(data.permissions().mode() & 0o7777, 0o700);
    assert_eq!(data.uid(), uid, "owned by etcd");
}

/// The inventory's VXLAN options reach flannel's network config, in the file and in the
/// etcdctl command that stores it, as the same JSON.
#[test]
fn flannel_vxlan_options_reach_the_network_config() {
    let env = TestEnv::new();
    let inv = env.path().join("cluster.toml");
    let text = std::fs::read_to_string(support::example_inventory())
        .unwrap()
        .replacen(
            "[cluster]\n",
            "[cluster]\nflannel_vni = 4096\nflannel_port = 4789\nflannel_direct_routing = true\n",
            1,
        );
    std::fs::write(&inv, text).unwrap();
    let out = env.path().join("rendered");
    env.ok(&[
        "-i",
        inv.to_str().unwrap(),
        "render",
        "--all",
        "--out",
        out.to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("_cluster/flannel/network-config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["Backend"],
        serde_json::json!({"Type": "vxlan", "VNI": 4096, "Port": 4789, "DirectRouting": true})
    );
    let script =
        std::fs::read_to_string(out.join("_cluster/flannel/put-network-config.sh")).unwrap();
    let stored = script
        .rsplit_once(" '")
        .map(|(_, q)| q.trim_end().trim_end_matches('\''))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(stored).unwrap(),
        json
    );
}

/// The CoreDNS manifest is well-formed YAML, one document per object, and its Service
/// sits at the address every kubelet names as its cluster DNS.
#[test]
fn coredns_serves_at_the_kubelets_cluster_dns() {
    use yaml_rust2::YamlLoader;
    let env = TestEnv::new();
    let out = rendered(&env);
    let docs = YamlLoader::load_from_str(
        &std::fs::read_to_string(out.join("_cluster/coredns.yaml")).unwrap(),
    )
    .unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Service"
        ]
    );
    let service = &docs[5];
    let kubelet = YamlLoader::load_from_str(
        &std::fs::read_to_string(out.join("worker01/etc/kubernetes/kubelet-config.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        service["spec"]["clusterIP"].as_str(),
        kubelet[0]["clusterDNS"][0].as_str()
    );
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("10.3.0.2"));
    let corefile = docs[3]["data"]["Corefile"].as_str().unwrap();
    assert!(
        corefile.contains("kubernetes cluster.local in-addr.arpa"),
        "{corefile}"
    );
    // The Deployment's pods are the Service's endpoints.
    assert_eq!(
        docs[4]["spec"]["template"]["metadata"]["labels"]["k8s-app"],
        service["spec"]["selector"]["k8s-app"]
    );
}
