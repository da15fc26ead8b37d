#!/usr/bin/env bash
# The test command (README "Run the tests"): installs what it needs, builds,
# runs the Go tests (unit, fixture, namespace and real-agent tests), then every
# scripts/test.d/*.sh in name order. Needs root on Debian bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
export TCPSTATUS_CACHE=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
# Real-agent tests fail instead of skipping when the agents are missing.
export TCPSTATUS_REQUIRE_AGENT=1

bash scripts/install-deps.sh
go mod download
make build

echo "== go test"
go test -count=1 ./... 2>&1 | tee /tmp/tcpstatus-gotest.log
echo "== go test -race"
go test -count=1 -race -short ./internal/... 2>&1 | tail -n 40

shopt -s nullglob
for t in scripts/test.d/*.sh; do
  echo "== $t"
  bash "$t"
done
echo "test.sh: all passed"
