package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	kitagent "zabbix-agent2-plugin-tcpstatus/testkit/agent"
)

// The kernel-limit trigger cycles. Each trigger goes to PROBLEM from what
// the kernel (or a fixture procfs, below) reports, stays in PROBLEM on
// samples under its threshold where it has a recovery window (hysteresis),
// and goes back to OK through its recovery expression.
//
// Limits the kernel keeps per network namespace are lowered in the run's
// own namespace, and real sockets on its loopback drive them:
//
//   - net.ipv4.tcp_max_tw_buckets is lowered to twBuckets before the agents
//     start, and a bounded loop of loopback connections, closed by the
//     client, refills the time-wait entries (sockstat "tw", per namespace)
//     whenever some expire: they stay at the limit from the first sample on, so the 5-minute minimum of their share is
//     100 %, and the kernel counts the rest as TCPTimeWaitOverflow. "TIME_WAIT
//     buckets almost exhausted", "running low" (once the critical one is
//     resolved: it depends on it) and "TIME_WAIT bucket table overflows".
//   - net.ipv4.tcp_syncookies (per namespace) set to 0 raises "SYN cookies
//     are disabled". Half-open connections then fill a listener's SYN
//     queue (backlog synBacklog): clients bound with IP_TRANSPARENT to
//     synClient, an address of no interface, whose SYN-ACKs the route
//     sends into a tun device nobody reads, so the handshakes never
//     complete. Further SYNs are dropped (TCPReqQFullDrop): "SYN queue
//     overflows drop connections". With cookies on again the same SYNs
//     are answered with cookies (SyncookiesSent): "SYN cookies are being
//     sent".
//
// tcp_max_orphans and tcp_mem are global: a network namespace other than
// the initial one has no file for them (nsabsent.go), the orphan count and
// TCP memory in sockstat are the whole machine's, and TCPMemoryPressures
// and TCPAbortOnMemory count only when the machine-wide memory or orphan
// limits are crossed. The run does not change the host's values, so these
// triggers are proven on the real server with one more agent 2 whose
// plugin reads a fixture procfs (Plugins.TCPStatus.ProcRoot, a temporary
// directory of the run): sockstat, netstat, snmp and the sysctl files,
// written first over the limits and then under them. "Orphaned sockets near
// the kernel's kill point", "Orphaned sockets running high", "Memory near
// tcp_mem's limit", "Memory pressure" and "Connections reset for lack of
// memory".
//
// The windows of the triggers are fixed (5m, 15m); their thresholds are
// macros. Once a condition is gone, the recovery expression is met by
// raising the threshold macro above the window's maximum, as the other
// cycles do (and, for "Memory pressure", whose thresholds are tcp_mem's
// own values, by raising tcp_mem in the fixture, as an administrator
// would).

const (
	twBuckets     = 20
	twChurnEvery  = 20 * time.Millisecond // how often the churn counts the entries
	twChurnMax    = 15 * time.Minute
	twChurnConns  = 20000
	twFirstPort   = 20000 // the churn's client ports: twFirstPort and the next twPorts-1
	twPorts       = 1000
	synBacklog    = 2
	synDev        = "tcpstat-syn0"
	synServer     = "10.99.1.1" // on lo
	synClientNet  = "10.99.0.0/24"
	synClient     = "10.99.0.2"
	synDrops      = 20  // SYNs while the queue is full and cookies are off
	synCookies    = 130 // SYNs answered with cookies
	sysctlDir     = "/proc/sys/net/ipv4/"
	fixtureHost   = "tcpstatus-e2e-fixture"
	fixtureBasic  = "testdata/kernel/basic/proc"
	orphanMax     = 1000
	orphanOver    = 500 // 50 %: over 45 and 20
	orphanUnder   = 10
	memLow        = 1000
	memPressure   = 2000
	memHigh       = 3000
	memOver       = 2900 // 96.7 % of the high value, over the pressure value
	memUnder      = 100
	pressuresMore = 3
	abortsMore    = 20

	twCrit       = "TCP: TIME_WAIT buckets almost exhausted"
	twWarn       = "TCP: TIME_WAIT buckets running low"
	twOverflow   = "TCP: TIME_WAIT bucket table overflows"
	cookiesOff   = "TCP: SYN cookies are disabled"
	synDropped   = "TCP: SYN queue overflows drop connections (SYN cookies off)"
	cookiesSent  = "TCP: SYN cookies are being sent"
	orphCrit     = "TCP: Orphaned sockets near the kernel's kill point"
	orphWarn     = "TCP: Orphaned sockets running high"
	memMax       = "TCP: Memory near tcp_mem's limit"
	memPressured = "TCP: Memory pressure"
	memAborts    = "TCP: Connections reset for lack of memory"
)

