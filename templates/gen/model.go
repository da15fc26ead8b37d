package main

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"zabbix-agent2-plugin-tcpstatus/templates/lint/lint"
)

// Template is one Zabbix template as the generator describes it; render
// turns it into 6.0 export XML.
type Template struct {
	Tech        string // technical name, the host part of expressions
	Name        string
	Description string
	Group       string
	Items       []*Item
	Rules       []*Rule
	Triggers    []*Trigger // placed inside their item when they use one item
	Graphs      []*Graph
	Tags        []Tag
	Macros      []Macro
	Dashboards  []*Dashboard
	ValueMaps   []*ValueMap
}

// Item is an item or an item prototype.
type Item struct {
	Name        string
	Type        string // "" = ZABBIX_PASSIVE, DEPENDENT, CALCULATED
	Key         string
	Delay       string
	History     string
	Trends      string
	ValueType   string // "" = UNSIGNED, FLOAT, TEXT, ...
	Units       string
	Params      string // formula of a calculated item
	Description string
	ValueMap    string
	Pre         []Step
	Master      string
	Tags        []Tag
	// NoDiscover keeps a prototype in the template without discovering
	// it (a user switches it on in the template or by a rule override).
	NoDiscover bool
	triggers   []*Trigger
}

// Step is one preprocessing step.
type Step struct {
	Type          string
	Params        []string
	ErrHandler    string
	ErrHandlerArg string
}

// Trigger is a trigger or a trigger prototype.
type Trigger struct {
	Expr        string
	Recovery    string // recovery expression; "" = none (NoRecovery says why)
	NoRecovery  string // why the problem expression alone decides recovery
	Why         string // why the defaults are what they are (README)
	Name        string
	EventName   string
	Opdata      string
	Priority    string
	Description string
	ManualClose bool
	DependsOn   []*Trigger
	Tags        []Tag
}

// Rule is a low-level discovery rule with its prototypes.
type Rule struct {
	Name        string
	Type        string // "" = ZABBIX_PASSIVE, DEPENDENT
	Key         string
	Master      string // master item key of a DEPENDENT rule
	Delay       string
	Lifetime    string
	Description string
	Filter      []Cond // AND of all conditions
	Items       []*Item
	Triggers    []*Trigger
	Graphs      []*Graph
	Pre         []Step
	MacroPaths  [][2]string // LLD macro, JSONPath
}

// Cond is one LLD filter condition.
type Cond struct {
	Macro    string
	Value    string
	Operator string // "" = MATCHES_REGEX, NOT_MATCHES_REGEX
}

// Graph is a graph or a graph prototype.
type Graph struct {
	Name  string
	Type  string // "" = NORMAL, STACKED
	Items []GraphItem
	// NoTriggers hides trigger threshold lines (a stacked graph would
	// draw one item's thresholds over another's area).
	NoTriggers bool
	// Percent fixes the Y axis at 0-100.
	Percent bool
}

// GraphItem is one line of a graph.
type GraphItem struct {
	Key      string
	Color    string
	DrawType string // "" = SINGLE_LINE, FILLED_REGION, BOLD_LINE, ...
	Right    bool   // right Y axis
}

// Dashboard is a template dashboard of graph widgets.
type Dashboard struct {
	Name  string
	Pages []Page
}

// Page is one dashboard page.
type Page struct {
	Name    string
	Widgets []Widget
}

// Widget is one widget on a 24-column grid: a graph, a graph prototype
// (Columns × Rows of the discovered graphs at once), the current value of
// an item (Item) or the latest values of a text item (Text; 7.0's
// converter fails on it in an XML file).
type Widget struct {
	Name          string
	Graph         string
	Prototype     bool
	Columns, Rows int
	Item          string // key: an ITEM widget (current value)
	Text          string // key: a PLAIN_TEXT widget (latest value)
	X, Y, W, H    int
}

// ValueMap maps raw values to text.
type ValueMap struct {
	Name     string
	Mappings [][2]string // value, new value
}

// Tag is a name/value tag.
type Tag struct{ Tag, Value string }

// Macro is a user macro with its default and description.
type Macro struct{ Macro, Value, Description string }

var keyRefRe = regexp.MustCompile(`\(/[^/]*/([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)`)

