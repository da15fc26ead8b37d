package sockets_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// hosts are the address kinds of the mix: IPv4, IPv6 and IPv4-mapped (an
// AF_INET6 socket, so family 6).
var hosts = []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"}

// buildMix holds every state testnet can hold for good, for each address
// kind, with counts that differ per kind and per state so that a mix-up of
// family, port or state shows. TIME_WAIT comes from LastAck; the 60-second
// kinds (TimeWait, OrphanFinWait2) have their own quick test.
func buildMix(t testing.TB, ns *testnet.NS) []testnet.Held {
	t.Helper()
	type builder func(string, int) (testnet.Held, error)
	builders := []builder{ns.Listen, ns.Established, ns.CloseWait, ns.LastAck, ns.SynRecv, ns.SynSent, ns.FinWait1}
	var held []testnet.Held
	for hi, host := range hosts {
		for bi, b := range builders {
			h, err := b(host, 1+(hi+bi)%4)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, h)
		}
	}
	return held
}

// counter counts with one source.
type counter struct {
	name   string
	src    sockets.Source
	inNS   bool // walk from a thread in the namespace (netlink)
	cgroup bool // also read cgroup ids (BenchmarkCount)
}

// count runs sockets.Count with c in ns.
func (c counter) count(ns *testnet.NS, q sockets.Query) (sockets.Counts, error) {
	var res sockets.Counts
	err := c.walkIn(ns, func() error {
		var err error
		res, err = sockets.Count(context.Background(), c.src, q)
		return err
	})
	return res, err
}

// walkIn runs f where c's source sees the namespace.
func (c counter) walkIn(ns *testnet.NS, f func() error) error {
	if c.inNS {
		return ns.Do(f)
	}
	return f()
}

// counters are the sources under test: netlink with the legacy one-walk
// request, netlink with SOCK_DIAG_BY_FAMILY only, and the /proc parser over
// the namespace's tables.
func counters(ns *testnet.NS) []counter {
	legacy, byFamily := sockets.NewNetlink(), sockets.NewNetlink()
	sockets.UseLegacy(byFamily, false)
	return []counter{
		{name: "netlink-legacy", src: legacy, inNS: true},
		{name: "netlink-by-family", src: byFamily, inNS: true},
		{name: "proc", src: sockets.NewProc(ns.NetDir())},
	}
}

// nonZero prints the non-zero counts.
func nonZero(c sockets.Counts) string {
	var b strings.Builder
	for st, n := range c {
		if n != 0 {
			fmt.Fprintf(&b, "%v=%d ", sockets.State(st), n)
		}
	}
	return strings.TrimSpace(b.String())
}

// TestIntegrationMix builds one mix of every state, both families and
// IPv4-mapped sockets, and checks the sources over it: counts against ss,
// fields socket by socket, concurrent walks.
func TestIntegrationMix(t *testing.T) {
	ns := testnet.New(t)
	held := buildMix(t, ns)
	t.Run("counts", func(t *testing.T) { testCountsMatchSS(t, ns, held) })
	t.Run("fields", func(t *testing.T) { testFieldsMatch(t, ns, held) })
	t.Run("concurrent", func(t *testing.T) { testConcurrentWalks(t, ns, held) })
}

