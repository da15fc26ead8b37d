package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"zabbix-agent2-plugin-tcpstatus/tools/loadgen/nlcount"
	"zabbix-agent2-plugin-tcpstatus/tools/loadgen/ready"
)

type options struct {
	N            int
	Hold         time.Duration
	NS           string
	ReadyFile    string
	FDsPerWorker int
	Parallel     int
	BuildTimeout time.Duration
	Plan         plan
}

// stateNames are the Zabbix names of the kernel state numbers.
var stateNames = [...]string{1: "established", 2: "syn_sent", 3: "syn_recv", 4: "fin_wait1", 5: "fin_wait2",
	6: "time_wait", 7: "close", 8: "close_wait", 9: "last_ack", 10: "listen", 11: "closing"}

// cleanups runs registered steps in reverse order, each once.
type cleanups struct {
	mu    sync.Mutex
	steps []func()
}

func (c *cleanups) add(f func()) { c.mu.Lock(); c.steps = append(c.steps, f); c.mu.Unlock() }
func (c *cleanups) run() {
	c.mu.Lock()
	steps := c.steps
	c.steps = nil
	c.mu.Unlock()
	for i := len(steps) - 1; i >= 0; i-- {
		steps[i]()
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", a...)
}

// command runs a tool and returns its error with the tool's output.
func command(stdin string, name string, args ...string) error {
	return commandOut(true, stdin, name, args...)
}

// commandOut is command; without keepStdout the tool's standard output is
// discarded (ss -K prints every socket it destroys).
func commandOut(keepStdout bool, stdin string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stderr = &out
	if keepStdout {
		cmd.Stdout = &out
	}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, nftables, ss -K)")
	}
	for _, tool := range []string{"ip", "nft", "ss", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: %w", tool, err)
		}
	}
	if _, err := os.Stat("/run/netns/" + o.NS); err == nil {
		return fmt.Errorf("network namespace %s already exists", o.NS)
	}
	var c cleanups
	defer c.run()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	start := time.Now()
	p := o.Plan
	la, syn := p.Expected["last_ack"], p.Expected["syn_recv"]
	raised, err := raiseGlobals(&c, map[string]int{
		// Orphans (LAST_ACK) are checked against the limit shifted left by up
		// to 2 when their timers fire.
		"net.ipv4.tcp_max_orphans": 4*la + 65536,
		// Retransmissions of sockets built together fire together.
		"net.core.netdev_max_backlog": 2 * (la + syn),
	})
	if err != nil {
		return err
	}
	if err := command("", "ip", "netns", "add", o.NS); err != nil {
		return err
	}
	c.add(func() {
		t0 := time.Now()
		if err := command("", "ip", "netns", "del", o.NS); err != nil {
			logf("cleanup: %v", err)
		}
		logf("cleanup: netns %s deleted in %.1fs", o.NS, time.Since(t0).Seconds())
	})
	if err := command("", "ip", "-n", o.NS, "link", "set", "lo", "up"); err != nil {
		return err
	}
	if err := command("", "ip", "netns", "exec", o.NS, "sysctl", "-q", "-e", "-w",
		"net.ipv4.ip_local_port_range=32768 65535",
		"net.core.somaxconn=262144",
		"net.ipv4.tcp_max_syn_backlog=1048576",
		"net.ipv4.tcp_max_tw_buckets=4194304",
		"net.ipv4.tcp_syncookies=0",
		"net.ipv4.tcp_syn_retries=127",
		"net.ipv4.tcp_synack_retries=255",
		"net.ipv4.tcp_retries2=255",
		"net.ipv4.tcp_orphan_retries=255",
		"net.ipv4.tcp_fin_timeout=3600",
		"net.ipv4.tcp_rto_max_ms=50000",
	); err != nil {
		return err
	}
	rules := fmt.Sprintf(`table inet tcpload {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport %d-%d tcp flags & (fin|syn|rst|ack) == ack drop
		tcp dport %d-%d tcp flags & (fin|syn|rst|ack) == ack drop
	}
}
`, portTimeWait, portTimeWait+maxWorkers, portSynRecv, portSynRecv+maxWorkers)
	if err := command(rules, "ip", "netns", "exec", o.NS, "nft", "-f", "-"); err != nil {
		return err
	}

	ws := &workers{ns: o.NS}
	// Stop order: the drop rules go first, then every socket of the
	// namespace is destroyed, then the workers exit.
	c.add(ws.stop)
	c.add(func() {
		t0 := time.Now()
		if err := commandOut(false, "", "ip", "netns", "exec", o.NS, "ss", "-K", "-tan"); err != nil {
			logf("cleanup: %v", err)
		}
		logf("cleanup: sockets destroyed in %.1fs", time.Since(t0).Seconds())
	})
	c.add(func() {
		if err := command("", "ip", "netns", "exec", o.NS, "nft", "delete", "table", "inet", "tcpload"); err != nil {
			logf("cleanup: %v", err)
		}
	})

	built := make(chan error, 1)
	go func() { built <- ws.build(p.Jobs, o.Parallel) }()
	select {
	case err := <-built:
		if err != nil {
			return err
		}
	case s := <-sigs:
		return fmt.Errorf("interrupted by %v while building", s)
	case <-time.After(o.BuildTimeout):
		return fmt.Errorf("building took longer than %v", o.BuildTimeout)
	}

	rep, err := verify(o, p, len(p.Jobs))
	if err != nil {
		return err
	}
	rep.BuildSeconds = time.Since(start).Seconds()
	rep.Globals = raised
	rep.HoldUntil = time.Now().Add(o.Hold).UTC().Truncate(time.Second)
	b, _ := json.Marshal(rep)
	if o.ReadyFile != "" {
		tmp := o.ReadyFile + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, o.ReadyFile); err != nil {
			return err
		}
		c.add(func() { os.Remove(o.ReadyFile) })
	}
	fmt.Printf("%s\n", b)
	logf("%d sockets held in netns %s (built in %.1fs); holding for %v", rep.Counts["total"], o.NS, rep.BuildSeconds, o.Hold)

	select {
	case <-time.After(o.Hold):
		logf("hold time over, cleaning up")
	case s := <-sigs:
		logf("%v received, cleaning up", s)
	case err := <-ws.died:
		return fmt.Errorf("a worker stopped while holding: %w", err)
	}
	return nil
}

