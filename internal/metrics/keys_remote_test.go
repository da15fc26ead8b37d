package metrics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// remoteEntry is one element of the tcp.remote.top array.
type remoteEntry struct {
	Address string `json:"address"`
	Count   uint64 `json:"count"`
}

func remoteDecode(t testing.TB, v string) []remoteEntry {
	t.Helper()
	var out []remoteEntry
	if err := json.Unmarshal([]byte(v), &out); err != nil || out == nil {
		t.Fatalf("tcp.remote.top is not a JSON array of {address,count}: %v\n%s", err, v)
	}
	return out
}

func remoteTable() []sockets.Socket {
	var t []sockets.Socket
	add := func(n int, state sockets.State, local, remote string) {
		for i := range n {
			r := netip.MustParseAddrPort(remote)
			t = append(t, sock(state, local, netip.AddrPortFrom(r.Addr(), r.Port()+uint16(i)).String()))
		}
	}
	// Listeners report an unspecified remote end, as the kernel does.
	add(1, sockets.Listen, "0.0.0.0:80", "0.0.0.0:0")
	add(1, sockets.Listen, "[::]:80", "[::]:0")
	t = append(t, sock(sockets.Listen, "127.0.0.1:80", "")) // no remote field at all
	add(3, sockets.Established, "10.0.0.1:80", "192.0.2.7:40000")
	add(2, sockets.Established, "[::ffff:10.0.0.1]:80", "[::ffff:192.0.2.7]:41000") // folds into 192.0.2.7
	add(4, sockets.Established, "10.0.0.1:80", "192.0.2.9:40000")
	add(4, sockets.Established, "[2001:db8::1]:80", "[2001:db8::5]:40000")
	add(4, sockets.Established, "10.0.0.1:80", "198.51.100.1:40000")
	add(2, sockets.Established, "10.0.0.1:22", "203.0.113.5:50000")
	add(6, sockets.TimeWait, "10.0.0.1:80", "203.0.113.9:40000")
	add(1, sockets.CloseWait, "10.0.0.1:80", "192.0.2.9:45000")
	return t
}

func TestRemoteTop(t *testing.T) {
	e := testExporter(t, &fakeSource{socks: remoteTable()}, time.Second)
	cases := []struct {
		name   string
		params []string
		want   []remoteEntry
	}{
		{"+valid defaults: established, any port, 10", nil, []remoteEntry{
			{"192.0.2.7", 5}, {"192.0.2.9", 4}, {"198.51.100.1", 4}, {"2001:db8::5", 4}, {"203.0.113.5", 2}}},
		{"+valid empty parameters take defaults", []string{"", "", ""}, []remoteEntry{
			{"192.0.2.7", 5}, {"192.0.2.9", 4}, {"198.51.100.1", 4}, {"2001:db8::5", 4}, {"203.0.113.5", 2}}},
		{"+valid n cuts after the tie order", []string{"3"}, []remoteEntry{{"192.0.2.7", 5}, {"192.0.2.9", 4}, {"198.51.100.1", 4}}},
		{"+valid all states, listeners left out", []string{"10", "all"}, []remoteEntry{
			{"203.0.113.9", 6}, {"192.0.2.7", 5}, {"192.0.2.9", 5}, {"198.51.100.1", 4}, {"2001:db8::5", 4}, {"203.0.113.5", 2}}},
		{"+valid seed-script state name", []string{"2", "timewait"}, []remoteEntry{{"203.0.113.9", 6}}},
		{"+valid local port", []string{"10", "estab", "22"}, []remoteEntry{{"203.0.113.5", 2}}},
		{"+valid nothing matches", []string{"10", "syn_sent"}, []remoteEntry{}},
		{"+valid listen only: no remote ends", []string{"10", "listen", "80"}, []remoteEntry{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := e.Export(context.Background(), "tcp.remote.top", tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if got := remoteDecode(t, v); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("(-want +got)\n-%v\n+%v", tc.want, got)
			}
		})
	}
}

