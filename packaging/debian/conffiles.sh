# The .deb's configuration files (inlined into the maintainer scripts by
# scripts/build-deb.sh, which fills in the list from packaging/files.list).
#
# While the package is removed but not purged they are kept as
# <file>.removed: a plugins.d file naming a plugin binary that is gone would
# stop Zabbix agent 2 from starting.
TCPSTATUS_CONFFILES="@CONFFILES@"

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
