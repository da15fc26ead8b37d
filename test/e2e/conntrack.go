package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The connection tracking cycle. The run's namespace gets an nftables
// ruleset that tracks the connections of one listener of the test and
// nothing else ("notrack" for every other packet, so the run's own server,
// agent and database traffic is never in the table); the test holds
// ctConns connections to that listener, one entry each, and the agents'
// nf_conntrack_count must be exactly that, as the namespace's file says.
//
// nf_conntrack_count is per network namespace, but nf_conntrack_max is one
// value for the whole kernel up to at least Linux 6.18: only the host's
// namespace may write it (the file is read-only in any other), and every
// namespace's count is held against it. The run does not lower the
// machine's limit under the host's own traffic, so it cannot fill the
// table up to the template's 80 % either (200 000 entries at the default
// 262 144). The trigger is driven through its threshold instead:
// {$NF.CONNTRACK.PUSED.MAX.WARN} is set to the percentage of ctConns/2
// entries, under what the held connections make, and the trigger must go
// to PROBLEM on the real count against the real limit. The connections
// then close and their entries are deleted (ctnetlink flush): the count
// falls to 0 and the trigger stays in PROBLEM (its recovery window of 15
// minutes still holds the high samples) until the threshold is restored to
// the template's default, under which the window's maximum lies: OK.
const (
	ctConns   = 200
	ctTable   = "tcpstatus_e2e_ct"
	ctTrigger = "TCP: Connection tracking table filling up"
	ctSysctl  = "/proc/sys/net/netfilter/"
	// ctWarnDefault is the template's {$NF.CONNTRACK.PUSED.MAX.WARN}.
	ctWarnDefault = "80"
	// ipctnlMsgCtDelete is IPCTNL_MSG_CT_DELETE of
	// linux/netfilter/nfnetlink_conntrack.h: without a tuple it deletes
	// every entry of the namespace (conntrack -F).
	ipctnlMsgCtDelete = 2
)

// ctHeld is the tracked listener and the connections to it.
type ctHeld struct {
	l     net.Listener
	conns []net.Conn
	max   float64 // nf_conntrack_max
}

// startConntrack loads the ruleset and opens the connections; it returns
// once the namespace's count is exactly ctConns.
func startConntrack(ctx context.Context, v string) (_ *ctHeld, err error) {
	h := &ctHeld{}
	if h.l, err = listenCfg.Listen(ctx, "tcp4", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	port := strconv.Itoa(h.l.Addr().(*net.TCPAddr).Port)
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	// raw (-300) comes before conntrack (-200) on output; a locally made
	// packet keeps its entry (or its untracked mark) through lo, so the
	// output hook decides for both directions.
	rules := "table inet " + ctTable + " {\n" +
		"  chain raw_out { type filter hook output priority raw; policy accept;\n" +
		"    tcp dport " + port + " accept; tcp sport " + port + " accept; notrack; }\n" +
		"  chain out { type filter hook output priority filter; policy accept;\n" +
		"    tcp dport " + port + " ct state new counter; }\n" +
		"}\n"
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nft ruleset with a ct rule: %v: %s", err, out)
	}
	if h.max, err = readSysctlFloat("nf_conntrack_max"); err != nil {
		return nil, fmt.Errorf("nf_conntrack_max with a ct rule loaded: %w", err)
	}
	// Writable or not in this namespace: say which.
	if f, err := os.OpenFile(ctSysctl+"nf_conntrack_max", os.O_WRONLY, 0); err == nil {
		f.Close()
		logf("Zabbix %s: nf_conntrack_max (%.0f) is writable in the run's namespace", v, h.max)
	} else {
		logf("Zabbix %s: nf_conntrack_max (%.0f) is the kernel's, read-only in the run's namespace (%v): only its threshold is moved", v, h.max, errors.Unwrap(err))
	}
	for range ctConns {
		c, err := dialer.DialContext(ctx, "tcp4", "127.0.0.1:"+port)
		if err != nil {
			return nil, err
		}
		h.conns = append(h.conns, c)
		s, err := h.l.Accept()
		if err != nil {
			return nil, err
		}
		h.conns = append(h.conns, s)
	}
	err = waitFor(ctx, "nf_conntrack_count of the held connections", 10*time.Second, 50*time.Millisecond, func() (bool, error) {
		n, err := readSysctlFloat("nf_conntrack_count")
		return n == ctConns, err
	})
	return h, err
}

// release resets the connections and deletes the namespace's entries.
func (h *ctHeld) release() error {
	h.l.Close()
	for _, c := range h.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	h.conns = nil
	return flushConntrack()
}

// close releases what is left and removes the ruleset.
func (h *ctHeld) close() {
	if h.l != nil {
		if err := h.release(); err != nil {
			logf("flush conntrack: %v", err)
		}
	}
	if out, err := exec.Command("nft", "delete", "table", "inet", ctTable).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
		logf("nft delete table: %v: %s", err, out)
	}
}

