#!/usr/bin/env bash
# Speed benchmark for `kpki push`, side by side with the guides' sequential scp loop, in
# one run, on throwaway SSH nodes on this machine's loopback (tests/support/nodes.rs).
#
#   scripts/bench-push.sh [--quick] [--old BIN]
#
#   a. 20 worker nodes, each with the example cluster's worker tree (21 files + kpki's
#      manifest = 22 files, 82 KB), delivered by:
#      - the guides' way, one node after the other: `ssh node mkdir -p <dirs>`, one
#        `scp -F cfg <file> node:<path>` per file, then one `ssh node 'chown … && chmod …'`
#        (every file's owner and mode as the manifest says): 24 connections per node;
#      - (reference) one `scp -r` of the node's whole tree to / per node, then the same
#        ssh chown/chmod: 2 connections per node, still one node after the other;
#      - kpki push --parallel 1, 8 (the default) and 20.
#   b. 50 worker nodes: kpki push --parallel 8, 20 and 50; and --parallel 8 once more on
#      nodes that already hold every file (nothing to change: the probe only).
#   c. CPU time of one run of each (client side, and the nodes' side: every process the
#      nodes' sshds ran for it), which the load of other jobs on the machine does not change.
#
#   --quick    fewer runs (a smoke test; the numbers are then rough)
#   --old BIN  also time BIN (another kpki build, e.g. of an earlier commit) pushing with
#              --parallel 8 (and 20 in b), next to this checkout's
#
# Every timed run starts from the same node state: hyperfine's --prepare removes, on every
# node, each staged file, the directories the push creates and /var/lib/kpki (the node's
# manifest and push backups) before every run of every command. That matters: kpki push
# only sends what differs from what the node holds, so on nodes already holding the files
# it would do almost nothing. Here every command installs every file on every node.
#
# The inventory has one etcd member (kpki apply needs one for the workers' flannel and
# etcd client files) that is no node here: only the workers are pushed (--role worker).
#
# Needs: root (the nodes are sshd in their own mount/PID namespaces), cargo, hyperfine,
# python3, openssh-client, openssh-server (/usr/sbin/sshd), util-linux (unshare). The nodes
# listen on 127.0.1.1–127.0.1.50 (sshd on port 2222 there, or the next free one), a range
# no test uses. Everything goes into one temp dir, removed on exit; the nodes are served
# by tests/bench_nodes.rs (an #[ignore]d test) run in the background, stopped by its PID.
# Builds kpki with `cargo build --release` and the node server with `cargo test --no-run`.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
OLD=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --old)
      OLD=$(realpath "${2:?--old needs a kpki binary}")
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bench-push.sh: unknown argument '$1' (try --help)" >&2
      exit 1
      ;;
  esac
  shift
done

# ---- tools -------------------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
  echo "bench-push.sh: needs root (the nodes run sshd in their own namespaces)" >&2
  exit 1
fi
missing=()
for t in cargo:cargo hyperfine:hyperfine python3:python3 ssh:openssh-client \
  scp:openssh-client /usr/sbin/sshd:openssh-server unshare:util-linux; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-push.sh: missing tools; install them: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if [ "$QUICK" = 1 ]; then
  RUNS_A=2 RUNS_B=3
else
  RUNS_A=5 RUNS_B=10
fi
N_A=20
N_B=50

# ---- temp dir, and the node server stopped by its PID on any exit -----------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/kpki-bench-push.XXXXXX")
case "$T" in *[!A-Za-z0-9/._-]*)
  echo "bench-push.sh: temp dir $T: use a TMPDIR without spaces or special characters" >&2
  rmdir -- "$T"
  exit 1
  ;;
esac
NODES_PID=
stop_nodes() {
  [ -n "$NODES_PID" ] || return 0
  touch "$T/nodes/stop"
  # The server stops each node (bounded, 5 s each at worst), then exits.
  for _ in $(seq 600); do
    kill -0 "$NODES_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$NODES_PID" 2>/dev/null; then
    echo "bench-push.sh: the node server did not stop within 60 s: SIGTERM, then SIGKILL" >&2
    kill -TERM "$NODES_PID" 2>/dev/null || true
    sleep 5
    kill -KILL "$NODES_PID" 2>/dev/null || true
  fi
  wait "$NODES_PID" 2>/dev/null || true
  NODES_PID=
}
cleanup() {
  stop_nodes
  rm -rf -- "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$T/bin" "$T/json" "$T/nodes"

say() { printf '\n==== %s\n' "$*"; }
load() { echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg))"; }

