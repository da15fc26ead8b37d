package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A Zabbix 6.0 template export, the parts that say what an agent is asked
// and what the server stores: items, discovery rules with their item
// prototypes, and the template's user macros (their defaults).

type xmlExport struct {
	Templates []xmlTemplate `xml:"templates>template"`
}

type xmlTemplate struct {
	Name   string     `xml:"name"`
	Items  []xmlItem  `xml:"items>item"`
	Rules  []xmlRule  `xml:"discovery_rules>discovery_rule"`
	Macros []xmlMacro `xml:"macros>macro"`
}

type xmlItem struct {
	Key     string    `xml:"key"`
	Type    string    `xml:"type"`
	Delay   string    `xml:"delay"`
	History string    `xml:"history"`
	Master  string    `xml:"master_item>key"`
	Steps   []xmlStep `xml:"preprocessing>step"`
	// Discover is NO_DISCOVER for a prototype discovery does not create.
	Discover string `xml:"discover"`
}

type xmlStep struct {
	Type   string   `xml:"type"`
	Params []string `xml:"parameters>parameter"`
}

type xmlRule struct {
	Key        string    `xml:"key"`
	Type       string    `xml:"type"`
	Delay      string    `xml:"delay"`
	Master     string    `xml:"master_item>key"`
	Prototypes []xmlItem `xml:"item_prototypes>item_prototype"`
}

type xmlMacro struct {
	Macro string `xml:"macro"`
	Value string `xml:"value"`
}

// Polled is one key an agent is asked for: per minute Weight times (1 for
// an item polled every minute, 0.2 every 5 minutes, 1/60 hourly).
type Polled struct {
	Key    string  `json:"key"`
	Weight float64 `json:"weight"`
	What   string  `json:"what"` // item, prototype or discovery
}

// TemplateCost is what a template costs per host and minute for a number
// of discovered ports and disks.
type TemplateCost struct {
	Template string   `json:"template"`
	Ports    int      `json:"ports"`
	Disks    int      `json:"disks"`
	Requests float64  `json:"requests_per_min"` // agent requests
	Values   float64  `json:"values_per_min"`   // values stored (history kept), every poll
	Steady   float64  `json:"steady_values_per_min"`
	Polled   []Polled `json:"polled"`
}

var macroRe = regexp.MustCompile(`\{\$[A-Z0-9_.]+\}`)

// parseDelay reads a Zabbix delay: "" is the default (def), "0" none,
// 30s/5m/1h/1d, plain seconds; user macros are replaced by their defaults.
func parseDelay(s string, def time.Duration, macros map[string]string) (time.Duration, error) {
	s = macroRe.ReplaceAllStringFunc(strings.TrimSpace(s), func(m string) string { return macros[m] })
	if s == "" {
		return def, nil
	}
	if s == "0" {
		return 0, nil
	}
	unit := time.Second
	switch s[len(s)-1] {
	case 's':
		s = s[:len(s)-1]
	case 'm':
		unit, s = time.Minute, s[:len(s)-1]
	case 'h':
		unit, s = time.Hour, s[:len(s)-1]
	case 'd':
		unit, s = 24*time.Hour, s[:len(s)-1]
	case 'w':
		unit, s = 7*24*time.Hour, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad delay %q", s)
	}
	return time.Duration(n) * unit, nil
}

// polledByAgent: item types the agent answers (an empty type is the Zabbix
// agent's passive check).
func polledByAgent(typ string) bool {
	return typ == "" || typ == "ZABBIX_PASSIVE" || typ == "ZABBIX_ACTIVE"
}

// templateCost reads a template export and works out its agent requests
// and stored values per minute with ports discovered ports and disks
// discovered disks. ports and disks give the values substituted for
// {#PORT} and {#DEVNAME} in the polled keys (the first ones are used).
// Several exports separated by commas (templates linked to one host, e.g.
// the TCP and the disk template) add up.
func templateCost(path string, ports []string, disks []string) (TemplateCost, error) {
	if paths := strings.Split(path, ","); len(paths) > 1 {
		var sum TemplateCost
		for i, p := range paths {
			c, err := templateCost(p, ports, disks)
			if err != nil {
				return TemplateCost{}, err
			}
			if i > 0 {
				sum.Template += " + "
			}
			sum.Template += c.Template
			sum.Ports, sum.Disks = c.Ports, c.Disks
			sum.Requests += c.Requests
			sum.Values += c.Values
			sum.Steady += c.Steady
			sum.Polled = append(sum.Polled, c.Polled...)
		}
		return sum, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return TemplateCost{}, err
	}
	return templateCostOf(path, b, ports, disks)
}

