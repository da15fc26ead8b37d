package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The local-port trigger cycle: the run's namespace gets an ephemeral
// range of ephRange ports, the test holds ephHeld connections to one
// listener of its own (one destination), and the template's "running low"
// trigger (80 %) must go to PROBLEM before the range is exhausted, then,
// with up to ephCritHeld connections, "almost exhausted" (its threshold
// set to ephCritPct for the run's hosts); once the
// connections are closed (reset, so that no TIME_WAIT keeps their ports)
// both must stay in PROBLEM over their recovery window (hysteresis) and go
// back to OK when the thresholds are raised above the window's maximum, as
// the other cycles do.
const (
	ephFirst, ephLast = 40000, 40999
	ephHeld           = 850 // 85 % of the usable ports: over 80, under 95
	ephCritHeld       = 910 // then more, over ephCritPct % of them, leaving ports to the run's other connections
	ephCritPct        = 88  // the critical threshold for the cycle (default 95)
	ephWarn           = "TCP: Local ports toward one destination running low"
	ephCrit           = "TCP: Local ports toward one destination almost exhausted"
	portRangeSysctl   = "/proc/sys/net/ipv4/ip_local_port_range"
)

func ephemeralCycle(ctx context.Context, z *zabbix, targets []*target) (err error) {
	v := z.l.version
	t := time.Now()
	// The listener first, so that its port comes from the wide range and
	// every port of the narrow one stays usable.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	old, err := os.ReadFile(portRangeSysctl)
	if err != nil {
		return err
	}
	if err := os.WriteFile(portRangeSysctl, []byte(fmt.Sprintf("%d %d", ephFirst, ephLast)), 0o644); err != nil {
		return err
	}
	defer func() {
		if werr := os.WriteFile(portRangeSysctl, []byte(strings.Join(strings.Fields(string(old)), " ")), 0o644); werr != nil && err == nil {
			err = werr
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	var conns []*net.TCPConn
	release := func() {
		for _, c := range conns {
			c.SetLinger(0) // RST: no TIME_WAIT holds the port
			c.Close()
		}
		conns = nil
	}
	defer release()
	d := net.Dialer{Timeout: 5 * time.Second}
	// hold opens connections until n are held; running out of local ports
	// is an error before enough of them (least) are held.
	hold := func(n, least int) error {
		for len(conns) < n {
			c, err := d.DialContext(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				if errors.Is(err, syscall.EADDRNOTAVAIL) {
					if len(conns) >= least {
						return nil
					}
					return fmt.Errorf("local ports exhausted after %d connections, before the %d the cycle holds: %w", len(conns), least, err)
				}
				return err
			}
			conns = append(conns, c.(*net.TCPConn))
		}
		return nil
	}
	if err := hold(ephHeld, ephHeld); err != nil {
		return err
	}
	logf("Zabbix %s: %d connections to 127.0.0.1:%d hold %d of the %d local ports %d-%d", v, ephHeld, port, ephHeld, ephLast-ephFirst+1, ephFirst, ephLast)
	busy := strconv.Itoa(port)
	for _, tg := range targets {
		if err := waitItemValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.ephemeral.pused": func(x float64) bool { return x >= 80 && x < 95 },
			// Listening ports are not usable, and the run's other
			// listeners (agents, servers, the test's ports) took theirs
			// from the wide range, so a few may lie in the narrow one.
			"tcp.ephemeral.usable": func(x float64) bool { return x > ephHeld && x <= ephLast-ephFirst+1 },
		}); err != nil {
			return err
		}
		if b := tg.items["tcp.ephemeral.busiest"].LastValue; !strings.Contains(b, "127.0.0.1:"+busy+": ") {
			return fmt.Errorf("%s: busiest destination %q, want 127.0.0.1:%s", tg.hostname, b, busy)
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{ephWarn: "1", ephCrit: "0"}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %q went to PROBLEM in %.0fs", v, ephWarn, time.Since(t).Seconds())

	// The critical level, at {$TCP.EPHEMERAL.PUSED.MAX.CRIT} = ephCritPct
	// for these hosts: more connections, up to ephCritHeld or until the
	// range runs out (the run's other connections, meanwhile, take local
	// ports from the same narrowed range, TIME_WAIT included: about 50 at a
	// time were seen; running the range out would fail the server's own
	// checks, so the cycle leaves some).
	t = time.Now()
	for _, tg := range targets {
		if err := setMacros(ctx, z, tg, map[string]string{"{$TCP.EPHEMERAL.PUSED.MAX.CRIT}": strconv.Itoa(ephCritPct)}); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	if err := hold(ephCritHeld, ephCritPct*(ephLast-ephFirst+1)/100+15); err != nil {
		return err
	}
	for _, tg := range targets {
		if err := waitItemValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.ephemeral.pused": func(x float64) bool { return x > ephCritPct },
		}); err != nil {
			return err
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{ephCrit: "1"}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %d connections, threshold %d %%: %q went to PROBLEM in %.0fs", v, len(conns), ephCritPct, ephCrit, time.Since(t).Seconds())

	t = time.Now()
	release()
	for _, tg := range targets {
		if err := waitItemValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.ephemeral.pused": func(x float64) bool { return x < 50 },
		}); err != nil {
			return err
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{ephWarn: "1", ephCrit: "1"}, false); err != nil {
			return fmt.Errorf("a sample below the thresholds cleared %q or %q: %w", ephWarn, ephCrit, err)
		}
		if err := setMacros(ctx, z, tg, map[string]string{"{$TCP.EPHEMERAL.PUSED.MAX.WARN}": "100000", "{$TCP.EPHEMERAL.PUSED.MAX.CRIT}": "100000"}); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	for _, tg := range targets {
		if err := waitTriggers(ctx, z, tg, map[string]string{ephWarn: "0", ephCrit: "0"}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %q and %q stayed in PROBLEM on samples under their thresholds after the connections closed, and went back to OK once the thresholds were raised, in %.0fs", v, ephWarn, ephCrit, time.Since(t).Seconds())
	return nil
}

// conntrackValues checks the connection tracking items against the
// namespace's own files, when nf_conntrack is loaded (its sysctls then
// exist in every namespace; with no connection tracking rule in the run's
// namespace its count stays put). Without the module the items have no
// value, which the run tolerates (nsabsent.go).
func conntrackValues(ctx context.Context, z *zabbix, targets []*target) error {
	read := func(name string) (float64, error) {
		b, err := os.ReadFile("/proc/sys/net/netfilter/" + name)
		if err != nil {
			return 0, err
		}
		return strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	}
	count, err := read("nf_conntrack_count")
	if errors.Is(err, os.ErrNotExist) {
		logf("Zabbix %s: no nf_conntrack in this namespace: its items stay without data", z.l.version)
		return nil
	}
	if err != nil {
		return err
	}
	maxEntries, err := read("nf_conntrack_max")
	if err != nil {
		return err
	}
	for _, tg := range targets {
		if err := waitItemValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.limit[nf_conntrack_count]": func(x float64) bool { return x == count },
			"tcp.limit[nf_conntrack_max]":   func(x float64) bool { return x == maxEntries },
			"tcp.conntrack.pused":           func(x float64) bool { return math.Abs(x-100*count/maxEntries) < 0.01 },
		}); err != nil {
			return err
		}
	}
	logf("Zabbix %s: connection tracking: %v of %v entries, as the namespace's files say", z.l.version, count, maxEntries)
	return nil
}
