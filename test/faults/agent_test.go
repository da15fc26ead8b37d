package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kitagent "zabbix-agent2-plugin-tcpstatus/testkit/agent"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// TestAgentRestart: when the agent stops, its plugin process ends with it;
// a new agent starts a new plugin process that serves. No plugin process is
// left behind, and the plugin runs as the agent's user, zabbix.
func TestAgentRestart(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		zabbix, err := user.Lookup(agenttest.AgentUser)
		if err != nil {
			t.Fatalf("user %s: %v", agenttest.AgentUser, err)
		}
		var prevPID int
		for round := 1; round <= 2; round++ {
			var dir string
			var pid int
			t.Run(fmt.Sprintf("run %d", round), func(t *testing.T) {
				a := agenttest.Start(t, v)
				dir = a.Dir()
				got, err := a.Get("tcp.status[listen]")
				if err != nil {
					t.Fatal(err)
				}
				if n := atoi(t, "tcp.status[listen]", got); n < 1 {
					t.Fatalf("tcp.status[listen] = %d; the agent itself listens", n)
				}
				pid = operational(t, a)
				if pid == prevPID {
					t.Fatalf("the new agent's plugin has the old pid %d", pid)
				}
				for p, phase := range pluginProcs(a.Dir()) {
					if phase == "true" {
						t.Errorf("registration-phase plugin process %d still running", p)
					}
				}
				if r, e := processUID(t, pid); r != zabbix.Uid || e != zabbix.Uid {
					t.Errorf("plugin runs as uid %s/%s, want %s (zabbix)", r, e, zabbix.Uid)
				}
			})
			if t.Failed() || dir == "" {
				return
			}
			// The subtest's end stopped the agent (SIGTERM): its plugin must be gone.
			deadline := time.Now().Add(10 * time.Second)
			for len(pluginProcs(dir)) > 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if left := pluginProcs(dir); len(left) > 0 {
				t.Fatalf("plugin processes left behind after the agent stopped: %v", left)
			}
			prevPID = pid
		}
	})
}

// TestAgentSignalsToPlugin sends SIGTERM and SIGINT to the operational
// plugin process a real agent started: it must ignore them (the agent
// would shut down, 6.0, or panic, 7.0) and the agent keeps answering.
func TestAgentSignalsToPlugin(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		a := agenttest.Start(t, v)
		if _, err := a.Get("tcp.status[listen]"); err != nil {
			t.Fatal(err)
		}
		pid := operational(t, a)
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			if err := syscall.Kill(pid, sig); err != nil {
				t.Fatalf("kill %d %v: %v", pid, sig, err)
			}
		}
		time.Sleep(time.Second)
		if err := a.Alive(); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Get("tcp.status.get"); err != nil {
			t.Fatalf("after the signals: %v", err)
		}
		if got := operational(t, a); got != pid {
			t.Fatalf("plugin process changed from %d to %d", pid, got)
		}
	})
}

