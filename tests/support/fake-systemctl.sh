#!/bin/sh
# The fake systemctl of a kpki test node (tests/support/nodes.rs), installed at
# /usr/local/bin/systemctl inside the node's overlay (the host's /usr/local is untouched).
#
# Every call is recorded first, as one line "<unix time in ns> <args...>" appended to
# /var/log/fake-systemctl.log. Then:
#   daemon-reload, reset-failed      succeed
#   start U...                       starts U unless active
#   restart U...                     stops U, starts it (a new PID)
#   try-restart U...                 restarts U if active, else nothing
#   reload-or-restart U...           restarts U (starts it when inactive)
#   reload U...                      succeeds if U is active (same PID), else exit 1
#   stop U...                        stops U (SIGTERM, up to 10 s, then SIGKILL)
#   enable [--now] U...              marks U enabled (--now: and starts it)
#   disable [--now] U...             unmarks it (--now: and stops it)
#   is-active U... / status U...     "active" and exit 0, else "inactive"/"failed", exit 3
#   is-enabled U...                  "enabled" and exit 0, else "disabled", exit 1
# A trailing ".service" is dropped from unit names; options (-q, --no-block, ...) are
# ignored except -q/--quiet and --now.
#
# A fake unit "runs" as a placeholder process (sleep) whose PID is in
# /run/fake-systemctl/U.pid: active means that PID is alive (not a zombie).
#
# Failure on demand: while /etc/fake-systemctl/fail-U exists, start and restart of U (and
# the restart in try-restart, reload-or-restart, enable --now) exit 1 after recording, and
# leave U stopped and "failed", as systemd leaves a unit whose start failed. An empty file
# fails every time; a file holding a number N fails the next N times, then removes itself.
#
# Real mode: with /etc/fake-systemctl/real-etcd, etcd really runs: start/restart read the
# EnvironmentFile /etc/etcd/options.env (KEY=VALUE lines; blanks and #/; comments skipped;
# one pair of surrounding quotes dropped), stop the previous etcd by the PID in
# /run/fake-systemctl/etcd.pid (SIGTERM, up to 10 s, then SIGKILL) and start /usr/bin/etcd
# in its own session with only those variables (and PATH) in its environment, stdout and
# stderr appended to /var/log/etcd.log; the start fails (exit 1, log tail on stderr) when
# etcd is not alive any more 1 s later. etcd runs as root.

LOG=/var/log/fake-systemctl.log
CTL=/etc/fake-systemctl
RUN=/run/fake-systemctl
STATE=/var/lib/fake-systemctl
mkdir -p /var/log "$RUN" "$STATE"
printf '%s %s\n' "$(date +%s%N)" "$*" >>"$LOG"

quiet=0
now=0
cmd=
units=
for a in "$@"; do
  case $a in
    -q | --quiet) quiet=1 ;;
    --now) now=1 ;;
    -*) ;;
    *)
      if [ -z "$cmd" ]; then
        cmd=$a
      else
        units="$units ${a%.service}"
      fi
      ;;
  esac
done

say() {
  [ "$quiet" = 1 ] || echo "$@"
}

# alive PID: the process exists and is not a zombie.
alive() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
  st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

pid_of() {
  cat "$RUN/$1.pid" 2>/dev/null
}

is_active() {
  alive "$(pid_of "$1")"
}

# wait_gone PID TENTHS: true once PID is gone, waiting at most TENTHS tenths of a second.
wait_gone() {
  i=0
  while alive "$1"; do
    [ "$i" -lt "$2" ] || return 1
    sleep 0.1
    i=$((i + 1))
  done
  return 0
}

stop_unit() {
  pid=$(pid_of "$1")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    if ! wait_gone "$pid" 100; then
      kill -KILL "$pid" 2>/dev/null
      wait_gone "$pid" 30
    fi
  fi
  rm -f "$RUN/$1.pid"
}

# must_fail U: true when a start of U must fail now (consumes one of a counted failure).
must_fail() {
  f="$CTL/fail-$1"
  [ -e "$f" ] || return 1
  n=$(cat "$f" 2>/dev/null)
  case $n in
    '' | *[!0-9]*) return 0 ;;
    0)
      rm -f "$f"
      return 1
      ;;
    *)
      if [ "$n" -gt 1 ]; then
        echo $((n - 1)) >"$f"
      else
        rm -f "$f"
      fi
      return 0
      ;;
  esac
}

