package metrics

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
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
	if err := e.src.Walk(ctx, q, func(s *sockets.Socket) { c.add(s.RemoteAddr) }); err != nil {
		e.log.Debugf("socket walk %+v failed: %v", q, err)
		return "", operatorError(err, errSocketTable)
	}
	if c.overflowed() {
		c.startRecount()
		if err := e.src.Walk(ctx, q, func(s *sockets.Socket) { c.recount(s.RemoteAddr) }); err != nil {
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
		b = s.addr().AppendTo(b)
		b = append(b, `","count":`...)
		b = strconv.AppendUint(b, s.count, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// topSlot is one counted address.
type topSlot struct {
	key   [16]byte // the normalised address (topKey) in 16-byte form
	count uint64
	hash  uint32 // of key, low bits pick the home bucket
	pos   uint32 // bucket of the hash table pointing at this slot
}

// addr returns the slot's address; IPv4 comes back as IPv4.
func (s *topSlot) addr() netip.Addr { return netip.AddrFrom16(s.key).Unmap() }

// is4 reports whether the key holds an IPv4 address (::ffff:a.b.c.d form).
func (s *topSlot) is4() bool {
	return [12]byte(s.key[:12]) == [12]byte{10: 0xff, 11: 0xff}
}

// topCounter finds the addresses seen most often in a stream, in memory
// bounded by its capacity k, whatever the length of the stream or its
// number of distinct addresses: at most k slots of 32 bytes and a hash
// table of at most 2k rounded up to a power of two 4-byte buckets (for
// k = 16384: 512 KiB + 128 KiB), allocated as they fill, never freed or
// regrown by churn. The table is open addressing with linear probing and
// backward-shift deletion, so evictions leave no tombstones, and its hash
// is keyed with random secrets per counter, so chosen addresses cannot
// force long probe chains.
//
// While at most k distinct addresses have been seen, every count is exact.
// The (k+1)-th distinct address turns the slots into a min-heap by count
// and the counter into Space-Saving (Metwally, Agrawal, El Abbadi, 2005): an
// unseen address takes over the slot of the smallest count m and counts
// m+1. Then, for a stream of N addresses, the smallest count never exceeds
// N/k, each count overestimates its address by at most that smallest
// count, and every address seen more than N/k times holds a slot. Recounting
// the kept addresses over the same stream (startRecount, recount) makes
// their counts exact, so top(n) is the true top n whenever the n-th largest
// true count exceeds N/k. Otherwise (a flat tail: e.g. 1M sockets from 1M
// addresses, all counts 1) the addresses listed may differ from the ones
// the tie order would pick, but each shown count is still exact.
type topCounter struct {
	k      int
	s0, s1 uint64  // hash secrets
	table  []int32 // bucket -> slot index + 1; 0 is empty
	slots  []topSlot
	heaped bool // slots form a min-heap (capacity was exceeded)
}

func newTopCounter(k int) *topCounter {
	return &topCounter{k: k, s0: rand.Uint64(), s1: rand.Uint64(), table: make([]int32, 64)}
}

// topKey normalises a remote address into its 16-byte key: IPv4-mapped
// IPv6 folds to IPv4 (whose 16-byte form is the mapped one, so both give
// the same key), zones are dropped. ok is false for sockets without a
// remote end (listeners: 0.0.0.0 or ::).
func topKey(a netip.Addr) (key [16]byte, ok bool) {
	if !a.IsValid() || a.Unmap().IsUnspecified() {
		return key, false
	}
	return a.As16(), true
}

func (c *topCounter) hash(key *[16]byte) uint32 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(key[:8])^c.s0, binary.LittleEndian.Uint64(key[8:])^c.s1)
	h := hi ^ lo
	return uint32(h ^ h>>32)
}

// find returns the bucket holding key and its slot index, or the empty
// bucket where it would go and -1.
func (c *topCounter) find(key *[16]byte, h uint32) (uint32, int32) {
	mask := uint32(len(c.table) - 1)
	for b := h & mask; ; b = (b + 1) & mask {
		v := c.table[b]
		if v == 0 {
			return b, -1
		}
		if c.slots[v-1].key == *key {
			return b, v - 1
		}
	}
}

// remove empties bucket b, shifting back the entries of its probe run so
// lookups never need tombstones.
func (c *topCounter) remove(b uint32) {
	mask := uint32(len(c.table) - 1)
	c.table[b] = 0
	for j := (b + 1) & mask; c.table[j] != 0; j = (j + 1) & mask {
		v := c.table[j]
		home := c.slots[v-1].hash & mask
		// The entry at j may fill the hole at b unless its home lies
		// cyclically in (b, j].
		var stays bool
		if b <= j {
			stays = b < home && home <= j
		} else {
			stays = b < home || home <= j
		}
		if !stays {
			c.table[b] = v
			c.slots[v-1].pos = b
			c.table[j] = 0
			b = j
		}
	}
}

// grow doubles the table while it is under its final size (2k buckets
// rounded up), keeping the load at most one half, and makes room for as
// many slots as the new table can take (append alone would reallocate
// them more often).
func (c *topCounter) grow() {
	c.table = make([]int32, 2*len(c.table))
	c.slots = slices.Grow(c.slots, min(c.k, len(c.table)/2)-len(c.slots))
	mask := uint32(len(c.table) - 1)
	for i := range c.slots {
		b := c.slots[i].hash & mask
		for c.table[b] != 0 {
			b = (b + 1) & mask
		}
		c.table[b] = int32(i + 1)
		c.slots[i].pos = b
	}
}

// add counts one occurrence of a.
func (c *topCounter) add(a netip.Addr) {
	key, ok := topKey(a)
	if !ok {
		return
	}
	h := c.hash(&key)
	b, i := c.find(&key, h)
	if i >= 0 {
		c.slots[i].count++
		if c.heaped {
			c.down(int(i))
		}
		return
	}
	if len(c.slots) < c.k {
		if 2*(len(c.slots)+1) > len(c.table) {
			c.grow()
			b, _ = c.find(&key, h)
		}
		c.slots = append(c.slots, topSlot{key: key, count: 1, hash: h, pos: b})
		c.table[b] = int32(len(c.slots))
		return
	}
	if !c.heaped {
		for i := len(c.slots)/2 - 1; i >= 0; i-- {
			c.down(i)
		}
		c.heaped = true
	}
	// Space-Saving: the new address inherits the smallest count, plus one.
	root := &c.slots[0]
	c.remove(root.pos)
	b, _ = c.find(&key, h)
	root.key, root.hash, root.pos = key, h, b
	root.count++
	c.table[b] = 1
	c.down(0)
}

// down restores the min-heap below slot i after its count grew.
func (c *topCounter) down(i int) {
	n := len(c.slots)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && c.slots[r].count < c.slots[l].count {
			m = r
		}
		if c.slots[i].count <= c.slots[m].count {
			return
		}
		c.slots[i], c.slots[m] = c.slots[m], c.slots[i]
		c.table[c.slots[i].pos] = int32(i + 1)
		c.table[c.slots[m].pos] = int32(m + 1)
		i = m
	}
}

