package procnames

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeProc writes a process into a fixture /proc tree: comm, a stat line
// with the given start time (none when start is 0) and one fd link per
// target, descriptors numbered from 0.
func fakeProc(t testing.TB, root string, pid int, comm string, start uint64, targets ...string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if start != 0 {
		restart(t, root, pid, comm, start)
	}
	for i, target := range targets {
		if err := os.Symlink(target, filepath.Join(dir, "fd", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// restart rewrites the stat and comm of pid as a new process would have.
func restart(t testing.TB, root string, pid int, comm string, start uint64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	// The layout of a real stat line: 52 fields, starttime the 22nd.
	stat := fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 1046 0 0 0 3 1 0 0 20 0 1 0 %d 8388608 1200 18446744073709551615 1 1 0 0 0 0 0 4096 16387 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		pid, comm, pid, pid, start)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sock(ino uint64) string { return fmt.Sprintf("socket:[%d]", ino) }

// many returns n descriptor targets: sockets not wanted and other files.
func many(n int) []string {
	out := make([]string, n)
	for i := range out {
		if i%2 == 0 {
			out[i] = sock(uint64(500000 + i))
		} else {
			out[i] = "/dev/null"
		}
	}
	return out
}

func TestParseStat(t *testing.T) {
	line := "42 (a) b) (c) S 1 42 42 0 -1 4194560 1046 0 0 0 3 1 0 0 20 0 1 0 98765 8388608 1200"
	start, name, err := parseStat([]byte(line))
	if err != nil || start != 98765 || name != "a) b) (c" {
		t.Errorf("parseStat(%q) = %d, %q, %v; want 98765, %q", line, start, name, err, "a) b) (c")
	}
	for _, bad := range []string{"", "42 sshd S 1", "42 (sshd) S 1 2 3", "42 (sshd" + " S 1 42 42 0 -1 4194560 1046 0 0 0 3 1 0 0 20 0 1 0 x",
		"42 (sshd) S 1 42 42 0 -1 4194560 1046 0 0 0 3 1 0 0 20 0 1 0 0 8388608"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
	// The start time of this process, as the kernel writes it.
	self, err := os.Open("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	start, name, err = readStat(int(self.Fd()), strconv.Itoa(os.Getpid()))
	if err != nil || start == 0 || name != selfComm(t) {
		t.Errorf("readStat(self) = %d, %q, %v", start, name, err)
	}
}

// TestScanEarlyStop: a process holding 10000 descriptors is read no further
// than the first pass when the first pass names every wanted socket; when a
// wanted socket is still unnamed, the second pass reads the rest.
func TestScanEarlyStop(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 10, "sshd", 100, "/dev/null", "/dev/null", "/dev/null", sock(7))
	fakeProc(t, root, 20, "loadgen", 200, many(10000)...)
	fakeProc(t, root, 30, "nginx", 300, append([]string{"/dev/null", sock(8)}, many(10)...)...)

	res, err := Scan(context.Background(), root, set(7, 8))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]string{7: {"sshd"}, 8: {"nginx"}}
	if !reflect.DeepEqual(res.Names, want) || res.SecondPass || res.Partial {
		t.Errorf("Names %v, second pass %v, partial %v; want %v, no second pass", res.Names, res.SecondPass, res.Partial, want)
	}
	// 4 + 64 + 12 descriptors: the big process only to its first pass.
	if res.Links != 4+FirstPass+12 {
		t.Errorf("read %d descriptors, want %d", res.Links, 4+FirstPass+12)
	}
	if got := res.Owners[7]; !reflect.DeepEqual(got, []Owner{{PID: 10, Start: 100, Name: "sshd"}}) {
		t.Errorf("Owners[7] = %+v", got)
	}

	// 9 is held by nobody: every descriptor of every process is read.
	res, err = Scan(context.Background(), root, set(7, 8, 9))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Names, want) || !res.SecondPass || res.Links != 4+10000+12 {
		t.Errorf("with an unheld socket: Names %v, second pass %v, %d descriptors read; want %v, second pass, %d",
			res.Names, res.SecondPass, res.Links, want, 4+10000+12)
	}
}

// TestScanEarlyStopLive: this process holds a listener on a low descriptor
// and 10000 more descriptors; a scan of the machine's /proc for the
// listener does not read them.
func TestScanEarlyStopLive(t *testing.T) {
	l := listen(t)
	if fd := fdOf(t, l); fd >= FirstPass {
		t.Skipf("the test process already has %d descriptors", fd)
	}
	holdFDs(t, 10000)
	res, err := Scan(context.Background(), "/proc", set(inodeOf(t, l)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Names[inodeOf(t, l)]) == 0 || res.SecondPass || res.Links > FirstPass*res.Processes || res.Links >= 10000 {
		t.Errorf("scan = names %v, second pass %v, %d descriptors of %d processes; want the listener named in the first pass",
			res.Names, res.SecondPass, res.Links, res.Processes)
	}
}

// holdFDs opens n sockets, closed when the test ends.
func holdFDs(t testing.TB, n int) {
	t.Helper()
	fds := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	})
	for range n {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Skipf("holding %d descriptors: %v", n, err)
		}
		fds = append(fds, fd)
	}
}

// fakeClock is a settable clock for a Cache.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestCache(root string) (*Cache, *fakeClock) {
	c := NewCache(root)
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.now = clk.now
	return c, clk
}