# ---- build -------------------------------------------------------------------------
say "building kpki (release) and the node server (tests/bench_nodes.rs)"
cd "$REPO"
cargo build --release --locked --quiet
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp "$TARGET_DIR/release/kpki" "$T/bin/kpki"
SERVER=$(cargo test --locked --no-run --test bench_nodes --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bench_nodes" and m.get("executable"):
        print(m["executable"])')
[ -n "$SERVER" ] || {
  echo "bench-push.sh: cargo did not build tests/bench_nodes.rs" >&2
  exit 1
}
cp "$SERVER" "$T/bin/bench_nodes"
# Copies: a rebuild by someone else during the run does not change what is measured.
KPKI="$T/bin/kpki"
OLD_SRC=$OLD
if [ -n "$OLD" ]; then
  cp "$OLD" "$T/bin/kpki-old"
  OLD="$T/bin/kpki-old"
fi
cd "$T"

# ---- machine -----------------------------------------------------------------------
say "machine"
{
  echo "date        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kpki        $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?') ($("$KPKI" --version))"
  [ -z "$OLD" ] || echo "old kpki    $OLD_SRC ($("$OLD" --version), sha256 $(sha256sum <"$OLD" | cut -c1-12))"
  echo "cpu         $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
  echo "kernel      $(uname -sr)"
  echo "openssh     $(ssh -V 2>&1)"
  echo "sh on nodes $(readlink -f /bin/sh)"
  echo "hyperfine   $(hyperfine --version)"
} | tee "$T/machine.txt"

# ---- nodes -------------------------------------------------------------------------
say "starting $N_B throwaway SSH nodes on 127.0.1.1-$N_B"
# TMPDIR: the nodes' own dirs (keys, overlay layers) go into $T too.
KPKI_BENCH_DIR="$T/nodes" KPKI_BENCH_NODES=$N_B KPKI_BENCH_SERVE_SECS=7200 TMPDIR="$T" \
  "$T/bin/bench_nodes" --ignored --exact bench_nodes_serve --nocapture --test-threads 1 \
  >"$T/nodes.log" 2>&1 &
NODES_PID=$!
for _ in $(seq 1800); do # at most 180 s
  [ -e "$T/nodes/ready" ] && break
  if ! kill -0 "$NODES_PID" 2>/dev/null; then
    wait "$NODES_PID" 2>/dev/null || true
    NODES_PID=
    echo "bench-push.sh: the node server exited:" >&2
    tail -40 "$T/nodes.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -e "$T/nodes/ready" ] || {
  echo "bench-push.sh: the nodes were not ready within 180 s" >&2
  exit 1
}
CFG="$T/nodes/ssh_config"
echo "$(wc -l <"$T/nodes/nodes") nodes ready; ssh config $CFG"
unset SSH_AUTH_SOCK

