// Package lint checks Zabbix 6.0 template export files beyond what the
// importer checks: uuids (format, uniqueness, stability against a lock
// file), trigger expressions (own template, existing keys), macros (used
// ⇔ defined with a description), event names, references between objects
// and the conventions of templates/README.md.
//
//	files := []lint.File{{Name: "t.xml", Data: data}}
//	lock, _ := lint.ReadLock("templates/uuids.lock")
//	res := lint.Check(files, lock)
//	for _, f := range res.Findings { fmt.Println(f) }
package lint

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// File is one export file to check.
type File struct {
	Name string
	Data []byte
}

// Finding is one broken rule.
type Finding struct {
	File   string
	Line   int
	Rule   string
	Object string
	Msg    string
	// Lock is set when -update (recording the current uuids) fixes it.
	Lock bool
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	obj := ""
	if f.Object != "" {
		obj = " " + f.Object + ":"
	}
	return fmt.Sprintf("%s: [%s]%s %s", loc, f.Rule, obj, f.Msg)
}

// Object is one object that carries a uuid, named by its lock path.
type Object struct {
	File string
	Line int
	Path string
	UUID string
	// Group objects (top-level template groups) may repeat across files.
	Group bool
}

// Result is the outcome of Check.
type Result struct {
	Findings []Finding
	Objects  []Object
}

// Rules lists the rule names Check reports, for documentation and tests.
var Rules = []string{
	"xml", "version", "uuid", "uuid-unique", "uuid-lock", "name-unique",
	"expression", "threshold", "event-name", "dependency", "master-item",
	"calculated", "graph", "dashboard", "valuemap", "macro-undefined",
	"macro-description", "macro-unused", "description", "history",
	"lifetime", "prototype-key", "polled-prototype", "error-handler",
	"master-history", "official-names", "recovery", "rate-window",
	"manual-close", "opdata", "event-value", "discover",
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)

type checker struct {
	res  Result
	file string
	// broken is set when a file could not be read: its objects are unknown,
	// so none counts as removed from the lock.
	broken bool
	// official holds the names of Zabbix's own templates (nil: not checked).
	official officialIndex
}

func (c *checker) add(line int, rule, object, format string, args ...any) {
	c.res.Findings = append(c.res.Findings, Finding{File: c.file, Line: line, Rule: rule, Object: object, Msg: fmt.Sprintf(format, args...)})
}

// Options adds checks to Check.
type Options struct {
	// Official are the names of Zabbix's own templates; when set, no name
	// of the checked templates may be one of theirs (rule official-names).
	Official []Official
}

// Check lints the files and compares their uuids with the lock.
func Check(files []File, lock Lock) Result { return CheckWith(files, lock, Options{}) }

