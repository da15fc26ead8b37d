#!/usr/bin/env bash
# Smoke run of the benchmark tools (BENCHMARKS.md): tools/loadgen holds 10k
# sockets in its own namespace and tools/benchdriver measures every method
# once against them, failing when a method errs or its count disagrees with
# the load (-check). Needs root, the agent, zabbix_get and bin/ from
# `make build`; takes well under a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/loadgen" ./tools/loadgen
CGO_ENABLED=0 go build -o "$tmp/benchdriver" ./tools/benchdriver
start=$(date +%s)
"$tmp/benchdriver" -n 10000 -quick -check -profiles=false -bin bin -loadgen "$tmp/loadgen" -out "$tmp/out"
echo "bench smoke: 10k sockets, every method once, counts agree ($(( $(date +%s) - start ))s)"