// TestAgentThousandRequests sends 1000 passive checks of plugin keys
// through the real agent, 100 at a time (6.0 runs at most 100 requests per
// plugin at once and queues the rest): every one gets a value. Time limits
// are generous (30 s) so that a host whose socket table is slow to walk
// (other namespaces share the kernel's hash) does not turn into failures;
// what is checked is that no request is lost, doubled or mixed up.
func TestAgentThousandRequests(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		a := agenttest.Start(t, v, agenttest.WithConf("Plugins.TCPStatus.CacheTTL=2",
			"Plugins.TCPStatus.Timeout=25", "PluginTimeout=30"))
		var reqTimeout time.Duration
		if v != agenttest.V60 {
			reqTimeout = 25 * time.Second // 7.0: the limit travels with the request
		}
		keys := []string{"tcp.status[listen]", "tcp.status[established,,4]", "tcp.status.get",
			fmt.Sprintf("tcp.status.get[%d]", a.Port()), "tcp.status[timewait,80]"}
		const total, workers = 1000, 100
		var next, failed atomic.Int64
		var mu sync.Mutex
		var firstErr error
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= total {
						return
					}
					key := keys[i%int64(len(keys))]
					v, err := passive(a.Port(), key, reqTimeout)
					if err == nil {
						if strings.HasPrefix(key, "tcp.status.get") {
							var m map[string]int
							if e := json.Unmarshal([]byte(v), &m); e != nil || len(m) != 12 {
								err = fmt.Errorf("%s = %q", key, v)
							}
						} else if _, e := strconv.Atoi(v); e != nil {
							err = fmt.Errorf("%s = %q", key, v)
						}
					}
					if err != nil {
						failed.Add(1)
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("request %d %s: %w", i, key, err)
						}
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		t.Logf("%d requests, %d at a time, in %v", total, workers, time.Since(start).Round(time.Millisecond))
		if n := failed.Load(); n > 0 {
			t.Fatalf("%d of %d requests failed; first: %v", n, total, firstErr)
		}
		if err := a.Alive(); err != nil {
			t.Fatal(err)
		}
		operational(t, a) // still exactly one plugin process
	})
}

