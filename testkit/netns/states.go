package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// ioTimeout bounds every blocking connect, accept and read of the builders.
const ioTimeout = 5 * time.Second

// settleTimeout bounds the wait for ss to show what a builder made.
const settleTimeout = 10 * time.Second

// batch is how many connections a builder opens before closing some, so
// large counts stay far below the fd limit.
const batch = 1000

// Held describes the sockets one builder made around one server port. Ss
// showed exactly these counts before the builder returned.
type Held struct {
	Kind  string // the builder: "listen", "pending", "established", "close_wait", "orphan_fin_wait2", "time_wait", "last_ack", "syn_recv", "syn_sent", "fin_wait1", "exhaust" or "udp"
	Proto sockets.Proto
	Host  string // address the sockets use, as given to the builder
	Port  uint16 // server port
	// Local counts by state the sockets whose local port is Port: listeners
	// and server sides.
	Local sockets.Counts
	// Peer counts by state the client sides, whose remote port is Port.
	Peer sockets.Counts
}

// Family is 4 or 6: the address family of the sockets (IPv4-mapped
// addresses are used by AF_INET6 sockets, so 6).
func (h Held) Family() sockets.Family {
	if netip.MustParseAddr(h.Host).Is4() {
		return sockets.FamilyV4
	}
	return sockets.FamilyV6
}

// All is Local + Peer.
func (h Held) All() sockets.Counts {
	c := h.Local
	for i := range c {
		c[i] += h.Peer[i]
	}
	return c
}

// nextPort hands out a fresh server port.
func (ns *NS) nextPort() uint16 { return uint16(ns.port.Add(1)) }

// sockaddr converts host:port; a non-IPv4 host (IPv6 or IPv4-mapped) gives
// an AF_INET6 address.
func sockaddr(host string, port uint16) (int, unix.Sockaddr, error) {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return 0, nil, fmt.Errorf("address %q: %w", host, err)
	}
	if a.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}, nil
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(port), Addr: a.As16()}, nil
}

// listenFD opens a listener on host:port with the given backlog; reusePort
// lets several listeners share the port.
func listenFD(host string, port uint16, backlog int, reusePort bool) (int, error) {
	dom, sa, err := sockaddr(host, port)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval(ioTimeout.Nanoseconds())
	err = errors.Join(
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv), // accept
	)
	if err == nil && reusePort {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err == nil {
		err = unix.Bind(fd, sa)
	}
	if err == nil {
		err = unix.Listen(fd, backlog)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s port %d: %w", host, port, err)
	}
	return fd, nil
}

// connectFD connects to host:port. With wait false the connect is
// non-blocking and may still be in progress.
func connectFD(host string, port uint16, wait bool) (int, error) {
	dom, sa, err := sockaddr(host, port)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval(ioTimeout.Nanoseconds())
	err = errors.Join(
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv), // connect
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
	)
	if err == nil && !wait {
		err = unix.SetNonblock(fd, true)
	}
	if err == nil {
		err = unix.Connect(fd, sa)
		switch {
		case !wait && errors.Is(err, unix.EINPROGRESS):
			err = nil
		case wait && errors.Is(err, unix.EINTR):
			// A signal interrupted the wait; the handshake goes on.
			err = waitConnected(fd)
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect to %s port %d: %w", host, port, err)
	}
	return fd, nil
}

// waitConnected waits (bounded) for a connect in progress on fd to end and
// returns its result.
func waitConnected(fd int) error {
	deadline := time.Now().Add(ioTimeout)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(max(time.Until(deadline), 0).Milliseconds()))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		case n == 0:
			return unix.ETIMEDOUT
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}

// acceptFD accepts one connection (bounded by the listener's timeout).
func acceptFD(lfd int) (int, error) {
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("accept: %w", err)
		}
		return fd, nil
	}
}

