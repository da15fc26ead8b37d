package sockets_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

var sink sockets.Counts

// BenchmarkCount counts every TCP socket of a namespace holding 10k and 100k
// real sockets (half TIME_WAIT, half LAST_ACK, held by nftables and holding
// no fd), with each source: netlink (one legacy walk), the same walk also
// reading each full socket's cgroup id and counting by cgroup and state as
// tcp.cgroups.get does (netlink-cgroup), netlink with two
// SOCK_DIAG_BY_FAMILY walks, and /proc/net/tcp{,6} of the namespace. The
// kernel walks every namespace's sockets, so other load on the machine shows
// in the numbers. allocs/op must not grow with the size. Needs root; 100k
// is skipped with -short. Building 100k sockets takes a few seconds.
//
//	go test -run '^$' -bench 'Count$' -benchtime 20x ./internal/sockets/
func BenchmarkCount(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n/1000)+"k", func(b *testing.B) {
			if n > 10_000 && testing.Short() {
				b.Skip("-short")
			}
			ns := testnet.New(b)
			start := time.Now()
			const perPort = 10_000 // pairs; keeps client ports per destination well under the range
			for made := 0; made < n/2; made += perPort {
				if _, err := ns.LastAck("127.0.0.1", min(perPort, n/2-made)); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("built %d sockets in %v", n, time.Since(start).Round(time.Millisecond))
			legacy, byFamily := sockets.NewNetlink(), sockets.NewNetlink()
			sockets.UseLegacy(byFamily, false)
			for _, c := range []counter{
				{name: "netlink", src: legacy, inNS: true},
				{name: "netlink-cgroup", src: legacy, inNS: true, cgroup: true},
				{name: "netlink-by-family", src: byFamily, inNS: true},
				{name: "proc", src: sockets.NewProc(ns.NetDir())},
			} {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					err := c.walkIn(ns, func() error {
						for b.Loop() {
							got, err := c.countAll()
							if err != nil {
								return err
							}
							// Listeners are extra; retransmissions crossing
							// may shift a few sockets between states.
							if tot := got.Total(); tot < uint64(n)*99/100 {
								b.Fatalf("%d sockets, want about %d", tot, n)
							}
							sink = got
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}

// countAll counts every socket by state; with c.cgroup it also reads the
// cgroup ids and counts by cgroup and state, as the whole-table read does.
func (c counter) countAll() (sockets.Counts, error) {
	if !c.cgroup {
		return sockets.Count(context.Background(), c.src, sockets.Query{})
	}
	var total sockets.Counts
	byID := map[uint64]*sockets.Counts{}
	err := c.src.Walk(context.Background(), sockets.Query{Fields: sockets.FieldCgroup}, func(s *sockets.Socket) {
		st := s.State & sockets.MaxState
		total[st]++
		if s.Cgroup == 0 {
			return
		}
		g := byID[s.Cgroup]
		if g == nil {
			g = new(sockets.Counts)
			byID[s.Cgroup] = g
		}
		g[st]++
	})
	if err == nil && len(byID) == 0 {
		err = errors.New("no cgroup id read")
	}
	return total, err
}