// verify counts the namespace's sockets with one netlink dump and compares
// them with the plan.
func verify(o options, p plan, nworkers int) (ready.Report, error) {
	nl, err := nlcount.OpenInNetns("/run/netns/" + o.NS)
	if err != nil {
		return ready.Report{}, err
	}
	defer nl.Close()
	counts, err := nl.Count(nlcount.Filter{})
	if err != nil {
		return ready.Report{}, err
	}
	busy := uint16(portEstablish)
	onPort, err := nl.Count(nlcount.Filter{LocalPort: busy})
	if err != nil {
		return ready.Report{}, err
	}
	rep := ready.Report{NetNS: o.NS, PID: os.Getpid(), N: p.N, Workers: nworkers, Expected: p.Expected,
		Counts: map[string]uint64{"total": counts.Total()}, BusyPort: busy, BusyPortSockets: onPort.Total()}
	for st, name := range stateNames {
		if name != "" {
			rep.Counts[name] = counts[st]
		}
	}
	for name, want := range p.Expected {
		got := int(rep.Counts[name])
		if d := got - want; d > want/100+5 || -d > want/100+5 {
			rep.Mismatch = append(rep.Mismatch, fmt.Sprintf("%s: expected %d, counted %d", name, want, got))
		}
	}
	sort.Strings(rep.Mismatch)
	for _, j := range p.Jobs {
		rep.ListenPorts = append(rep.ListenPorts, j.twPort(), j.synPort(), j.estPort())
		rep.ListenPorts = append(rep.ListenPorts, j.ExtraListen...)
	}
	sort.Slice(rep.ListenPorts, func(a, b int) bool { return rep.ListenPorts[a] < rep.ListenPorts[b] })
	for _, m := range rep.Mismatch {
		logf("warning: %s", m)
	}
	return rep, nil
}

// raiseGlobals raises host-wide sysctls to at least the wanted values and
// registers their restoration. A value someone else changed meanwhile is left
// alone.
func raiseGlobals(c *cleanups, want map[string]int) (map[string]string, error) {
	raised := map[string]string{}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		b, err := os.ReadFile(path)
		if err != nil {
			return raised, fmt.Errorf("read %s: %w", k, err)
		}
		orig := strings.TrimSpace(string(b))
		cur, err := strconv.Atoi(orig)
		if err != nil {
			return raised, fmt.Errorf("read %s: %w", k, err)
		}
		if cur >= want[k] {
			continue
		}
		val := strconv.Itoa(want[k])
		if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
			return raised, fmt.Errorf("raise %s: %w", k, err)
		}
		raised[k] = orig + " -> " + val
		c.add(func() {
			b, err := os.ReadFile(path)
			if err != nil || strings.TrimSpace(string(b)) != val {
				logf("cleanup: %s changed by someone else, left as is", k)
				return
			}
			if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
				logf("cleanup: restore %s: %v", k, err)
			}
		})
	}
	return raised, nil
}

// workers are the processes holding the descriptors.
type workers struct {
	ns    string
	mu    sync.Mutex
	procs []*workerProc
	died  chan error
	once  sync.Once
}

type workerProc struct {
	id    int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

func (ws *workers) build(jobs []job, parallel int) error {
	ws.once.Do(func() { ws.died = make(chan error, len(jobs)) })
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	sem := make(chan struct{}, max(1, parallel))
	errs := make(chan error, len(jobs))
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
	)
	for _, j := range jobs {
		sem <- struct{}{}
		if failed.Load() {
			break
		}
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			defer func() { <-sem }()
			err := ws.start(exe, j)
			if err != nil {
				failed.Store(true)
			}
			errs <- err
		}(j)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (ws *workers) start(exe string, j job) error {
	spec, _ := json.Marshal(j)
	cmd := exec.Command("ip", "netns", "exec", ws.ns, exe, "-worker", string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker %d: %w", j.ID, err)
	}
	wp := &workerProc{id: j.ID, cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	ws.mu.Lock()
	ws.procs = append(ws.procs, wp)
	ws.mu.Unlock()
	line, rerr := bufio.NewReader(stdout).ReadBytes('\n')
	go func() {
		err := cmd.Wait()
		wp.done <- err
		ws.died <- fmt.Errorf("worker %d: %v", j.ID, err)
	}()
	if rerr != nil {
		return fmt.Errorf("worker %d gave no report: %w", j.ID, rerr)
	}
	var rep workerReport
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("worker %d: bad report %q: %w", j.ID, line, err)
	}
	if rep.Error != "" {
		return fmt.Errorf("worker %d: %s", j.ID, rep.Error)
	}
	return nil
}

// stop closes every worker's stdin, waits a little, then kills the rest.
func (ws *workers) stop() {
	ws.mu.Lock()
	procs := ws.procs
	ws.procs = nil
	ws.mu.Unlock()
	for _, p := range procs {
		p.stdin.Close()
	}
	deadline := time.After(10 * time.Second)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}