func readSysctlFloat(name string) (float64, error) {
	b, err := os.ReadFile(ctSysctl + name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
}

// flushConntrack deletes every connection tracking entry of the calling
// thread's network namespace (IPCTNL_MSG_CT_DELETE without a tuple) and
// waits for the kernel's acknowledgement.
func flushConntrack() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	msg := make([]byte, unix.NLMSG_HDRLEN+4) // nlmsghdr, nfgenmsg
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtDelete)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], 1) // sequence
	msg[16], msg[17] = unix.AF_UNSPEC, unix.NFNETLINK_V0
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("ctnetlink flush: %w", err)
	}
	if n < unix.NLMSG_HDRLEN+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("ctnetlink flush: unexpected answer of %d bytes", n)
	}
	if code := int32(binary.NativeEndian.Uint32(buf[unix.NLMSG_HDRLEN:])); code != 0 {
		return fmt.Errorf("ctnetlink flush: %w", unix.Errno(-code))
	}
	return nil
}

// ownersRun is ownersCycle running beside the scenario's first trigger
// cycle.
type ownersRun struct {
	released, done chan struct{}
	err            error
}

// startOwnersCycle runs ownersCycle in the background, on copies of the
// targets (each cycle refreshes its own view of the hosts' items).
func startOwnersCycle(ctx context.Context, z *zabbix, targets []*target, lk *leak) *ownersRun {
	r := &ownersRun{released: make(chan struct{}), done: make(chan struct{})}
	var copies []*target
	for _, tg := range targets {
		c := *tg
		copies = append(copies, &c)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(r.released) }) }
	go func() {
		defer close(r.done)
		defer release()
		r.err = ownersCycle(ctx, z, copies, lk, release)
	}()
	return r
}

// leakReleased returns once the leak's CLOSE_WAIT sockets are closed, or
// the cycle has ended.
func (r *ownersRun) leakReleased() { <-r.released }

// wait returns the cycle's result once it has ended.
func (r *ownersRun) wait() error {
	<-r.done
	return r.err
}

// ownersCycle drives the two triggers about who holds the sockets and
// which table fills up, sharing their waits: the leaking service's
// CLOSE_WAIT trigger (cgroupleak.go; its condition exists since before the
// agents started) and the connection tracking trigger. Both go to PROBLEM;
// once the leak is closed and the tracked connections are gone, samples
// under the thresholds leave them in PROBLEM (their recovery windows), and
// restoring the templates' default thresholds brings them back to OK.
//
// released is called once the leak is closed.
func ownersCycle(ctx context.Context, z *zabbix, targets []*target, lk *leak, released func()) error {
	v := z.l.version
	t := time.Now()
	for _, tg := range targets {
		if err := discoveredService(v, tg, lk.port); err != nil {
			return err
		}
	}
	ct, err := startConntrack(ctx, v)
	if err != nil {
		return err
	}
	defer ct.close()
	// The threshold: the percentage of half the held entries.
	warn := strconv.FormatFloat(100*ctConns/2/ct.max, 'f', 6, 64)
	pused := 100 * ctConns / ct.max
	for _, tg := range targets {
		if err := setMacros(ctx, z, tg, map[string]string{"{$NF.CONNTRACK.PUSED.MAX.WARN}": warn}); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	cw := "tcp.cgroup.state[\"" + leakCgroup() + "\",close_wait]"
	for _, tg := range targets {
		if err := waitItemValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.limit[nf_conntrack_count]": func(x float64) bool { return x == ctConns },
			"tcp.limit[nf_conntrack_max]":   func(x float64) bool { return x == ct.max },
			"tcp.conntrack.pused":           func(x float64) bool { return math.Abs(x-pused) < 1e-4 },
			cw:                              func(x float64) bool { return x == leakCloseWait },
		}); err != nil {
			return err
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{leakTrigger(): "1", ctTrigger: "1"}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %q (%d CLOSE_WAIT in %s, over %d) and %q (%d entries of %.0f, %.6f %% over %s %%) went to PROBLEM in %.0fs",
		v, leakTrigger(), leakCloseWait, leakCgroup(), leakWarn, ctTrigger, ctConns, ct.max, pused, warn, time.Since(t).Seconds())

	t = time.Now()
	if err := lk.release(); err != nil {
		return err
	}
	released()
	if err := ct.release(); err != nil {
		return err
	}
	if n, err := readSysctlFloat("nf_conntrack_count"); err != nil || n != 0 {
		return fmt.Errorf("nf_conntrack_count %v after the flush, %v", n, err)
	}
	for _, tg := range targets {
		if err := waitItemValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.limit[nf_conntrack_count]": func(x float64) bool { return x == 0 },
			"tcp.conntrack.pused":           func(x float64) bool { return x == 0 },
			cw:                              func(x float64) bool { return x == 0 },
		}); err != nil {
			return err
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{leakTrigger(): "1", ctTrigger: "1"}, false); err != nil {
			return fmt.Errorf("a sample below the threshold cleared a trigger with a recovery window: %w", err)
		}
		if err := setMacros(ctx, z, tg, map[string]string{
			"{$NF.CONNTRACK.PUSED.MAX.WARN}":                             ctWarnDefault,
			"{$TCP.CGROUP.CLOSE_WAIT.MAX.WARN:\"" + leakCgroup() + "\"}": "50",
		}); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	for _, tg := range targets {
		if err := waitTriggers(ctx, z, tg, map[string]string{leakTrigger(): "0", ctTrigger: "0"}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: after the leak closed and the tracked connections went, both stayed in PROBLEM on samples of 0, and went back to OK once the thresholds were the templates' defaults again, in %.0fs", v, time.Since(t).Seconds())
	return nil
}
