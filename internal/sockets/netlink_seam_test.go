package sockets

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A scripted kernel behind the diagConn seam: every request the walk sends
// is decoded and answered by a function of it, so each fallback path of
// netlinkSource.Walk runs without seccomp or a special kernel.

// diagReq is one decoded dump request.
type diagReq struct {
	typ    uint16
	family uint8
	proto  uint8 // 0 for the legacy request, which has no protocol field
	mask   uint32
	port   uint16
}

// String is "legacy" or "v4/tcp", "v6/udp".
func (r diagReq) String() string {
	if r.typ == tcpDiagGetSock {
		return "legacy"
	}
	fam := map[uint8]string{unix.AF_INET: "v4", unix.AF_INET6: "v6"}[r.family]
	proto := map[uint8]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp"}[r.proto]
	return fam + "/" + proto
}

// diagReply is the kernel's answer to one request: sockets, then NLMSG_DONE
// carrying -errno; or, with errno and no socket, a lone NLMSG_ERROR.
type diagReply struct {
	socks []diagSock
	errno unix.Errno
}

// fakeKernel is a diagConn answering with answer; batches hold two sockets
// so a dump spans several receives.
type fakeKernel struct {
	answer   func(diagReq) diagReply
	recvErrs []error // returned by the next receives, before any batch
	sendErr  error
	reqs     []string // every request, as diagReq.String
	pending  [][]byte
	open     int // sockets open
}

func (k *fakeKernel) dial(context.Context, *nlWalker) (diagConn, error) {
	k.open++
	return k, nil
}

func (k *fakeKernel) send(b []byte) error {
	if k.sendErr != nil {
		return k.sendErr
	}
	ne := binary.NativeEndian
	r := diagReq{typ: ne.Uint16(b[4:]), family: b[nlmsgHdrLen]}
	seq := ne.Uint32(b[8:])
	body := nlmsgHdrLen + reqV2Len
	if r.typ == tcpDiagGetSock {
		r.mask = ne.Uint32(b[nlmsgHdrLen+legacyMaskOff:])
		body = nlmsgHdrLen + reqLegacyLen
	} else {
		r.proto = b[nlmsgHdrLen+1]
		r.mask = ne.Uint32(b[nlmsgHdrLen+4:])
	}
	if len(b) == body+bytecodeLen {
		r.port = ne.Uint16(b[body+10:])
	}
	k.reqs = append(k.reqs, r.String())
	rep := k.answer(r)
	if rep.errno != 0 && len(rep.socks) == 0 {
		k.pending = [][]byte{appendCtl(nil, unix.NLMSG_ERROR, seq, -int32(rep.errno))}
		return nil
	}
	var batch []byte
	for i, d := range rep.socks {
		batch = appendDiag(batch, r.typ, seq, d)
		if i%2 == 1 {
			k.pending, batch = append(k.pending, batch), nil
		}
	}
	k.pending = append(k.pending, appendCtl(batch, unix.NLMSG_DONE, seq, -int32(rep.errno)))
	return nil
}

func (k *fakeKernel) recv(b []byte) (int, error) {
	if len(k.recvErrs) > 0 {
		err := k.recvErrs[0]
		k.recvErrs = k.recvErrs[1:]
		return 0, err
	}
	if len(k.pending) == 0 {
		return 0, unix.EAGAIN // nothing asked, nothing comes: the receive timeout
	}
	m := k.pending[0]
	k.pending = k.pending[1:]
	return copy(b, m) + max(len(m)-len(b), 0), nil
}

func (k *fakeKernel) close() error {
	k.open--
	return nil
}

// fakeSource returns a netlink source talking to k.
func fakeSource(k *fakeKernel) *netlinkSource {
	s := NewNetlink().(*netlinkSource)
	s.dial = k.dial
	return s
}

