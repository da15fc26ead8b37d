// Package nlcount is the reference TCP socket counter of the benchmarks: one
// legacy TCPDIAG_GETSOCK dump (AF_UNSPEC, both families in one kernel walk)
// counted in place, optionally filtered in the kernel by a state mask or a
// local-port bytecode program. It is deliberately minimal (no decoding beyond
// the state byte and the local port), so its cost is what the kernel charges
// for the walk plus a floor of user-space work.
package nlcount

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Netlink and inet_diag constants (linux/inet_diag.h, linux/netlink.h).
const (
	tcpdiagGetsock    = 18 // legacy request type; one walk for both families
	inetDiagBytecode  = 1  // INET_DIAG_REQ_BYTECODE attribute
	bcSEq             = 11 // INET_DIAG_BC_S_EQ: local port ==
	nlmsgHdrLen       = 16
	inetDiagReqLen    = 60 // struct inet_diag_req
	inetDiagMsgLen    = 72 // struct inet_diag_msg
	stateMaskOffset   = 52 // idiag_states inside inet_diag_req
	recvBufSize       = 64 << 10
	maxTrackedStateNo = 15
)

// AllStates is the mask of every TCP state the kernel reports (bits 1-11).
const AllStates uint32 = 0xffe

// Counts holds per-state counts indexed by the kernel state number.
type Counts [maxTrackedStateNo + 1]uint64

// Total is the sum over every state.
func (c *Counts) Total() uint64 {
	var t uint64
	for _, n := range c {
		t += n
	}
	return t
}

// Filter narrows a dump in the kernel.
type Filter struct {
	// States is the kernel state mask (bit 1<<state); 0 means AllStates.
	States uint32
	// LocalPort, when non-zero, adds a bytecode program "sport == LocalPort".
	LocalPort uint16
}

// Counter owns one NETLINK_SOCK_DIAG socket and a reused receive buffer.
// The socket belongs to the network namespace of the thread that opened it.
type Counter struct {
	fd  int
	buf []byte
	seq uint32
}

// Open creates the netlink socket.
func Open() (*Counter, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &Counter{fd: fd, buf: make([]byte, recvBufSize)}, nil
}

// Close releases the socket.
func (c *Counter) Close() error { return unix.Close(c.fd) }

// request builds the TCPDIAG_GETSOCK dump request for f.
func (c *Counter) request(f Filter) []byte {
	c.seq++
	states := f.States
	if states == 0 {
		states = AllStates
	}
	var attr []byte
	if f.LocalPort != 0 {
		// [S_EQ yes=8 no=12][operand: port in host order]: accept on match
		// (lands on the end), reject otherwise (4 bytes past the end).
		prog := []byte{bcSEq, 8, 12, 0, 0, 0, 0, 0}
		binary.NativeEndian.PutUint16(prog[6:], f.LocalPort)
		attr = make([]byte, 4+len(prog))
		binary.NativeEndian.PutUint16(attr[0:], uint16(len(attr)))
		binary.NativeEndian.PutUint16(attr[2:], inetDiagBytecode)
		copy(attr[4:], prog)
	}
	n := nlmsgHdrLen + inetDiagReqLen + len(attr)
	b := make([]byte, n)
	binary.NativeEndian.PutUint32(b[0:], uint32(n))
	binary.NativeEndian.PutUint16(b[4:], tcpdiagGetsock)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(b[8:], c.seq)
	req := b[nlmsgHdrLen:]
	req[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(req[stateMaskOffset:], states)
	copy(b[nlmsgHdrLen+inetDiagReqLen:], attr)
	return b
}

// Count runs one dump with filter f and counts the replies by state.
func (c *Counter) Count(f Filter) (Counts, error) {
	var counts Counts
	err := c.Walk(f, func(state uint8, _ uint16) { counts[state&maxTrackedStateNo]++ })
	return counts, err
}

// Walk runs one dump with filter f and calls visit with the state and local
// port of every socket, with no per-socket allocation.
func (c *Counter) Walk(f Filter, visit func(state uint8, localPort uint16)) error {
	if err := unix.Sendto(c.fd, c.request(f), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	for {
		n, err := unix.Read(c.fd, c.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink read: %w", err)
		}
		b := c.buf[:n]
		for len(b) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			typ := binary.NativeEndian.Uint16(b[4:])
			if l < nlmsgHdrLen || l > len(b) {
				return fmt.Errorf("netlink: bad message length %d", l)
			}
			switch typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if l >= nlmsgHdrLen+4 {
					if e := int32(binary.NativeEndian.Uint32(b[nlmsgHdrLen:])); e != 0 {
						return fmt.Errorf("netlink dump: %w", os.NewSyscallError("sock_diag", unix.Errno(-e)))
					}
				}
				return nil
			case tcpdiagGetsock:
				if l >= nlmsgHdrLen+inetDiagMsgLen {
					m := b[nlmsgHdrLen:]
					visit(m[1], binary.BigEndian.Uint16(m[4:]))
				}
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}

// OpenInNetns creates the netlink socket inside the network namespace bound
// at nsPath (e.g. /run/netns/<name>), from a dedicated OS thread that is
// thrown away afterwards, so the caller's threads never change namespace.
func OpenInNetns(nsPath string) (*Counter, error) {
	type result struct {
		c   *Counter
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked and exits with the goroutine: it is never
		// returned to the scheduler in the other namespace.
		lockThread()
		ns, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("open %s: %w", nsPath, err)}
			return
		}
		defer unix.Close(ns)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		c, err := Open()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
