package sockets

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
)

const (
	// procBufSize is the read buffer of the /proc parser; big reads keep the
	// number of seq_file calls low.
	procBufSize = 64 << 10
	// procMaxLine rejects absurd lines: real ones are 150 (IPv4) or 178
	// (IPv6) bytes.
	procMaxLine = 4096
	// procCtxEvery is how many lines pass between two context checks.
	procCtxEvery = 1024
)

// procSource parses the text tables of /proc/net (tcp, tcp6, udp, udp6)
// under one directory. See Documentation/networking/proc_net_tcp.rst.
type procSource struct {
	dir     string
	readers sync.Pool // *procWalker
}

// procWalker is the pooled per-walk state: the bounded line reader and the
// one Socket handed to the visitor.
type procWalker struct {
	r    *bufio.Reader
	sock Socket
}

// NewProc returns the source that parses <netDir>/tcp and tcp6 (udp and
// udp6 for UDP), e.g. "/proc/net" or "/proc/<pid>/net" for the namespace of
// another process. A missing tcp6/udp6 (IPv6 disabled) counts as no sockets;
// a missing tcp/udp is an error wrapping fs.ErrNotExist.
//
// Queues differ from netlink for listeners: /proc shows the accept queue as
// rx_queue (RQueue) but not the backlog limit; its tx_queue, reported as
// WQueue, is 0 for a listener.
func NewProc(netDir string) Source {
	p := &procSource{dir: netDir}
	p.readers.New = func() any { return &procWalker{r: bufio.NewReaderSize(nil, procBufSize)} }
	return p
}

// Name returns "proc".
func (*procSource) Name() string { return "proc" }

// listenersOnly reports whether q asks for TCP listeners alone. Such a walk
// reads only the first part of each table: the kernel prints its listening
// hash before its established hash (tcp_get_idx in net/ipv4/tcp_ipv4.c), so
// the walk stops at the first socket in another state than LISTEN or
// SYN_RECV (kernels before 4.4 print request sockets under their listener).
// On a host with 1M sockets that is a few hundred lines instead of 1M.
func listenersOnly(q Query) bool {
	return q.Proto != UDP && q.States == MaskOf(Listen)
}

// Walk parses the tables the query needs; see Source.
func (p *procSource) Walk(ctx context.Context, q Query, visit func(*Socket)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	names := [2]string{"tcp", "tcp6"}
	switch q.Proto {
	case 0, TCP:
	case UDP:
		names = [2]string{"udp", "udp6"}
	default:
		return fmt.Errorf("proc: unknown protocol %d", q.Proto)
	}
	w := p.readers.Get().(*procWalker)
	defer p.readers.Put(w)
	for i, fam := range [...]Family{FamilyV4, FamilyV6} {
		if q.Family != FamilyAll && q.Family != fam {
			continue
		}
		if err := p.walkFile(ctx, w, filepath.Join(p.dir, names[i]), fam, q, visit); err != nil {
			return err
		}
	}
	return nil
}

// walkFile parses one table; a missing IPv6 table is no sockets.
func (p *procSource) walkFile(ctx context.Context, w *procWalker, path string, fam Family, q Query, visit func(*Socket)) error {
	f, err := os.Open(path)
	if err != nil {
		if fam == FamilyV6 && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read socket table: %w", err)
	}
	defer f.Close()
	w.r.Reset(f)
	defer w.r.Reset(nil)
	return parseTable(ctx, w.r, path, fam, q, &w.sock, visit)
}

// parseTable streams one /proc/net/{tcp,tcp6,udp,udp6} table from r, whose
// sockets are all of family fam, visiting those matching q through sock.
// name labels errors. It allocates nothing per line.
func parseTable(ctx context.Context, r *bufio.Reader, name string, fam Family, q Query, sock *Socket, visit func(*Socket)) error {
	addrLen := 8
	if fam == FamilyV6 {
		addrLen = 32
	}
	prefix := listenersOnly(q)
	for lineNo := 1; ; lineNo++ {
		line, rerr := r.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull || len(line) > procMaxLine {
			return fmt.Errorf("%s:%d: line longer than %d bytes", name, lineNo, procMaxLine)
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("read %s: %w", name, rerr)
		}
		if len(line) > 0 {
			var err error
			var state State
			if lineNo == 1 {
				err = checkHeader(line)
			} else {
				state, err = parseLine(line, addrLen, fam, q, sock, visit)
			}
			if err != nil {
				return fmt.Errorf("%s:%d: %w: %q", name, lineNo, err, quoteLine(line))
			}
			if prefix && lineNo > 1 && state != Listen && state != SynRecv {
				return nil // past the listening hash
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if lineNo%procCtxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
}

// quoteLine trims a line for an error message.
func quoteLine(line []byte) []byte {
	const maxQuote = 80
	if len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1]
	}
	if len(line) > maxQuote {
		line = line[:maxQuote]
	}
	return line
}

// errMalformed marks a line that is not a socket table line.
var errMalformed = errors.New("malformed socket line")

// checkHeader accepts the header line ("  sl  local_address ...").
func checkHeader(line []byte) error {
	f, _ := field(line, 0)
	if string(f) != "sl" {
		return errors.New("missing table header")
	}
	return nil
}

// field returns the field starting at or after i (fields are separated by
// spaces) and the index after it.
func field(line []byte, i int) ([]byte, int) {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	j := i
	for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\n' {
		j++
	}
	return line[i:j], j
}

