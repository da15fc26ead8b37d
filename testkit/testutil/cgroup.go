package testutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroup creates the cgroup directory rel under root (a cgroup v2 mount)
// and removes it at cleanup. Register it before the processes started in
// it, so that their cleanup (which waits for them) runs first; a cgroup
// empties a little after its last process is reaped, so removal retries
// for a second.
func Cgroup(t testing.TB, root, rel string) string {
	t.Helper()
	dir := filepath.Join(root, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; ; i++ {
			err := unix.Rmdir(dir)
			if err == nil || os.IsNotExist(err) {
				return
			}
			if i == 50 {
				t.Errorf("remove cgroup %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}
