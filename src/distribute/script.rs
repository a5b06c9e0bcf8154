//! The POSIX shell programs kpki runs on a node: one to read what the node holds, one to
//! install a staged tree, one to roll back. The node needs `sh` and coreutils only.
//!
//! Every value put into a script is checked first ([`Safe`]): paths, owners and modes
//! that pass contain no character a shell would interpret, and are single-quoted anyway.
//! File contents travel base64-encoded inside here-documents, inside one function that
//! is called on the script's last line: a script cut off in transit (the connection
//! killed mid-upload) fails to parse and runs nothing. Once the function runs it ignores
//! hang-ups, so a lost connection cannot stop it between two renames.

use std::fmt::Write as _;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::{DistributeError, Upload, BACKUP_DIR, KEEP_BACKUPS, TEMP_PREFIX};
use crate::stage::MANIFEST;

/// A value checked for the scripts: an absolute path, a user or group name, a mode.
pub(crate) struct Safe;

impl Safe {
    /// An absolute path of letters, digits and `._-/+@`, without `..` or empty parts.
    pub(crate) fn path(p: &str) -> bool {
        p.starts_with('/')
            && p.len() > 1
            && p.len() <= 4096
            && !p.ends_with('/')
            && p[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/+@".contains(&b))
    }

    /// A user or group name.
    pub(crate) fn name(n: &str) -> bool {
        let mut b = n.bytes();
        matches!(b.next(), Some(c) if c.is_ascii_alphanumeric() || c == b'_')
            && n.len() <= 32
            && b.all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(&c))
    }

    /// Four octal digits, no set-id bits.
    pub(crate) fn mode(m: &str) -> Option<u32> {
        if m.len() != 4 || !m.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        u32::from_str_radix(m, 8).ok().filter(|m| m & 0o7000 == 0)
    }
}

/// Single-quotes a checked value.
fn q(s: &str) -> String {
    debug_assert!(!s.contains('\''));
    format!("'{s}'")
}

const PRELUDE: &str = "set -u\nLC_ALL=C\nexport LC_ALL\n\
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH\n";

/// Reads, for each path: regular file (SHA-256, mode, owner, group), absent, or something
/// else; whether each user and group exists; and the node's kpki manifest.
///
/// One `sha256sum` and one `stat` for all the regular files, not one of each per file: a
/// process costs a node about a millisecond of CPU, which for a tree of 22 files was most
/// of what probing it cost. The paths are [`Safe`]: no blank, quote or glob character, so
/// they split on blanks and each names its own line of the two outputs.
pub(crate) fn probe(paths: &[&str], users: &[&str], groups: &[&str]) -> String {
    let mut s = String::from(PRELUDE);
    s.push_str("kpki_probe() {\necho 'kpki-probe 1'\n");
    s.push_str(
        "R=''\n\
         for p in \"$@\"; do\n\
         if [ ! -L \"$p\" ] && [ -f \"$p\" ]; then R=\"$R $p\"; fi\n\
         done\n\
         H=''; S=''\n\
         if [ -n \"$R\" ]; then\n\
         H=$(sha256sum -- $R 2>/dev/null)\n\
         S=$(stat -c '%a %U %G %n' -- $R 2>/dev/null)\n\
         fi\n\
         H=\"\n$H\n\"\n\
         S=\"\n$S\n\"\n\
         for p in \"$@\"; do\n\
         if [ -L \"$p\" ]; then echo \"X $p\"\n\
         elif [ -f \"$p\" ]; then\n\
         h=${H%%\"  $p\n\"*}; h=${h##*\"\n\"}\n\
         [ ${#h} = 64 ] || h=unreadable\n\
         m=${S%%\" $p\n\"*}; m=${m##*\"\n\"}\n\
         [ -n \"$m\" ] || m='0 ? ?'\n\
         echo \"F $h $m $p\"\n\
         elif [ -e \"$p\" ]; then echo \"X $p\"\n\
         else echo \"A $p\"; fi\n\
         done\n",
    );
    for u in users {
        let _ = writeln!(
            s,
            "if id -u -- {u} >/dev/null 2>&1; then echo 'U {n} yes'; else echo 'U {n} no'; fi",
            u = q(u),
            n = u
        );
    }
    for g in groups {
        let _ = writeln!(
            s,
            "if getent group {g} >/dev/null 2>&1 || grep -q '^{n}:' /etc/group 2>/dev/null; \
             then echo 'G {n} yes'; else echo 'G {n} no'; fi",
            g = q(g),
            n = g
        );
    }
    let _ = writeln!(
        s,
        "if [ -f {m} ] && [ ! -L {m} ]; then printf 'M '; base64 -w0 < {m}; echo; fi",
        m = q(MANIFEST)
    );
    s.push_str("echo 'kpki-probe end'\n}\n");
    s.push_str("kpki_probe");
    for p in paths {
        s.push(' ');
        s.push_str(&q(p));
    }
    s.push('\n');
    s
}