func TestRemoteTopErrors(t *testing.T) {
	cases := []struct {
		name   string
		src    *fakeSource
		params []string
		want   string
	}{
		{"-n zero", &fakeSource{}, []string{"0"}, `Invalid first parameter: expected a number from 1 to 1000, got "0".`},
		{"-n too big", &fakeSource{}, []string{"1001"}, `Invalid first parameter: expected a number from 1 to 1000, got "1001".`},
		{"-n not a number", &fakeSource{}, []string{"ten"}, `Invalid first parameter: expected a number from 1 to 1000, got "ten".`},
		{"-state", &fakeSource{}, []string{"5", "bogus"}, `Invalid second parameter: unknown state "bogus"; expected established (estab),`},
		{"-port", &fakeSource{}, []string{"5", "all", "70000"}, "Invalid third parameter: port must be from 1 to 65535, got 70000."},
		{"-too many", &fakeSource{}, []string{"5", "all", "80", "x"}, "Too many parameters."},
		{"-source fails", &fakeSource{err: errors.New("netlink: permission denied")}, nil, "Cannot obtain socket table. Netlink: permission denied."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := testExporter(t, tc.src, 0).Export(context.Background(), "tcp.remote.top", tc.params)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), ".") {
				t.Fatalf("got %q, %v; want error starting %q", v, err, tc.want)
			}
		})
	}
}