// parseLine decodes one socket line: "sl: local remote st tx:rx tr:when
// retrnsmt uid timeout inode ...". Every line must have these ten fields;
// state and local port are always decoded, addresses, queues and inode only
// when q.Fields asks. It returns the line's state.
func parseLine(line []byte, addrLen int, fam Family, q Query, sock *Socket, visit func(*Socket)) (State, error) {
	sl, i := field(line, 0)
	if len(sl) < 2 || sl[len(sl)-1] != ':' {
		return 0, fmt.Errorf("%w: bad slot", errMalformed)
	}
	local, i := field(line, i)
	remote, i := field(line, i)
	st, i := field(line, i)
	if len(local) != addrLen+5 || local[addrLen] != ':' || len(remote) != addrLen+5 || remote[addrLen] != ':' {
		return 0, fmt.Errorf("%w: bad address", errMalformed)
	}
	port, ok := hex16(local[addrLen+1:])
	if !ok {
		return 0, fmt.Errorf("%w: bad local port", errMalformed)
	}
	stv, ok := hexN(st, 2)
	if !ok || stv == 0 || stv > MaxState {
		return 0, fmt.Errorf("%w: bad state", errMalformed)
	}
	queues, i := field(line, i)
	inode := queues
	for range 5 { // tr:when retrnsmt uid timeout inode
		inode, i = field(line, i)
	}
	if len(inode) == 0 {
		return 0, fmt.Errorf("%w: too few fields", errMalformed)
	}
	state := State(stv)
	if !q.States.Has(state) || (q.LocalPort != 0 && port != q.LocalPort) {
		return state, nil
	}
	*sock = Socket{Family: fam, State: state, LocalPort: port}
	if f := q.Fields; f != 0 {
		if f&FieldLocalAddr != 0 {
			if sock.LocalAddr, ok = procAddr(local[:addrLen]); !ok {
				return 0, fmt.Errorf("%w: bad local address", errMalformed)
			}
		}
		if f&FieldRemote != 0 {
			if sock.RemoteAddr, ok = procAddr(remote[:addrLen]); !ok {
				return 0, fmt.Errorf("%w: bad remote address", errMalformed)
			}
			if sock.RemotePort, ok = hex16(remote[addrLen+1:]); !ok {
				return 0, fmt.Errorf("%w: bad remote port", errMalformed)
			}
		}
		if f&FieldQueues != 0 {
			if len(queues) != 17 || queues[8] != ':' {
				return 0, fmt.Errorf("%w: bad queues", errMalformed)
			}
			tx, ok1 := hexN(queues[:8], 8)
			rx, ok2 := hexN(queues[9:], 8)
			if !ok1 || !ok2 {
				return 0, fmt.Errorf("%w: bad queues", errMalformed)
			}
			sock.WQueue, sock.RQueue = uint32(tx), uint32(rx)
		}
		if f&FieldInode != 0 {
			if sock.Inode, ok = decimal(inode); !ok {
				return 0, fmt.Errorf("%w: bad inode", errMalformed)
			}
		}
	}
	visit(sock)
	return state, nil
}

// procAddr decodes an address of 8 (IPv4) or 32 (IPv6) hex digits: 32-bit
// words each printed in host byte order.
func procAddr(h []byte) (netip.Addr, bool) {
	var b [16]byte
	for w := 0; w < len(h)/8; w++ {
		v, ok := hexN(h[w*8:w*8+8], 8)
		if !ok {
			return netip.Addr{}, false
		}
		binary.NativeEndian.PutUint32(b[w*4:], uint32(v))
	}
	if len(h) == 8 {
		return netip.AddrFrom4([4]byte(b[:4])), true
	}
	return netip.AddrFrom16(b), true
}

// hex16 parses exactly 4 hex digits.
func hex16(h []byte) (uint16, bool) {
	v, ok := hexN(h, 4)
	return uint16(v), ok
}

// hexN parses exactly n hex digits (n ≤ 16).
func hexN(h []byte, n int) (uint64, bool) {
	if len(h) != n {
		return 0, false
	}
	var v uint64
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// decimal parses an unsigned decimal of at most 19 digits.
func decimal(d []byte) (uint64, bool) {
	if len(d) == 0 || len(d) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
