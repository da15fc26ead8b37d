// Package testutil holds small testing.TB helpers for files that processes
// of another user (the agent's) must reach.
package testutil

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// WorldDir makes a temporary directory every user can enter and read (mode
// 0755), for files that processes of another user (the agent's) must reach.
// It is removed, with whatever a test made unreadable in it, at cleanup.
func WorldDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tcpstatus-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// CopyExecutable copies the file src to dir/name with mode 0755 and returns
// the new path. An empty src copies the running test binary, so that a test
// can start itself as a child of another user.
func CopyExecutable(t testing.TB, dir, src, name string) string {
	t.Helper()
	if src == "" {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		src = self
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