# ---- inventories, staged trees, and the scripts around them -------------------------
# stage <dir> <workers>: an inventory with one etcd member (not a node here) and
# node01..nodeNN as workers reached by their ssh alias, then `kpki apply --out staged`,
# then the comparison scripts (python3 below) from the staged manifests.
stage() {
  local d=$1 n=$2
  mkdir -p "$d"
  {
    cat <<'EOF'
[cluster]
name = "bench"
domain = "bench.test"
service_cidr = "10.3.0.0/24"
cluster_domain = "cluster.local"
pod_cidr = "10.2.0.0/16"

[loadbalancer]
fqdn = "lb.bench.test"
ip = "127.0.1.200"

[[nodes]]
name = "etcd01"
fqdn = "etcd01.bench.test"
ip = "127.0.1.201"
roles = ["etcd"]
EOF
    for i in $(seq "$n"); do
      local name
      name=$(printf 'node%02d' "$i")
      printf '\n[[nodes]]\nname = "%s"\nfqdn = "%s.bench.test"\nip = "127.0.1.%d"\nroles = ["worker"]\nssh_host = "%s"\n' \
        "$name" "$name" "$i" "$name"
    done
  } >"$d/cluster.toml"
  HOME="$d" XDG_CONFIG_HOME="$d/cfg" "$KPKI" -q --store "$d/pki" --inventory "$d/cluster.toml" \
    apply --out "$d/staged" >/dev/null
  python3 - "$d" "$n" "$CFG" <<'PY'
import json, os, shlex, sys
d, n, cfg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
nodes = [f"node{i:02d}" for i in range(1, n + 1)]
MANIFEST = "/var/lib/kpki/manifest.json"

def files(node):
    m = json.load(open(f"{d}/staged/{node}{MANIFEST}"))
    fs = [e for e in m["files"] if e["kind"] != "on-node"]
    fs.append({"path": MANIFEST, "mode": "0644", "owner": "root", "group": "root"})
    return fs

q = shlex.quote
ssh = f"ssh -F {q(cfg)}"
scp = f"scp -q -F {q(cfg)}"
files_sh, tree_sh = ["set -e"], ["set -e"]
paths = set()
for node in nodes:
    fs = files(node)
    dirs = sorted({os.path.dirname(f["path"]) for f in fs})
    own = {}
    for f in fs:
        own.setdefault(("chown", f"{f['owner']}:{f['group']}"), []).append(f["path"])
        own.setdefault(("chmod", f["mode"]), []).append(f["path"])
        paths.add(f["path"])
    fix = " && ".join(f"{c} {a} " + " ".join(p) for (c, a), p in sorted(own.items()))
    # The guides: mkdir, one scp per file, then owners and modes.
    files_sh.append(f"{ssh} {node} {q('mkdir -p ' + ' '.join(dirs))}")
    for f in fs:
        files_sh.append(f"{scp} {q(d + '/staged/' + node + f['path'])} {node}:{f['path']}")
    files_sh.append(f"{ssh} {node} {q(fix)}")
    # Reference: the whole tree in one recursive scp, then owners and modes.
    tops = sorted({f["path"].split("/")[1] for f in fs})
    tree_sh.append(f"{scp} -r " + " ".join(q(f"{d}/staged/{node}/{t}") for t in tops) + f" {node}:/")
    tree_sh.append(f"{ssh} {node} {q(fix)}")
open(f"{d}/scp-files.sh", "w").write("\n".join(files_sh) + "\n")
open(f"{d}/scp-tree.sh", "w").write("\n".join(tree_sh) + "\n")

# Reset: for each path, the shortest prefix the host lacks (the nodes see the host's
# directories through their overlays), removed whole; a path the host has itself (e.g.
# /etc/containerd/config.toml) removed alone. Plus kpki's manifest and backups.
gone = set()
for p in sorted(paths):
    parts = p.split("/")[1:]
    for i in range(1, len(parts) + 1):
        pre = "/" + "/".join(parts[:i])
        if not os.path.lexists(pre):
            gone.add(pre)
            break
    else:
        gone.add(p)
gone.add("/var/lib/kpki")
gone = sorted(g for g in gone if not any(g.startswith(o + "/") for o in gone))
with open(f"{d}/reset.sh", "w") as r:
    r.write("set -e\n")
    r.write(f"printf '%s\\n' {' '.join(nodes)} | xargs -P 8 -I@ {ssh} @ {q('rm -rf -- ' + ' '.join(gone))}\n")
PY
}

# check <dir> <workers>: every node holds every staged file with the manifest's
# contents, mode, owner and group (one ssh per node).
check() {
  python3 - "$1" "$2" "$CFG" <<'PY'
import hashlib, json, subprocess, sys
d, n, cfg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MANIFEST = "/var/lib/kpki/manifest.json"
bad = 0
for i in range(1, n + 1):
    node = f"node{i:02d}"
    raw = open(f"{d}/staged/{node}{MANIFEST}", "rb").read()
    m = json.loads(raw)
    want = {e["path"]: (e["sha256"], int(e["mode"], 8), e["owner"], e["group"])
            for e in m["files"] if e["kind"] != "on-node"}
    want[MANIFEST] = (hashlib.sha256(raw).hexdigest(), 0o644, "root", "root")
    ps = " ".join(sorted(want))
    o = subprocess.run(["ssh", "-F", cfg, node, f"sha256sum -- {ps}; stat -c '%a %U %G %n' -- {ps}"],
                       capture_output=True, text=True, timeout=60)
    got = {}
    for line in o.stdout.splitlines():
        f = line.split()
        if len(f) == 2:
            got.setdefault(f[1], [None] * 4)[0] = f[0]
        elif len(f) == 4:
            got.setdefault(f[3], [None] * 4)[1:] = [int(f[0], 8), f[1], f[2]]
    for p, w in want.items():
        if tuple(got.get(p, ())) != w:
            bad += 1
            if bad <= 5:
                print(f"  {node}: {p}: want {w}, got {got.get(p)}", file=sys.stderr)
if bad:
    sys.exit(f"check: {bad} files differ from the staged manifest")
PY
}

