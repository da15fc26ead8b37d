package metrics

import (
	"context"
	"encoding/binary"
	"math/bits"
	"strconv"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

const (
	// ephemeralTopMax is the largest <n> of tcp.ephemeral.get, and how many
	// tuples a whole-table read keeps once counted.
	ephemeralTopMax = 1000
	// ephemeralCapacity is how many distinct (local address, remote
	// address, remote port) tuples one whole-table read counts at most:
	// 16384 slots of 48 bytes and 32768 hash buckets of 4, 896 KiB once
	// full, freed after the read but for the top ephemeralTopMax (48 KB).
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
	local, remote addrKey
	port          uint16
}

func (k tupleKey) hash(s0, s1 uint64) uint32 {
	le := binary.LittleEndian
	hi, lo := bits.Mul64(le.Uint64(k.local[:8])^s0, le.Uint64(k.local[8:])^s1)
	hi, lo = bits.Mul64(le.Uint64(k.remote[:8])^s1^hi^lo, le.Uint64(k.remote[8:])^s0^uint64(k.port))
	h := hi ^ lo
	return uint32(h ^ h>>32)
}

// compare orders by local address, remote address, then remote port.
func (k tupleKey) compare(o tupleKey) int {
	if c := k.local.compare(o.local); c != 0 {
		return c
	}
	if c := k.remote.compare(o.remote); c != 0 {
		return c
	}
	return int(k.port) - int(o.port)
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
	c       *keyCounter[tupleKey]
}

// ephemeralCounts is what tcp.ephemeral.get reports of a whole-table read.
type ephemeralCounts struct {
	err       error // the range could not be read: nothing counted
	ports     kernel.LocalPorts
	listening int    // listening ports inside the range, not reserved
	usable    int    // ports of the range neither reserved nor listening
	sockets   uint64 // sockets counted
	tuples    int    // distinct tuples, up to ephemeralCapacity
	exact     bool   // at most ephemeralCapacity distinct tuples: counts exact
	top       []countSlot[tupleKey]
}

// newEphemeralWalk prepares the count for the local port range lp, minus
// its reserved ports and the listening ports of the table. A port that
// listens is bound by bind(), which connect() never shares, and its
// connections are incoming ones.
func newEphemeralWalk(lp kernel.LocalPorts, listening func(uint16) bool) *ephemeralWalk {
	w := &ephemeralWalk{res: &ephemeralCounts{ports: lp}, c: newKeyCounter[tupleKey](ephemeralCapacity)}
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

// add counts s if its local port is a usable one and it has a remote end.
// TIME_WAIT and the other closing states hold their port as ESTABLISHED
// does.
func (w *ephemeralWalk) add(s *sockets.Socket) {
	if !w.counted.has(s.LocalPort) {
		return
	}
	r, ok := topKey(s.RemoteAddr)
	if !ok {
		return
	}
	w.c.add(tupleKey{local: s.LocalAddr.As16(), remote: r, port: s.RemotePort})
	w.res.sockets++
}

// done keeps the top tuples and frees the counter.
func (w *ephemeralWalk) done() *ephemeralCounts {
	w.res.exact = !w.c.overflowed()
	w.res.tuples = w.c.distinct()
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
//	 "sockets":N,"tuples":N,"exact":1,"pused":12.50,
//	 "top":[{"local":"192.0.2.1","remote":"192.0.2.7","port":5432,"count":3529,"pused":12.50},...]}
//
// from the whole-table read (no walk of its own). "pused" is the busiest
// tuple's; with more than ephemeralCapacity distinct tuples ("exact":0)
// counts are Space-Saving estimates, each above its true count by at most
// sockets/16384, and every tuple holding more than that is listed.
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
	if r.exact {
		exact = 1
	}
	num("exact", exact)
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
		b = s.key.local.addr().AppendTo(b)
		b = append(b, `","remote":"`...)
		b = s.key.remote.addr().AppendTo(b)
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
