package metrics

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

const (
	// ephemeralTopMax is the largest <n> of tcp.ephemeral.get, and how many
	// tuples a whole-table read keeps once counted.
	ephemeralTopMax = 1000
	// ephemeralCapacity is how many distinct (local address, remote
	// address, remote port) tuples one whole-table read counts at most: a
	// map of 16384 entries of 48 bytes, about 1 MiB once full, freed after
	// the read but for the top ephemeralTopMax (48 KB).
	ephemeralCapacity = 16384
)

// ephemeralMetrics declares tcp.ephemeral.get.
func (e *Exporter) ephemeralMetrics() []Metric {
	return []Metric{{
		Key: "tcp.ephemeral.get",
		Description: "JSON object with the local port range connect() picks from (ip_local_port_range without " +
			"ip_local_reserved_ports and listening ports), the sockets holding ports of it by (local address, remote address, remote port), " +
			"the busiest such destination's usage in % of the usable ports, and the top destinations, from the whole-table read.",
		Params: []Param{
			{Name: "n", Default: "10", Description: "how many destinations, 1 to 1000 (default 10)"},
		},
		Handler: e.ephemeralGet,
	}}
}

// tupleKey is a destination as connect() shares local ports: a local
// port can serve one connection per (local address, remote address,
// remote port). Addresses in their 16-byte form, IPv4 as IPv4-mapped.
type tupleKey struct {
	local, remote [16]byte
	port          uint16
}

// compareAddr16 orders 16-byte addresses IPv4 (mapped) before IPv6, then
// numerically, as netip.Addr.Compare does.
func compareAddr16(a, b *[16]byte) int {
	a4 := [12]byte(a[:12]) == [12]byte{10: 0xff, 11: 0xff}
	b4 := [12]byte(b[:12]) == [12]byte{10: 0xff, 11: 0xff}
	if a4 != b4 {
		if a4 {
			return -1
		}
		return 1
	}
	return bytes.Compare(a[:], b[:])
}

// compare orders by local address, remote address, then remote port.
func (k *tupleKey) compare(o *tupleKey) int {
	if c := compareAddr16(&k.local, &o.local); c != 0 {
		return c
	}
	if c := compareAddr16(&k.remote, &o.remote); c != 0 {
		return c
	}
	return int(k.port) - int(o.port)
}

// tupleCount is one counted destination.
type tupleCount struct {
	key   tupleKey
	count uint64
}

// tupleCounter counts destinations in memory bounded by its capacity k,
// whatever the number of sockets or of distinct destinations: a map of at
// most k entries. While at most k distinct destinations have been seen,
// every count is exact. Then it works as Misra-Gries (1982): a destination
// not in a full map decrements every count by one (and is not added),
// dropping those at zero; each count is then below the true one by at most
// cut, the number of such rounds, which never exceeds N/(k+1) for N
// sockets, and every destination holding more than cut sockets is in the
// map. A round costs a pass over the slots (and a map delete per entry it
// frees), but takes k counts off for the one socket it drops, so the work
// stays linear in N (a Space-Saving heap costs log k per unseen destination: 1 µs per
// socket at 1M sockets to 100k destinations). Go's map hash is seeded per
// process, so chosen addresses cannot force collisions.
//
// In front of the map, recent holds for each of recentSize buckets (by a
// cheap hash of the destination) the entry of slots that destination last
// used, plus one: most hosts talk to few destinations, and a hit costs a
// comparison of 34 bytes instead of a map lookup (about 4× less per
// socket). A hit is checked against the entry's key and count, so an entry
// that was freed or reused since only sends the lookup to the map; the
// buckets change no count.
type tupleCounter struct {
	k      int
	index  map[tupleKey]int32 // destination → its entry in slots
	slots  []tupleCount       // entries of count 0 are free
	free   []int32            // free entries of slots
	cut    uint64
	recent [recentSize]int32
}

// recentSize is the number of buckets of tupleCounter.recent (4 KiB).
const (
	recentBits = 10
	recentSize = 1 << recentBits
)

func newTupleCounter(k int) *tupleCounter {
	return &tupleCounter{k: k, index: make(map[tupleKey]int32, 64)}
}