/// The directories to create (missing ones only, 0755) for `path`.
fn parents(path: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let mut i = 0;
    while let Some(j) = path[i + 1..].find('/') {
        i += j + 1;
        v.push(&path[..i]);
    }
    v
}

/// The install script: upload every file into a temporary file beside its target,
/// verify its SHA-256, set owner, group and mode; back up what it replaces into
/// `BACKUP_DIR/<stamp>/`; then rename everything into place, the manifest last. Any
/// failure before the renames removes the temporary files and changes nothing; a
/// failure during them puts the backed-up files back. Prints `OK <backup dir>` or
/// `FAIL <reason>`.
pub(crate) fn install(
    uploads: &[Upload<'_>],
    removals: &[&str],
    stamp: &str,
) -> Result<Zeroizing<String>, DistributeError> {
    // The backup directory's name: rollback takes the newest by name, so it must sort
    // by time (kpki's stamps do: 20261202T101500123456789Z).
    if stamp.len() < 16
        || !stamp.starts_with(|c: char| c.is_ascii_digit())
        || !stamp.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(DistributeError::Staged {
            node: String::new(),
            message: format!("bad backup stamp {stamp:?}"),
        });
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = Zeroizing::new(String::with_capacity(
        uploads
            .iter()
            .map(|u| u.bytes.len() * 4 / 3 + 400)
            .sum::<usize>()
            + 4096,
    ));
    s.push_str(PRELUDE);
    s.push_str(
        r#"kpki_install() {
trap '' HUP PIPE
umask 077
TEMPS=''
fail() {
  for t in $TEMPS; do rm -f -- "$t"; done
  echo "FAIL $*"
  exit 1
}
mkdir_sys() {
  # Missing directories only, as system directories are (0755); never chmod one that exists.
  # -m: the mode whatever the umask, without a chmod process.
  [ -d "$1" ] && return 0
  mkdir -m 0755 -- "$1" 2>/dev/null || [ -d "$1" ]
}
"#,
    );
    // Users and groups first: nothing is written when one is missing.
    let mut users: Vec<&str> = uploads.iter().map(|u| u.owner).collect();
    users.sort_unstable();
    users.dedup();
    for u in users {
        let _ = writeln!(
            s,
            "id -u -- {u} >/dev/null 2>&1 || fail 'owner {u} does not exist on this node'",
            u = q(u)
        );
    }
    let mut groups: Vec<&str> = uploads.iter().map(|u| u.group).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let _ = writeln!(
            s,
            "getent group {gq} >/dev/null 2>&1 || grep -q '^{g}:' /etc/group 2>/dev/null \
             || fail 'group {g} does not exist on this node'",
            gq = q(g),
            g = g
        );
    }
    // Directories, then leftovers of an earlier run that was cut short.
    let mut dirs: Vec<&str> = uploads.iter().flat_map(|u| parents(u.path)).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for d in &dirs {
        let _ = writeln!(
            s,
            "mkdir_sys {d} || fail 'cannot create directory {d}'",
            d = q(d)
        );
    }
    let mut file_dirs: Vec<&str> = uploads
        .iter()
        .map(|u| &u.path[..u.path.rfind('/').unwrap_or(0).max(1)])
        .collect();
    file_dirs.sort_unstable();
    file_dirs.dedup();
    if !file_dirs.is_empty() {
        s.push_str("rm -f --");
        for d in &file_dirs {
            let _ = write!(s, " {}/{TEMP_PREFIX}*", q(d));
        }
        s.push_str(" 2>/dev/null\n");
    }
    // Upload into temporary files beside the targets, then check every SHA-256 and set
    // every owner, group and mode. A process costs a node about a millisecond of CPU, so
    // these take one `sha256sum`, one `chown` per owner and group and one `chmod` per mode
    // for the whole tree, not three processes per file; only when one of those fails are
    // the files taken one at a time, to name the one that failed. The temporary files are
    // 0600 (umask 077) until then. Paths are [`Safe`]: no blank, quote or glob character.
    let marker = format!("KPKI_DATA_{stamp}_EOF");
    let temp = |i: usize, u: &Upload<'_>| {
        let dir = &u.path[..u.path.rfind('/').unwrap_or(0)];
        format!("{dir}/{TEMP_PREFIX}{i}")
    };
    for (i, u) in uploads.iter().enumerate() {
        let t = temp(i, u);
        let _ = writeln!(s, "TEMPS=\"$TEMPS {t}\"");
        let _ = writeln!(
            s,
            "base64 -d > {t} <<'{marker}' || fail 'cannot write {p}'",
            t = q(&t),
            p = u.path
        );
        let enc = Zeroizing::new(b64.encode(u.bytes));
        for chunk in enc.as_bytes().chunks(76) {
            // base64 output is ASCII.
            s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            s.push('\n');
        }
        let _ = writeln!(s, "{marker}");
    }
    if !uploads.is_empty() {
        s.push_str("S=$(sha256sum --");
        for (i, u) in uploads.iter().enumerate() {
            let _ = write!(s, " {}", q(&temp(i, u)));
        }
        s.push_str(
            " 2>/dev/null)\nS=\"\n$S\n\"\n\
             sum_is() { case \"$S\" in *\"\n$2  $1\n\"*) return 0 ;; esac; return 1; }\n",
        );
    }
    for (i, u) in uploads.iter().enumerate() {
        let _ = writeln!(
            s,
            "sum_is {t} {h} || fail '{p}: SHA-256 mismatch after upload (the staged file differs from its manifest, or it was corrupted on the way); nothing on this node was changed'",
            t = q(&temp(i, u)),
            h = q(u.sha256),
            p = u.path
        );
    }
    if !uploads.is_empty() {
        s.push_str("own_each() {\n");
        for (i, u) in uploads.iter().enumerate() {
            let _ = writeln!(
                s,
                "chown {o}:{g} {t} && chmod {m} {t} || fail 'cannot set owner, group or mode of {p}'",
                o = q(u.owner),
                g = q(u.group),
                m = q(&format!("{:04o}", u.mode)),
                t = q(&temp(i, u)),
                p = u.path
            );
        }
        s.push_str("}\n");
        let mut owners: std::collections::BTreeMap<(&str, &str), Vec<String>> =
            std::collections::BTreeMap::new();
        let mut modes: std::collections::BTreeMap<u32, Vec<String>> =
            std::collections::BTreeMap::new();
        for (i, u) in uploads.iter().enumerate() {
            owners
                .entry((u.owner, u.group))
                .or_default()
                .push(q(&temp(i, u)));
            modes.entry(u.mode).or_default().push(q(&temp(i, u)));
        }
        let mut batch: Vec<String> = owners
            .iter()
            .map(|((o, g), ts)| format!("chown {}:{} {}", q(o), q(g), ts.join(" ")))
            .collect();
        batch.extend(
            modes
                .iter()
                .map(|(m, ts)| format!("chmod {} {}", q(&format!("{m:04o}")), ts.join(" "))),
        );
        let _ = writeln!(s, "{{ {}; }} 2>/dev/null || own_each", batch.join(" && "));
    }
    // Back up what is replaced or removed.
    let bdir = format!("{BACKUP_DIR}/{stamp}");
    let _ = writeln!(s, "B={}", q(&bdir));
    s.push_str(
        "mkdir_sys /var && mkdir_sys /var/lib && mkdir_sys /var/lib/kpki || fail 'cannot create /var/lib/kpki'\n",
    );
    let _ = writeln!(
        s,
        "[ -d {bd} ] || {{ mkdir -- {bd} && chmod 0700 -- {bd}; }} || fail 'cannot create {bd}'",
        bd = q(BACKUP_DIR)
    );
    // A bundle installed twice carries one stamp: the second backup gets a suffix.
    s.push_str("B0=$B; n=0; while [ -e \"$B\" ]; do n=$((n + 1)); B=\"$B0-$n\"; done\n");
    s.push_str("mkdir -- \"$B\" || fail \"cannot create $B\"\n: > \"$B/replaced\"; : > \"$B/created\"; : > \"$B/removed\"\n");
    let backup_one = |s: &mut Zeroizing<String>, p: &str, list: &str| {
        let _ = writeln!(
            s,
            "if [ -e {p} ]; then mkdir -p -- \"$B/files\"{d} && cp -p -- {p} \"$B/files\"{p} || fail 'cannot back up {raw}'; echo {p} >> \"$B/{list}\"; else echo {p} >> \"$B/created\"; fi",
            p = q(p),
            d = q(&p[..p.rfind('/').unwrap_or(0).max(1)]),
            raw = p,
        );
    };
    for u in uploads {
        backup_one(&mut s, u.path, "replaced");
    }
    for r in removals {
        let _ = writeln!(
            s,
            "if [ -f {p} ]; then mkdir -p -- \"$B/files\"{d} && cp -p -- {p} \"$B/files\"{p} || fail 'cannot back up {raw}'; echo {p} >> \"$B/removed\"; fi",
            p = q(r),
            d = q(&r[..r.rfind('/').unwrap_or(0).max(1)]),
            raw = r
        );
    }
    // Commit: renames, the manifest last; on a failure put back what was done.
    s.push_str(
        r#"DONE=''
undo() {
  for p in $DONE; do
    if grep -qxF -- "$p" "$B/replaced" "$B/removed" 2>/dev/null; then
      cp -p -- "$B/files$p" "$p.kpki-undo" && mv -f -- "$p.kpki-undo" "$p"
    else
      rm -f -- "$p"
    fi
  done
  for t in $TEMPS; do rm -f -- "$t"; done
  echo 'undone' > "$B/state"
  echo "FAIL $*; the files replaced so far were put back"
  exit 1
}
"#,
    );
    let manifest_last = |u: &&Upload<'_>| u.path == MANIFEST;
    let mut order: Vec<(usize, &Upload<'_>)> = uploads.iter().enumerate().collect();
    order.sort_by_key(|(_, u)| manifest_last(u));
    for (i, u) in order {
        if u.path == MANIFEST {
            for r in removals {
                let _ = writeln!(
                    s,
                    "if [ -e {p} ]; then rm -f -- {p} || undo 'cannot remove {raw}'; DONE=\"$DONE {raw}\"; fi",
                    p = q(r),
                    raw = r
                );
            }
        }
        let _ = writeln!(
            s,
            "mv -f -- {t} {p} || undo 'cannot rename into {raw}'\nDONE=\"$DONE {raw}\"",
            t = q(&temp(i, u)),
            p = q(u.path),
            raw = u.path
        );
    }
    if !uploads.iter().any(|u| u.path == MANIFEST) {
        for r in removals {
            let _ = writeln!(
                s,
                "if [ -e {p} ]; then rm -f -- {p} || undo 'cannot remove {raw}'; DONE=\"$DONE {raw}\"; fi",
                p = q(r),
                raw = r
            );
        }
    }
    let _ = writeln!(
        s,
        "echo 'installed' > \"$B/state\"\n\
         sync 2>/dev/null\n\
         ls -1 {bd} | grep -v '\\.' | sort | head -n -{KEEP_BACKUPS} | while read -r old; do rm -rf -- {bd}/\"$old\"; done\n\
         ls -1 {bd} | grep '\\.rolled-back$' | sort | head -n -{KEEP_BACKUPS} | while read -r old; do rm -rf -- {bd}/\"$old\"; done\n\
         echo \"OK $B\"\n}}\nkpki_install",
        bd = q(BACKUP_DIR)
    );
    Ok(s)
}