// limits is what the kernel-limit cycles set up before the agents start.
type limits struct {
	twOld, cookiesOld string // sysctl values to restore
	churnL            net.Listener
	churnStop         chan struct{}
	churnDone         chan struct{}
	stopChurn         sync.Once
	fixture           *agent
	fixtureDir        string
	netSetup          bool
	nextPort          int // the churn's
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlDir + name)
	return strings.Join(strings.Fields(string(b)), " "), err
}

func writeSysctl(name, value string) error { return os.WriteFile(sysctlDir+name, []byte(value), 0o644) }

// startLimits lowers tcp_max_tw_buckets in the run's namespace, starts the
// TIME_WAIT churn, writes the fixture procfs and starts its agent 2.
func startLimits(ps *procs, l layout, work, plugin string, zbx account) (*limits, error) {
	lm := &limits{churnStop: make(chan struct{}), churnDone: make(chan struct{})}
	var err error
	if lm.twOld, err = readSysctl("tcp_max_tw_buckets"); err != nil {
		return nil, err
	}
	if lm.cookiesOld, err = readSysctl("tcp_syncookies"); err != nil {
		return nil, err
	}
	if err := writeSysctl("tcp_max_tw_buckets", strconv.Itoa(twBuckets)); err != nil {
		return nil, err
	}
	if lm.churnL, err = listenCfg.Listen(context.Background(), "tcp4", "127.0.0.1:0"); err != nil {
		lm.stop()
		return nil, err
	}
	go lm.churn()
	lm.fixtureDir = filepath.Join(work, "limits-procfs")
	if err := writeFixture(lm.fixtureDir, orphanOver, memOver, [3]int{memLow, memPressure, memHigh}, 0); err != nil {
		lm.stop()
		return nil, err
	}
	lm.fixture = &agent{kind: "agent2", name: "agent2-fixture", hostname: fixtureHost}
	if err := lm.fixture.start(ps, work, zbx, kitagent.Spec{
		Name:    "zabbix_agent2 " + l.version + " (fixture procfs)",
		Bin:     l.agent2,
		Version: kitagent.Version(l.version),
		Conf:    append(activeLines("agent2", agentOpts{}), kitagent.PluginConf(plugin), "Plugins.TCPStatus.ProcRoot="+lm.fixtureDir),
	}); err != nil {
		lm.stop()
		return nil, err
	}
	logf("Zabbix %s: tcp_max_tw_buckets %s → %d in the run's namespace, loopback closes keep its time-wait entries at the limit; agent 2 on port %d reads the fixture procfs %s",
		l.version, lm.twOld, twBuckets, lm.fixture.port, lm.fixtureDir)
	return lm, nil
}

