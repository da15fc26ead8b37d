package sockets

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// diagSock is one synthetic inet_diag_msg.
type diagSock struct {
	fam            uint8
	state          uint8
	sport, dport   uint16
	src, dst       netip.Addr
	rqueue, wqueue uint32
	inode          uint32
	attrs          int    // bytes of attributes after the message
	cgroup         uint64 // non-zero: an INET_DIAG_CGROUP_ID attribute, after a shutdown one (attrs >= 20)
}

// appendDiag appends one netlink message carrying d, as the kernel lays it
// out (length not padded, next message aligned to 4).
func appendDiag(b []byte, typ uint16, seq uint32, d diagSock) []byte {
	ne := binary.NativeEndian
	l := nlmsgHdrLen + diagMsgLen + d.attrs
	m := make([]byte, (l+3)&^3)
	ne.PutUint32(m[0:], uint32(l))
	ne.PutUint16(m[4:], typ)
	ne.PutUint16(m[6:], unix.NLM_F_MULTI)
	ne.PutUint32(m[8:], seq)
	p := m[nlmsgHdrLen:]
	p[0], p[1] = d.fam, d.state
	binary.BigEndian.PutUint16(p[4:], d.sport)
	binary.BigEndian.PutUint16(p[6:], d.dport)
	if d.src.IsValid() {
		a := d.src.AsSlice()
		copy(p[8:], a)
	}
	if d.dst.IsValid() {
		copy(p[24:], d.dst.AsSlice())
	}
	ne.PutUint32(p[56:], d.rqueue)
	ne.PutUint32(p[60:], d.wqueue)
	ne.PutUint32(p[68:], d.inode)
	if d.cgroup != 0 {
		a := p[diagMsgLen:]
		ne.PutUint16(a[0:], 5) // INET_DIAG_SHUTDOWN, one byte, padded
		ne.PutUint16(a[2:], 8)
		ne.PutUint16(a[8:], 12)
		ne.PutUint16(a[10:], attrCgroupID)
		ne.PutUint64(a[12:], d.cgroup)
	}
	return append(b, m...)
}

// appendCtl appends an NLMSG_DONE or NLMSG_ERROR with the given code.
func appendCtl(b []byte, typ uint16, seq uint32, code int32) []byte {
	ne := binary.NativeEndian
	m := make([]byte, nlmsgHdrLen+4)
	ne.PutUint32(m[0:], uint32(len(m)))
	ne.PutUint16(m[4:], typ)
	ne.PutUint32(m[8:], seq)
	ne.PutUint32(m[16:], uint32(code))
	return append(b, m...)
}

// sampleBatch is a batch with IPv4, IPv6, IPv4-mapped, time-wait and
// request sockets, with and without attributes, ending in NLMSG_DONE.
func sampleBatch(seq uint32) []byte {
	var b []byte
	a := netip.MustParseAddr
	b = appendDiag(b, sockDiagByFamily, seq, diagSock{unix.AF_INET, 10, 80, 0, a("0.0.0.0"), a("0.0.0.0"), 3, 128, 1001, 37, 0x1001})
	b = appendDiag(b, sockDiagByFamily, seq, diagSock{unix.AF_INET, 1, 80, 40000, a("10.0.0.1"), a("10.0.0.9"), 0, 5, 1002, 53, 1 << 40})
	b = appendDiag(b, sockDiagByFamily, seq, diagSock{unix.AF_INET6, 6, 443, 50000, a("2001:db8::1"), a("2001:db8::9"), 0, 0, 0, 0, 0})
	b = appendDiag(b, sockDiagByFamily, seq, diagSock{unix.AF_INET6, 3, 443, 50001, a("::ffff:127.0.0.1"), a("::ffff:127.0.0.2"), 0, 0, 0, 0, 0})
	b = appendDiag(b, sockDiagByFamily, seq, diagSock{unix.AF_INET6, 8, 8080, 50002, a("::1"), a("::1"), 7, 9, 1003, 41, 0})
	return appendCtl(b, unix.NLMSG_DONE, seq, 0)
}

