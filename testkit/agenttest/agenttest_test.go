package agenttest_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
)

// TestAgent2 starts each agent 2 series with the plugin and checks what the
// harness promises: it answers through zabbix_get and -t, runs as zabbix,
// has the plugin loaded, and a -t run never disturbs the daemon's plugin
// socket (a -t run sharing it makes the daemon's next plugin start fail).
func TestAgent2(t *testing.T) {
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			a := agenttest.Start(t, v)
			checkRunsAsAgentUser(t, a)

			// -t first: the daemon has not started the plugin's operational
			// process yet, so a shared plugin socket would break the Get below.
			if got, err := a.Test("tcp.status[listen]"); err != nil || !isUint(got) {
				t.Fatalf("Test(tcp.status[listen]) = %q, %v; want an integer", got, err)
			}
			if got, err := a.Test("agent.ping"); err != nil || got != "1" {
				t.Fatalf("Test(agent.ping) = %q, %v; want 1", got, err)
			}
			if got, err := a.Get("tcp.status[listen]"); err != nil || !isUint(got) {
				t.Fatalf("Get(tcp.status[listen]) = %q, %v; want an integer", got, err)
			}
			// The daemon listens on its port: at least that one listener.
			if got, err := a.Get(fmt.Sprintf("tcp.status[listen,%d]", a.Port())); err != nil || got != "1" {
				t.Fatalf("Get(tcp.status[listen,<agent port>]) = %q, %v; want 1", got, err)
			}

			_, err := a.Get("tcpstatus.no.such.key")
			var ns *agenttest.NotSupported
			if !errors.As(err, &ns) || !strings.Contains(ns.Text, "Unknown metric") {
				t.Fatalf("Get(unknown key) error = %v; want ZBX_NOTSUPPORTED Unknown metric", err)
			}
			_, err = a.Test("tcpstatus.no.such.key")
			if !errors.As(err, &ns) || !strings.Contains(ns.Text, "Unknown metric") {
				t.Fatalf("Test(unknown key) error = %v; want ZBX_NOTSUPPORTED Unknown metric", err)
			}

			metrics, err := a.Runtime("metrics")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"[TCPStatus]", "path: " + a.PluginPath(), "tcp.status"} {
				if !strings.Contains(metrics, want) {
					t.Errorf("-R metrics lacks %q:\n%s", want, metrics)
				}
			}
			if err := a.Alive(); err != nil {
				t.Fatal(err)
			}
			if log := a.Log(); !strings.Contains(log, "TCPStatus") {
				t.Errorf("agent log does not mention the plugin:\n%s", log)
			}
		})
	}
}

// TestClassicAgent runs the classic agent with a UserParameter file.
func TestClassicAgent(t *testing.T) {
	a := agenttest.StartClassic(t, "UserParameter=agenttest.echo[*],echo \"$1\"\n")
	checkRunsAsAgentUser(t, a)
	if got, err := a.Get("agenttest.echo[hello world]"); err != nil || got != "hello world" {
		t.Fatalf("Get(agenttest.echo[hello world]) = %q, %v", got, err)
	}
	if got, err := a.Test("agenttest.echo[x]"); err != nil || got != "x" {
		t.Fatalf("Test(agenttest.echo[x]) = %q, %v", got, err)
	}
	_, err := a.Get("agenttest.nokey")
	var ns *agenttest.NotSupported
	if !errors.As(err, &ns) || ns.Text != "Unsupported item key." {
		t.Fatalf("Get(unknown key) error = %v; want ZBX_NOTSUPPORTED Unsupported item key.", err)
	}
	if err := a.Alive(); err != nil {
		t.Fatal(err)
	}
	if log := a.Log(); !strings.Contains(log, "Starting Zabbix Agent") {
		t.Errorf("agent log lacks the start line:\n%s", log)
	}
}

// TestInNetns runs one classic agent on the host and one in a new network
// namespace: each sees its own listener only.
func TestInNetns(t *testing.T) {
	ns := newNetns(t)
	host := agenttest.StartClassic(t, "")
	inner := agenttest.StartClassic(t, "", agenttest.InNetns(ns))
	if inner.Netns() != ns {
		t.Fatalf("Netns() = %q", inner.Netns())
	}
	for _, c := range []struct {
		a    *agenttest.Agent
		port int
		want string
	}{
		{host, host.Port(), "1"},
		{inner, inner.Port(), "1"},
		{inner, host.Port(), "0"},
		{host, inner.Port(), "0"},
	} {
		key := fmt.Sprintf("net.tcp.listen[%d]", c.port)
		if got, err := c.a.Get(key); err != nil || got != c.want {
			t.Errorf("%s (netns %q) Get(%s) = %q, %v; want %s", c.a.Name(), c.a.Netns(), key, got, err, c.want)
		}
		if got, err := c.a.Test(key); err != nil || got != c.want {
			t.Errorf("%s (netns %q) Test(%s) = %q, %v; want %s", c.a.Name(), c.a.Netns(), key, got, err, c.want)
		}
	}
}

// TestCrashIsReported kills the plugin's operational process under each
// agent 2 series (6.0 then shuts down, 7.0 panics) and checks that the
// harness's cleanup fails the test.
func TestCrashIsReported(t *testing.T) {
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			rec := &recorder{TB: t}
			t.Cleanup(rec.runCleanups)
			a := agenttest.Start(rec, v)
			if _, err := a.Get("tcp.status[listen]"); err != nil {
				t.Fatal(err)
			}
			plugin := operationalPlugin(t, a.PID())
			if err := killPID(plugin); err != nil {
				t.Fatal(err)
			}
			// Give the agent the time it takes to notice (6.0: ~5 s to shut down).
			deadline := time.Now().Add(10 * time.Second)
			for a.Alive() == nil && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
			rec.runCleanups()
			errs := rec.errors()
			if len(errs) == 0 {
				t.Fatalf("killing the plugin was not reported; log:\n%s", a.Log())
			}
			if !strings.Contains(strings.Join(errs, "\n"), "died") && !strings.Contains(strings.Join(errs, "\n"), "panic") {
				t.Errorf("report does not name the crash:\n%s", strings.Join(errs, "\n"))
			}
		})
	}
}

// recorder is a testing.TB whose Errorf and Cleanup are captured, to test the
// harness's own failure reports.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) runCleanups() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (r *recorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// operationalPlugin returns the pid of the agent's child started as
// "<plugin> <socket> false".
func operationalPlugin(t *testing.T, agentPID int) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(agentPID) {
			continue
		}
		dir := filepath.Dir(p)
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 3 && args[2] == "false" && filepath.Base(args[0]) == agenttest.PluginName {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			return pid
		}
	}
	t.Fatalf("no operational plugin process under agent %d", agentPID)
	return 0
}

func killPID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

func checkRunsAsAgentUser(t *testing.T, a *agenttest.Agent) {
	t.Helper()
	u, err := user.Lookup(agenttest.AgentUser)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.PID()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" {
			if f[1] != u.Uid || f[2] != u.Uid {
				t.Fatalf("%s runs as uid %s/%s; want %s (%s)", a.Name(), f[1], f[2], u.Uid, agenttest.AgentUser)
			}
			return
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", a.PID())
}

func isUint(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// newNetns creates an empty network namespace with lo up, deleted when the
// test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv(agenttest.EnvRequire) == "1" {
			t.Fatal("network namespaces need root")
		}
		t.Skip("network namespaces need root")
	}
	name := fmt.Sprintf("agenttest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return name
}
