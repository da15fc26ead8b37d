package metrics

import (
	"cmp"
	"math/rand/v2"
	"slices"
)

// counterKey is what a keyCounter counts: a comparable value hashed with
// the counter's secrets and ordered for ties.
type counterKey[K any] interface {
	comparable
	hash(s0, s1 uint64) uint32
	compare(K) int
}

// countSlot is one counted key.
type countSlot[K counterKey[K]] struct {
	key   K
	count uint64
	hash  uint32 // of key, low bits pick the home bucket
	pos   uint32 // bucket of the hash table pointing at this slot
}

// keyCounter finds the keys seen most often in a stream, in memory bounded
// by its capacity k, whatever the length of the stream or its number of
// distinct keys: at most k slots (for a 16-byte address 32 bytes each, for
// a tcp.ephemeral.get tuple 48) and a hash table of at most 2k rounded up
// to a power of two 4-byte buckets (for k = 16384 and addresses: 512 KiB +
// 128 KiB), allocated as they fill, never freed or regrown by churn. The
// table is open addressing with linear probing and backward-shift deletion,
// so evictions leave no tombstones, and its hash is keyed with random
// secrets per counter, so chosen keys cannot force long probe chains.
//
// While at most k distinct keys have been seen, every count is exact. The
// (k+1)-th distinct key turns the slots into a min-heap by count and the
// counter into Space-Saving (Metwally, Agrawal, El Abbadi, 2005): an unseen
// key takes over the slot of the smallest count m and counts m+1. Then, for
// a stream of N keys, the smallest count never exceeds N/k, each count
// overestimates its key by at most that smallest count, and every key seen
// more than N/k times holds a slot. Recounting the kept keys over the same
// stream (startRecount, recount) makes their counts exact, so top(n) is the
// true top n whenever the n-th largest true count exceeds N/k. Otherwise (a
// flat tail: e.g. 1M sockets from 1M addresses, all counts 1) the keys
// listed may differ from the ones the tie order would pick, but each shown
// count is still exact.
type keyCounter[K counterKey[K]] struct {
	k      int
	s0, s1 uint64  // hash secrets
	table  []int32 // bucket -> slot index + 1; 0 is empty
	slots  []countSlot[K]
	heaped bool // slots form a min-heap (capacity was exceeded)
}

func newKeyCounter[K counterKey[K]](k int) *keyCounter[K] {
	return &keyCounter[K]{k: k, s0: rand.Uint64(), s1: rand.Uint64(), table: make([]int32, 64)}
}

// find returns the bucket holding key and its slot index, or the empty
// bucket where it would go and -1.
func (c *keyCounter[K]) find(key *K, h uint32) (uint32, int32) {
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
func (c *keyCounter[K]) remove(b uint32) {
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
func (c *keyCounter[K]) grow() {
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

// add counts one occurrence of key.
func (c *keyCounter[K]) add(key K) {
	h := key.hash(c.s0, c.s1)
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
		c.slots = append(c.slots, countSlot[K]{key: key, count: 1, hash: h, pos: b})
		c.table[b] = int32(len(c.slots))
		return
	}
	if !c.heaped {
		for i := len(c.slots)/2 - 1; i >= 0; i-- {
			c.down(i)
		}
		c.heaped = true
	}
	// Space-Saving: the new key inherits the smallest count, plus one.
	root := &c.slots[0]
	c.remove(root.pos)
	b, _ = c.find(&key, h)
	root.key, root.hash, root.pos = key, h, b
	root.count++
	c.table[b] = 1
	c.down(0)
}

// down restores the min-heap below slot i after its count grew.
func (c *keyCounter[K]) down(i int) {
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

// overflowed reports whether more than k distinct keys were seen, so that
// the counts are estimates until recounted.
func (c *keyCounter[K]) overflowed() bool { return c.heaped }

// distinct is the number of keys held: the number of distinct keys seen,
// up to the capacity.
func (c *keyCounter[K]) distinct() int { return len(c.slots) }

// startRecount zeroes every count, keeping the keys, for an exact recount
// with recount.
func (c *keyCounter[K]) startRecount() {
	for i := range c.slots {
		c.slots[i].count = 0
	}
	c.heaped = false
}

// recount counts key if it holds a slot; other keys are ignored.
func (c *keyCounter[K]) recount(key K) {
	if _, i := c.find(&key, key.hash(c.s0, c.s1)); i >= 0 {
		c.slots[i].count++
	}
}

// top returns the n largest counts, most first, ties by the keys' order.
// Keys whose recount is 0 (gone between the walks) are left out. It sorts
// the slots in place: the counter is done with once asked.
func (c *keyCounter[K]) top(n int) []countSlot[K] {
	out := slices.DeleteFunc(c.slots, func(s countSlot[K]) bool { return s.count == 0 })
	c.slots, c.table = nil, nil
	slices.SortFunc(out, func(a, b countSlot[K]) int {
		if a.count != b.count {
			return cmp.Compare(b.count, a.count)
		}
		return a.key.compare(b.key)
	})
	return out[:min(n, len(out))]
}
