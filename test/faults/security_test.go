package faults

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
)

// TestNoShellInImportGraph: neither the plugin nor the discovery helper can
// start a program: os/exec (and Go's plugin loader) are not among their
// dependencies.
func TestNoShellInImportGraph(t *testing.T) {
	root, err := agenttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]bool{"os/exec": true, "plugin": true}
	for _, pkg := range []string{"./plugin", "./discovery"} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %v", pkg, deps)
		}
		for _, d := range deps {
			if forbidden[d] {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
}

// TestKeyParametersReachNoFilesystemCall runs the plugin under strace and
// asks every key with parameters that look like paths (absolute, relative,
// with ..): no system call taking a file name may ever name them.
func TestKeyParametersReachNoFilesystemCall(t *testing.T) {
	strace, err := exec.LookPath("strace")
	require(t, err == nil, "strace not found (scripts/deps.d/packaging.txt)")
	requireRoot(t)
	e, err := metrics.New(metrics.DefaultConfig(), metrics.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	canary := fmt.Sprintf("tcpstatus-canary-%d", time.Now().UnixNano())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, canary), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	values := []string{
		filepath.Join(dir, canary),
		"../../../../../../.." + filepath.Join(dir, canary),
		canary,
		"sda/../../" + canary,
		"./" + canary,
		canary + "/1/net",
	}
	bin := agenttest.PluginBinary(t)
	configs := map[string]map[string]string{
		"netlink": nil,
		"proc":    {"Source": "proc", "ProcRoot": procFixture(t, 22, 80), "SysRoot": dir},
	}
	for name, conf := range configs {
		t.Run(name, func(t *testing.T) {
			log := filepath.Join(dir, name+".strace")
			p := startPlugin(t, pluginOpts{wrap: []string{strace, "-f", "-qq", "-e", "trace=%file", "-e", "signal=none", "-s", "256", "-o", log}, bin: bin})
			p.configure(conf)
			n := 0
			for _, m := range e.Metrics() {
				for _, v := range values {
					params := make([]string, max(1, len(m.Params)))
					for i := range params {
						params[i] = v
					}
					for _, ps := range [][]string{params, append(params, v), {v}} {
						if _, err := p.get(30*time.Second, m.Key, ps...); err != nil && !isItemError(err, "") {
							t.Fatalf("%s%q: %v", m.Key, ps, err)
						}
						n++
					}
				}
			}
			p.conn.Close()
			p.checkCleanExit(10 * time.Second)
			f, err := os.Open(log)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			lines, hits := 0, 0
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				lines++
				if strings.Contains(sc.Text(), canary) {
					hits++
					if hits <= 10 {
						t.Errorf("a key parameter reached a system call: %s", sc.Text())
					}
				}
			}
			if lines < 10 {
				t.Fatalf("strace recorded only %d lines; tracing did not work", lines)
			}
			t.Logf("%d requests over %d keys; %d traced file-name calls, none naming a parameter", n, len(e.Metrics()), lines)
		})
	}
}
