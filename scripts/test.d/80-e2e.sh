#!/usr/bin/env bash
# End-to-end: the templates on real Zabbix servers 6.0 (bookworm packages,
# installed from scripts/deps.d/e2e.txt) and 7.0 (bookworm-backports,
# unpacked here with dpkg -x under $TCPSTATUS_CACHE/e2e-7.0, never
# installed: 6.0 and 7.0 packages conflict). The harness, test/e2e,
# runs a private PostgreSQL cluster, server, frontend and agents in a
# network namespace of its own (its loopback only) under a temporary
# directory and stops them all on exit; this script kills whatever process
# group it recorded if the harness dies.
#
#   TCPSTATUS_E2E_VERSIONS=6.0      only one version (default 6.0,7.0)
#   TCPSTATUS_E2E_KEEP=1            keep the work directory (logs, configs)
#   TCPSTATUS_E2E_HOST_NOISE=1      meanwhile churn CLOSE_WAIT sockets on the
#                                   host's loopback (the run must not see them)
#   TCPSTATUS_E2E_UPGRADE_FROM=REV  the release whose templates the hosts start
#                                   on before the new ones are imported over
#                                   them (default the commit of v0.1.0, from
#                                   packaging/previous-release.sh; "none" skips it)
#   TCPSTATUS_E2E_SCREENSHOTS=DIR  take the dashboard screenshots there
#                                   (headless chromium; default none: not
#                                   taken; docs/screenshots regenerates the
#                                   pictures in the docs)
#   TCPSTATUS_E2E_TEMPLATES=DIR, TCPSTATUS_E2E_BIN=DIR,
#   TCPSTATUS_E2E_USERPARAMS=FILE   test these instead of templates/, bin/
#                                   (make build) and the UserParameter file
#   TCPSTATUS_REQUIRE_AGENT=1       fail instead of skipping when not root
#                                   or something is missing (CI sets it)
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
versions=${TCPSTATUS_E2E_VERSIONS:-6.0,7.0}

if [ "$(id -u)" != 0 ]; then
  if [ "${TCPSTATUS_REQUIRE_AGENT:-}" = 1 ]; then echo "80-e2e: FAIL: needs root" >&2; exit 1; fi
  echo "80-e2e: SKIP: needs root"; exit 0
fi

# Zabbix 7.0 server, frontend and agents from bookworm-backports, unpacked.
unpack7() {
  local dir=$cache/e2e-7.0 v
  [ -e "$dir/.done" ] && return 0
  v=$(apt-cache madison zabbix-server-pgsql | awk '$3 ~ /^1:7\.0/ {print $3; exit}')
  if [ -z "$v" ]; then echo "80-e2e: no Zabbix 7.0 in the apt sources (bookworm-backports; scripts/install-deps.sh adds it)" >&2; return 1; fi
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && apt-get download -qq zabbix-server-pgsql="$v" zabbix-frontend-php="$v" zabbix-agent="$v" zabbix-agent2="$v" 2>/dev/null \
    && for f in ./*.deb; do dpkg -x "$f" .; done && rm -f ./*.deb && touch .done)
  echo "80-e2e: unpacked Zabbix $v under $dir"
}
if [[ ,$versions, == *,7.0,* ]]; then unpack7; fi
bin=${TCPSTATUS_E2E_BIN:-bin}
templates=${TCPSTATUS_E2E_TEMPLATES:-templates}
userparams=${TCPSTATUS_E2E_USERPARAMS:-conf/userparameter_tcpstatus.conf}
if [ -z "${TCPSTATUS_E2E_BIN:-}" ]; then
  [ -x bin/zabbix-agent2-plugin-tcpstatus ] && [ -x bin/tcpstatus-discovery ] || make build
fi

work=$(mktemp -d /tmp/tcpstatus-e2e.XXXXXX)
cleanup() {
  local rc=$?
  if [ -f "$work/pgids" ]; then
    while read -r pg; do
      kill -0 -- "-$pg" 2>/dev/null && kill -KILL -- "-$pg" 2>/dev/null || true
    done < "$work/pgids"
  fi
  if [ "${TCPSTATUS_E2E_KEEP:-}" = 1 ]; then echo "80-e2e: kept $work"; else rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT INT TERM
go build -o "$work/e2e" ./test/e2e
flags=(-shared -bin "$bin" -templates "$templates" -userparams "$userparams")
if [ "${TCPSTATUS_E2E_KEEP:-}" = 1 ]; then flags+=(-keep); fi
# The previous release's templates, from git, for the upgrade check.
. packaging/previous-release.sh
prev=${TCPSTATUS_E2E_UPGRADE_FROM:-$prev_commit}
if [ "$prev" != none ]; then
  if git rev-parse -q --verify "$prev^{commit}" >/dev/null 2>&1; then
    mkdir -p "$work/upgrade-from"
    # Templates that release did not have (the active variants) are
    # imported new.
    for f in "$templates"/*.xml; do
      git cat-file -e "$prev:templates/$(basename "$f")" 2>/dev/null || continue
      git show "$prev:templates/$(basename "$f")" > "$work/upgrade-from/$(basename "$f")"
    done
    flags+=(-upgrade-from "$work/upgrade-from")
  elif [ "${TCPSTATUS_REQUIRE_AGENT:-}" = 1 ]; then
    echo "80-e2e: FAIL: no $prev in git for the upgrade check (fetch tags, or TCPSTATUS_E2E_UPGRADE_FROM=none)" >&2; exit 1
  else
    echo "80-e2e: no $prev in git: upgrade check skipped"
  fi
fi
if [ "${TCPSTATUS_E2E_HOST_NOISE:-}" = 1 ]; then flags+=(-host-noise); fi
# Dashboard screenshots only when asked for (a directory): they are for the
# docs, and the test command's result must not depend on a browser.
shots=${TCPSTATUS_E2E_SCREENSHOTS:-none}
if [ "$shots" != none ]; then
  if command -v chromium >/dev/null; then
    mkdir -p "$shots" && flags+=(-screenshots "$(cd "$shots" && pwd)")
  elif [ "${TCPSTATUS_REQUIRE_AGENT:-}" = 1 ]; then
    echo "80-e2e: FAIL: no chromium for the dashboard screenshots (scripts/install-deps.sh)" >&2; exit 1
  else
    echo "80-e2e: no chromium: dashboard screenshots skipped"
  fi
fi
t0=$SECONDS
"$work/e2e" -versions "$versions" -work "$work" -cache "$cache" "${flags[@]}"
echo "80-e2e: done in $((SECONDS - t0))s"