// readEOF waits (bounded) until the peer's FIN arrived on fd.
func readEOF(fd int) error {
	var b [64]byte
	for {
		n, err := unix.Read(fd, b[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("wait for FIN: %w", err)
		case n == 0:
			return nil
		}
	}
}

// pairs opens n connections to a listener on host:port, in batches, and
// calls each for every (client, server) pair of a batch, then after with the
// batch's clients. Every fd is held by ns from its creation; callbacks close
// early with ns.Close.
func (ns *NS) pairs(host string, port uint16, n int, each func(c, s int) error, after func(cs []int) error) error {
	lfd, err := listenFD(host, port, min(n, batch)+16, false)
	if err != nil {
		return err
	}
	ns.hold(lfd)
	for done := 0; done < n; {
		k := min(batch, n-done)
		cs := make([]int, 0, k)
		for range k {
			c, err := connectFD(host, port, true)
			if err != nil {
				return err
			}
			ns.hold(c)
			cs = append(cs, c)
		}
		for _, c := range cs {
			s, err := acceptFD(lfd)
			if err != nil {
				return err
			}
			ns.hold(s)
			if err := each(c, s); err != nil {
				return err
			}
		}
		if after != nil {
			if err := after(cs); err != nil {
				return err
			}
		}
		done += k
	}
	return nil
}

// build runs make on a thread in the namespace, then waits until ss shows
// h's counts.
func (ns *NS) build(h Held, make func() error) (Held, error) {
	if err := ns.Do(make); err != nil {
		return h, fmt.Errorf("build sockets on %s port %d: %w", h.Host, h.Port, err)
	}
	return h, ns.waitHeld(h)
}

// Listen holds n listeners sharing one port (SO_REUSEPORT).
func (ns *NS) Listen(host string, n int) (Held, error) {
	h := Held{Kind: "listen", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = uint64(n)
	return ns.build(h, func() error {
		for range n {
			fd, err := listenFD(host, h.Port, 128, true)
			if err != nil {
				return err
			}
			ns.hold(fd)
		}
		return nil
	})
}

// Pending holds one listener with the given backlog and n connections
// waiting in its accept queue (ss -l: Recv-Q n, Send-Q backlog). The queued
// server sides are ESTABLISHED, as are the clients.
func (ns *NS) Pending(host string, backlog, n int) (Held, error) {
	h := Held{Kind: "pending", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.Established] = uint64(n)
	h.Peer[sockets.Established] = uint64(n)
	return ns.build(h, func() error {
		lfd, err := listenFD(host, h.Port, backlog, false)
		if err != nil {
			return err
		}
		ns.hold(lfd)
		for range n {
			c, err := connectFD(host, h.Port, true)
			if err != nil {
				return err
			}
			ns.hold(c)
		}
		return nil
	})
}

// Established holds n connections, both ends open: n ESTABLISHED server
// sides and n ESTABLISHED clients, plus the listener.
func (ns *NS) Established(host string, n int) (Held, error) {
	h := Held{Kind: "established", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.Established] = uint64(n)
	h.Peer[sockets.Established] = uint64(n)
	return ns.build(h, func() error {
		return ns.pairs(host, h.Port, n, func(int, int) error { return nil }, nil)
	})
}

// CloseWait holds n connections whose client called shutdown(SHUT_WR) and
// kept its fd: n CLOSE_WAIT server sides and n FIN_WAIT2 clients (which
// never time out), plus the listener.
func (ns *NS) CloseWait(host string, n int) (Held, error) {
	h := Held{Kind: "close_wait", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.CloseWait] = uint64(n)
	h.Peer[sockets.FinWait2] = uint64(n)
	return ns.build(h, func() error {
		return ns.pairs(host, h.Port, n, func(c, _ int) error {
			return unix.Shutdown(c, unix.SHUT_WR)
		}, nil)
	})
}

// OrphanFinWait2 makes n connections whose client called close() while the
// server keeps its fd: n CLOSE_WAIT server sides and n orphaned FIN_WAIT2
// clients, which the kernel turns into time-wait entries reporting the
// FIN_WAIT2 substate (no fd, no inode), plus the listener. To get them it
// lowers the namespace's tcp_fin_timeout to 60 s, their lifetime.
func (ns *NS) OrphanFinWait2(host string, n int) (Held, error) {
	h := Held{Kind: "orphan_fin_wait2", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.CloseWait] = uint64(n)
	h.Peer[sockets.FinWait2] = uint64(n)
	if err := ns.Sysctl("net.ipv4.tcp_fin_timeout", "60"); err != nil {
		return h, err
	}
	return ns.build(h, func() error {
		return ns.pairs(host, h.Port, n, func(c, _ int) error { return ns.Close(c) }, nil)
	})
}

// closeServer closes the server side first.
func (ns *NS) closeServer(_, s int) error { return ns.Close(s) }

// finishClients waits for each client to see its server's FIN, then closes
// it.
func (ns *NS) finishClients(cs []int) error {
	for _, c := range cs {
		if err := readEOF(c); err != nil {
			return err
		}
		if err := ns.Close(c); err != nil {
			return err
		}
	}
	return nil
}

// TimeWait makes n connections the server closes first: n TIME_WAIT server
// sides, plus the listener. They last 60 s (not tunable); use LastAck to
// hold TIME_WAIT longer. No fd is held.
func (ns *NS) TimeWait(host string, n int) (Held, error) {
	h := Held{Kind: "time_wait", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.TimeWait] = uint64(n)
	return ns.build(h, func() error {
		return ns.pairs(host, h.Port, n, ns.closeServer, ns.finishClients)
	})
}

// LastAck makes n connections the server closes first while nftables drops
// the server's final ACK: n TIME_WAIT server sides and n LAST_ACK clients,
// plus the listener. The clients' FIN retransmissions restart the TIME_WAIT
// timers, so both last as long as the drop rule (the namespace's
// tcp_rto_max_ms keeps retransmissions under 60 s apart). No fd is held
// but the listener's.
func (ns *NS) LastAck(host string, n int) (Held, error) {
	h := Held{Kind: "last_ack", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.TimeWait] = uint64(n)
	h.Peer[sockets.LastAck] = uint64(n)
	if err := ns.Drop(fmt.Sprintf("tcp sport %d tcp flags & (fin | syn | rst | ack) == ack", h.Port)); err != nil {
		return h, err
	}
	return ns.build(h, func() error {
		return ns.pairs(host, h.Port, n, ns.closeServer, ns.finishClients)
	})
}

// SynRecv makes n half-open connections: nftables drops the client's final
// handshake ACK (syncookies are off), so the listener holds n SYN_RECV
// request sockets while the n clients are ESTABLISHED.
func (ns *NS) SynRecv(host string, n int) (Held, error) {
	h := Held{Kind: "syn_recv", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.SynRecv] = uint64(n)
	h.Peer[sockets.Established] = uint64(n)
	if err := ns.Drop(fmt.Sprintf("tcp dport %d tcp flags & (fin | syn | rst | ack) == ack", h.Port)); err != nil {
		return h, err
	}
	return ns.build(h, func() error {
		lfd, err := listenFD(host, h.Port, n+16, false)
		if err != nil {
			return err
		}
		ns.hold(lfd)
		for range n {
			c, err := connectFD(host, h.Port, true)
			if err != nil {
				return err
			}
			ns.hold(c)
		}
		return nil
	})
}

// SynSent makes n clients whose SYN nftables drops: n SYN_SENT sockets
// connecting to Port, where nothing listens.
func (ns *NS) SynSent(host string, n int) (Held, error) {
	h := Held{Kind: "syn_sent", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Peer[sockets.SynSent] = uint64(n)
	if err := ns.Drop(fmt.Sprintf("tcp dport %d tcp flags & (syn | ack) == syn", h.Port)); err != nil {
		return h, err
	}
	return ns.build(h, func() error {
		for range n {
			c, err := connectFD(host, h.Port, false)
			if err != nil {
				return err
			}
			ns.hold(c)
		}
		return nil
	})
}

// FinWait1 holds n connections whose client sent a FIN that nftables drops:
// n FIN_WAIT1 clients and n ESTABLISHED server sides, plus the listener.
func (ns *NS) FinWait1(host string, n int) (Held, error) {
	h := Held{Kind: "fin_wait1", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.Established] = uint64(n)
	h.Peer[sockets.FinWait1] = uint64(n)
	if err := ns.Drop(fmt.Sprintf("tcp dport %d tcp flags & fin == fin", h.Port)); err != nil {
		return h, err
	}
	return ns.build(h, func() error {
		return ns.pairs(host, h.Port, n, func(c, _ int) error {
			return unix.Shutdown(c, unix.SHUT_WR)
		}, nil)
	})
}

// BindUDP holds n UDP sockets bound to one port (SO_REUSEPORT). An
// unconnected UDP socket is in state CLOSE (ss: UNCONN).
func (ns *NS) BindUDP(host string, n int) (Held, error) {
	h := Held{Kind: "udp", Proto: sockets.UDP, Host: host, Port: ns.nextPort()}
	h.Local[sockets.Close] = uint64(n)
	return ns.build(h, func() error {
		dom, sa, err := sockaddr(host, h.Port)
		if err != nil {
			return err
		}
		for range n {
			fd, err := unix.Socket(dom, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			ns.hold(fd)
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return err
			}
			if err := unix.Bind(fd, sa); err != nil {
				return fmt.Errorf("bind UDP %s port %d: %w", host, h.Port, err)
			}
		}
		return nil
	})
}

// ssStateNames are ss's names for the states, as its "state" filter takes
// them.
var ssStateNames = [...]string{
	sockets.Established: "established",
	sockets.SynSent:     "syn-sent",
	sockets.SynRecv:     "syn-recv",
	sockets.FinWait1:    "fin-wait-1",
	sockets.FinWait2:    "fin-wait-2",
	sockets.TimeWait:    "time-wait",
	sockets.Close:       "closed",
	sockets.CloseWait:   "close-wait",
	sockets.LastAck:     "last-ack",
	sockets.Listen:      "listening",
	sockets.Closing:     "closing",
}

// ssColumnStates maps ss's State column to states.
var ssColumnStates = map[string]sockets.State{
	"ESTAB":      sockets.Established,
	"SYN-SENT":   sockets.SynSent,
	"SYN-RECV":   sockets.SynRecv,
	"FIN-WAIT-1": sockets.FinWait1,
	"FIN-WAIT-2": sockets.FinWait2,
	"TIME-WAIT":  sockets.TimeWait,
	"UNCONN":     sockets.Close,
	"CLOSE-WAIT": sockets.CloseWait,
	"LAST-ACK":   sockets.LastAck,
	"LISTEN":     sockets.Listen,
	"CLOSING":    sockets.Closing,
}

// SSState is ss's filter name of a state ("time-wait", "listening", ...).
func SSState(s sockets.State) string {
	if int(s) < len(ssStateNames) && ssStateNames[s] != "" {
		return ssStateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// SSCounts runs `ss -H args...` for one protocol (e.g. "-tan", "sport", "=",
// ":80") and counts the listed sockets by their State column.
func (ns *NS) SSCounts(args ...string) (sockets.Counts, error) {
	var c sockets.Counts
	out, err := ns.SS(append([]string{"-H"}, args...)...)
	if err != nil {
		return c, err
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		st, ok := ssColumnStates[f[0]]
		if !ok {
			return c, fmt.Errorf("ss %s: unknown state in %q", strings.Join(args, " "), l)
		}
		c[st]++
	}
	return c, nil
}

// SSByPort runs `ss -H args...` for one protocol (e.g. "-tan") and counts
// the listed sockets by local port and State column.
func (ns *NS) SSByPort(args ...string) (map[uint16]sockets.Counts, error) {
	out, err := ns.SS(append([]string{"-H"}, args...)...)
	if err != nil {
		return nil, err
	}
	m := map[uint16]sockets.Counts{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		st, ok := ssColumnStates[f[0]]
		i := strings.LastIndexByte(f[3], ':')
		port, err := strconv.ParseUint(f[3][i+1:], 10, 16)
		if !ok || i < 0 || err != nil {
			return nil, fmt.Errorf("ss %s: cannot read %q", strings.Join(args, " "), l)
		}
		c := m[uint16(port)]
		c[st]++
		m[uint16(port)] = c
	}
	return m, nil
}

// waitHeld waits until ss shows exactly h's counts on both sides of h.Port.
func (ns *NS) waitHeld(h Held) error {
	proto := "-tan"
	if h.Proto == sockets.UDP {
		proto = "-uan"
	}
	port := ":" + strconv.Itoa(int(h.Port))
	deadline := time.Now().Add(settleTimeout)
	for {
		out, err := ns.SS("-H", proto, "(", "sport", "=", port, "or", "dport", "=", port, ")")
		if err != nil {
			return err
		}
		var local, peer sockets.Counts
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 5 {
				continue
			}
			st, ok := ssColumnStates[f[0]]
			if !ok {
				return fmt.Errorf("ss: unknown state in %q", l)
			}
			if strings.HasSuffix(f[3], port) {
				local[st]++
			} else {
				peer[st]++
			}
		}
		if local == h.Local && peer == h.Peer {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ss on port %d after %v: local %v peer %v, want local %v peer %v",
				h.Port, settleTimeout, nonZero(local), nonZero(peer), nonZero(h.Local), nonZero(h.Peer))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nonZero formats the non-zero counts as "state=N ...".
func nonZero(c sockets.Counts) string {
	var b strings.Builder
	for st, n := range c {
		if n != 0 {
			fmt.Fprintf(&b, "%v=%d ", sockets.State(st), n)
		}
	}
	return strings.TrimSpace(b.String())
}

// ExhaustPorts makes connections from host to one new listener on host
// until connect fails with EADDRNOTAVAIL: every local port connect() may
// pick for that destination is taken. The first tw connections are closed
// by the client first (then by the server), so their client sides hold
// their ports in TIME_WAIT; set net.ipv4.tcp_tw_reuse to 0 beforehand, or
// connect may take those ports over. It fails if connect succeeds max
// times or fails otherwise. The result counts n-tw ESTABLISHED pairs plus
// the listener on the server side, n-tw ESTABLISHED and tw TIME_WAIT
// client sides, n in all (Peer.Total()).
func (ns *NS) ExhaustPorts(host string, tw, max int) (Held, error) {
	h := Held{Kind: "exhaust", Proto: sockets.TCP, Host: host, Port: ns.nextPort()}
	n := 0
	err := ns.Do(func() error {
		lfd, err := listenFD(host, h.Port, max+16, false)
		if err != nil {
			return err
		}
		ns.hold(lfd)
		for n = 0; ; n++ {
			if n == max {
				return fmt.Errorf("%d connections to %s port %d without EADDRNOTAVAIL", max, host, h.Port)
			}
			c, err := connectFD(host, h.Port, true)
			if errors.Is(err, unix.EADDRNOTAVAIL) {
				return nil
			}
			if err != nil {
				return err
			}
			ns.hold(c)
			s, err := acceptFD(lfd)
			if err != nil {
				return err
			}
			ns.hold(s)
			if n < tw {
				if err := ns.Close(c); err != nil {
					return err
				}
				if err := readEOF(s); err != nil {
					return err
				}
				if err := ns.Close(s); err != nil {
					return err
				}
			}
		}
	})
	if err != nil {
		return h, fmt.Errorf("exhaust ports to %s port %d: %w", host, h.Port, err)
	}
	if n < tw {
		return h, fmt.Errorf("only %d ports for %s port %d, fewer than the %d to leave in TIME_WAIT", n, host, h.Port, tw)
	}
	h.Local[sockets.Listen] = 1
	h.Local[sockets.Established] = uint64(n - tw)
	h.Peer[sockets.Established] = uint64(n - tw)
	h.Peer[sockets.TimeWait] = uint64(tw)
	return h, ns.waitHeld(h)
}
