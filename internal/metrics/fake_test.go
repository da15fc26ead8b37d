package metrics

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// fakeSource is a socket table held in memory. It filters like the kernel
// sources do (state mask, local port, family, protocol) and counts its walks.
type fakeSource struct {
	socks []sockets.Socket
	proto sockets.Proto // protocol of socks; TCP if zero
	delay time.Duration
	err   error
	panic bool
	hang  chan struct{} // if set, the first walk blocks on it, deaf to its context
	walks atomic.Int64
}

func (f *fakeSource) Name() string { return "fake" }

func (f *fakeSource) Walk(ctx context.Context, q sockets.Query, visit func(*sockets.Socket)) error {
	if f.walks.Add(1) == 1 && f.hang != nil {
		<-f.hang
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.panic {
		panic("fake source exploded")
	}
	if f.err != nil {
		return f.err
	}
	proto := f.proto
	if proto == 0 {
		proto = sockets.TCP
	}
	qp := q.Proto
	if qp == 0 {
		qp = sockets.TCP
	}
	if qp != proto {
		return nil
	}
	for i := range f.socks {
		s := f.socks[i]
		if !q.States.Has(s.State) || (q.LocalPort != 0 && s.LocalPort != q.LocalPort) ||
			(q.Family != sockets.FamilyAll && q.Family != s.Family) {
			continue
		}
		visit(&s)
	}
	return nil
}

// sock builds one socket; addresses are parsed from "a.b.c.d:port" or
// "[v6]:port" forms.
func sock(state sockets.State, local, remote string) sockets.Socket {
	l := netip.MustParseAddrPort(local)
	s := sockets.Socket{State: state, LocalAddr: l.Addr(), LocalPort: l.Port(), Family: sockets.FamilyV4}
	if l.Addr().Is6() {
		s.Family = sockets.FamilyV6
	}
	if remote != "" {
		r := netip.MustParseAddrPort(remote)
		s.RemoteAddr, s.RemotePort = r.Addr(), r.Port()
	}
	return s
}

// testExporter builds an exporter over src with default options and the
// given cache TTL.
func testExporter(t testing.TB, src sockets.Source, ttl time.Duration) *Exporter {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CacheTTL = ttl
	e, err := newExporter(cfg, NopLogger{}, src)
	if err != nil {
		t.Fatalf("newExporter: %v", err)
	}
	return e
}

// mixedTable is a small table with every common state in both families.
func mixedTable() []sockets.Socket {
	return []sockets.Socket{
		sock(sockets.Listen, "0.0.0.0:80", ""),
		sock(sockets.Listen, "[::]:80", ""),
		sock(sockets.Listen, "127.0.0.1:8080", ""),
		sock(sockets.Established, "10.0.0.1:80", "10.0.0.9:40000"),
		sock(sockets.Established, "10.0.0.1:80", "10.0.0.9:40001"),
		sock(sockets.Established, "[2001:db8::1]:80", "[2001:db8::9]:40002"),
		sock(sockets.Established, "10.0.0.1:8080", "10.0.0.9:40003"),
		sock(sockets.TimeWait, "10.0.0.1:80", "10.0.0.9:40004"),
		sock(sockets.TimeWait, "10.0.0.1:8080", "10.0.0.9:40005"),
		sock(sockets.TimeWait, "[2001:db8::1]:8080", "[2001:db8::9]:40006"),
		sock(sockets.CloseWait, "10.0.0.1:80", "10.0.0.9:40007"),
		sock(sockets.SynRecv, "10.0.0.1:80", "10.0.0.9:40008"),
		sock(sockets.SynSent, "10.0.0.1:50000", "10.0.0.9:80"),
		sock(sockets.FinWait1, "10.0.0.1:80", "10.0.0.9:40009"),
		sock(sockets.FinWait2, "10.0.0.1:80", "10.0.0.9:40010"),
		sock(sockets.LastAck, "10.0.0.1:80", "10.0.0.9:40011"),
		sock(sockets.Closing, "10.0.0.1:80", "10.0.0.9:40012"),
	}
}