// Sockets of the scripted kernel: two IPv4, three IPv6.
var (
	fakeV4 = []diagSock{
		{fam: unix.AF_INET, state: uint8(Listen), sport: 80},
		{fam: unix.AF_INET, state: uint8(Established), sport: 80, dport: 40000},
	}
	fakeV6 = []diagSock{
		{fam: unix.AF_INET6, state: uint8(Listen), sport: 443},
		{fam: unix.AF_INET6, state: uint8(TimeWait), sport: 443, dport: 50000},
		{fam: unix.AF_INET6, state: uint8(Established), sport: 443, dport: 50001},
	}
)

// kernelWith answers the legacy request with legacy (both families when it
// is zero) and the by-family ones with byFamily[family] (the family's
// sockets when absent).
func kernelWith(legacy unix.Errno, byFamily map[uint8]unix.Errno) func(diagReq) diagReply {
	return func(r diagReq) diagReply {
		switch {
		case r.typ == tcpDiagGetSock && legacy != 0:
			return diagReply{errno: legacy}
		case r.typ == tcpDiagGetSock:
			return diagReply{socks: slices.Concat(fakeV4, fakeV6)}
		case byFamily[r.family] != 0:
			return diagReply{errno: byFamily[r.family]}
		case r.family == unix.AF_INET:
			return diagReply{socks: fakeV4}
		default:
			return diagReply{socks: fakeV6}
		}
	}
}

// walkCount walks q and returns the counts seen.
func walkCount(s Source, q Query) (Counts, error) {
	var c Counts
	err := s.Walk(context.Background(), q, func(so *Socket) { c[so.State&MaxState]++ })
	return c, err
}

func legacyName(s *netlinkSource) string {
	return [...]string{"unknown", "works", "refused"}[s.legacy.Load()]
}

