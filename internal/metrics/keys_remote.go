package metrics

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strconv"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

const (
	// remoteTopMax is the largest <n> of tcp.remote.top.
	remoteTopMax = 1000
	// remoteTopCapacity is how many distinct remote addresses one request
	// counts at most: 640 KiB once full (16384 slots of 32 bytes and 32768
	// hash buckets of 4; about 1.5 MB allocated in all while growing to
	// it), whatever the number of sockets or of distinct addresses.
	remoteTopCapacity = 16384
)

// remoteMetrics declares tcp.remote.top.
func (e *Exporter) remoteMetrics() []Metric {
	return []Metric{{
		Key: "tcp.remote.top",
		Description: "JSON array of the remote addresses holding the most TCP sockets, most first, ties by address, " +
			"IPv4-mapped IPv6 addresses counted as IPv4. Exact up to 16384 distinct remote addresses; " +
			"beyond, every address holding more than 1/16384 of the sockets is listed with its exact count.",
		Params: []Param{
			{Name: "n", Default: "10", Description: "how many addresses, 1 to 1000 (default 10)"},
			{Name: "state", Default: "established", Description: "TCP state as in tcp.status, or all (default established)"},
			paramPort,
		},
		Handler: e.remoteTop,
	}}
}

// remoteTop: tcp.remote.top[<n>,<state>,<local port>] →
// [{"address":"192.0.2.7","count":12},...].
//
// Memory stays bounded however many sockets and distinct addresses the
// table holds: addresses are counted in a topCounter of remoteTopCapacity
// slots. Up to that many distinct addresses, one walk counts them all
// exactly. Beyond, the counter works as a Space-Saving summary, and a
// second walk (same kernel-side filter) recounts exactly the addresses it
// kept, so every count shown is exact; see topCounter for which addresses
// are guaranteed to be found.
func (e *Exporter) remoteTop(ctx context.Context, p Params) (string, error) {
	n, err := parseCountParam(0, p.Get(0), remoteTopMax)
	if err != nil {
		return "", err
	}
	mask, err := parseStateParam(1, p.Get(1))
	if err != nil {
		return "", err
	}
	port, err := parsePortParam(2, p.Get(2))
	if err != nil {
		return "", err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.Timeout)
		defer cancel()
	}
	q := sockets.Query{Proto: sockets.TCP, States: mask, LocalPort: port, Fields: sockets.FieldRemote}
	c := newTopCounter(remoteTopCapacity)
	if err := e.src.Walk(ctx, q, func(s *sockets.Socket) { c.addAddr(s.RemoteAddr) }); err != nil {
		e.log.Debugf("socket walk %+v failed: %v", q, err)
		return "", operatorError(err, errSocketTable)
	}
	if c.overflowed() {
		c.startRecount()
		if err := e.src.Walk(ctx, q, func(s *sockets.Socket) { c.recountAddr(s.RemoteAddr) }); err != nil {
			e.log.Debugf("socket walk %+v (recount) failed: %v", q, err)
			return "", operatorError(err, errSocketTable)
		}
	}
	return string(appendTop(nil, c.top(n))), nil
}

// appendTop appends the JSON array of top to b.
func appendTop(b []byte, top []topSlot) []byte {
	b = append(b, '[')
	for i, s := range top {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"address":"`...)
		b = s.key.addr().AppendTo(b)
		b = append(b, `","count":`...)
		b = strconv.AppendUint(b, s.count, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// addrKey is a remote address as tcp.remote.top counts it: the 16-byte
// form, IPv4 as IPv4-mapped IPv6.
type addrKey [16]byte

// topKey normalises a remote address into its key: IPv4-mapped IPv6 folds
// to IPv4 (whose 16-byte form is the mapped one, so both give the same
// key), zones are dropped. ok is false for sockets without a remote end
// (listeners: 0.0.0.0 or ::).
func topKey(a netip.Addr) (key addrKey, ok bool) {
	if !a.IsValid() || a.Unmap().IsUnspecified() {
		return key, false
	}
	return a.As16(), true
}

// addr returns the key's address; IPv4 comes back as IPv4.
func (k addrKey) addr() netip.Addr { return netip.AddrFrom16(k).Unmap() }

// is4 reports whether the key holds an IPv4 address (::ffff:a.b.c.d form).
func (k addrKey) is4() bool { return [12]byte(k[:12]) == [12]byte{10: 0xff, 11: 0xff} }

func (k addrKey) hash(s0, s1 uint64) uint32 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(k[:8])^s0, binary.LittleEndian.Uint64(k[8:])^s1)
	h := hi ^ lo
	return uint32(h ^ h>>32)
}

// compare orders addresses IPv4 before IPv6, then numerically, as
// netip.Addr.Compare does.
func (k addrKey) compare(o addrKey) int {
	if a4, b4 := k.is4(), o.is4(); a4 != b4 {
		if a4 {
			return -1
		}
		return 1
	}
	return bytes.Compare(k[:], o[:])
}

// topCounter counts remote addresses (see keyCounter).
type topCounter struct{ *keyCounter[addrKey] }

// topSlot is one counted address.
type topSlot = countSlot[addrKey]

func newTopCounter(k int) topCounter { return topCounter{newKeyCounter[addrKey](k)} }

// addAddr counts one occurrence of a; sockets without a remote end are
// left out.
func (c topCounter) addAddr(a netip.Addr) {
	if key, ok := topKey(a); ok {
		c.add(key)
	}
}

// recountAddr counts a if it holds a slot; other addresses are ignored.
func (c topCounter) recountAddr(a netip.Addr) {
	if key, ok := topKey(a); ok {
		c.recount(key)
	}
}
