#!/usr/bin/env bash
# End-to-end: the templates on real Zabbix servers 6.0 (bookworm packages,
# installed from scripts/deps.d/e2e.txt) and 7.0 (bookworm-backports,
# unpacked here with dpkg -x under $TCPSTATUS_CACHE/e2e-7.0, never
# installed: 6.0 and 7.0 packages conflict). The harness, scripts/e2e,
# runs a private PostgreSQL cluster, server, frontend and agents in a
# network namespace of its own (its loopback only) under a temporary
# directory and stops them all on exit; this script kills whatever process
# group it recorded if the harness dies.
#
#   TCPSTATUS_E2E_VERSIONS=6.0      only one version (default 6.0,7.0)
#   TCPSTATUS_E2E_KEEP=1            keep the work directory (logs, configs)
#   TCPSTATUS_E2E_HOST_NOISE=1      meanwhile churn CLOSE_WAIT sockets on the
#                                   host's loopback (the run must not see them)
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
[ -x bin/zabbix-agent2-plugin-tcpstatus ] && [ -x bin/tcpstatus-discovery ] || make build

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
go build -o "$work/e2e" ./scripts/e2e
flags=()
if [ "${TCPSTATUS_E2E_KEEP:-}" = 1 ]; then flags+=(-keep); fi
if [ "${TCPSTATUS_E2E_HOST_NOISE:-}" = 1 ]; then flags+=(-host-noise); fi
t0=$SECONDS
"$work/e2e" -versions "$versions" -work "$work" -cache "$cache" "${flags[@]}"
echo "80-e2e: done in $((SECONDS - t0))s"