// TestNetlinkFallbacks drives every branch of the request choice: the legacy
// request over both families, its refusal (by family from then on), a
// security refusal (by family for this walk only), the v6 handler missing,
// and the errors that must reach the caller (as ErrUnsupported only while no
// socket was visited, so the auto source can switch without counting twice).
func TestNetlinkFallbacks(t *testing.T) {
	all := uint64(len(fakeV4) + len(fakeV6))
	tests := []struct {
		name        string
		q           Query
		answer      func(diagReq) diagReply
		before      int32 // legacy state before the first walk
		walks       [2]string
		total       uint64
		err         error // nil: the walk succeeds
		unsupported bool  // the error wraps ErrUnsupported
		after       string
	}{
		{name: "legacy works", answer: kernelWith(0, nil),
			walks: [2]string{"legacy", "legacy"}, total: all, after: "works"},
		{name: "legacy refused EINVAL", answer: kernelWith(unix.EINVAL, nil),
			walks: [2]string{"legacy v4/tcp v6/tcp", "v4/tcp v6/tcp"}, total: all, after: "refused"},
		{name: "legacy refused EOPNOTSUPP", answer: kernelWith(unix.EOPNOTSUPP, nil),
			walks: [2]string{"legacy v4/tcp v6/tcp", "v4/tcp v6/tcp"}, total: all, after: "refused"},
		{name: "legacy refused ENOENT", answer: kernelWith(unix.ENOENT, nil),
			walks: [2]string{"legacy v4/tcp v6/tcp", "v4/tcp v6/tcp"}, total: all, after: "refused"},
		{name: "legacy EACCES, by family this walk only", answer: kernelWith(unix.EACCES, nil),
			walks: [2]string{"legacy v4/tcp v6/tcp", "legacy v4/tcp v6/tcp"}, total: all, after: "unknown"},
		{name: "legacy EPERM, by family this walk only", answer: kernelWith(unix.EPERM, nil),
			walks: [2]string{"legacy v4/tcp v6/tcp", "legacy v4/tcp v6/tcp"}, total: all, after: "unknown"},
		{name: "legacy other error", answer: kernelWith(unix.ENOBUFS, nil),
			walks: [2]string{"legacy", "legacy"}, err: unix.ENOBUFS, after: "unknown"},
		{name: "legacy refused after it worked", answer: kernelWith(unix.EINVAL, nil), before: legacyWorks,
			walks: [2]string{"legacy", "legacy"}, err: unix.EINVAL, after: "works"},
		{name: "legacy fails half-way", before: legacyUnknown,
			answer: func(r diagReq) diagReply { return diagReply{socks: fakeV4, errno: unix.EINVAL} },
			walks:  [2]string{"legacy", "legacy"}, err: unix.EINVAL, after: "unknown"},
		{name: "no IPv6 handler", answer: kernelWith(unix.EINVAL, map[uint8]unix.Errno{unix.AF_INET6: unix.ENOENT}),
			walks: [2]string{"legacy v4/tcp v6/tcp", "v4/tcp v6/tcp"}, total: uint64(len(fakeV4)), after: "refused"},
		{name: "no IPv6 handler, v6 asked", q: Query{Family: FamilyV6}, answer: kernelWith(0, map[uint8]unix.Errno{unix.AF_INET6: unix.ENOENT}),
			walks: [2]string{"v6/tcp", "v6/tcp"}, total: 0, after: "unknown"},
		{name: "no IPv4 handler", q: Query{Family: FamilyV4}, answer: kernelWith(0, map[uint8]unix.Errno{unix.AF_INET: unix.ENOENT}),
			walks: [2]string{"v4/tcp", "v4/tcp"}, err: unix.ENOENT, unsupported: true, after: "unknown"},
		{name: "by family refused by policy", before: legacyRefused, answer: kernelWith(0, map[uint8]unix.Errno{unix.AF_INET: unix.EACCES, unix.AF_INET6: unix.EACCES}),
			walks: [2]string{"v4/tcp", "v4/tcp"}, err: unix.EACCES, unsupported: true, after: "refused"},
		{name: "v6 refused after v4 sockets", before: legacyRefused, answer: kernelWith(0, map[uint8]unix.Errno{unix.AF_INET6: unix.EACCES}),
			walks: [2]string{"v4/tcp v6/tcp", "v4/tcp v6/tcp"}, err: unix.EACCES, after: "refused"},
		{name: "by family EINVAL", before: legacyRefused, answer: kernelWith(0, map[uint8]unix.Errno{unix.AF_INET: unix.EINVAL}),
			walks: [2]string{"v4/tcp", "v4/tcp"}, err: unix.EINVAL, after: "refused"},
		{name: "UDP never asks the legacy way", q: Query{Proto: UDP}, answer: kernelWith(0, nil),
			walks: [2]string{"v4/udp v6/udp", "v4/udp v6/udp"}, total: all, after: "unknown"},
		{name: "one family never asks the legacy way", q: Query{Family: FamilyV4}, answer: kernelWith(0, nil),
			walks: [2]string{"v4/tcp", "v4/tcp"}, total: uint64(len(fakeV4)), after: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{answer: tt.answer}
			s := fakeSource(k)
			s.legacy.Store(tt.before)
			for i, want := range tt.walks {
				k.reqs = nil
				c, err := walkCount(s, tt.q)
				if got := strings.Join(k.reqs, " "); got != want {
					t.Errorf("walk %d asked %q, want %q", i+1, got, want)
				}
				if tt.err == nil {
					if err != nil || c.Total() != tt.total {
						t.Errorf("walk %d: %d sockets, %v; want %d", i+1, c.Total(), err, tt.total)
					}
				} else if !errors.Is(err, tt.err) || errors.Is(err, ErrUnsupported) != tt.unsupported {
					t.Errorf("walk %d: error %v; want %v, ErrUnsupported %v", i+1, err, tt.err, tt.unsupported)
				}
				if k.open != 0 {
					t.Errorf("walk %d left %d sockets open", i+1, k.open)
				}
			}
			if got := legacyName(s); got != tt.after {
				t.Errorf("legacy %s after the walks, want %s", got, tt.after)
			}
		})
	}
}

