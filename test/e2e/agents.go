package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	kitagent "zabbix-agent2-plugin-tcpstatus/testkit/agent"
)

// agent is one private agent under test: its own port, sockets, pid and log
// files, running as the zabbix user, started by the test kit's launcher
// (testkit/agent, which also retries agent 2 6.0's start race).
type agent struct {
	kind     string // "agent2" or "agentd"
	name     string // directory under the version's work directory
	hostname string
	port     int
	run      *kitagent.Agent
	// activeHost: the host this agent also runs active checks for (a
	// second Hostname), sending to the server's trapper; "" for none.
	activeHost string
}

// agentOpts says what differs between the run's agents besides their kind.
type agentOpts struct {
	name     string // directory under the version's work directory
	hostname string // the host of its passive checks
	// serverActive ("127.0.0.1:<trapper port>") and activeHost: run
	// active checks for activeHost too.
	serverActive, activeHost string
	// helperFlags go before the key on the helper's command line (classic
	// agent only).
	helperFlags string
}

// activeLines are the configuration lines for active checks: the agent
// asks the server for the active checks of each Hostname at start and
// every minute (the least 6.0 accepts), and agent 2 runs them all at once
// on the first list it gets instead of spreading them over their
// intervals (the classic agent does that by itself).
func activeLines(kind string, o agentOpts) []string {
	if o.serverActive == "" {
		return []string{"ServerActive="}
	}
	lines := []string{"ServerActive=" + o.serverActive, "RefreshActiveChecks=60"}
	if kind == "agent2" {
		lines = append(lines, "ForceActiveChecksOnStart=1")
	}
	return lines
}

// startAgent2 runs Zabbix agent 2 with the plugin registered as TCPStatus.
// Agent 2 does not drop privileges itself, so it is started as zabbix.
func startAgent2(ctx context.Context, ps *procs, l layout, work, plugin string, zbx account, o agentOpts) (*agent, error) {
	a := &agent{kind: "agent2", name: o.name, hostname: o.hostname, activeHost: o.activeHost}
	return a, a.start(ps, work, zbx, kitagent.Spec{
		Name:    "zabbix_agent2 " + l.version,
		Bin:     l.agent2,
		Version: kitagent.Version(l.version),
		Conf:    append(activeLines(a.kind, o), kitagent.PluginConf(plugin)),
	})
}

// startAgentd runs the classic agent with the UserParameter file, its
// helper path pointed at the binary under test (with o.helperFlags).
func startAgentd(ctx context.Context, ps *procs, l layout, work, userParams, helper string, zbx account, o agentOpts) (*agent, error) {
	a := &agent{kind: "agentd", name: o.name, hostname: o.hostname, activeHost: o.activeHost}
	dir := filepath.Join(work, a.name)
	if err := mkdirOwned(dir, &zbx); err != nil {
		return nil, err
	}
	up, err := os.ReadFile(userParams)
	if err != nil {
		return nil, err
	}
	upPath := filepath.Join(dir, "userparameter_tcpstatus.conf")
	if err := writeFile(upPath, pointHelper(string(up), strings.TrimSpace(helper+" "+o.helperFlags)), nil); err != nil {
		return nil, err
	}
	return a, a.start(ps, work, zbx, kitagent.Spec{
		Name: "zabbix_agentd " + l.version,
		Bin:  l.agentd,
		Conf: append(activeLines(a.kind, o), "StartAgents=3", "AllowRoot=0", "User=zabbix", "Include="+upPath),
	})
}

// start runs the agent of s in <work>/<kind> as zbx on a free port, waits
// until it listens, and hands it to ps to stop with the rest.
func (a *agent) start(ps *procs, work string, zbx account, s kitagent.Spec) error {
	s.Dir = filepath.Join(work, a.name)
	if err := mkdirOwned(s.Dir, &zbx); err != nil {
		return err
	}
	var err error
	if s.Port, err = freePort(); err != nil {
		return err
	}
	a.port = s.Port
	s.User, s.Hostname, s.Timeout, s.DebugLevel = zbx.name, a.hostname, 10, 3
	if a.activeHost != "" {
		s.Hostname += "," + a.activeHost
	}
	s.ReadyOnListen = true
	s.Logf = func(format string, args ...any) { logf(format, args...) }
	if a.run, err = kitagent.Start(s); err != nil {
		return err
	}
	ps.adopt(s.Name, a.run.PID(), func() {
		if err := a.run.Stop(); err != nil {
			logf("%v", err)
		}
	})
	return nil
}

// pointHelper rewrites the helper's path in UserParameter lines to the
// binary under test (the shipped file names its installed path).
func pointHelper(conf, helper string) string {
	var out []string
	for _, line := range strings.Split(conf, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "UserParameter=") {
			if i := strings.Index(line, ","); i > 0 {
				cmd := line[i+1:]
				fields := strings.Fields(cmd)
				if len(fields) > 0 && filepath.Base(fields[0]) == "tcpstatus-discovery" {
					cmd = strings.Replace(cmd, fields[0], helper, 1)
				}
				line = line[:i+1] + cmd
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
