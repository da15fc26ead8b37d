#!/usr/bin/env bash
# Templates: the committed XML, READMEs and uuids.lock are what
# templates/gen writes, and the linter finds nothing (well-formed 6.0 XML,
# v4 uuids unique and unchanged against uuids.lock, expressions on their own
# template and existing keys, macros used <=> defined with descriptions,
# event names agreeing with names, references between objects, no polled
# item prototype, masters and their history, error handlers on JSONPath
# filters by LLD macro and none where 6.0 refuses one; alerting: recovery expressions or stated reasons,
# counter changes only over time windows, manual close only where it
# sticks, operational data, event names with values) and that no name of
# ours is a name of Zabbix's own Linux templates, as exported from the real
# 6.0 and 7.0 servers into testdata/official-templates/ (linking both to one
# host must work).
#
# Then, where Zabbix frontends are installed (scripts/install-deps.sh puts
# 6.0 under /usr/share/zabbix and 7.0 under $TCPSTATUS_CACHE/e2e-7.0), each
# file goes through the frontend's own import validation and conversion and
# every trigger expression through its expression parser and validator,
# without a database (templates/lint/frontend/check.php).
set -euo pipefail
cd "$(dirname "$0")/../.."
go run ./templates/gen -check
go run ./templates/lint -official testdata/official-templates templates/*.xml

cache=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
for root in /usr/share/zabbix "$cache/e2e-7.0/usr/share/zabbix"; do
	if ! command -v php >/dev/null || [ ! -f "$root/include/defines.inc.php" ]; then
		echo "SKIP: no Zabbix frontend with php at $root (scripts/install-deps.sh installs them)"
		continue
	fi
	php templates/lint/frontend/check.php "$root" templates/*.xml
done