// testCountsMatchSS compares every source with ss: each state, each family,
// ports, state masks, port+state, the total; so the sources also agree with
// each other.
func testCountsMatchSS(t *testing.T, ns *testnet.NS, held []testnet.Held) {
	cs := counters(ns)

	// The namespace holds exactly the mix.
	var want sockets.Counts
	for _, h := range held {
		all := h.All()
		for i := range want {
			want[i] += all[i]
		}
	}
	ssAll, err := ns.SSCounts("-tan")
	if err != nil {
		t.Fatal(err)
	}
	if ssAll != want {
		t.Fatalf("ss sees %s, the mix is %s", nonZero(ssAll), nonZero(want))
	}
	for _, st := range []sockets.State{sockets.Established, sockets.Listen, sockets.TimeWait, sockets.CloseWait,
		sockets.FinWait2, sockets.SynRecv, sockets.SynSent, sockets.LastAck, sockets.FinWait1} {
		if want[st] == 0 {
			t.Fatalf("the mix has no %v socket", st)
		}
	}

	// check compares a query's counts from every source with ss's.
	check := func(name string, q sockets.Query, ss sockets.Counts) {
		t.Helper()
		for _, c := range cs {
			got, err := c.count(ns, q)
			if err != nil {
				t.Errorf("%s %s: %v", c.name, name, err)
				continue
			}
			if got != ss {
				t.Errorf("%s %s:\n got %s\nwant %s (ss)", c.name, name, nonZero(got), nonZero(ss))
			}
		}
	}

	check("all", sockets.Query{}, ssAll)
	for _, st := range sockets.States() {
		// ss with its own kernel state filter.
		n, err := ns.SSCount("-tan", "state", testnet.SSState(st))
		if err != nil {
			t.Fatal(err)
		}
		if uint64(n) != ssAll[st] {
			t.Fatalf("ss state %s: %d, ss state column: %d", testnet.SSState(st), n, ssAll[st])
		}
		var only sockets.Counts
		only[st] = uint64(n)
		check("state "+st.String(), sockets.Query{States: sockets.MaskOf(st)}, only)
	}
	two := sockets.Counts{}
	two[sockets.TimeWait], two[sockets.SynRecv] = ssAll[sockets.TimeWait], ssAll[sockets.SynRecv]
	check("states time_wait+syn_recv", sockets.Query{States: sockets.MaskOf(sockets.TimeWait, sockets.SynRecv)}, two)

	for _, fam := range []sockets.Family{sockets.FamilyV4, sockets.FamilyV6} {
		ss, err := ns.SSCounts("-tan" + fam.String())
		if err != nil {
			t.Fatal(err)
		}
		if ss.Total() == 0 {
			t.Fatalf("ss -%s lists nothing", fam)
		}
		check("family "+fam.String(), sockets.Query{Family: fam}, ss)
	}

	// Port filters: one of each builder (the hosts in turn), every family.
	byPort, err := ns.SSByPort("-tan")
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range held {
		if byPort[h.Port] != h.Local {
			t.Fatalf("ss port %d: %s, held %s", h.Port, nonZero(byPort[h.Port]), nonZero(h.Local))
		}
		perHost := len(held) / len(hosts)
		if hostIdx, builderIdx := i/perHost, i%perHost; hostIdx != builderIdx%len(hosts) {
			continue
		}
		port := ":" + strconv.Itoa(int(h.Port))
		check("port "+port, sockets.Query{LocalPort: h.Port}, byPort[h.Port])
		other := sockets.FamilyV4
		if h.Family() == sockets.FamilyV4 {
			other = sockets.FamilyV6
		}
		check("port "+port+" family "+other.String(), sockets.Query{LocalPort: h.Port, Family: other}, sockets.Counts{})
		for st, n := range h.Local {
			if n == 0 || st == int(sockets.Listen) {
				continue
			}
			// ss with both its state filter and its port bytecode.
			got, err := ns.SSCount("-tan", "state", testnet.SSState(sockets.State(st)), "sport", "=", port)
			if err != nil {
				t.Fatal(err)
			}
			var only sockets.Counts
			only[st] = uint64(got)
			check(fmt.Sprintf("port %s family %s state %v", port, h.Family(), sockets.State(st)),
				sockets.Query{LocalPort: h.Port, Family: h.Family(), States: sockets.MaskOf(sockets.State(st))}, only)
		}
	}
	if !sockets.LegacyWorks(cs[0].src) {
		t.Logf("this kernel refused TCPDIAG_GETSOCK; netlink-legacy used SOCK_DIAG_BY_FAMILY")
	}
}

// sockLine is one socket with every field, as text for comparisons.
func sockLine(s *sockets.Socket) string {
	return fmt.Sprintf("%s %-10v %s %s rq=%d wq=%d inode=%d", s.Family, s.State,
		netip.AddrPortFrom(s.LocalAddr, s.LocalPort), netip.AddrPortFrom(s.RemoteAddr, s.RemotePort),
		s.RQueue, s.WQueue, s.Inode)
}