// exprKeys lists the distinct item keys an expression uses.
func exprKeys(expr string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range keyRefRe.FindAllStringSubmatch(expr, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// place moves every trigger that uses exactly one item of items into that
// item; the rest stay in the returned list (top level, or the rule's
// trigger_prototypes).
func place(triggers []*Trigger, items []*Item) []*Trigger {
	byKey := map[string]*Item{}
	for _, it := range items {
		byKey[it.Key] = it
	}
	var rest []*Trigger
	for _, t := range triggers {
		keys := exprKeys(t.Expr + " " + t.Recovery)
		if len(keys) == 1 && byKey[keys[0]] != nil {
			byKey[keys[0]].triggers = append(byKey[keys[0]].triggers, t)
			continue
		}
		rest = append(rest, t)
	}
	return rest
}

// ids hands out the uuid recorded for each object path, minting v4 uuids
// for new objects.
type ids struct {
	lock map[string]string
	used map[string]bool
	mint func() string
}

func (u *ids) get(path string) string {
	id, ok := u.lock[path]
	if !ok {
		id = u.mint()
		u.lock[path] = id
	}
	u.used[path] = true
	return id
}

func itemOrder(it *Item) []string      { return []string{it.Key} }
func triggerOrder(t *Trigger) []string { return []string{t.Name, t.Expr} }
func graphOrder(g *Graph) []string     { return []string{g.Name} }

func tagsNode(tags []Tag) *node {
	var ns []*node
	for _, t := range sortedBy(tags, func(t Tag) []string { return []string{t.Tag, t.Value} }) {
		ns = append(ns, el("tag", tx("tag", t.Tag), tx("value", t.Value)))
	}
	return list("tags", ns)
}

func stepsNode(steps []Step) *node {
	var ns []*node
	for _, s := range steps {
		var ps []*node
		for _, p := range s.Params {
			if p == "" {
				ps = append(ps, empty("parameter"))
			} else {
				ps = append(ps, tx("parameter", p))
			}
		}
		if len(ps) == 0 {
			ps = append(ps, empty("parameter"))
		}
		ns = append(ns, el("step",
			tx("type", s.Type),
			el("parameters", ps...),
			tx("error_handler", s.ErrHandler),
			tx("error_handler_params", s.ErrHandlerArg)))
	}
	return list("preprocessing", ns)
}

// render writes the template as a 6.0 export file, taking uuids from u.
func render(t *Template, u *ids) string {
	base := "template:" + t.Tech
	// Triggers are named by their path without placement, so moving one
	// between an item and the top level keeps its uuid.
	top := place(t.Triggers, t.Items)
	var items []*node
	for _, it := range sortedBy(t.Items, itemOrder) {
		items = append(items, itemNode("item", it, base, base, u))
	}
	var rules []*node
	for _, r := range sortedBy(t.Rules, func(r *Rule) []string { return []string{r.Key} }) {
		rules = append(rules, ruleNode(t, r, base, u))
	}
	var macros []*node
	for _, m := range sortedBy(t.Macros, func(m Macro) []string { return []string{m.Macro[2 : len(m.Macro)-1]} }) {
		macros = append(macros, el("macro", tx("macro", m.Macro), tx("value", m.Value), tx("description", m.Description)))
	}
	var dashboards []*node
	for _, d := range sortedBy(t.Dashboards, func(d *Dashboard) []string { return []string{d.Name} }) {
		dashboards = append(dashboards, dashboardNode(t, d, base, u))
	}
	var vms []*node
	for _, v := range sortedBy(t.ValueMaps, func(v *ValueMap) []string { return []string{v.Name} }) {
		var ms []*node
		for _, m := range v.Mappings {
			ms = append(ms, el("mapping", tx("value", m[0]), tx("newvalue", m[1])))
		}
		vms = append(vms, el("valuemap", tx("uuid", u.get(base+"/valuemap:"+v.Name)), tx("name", v.Name), list("mappings", ms)))
	}
	tmpl := el("template",
		tx("uuid", u.get(base)),
		tx("template", t.Tech),
		tx("name", t.Name),
		tx("description", t.Description),
		el("groups", el("group", tx("name", t.Group))),
		list("items", items),
		list("discovery_rules", rules),
		tagsNode(t.Tags),
		list("macros", macros),
		list("dashboards", dashboards),
		list("valuemaps", vms),
	)
	var trigs []*node
	for _, tr := range sortedBy(top, triggerOrder) {
		trigs = append(trigs, triggerNode("trigger", tr, base, u))
	}
	var graphs []*node
	for _, g := range sortedBy(t.Graphs, graphOrder) {
		graphs = append(graphs, graphNode("graph", g, t.Tech, base, u))
	}
	root := el("zabbix_export",
		tx("version", "6.0"),
		el("groups", el("group", tx("uuid", groupUUID[t.Group]), tx("name", t.Group))),
		el("templates", tmpl),
		list("triggers", trigs),
		list("graphs", graphs),
	)
	return document(root)
}

// groupUUID holds the uuids of the template groups a new 6.0 database ships
// with, so importing never creates a second group of the same name.
var groupUUID = map[string]string{
	"Templates/Operating systems": "846977d1dfed4968bc5f8bdb363285bc",
}

func itemNode(kind string, it *Item, base, scope string, u *ids) *node {
	var trigs []*node
	tkind := "trigger"
	if kind == "item_prototype" {
		tkind = "trigger_prototype"
	}
	for _, tr := range sortedBy(it.triggers, triggerOrder) {
		trigs = append(trigs, triggerNode(tkind, tr, scope, u))
	}
	var master *node
	if it.Master != "" {
		master = el("master_item", tx("key", it.Master))
	}
	var vm *node
	if it.ValueMap != "" {
		vm = el("valuemap", tx("name", it.ValueMap))
	}
	return el(kind,
		tx("uuid", u.get(scope+"/"+kind+":"+it.Key)),
		tx("name", it.Name),
		tx("type", it.Type),
		tx("key", it.Key),
		tx("delay", omitDefault(it.Delay, "1m")),
		tx("history", it.History),
		tx("trends", it.Trends),
		tx("discover", map[bool]string{true: "NO_DISCOVER"}[it.NoDiscover]),
		tx("value_type", it.ValueType),
		tx("units", it.Units),
		tx("params", it.Params),
		tx("description", it.Description),
		vm,
		stepsNode(it.Pre),
		master,
		tagsNode(it.Tags),
		list(tkind+"s", trigs),
	)
}

// triggerDescription is the trigger's description, with the reason it has
// no recovery expression when it has none.
func triggerDescription(tr *Trigger) string {
	if tr.Recovery == "" && tr.NoRecovery != "" {
		return tr.Description + "\n\n" + lint.NoRecoveryMark + tr.NoRecovery
	}
	return tr.Description
}

func triggerNode(kind string, tr *Trigger, scope string, u *ids) *node {
	var deps []*node
	for _, d := range sortedBy(tr.DependsOn, triggerOrder) {
		// The importer finds the trigger by name, expression and
		// recovery expression.
		deps = append(deps, el("dependency", tx("name", d.Name), tx("expression", d.Expr), tx("recovery_expression", d.Recovery)))
	}
	manual := ""
	if tr.ManualClose {
		manual = "YES"
	}
	mode := ""
	if tr.Recovery != "" {
		mode = "RECOVERY_EXPRESSION"
	}
	return el(kind,
		tx("uuid", u.get(scope+"/"+kind+":"+tr.Name)),
		tx("expression", tr.Expr),
		tx("recovery_mode", mode),
		tx("recovery_expression", tr.Recovery),
		tx("name", tr.Name),
		tx("event_name", tr.EventName),
		tx("opdata", tr.Opdata),
		tx("priority", tr.Priority),
		tx("description", triggerDescription(tr)),
		tx("manual_close", manual),
		list("dependencies", deps),
		tagsNode(tr.Tags),
	)
}

func ruleNode(t *Template, r *Rule, base string, u *ids) *node {
	scope := base + "/discovery_rule:" + r.Key
	rest := place(r.Triggers, r.Items)
	var items []*node
	for _, it := range sortedBy(r.Items, itemOrder) {
		items = append(items, itemNode("item_prototype", it, base, scope, u))
	}
	var trigs []*node
	for _, tr := range sortedBy(rest, triggerOrder) {
		trigs = append(trigs, triggerNode("trigger_prototype", tr, scope, u))
	}
	var graphs []*node
	for _, g := range sortedBy(r.Graphs, graphOrder) {
		graphs = append(graphs, graphNode("graph_prototype", g, t.Tech, scope, u))
	}
	var conds []*node
	for i, c := range r.Filter {
		conds = append(conds, el("condition",
			tx("macro", c.Macro), tx("value", c.Value), tx("operator", c.Operator),
			tx("formulaid", string(rune('A'+i)))))
	}
	var filter *node
	if len(conds) > 0 {
		filter = el("filter", tx("evaltype", "AND"), el("conditions", conds...))
	}
	var master *node
	delay := omitDefault(r.Delay, "1m")
	if r.Master != "" {
		master = el("master_item", tx("key", r.Master))
		delay = "0"
	}
	var paths []*node
	for _, mp := range sortedBy(r.MacroPaths, func(mp [2]string) []string { return []string{mp[0]} }) {
		paths = append(paths, el("lld_macro_path", tx("lld_macro", mp[0]), tx("path", mp[1])))
	}
	return el("discovery_rule",
		tx("uuid", u.get(scope)),
		tx("name", r.Name),
		tx("type", r.Type),
		tx("key", r.Key),
		tx("delay", delay),
		filter,
		tx("lifetime", r.Lifetime),
		tx("description", r.Description),
		list("item_prototypes", items),
		list("trigger_prototypes", trigs),
		list("graph_prototypes", graphs),
		master,
		list("lld_macro_paths", paths),
		stepsNode(r.Pre),
	)
}

func graphNode(kind string, g *Graph, tech, scope string, u *ids) *node {
	var gis []*node
	for i, gi := range g.Items {
		side := ""
		if gi.Right {
			side = "RIGHT"
		}
		so := ""
		if i > 0 {
			so = strconv.Itoa(i)
		}
		gis = append(gis, el("graph_item",
			tx("sortorder", so),
			tx("drawtype", gi.DrawType),
			tx("color", gi.Color),
			tx("yaxisside", side),
			el("item", tx("host", tech), tx("key", gi.Key))))
	}
	show, ymaxType := "", ""
	if g.NoTriggers {
		show = "NO"
	}
	if g.Percent {
		// A fixed maximum; its value, 100, is the default the export
		// leaves out.
		ymaxType = "FIXED"
	}
	return el(kind,
		tx("uuid", u.get(scope+"/"+kind+":"+g.Name)),
		tx("name", g.Name),
		tx("show_triggers", show),
		tx("type", g.Type),
		tx("ymax_type_1", ymaxType),
		list("graph_items", gis),
	)
}

func dashboardNode(t *Template, d *Dashboard, base string, u *ids) *node {
	var pages []*node
	for _, p := range d.Pages {
		var ws []*node
		// The export sorts widgets by name (a stable sort: unnamed ones
		// first, in their order) and their fields by type.
		for _, w := range sortedBy(p.Widgets, func(w Widget) []string { return []string{w.Name} }) {
			ws = append(ws, widgetNode(t, w))
		}
		pages = append(pages, el("page", tx("name", p.Name), el("widgets", ws...)))
	}
	return el("dashboard", tx("uuid", u.get(base+"/dashboard:"+d.Name)), tx("name", d.Name), el("pages", pages...))
}

// widgetNode writes one widget, its fields ordered by their numeric type
// (INTEGER 0, STRING 1, ITEM 4, GRAPH 6, GRAPH_PROTOTYPE 7) as the export
// does.
func widgetNode(t *Template, w Widget) *node {
	ref := func(ftyp, name string, key string) *node {
		return el("field", tx("type", ftyp), tx("name", name), el("value", tx("host", t.Tech), tx("key", key)))
	}
	num := func(name string, v int) *node {
		return el("field", tx("type", "INTEGER"), tx("name", name), tx("value", strconv.Itoa(v)))
	}
	var typ string
	var fields []*node
	switch {
	case w.Item != "":
		typ = "ITEM"
		fields = []*node{ref("ITEM", "itemid", w.Item)}
	case w.Text != "":
		typ = "PLAIN_TEXT"
		fields = []*node{num("show_lines", 1), ref("ITEM", "itemids", w.Text)}
	case w.Prototype:
		typ = "GRAPH_PROTOTYPE"
		fields = []*node{num("columns", max(w.Columns, 1))}
		if w.Rows > 1 {
			fields = append(fields, num("rows", w.Rows))
		}
		fields = append(fields, el("field", tx("type", "GRAPH_PROTOTYPE"), tx("name", "graphid"),
			el("value", tx("host", t.Tech), tx("name", w.Graph))))
	default:
		typ = "GRAPH_CLASSIC"
		fields = []*node{el("field", tx("type", "GRAPH"), tx("name", "graphid"),
			el("value", tx("host", t.Tech), tx("name", w.Graph)))}
	}
	return el("widget",
		tx("type", typ),
		tx("name", w.Name),
		tx("x", nz(w.X)),
		tx("y", nz(w.Y)),
		tx("width", strconv.Itoa(w.W)),
		tx("height", strconv.Itoa(w.H)),
		el("fields", fields...))
}

// omitDefault drops a value equal to the default, as the export does.
func omitDefault(v, def string) string {
	if v == def {
		return ""
	}
	return v
}

func nz(i int) string {
	if i == 0 {
		return ""
	}
	return strconv.Itoa(i)
}

// macrosIn lists the user macro names ({$NAME}) a text uses, sorted.
func macrosIn(s string) []string {
	re := regexp.MustCompile(`\{\$([A-Z0-9_.]+)[:}]`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		seen["{$"+m[1]+"}"] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
