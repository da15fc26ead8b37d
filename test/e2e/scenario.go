package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// scenario drives both hosts through the checks: values for every item,
// discovery results, then trigger cycles PROBLEM → OK.
func scenario(ctx context.Context, z *zabbix, targets []*target, s *testSockets, lk *leak, lim *limits) error {
	v := z.l.version
	t := time.Now()
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	// Round 0: poll the agent items and the discovery rules. Calculated
	// items wait for their inputs: evaluated without data they go
	// unsupported until their next interval.
	if err := checkNowAll(ctx, z, targets, agentItems, true); err != nil {
		return err
	}
	// Discovery creates the port and disk items; wait for them: every
	// prototype of the template's port and disk rules for each of the
	// test's ports and at least one disk.
	err := waitFor(ctx, "discovery created the port and disk items", 90*time.Second, 2*time.Second, func() (bool, error) {
		for _, tg := range targets {
			if err := refreshItems(ctx, z, tg); err != nil {
				return false, err
			}
			ports, disks, _ := discovered(tg)
			if len(ports) < len(s.ports()) || (tg.disk != nil && len(disks) == 0) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, lldState(ctx, z, targets))
	}
	for _, tg := range targets {
		ports, disks, partial := discovered(tg)
		logf("Zabbix %s: %s discovered ports %v and disks %v (%d items)", v, tg.hostname, ports, disks, len(tg.items))
		if strings.Join(ports, ",") != strings.Join(sortedStrings(s.ports()), ",") {
			return fmt.Errorf("%s: discovered ports %v, want exactly the test's %v ({$TCP.PORT.MATCHES} filter)", tg.hostname, ports, s.ports())
		}
		if len(partial) > 0 {
			return fmt.Errorf("%s: discovery created only some of the prototypes' items for %v", tg.hostname, partial)
		}
		for _, d := range disks {
			if _, err := os.Stat(filepath.Join("/sys/class/block", d)); err != nil {
				return fmt.Errorf("%s: discovered disk %s is not a block device of this machine: %v", tg.hostname, d, err)
			}
		}
		// Every item the template defines, and every prototype once per
		// discovered port and disk; nothing else of ours.
		// Items of prototypes that are not discovered count only when the
		// old template's discovery made them before the upgrade: they stay
		// as lost resources until the rule's lifetime deletes them.
		own, left := 0, 0
		for k := range tg.items {
			switch {
			case tg.leftover(k):
				left++
			case tg.own(k):
				own++
			}
		}
		if left > 0 {
			logf("Zabbix %s: %s: %d items of prototypes no longer discovered, left by the old template's discovery (lost resources)", v, tg.hostname, left)
		}
		services, partialServices := discoveredServices(tg)
		if len(partialServices) > 0 {
			return fmt.Errorf("%s: services discovery created only some of the prototypes' items for %v", tg.hostname, partialServices)
		}
		logf("Zabbix %s: %s discovered services %v", v, tg.hostname, services)
		want := tg.expectedItems(map[string][]string{"{#PORT}": ports, "{#DEVNAME}": disks, "{#CGROUP}": services})
		if own != want {
			return fmt.Errorf("%s: %d items of ours, want %d (the templates' items, prototypes × %d ports, %d disks and %d services)",
				tg.hostname, own, want, len(ports), len(disks), len(services))
		}
	}
	// The new items reach the pollers at a configuration sync.
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	// Round 1: first values of every master, discovered ones included.
	if err := checkNowAll(ctx, z, targets, agentItems, false); err != nil {
		return err
	}
	if err := waitValues(ctx, z, targets, "every master item has a value", func(i item) bool { return i.Type == "0" }); err != nil {
		return err
	}
	// Overflow the full listener between the two samples of the counters.
	if err := s.overflow(3); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	// Round 2: second values, so change-per-second items have a rate.
	if err := checkNowAll(ctx, z, targets, agentItems, false); err != nil {
		return err
	}
	if err := waitValues(ctx, z, targets, "every dependent item has a value", func(i item) bool { return i.Type != "15" }); err != nil {
		return err
	}
	// Round 3: calculated items over the rates. One evaluated early by its
	// own schedule may be unsupported ("not enough data") until checked
	// again, so unsupported calculated items are checked until they recover.
	if err := checkNowAll(ctx, z, targets, calculatedItems, false); err != nil {
		return err
	}
	if err := waitValues(ctx, z, targets, "every item has a value", func(item) bool { return true }); err != nil {
		return err
	}
	logf("Zabbix %s: all items of both hosts have values, none unsupported, in %.0fs", v, time.Since(t).Seconds())
	app, gone, full := strconv.Itoa(s.appPort()), strconv.Itoa(s.gonePort), strconv.Itoa(s.fullPort)
	for _, tg := range targets {
		logValues(v, tg)
		if err := expectValues(tg, map[string]func(float64) bool{
			"tcp.port.state[" + app + ",close_wait]": func(x float64) bool { return x == closeWaitN },
			"tcp.port.listening[" + gone + "]":       func(x float64) bool { return x == 1 },
			"tcp.port.accept_queue[" + full + "]":    func(x float64) bool { return x == fullBacklog+1 },
			"tcp.port.backlog[" + full + "]":         func(x float64) bool { return x == fullBacklog },
			// The namespace's count: the test's sockets, and the server's
			// ends of its checks to the agents in the instant between the
			// agent's close and the server's (7.0's asynchronous pollers
			// run dozens at once: no fixed bound). That it holds nothing of
			// the host's shows when "Too many CLOSE_WAIT sockets" returns
			// to OK below the test's own count (-host-noise keeps 10 to 60
			// on the host meanwhile).
			"tcp.state[close_wait]": func(x float64) bool { return x >= closeWaitN },
			"tcp.state[listen]":     func(x float64) bool { return x >= 3 },
		}); err != nil {
			return err
		}
	}

	// The trigger cycles run on the hosts that carry only our template.
	var withTriggers []*target
	for _, tg := range targets {
		if tg.triggers {
			withTriggers = append(withTriggers, tg)
		}
	}
	// The leaking service and connection tracking (conntrack.go), beside
	// the first cycle; its leak is closed before that cycle counts
	// CLOSE_WAIT sockets again.
	owners := startOwnersCycle(ctx, z, withTriggers, lk)
	// Conditions present from the start: a full accept queue, dropped SYNs.
	for _, tg := range withTriggers {
		if err := waitTriggers(ctx, z, tg, map[string]string{
			"Port " + full + ": Accept queue almost full":   "1",
			"TCP: Accept queues are overflowing":            "1",
			"Port " + gone + ": Not listening":              "0",
			"Port " + app + ": Too many CLOSE_WAIT sockets": "0",
			"TCP: Too many CLOSE_WAIT sockets":              "0",
		}, false); err != nil {
			return err
		}
	}

	// The Not listening cycles on the gone port (restart.go) and the
	// kernel-limit cycles (limits.go) run meanwhile.
	cycles := startCycles(ctx, z, withTriggers, s, lim)
	// Create conditions: lower the CLOSE_WAIT thresholds under the test's
	// own count (the run's network namespace holds no other long-lived
	// CLOSE_WAIT socket): host-wide and per port (a context macro).
	t = time.Now()
	for _, tg := range withTriggers {
		if err := setMacros(ctx, z, tg, map[string]string{
			"{$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"" + app + "\"}": strconv.Itoa(closeWaitN - 3),
			"{$TCP.CLOSE_WAIT.MAX.WARN}":                      strconv.Itoa(closeWaitN - 1),
		}); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	for _, tg := range withTriggers {
		if err := waitTriggers(ctx, z, tg, map[string]string{
			"Port " + app + ": Too many CLOSE_WAIT sockets": "1",
			"TCP: Too many CLOSE_WAIT sockets":              "1",
		}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: triggers went to PROBLEM in %.0fs", v, time.Since(t).Seconds())

	// Remove them: close the CLOSE_WAIT sockets, drain the full queue.
	t = time.Now()
	owners.leakReleased()
	s.releaseCloseWait()
	if err := s.drainFull(); err != nil {
		return err
	}
	// Hysteresis: the CLOSE_WAIT and accept-queue triggers recover only
	// when the maximum over their recovery window is low, so samples below
	// the thresholds must not clear them.
	for _, tg := range withTriggers {
		if err := waitItemValues(ctx, z, tg, map[string]func(float64) bool{
			"tcp.port.state[" + app + ",close_wait]": func(x float64) bool { return x == 0 },
			"tcp.state[close_wait]":                  func(x float64) bool { return x < closeWaitN-1 },
			"tcp.port.accept_queue[" + full + "]":    func(x float64) bool { return x == 0 },
		}); err != nil {
			return err
		}
		if err := waitTriggers(ctx, z, tg, map[string]string{
			"Port " + app + ": Too many CLOSE_WAIT sockets": "1",
			"TCP: Too many CLOSE_WAIT sockets":              "1",
			"Port " + full + ": Accept queue almost full":   "1",
			"TCP: Accept queues are overflowing":            "1",
		}, false); err != nil {
			return fmt.Errorf("a sample below the threshold cleared a trigger with a recovery window: %w", err)
		}
	}
	logf("Zabbix %s: samples below the thresholds left the hysteresis triggers in PROBLEM", v)
	// Their recovery windows (10m, 5m) are longer than a CI run may wait:
	// the recovery expressions are driven by raising the thresholds above
	// the windows' maxima instead.
	for _, tg := range withTriggers {
		if err := setMacros(ctx, z, tg, map[string]string{
			"{$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"" + app + "\"}":     "100000",
			"{$TCP.CLOSE_WAIT.MAX.WARN}":                          "100000",
			"{$TCP.PORT.ACCEPTQ.PUSED.MAX.CRIT:\"" + full + "\"}": "1000",
			"{$TCP.LISTEN_OVERFLOWS.MAX.WARN}":                    "100000",
		}); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	for _, tg := range withTriggers {
		if err := waitTriggers(ctx, z, tg, map[string]string{
			"Port " + app + ": Too many CLOSE_WAIT sockets": "0",
			"TCP: Too many CLOSE_WAIT sockets":              "0",
			"Port " + full + ": Accept queue almost full":   "0",
			"TCP: Accept queues are overflowing":            "0",
		}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: triggers went back to OK in %.0fs", v, time.Since(t).Seconds())
	if err := owners.wait(); err != nil {
		return err
	}
	if err := ephemeralCycle(ctx, z, withTriggers); err != nil {
		return err
	}
	if err := conntrackValues(ctx, z, withTriggers); err != nil {
		return err
	}
	if err := cycles.wait(); err != nil {
		return err
	}

	// Nothing went unsupported on the way, and no trigger is in error.
	for _, tg := range targets {
		if err := refreshItems(ctx, z, tg); err != nil {
			return err
		}
		if bad := unsupported(tg); len(bad) > 0 {
			return fmt.Errorf("%s: unsupported items:\n%s", tg.hostname, strings.Join(bad, "\n"))
		}
		var trs []trigger
		if err := z.api.call(ctx, "trigger.get", map[string]any{"hostids": tg.hostid, "output": []string{"description", "value", "state", "error", "expression"}, "expandExpression": true}, &trs); err != nil {
			return err
		}
		var bad []string
		for _, tr := range trs {
			if tr.State == "1" && !overAbsent(tg, tr.Expression) && ownTrigger(tg, tr.Expression) {
				bad = append(bad, tr.Description+": "+tr.Error)
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s: triggers in unknown state:\n%s", tg.hostname, strings.Join(bad, "\n"))
		}
		logf("Zabbix %s: %s: %d items, %d triggers, none unsupported or unknown but the %d without data in this namespace", v, tg.hostname, len(tg.items), len(trs), len(tg.absent))
	}
	return nil
}

// triggerItemRe finds the item keys of an expanded trigger expression
// (/host/key followed by , or ), a key's parameters in brackets).
var triggerItemRe = regexp.MustCompile(`/[^/(),]+/([^\[\](),/]+(?:\[[^\]]*\])?)[,)]`)

// ownTrigger reports whether a trigger of the host uses an item of ours.
func ownTrigger(tg *target, expr string) bool {
	for _, m := range triggerItemRe.FindAllStringSubmatch(expr, -1) {
		if tg.own(m[1]) {
			return true
		}
	}
	return false
}

// overAbsent reports whether an expanded trigger expression uses an item
// that cannot have data in the run's namespace.
func overAbsent(tg *target, expr string) bool {
	for k := range tg.absent {
		if refersTo(expr, k) {
			return true
		}
	}
	return false
}

// refreshItems reloads every item of the host.
func refreshItems(ctx context.Context, z *zabbix, tg *target) error {
	var items []item
	err := z.api.call(ctx, "item.get", map[string]any{
		"hostids":             tg.hostid,
		"output":              []string{"itemid", "key_", "name", "type", "lastvalue", "lastclock", "state", "error", "flags", "status", "master_itemid", "params", "history"},
		"selectPreprocessing": []string{"type", "params"},
	}, &items)
	if err != nil {
		return err
	}
	tg.items = map[string]item{}
	for _, i := range items {
		tg.items[i.Key] = i
	}
	tg.absent = absentInNamespace(tg.items)
	if len(tg.absent) > 0 && !tg.absentLogged {
		tg.absentLogged = true
		logf("Zabbix %s: %s: without data in a network namespace other than the host's, tolerated: %s", z.l.version, tg.hostname, describeAbsent(tg.absent))
	}
	return nil
}

// discovered lists the ports and disks for which the host has an item of
// every prototype of the template's port and disk rules, and the values
// with only some.
func discovered(tg *target) (ports, disks, partial []string) {
	if r := tg.spec.rule("{#PORT}"); r != nil {
		c, p := r.instances(tg.items)
		ports, partial = c, append(partial, p...)
	}
	if tg.disk != nil {
		if r := tg.disk.rule("{#DEVNAME}"); r != nil {
			c, p := r.instances(tg.items)
			disks, partial = c, append(partial, p...)
		}
	}
	return ports, disks, partial
}

func sortedStrings(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

func agentItems(i item) bool      { return i.Type == "0" }
func calculatedItems(i item) bool { return i.Type == "15" }

// checkNowAll asks for an immediate check of the items sel picks (and the
// discovery rules when lld is set) of every host.
func checkNowAll(ctx context.Context, z *zabbix, targets []*target, sel func(item) bool, lld bool) error {
	var ids []string
	for _, tg := range targets {
		if err := refreshItems(ctx, z, tg); err != nil {
			return err
		}
		for _, i := range tg.items {
			if i.pollable() && sel(i) && i.Status == "0" {
				ids = append(ids, i.ItemID)
			}
		}
		if lld {
			var rules []item
			if err := z.api.call(ctx, "discoveryrule.get", map[string]any{"hostids": tg.hostid, "output": []string{"itemid", "type"}}, &rules); err != nil {
				return err
			}
			// A dependent rule runs when its master is polled.
			for _, r := range rules {
				if r.pollable() {
					ids = append(ids, r.ItemID)
				}
			}
		}
	}
	return checkNow(ctx, z, ids)
}

func checkNow(ctx context.Context, z *zabbix, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var tasks []any
	for _, id := range ids {
		tasks = append(tasks, map[string]any{"type": 6, "request": map[string]string{"itemid": id}})
	}
	return z.api.call(ctx, "task.create", tasks, nil)
}

// waitValues waits until every item that sel picks has a value and is
// supported. An unsupported agent or dependent item fails at once with its
// error; an unsupported calculated item is checked again every 5 s (it
// recovers once its inputs have values).
func waitValues(ctx context.Context, z *zabbix, targets []*target, what string, sel func(item) bool) error {
	t := time.Now()
	var missing []string
	lastCheck := time.Now()
	err := waitFor(ctx, what, 90*time.Second, 2*time.Second, func() (bool, error) {
		missing = nil
		var recheck []string
		for _, tg := range targets {
			if err := refreshItems(ctx, z, tg); err != nil {
				return false, err
			}
			var bad []string
			for _, k := range sortedKeys(tg.items) {
				i := tg.items[k]
				if _, ok := tg.absent[k]; ok || !tg.own(k) || tg.leftover(k) {
					continue
				}
				switch {
				case i.State == "1" && i.Type == "15":
					if sel(i) {
						recheck = append(recheck, i.ItemID)
						missing = append(missing, tg.hostname+" "+k+" (unsupported: "+i.Error+")")
					}
				case i.State == "1":
					bad = append(bad, "  "+k+": "+i.Error)
				case sel(i) && !tg.valued(i):
					missing = append(missing, tg.hostname+" "+k)
				}
			}
			if len(bad) > 0 {
				return false, fmt.Errorf("%s: unsupported items:\n%s", tg.hostname, strings.Join(bad, "\n"))
			}
		}
		if len(recheck) > 0 && time.Since(lastCheck) > 5*time.Second {
			if err := checkNow(ctx, z, recheck); err != nil {
				return false, err
			}
			lastCheck = time.Now()
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		if len(missing) > 12 {
			missing = append(missing[:12], fmt.Sprintf("... %d more", len(missing)-12))
		}
		return fmt.Errorf("%w; without value: %s", err, strings.Join(missing, ", "))
	}
	logf("Zabbix %s: %s (%.0fs)", z.l.version, what, time.Since(t).Seconds())
	return nil
}

func unsupported(tg *target) []string {
	var bad []string
	for _, k := range sortedKeys(tg.items) {
		if _, ok := tg.absent[k]; ok || !tg.own(k) {
			continue
		}
		if i := tg.items[k]; i.State == "1" {
			bad = append(bad, "  "+k+": "+i.Error)
		}
	}
	return bad
}

// logValues prints every item's value, short values inline.
func logValues(v string, tg *target) {
	var b strings.Builder
	for _, k := range sortedKeys(tg.items) {
		val := tg.items[k].LastValue
		if len(val) > 120 {
			val = val[:117] + "..."
		}
		fmt.Fprintf(&b, "    %s = %s\n", k, val)
	}
	logf("Zabbix %s: %s values:\n%s", v, tg.hostname, strings.TrimRight(b.String(), "\n"))
}

func expectValues(tg *target, want map[string]func(float64) bool) error {
	for _, k := range sortedKeys(want) {
		i, ok := tg.items[k]
		if !ok {
			return fmt.Errorf("%s: no item %s", tg.hostname, k)
		}
		x, err := strconv.ParseFloat(i.LastValue, 64)
		if err != nil || !want[k](x) {
			return fmt.Errorf("%s: %s = %q, not what the test's sockets make it", tg.hostname, k, i.LastValue)
		}
	}
	return nil
}

// waitItemValues checks the host's items now and then until each named
// item's last value satisfies its test.
func waitItemValues(ctx context.Context, z *zabbix, tg *target, want map[string]func(float64) bool) error {
	if err := refreshItems(ctx, z, tg); err != nil {
		return err
	}
	var ids []string
	for _, i := range tg.items {
		if i.pollable() && i.Type == "0" && i.Status == "0" && tg.own(i.Key) {
			ids = append(ids, i.ItemID)
		}
	}
	lastCheck := time.Time{}
	return waitFor(ctx, tg.hostname+" item values", 90*time.Second, time.Second, func() (bool, error) {
		if time.Since(lastCheck) > 8*time.Second {
			if err := checkNow(ctx, z, ids); err != nil {
				return false, err
			}
			lastCheck = time.Now()
		}
		if err := refreshItems(ctx, z, tg); err != nil {
			return false, err
		}
		return expectValues(tg, want) == nil, nil
	})
}

func setMacros(ctx context.Context, z *zabbix, tg *target, values map[string]string) error {
	var ms []struct {
		ID    string `json:"hostmacroid"`
		Macro string `json:"macro"`
	}
	if err := z.api.call(ctx, "usermacro.get", map[string]any{"hostids": tg.hostid, "output": []string{"hostmacroid", "macro"}}, &ms); err != nil {
		return err
	}
	for name, val := range values {
		found := false
		for _, m := range ms {
			if m.Macro == name {
				found = true
				if err := z.api.call(ctx, "usermacro.update", map[string]any{"hostmacroid": m.ID, "value": val}, nil); err != nil {
					return err
				}
			}
		}
		if !found {
			if err := z.api.call(ctx, "usermacro.create", map[string]any{"hostid": tg.hostid, "macro": name, "value": val}, nil); err != nil {
				return err
			}
		}
		logf("Zabbix %s: %s: macro %s = %s", z.l.version, tg.hostname, name, val)
	}
	return nil
}

// waitTriggers waits until each named trigger of the host has the wanted
// value (0 OK, 1 PROBLEM), with recheck asking every 8 s for new values of
// the host's agent items (the masters), and logs each trigger's
// transitions.
func waitTriggers(ctx context.Context, z *zabbix, tg *target, want map[string]string, recheck bool) error {
	var ids []string
	if recheck {
		if err := refreshItems(ctx, z, tg); err != nil {
			return err
		}
		for _, i := range tg.items {
			if i.pollable() && i.Type == "0" && i.Status == "0" && tg.own(i.Key) {
				ids = append(ids, i.ItemID)
			}
		}
	}
	t := time.Now()
	lastCheck := time.Time{}
	state := map[string]string{}
	err := waitFor(ctx, tg.hostname+" triggers "+fmt.Sprint(want), 90*time.Second, time.Second, func() (bool, error) {
		if len(ids) > 0 && time.Since(lastCheck) > 8*time.Second {
			if err := checkNow(ctx, z, ids); err != nil {
				return false, err
			}
			lastCheck = time.Now()
		}
		var trs []trigger
		if err := z.api.call(ctx, "trigger.get", map[string]any{"hostids": tg.hostid, "output": []string{"description", "value", "state", "error"}}, &trs); err != nil {
			return false, err
		}
		byName := map[string]trigger{}
		for _, tr := range trs {
			byName[tr.Description] = tr
		}
		done := true
		for name, val := range want {
			tr, ok := byName[name]
			if !ok {
				return false, fmt.Errorf("no trigger %q on %s", name, tg.hostname)
			}
			if tr.State == "1" {
				return false, fmt.Errorf("trigger %q is unknown: %s", name, tr.Error)
			}
			if state[name] != tr.Value {
				state[name] = tr.Value
				logf("Zabbix %s: %s: %q is %s (%.0fs)", z.l.version, tg.hostname, name, map[string]string{"0": "OK", "1": "PROBLEM"}[tr.Value], time.Since(t).Seconds())
			}
			if tr.Value != val {
				done = false
			}
		}
		return done, nil
	})
	return err
}

// lldState describes the discovery rules, for failure messages.
func lldState(ctx context.Context, z *zabbix, targets []*target) string {
	var b strings.Builder
	for _, tg := range targets {
		var rules []struct {
			Key   string `json:"key_"`
			State string `json:"state"`
			Error string `json:"error"`
		}
		_ = z.api.call(ctx, "discoveryrule.get", map[string]any{"hostids": tg.hostid, "output": []string{"key_", "state", "error"}}, &rules)
		for _, r := range rules {
			fmt.Fprintf(&b, "  %s %s: state %s %s\n", tg.hostname, r.Key, r.State, r.Error)
		}
		for _, k := range sortedKeys(tg.items) {
			if i := tg.items[k]; i.Type == "0" && tg.own(k) {
				fmt.Fprintf(&b, "  %s %s: state %s lastclock %s %s\n", tg.hostname, k, i.State, i.LastClock, i.Error)
			}
		}
	}
	return b.String()
}