// walkerFor returns a walker for q recording visits as text.
func walkerFor(q Query, out *strings.Builder) *nlWalker {
	w := new(nlWalker)
	w.q, w.seq = q, 7
	w.mask = q.States & AllStates
	if q.States == 0 {
		w.mask = AllStates
	}
	w.visit = func(s *Socket) {
		fmt.Fprintf(out, "%s %v %s %s rq=%d wq=%d inode=%d", s.Family, s.State, netip.AddrPortFrom(s.LocalAddr, s.LocalPort),
			netip.AddrPortFrom(s.RemoteAddr, s.RemotePort), s.RQueue, s.WQueue, s.Inode)
		if s.Cgroup != 0 {
			fmt.Fprintf(out, " cgroup=%#x", s.Cgroup)
		}
		out.WriteByte('\n')
	}
	return w
}

func TestNetlinkParse(t *testing.T) {
	all := FieldLocalAddr | FieldRemote | FieldQueues | FieldInode
	tests := []struct {
		name string
		q    Query
		in   []byte
		want string
		done bool
		err  string
	}{
		{name: "+all fields", q: Query{Fields: all}, in: sampleBatch(7), done: true, want: "" +
			"4 listen 0.0.0.0:80 0.0.0.0:0 rq=3 wq=128 inode=1001\n" +
			"4 established 10.0.0.1:80 10.0.0.9:40000 rq=0 wq=5 inode=1002\n" +
			"6 time_wait [2001:db8::1]:443 [2001:db8::9]:50000 rq=0 wq=0 inode=0\n" +
			"6 syn_recv [::ffff:127.0.0.1]:443 [::ffff:127.0.0.2]:50001 rq=0 wq=0 inode=0\n" +
			"6 close_wait [::1]:8080 [::1]:50002 rq=7 wq=9 inode=1003\n"},
		{name: "+cgroup", q: Query{Fields: FieldCgroup}, in: sampleBatch(7), done: true, want: "" +
			"4 listen invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0 cgroup=0x1001\n" +
			"4 established invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0 cgroup=0x10000000000\n" +
			"6 time_wait invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 syn_recv invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 close_wait invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n"},
		{name: "+no fields", in: sampleBatch(7), done: true, want: "" +
			"4 listen invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"4 established invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 time_wait invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 syn_recv invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 close_wait invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n"},
		{name: "+user-space filters", q: Query{Family: FamilyV6, States: MaskOf(TimeWait, SynRecv), LocalPort: 443, Fields: FieldLocalAddr}, in: sampleBatch(7), done: true, want: "" +
			"6 time_wait [2001:db8::1]:443 invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 syn_recv [::ffff:127.0.0.1]:443 invalid AddrPort rq=0 wq=0 inode=0\n"},
		{name: "+batch without DONE", in: sampleBatch(7)[:len(sampleBatch(7))-20], want: "" +
			"4 listen invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"4 established invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 time_wait invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 syn_recv invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n" +
			"6 close_wait invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n"},
		{name: "+legacy reply type", in: appendDiag(nil, tcpDiagGetSock, 7, diagSock{fam: unix.AF_INET, state: 1, sport: 22}),
			want: "4 established invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0\n"},
		{name: "+empty", in: nil},
		{name: "+noop then done", in: appendCtl(appendCtl(nil, unix.NLMSG_NOOP, 7, 0), unix.NLMSG_DONE, 7, 0), done: true},
		{name: "+ack", in: appendCtl(nil, unix.NLMSG_ERROR, 7, 0), done: true},
		{name: "-error", in: appendCtl(nil, unix.NLMSG_ERROR, 7, -int32(unix.EINVAL)), err: "invalid argument"},
		{name: "-done with error", in: appendCtl(nil, unix.NLMSG_DONE, 7, -int32(unix.EINTR)), err: "interrupted system call"},
		{name: "-error positive", in: appendCtl(nil, unix.NLMSG_ERROR, 7, 5), err: "positive code"},
		{name: "-error truncated", in: appendCtl(nil, unix.NLMSG_ERROR, 7, 0)[:16], err: "outside the"},
		{name: "-overrun", in: appendCtl(nil, unix.NLMSG_OVERRUN, 7, 0), err: "overrun"},
		{name: "-short header", in: []byte{1, 2, 3}, err: "truncated message header"},
		{name: "-length too big", in: sampleBatch(7)[:100], err: "outside the"},
		{name: "-length too small", in: func() []byte {
			b := sampleBatch(7)
			binary.NativeEndian.PutUint32(b, 8)
			return b
		}(), err: "message length 8"},
		{name: "-short socket message", in: func() []byte {
			b := appendCtl(nil, sockDiagByFamily, 7, 0)
			return b
		}(), err: "socket message of 4 bytes"},
		{name: "-wrong sequence", in: sampleBatch(8), err: "reply to request 8 while waiting for 7"},
		{name: "-unknown type", in: appendCtl(nil, 99, 7, 0), err: "unexpected message type 99"},
		{name: "-unknown family", in: appendDiag(nil, sockDiagByFamily, 7, diagSock{fam: 1, state: 1}), err: "unexpected address family 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			w := walkerFor(tt.q, &out)
			done, err := w.parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if done != tt.done {
				t.Errorf("done %v, want %v", done, tt.done)
			}
			if out.String() != tt.want {
				t.Errorf("(-want +got)\n-%s\n+%s", tt.want, out.String())
			}
		})
	}
}

