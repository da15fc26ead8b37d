# Restarting the Zabbix agents from the package scripts. Shared by the .deb's
# maintainer scripts and the .rpm's scriptlets (inlined into each by
# scripts/build-deb.sh and scripts/build-rpm.sh: they must stand alone).
#
# Only agents that are running are restarted; stopped ones stay stopped.
#
# Zabbix agent 2 6.0 can exit at start with a Go panic when it loads a
# loadable plugin (1 to 3 starts in 20 under load). With systemd, the
# package's drop-in for zabbix-agent2.service (Restart=on-failure) restarts
# it, at every start and not only this one. Without systemd nothing
# supervises the agent, so the agent is watched here for a few seconds after
# the restart and started again if it died, up to 3 times.

# tcpstatus_restart_agents restarts the running Zabbix agents, so that they
# load (or stop loading) the plugin and the UserParameters.
tcpstatus_restart_agents() {
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		# Read the drop-in this package installs or removes.
		systemctl --system daemon-reload >/dev/null || true
	fi
	for tcpstatus_svc in zabbix-agent2 zabbix-agent; do
		if [ -d /run/systemd/system ]; then
			if command -v deb-systemd-invoke >/dev/null 2>&1; then
				deb-systemd-invoke try-restart "$tcpstatus_svc.service" >/dev/null 2>&1 || true
			elif command -v systemctl >/dev/null 2>&1; then
				systemctl try-restart "$tcpstatus_svc.service" >/dev/null 2>&1 || true
			fi
		elif [ -x "/etc/init.d/$tcpstatus_svc" ]; then
			if tcpstatus_rc "$tcpstatus_svc" status >/dev/null 2>&1; then
				tcpstatus_rc "$tcpstatus_svc" restart >/dev/null 2>&1 || true
				tcpstatus_keep_running "$tcpstatus_svc"
			fi
		fi
	done
}

# tcpstatus_rc SERVICE ACTION runs an init script action, through
# invoke-rc.d where there is one (it honours policy-rc.d), else service(8).
tcpstatus_rc() {
	if command -v invoke-rc.d >/dev/null 2>&1; then
		invoke-rc.d "$1" "$2"
	elif command -v service >/dev/null 2>&1; then
		service "$1" "$2"
	else
		"/etc/init.d/$1" "$2"
	fi
}

# tcpstatus_keep_running SERVICE: the service must still run 3 s after its
# restart; if it died, it is started again, up to 3 times.
tcpstatus_keep_running() {
	tcpstatus_try=0
	while :; do
		tcpstatus_up=1
		for tcpstatus_i in 1 2 3 4 5 6; do
			sleep 0.5
			if ! tcpstatus_rc "$1" status >/dev/null 2>&1; then
				tcpstatus_up=0
				break
			fi
		done
		[ "$tcpstatus_up" = 1 ] && return 0
		tcpstatus_try=$((tcpstatus_try + 1))
		if [ "$tcpstatus_try" -gt 3 ]; then
			echo "zabbix-agent2-plugin-tcpstatus: $1 did not stay up after 3 starts; see its log" >&2
			return 0
		fi
		echo "zabbix-agent2-plugin-tcpstatus: $1 exited after its restart; starting it again ($tcpstatus_try/3)" >&2
		tcpstatus_rc "$1" start >/dev/null 2>&1 || true
	done
}
