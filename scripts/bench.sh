#!/usr/bin/env bash
# Speed benchmark for `kpki issue`, side by side with the usual tools, in one run.
#
#   scripts/bench.sh [--rsa-keygen] [--no-jitter] [--quick]
#
#   a. one ECDSA P-256 leaf per process: kpki vs `openssl req -x509 -CA` (one step), the
#      guides' three-step openssl recipe, and cfssl gencert
#   b. the whole example cluster in one process: `kpki issue --all` (35 items), per leaf,
#      vs the one-step openssl per leaf (and vs a loop of 35 openssl commands)
#   c. one RSA-2048 leaf: kpki vs certtool vs one-step openssl
#   d. a passphrase-protected store (age scrypt, slow on purpose) for one leaf
#
#   --rsa-keygen  also build and run scripts/rsa-keygen (RSA-2048 key generation,
#                 aws-lc-rs vs RustCrypto rsa; compiles in about a minute)
#   --no-jitter   also build kpki with AWS_LC_SYS_NO_JITTER_ENTROPY=1 (aws-lc seeds its
#                 RNG from the OS instead of a CPU-jitter collector) and bench it next to
#                 the normal build (a full rebuild: ~2.5 minutes on 2 cores)
#   --quick       fewer runs (a smoke test; the numbers are then rough)
#
# Needs: cargo, hyperfine, openssl >= 3, certtool (gnutls-bin), cfssl (golang-cfssl),
# python3; cfssljson is used when present. Runnable from any directory. Everything it
# makes goes into one temp dir, removed on exit; the only thing written elsewhere is
# cargo's usual release build of kpki (`cargo build --release`, into the repo's target
# directory or $CARGO_TARGET_DIR). The kpki binary is copied into the temp dir so a
# rebuild by someone else during the run does not change what is measured.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
RSA_KEYGEN=0
NO_JITTER=0
QUICK=0
for a in "$@"; do
  case "$a" in
    --rsa-keygen) RSA_KEYGEN=1 ;;
    --no-jitter) NO_JITTER=1 ;;
    --quick) QUICK=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bench.sh: unknown argument '$a' (try --help)" >&2
      exit 1
      ;;
  esac
done

# ---- tools -------------------------------------------------------------------------
missing=()
pkgs=()
need() { # need <command> <debian package>
  if ! command -v "$1" >/dev/null 2>&1; then
    missing+=("$1")
    pkgs+=("$2")
  fi
}
need cargo cargo
need hyperfine hyperfine
need openssl openssl
need certtool gnutls-bin
need cfssl golang-cfssl
need python3 python3
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench.sh: missing tools: ${missing[*]}" >&2
  echo "  install them, e.g.: sudo apt-get install -y ${pkgs[*]}" >&2
  exit 1
fi
ossl_major=$(openssl version | awk '{print $2}' | cut -d. -f1)
if [ "${ossl_major:-0}" -lt 3 ]; then
  echo "bench.sh: $(openssl version) is too old: the one-step 'openssl req -x509 -CA' needs OpenSSL 3" >&2
  exit 1
fi
HAVE_CFSSLJSON=0
command -v cfssljson >/dev/null 2>&1 && HAVE_CFSSLJSON=1

if [ "$QUICK" = 1 ]; then
  RUNS_A=10 RUNS_B=3 RUNS_C=10 RUNS_D=3
else
  RUNS_A=100 RUNS_B=15 RUNS_C=50 RUNS_D=10
fi
WARMUP=3

# ---- temp dir ----------------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/kpki-bench.XXXXXX")
cleanup() { rm -rf -- "$T"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$T/bin" "$T/json" "$T/w"

say() { printf '\n==== %s\n' "$*"; }
load() { echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg))"; }