// TestDiagCgroup reads the cgroup id among other attributes and survives
// malformed attribute lists.
func TestDiagCgroup(t *testing.T) {
	ne := binary.NativeEndian
	attr := func(typ uint16, payload ...byte) []byte {
		a := make([]byte, 4, (4+len(payload)+3)&^3)
		ne.PutUint16(a[0:], uint16(4+len(payload)))
		ne.PutUint16(a[2:], typ)
		a = append(a, payload...)
		return append(a, make([]byte, cap(a)-len(a))...)
	}
	id := make([]byte, 8)
	ne.PutUint64(id, 0x123456789)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tt := range []struct {
		name string
		in   []byte
		want uint64
	}{
		{"alone", attr(attrCgroupID, id...), 0x123456789},
		{"after others", cat(attr(8, 1), attr(11, 0), attr(attrCgroupID, id...)), 0x123456789},
		{"absent", cat(attr(8, 1), attr(15, 1, 2, 3, 4)), 0},
		{"empty", nil, 0},
		{"short payload", attr(attrCgroupID, 1, 2, 3, 4), 0},
		{"length past end", cat(attr(8, 1)[:4], []byte{0xff, 0xff}), 0},
		{"zero length", make([]byte, 16), 0},
		{"truncated after", cat(attr(8, 1), attr(attrCgroupID, id...)[:10]), 0},
	} {
		if got := diagCgroup(tt.in); got != tt.want {
			t.Errorf("%s: %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

// TestNetlinkParseNoAlloc pins "no per-socket allocation".
func TestNetlinkParseNoAlloc(t *testing.T) {
	b := sampleBatch(7)
	w := new(nlWalker)
	w.q, w.seq, w.mask = Query{Fields: FieldLocalAddr | FieldRemote | FieldQueues | FieldInode | FieldCgroup}, 7, AllStates
	n := 0
	w.visit = func(*Socket) { n++ }
	if a := testing.AllocsPerRun(100, func() {
		if _, err := w.parse(b); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("parse allocates %v times per batch", a)
	}
	if n == 0 {
		t.Error("nothing visited")
	}
}

// TestNetlinkRequest checks the request layouts byte by byte.
func TestNetlinkRequest(t *testing.T) {
	ne := binary.NativeEndian
	w := new(nlWalker)
	w.q, w.mask, w.seq = Query{Proto: TCP, LocalPort: 0x1234}, MaskOf(TimeWait, Listen), 3

	b := w.request(tcpDiagGetSock, unix.AF_UNSPEC)
	if len(b) != 16+60+12 || ne.Uint32(b) != uint32(len(b)) || ne.Uint16(b[4:]) != 18 ||
		ne.Uint16(b[6:]) != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || ne.Uint32(b[8:]) != 3 {
		t.Errorf("legacy header % x", b[:16])
	}
	if got := ne.Uint32(b[16+52:]); got != 1<<6|1<<10 {
		t.Errorf("legacy state mask %#x", got)
	}
	bc := b[16+60:]
	want := make([]byte, 12)
	ne.PutUint16(want[0:], 12)
	ne.PutUint16(want[2:], 1)
	want[4], want[5] = 11, 8
	ne.PutUint16(want[6:], 12)
	ne.PutUint16(want[10:], 0x1234)
	if !bytes.Equal(bc, want) {
		t.Errorf("bytecode % x, want % x", bc, want)
	}

	w.q = Query{Proto: UDP}
	w.mask = AllStates
	b = w.request(sockDiagByFamily, unix.AF_INET6)
	if len(b) != 16+56 || ne.Uint16(b[4:]) != 20 || b[16] != unix.AF_INET6 || b[17] != unix.IPPROTO_UDP || ne.Uint32(b[20:]) != uint32(AllStates) {
		t.Errorf("v2 request % x", b)
	}
}

// TestNetlinkReceiveTimeout: a dump that never answers ends with the
// context's deadline, not a hang.
func TestNetlinkReceiveTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	fd, err := openDiag(ctx)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("no sock_diag here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &sysConn{fd}
	defer c.close()
	w := new(nlWalker)
	start := time.Now()
	err = w.receive(ctx, c) // nothing was asked: nothing comes
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestUnsupportedErrors(t *testing.T) {
	for _, e := range []unix.Errno{unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT, unix.EACCES, unix.EPERM} {
		err := fmt.Errorf("open: %w", unsupported(e))
		if !errors.Is(err, ErrUnsupported) || !errors.Is(err, e) {
			t.Errorf("%v: %v does not wrap ErrUnsupported and the errno", e, err)
		}
	}
	for _, e := range []error{unix.EINVAL, unix.ENOBUFS, context.Canceled} {
		if errors.Is(unsupported(e), ErrUnsupported) {
			t.Errorf("%v wrapped as unsupported", e)
		}
	}
	// Kernel replies: which end the legacy request, which mean unsupported.
	for _, tt := range []struct {
		errno                  unix.Errno
		refused, unsupportedOK bool
	}{
		{unix.EINVAL, true, false},
		{unix.EOPNOTSUPP, true, true},
		{unix.ENOENT, true, true},
		{unix.EACCES, false, true},
		{unix.EPERM, false, true},
		{unix.ENOBUFS, false, false},
		{unix.EINTR, false, false},
	} {
		e := kernelError{tt.errno}
		if e.refused() != tt.refused || e.unsupported() != tt.unsupportedOK {
			t.Errorf("%v: refused %v unsupported %v, want %v %v", tt.errno, e.refused(), e.unsupported(), tt.refused, tt.unsupportedOK)
		}
	}
	// A bad query is the caller's error, not a reason to fall back.
	for _, src := range []Source{NewNetlink(), NewProc(t.TempDir())} {
		err := src.Walk(context.Background(), Query{Proto: 99}, func(*Socket) {})
		if err == nil || errors.Is(err, ErrUnsupported) {
			t.Errorf("%s protocol 99: %v", src.Name(), err)
		}
	}
}

// FuzzNetlinkParse feeds arbitrary batches to the message parser: errors
// are fine, panics and out-of-range visits are not.
func FuzzNetlinkParse(f *testing.F) {
	f.Add(sampleBatch(7))
	f.Add(appendCtl(nil, unix.NLMSG_ERROR, 7, -22))
	f.Add(appendCtl(nil, unix.NLMSG_DONE, 7, 0))
	f.Add(appendDiag(nil, tcpDiagGetSock, 7, diagSock{fam: unix.AF_INET6, state: 12, attrs: 3}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		w := new(nlWalker)
		w.q, w.seq, w.mask = Query{Fields: FieldLocalAddr | FieldRemote | FieldQueues | FieldInode}, 7, AllStates
		w.visit = func(s *Socket) {
			if s.State == 0 || s.State > MaxState || (s.Family != FamilyV4 && s.Family != FamilyV6) {
				t.Fatalf("visited %+v", *s)
			}
		}
		_, _ = w.parse(b)
	})
}