func lookup(t *testing.T, c *Cache, want map[uint64]struct{}) Result {
	t.Helper()
	res, err := c.Lookup(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestCacheHitAndInvalidation: a second lookup of unchanged listeners reads
// no descriptor; an owner restarted (new start time) or gone makes its
// socket scanned again; a socket no longer wanted is forgotten.
func TestCacheHitAndInvalidation(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 10, "sshd", 100, "/dev/null", sock(7))
	fakeProc(t, root, 11, "sshd", 110, "/dev/null", sock(7))
	fakeProc(t, root, 20, "loadgen", 200, many(1000)...)
	fakeProc(t, root, 30, "nginx", 300, "/dev/null", sock(8))
	c, _ := newTestCache(root)

	first := lookup(t, c, set(7, 8))
	want := map[uint64][]string{7: {"sshd"}, 8: {"nginx"}}
	if !reflect.DeepEqual(first.Names, want) || first.Links == 0 || first.Cached != 0 {
		t.Fatalf("first lookup: %+v", first)
	}
	second := lookup(t, c, set(7, 8))
	if !reflect.DeepEqual(second.Names, want) || second.Links != 0 || second.Processes != 0 || second.Cached != 2 {
		t.Errorf("second lookup: Names %v, %d descriptors, %d processes, %d cached; want %v from the cache alone",
			second.Names, second.Links, second.Processes, second.Cached, want)
	}

	// One of two owners exits: the other still names the socket.
	if err := os.RemoveAll(filepath.Join(root, "11")); err != nil {
		t.Fatal(err)
	}
	res := lookup(t, c, set(7, 8))
	if !reflect.DeepEqual(res.Names, want) || res.Links != 0 || !reflect.DeepEqual(res.Owners[7], []Owner{{10, 100, "sshd"}}) {
		t.Errorf("after one owner exited: %+v", res)
	}

	// nginx restarted as another program under the same pid, holding 8
	// no more; 8 is now held by haproxy.
	restart(t, root, 30, "nginx-new", 301)
	os.Remove(filepath.Join(root, "30", "fd", "1"))
	fakeProc(t, root, 40, "haproxy", 400, sock(8))
	res = lookup(t, c, set(7, 8))
	want = map[uint64][]string{7: {"sshd"}, 8: {"haproxy"}}
	if !reflect.DeepEqual(res.Names, want) || res.Links == 0 || res.Cached != 1 {
		t.Errorf("after a restart: Names %v, %d descriptors, %d cached; want %v, 8 scanned again", res.Names, res.Links, res.Cached, want)
	}

	// A process that only renamed itself (same start time) is renamed.
	restart(t, root, 10, "sshd-renamed", 100)
	res = lookup(t, c, set(7, 8))
	if got := res.Names[7]; !reflect.DeepEqual(got, []string{"sshd-renamed"}) || res.Links != 0 {
		t.Errorf("after a rename: Names[7] = %v, %d descriptors read", got, res.Links)
	}

	// 7 is no longer a listener: forgotten, so scanned when it returns.
	res = lookup(t, c, set(8))
	if res.Cached != 1 || res.Links != 0 {
		t.Errorf("without 7: %+v", res)
	}
	c.mu.Lock()
	_, kept := c.owners[7]
	n := len(c.owners)
	c.mu.Unlock()
	if kept || n != 1 {
		t.Errorf("after 7 went: 7 kept %v, %d inodes cached; want 7 dropped, 1", kept, n)
	}
	if res := lookup(t, c, set(7, 8)); res.Links == 0 || res.Cached != 1 || len(res.Names[7]) != 1 {
		t.Errorf("7 back: %+v, want it scanned", res)
	}
}

// TestCacheUnresolved: a socket a complete scan cannot name is not scanned
// for again while the listener set stays the same, until UnresolvedFor has
// passed; a scan cut short proves nothing and is not remembered.
func TestCacheUnresolved(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 10, "sshd", 100, "/dev/null", sock(7))
	fakeProc(t, root, 20, "loadgen", 200, many(1000)...)
	c, clk := newTestCache(root)

	// Cut short: 9 not remembered as unresolved.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := c.Lookup(ctx, set(7, 9)); err != nil || !res.Partial || res.Unresolved != 0 {
		t.Fatalf("cancelled lookup: %+v, %v", res, err)
	}
	res := lookup(t, c, set(7, 9))
	if !res.SecondPass || res.Links != 2+1000 || len(res.Names[9]) != 0 || res.Partial {
		t.Fatalf("full lookup: %+v", res)
	}
	res = lookup(t, c, set(7, 9))
	if res.Links != 0 || res.Cached != 1 || res.Unresolved != 1 {
		t.Errorf("lookup after a complete scan: %d descriptors, %d cached, %d unresolved; want 0, 1, 1", res.Links, res.Cached, res.Unresolved)
	}
	clk.t = clk.t.Add(UnresolvedFor - time.Second)
	if res := lookup(t, c, set(7, 9)); res.Links != 0 || res.Unresolved != 1 {
		t.Errorf("just before UnresolvedFor: %+v", res)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if res := lookup(t, c, set(7, 9)); res.Links != 2+1000 || res.Unresolved != 0 {
		t.Errorf("after UnresolvedFor: %d descriptors, %d unresolved; want a full scan", res.Links, res.Unresolved)
	}
	// The listener set changes: scanned again, then remembered again.
	if res := lookup(t, c, set(7, 9, 12)); !res.SecondPass || res.Unresolved != 0 {
		t.Errorf("after a new listener: %+v, want a full scan", res)
	}
	if res := lookup(t, c, set(7, 9, 12)); res.Links != 0 || res.Unresolved != 2 {
		t.Errorf("same set again: %+v", res)
	}
	// Its owner appears meanwhile: named after the set changes.
	fakeProc(t, root, 30, "late", 300, sock(9))
	if res := lookup(t, c, set(7, 9)); !reflect.DeepEqual(res.Names[9], []string{"late"}) {
		t.Errorf("after the set changed: Names %v", res.Names)
	}
}

