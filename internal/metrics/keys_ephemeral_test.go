package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// TestEphemeralGet: which sockets count (local port in the range, not
// reserved, not listening; a remote end), how IPv4-mapped sockets fold
// with IPv4 ones, the usable size, the order and the percentages.
func TestEphemeralGet(t *testing.T) {
	src := &fakeSource{socks: []sockets.Socket{
		sock(sockets.Listen, "0.0.0.0:40003", ""),
		sock(sockets.Established, "127.0.0.1:40003", "10.0.0.9:1000"), // accepted: a listening port
		sock(sockets.Established, "127.0.0.1:40000", "10.0.0.1:5432"),
		sock(sockets.TimeWait, "127.0.0.1:40001", "10.0.0.1:5432"),
		sock(sockets.Established, "[::ffff:127.0.0.1]:40002", "[::ffff:10.0.0.1]:5432"),
		sock(sockets.Established, "127.0.0.1:40005", "10.0.0.1:5432"), // reserved
		sock(sockets.Established, "127.0.0.1:39999", "10.0.0.1:5432"), // below the range
		sock(sockets.SynSent, "[2001:db8::1]:40000", "[2001:db8::2]:443"),
		sock(sockets.FinWait2, "127.0.0.1:40004", "10.0.0.1:5433"),
		sock(sockets.Close, "0.0.0.0:40006", ""), // bound, no remote end
	}}
	e := testExporter(t, src, 0)
	e.cache.localPorts = func() (kernel.LocalPorts, error) {
		return kernel.LocalPorts{Min: 40000, Max: 40009, Reserved: []uint16{40005}}, nil
	}
	ctx := context.Background()
	got, err := e.Export(ctx, "tcp.ephemeral.get", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"range_min":40000,"range_max":40009,"reserved":1,"listening":1,"usable":8,"sockets":5,"tuples":3,"exact":1,"error":0,"pused":37.50,` +
		`"top":[{"local":"127.0.0.1","remote":"10.0.0.1","port":5432,"count":3,"pused":37.50},` +
		`{"local":"127.0.0.1","remote":"10.0.0.1","port":5433,"count":1,"pused":12.50},` +
		`{"local":"2001:db8::1","remote":"2001:db8::2","port":443,"count":1,"pused":12.50}]}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, err := e.Export(ctx, "tcp.ephemeral.get", []string{"1"}); err != nil || !json.Valid([]byte(got)) {
		t.Errorf("[1]: %s, %v", got, err)
	} else {
		var a ephemeralAnswer
		json.Unmarshal([]byte(got), &a)
		if len(a.Top) != 1 || a.Top[0].Count != 3 {
			t.Errorf("[1]: %s", got)
		}
	}
	for _, p := range [][]string{{"0"}, {"1001"}, {"x"}, {"1", "2"}} {
		if _, err := e.Export(ctx, "tcp.ephemeral.get", p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}

	// No range: the key fails, the other keys of the read do not.
	e = testExporter(t, src, 0)
	e.cache.localPorts = func() (kernel.LocalPorts, error) {
		return kernel.LocalPorts{}, &os.PathError{Op: "open", Path: "/proc/sys/net/ipv4/ip_local_port_range", Err: os.ErrNotExist}
	}
	if _, err := e.Export(ctx, "tcp.ephemeral.get", nil); err == nil {
		t.Error("no error without a range")
	} else if !errors.As(err, new(*ItemError)) || err.Error()[:len(errLocalPorts.msg)] != errLocalPorts.msg {
		t.Errorf("error %q", err)
	}
	if _, err := e.Export(ctx, "tcp.sockets.get", nil); err != nil {
		t.Errorf("tcp.sockets.get without a range: %v", err)
	}
}

// TestEphemeralOverflow: beyond the capacity of distinct tuples, the
// busiest one is still found, its count below the truth by at most the
// reported error, itself at most N/(k+1), and exact says 0.
func TestEphemeralOverflow(t *testing.T) {
	lp := kernel.LocalPorts{Min: 1024, Max: 65535}
	w := newEphemeralWalk(lp, func(uint16) bool { return false })
	s := sockets.Socket{State: sockets.Established}
	var n uint64
	// 3000 sockets to one destination, one socket each to 40000 others.
	for i := range 3000 {
		s.LocalAddr, s.LocalPort = mustAddr("192.0.2.1"), uint16(2000+i)
		s.RemoteAddr, s.RemotePort = mustAddr("198.51.100.1"), 443
		w.add(&s)
		n++
		for j := range 14 {
			d := i*14 + j
			s.RemoteAddr = mustAddr("10." + strconv.Itoa(d>>16) + "." + strconv.Itoa(d>>8&255) + "." + strconv.Itoa(d&255))
			w.add(&s)
			n++
		}
	}
	r := w.done()
	if r.cut == 0 || r.cut > n/(ephemeralCapacity+1) || r.tuples > ephemeralCapacity || r.sockets != n {
		t.Fatalf("error %d (bound %d) tuples %d sockets %d (want %d)", r.cut, n/(ephemeralCapacity+1), r.tuples, r.sockets, n)
	}
	top := r.top[0]
	remote := netip.AddrFrom16(top.key.remote).Unmap()
	if remote.String() != "198.51.100.1" || top.key.port != 443 || top.count > 3000 || top.count+r.cut < 3000 {
		t.Errorf("busiest %s:%d count %d, want 198.51.100.1:443 within [%d, 3000]", remote, top.key.port, top.count, 3000-r.cut)
	}
	for _, x := range r.top[1:] {
		if x.count > r.cut+1 {
			t.Errorf("a destination of one socket counted %d", x.count)
		}
	}
	var v ephemeralAnswer
	if err := json.Unmarshal(appendEphemeral(nil, r, 3), &v); err != nil || v.Exact != 0 || len(v.Top) != 3 {
		t.Errorf("answer %+v, %v", v, err)
	}
}

type ephemeralAnswer struct {
	Min     int     `json:"range_min"`
	Max     int     `json:"range_max"`
	Usable  int     `json:"usable"`
	Sockets int     `json:"sockets"`
	Tuples  int     `json:"tuples"`
	Exact   int     `json:"exact"`
	PUsed   float64 `json:"pused"`
	Top     []struct {
		Local  string  `json:"local"`
		Remote string  `json:"remote"`
		Port   int     `json:"port"`
		Count  int     `json:"count"`
		PUsed  float64 `json:"pused"`
	} `json:"top"`
}

// TestIntegrationEphemeralNetns: in a namespace whose ip_local_port_range
// is 256 ports, 10 of them reserved, connections to one destination until
// connect fails with EADDRNOTAVAIL (20 of them left in TIME_WAIT), and 3 to
// another: tcp.ephemeral.get names the first at 100 %, as many ports as
// connect managed to take, and both counts equal what ss shows.
func TestIntegrationEphemeralNetns(t *testing.T) {
	ns := testnet.New(t)
	for k, v := range map[string]string{
		"net.ipv4.ip_local_port_range":     "40000 40255",
		"net.ipv4.ip_local_reserved_ports": "40100-40109",
		"net.ipv4.tcp_tw_reuse":            "0",
	} {
		if err := ns.Sysctl(k, v); err != nil {
			t.Fatal(err)
		}
	}
	full, err := ns.ExhaustPorts("127.0.0.1", 20, 1000)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ns.Established("127.0.0.1", 3)
	if err != nil {
		t.Fatal(err)
	}

	for _, src := range []sockets.Source{nsSource{ns, sockets.NewNetlink()}, sockets.NewProc(ns.NetDir())} {
		t.Run(src.Name(), func(t *testing.T) { checkEphemeralNetns(t, ns, src, full, other) })
	}
}

// checkEphemeralNetns checks tcp.ephemeral.get read through src against
// the two destinations and ss.
func checkEphemeralNetns(t *testing.T, ns *testnet.NS, src sockets.Source, full, other testnet.Held) {
	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	e, err := newExporter(cfg, NopLogger{}, src)
	if err != nil {
		t.Fatal(err)
	}
	e.cache.localPorts = func() (lp kernel.LocalPorts, err error) {
		err = ns.Do(func() error { lp, err = kernel.ReadLocalPorts("/proc"); return err })
		return lp, err
	}
	var v string
	if err := ns.Do(func() (err error) {
		v, err = e.Export(context.Background(), "tcp.ephemeral.get", []string{"5"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var a ephemeralAnswer
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		t.Fatalf("%v: %s", err, v)
	}
	t.Logf("tcp.ephemeral.get[5]: %s", v)
	n := int(full.Peer.Total())
	if a.Min != 40000 || a.Max != 40255 || a.Usable != 246 || n != a.Usable {
		t.Errorf("range %d-%d usable %d; connect took %d ports, want 246", a.Min, a.Max, a.Usable, n)
	}
	if a.PUsed != 100 || a.Exact != 1 || a.Tuples != 2 || len(a.Top) != 2 {
		t.Fatalf("answer %s", v)
	}
	for i, h := range []testnet.Held{full, other} {
		ss, err := ns.SSCount("-tan", "dst", "127.0.0.1:"+strconv.Itoa(int(h.Port)))
		if err != nil {
			t.Fatal(err)
		}
		top := a.Top[i]
		if top.Local != "127.0.0.1" || top.Remote != "127.0.0.1" || top.Port != int(h.Port) || top.Count != ss || uint64(ss) != h.Peer.Total() {
			t.Errorf("top[%d] %+v; want 127.0.0.1 → 127.0.0.1:%d, ss shows %d", i, top, h.Port, ss)
		}
	}
	if a.Top[0].PUsed != 100 {
		t.Errorf("busiest at %.2f %%", a.Top[0].PUsed)
	}
	ss, err := ns.SSCount("-tan", "(", "sport", ">=", ":40000", "and", "sport", "<=", ":40255", ")")
	if err != nil {
		t.Fatal(err)
	}
	if a.Sockets != ss {
		t.Errorf("sockets %d, ss shows %d with a local port in the range", a.Sockets, ss)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
