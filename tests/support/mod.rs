//! Shared harness for the integration tests: a temporary world with its own store,
//! identity and config directory, and helpers to run kpki and the real openssl.
#![allow(dead_code)]

pub mod nodes;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const KPKI: &str = env!("CARGO_BIN_EXE_kpki");

pub fn example_inventory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ha-cluster.toml")
}

/// A temporary directory that kpki runs in, isolated from the user's environment.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("pki")
    }

    pub fn identity(&self) -> PathBuf {
        self.path().join("cfg/kpki/identity.txt")
    }

    /// A kpki command in this environment: store ./pki, identity under ./cfg, the example inventory.
    pub fn kpki(&self) -> Command {
        let mut c = Command::new(KPKI);
        c.current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("cfg"))
            .env("KPKI_INVENTORY", example_inventory());
        c
    }

    /// Runs kpki with `args`, returning the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.kpki().args(args).output().expect("run kpki")
    }

    /// Runs kpki and asserts success.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "kpki {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs kpki, asserts the exit code, and returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "kpki {args:?}: stderr: {err}");
        err
    }

    /// The certificate of the store's CA `name` (`root`, `etcd`, …) when it has one
    /// generation: `pki/ca/<name>/<key id>/ca.crt`.
    pub fn ca_cert(&self, name: &str) -> PathBuf {
        let dir = self.store().join("ca").join(name);
        let gens: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("ca.crt").is_file())
            .collect();
        assert_eq!(gens.len(), 1, "one generation of CA {name}: {gens:?}");
        gens[0].join("ca.crt")
    }

    /// The current generation of an issuance: `pki/issued/<profile>/<target>/<n>/`.
    pub fn issued(&self, profile: &str, target: &str) -> PathBuf {
        let base = self.store().join("issued").join(profile).join(target);
        let n = std::fs::read_to_string(base.join("current"))
            .unwrap_or_else(|e| panic!("{}/current: {e}", base.display()));
        base.join(n.trim())
    }

    /// A fresh store with the single root CA.
    pub fn init(&self) -> &Self {
        self.ok(&["init"]);
        self
    }
}

/// Runs the real openssl and returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

/// Every file under `dir` with its bytes, for "unchanged" assertions.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.file_name() != ".lock")
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

/// The public key (PEM) in a certificate file, as openssl reads it.
pub fn cert_pubkey(cert: &Path) -> String {
    let (ok, out) = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    assert!(ok, "{}: {out}", cert.display());
    out
}

/// The public key (PEM) of a private key file, as openssl derives it.
pub fn key_pubkey(key: &Path) -> String {
    let (ok, out) = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert!(ok, "{}: {out}", key.display());
    out
}
