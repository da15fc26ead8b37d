#!/usr/bin/env bash
# The demo (README "Try it"). On a fresh Debian bookworm machine, as root or
# as a user with sudo (it runs itself again through sudo, scripts/as-root.sh):
# installs the dependencies (scripts/install-deps.sh), builds the plugin
# (make build), starts a private Zabbix agent 2 with it as user zabbix on
# 127.0.0.1:$TCPSTATUS_DEMO_PORT (default 10099), opens a few sockets on
# loopback port $TCPSTATUS_DEMO_SOCKETS_PORT (default 10098), prints the live
# value of every key the plugin offers, then stops everything it started.
# The system's agents and their configuration are not touched. Safe to run
# again, also after an interrupted run.
#
#   TCPSTATUS_DEMO_AGENT  agent 2 binary (default /usr/sbin/zabbix_agent2, 6.0;
#                         $TCPSTATUS_CACHE/agent2-7.0/usr/sbin/zabbix_agent2 is 7.0)
set -euo pipefail
# Not root: run again through sudo (or say that sudo is missing).
. "$(dirname "$0")/as-root.sh" "$0" "$@"
cd "$(dirname "$0")/.."
port=${TCPSTATUS_DEMO_PORT:-10099}
sport=${TCPSTATUS_DEMO_SOCKETS_PORT:-10098}
cache=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
agent=${TCPSTATUS_DEMO_AGENT:-/usr/sbin/zabbix_agent2}
zget=$cache/zabbix-get/usr/bin/zabbix_get
state=/run/tcpstatus-demo
export PATH=$PATH:/usr/local/go/bin
export GOTOOLCHAIN=${TCPSTATUS_GOTOOLCHAIN:-auto}

echo "== installing dependencies"
bash scripts/install-deps.sh
echo "== building"
make build
go build -o bin/demosockets ./tools/demosockets

