package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// agent is a private zabbix_agent2 daemon started by the driver inside the
// load namespace (it inherits the driver's namespace), with its own config,
// sockets and log under dir, listening on 127.0.0.1:port of that namespace.
type agent struct {
	bin, zget, dir string
	port           int
	cmd            *exec.Cmd
	done           chan struct{}
	plugin         string
}

// startAgent starts a private agent with the plugin (if plugin is set) and
// pluginOpts as its Plugins.TCPStatus.* options, and waits until it answers.
// Agent 2 6.0.14 sometimes panics at start ("failed to obtain PID of dead
// child process") when the registration plugin process exits while it
// starts: that start is retried, up to 3 times.
func startAgent(bin, zget, plugin, dir string, port int, pluginOpts map[string]string) (*agent, error) {
	var err error
	for try := 1; try <= 3; try++ {
		var a *agent
		if a, err = startAgentOnce(bin, zget, plugin, dir, port, pluginOpts); err == nil {
			return a, nil
		}
		if !errors.Is(err, errAgentPanicked) {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "benchdriver: agent start %d: %v; retrying\n", try, err)
	}
	return nil, err
}

var errAgentPanicked = errors.New("agent panicked at start")

func startAgentOnce(bin, zget, plugin, dir string, port int, pluginOpts map[string]string) (*agent, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "LogType=file\nLogFile=%s/agent.log\nLogFileSize=0\nDebugLevel=3\n", dir)
	fmt.Fprintf(&conf, "PidFile=%s/agent.pid\nControlSocket=%s/agent.sock\nPluginSocket=%s/plugin.sock\n", dir, dir, dir)
	fmt.Fprintf(&conf, "ListenIP=127.0.0.1\nListenPort=%d\nServer=127.0.0.1\nHostname=tcpstatus-bench\n", port)
	// The built-in net.tcp.socket.count needs ~3 s per call at 1M sockets.
	conf.WriteString("Timeout=30\nPluginTimeout=30\n")
	if plugin != "" {
		fmt.Fprintf(&conf, "Plugins.TCPStatus.System.Path=%s\n", plugin)
		for k, v := range pluginOpts {
			fmt.Fprintf(&conf, "Plugins.TCPStatus.%s=%s\n", k, v)
		}
	}
	cf := filepath.Join(dir, "agent.conf")
	if err := os.WriteFile(cf, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	a := &agent{bin: bin, zget: zget, dir: dir, port: port, plugin: plugin, done: make(chan struct{})}
	a.cmd = exec.Command(bin, "-c", cf, "-f")
	var out bytes.Buffer
	a.cmd.Stdout, a.cmd.Stderr = &out, &out
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := a.get("agent.ping")
		if err == nil && v == "1" {
			return a, nil
		}
		select {
		case <-a.done:
			if strings.Contains(out.String(), "panic:") {
				_, msg, _ := strings.Cut(out.String(), "panic:")
				msg, _, _ = strings.Cut(msg, "\n")
				return nil, fmt.Errorf("%w:%s", errAgentPanicked, msg)
			}
			log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			return nil, fmt.Errorf("agent exited at start: %s\n%s", out.String(), tail(string(log), 2000))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("agent not answering after 20s: %v", err)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// get asks the agent for one key with zabbix_get; an unsupported item is an
// error.
func (a *agent) get(key string) (string, error) {
	out, err := exec.Command(a.zget, "-s", "127.0.0.1", "-p", strconv.Itoa(a.port), "-t", "30", "-k", key).Output()
	v := strings.TrimRight(string(out), "\n")
	if err != nil {
		return v, fmt.Errorf("zabbix_get %s: %w", key, err)
	}
	if strings.HasPrefix(v, "ZBX_NOTSUPPORTED") {
		return v, errors.New(key + ": " + v)
	}
	return v, nil
}

func (a *agent) stop() {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

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
