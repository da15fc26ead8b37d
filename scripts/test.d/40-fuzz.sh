#!/usr/bin/env bash
# Runs every fuzz target of the repository (every func Fuzz* that
# `go test -list` finds) for a bounded time each, so CI fuzzes the frame
# decoder, the key parser and the /proc and netlink parsers on every run.
#
#   TCPSTATUS_FUZZ_BUDGET  seconds of fuzzing in all (default 60), shared
#                          by the targets, 5 to 15 s each (building the
#                          instrumented test binaries comes on top)
#   TCPSTATUS_FUZZTIME     fixed -fuzztime per target (e.g. 10m for a long run)
#
# A finding fails the run; go test saves the failing input under the
# package's testdata/fuzz/<Target>/ and prints how to replay it.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Targets CI must always have, as package:regexp pairs: the agent protocol
# frame decoder, the socket-table parsers (/proc line, netlink message) and
# the item key parser.
required=(
  "internal/agentproto:^FuzzReadFrame$"
  "internal/sockets:^Fuzz(ParseTable|.*Proc)"
  "internal/sockets:^Fuzz.*(Netlink|Diag)"
  ":^Fuzz.*Key"
)

list=$(mktemp)
trap 'rm -f "$list"' EXIT
# Packages with a fuzz target; `go test -list` prints the matching names of
# a package, then "ok <pkg>".
mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)
[ ${#dirs[@]} -gt 0 ] || { echo "40-fuzz: no fuzz targets found" >&2; exit 1; }
go test -count=1 -list '^Fuzz' "${dirs[@]}" | awk '
  /^Fuzz/ { names[++n] = $1; next }
  /^ok[ \t]/ { for (i = 1; i <= n; i++) print $2, names[i]; n = 0 }' > "$list"

mod=$(go list -m)
missing=0
for r in "${required[@]}"; do
  pkg=${r%%:*} re=${r#*:}
  if ! awk -v p="$mod${pkg:+/$pkg}" -v any="${pkg:-1}" '(any == 1 || $1 == p) {print $2}' "$list" | grep -Eq "$re"; then
    echo "40-fuzz: no fuzz target matching $re in ${pkg:-any package}" >&2
    missing=1
  fi
done

n=$(wc -l < "$list")
if [ "$n" -eq 0 ]; then
  echo "40-fuzz: no fuzz targets found" >&2
  exit 1
fi
if [ -n "${TCPSTATUS_FUZZTIME:-}" ]; then
  per=$TCPSTATUS_FUZZTIME
else
  budget=${TCPSTATUS_FUZZ_BUDGET:-60}
  s=$(( budget / n ))
  (( s < 5 )) && s=5
  (( s > 15 )) && s=15
  per=${s}s
fi
echo "40-fuzz: $n targets, $per each"

failed=()
flaked=()
out=$(mktemp)
trap 'rm -f "$list" "$out"' EXIT
while read -r pkg name; do
  echo "-- $pkg $name"
  corpus=$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name
  before=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
  # -run '^$': the unit tests already ran; only the seed corpus is replayed
  # before fuzzing starts. -fuzzminimizetime: minimizing each new
  # interesting input for the default 60 s would eat a short run whole
  # (large seeds stall the workers); a failing input is still saved.
  if go test -count=1 -run '^$' -fuzz "^${name}\$" -fuzztime "$per" -fuzzminimizetime 2s -timeout 5m "$pkg" < /dev/null > "$out" 2>&1; then
    tail -n 3 "$out"
    continue
  fi
  tail -n 25 "$out"
  after=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
  # Go 1.26's fuzzing coordinator can report its own -fuzztime deadline as
  # a failure ("context deadline exceeded", no failing input written;
  # golang/go#75804). A real finding always writes its input.
  if [ "$after" -eq "$before" ] && grep -qx '    context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
    echo "40-fuzz: $name: the fuzzing coordinator's deadline race, no failing input; not a finding"
    flaked+=("$pkg $name")
    continue
  fi
  failed+=("$pkg $name")
done < "$list"

if [ ${#failed[@]} -gt 0 ]; then
  printf '40-fuzz: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
if [ "$missing" -ne 0 ]; then
  echo "40-fuzz: required fuzz targets missing (see above)" >&2
  exit 1
fi
echo "40-fuzz: all $n targets ran without a finding (${#flaked[@]} ended by the coordinator's deadline race)"
