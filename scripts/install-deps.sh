#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian bookworm machine:
# Debian packages (every scripts/deps.d/*.txt, one name per line), Zabbix agent 2
# 6.0 from bookworm, and the 7.0 agent and zabbix_get unpacked (dpkg -x, not
# installed) under $TCPSTATUS_CACHE (default /var/cache/tcpstatus-test).
# Idempotent; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then echo "install-deps: run as root" >&2; exit 1; fi

if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/tcpstatus-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  rm -f "$cache/.apt-updated"
fi
mkdir -p "$cache"
if [ ! -e "$cache/.apt-updated" ]; then
  apt-get update -qq
  touch "$cache/.apt-updated"
fi

mapfile -t pkgs < <(cat scripts/deps.d/*.txt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The 6.0 package starts its own agent on :10050; the tests run private agents.
systemctl disable --now zabbix-agent2 >/dev/null 2>&1 || true
pkill -x zabbix_agent2 2>/dev/null || true

# zabbix_get ships inside the server package in bookworm; agent 2 7.0 comes
# from bookworm-backports. Both unpacked, never installed.
unpack() { # name version dir
  local dir=$cache/$3
  [ -e "$dir/.done" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && apt-get download -qq "$1=$2" 2>/dev/null && dpkg -x ./*.deb . && rm -f ./*.deb && touch .done)
}
v6=$(dpkg-query -W -f='${Version}' zabbix-agent2)
v7=$(apt-cache madison zabbix-agent2 | awk '$3 ~ /^1:7\.0/ {print $3; exit}')
unpack zabbix-server-pgsql "$v6" zabbix-get
unpack zabbix-agent2 "$v7" agent2-7.0
echo "install-deps: agent 2 $(zabbix_agent2 -V | head -1 | awk '{print $NF}'), $("$cache/agent2-7.0/usr/sbin/zabbix_agent2" -V | head -1 | awk '{print $NF}'); zabbix_get at $cache/zabbix-get/usr/bin/zabbix_get"
