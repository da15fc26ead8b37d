#!/usr/bin/env bash
# Templates: the committed XML, READMEs and uuids.lock are what
# templates/gen writes, and the linter finds nothing (well-formed 6.0 XML,
# v4 uuids unique and unchanged against uuids.lock, expressions on their own
# template and existing keys, macros used <=> defined with descriptions,
# event names agreeing with names, references between objects).
set -euo pipefail
cd "$(dirname "$0")/../.."
go run ./templates/gen -check
go run ./scripts/templatelint templates/*.xml
