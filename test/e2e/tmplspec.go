package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// tmplSpec is what the run expects of a host linked to one template file,
// read from the file itself: its items' keys, and for each discovery rule
// the keys of its item prototypes, with the LLD macro that tells the
// discovered objects apart ({#PORT}, {#DEVNAME}).
type tmplSpec struct {
	file  string
	name  string // technical name
	items []string
	rules []ruleSpec
}

type ruleSpec struct {
	key        string
	macro      string   // the one LLD macro every prototype key holds
	prototypes []string // keys
	// off are the keys of prototypes the file keeps but does not
	// discover (NO_DISCOVER): ours, never expected on a host.
	off []string
}

type xmlTemplate struct {
	Templates []struct {
		Template string `xml:"template"`
		Items    []struct {
			Key string `xml:"key"`
		} `xml:"items>item"`
		Rules []struct {
			Key        string `xml:"key"`
			Prototypes []struct {
				Key      string `xml:"key"`
				Discover string `xml:"discover"`
			} `xml:"item_prototypes>item_prototype"`
		} `xml:"discovery_rules>discovery_rule"`
	} `xml:"templates>template"`
}

var lldMacroRe = regexp.MustCompile(`\{#[A-Z0-9_.]+\}`)

// readSpec reads the expectations out of a template file (one template).
func readSpec(file string) (*tmplSpec, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseSpec(file, src)
}

func parseSpec(file string, src []byte) (*tmplSpec, error) {
	var x xmlTemplate
	if err := xml.Unmarshal(src, &x); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(x.Templates) != 1 {
		return nil, fmt.Errorf("%s: %d templates, want 1", file, len(x.Templates))
	}
	t := x.Templates[0]
	s := &tmplSpec{file: file, name: t.Template}
	for _, i := range t.Items {
		s.items = append(s.items, i.Key)
	}
	for _, r := range t.Rules {
		rs := ruleSpec{key: r.Key}
		for _, p := range r.Prototypes {
			if p.Discover == "NO_DISCOVER" {
				rs.off = append(rs.off, p.Key)
			} else {
				rs.prototypes = append(rs.prototypes, p.Key)
			}
			macros := lldMacroRe.FindAllString(p.Key, -1)
			if len(macros) == 0 {
				return nil, fmt.Errorf("%s: prototype %s holds no LLD macro", file, p.Key)
			}
			if rs.macro == "" {
				rs.macro = macros[0]
			}
			if !strings.Contains(p.Key, rs.macro) {
				return nil, fmt.Errorf("%s: rule %s: prototype %s lacks %s", file, r.Key, p.Key, rs.macro)
			}
		}
		s.rules = append(s.rules, rs)
	}
	return s, nil
}

// rule returns the discovery rule whose prototypes tell objects apart by
// macro, or nil.
func (s *tmplSpec) rule(macro string) *ruleSpec {
	for i := range s.rules {
		if s.rules[i].macro == macro {
			return &s.rules[i]
		}
	}
	return nil
}

// instances lists the values of the rule's macro for which the host holds
// an item of every prototype (what discovery created completely), and the
// values for which it holds only some.
func (r *ruleSpec) instances(keys map[string]item) (complete, partial []string) {
	count := map[string]int{}
	for _, p := range r.prototypes {
		re := protoRe(p, r.macro)
		seen := map[string]bool{}
		for k := range keys {
			if m := re.FindStringSubmatch(k); m != nil && !seen[m[1]] {
				seen[m[1]] = true
				count[m[1]]++
			}
		}
	}
	for v, n := range count {
		if n == len(r.prototypes) {
			complete = append(complete, v)
		} else {
			partial = append(partial, v)
		}
	}
	sort.Strings(complete)
	sort.Strings(partial)
	return complete, partial
}

// protoMatch matches the keys discovery makes of a prototype key: each
// occurrence of the macro is one value (the same in every occurrence),
// other LLD macros any text. It returns the macro's value.
type protoMatch struct{ re *regexp.Regexp }

func protoRe(proto, macro string) protoMatch {
	parts := strings.Split(proto, macro)
	for i, p := range parts {
		segs := lldMacroRe.Split(p, -1)
		for j := range segs {
			segs[j] = regexp.QuoteMeta(segs[j])
		}
		parts[i] = strings.Join(segs, `.*?`)
	}
	return protoMatch{regexp.MustCompile("^" + strings.Join(parts, `([^,\]]+)`) + "$")}
}

// FindStringSubmatch answers like regexp's: the whole key and the value.
func (m protoMatch) FindStringSubmatch(key string) []string {
	sub := m.re.FindStringSubmatch(key)
	if len(sub) < 2 {
		return nil
	}
	for _, v := range sub[2:] {
		if v != sub[1] {
			return nil
		}
	}
	return sub[:2]
}

func (m protoMatch) MatchString(key string) bool { return m.FindStringSubmatch(key) != nil }

// expectedItems is how many discovered items the host should have for the
// given instances of every rule.
func (s *tmplSpec) expectedItems(instances map[string][]string) int {
	n := len(s.items)
	for _, r := range s.rules {
		n += len(r.prototypes) * len(instances[r.macro])
	}
	return n
}

// ownKey reports whether a host item's key comes from this template: one
// of its items, or a discovered instance of one of its prototypes.
// offKey reports whether key is an instance of a prototype the file keeps
// but does not discover: on a host only as a leftover of an older
// template's discovery (a lost resource Zabbix deletes after the rule's
// lifetime).
func (s *tmplSpec) offKey(key string) bool {
	for _, r := range s.rules {
		for _, p := range r.off {
			if protoRe(p, r.macro).MatchString(key) {
				return true
			}
		}
	}
	return false
}

func (s *tmplSpec) ownKey(key string) bool {
	for _, k := range s.items {
		if k == key {
			return true
		}
	}
	for _, r := range s.rules {
		for _, p := range append(r.prototypes, r.off...) {
			if protoRe(p, r.macro).MatchString(key) {
				return true
			}
		}
	}
	return false
}
