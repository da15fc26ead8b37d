package faults

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// seccompWrapper returns a world-readable copy of this test binary and the
// environment that makes it run the plugin (also copied, for user zabbix)
// with socket(AF_NETLINK, _, NETLINK_SOCK_DIAG) refused.
func seccompWrapper(t testing.TB) (wrapper string, env []string) {
	t.Helper()
	_, ok := auditArch()
	require(t, ok, "seccomp filter not written for %s", "this architecture")
	dir := testutil.WorldDir(t)
	wrapper = testutil.CopyExecutable(t, dir, "", "seccomp-wrapper")
	plugin := testutil.CopyExecutable(t, dir, agenttest.PluginBinary(t), agenttest.PluginName)
	return wrapper, []string{envSeccompExec + "=" + plugin}
}

// TestNetlinkRefusedPlugin runs the plugin with netlink sock_diag refused by
// the kernel (EACCES, as under an SELinux or AppArmor denial): Source=auto
// falls back to /proc, counts right, and says so once in the agent's log;
// Source=netlink gives the items a clear error.
func TestNetlinkRefusedPlugin(t *testing.T) {
	wrapper, env := seccompWrapper(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)

	t.Run("auto", func(t *testing.T) {
		p := startPlugin(t, pluginOpts{bin: wrapper, env: env})
		p.configure(map[string]string{"CacheTTL": "0"})
		for range 5 {
			v, err := p.get(10*time.Second, "tcp.status", "listen", port)
			if err != nil || v != "1" {
				t.Fatalf("tcp.status[listen,%s] = %q, %v; want 1", port, v, err)
			}
		}
		logs := p.logText()
		if n := strings.Count(logs, "netlink sock_diag unavailable"); n != 1 {
			t.Fatalf("fallback logged %d times, want once; log:\n%s", n, logs)
		}
		if !strings.Contains(logs, "permission denied") {
			t.Errorf("fallback log does not give the cause:\n%s", logs)
		}
		t.Logf("log: %s", firstLineWith(logs, "netlink"))
	})
	t.Run("netlink", func(t *testing.T) {
		p := startPlugin(t, pluginOpts{bin: wrapper, env: env})
		p.configure(map[string]string{"Source": "netlink"})
		_, err := p.get(10*time.Second, "tcp.status", "listen", port)
		if !isItemError(err, "ermission denied") {
			t.Fatalf("Source=netlink with netlink refused: %v, want an item error giving the cause", err)
		}
		t.Logf("item error: %v", err)
		if err := p.probe(t); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNetlinkRefusedAgent: the same through a real agent, in a network
// namespace of its own (the only listener is the agent's): the items are
// right, the agent logs the fallback once, and keeps running.
func TestNetlinkRefusedAgent(t *testing.T) {
	wrapper, env := seccompWrapper(t)
	versions(t, func(t *testing.T, v agenttest.Version) {
		ns := newNetns(t)
		t.Setenv(agenttest.EnvPlugin, wrapper)
		for _, e := range env {
			k, val, _ := strings.Cut(e, "=")
			t.Setenv(k, val)
		}
		a := agenttest.Start(t, v, agenttest.InNetns(ns), agenttest.WithConf("Plugins.TCPStatus.CacheTTL=0"))
		for range 3 {
			got, err := a.Get("tcp.status[listen]")
			if err != nil || got != "1" {
				t.Fatalf("tcp.status[listen] = %q, %v; want 1 (the agent's listener)", got, err)
			}
		}
		if _, err := a.Get("tcp.port.discovery"); err != nil {
			t.Fatal(err)
		}
		log := a.Log()
		if n := strings.Count(log, "netlink sock_diag unavailable"); n != 1 {
			t.Fatalf("agent log has the fallback %d times, want once:\n%s", n, tail(log, 30))
		}
		t.Logf("agent log: %s", firstLineWith(log, "netlink sock_diag"))
		if err := a.Alive(); err != nil {
			t.Fatal(err)
		}
	})
}
