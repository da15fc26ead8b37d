package testutil

import (
	"bytes"
	"os"
	"testing"
)

func TestCopyExecutable(t *testing.T) {
	dir := WorldDir(t)
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("WorldDir mode: %v, %v", st.Mode(), err)
	}
	got := CopyExecutable(t, dir, "", "self")
	st, err := os.Stat(got)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("copy mode: %v, %v", st, err)
	}
	self, _ := os.Executable()
	a, _ := os.ReadFile(self)
	b, _ := os.ReadFile(got)
	if !bytes.Equal(a, b) {
		t.Fatal("copy differs from the test binary")
	}
}
