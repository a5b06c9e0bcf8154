# The commit of a `kpki push`, run on the node by tasks/install.yml once every file that
# changes is uploaded into a temporary file beside its target (SHA-256 checked; owner,
# group and mode set): backs up what it replaces or removes into @BACKUP_DIR@/<STAMP>/
# as `kpki push` does (the files, and the lists replaced, created and removed, so that
# `kpki push --rollback` restores it), renames every temporary file into place with the
# manifest last, removes the files an earlier push installed that the manifest no
# longer lists, and puts back what it did when a step fails. Keeps the last @KEEP@
# backups. Prints `OK <backup dir>` or `FAIL <reason>`.
#
# Usage: kpki-commit.sh STAMP [u TEMPORARY PATH]... [r PATH]...
set -u
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

kpki_commit() {
trap '' HUP PIPE
umask 077
TEMPS=''
fail() {
  for t in $TEMPS; do rm -f -- "$t"; done
  echo "FAIL $*"
  exit 1
}
# An absolute path of letters, digits and ._-/+@, without . or .. parts (kpki's own rule).
safe() {
  case $1 in /?*) ;; *) return 1 ;; esac
  case $1 in */ | *//* | */./* | */../* | */. | */.. | *[!A-Za-z0-9._/+@-]*) return 1 ;; esac
  return 0
}
mkdir_sys() {
  # Missing directories only, as system directories are (0755); never chmod one that exists.
  [ -d "$1" ] && return 0
  mkdir -- "$1" 2>/dev/null || [ -d "$1" ] || return 1
  chmod 0755 -- "$1"
}
M=@MANIFEST@
D=@BACKUP_DIR@
STAMP=${1:-}
case $STAMP in '' | *[!0-9TZ]*) fail "bad stamp '$STAMP'" ;; esac
shift
UP=''
MT=''
RM=''
while [ $# -gt 0 ]; do
  case $1 in
    u)
      [ $# -ge 3 ] || fail 'bad arguments'
      safe "$2" && safe "$3" || fail "bad path $3"
      case ${2##*/} in @TEMP_PREFIX@*) ;; *) fail "bad temporary file $2" ;; esac
      [ "${2%/*}" = "${3%/*}" ] || fail "$2 is not beside $3"
      TEMPS="$TEMPS $2"
      [ -f "$2" ] && [ ! -L "$2" ] || fail "$3: its uploaded temporary file is missing"
      if [ "$3" = "$M" ]; then MT=$2; else UP="$UP $2:$3"; fi
      shift 3
      ;;
    r)
      [ $# -ge 2 ] || fail 'bad arguments'
      safe "$2" || fail "bad path $2"
      RM="$RM $2"
      shift 2
      ;;
    *) fail "bad argument $1" ;;
  esac
done
# Back up what is replaced or removed.
mkdir_sys /var && mkdir_sys /var/lib && mkdir_sys /var/lib/kpki || fail 'cannot create /var/lib/kpki'
[ -d "$D" ] || { mkdir -- "$D" && chmod 0700 -- "$D"; } || fail "cannot create $D"
B=$D/$STAMP
B0=$B; n=0; while [ -e "$B" ]; do n=$((n + 1)); B="$B0-$n"; done
mkdir -- "$B" || fail "cannot create $B"
: > "$B/replaced"; : > "$B/created"; : > "$B/removed"
backup() {
  if [ -e "$1" ]; then
    mkdir -p -- "$B/files${1%/*}" && cp -p -- "$1" "$B/files$1" || fail "cannot back up $1"
    echo "$1" >> "$B/replaced"
  else
    echo "$1" >> "$B/created"
  fi
}
for x in $UP; do backup "${x#*:}"; done
[ -z "$MT" ] || backup "$M"
for p in $RM; do
  if [ -f "$p" ]; then
    mkdir -p -- "$B/files${p%/*}" && cp -p -- "$p" "$B/files$p" || fail "cannot back up $p"
    echo "$p" >> "$B/removed"
  fi
done
# Commit: renames, the manifest last; on a failure put back what was done.
DONE=''
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
for x in $UP; do
  mv -f -- "${x%%:*}" "${x#*:}" || undo "cannot rename into ${x#*:}"
  DONE="$DONE ${x#*:}"
done
for p in $RM; do
  if [ -e "$p" ]; then rm -f -- "$p" || undo "cannot remove $p"; DONE="$DONE $p"; fi
done
if [ -n "$MT" ]; then
  mv -f -- "$MT" "$M" || undo "cannot rename into $M"
  DONE="$DONE $M"
fi
echo 'installed' > "$B/state"
sync 2>/dev/null
ls -1 "$D" | grep -v '\.' | sort | head -n -@KEEP@ | while read -r old; do rm -rf -- "$D/$old"; done
ls -1 "$D" | grep '\.rolled-back$' | sort | head -n -@KEEP@ | while read -r old; do rm -rf -- "$D/$old"; done
echo "OK $B"
}
kpki_commit "$@"
