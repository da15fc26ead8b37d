package metrics

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// snapshotCache shares socket-table reads between requests.
//
//   - A read serves every request for the same query that arrives within ttl
//     after the read STARTED; concurrent identical requests wait for the one
//     read in flight instead of starting their own. Counting from the start
//     means two requests ttl or more apart never share a read, however long
//     the read took: an item polled every ttl seconds or slower gets a new
//     read every time.
//   - A query for some states is answered by a fresh read of all states with
//     the same port and family. A query for one state alone reads with the
//     kernel's state mask, unless another state of the same port and family
//     was asked within ttl: then it reads all states, so a burst of state
//     items costs one full dump and a lone state item a filtered one.
//   - The read of the whole TCP table (every state, port and family, as
//     tcp.status.get and tcp.sockets.get ask) also takes the listeners with
//     their addresses and queues and counts by state the sockets of each
//     listening port, so per-port queries of listening ports within ttl cost
//     no read at all.
type snapshotCache struct {
	src     sockets.Source
	ttl     time.Duration
	timeout time.Duration // bound of one read, independent of who waits
	now     func() time.Time
	// localPorts reads the local port range for the whole-table read's
	// count of ephemeral ports (tcp.ephemeral.get); nil counts none.
	localPorts func() (kernel.LocalPorts, error)

	mu      sync.Mutex
	entries map[sockets.Query]*snapshot
	// lastSome is when a query for some states of a port and family (the key,
	// with States 0) was last answered with a filtered read.
	lastSome map[sockets.Query]time.Time
	reads    uint64 // reads started, for tests
}

type snapshot struct {
	ready  chan struct{} // closed when the fields below are set
	counts sockets.Counts
	ports  *portCounts      // the whole-table read only
	groups *cgroupCounts    // the whole-table read only
	eph    *ephemeralCounts // the whole-table read only
	err    error
	at     time.Time // when the read started
}

// portCounts holds the listening ports of a whole-table read: their
// listeners and the counts by state of their sockets.
type portCounts struct {
	slot  [65536]uint16 // port → index+1 into ports; 0 = not counted
	ports []listenPort  // sorted by port
}

// listenPort is one listening port of a whole-table read.
type listenPort struct {
	port uint16
	portListeners
	counts sockets.Counts
}

func (p *portCounts) get(port uint16) (sockets.Counts, bool) {
	if p == nil || p.slot[port] == 0 {
		return sockets.Counts{}, false
	}
	return p.ports[p.slot[port]-1].counts, true
}

// maxPortSlots bounds how many listening ports the whole-table read counts
// separately: the lowest ones. A host with more answers per-port queries of
// the others with filtered reads, and tcp.sockets.get leaves them out.
const maxPortSlots = 4096

func newSnapshotCache(src sockets.Source, ttl, timeout time.Duration) *snapshotCache {
	return &snapshotCache{src: src, ttl: ttl, timeout: timeout, now: time.Now,
		entries: map[sockets.Query]*snapshot{}, lastSome: map[sockets.Query]time.Time{}}
}

// wholeTable is the query of every TCP socket.
var wholeTable = sockets.Query{Proto: sockets.TCP}

// fresh reports whether e can answer now: in flight, or completed without
// error and started less than ttl ago. A read in flight is always waited for, never
// duplicated: a read blocked where its context cannot reach it (a read(2) on
// a stuck file) makes the requests for its query time out, but never piles
// up blocked threads. Called with c.mu held.
func (c *snapshotCache) fresh(e *snapshot, now time.Time) bool {
	if e == nil {
		return false
	}
	select {
	case <-e.ready:
		return e.err == nil && now.Sub(e.at) < c.ttl
	default:
		return true
	}
}

// completed reports whether e has finished without error. Called with c.mu
// held.
func completed(e *snapshot) bool {
	if e == nil {
		return false
	}
	select {
	case <-e.ready:
		return e.err == nil
	default:
		return false
	}
}

// counts returns the socket counts by state for q. Only the states in
// q.States are meaningful in the result (more may be filled).
func (c *snapshotCache) counts(ctx context.Context, q sockets.Query) (sockets.Counts, error) {
	q.Fields = 0
	if q.Proto == 0 {
		q.Proto = sockets.TCP
	}
	now := c.now()
	c.mu.Lock()
	if q.LocalPort != 0 && q.Family == sockets.FamilyAll && q.Proto == sockets.TCP {
		if w := c.entries[wholeTable]; c.fresh(w, now) && completed(w) {
			if pc, ok := w.ports.get(q.LocalPort); ok {
				c.mu.Unlock()
				return pc, nil
			}
		}
	}
	e := c.entry(q, now)
	c.mu.Unlock()
	if err := c.wait(ctx, e); err != nil {
		return sockets.Counts{}, err
	}
	return e.counts, nil
}

// whole returns the whole-table read: every TCP socket counted by state,
// and the listening ports.
func (c *snapshotCache) whole(ctx context.Context) (sockets.Counts, *portCounts, error) {
	e, err := c.wholeSnapshot(ctx)
	if err != nil {
		return sockets.Counts{}, nil, err
	}
	return e.counts, e.ports, nil
}