func templateCostOf(name string, b []byte, ports []string, disks []string) (TemplateCost, error) {
	var x xmlExport
	if err := xml.Unmarshal(b, &x); err != nil {
		return TemplateCost{}, fmt.Errorf("%s: %w", name, err)
	}
	if len(x.Templates) != 1 {
		return TemplateCost{}, fmt.Errorf("%s: %d templates, want 1", name, len(x.Templates))
	}
	t := x.Templates[0]
	c := TemplateCost{Template: t.Name, Ports: len(ports), Disks: len(disks)}
	macros := map[string]string{}
	for _, m := range t.Macros {
		macros[m.Macro] = m.Value
	}
	subst := func(key string) string {
		return macroRe.ReplaceAllStringFunc(key, func(m string) string { return macros[m] })
	}
	// perMin is how often each master key's value arrives per minute (per
	// instance); dependent items inherit it.
	perMin := map[string]float64{}
	type inst struct {
		item xmlItem
		n    int    // instances
		lld  string // macro the instances substitute: {#PORT}, {#DEVNAME} or ""
	}
	var all []inst
	for _, it := range t.Items {
		all = append(all, inst{it, 1, ""})
	}
	for _, r := range t.Rules {
		n, lld := 1, ""
		for _, p := range r.Prototypes {
			switch {
			case strings.Contains(p.Key, "{#PORT}"):
				n, lld = len(ports), "{#PORT}"
			case strings.Contains(p.Key, "{#DEVNAME}"):
				n, lld = len(disks), "{#DEVNAME}"
			}
		}
		for _, p := range r.Prototypes {
			if p.Discover == "NO_DISCOVER" {
				continue
			}
			all = append(all, inst{p, n, lld})
		}
		if polledByAgent(r.Type) {
			d, err := parseDelay(r.Delay, time.Hour, macros)
			if err != nil {
				return c, fmt.Errorf("%s: rule %s: %w", name, r.Key, err)
			}
			if d > 0 {
				w := float64(time.Minute) / float64(d)
				c.Requests += w
				c.Polled = append(c.Polled, Polled{Key: subst(r.Key), Weight: w, What: "discovery"})
			}
		}
	}
	// Polled and calculated items first, then dependent ones in rounds
	// (a dependent item may depend on another).
	for _, in := range all {
		if in.item.Type == "DEPENDENT" {
			continue
		}
		d, err := parseDelay(in.item.Delay, time.Minute, macros)
		if err != nil {
			return c, fmt.Errorf("%s: %s: %w", name, in.item.Key, err)
		}
		if d == 0 {
			continue
		}
		w := float64(time.Minute) / float64(d)
		perMin[in.item.Key] = w
		if polledByAgent(in.item.Type) {
			c.Requests += w * float64(in.n)
			what := "item"
			if in.lld != "" {
				what = "prototype"
			}
			vals := ports
			if in.lld == "{#DEVNAME}" {
				vals = disks
			}
			for i := 0; i < in.n; i++ {
				k := subst(in.item.Key)
				if in.lld != "" {
					k = strings.ReplaceAll(k, in.lld, vals[i])
				}
				c.Polled = append(c.Polled, Polled{Key: k, Weight: w, What: what})
			}
		}
	}
	for round := 0; round < 5; round++ {
		for _, in := range all {
			if in.item.Type == "DEPENDENT" {
				if w, ok := perMin[in.item.Master]; ok {
					perMin[in.item.Key] = w
				}
			}
		}
	}
	for _, in := range all {
		w, ok := perMin[in.item.Key]
		if !ok {
			return c, fmt.Errorf("%s: %s: master %q not found", name, in.item.Key, in.item.Master)
		}
		if strings.TrimSpace(in.item.History) == "0" {
			continue
		}
		c.Values += w * float64(in.n)
		steady := w
		for _, s := range in.item.Steps {
			if s.Type == "DISCARD_UNCHANGED_HEARTBEAT" && len(s.Params) > 0 {
				if hb, err := parseDelay(s.Params[0], 0, macros); err == nil && hb > 0 {
					steady = min(w, float64(time.Minute)/float64(hb))
				}
			}
			if s.Type == "DISCARD_UNCHANGED" {
				steady = 0
			}
		}
		c.Steady += steady * float64(in.n)
	}
	return c, nil
}

// numbered returns n names prefix0, prefix1, ... (for counting only).
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// contractPolled is what the templates built for tcp.sockets.get poll
// (tcp.sockets.get, tcp.kernel.get and disk.get.all every minute,
// tcp.limits.get and tcp.remote.top every 5 minutes, port discovery
// hourly), for measuring before such a template is in the tree.
func contractPolled() []Polled {
	return []Polled{
		{Key: "tcp.sockets.get", Weight: 1, What: "item"},
		{Key: "tcp.kernel.get", Weight: 1, What: "item"},
		{Key: "disk.get.all", Weight: 1, What: "item"},
		{Key: "tcp.limits.get", Weight: 0.2, What: "item"},
		{Key: "tcp.remote.top[10,established]", Weight: 0.2, What: "item"},
		{Key: "tcp.port.discovery", Weight: 1.0 / 60, What: "discovery"},
	}
}

// costTable is the markdown table of agent requests and stored values per
// host and minute of two templates, for each number of ports.
func costTable(oldPath, newPath string, ports []int, disks int) (string, error) {
	var b strings.Builder
	b.WriteString("| ports | agent requests / min, before | after | values stored / min, before | after | on a steady host (throttled items at their heartbeat), before | after |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for _, p := range ports {
		o, err := templateCost(oldPath, numbered("p", p), numbered("d", disks))
		if err != nil {
			return "", err
		}
		n, err := templateCost(newPath, numbered("p", p), numbered("d", disks))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", p, f(o.Requests), f(n.Requests), f(o.Values), f(n.Values), f(o.Steady), f(n.Steady))
	}
	fmt.Fprintf(&b, "\n%d disks. Requests: items the agent answers (polled items, item prototypes times the ports or disks discovered, discovery rules that are not dependent), each per minute at its delay. Values: items that keep history, each at its master's rate; a master with history 0 stores nothing.\n", disks)
	return b.String(), nil
}
