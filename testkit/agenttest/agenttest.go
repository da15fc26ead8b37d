package agenttest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/testkit/agent"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// Names of testkit/agent, for tests that only import this layer.
type (
	Agent        = agent.Agent
	Version      = agent.Version
	NotSupported = agent.NotSupported
)

// Tested agent 2 series and the harness's fixed names (testkit/agent).
const (
	V60           = agent.V60
	V70           = agent.V70
	AgentUser     = agent.AgentUser
	ClassicBinary = agent.ClassicBinary
	EnvRequire    = agent.EnvRequire
	EnvPlugin     = agent.EnvPlugin
	PluginName    = agent.PluginName
	DiscoveryName = agent.DiscoveryName
)

// Versions returns every tested agent 2 series, oldest first.
func Versions() []Version { return agent.Versions() }

// RepoRoot returns the directory holding this module's go.mod.
func RepoRoot() (string, error) { return agent.RepoRoot() }

// Option changes how an agent is started.
type Option func(*agent.Spec)

// InNetns runs the agent, its -t runs and zabbix_get inside the existing
// network namespace name (/run/netns/<name>, as `ip netns add` creates it),
// so the plugin sees that namespace's sockets.
func InNetns(name string) Option { return func(s *agent.Spec) { s.Netns = name } }

// WithConf appends lines to the agent configuration, e.g.
// "Plugins.TCPStatus.CacheTTL=0".
func WithConf(lines ...string) Option {
	return func(s *agent.Spec) { s.Conf = append(s.Conf, lines...) }
}

// Start runs a private zabbix_agent2 of series v with the plugin built from
// this tree (PluginBinary), as user zabbix, on a free loopback port, and
// waits until it answers agent.ping. The agent is stopped when the test
// ends, and the test fails if it crashed or logged a panic or a dead plugin.
func Start(t testing.TB, v Version, opts ...Option) *Agent {
	t.Helper()
	if v != V60 && v != V70 {
		t.Fatalf("agenttest: unknown agent version %q", v)
	}
	s := agent.Spec{Bin: v.Binary(), Version: v}
	dir := prepare(t, &s, opts)
	plugin := PluginBinary(t)
	if !reachable(plugin) {
		// A checkout user zabbix cannot enter (under /root): run a copy.
		plugin = testutil.CopyExecutable(t, dir, plugin, filepath.Base(plugin))
	}
	s.Conf = append([]string{agent.PluginConf(plugin)}, s.Conf...)
	return start(t, s)
}

// StartClassic runs a private classic zabbix_agentd with userParamConf (the
// text of a UserParameter file, e.g. conf/userparameter_tcpstatus.conf)
// included, as Start runs agent 2.
func StartClassic(t testing.TB, userParamConf string, opts ...Option) *Agent {
	t.Helper()
	s := agent.Spec{Bin: ClassicBinary}
	dir := prepare(t, &s, opts)
	up := filepath.Join(dir, "userparameter.conf")
	if err := os.WriteFile(up, []byte(userParamConf), 0o644); err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	s.Conf = append([]string{"Include=" + up}, s.Conf...)
	return start(t, s)
}

// prepare applies opts, checks the requirements (skipping t, or failing
// it under TCPSTATUS_REQUIRE_AGENT=1) and makes the agent's directory.
func prepare(t testing.TB, s *agent.Spec, opts []Option) string {
	t.Helper()
	s.User = AgentUser
	s.Logf = func(format string, args ...any) { t.Logf("agenttest: "+format, args...) }
	for _, o := range opts {
		o(s)
	}
	if testing.Short() {
		t.Skipf("agenttest: agents are not started in -short mode")
	}
	if missing := agent.Missing(*s); len(missing) > 0 {
		msg := fmt.Sprint(missing)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("agenttest: %s (%s=1 forbids skipping)", msg, EnvRequire)
		}
		t.Skipf("agenttest: %s", msg)
	}
	dir, err := agent.NewDir(s.User)
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.Dir = dir
	return dir
}

func start(t testing.TB, s agent.Spec) *Agent {
	t.Helper()
	a, err := agent.Start(s)
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("agenttest: %v", err)
		} else if t.Failed() {
			t.Logf("agenttest: %s log (end):\n%s", a.Name(), a.LogTail(40))
		}
	})
	return a
}

// reachable reports whether every directory above path can be entered by
// any user, so the agent's user can run it.
func reachable(path string) bool {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// PluginBinary builds bin/zabbix-agent2-plugin-tcpstatus once per test
// binary, as `make build` does, and returns its absolute path; with
// $TCPSTATUS_PLUGIN set, that path.
func PluginBinary(t testing.TB) string {
	t.Helper()
	p, err := agent.PluginBinary()
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	return p
}

// DiscoveryBinary builds bin/tcpstatus-discovery like PluginBinary.
func DiscoveryBinary(t testing.TB) string {
	t.Helper()
	p, err := agent.DiscoveryBinary()
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	return p
}
