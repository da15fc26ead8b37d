#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run runs exactly this). On a
# fresh Debian bookworm machine, as root or as a user with sudo (it runs itself
# again through sudo, scripts/as-root.sh): installs what the tests need
# (scripts/install-deps.sh), downloads the Go modules, builds, vets, checks
# gofmt, runs the Go tests (unit, fixture, namespace and real-agent tests,
# which fail instead of skipping here), the race detector over the short
# tests, then every scripts/test.d/*.sh in name order.
#
#   TCPSTATUS_CACHE        where install-deps.sh puts the 7.0 agent and zabbix_get
#   TCPSTATUS_GO_TIMEOUT   go test -timeout of each go test run (default 12m)
set -euo pipefail
# Not root: run again through sudo (or say that sudo is missing).
. "$(dirname "$0")/as-root.sh" "$0" "$@"
cd "$(dirname "$0")/.."
export TCPSTATUS_CACHE=${TCPSTATUS_CACHE:-/var/cache/tcpstatus-test}
# Real-agent and namespace tests fail instead of skipping when something is
# missing.
export TCPSTATUS_REQUIRE_AGENT=1
# A Go from /usr/local/go (golang.org tarball) or Debian's; any go from 1.21
# on fetches the toolchain go.mod names when it is older.
export PATH=$PATH:/usr/local/go/bin
export GOTOOLCHAIN=${TCPSTATUS_GOTOOLCHAIN:-auto}
timeout=${TCPSTATUS_GO_TIMEOUT:-12m}
logs=$(mktemp -d /tmp/tcpstatus-test.XXXXXX)
start=$SECONDS

step() { echo "== [$((SECONDS - start))s] $*"; }

step "install-deps"
bash scripts/install-deps.sh
step "go mod download"
go mod download
step "make build"
make build

step "go vet"
go vet ./...
step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt-formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi

step "go test (log: $logs/go-test.log)"
if ! go test -count=1 -timeout "$timeout" ./... > "$logs/go-test.log" 2>&1; then
  grep -E '^(---|===|FAIL|ok|panic)|_test\.go:[0-9]+:' "$logs/go-test.log" | grep -v -- '--- PASS' | tail -n 150 >&2
  echo "test.sh: go test failed; full output in $logs/go-test.log" >&2
  exit 1
fi
grep -E '^(ok|\?|FAIL)' "$logs/go-test.log"
if grep -q -- '--- SKIP' "$logs/go-test.log"; then
  echo "-- skipped:"
  grep -- '--- SKIP' "$logs/go-test.log" | sort | uniq -c | sort -rn | head -n 40
fi

step "go test -race -short (log: $logs/go-test-race.log)"
if ! go test -count=1 -race -short -timeout "$timeout" ./... > "$logs/go-test-race.log" 2>&1; then
  grep -E '^(---|FAIL|ok|panic|WARNING: DATA RACE)|_test\.go:[0-9]+:' "$logs/go-test-race.log" | grep -v -- '--- PASS' | tail -n 150 >&2
  echo "test.sh: go test -race failed; full output in $logs/go-test-race.log" >&2
  exit 1
fi
grep -E '^(ok|FAIL)' "$logs/go-test-race.log"

shopt -s nullglob
for t in scripts/test.d/*.sh; do
  step "$t"
  bash "$t"
done
step "test.sh: all passed"