// churn keeps the namespace's time-wait entries at the limit: every
// twChurnEvery it reads their count (sockstat "tw") and closes that many
// loopback connections, client first (the client's end waits in
// TIME_WAIT), as are missing, plus two that overflow. A fixed rate would
// not do: entries made in a burst (the run's own API calls) expire
// together, and the table would stay short until the rate refilled it. At
// most twChurnConns connections, for twChurnMax, until stopped.
func (lm *limits) churn() {
	defer close(lm.churnDone)
	tick := time.NewTicker(twChurnEvery)
	defer tick.Stop()
	deadline := time.Now().Add(twChurnMax)
	for n := 0; n < twChurnConns && time.Now().Before(deadline); {
		select {
		case <-lm.churnStop:
			return
		case <-tick.C:
		}
		tw, err := sockstatTW()
		if err != nil || tw >= twBuckets {
			continue
		}
		for i := tw; i < twBuckets+2; i++ {
			lm.closeOne()
			n++
		}
	}
}

// closeOne makes one connection to the churn listener and closes it, the
// client first; the server's end, in CLOSE_WAIT meanwhile, is closed
// before the next one, so that the churn never holds more than one
// CLOSE_WAIT socket (the scenario counts them).
//
// The client's port is its own, taken in turn from twPorts (below the
// ephemeral range), not picked by connect(): the ephemeral cycle narrows
// the range and holds most of it meanwhile.
func (lm *limits) closeOne() {
	lm.nextPort = (lm.nextPort + 1) % twPorts
	d := dialer
	d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: twFirstPort + lm.nextPort}
	c, err := d.Dial("tcp4", lm.churnL.Addr().String())
	if err != nil {
		return
	}
	srv, err := lm.churnL.Accept()
	c.Close()
	if err != nil {
		return
	}
	_ = srv.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, srv)
	srv.Close()
}

// sockstatTW reads the namespace's time-wait entries (sockstat "tw").
func sockstatTW() (int, error) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i := 1; len(f) > 0 && f[0] == "TCP:" && i+1 < len(f); i += 2 {
			if f[i] == "tw" {
				return strconv.Atoi(f[i+1])
			}
		}
	}
	return 0, fmt.Errorf("no TCP tw in /proc/net/sockstat")
}

// endChurn stops the churn and gives the namespace its time-wait limit
// back.
func (lm *limits) endChurn() error {
	lm.stopChurn.Do(func() {
		close(lm.churnStop)
		<-lm.churnDone
		if lm.churnL != nil {
			lm.churnL.Close()
		}
	})
	return writeSysctl("tcp_max_tw_buckets", lm.twOld)
}

// stop undoes what the cycles changed in the run's namespace (the fixture
// agent stops with the version's other processes).
func (lm *limits) stop() {
	if lm.churnL != nil {
		if err := lm.endChurn(); err != nil {
			logf("restore tcp_max_tw_buckets: %v", err)
		}
	} else if lm.twOld != "" {
		_ = writeSysctl("tcp_max_tw_buckets", lm.twOld)
	}
	if lm.cookiesOld != "" {
		if err := writeSysctl("tcp_syncookies", lm.cookiesOld); err != nil {
			logf("restore tcp_syncookies: %v", err)
		}
	}
	if lm.netSetup {
		_ = exec.Command("ip", "link", "del", synDev).Run()
		_ = exec.Command("ip", "addr", "del", synServer+"/32", "dev", "lo").Run()
	}
}

// cycles are the trigger cycles that run beside the scenario's own.
type cycles struct{ errs chan error }

// startCycles starts the Not listening cycles (restart.go) and the
// kernel-limit cycles on the hosts with triggers; the fixture host is
// created on the template of the first.
func startCycles(ctx context.Context, z *zabbix, targets []*target, s *testSockets, lm *limits) *cycles {
	fns := []func() error{
		func() error { return goneCycle(ctx, z, targets, s) },
		func() error { return lm.twCycle(ctx, z, cloneTargets(targets)) },
		func() error { return lm.synCycle(ctx, z, cloneTargets(targets)) },
		func() error { return lm.fixtureCycle(ctx, z, targets[0], s) },
	}
	c := &cycles{errs: make(chan error, len(fns))}
	for _, fn := range fns {
		go func() { c.errs <- fn() }()
	}
	return c
}

