package sockets

import (
	"context"
	"net/netip"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// sinkCounts keeps benchmark results alive.
var sinkCounts Counts

// BenchmarkNetlinkParse measures the message parser alone over one full
// 32 KiB batch of a realistic mix (full sockets with attributes, the cgroup
// id among them, time-wait and request sockets without), counting by state
// as Count does ("count"), also reading each full socket's cgroup id
// ("cgroup"), and also the addresses and remote port, as the whole-table
// read does for tcp.ephemeral.get ("cgroup+addrs").
//
//	go test -run '^$' -bench NetlinkParse ./internal/sockets/
func BenchmarkNetlinkParse(b *testing.B) {
	var buf []byte
	n := 0
	a := netip.MustParseAddr("10.0.0.1")
	for i := 0; ; i++ {
		d := diagSock{fam: unix.AF_INET, state: uint8(states[i%NumStates]), sport: uint16(i), src: a, dst: a}
		if i%3 == 0 {
			d.attrs = 37 // full sockets carry a few attributes
			d.cgroup = uint64(i%7 + 1)
		}
		next := appendDiag(buf, sockDiagByFamily, 1, d)
		if len(next) > recvBufSize {
			break
		}
		buf, n = next, n+1
	}
	for _, q := range []struct {
		name   string
		fields Fields
	}{{"count", 0}, {"cgroup", FieldCgroup}, {"cgroup+addrs", FieldCgroup | FieldLocalAddr | FieldRemote}} {
		b.Run(q.name, func(b *testing.B) {
			var c Counts
			var ids uint64
			w := new(nlWalker)
			w.q, w.seq, w.mask = Query{Fields: q.fields}, 1, AllStates
			w.visit = func(s *Socket) { c[s.State&MaxState]++; ids += s.Cgroup }
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := w.parse(buf); err != nil {
					b.Fatal(err)
				}
			}
			if q.fields != 0 && ids == 0 {
				b.Fatal("no cgroup id read")
			}
			sinkCounts = c
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/socket")
		})
	}
}

// BenchmarkProcSynthetic measures the /proc parser over generated tcp and
// tcp6 tables of 10k and 100k lines in all (files in a temp dir, so the
// kernel's text generation is not included; see BenchmarkCount for real
// tables). allocs/op must not grow with the size.
//
//	go test -run '^$' -bench ProcSynthetic ./internal/sockets/
func BenchmarkProcSynthetic(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n/1000)+"k", func(b *testing.B) {
			dir := b.TempDir()
			writeSyntheticTCP(b, dir, n/2)
			src := NewProc(dir)
			for _, q := range []struct {
				name string
				q    Query
			}{{"count", Query{}}, {"fields", Query{Fields: FieldLocalAddr | FieldRemote | FieldQueues | FieldInode}}} {
				b.Run(q.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						var c Counts
						err := src.Walk(context.Background(), q.q, func(s *Socket) { c[s.State&MaxState]++ })
						if err != nil {
							b.Fatal(err)
						}
						if c.Total() != uint64(n) {
							b.Fatalf("%d sockets, want %d", c.Total(), n)
						}
						sinkCounts = c
					}
				})
			}
		})
	}
}
