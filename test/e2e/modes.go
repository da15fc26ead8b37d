package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The agent modes beyond the passive hosts of scenario.go:
//
//   - active: the agents that serve the passive hosts also run active
//     checks for a second host each (a second Hostname), linked to the
//     active template of their kind; the values arrive through the
//     server's trapper, sent by the agents themselves. These hosts are
//     created before the agents start, so that the first list of active
//     checks the agents get holds their items (agent 2 runs that first
//     list at once with ForceActiveChecksOnStart; the classic agent runs
//     new checks at once by itself).
//   - failing: one more classic agent whose helper reads an empty
//     directory as procfs and sysfs (--path.procfs, --path.sysfs in its
//     UserParameter file), so every key fails as "ZBX_NOTSUPPORTED:
//     <reason>". Its host, on the classic template with a short
//     {$TCP.NODATA.TIMEOUT}, must show the helper's reason as the error of
//     every polled item and of port discovery, no dependent item may go
//     unsupported with an error of its own, and the no-data trigger must
//     fire.

const (
	activeSuffix = "-active"
	failingHost  = "tcpstatus-e2e-agentd-failing"
	// failingNodata is the failing host's {$TCP.NODATA.TIMEOUT}.
	failingNodata = "1m"
)

// activeFile maps a passive template file to its active variant.
func activeFile(passive string) string {
	return strings.TrimSuffix(passive, ".xml") + "_active.xml"
}

// createActiveHosts creates, for each agent kind, the host its agent runs
// active checks for, linked to the active TCP and disk templates, with no
// interface.
func createActiveHosts(ctx context.Context, z *zabbix, specs map[string]*tmplSpec, s *testSockets) ([]*target, error) {
	var out []*target
	for _, k := range []struct{ kind, hostname, file string }{
		{"agent2", "tcpstatus-e2e-agent2", "tcpstatus_agent2.xml"},
		{"agentd", "tcpstatus-e2e-agentd", "tcpstatus_agent.xml"},
	} {
		file := activeFile(k.file)
		sp, dsp := specs[file], specs[diskFileOf(file)]
		if sp == nil || dsp == nil {
			return nil, fmt.Errorf("no %s or %s in the templates", file, diskFileOf(file))
		}
		host := k.hostname + activeSuffix
		tg := &target{agent: &agent{kind: k.kind + " (active)", hostname: host}, hostname: host, template: sp.name, spec: sp, disk: dsp}
		if err := createHost(ctx, z, tg, s, sp.name, dsp.name); err != nil {
			return nil, err
		}
		out = append(out, tg)
	}
	return out, nil
}