say "staging: $N_A workers, then $N_B (kpki apply --out staged)"
stage "$T/a" "$N_A"
stage "$T/b" "$N_B"
nfiles=$(grep -c '^scp ' "$T/a/scp-files.sh")
echo "per node: $((nfiles / N_A)) files, $(du -sb "$T/a/staged/node01" | cut -f1) bytes"

kpki_push() { # kpki_push <binary> <dir> <parallel>
  echo "$1 -q --inventory $2/cluster.toml push --out $2/staged --role worker --ssh-config $CFG --parallel $3"
}

# Every command once, from a reset, then the nodes checked: each delivers the same result.
say "checking that every command installs every file, owner and mode"
run_check() { # run_check <name> <dir> <workers> <command...>
  local name=$1 d=$2 n=$3
  shift 3
  bash "$d/reset.sh"
  if ! "$@" >"$T/check.out" 2>&1; then
    echo "bench-push.sh: '$name' failed:" >&2
    tail -20 "$T/check.out" >&2
    exit 1
  fi
  check "$d" "$n" || {
    echo "bench-push.sh: after '$name' the nodes do not hold the staged files" >&2
    exit 1
  }
  echo "ok: $name"
}
run_check "scp per file" "$T/a" "$N_A" bash "$T/a/scp-files.sh"
run_check "scp -r per node" "$T/a" "$N_A" bash "$T/a/scp-tree.sh"
# shellcheck disable=SC2046
run_check "kpki push ($N_A)" "$T/a" "$N_A" $(kpki_push "$KPKI" "$T/a" 8)
# shellcheck disable=SC2046
run_check "kpki push ($N_B)" "$T/b" "$N_B" $(kpki_push "$KPKI" "$T/b" 8)
if [ -n "$OLD" ]; then
  # shellcheck disable=SC2046
  run_check "old kpki push ($N_B)" "$T/b" "$N_B" $(kpki_push "$OLD" "$T/b" 8)
fi

# ---- benchmarks --------------------------------------------------------------------
HF=(hyperfine -N --style basic --warmup 0)

say "a. $N_A nodes, every file new on every node ($RUNS_A runs each)"
load
a_cmds=(
  -n "scp per file, one node after the other (the guides)" "bash $T/a/scp-files.sh"
  -n "(ref) scp -r per node, one node after the other" "bash $T/a/scp-tree.sh"
  -n "kpki push --parallel 1" "$(kpki_push "$KPKI" "$T/a" 1)"
  -n "kpki push --parallel 8" "$(kpki_push "$KPKI" "$T/a" 8)"
  -n "kpki push --parallel 20" "$(kpki_push "$KPKI" "$T/a" 20)"
)
if [ -n "$OLD" ]; then
  a_cmds+=(-n "old kpki push --parallel 8" "$(kpki_push "$OLD" "$T/a" 8)")
fi
"${HF[@]}" --runs "$RUNS_A" --prepare "bash $T/a/reset.sh" --export-json "$T/json/a.json" "${a_cmds[@]}"
load

say "b. $N_B nodes, every file new on every node but in the last row ($RUNS_B runs each)"
load
# One --prepare per command: the last one starts from nodes that already hold everything
# (the run before it installed it), the daily case of a push after a renewal elsewhere.
b_cmds=()
b_add() { # b_add <prepare> <name> <command>
  b_cmds+=(--prepare "$1" -n "$2" "$3")
}
b_add "bash $T/b/reset.sh" "kpki push --parallel 8" "$(kpki_push "$KPKI" "$T/b" 8)"
b_add "bash $T/b/reset.sh" "kpki push --parallel 20" "$(kpki_push "$KPKI" "$T/b" 20)"
b_add "bash $T/b/reset.sh" "kpki push --parallel 50" "$(kpki_push "$KPKI" "$T/b" 50)"
if [ -n "$OLD" ]; then
  b_add "bash $T/b/reset.sh" "old kpki push --parallel 8" "$(kpki_push "$OLD" "$T/b" 8)"
  b_add "bash $T/b/reset.sh" "old kpki push --parallel 20" "$(kpki_push "$OLD" "$T/b" 20)"
  b_add "true" "old kpki push --parallel 8, nothing to change" "$(kpki_push "$OLD" "$T/b" 8)"
fi
b_add "true" "kpki push --parallel 8, nothing to change" "$(kpki_push "$KPKI" "$T/b" 8)"
"${HF[@]}" --runs "$RUNS_B" --export-json "$T/json/b.json" "${b_cmds[@]}"
load