# ---- build -------------------------------------------------------------------------
say "building kpki (release)"
(cd "$REPO" && cargo build --release --locked --quiet)
TARGET_DIR=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp "$TARGET_DIR/release/kpki" "$T/bin/kpki"
KPKI="$T/bin/kpki"
if [ "$NO_JITTER" = 1 ]; then
  say "building kpki with AWS_LC_SYS_NO_JITTER_ENTROPY=1 into the temp dir (full rebuild)"
  (cd "$REPO" && AWS_LC_SYS_NO_JITTER_ENTROPY=1 cargo build --release --locked --quiet \
    --target-dir "$T/target-nojitter")
  cp "$T/target-nojitter/release/kpki" "$T/bin/kpki-nojitter"
  rm -rf "$T/target-nojitter"
fi
KPKI_NJ="$T/bin/kpki-nojitter"
if [ "$RSA_KEYGEN" = 1 ]; then
  say "building scripts/rsa-keygen into the temp dir"
  (cd "$REPO/scripts/rsa-keygen" && cargo build --release --locked --quiet \
    --target-dir "$T/target-rsa-keygen")
fi

# ---- machine -----------------------------------------------------------------------
say "machine"
{
  echo "date        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kpki        $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?') ($("$KPKI" --version))"
  echo "cpu         $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
  echo "kernel      $(uname -sr)"
  echo "temp fs     $(df -T "$T" | awk 'NR==2 {print $2 " on " $1}')"
  echo "rustc       $(rustc --version 2>/dev/null || echo '?')"
  echo "openssl     $(openssl version)"
  echo "certtool    $(certtool --version 2>/dev/null | head -1)"
  echo "cfssl       $(cfssl version 2>/dev/null | head -1 | sed 's/Version: //')$( [ "$HAVE_CFSSLJSON" = 1 ] && echo ' (with cfssljson)' || echo ' (no cfssljson: JSON output kept as is)')"
  echo "hyperfine   $(hyperfine --version)"
} | tee "$T/machine.txt"

# ---- stores and CAs ----------------------------------------------------------------
export XDG_CONFIG_HOME="$T/cfg"
export KPKI_INVENTORY="$REPO/examples/ha-cluster.toml"
unset KPKI_IDENTITY KPKI_PROFILES KPKI_PASSPHRASE
PASS="bench-passphrase-not-secret"
for s in a b c; do
  KPKI_STORE="$T/$s/pki" "$KPKI" -q init
