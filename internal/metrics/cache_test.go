package metrics

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// manualClock is a clock tests move by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(src sockets.Source, ttl time.Duration) (*snapshotCache, *manualClock) {
	clk := &manualClock{t: time.Unix(1_700_000_000, 0)}
	c := newSnapshotCache(src, ttl, time.Second)
	c.now = clk.now
	return c, clk
}

func TestCacheSharesOneReadWithinTTL(t *testing.T) {
	src := &fakeSource{socks: mixedTable()}
	c, clk := newTestCache(src, time.Second)
	ctx := context.Background()
	all := sockets.Query{}
	for i := 0; i < 5; i++ {
		if _, err := c.counts(ctx, all); err != nil {
			t.Fatal(err)
		}
		clk.add(100 * time.Millisecond)
	}
	if n := readsOf(c); n != 1 {
		t.Fatalf("5 reads within the TTL read %d times, want 1", n)
	}
	clk.add(time.Second)
	if _, err := c.counts(ctx, all); err != nil {
		t.Fatal(err)
	}
	if n := readsOf(c); n != 2 {
		t.Fatalf("a read after the TTL read %d times in all, want 2", n)
	}
}

func TestCacheStateQueriesUseFreshFullSnapshot(t *testing.T) {
	src := &fakeSource{socks: mixedTable()}
	c, _ := newTestCache(src, time.Second)
	ctx := context.Background()
	full, err := c.counts(ctx, sockets.Query{LocalPort: 80})
	if err != nil {
		t.Fatal(err)
	}
	// Eleven state items arriving together: all answered by the one dump.
	for _, s := range sockets.States() {
		got, err := c.counts(ctx, sockets.Query{LocalPort: 80, States: sockets.MaskOf(s)})
		if err != nil {
			t.Fatal(err)
		}
		if got[s] != full[s] {
			t.Errorf("%v: %d, full snapshot says %d", s, got[s], full[s])
		}
	}
	if n := src.walks.Load(); n != 1 {
		t.Fatalf("walked %d times, want 1", n)
	}
	// Another port or family is another table.
	if _, err := c.counts(ctx, sockets.Query{LocalPort: 8080, States: sockets.MaskOf(sockets.Established)}); err != nil {
		t.Fatal(err)
	}
	if n := src.walks.Load(); n != 2 {
		t.Fatalf("walked %d times, want 2", n)
	}
}

func TestCacheSingleStateUsesKernelMask(t *testing.T) {
	src := &fakeSource{socks: mixedTable()}
	c, _ := newTestCache(src, time.Second)
	got, err := c.counts(context.Background(), sockets.Query{States: sockets.MaskOf(sockets.TimeWait)})
	if err != nil {
		t.Fatal(err)
	}
	if got[sockets.TimeWait] != 3 || got.Total() != 3 {
		t.Fatalf("time_wait-only read counted %v", got)
	}
}