// wait waits for every cycle and returns their errors.
func (c *cycles) wait() error {
	var errs []error
	for i := 0; i < cap(c.errs); i++ {
		if err := <-c.errs; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// twCycle: the time-wait triggers, PROBLEM since the first samples.
func (lm *limits) twCycle(ctx context.Context, z *zabbix, tgs []*target) error {
	v := z.l.version
	t := time.Now()
	// The share triggers take the minimum of 5 minutes: one sample taken
	// while the churn refilled the table (the run's own connections' entries
	// expire in bursts) would hold them off for 5 minutes at their default
	// thresholds (95 %, 80 %). Under half of the 20 entries is far from
	// anything the churn leaves.
	if err := setMacrosAll(ctx, z, tgs, map[string]string{"{$TCP.TIME_WAIT.PUSED.MAX.CRIT}": "45", "{$TCP.TIME_WAIT.PUSED.MAX.WARN}": "40"}); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitTriggers(ctx, z, tg, map[string]string{twCrit: "1", twOverflow: "1"}); err != nil {
			return err
		}
		if err := waitLimitValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.limit[tcp_max_tw_buckets]": func(x float64) bool { return x == twBuckets },
			"tcp.sockstat[tcp_tw]":          func(x float64) bool { return x >= 0.95*twBuckets && x <= twBuckets },
			"tcp.time_wait.pused":           func(x float64) bool { return x >= 95 },
		}); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %q and %q in PROBLEM with tcp_max_tw_buckets %d and its entries at the limit (%.0fs into the trigger cycles)", v, twCrit, twOverflow, twBuckets, time.Since(t).Seconds())
	// The critical one resolved (threshold over the window's maximum),
	// the warning one, which depends on it, fires on the same samples.
	t = time.Now()
	if err := setMacrosAll(ctx, z, tgs, map[string]string{"{$TCP.TIME_WAIT.PUSED.MAX.CRIT}": "1000"}); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitTriggers(ctx, z, tg, map[string]string{twCrit: "0", twWarn: "1"}); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %q back to OK, %q in PROBLEM, in %.0fs", v, twCrit, twWarn, time.Since(t).Seconds())
	// The churn ends and the limit is back: the share drops at once.
	t = time.Now()
	if err := lm.endChurn(); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.time_wait.pused":                           func(x float64) bool { return x < 75 },
			"tcp.netstat.count[TcpExt.TCPTimeWaitOverflow]": func(x float64) bool { return x == 0 },
		}); err != nil {
			return err
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{twWarn: "1", twOverflow: "1"}, false); err != nil {
			return fmt.Errorf("a sample below the threshold cleared a trigger with a recovery window: %w", err)
		}
	}
	if err := setMacrosAll(ctx, z, tgs, map[string]string{"{$TCP.TIME_WAIT.PUSED.MAX.WARN}": "1000", "{$TCP.TW_OVERFLOW.MAX.WARN}": "100000"}); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitTriggers(ctx, z, tg, map[string]string{twWarn: "0", twOverflow: "0"}); err != nil {
			return err
		}
	}
	logf("Zabbix %s: with the churn over and tcp_max_tw_buckets back to %s, %q and %q stayed in PROBLEM on low samples and went back to OK through their recovery expressions, in %.0fs",
		v, lm.twOld, twWarn, twOverflow, time.Since(t).Seconds())
	return nil
}

