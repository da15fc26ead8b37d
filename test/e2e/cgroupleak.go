package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// The per-service CLOSE_WAIT leak: before the agents start, the run creates
// a cgroup v2 of its own, /tcpstatus-e2e-<pid>/leak.service under the
// hierarchy's root, and starts a copy of itself directly inside it (clone3
// CLONE_INTO_CGROUP), as root. That process listens on 127.0.0.1, connects
// to itself leakCloseWait times and half-closes those connections (its
// accepted ends sit in CLOSE_WAIT, its client ends in FIN_WAIT2), and holds
// leakPairs more established connections, so that its cgroup keeps at least
// {$TCP.CGROUP.MIN.SOCKETS} sockets once the leak is closed. Every socket a
// process creates (or accepts) carries its cgroup, so the services
// discovery of the hosts with triggers finds the cgroup in its first run;
// the other hosts leave it out ({$TCP.CGROUP.NOT_MATCHES}, cgroupMacros),
// because their values come on schedules the run does not drive.
//
// The same listener shows what port discovery names without privileges:
// the agents run as zabbix with no capability, so they cannot see which
// process of root's holds the port ({#PROCESS} empty), while its cgroup
// ({#SERVICE}) comes with the socket (ownersCycle).
const (
	leakChildEnv  = "TCPSTATUS_E2E_LEAK_CHILD"
	leakCloseWait = 12
	leakPairs     = 6
	// leakWarn is the host macro with the cgroup's context: under
	// leakCloseWait.
	leakWarn  = 10
	leakBase  = "tcpstatus-e2e-"
	leakChild = "leak.service"
)

// leakCgroup is the cgroup's path as the agents name it, relative to the
// hierarchy's root; the run's pid is the same for every version.
func leakCgroup() string { return "/" + leakBase + strconv.Itoa(os.Getpid()) + "/" + leakChild }

// leakTrigger is the service's CLOSE_WAIT trigger, as discovered.
func leakTrigger() string { return "Service " + leakCgroup() + ": CLOSE_WAIT sockets are leaking" }

// cgroupMacros are the host macros of the services discovery and the leak
// trigger that createHost sets.
func cgroupMacros(tg *target) []any {
	if !tg.triggers {
		return []any{map[string]string{"macro": "{$TCP.CGROUP.NOT_MATCHES}", "value": "^/" + leakBase}}
	}
	return []any{map[string]string{"macro": "{$TCP.CGROUP.CLOSE_WAIT.MAX.WARN:\"" + leakCgroup() + "\"}", "value": strconv.Itoa(leakWarn)}}
}

// leak is the running leaking process.
type leak struct {
	base, dir string // the cgroups' directories
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	out       *bufio.Reader
	port      int
}

// startLeak creates the cgroups and starts the leaking process in the
// child one; it returns once every connection is in place.
func startLeak() (_ *leak, err error) {
	root, err := sockets.NewCgroupPaths().Root()
	if err != nil {
		return nil, err
	}
	l := &leak{base: filepath.Join(root, leakBase+strconv.Itoa(os.Getpid()))}
	l.dir = filepath.Join(l.base, leakChild)
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.stop()
		}
	}()
	cg, err := os.Open(l.dir)
	if err != nil {
		return nil, err
	}
	defer cg.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	l.cmd = exec.Command(self)
	l.cmd.Env = append(os.Environ(), leakChildEnv+"=1")
	l.cmd.Stderr = os.Stderr
	// In its own process group like every process of the run, so that
	// 80-e2e.sh's cleanup stops it with the rest.
	l.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if l.stdin, err = l.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	l.out = bufio.NewReader(stdout)
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the leaking process in %s: %w", l.dir, err)
	}
	line, err := l.line()
	if err != nil {
		return nil, err
	}
	if l.port, err = strconv.Atoi(line); err != nil {
		return nil, fmt.Errorf("leaking process: %q", line)
	}
	if line, err := l.line(); err != nil || line != "ready" {
		return nil, fmt.Errorf("leaking process: %q, %v", line, err)
	}
	return l, nil
}

func (l *leak) line() (string, error) {
	s, err := l.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("leaking process: %w", err)
	}
	return strings.TrimSpace(s), nil
}

