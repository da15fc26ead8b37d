package metrics

import (
	"context"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// BenchmarkWholeTableRead measures what the whole-table read of
// tcp.sockets.get (the templates' master item) costs over a plain count of
// every socket by state, on 100k real sockets of a namespace (half
// TIME_WAIT, half LAST_ACK, held by nftables; every client socket's local
// port in the range, towards 10 listening ports): the plain count, the read
// with ports and cgroups, and with the local-port tuples as well. The
// variants run in turns, so that the machine's noise falls on each alike;
// each reports cpu-ns/socket and its ratio to the plain count of its turn
// (x-count). Needs root.
//
//	go test -run '^$' -bench WholeTableRead -benchtime 20x ./internal/metrics/
func BenchmarkWholeTableRead(b *testing.B) {
	const n, perPort = 100_000, 5_000
	ns := testnet.New(b)
	for made := 0; made < n/2; made += perPort {
		if _, err := ns.LastAck("127.0.0.1", perPort); err != nil {
			b.Fatal(err)
		}
	}
	src := sockets.NewNetlink()
	var lp kernel.LocalPorts
	if err := ns.Do(func() (err error) { lp, err = kernel.ReadLocalPorts("/proc"); return err }); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	variants := []struct {
		name string
		read func() error
	}{
		{"count", func() error { _, err := sockets.Count(ctx, src, sockets.Query{}); return err }},
		{"ports-cgroups", func() error { return readWholeTable(ctx, src, nil, &snapshot{}) }},
		{"ports-cgroups-ephemeral", func() error {
			var e snapshot
			err := readWholeTable(ctx, src, func() (kernel.LocalPorts, error) { return lp, nil }, &e)
			if err == nil && e.eph.sockets < n/4 {
				b.Fatalf("%d sockets in the local port range, want about %d", e.eph.sockets, n/2)
			}
			return err
		}},
	}
	cpu := make([]time.Duration, len(variants))
	rounds := 0
	err := ns.Do(func() error {
		for b.Loop() {
			for i, v := range variants {
				t := cpuTime()
				if err := v.read(); err != nil {
					return err
				}
				cpu[i] += cpuTime() - t
			}
			rounds++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for i, v := range variants {
		b.ReportMetric(float64(cpu[i].Nanoseconds())/float64(rounds*n), v.name+"-cpu-ns/socket")
		if i > 0 {
			b.ReportMetric(float64(cpu[i])/float64(cpu[0]), v.name+"-x-count")
		}
	}
}
