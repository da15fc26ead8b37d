package sockets

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Netlink sock_diag constants (include/uapi/linux/sock_diag.h, inet_diag.h).
const (
	// tcpDiagGetSock is the legacy TCPDIAG_GETSOCK request: the old
	// inet_diag_req, family forced to AF_UNSPEC, one walk for both families.
	tcpDiagGetSock = 18
	// sockDiagByFamily is SOCK_DIAG_BY_FAMILY with inet_diag_req_v2.
	sockDiagByFamily = unix.SOCK_DIAG_BY_FAMILY

	nlmsgHdrLen   = 16 // struct nlmsghdr
	diagMsgLen    = 72 // struct inet_diag_msg
	reqV2Len      = 56 // struct inet_diag_req_v2
	reqLegacyLen  = 60 // struct inet_diag_req
	bytecodeLen   = 12 // nlattr + S_EQ op + operand word
	attrBytecode  = 1  // INET_DIAG_REQ_BYTECODE
	bcJmpSEq      = 11 // INET_DIAG_BC_S_EQ
	legacyMaskOff = 52 // idiag_states in struct inet_diag_req
	// attrCgroupID is INET_DIAG_CGROUP_ID: a u64 the kernel adds to every
	// full socket's message unasked (Linux 5.7+, CONFIG_CGROUPS); time-wait
	// and request sockets carry no attributes.
	attrCgroupID = 21

	// recvBufSize holds a whole batch: the kernel caps dump batches at
	// SKB_WITH_OVERHEAD(32768) bytes whatever the receive buffer.
	recvBufSize = 32 << 10
	// recvTimeout bounds one receive when the context has no earlier
	// deadline, so a stuck dump cannot hang a walk forever.
	recvTimeout = 5 * time.Second
	// kernelMask is the dump mask for "every state": bits 1..11. The kernel
	// adds NEW_SYN_RECV itself when SYN_RECV is asked; BOUND_INACTIVE (13)
	// is left out so bound-only sockets stay invisible, as in /proc.
	kernelMask = uint32(AllStates)
)

// Legacy request support, remembered per source.
const (
	legacyUnknown int32 = iota
	legacyWorks
	legacyRefused
)

// netlinkSource dumps sockets with NETLINK_SOCK_DIAG. It opens one netlink
// socket per walk in the network namespace of the calling thread; the receive
// buffers come from a pool, so concurrent walks are safe.
type netlinkSource struct {
	legacy atomic.Int32 // legacyUnknown, legacyWorks or legacyRefused
	bufs   sync.Pool    // *nlWalker
	// dial opens the socket of one walk; nil is the kernel's (sysDial).
	// Tests put a scripted kernel here to reach every fallback path.
	dial func(ctx context.Context, w *nlWalker) (diagConn, error)
}

// diagConn is one NETLINK_SOCK_DIAG socket as a walk uses it: the seam
// between the walk and the system calls. sysConn is the kernel's.
type diagConn interface {
	// send writes one request.
	send(req []byte) error
	// recv reads one datagram into b and returns its full length, more
	// than len(b) if it was truncated. Errors are the syscall's errno:
	// EINTR, and EAGAIN at the receive timeout.
	recv(b []byte) (int, error)
	close() error
}

// NewNetlink returns the netlink sock_diag source. It sees the sockets of the
// network namespace of the thread that calls Walk and needs no privilege.
// TCP over both families uses the legacy TCPDIAG_GETSOCK request (one walk of
// the kernel table) and switches to two SOCK_DIAG_BY_FAMILY requests for good
// if the kernel refuses it. A walk checks its context between batches, and
// one receive waits at most until the context's deadline or 5 s.
func NewNetlink() Source {
	s := &netlinkSource{}
	s.bufs.New = func() any { return new(nlWalker) }
	return s
}

// Name returns "netlink".
func (*netlinkSource) Name() string { return "netlink" }

// nlWalker is the per-walk state: receive buffer, request buffer and the one
// Socket handed to the visitor. Pooled, so a walk allocates nothing per
// socket or per batch.
type nlWalker struct {
	buf   [recvBufSize]byte
	req   [nlmsgHdrLen + reqLegacyLen + bytecodeLen]byte
	sys   sysConn // the socket sysDial opens, kept here so a walk allocates none
	sock  Socket
	q     Query
	mask  StateMask
	visit func(*Socket)
	seq   uint32
	seen  uint64 // sockets visited in this walk
}