// TestCacheFixtureWithoutStat: processes whose start time cannot be read
// (the fixture tree has no stat files) are named but never cached.
func TestCacheFixtureWithoutStat(t *testing.T) {
	c, _ := newTestCache(filepath.Join("..", "..", "testdata", "discovery", "ports", "proc"))
	for range 2 {
		res := lookup(t, c, set(1001, 2001))
		if !reflect.DeepEqual(res.Names, map[uint64][]string{1001: {"sshd"}, 2001: {"postgres"}}) || res.Cached != 0 || res.Links == 0 {
			t.Errorf("lookup: %+v", res)
		}
	}
	if _, err := NewCache(filepath.Join(t.TempDir(), "missing")).Lookup(context.Background(), set(1)); err == nil {
		t.Error("missing root: no error")
	}
}

// TestCacheBounded: at most MaxCached inodes are remembered.
func TestCacheBounded(t *testing.T) {
	root := t.TempDir()
	n := MaxCached + 10
	targets := make([]string, n)
	want := map[uint64]struct{}{}
	for i := range targets {
		targets[i] = sock(uint64(1 + i))
		want[uint64(1+i)] = struct{}{}
	}
	fakeProc(t, root, 10, "big", 100, targets...)
	c, _ := newTestCache(root)
	if res := lookup(t, c, want); len(res.Names) != n {
		t.Fatalf("%d named, want %d", len(res.Names), n)
	}
	res := lookup(t, c, want)
	if len(res.Names) != n || res.Cached != MaxCached {
		t.Errorf("second lookup: %d named, %d cached; want %d, %d", len(res.Names), res.Cached, n, MaxCached)
	}
	// A deadline stops the checking of the cache too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := c.Lookup(ctx, want)
	if err != nil || !res.Partial || res.Cached >= MaxCached || res.Links != 0 {
		t.Errorf("cancelled lookup: partial %v, %d cached, %d descriptors, %v", res.Partial, res.Cached, res.Links, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.owners) > MaxCached {
		t.Errorf("%d inodes cached", len(c.owners))
	}
}

// TestCacheConcurrent runs lookups from several goroutines while owners
// restart (run with -race).
func TestCacheConcurrent(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 10, "sshd", 100, "/dev/null", sock(7))
	fakeProc(t, root, 30, "nginx", 300, "/dev/null", sock(8))
	c := NewCache(root)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := set(7, 8)
				if (g+i)%3 == 0 {
					want = set(7)
				}
				res, err := c.Lookup(context.Background(), want)
				if err != nil || !reflect.DeepEqual(res.Names[7], []string{"sshd"}) {
					t.Errorf("lookup: %+v, %v", res, err)
					return
				}
			}
		}()
	}
	for i := range 20 {
		restart(t, root, 30, "nginx", uint64(301+i))
	}
	wg.Wait()
}