// checkActive waits until each active host has discovered exactly the
// test's ports and the machine's disks, and every item of its template
// (discovered ones included) has a value sent by the agent, none
// unsupported. The agents sent their first values when they started; the
// passive scenario ran meanwhile, so this mostly waits for the second
// values of the rates.
func checkActive(ctx context.Context, z *zabbix, targets []*target, s *testSockets) error {
	v := z.l.version
	t := time.Now()
	err := waitFor(ctx, "active hosts discovered the test's ports and the disks", 150*time.Second, 2*time.Second, func() (bool, error) {
		for _, tg := range targets {
			if err := refreshItems(ctx, z, tg); err != nil {
				return false, err
			}
			ports, disks, _ := discovered(tg)
			if len(ports) < len(s.ports()) || len(disks) == 0 {
				return false, nil
			}
			// The services discovery (from tcp.sockets.get) may run
			// after the port discovery.
			services, partial := discoveredServices(tg)
			if len(partial) > 0 || len(tg.items) != tg.expectedItems(map[string][]string{"{#PORT}": ports, "{#DEVNAME}": disks, "{#CGROUP}": services}) {
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
		if strings.Join(ports, ",") != strings.Join(sortedStrings(s.ports()), ",") || len(partial) > 0 {
			return fmt.Errorf("%s: discovered ports %v (partly %v), want exactly the test's %v", tg.hostname, ports, partial, s.ports())
		}
		services, _ := discoveredServices(tg)
		want := tg.expectedItems(map[string][]string{"{#PORT}": ports, "{#DEVNAME}": disks, "{#CGROUP}": services})
		if len(tg.items) != want {
			return fmt.Errorf("%s: %d items, want %d", tg.hostname, len(tg.items), want)
		}
		// Every agent item of the template is an active check.
		for _, k := range sortedKeys(tg.items) {
			if i := tg.items[k]; i.Type == "0" {
				return fmt.Errorf("%s: %s is a passive check in the active template", tg.hostname, k)
			}
		}
	}
	if err := waitValues(ctx, z, targets, "every item of the active hosts has a value", func(item) bool { return true }); err != nil {
		return err
	}
	for _, tg := range targets {
		active, valued, newest := 0, 0, int64(0)
		for _, i := range tg.items {
			if i.Type == "7" {
				active++
			}
			if tg.valued(i) {
				valued++
			}
			var c int64
			fmt.Sscan(i.LastClock, &c)
			newest = max(newest, c)
		}
		logf("Zabbix %s: %s (%s): %d items, %d with values (the rest without data in this namespace), %d of them active checks sent by the agent, newest value %ds ago",
			v, tg.hostname, tg.agent.kind, len(tg.items), valued, active, time.Now().Unix()-newest)
		logValues(v, tg)
	}
	logf("Zabbix %s: active hosts complete %.0fs after the passive scenario", v, time.Since(t).Seconds())
	return nil
}

// failingHelperFlags points the helper at an empty directory as procfs
// and sysfs: valid options (the directory exists), but no file any key
// reads.
func failingHelperFlags(work string) (string, string, error) {
	dir := filepath.Join(work, "empty-root")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	return "--path.procfs=" + dir + " --path.sysfs=" + dir, dir, nil
}

// helperReason runs the helper as the failing agent does and returns its
// reason (the text after "ZBX_NOTSUPPORTED: ").
func helperReason(ctx context.Context, helper, flags, key string) (string, error) {
	args := append(strings.Fields(flags), key)
	out, _ := exec.CommandContext(ctx, helper, args...).Output()
	reason, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "ZBX_NOTSUPPORTED: ")
	if !ok {
		return "", fmt.Errorf("%s %s %s: %q, not a ZBX_NOTSUPPORTED answer", helper, flags, key, out)
	}
	return reason, nil
}

// checkFailing checks the host of the agent whose helper fails: each
// polled item and the port discovery rule unsupported with the helper's
// own reason, no dependent item with an error of its own, and the no-data
// trigger in PROBLEM.
func checkFailing(ctx context.Context, z *zabbix, tg *target, helper, flags string) error {
	v := z.l.version
	t := time.Now()
	if err := checkNowAll(ctx, z, []*target{tg}, agentItems, true); err != nil {
		return err
	}
	want := map[string]string{} // polled key → the helper's reason
	var bad []string
	err := waitFor(ctx, tg.hostname+": polled items unsupported with the helper's reason", 90*time.Second, 2*time.Second, func() (bool, error) {
		if err := refreshItems(ctx, z, tg); err != nil {
			return false, err
		}
		bad = nil
		for _, k := range sortedKeys(tg.items) {
			i := tg.items[k]
			if i.Type != "0" {
				continue
			}
			if _, ok := want[k]; !ok {
				r, err := helperReason(ctx, helper, flags, expandMacros(ctx, z, tg, k))
				if err != nil {
					return false, err
				}
				want[k] = r
			}
			if i.State != "1" || !carriesReason(i.Error, want[k]) {
				bad = append(bad, fmt.Sprintf("%s: state %s error %q, want unsupported with %q", k, i.State, i.Error, want[k]))
			}
		}
		return len(want) > 0 && len(bad) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%w:\n  %s", err, strings.Join(bad, "\n  "))
	}
	for _, k := range sortedKeys(want) {
		logf("Zabbix %s: %s: %s unsupported: %s", v, tg.hostname, k, want[k])
	}
	// Port discovery fails with the helper's reason too, once the server
	// has run the rule's check-now (asked above, with the items'; the
	// items may already have failed on their own schedule).
	var rules []struct {
		Key   string `json:"key_"`
		Type  string `json:"type"`
		State string `json:"state"`
		Error string `json:"error"`
	}
	var ruleBad string
	err = waitFor(ctx, tg.hostname+": port discovery unsupported with the helper's reason", 60*time.Second, 2*time.Second, func() (bool, error) {
		if err := z.api.call(ctx, "discoveryrule.get", map[string]any{"hostids": tg.hostid, "output": []string{"key_", "type", "state", "error"}}, &rules); err != nil {
			return false, err
		}
		ruleBad = ""
		for _, r := range rules {
			if r.Type != "0" {
				continue
			}
			reason, err := helperReason(ctx, helper, flags, r.Key)
			if err != nil {
				return false, err
			}
			if r.State != "1" || !carriesReason(r.Error, reason) {
				ruleBad = fmt.Sprintf("%s: discovery rule %s: state %s error %q, want unsupported with %q", tg.hostname, r.Key, r.State, r.Error, reason)
			}
		}
		return ruleBad == "", nil
	})
	if err != nil {
		return fmt.Errorf("%w: %s", err, ruleBad)
	}
	for _, r := range rules {
		if r.Type == "0" {
			logf("Zabbix %s: %s: discovery rule %s unsupported: %s", v, tg.hostname, r.Key, r.Error)
		}
	}
	// The dependents get no value, and no error of their own (a JSON error
	// would hide the reason): at most their master's reason, where the
	// server passes it on.
	reasons := map[string]string{} // item id of a polled item → its reason
	for k, r := range want {
		reasons[tg.items[k].ItemID] = r
	}
	for _, k := range sortedKeys(tg.items) {
		i := tg.items[k]
		if i.Type != "18" {
			continue
		}
		root := i
		for n := 0; root.Type == "18" && n < 10; n++ {
			for _, m := range tg.items {
				if m.ItemID == root.MasterItemID {
					root = m
					break
				}
			}
		}
		if i.hasValue() || (i.State == "1" && !carriesReason(i.Error, reasons[root.ItemID])) {
			return fmt.Errorf("%s: dependent item %s: state %s, value %q, error %q; want no value and no error but the helper's reason", tg.hostname, k, i.State, i.LastValue, i.Error)
		}
	}
	nodata := "TCP: No data from the tcpstatus-discovery helper"
	if err := waitTriggers(ctx, z, tg, map[string]string{nodata: "1"}, false); err != nil {
		return err
	}
	logf("Zabbix %s: %s: %q fired with {$TCP.NODATA.TIMEOUT}=%s, %.0fs after the check", v, tg.hostname, nodata, failingNodata, time.Since(t).Seconds())
	return nil
}

// carriesReason reports whether an item error is the helper's reason: the
// reason itself, or the server's report of a failed preprocessing step
// whose error is the reason (6.0: "Preprocessing failed for: <value>\n1.
// Failed: <reason>"), not a JSON error of a later step.
func carriesReason(err, reason string) bool {
	return reason != "" && strings.Contains(err, reason)
}

// expandMacros replaces the user macros of a key by their values on the
// host (its own, then its template's), as the server does before asking
// the agent.
func expandMacros(ctx context.Context, z *zabbix, tg *target, key string) string {
	if !strings.Contains(key, "{$") {
		return key
	}
	tid, err := templateID(ctx, z, tg.template)
	if err != nil {
		return key
	}
	var ms []struct {
		HostID string `json:"hostid"`
		Macro  string `json:"macro"`
		Value  string `json:"value"`
	}
	if err := z.api.call(ctx, "usermacro.get", map[string]any{"hostids": []string{tg.hostid, tid}, "output": []string{"hostid", "macro", "value"}}, &ms); err != nil {
		return key
	}
	vals := map[string]string{}
	for _, m := range ms {
		if _, set := vals[m.Macro]; !set || m.HostID == tg.hostid {
			vals[m.Macro] = m.Value
		}
	}
	for name, val := range vals {
		key = strings.ReplaceAll(key, name, val)
	}
	return key
}
