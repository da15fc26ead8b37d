#!/usr/bin/env bash
# Debian package test, with Debian's zabbix-agent2 6.0 managed by its own
# init script and restarted only by the package's maintainer scripts:
#
#   - lintian accepts the .deb (errors are fatal, except the placeholder
#     maintainer address);
#   - install next to the agent: the postinst restarts it, it answers plugin
#     keys through zabbix_get; the classic agent answers the UserParameters;
#   - remove, reinstall, purge: the agent runs after each, without the plugin
#     once it is removed, and nothing is left behind;
#   - upgrade from the 0.1.0 package (built here from its commit with its own
#     build-deb.sh): a local change to the plugins.d conffile is kept and the
#     agent answers;
#   - 10 cycles of install, upgrade and remove (30 restarts by the maintainer
#     scripts): the agent is running and answering after every step;
#   - the systemd branch of the maintainer scripts, with systemctl and
#     deb-systemd-invoke replaced by recording stand-ins (no systemd runs
#     here): daemon-reload for the drop-in, try-restart of both agents.
#
# Everything runs in a private mount namespace (unshare -m), where
#   /etc/zabbix/zabbix_agent2.conf  is a copy listening on 127.0.0.1:$port
#                                   with private pid, log and sockets,
#   /run/zabbix                     is a private directory,
#   /usr/sbin/policy-rc.d           allows only zabbix-agent2/zabbix-agent,
#   /run/systemd                    is empty when the host runs systemd,
# so the init script and invoke-rc.d, as the maintainer scripts call them,
# start and restart an agent that is this test's own; the host's agent, its
# configuration and port 10050 are not touched. Needs root.
# TCPSTATUS_DEB_CYCLES sets the number of cycles (default 10).
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/../.."
if [ "${TCPSTATUS_60DEB_NS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "60-deb: FAIL: needs root" >&2; exit 1; }
  exec unshare --mount --propagation private env TCPSTATUS_60DEB_NS=1 bash "$self" "$@"
fi

cache=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
zget=$cache/zabbix-get/usr/bin/zabbix_get
pkg=zabbix-agent2-plugin-tcpstatus
. packaging/previous-release.sh
old_commit=$prev_commit
cycles=${TCPSTATUS_DEB_CYCLES:-10}
version=$(bash packaging/version.sh)
plugin=/usr/libexec/zabbix-agent2-plugins/zabbix-agent2-plugin-tcpstatus
conf=/etc/zabbix/zabbix_agent2.d/plugins.d/tcpstatus.conf
upconf=/etc/zabbix/zabbix_agentd.conf.d/userparameter_tcpstatus.conf
dropin=/lib/systemd/system/zabbix-agent2.service.d/zabbix-agent2-plugin-tcpstatus.conf
man=/usr/share/man/man1/tcpstatus-discovery.1.gz
apt=(apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y -qq)
export DEBIAN_FRONTEND=noninteractive
export PATH=$PATH:/usr/local/go/bin

fail() { echo "60-deb: FAIL: $*" >&2; exit 1; }
step() { echo "-- $*"; }

[ -x "$zget" ] || fail "zabbix_get missing at $zget (run scripts/install-deps.sh)"
[ -x /usr/sbin/zabbix_agent2 ] && [ -x /etc/init.d/zabbix-agent2 ] || fail "Debian's zabbix-agent2 is not installed"
command -v invoke-rc.d >/dev/null || fail "invoke-rc.d missing"
installed() { dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; }
installed && fail "$pkg is already installed on this machine; remove it first"

work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  invoke-rc.d zabbix-agent2 stop >/dev/null 2>&1 || true
  if [ -s "$work/run/zabbix_agent2.pid" ]; then kill "$(cat "$work/run/zabbix_agent2.pid")" 2>/dev/null || true; fi
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -qv 'not-installed'; then
    "${apt[@]}" purge "$pkg" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- the private world of this test -----------------------------------------
port=
for p in 10650 10651 10652 10653 10654; do
  if [ -z "$(ss -Hltn "sport = :$p")" ]; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port among 10650-10654"
install -d -o zabbix -g zabbix "$work/run" "$work/log"
sed -E -e '/^(ListenPort|ListenIP|PidFile|LogFile|LogType|ControlSocket|PluginSocket|ServerActive)=/d' \
  -e 's#^Include=\./#Include=/etc/zabbix/#' /etc/zabbix/zabbix_agent2.conf > "$work/zabbix_agent2.conf"
printf '%s\n' "ListenIP=127.0.0.1" "ListenPort=$port" "PidFile=$work/run/agent.pid" "LogType=file" \
  "LogFile=$work/log/agent.log" "ControlSocket=$work/run/agent.sock" "PluginSocket=$work/run/agent.plugin.sock" \
  >> "$work/zabbix_agent2.conf"
chmod 644 "$work/zabbix_agent2.conf"
mount --bind "$work/zabbix_agent2.conf" /etc/zabbix/zabbix_agent2.conf
mount --bind "$work/run" /run/zabbix 2>/dev/null || { mkdir -p /run/zabbix && mount --bind "$work/run" /run/zabbix; }
if [ -e /usr/sbin/policy-rc.d ]; then
  # A container's policy-rc.d denies every start; here only the agents may.
  printf '#!/bin/sh\ncase "$1" in zabbix-agent2|zabbix-agent) exit 0 ;; esac\nexit 101\n' > "$work/policy-rc.d"
  chmod 755 "$work/policy-rc.d"
  mount --bind "$work/policy-rc.d" /usr/sbin/policy-rc.d
fi
if [ -d /run/systemd/system ]; then
  # The init script path, as on a host without systemd.
  mount -t tmpfs tmpfs /run/systemd
fi
echo "agent 2: Debian's init script, /etc/zabbix/zabbix_agent2.conf = $work/zabbix_agent2.conf (127.0.0.1:$port)"

get() { "$zget" -s 127.0.0.1 -p "$port" -t 15 -k "$1" 2>&1; }
agent_pid() { cat /run/zabbix/zabbix_agent2.pid 2>/dev/null || true; }
# agent_up: the init script says it runs and it answers agent.ping (within 20 s).
agent_up() {
  local i
  for i in $(seq 100); do
    if invoke-rc.d zabbix-agent2 status >/dev/null 2>&1 && [ "$(get agent.ping)" = 1 ]; then return 0; fi
    sleep 0.2
  done
  tail -n 20 "$work/log/agent.log" >&2 || true
  return 1
}
# expect_plugin: the agent is up and the plugin answers tcp.status[listen].
expect_plugin() {
  agent_up || fail "$1: the agent is not running"
  local v
  v=$(get 'tcp.status[listen]')
  [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || fail "$1: tcp.status[listen] = '$v'"
}
# expect_no_plugin: the agent is up and does not know the plugin's keys.
expect_no_plugin() {
  agent_up || fail "$1: the agent is not running"
  local v
  v=$(get 'tcp.status[listen]')
  grep -q '^ZBX_NOTSUPPORTED' <<<"$v" || fail "$1: tcp.status[listen] answered without the package: $v"
}
# pkg_op LABEL COMMAND...: runs a package operation, keeping its output;
# counts the maintainer scripts' restarts of an agent that died at start.
rechecks=0
pkg_op() {
  local label=$1
  shift
  if ! "$@" > "$work/op.log" 2>&1; then cat "$work/op.log" >&2; fail "$label: $* failed"; fi
  if grep -q 'exited after its restart' "$work/op.log"; then
    rechecks=$((rechecks + $(grep -c 'exited after its restart' "$work/op.log")))
    grep 'zabbix-agent2-plugin-tcpstatus:' "$work/op.log"
  fi
  if grep -q 'did not stay up' "$work/op.log"; then cat "$work/op.log" >&2; fail "$label: the agent did not stay up"; fi
}

# --- build -------------------------------------------------------------------
step "build $version"
make -s build >/dev/null
deb=$(OUT="$work/new" bash scripts/build-deb.sh)
contents=$(dpkg-deb -c "$deb" | awk '{print substr($6, 2)}')
for f in "$plugin" /usr/bin/tcpstatus-discovery "$conf" "$upconf" "$dropin" "$man" \
  /usr/share/$pkg/templates/tcpstatus_agent2.xml /usr/share/$pkg/templates/tcpstatus_agent.xml \
  /usr/share/doc/$pkg/copyright /usr/share/doc/$pkg/changelog.gz; do
  grep -qx "$f" <<<"$contents" || fail "$f not in $deb"
done
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "package version is not $version"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | sort > "$work/conffiles"
printf '%s\n' "$conf" "$upconf" | sort | cmp -s - "$work/conffiles" || fail "conffiles: $(cat "$work/conffiles")"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$(dirname "$man")/$(basename "$man")" | gunzip | grep -q '^\.SH NAME' || fail "man page"
copyright=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/$pkg/copyright)
grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' <<<"$copyright" &&
  grep -q '^License: Apache-2.0$' <<<"$copyright" || fail "copyright is not DEP-5 with License: Apache-2.0"
echo "$deb: $(stat -c %s "$deb") bytes, $(wc -l <<<"$contents") entries"
# A second build of the same tree with a higher version, for the cycles.
deb_b=$(OUT="$work/new-b" PKG_VERSION="$version+b1" bash scripts/build-deb.sh)

step "build 0.1.0 from $old_commit (its own build-deb.sh)"
git cat-file -e "$old_commit^{commit}" 2>/dev/null || fail "commit $old_commit (0.1.0) is not in this clone"
mkdir "$work/v0.1.0"
git archive "$old_commit" | tar -x -C "$work/v0.1.0"
(cd "$work/v0.1.0" && make -s build >/dev/null && OUT="$work/old" bash scripts/build-deb.sh >/dev/null) || fail "building 0.1.0"
deb_old=$(ls "$work"/old/${pkg}_0.1.0_*.deb)
echo "$deb_old"

if command -v lintian >/dev/null; then
  step "lintian"
  # The maintainer address is a placeholder (DEB_MAINTAINER sets it).
  lintian --fail-on error,warning --suppress-tags bogus-mail-host,bogus-mail-host-in-debian-changelog "$deb" ||
    fail "lintian"
fi

# --- install, use, remove, purge -----------------------------------------------
step "agent 2 without the package"
invoke-rc.d zabbix-agent2 start >/dev/null 2>&1 || true
expect_no_plugin "before install"

step "install"
pid0=$(agent_pid)
pkg_op install "${apt[@]}" install "$deb"
expect_plugin "after install"
[ "$(agent_pid)" != "$pid0" ] || fail "the postinst did not restart the agent"
for f in "$plugin" /usr/bin/tcpstatus-discovery "$conf" "$upconf" "$dropin"; do
  [ -f "$f" ] || fail "$f not installed"
done
grep -qx "Plugins.TCPStatus.System.Path=$plugin" "$conf" || fail "$conf does not point at $plugin"
grep -q "^UserParameter=.*,/usr/bin/tcpstatus-discovery " "$upconf" || fail "$upconf does not call /usr/bin/tcpstatus-discovery"
out=$("$plugin" -V) && [ "$(awk 'NR == 1 {print $2}' <<<"$out")" = "$(tr -d ' \n' < VERSION)" ] || fail "$plugin -V: $out"
v=$(get 'tcp.status.get')
grep -q '"total":' <<<"$v" || fail "tcp.status.get = '$v'"
v=$(get 'tcp.port.discovery')
grep -q "\"{#PORT}\":\"$port\"" <<<"$v" || fail "tcp.port.discovery does not list the agent's port $port: $v"
v=$(get 'tcp.status[bogus]')
grep -q '^ZBX_NOTSUPPORTED: Invalid first parameter' <<<"$v" || fail "tcp.status[bogus] = '$v'"
pgrep -u zabbix -f "^$plugin " >/dev/null || fail "no plugin process of user zabbix"
echo "tcp.status[listen] = $(get 'tcp.status[listen]') (agent pid $(agent_pid))"

step "classic agent UserParameters ($upconf)"
out=$(setpriv --reuid=zabbix --regid=zabbix --init-groups -- /usr/sbin/zabbix_agentd -c /etc/zabbix/zabbix_agentd.conf -t 'tcp.status[listen]' 2>&1) || true
grep -Eq '^tcp\.status\[listen\] +\[t\|[0-9]+\]' <<<"$out" || fail "zabbix_agentd -t tcp.status[listen]: $out"

step "remove"
pkg_op remove "${apt[@]}" remove "$pkg"
for f in "$plugin" /usr/bin/tcpstatus-discovery "$conf" "$upconf" "$dropin"; do
  [ -e "$f" ] && fail "$f still there after remove"
done
[ -f "$conf.removed" ] || fail "$conf.removed missing: configuration lost on remove"
expect_no_plugin "after remove"

step "reinstall over the removed package"
pkg_op reinstall "${apt[@]}" install "$deb"
[ -f "$conf" ] && [ ! -e "$conf.removed" ] || fail "configuration not restored by the reinstall"
expect_plugin "after reinstall"

step "purge"
pkg_op purge "${apt[@]}" purge "$pkg"
for f in "$plugin" /usr/bin/tcpstatus-discovery "$conf" "$conf.removed" "$upconf" "$upconf.removed" "$dropin" \
  /usr/share/$pkg /usr/share/doc/$pkg; do
  [ -e "$f" ] && fail "$f still there after purge"
done
installed && fail "package still installed after purge"
expect_no_plugin "after purge"

# --- upgrade from 0.1.0 ---------------------------------------------------------
step "upgrade from 0.1.0 with a changed conffile"
pkg_op "install 0.1.0" "${apt[@]}" install "$deb_old"
if ! agent_up; then
  # 0.1.0's postinst restarts without watching: the 6.0 start panic leaves
  # the agent down (what this version fixes). Start it for the test.
  echo "the agent did not survive 0.1.0's restart; starting it"
  invoke-rc.d zabbix-agent2 start >/dev/null 2>&1 || true
fi
expect_plugin "0.1.0 installed"
[ "$(dpkg-query -W -f='${Version}' "$pkg")" = 0.1.0 ] || fail "0.1.0 not installed"
printf '%s\n' "# local change, kept over upgrades" "Plugins.TCPStatus.CacheTTL=2" >> "$conf"
pid0=$(agent_pid)
pkg_op "upgrade 0.1.0 -> $version" "${apt[@]}" install "$deb"
[ "$(dpkg-query -W -f='${Version}' "$pkg")" = "$version" ] || fail "not upgraded to $version"
grep -qx "Plugins.TCPStatus.CacheTTL=2" "$conf" && grep -qx "# local change, kept over upgrades" "$conf" ||
  fail "the local change to $conf was lost by the upgrade"
# dpkg's conffile rule: where the shipped file changed since 0.1.0, the
# administrator's version stays in place and the new one is put beside it as
# .dpkg-dist (a prompt without --force-confold); where it did not change,
# nothing is put beside it.
dpkg-deb --fsys-tarfile "$deb_old" | tar -xO ".$conf" > "$work/conf-0.1.0"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$conf" > "$work/conf-new"
if cmp -s "$work/conf-0.1.0" "$work/conf-new"; then
  [ -e "$conf.dpkg-dist" ] && fail "$conf.dpkg-dist written although the shipped conffile did not change"
else
  cmp -s "$conf.dpkg-dist" "$work/conf-new" ||
    fail "$conf.dpkg-dist missing or not the new shipped conffile (the shipped conffile changed since 0.1.0)"
fi
expect_plugin "after the upgrade from 0.1.0"
[ "$(agent_pid)" != "$pid0" ] || fail "the upgrade did not restart the agent"
pkg_op purge "${apt[@]}" purge "$pkg"
expect_no_plugin "after purge"

# --- cycles ---------------------------------------------------------------------
step "$cycles cycles: install $version, upgrade to $version+b1, remove"
start=$SECONDS
for i in $(seq "$cycles"); do
  pkg_op "cycle $i install" dpkg -i "$deb"
  expect_plugin "cycle $i, after install"
  pkg_op "cycle $i upgrade" dpkg -i "$deb_b"
  expect_plugin "cycle $i, after upgrade"
  pkg_op "cycle $i remove" dpkg -r "$pkg"
  expect_no_plugin "cycle $i, after remove"
done
echo "$cycles cycles ($((cycles * 3)) restarts by the maintainer scripts) in $((SECONDS - start)) s;" \
  "agent restarted again after dying at start: $rechecks time(s)"
pkg_op purge dpkg -P "$pkg"
expect_no_plugin "after the cycles"
invoke-rc.d zabbix-agent2 stop >/dev/null 2>&1 || true

# --- the systemd branch of the maintainer scripts ---------------------------------
step "maintainer scripts on a systemd host (recording stand-ins for systemctl and deb-systemd-invoke)"
mountpoint -q /run/systemd || mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/system "$work/ctl"
ctl_log=$work/ctl/calls
for c in systemctl deb-systemd-invoke; do
  printf '#!/bin/sh\necho "%s $*" >> %s\n' "$c" "$ctl_log" > "$work/ctl/$c"
  chmod 755 "$work/ctl/$c"
  mount --bind "$work/ctl/$c" "$(command -v "$c")"
done
mkdir "$work/scripts"
dpkg-deb -e "$deb" "$work/scripts"
: > "$ctl_log"
"$work/scripts/postinst" configure 0.1.0
printf '%s\n' "systemctl --system daemon-reload" "deb-systemd-invoke try-restart zabbix-agent2.service" \
  "deb-systemd-invoke try-restart zabbix-agent.service" | cmp -s - "$ctl_log" ||
  fail "postinst configure on systemd called: $(cat "$ctl_log")"
: > "$ctl_log"
"$work/scripts/postrm" remove
rm -f "$conf.removed" "$upconf.removed"
printf '%s\n' "systemctl --system daemon-reload" "deb-systemd-invoke try-restart zabbix-agent2.service" \
  "deb-systemd-invoke try-restart zabbix-agent.service" | cmp -s - "$ctl_log" ||
  fail "postrm remove on systemd called: $(cat "$ctl_log")"
echo "postinst configure and postrm remove: daemon-reload, then try-restart of zabbix-agent2 and zabbix-agent"
if command -v systemd-analyze >/dev/null; then
  # The drop-in parses as a unit file section for zabbix-agent2.service.
  mkdir -p "$work/unit/zabbix-agent2.service.d"
  cp /lib/systemd/system/zabbix-agent2.service "$work/unit/"
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$dropin" > "$work/unit/zabbix-agent2.service.d/tcpstatus.conf"
  out=$(SYSTEMD_UNIT_PATH="$work/unit:" systemd-analyze verify --man=no "$work/unit/zabbix-agent2.service" 2>&1) || true
  grep -Ei 'tcpstatus\.conf|unknown|invalid' <<<"$out" && fail "systemd-analyze verify: $out"
  grep -qx 'Restart=on-failure' "$work/unit/zabbix-agent2.service.d/tcpstatus.conf" || fail "drop-in has no Restart=on-failure"
fi

echo "60-deb: $deb installs beside agent 2, answers, upgrades from 0.1.0 keeping a changed conffile," \
  "survives $cycles install/upgrade/remove cycles, removes and purges cleanly"