// Walk dumps the sockets matching q; see Source.
func (s *netlinkSource) Walk(ctx context.Context, q Query, visit func(*Socket)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if q.Proto == 0 {
		q.Proto = TCP
	}
	if q.Proto != TCP && q.Proto != UDP {
		return fmt.Errorf("netlink: unknown protocol %d", q.Proto)
	}
	w := s.bufs.Get().(*nlWalker)
	defer func() {
		w.visit = nil
		s.bufs.Put(w)
	}()
	w.q, w.visit, w.seen, w.seq = q, visit, 0, 0
	w.mask = q.States & AllStates
	if q.States == 0 {
		w.mask = AllStates
	}
	if w.mask == 0 {
		return nil // no reportable state asked
	}

	dial := s.dial
	if dial == nil {
		dial = sysDial
	}
	c, err := dial(ctx, w)
	if err != nil {
		return err
	}
	defer c.close()

	if q.Proto == TCP && q.Family == FamilyAll && s.legacy.Load() != legacyRefused {
		err := w.dump(ctx, c, tcpDiagGetSock, unix.AF_UNSPEC)
		if err == nil {
			s.legacy.CompareAndSwap(legacyUnknown, legacyWorks)
			return nil
		}
		ke, ok := asKernelError(err)
		if !ok || w.seen != 0 || s.legacy.Load() == legacyWorks {
			return err
		}
		switch {
		case ke.refused():
			// The legacy form is gone: use the documented one from now on.
			s.legacy.Store(legacyRefused)
		case ke.errno != unix.EACCES && ke.errno != unix.EPERM:
			return err
		}
	}
	for _, fam := range [...]Family{FamilyV4, FamilyV6} {
		if q.Family != FamilyAll && q.Family != fam {
			continue
		}
		af := uint8(unix.AF_INET)
		if fam == FamilyV6 {
			af = unix.AF_INET6
		}
		seen := w.seen
		err := w.dump(ctx, c, sockDiagByFamily, af)
		if ke, ok := asKernelError(err); ok && w.seen == seen {
			switch {
			case fam == FamilyV6 && ke.errno == unix.ENOENT:
				// No IPv6 diag handler: a kernel without IPv6 has no such
				// sockets, as a missing /proc/net/tcp6 says.
				continue
			case ke.unsupported() && w.seen == 0:
				return fmt.Errorf("%w: %w", ErrUnsupported, err)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sysDial opens the walk's NETLINK_SOCK_DIAG socket in the calling thread's
// network namespace with a receive timeout bounded by ctx's deadline.
func sysDial(ctx context.Context, w *nlWalker) (diagConn, error) {
	fd, err := openDiag(ctx)
	if err != nil {
		return nil, err
	}
	w.sys.fd = fd
	return &w.sys, nil
}

// openDiag opens a NETLINK_SOCK_DIAG socket in the calling thread's network
// namespace with a receive timeout bounded by ctx's deadline.
func openDiag(ctx context.Context) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, openFailed(err)
	}
	timeout := recvTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(d), time.Millisecond))
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set netlink receive timeout: %w", err)
	}
	return fd, nil
}

// openFailed is the error of a walk whose socket(2) failed with err.
func openFailed(err error) error {
	return fmt.Errorf("open netlink sock_diag socket: %w", unsupported(err))
}

// sysConn is a diagConn over a netlink socket.
type sysConn struct{ fd int }

func (c *sysConn) send(req []byte) error {
	_, err := unix.Write(c.fd, req)
	return err
}