// wholeSnapshot returns the completed whole-table read.
func (c *snapshotCache) wholeSnapshot(ctx context.Context) (*snapshot, error) {
	now := c.now()
	c.mu.Lock()
	e := c.entry(wholeTable, now)
	c.mu.Unlock()
	if err := c.wait(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// entry returns the snapshot that answers q at now, starting a read when
// none is fresh. Called with c.mu held.
func (c *snapshotCache) entry(q sockets.Query, now time.Time) *snapshot {
	all := q
	all.States = 0
	e := c.entries[all]
	if !c.fresh(e, now) {
		e = c.entries[q]
	}
	if c.fresh(e, now) {
		return e
	}
	if q.States != 0 {
		if last, ok := c.lastSome[all]; ok && now.Sub(last) < c.ttl {
			q = all // several states asked in a burst: one full read
		} else {
			c.lastSome[all] = now
		}
	}
	c.evict(now)
	e = &snapshot{ready: make(chan struct{}), at: now}
	c.entries[q] = e
	c.reads++
	go c.read(q, e)
	return e
}

// wait waits for e, or for the end of ctx.
func (c *snapshotCache) wait(ctx context.Context, e *snapshot) error {
	select {
	case <-e.ready:
		return e.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read performs one socket-table read for q and publishes it in e. It runs
// detached from the requests waiting for it, bounded by c.timeout.
func (c *snapshotCache) read(q sockets.Query, e *snapshot) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			e.err = panicError(r)
		}
		c.mu.Lock()
		close(e.ready)
		c.mu.Unlock()
	}()
	if q == wholeTable {
		e.err = readWholeTable(ctx, c.src, c.localPorts, e)
		return
	}
	e.counts, e.err = sockets.Count(ctx, c.src, q)
}

// readWholeTable counts every TCP socket by state, by state and port for
// the ports that listen, by state and cgroup, and, for the local ports
// connect() picks from (localPorts), by destination tuple; it fills e's
// counts, ports, groups and eph. The listeners, with their addresses and
// queues, come from a LISTEN-only read, which walks only the kernel's
// listening hash with netlink and only the first lines of the tables with
// /proc; the one full walk then adds each socket to its port's counts if
// that port listens, to its cgroup's counts, and to its destination's.
func readWholeTable(ctx context.Context, src sockets.Source, localPorts func() (kernel.LocalPorts, error), e *snapshot) error {
	byPort := map[uint16]*portListeners{}
	q := sockets.Query{Proto: sockets.TCP, States: sockets.MaskOf(sockets.Listen), Fields: sockets.FieldLocalAddr | sockets.FieldQueues}
	err := src.Walk(ctx, q, func(s *sockets.Socket) {
		l := byPort[s.LocalPort]
		if l == nil {
			l = &portListeners{}
			byPort[s.LocalPort] = l
		}
		l.addAddr(s)
		l.addQueues(s)
	})
	if err != nil {
		return err
	}
	ports := make([]uint16, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	pc := &portCounts{ports: make([]listenPort, 0, min(len(ports), maxPortSlots))}
	for _, p := range ports[:min(len(ports), maxPortSlots)] {
		byPort[p].sortAddrs()
		pc.ports = append(pc.ports, listenPort{port: p, portListeners: *byPort[p]})
		pc.slot[p] = uint16(len(pc.ports))
	}
	var total sockets.Counts
	cg := newCgroupCounts()
	q = wholeTable
	q.Fields = sockets.FieldCgroup
	var eph *ephemeralWalk
	e.eph = &ephemeralCounts{err: errNoLocalPorts}
	if localPorts != nil {
		if lp, err := localPorts(); err != nil {
			e.eph.err = err
		} else {
			eph = newEphemeralWalk(lp, func(p uint16) bool { return byPort[p] != nil })
			q.Fields |= sockets.FieldLocalAddr | sockets.FieldRemote
		}
	}
	err = src.Walk(ctx, q, func(s *sockets.Socket) {
		st := s.State & sockets.MaxState
		total[st]++
		if i := pc.slot[s.LocalPort]; i != 0 {
			pc.ports[i-1].counts[st]++
		}
		cg.add(s.Cgroup, st)
		if eph != nil {
			eph.add(s)
		}
	})
	if err != nil {
		return err
	}
	cg.source = src.Name()
	e.counts, e.ports, e.groups = total, pc, cg
	if eph != nil {
		e.eph = eph.done()
	}
	return nil
}

// errNoLocalPorts: an exporter without a local port range reader.
var errNoLocalPorts = errors.New("no local port range reader")

// evict drops completed entries that can no longer answer, and burst marks
// older than ttl. Called with c.mu held.
func (c *snapshotCache) evict(now time.Time) {
	for k, e := range c.entries {
		select {
		case <-e.ready:
			if !c.fresh(e, now) {
				delete(c.entries, k)
			}
		default:
		}
	}
	for k, t := range c.lastSome {
		if now.Sub(t) >= c.ttl {
			delete(c.lastSome, k)
		}
	}
}
