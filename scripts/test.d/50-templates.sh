#!/usr/bin/env bash
# Templates: the committed XML, READMEs and uuids.lock are what
# templates/gen writes, and the linter finds nothing (well-formed 6.0 XML,
# v4 uuids unique and unchanged against uuids.lock, expressions on their own
# template and existing keys, macros used <=> defined with descriptions,
# event names agreeing with names, references between objects, no polled
# item prototype, masters and their history, error handlers on JSONPath
# filters by LLD macro) and that no name of ours is a name of Zabbix's own
# Linux templates, as exported from the real 6.0 and 7.0 servers into
# testdata/official-templates/ (linking both to one host must work).
set -euo pipefail
cd "$(dirname "$0")/../.."
go run ./templates/gen -check
go run ./scripts/templatelint -official testdata/official-templates templates/*.xml