// overflowed reports whether more than k distinct addresses were seen, so
// that the counts are estimates until recounted.
func (c *topCounter) overflowed() bool { return c.heaped }

// startRecount zeroes every count, keeping the addresses, for an exact
// recount with recount.
func (c *topCounter) startRecount() {
	for i := range c.slots {
		c.slots[i].count = 0
	}
	c.heaped = false
}

// recount counts a if it holds a slot; other addresses are ignored.
func (c *topCounter) recount(a netip.Addr) {
	key, ok := topKey(a)
	if !ok {
		return
	}
	if _, i := c.find(&key, c.hash(&key)); i >= 0 {
		c.slots[i].count++
	}
}

// top returns the n largest counts, most first, ties by address (IPv4
// before IPv6, then numerically, as netip.Addr.Compare orders them).
// Addresses whose recount is 0 (gone between the walks) are left out. It
// sorts the slots in place: the counter is done with once asked.
func (c *topCounter) top(n int) []topSlot {
	out := slices.DeleteFunc(c.slots, func(s topSlot) bool { return s.count == 0 })
	c.slots, c.table = nil, nil
	slices.SortFunc(out, func(a, b topSlot) int {
		if a.count != b.count {
			return cmp.Compare(b.count, a.count)
		}
		if a4, b4 := a.is4(), b.is4(); a4 != b4 {
			if a4 {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.key[:], b.key[:])
	})
	return out[:min(n, len(out))]
}
