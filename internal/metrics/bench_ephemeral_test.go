package metrics

import (
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// BenchmarkEphemeralWalk measures what the whole-table read adds per socket
// for tcp.ephemeral.get, the tuple counting alone (no socket table): 1M
// sockets with their local port in the range, to 100k distinct
// destinations (over the counter's capacity: the Space-Saving regime) and
// to 1000 (exact), and none in the range (the benchmark's own cost). It
// reports ns/socket and the heap the count holds.
//
//	go test -run '^$' -bench EphemeralWalk ./internal/metrics/
func BenchmarkEphemeralWalk(b *testing.B) {
	lp := kernel.LocalPorts{Min: 32768, Max: 60999}
	for _, c := range []struct {
		name  string
		dests int
		lp    kernel.LocalPorts
	}{
		{"1M-sockets-100k-dests", 100_000, lp},
		{"1M-sockets-1k-dests", 1000, lp},
		{"1M-sockets-10-dests", 10, lp},
		// The same walk with no port in the range: the benchmark's own
		// cost, to subtract.
		{"1M-sockets-outside-range", 1000, kernel.LocalPorts{Min: 1024, Max: 1025}},
	} {
		b.Run(c.name, func(b *testing.B) {
			const n = 1_000_000
			// One Socket reused for every visit, as a source does; the
			// destinations' addresses come from a small table.
			dests := make([]netip.Addr, c.dests)
			for d := range dests {
				dests[d] = netip.AddrFrom4([4]byte{10, byte(d >> 16), byte(d >> 8), byte(d)})
			}
			s := sockets.Socket{State: sockets.Established, LocalAddr: netip.MustParseAddr("192.0.2.1"), RemotePort: 443}
			visit := func(w *ephemeralWalk, i int) {
				s.LocalPort, s.RemoteAddr = uint16(32768+i%28232), dests[(i*7919)%c.dests]
				w.add(&s)
			}
			count := func() *ephemeralWalk {
				w := newEphemeralWalk(c.lp, func(uint16) bool { return false })
				for i := range n {
					visit(w, i)
				}
				return w
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			w := count()
			runtime.ReadMemStats(&after)
			held := after.HeapAlloc - before.HeapAlloc
			if r := w.done(); r.sockets != n && c.lp.Min == lp.Min {
				b.Fatalf("%d sockets counted", r.sockets)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				count().done()
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/socket")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/socket")
			b.ReportMetric(float64(held)/1024, "KiB-held")
		})
	}
}

// cpuTime is the process's user and system CPU time: on a shared machine
// it says what the work costs better than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
