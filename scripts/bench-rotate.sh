#!/usr/bin/env bash
# Availability during a leaf rotation: the rotation of three real etcd members (the test
# tests/rotate.rs `leaf_rotation_rolls_member_by_member_and_loses_no_write`, on the
# throwaway SSH nodes, as root) while a writer puts keys one after another with etcdctl.
# Reports, per run: the rotation's total time, the writes acknowledged during it, the
# largest gap between two acknowledged writes, and acknowledged writes lost (must be 0;
# the test fails otherwise).
#
#   scripts/bench-rotate.sh [RUNS]      # default 3
#
# Needs: root (the nodes use namespaces and overlays), cargo, openssh-server, etcd-server,
# etcd-client, openssl. The writer is a new etcdctl process per write (about 20-40 ms
# each), so a gap under that is not measurable here.
set -euo pipefail
REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-3}
cd "$REPO"
cargo test --release --test rotate --no-run >/dev/null 2>&1
printf '%-4s %10s %10s %14s %6s\n' run "total s" writes "max gap ms" lost
for i in $(seq 1 "$RUNS"); do
  line=$(KPKI_REQUIRE_NODES=1 cargo test -q --release --test rotate -- leaf_rotation --nocapture 2>&1 | grep '^BENCH ' || true)
  if [ -z "$line" ]; then
    echo "run $i: the test did not report (failed or skipped); run it with --nocapture to see why" >&2
    exit 1
  fi
  # BENCH rotate 3 members: total 9.8 s, 450 writes acknowledged, largest gap 152 ms, 0 lost
  echo "$line" | sed -E 's/.*total ([0-9.]+) s, ([0-9]+) writes acknowledged, largest gap ([0-9]+) ms, ([0-9]+) lost/\1 \2 \3 \4/' |
    awk -v i="$i" '{ printf "%-4s %10s %10s %14s %6s\n", i, $1, $2, $3, $4 }'
done
