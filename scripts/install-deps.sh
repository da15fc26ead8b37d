#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian bookworm machine:
# Debian packages (every scripts/deps.d/*.txt, one name per line), Zabbix agent 2
# 6.0 and the classic agent from bookworm, a Go toolchain when none is found
# (bookworm-backports; the go command then fetches the version go.mod names
# from the Go module proxy), and the 7.0 agent 2 and zabbix_get unpacked
# (dpkg -x, not installed) under $TCPSTATUS_CACHE (default
# /var/cache/tcpstatus-test).
# Idempotent; needs root. Stops the Debian agent services: the demo and the
# tests run private agents on their own ports.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
export DEBIAN_FRONTEND=noninteractive
export PATH=$PATH:/usr/local/go/bin

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

# Go: any go from 1.21 on can run the toolchain go.mod asks for (GOTOOLCHAIN=auto
# in test.sh and demo.sh); bookworm itself has 1.19, backports 1.23.
go_minor() { go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }
if [ "$(go_minor || true)" = "" ] || [ "$(go_minor)" -lt 21 ]; then
  echo "install-deps: installing golang-go from bookworm-backports"
  apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-go >/dev/null
  hash -r
fi

# Both Debian agent packages start a service on :10050; stop and disable them
# (by service, never by process name: other agents on this machine are not ours).
for svc in zabbix-agent zabbix-agent2; do
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done

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
if [ -z "$v7" ]; then echo "install-deps: no zabbix-agent2 7.0 in bookworm-backports" >&2; exit 1; fi
unpack zabbix-server-pgsql "$v6" zabbix-get
unpack zabbix-agent2 "$v7" agent2-7.0
# The agents run as user zabbix and must reach the binaries.
chmod 755 "$cache"
echo "install-deps: agent 2 $(zabbix_agent2 -V | head -1 | awk '{print $NF}'), $("$cache/agent2-7.0/usr/sbin/zabbix_agent2" -V | head -1 | awk '{print $NF}'), classic agent $(zabbix_agentd -V | head -1 | awk '{print $NF}'); zabbix_get at $cache/zabbix-get/usr/bin/zabbix_get; $(go version)"
