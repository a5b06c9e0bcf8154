#!/usr/bin/env python3
"""The certificate expiry check operators write in Python, for scripts/bench-audit.sh.

Walks the given directories, reads every file, loads each PEM (every certificate in it)
or DER certificate with the `cryptography` package, and prints one line per certificate
(state, not-after, subject, path), then a summary; exits 0 / 1 / 2 like `kpki audit`
(ok / within --warn / within --critical or expired). Single-threaded, as such scripts
are. It does what kpki audit's expiry part does, and nothing of its checks (chains, keys,
modes, inventory): the comparison flatters the script.

    python3 scripts/audit_py.py [--warn-days 30] [--critical-days 7] DIR...

Needs `cryptography` >= 39 (pip install cryptography, or Debian's python3-cryptography).
"""

import argparse
import datetime
import os
import sys

from cryptography import x509


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warn-days", type=int, default=30)
    ap.add_argument("--critical-days", type=int, default=7)
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    now = datetime.datetime.now(datetime.timezone.utc)
    warn = datetime.timedelta(days=args.warn_days)
    critical = datetime.timedelta(days=args.critical_days)
    counts = {"ok": 0, "warn": 0, "critical": 0, "expired": 0, "not_yet_valid": 0}
    errors = 0
    out = []
    for top in args.dirs:
        for root, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                    if b"-----BEGIN CERTIFICATE" in data:
                        certs = x509.load_pem_x509_certificates(data)
                    elif data[:1] == b"\x30":
                        certs = [x509.load_der_x509_certificate(data)]
                    else:
                        continue
                except (OSError, ValueError) as e:
                    errors += 1
                    print(f"{path}: {e}", file=sys.stderr)
                    continue
                for c in certs:
                    after = c.not_valid_after_utc
                    left = after - now
                    if now < c.not_valid_before_utc:
                        state = "not_yet_valid"
                    elif left.total_seconds() < 0:
                        state = "expired"
                    elif left <= critical:
                        state = "critical"
                    elif left <= warn:
                        state = "warn"
                    else:
                        state = "ok"
                    counts[state] += 1
                    out.append((left, state, after, c.subject.rfc4514_string(), path))
    out.sort(key=lambda r: (r[0], r[4]))
    w = sys.stdout.write
    for left, state, after, subject, path in out:
        w(f"{state:<13} {after:%Y-%m-%d}  {subject:<40}  {path}\n")
    total = sum(counts.values())
    w(f"{total} certificates: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; {errors} errors\n")
    if counts["critical"] or counts["expired"] or counts["not_yet_valid"] or errors:
        return 2
    return 1 if counts["warn"] else 0


if __name__ == "__main__":
    sys.exit(main())