// TestNetlinkFallbackToProc: the auto source leaves netlink for good on the
// errors that wrap ErrUnsupported and on no other.
func TestNetlinkFallbackToProc(t *testing.T) {
	for _, tt := range []struct {
		errno unix.Errno
		falls bool
	}{{unix.EACCES, true}, {unix.ENOENT, true}, {unix.EINVAL, false}} {
		t.Run(tt.errno.Error(), func(t *testing.T) {
			k := &fakeKernel{answer: kernelWith(0, map[uint8]unix.Errno{unix.AF_INET: tt.errno})}
			var fell []error
			proc := &scripted{name: "proc"}
			src := NewAuto(fakeSource(k), proc, func(err error) { fell = append(fell, err) })
			_, err := walkCount(src, Query{Family: FamilyV4})
			if tt.falls != (err == nil && len(fell) == 1 && src.Name() == "proc") {
				t.Errorf("error %v, fallbacks %v, source %s", err, fell, src.Name())
			}
		})
	}
}

// TestNetlinkSyscallErrors covers the system-call side of the seam: a
// refused socket(2) or send(2), interrupted and timed-out receives,
// truncated and empty datagrams.
func TestNetlinkSyscallErrors(t *testing.T) {
	q := Query{Family: FamilyV4}
	t.Run("socket refused", func(t *testing.T) {
		for _, tt := range []struct {
			errno       unix.Errno
			unsupported bool
		}{{unix.EACCES, true}, {unix.EPERM, true}, {unix.EPROTONOSUPPORT, true}, {unix.EAFNOSUPPORT, true}, {unix.EMFILE, false}} {
			s := NewNetlink().(*netlinkSource)
			s.dial = func(context.Context, *nlWalker) (diagConn, error) { return nil, openFailed(tt.errno) }
			_, err := walkCount(s, q)
			if !errors.Is(err, tt.errno) || errors.Is(err, ErrUnsupported) != tt.unsupported {
				t.Errorf("%v: error %v, want ErrUnsupported %v", tt.errno, err, tt.unsupported)
			}
		}
	})
	t.Run("send refused", func(t *testing.T) {
		k := &fakeKernel{answer: kernelWith(0, nil), sendErr: unix.EPERM}
		_, err := walkCount(fakeSource(k), q)
		if !errors.Is(err, ErrUnsupported) || !errors.Is(err, unix.EPERM) {
			t.Errorf("error %v", err)
		}
	})
	for _, tt := range []struct {
		name  string
		errs  []error
		want  error // nil: the walk succeeds
		total uint64
	}{
		{"interrupted receives are retried", []error{unix.EINTR, unix.EINTR}, nil, uint64(len(fakeV4))},
		{"receive timeout", []error{unix.EAGAIN}, context.DeadlineExceeded, 0},
		{"receive error", []error{unix.ENOBUFS}, unix.ENOBUFS, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{answer: kernelWith(0, nil), recvErrs: tt.errs}
			c, err := walkCount(fakeSource(k), q)
			if !errors.Is(err, tt.want) || (tt.want != nil) == (err == nil) || c.Total() != tt.total {
				t.Errorf("%d sockets, error %v; want %d, %v", c.Total(), err, tt.total, tt.want)
			}
		})
	}
	t.Run("truncated and empty datagrams", func(t *testing.T) {
		huge := make([]diagSock, 0, 600)
		for range 600 { // 600 × 88 bytes > 32 KiB in the first batch
			huge = append(huge, diagSock{fam: unix.AF_INET, state: uint8(Established)})
		}
		for name, tt := range map[string]struct {
			reply func(*fakeKernel)
			want  string
		}{
			"truncated": {func(k *fakeKernel) { k.pending = [][]byte{slices.Concat(k.pending...)} }, "exceeds the 32768-byte buffer"},
			"empty":     {func(k *fakeKernel) { k.pending = [][]byte{{}} }, "empty reply"},
		} {
			k := &fakeKernel{}
			k.answer = func(diagReq) diagReply { return diagReply{socks: huge} }
			conn := &mangler{fakeKernel: k, mangle: tt.reply}
			s := NewNetlink().(*netlinkSource)
			s.dial = func(context.Context, *nlWalker) (diagConn, error) { return conn, nil }
			_, err := walkCount(s, q)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want %q", name, err, tt.want)
			}
		}
	})
	t.Run("request carries the query", func(t *testing.T) {
		var got []diagReq
		k := &fakeKernel{answer: func(r diagReq) diagReply { got = append(got, r); return diagReply{} }}
		_, err := walkCount(fakeSource(k), Query{LocalPort: 8080, States: MaskOf(Listen)})
		want := []diagReq{{typ: tcpDiagGetSock, family: unix.AF_UNSPEC, mask: 1 << Listen, port: 8080}}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("requests %+v, %v; want %+v", got, err, want)
		}
	})
}