// TestCacheLive names a listener of this process through /proc twice, the
// second time from the cache, and again after the listener's owner changes.
func TestCacheLive(t *testing.T) {
	l := listen(t)
	ino := inodeOf(t, l)
	c := NewCache("/proc")
	self := selfComm(t)
	if res := lookup(t, c, set(ino)); !reflect.DeepEqual(res.Names[ino], []string{self}) || res.Links == 0 {
		t.Fatalf("first lookup: %v, %d descriptors", res.Names, res.Links)
	}
	if res := lookup(t, c, set(ino)); !reflect.DeepEqual(res.Names[ino], []string{self}) || res.Links != 0 || res.Cached != 1 {
		t.Errorf("second lookup: %v, %d descriptors, %d cached", res.Names, res.Links, res.Cached)
	}
}

// BenchmarkDiscoveryNames measures naming one listener of this process
// while it holds 10000 extra descriptors: a first lookup (empty cache:
// first pass over every process, early stop) and later lookups (the cache,
// one stat read). Run: go test -run '^$' -bench DiscoveryNames ./internal/procnames/
func BenchmarkDiscoveryNames(b *testing.B) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rc, err := l.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var st syscall.Stat_t
	rc.Control(func(fd uintptr) { syscall.Fstat(int(fd), &st) })
	want := set(st.Ino)
	holdFDs(b, 10000)
	check := func(b *testing.B, res Result, err error) {
		if err != nil || len(res.Names[st.Ino]) != 1 {
			b.Fatalf("lookup: %+v, %v", res, err)
		}
	}
	b.Run("extra-fds=10000/first-call", func(b *testing.B) {
		for b.Loop() {
			res, err := NewCache("/proc").Lookup(context.Background(), want)
			check(b, res, err)
		}
	})
	b.Run("extra-fds=10000/later-calls", func(b *testing.B) {
		c := NewCache("/proc")
		res, err := c.Lookup(context.Background(), want)
		check(b, res, err)
		for b.Loop() {
			res, err := c.Lookup(context.Background(), want)
			check(b, res, err)
		}
	})
}

// recLog records warnings.
type recLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *recLog) Warningf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *recLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// TestCacheSingleFlight: lookups that miss while a scan is in flight wait
// for it and take its names instead of scanning: 50 concurrent lookups on a
// cold cache cost one scan, and every one names both sockets (one of them
// past the first pass, in a process holding 300 descriptors).
func TestCacheSingleFlight(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 10, "sshd", 100, "/dev/null", sock(7))
	fakeProc(t, root, 20, "loadgen", 200, append(many(300), sock(9))...)
	c, _ := newTestCache(root)
	release := make(chan struct{})
	var scans atomic.Int32
	c.betweenPasses = func() {
		if scans.Add(1) == 1 {
			<-release // hold the first scan until every lookup has started
		}
	}
	const n = 50
	results := make([]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := c.Lookup(ctx, set(7, 9))
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	want := map[uint64][]string{7: {"sshd"}, 9: {"loadgen"}}
	scanned, shared := 0, 0
	for i, res := range results {
		if !reflect.DeepEqual(res.Names, want) || res.Partial {
			t.Errorf("lookup %d: Names %v, partial %v; want %v", i, res.Names, res.Partial, want)
		}
		if res.Links > 0 {
			scanned++
		}
		if res.Shared == 2 && res.Links == 0 {
			shared++
		}
	}
	if got := scans.Load(); got != 1 || scanned != 1 || shared+scanned != n {
		t.Errorf("%d scans, %d lookups read descriptors, %d took the names of another's scan; want 1, 1, %d", got, scanned, shared, n-1)
	}
}

