#!/usr/bin/env bash
# Does one issuance cost the same whatever the history? `kpki issue` on a store whose
# ledger holds 10 events, and on the same store with 10,000 (and 100,000), in one
# hyperfine run, with the one-step openssl issuance beside them for scale.
#
#   scripts/bench-ledger.sh [--quick] [--old BIN]
#
#   --old BIN  also time BIN, a kpki 0.1 build (e.g. of commit b000289, which rewrote the
#              ledger whole on every command), on stores of its own padded the same way
#
# The long ledgers are the short one padded with copies of its own `issued` lines for
# another target (`pad/<n>`), so every store holds the same files and only the ledger's
# length differs. kpki never reads the ledger to issue (it appends one line per event with
# O_APPEND and flushes once); kpki 0.1 read and rewrote it whole on every command.
#
# Needs: cargo, hyperfine, openssl >= 3, python3. Everything it makes goes into one temp
# dir, removed on exit; it builds kpki with `cargo build --release`.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=100
OLD=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) RUNS=10 ;;
    --old)
      OLD=$(realpath "${2:?--old needs a kpki binary}")
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bench-ledger.sh: unknown argument '$1' (try --help)" >&2
      exit 1
      ;;
  esac
  shift
done
for t in cargo hyperfine openssl python3; do
  command -v "$t" >/dev/null || {
    echo "bench-ledger.sh: missing $t (sudo apt-get install -y hyperfine openssl python3)" >&2
    exit 1
  }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/kpki-bench-ledger.XXXXXX")
trap 'rm -rf -- "$T"' EXIT
(cd "$REPO" && cargo build --release --locked --quiet)
TARGET_DIR=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp "$TARGET_DIR/release/kpki" "$T/kpki"
KPKI="$T/kpki"
export HOME="$T" XDG_CONFIG_HOME="$T/cfg" KPKI_INVENTORY="$REPO/examples/ha-cluster.toml"

echo "date   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "kpki   $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"
echo "cpu    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
echo "load   $(cut -d' ' -f1-3 /proc/loadavg)"

# One store with a short ledger: the CA and the three etcd members (4 events), padded to 10.
"$KPKI" --store "$T/s10" init -q
"$KPKI" --store "$T/s10" issue -q --profile etcd-peer --all
pad() { # pad <store> <events>
  python3 - "$1/ledger.jsonl" "$2" <<'PY'
import json, sys
path, want = sys.argv[1], int(sys.argv[2])
lines = open(path).read().splitlines()
# Format 2 events, or format 1's bare records (no "event" field).
issued = [json.loads(l) for l in lines if json.loads(l).get("event", "issued") == "issued"]
out = list(lines)
n = 0
while len(out) < want:
    e = dict(issued[n % len(issued)])
    e["target"] = f"pad{n}"
    e["generation"] = 1
    out.append(json.dumps(e, separators=(",", ":")))
    n += 1
open(path, "w").write("\n".join(out) + "\n")
PY
}
for n in 10000 100000; do
  cp -a "$T/s10" "$T/s$n"
  pad "$T/s$n" "$n"
done
pad "$T/s10" 10
for s in s10 s10000 s100000; do
  printf '%-8s ledger %8d lines, %9d bytes\n' "$s" "$(wc -l <"$T/$s/ledger.jsonl")" "$(wc -c <"$T/$s/ledger.jsonl")"
done

# openssl's one-step issuance, from a P-256 CA of its own, for scale.
openssl ecparam -name prime256v1 -genkey -noout -out "$T/ossl-ca.key" 2>/dev/null
openssl req -x509 -new -key "$T/ossl-ca.key" -subj /CN=bench-ca -days 3650 -out "$T/ossl-ca.crt" 2>/dev/null

issue() { echo "$KPKI --store $T/$1 issue -q --force --profile etcd-peer --node etcd01"; }
old=()
if [ -n "$OLD" ]; then
  "$OLD" --store "$T/o10" init -q
  "$OLD" --store "$T/o10" issue -q --profile etcd-peer --all
  cp -a "$T/o10" "$T/o10000"
  pad "$T/o10000" 10000
  pad "$T/o10" 10
  for s in o10 o10000; do
    printf '%-8s ledger %8d lines, %9d bytes (kpki 0.1)\n' "$s" "$(wc -l <"$T/$s/ledger.jsonl")" "$(wc -c <"$T/$s/ledger.jsonl")"
  done
  oissue() { echo "$OLD --store $T/$1 issue -q --force --profile etcd-peer --node etcd01"; }
  old=(-n "kpki 0.1 issue, ledger of 10" "$(oissue o10)" -n "kpki 0.1 issue, ledger of 10,000" "$(oissue o10000)")
fi
hyperfine -N --warmup 5 --runs "$RUNS" --prepare sync --export-json "$T/ledger.json" \
  -n "kpki issue, ledger of 10" "$(issue s10)" \
  -n "kpki issue, ledger of 10,000" "$(issue s10000)" \
  -n "kpki issue, ledger of 100,000" "$(issue s100000)" \
  "${old[@]}" \
  -n "openssl req -x509 -CA (one step)" \
  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $T/o.key -out $T/o.crt -subj /CN=etcd01 -CA $T/ossl-ca.crt -CAkey $T/ossl-ca.key -days 365"

python3 - "$T/ledger.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["kpki issue, ledger of 10"]["median"]
print("\nmedian, and the ratio to the 10-event ledger:")
for name, x in r.items():
    print(f"  {name:36s} {x['median']*1000:7.2f} ms  ({x['median']/base:.3f}x)")
PY