/// Puts back the newest backup that was installed and not yet rolled back: replaced and
/// removed files from the copies, created files removed. Prints `P <path>` for every
/// path it changed, then `OK <backup dir>` or `FAIL <reason>`.
pub(crate) fn rollback() -> String {
    let mut s = String::from(PRELUDE);
    let _ = write!(
        s,
        r#"kpki_rollback() {{
trap '' HUP PIPE
umask 077
D={bd}
[ -d "$D" ] || {{ echo 'FAIL no kpki backup on this node'; exit 1; }}
B=''
for b in $(ls -1 "$D" | grep -v '\.' | sort -r); do
  if [ -f "$D/$b/state" ] && [ "$(cat "$D/$b/state")" = installed ]; then B="$D/$b"; break; fi
done
[ -n "$B" ] || {{ echo 'FAIL no installed push to roll back on this node (every backup is rolled back already)'; exit 1; }}
for p in $(cat "$B/replaced" "$B/removed"); do
  cp -p -- "$B/files$p" "$p.kpki-undo" && mv -f -- "$p.kpki-undo" "$p" || {{ echo "FAIL cannot restore $p"; exit 1; }}
  echo "P $p"
done
for p in $(cat "$B/created"); do
  rm -f -- "$p" || {{ echo "FAIL cannot remove $p"; exit 1; }}
  echo "P $p"
done
echo 'rolled-back' > "$B/state"
mv -- "$B" "$B.rolled-back"
sync 2>/dev/null
echo "OK $B"
}}
kpki_rollback
"#,
        bd = q(BACKUP_DIR)
    );
    s
}

