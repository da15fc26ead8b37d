package metrics

import (
	"context"
	"sync"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// snapshotCache shares socket-table reads between requests. A read serves
// every request for the same query that arrives within ttl after it
// completed; concurrent identical requests wait for the one read in flight
// instead of starting their own. A query for some states is also answered by
// a fresh read of all states with the same port and family, so the state
// items of a template cost one dump when they arrive together.
type snapshotCache struct {
	src     sockets.Source
	ttl     time.Duration
	timeout time.Duration // bound of one read, independent of who waits
	now     func() time.Time

	mu      sync.Mutex
	entries map[sockets.Query]*snapshot
	reads   uint64 // reads started, for tests
}

type snapshot struct {
	ready   chan struct{} // closed when counts/err are set
	counts  sockets.Counts
	err     error
	started time.Time
	at      time.Time // completion time
}

func newSnapshotCache(src sockets.Source, ttl, timeout time.Duration) *snapshotCache {
	return &snapshotCache{src: src, ttl: ttl, timeout: timeout, now: time.Now, entries: map[sockets.Query]*snapshot{}}
}

// fresh reports whether e can answer now: in flight for less than the read
// timeout, or completed without error less than ttl ago. A read still in
// flight past its timeout is blocked where the context cannot reach it (a
// read(2) on a stuck file); later requests start a new one instead of
// waiting on it forever. Called with c.mu held.
func (c *snapshotCache) fresh(e *snapshot, now time.Time) bool {
	if e == nil {
		return false
	}
	select {
	case <-e.ready:
		return e.err == nil && now.Sub(e.at) < c.ttl
	default:
		return now.Sub(e.started) < c.timeout
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
	all := q
	all.States = 0
	e := c.entries[all]
	if !c.fresh(e, now) {
		e = c.entries[q]
	}
	if !c.fresh(e, now) {
		c.evict(now)
		e = &snapshot{ready: make(chan struct{}), started: now}
		c.entries[q] = e
		c.reads++
		go c.read(q, e)
	}
	c.mu.Unlock()

	select {
	case <-e.ready:
		return e.counts, e.err
	case <-ctx.Done():
		return sockets.Counts{}, ctx.Err()
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
		e.at = c.now()
		close(e.ready)
		c.mu.Unlock()
	}()
	e.counts, e.err = sockets.Count(ctx, c.src, q)
}

// evict drops completed entries that can no longer answer. Called with c.mu
// held.
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
}
