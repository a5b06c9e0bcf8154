#!/usr/bin/env bash
# The test command: installs what the tests need (Debian/Ubuntu, as root), then runs the
# whole test suite. As a non-root user, install the packages it names first:
#   sudo apt-get install -y openssl curl etcd-server etcd-client haproxy containerd openssh-server prometheus jq ansible-core
#   (and kubernetes-client when no kubectl is on the PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null || need+=(openssl)
# The etcd test speaks to the peer port with curl.
command -v curl >/dev/null || need+=(curl)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v systemd-analyze >/dev/null || need+=(systemd)
# containerd's own parser checks the rendered config.toml.
command -v containerd >/dev/null || need+=(containerd)
# A preinstalled kubectl conflicts with Debian's kubernetes-client: only add it when missing.
command -v kubectl >/dev/null || need+=(kubernetes-client)
# The README's examples pipe kpki's JSON into jq (tests/readme).
command -v jq >/dev/null || need+=(jq)
# promtool (Debian ships it in prometheus) checks the audit's metrics; the test skips that step without it.
command -v promtool >/dev/null || need+=(prometheus)
# ansible-playbook runs the export of `kpki export ansible` (tests/export_ansible.rs); a
# full `ansible` already provides it.
command -v ansible-playbook >/dev/null || need+=(ansible-core)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]}" >&2
    echo "run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# As root (CI) the push tests' throwaway SSH nodes must run: fail rather than skip them.
if [ "$(id -u)" = 0 ]; then export KPKI_REQUIRE_NODES=1; fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked "$@" 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
