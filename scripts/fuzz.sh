#!/usr/bin/env bash
# Fuzzes kpki's loaders with cargo fuzz (libFuzzer + AddressSanitizer), one target after
# the other, each for SECONDS (default 600). Not part of the default test run.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: see fuzz/Cargo.toml (default: all)
#
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz
# (cargo install cargo-fuzz). Runs at the lowest priority (nice 19), one fuzzer process
# at a time. Seeds are made fresh in a temporary directory from the example cluster
# (`kpki apply`: certificates, a CSR, staged trees, manifests, age files); the corpus
# grows in fuzz/corpus/<target>/ and crashing inputs land in fuzz/artifacts/<target>/.
# Each crash, once fixed, goes to tests/fixtures/fuzz/<target>/ where
# tests/fuzz_regressions.rs runs it in the default test run. Exits 1 when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
all=(cert csr inventory profile config_reader manifest age_key)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: needs cargo-fuzz: cargo install cargo-fuzz" >&2; exit 1; }

# Seeds from a real store and staged trees of the example cluster.
cargo build --locked --quiet
kpki=$PWD/target/debug/kpki
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  export HOME=$work KPKI_INVENTORY=$OLDPWD/examples/ha-cluster.toml
  "$kpki" apply --out staged >/dev/null
  "$kpki" csr --profile etcd-peer --node etcd01 --out csr >/dev/null
)
seeds=$work/seeds
for t in "${all[@]}"; do mkdir -p "$seeds/$t"; done
find "$work/pki" "$work/staged" -name '*.crt' -o -name 'cert.pem' -o -name '*.pem' | awk 'NR <= 40' |
  while read -r f; do cp "$f" "$seeds/cert/$(echo "$f" | md5sum | cut -c1-12)"; done
cp tests/fixtures/store-v1/pki/ca/root/ca.crt "$seeds/cert/v1-root"
cp "$work"/csr/*.csr "$seeds/csr/"
openssl req -new -newkey rsa:2048 -nodes -keyout /dev/null -subj /CN=seed -outform DER \
  -out "$seeds/csr/rsa.der" 2>/dev/null || true
cp examples/ha-cluster.toml "$seeds/inventory/"
cp profiles/*.toml "$seeds/profile/"
for node in "$work"/staged/*/; do
  n=$(basename "$node")
  cp "$node/var/lib/kpki/manifest.json" "$seeds/manifest/$n.json"
  # A config_reader input: each file after a line `@@ <mode> <install path>`.
  # Throwaway keys of this temporary store: the checker matches them to certificates.
  (cd "$node" && find . -type f | sort | while read -r f; do
    printf '@@ %04o %s\n' "0$(stat -c %a "$f")" "${f#.}"
    cat "$f"
  done) >"$seeds/config_reader/$n"
done
find "$work/pki" -name '*.age' | awk 'NR <= 10' | while read -r f; do cp "$f" "$seeds/age_key/$(echo "$f" | md5sum | cut -c1-12)"; done
cp tests/fixtures/store-v1/pki/ca/root/ca.key.age "$seeds/age_key/v1-root"

# Built once: the runs below use these binaries, whatever changes in the tree meanwhile.
(cd fuzz && nice -n 19 cargo +nightly fuzz build)
bin=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
mkdir -p fuzz/corpus fuzz/artifacts fuzz/logs
crashed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "fuzz.sh: $t for ${seconds}s"
  start=$(date +%s)
  set +e
  nice -n 19 "$bin/$t" "fuzz/corpus/$t" "$seeds/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1
  rc=$?
  set -e
  took=$(($(date +%s) - start))
  stats=$(grep -E '^#[0-9]+.*(DONE|cov:)' "fuzz/logs/$t.log" | tail -1 || true)
  if [ $rc -ne 0 ]; then
    crashed+=("$t")
    echo "fuzz.sh: $t CRASHED after ${took}s: $(grep -m1 -E 'panicked|ERROR: ' "fuzz/logs/$t.log" || true)"
    ls "fuzz/artifacts/$t"
  else
    echo "fuzz.sh: $t ran ${took}s, no crash: $stats"
  fi
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${crashed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)" >&2
  exit 1
fi