done
KPKI_STORE="$T/d/pki" KPKI_PASSPHRASE="$PASS" "$KPKI" -q init --passphrase
# age picks the scrypt work factor at encryption time (aiming at about a second here).
SCRYPT_LOGN=$(python3 -c '
import base64, re, sys
t = open(sys.argv[1]).read()
raw = base64.b64decode("".join(l for l in t.splitlines() if not l.startswith("-----")))
m = re.search(rb"-> scrypt \S+ (\d+)", raw)
print(m.group(1).decode() if m else "?")' "$T/d/pki/store-identity.age")

cd "$T/w"
# The openssl CA for the peers: ECDSA P-256, made with openssl, as the guides do.
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj "/O=example/CN=example root CA" -days 3650 \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out ca.crt 2>/dev/null
openssl pkey -in ca.key -aes256 -passout "pass:$PASS" -out ca-enc.key

# The leaf kpki's etcd-peer profile makes for etcd01, spelled for each tool.
CN="etcd01.example.com"
SAN="IP:192.168.0.1,DNS:etcd01.example.com,DNS:etcd01,DNS:localhost,IP:127.0.0.1"
cat >openssl.cnf <<'EOF'
[req]
prompt = no
distinguished_name = dn
req_extensions = v3_req
[dn]
CN = etcd01.example.com
[v3_req]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = @alt_names
[alt_names]
IP.1 = 192.168.0.1
DNS.1 = etcd01.example.com
DNS.2 = etcd01
DNS.3 = localhost
IP.2 = 127.0.0.1
EOF
cat >cfssl-config.json <<'EOF'
{"signing": {"default": {"expiry": "8760h"},
  "profiles": {"peer": {"expiry": "8760h",
    "usages": ["digital signature", "server auth", "client auth"]}}}}
EOF
cat >cfssl-csr.json <<'EOF'
{"CN": "etcd01.example.com",
 "hosts": ["192.168.0.1", "etcd01.example.com", "etcd01", "localhost", "127.0.0.1"],
 "key": {"algo": "ecdsa", "size": 256}}
EOF
cat >certtool.tmpl <<'EOF'
cn = "etcd01.example.com"
ip_address = "192.168.0.1"
dns_name = "etcd01.example.com"
dns_name = "etcd01"
dns_name = "localhost"
ip_address = "127.0.0.1"
expiration_days = 365
signing_key
encryption_key
tls_www_server
tls_www_client
EOF

ossl_one_ec="openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -CA ca.crt -CAkey ca.key -subj /CN=$CN -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature -addext subjectAltName=$SAN -addext extendedKeyUsage=serverAuth,clientAuth -keyout o1.key -out o1.crt -days 365"
ossl_one_rsa="openssl req -x509 -newkey rsa:2048 -nodes -CA ca.crt -CAkey ca.key -subj /CN=$CN -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature,keyEncipherment -addext subjectAltName=$SAN -addext extendedKeyUsage=serverAuth,clientAuth -keyout or.key -out or.crt -days 365"
ossl_one_enc="openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -CA ca.crt -CAkey ca-enc.key -passin pass:$PASS -subj /CN=$CN -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature -addext subjectAltName=$SAN -addext extendedKeyUsage=serverAuth,clientAuth -keyout oe.key -out oe.crt -days 365"
ossl_three="bash -c 'openssl ecparam -name prime256v1 -genkey -noout -out o3.key && openssl req -new -key o3.key -config openssl.cnf -out o3.csr && openssl x509 -req -in o3.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile openssl.cnf -extensions v3_req -days 365 -out o3.crt 2>/dev/null'"
if [ "$HAVE_CFSSLJSON" = 1 ]; then
  cfssl_cmd="bash -c 'cfssl gencert -loglevel 5 -ca ca.crt -ca-key ca.key -config cfssl-config.json -profile peer cfssl-csr.json | cfssljson -bare cf'"
else
  cfssl_cmd="bash -c 'cfssl gencert -loglevel 5 -ca ca.crt -ca-key ca.key -config cfssl-config.json -profile peer cfssl-csr.json > cf.json'"
fi
certtool_cmd="bash -c 'certtool --generate-privkey --key-type rsa --bits 2048 --outfile ct.key 2>/dev/null && certtool --generate-certificate --load-privkey ct.key --load-ca-certificate ca.crt --load-ca-privkey ca.key --template certtool.tmpl --outfile ct.crt 2>/dev/null'"

# The whole cluster with one-step openssl: 34 P-256 leaves and one RSA-2048 key pair,
# one openssl process each, as a shell loop would make them.
{
  echo 'set -e'
  echo 'for i in $(seq 34); do'
  echo "  $ossl_one_ec" | sed 's/o1\./cluster-$i./g'
  echo 'done'
  echo 'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null'
  echo 'openssl pkey -in sa.key -pubout -out sa.pub'
} >ossl-cluster.sh

# Sanity: every command works once, and makes what it should, before timing.
say "checking that every command works"
check() {
  local name=$1
  shift
  if ! "$@" >"$T/check.out" 2>&1; then
    echo "bench.sh: '$name' failed:" >&2
    cat "$T/check.out" >&2
    exit 1
  fi
}
check "kpki etcd-peer" env KPKI_STORE="$T/a/pki" "$KPKI" -q issue --profile etcd-peer --node etcd01
check "kpki --all" env KPKI_STORE="$T/b/pki" "$KPKI" -q issue --all
n_all=$(find "$T/b/pki/issued" -name key.pem.age | wc -l)
check "kpki rsa" env KPKI_STORE="$T/c/pki" "$KPKI" -q issue --profile etcd-peer --node etcd01 --algorithm rsa-2048
check "kpki passphrase" env KPKI_STORE="$T/d/pki" KPKI_PASSPHRASE="$PASS" "$KPKI" -q issue --profile etcd-peer --node etcd01
check "openssl one-step" bash -c "$ossl_one_ec"
check "openssl one-step rsa" bash -c "$ossl_one_rsa"
check "openssl encrypted CA key" bash -c "$ossl_one_enc"
check "openssl three-step" bash -c "$ossl_three"
check "cfssl" bash -c "$cfssl_cmd"
check "certtool" bash -c "$certtool_cmd"
check "openssl cluster loop" bash ossl-cluster.sh
for c in o1.crt or.crt oe.crt o3.crt ct.crt; do
  check "verify $c" openssl verify -CAfile ca.crt "$c"
done
if [ "$HAVE_CFSSLJSON" = 1 ]; then
  check "verify cfssl" openssl verify -CAfile ca.crt cf.pem
fi
check "verify kpki" openssl verify -CAfile "$T/a/pki/ca/root/ca.crt" "$T/a/pki/issued/etcd-peer/etcd01/cert.pem"
echo "all commands work; kpki --all made $n_all items"
if [ "$NO_JITTER" = 1 ]; then
  rm -rf "$T/a/pki/issued/etcd-peer"
  check "kpki-nojitter" env KPKI_STORE="$T/a/pki" "$KPKI_NJ" -q issue --profile etcd-peer --node etcd01
fi

# ---- benchmarks --------------------------------------------------------------------
# -N: no intermediate shell, so a few-millisecond command is timed exactly; commands
# that need a pipe or several steps are explicit `bash -c` (their bash is counted).
HF=(hyperfine -N --warmup "$WARMUP" --style basic)

say "a. one ECDSA P-256 leaf per process (store writes fsynced, ledger updated)"
load
a_cmds=(-n "kpki issue" --prepare "rm -rf $T/a/pki/issued/etcd-peer" "$KPKI issue -q --profile etcd-peer --node etcd01")
if [ "$NO_JITTER" = 1 ]; then
  a_cmds+=(-n "kpki issue (no-jitter build)" --prepare "rm -rf $T/a/pki/issued/etcd-peer" "$KPKI_NJ issue -q --profile etcd-peer --node etcd01")
fi
a_cmds+=(
  -n "openssl req -x509 -CA (one step)" --prepare "rm -f o1.key o1.crt" "$ossl_one_ec"
  -n "openssl three-step recipe" --prepare "rm -f o3.key o3.csr o3.crt" "$ossl_three"
  -n "cfssl gencert" --prepare "rm -f cf.pem cf-key.pem cf.csr cf.json" "$cfssl_cmd"
)
KPKI_STORE="$T/a/pki" "${HF[@]}" --runs "$RUNS_A" --export-json "$T/json/a.json" "${a_cmds[@]}"

say "b. the whole example cluster in one process ($n_all items)"
load
b_cmds=(
  -n "kpki issue --all" --prepare "rm -rf $T/b/pki/issued" "$KPKI issue -q --all"
  -n "kpki issue --all --algorithm ecdsa-p256" --prepare "rm -rf $T/b/pki/issued" "$KPKI issue -q --all --algorithm ecdsa-p256"
)
if [ "$NO_JITTER" = 1 ]; then
  b_cmds+=(
    -n "kpki issue --all (no-jitter build)" --prepare "rm -rf $T/b/pki/issued" "$KPKI_NJ issue -q --all"
    -n "kpki issue --all --algorithm ecdsa-p256 (no-jitter build)" --prepare "rm -rf $T/b/pki/issued" "$KPKI_NJ issue -q --all --algorithm ecdsa-p256"
  )
fi
b_cmds+=(-n "openssl one-step x35 (34 P-256 + 1 RSA-2048)" --prepare "bash -c 'rm -f cluster-*.key cluster-*.crt sa.key sa.pub'" "bash ossl-cluster.sh")
KPKI_STORE="$T/b/pki" "${HF[@]}" --runs "$RUNS_B" --export-json "$T/json/b.json" "${b_cmds[@]}"

say "c. one RSA-2048 leaf per process (RSA key generation varies a lot: $RUNS_C runs)"
load
c_cmds=(-n "kpki issue --algorithm rsa-2048" --prepare "rm -rf $T/c/pki/issued/etcd-peer" "$KPKI issue -q --profile etcd-peer --node etcd01 --algorithm rsa-2048")
if [ "$NO_JITTER" = 1 ]; then
  c_cmds+=(-n "kpki issue --algorithm rsa-2048 (no-jitter build)" --prepare "rm -rf $T/c/pki/issued/etcd-peer" "$KPKI_NJ issue -q --profile etcd-peer --node etcd01 --algorithm rsa-2048")
fi
c_cmds+=(
  -n "certtool (privkey + certificate)" --prepare "rm -f ct.key ct.crt" "$certtool_cmd"
  -n "openssl req -x509 -newkey rsa:2048 -CA (one step)" --prepare "rm -f or.key or.crt" "$ossl_one_rsa"
  -n "(ref) certtool RSA-2048 key only" --prepare "rm -f ctk.key" "certtool --generate-privkey --key-type rsa --bits 2048 --outfile ctk.key"
  -n "(ref) openssl genpkey RSA-2048 key only" --prepare "rm -f ogk.key" "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ogk.key"
)
KPKI_STORE="$T/c/pki" "${HF[@]}" --runs "$RUNS_C" --export-json "$T/json/c.json" "${c_cmds[@]}"

say "d. passphrase-protected store: age scrypt, about a second on purpose"
load
echo "age scrypt work factor of this store: log2(N) = $SCRYPT_LOGN (r = 8: $(( (1 << ${SCRYPT_LOGN/\?/0}) * 1024 >> 20 )) MiB of memory)"
d_cmds=(
  -n "kpki issue (identity-file store)" --prepare "rm -rf $T/a/pki/issued/etcd-peer" "$KPKI --store $T/a/pki issue -q --profile etcd-peer --node etcd01"
  -n "kpki issue (passphrase store)" --prepare "rm -rf $T/d/pki/issued/etcd-peer" "$KPKI issue -q --profile etcd-peer --node etcd01"
  -n "openssl one step, AES-256 PKCS#8 CA key" --prepare "rm -f oe.key oe.crt" "$ossl_one_enc"
)
KPKI_STORE="$T/d/pki" KPKI_PASSPHRASE="$PASS" "${HF[@]}" --runs "$RUNS_D" --export-json "$T/json/d.json" "${d_cmds[@]}"

# ---- summary -----------------------------------------------------------------------
say "summary (times in ms; ratio = this command's mean / the base kpki command's mean,
     so above 1 means kpki is faster; ± is the propagated standard deviation)"
