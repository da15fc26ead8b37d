#!/usr/bin/env bash
# Smoke run of the benchmark tools (BENCHMARKS.md): tools/loadgen holds 10k
# sockets in its own namespace and tools/benchdriver measures every method
# once against them, the template intervals included (the shipped
# template's polled items, and the 0.1.0 template's with one port, both run
# by this plugin), failing when a method errs or its count disagrees with
# the load (-check). Needs root, the agent, zabbix_get and bin/ from
# `make build`; takes about a minute and a half.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/loadgen" ./tools/loadgen
CGO_ENABLED=0 go build -o "$tmp/benchdriver" ./tools/benchdriver
tmpl_new=templates/tcpstatus_agent2.xml
grep -q '<key>tcp.sockets.get</key>' "$tmpl_new" || tmpl_new=contract
tmpl_old=()
if git show e441e99:templates/tcpstatus_agent2.xml > "$tmp/template-0.1.0.xml" 2>/dev/null; then
  tmpl_old=(-template-old "$tmp/template-0.1.0.xml" -template-ports 1)
fi
start=$(date +%s)
"$tmp/benchdriver" -n 10000 -quick -check -profiles=false -bin bin -loadgen "$tmp/loadgen" -out "$tmp/out" \
  -listeners 4 -template-new "$tmpl_new" "${tmpl_old[@]}"
grep -q ',tmpl-new,' "$tmp/out/results.csv" && grep -q ',tmpl-new-proc,' "$tmp/out/results.csv"
echo "bench smoke: 10k sockets, every method and the template intervals once, counts agree ($(( $(date +%s) - start ))s)"