func TestRemoteTopTimeout(t *testing.T) {
	src := &fakeSource{socks: remoteTable(), delay: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := testExporter(t, src, 0).Export(ctx, "tcp.remote.top", nil)
	if err == nil || err.Error() != "Timeout occurred while gathering data." {
		t.Fatalf("err = %v", err)
	}
}

// remoteGenSource generates a synthetic table on every walk, storing
// nothing: n sockets whose remote addresses cycle through `distinct`
// addresses 10.x.y.z, then the heavy addresses with their counts (mixed in
// every `every` sockets, or after the cycle when every is 0).
type remoteGenSource struct {
	n, distinct int
	heavy       []remoteEntry
	every       int
	walks       atomic.Int64
}

func (g *remoteGenSource) Name() string { return "generated" }

func (g *remoteGenSource) Walk(ctx context.Context, q sockets.Query, visit func(*sockets.Socket)) error {
	g.walks.Add(1)
	s := sockets.Socket{Family: sockets.FamilyV4, State: sockets.Established, LocalPort: 443}
	if !q.States.Has(s.State) || (q.LocalPort != 0 && q.LocalPort != s.LocalPort) {
		return nil
	}
	left := make([]uint64, len(g.heavy))
	for i, h := range g.heavy {
		left[i] = h.Count
	}
	emitHeavy := func() {
		for i, h := range g.heavy {
			if left[i] > 0 {
				left[i]--
				s.RemoteAddr = netip.MustParseAddr(h.Address)
				visit(&s)
			}
		}
	}
	for i := range g.n {
		d := i % g.distinct
		s.RemoteAddr = netip.AddrFrom4([4]byte{10, byte(d >> 16), byte(d >> 8), byte(d)})
		visit(&s)
		if g.every > 0 && i%g.every == 0 {
			emitHeavy()
		}
		if i&0xffff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for slices.ContainsFunc(left, func(n uint64) bool { return n > 0 }) {
		emitHeavy()
	}
	return nil
}

// TestRemoteTopOverflow drives the key past remoteTopCapacity distinct
// addresses: the heavy hitters must still come out, with exact counts, and
// the table is walked twice.
func TestRemoteTopOverflow(t *testing.T) {
	heavy := []remoteEntry{{"192.0.2.1", 50}, {"192.0.2.2", 40}, {"2001:db8::1", 40}, {"192.0.2.3", 7}}
	for _, every := range []int{0, 97} {
		t.Run(fmt.Sprintf("heavy every %d", every), func(t *testing.T) {
			// 30000 distinct addresses seen twice each, 60137 sockets:
			// N/k = 3.7, so every heavy count is guaranteed.
			src := &remoteGenSource{n: 60000, distinct: 30000, heavy: heavy, every: every}
			v, err := testExporter(t, src, 0).Export(context.Background(), "tcp.remote.top", []string{"5"})
			if err != nil {
				t.Fatal(err)
			}
			want := append(slices.Clone(heavy), remoteEntry{"10.0.0.0", 2})
			if got := remoteDecode(t, v); !reflect.DeepEqual(got[:4], want[:4]) || len(got) != 5 || got[4].Count != 2 {
				t.Errorf("(-want +got)\n-%v\n+%v", want, got)
			}
			if w := src.walks.Load(); w != 2 {
				t.Errorf("%d walks, want 2 (count, recount)", w)
			}
		})
	}
	// At or under the capacity one walk counts exactly.
	src := &remoteGenSource{n: 3 * remoteTopCapacity, distinct: remoteTopCapacity}
	v, err := testExporter(t, src, 0).Export(context.Background(), "tcp.remote.top", []string{"2"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := remoteDecode(t, v), []remoteEntry{{"10.0.0.0", 3}, {"10.0.0.1", 3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("(-want +got)\n-%v\n+%v", want, got)
	}
	if w := src.walks.Load(); w != 1 {
		t.Errorf("%d walks, want 1", w)
	}
}

// remoteExactTop is the reference, written independently of topCounter:
// a map of every address (IPv4-mapped folded by Unmap), most first, ties by
// netip.Addr.Compare.
func remoteExactTop(stream []netip.Addr) []remoteEntry {
	m := map[netip.Addr]uint64{}
	for _, a := range stream {
		if a = a.Unmap(); a.IsValid() && !a.IsUnspecified() {
			m[a]++
		}
	}
	addrs := slices.Collect(maps.Keys(m))
	slices.SortFunc(addrs, func(a, b netip.Addr) int {
		if m[a] != m[b] {
			return cmp.Compare(m[b], m[a])
		}
		return a.Compare(b)
	})
	out := make([]remoteEntry, len(addrs))
	for i, a := range addrs {
		out[i] = remoteEntry{a.String(), m[a]}
	}
	return out
}

// remoteRun counts stream with a counter of capacity k the way the key
// does (count, recount when overflowed) and returns top(n).
func remoteRun(k int, stream []netip.Addr, n int) ([]remoteEntry, bool) {
	c := newTopCounter(k)
	for _, a := range stream {
		c.add(a)
	}
	over := c.overflowed()
	if over {
		c.startRecount()
		for _, a := range stream {
			c.recount(a)
		}
	}
	out := []remoteEntry{}
	for _, s := range c.top(n) {
		out = append(out, remoteEntry{s.addr().String(), s.count})
	}
	return out, over
}

// TestTopCounterRandomStreams checks the documented guarantee on random
// streams with skewed counts: exact results at or under capacity; beyond,
// exact counts, and the exact top n whenever the n-th count exceeds N/k.
func TestTopCounterRandomStreams(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const k, n = 64, 10
	overflows, guaranteed := 0, 0
	for iter := range 400 {
		distinct := 1 + r.IntN(200)
		var stream []netip.Addr
		for d := range distinct {
			// Zipf-like: a few addresses hold many sockets.
			cnt := 1 + int(200/float64(1+d)*r.Float64())
			var a netip.Addr
			switch d % 3 {
			case 0:
				a = netip.AddrFrom4([4]byte{192, 0, 2, byte(d)})
			case 1:
				a = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 51, 14: 100, 15: byte(d)}) // v4-mapped
			default:
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(d)})
			}
			for range cnt {
				stream = append(stream, a)
			}
		}
		stream = append(stream, netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.Addr{})
		r.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })

		exact := remoteExactTop(stream)
		got, over := remoteRun(k, stream, n)
		want := exact[:min(n, len(exact))]
		if !over {
			if len(exact) > k {
				t.Fatalf("iter %d: %d distinct addresses but no overflow", iter, len(exact))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("iter %d (exact regime): (-want +got)\n-%v\n+%v", iter, want, got)
			}
			continue
		}
		overflows++
		exactCount := map[string]uint64{}
		for _, s := range exact {
			exactCount[s.Address] = s.Count
		}
		for _, s := range got {
			if exactCount[s.Address] != s.Count {
				t.Fatalf("iter %d: %s counted %d, true %d", iter, s.Address, s.Count, exactCount[s.Address])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("iter %d: %d entries, want %d", iter, len(got), len(want))
		}
		total := uint64(len(stream) - 3)
		if want[len(want)-1].Count*uint64(k) > total {
			guaranteed++
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("iter %d (overflow, n-th count %d > N/k = %d/%d): (-want +got)\n-%v\n+%v",
					iter, want[len(want)-1].Count, total, k, want, got)
			}
		}
	}
	if overflows < 50 || guaranteed < 20 {
		t.Errorf("only %d overflowing streams, %d in the guaranteed regime: the test does not exercise the bound", overflows, guaranteed)
	}
}

