package procnames

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MaxCached bounds the inodes a Cache remembers, owners and unresolved
// ones each.
const MaxCached = 4096

// UnresolvedFor is how long a Cache leaves an inode unnamed without a new
// scan after a complete scan found no owner for it, as long as the set of
// wanted inodes stays the same.
const UnresolvedFor = 10 * time.Minute

// Cache remembers the owners of sockets between lookups, so that repeated
// discoveries of the same listeners cost a few reads of /proc/<pid>/stat
// instead of a scan of every descriptor on the host.
//
// An inode's owners are kept while it is wanted: an inode missing from a
// lookup's set is forgotten. A remembered owner is trusted as long as a
// process with its pid exists with the same start time (field 22 of
// /proc/<pid>/stat); its name is read again from that file. So checking the
// cache costs one small read per remembered owner, whatever the number of
// open files on the host. An inode whose owners all exited or were replaced
// is looked for again by a scan, as are inodes never seen.
//
// Trade-offs: a remembered process that hands its socket to another process
// and keeps running still names it; an inode a complete scan could not
// name (its owner is another user's process the caller may not read, or it
// is held by no process) stays unnamed without a new scan for
// UnresolvedFor, or until the set of wanted inodes changes, so that an
// agent without the privileges to see every process does not read every
// descriptor on the host on each discovery. A process that starts holding
// an already named socket is not noticed until the named owners are gone.
//
// A Cache is safe for concurrent use, and runs one scan at a time:
// lookups that miss while a scan is in flight wait for it (within their own
// deadline) and take what it found, and only the inodes it did not settle
// make one of them scan again. So a burst of concurrent discoveries on a
// cold cache costs one scan of /proc, not one each competing for the CPU
// until their deadlines cut them all short.
type Cache struct {
	root string
	now  func() time.Time

	mu         sync.Mutex
	owners     map[uint64][]Owner
	unresolved map[uint64]time.Time
	last       map[uint64]struct{} // the wanted set of the last lookup
	scanning   chan struct{}       // closed when the scan in flight ends; nil if none
	log        Logger

	betweenPasses func() // called by a scan between its passes (tests)
}

// Logger receives the warnings of a Cache (a scan cut short by its
// deadline). The exporter's logger, which writes to the agent's log,
// satisfies it.
type Logger interface {
	Warningf(format string, args ...any)
}

// SetLogger sets where the cache's warnings go (nowhere by default).
func (c *Cache) SetLogger(l Logger) {
	c.mu.Lock()
	c.log = l
	c.mu.Unlock()
}

// NewCache returns an empty cache over the processes under procRoot.
func NewCache(procRoot string) *Cache {
	return &Cache{root: procRoot, now: time.Now,
		owners: map[uint64][]Owner{}, unresolved: map[uint64]time.Time{}}
}

// Lookup names the socket inodes in want: from the cache when a remembered
// owner is still running, else by a Scan (with its early stop and its
// deadline) of the inodes not known. While another lookup's scan is in
// flight it waits for that scan and takes its findings, scanning itself
// only for what that scan left unsettled. The Result's Names and Owners
// cover all of it; its counters are those of the scan this lookup ran, if
// any, plus Cached, Unresolved and Shared. When ctx ends first, the Result
// holds what was found and is Partial. The only error is an unreadable
// procRoot, with the names found in the cache still in the Result.
//
// A scan cut short by its deadline is logged as a warning; the owners it
// found are remembered like those of a complete scan.
func (c *Cache) Lookup(ctx context.Context, want map[uint64]struct{}) (Result, error) {
	res := Result{Names: map[uint64][]string{}, Owners: map[uint64][]Owner{}}
	c.forgetUnwanted(want)
	miss := c.fromCache(ctx, want, &res)
	for len(miss) > 0 {
		c.mu.Lock()
		inFlight := c.scanning
		if inFlight == nil {
			done := make(chan struct{})
			c.scanning = done
			c.mu.Unlock()
			err := c.scan(ctx, miss, &res)
			c.mu.Lock()
			c.scanning = nil
			c.mu.Unlock()
			close(done)
			return res, err
		}
		c.mu.Unlock()
		select {
		case <-inFlight:
		case <-ctx.Done():
			res.Partial = true
			return res, nil
		}
		before := len(res.Names)
		miss = c.fromCache(ctx, miss, &res)
		res.Shared += len(res.Names) - before
	}
	return res, nil
}

