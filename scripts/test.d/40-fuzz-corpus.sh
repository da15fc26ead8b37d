#!/usr/bin/env bash
# Deterministic check of the fuzz targets (exploratory fuzzing is
# scripts/fuzz.sh, not part of the test command): the targets the project
# relies on exist, and every func Fuzz* replays a corpus of its own (f.Add
# seeds, testdata/fuzz/<Target>/: inputs captured from real agents and every
# past finding) as an ordinary test, without a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Targets that must exist, as package:regexp pairs: the agent protocol
# frame decoder, the socket-table parsers (/proc line, netlink message) and
# the item key parser.
required=(
  "internal/agentproto:^FuzzReadFrame$"
  "internal/sockets:^Fuzz(ParseTable|.*Proc)"
  "internal/sockets:^Fuzz.*(Netlink|Diag)"
  "discovery:^FuzzParseKey$"
)

mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)
[ ${#dirs[@]} -gt 0 ] || { echo "40-fuzz-corpus: no fuzz targets found" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# -v names each corpus input a target replays: "=== RUN   FuzzX/seed#0",
# "=== RUN   FuzzX/<file under testdata/fuzz/FuzzX>".
if ! go test -count=1 -run '^Fuzz' -v "${dirs[@]}" > "$out" 2>&1; then
  grep -E '^(--- FAIL|FAIL|panic)|_test\.go:[0-9]+:' "$out" | tail -n 40 >&2
  echo "40-fuzz-corpus: a fuzz target's corpus fails" >&2
  exit 1
fi
# "<package> <target> <inputs>" for every target.
summary=$(awk '
  /^=== RUN   Fuzz[^\/]*$/ { t = $3; n[t] += 0; order[++k] = t; next }
  /^=== RUN   Fuzz.*\// { split($3, p, "/"); n[p[1]]++; next }
  /^ok[ \t]/ { for (i = 1; i <= k; i++) print $2, order[i], n[order[i]]; k = 0; delete n }' "$out")
echo "$summary" | awk '{ printf "  %-55s %-20s %d inputs\n", $1, $2, $3 }'

mod=$(go list -m)
failed=0
while read -r pkg name count; do
  if [ "$count" -eq 0 ]; then
    echo "40-fuzz-corpus: $pkg $name has no corpus (add f.Add seeds or testdata/fuzz/$name)" >&2
    failed=1
  fi
done <<< "$summary"
for r in "${required[@]}"; do
  pkg=${r%%:*} re=${r#*:}
  if ! echo "$summary" | awk -v p="$mod/$pkg" '$1 == p { print $2 }' | grep -Eq "$re"; then
    echo "40-fuzz-corpus: no fuzz target matching $re in $pkg" >&2
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 1
echo "40-fuzz-corpus: $(echo "$summary" | wc -l) targets, every corpus passes"
