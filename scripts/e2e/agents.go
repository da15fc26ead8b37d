package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// agent is one private agent under test: its own port, sockets, pid and log
// files, running as the zabbix user.
type agent struct {
	kind     string // "agent2" or "agentd"
	hostname string
	port     int
	conf     string
	log      string
	proc     *proc
}

// startAgent2 runs Zabbix agent 2 with the plugin registered as TCPStatus.
// Agent 2 does not drop privileges itself, so it is started as zabbix.
func startAgent2(ctx context.Context, ps *procs, l layout, work, plugin string, zbx account) (*agent, error) {
	a := &agent{kind: "agent2", hostname: "tcpstatus-e2e-agent2"}
	dir := filepath.Join(work, "agent2")
	if err := mkdirOwned(dir, &zbx); err != nil {
		return nil, err
	}
	var err error
	if a.port, err = freePort(); err != nil {
		return nil, err
	}
	a.conf = filepath.Join(dir, "zabbix_agent2.conf")
	a.log = filepath.Join(dir, "zabbix_agent2.log")
	conf := strings.Join([]string{
		"Server=127.0.0.1",
		"ServerActive=",
		"ListenIP=127.0.0.1",
		"ListenPort=" + strconv.Itoa(a.port),
		"Hostname=" + a.hostname,
		"LogType=file",
		"LogFile=" + a.log,
		"LogFileSize=0",
		"DebugLevel=3",
		"PidFile=" + filepath.Join(dir, "zabbix_agent2.pid"),
		"ControlSocket=" + filepath.Join(dir, "agent.sock"),
		"PluginSocket=" + filepath.Join(dir, "plugin.sock"),
		"Timeout=10",
		"Plugins.TCPStatus.System.Path=" + plugin,
	}, "\n") + "\n"
	if err := writeFile(a.conf, conf, nil); err != nil {
		return nil, err
	}
	// Agent 2 6.0.14 can panic at start when two of its goroutines reap the
	// plugin's registration process (README, "Known issues"): such a start
	// is tried again, up to 3 times.
	stdout := filepath.Join(dir, "stdout.log")
	for attempt := 1; ; attempt++ {
		if a.proc, err = ps.start("zabbix_agent2 "+l.version, &zbx, stdout, nil, syscall.SIGTERM,
			l.agent2, "-c", a.conf, "-f"); err != nil {
			return nil, err
		}
		err = a.waitListening(ctx)
		if err == nil || attempt == 3 {
			return a, err
		}
		if out, _ := os.ReadFile(stdout); !startRace.Match(out) {
			return a, err
		}
		logf("agent 2 %s hit its start race (attempt %d), starting it again", l.version, attempt)
	}
}

// startRace matches agent 2 6.0.14's panic when it reaps a plugin process
// twice.
var startRace = regexp.MustCompile(`failed to obtain PID of dead child process|\(\*Plugin\)\.CheckPid`)

// startAgentd runs the classic agent with the UserParameter file, its
// helper path pointed at the binary under test.
func startAgentd(ctx context.Context, ps *procs, l layout, work, userParams, helper string, zbx account) (*agent, error) {
	a := &agent{kind: "agentd", hostname: "tcpstatus-e2e-agentd"}
	dir := filepath.Join(work, "agentd")
	if err := mkdirOwned(dir, &zbx); err != nil {
		return nil, err
	}
	var err error
	if a.port, err = freePort(); err != nil {
		return nil, err
	}
	up, err := os.ReadFile(userParams)
	if err != nil {
		return nil, err
	}
	upPath := filepath.Join(dir, "userparameter_tcpstatus.conf")
	if err := writeFile(upPath, pointHelper(string(up), helper), nil); err != nil {
		return nil, err
	}
	a.conf = filepath.Join(dir, "zabbix_agentd.conf")
	a.log = filepath.Join(dir, "zabbix_agentd.log")
	if err := writeFile(a.log, "", &zbx); err != nil {
		return nil, err
	}
	conf := strings.Join([]string{
		"Server=127.0.0.1",
		"ServerActive=",
		"ListenIP=127.0.0.1",
		"ListenPort=" + strconv.Itoa(a.port),
		"Hostname=" + a.hostname,
		"LogType=file",
		"LogFile=" + a.log,
		"LogFileSize=0",
		"DebugLevel=3",
		"PidFile=" + filepath.Join(dir, "zabbix_agentd.pid"),
		"StartAgents=3",
		"Timeout=10",
		"AllowRoot=0",
		"User=zabbix",
		"Include=" + upPath,
	}, "\n") + "\n"
	if err := writeFile(a.conf, conf, nil); err != nil {
		return nil, err
	}
	if a.proc, err = ps.start("zabbix_agentd "+l.version, &zbx, filepath.Join(dir, "stdout.log"), nil, syscall.SIGTERM,
		l.agentd, "-c", a.conf, "-f"); err != nil {
		return nil, err
	}
	return a, a.waitListening(ctx)
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

func (a *agent) waitListening(ctx context.Context) error {
	err := waitFor(ctx, a.kind+" listens on "+strconv.Itoa(a.port), 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		if done, err := a.proc.exited(); done {
			return false, fmt.Errorf("exited: %v", err)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.port)), time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, fileTail(a.log, 1500))
	}
	return nil
}