/// Runs `systemctl` for the units given, in order: `daemon-reload` first when asked.
/// Prints `R <unit> ok|failed`; stops at the first failure.
pub(crate) fn restart(units: &[&str], daemon_reload: bool, pods: &[&str]) -> String {
    let mut s = String::from(PRELUDE);
    s.push_str("kpki_restart() {\n");
    if daemon_reload {
        s.push_str("systemctl daemon-reload || { echo 'R daemon-reload failed'; exit 1; }\n");
    }
    for u in units {
        let _ = writeln!(
            s,
            "if systemctl restart {uq}; then echo 'R {u} ok'; else echo 'R {u} failed'; exit 1; fi",
            uq = q(u),
            u = u
        );
    }
    for p in pods {
        // The kubelet restarts a static pod's container when it is stopped; crictl is the
        // CRI's own client (on a node without it, say so).
        let _ = writeln!(
            s,
            "if command -v crictl >/dev/null 2>&1; then ids=$(crictl ps -q --name {pq} 2>/dev/null); \
             if [ -n \"$ids\" ]; then crictl stop $ids >/dev/null 2>&1 && echo 'R pod/{p} ok' || {{ echo 'R pod/{p} failed'; exit 1; }}; \
             else echo 'R pod/{p} not-running'; fi; else echo 'R pod/{p} no-crictl'; fi",
            pq = q(p),
            p = p
        );
    }
    s.push_str("}\nkpki_restart\n");
    s
}