// synCycle: SYN cookies off, SYN drops, SYN cookies sent.
func (lm *limits) synCycle(ctx context.Context, z *zabbix, tgs []*target) error {
	v := z.l.version
	for _, args := range [][]string{
		{"tuntap", "add", "dev", synDev, "mode", "tun"},
		{"link", "set", synDev, "up"},
		{"route", "add", synClientNet, "dev", synDev},
		{"addr", "add", synServer + "/32", "dev", "lo"},
	} {
		lm.netSetup = true
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	lfd, port, err := synListener()
	if err != nil {
		return err
	}
	defer syscall.Close(lfd)

	t := time.Now()
	if err := writeSysctl("tcp_syncookies", "0"); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitTriggers(ctx, z, tg, map[string]string{cookiesOff: "1"}); err != nil {
			return err
		}
	}
	logf("Zabbix %s: tcp_syncookies 0: %q in PROBLEM in %.0fs", v, cookiesOff, time.Since(t).Seconds())
	t = time.Now()
	fds, err := synFlood(port, synDrops)
	if err != nil {
		return err
	}
	for _, tg := range tgs {
		err = waitLimitTriggers(ctx, z, tg, map[string]string{synDropped: "1"})
		if err == nil {
			err = waitLimitValues(ctx, z, tg, map[string]func(float64) bool{"tcp.limit[tcp_syncookies]": func(x float64) bool { return x == 0 }})
		}
		if err != nil {
			closeFDs(fds)
			return err
		}
	}
	closeFDs(fds)
	logf("Zabbix %s: %d SYNs to a full SYN queue (backlog %d) with cookies off: %q in PROBLEM in %.0fs", v, synDrops, synBacklog, synDropped, time.Since(t).Seconds())
	t = time.Now()
	if err := writeSysctl("tcp_syncookies", "1"); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitTriggers(ctx, z, tg, map[string]string{cookiesOff: "0", synDropped: "0"}); err != nil {
			return err
		}
	}
	logf("Zabbix %s: tcp_syncookies 1: %q and %q back to OK in %.0fs", v, cookiesOff, synDropped, time.Since(t).Seconds())
	t = time.Now()
	if fds, err = synFlood(port, synCookies); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitTriggers(ctx, z, tg, map[string]string{cookiesSent: "1"}); err != nil {
			closeFDs(fds)
			return err
		}
	}
	closeFDs(fds)
	logf("Zabbix %s: %d SYNs to a full SYN queue with cookies on: %q in PROBLEM in %.0fs", v, synCookies, cookiesSent, time.Since(t).Seconds())
	t = time.Now()
	for _, tg := range tgs {
		if err := waitLimitValues(ctx, z, tg, map[string]func(float64) bool{"tcp.netstat.count[TcpExt.SyncookiesSent]": func(x float64) bool { return x == 0 }}); err != nil {
			return err
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{cookiesSent: "1"}, false); err != nil {
			return fmt.Errorf("a check without cookies cleared a trigger with a recovery window: %w", err)
		}
	}
	if err := setMacrosAll(ctx, z, tgs, map[string]string{"{$TCP.SYNCOOKIES.MAX.WARN}": "100000"}); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitLimitTriggers(ctx, z, tg, map[string]string{cookiesSent: "0"}); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %q stayed in PROBLEM on a check without cookies and went back to OK through its recovery expression in %.0fs", v, cookiesSent, time.Since(t).Seconds())
	return nil
}

// synListener listens on synServer with a SYN queue of synBacklog.
func synListener() (int, int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	addr := [4]byte{}
	copy(addr[:], net.ParseIP(synServer).To4())
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: addr}); err != nil {
		syscall.Close(fd)
		return -1, 0, err
	}
	if err := syscall.Listen(fd, synBacklog); err != nil {
		syscall.Close(fd)
		return -1, 0, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return -1, 0, err
	}
	return fd, sa.(*syscall.SockaddrInet4).Port, nil
}

