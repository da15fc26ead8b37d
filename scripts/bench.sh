#!/usr/bin/env bash
# Reproduces BENCHMARKS.md in one command (root, Debian bookworm):
#   sudo bash scripts/bench.sh [sizes]      # default 10000,100000,1000000
# BENCH_ONLY=ref,core,template runs only those groups of the driver (and
# skips the Go benchmarks); BENCH_TEMPLATE_NEW names other template exports
# (comma-separated, the templates of one host) for the "after" interval;
# BENCH_TEMPLATE_REPS how many "after" intervals are measured, each paired
# with a reference measured right after it (default 11); BENCH_DESTINATIONS
# makes the load's IPv4 clients connect to that many loopback addresses
# (distinct destinations; default 127.0.0.1 only); BENCH_OUT another output
# directory.
# Installs what it needs (scripts/install-deps.sh, gnuplot-nox), builds the
# plugin and the tools into $BENCH_BIN (default /tmp/tcpstatus-bench-bin, so
# a running test's bin/ is left alone), runs the internal/sockets Go
# benchmarks, then tools/benchdriver (which builds each load with
# tools/loadgen in its own network namespace and removes it afterwards), and
# plots docs/bench/cost-vs-n.png. It also measures one interval of the
# shipped templates as a server polls them (templates/tcpstatus_agent2.xml
# and templates/tcpstatus_disk_agent2.xml)
# against the 0.1.0 template run by the 0.1.0 plugin (both built from git,
# commit e441e99 = v0.1.0) for 1, 30 and 100 polled ports, plots
# docs/bench/interval-vs-ports.png and counts both templates' agent
# requests and stored values per minute (docs/bench/template-cost.md).
# Results: docs/bench/results.{json,csv,md}, docs/bench/gobench.txt. 1M
# sockets need ~3 GB of RAM and ~40 minutes.
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

# The "before" of the template interval: the 0.1.0 template and plugin.
base=e441e99
old_src=$(mktemp -d)
trap 'rm -rf "$old_src"' EXIT
git archive "$base" | tar -x -C "$old_src"
mkdir -p "$bin/old"
(cd "$old_src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/old/zabbix-agent2-plugin-tcpstatus" ./plugin)
cp "$old_src/templates/tcpstatus_agent2.xml" "$bin/template-0.1.0.xml"
tmpl_new=${BENCH_TEMPLATE_NEW:-templates/tcpstatus_agent2.xml,templates/tcpstatus_disk_agent2.xml}
if ! grep -q '<key>tcp.sockets.get</key>' "${tmpl_new%%,*}"; then
  echo "bench: $tmpl_new does not poll tcp.sockets.get yet; the new interval polls the bulk keys' contract" >&2
  tmpl_new=contract
else
  "$bin/benchdriver" templates -old "$bin/template-0.1.0.xml" -new "$tmpl_new" -ports 1,30,100 -disks 4 | tee "$out/template-cost.md"
fi

if [ -z "${BENCH_ONLY:-}" ]; then
  echo "== go test -bench ./internal/sockets/ (allocs/op of the counting loop)"
  # BenchmarkCount builds 10k and 100k real sockets in its own namespace.
  go test -run '^$' -bench . -benchmem -benchtime 20x ./internal/sockets/ | tee "$out/gobench.txt"
fi

echo "== benchdriver -n $sizes"
status=0
"$bin/benchdriver" -n "$sizes" -bin "$bin" -loadgen "$bin/loadgen" -out "$out" \
  -template-old "$bin/template-0.1.0.xml" -template-new "$tmpl_new" -bin-old "$bin/old" -template-ports 1,30,100 \
  -template-reps "${BENCH_TEMPLATE_REPS:-11}" -destinations "${BENCH_DESTINATIONS:-0}" \
  ${BENCH_ONLY:+-only "$BENCH_ONLY"} || status=$?
bash scripts/plot-bench.sh "$out/results.csv" "$out/cost-vs-n.png" "$out/interval-vs-ports.png"
# Text renderings of the plugin-path CPU profiles taken at the largest size.
for f in "$out"/pprof/*.pprof; do
  [ -e "$f" ] || continue
  go tool pprof -top -nodecount=30 "$bin/benchdriver" "$f" > "${f%.pprof}.txt" 2>/dev/null || true
done
if [ "$status" != 0 ]; then echo "bench: the driver reported errors (see results.md)" >&2; exit "$status"; fi
echo "bench: done; tables in $out/results.md"
