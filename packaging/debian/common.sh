# Shared by the maintainer scripts (inlined into each by scripts/build-deb.sh).

# The package's configuration files. While the package is removed but not
# purged they are kept as <file>.removed: a plugins.d file naming a plugin
# binary that is gone would stop Zabbix agent 2 from starting.
TCPSTATUS_CONFFILES="/etc/zabbix/zabbix_agent2.d/plugins.d/tcpstatus.conf /etc/zabbix/zabbix_agentd.conf.d/userparameter_tcpstatus.conf"

# tcpstatus_restart_agents restarts the Zabbix agents that are running, so
# they load (or stop loading) the plugin and the UserParameters. Agents that
# are stopped stay stopped.
tcpstatus_restart_agents() {
	for svc in zabbix-agent2 zabbix-agent; do
		if [ -d /run/systemd/system ] && command -v deb-systemd-invoke >/dev/null 2>&1; then
			# try-restart: only a running service is restarted.
			deb-systemd-invoke try-restart "$svc.service" >/dev/null 2>&1 || true
		elif [ -x "/etc/init.d/$svc" ] && command -v invoke-rc.d >/dev/null 2>&1; then
			if invoke-rc.d "$svc" status >/dev/null 2>&1; then
				invoke-rc.d "$svc" restart || true
			fi
		fi
	done
}

# tcpstatus_disable_conffiles moves the configuration files aside.
tcpstatus_disable_conffiles() {
	for f in $TCPSTATUS_CONFFILES; do
		if [ -e "$f" ]; then
			mv -f "$f" "$f.removed"
		fi
	done
}

# tcpstatus_restore_conffiles puts files moved aside by a removal back, so
# dpkg finds them where it left them.
tcpstatus_restore_conffiles() {
	for f in $TCPSTATUS_CONFFILES; do
		if [ -e "$f.removed" ] && [ ! -e "$f" ]; then
			mv -f "$f.removed" "$f"
		fi
	done
}
