package lint

import (
	"strings"
)

// Rules about what a template costs the agent per interval and how its
// masters feed their dependents:
//
//   - polled-prototype: no item prototype makes an agent request (only
//     DEPENDENT and CALCULATED prototypes), so the agent requests per
//     interval do not grow with what discovery finds. Calculated items are
//     evaluated by the server from stored values.
//   - master-item (also in checkItem): a dependent discovery rule's master is
//     an item of the template; dependency chains end in a polled item (no
//     cycle).
//   - error-handler: a JSONPath step that filters on an LLD macro has an
//     error handler that sets a value or discards it: when the discovered
//     object is absent from the master's answer, the path finds nothing.
//   - error-handler (also): no error handler on a step type for which the
//     6.0 API refuses one (JavaScript, trims, throttling, string replace):
//     an import creating the item passes, one updating it over an older
//     template fails with "Incorrect value for field "error_handler"".
//   - master-history: a master item keeps history only when a trigger or a
//     calculated item reads it; an item with history 0 is read by none
//     (history 0 values never reach triggers or calculated items).

// agentFree lists the item types that make no request to the monitored
// host's agent.
var agentFree = map[string]bool{"DEPENDENT": true, "CALCULATED": true}

// checkPolling runs the rules above on one template element.
func (c *checker) checkPolling(t *template, te *elem, top []*elem) {
	base := "template:" + t.tech
	type node struct {
		path, master string
		line         int
	}
	masters := map[string]*node{} // item or prototype key → its master link
	dependents := map[string]int{}
	record := func(scope, kind string, it *elem) {
		key := it.val("key")
		n := &node{path: scope + "/" + kind + ":" + key, line: it.line}
		if it.val("type") == "DEPENDENT" {
			n.master = it.kid("master_item").val("key")
			dependents[n.master]++
		}
		masters[key] = n
	}
	items := te.list("items", "item")
	for _, it := range items {
		record(base, "item", it)
		c.checkHandlers(base+"/item:"+it.val("key"), it)
	}
	for _, r := range te.list("discovery_rules", "discovery_rule") {
		rk := r.val("key")
		scope := base + "/discovery_rule:" + rk
		c.checkHandlers(scope, r)
		if r.val("type") == "DEPENDENT" {
			m := r.kid("master_item").val("key")
			dependents[m]++
			if t.items[m] == nil {
				c.add(r.line, "master-item", scope, "master item %q of the dependent discovery rule is not an item of the template", m)
			}
		}
		for _, p := range r.list("item_prototypes", "item_prototype") {
			record(scope, "item_prototype", p)
			path := scope + "/item_prototype:" + p.val("key")
			c.checkHandlers(path, p)
			if typ := p.val("type"); !agentFree[typ] {
				if typ == "" {
					typ = "ZABBIX_PASSIVE"
				}
				c.add(p.line, "polled-prototype", path,
					"item prototype of type %s makes one agent request per discovered object per interval; make it DEPENDENT on a master item that answers for all of them", typ)
			}
			for _, s := range p.list("preprocessing", "step") {
				if s.val("type") != "JSONPATH" {
					continue
				}
				params := s.list("parameters", "parameter")
				if len(params) == 0 {
					continue
				}
				jp := params[0].text
				if !lldFilter(jp) {
					continue
				}
				switch s.val("error_handler") {
				case "CUSTOM_VALUE", "DISCARD_VALUE":
				default:
					c.add(s.line, "error-handler", path,
						"JSONPath %s filters on an LLD macro but has no error handler: when the object is absent from the master's answer the item turns unsupported; set a value or discard it", jp)
				}
			}
		}
	}
	// Chains: every dependent item ends in a polled item.
	for key, n := range masters {
		seen := map[string]bool{key: true}
		for cur := n; cur != nil && cur.master != ""; {
			if seen[cur.master] {
				c.add(n.line, "master-item", n.path, "dependency cycle through %q", cur.master)
				break
			}
			seen[cur.master] = true
			cur = masters[cur.master]
		}
	}

	// History of masters and of what triggers read.
	readers := map[string]string{} // key → a trigger or calculated item reading it
	note := func(expr, who string) {
		refs, _ := itemRefs(expr)
		for _, r := range refs {
			if _, ok := readers[r.key]; !ok {
				readers[r.key] = who
			}
		}
	}
	te.walk(func(e *elem) {
		switch e.name {
		case "trigger", "trigger_prototype":
			if e.has("expression") {
				note(e.val("expression")+" "+e.val("recovery_expression"), "trigger "+e.val("name"))
			}
		case "item", "item_prototype":
			if e.val("type") == "CALCULATED" {
				note(e.val("params"), "calculated item "+e.val("key"))
			}
		}
	})
	for _, tr := range top {
		note(tr.val("expression")+" "+tr.val("recovery_expression"), "trigger "+tr.val("name"))
	}
	te.walk(func(e *elem) {
		if e.name != "item" && e.name != "item_prototype" {
			return
		}
		key := e.val("key")
		n := masters[key]
		if n == nil {
			return
		}
		h := e.val("history")
		noHistory := h == "0" || strings.TrimLeft(h, "0") == "d" || strings.TrimLeft(h, "0") == "h"
		who, read := readers[key]
		switch {
		case noHistory && read:
			c.add(e.line, "master-history", n.path, "history 0, but %s reads it: values without history never reach triggers or calculated items", who)
		case dependents[key] > 0 && !noHistory && !read:
			c.add(e.line, "master-history", n.path, "master item keeps history (%s) that no trigger or calculated item reads; set <history>0</history>", h)
		}
	})
}

// lldFilter reports whether a JSONPath holds a filter expression that uses
// an LLD macro, e.g. $.ports[?(@.port=={#PORT})].listening.first().
func lldFilter(jp string) bool {
	i := strings.Index(jp, "[?(")
	return i >= 0 && strings.Contains(jp[i:], "{#")
}

// noHandler lists the step types on which the 6.0 API accepts no error
// handler (CItemGeneral::validateItemPreprocessing).
var noHandler = map[string]bool{
	"JAVASCRIPT": true, "RTRIM": true, "LTRIM": true, "TRIM": true,
	"DISCARD_UNCHANGED": true, "DISCARD_UNCHANGED_HEARTBEAT": true, "STR_REPLACE": true,
}

// checkHandlers reports error handlers the 6.0 API refuses on the
// preprocessing steps of an item, prototype or discovery rule.
func (c *checker) checkHandlers(path string, it *elem) {
	for _, s := range it.list("preprocessing", "step") {
		if h := s.val("error_handler"); h != "" && h != "ORIGINAL_ERROR" && noHandler[s.val("type")] {
			c.add(s.line, "error-handler", path,
				"a %s step cannot have an error handler (%s) in 6.0: importing over an existing item fails; end the step without failing and let a JSONPath step after it discard", s.val("type"), h)
		}
	}
}
