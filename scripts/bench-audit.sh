#!/usr/bin/env bash
# Speed benchmark for `kpki audit`, side by side in one run with what operators use
# instead: the cron loop `openssl x509 -enddate -noout` per file, and a Python script
# with the `cryptography` package doing the same walk (scripts/audit_py.py).
#
#   scripts/bench-audit.sh [--quick] [--out FILE]
#
#   Corpora (made by examples/audit_corpus.rs, nested folders of 100 files, no symlinks):
#     10k        10 000 files from 300 distinct certificates (a fleet: many copies)
#     100k      100 000 files from 300 distinct certificates
#     100k-uniq 100 000 files, every certificate different (the worst case for kpki,
#               which parses each distinct certificate once)
#   One file in five is a chain (leaf + CA), so 120 000 certificates per 100 000 files.
#
#   kpki runs with its defaults (table on standard output, sent to /dev/null; no store,
#   no inventory: the expiry part, as the other two do). The openssl loop is timed on a
#   1 000-file sample and scaled, as running it on 100 000 files takes an hour. The page
#   cache is warm for every timed run: hyperfine's --prepare reads the corpus before
#   each one (some kernels reclaim idle page cache within seconds, e.g. DAMON), and each
#   command also gets a warm-up run.
#
#   --quick   fewer runs (a smoke test; the numbers are then rough)
#   --out F   also write the markdown table to F
#
# Needs: cargo, hyperfine, openssl, python3 with cryptography (pip install cryptography,
# or apt-get install python3-cryptography). Everything it makes goes into one temp dir,
# removed on exit; kpki is built with `cargo build --release` and copied there so a
# rebuild by someone else during the run does not change what is measured.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=10
SSL_RUNS=3
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) RUNS=3; SSL_RUNS=1 ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done

for t in cargo hyperfine openssl python3; do
  command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done
if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "python3 has no cryptography module: pip install cryptography (or apt-get install python3-cryptography)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kpki-bench-audit.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "building kpki and the corpus generator (release)..." >&2
(cd "$REPO" && cargo build --release --quiet --bin kpki --example audit_corpus)
TARGET=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp "$TARGET/release/kpki" "$WORK/kpki"
cp "$TARGET/release/examples/audit_corpus" "$WORK/audit_corpus"
cp "$REPO/scripts/audit_py.py" "$WORK/audit_py.py"

cd "$WORK"
echo "generating corpora..." >&2
./audit_corpus 10k 10000 300
./audit_corpus 100k 100000 300
./audit_corpus 100k-uniq 100000 100000
for c in 10k 100k 100k-uniq; do find "$c" -type f | sort > "$c.files"; done
head -n 1000 100k.files > sample.txt

# kpki with no store and no inventory, as the other two have neither.
KPKI="env -u KPKI_INVENTORY -u KPKI_STORE ./kpki --store $WORK/no-store audit"

bench() { # name runs corpus-file-list command
  local name=$1 runs=$2 list=$3
  shift 3
  hyperfine --style basic --warmup 1 --runs "$runs" -i \
    --prepare "xargs -a $list cat > /dev/null" --export-json "$name.json" "$@" >&2
}
mean() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.3f %.3f" % (r["mean"], r["stddev"] or 0))' "$1"; }

for c in 10k 100k 100k-uniq; do
  bench "kpki-$c" "$RUNS" "$c.files" "$KPKI $c"
  bench "py-$c" "$RUNS" "$c.files" "python3 audit_py.py $c"
done
bench "openssl-1000" "$SSL_RUNS" sample.txt 'while read -r f; do openssl x509 -enddate -noout -in "$f"; done < sample.txt'

read -r SSL SSL_SD < <(mean openssl-1000.json)
{
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '{print int($2/1048576)}' /proc/meminfo | head -1) GiB;" \
    "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg);" \
    "openssl $(openssl version | cut -d' ' -f2), Python $(python3 -c 'import platform; print(platform.python_version())')" \
    "with cryptography $(python3 -c 'import cryptography; print(cryptography.__version__)'), hyperfine $(hyperfine --version | cut -d' ' -f2)."
  echo
  echo "| corpus | files | kpki audit | Python + cryptography | openssl loop (scaled from 1 000 files) | kpki vs Python | kpki vs openssl |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for c in 10k 100k 100k-uniq; do
    read -r K KSD < <(mean "kpki-$c.json")
    read -r P PSD < <(mean "py-$c.json")
    case $c in 10k) N=10000 ;; *) N=100000 ;; esac
    python3 - "$c" "$N" "$K" "$KSD" "$P" "$PSD" "$SSL" <<'EOF'
import sys
c, n, k, ksd, p, psd, ssl = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
scaled = ssl * n / 1000
print(f"| {c} | {n:,} | {k:.3f} s ± {ksd:.3f} | {p:.2f} s ± {psd:.2f} | {scaled:,.0f} s | {p / k:.1f}× | {scaled / k:,.0f}× |")
EOF
  done
  echo
  echo "openssl loop: $SSL s ± $SSL_SD for 1 000 files (one \`openssl x509 -enddate -noout\` process per file)."
} | tee "${OUT:-/dev/null}"