// release closes the CLOSE_WAIT connections (both ends, with a reset);
// the listener and the established pairs stay.
func (l *leak) release() error {
	if _, err := io.WriteString(l.stdin, "release\n"); err != nil {
		return err
	}
	if line, err := l.line(); err != nil || line != "released" {
		return fmt.Errorf("leaking process: %q, %v", line, err)
	}
	return nil
}

// stop ends the process and removes its cgroups (a cgroup empties a
// little after its last process is reaped).
func (l *leak) stop() {
	if l.cmd != nil && l.cmd.Process != nil {
		l.stdin.Close()
		done := make(chan struct{})
		go func() { l.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			l.cmd.Process.Kill()
			<-done
		}
		l.cmd = nil
	}
	for _, d := range []string{l.dir, l.base} {
		for i := 0; ; i++ {
			err := unix.Rmdir(d)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if i == 100 {
				logf("remove cgroup %s: %v", d, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// runLeakChild is the leaking process (leakChildEnv): it prints its
// listener's port, then "ready" once its connections are in place;
// "release" on its standard input resets the half-closed ones; it exits
// when its standard input closes.
func runLeakChild() error {
	l, err := listenCfg.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	var leaked, kept []*net.TCPConn
	for i := range leakCloseWait + leakPairs {
		c, err := dialer.Dial("tcp4", addr)
		if err != nil {
			return err
		}
		s, err := l.Accept()
		if err != nil {
			return err
		}
		if i < leakCloseWait {
			// The client's FIN: its accepted end goes to CLOSE_WAIT
			// and stays there, never closed.
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				return err
			}
			leaked = append(leaked, c.(*net.TCPConn), s.(*net.TCPConn))
		} else {
			kept = append(kept, c.(*net.TCPConn), s.(*net.TCPConn))
		}
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "release" {
			for _, c := range leaked {
				c.SetLinger(0)
				c.Close()
			}
			leaked = nil
			fmt.Println("released")
		}
	}
	_ = kept
	return nil
}

// discoveredService checks what an agent's port discovery says of the
// leaking process's listener: its cgroup, and no process name (the agent's
// user cannot see a process of root's). The agent itself must run as
// zabbix with no effective capability.
func discoveredService(v string, tg *target, port int) error {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tg.agent.run.PID()))
	if err != nil {
		return err
	}
	var uid, capEff string
	for _, line := range strings.Split(string(st), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "Uid:":
			uid = f[2] // effective
		case len(f) > 1 && f[0] == "CapEff:":
			capEff = f[1]
		}
	}
	zbx, err := lookupAccount("zabbix")
	if err != nil {
		return err
	}
	if uid != strconv.Itoa(int(zbx.uid)) || strings.Trim(capEff, "0") != "" {
		return fmt.Errorf("%s: agent runs with effective uid %s and capabilities %s, want zabbix (%d) and none", tg.hostname, uid, capEff, zbx.uid)
	}
	raw, err := tg.agent.run.Get("tcp.port.discovery")
	if err != nil {
		return fmt.Errorf("%s: tcp.port.discovery: %w", tg.hostname, err)
	}
	var rows []map[string]string
	if err := json.Unmarshal([]byte(raw), &rows); err != nil {
		return fmt.Errorf("%s: tcp.port.discovery: %w: %.300s", tg.hostname, err, raw)
	}
	for _, r := range rows {
		if r["{#PORT}"] != strconv.Itoa(port) {
			continue
		}
		if r["{#SERVICE}"] != leakCgroup() || r["{#PROCESS}"] != "" {
			return fmt.Errorf("%s: tcp.port.discovery for port %d: %v, want {#SERVICE} %s and {#PROCESS} empty", tg.hostname, port, r, leakCgroup())
		}
		logf("Zabbix %s: %s (%s as uid %s, CapEff %s): port %d {#SERVICE} %q, {#PROCESS} %q", v, tg.hostname, tg.agent.kind, uid, capEff, port, r["{#SERVICE}"], r["{#PROCESS}"])
		return nil
	}
	return fmt.Errorf("%s: tcp.port.discovery has no port %d: %.500s", tg.hostname, port, raw)
}