# ---- CPU ---------------------------------------------------------------------------
say "c. CPU time of one run each, from a reset (client: the command and its children; nodes: every process their sshds ran)"
cpu() { # cpu reset|keep <name> <dir> <workers> <command...>
  local how=$1 name=$2 d=$3 n=$4
  shift 4
  [ "$how" = keep ] || bash "$d/reset.sh"
  python3 - "$T/nodes/nodes" "$n" "$name" "$@" <<'PY'
import os, resource, subprocess, sys, time
nodes_file, n, name, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
pids = [int(l.split()[3]) for l in open(nodes_file)][:n]
tck = os.sysconf("SC_CLK_TCK")
def nodes_cpu():
    s = 0
    for p in pids:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        s += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    return s / tck
# A closed connection's sshd is reaped (and its CPU counted) a moment after the client
# exits: settle before each reading.
time.sleep(1)
r0, c0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), nodes_cpu(), time.monotonic()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t1 = time.monotonic()
time.sleep(1)
r1, c1 = resource.getrusage(resource.RUSAGE_CHILDREN), nodes_cpu()
client = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(f"| {name} | {n} | {t1 - t0:.2f} | {client:.2f} | {c1 - c0:.2f} | {client + c1 - c0:.2f} | {(client + c1 - c0) / n * 1000:.0f} |")
PY
}
{
  echo "| command | nodes | wall (s) | client CPU (s) | nodes' CPU (s) | total CPU (s) | CPU per node (ms) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  cpu reset "scp per file (the guides)" "$T/a" "$N_A" bash "$T/a/scp-files.sh"
  cpu reset "(ref) scp -r per node" "$T/a" "$N_A" bash "$T/a/scp-tree.sh"
  for d in a b; do
    n=$N_A
    [ "$d" = a ] || n=$N_B
    for bin in "$KPKI" ${OLD:+"$OLD"}; do
      old=
      [ "$bin" = "$KPKI" ] || old="old "
      # shellcheck disable=SC2046
      cpu reset "${old}kpki push --parallel 8" "$T/$d" "$n" $(kpki_push "$bin" "$T/$d" 8)
      # shellcheck disable=SC2046
      cpu keep "${old}kpki push --parallel 8, nothing to change" "$T/$d" "$n" $(kpki_push "$bin" "$T/$d" 8)
    done
  done
} | tee "$T/cpu.md"

# ---- summary -----------------------------------------------------------------------
say "summary (ratios of means; ± from both σ)"
python3 - "$T/json/a.json" "$T/json/b.json" "$N_A" "$N_B" <<'PY'
import json, math, sys
a, b = (json.load(open(p))["results"] for p in sys.argv[1:3])
na, nb = sys.argv[3], sys.argv[4]
def row(r, base):
    m, s = r["mean"], r["stddev"] or 0.0
    line = f"| {r['command']} | {m:.2f} ± {s:.2f} | {r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} | {len(r['times'])} |"
    if base:
        bm, bs = base["mean"], base["stddev"] or 0.0
        ratio = bm / m
        err = ratio * math.hypot(bs / bm, s / m)
        line += f" {ratio:.1f} ± {err:.1f} |"
    return line
print(f"a. {na} nodes")
print("| command | mean ± σ (s) | median | min | max | runs | scp loop ÷ this |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in a:
    print(row(r, a[0]))
print(f"\nb. {nb} nodes")
print("| command | mean ± σ (s) | median | min | max | runs |")
print("|---|---:|---:|---:|---:|---:|")
for r in b:
    print(row(r, None))
for part, rows in (("a", a), ("b", b)):
    by = {r["command"]: r for r in rows}
    for name, r in by.items():
        new = by.get(name[len("old "):]) if name.startswith("old ") else None
        if new:
            ratio = r["mean"] / new["mean"]
            err = ratio * math.hypot((r["stddev"] or 0) / r["mean"], (new["stddev"] or 0) / new["mean"])
            print(f"{part}: old ÷ this build, {name[len('old '):]}: {ratio:.2f} ± {err:.2f}")
base = a[0]["mean"]
k8 = next(r for r in a if r["command"] == "kpki push --parallel 8")
best_b = min(r["mean"] for r in b if not r["command"].startswith("old") and "nothing" not in r["command"])
print(f"\ntarget: >= 10x faster than the scp loop ({na} nodes): {base / k8['mean']:.1f}x with --parallel 8 "
      f"({'met' if base / k8['mean'] >= 10 else 'missed'})")
print(f"target: {nb} nodes in under 5 s: best mean {best_b:.2f} s ({'met' if best_b < 5 else 'missed'})")
PY