// synFlood starts n connections to the SYN listener from synClient, an
// address of no interface (IP_TRANSPARENT allows the bind): their SYNs
// reach the listener over lo, its SYN-ACKs go into the tun device, and the
// handshakes stay half-open.
func synFlood(port, n int) ([]int, error) {
	var fds []int
	src, dst := [4]byte{}, [4]byte{}
	copy(src[:], net.ParseIP(synClient).To4())
	copy(dst[:], net.ParseIP(synServer).To4())
	for i := 0; i < n; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			closeFDs(fds)
			return nil, err
		}
		fds = append(fds, fd)
		if err := syscall.SetsockoptInt(fd, syscall.SOL_IP, syscall.IP_TRANSPARENT, 1); err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("IP_TRANSPARENT: %w", err)
		}
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: src}); err != nil {
			closeFDs(fds)
			return nil, err
		}
		if err := syscall.Connect(fd, &syscall.SockaddrInet4{Addr: dst, Port: port}); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			closeFDs(fds)
			return nil, err
		}
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// fixtureCycle: the global limits, on the host of the fixture agent.
func (lm *limits) fixtureCycle(ctx context.Context, z *zabbix, like *target, s *testSockets) error {
	v := z.l.version
	t := time.Now()
	// absentLogged: nsabsent.go judges by the run's own /proc/sys, which
	// the fixture agent does not read.
	tg := &target{agent: lm.fixture, hostname: fixtureHost, template: like.template, spec: like.spec, absentLogged: true}
	if err := createHost(ctx, z, tg, s, tg.template); err != nil {
		return err
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	// A first sample of the counters, then the events: their counts per
	// check are differences.
	if err := waitLimitValues(ctx, z, tg, map[string]func(float64) bool{
		"tcp.sockstat[tcp_orphan]":   func(x float64) bool { return x == orphanOver },
		"tcp.limit[tcp_max_orphans]": func(x float64) bool { return x == orphanMax },
	}); err != nil {
		return err
	}
	if err := writeFixture(lm.fixtureDir, orphanOver, memOver, [3]int{memLow, memPressure, memHigh}, 1); err != nil {
		return err
	}
	// Every input of the triggers first: a trigger evaluated before its
	// calculated item has a value is unknown until the next value.
	if err := waitLimitValues(ctx, z, tg, map[string]func(float64) bool{
		"tcp.orphan.pused": func(x float64) bool { return x == 100*orphanOver/orphanMax },
		"tcp.mem.pused":    func(x float64) bool { return math.Abs(x-100.0*memOver/memHigh) < 0.01 },
		"tcp.netstat.count[TcpExt.TCPAbortOnMemory]":   func(x float64) bool { return x == abortsMore },
		"tcp.netstat.count[TcpExt.TCPMemoryPressures]": func(x float64) bool { return x == pressuresMore },
	}); err != nil {
		return err
	}
	all := map[string]string{orphCrit: "1", memMax: "1", memPressured: "1", memAborts: "1"}
	if err := waitLimitTriggers(ctx, z, tg, all); err != nil {
		return err
	}
	logf("Zabbix %s: %s: orphans %d of tcp_max_orphans %d, TCP memory %d pages of tcp_mem %d %d %d, %d entries into memory pressure and %d resets for lack of memory: %q, %q, %q and %q in PROBLEM in %.0fs (host created, first values included)",
		v, fixtureHost, orphanOver, orphanMax, memOver, memLow, memPressure, memHigh, pressuresMore, abortsMore, orphCrit, memMax, memPressured, memAborts, time.Since(t).Seconds())
	t = time.Now()
	if err := setMacrosAll(ctx, z, []*target{tg}, map[string]string{"{$TCP.ORPHAN.PUSED.MAX.CRIT}": "1000"}); err != nil {
		return err
	}
	if err := waitLimitTriggers(ctx, z, tg, map[string]string{orphCrit: "0", orphWarn: "1"}); err != nil {
		return err
	}
	logf("Zabbix %s: %s: %q back to OK, %q in PROBLEM, in %.0fs", v, fixtureHost, orphCrit, orphWarn, time.Since(t).Seconds())
	// Under the limits: samples below the thresholds leave the problems.
	t = time.Now()
	if err := writeFixture(lm.fixtureDir, orphanUnder, memUnder, [3]int{memLow, memPressure, memHigh}, 1); err != nil {
		return err
	}
	if err := waitLimitValues(ctx, z, tg, map[string]func(float64) bool{
		"tcp.orphan.pused": func(x float64) bool { return x == 100*orphanUnder/orphanMax },
		"tcp.mem.pused":    func(x float64) bool { return math.Abs(x-100.0*memUnder/memHigh) < 0.01 },
		"tcp.netstat.count[TcpExt.TCPAbortOnMemory]":   func(x float64) bool { return x == 0 },
		"tcp.netstat.count[TcpExt.TCPMemoryPressures]": func(x float64) bool { return x == 0 },
	}); err != nil {
		return err
	}
	rest := map[string]string{orphWarn: "1", memMax: "1", memPressured: "1", memAborts: "1"}
	if err := waitTriggers(ctx, z, tg, rest, false); err != nil {
		return fmt.Errorf("a sample below the threshold cleared a trigger with a recovery window: %w", err)
	}
	// Recovery: thresholds over the windows' maxima; tcp_mem raised above
	// the memory the window saw.
	if err := setMacrosAll(ctx, z, []*target{tg}, map[string]string{
		"{$TCP.ORPHAN.PUSED.MAX.WARN}":    "1000",
		"{$TCP.MEM.PUSED.MAX.CRIT}":       "1000",
		"{$TCP.MEM.PRESSURES.MAX.WARN}":   "100000",
		"{$TCP.ABORT_ON_MEMORY.MAX.WARN}": "100000",
	}); err != nil {
		return err
	}
	if err := writeFixture(lm.fixtureDir, orphanUnder, memUnder, [3]int{2 * memHigh, 3 * memHigh, 4 * memHigh}, 1); err != nil {
		return err
	}
	if err := waitLimitTriggers(ctx, z, tg, map[string]string{orphWarn: "0", memMax: "0", memPressured: "0", memAborts: "0"}); err != nil {
		return err
	}
	logf("Zabbix %s: %s: under the limits %q, %q, %q and %q stayed in PROBLEM and went back to OK through their recovery expressions in %.0fs",
		v, fixtureHost, orphWarn, memMax, memPressured, memAborts, time.Since(t).Seconds())
	return nil
}

// writeFixture writes the fixture procfs under dir: the captured kernel
// files of testdata/kernel/basic with the orphan count, TCP memory,
// tcp_max_orphans and tcp_mem given, and TCPMemoryPressures and
// TCPAbortOnMemory raised by step times pressuresMore and abortsMore;
// empty socket tables. Each file is replaced whole (rename), so the agent
// never reads half of one.
func writeFixture(dir string, orphans, mem int, tcpMem [3]int, step int) error {
	basic, err := repoFile(fixtureBasic)
	if err != nil {
		return err
	}
	files := map[string]string{
		"net/tcp":  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
		"net/tcp6": "  sl  local_address                         remote_address                        st tx_queue  rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
		"net/sockstat": fmt.Sprintf("sockets: used 40\nTCP: inuse 12 orphan %d tw 3 alloc 20 mem %d\nUDP: inuse 0 mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n",
			orphans, mem),
		"sys/net/ipv4/tcp_max_orphans": strconv.Itoa(orphanMax) + "\n",
		"sys/net/ipv4/tcp_mem":         fmt.Sprintf("%d\t%d\t%d\n", tcpMem[0], tcpMem[1], tcpMem[2]),
	}
	for _, f := range []string{"net/sockstat6", "net/snmp"} {
		b, err := os.ReadFile(filepath.Join(basic, f))
		if err != nil {
			return err
		}
		files[f] = string(b)
	}
	netstat, err := os.ReadFile(filepath.Join(basic, "net/netstat"))
	if err != nil {
		return err
	}
	if files["net/netstat"], err = setCounters(string(netstat), "TcpExt", map[string]int{
		"TCPMemoryPressures": step * pressuresMore, "TCPAbortOnMemory": step * abortsMore,
	}); err != nil {
		return err
	}
	sysctls, err := filepath.Glob(filepath.Join(basic, "sys/net/*/*"))
	if err != nil {
		return err
	}
	for _, p := range sysctls {
		rel, _ := filepath.Rel(basic, p)
		if _, set := files[rel]; set {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = string(b)
	}
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p+".new", []byte(content), 0o644); err != nil {
			return err
		}
		if err := os.Rename(p+".new", p); err != nil {
			return err
		}
	}
	// Every directory readable by the agent's user.
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	})
}

