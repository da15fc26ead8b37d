package lint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Official holds the object names of Zabbix's own templates as exported from
// a real server (testdata/official-templates/zabbix-<version>.json), so that
// a template can be checked to link beside them on one host.
type Official struct {
	File      string                      `json:"-"`
	Zabbix    string                      `json:"zabbix"`
	Templates map[string]OfficialTemplate `json:"templates"`
}

// OfficialTemplate lists one official template's names.
type OfficialTemplate struct {
	Items             []NameKey `json:"items"`
	ItemPrototypes    []NameKey `json:"item_prototypes"`
	DiscoveryRules    []NameKey `json:"discovery_rules"`
	Triggers          []string  `json:"triggers"`
	TriggerPrototypes []string  `json:"trigger_prototypes"`
	Graphs            []string  `json:"graphs"`
	GraphPrototypes   []string  `json:"graph_prototypes"`
	ValueMaps         []string  `json:"valuemaps"`
	Macros            []string  `json:"macros"`
	Dashboards        []string  `json:"dashboards"`
}

// NameKey is an item, item prototype or discovery rule: name and key.
type NameKey struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// ReadOfficial reads every *.json file of dir. A directory without one is an
// error: the check would pass without checking anything.
func ReadOfficial(dir string) ([]Official, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no official template names (*.json) in %s", dir)
	}
	sort.Strings(files)
	var out []Official
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var o Official
		if err := json.Unmarshal(data, &o); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if len(o.Templates) == 0 {
			return nil, fmt.Errorf("%s: no templates", f)
		}
		o.File = filepath.Base(f)
		out = append(out, o)
	}
	return out, nil
}

// A name class says what a clash of two linked templates' names does on a
// host, for the message.
const (
	refused  = "linking both templates to one host is refused"
	shadowed = "on a host linked to both, one template's value silently wins"
	confused = "a host linked to both shows two different objects under one name"
)

// ours is one name of the checked template.
type ours struct {
	kind, what, name string // kind: "item key", "graph name", ...; what: object path for the finding
	line             int
	class            string
}

// theirs indexes the official names of one kind: exact names, and names with
// LLD macros as patterns.
type theirs struct {
	exact map[string]string // normalized name → "template (file)"
	pats  []pattern
}

type pattern struct {
	re    *regexp.Regexp
	where string
}

var lldMacroRe = regexp.MustCompile(`\{#[A-Z0-9_.]+\}`)

// norm writes every LLD macro as {#}: two prototypes whose names differ only
// in the macro's name expand to the same names for the same value.
func norm(s string) string { return lldMacroRe.ReplaceAllString(s, "{#}") }

// macroPattern matches the names an LLD-macro name can expand to.
func macroPattern(s string) *regexp.Regexp {
	parts := lldMacroRe.Split(s, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".+") + "$")
}

func (t *theirs) add(name, where string) {
	if name == "" {
		return
	}
	if t.exact == nil {
		t.exact = map[string]string{}
	}
	n := norm(name)
	if _, ok := t.exact[n]; !ok {
		t.exact[n] = where
	}
	if n != name {
		t.pats = append(t.pats, pattern{macroPattern(name), where})
	}
}

// match finds an official name that can be equal to name after LLD macro
// expansion (either side may hold macros).
func (t *theirs) match(name string) (string, bool) {
	n := norm(name)
	if w, ok := t.exact[n]; ok {
		return w, true
	}
	if n != name {
		re := macroPattern(name)
		for on, w := range t.exact {
			if !strings.Contains(on, "{#}") && re.MatchString(on) {
				return w, true
			}
		}
	} else {
		for _, p := range t.pats {
			if p.re.MatchString(name) {
				return p.where, true
			}
		}
	}
	return "", false
}

// officialIndex groups the official names by what must not clash with what.
type officialIndex map[string]*theirs // kind → names

