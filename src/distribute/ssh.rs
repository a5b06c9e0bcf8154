//! The transport: the system's OpenSSH client, one multiplexed connection per node.
//!
//! The user's ssh config, agent and known_hosts apply as they do to any `ssh` they run;
//! kpki adds `BatchMode=yes` (no prompt can block a parallel push) and never turns host
//! key checking off. A master connection (`ControlMaster`) is opened once per node in a
//! private directory; every script then runs over it as `sh -s` with the script on its
//! standard input, so a node costs one key exchange for the whole push. File contents,
//! keys included, go from memory into that pipe: never into a file on the CA host.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DistributeError, Target};

/// How to run ssh.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// The client (`ssh`, or `KPKI_SSH`).
    pub program: PathBuf,
    /// Passed as `-F`.
    pub config: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl SshOptions {
    /// The system's `ssh` (or the program `KPKI_SSH` names), with `config` as `-F`.
    pub fn from_env(config: Option<PathBuf>) -> SshOptions {
        SshOptions {
            program: std::env::var_os("KPKI_SSH")
                .filter(|v| !v.is_empty())
                .map_or_else(|| "ssh".into(), Into::into),
            config,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// An open master connection to one node; closed (and its process reaped) on drop.
pub struct Session {
    opts: SshOptions,
    target: Target,
    socket: PathBuf,
    master: Option<Child>,
    log: PathBuf,
}

impl Session {
    /// Opens the master connection and waits, bounded by the connect timeout plus a
    /// margin, until it answers.
    pub fn open(
        opts: &SshOptions,
        target: &Target,
        dir: &Path,
    ) -> Result<Session, DistributeError> {
        let socket = dir.join(format!("{}.sock", target.node));
        let log = dir.join(format!("{}.log", target.node));
        let logf = std::fs::File::create(&log).map_err(|e| DistributeError::Ssh {
            node: target.node.clone(),
            message: format!("cannot create {}: {e}", log.display()),
        })?;
        let mut c = base(opts, target, &socket);
        c.args([
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=no",
            "-N",
            "--",
        ])
        .arg(&target.host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf);
        let child = c.spawn().map_err(|e| DistributeError::Ssh {
            node: target.node.clone(),
            message: format!("cannot run {}: {e}", opts.program.display()),
        })?;
        let mut s = Session {
            opts: opts.clone(),
            target: target.clone(),
            socket,
            master: Some(child),
            log,
        };
        let deadline = Instant::now() + opts.connect_timeout + Duration::from_secs(5);
        loop {
            if let Some(m) = s.master.as_mut() {
                if let Ok(Some(status)) = m.try_wait() {
                    s.master = None;
                    return Err(DistributeError::Ssh {
                        node: target.node.clone(),
                        message: format!(
                            "ssh to {} failed ({status}): {}",
                            target.host,
                            s.log_tail()
                        ),
                    });
                }
            }
            if s.socket.exists() {
                let ok = base(&s.opts, &s.target, &s.socket)
                    .args(["-O", "check", "--"])
                    .arg(&s.target.host)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|st| st.success());
                if ok {
                    return Ok(s);
                }
            }
            if Instant::now() > deadline {
                return Err(DistributeError::Ssh {
                    node: target.node.clone(),
                    message: format!(
                        "no connection to {} within {:?}: {}",
                        target.host,
                        opts.connect_timeout,
                        s.log_tail()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let t = t.trim();
        let line = t.lines().last().unwrap_or("no message from ssh").trim();
        crate::terminal::printable(line).into_owned()
    }

    /// Runs a script on the node (`sh -s`, the script on standard input) and returns
    /// its standard output, failing when sh cannot be run at all. Bounded by `timeout`:
    /// after it the session's client is killed.
    pub fn run(&self, script: &[u8], timeout: Duration) -> Result<Output, DistributeError> {
        let mut c = base(&self.opts, &self.target, &self.socket);
        c.args(["-o", "ControlMaster=no", "--"])
            .arg(&self.target.host)
            .arg("sh -s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| DistributeError::Ssh {
            node: self.target.node.clone(),
            message: format!("cannot run {}: {e}", self.opts.program.display()),
        })?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = stdout.read_to_end(&mut v);
            v
        });
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = stderr.read_to_end(&mut v);
            v
        });
        {
            let mut stdin = child.stdin.take().expect("piped");
            // A remote side that exits early closes the pipe: its output says why.
            let _ = stdin.write_all(script);
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break None,
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        match status {
            None => Err(DistributeError::Ssh {
                node: self.target.node.clone(),
                message: format!("no answer from {} within {timeout:?}", self.target.host),
            }),
            // 255: ssh itself failed (connection lost, master gone).
            Some(s) if s.code() == Some(255) => Err(DistributeError::Ssh {
                node: self.target.node.clone(),
                message: format!(
                    "connection to {} lost: {}",
                    self.target.host,
                    crate::terminal::printable(String::from_utf8_lossy(&stderr).trim())
                ),
            }),
            Some(s) => Ok(Output {
                code: s.code(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            }),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = base(&self.opts, &self.target, &self.socket)
            .args(["-O", "exit", "--"])
            .arg(&self.target.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut m) = self.master.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match m.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = m.kill();
                        let _ = m.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// What a script printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `ssh [-F cfg] -o BatchMode=yes -o ConnectTimeout=N -o ControlPath=S [-l user] [-p port]`.
fn base(opts: &SshOptions, t: &Target, socket: &Path) -> Command {
    let mut c = Command::new(&opts.program);
    if let Some(f) = &opts.config {
        c.arg("-F").arg(f);
    }
    c.arg("-o").arg("BatchMode=yes");
    c.arg("-o").arg(format!(
        "ConnectTimeout={}",
        opts.connect_timeout.as_secs().max(1)
    ));
    c.arg("-o").arg(format!("ControlPath={}", socket.display()));
    if let Some(u) = &t.user {
        c.arg("-l").arg(u);
    }
    if let Some(p) = t.port {
        c.arg("-p").arg(p.to_string());
    }
    c
}