// recv reads with MSG_TRUNC; unlike unix.Recvfrom it allocates nothing.
func (c *sysConn) recv(b []byte) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(c.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_TRUNC, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (c *sysConn) close() error { return unix.Close(c.fd) }

// unsupported wraps ErrUnsupported around the errors that say this system
// will not serve sock_diag to us.
func unsupported(err error) error {
	switch {
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT),
		errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return err
}

// kernelError is an errno the kernel returned in NLMSG_ERROR or NLMSG_DONE.
type kernelError struct {
	errno unix.Errno
}

func (e kernelError) Error() string { return "netlink sock_diag: " + e.errno.Error() }
func (e kernelError) Unwrap() error { return e.errno }

// asKernelError finds a kernelError in err's chain as errors.As does,
// without making a walk allocate for the target.
func asKernelError(err error) (kernelError, bool) {
	for ; err != nil; err = errors.Unwrap(err) {
		if ke, ok := err.(kernelError); ok {
			return ke, true
		}
	}
	return kernelError{}, false
}

// refused reports whether the errno means "this request form is not
// served" (a kernel without the legacy request answers EINVAL or
// EOPNOTSUPP) rather than a failure of the dump itself.
func (e kernelError) refused() bool {
	switch e.errno {
	case unix.EINVAL, unix.EOPNOTSUPP, unix.ENOENT, unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT:
		return true
	}
	return false
}

// unsupported reports whether the errno to a SOCK_DIAG_BY_FAMILY request
// means this system does not serve it: no diag handler for the family or
// protocol (ENOENT), or a security policy refusing it. EINVAL, a malformed
// request, is not one.
func (e kernelError) unsupported() bool {
	switch e.errno {
	case unix.ENOENT, unix.EOPNOTSUPP, unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT, unix.EACCES, unix.EPERM:
		return true
	}
	return false
}

// dump sends one dump request and feeds every reply to the visitor until
// NLMSG_DONE.
func (w *nlWalker) dump(ctx context.Context, c diagConn, typ uint16, family uint8) error {
	w.seq++
	req := w.request(typ, family)
	if err := c.send(req); err != nil {
		return fmt.Errorf("send netlink sock_diag request: %w", unsupported(err))
	}
	return w.receive(ctx, c)
}

// receive reads batches of the dump in flight until NLMSG_DONE, an error, the
// end of ctx or a receive timeout.
func (w *nlWalker) receive(ctx context.Context, c diagConn) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := c.recv(w.buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return fmt.Errorf("netlink sock_diag: no reply within the receive timeout: %w", context.DeadlineExceeded)
		case err != nil:
			return fmt.Errorf("receive netlink sock_diag reply: %w", err)
		case n > len(w.buf):
			return fmt.Errorf("netlink sock_diag: batch of %d bytes exceeds the %d-byte buffer", n, len(w.buf))
		case n == 0:
			return errors.New("netlink sock_diag: empty reply")
		}
		done, err := w.parse(w.buf[:n])
		if err != nil || done {
			return err
		}
	}
}

// request builds the dump request into w.req: the nlmsghdr, the legacy
// inet_diag_req or inet_diag_req_v2, and a local-port bytecode filter when
// the query has a port.
func (w *nlWalker) request(typ uint16, family uint8) []byte {
	b := w.req[:]
	clear(b)
	ne := binary.NativeEndian
	n := nlmsgHdrLen
	if typ == tcpDiagGetSock {
		// struct inet_diag_req: family, src_len, dst_len, ext, id (48),
		// states at 52, dbs at 56. The kernel treats the family as AF_UNSPEC.
		b[n] = family
		ne.PutUint32(b[n+legacyMaskOff:], uint32(w.mask))
		n += reqLegacyLen
	} else {
		// struct inet_diag_req_v2: family, protocol, ext, pad, states, id.
		b[n] = family
		b[n+1] = uint8(w.q.Proto)
		ne.PutUint32(b[n+4:], uint32(w.mask))
		n += reqV2Len
	}
	if p := w.q.LocalPort; p != 0 {
		// nlattr{len, type} then [S_EQ yes=8 no=12][operand: port, host order]:
		// a match lands on the end of the program (accept), a miss 4 bytes
		// past it (reject).
		ne.PutUint16(b[n:], bytecodeLen)
		ne.PutUint16(b[n+2:], attrBytecode)
		b[n+4], b[n+5] = bcJmpSEq, 8
		ne.PutUint16(b[n+6:], 12)
		ne.PutUint16(b[n+10:], p)
		n += bytecodeLen
	}
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], w.seq)
	return b[:n]
}