// bucket hashes a destination to one of the recent buckets: a
// multiply-shift of its words folded into one, cheap and good enough for a cache (a
// collision only costs a map lookup).
func (key *tupleKey) bucket() int {
	ne := binary.NativeEndian
	h := ne.Uint64(key.remote[8:]) ^ ne.Uint64(key.remote[:8]) ^ ne.Uint64(key.local[8:])<<1 ^
		ne.Uint64(key.local[:8])<<2 ^ uint64(key.port)<<48
	return int((h * 0x9e3779b97f4a7c15) >> (64 - recentBits))
}

func (c *tupleCounter) add(key tupleKey) {
	b := key.bucket()
	if i := c.recent[b] - 1; i >= 0 && c.slots[i].count != 0 && c.slots[i].key == key {
		c.slots[i].count++
		return
	}
	if i, ok := c.index[key]; ok {
		c.slots[i].count++
		c.recent[b] = i + 1
		return
	}
	if len(c.index) < c.k {
		var i int32
		if n := len(c.free); n > 0 {
			i, c.free = c.free[n-1], c.free[:n-1]
			c.slots[i] = tupleCount{key, 1}
		} else {
			i = int32(len(c.slots))
			c.slots = append(c.slots, tupleCount{key, 1})
		}
		c.index[key] = i
		c.recent[b] = i + 1
		return
	}
	c.cut++
	for i := range c.slots {
		s := &c.slots[i]
		if s.count == 0 {
			continue
		}
		if s.count--; s.count == 0 {
			delete(c.index, s.key)
			c.free = append(c.free, int32(i))
		}
	}
}

// top returns the n largest counts, most first, ties by the tuples' order.
// It sorts the slots in place: the counter is done with once asked.
func (c *tupleCounter) top(n int) []tupleCount {
	out := slices.DeleteFunc(c.slots, func(s tupleCount) bool { return s.count == 0 })
	c.slots, c.index, c.free = nil, nil, nil
	slices.SortFunc(out, func(a, b tupleCount) int {
		if a.count != b.count {
			return cmp.Compare(b.count, a.count)
		}
		return a.key.compare(&b.key)
	})
	return slices.Clone(out[:min(n, len(out))]) // the rest is freed
}

// portSet is a set of port numbers.
type portSet [65536 / 64]uint64

func (s *portSet) add(p uint16)      { s[p>>6] |= 1 << (p & 63) }
func (s *portSet) del(p uint16)      { s[p>>6] &^= 1 << (p & 63) }
func (s *portSet) has(p uint16) bool { return s[p>>6]&(1<<(p&63)) != 0 }

// ephemeralWalk counts, during the whole-table walk, the sockets whose
// local port connect() could have picked, by destination tuple.
type ephemeralWalk struct {
	res     *ephemeralCounts
	counted portSet // the usable ports
	c       *tupleCounter
}

// ephemeralCounts is what tcp.ephemeral.get reports of a whole-table read.
type ephemeralCounts struct {
	err       error // the range could not be read: nothing counted
	ports     kernel.LocalPorts
	listening int    // listening ports inside the range, not reserved
	usable    int    // ports of the range neither reserved nor listening
	sockets   uint64 // sockets counted
	tuples    int    // distinct tuples held at the end, up to ephemeralCapacity
	cut       uint64 // most a count may be below the truth (0: exact)
	top       []tupleCount
}

// newEphemeralWalk prepares the count for the local port range lp, minus
// its reserved ports and the listening ports of the table. A port that
// listens is bound by bind(), which connect() never shares, and its
// connections are incoming ones.
func newEphemeralWalk(lp kernel.LocalPorts, listening func(uint16) bool) *ephemeralWalk {
	w := &ephemeralWalk{res: &ephemeralCounts{ports: lp}, c: newTupleCounter(ephemeralCapacity)}
	for p := int(lp.Min); p <= int(lp.Max); p++ {
		w.counted.add(uint16(p))
	}
	for _, p := range lp.Reserved {
		w.counted.del(p)
	}
	n := 0
	for p := int(lp.Min); p <= int(lp.Max); p++ {
		if w.counted.has(uint16(p)) {
			if listening(uint16(p)) {
				w.counted.del(uint16(p))
				w.res.listening++
				continue
			}
			n++
		}
	}
	w.res.usable = n
	return w
}