func buildIndex(sets []Official) officialIndex {
	idx := officialIndex{}
	get := func(k string) *theirs {
		if idx[k] == nil {
			idx[k] = &theirs{}
		}
		return idx[k]
	}
	for _, o := range sets {
		for _, name := range sortedKeys(o.Templates) {
			t := o.Templates[name]
			where := fmt.Sprintf("%q (Zabbix %s, %s)", name, o.Zabbix, o.File)
			for _, l := range [][]NameKey{t.Items, t.ItemPrototypes, t.DiscoveryRules} {
				for _, nk := range l {
					// Items, item prototypes and discovery rules share one
					// key space on a host.
					get("item key").add(nk.Key, where)
				}
			}
			for _, nk := range append(append([]NameKey(nil), t.Items...), t.ItemPrototypes...) {
				get("item name").add(nk.Name, where)
			}
			for _, nk := range t.DiscoveryRules {
				get("discovery rule name").add(nk.Name, where)
			}
			for _, n := range append(append([]string(nil), t.Triggers...), t.TriggerPrototypes...) {
				get("trigger name").add(n, where)
			}
			// Graphs and graph prototypes (once expanded) share one name
			// space on a host.
			for _, n := range append(append([]string(nil), t.Graphs...), t.GraphPrototypes...) {
				get("graph name").add(n, where)
			}
			for _, n := range t.ValueMaps {
				get("value map").add(n, where)
			}
			for _, n := range t.Macros {
				get("macro").add(n, where)
			}
			for _, n := range t.Dashboards {
				get("dashboard").add(n, where)
			}
		}
	}
	return idx
}

// classOf says what a clash of a kind does.
var classOf = map[string]string{
	"item key":            refused,  // "Item with key ... already exists on host"
	"graph name":          refused,  // "Graph ... already exists on host", prototypes included
	"macro":               shadowed, // the host resolves a template macro from one of them
	"item name":           confused, // names need not be unique
	"discovery rule name": confused,
	"trigger name":        confused, // triggers are unique by name and expression
	"value map":           confused, // value maps stay on their templates
	"dashboard":           confused, // template dashboards are per template
}

// ourNames lists the names of the checked template that official templates
// could share.
func ourNames(t *template) []ours {
	base := "template:" + t.tech
	var out []ours
	add := func(kind, path, name string, line int) {
		out = append(out, ours{kind: kind, what: path, name: name, line: line, class: classOf[kind]})
	}
	// item adds an item or item prototype with the triggers inside it.
	item := func(scope, kind, tkind string, it *elem) {
		p := scope + "/" + kind + ":" + it.val("key")
		add("item key", p, it.val("key"), it.line)
		add("item name", p, it.val("name"), it.line)
		for _, tr := range it.list(tkind+"s", tkind) {
			add("trigger name", scope+"/"+tkind+":"+tr.val("name"), tr.val("name"), tr.line)
		}
	}
	te := t.el
	for _, it := range te.list("items", "item") {
		item(base, "item", "trigger", it)
	}
	for _, r := range te.list("discovery_rules", "discovery_rule") {
		scope := base + "/discovery_rule:" + r.val("key")
		add("item key", scope, r.val("key"), r.line)
		add("discovery rule name", scope, r.val("name"), r.line)
		for _, p := range r.list("item_prototypes", "item_prototype") {
			item(scope, "item_prototype", "trigger_prototype", p)
		}
		for _, tr := range r.list("trigger_prototypes", "trigger_prototype") {
			add("trigger name", scope+"/trigger_prototype:"+tr.val("name"), tr.val("name"), tr.line)
		}
		for _, g := range r.list("graph_prototypes", "graph_prototype") {
			add("graph name", scope+"/graph_prototype:"+g.val("name"), g.val("name"), g.line)
		}
	}
	for _, e := range t.top {
		switch e.name {
		case "trigger":
			add("trigger name", base+"/trigger:"+e.val("name"), e.val("name"), e.line)
		case "graph":
			add("graph name", base+"/graph:"+e.val("name"), e.val("name"), e.line)
		}
	}
	for _, v := range te.list("valuemaps", "valuemap") {
		add("value map", base+"/valuemap:"+v.val("name"), v.val("name"), v.line)
	}
	for _, m := range te.list("macros", "macro") {
		add("macro", base, m.val("macro"), m.line)
	}
	for _, d := range te.list("dashboards", "dashboard") {
		add("dashboard", base+"/dashboard:"+d.val("name"), d.val("name"), d.line)
	}
	return out
}

// checkOfficial reports every name of the template that an official
// template also uses.
func (c *checker) checkOfficial(t *template) {
	if c.official == nil {
		return
	}
	for _, o := range ourNames(t) {
		idx := c.official[o.kind]
		if idx == nil {
			continue
		}
		if where, hit := idx.match(o.name); hit {
			c.add(o.line, "official-names", o.what, "%s %q is also used by the official template %s: %s", o.kind, o.name, where, o.class)
		}
	}
}
