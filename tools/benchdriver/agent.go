package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	kitagent "zabbix-agent2-plugin-tcpstatus/testkit/agent"
)

// agent is a private zabbix_agent2 daemon started by the driver inside the
// load namespace (it inherits the driver's namespace) with the test kit's
// launcher (testkit/agent, which also retries agent 2 6.0's start race),
// its own config, sockets and log under dir, listening on 127.0.0.1:port of
// that namespace.
type agent struct {
	run    *kitagent.Agent
	plugin string
}

// startAgent starts a private agent with the plugin (if plugin is set) and
// pluginOpts as its Plugins.TCPStatus.* options, and waits until it answers.
func startAgent(bin, zget, plugin, dir string, port int, pluginOpts map[string]string) (*agent, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The built-in net.tcp.socket.count needs ~3 s per call at 1M sockets.
	conf := []string{"PluginTimeout=30"}
	if plugin != "" {
		conf = append(conf, kitagent.PluginConf(plugin))
		for k, v := range pluginOpts {
			conf = append(conf, "Plugins.TCPStatus."+k+"="+v)
		}
	}
	run, err := kitagent.Start(kitagent.Spec{
		// Version: any agent 2 series (Debian's 6.0 by default) takes the same lines.
		Name: "zabbix_agent2", Bin: bin, Version: kitagent.V60, Dir: dir, Port: port,
		Hostname: "tcpstatus-bench", Timeout: 30, DebugLevel: 3, Conf: conf, ZabbixGet: zget,
		Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, "benchdriver: "+format+"\n", args...) },
	})
	if err != nil {
		return nil, err
	}
	return &agent{run: run, plugin: plugin}, nil
}

// get asks the agent for one key with zabbix_get; an unsupported item is an
// error.
func (a *agent) get(key string) (string, error) {
	v, err := a.run.GetWithin(key, 30)
	if err != nil {
		return v, fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}

func (a *agent) stop() {
	if err := a.run.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver: %v\n", err)
	}
}

func (a *agent) pid() int { return a.run.PID() }

// pluginPID finds the operational plugin process (argv: path, socket,
// "false") among the agent's children.
func (a *agent) pluginPID() (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid(pid) != a.pid() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && args[0] == a.plugin && args[2] == "false" {
			return pid, nil
		}
	}
	return 0, errors.New("no operational plugin process under the agent")
}

// statFields returns the fields of /proc/<pid>/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func ppid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// clkTck is USER_HZ, the unit of utime/stime in /proc/<pid>/stat.
const clkTck = 100

// procCPU is a process's CPU time so far: the precise on-CPU time summed over
// its live threads (schedstat), and user/sys from /proc/<pid>/stat (USER_HZ
// ticks, exited threads included).
type procCPU struct {
	schedNs       int64
	userNs, sysNs int64
}

func readCPU(pid int) (procCPU, error) {
	var c procCPU
	f := statFields(pid)
	if len(f) < 13 {
		return c, fmt.Errorf("process %d is gone", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	c.userNs, c.sysNs = ut*1e9/clkTck, st*1e9/clkTck
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return c, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			c.schedNs += n
		}
	}
	return c, nil
}

// cpuDelta is the CPU time used between two readings: the schedstat sum,
// unless the tick counters show clearly more (a thread exited meanwhile).
func cpuDelta(a, b procCPU) int64 {
	sched := b.schedNs - a.schedNs
	ticks := (b.userNs + b.sysNs) - (a.userNs + a.sysNs)
	if ticks > sched+sched/10+20e6 {
		return ticks
	}
	return sched
}

// peakRSSkB is VmHWM of a live process.
func peakRSSkB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}