/// Whether each unit is active: `A <unit> yes|no`.
pub(crate) fn active(units: &[&str]) -> String {
    let mut s = String::from(PRELUDE);
    for u in units {
        let _ = writeln!(
            s,
            "if systemctl is-active --quiet {uq}; then echo 'A {u} yes'; else echo 'A {u} no'; fi",
            uq = q(u),
            u = u
        );
    }
    s
}

/// etcd's gate, run on the member: its own health, every member's status (JSON), and the
/// serial of the certificate it serves.
pub(crate) fn etcd_gate(g: &super::restart::EtcdGate) -> String {
    let mut s = String::from(PRELUDE);
    let tls = format!(
        "--cacert={} --cert={} --key={}",
        q(&g.ca),
        q(&g.cert),
        q(&g.key)
    );
    let _ = writeln!(
        s,
        "if etcdctl --endpoints={e} {tls} --dial-timeout=3s --command-timeout=5s endpoint health >/dev/null 2>&1; then echo 'H yes'; else echo 'H no'; fi",
        e = q(&g.endpoint)
    );
    let _ = writeln!(
        s,
        "printf 'S '; etcdctl --endpoints={all} {tls} --dial-timeout=3s --command-timeout=5s endpoint status -w json 2>/dev/null | tr -d '\\n'; echo",
        all = q(&g.all_endpoints.join(","))
    );
    let _ = writeln!(
        s,
        "if command -v openssl >/dev/null 2>&1; then printf 'C '; openssl s_client -connect {hp} -cert {c} -key {k} -CAfile {ca} </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | tr -d '\\n'; echo; else echo 'C no-openssl'; fi",
        hp = q(&g.host_port),
        c = q(&g.cert),
        k = q(&g.key),
        ca = q(&g.ca)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_values() {
        assert!(Safe::path("/etc/ssl/etcd/etcd.crt"));
        for bad in [
            "etc/x",
            "/",
            "/etc/../x",
            "/etc//x",
            "/etc/x/",
            "/a b",
            "/a'b",
            "/a\nb",
            "/a$b",
            "/a;b",
            "/a`b",
        ] {
            assert!(!Safe::path(bad), "{bad:?}");
        }
        assert!(Safe::name("etcd") && Safe::name("root") && !Safe::name("-x"));
        assert!(!Safe::name("a b") && !Safe::name("a:b") && !Safe::name(""));
        assert_eq!(Safe::mode("0600"), Some(0o600));
        assert_eq!(Safe::mode("4755"), None);
        assert_eq!(Safe::mode("600"), None);
    }

    /// The probe, run by this machine's sh on a temp dir: every kind of path, and names that
    /// are prefixes and suffixes of each other, read as `stat` and SHA-256 see them.
    #[test]
    fn probe_reads_files_links_dirs_and_absent_paths() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        if !Safe::path(&format!("{root}/x")) {
            eprintln!("skipped: temp dir {root} is not a path the scripts carry");
            return;
        }
        let file = |name: &str, body: &[u8], mode: u32| {
            let p = format!("{root}/{name}");
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        std::fs::create_dir(format!("{root}/sub")).unwrap();
        let regular = vec![
            file("k", b"one", 0o644),
            file("k.1", b"two", 0o600),
            file("sub/k", b"", 0o640),
            file("xk", b"three\n", 0o755),
        ];
        std::os::unix::fs::symlink(&regular[0], format!("{root}/link")).unwrap();
        let (dir_p, link_p, absent) = (
            format!("{root}/sub"),
            format!("{root}/link"),
            format!("{root}/absent"),
        );
        let mut paths: Vec<&str> = regular.iter().map(String::as_str).collect();
        paths.extend([dir_p.as_str(), link_p.as_str(), absent.as_str()]);
        let script = probe(&paths, &["root"], &["root"]);
        let mut child = std::process::Command::new("sh")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let st = super::super::parse_probe("n", &String::from_utf8(out.stdout).unwrap()).unwrap();
        for p in &regular {
            let o = std::process::Command::new("stat")
                .args(["-c", "%a %U %G", "--", p])
                .output()
                .unwrap();
            let o = String::from_utf8(o.stdout).unwrap();
            let f: Vec<&str> = o.split_whitespace().collect();
            let want = super::super::RemoteFile {
                sha256: crate::stage::sha256(&std::fs::read(p).unwrap()),
                mode: u32::from_str_radix(f[0], 8).unwrap(),
                owner: f[1].to_owned(),
                group: f[2].to_owned(),
            };
            assert_eq!(st.files.get(p), Some(&Some(want)), "{p}");
        }
        assert_eq!(st.files.get(&absent), Some(&None));
        assert_eq!(st.not_regular, vec![dir_p, link_p]);
        assert!(st.missing_users.is_empty() && st.missing_groups.is_empty());
    }

    #[test]
    fn parents_of_a_path() {
        assert_eq!(
            parents("/etc/ssl/etcd/x.crt"),
            vec!["/etc", "/etc/ssl", "/etc/ssl/etcd"]
        );
        assert!(parents("/x").is_empty());
    }
}
