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
pub(crate) fn probe(paths: &[&str], users: &[&str], groups: &[&str]) -> String {
    let mut s = String::from(PRELUDE);
    s.push_str("kpki_probe() {\necho 'kpki-probe 1'\n");
    s.push_str(
        "for p in \"$@\"; do\n\
         if [ -L \"$p\" ]; then echo \"X $p\"\n\
         elif [ -f \"$p\" ]; then\n\
         h=$(sha256sum < \"$p\" | cut -c1-64) || h=unreadable\n\
         m=$(stat -c '%a %U %G' -- \"$p\") || m='0 ? ?'\n\
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
  [ -d "$1" ] && return 0
  mkdir -- "$1" 2>/dev/null || [ -d "$1" ] || return 1
  chmod 0755 -- "$1"
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
    for d in &file_dirs {
        let _ = writeln!(s, "rm -f -- {}/{TEMP_PREFIX}* 2>/dev/null", q(d));
    }
    // Upload into temporary files beside the targets.
    let marker = format!("KPKI_DATA_{stamp}_EOF");
    for (i, u) in uploads.iter().enumerate() {
        let dir = &u.path[..u.path.rfind('/').unwrap_or(0)];
        let t = format!("{dir}/{TEMP_PREFIX}{i}");
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
        let _ = writeln!(
            s,
            "[ \"$(sha256sum < {t} | cut -c1-64)\" = {h} ] || fail '{p}: SHA-256 mismatch after upload (the staged file differs from its manifest, or it was corrupted on the way); nothing on this node was changed'",
            t = q(&t),
            h = q(u.sha256),
            p = u.path
        );
        let _ = writeln!(
            s,
            "chown {o}:{g} {t} && chmod {m} {t} || fail 'cannot set owner, group or mode of {p}'",
            o = q(u.owner),
            g = q(u.group),
            m = q(&format!("{:04o}", u.mode)),
            t = q(&t),
            p = u.path
        );
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
        let dir = &u.path[..u.path.rfind('/').unwrap_or(0)];
        let _ = writeln!(
            s,
            "mv -f -- {t} {p} || undo 'cannot rename into {raw}'\nDONE=\"$DONE {raw}\"",
            t = q(&format!("{dir}/{TEMP_PREFIX}{i}")),
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

    #[test]
    fn parents_of_a_path() {
        assert_eq!(
            parents("/etc/ssl/etcd/x.crt"),
            vec!["/etc", "/etc/ssl", "/etc/ssl/etcd"]
        );
        assert!(parents("/x").is_empty());
    }
}
