#!/usr/bin/env bash
# README's two commands (scripts/demo.sh, scripts/test.sh) run as written as
# root and as a user with sudo: scripts/as-root.sh, which both source before
# anything else, does nothing as root, re-runs the script through sudo
# otherwise (handing on TCPSTATUS_* and CI), and says so when sudo is
# missing. Checked with a copy of as-root.sh in a scratch directory, run as
# user nobody, with a recording stand-in for sudo. Needs root (setpriv).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "10-as-root: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root"

# Both commands source it first.
for s in scripts/demo.sh scripts/test.sh; do
  first=$(grep -Ev '^[[:space:]]*(#|$)' "$s" | sed -n 2p)
  [ "$first" = '. "$(dirname "$0")/as-root.sh" "$0" "$@"' ] || fail "$s does not source as-root.sh right after set -euo pipefail: $first"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -m 755 "$work/s" "$work/sudo" "$work/nosudo"
cp scripts/as-root.sh "$work/s/"
cat > "$work/s/cmd.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
. "$(dirname "$0")/as-root.sh" "$0" "$@"
echo "ran as uid $(id -u) with $*"
SH
printf '#!/bin/sh\nprintf "%%s\\n" "$@" > %s/sudo.args\n' "$work" > "$work/sudo/sudo"
chmod 755 "$work/s/cmd.sh" "$work/sudo/sudo"
chmod 777 "$work"
for t in id readlink grep dirname; do ln -s "$(command -v "$t")" "$work/nosudo/$t"; done
bash=$(command -v bash)
nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }

# As root: runs on.
out=$(bash "$work/s/cmd.sh" a b) || fail "as root: exit $?"
[ "$out" = "ran as uid 0 with a b" ] || fail "as root: $out"

# A user with sudo: through sudo, with the TCPSTATUS_* and CI variables only.
(cd "$work" && nobody env -i PATH="$work/sudo:/usr/bin:/bin" TCPSTATUS_DEMO_PORT=12345 CI=true OTHER=x \
  "$bash" s/cmd.sh "a b" c) 2> "$work/err" || fail "with sudo: exit $?: $(cat "$work/err")"
want=$(printf '%s\n' -- env CI=true TCPSTATUS_DEMO_PORT=12345 bash "$work/s/cmd.sh" "a b" c)
[ "$(cat "$work/sudo.args")" = "$want" ] || fail "sudo was called with: $(cat "$work/sudo.args")"
grep -q 'cmd.sh: not root: running it through sudo' "$work/err" || fail "no notice: $(cat "$work/err")"

# A user without sudo: says so, exits 1, runs nothing.
rc=0
nobody env -i PATH="$work/nosudo" "$bash" "$work/s/cmd.sh" > "$work/out" 2> "$work/err" || rc=$?
[ "$rc" = 1 ] || fail "without sudo: exit $rc"
[ ! -s "$work/out" ] || fail "without sudo, the script ran: $(cat "$work/out")"
grep -q 'needs root, and sudo is not installed' "$work/err" || fail "without sudo: $(cat "$work/err")"
echo "10-as-root: root runs on; a user is re-run through sudo with TCPSTATUS_*/CI; without sudo: told, exit 1"