// procFixture writes a procfs root with net/tcp listing the given listening
// ports and no tcp6 (IPv6 disabled at boot).
func procFixture(t testing.TB, ports ...int) string {
	t.Helper()
	root := testutil.WorldDir(t)
	dir := filepath.Join(root, "net")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	table := procTCPHeader
	for i, p := range ports {
		table += procTCPListen(i, p)
	}
	if err := os.WriteFile(filepath.Join(dir, "tcp"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAgentBrokenProc points ProcRoot at a fixture tree (Source=proc) and
// breaks it step by step: no tcp6 (IPv6 disabled), net unreadable, a
// malformed table, the table gone. Each item gets a clear error, and the
// agent and plugin keep running.
func TestAgentBrokenProc(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		root := procFixture(t, 8080, 8081, 9090)
		net := filepath.Join(root, "net")
		a := agenttest.Start(t, v, agenttest.WithConf("Plugins.TCPStatus.ProcRoot="+root,
			"Plugins.TCPStatus.Source=proc", "Plugins.TCPStatus.CacheTTL=0"))
		expect := func(key, want string) {
			t.Helper()
			got, err := a.Get(key)
			if err != nil || got != want {
				t.Fatalf("%s = %q, %v; want %s", key, got, err, want)
			}
		}
		expectErr := func(step, key string, want ...string) {
			t.Helper()
			_, err := a.Get(key)
			var ns *agenttest.NotSupported
			if !asNotSupported(err, &ns) {
				t.Fatalf("%s: %s: %v, want an item error", step, key, err)
			}
			for _, w := range want {
				if !strings.Contains(ns.Text, w) {
					t.Errorf("%s: %s: error %q does not mention %q", step, key, ns.Text, w)
				}
			}
			if ns.Text == "" || ns.Text[len(ns.Text)-1] != '.' || strings.ToUpper(ns.Text[:1]) != ns.Text[:1] {
				t.Errorf("%s: error %q is not Zabbix style", step, ns.Text)
			}
			t.Logf("%s: %s → %q", step, key, ns.Text)
			if err := a.Alive(); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
		}

		// IPv6 disabled: no tcp6 is no IPv6 sockets, not an error.
		expect("tcp.status[listen]", "3")
		expect("tcp.status[listen,,4]", "3")
		expect("tcp.status[listen,,6]", "0")
		expect("tcp.status[listen,8081]", "1")

		if err := os.Chmod(net, 0); err != nil {
			t.Fatal(err)
		}
		expectErr("net unreadable", "tcp.status[listen]", "ermission denied")
		os.Chmod(net, 0o755)

		if err := os.WriteFile(filepath.Join(net, "tcp"), []byte(procTCPHeader+"   0: garbage\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		expectErr("malformed table", "tcp.status.get", "tcp:2")

		if err := os.WriteFile(filepath.Join(net, "tcp"), []byte("not a header\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		expectErr("wrong header", "tcp.status[listen]")

		if err := os.Remove(filepath.Join(net, "tcp")); err != nil {
			t.Fatal(err)
		}
		expectErr("table missing", "tcp.status[listen]", "no such file")

		// Back to a good table: served again.
		if err := os.WriteFile(filepath.Join(net, "tcp"), []byte(procTCPHeader+procTCPListen(0, 22)), 0o644); err != nil {
			t.Fatal(err)
		}
		expect("tcp.status[listen]", "1")
	})
}

func asNotSupported(err error, ns **agenttest.NotSupported) bool {
	if err == nil {
		return false
	}
	e, ok := err.(*agenttest.NotSupported)
	if ok {
		*ns = e
	}
	return ok
}

// TestAgentSlowProc: the socket table never arrives (a FIFO the test holds
// open). The item gets the plugin's timeout error within the time limit —
// the one the 7.0 agent sends with the request, or the Timeout option under
// 6.0 — the agent keeps answering other keys, and once the table arrives the
// plugin serves it.
func TestAgentSlowProc(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		root, feed := fifoProcRoot(t)
		a := agenttest.Start(t, v, agenttest.WithConf("Plugins.TCPStatus.ProcRoot="+root,
			"Plugins.TCPStatus.Source=proc", "Plugins.TCPStatus.CacheTTL=0", "Plugins.TCPStatus.Timeout=2"))
		limit := 2 * time.Second
		var reqTimeout time.Duration
		if v != agenttest.V60 {
			// 7.0: the request's own timeout (4 s) wins over the option (2 s).
			reqTimeout, limit = 4*time.Second, 4*time.Second
		}
		start := time.Now()
		_, err := passive(a.Port(), "tcp.status[listen]", reqTimeout)
		took := time.Since(start)
		if !notSupported(err, timeoutText) {
			t.Fatalf("slow table: %v after %v, want %q", err, took, timeoutText)
		}
		if took < limit-300*time.Millisecond || took > limit+1500*time.Millisecond {
			t.Errorf("timeout error after %v, want about %v", took, limit)
		}
		t.Logf("slow table: %q after %v", err, took.Round(time.Millisecond))
		if err := a.Alive(); err != nil {
			t.Fatal(err)
		}
		// A request waiting when the table arrives gets it.
		type result struct {
			v   string
			err error
		}
		done := make(chan result, 1)
		go func() {
			var r result
			if reqTimeout > 0 {
				r.v, r.err = passive(a.Port(), "tcp.status[listen]", 10*time.Second)
			} else {
				r.v, r.err = a.Get("tcp.status[listen]")
			}
			done <- r
		}()
		time.Sleep(500 * time.Millisecond)
		feed(procTCPHeader + procTCPListen(0, 8080) + procTCPListen(1, 8081))
		if r := <-done; r.err != nil || r.v != "2" {
			t.Fatalf("after the table arrived: %q, %v; want 2", r.v, r.err)
		}
		if err := a.Alive(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAgentIPv6Disabled runs the agent in a network namespace with IPv6
// disabled (net.ipv6.conf.all.disable_ipv6=1), netlink source: IPv6 counts
// are 0, IPv4 ones right, discovery works.
func TestAgentIPv6Disabled(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		ns := newNetns(t, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1")
		for _, source := range []string{"netlink", "proc"} {
			t.Run(source, func(t *testing.T) {
				a := agenttest.Start(t, v, agenttest.InNetns(ns), agenttest.WithConf("Plugins.TCPStatus.Source="+source))
				for key, want := range map[string]string{
					"tcp.status[listen]":         "1", // the agent's own listener
					"tcp.status[listen,,4]":      "1",
					"tcp.status[listen,,6]":      "0",
					"tcp.status[all,,6]":         "0",
					"tcp.status[established,,6]": "0",
				} {
					got, err := a.Get(key)
					if err != nil || got != want {
						t.Errorf("%s = %q, %v; want %s", key, got, err, want)
					}
				}
				got, err := a.Get("tcp.port.discovery")
				if err != nil {
					t.Fatal(err)
				}
				var d []map[string]string
				if err := json.Unmarshal([]byte(got), &d); err != nil {
					t.Fatalf("tcp.port.discovery = %q: %v", got, err)
				}
				port := strconv.Itoa(a.Port())
				found := false
				for _, e := range d {
					if e["{#PORT}"] == port {
						found = true
						if e["{#FAMILY}"] != "4" {
							t.Errorf("agent port discovered with family %q, want 4", e["{#FAMILY}"])
						}
					}
				}
				if !found {
					t.Errorf("agent port %s not in tcp.port.discovery %s", port, got)
				}
			})
		}
	})
}

// TestAgentBadConfigRefusesStart: an invalid option stops the agent at
// start with the plugin's message (Validate), on both series, instead of
// failing every item later.
func TestAgentBadConfigRefusesStart(t *testing.T) {
	cases := []struct {
		line string
		want []string
	}{
		{"Plugins.TCPStatus.Source=bogus", []string{"Plugins.TCPStatus.Source", `expected auto, netlink or proc, got "bogus"`}},
		{"Plugins.TCPStatus.ProcRot=/proc", []string{"Plugins.TCPStatus.ProcRot", "known options"}},
		{"Plugins.TCPStatus.ProcRoot=relative/proc", []string{"Plugins.TCPStatus.ProcRoot", "absolute"}},
		{"Plugins.TCPStatus.CacheTTL=-1", []string{"Plugins.TCPStatus.CacheTTL", "seconds"}},
	}
	versions(t, func(t *testing.T, v agenttest.Version) {
		for _, c := range cases {
			t.Run(c.line, func(t *testing.T) {
				start := time.Now()
				out, err := runAgentOnce(t, v, c.line)
				if err == nil {
					t.Fatalf("agent started and exited with status 0 despite %s:\n%s", c.line, out)
				}
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						t.Errorf("agent output does not contain %q:\n%s", w, tail(out, 20))
					}
				}
				if panicRe.MatchString(out) {
					t.Errorf("agent output shows a panic:\n%s", tail(out, 40))
				}
				t.Logf("refused in %v: %v: %s", time.Since(start).Round(time.Millisecond), err, firstLineWith(out, "TCPStatus"))
			})
		}
	})
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestAgentKilledAndRestarted: the agent dies without telling the plugin
// (SIGKILL, OOM killer); the plugin sees its connection end and exits. The
// agent started again with the same configuration (same plugin socket)
// starts a new plugin process that serves, and nothing is left behind.
func TestAgentKilledAndRestarted(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		spec := privateSpec(t, v)
		var prev int
		for round := 1; round <= 2; round++ {
			a, err := kitagent.Start(spec) // the same configuration, port and plugin socket
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if round == 2 {
				t.Cleanup(func() {
					if err := a.Stop(); err != nil {
						t.Error(err)
					}
				})
			}
			got, err := passive(a.Port(), "tcp.status[listen]", 0) // also starts the plugin
			if err != nil || atoi(t, "tcp.status[listen]", got) < 1 {
				t.Fatalf("round %d: tcp.status[listen] = %q, %v\n%s", round, got, err, a.LogTail(20))
			}
			var pids []int
			for pid, phase := range pluginProcs(spec.Dir) {
				if phase == "false" {
					pids = append(pids, pid)
				}
			}
			if len(pids) != 1 || pids[0] == prev {
				t.Fatalf("round %d: operational plugin processes %v (previous %d), want one new", round, pids, prev)
			}
			prev = pids[0]
			if round == 2 {
				break // the cleanup stops the second agent
			}
			// SIGKILL to the agent only: the plugin is not signalled.
			if err := a.Kill(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(pluginProcs(spec.Dir)) > 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if left := pluginProcs(spec.Dir); len(left) > 0 {
				t.Fatalf("plugin processes left behind after the agent was killed: %v", left)
			}
		}
	})
}
