package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The upgrade check (-upgrade-from DIR, the 0.1.0 template files): the
// hosts are first linked to the old templates and collect values; then the
// new files are imported over them, as a user upgrades (existing objects
// updated, objects the new file no longer has deleted). Every item whose
// key is in both files must keep its item id and its history.

// historyKey is the item whose history the upgrade must keep, whatever
// else changes: the count of established connections.
const historyKey = "tcp.state[established]"

type kept struct {
	id   string
	rows int
}

// beforeUpgrade polls the hosts (linked to the old templates) until every
// host has history for historyKey, then notes, for each item whose key
// both files define, its id and history rows.
func beforeUpgrade(ctx context.Context, z *zabbix, targets []*target, old map[string]*tmplSpec) (map[*target]map[string]kept, error) {
	for _, tg := range targets {
		o := old[tg.template]
		if o == nil || !contains(o.items, historyKey) || !contains(tg.spec.items, historyKey) {
			return nil, fmt.Errorf("%s: %s is not an item of both the old and the new template", tg.hostname, historyKey)
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return nil, err
	}
	t := time.Now()
	last := time.Time{}
	err := waitFor(ctx, "history of "+historyKey+" under the old templates", 60*time.Second, time.Second, func() (bool, error) {
		if time.Since(last) > 4*time.Second {
			if err := checkNowAll(ctx, z, targets, agentItems, false); err != nil {
				return false, err
			}
			last = time.Now()
		}
		for _, tg := range targets {
			i, ok := tg.items[historyKey]
			if !ok {
				return false, fmt.Errorf("%s: no item %s", tg.hostname, historyKey)
			}
			n, err := historyRows(ctx, z, i.ItemID)
			if err != nil || n == 0 {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	out := map[*target]map[string]kept{}
	for _, tg := range targets {
		if err := refreshItems(ctx, z, tg); err != nil {
			return nil, err
		}
		out[tg] = map[string]kept{}
		for _, k := range tg.spec.items {
			i, ok := tg.items[k]
			if !ok || !contains(old[tg.template].items, k) {
				continue
			}
			n, err := historyRows(ctx, z, i.ItemID)
			if err != nil {
				return nil, err
			}
			out[tg][k] = kept{id: i.ItemID, rows: n}
		}
		logf("Zabbix %s: %s under the old template: %s has %d history rows; %d items keep their key in the new one",
			z.l.version, tg.hostname, historyKey, out[tg][historyKey].rows, len(out[tg]))
	}
	logf("Zabbix %s: history under the old templates in %.0fs", z.l.version, time.Since(t).Seconds())
	return out, nil
}

// afterUpgrade checks that every noted item still has its id and at least
// its history rows.
func afterUpgrade(ctx context.Context, z *zabbix, targets []*target, before map[*target]map[string]kept) error {
	for _, tg := range targets {
		if err := refreshItems(ctx, z, tg); err != nil {
			return err
		}
		var bad []string
		for _, k := range sortedKeys(before[tg]) {
			b := before[tg][k]
			i, ok := tg.items[k]
			if !ok {
				bad = append(bad, k+": gone")
				continue
			}
			if i.ItemID != b.id {
				bad = append(bad, fmt.Sprintf("%s: item id %s, was %s (history left behind)", k, i.ItemID, b.id))
				continue
			}
			n, err := historyRows(ctx, z, i.ItemID)
			if err != nil {
				return err
			}
			if n < b.rows {
				bad = append(bad, fmt.Sprintf("%s: %d history rows, had %d", k, n, b.rows))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s: after importing the new template over the old one:\n  %s", tg.hostname, strings.Join(bad, "\n  "))
		}
		logf("Zabbix %s: %s: new template over the old one: %d items kept their ids and history (%s: %d rows)",
			z.l.version, tg.hostname, len(before[tg]), historyKey, before[tg][historyKey].rows)
	}
	// An item discovered from a prototype whose key the new template
	// changed (0.1.0's per-disk master disk.get[{#DEVNAME}] is now a
	// dependent item of disk.get.all) keeps its old key until discovery runs
	// with the new prototype: run discovery (its masters) until no item of
	// the old template is left.
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	t := time.Now()
	lastCheck := time.Time{}
	var stale []string
	err := waitFor(ctx, "discovery replaced the old template's discovered items", 90*time.Second, 2*time.Second, func() (bool, error) {
		if time.Since(lastCheck) > 8*time.Second {
			if err := checkNowAll(ctx, z, targets, agentItems, true); err != nil {
				return false, err
			}
			lastCheck = time.Now()
		}
		stale = stale[:0]
		for _, tg := range targets {
			if err := refreshItems(ctx, z, tg); err != nil {
				return false, err
			}
			for k := range tg.items {
				if !tg.spec.ownKey(k) {
					stale = append(stale, tg.hostname+": "+k)
				}
			}
		}
		return len(stale) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("items of the old template left after the upgrade: %v: %w", stale, err)
	}
	logf("Zabbix %s: no item of the old templates left after %.0fs of discovery", z.l.version, time.Since(t).Seconds())
	return nil
}

// diskFileOf names the disk template file beside a TCP template file.
func diskFileOf(tcpFile string) string {
	return strings.Replace(tcpFile, "tcpstatus_", "tcpstatus_disk_", 1)
}

// linkMoved says which objects of the old TCP template moved to the disk
// template (the import over the old template deleted them, with the
// discovered disk items and their history), checks that nothing of the old
// template is lost but what moved or what the new one replaces, and links
// the disk template to the hosts as a user does after the upgrade.
func linkMoved(ctx context.Context, z *zabbix, targets []*target, old map[string]*tmplSpec) error {
	for _, tg := range targets {
		o := old[tg.template]
		var moved, dropped []string
		have := func(s *tmplSpec, key string) bool {
			if contains(s.items, key) {
				return true
			}
			for _, r := range s.rules {
				if r.key == key || contains(r.prototypes, key) {
					return true
				}
			}
			return false
		}
		keys := append([]string(nil), o.items...)
		for _, r := range o.rules {
			keys = append(append(keys, r.key), r.prototypes...)
		}
		for _, k := range keys {
			switch {
			case have(tg.spec, k):
			case have(tg.disk, k):
				moved = append(moved, k)
			default:
				dropped = append(dropped, k)
			}
		}
		if len(moved) == 0 {
			return fmt.Errorf("%s: nothing of the old template is in %q: no disk objects to move?", tg.hostname, tg.disk.name)
		}
		for _, k := range moved {
			if strings.HasPrefix(k, "tcp.") {
				return fmt.Errorf("%s: %s moved to the disk template", tg.hostname, k)
			}
		}
		for _, r := range tg.items {
			if strings.HasPrefix(r.Key, "disk.") {
				return fmt.Errorf("%s: %s left on the host after the upgrade", tg.hostname, r.Key)
			}
		}
		logf("Zabbix %s: %s: moved from the old %q to %q (deleted by the import with their history, new history once linked): %s",
			z.l.version, tg.hostname, tg.template, tg.disk.name, strings.Join(moved, ", "))
		logf("Zabbix %s: %s: replaced, not kept (masters the new template splits differently): %s", z.l.version, tg.hostname, strings.Join(dropped, ", "))
		if err := linkTemplate(ctx, z, tg, tg.disk.name); err != nil {
			return err
		}
	}
	return nil
}

// historyRows counts an item's rows in every history table.
func historyRows(ctx context.Context, z *zabbix, itemid string) (int, error) {
	if _, err := strconv.ParseUint(itemid, 10, 64); err != nil {
		return 0, fmt.Errorf("item id %q", itemid)
	}
	var parts []string
	for _, t := range []string{"history", "history_uint", "history_str", "history_text", "history_log"} {
		parts = append(parts, "(SELECT count(*) FROM "+t+" WHERE itemid="+itemid+")")
	}
	out, err := z.pg.psql(ctx, "zabbix", z.db, "SELECT "+strings.Join(parts, "+"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// oldFiles maps the new template files to the old ones of the same name
// under dir.
func oldFiles(dir string, files []string) []string {
	var out []string
	for _, f := range files {
		// A template the old release did not have is imported new at
		// once (the active hosts need theirs before the agents start), and
		// again, unchanged, with the rest.
		if old := filepath.Join(dir, filepath.Base(f)); fileExists(old) {
			out = append(out, old)
		} else {
			out = append(out, f)
		}
	}
	return out
}

// officialLinux is the official template a shared host carries.
const officialLinux = "Linux by Zabbix agent"

// checkShared checks a host that carries the official template beside
// ours: every discovery rule, the official ones included, ran without an
// error (a name taken twice on the host fails discovery), and the official
// template collects too (agent.ping is 1, and how many of its items have
// values is logged).
func checkShared(ctx context.Context, z *zabbix, tg *target) error {
	var rules []struct {
		Key   string `json:"key_"`
		State string `json:"state"`
		Error string `json:"error"`
	}
	if err := z.api.call(ctx, "discoveryrule.get", map[string]any{"hostids": tg.hostid, "output": []string{"key_", "state", "error"}}, &rules); err != nil {
		return err
	}
	var bad []string
	for _, r := range rules {
		if r.State != "0" || r.Error != "" {
			bad = append(bad, r.Key+": "+r.Error)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: discovery rules with errors:\n  %s", tg.hostname, strings.Join(bad, "\n  "))
	}
	if err := refreshItems(ctx, z, tg); err != nil {
		return err
	}
	ping, ok := tg.items["agent.ping"]
	if !ok || ping.LastValue != "1" {
		return fmt.Errorf("%s: agent.ping of %q is %q", tg.hostname, officialLinux, ping.LastValue)
	}
	var ours, theirs, theirsValued int
	for k, i := range tg.items {
		if tg.spec.ownKey(k) {
			ours++
		} else {
			theirs++
			if i.hasValue() {
				theirsValued++
			}
		}
	}
	logf("Zabbix %s: %s: %d items of ours, all with values; %d of %q, %d with values; %d discovery rules without error",
		z.l.version, tg.hostname, ours, theirs, officialLinux, theirsValued, len(rules))
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