// TestTopCounterBoundedMemory feeds a counter 200k distinct addresses and
// checks it never holds more than its capacity, and that its hash table
// stays consistent through the evictions.
func TestTopCounterBoundedMemory(t *testing.T) {
	const k = 1000
	c := newTopCounter(k)
	for i := range 200_000 {
		c.add(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		if len(c.table) > 2048 || len(c.slots) > k {
			t.Fatalf("after %d addresses: %d buckets, %d slots, capacity %d", i+1, len(c.table), len(c.slots), k)
		}
		if i%9973 == 0 || i == 199_999 {
			remoteCheckTable(t, c)
		}
	}
	if !c.overflowed() {
		t.Fatal("no overflow")
	}
}

// remoteCheckTable checks the counter's invariants: every slot found
// through the table at its bucket, no other bucket used, heap order.
func remoteCheckTable(t *testing.T, c *topCounter) {
	t.Helper()
	used := 0
	for _, v := range c.table {
		if v != 0 {
			used++
		}
	}
	if used != len(c.slots) {
		t.Fatalf("%d buckets used for %d slots", used, len(c.slots))
	}
	for i := range c.slots {
		s := &c.slots[i]
		if b, j := c.find(&s.key, s.hash); j != int32(i) || b != s.pos {
			t.Fatalf("slot %d (%s): found at slot %d bucket %d, recorded bucket %d", i, s.addr(), j, b, s.pos)
		}
		if l := 2*i + 1; c.heaped && l < len(c.slots) && c.slots[l].count < s.count {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

// TestTopCounterChurnWithCollisions forces long probe runs (a table of 8
// buckets for 4 slots, every key in one run) and evicts through them.
func TestTopCounterChurnWithCollisions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 200 {
		c := newTopCounter(4)
		var stream []netip.Addr
		for range 60 {
			stream = append(stream, netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(12))}))
		}
		for _, a := range stream {
			c.add(a)
			remoteCheckTable(t, c)
		}
		if iter == 0 && !c.overflowed() {
			t.Fatal("no overflow")
		}
	}
}

// remoteListen listens on addr (an IPv4 or IPv6 literal, port 0 picks one)
// with raw syscalls so that an AF_INET6 socket may bind an IPv4-mapped
// address. It never accepts: the connections wait ESTABLISHED in the
// accept queue. Closed when the test ends.
func remoteListen(t *testing.T, addr netip.AddrPort) uint16 {
	t.Helper()
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: addr.Addr().As16(), Port: int(addr.Port())})
	if addr.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind %s: %v", addr, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch g := got.(type) {
	case *unix.SockaddrInet4:
		return uint16(g.Port)
	case *unix.SockaddrInet6:
		return uint16(g.Port)
	}
	t.Fatalf("getsockname: %T", got)
	return 0
}