// parse walks the netlink messages of one batch, visiting every socket that
// matches the query. It reports done at NLMSG_DONE. Malformed input gives an
// error, never a panic.
func (w *nlWalker) parse(b []byte) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, fmt.Errorf("netlink sock_diag: truncated message header (%d bytes)", len(b))
		}
		l := int(ne.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("netlink sock_diag: message length %d outside the %d bytes left", l, len(b))
		}
		typ := ne.Uint16(b[4:6])
		msg := b[:l]
		b = b[min((l+3)&^3, len(b)):]
		if seq := ne.Uint32(msg[8:12]); seq != w.seq {
			return false, fmt.Errorf("netlink sock_diag: reply to request %d while waiting for %d", seq, w.seq)
		}
		switch typ {
		case unix.NLMSG_NOOP:
			continue
		case unix.NLMSG_DONE:
			// A dump that failed half-way says so in the DONE payload.
			if l >= nlmsgHdrLen+4 {
				if e := int32(ne.Uint32(msg[nlmsgHdrLen:])); e < 0 {
					return false, kernelError{unix.Errno(-e)}
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if l < nlmsgHdrLen+4 {
				return false, errors.New("netlink sock_diag: truncated error message")
			}
			e := int32(ne.Uint32(msg[nlmsgHdrLen:]))
			if e == 0 {
				return true, nil // acknowledgement
			}
			if e > 0 {
				return false, fmt.Errorf("netlink sock_diag: error message with positive code %d", e)
			}
			return false, kernelError{unix.Errno(-e)}
		case unix.NLMSG_OVERRUN:
			return false, errors.New("netlink sock_diag: overrun, data lost")
		case tcpDiagGetSock, sockDiagByFamily:
			if err := w.socket(msg[nlmsgHdrLen:]); err != nil {
				return false, err
			}
		default:
			return false, fmt.Errorf("netlink sock_diag: unexpected message type %d", typ)
		}
	}
	return false, nil
}

// socket decodes one inet_diag_msg and visits it if it matches the query.
// Layout: family 0, state 1, timer 2, retrans 3, id 4..52 (sport 4, dport 6,
// src 8..24, dst 24..40, if 40, cookie 44), expires 52, rqueue 56, wqueue 60,
// uid 64, inode 68.
func (w *nlWalker) socket(m []byte) error {
	if len(m) < diagMsgLen {
		return fmt.Errorf("netlink sock_diag: socket message of %d bytes, want at least %d", len(m), diagMsgLen)
	}
	var fam Family
	switch m[0] {
	case unix.AF_INET:
		fam = FamilyV4
	case unix.AF_INET6:
		fam = FamilyV6
	default:
		return fmt.Errorf("netlink sock_diag: unexpected address family %d", m[0])
	}
	st := State(m[1])
	port := binary.BigEndian.Uint16(m[4:6])
	// The kernel already filtered; this keeps the result exact whatever it
	// did with the request.
	if st > MaxState || w.mask&(1<<st) == 0 ||
		(w.q.LocalPort != 0 && port != w.q.LocalPort) ||
		(w.q.Family != FamilyAll && w.q.Family != fam) {
		return nil
	}
	s := &w.sock
	*s = Socket{Family: fam, State: st, LocalPort: port}
	if f := w.q.Fields; f != 0 {
		if f&FieldLocalAddr != 0 {
			s.LocalAddr = diagAddr(fam, m[8:24])
		}
		if f&FieldRemote != 0 {
			s.RemotePort = binary.BigEndian.Uint16(m[6:8])
			s.RemoteAddr = diagAddr(fam, m[24:40])
		}
		if f&FieldQueues != 0 {
			s.RQueue = binary.NativeEndian.Uint32(m[56:60])
			s.WQueue = binary.NativeEndian.Uint32(m[60:64])
		}
		if f&FieldInode != 0 {
			s.Inode = uint64(binary.NativeEndian.Uint32(m[68:72]))
		}
		if f&FieldCgroup != 0 {
			s.Cgroup = diagCgroup(m[diagMsgLen:])
		}
	}
	w.seen++
	w.visit(s)
	return nil
}

// diagCgroup returns the INET_DIAG_CGROUP_ID attribute among the attributes
// b that follow an inet_diag_msg, or 0. A malformed attribute list ends the
// search.
func diagCgroup(b []byte) uint64 {
	ne := binary.NativeEndian
	for len(b) >= 4 {
		l := int(ne.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return 0
		}
		if ne.Uint16(b[2:4])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == attrCgroupID && l >= 12 {
			return ne.Uint64(b[4:12])
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return 0
}

// diagAddr converts a 16-byte inet_diag address (network order) of the
// family; IPv4 uses the first 4 bytes.
func diagAddr(fam Family, b []byte) netip.Addr {
	if fam == FamilyV4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16]))
}
