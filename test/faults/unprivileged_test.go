package faults

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// TestGoTestsAsZabbix compiles the test binaries of the packages the plugin
// is made of and runs them as user zabbix (the agent's user), -short: what
// needs no privilege must pass without it, and what needs root must skip,
// not fail.
func TestGoTestsAsZabbix(t *testing.T) {
	if testing.Short() {
		t.Skip("not in -short mode")
	}
	requireRoot(t)
	_, err := exec.LookPath("setpriv")
	require(t, err == nil, "setpriv (util-linux) not found")
	u, err := user.Lookup(agenttest.AgentUser)
	require(t, err == nil, "user %s missing", agenttest.AgentUser)
	root, err := agenttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Every package of the plugin and the helper that has tests.
	list := exec.Command("go", "list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}",
		"./internal/...", "./plugin", "./discovery")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	bins := testutil.WorldDir(t)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasSuffix(f[0], "/agenttest") {
			continue // the agent harness needs root by design
		}
		pkg, pkgDir := f[0], f[1]
		n++
		t.Run(strings.TrimPrefix(pkg, "zabbix-agent2-plugin-tcpstatus/"), func(t *testing.T) {
			if !reachableBy(pkgDir) {
				require(t, false, "%s is not readable by other users", pkgDir)
			}
			bin := filepath.Join(bins, strings.ReplaceAll(pkg, "/", "_")+".test")
			build := exec.Command("go", "test", "-c", "-o", bin, pkg)
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go test -c %s: %v\n%s", pkg, err, out)
			}
			os.Chmod(bin, 0o755)
			tmp := testutil.WorldDir(t)
			os.Chmod(tmp, 0o777)
			cmd := exec.Command("setpriv", "--reuid="+u.Uid, "--regid="+u.Gid, "--init-groups", "--",
				bin, "-test.short", "-test.count=1", "-test.timeout=2m")
			cmd.Dir = pkgDir
			// Not required here: tests needing root must skip for zabbix.
			cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"HOME=" + tmp, "TMPDIR=" + tmp, "LANG=C"}
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s as %s: %v\n%s", pkg, agenttest.AgentUser, err, tail(buf.String(), 60))
			}
			t.Logf("%s as %s: %s", pkg, agenttest.AgentUser, strings.TrimSpace(tail(buf.String(), 1)))
		})
	}
	if n < 3 {
		t.Fatalf("only %d packages with tests found", n)
	}
}

// reachableBy reports whether every directory up to dir can be entered and
// dir read by any user.
func reachableBy(dir string) bool {
	st, err := os.Stat(dir)
	if err != nil || st.Mode()&0o005 != 0o005 {
		return false
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
