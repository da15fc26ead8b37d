package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
)

// TestVersionFlag builds both binaries with the Makefile's own commands
// (make -n, output redirected to a temporary directory) and checks that -V
// prints the version of the VERSION file.
func TestVersionFlag(t *testing.T) {
	_, err := exec.LookPath("make")
	require(t, err == nil, "make not found")
	root, err := agenttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(b))
	dir := t.TempDir()
	for _, bin := range []string{"bin/zabbix-agent2-plugin-tcpstatus", "bin/tcpstatus-discovery"} {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			cmd := exec.Command("make", "-s", "-n", bin)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("make -n %s: %v", bin, err)
			}
			recipe := strings.TrimSpace(string(out))
			target := filepath.Join(dir, filepath.Base(bin))
			if strings.Count(recipe, "-o "+bin+" ") != 1 {
				t.Fatalf("unexpected recipe for %s: %s", bin, recipe)
			}
			recipe = strings.Replace(recipe, "-o "+bin+" ", "-o "+target+" ", 1)
			build := exec.Command("sh", "-c", recipe)
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", recipe, err, out)
			}
			for _, flag := range []string{"-V", "--version"} {
				out, err := exec.Command(target, flag).Output()
				if err != nil {
					t.Fatalf("%s %s: %v", bin, flag, err)
				}
				first := strings.SplitN(string(out), "\n", 2)[0]
				f := strings.Fields(first)
				if len(f) < 2 || f[0] != filepath.Base(bin) || f[1] != want {
					t.Errorf("%s %s printed %q, want %q followed by the version %s", bin, flag, first, filepath.Base(bin), want)
				}
			}
		})
	}
}
