#!/usr/bin/env bash
# Plots CPU per collection interval against the number of sockets (log-log)
# from the benchmark driver's CSV:
#   bash scripts/plot-bench.sh [docs/bench/results.csv] [docs/bench/cost-vs-n.png]
# Needs gnuplot (Debian gnuplot-nox; scripts/bench.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-docs/bench/results.csv}
png=${2:-docs/bench/cost-vs-n.png}
command -v gnuplot >/dev/null || { echo "plot-bench: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# method|line style|legend, in drawing order
series=(
  "netstat-x11|1|netstat -an | awk, 11 items"
  "builtin-x11|2|agent 2 net.tcp.socket.count, 11 items"
  "ss-x11|3|ss -tan | awk, 11 items"
  "ss-x1|4|ss -tan | awk, 1 run"
  "procfs|5|prometheus/procfs NetTCP+NetTCP6"
  "plugin-proc|6|plugin, Source=proc (status.get + port.get)"
  "plugin|7|plugin in agent 2, CacheTTL=0 (status.get + port.get)"
  "plugin-cached|8|plugin in agent 2, CacheTTL=1, keys back to back"
  "plugin-discovery-first|14|plugin tcp.port.discovery, first call"
  "plugin-discovery|15|plugin tcp.port.discovery, later calls"
  "nl-ref|10|reference: one netlink dump"
  "plugin-state|11|plugin tcp.status[time_wait]"
  "nl-ref-state|12|reference: dump with state mask"
  "nl-bare|13|kernel floor: walk matching nothing"
)
plot=""
for s in "${series[@]}"; do
  m=${s%%|*}
  rest=${s#*|}
  ls=${rest%%|*}
  t=${rest#*|}
  # n, cpu_ms, cpu_min_ms, cpu_max_ms of this method, sorted by n
  awk -F, -v m="$m" 'NR > 1 && $2 == m {print $1, $5, $6, $7}' "$csv" | sort -n > "$tmp/$m.dat"
  [ -s "$tmp/$m.dat" ] || continue
  plot+="${plot:+, }'$tmp/$m.dat' using 1:2:3:4 with yerrorlines ls $ls title '${t//\'/}' noenhanced"
done
[ -n "$plot" ] || { echo "plot-bench: no data in $csv" >&2; exit 1; }

gnuplot <<GP
set terminal pngcairo size 1100,850 font "Sans,10"
set output '$png'
set title "CPU time (user+sys) per collection interval vs number of TCP sockets\n(median, bars: min-max; 2 vCPUs, log-log)"
set xlabel "TCP sockets in the namespace"
set ylabel "CPU ms per interval"
set logscale xy
set format x "10^{%L}"
set format y "10^{%L}"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key below left maxrows 5 width -2 spacing 1.1
set xrange [5000:2000000]
set style line 1 lc rgb "#8c564b" lw 2 pt 7
set style line 2 lc rgb "#d62728" lw 2 pt 5
set style line 3 lc rgb "#ff7f0e" lw 2 pt 9
set style line 4 lc rgb "#ffbb78" lw 2 pt 9 dt 2
set style line 5 lc rgb "#9467bd" lw 2 pt 11
set style line 6 lc rgb "#bcbd22" lw 2 pt 13
set style line 7 lc rgb "#1f77b4" lw 3 pt 7
set style line 8 lc rgb "#17becf" lw 2 pt 7 dt 2
set style line 9 lc rgb "#1f77b4" lw 2 pt 2 dt 4
set style line 10 lc rgb "#2ca02c" lw 2 pt 4
set style line 11 lc rgb "#7f7f7f" lw 2 pt 6
set style line 12 lc rgb "#98df8a" lw 2 pt 12 dt 3
set style line 13 lc rgb "#000000" lw 1 pt 1 dt 3
set style line 14 lc rgb "#6a0dad" lw 2 pt 3 dt 2
set style line 15 lc rgb "#6a0dad" lw 2 pt 3
plot $plot
GP
echo "plot-bench: wrote $png"

# Second plot (ports: the last CSV column; labels hold commas): the template interval against the number of ports the
# template polls, per load size: the 0.1.0 template (one tcp.port.get per
# port) and the new one (its requests do not depend on the ports), with
# netlink against one reference dump and with Source=proc against one /proc
# parse.
png2=${3:-}
[ -n "$png2" ] || exit 0
plot=""
i=0
for n in $(awk -F, 'NR > 1 && $2 ~ /^tmpl-/ {print $1}' "$csv" | sort -un); do
  i=$((i + 1))
  for v in "|netlink" "-proc|Source=proc"; do
    suf=${v%%|*}
    what=${v#*|}
    ref=nl-ref; reflabel="one netlink dump"
    [ -n "$suf" ] && { ref=core-proc; reflabel="one /proc parse"; }
    awk -F, -v n="$n" -v suf="$suf" 'NR > 1 && $1 == n && $2 ~ ("^tmpl-old-p[0-9]+" suf "$") {print $NF, $5, $6, $7}' "$csv" | sort -n > "$tmp/old$i$suf.dat"
    [ -s "$tmp/old$i$suf.dat" ] || continue
    newcpu=$(awk -F, -v n="$n" -v m="tmpl-new$suf" 'NR > 1 && $1 == n && $2 == m {print $5}' "$csv")
    refcpu=$(awk -F, -v n="$n" -v m="$ref" 'NR > 1 && $1 == n && $2 == m {print $5}' "$csv")
    awk -v c="$newcpu" '{print $1, c}' "$tmp/old$i$suf.dat" > "$tmp/new$i$suf.dat"
    awk -v c="$refcpu" '{print $1, c}' "$tmp/old$i$suf.dat" > "$tmp/ref$i$suf.dat"
    lw=2; [ -n "$suf" ] && lw=1
    plot+="${plot:+, }'$tmp/old$i$suf.dat' using 1:2:3:4 with yerrorlines lw $lw lc $i dt 1 pt 7 title '$n sockets, 0.1.0 template and plugin, $what' noenhanced"
    [ -n "$newcpu" ] && plot+=", '$tmp/new$i$suf.dat' using 1:2 with linespoints lw $lw lc $i dt 2 pt 5 title '$n sockets, new template, $what (requests independent of ports)' noenhanced"
    [ -n "$refcpu" ] && plot+=", '$tmp/ref$i$suf.dat' using 1:2 with lines lw 1 lc $i dt 3 title '$n sockets, $reflabel' noenhanced"
  done
done
[ -n "$plot" ] || { echo "plot-bench: no template intervals in $csv" >&2; exit 0; }
gnuplot <<GP
set terminal pngcairo size 1100,850 font "Sans,10"
set output '$png2'
set title "Plugin CPU per minute of the template's polled items vs ports the template polls\n(median; 2 vCPUs; the 0.1.0 template polls tcp.port.get per port, the new one tcp.sockets.get once)"
set xlabel "listening ports the template polls"
set ylabel "plugin CPU ms per minute"
set logscale y
set format y "10^{%L}"
set grid xtics ytics mytics lc rgb "#dddddd"
set key below left maxrows 6 width -2 spacing 1.1
set xrange [0:105]
plot $plot
GP
echo "plot-bench: wrote $png2"
