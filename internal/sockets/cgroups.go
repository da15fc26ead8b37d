package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupMounts are where a cgroup v2 hierarchy is looked for: the unified
// layout, then the "hybrid" layout of systemd (v1 controllers beside a v2
// tree).
var cgroupMounts = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// ErrNoCgroup2 says no cgroup v2 hierarchy is mounted where the cgroup
// names are looked for, so socket cgroup ids cannot be named.
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")

// MaxCgroupDirs bounds the directories one scan of the cgroup tree visits.
const MaxCgroupDirs = 100_000

// cgroupRescanEvery is the shortest time between two scans of the cgroup
// tree: an id no directory matched stays unresolved until then.
const cgroupRescanEvery = time.Second

// CgroupPaths names cgroup v2 ids (Socket.Cgroup) by their paths relative to
// the root of the hierarchy ("/system.slice/nginx.service"). A cgroup's id is
// the inode number of its directory, so a scan of the mounted tree (readdir
// and stat, no privilege) finds them. It keeps only the ids asked for in the
// last Resolve (so its memory follows what the caller asks), and rescans the
// tree when an id is unknown, at most once a second. Safe for concurrent use.
type CgroupPaths struct {
	mounts []string
	now    func() time.Time

	mu      sync.Mutex
	root    string            // the v2 mount found, "" until found
	known   map[uint64]string // id → path, from the last Resolve
	scanned time.Time         // last scan
	missing map[uint64]bool   // ids the last scan did not find
}

// NewCgroupPaths returns a resolver over the first cgroup v2 mount among
// mounts (/sys/fs/cgroup, then /sys/fs/cgroup/unified, if none given).
func NewCgroupPaths(mounts ...string) *CgroupPaths {
	if len(mounts) == 0 {
		mounts = cgroupMounts
	}
	return &CgroupPaths{mounts: mounts, now: time.Now, known: map[uint64]string{}, missing: map[uint64]bool{}}
}

// Root returns the cgroup v2 mount in use, or ErrNoCgroup2.
func (c *CgroupPaths) Root() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.findRoot()
}

// findRoot looks for the v2 mount once it is known, and again each call
// until it is found. Called with c.mu held.
func (c *CgroupPaths) findRoot() (string, error) {
	if c.root != "" {
		return c.root, nil
	}
	for _, m := range c.mounts {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			c.root = m
			return m, nil
		}
	}
	return "", ErrNoCgroup2
}

// Resolve returns the paths of the ids it can name. An id missing from the
// result had no directory in the tree when it was first asked for: a cgroup
// removed while its sockets live on, or one outside this cgroup namespace's
// view. An id named once keeps its path, even after its cgroup is removed,
// as long as every call asks for it.
func (c *CgroupPaths) Resolve(ids []uint64) (map[uint64]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	root, err := c.findRoot()
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]string, len(ids))
	var unknown map[uint64]bool
	for _, id := range ids {
		if p, ok := c.known[id]; ok {
			out[id] = p
		} else if id != 0 {
			if unknown == nil {
				unknown = map[uint64]bool{}
			}
			unknown[id] = true
		}
	}
	now := c.now()
	stale := now.Sub(c.scanned) >= cgroupRescanEvery
	needScan := false
	for id := range unknown {
		if !c.missing[id] || stale {
			needScan = true
			break
		}
	}
	if needScan {
		found, err := scanCgroups(root, unknown)
		if err != nil {
			return nil, err
		}
		c.scanned = now
		c.missing = map[uint64]bool{}
		for id := range unknown {
			if p, ok := found[id]; ok {
				out[id] = p
			} else {
				c.missing[id] = true
			}
		}
	}
	c.known = out // only what was asked for now stays cached
	return out, nil
}

// scanCgroups walks the tree under root and returns the paths of the
// directories whose inode numbers are in want. It stops early when every id
// is found, and after MaxCgroupDirs directories.
func scanCgroups(root string, want map[uint64]bool) (map[uint64]string, error) {
	found := map[uint64]string{}
	dirs := 0
	stop := errors.New("stop")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // a cgroup removed during the walk, or unreadable: skip it
		}
		if !d.IsDir() {
			return nil
		}
		dirs++
		if dirs > MaxCgroupDirs {
			return stop
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if want[st.Ino] {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return nil
			}
			found[st.Ino] = "/" + filepath.ToSlash(rel)
			if rel == "." {
				found[st.Ino] = "/"
			}
			if len(found) == len(want) {
				return stop
			}
		}
		return nil
	})
	if err != nil && err != stop {
		return nil, fmt.Errorf("scan cgroup tree %s: %w", root, err)
	}
	return found, nil
}
