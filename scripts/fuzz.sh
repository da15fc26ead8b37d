#!/usr/bin/env bash
# Exploratory fuzzing: runs every fuzz target of the repository (every func
# Fuzz* that `go test -list` finds: the agent protocol frame decoder and
# config tree, the item key parser, the /proc and netlink parsers) for a
# bounded time each. Not part of the test command (scripts/test.sh), whose
# result must not depend on what a random search finds: there, `go test`
# runs each target's corpus (f.Add seeds, testdata/fuzz/<Target>/, inputs
# captured from real agents, past findings) as ordinary tests.
#
#   bash scripts/fuzz.sh                 60 s in all
#   TCPSTATUS_FUZZ_BUDGET=600 bash scripts/fuzz.sh
#   TCPSTATUS_FUZZTIME=10m bash scripts/fuzz.sh FuzzParseKey
#
#   TCPSTATUS_FUZZ_BUDGET  seconds of fuzzing in all (default 60), shared
#                          by the targets, at least 5 s each (building the
#                          instrumented test binaries comes on top)
#   TCPSTATUS_FUZZTIME     fixed -fuzztime per target (e.g. 10m)
#   arguments              only the targets whose names match one of these
#                          regular expressions
#
# A finding fails the run; go test saves the failing input under the
# package's testdata/fuzz/<Target>/ and prints how to replay it. Keep it
# there (commit it): from then on it is a seed every `go test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

list=$(mktemp)
trap 'rm -f "$list"' EXIT
# Packages with a fuzz target; `go test -list` prints the matching names of
# a package, then "ok <pkg>".
mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)
[ ${#dirs[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }
go test -count=1 -list '^Fuzz' "${dirs[@]}" | awk '
  /^Fuzz/ { names[++n] = $1; next }
  /^ok[ \t]/ { for (i = 1; i <= n; i++) print $2, names[i]; n = 0 }' > "$list"

if [ $# -gt 0 ]; then
  pattern=$(IFS='|'; echo "$*")
  awk -v re="$pattern" '$2 ~ re' "$list" > "$list.sel"
  mv "$list.sel" "$list"
fi

n=$(wc -l < "$list")
if [ "$n" -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi
if [ -n "${TCPSTATUS_FUZZTIME:-}" ]; then
  per=$TCPSTATUS_FUZZTIME
  gotimeout=0 # -fuzztime bounds the run
else
  budget=${TCPSTATUS_FUZZ_BUDGET:-60}
  s=$(( budget / n ))
  (( s < 5 )) && s=5
  per=${s}s
  gotimeout=$(( s + 300 ))s
fi
echo "fuzz.sh: $n targets, $per each"

failed=()
flaked=()
out=$(mktemp)
trap 'rm -f "$list" "$out"' EXIT
while read -r pkg name; do
  echo "-- $pkg $name"
  corpus=$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name
  before=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
  # -run '^$': no unit tests; the seed corpus is replayed before fuzzing
  # starts. -fuzzminimizetime: minimizing each new interesting input for
  # the default 60 s would eat a short run whole (large seeds stall the
  # workers); a failing input is still saved.
  if go test -count=1 -run '^$' -fuzz "^${name}\$" -fuzztime "$per" -fuzzminimizetime 2s -timeout "$gotimeout" "$pkg" < /dev/null > "$out" 2>&1; then
    tail -n 3 "$out"
    continue
  fi
  tail -n 25 "$out"
  after=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
  # Go 1.26's fuzzing coordinator can report its own -fuzztime deadline as
  # a failure ("context deadline exceeded", no failing input written;
  # golang/go#75804). A real finding always writes its input.
  if [ "$after" -eq "$before" ] && grep -qx '    context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
    echo "fuzz.sh: $name: the fuzzing coordinator's deadline race, no failing input; not a finding"
    flaked+=("$pkg $name")
    continue
  fi
  failed+=("$pkg $name")
done < "$list"

if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz.sh: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz.sh: all $n targets ran without a finding (${#flaked[@]} ended by the coordinator's deadline race)"