// CheckWith is Check with the checks of opts.
func CheckWith(files []File, lock Lock, opts Options) Result {
	c := &checker{}
	if len(opts.Official) > 0 {
		c.official = buildIndex(opts.Official)
	}
	for _, f := range files {
		c.file = f.Name
		c.checkFile(f.Data)
	}
	c.file = ""
	c.checkUUIDs(lock)
	sort.SliceStable(c.res.Findings, func(i, j int) bool {
		a, b := c.res.Findings[i], c.res.Findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return c.res
}

// Update returns the lock recording the current objects. It refuses when
// an existing object's uuid changed: that is never right.
func Update(res Result) (Lock, error) {
	for _, f := range res.Findings {
		if f.Rule == "uuid-lock" && !f.Lock {
			return nil, fmt.Errorf("not updating the lock: %s", f)
		}
	}
	l := Lock{}
	for _, o := range res.Objects {
		if !o.Group {
			l[o.Path] = o.UUID
		}
	}
	return l, nil
}

func (c *checker) object(e *elem, path string, group bool) {
	id := e.val("uuid")
	switch {
	case !e.has("uuid"):
		c.add(e.line, "uuid", path, "no uuid")
		return
	case !uuidRe.MatchString(id):
		c.add(e.kid("uuid").line, "uuid", path, "uuid %q is not a version 4 uuid of 32 lower-case hex digits", id)
	}
	c.res.Objects = append(c.res.Objects, Object{File: c.file, Line: e.line, Path: path, UUID: id, Group: group})
}

// template is what checks inside one template need to know.
type template struct {
	tech       string
	items      map[string]*elem // key → item
	triggers   map[string]bool  // triggerID
	graphs     map[string]bool
	protos     map[string]map[string]*elem // rule key → prototype key → prototype
	ptriggers  map[string]map[string]bool  // rule key → triggerID
	pgraphs    map[string]bool             // graph prototype names, all rules
	valuemaps  map[string]bool
	macros     map[string]*elem // name → <macro>
	used       map[string]bool  // macro names used
	dashboards []*elem
	el         *elem   // the <template> element
	top        []*elem // top-level triggers and graphs of this template
}

func (c *checker) checkFile(data []byte) {
	root, err := parse(data)
	if err != nil {
		c.add(0, "xml", "", "malformed XML: %v", err)
		c.broken = true
		return
	}
	if root.name != "zabbix_export" {
		c.add(root.line, "xml", "", "root element is <%s>, not <zabbix_export>", root.name)
		c.broken = true
		return
	}
	if v := root.val("version"); v != "6.0" {
		c.add(root.line, "version", "", "export version %q; the templates ship in the 6.0 format", v)
	}
	for _, g := range root.list("groups", "group") {
		c.object(g, "group:"+g.val("name"), true)
	}
	byTech := map[string]*template{}
	var order []*template
	for _, te := range root.list("templates", "template") {
		t := c.checkTemplate(te)
		byTech[t.tech] = t
		order = append(order, t)
	}
	// Top-level triggers belong to the template their expression names.
	for _, tr := range root.list("triggers", "trigger") {
		refs, _ := itemRefs(tr.val("expression"))
		var t *template
		if len(refs) > 0 {
			t = byTech[refs[0].host]
		}
		if t == nil {
			c.add(tr.line, "expression", "trigger:"+tr.val("name"), "top-level trigger does not reference a template of this file")
			continue
		}
		c.checkTrigger(t, tr, "template:"+t.tech, "", "trigger")
		t.top = append(t.top, tr)
		tr.texts(func(s string, _ int) {
			_, names := userMacros(s)
			for _, n := range names {
				t.used[n] = true
			}
		})
	}
	for _, g := range root.list("graphs", "graph") {
		var t *template
		if gi := g.list("graph_items", "graph_item"); len(gi) > 0 {
			t = byTech[gi[0].kid("item").val("host")]
		}
		if t == nil {
			c.add(g.line, "graph", "graph:"+g.val("name"), "graph does not draw an item of a template of this file")
			continue
		}
		c.checkGraph(t, g, "template:"+t.tech, "", "graph")
		t.top = append(t.top, g)
	}
	for _, t := range order {
		for _, d := range t.dashboards {
			c.checkDashboard(t, d, "template:"+t.tech)
		}
		c.checkMacros(t)
		var trigs []*elem
		for _, e := range t.top {
			if e.name == "trigger" {
				trigs = append(trigs, e)
			}
		}
		c.checkPolling(t, t.el, trigs)
		c.checkOfficial(t)
	}
}

func (c *checker) checkTemplate(te *elem) *template {
	t := &template{
		tech: te.val("template"), items: map[string]*elem{}, triggers: map[string]bool{},
		graphs: map[string]bool{}, protos: map[string]map[string]*elem{}, ptriggers: map[string]map[string]bool{},
		pgraphs: map[string]bool{}, valuemaps: map[string]bool{}, macros: map[string]*elem{}, used: map[string]bool{},
		el: te,
	}
	base := "template:" + t.tech
	c.object(te, base, false)
	if t.tech == "" || te.val("name") == "" {
		c.add(te.line, "name-unique", base, "template needs a technical name and a visible name")
	}
	// Index everything first: references may point forward.
	for _, m := range te.list("macros", "macro") {
		name := m.val("macro")
		if _, dup := t.macros[name]; dup {
			c.add(m.line, "name-unique", base, "macro %s defined twice", name)
		}
		t.macros[name] = m
	}
	for _, v := range te.list("valuemaps", "valuemap") {
		t.valuemaps[v.val("name")] = true
	}
	for _, it := range te.list("items", "item") {
		key := it.val("key")
		if _, dup := t.items[key]; dup {
			c.add(it.line, "name-unique", base, "item key %s used twice", key)
		}
		t.items[key] = it
		for _, tr := range it.list("triggers", "trigger") {
			t.triggers[triggerID(tr)] = true
		}
	}
	rules := te.list("discovery_rules", "discovery_rule")
	for _, r := range rules {
		rk := r.val("key")
		t.protos[rk] = map[string]*elem{}
		t.ptriggers[rk] = map[string]bool{}
		for _, p := range r.list("item_prototypes", "item_prototype") {
			if _, dup := t.protos[rk][p.val("key")]; dup {
				c.add(p.line, "name-unique", base, "item prototype key %s used twice", p.val("key"))
			}
			t.protos[rk][p.val("key")] = p
			for _, tr := range p.list("trigger_prototypes", "trigger_prototype") {
				t.ptriggers[rk][triggerID(tr)] = true
			}
		}
		for _, tr := range r.list("trigger_prototypes", "trigger_prototype") {
			t.ptriggers[rk][triggerID(tr)] = true
		}
		for _, g := range r.list("graph_prototypes", "graph_prototype") {
			t.pgraphs[g.val("name")] = true
		}
	}
	// Macros used anywhere in the template except their own definitions.
	for _, k := range te.kids {
		if k.name == "macros" {
			continue
		}
		k.texts(func(s string, _ int) {
			_, names := userMacros(s)
			for _, n := range names {
				t.used[n] = true
			}
		})
	}

	names := map[string]bool{}
	for _, it := range te.list("items", "item") {
		c.checkItem(t, it, base, "", "item")
		for _, tr := range it.list("triggers", "trigger") {
			c.checkTrigger(t, tr, base, "", "trigger")
			if len(refsOf(tr)) > 0 && refsOf(tr)[0].key != it.val("key") {
				c.add(tr.line, "expression", base+"/trigger:"+tr.val("name"), "trigger inside item %s does not use it", it.val("key"))
			}
			if names[tr.val("name")] {
				c.add(tr.line, "name-unique", base, "trigger name %q used twice", tr.val("name"))
			}
			names[tr.val("name")] = true
		}
	}
	for _, r := range rules {
		c.checkRule(t, r, base)
	}
	t.dashboards = te.list("dashboards", "dashboard") // checked once top-level graphs are known
	for _, v := range te.list("valuemaps", "valuemap") {
		c.object(v, base+"/valuemap:"+v.val("name"), false)
	}
	return t
}

// triggerID is what identifies a trigger to a dependency: name,
// expression and recovery expression.
func triggerID(tr *elem) string {
	return tr.val("name") + "\x00" + tr.val("expression") + "\x00" + tr.val("recovery_expression")
}

func refsOf(tr *elem) []itemRef {
	refs, _ := itemRefs(tr.val("expression"))
	return refs
}

// checkItem checks an item (rule == "") or an item prototype of rule.
func (c *checker) checkItem(t *template, it *elem, base, rule, kind string) {
	key := it.val("key")
	scope := base
	if rule != "" {
		scope = base + "/discovery_rule:" + rule
	}
	path := scope + "/" + kind + ":" + key
	c.object(it, path, false)
	if strings.TrimSpace(it.val("description")) == "" {
		c.add(it.line, "description", path, "no description")
	}
	if !it.has("history") {
		c.add(it.line, "history", path, "no explicit <history> (newer servers change the default)")
	}
	switch it.val("value_type") {
	case "TEXT", "CHAR", "LOG":
		if it.val("trends") != "0" {
			c.add(it.line, "history", path, "text item keeps trends; set <trends>0</trends>")
		}
	}
	if rule != "" && !strings.Contains(key, "{#") {
		c.add(it.line, "prototype-key", path, "prototype key has no LLD macro, every discovered item would get the same key")
	}
	if rule == "" && strings.Contains(key, "{#") {
		c.add(it.line, "prototype-key", path, "item key uses an LLD macro outside a discovery rule")
	}
	if vm := it.kid("valuemap"); vm != nil && !t.valuemaps[vm.val("name")] {
		c.add(vm.line, "valuemap", path, "value map %q is not defined in the template", vm.val("name"))
	}
	if it.val("type") == "DEPENDENT" {
		m := it.kid("master_item").val("key")
		if !c.knownKey(t, rule, m) {
			c.add(it.line, "master-item", path, "master item %q is not an item of the template%s", m, ruleText(rule))
		}
		if m == key {
			c.add(it.line, "master-item", path, "item is its own master")
		}
	}
	if it.val("type") == "CALCULATED" {
		refs, err := itemRefs(it.val("params"))
		if err != nil {
			c.add(it.line, "calculated", path, "formula: %v", err)
		}
		if len(refs) == 0 && err == nil {
			c.add(it.line, "calculated", path, "formula references no item")
		}
		for _, r := range refs {
			if r.host != "" && r.host != t.tech {
				c.add(it.line, "calculated", path, "formula reads host %q, not this template", r.host)
			}
			if !c.knownKey(t, rule, r.key) {
				c.add(it.line, "calculated", path, "formula reads %q, not an item of the template%s", r.key, ruleText(rule))
			}
		}
	}
}

func ruleText(rule string) string {
	if rule == "" {
		return ""
	}
	return " or a prototype of " + rule
}

// knownKey reports whether key is an item of the template or, with rule
// set, a prototype of that rule.
func (c *checker) knownKey(t *template, rule, key string) bool {
	if t.items[key] != nil {
		return true
	}
	return rule != "" && t.protos[rule][key] != nil
}

func (c *checker) checkRule(t *template, r *elem, base string) {
	rk := r.val("key")
	path := base + "/discovery_rule:" + rk
	c.object(r, path, false)
	if strings.TrimSpace(r.val("description")) == "" {
		c.add(r.line, "description", path, "no description")
	}
	if !r.has("lifetime") {
		c.add(r.line, "lifetime", path, "no explicit <lifetime> (newer servers change the default)")
	}
	names := map[string]bool{}
	for _, p := range r.list("item_prototypes", "item_prototype") {
		c.checkItem(t, p, base, rk, "item_prototype")
		for _, tr := range p.list("trigger_prototypes", "trigger_prototype") {
			c.checkTrigger(t, tr, base, rk, "trigger_prototype")
			if refs := refsOf(tr); len(refs) > 0 && refs[0].key != p.val("key") {
				c.add(tr.line, "expression", path+"/trigger_prototype:"+tr.val("name"), "trigger prototype inside %s does not use it", p.val("key"))
			}
			if names[tr.val("name")] {
				c.add(tr.line, "name-unique", path, "trigger prototype name %q used twice", tr.val("name"))
			}
			names[tr.val("name")] = true
		}
	}
	for _, tr := range r.list("trigger_prototypes", "trigger_prototype") {
		c.checkTrigger(t, tr, base, rk, "trigger_prototype")
		if names[tr.val("name")] {
			c.add(tr.line, "name-unique", path, "trigger prototype name %q used twice", tr.val("name"))
		}
		names[tr.val("name")] = true
	}
	for _, g := range r.list("graph_prototypes", "graph_prototype") {
		c.checkGraph(t, g, base, rk, "graph_prototype")
	}
	for _, cond := range r.kid("filter").list("conditions", "condition") {
		if !strings.HasPrefix(cond.val("macro"), "{#") {
			c.add(cond.line, "expression", path, "filter condition on %q, not an LLD macro", cond.val("macro"))
		}
	}
}

// checkTrigger checks a trigger (rule == "") or a trigger prototype.
func (c *checker) checkTrigger(t *template, tr *elem, base, rule, kind string) {
	name := tr.val("name")
	scope := base
	if rule != "" {
		scope = base + "/discovery_rule:" + rule
	}
	path := scope + "/" + kind + ":" + name
	c.object(tr, path, false)
	if strings.TrimSpace(tr.val("description")) == "" {
		c.add(tr.line, "description", path, "no description")
	}
	expr := tr.val("expression")
	all := expr
	if rec := tr.val("recovery_expression"); rec != "" {
		all += " " + rec
	}
	refs, err := itemRefs(all)
	switch {
	case err != nil:
		c.add(tr.line, "expression", path, "cannot parse expression: %v", err)
	case len(refs) == 0:
		c.add(tr.line, "expression", path, "expression references no item")
	}
	protoUsed := false
	for _, r := range refs {
		if r.host != t.tech {
			c.add(tr.line, "expression", path, "expression uses host %q, not its template %q", r.host, t.tech)
		}
		if !c.knownKey(t, rule, r.key) {
			c.add(tr.line, "expression", path, "expression uses key %q, not an item of the template%s", r.key, ruleText(rule))
		}
		if rule != "" && t.protos[rule][r.key] != nil {
			protoUsed = true
			c.checkDiscovered(t, rule, r.key, tr.line, path, "trigger prototype")
		}
	}
	if rule != "" && len(refs) > 0 && !protoUsed {
		c.add(tr.line, "expression", path, "trigger prototype uses no item prototype of %s", rule)
	}
	for _, n := range literalConstants(expr) {
		if n != "0" && n != "1" {
			c.add(tr.line, "threshold", path, "constant %s in the expression; put thresholds in macros", n)
		}
	}
	if ev := tr.val("event_name"); ev != "" {
		if !strings.HasPrefix(ev, name) {
			c.add(tr.kid("event_name").line, "event-name", path, "event name %q does not start with the trigger name", ev)
		}
		whole, _ := userMacros(ev)
		for _, m := range whole {
			if !strings.Contains(all, m) {
				c.add(tr.kid("event_name").line, "event-name", path, "event name shows %s, which the expression does not use", m)
			}
		}
	}
	c.checkAlerting(t, tr, rule, path)
	for _, d := range tr.list("dependencies", "dependency") {
		// The importer finds a dependency by name, expression and
		// recovery expression: all three must be those of the trigger.
		k := triggerID(d)
		if !t.triggers[k] && !(rule != "" && t.ptriggers[rule][k]) {
			c.add(d.line, "dependency", path, "depends on %q, which is not a trigger of the template%s with that expression", d.val("name"), ruleText(rule))
		}
		if triggerID(d) == triggerID(tr) {
			c.add(d.line, "dependency", path, "depends on itself")
		}
	}
}

func (c *checker) checkGraph(t *template, g *elem, base, rule, kind string) {
	scope := base
	if rule != "" {
		scope = base + "/discovery_rule:" + rule
	}
	path := scope + "/" + kind + ":" + g.val("name")
	c.object(g, path, false)
	items := g.list("graph_items", "graph_item")
	if len(items) == 0 {
		c.add(g.line, "graph", path, "graph without items")
	}
	for _, gi := range items {
		host, key := gi.kid("item").val("host"), gi.kid("item").val("key")
		if host != t.tech {
			c.add(gi.line, "graph", path, "draws %s of host %q, not of its template", key, host)
		}
		if !c.knownKey(t, rule, key) {
			c.add(gi.line, "graph", path, "draws %q, not an item of the template%s", key, ruleText(rule))
		}
		if rule != "" && t.protos[rule][key] != nil {
			c.checkDiscovered(t, rule, key, gi.line, path, "graph prototype")
		}
	}
	if rule == "" {
		t.graphs[g.val("name")] = true
	}
}

// checkDiscovered reports a trigger or graph prototype that uses an item
// prototype discovery does not create (<discover>NO_DISCOVER</discover>,
// kept for users to switch on): the trigger or graph would never exist on
// a host, and no error would say so.
func (c *checker) checkDiscovered(t *template, rule, key string, line int, path, what string) {
	if p := t.protos[rule][key]; p != nil && p.val("discover") == "NO_DISCOVER" {
		c.add(line, "discover", path, "%s uses %s, an item prototype that is not discovered (NO_DISCOVER): it would never be created", what, key)
	}
}

func (c *checker) checkDashboard(t *template, d *elem, base string) {
	path := base + "/dashboard:" + d.val("name")
	c.object(d, path, false)
	for _, p := range d.list("pages", "page") {
		for _, w := range p.list("widgets", "widget") {
			x, width := atoi(w.val("x")), atoi(w.val("width"))
			if width == 0 {
				width = 1
			}
			if x+width > 24 {
				c.add(w.line, "dashboard", path, "widget at x=%d width %d leaves the 24-column 6.0 grid", x, width)
			}
			for _, f := range w.list("fields", "field") {
				typ := f.val("type")
				if typ != "GRAPH" && typ != "GRAPH_PROTOTYPE" {
					continue
				}
				v := f.kid("value")
				host, name := v.val("host"), v.val("name")
				if host != t.tech {
					c.add(f.line, "dashboard", path, "widget shows a graph of host %q, not of its template", host)
				}
				known := t.graphs[name]
				if typ == "GRAPH_PROTOTYPE" {
					known = t.pgraphs[name]
				}
				if !known {
					c.add(f.line, "dashboard", path, "widget shows %s %q, which the template does not have", strings.ToLower(typ), name)
				}
			}
		}
	}
}

func (c *checker) checkMacros(t *template) {
	base := "template:" + t.tech
	for _, name := range sortedKeys(t.used) {
		if t.macros[name] == nil {
			c.add(0, "macro-undefined", base, "macro %s is used but not defined in the template", name)
		}
	}
	for _, name := range sortedKeys(t.macros) {
		m := t.macros[name]
		if strings.TrimSpace(m.val("description")) == "" {
			c.add(m.line, "macro-description", base, "macro %s has no description", name)
		}
		if !t.used[name] {
			c.add(m.line, "macro-unused", base, "macro %s is defined but not used", name)
		}
	}
}

// checkUUIDs checks uniqueness across all files and stability against the
// lock.
func (c *checker) checkUUIDs(lock Lock) {
	byUUID := map[string]Object{}
	cur := map[string]Object{}
	for _, o := range c.res.Objects {
		if prev, dup := byUUID[o.UUID]; dup && !(o.Group && prev.Group && prev.Path == o.Path) {
			c.res.Findings = append(c.res.Findings, Finding{File: o.File, Line: o.Line, Rule: "uuid-unique", Object: o.Path,
				Msg: fmt.Sprintf("uuid %s is also the uuid of %s (%s:%d)", o.UUID, prev.Path, prev.File, prev.Line)})
		}
		byUUID[o.UUID] = o
		if o.Group {
			continue
		}
		if prev, dup := cur[o.Path]; dup {
			c.res.Findings = append(c.res.Findings, Finding{File: o.File, Line: o.Line, Rule: "name-unique", Object: o.Path,
				Msg: fmt.Sprintf("two objects with this path (also %s:%d)", prev.File, prev.Line)})
		}
		cur[o.Path] = o
	}
	lockByUUID := map[string]string{}
	for p, id := range lock {
		lockByUUID[id] = p
	}
	for _, p := range sortedKeys(cur) {
		o := cur[p]
		old, ok := lock[p]
		switch {
		case ok && old != o.UUID:
			c.res.Findings = append(c.res.Findings, Finding{File: o.File, Line: o.Line, Rule: "uuid-lock", Object: p,
				Msg: fmt.Sprintf("uuid changed from %s (uuids.lock) to %s; a new uuid makes servers delete the object and its history", old, o.UUID)})
		case !ok:
			msg := "new object, not in uuids.lock; record it with -update"
			if op, found := lockByUUID[o.UUID]; found {
				if _, still := cur[op]; !still {
					msg = "renamed from " + op + " (same uuid); record it with -update"
				}
			}
			c.res.Findings = append(c.res.Findings, Finding{File: o.File, Line: o.Line, Rule: "uuid-lock", Object: p, Msg: msg, Lock: true})
		}
	}
	for _, p := range sortedKeys(lock) {
		if c.broken {
			break
		}
		if _, ok := cur[p]; ok {
			continue
		}
		renamed := false
		for _, o := range cur {
			if o.UUID == lock[p] {
				renamed = true
			}
		}
		if !renamed {
			msg := "object no longer in any template; record the removal with -update"
			if strings.Contains(p, "/item_prototype:") {
				// Seen on 6.0.14: the import deleted a removed master
				// prototype, its dependents with it, then failed to update them.
				msg += " (an import deletes a prototype the file no longer has, and every prototype dependent on it with its history: to move dependents to a new master, give the new master this uuid instead)"
			}
			c.res.Findings = append(c.res.Findings, Finding{File: "uuids.lock", Rule: "uuid-lock", Object: p, Msg: msg, Lock: true})
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func atoi(s string) int {
	n := 0
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0
		}
		n = n*10 + int(ch-'0')
	}
	return n
}