// setCounters sets counters of one section of a /proc/net/netstat or snmp
// text (a names line and a values line per section).
func setCounters(text, section string, values map[string]int) (string, error) {
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != section+":" || len(vals) != len(names) {
			continue
		}
		for j, n := range names {
			if x, ok := values[n]; ok {
				vals[j] = strconv.Itoa(x)
				delete(values, n)
			}
		}
		lines[i+1] = strings.Join(vals, " ")
		if len(values) > 0 {
			return "", fmt.Errorf("no %s counters %v in the fixture", section, sortedKeys(values))
		}
		return strings.Join(lines, "\n"), nil
	}
	return "", fmt.Errorf("no %s section in the fixture", section)
}

// repoFile finds a file of the repository from the working directory (the
// run starts at its root).
func repoFile(rel string) (string, error) {
	if _, err := os.Stat(rel); err != nil {
		return "", fmt.Errorf("%w (the run starts at the repository's root)", err)
	}
	return filepath.Abs(rel)
}

// setMacrosAll sets host macros on each host and has the server load them.
func setMacrosAll(ctx context.Context, z *zabbix, tgs []*target, values map[string]string) error {
	for _, tg := range tgs {
		if err := setMacros(ctx, z, tg, values); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	return nil
}

// calcIDs lists the host's enabled calculated items.
func calcIDs(ctx context.Context, z *zabbix, tg *target) ([]string, error) {
	if err := refreshItems(ctx, z, tg); err != nil {
		return nil, err
	}
	var ids []string
	for _, i := range tg.items {
		if i.Type == "15" && i.Status == "0" {
			ids = append(ids, i.ItemID)
		}
	}
	return ids, nil
}

// waitLimitTriggers is waitTriggers with new values of the calculated
// items as well (the shares of the limits): checked every 5 s.
func waitLimitTriggers(ctx context.Context, z *zabbix, tg *target, want map[string]string) error {
	ids, err := calcIDs(ctx, z, tg)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = checkNow(ctx, z, ids)
			}
		}
	}()
	// A trigger evaluated while an input had no value yet is unknown until
	// its next evaluation: give it one.
	if err := waitFor(ctx, tg.hostname+" triggers evaluated", 30*time.Second, time.Second, func() (bool, error) {
		for name := range want {
			tr, err := triggerNamed(ctx, z, tg, name)
			if err != nil || tr.State != "0" {
				return false, err
			}
		}
		return true, nil
	}); err != nil {
		return err
	}
	return waitTriggers(ctx, z, tg, want, true)
}

// waitLimitValues checks the host's agent and calculated items every 4 s
// until each named item's last value satisfies its test.
func waitLimitValues(ctx context.Context, z *zabbix, tg *target, want map[string]func(float64) bool) error {
	if err := refreshItems(ctx, z, tg); err != nil {
		return err
	}
	var ids []string
	for _, i := range tg.items {
		if i.Status == "0" && (i.Type == "15" || (i.pollable() && i.Type == "0")) {
			ids = append(ids, i.ItemID)
		}
	}
	lastCheck := time.Time{}
	var last error
	err := waitFor(ctx, tg.hostname+" item values", 90*time.Second, time.Second, func() (bool, error) {
		if time.Since(lastCheck) > 4*time.Second {
			if err := checkNow(ctx, z, ids); err != nil {
				return false, err
			}
			lastCheck = time.Now()
		}
		if err := refreshItems(ctx, z, tg); err != nil {
			return false, err
		}
		last = expectValues(tg, want)
		return last == nil, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w: %v", err, last)
	}
	return err
}
