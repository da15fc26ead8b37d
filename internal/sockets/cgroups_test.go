package sockets

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestCgroupPathsNoV2(t *testing.T) {
	c := NewCgroupPaths(t.TempDir())
	if _, err := c.Root(); !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("Root on a plain directory: %v", err)
	}
	if _, err := c.Resolve([]uint64{1}); !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("Resolve on a plain directory: %v", err)
	}
}

// TestCgroupPathsReal creates and removes cgroups in the real v2 tree and
// resolves their ids (directory inode numbers): a new cgroup is found by a
// rescan, a removed one stops resolving once the rescan interval passed.
func TestCgroupPathsReal(t *testing.T) {
	c := NewCgroupPaths()
	root, err := c.Root()
	if err != nil {
		t.Skip(err)
	}
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	dir := filepath.Join(root, "tcpstatus-paths-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skip(err) // not root
	}
	defer os.Remove(filepath.Join(dir, "child"))
	defer os.Remove(dir)
	ino := func(p string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	rootID, dirID := ino(root), ino(dir)
	got, err := c.Resolve([]uint64{rootID, dirID, 0})
	if err != nil {
		t.Fatal(err)
	}
	base := "/" + filepath.Base(dir)
	if got[rootID] != "/" || got[dirID] != base || len(got) != 2 {
		t.Fatalf("Resolve: %v, want %d=/ %d=%s", got, rootID, dirID, base)
	}

	// A cgroup created later: a new id triggers a scan at once.
	if err := os.Mkdir(filepath.Join(dir, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	childID := ino(filepath.Join(dir, "child"))
	got, err = c.Resolve([]uint64{dirID, childID})
	if err != nil || got[childID] != base+"/child" {
		t.Fatalf("child: %v %v", got, err)
	}
	// Removed while its sockets live on: the id keeps its path as long as
	// every call asks for it; once dropped, it is looked for again and no
	// longer found, and not looked for again within the rescan interval.
	if err := os.Remove(filepath.Join(dir, "child")); err != nil {
		t.Fatal(err)
	}
	if got, err = c.Resolve([]uint64{childID}); err != nil || got[childID] != base+"/child" {
		t.Fatalf("removed child still asked for: %v %v", got, err)
	}
	if _, err = c.Resolve([]uint64{dirID}); err != nil {
		t.Fatal(err)
	}
	scanned := c.scanned
	now = now.Add(2 * cgroupRescanEvery)
	if got, err = c.Resolve([]uint64{childID}); err != nil || len(got) != 0 {
		t.Fatalf("removed child: %v %v", got, err)
	}
	if !c.scanned.After(scanned) {
		t.Error("unknown id did not rescan")
	}
	scanned = c.scanned
	if got, err = c.Resolve([]uint64{childID}); err != nil || len(got) != 0 || c.scanned != scanned {
		t.Errorf("missing id rescanned within the interval: %v %v", got, err)
	}
	// The cache keeps only what the last call asked for.
	if _, ok := c.known[dirID]; ok {
		t.Error("cache kept an id not asked for")
	}
}