// TestCacheScanCutShort: a scan stopped by its deadline between its passes
// logs a warning and returns the names of its first pass, which the cache
// keeps: the next lookup takes them from the cache and scans only for the
// socket still unnamed. A lookup waiting for another's scan returns when its
// own deadline comes, with what the cache had.
func TestCacheScanCutShort(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 10, "sshd", 100, "/dev/null", sock(7))
	fakeProc(t, root, 20, "loadgen", 200, append(many(300), sock(9))...)
	c, _ := newTestCache(root)
	log := &recLog{}
	c.SetLogger(log)
	ctx, cancel := context.WithCancel(context.Background())
	c.betweenPasses = cancel
	res, err := c.Lookup(ctx, set(7, 9))
	if err != nil || !res.Partial || !reflect.DeepEqual(res.Names, map[uint64][]string{7: {"sshd"}}) {
		t.Fatalf("cut-short lookup: %+v, %v", res, err)
	}
	lines := log.all()
	if len(lines) != 1 || !strings.Contains(lines[0], "stopped at its deadline") || !strings.Contains(lines[0], "1 of 2 sockets left unnamed") {
		t.Errorf("warnings %q, want one about the scan stopped at its deadline", lines)
	}

	// Names found earlier are kept: 7 from the cache, 9 scanned for.
	c.betweenPasses = nil
	res = lookup(t, c, set(7, 9))
	if !reflect.DeepEqual(res.Names, map[uint64][]string{7: {"sshd"}, 9: {"loadgen"}}) || res.Cached != 1 || !res.SecondPass || res.Partial {
		t.Errorf("next lookup: %+v", res)
	}
	if n := len(log.all()); n != 1 {
		t.Errorf("%d warnings after a complete scan, want still 1", n)
	}

	// A waiter's deadline ends its wait, not the scan in flight.
	fakeProc(t, root, 30, "late", 300, sock(11))
	release := make(chan struct{})
	c.betweenPasses = func() { <-release }
	leader := make(chan Result)
	go func() { leader <- lookup(t, c, set(7, 9, 11)) }()
	time.Sleep(100 * time.Millisecond)
	wctx, wcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer wcancel()
	start := time.Now()
	res, err = c.Lookup(wctx, set(7, 9, 11))
	if took := time.Since(start); err != nil || !res.Partial || len(res.Names) != 2 || took > 2*time.Second {
		t.Errorf("waiter with a 100 ms deadline: %+v, %v after %v; want 7 and 9 from the cache, partial", res, err, took)
	}
	close(release)
	if res := <-leader; !reflect.DeepEqual(res.Names[11], []string{"late"}) || res.Partial {
		t.Errorf("leader: %+v", res)
	}
}

// TestCacheConcurrentColdLive: 200 concurrent lookups on a cold cache of
// the machine's /proc, while this process holds 10000 extra descriptors and
// 8 listeners, 4 of them past the first pass: every lookup names all 8.
// Each has 1.5 s (half the agent's default 3 s Timeout, the discovery's
// budget), or three times what one lookup alone takes if that is more (a
// machine whose other processes hold millions of descriptors). Each lookup
// scanning on its own, as before the scans were shared, left half the
// names empty on a 2-core machine.
func TestCacheConcurrentColdLive(t *testing.T) {
	if testing.Short() {
		t.Skip("200 lookups over /proc")
	}
	want := map[uint64]struct{}{}
	for range 4 {
		want[inodeOf(t, listen(t))] = struct{}{}
	}
	holdFDs(t, 10000)
	for range 4 {
		want[inodeOf(t, listen(t))] = struct{}{}
	}
	self := selfComm(t)
	alone := time.Now()
	if res := lookup(t, NewCache("/proc"), want); len(res.Names) != len(want) {
		t.Fatalf("one lookup alone: %+v", res)
	}
	budget := max(1500*time.Millisecond, 3*time.Since(alone))
	c := NewCache("/proc")
	log := &recLog{}
	c.SetLogger(log)
	const n = 200
	var unnamed, partial atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			res, err := c.Lookup(ctx, want)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Partial {
				partial.Add(1)
			}
			for ino := range want {
				if !slices.Contains(res.Names[ino], self) {
					unnamed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent cold lookups of %d listeners, %v each, in %v: %d names missing, %d partial; warnings %q",
		n, len(want), budget.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), unnamed.Load(), partial.Load(), log.all())
	if unnamed.Load() > 0 {
		t.Errorf("%d of %d names missing", unnamed.Load(), n*len(want))
	}
}