func TestCacheConcurrentIdenticalRequestsShareOneRead(t *testing.T) {
	src := &fakeSource{socks: mixedTable(), delay: 50 * time.Millisecond}
	c, _ := newTestCache(src, 0) // no TTL: only in-flight sharing
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.counts(context.Background(), sockets.Query{})
			if err == nil && got.Total() != 17 {
				err = errors.New("wrong total")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := readsOf(c); n != 1 {
		t.Fatalf("50 concurrent requests read %d times, want 1", n)
	}
	// With TTL 0 the next request reads again.
	if _, err := c.counts(context.Background(), sockets.Query{}); err != nil {
		t.Fatal(err)
	}
	if n := readsOf(c); n != 2 {
		t.Fatalf("read %d times, want 2", n)
	}
}

func TestCacheDoesNotKeepErrors(t *testing.T) {
	src := &fakeSource{err: errors.New("boom")}
	c, _ := newTestCache(src, time.Hour)
	for i := 0; i < 3; i++ {
		if _, err := c.counts(context.Background(), sockets.Query{}); err == nil {
			t.Fatal("no error")
		}
	}
	if n := src.walks.Load(); n != 3 {
		t.Fatalf("errors were cached: %d walks for 3 requests", n)
	}
}

func TestCacheWaiterLeavesOnItsDeadline(t *testing.T) {
	src := &fakeSource{socks: mixedTable(), delay: 300 * time.Millisecond}
	c, _ := newTestCache(src, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.counts(ctx, sockets.Query{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 200*time.Millisecond {
		t.Fatal("waiter did not leave on its own deadline")
	}
	// The detached read completes and serves the next request.
	got, err := c.counts(context.Background(), sockets.Query{})
	if err != nil || got.Total() != 17 {
		t.Fatalf("got %v, %v", got.Total(), err)
	}
	if n := readsOf(c); n != 1 {
		t.Fatalf("read %d times, want 1", n)
	}
}

func TestCacheEvictsStaleEntries(t *testing.T) {
	src := &fakeSource{socks: mixedTable()}
	c, clk := newTestCache(src, time.Second)
	for p := uint16(1); p <= 100; p++ {
		if _, err := c.counts(context.Background(), sockets.Query{LocalPort: p}); err != nil {
			t.Fatal(err)
		}
	}
	clk.add(2 * time.Second)
	if _, err := c.counts(context.Background(), sockets.Query{}); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d entries kept after the TTL, want 1", n)
	}
}

func TestCacheNeverDuplicatesAStuckRead(t *testing.T) {
	hang := make(chan struct{})
	src := &fakeSource{socks: mixedTable(), hang: hang}
	c, clk := newTestCache(src, time.Second) // read timeout 1 s
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		if _, err := c.counts(ctx, sockets.Query{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		cancel()
		clk.add(5 * time.Second) // long past the read's own timeout
	}
	if n := readsOf(c); n != 1 {
		t.Fatalf("a stuck read was duplicated: %d reads", n)
	}
	// Once it returns, its result serves the waiting and the next requests.
	close(hang)
	got, err := c.counts(context.Background(), sockets.Query{})
	if err != nil || got.Total() != 17 {
		t.Fatalf("got %d, %v", got.Total(), err)
	}
}

func TestCacheListeningPortsFromWholeTable(t *testing.T) {
	src := &fakeSource{socks: mixedTable()}
	c, clk := newTestCache(src, time.Second)
	ctx := context.Background()
	if _, err := c.counts(ctx, sockets.Query{}); err != nil {
		t.Fatal(err)
	}
	walks := src.walks.Load() // the listener read and the full walk
	if walks != 2 {
		t.Fatalf("whole-table read walked %d times, want 2", walks)
	}
	for _, port := range []uint16{80, 8080} {
		want, err := newTestCacheCounts(mixedTable(), sockets.Query{LocalPort: port})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []sockets.Query{{LocalPort: port}, {LocalPort: port, States: sockets.MaskOf(sockets.Established)}} {
			got, err := c.counts(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("port %d from the whole table: %v, a filtered read says %v", port, got, want)
			}
		}
	}
	if n := src.walks.Load(); n != walks {
		t.Fatalf("listening-port queries walked %d more times, want 0", n-walks)
	}
	// A port that does not listen, and one family only, need their own read.
	if _, err := c.counts(ctx, sockets.Query{LocalPort: 50000}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.counts(ctx, sockets.Query{LocalPort: 80, Family: sockets.FamilyV6}); err != nil {
		t.Fatal(err)
	}
	if n := src.walks.Load(); n != walks+2 {
		t.Fatalf("walked %d more times, want 2", n-walks)
	}
	// Past the TTL the whole table no longer answers.
	clk.add(2 * time.Second)
	if _, err := c.counts(ctx, sockets.Query{LocalPort: 80}); err != nil {
		t.Fatal(err)
	}
	if n := src.walks.Load(); n != walks+3 {
		t.Fatalf("walked %d more times, want 3", n-walks)
	}
}

// newTestCacheCounts counts socks for q with a cache of its own (a plain
// filtered read).
func newTestCacheCounts(socks []sockets.Socket, q sockets.Query) (sockets.Counts, error) {
	return sockets.Count(context.Background(), &fakeSource{socks: socks}, q)
}

func TestCacheBurstOfStatesReadsAllStatesOnce(t *testing.T) {
	src := &fakeSource{socks: mixedTable()}
	c, clk := newTestCache(src, time.Second)
	ctx := context.Background()
	// A lone state item: a filtered read.
	got, err := c.counts(ctx, sockets.Query{States: sockets.MaskOf(sockets.TimeWait)})
	if err != nil || got.Total() != 3 {
		t.Fatalf("time_wait read: %v, %v", got, err)
	}
	// Another state within the TTL: every state is read once, and serves
	// the rest of the burst.
	for _, s := range sockets.States() {
		if _, err := c.counts(ctx, sockets.Query{States: sockets.MaskOf(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.walks.Load(); n != 3 { // filtered + listener read + full walk
		t.Fatalf("a burst of 12 state queries walked %d times, want 3", n)
	}
	// Much later, a lone state is a filtered read again.
	clk.add(5 * time.Second)
	got, err = c.counts(ctx, sockets.Query{States: sockets.MaskOf(sockets.Listen)})
	if err != nil || got.Total() != 3 {
		t.Fatalf("listen read: %v, %v", got, err)
	}
	if n := src.walks.Load(); n != 4 {
		t.Fatalf("walked %d times, want 4", n)
	}
}

// readsOf is the number of reads c started (a whole-table read walks twice).
func readsOf(c *snapshotCache) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// clockSource is a table whose every walk takes d of the test clock.
type clockSource struct {
	fakeSource
	clk *manualClock
	d   time.Duration
}

func (c *clockSource) Walk(ctx context.Context, q sockets.Query, visit func(*sockets.Socket)) error {
	c.clk.add(c.d)
	return c.fakeSource.Walk(ctx, q, visit)
}

// TestCacheFreshnessCountsFromReadStart pins the rule that makes the TTL
// safe for items polled every TTL seconds: a read serves requests arriving
// less than ttl after it STARTED, so two polls one delay apart never share
// a read however long it took; requests arriving while it runs share it.
func TestCacheFreshnessCountsFromReadStart(t *testing.T) {
	for _, q := range []sockets.Query{{}, {LocalPort: 80}, {States: sockets.MaskOf(sockets.TimeWait)}} {
		src := &clockSource{fakeSource: fakeSource{socks: mixedTable()}, d: time.Second}
		c, clk := newTestCache(&src.fakeSource, 60*time.Second)
		src.clk = clk
		c.src = src
		ctx := context.Background()
		t0 := clk.now()
		if _, err := c.counts(ctx, q); err != nil { // reads from t0 to t0+1s (2s for the whole table)
			t.Fatal(err)
		}
		clk.add(59*time.Second - clk.now().Sub(t0)) // t0+59s: within ttl of the start
		if _, err := c.counts(ctx, q); err != nil {
			t.Fatal(err)
		}
		if n := readsOf(c); n != 1 {
			t.Fatalf("%+v: a request 59 s after the start read %d times in all, want 1", q, n)
		}
		clk.add(time.Second) // t0+60s: one delay after the first poll
		if _, err := c.counts(ctx, q); err != nil {
			t.Fatal(err)
		}
		if n := readsOf(c); n != 2 {
			t.Errorf("%+v: a poll one TTL after the first got the first read again (%d reads in all, want 2)", q, n)
		}
	}
	// The whole-table read too, through whole().
	src := &clockSource{fakeSource: fakeSource{socks: mixedTable()}, d: time.Second}
	c, clk := newTestCache(src, 60*time.Second)
	src.clk = clk
	for i := range 3 {
		if _, _, err := c.whole(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := readsOf(c); n != uint64(i+1) {
			t.Fatalf("poll %d, 60 s apart: %d reads in all", i+1, n)
		}
		clk.add(60*time.Second - 2*src.d) // each read moved the clock by two walks
	}
}