// mangler rewrites the fake kernel's pending batches after each request.
type mangler struct {
	*fakeKernel
	mangle func(*fakeKernel)
}

func (m *mangler) send(b []byte) error {
	err := m.fakeKernel.send(b)
	m.mangle(m.fakeKernel)
	return err
}

// replayKernel answers every request with the same prebuilt batches, their
// sequence numbers rewritten in place: a diagConn that allocates nothing.
type replayKernel struct {
	batches [][]byte
	next    int
}

func (k *replayKernel) send(b []byte) error {
	seq := binary.NativeEndian.Uint32(b[8:])
	for _, m := range k.batches {
		for len(m) >= nlmsgHdrLen {
			binary.NativeEndian.PutUint32(m[8:], seq)
			m = m[min((binary.NativeEndian.Uint32(m)+3)&^3, uint32(len(m))):]
		}
	}
	k.next = 0
	return nil
}

func (k *replayKernel) recv(b []byte) (int, error) {
	if k.next == len(k.batches) {
		return 0, unix.EAGAIN
	}
	k.next++
	return copy(b, k.batches[k.next-1]), nil
}

func (k *replayKernel) close() error { return nil }

// TestNetlinkWalkNoAlloc pins the walk's allocations through the seam: a
// walk of a pooled source allocates nothing, per socket, per batch or per
// walk.
func TestNetlinkWalkNoAlloc(t *testing.T) {
	k := &replayKernel{}
	var batch []byte
	for i := range 1000 {
		next := appendDiag(batch, sockDiagByFamily, 0, diagSock{fam: unix.AF_INET6, state: uint8(TimeWait), sport: uint16(i), src: netip.IPv6Loopback()})
		if len(next) > recvBufSize-nlmsgHdrLen-4 {
			k.batches, next = append(k.batches, batch), appendDiag(nil, sockDiagByFamily, 0, diagSock{fam: unix.AF_INET6, state: uint8(TimeWait)})
		}
		batch = next
	}
	k.batches = append(k.batches, appendCtl(batch, unix.NLMSG_DONE, 0, 0))
	s := NewNetlink().(*netlinkSource)
	s.dial = func(context.Context, *nlWalker) (diagConn, error) { return k, nil }
	var c Counts
	visit := func(so *Socket) { c[so.State&MaxState]++ }
	ctx := context.Background()
	q := Query{Family: FamilyV6, Fields: FieldLocalAddr | FieldRemote}
	if a := testing.AllocsPerRun(50, func() {
		if err := s.Walk(ctx, q, visit); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("a walk allocates %v times", a)
	}
	if len(k.batches) < 3 || c[TimeWait] != 51*1000 {
		t.Errorf("%d batches, %d sockets visited", len(k.batches), c[TimeWait])
	}
}