// remoteDial opens n connections from local address from to to; closed when
// the test ends.
func remoteDial(t *testing.T, from string, to netip.AddrPort, n int) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	for range n {
		c, err := d.Dial("tcp", to.String())
		if err != nil {
			t.Fatalf("connect %s -> %s: %v", from, to, err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// TestRemoteTopRealSockets opens connections from several 127.x source
// addresses (and ::1) to listeners on this machine's loopback and checks
// the key's order and counts through both real sources. The AF_INET6
// listener bound to ::ffff:127.0.0.1 sees its IPv4 peers as IPv4-mapped
// addresses, which the key must fold.
func TestRemoteTopRealSockets(t *testing.T) {
	mapped := netip.MustParseAddr("::ffff:127.0.0.1")
	port := remoteListen(t, netip.AddrPortFrom(mapped, 0))
	v6 := true
	if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16(), Port: int(port)})
		unix.Close(fd)
		v6 = err == nil
	}
	if v6 {
		remoteListen(t, netip.AddrPortFrom(netip.IPv6Loopback(), port))
	}
	v4Port := remoteListen(t, netip.MustParseAddrPort("127.0.0.1:0"))

	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	remoteDial(t, "127.0.0.2", to, 3)
	remoteDial(t, "127.0.0.4", to, 2)
	remoteDial(t, "127.0.0.3", to, 2)
	remoteDial(t, "127.0.0.5", to, 1)
	want := []remoteEntry{{"127.0.0.2", 3}, {"127.0.0.3", 2}, {"127.0.0.4", 2}, {"127.0.0.5", 1}}
	if v6 {
		remoteDial(t, "::1", netip.AddrPortFrom(netip.IPv6Loopback(), port), 2)
		want = slices.Insert(want, 3, remoteEntry{"::1", 2})
	} else {
		t.Log("no IPv6 loopback: ::1 part left out")
	}
	remoteDial(t, "127.0.0.7", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), v4Port), 4)

	for _, kind := range []SourceKind{SourceNetlink, SourceProc} {
		t.Run(string(kind), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Source = kind
			e, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				params []string
				want   []remoteEntry
			}{
				{[]string{"10", "", strconv.Itoa(int(port))}, want},
				{[]string{"10", "all", strconv.Itoa(int(port))}, want}, // listeners have no remote end
				{[]string{"2", "established", strconv.Itoa(int(port))}, want[:2]},
				{[]string{"10", "listen", strconv.Itoa(int(port))}, []remoteEntry{}},
				{[]string{"10", "estab", strconv.Itoa(int(v4Port))}, []remoteEntry{{"127.0.0.7", 4}}},
			}
			for _, c := range checks {
				// The server side of a handshake may lag the client's
				// connect by a moment: retry briefly.
				var got []remoteEntry
				for try := 0; try < 50; try++ {
					v, err := e.Export(context.Background(), "tcp.remote.top", c.params)
					if err != nil {
						t.Fatalf("tcp.remote.top%q: %v", c.params, err)
					}
					if got = remoteDecode(t, v); reflect.DeepEqual(got, c.want) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("tcp.remote.top%q: (-want +got)\n-%v\n+%v", c.params, c.want, got)
				}
			}
		})
	}
}

// BenchmarkRemoteTop measures tcp.remote.top over synthetic tables (no
// kernel walk cost): 100k and 1M sockets, from 1000 addresses (exact regime,
// one pass) and from as many addresses as sockets (bounded regime, two
// passes). B/op stays about the same at 100k and 1M distinct addresses: the
// counter holds at most remoteTopCapacity addresses. Run with
// go test -run '^$' -bench RemoteTop ./internal/metrics/
func BenchmarkRemoteTop(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, distinct := range []int{1000, n} {
			b.Run(fmt.Sprintf("sockets=%d/distinct=%d", n, distinct), func(b *testing.B) {
				src := &remoteGenSource{n: n, distinct: distinct}
				e := testExporter(b, src, 0)
				b.ReportAllocs()
				for b.Loop() {
					v, err := e.Export(context.Background(), "tcp.remote.top", []string{"10", "all"})
					if err != nil || !strings.HasPrefix(v, `[{"address":"10.`) {
						b.Fatalf("%q %v", v, err)
					}
				}
				b.ReportMetric(float64(n), "sockets/op")
			})
		}
	}
}