real_start() {
  u=$1
  case $u in
    etcd)
      envfile=/etc/etcd/options.env
      bin=/usr/bin/etcd
      ;;
    *)
      echo "fake-systemctl: no real mode for $u" >&2
      return 1
      ;;
  esac
  if [ ! -r "$envfile" ]; then
    echo "fake-systemctl: $u: EnvironmentFile $envfile is missing" >&2
    return 1
  fi
  set --
  # Debian's etcd 3.4 refuses to start on architectures other than amd64 without it (a
  # test harness allowance, not systemd's; the file may still set it).
  case $(uname -m) in
    x86_64) ;;
    aarch64) set -- ETCD_UNSUPPORTED_ARCH=arm64 ;;
    *) set -- "ETCD_UNSUPPORTED_ARCH=$(uname -m)" ;;
  esac
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#"${line%%[![:space:]]*}"}
    case $line in '' | '#'* | ';'*) continue ;; esac
    key=${line%%=*}
    val=${line#*=}
    case $key in
      '' | *[!A-Za-z0-9_]* | [0-9]*)
        echo "fake-systemctl: $envfile: ignoring line: $line" >&2
        continue
        ;;
    esac
    [ "$key" != "$line" ] || continue
    case $val in
      \"*\")
        val=${val#\"}
        val=${val%\"}
        ;;
      \'*\')
        val=${val#\'}
        val=${val%\'}
        ;;
    esac
    set -- "$@" "$key=$val"
  done <"$envfile"
  mkdir -p /var/log
  setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" "$bin" \
    </dev/null >>"/var/log/$u.log" 2>&1 &
  pid=$!
  echo "$pid" >"$RUN/$u.pid"
  i=0
  while [ "$i" -lt 10 ]; do
    sleep 0.1
    i=$((i + 1))
    if ! alive "$pid"; then
      rm -f "$RUN/$u.pid"
      echo "Job for $u.service failed: $bin exited at start; /var/log/$u.log ends:" >&2
      tail -n 20 "/var/log/$u.log" >&2
      return 1
    fi
  done
  return 0
}

# run_start U RESTART: start U (RESTART=1: stop it first).
run_start() {
  if must_fail "$1"; then
    stop_unit "$1"
    touch "$RUN/$1.failed"
    echo "Job for $1.service failed (fake-systemctl: $CTL/fail-$1)." >&2
    return 1
  fi
  if [ "$2" = 1 ]; then
    stop_unit "$1"
  elif is_active "$1"; then
    return 0
  fi
  rm -f "$RUN/$1.failed"
  if [ -e "$CTL/real-$1" ]; then
    real_start "$1" || {
      touch "$RUN/$1.failed"
      return 1
    }
  else
    setsid sleep infinity </dev/null >/dev/null 2>&1 &
    echo $! >"$RUN/$1.pid"
  fi
}

need_units() {
  if [ -z "$units" ]; then
    echo "fake-systemctl: $cmd: too few arguments" >&2
    exit 1
  fi
}

rc=0
case $cmd in
  daemon-reload | reset-failed) ;;
  start)
    need_units
    for u in $units; do run_start "$u" 0 || rc=1; done
    ;;
  restart | reload-or-restart)
    need_units
    for u in $units; do run_start "$u" 1 || rc=1; done
    ;;
  try-restart)
    need_units
    for u in $units; do
      if is_active "$u"; then run_start "$u" 1 || rc=1; fi
    done
    ;;
  reload)
    need_units
    for u in $units; do
      if ! is_active "$u"; then
        echo "Failed to reload $u.service: not active." >&2
        rc=1
      fi
    done
    ;;
  stop)
    need_units
    for u in $units; do
      stop_unit "$u"
      rm -f "$RUN/$u.failed"
    done
    ;;
  enable)
    need_units
    for u in $units; do
      touch "$STATE/$u.enabled"
      if [ "$now" = 1 ]; then run_start "$u" 0 || rc=1; fi
    done
    ;;
  disable)
    need_units
    for u in $units; do
      rm -f "$STATE/$u.enabled"
      if [ "$now" = 1 ]; then stop_unit "$u"; fi
    done
    ;;
  is-active | status)
    need_units
    for u in $units; do
      if is_active "$u"; then
        say active
      elif [ -e "$RUN/$u.failed" ]; then
        say failed
        rc=3
      else
        say inactive
        rc=3
      fi
    done
    ;;
  is-enabled)
    need_units
    for u in $units; do
      if [ -e "$STATE/$u.enabled" ]; then
        say enabled
      else
        say disabled
        rc=1
      fi
    done
    ;;
  *)
    echo "fake-systemctl: unknown command: $cmd" >&2
    rc=1
    ;;
esac
exit $rc