# stop_previous PIDFILE PATTERN: stops the process an earlier run left
# behind, if that pid still runs a command line containing PATTERN.
stop_previous() {
  local f=$1 pat=$2 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$pat"; then
    echo "demo: stopping process $pid left by an earlier run"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
stop_previous "$state/zabbix_agent2.pid" "$state/zabbix_agent2.conf"
stop_previous "$state/demosockets.pid" "demosockets"

for p in "$port" "$sport"; do
  if [ -n "$(ss -Htln "sport = :$p")" ]; then
    echo "demo: port $p is in use on this machine; set TCPSTATUS_DEMO_PORT / TCPSTATUS_DEMO_SOCKETS_PORT" >&2
    exit 1
  fi
done

rm -rf "$state"
install -d -m 0755 -o zabbix -g zabbix "$state"
# A copy the zabbix user can run whatever the checkout's permissions.
install -m 0755 bin/zabbix-agent2-plugin-tcpstatus "$state/"
conf=$state/zabbix_agent2.conf
cat > "$conf" <<CONF
# private demo agent (scripts/demo.sh)
LogType=file
LogFile=$state/zabbix_agent2.log
LogFileSize=0
DebugLevel=3
PidFile=$state/zabbix_agent2.pid
ControlSocket=$state/agent.sock
PluginSocket=$state/plugin.sock
ListenIP=127.0.0.1
ListenPort=$port
Server=127.0.0.1
Hostname=tcpstatus-demo
Timeout=3
Plugins.TCPStatus.System.Path=$state/zabbix-agent2-plugin-tcpstatus
CONF
chmod 0644 "$conf"

agent_pid= sockets_pid=
cleanup() {
  local rc=$?
  if [ -n "$sockets_pid" ] && kill "$sockets_pid" 2>/dev/null; then
    wait "$sockets_pid" 2>/dev/null || true
  fi
  if [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
    echo "== agent stopped"
  fi
  if [ $rc -ne 0 ] && [ -f "$state/zabbix_agent2.log" ]; then
    echo "-- end of the agent log:" >&2
    tail -n 30 "$state/zabbix_agent2.log" >&2
  fi
  rm -rf "$state"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_zabbix() { setpriv --reuid=zabbix --regid=zabbix --init-groups -- "$@"; }
get() { "$zget" -s 127.0.0.1 -p "$port" -t 10 -k "$1" || true; }

# start_agent: starts the agent as user zabbix and waits for agent.ping.
# Fails when it exits; returns 2 for agent 2 6.0's startup race (a panic
# when the plugin's registration process ends late), which is worth a retry.
start_agent() {
  # setpriv execs the agent: $! is the agent's pid.
  setpriv --reuid=zabbix --regid=zabbix --init-groups -- "$agent" -f -c "$conf" > "$state/console.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 150); do
    [ "$(get agent.ping 2>/dev/null)" = 1 ] && return 0
    if ! kill -0 "$agent_pid" 2>/dev/null; then
      wait "$agent_pid" 2>/dev/null || true
      agent_pid=
      grep -q 'failed to obtain PID of dead child process' "$state/console.log" && return 2
      cat "$state/console.log" >&2
      echo "demo: the agent exited" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "demo: the agent does not answer" >&2
  return 1
}

echo "== starting $("$agent" -V | head -1) on 127.0.0.1:$port as user zabbix"
for attempt in 1 2 3; do
  rc=0
  start_agent || rc=$?
  [ $rc -eq 2 ] || break
  echo "demo: the agent hit its startup race (SIGCHLD handled twice); starting it again"
done
[ $rc -eq 0 ] || exit 1

echo "== opening demo sockets on loopback port $sport"
bin/demosockets -port "$sport" -duration 5m > "$state/demosockets.out" 2>&1 &
sockets_pid=$!
echo "$sockets_pid" > "$state/demosockets.pid"
for _ in $(seq 50); do grep -q '^ready' "$state/demosockets.out" && break; sleep 0.1; done
grep '^ready' "$state/demosockets.out" || { cat "$state/demosockets.out" >&2; exit 1; }

show() { printf '%-40s %s\n' "$1" "$(get "$1" | cut -c1-400)"; }

echo "== the plugin"
"$state/zabbix-agent2-plugin-tcpstatus" --version 2>&1 | head -3 || true

echo "== every TCPStatus key the agent lists (zabbix_agent2 -R metrics), without parameters"
mapfile -t keys < <(as_zabbix "$agent" -c "$conf" -R metrics |
  awk '/^\[TCPStatus\]/ {f = 1; next} /^\[/ {f = 0} f && /^[A-Za-z0-9_-]+\.[A-Za-z0-9._-]+: / {sub(/:.*/, ""); print}')
if [ ${#keys[@]} -eq 0 ]; then echo "demo: the agent lists no TCPStatus keys" >&2; exit 1; fi
for k in "${keys[@]}"; do show "$k"; done

echo "== with parameters"
has() { printf '%s\n' "${keys[@]}" | grep -qxF "$1"; }
for k in "tcp.status[estab]" "tcp.status[timewait]" "tcp.status[listen]" "tcp.status[closewait]" \
  "tcp.status[estab,$sport]" "tcp.status[estab,$sport,6]" "tcp.status[listen,,6]" "tcp.status[TIME-WAIT,$sport]" \
  "tcp.status.get[$sport]" "tcp.status.get[$sport,4]" "tcp.port.get[$sport]" "tcp.remote.top[3,,$sport]"; do
  if has "${k%%\[*}"; then show "$k"; fi
done
if has disk.get; then
  dev=$(get disk.discovery | grep -o '"{#DEVNAME}":"[^"]*"' | head -1 | cut -d'"' -f4)
  if [ -n "$dev" ]; then show "disk.get[$dev]"; fi
fi

echo "== the same from ss, for comparison"
for s in established time-wait listening close-wait fin-wait-2; do
  printf '%-40s %s\n' "ss -tanH state $s sport = :$sport" "$(ss -tanH state "$s" "sport = :$sport" | wc -l)"
done

echo "== a bad key"
show "tcp.status[bogus]"
show "tcp.status[estab,70000]"
echo "== the agent is still alive: agent.ping = $(get agent.ping)"
