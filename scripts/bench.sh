#!/usr/bin/env bash
# Reproduces BENCHMARKS.md in one command (root, Debian bookworm):
#   sudo bash scripts/bench.sh [sizes]      # default 10000,100000,1000000
# Installs what it needs (scripts/install-deps.sh, gnuplot-nox), builds the
# plugin and the tools into $BENCH_BIN (default /tmp/tcpstatus-bench-bin, so
# a running test's bin/ is left alone), runs the internal/sockets Go
# benchmarks, then tools/benchdriver (which builds each load with
# tools/loadgen in its own network namespace and removes it afterwards), and
# plots docs/bench/cost-vs-n.png. Results: docs/bench/results.{json,csv,md},
# docs/bench/gobench.txt. 1M sockets need ~3 GB of RAM and ~10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-10000,100000,1000000}
out=${BENCH_OUT:-docs/bench}
bin=${BENCH_BIN:-/tmp/tcpstatus-bench-bin}
export PATH=$PATH:/usr/local/go/bin
if [ "$(id -u)" != 0 ]; then echo "bench: run as root (network namespaces, nftables)" >&2; exit 1; fi

bash scripts/install-deps.sh
if ! command -v gnuplot >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi

mkdir -p "$bin" "$out"
version=$(cat VERSION 2>/dev/null || echo 0.0.0)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
ldflags="-s -w -X zabbix-agent2-plugin-tcpstatus/internal/version.Version=$version -X zabbix-agent2-plugin-tcpstatus/internal/version.Commit=$commit"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/zabbix-agent2-plugin-tcpstatus" ./plugin
CGO_ENABLED=0 go build -trimpath -o "$bin/loadgen" ./tools/loadgen
CGO_ENABLED=0 go build -trimpath -o "$bin/benchdriver" ./tools/benchdriver

echo "== go test -bench ./internal/sockets/ (allocs/op of the counting loop)"
# BenchmarkCount builds 10k and 100k real sockets in its own namespace.
go test -run '^$' -bench . -benchmem -benchtime 20x ./internal/sockets/ | tee "$out/gobench.txt"

echo "== benchdriver -n $sizes"
status=0
"$bin/benchdriver" -n "$sizes" -bin "$bin" -loadgen "$bin/loadgen" -out "$out" || status=$?
bash scripts/plot-bench.sh "$out/results.csv" "$out/cost-vs-n.png"
# Text renderings of the plugin-path CPU profiles taken at the largest size.
for f in "$out"/pprof/*.pprof; do
  [ -e "$f" ] || continue
  go tool pprof -top -nodecount=30 "$bin/benchdriver" "$f" > "${f%.pprof}.txt" 2>/dev/null || true
done
if [ "$status" != 0 ]; then echo "bench: the driver reported errors (see results.md)" >&2; exit "$status"; fi
echo "bench: done; tables in $out/results.md"