python3 - "$T/json" "$n_all" <<'PY'
import json, math, os, sys

d, n_all = sys.argv[1], int(sys.argv[2])
res = {s: {r["command"]: r for r in json.load(open(os.path.join(d, s + ".json")))["results"]}
       for s in "abcd"}

def ratio(x, y):  # x / y with propagated standard deviation
    q = x["mean"] / y["mean"]
    return q, q * math.hypot(x["stddev"] / x["mean"], y["stddev"] / y["mean"])

def table(s, base, title):
    rs = res[s]
    b = rs[base]
    print(f"\n{title}\n")
    print("| command | mean ± σ | median | min | max | runs | ratio to base |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rs.items():
        q, e = ratio(r, b)
        rat = "base" if name == base else (f"{q:.2f} ± {e:.2f}" if q < 100 else f"{q:.0f} ± {e:.0f}")
        print(f"| {name} | {r['mean']*1e3:.1f} ± {r['stddev']*1e3:.1f} | {r['median']*1e3:.1f} "
              f"| {r['min']*1e3:.1f} | {r['max']*1e3:.1f} | {len(r['times'])} | {rat} |")

table("a", "kpki issue", "a. one ECDSA P-256 leaf per process")
table("b", "kpki issue --all", f"b. whole cluster in one process ({n_all} items)")
table("c", "kpki issue --algorithm rsa-2048", "c. one RSA-2048 leaf per process")
table("d", "kpki issue (identity-file store)", "d. passphrase store, one leaf")
dp, di = res["d"]["kpki issue (passphrase store)"], res["d"]["kpki issue (identity-file store)"]
print(f"\nd. the passphrase (age scrypt, once per command) costs {(dp['mean']-di['mean'])*1e3:.0f} ms "
      f"(user {dp['user']*1e3:.0f} ms, system {dp['system']*1e3:.0f} ms)")

one = res["a"]["openssl req -x509 -CA (one step)"]
print(f"\nb. per leaf (whole cluster / {n_all}) against one one-step openssl process ({one['mean']*1e3:.2f} ms):\n")
print("| run | ms per item | one one-step openssl process / that |")
print("|---|---:|---:|")
for name, r in res["b"].items():
    if not name.startswith("kpki"):
        continue
    per = r["mean"] / n_all
    print(f"| {name} | {per*1e3:.2f} | {one['mean']/per:.1f}x |")
loop = res["b"]["openssl one-step x35 (34 P-256 + 1 RSA-2048)"]
print(f"| openssl one-step x{n_all} loop (for reference) | {loop['mean']/n_all*1e3:.2f} | {one['mean']/(loop['mean']/n_all):.2f}x |")
kb = res["b"]["kpki issue --all"]
print(f"\nkpki issue --all against the openssl loop making the same {n_all} items: {loop['mean']/kb['mean']:.1f}x faster")

print("\ntargets (verdict on the means; medians shown because a shared machine adds outliers):")
def verdict(ok):
    return "MET" if ok else "MISSED"
for suffix in ["", " (no-jitter build)"]:
    k = res["a"].get("kpki issue" + suffix)
    if k is None:
        continue
    q, e = ratio(one, k)
    qm = one["median"] / k["median"]
    print(f"  per process >= 3x faster than one-step openssl{suffix}: {q:.2f}x ± {e:.2f} (medians: {qm:.2f}x) -> {verdict(q >= 3)}")
    kb = res["b"]["kpki issue --all" + suffix]
    per = kb["mean"] / n_all
    pm = one["median"] / (kb["median"] / n_all)
    print(f"  whole cluster >= 5x faster per leaf than one-step openssl{suffix}: {one['mean']/per:.1f}x (medians: {pm:.1f}x) -> {verdict(one['mean']/per >= 5)}")
    ke = res["b"]["kpki issue --all --algorithm ecdsa-p256" + suffix]
    per = ke["mean"] / n_all
    pm = one["median"] / (ke["median"] / n_all)
    print(f"    (the same with every key P-256, no RSA service-account key{suffix}: {one['mean']/per:.1f}x (medians: {pm:.1f}x) -> {verdict(one['mean']/per >= 5)})")
    kc = res["c"]["kpki issue --algorithm rsa-2048" + suffix]
    ct = res["c"]["certtool (privkey + certificate)"]
    q, e = ratio(kc, ct)
    qm = kc["median"] / ct["median"]
    print(f"  RSA-2048 on par with certtool (kpki mean <= 1.10 x certtool mean){suffix}: kpki/certtool = {q:.2f} ± {e:.2f} (medians: {qm:.2f}) -> {verdict(q <= 1.10)}")
PY

if [ "$RSA_KEYGEN" = 1 ]; then
  say "RSA-2048 key generation in one process (scripts/rsa-keygen)"
  if [ "$QUICK" = 1 ]; then n=5; else n=30; fi
  "$T/target-rsa-keygen/release/rsa-keygen-bench" "$n"
fi