// add counts s if its local port is a usable one and it has a remote end
// (a remote port: listeners and unconnected sockets have 0). TIME_WAIT and
// the other closing states hold their port as ESTABLISHED does.
func (w *ephemeralWalk) add(s *sockets.Socket) {
	if s.RemotePort == 0 || !w.counted.has(s.LocalPort) {
		return
	}
	w.c.add(tupleKey{local: s.LocalAddr.As16(), remote: s.RemoteAddr.As16(), port: s.RemotePort})
	w.res.sockets++
}

// done keeps the top tuples and frees the counter.
func (w *ephemeralWalk) done() *ephemeralCounts {
	w.res.cut = w.c.cut
	w.res.tuples = len(w.c.index)
	w.res.top = w.c.top(ephemeralTopMax)
	w.c = nil
	return w.res
}

// pused is count in % of the usable ports: 100 when none is usable and a
// socket holds one anyway.
func (r *ephemeralCounts) pused(count uint64) float64 {
	if r.usable == 0 {
		if count > 0 {
			return 100
		}
		return 0
	}
	return 100 * float64(count) / float64(r.usable)
}

// ephemeralGet: tcp.ephemeral.get[<n>] →
//
//	{"range_min":32768,"range_max":60999,"reserved":0,"listening":0,"usable":28232,
//	 "sockets":N,"tuples":N,"exact":1,"error":0,"pused":12.50,
//	 "top":[{"local":"192.0.2.1","remote":"192.0.2.7","port":5432,"count":3529,"pused":12.50},...]}
//
// from the whole-table read (no walk of its own). "pused" is the busiest
// tuple's; with more than ephemeralCapacity distinct tuples ("exact":0)
// counts are Misra-Gries estimates, each below its true count by at most
// "error" (at most sockets/16385), and every tuple holding more than that
// is listed.
func (e *Exporter) ephemeralGet(ctx context.Context, p Params) (string, error) {
	n, err := parseCountParam(0, p.Get(0), ephemeralTopMax)
	if err != nil {
		return "", err
	}
	snap, err := e.cache.wholeSnapshot(ctx)
	if err != nil {
		e.log.Debugf("whole socket table read failed: %v", err)
		return "", operatorError(err, errSocketTable)
	}
	r := snap.eph
	if r.err != nil {
		return "", e.kernelError(r.err, errLocalPorts)
	}
	return string(appendEphemeral(nil, r, n)), nil
}

var errLocalPorts = &ItemError{msg: "Cannot read the local port range (net.ipv4.ip_local_port_range)."}

// appendEphemeral appends the JSON of tcp.ephemeral.get with n tuples.
func appendEphemeral(b []byte, r *ephemeralCounts, n int) []byte {
	num := func(name string, v uint64) {
		b = append(b, `"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, v, 10)
		b = append(b, ',')
	}
	b = append(b, '{')
	num("range_min", uint64(r.ports.Min))
	num("range_max", uint64(r.ports.Max))
	num("reserved", uint64(len(r.ports.Reserved)))
	num("listening", uint64(r.listening))
	num("usable", uint64(r.usable))
	num("sockets", r.sockets)
	num("tuples", uint64(r.tuples))
	exact := uint64(0)
	if r.cut == 0 {
		exact = 1
	}
	num("exact", exact)
	num("error", r.cut)
	var busiest uint64
	if len(r.top) > 0 {
		busiest = r.top[0].count
	}
	b = append(b, `"pused":`...)
	b = strconv.AppendFloat(b, r.pused(busiest), 'f', 2, 64)
	b = append(b, `,"top":[`...)
	for i, s := range r.top[:min(n, len(r.top))] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"local":"`...)
		b = netip.AddrFrom16(s.key.local).Unmap().AppendTo(b)
		b = append(b, `","remote":"`...)
		b = netip.AddrFrom16(s.key.remote).Unmap().AppendTo(b)
		b = append(b, `","port":`...)
		b = strconv.AppendUint(b, uint64(s.key.port), 10)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, s.count, 10)
		b = append(b, `,"pused":`...)
		b = strconv.AppendFloat(b, r.pused(s.count), 'f', 2, 64)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
