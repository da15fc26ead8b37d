package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
)

// Some TCP sysctls exist only in the host's initial network namespace:
// net.ipv4.tcp_mem and net.ipv4.tcp_max_orphans are global, and a
// namespace of its own (the run's, any container's) has no file for them
// under /proc/sys. tcp.limits.get leaves out a sysctl the kernel does not
// show, so the template's items for them have no data there, nor have the
// calculated items and triggers over those items. The run finds them from
// the items' definitions and the namespace's /proc/sys, tolerates them
// (no value, unsupported, trigger unknown) and logs them; any other item
// must have a value.

// sysctlMaster is the key of the master item whose fields are sysctls.
const sysctlMaster = "tcp.limits.get"

var jsonFieldRe = regexp.MustCompile(`^\$\.([a-z0-9_]+)$`)

// sysctlAbsent reports whether the sysctl behind a tcp.limits.get field
// (tcp_mem_min and the like are fields of tcp_mem) has no file in this
// network namespace, and names it.
func sysctlAbsent(field string) (string, bool) {
	names := []string{field}
	for _, suf := range []string{"_min", "_pressure", "_max"} {
		if s, ok := strings.CutSuffix(field, suf); ok {
			names = append(names, s)
		}
	}
	for _, n := range names {
		for _, dir := range []string{"/proc/sys/net/ipv4/", "/proc/sys/net/core/", "/proc/sys/net/netfilter/"} {
			if _, err := os.Stat(dir + n); err == nil {
				return "", false
			}
		}
	}
	return names[len(names)-1], true
}

// absentInNamespace lists the host's items (by key) that cannot have data
// in the run's namespace, with the reason: dependent items of the sysctl
// master whose JSONPath names an absent sysctl (or whose script computes
// over the absent nf_conntrack_count), and calculated items over them.
func absentInNamespace(items map[string]item) map[string]string {
	out := map[string]string{}
	byID := map[string]item{}
	for _, i := range items {
		byID[i.ItemID] = i
	}
	for k, i := range items {
		if i.Type != "18" || byID[i.MasterItemID].Key != sysctlMaster || len(i.Preprocessing) == 0 {
			continue
		}
		p := i.Preprocessing[0]
		// A script over the connection tracking fields (its percentage)
		// has no data without them.
		if p.Type == "21" && strings.Contains(p.Params, "nf_conntrack_count") {
			if name, absent := sysctlAbsent("nf_conntrack_count"); absent {
				out[k] = "no sysctl " + name + " in this network namespace"
			}
			continue
		}
		m := jsonFieldRe.FindStringSubmatch(p.Params)
		if p.Type != "12" || m == nil {
			continue
		}
		if name, absent := sysctlAbsent(m[1]); absent {
			out[k] = "no sysctl " + name + " in this network namespace"
		}
	}
	for changed := true; changed; {
		changed = false
		for k, i := range items {
			if _, done := out[k]; done || i.Type != "15" {
				continue
			}
			for dep := range out {
				if refersTo(i.Params, dep) {
					out[k] = "calculated from " + dep
					changed = true
					break
				}
			}
		}
	}
	return out
}

// refersTo reports whether a formula or an expanded trigger expression
// uses the item key (as //key or /host/key, followed by , or )).
func refersTo(expr, key string) bool {
	for _, end := range []string{",", ")"} {
		if strings.Contains(expr, "/"+key+end) {
			return true
		}
	}
	return false
}

func describeAbsent(m map[string]string) string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, k+" ("+m[k]+")")
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
