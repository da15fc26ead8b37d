package churn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// Churn parameters: a fixed rate for a bounded time (the TIME_WAIT entries
// the connections leave last 60 s and are removed with the namespace).
var (
	churnRate     = envInt("TCPSTATUS_CHURN_RATE", 400) // connections per second
	churnDuration = time.Duration(envInt("TCPSTATUS_CHURN_MS", 2000)) * time.Millisecond
)

// changesPerConn bounds the state changes of one loopback connection: the
// client goes SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT; the
// server side SYN_RECV (request socket), ESTABLISHED, CLOSE_WAIT, LAST_ACK,
// gone.
const changesPerConn = 10

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// listen opens a listener on host:0 in the calling thread's namespace and
// returns its fd and port.
func listen(host string) (int, int, error) {
	dom, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	if host == "::1" {
		dom, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	}
	fd, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	if err := errors.Join(unix.Bind(fd, sa), unix.Listen(fd, 4096)); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return fd, a.Port, nil
	case *unix.SockaddrInet6:
		return fd, a.Port, nil
	}
	unix.Close(fd)
	return -1, 0, fmt.Errorf("unexpected address %T", got)
}

// oneConnection connects to the listener, accepts, and closes both ends,
// client first (the client keeps a TIME_WAIT entry).
func oneConnection(lfd int, dom int, sa unix.Sockaddr) error {
	c, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Connect(c, sa); err != nil {
		unix.Close(c)
		return fmt.Errorf("connect: %w", err)
	}
	s, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(c)
		return fmt.Errorf("accept: %w", err)
	}
	unix.Close(c)
	unix.Close(s)
	return nil
}

// TestCountsUnderChurn opens and closes connections at a fixed rate in a
// private namespace (IPv4 and IPv6 loopback) while counting all TCP sockets
// by state with both sources, each count bracketed by two ss dumps. For
// every state, a count differs from the nearer ss dump by at most the
// state changes made between the two dumps; at rest every count is exact.
func TestCountsUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn runs for seconds; not in -short mode")
	}
	ns := testnet.New(t)
	type lst struct {
		fd, port, dom int
		sa            unix.Sockaddr
	}
	var ls []lst
	err := ns.Do(func() error {
		for _, host := range []string{"127.0.0.1", "::1"} {
			fd, port, err := listen(host)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", host, err)
			}
			l := lst{fd: fd, port: port, dom: unix.AF_INET, sa: &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}}
			if host == "::1" {
				l.dom, l.sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}
			}
			ls = append(ls, l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, l := range ls {
			unix.Close(l.fd)
		}
	})

	// The churn: one thread in the namespace at a fixed rate, for at least
	// churnDuration and until 10 counts were taken during it, at most five
	// times as long (a loaded machine runs ss slowly).
	var done atomic.Int64
	var stop atomic.Bool
	churnErr := make(chan error, 1)
	go func() {
		churnErr <- ns.Do(func() error {
			tick := time.NewTicker(time.Second / time.Duration(churnRate))
			defer tick.Stop()
			for i := 0; !stop.Load(); i++ {
				<-tick.C
				l := ls[i%len(ls)]
				if err := oneConnection(l.fd, l.dom, l.sa); err != nil {
					return err
				}
				done.Add(1)
			}
			return nil
		})
	}()

	netlink := sockets.NewNetlink()
	proc := sockets.NewProc(ns.NetDir())
	count := func(src sockets.Source) (sockets.Counts, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if src == proc {
			return sockets.Count(ctx, src, sockets.Query{})
		}
		var c sockets.Counts
		err := ns.Do(func() error {
			var err error
			c, err = sockets.Count(ctx, src, sockets.Query{})
			return err
		})
		return c, err
	}

	samples, maxDiff, maxChanges := 0, uint64(0), int64(0)
	check := func(src sockets.Source, atRest bool) {
		t.Helper()
		k0 := done.Load()
		before, err := ns.SSCounts("-tan")
		if err != nil {
			t.Fatal(err)
		}
		got, err := count(src)
		if err != nil {
			t.Fatalf("%s count: %v", src.Name(), err)
		}
		after, err := ns.SSCounts("-tan")
		if err != nil {
			t.Fatal(err)
		}
		k1 := done.Load()
		// Connections finished in the window, plus the one in progress at
		// each end and the asynchronous last steps of the one before.
		changes := (k1 - k0 + 2) * changesPerConn
		if atRest {
			changes = 0
			if before != after {
				t.Fatalf("ss changed at rest: %v vs %v", before, after)
			}
		}
		all := sockets.States()
		states := append(all[:], 0) // 0: the total
		for _, s := range states {
			g, b, a := got[s], before[s], after[s]
			if s == 0 {
				g, b, a = got.Total(), before.Total(), after.Total()
			}
			lo, hi := min(b, a), max(b, a)
			var diff uint64
			switch {
			case g < lo:
				diff = lo - g
			case g > hi:
				diff = g - hi
			}
			if diff > uint64(changes) {
				name := "total"
				if s != 0 {
					name = s.String()
				}
				t.Errorf("%s %s = %d, ss before/after %d/%d: off by %d, more than the %d state changes in between",
					src.Name(), name, g, b, a, diff, changes)
			}
			maxDiff = max(maxDiff, diff)
		}
		maxChanges = max(maxChanges, changes)
		samples++
	}

	start := time.Now()
	for {
		if el := time.Since(start); el >= churnDuration && samples >= 10 || el >= 5*churnDuration {
			stop.Store(true)
		}
		select {
		case err := <-churnErr:
			if err != nil {
				t.Fatalf("churn: %v", err)
			}
			t.Logf("%d connections in %v (%d/s asked); %d bracketed counts during churn, largest difference %d (largest allowance %d)",
				done.Load(), time.Since(start).Round(time.Millisecond), churnRate, samples, maxDiff, maxChanges)
			if samples < 4 || done.Load() < int64(churnRate)*int64(churnDuration/time.Second)/4 {
				t.Fatalf("too little churn: %d counts, %d connections", samples, done.Load())
			}
			// At rest (the last FINs settle within milliseconds on
			// loopback): exact.
			time.Sleep(200 * time.Millisecond)
			check(netlink, true)
			check(proc, true)
			final, _ := ns.SSCounts("-tan")
			if tw := final[sockets.TimeWait]; tw < uint64(done.Load())*9/10 {
				t.Errorf("only %d TIME_WAIT after %d connections closed client first", tw, done.Load())
			}
			return
		default:
		}
		check(netlink, false)
		check(proc, false)
	}
}