// walkLines walks q with c and returns the sorted socket lines.
func walkLines(t *testing.T, ns *testnet.NS, c counter, q sockets.Query) []string {
	t.Helper()
	var lines []string
	err := c.walkIn(ns, func() error {
		return c.src.Walk(context.Background(), q, func(s *sockets.Socket) { lines = append(lines, sockLine(s)) })
	})
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	slices.Sort(lines)
	return lines
}

// testFieldsMatch walks the mix with every field and requires the sources
// to agree socket by socket (addresses, ports, queues, inodes), and ss to
// list the same local/remote pairs. Listener queues differ by design and are
// set aside (see TestIntegrationListenerQueues).
func testFieldsMatch(t *testing.T, ns *testnet.NS, held []testnet.Held) {
	cs := counters(ns)
	q := sockets.Query{Fields: sockets.FieldLocalAddr | sockets.FieldRemote | sockets.FieldQueues | sockets.FieldInode}
	var base []string
	for i, c := range cs {
		var lines []string
		err := c.walkIn(ns, func() error {
			return c.src.Walk(context.Background(), q, func(s *sockets.Socket) {
				if s.State == sockets.Listen {
					s.WQueue = 0 // backlog: netlink only
				}
				lines = append(lines, sockLine(s))
			})
		})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		slices.Sort(lines)
		if i == 0 {
			base = lines
			continue
		}
		if !slices.Equal(lines, base) {
			t.Errorf("%s and %s differ:\n%s\n--\n%s", cs[0].name, c.name, strings.Join(base, "\n"), strings.Join(lines, "\n"))
		}
	}

	out, err := ns.SS("-tanH")
	if err != nil {
		t.Fatal(err)
	}
	var ss, ours []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		peer := f[4]
		if peer == "*:*" { // the unspecified peer of an AF_INET6 listener on an IPv4-mapped address
			peer = "[::]:*"
		}
		if p, ok := strings.CutSuffix(peer, ":*"); ok {
			peer = p + ":0"
		}
		ss = append(ss, f[3]+" "+peer)
	}
	err = cs[0].walkIn(ns, func() error {
		return cs[0].src.Walk(context.Background(), q, func(s *sockets.Socket) {
			ours = append(ours, netip.AddrPortFrom(s.LocalAddr, s.LocalPort).String()+" "+netip.AddrPortFrom(s.RemoteAddr, s.RemotePort).String())
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// ss prints unspecified peers as 0.0.0.0:* and [::]:* (or *:*).
	slices.Sort(ss)
	slices.Sort(ours)
	if !slices.Equal(ss, ours) {
		t.Errorf("addresses differ from ss:\nss:\n%s\nnetlink:\n%s", strings.Join(ss, "\n"), strings.Join(ours, "\n"))
	}
	// Sockets without a file have no inode: time-wait entries, request
	// sockets, orphans (LAST_ACK).
	var want sockets.Counts
	for _, h := range held {
		all := h.All()
		for _, st := range []sockets.State{sockets.TimeWait, sockets.SynRecv, sockets.LastAck} {
			want[st] += all[st]
		}
	}
	if got, inodes := noInode(base); inodes == 0 || got != want {
		t.Errorf("sockets without inode: %s, want %s", nonZero(got), nonZero(want))
	}
}

// noInode counts by state the socket lines with inode 0, and those with one.
func noInode(lines []string) (c sockets.Counts, withInode int) {
	for _, l := range lines {
		if !strings.HasSuffix(l, " inode=0") {
			withInode++
			continue
		}
		st, _ := sockets.ParseState(strings.Fields(l)[1])
		c[st]++
	}
	return c, withInode
}

// TestIntegrationTimeWaitSubstates checks the time-wait entries that report
// a FIN_WAIT2 substate (orphaned FIN_WAIT2): counted as FIN_WAIT2, not in a
// TIME_WAIT mask, without inode, as ss shows them. They live 60 s, so this
// test builds little and checks at once.
func TestIntegrationTimeWaitSubstates(t *testing.T) {
	ns := testnet.New(t)
	var want sockets.Counts
	for i, host := range hosts {
		for _, b := range []func(string, int) (testnet.Held, error){ns.OrphanFinWait2, ns.TimeWait} {
			h, err := b(host, 2+i)
			if err != nil {
				t.Fatal(err)
			}
			all := h.All()
			for st, n := range all {
				want[st] += n
			}
		}
	}
	ss, err := ns.SSCounts("-tan")
	if err != nil {
		t.Fatal(err)
	}
	if ss != want {
		t.Fatalf("ss: %s, built %s", nonZero(ss), nonZero(want))
	}
	ssTW, err := ns.SSCount("-tan", "state", "time-wait")
	if err != nil {
		t.Fatal(err)
	}
	var tw, noInodeWant sockets.Counts
	tw[sockets.TimeWait] = uint64(ssTW)
	noInodeWant[sockets.TimeWait], noInodeWant[sockets.FinWait2] = want[sockets.TimeWait], want[sockets.FinWait2]
	for _, c := range counters(ns) {
		got, err := c.count(ns, sockets.Query{})
		if err != nil || got != ss {
			t.Errorf("%s: %s (%v), ss %s", c.name, nonZero(got), err, nonZero(ss))
		}
		got, err = c.count(ns, sockets.Query{States: sockets.MaskOf(sockets.TimeWait)})
		if err != nil || got != tw || ssTW != int(want[sockets.TimeWait]) {
			t.Errorf("%s time_wait only: %s (%v), ss %d, built %d", c.name, nonZero(got), err, ssTW, want[sockets.TimeWait])
		}
		lines := walkLines(t, ns, c, sockets.Query{Fields: sockets.FieldInode})
		if got, _ := noInode(lines); got != noInodeWant {
			t.Errorf("%s sockets without inode: %s, want %s", c.name, nonZero(got), nonZero(noInodeWant))
		}
	}
}

// TestIntegrationListenerQueues checks the listener queues against
// `ss -lnt` (Recv-Q = accept queue, Send-Q = backlog): netlink gives both,
// /proc the accept queue and 0 for the backlog it does not show.
func TestIntegrationListenerQueues(t *testing.T) {
	ns := testnet.New(t)
	type pend struct {
		host             string
		backlog, waiting int
	}
	for _, p := range []pend{{"127.0.0.1", 7, 3}, {"::1", 11, 0}, {"::ffff:127.0.0.1", 5, 2}, {"127.0.0.1", 4096, 1}} {
		if _, err := ns.Pending(p.host, p.backlog, p.waiting); err != nil {
			t.Fatal(err)
		}
	}
	out, err := ns.SS("-lntH")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]uint32{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		rq, _ := strconv.Atoi(f[1])
		wq, _ := strconv.Atoi(f[2])
		want[f[3]] = [2]uint32{uint32(rq), uint32(wq)}
	}
	if len(want) != 4 {
		t.Fatalf("ss -lnt lists %d listeners, want 4:\n%s", len(want), out)
	}
	for _, c := range counters(ns) {
		got := map[string][2]uint32{}
		err := c.walkIn(ns, func() error {
			return c.src.Walk(context.Background(), sockets.Query{States: sockets.MaskOf(sockets.Listen), Fields: sockets.FieldLocalAddr | sockets.FieldQueues},
				func(s *sockets.Socket) {
					got[netip.AddrPortFrom(s.LocalAddr, s.LocalPort).String()] = [2]uint32{s.RQueue, s.WQueue}
				})
		})
		if err != nil {
			t.Fatal(err)
		}
		for addr, w := range want {
			if c.name == "proc" {
				w[1] = 0
			}
			if got[addr] != w {
				t.Errorf("%s listener %s: accept queue/backlog %v, want %v", c.name, addr, got[addr], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d listeners, want %d", c.name, len(got), len(want))
		}
	}
}

// TestIntegrationUDP checks bound UDP sockets: counts by family and port and
// their local addresses, against ss -uan.
func TestIntegrationUDP(t *testing.T) {
	ns := testnet.New(t)
	var held []testnet.Held
	for i, host := range hosts {
		h, err := ns.BindUDP(host, i+1)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, h)
	}
	// TCP sockets must not show up in UDP walks, nor UDP in TCP ones.
	if _, err := ns.Established("127.0.0.1", 2); err != nil {
		t.Fatal(err)
	}
	for _, c := range counters(ns) {
		for _, fam := range []sockets.Family{sockets.FamilyAll, sockets.FamilyV4, sockets.FamilyV6} {
			ss, err := ns.SSCounts("-uan" + fam.String())
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.count(ns, sockets.Query{Proto: sockets.UDP, Family: fam})
			if err != nil {
				t.Fatal(err)
			}
			if got != ss || ss.Total() == 0 {
				t.Errorf("%s UDP family %q: %s, ss %s", c.name, fam, nonZero(got), nonZero(ss))
			}
		}
		for _, h := range held {
			var addrs []string
			err := c.walkIn(ns, func() error {
				return c.src.Walk(context.Background(), sockets.Query{Proto: sockets.UDP, LocalPort: h.Port, Fields: sockets.FieldLocalAddr | sockets.FieldInode},
					func(s *sockets.Socket) {
						if s.Inode == 0 || s.State != sockets.Close || s.Family != h.Family() {
							t.Errorf("%s UDP %+v", c.name, *s)
						}
						addrs = append(addrs, s.LocalAddr.String())
					})
			})
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(addrs)) != h.Local[sockets.Close] {
				t.Errorf("%s UDP port %d: %d sockets, want %d", c.name, h.Port, len(addrs), h.Local[sockets.Close])
			}
			for _, a := range addrs {
				if a != h.Host {
					t.Errorf("%s UDP port %d: address %s, want %s", c.name, h.Port, a, h.Host)
				}
			}
		}
		tcp, err := c.count(ns, sockets.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if tcp.Total() != 5 { // listener + 2 pairs
			t.Errorf("%s TCP: %s, want 5 sockets", c.name, nonZero(tcp))
		}
	}
}

// testConcurrentWalks runs different queries in parallel on one source of
// each kind; every result must equal the serial one. Meant for go test
// -race.
func testConcurrentWalks(t *testing.T, ns *testnet.NS, held []testnet.Held) {
	queries := []sockets.Query{
		{},
		{Family: sockets.FamilyV4},
		{Family: sockets.FamilyV6, Fields: sockets.FieldLocalAddr | sockets.FieldRemote},
		{States: sockets.MaskOf(sockets.TimeWait)},
		{LocalPort: held[1].Port},
		{Proto: sockets.UDP},
	}
	for _, c := range counters(ns) {
		want := make([]sockets.Counts, len(queries))
		for i, q := range queries {
			var err error
			if want[i], err = c.count(ns, q); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for k := range 3 {
					i := (g + k) % len(queries)
					got, err := c.count(ns, queries[i])
					if err != nil {
						t.Errorf("%s: %v", c.name, err)
						return
					}
					if got != want[i] {
						t.Errorf("%s query %+v: %s, serially %s", c.name, queries[i], nonZero(got), nonZero(want[i]))
					}
				}
			})
		}
		wg.Wait()
	}
}

// TestIntegrationContext checks that a cancelled or expired context stops
// a walk with the context's error.
func TestIntegrationContext(t *testing.T) {
	ns := testnet.New(t)
	if _, err := ns.Established("127.0.0.1", 3); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range counters(ns) {
		for _, ctx := range []context.Context{cancelled, expired} {
			visits := 0
			err := c.walkIn(ns, func() error {
				return c.src.Walk(ctx, sockets.Query{}, func(*sockets.Socket) { visits++ })
			})
			if err == nil || err != ctx.Err() || visits != 0 {
				t.Errorf("%s: walk with a done context: err %v, %d visits", c.name, err, visits)
			}
		}
	}
}