// scan runs a Scan for the inodes in miss, adds what it found to res and to
// the cache, and logs a scan cut short by its deadline.
func (c *Cache) scan(ctx context.Context, miss map[uint64]struct{}, res *Result) error {
	start := time.Now()
	sr, err := scan(ctx, c.root, miss, c.betweenPasses)
	res.Processes, res.Denied, res.Vanished = sr.Processes, sr.Denied, sr.Vanished
	res.Links, res.SecondPass, res.Partial = sr.Links, sr.SecondPass, res.Partial || sr.Partial
	if err != nil {
		return err
	}
	now := c.now()
	c.mu.Lock()
	log := c.log
	for ino := range miss {
		owners := sr.Owners[ino]
		if len(owners) == 0 {
			// Only a complete scan proves that no readable process holds it.
			if !sr.Partial && len(c.unresolved) < MaxCached {
				c.unresolved[ino] = now
			}
			continue
		}
		res.Names[ino] = sr.Names[ino]
		res.Owners[ino] = owners
		keep := slices.DeleteFunc(slices.Clone(owners), func(o Owner) bool { return o.Start == 0 })
		if len(keep) > 0 && len(c.owners) < MaxCached {
			c.owners[ino] = keep
		}
	}
	c.mu.Unlock()
	if sr.Partial && log != nil {
		pass := "first pass (the lowest descriptors of every process)"
		if sr.SecondPass {
			pass = "second pass (all descriptors)"
		}
		log.Warningf("process names: the scan of %s/*/fd stopped at its deadline after %v, in its %s: %d processes, %d descriptors read; %d of %d sockets left unnamed this time (names found are kept for the next discovery)",
			c.root, time.Since(start).Round(time.Millisecond), pass, sr.Processes, sr.Links, len(miss)-len(sr.Names), len(miss))
	}
	return nil
}

// forgetUnwanted starts a lookup of want: a new set of wanted inodes makes
// the unresolved ones worth a new scan, and owners of inodes no longer
// wanted are forgotten.
func (c *Cache) forgetUnwanted(want map[uint64]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !sameSet(c.last, want) {
		clear(c.unresolved)
		c.last = make(map[uint64]struct{}, len(want))
		for ino := range want {
			c.last[ino] = struct{}{}
		}
	}
	for ino := range c.owners {
		if _, ok := want[ino]; !ok {
			delete(c.owners, ino)
		}
	}
}

// fromCache fills res with the inodes of want the cache answers, drops
// owners no longer valid, and returns the inodes to scan. When ctx ends it
// stops checking: the inodes left are neither named nor scanned, and res is
// Partial.
func (c *Cache) fromCache(ctx context.Context, want map[uint64]struct{}, res *Result) map[uint64]struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	root := -1
	defer func() {
		if root >= 0 {
			unix.Close(root)
		}
	}()
	now := c.now()
	miss := map[uint64]struct{}{}
	checked := 0
	for ino := range want {
		if owners, ok := c.owners[ino]; ok {
			if checked++; checked%checkEvery == 0 && ctx.Err() != nil {
				res.Partial = true
				break
			}
			if root < 0 {
				root, _ = openDir(unix.AT_FDCWD, c.root)
			}
			if valid := validate(root, owners); len(valid) > 0 {
				c.owners[ino] = valid
				res.Owners[ino] = slices.Clone(valid)
				res.Names[ino] = ownerNames(valid)
				res.Cached++
				continue
			}
			delete(c.owners, ino)
		}
		if at, ok := c.unresolved[ino]; ok {
			if now.Sub(at) < UnresolvedFor && now.Sub(at) >= 0 {
				res.Unresolved++
				continue
			}
			delete(c.unresolved, ino)
		}
		miss[ino] = struct{}{}
	}
	return miss
}

// validate keeps the owners still running with the same start time, named
// as they are now. rootfd < 0 (root unreadable) keeps none.
func validate(rootfd int, owners []Owner) []Owner {
	if rootfd < 0 {
		return nil
	}
	var valid []Owner
	for _, o := range owners {
		start, name, err := readStat(rootfd, strconv.Itoa(o.PID))
		if err != nil || start != o.Start || name == "" {
			continue
		}
		o.Name = name
		valid = append(valid, o)
	}
	return valid
}

// ownerNames returns the distinct names of owners, sorted.
func ownerNames(owners []Owner) []string {
	var names []string
	for _, o := range owners {
		if i, dup := slices.BinarySearch(names, o.Name); !dup {
			names = slices.Insert(names, i, o.Name)
		}
	}
	return names
}

// sameSet reports whether a and b hold the same inodes.
func sameSet(a, b map[uint64]struct{}) bool {
	if a == nil || len(a) != len(b) {
		return false
	}
	for ino := range b {
		if _, ok := a[ino]; !ok {
			return false
		}
	}
	return true
}
