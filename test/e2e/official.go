package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"zabbix-agent2-plugin-tcpstatus/templates/lint/lint"
)

// The names of Zabbix's own Linux templates, as a fresh database of each
// version holds them, are kept in testdata/official-templates/zabbix-<v>.json
// (names only, no content) for the template linter's collision check.
// `-export-official DIR` writes them from the real servers; every e2e run
// checks that the stored files still match what its servers hold.

// officialRe picks Zabbix's own Linux templates for the classic agent:
// "Linux by Zabbix agent", "... active", and 6.0's sub-templates such as
// "Linux block devices by Zabbix agent".
var officialRe = regexp.MustCompile(`^Linux (.+ )?by Zabbix agent( active)?$`)

// ownTemplateRe excludes this project's templates, which the pattern
// above would also match once imported.
var ownTemplateRe = regexp.MustCompile(`^Linux (TCP status|disks) by `)

// The stored names have the shape the template linter reads
// (templates/lint/lint, ReadOfficial): one definition of the file.
type (
	nameKey          = lint.NameKey
	officialTemplate = lint.OfficialTemplate
)

type officialNames struct {
	Zabbix    string                       `json:"zabbix"`
	Templates map[string]*officialTemplate `json:"templates"`
}

// officialFile is where the names of one version are kept.
func officialFile(dir, version string) string {
	return filepath.Join(dir, "zabbix-"+version+".json")
}

// exportOfficial reads the names of the official Linux agent templates
// from the server's API (template.get, then configuration.export of each).
func exportOfficial(ctx context.Context, z *zabbix) (*officialNames, error) {
	var tmpls []struct {
		ID   string `json:"templateid"`
		Name string `json:"name"`
	}
	if err := z.api.call(ctx, "template.get", map[string]any{
		"output": []string{"templateid", "name"},
		"search": map[string]any{"name": "by Zabbix agent"},
	}, &tmpls); err != nil {
		return nil, err
	}
	out := &officialNames{Zabbix: z.api.version, Templates: map[string]*officialTemplate{}}
	for _, t := range tmpls {
		if !officialRe.MatchString(t.Name) || ownTemplateRe.MatchString(t.Name) {
			continue
		}
		var src string
		if err := z.api.call(ctx, "configuration.export", map[string]any{
			"format":  "json",
			"options": map[string]any{"templates": []string{t.ID}},
		}, &src); err != nil {
			return nil, err
		}
		ot, err := namesOfExport([]byte(src), t.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		out.Templates[t.Name] = ot
	}
	if len(out.Templates) == 0 {
		return nil, fmt.Errorf("no template matching %s on the server", officialRe)
	}
	return out, nil
}

// exportDoc is the part of a configuration.export (JSON, 6.0 and 7.0
// layouts) that holds names.
type exportDoc struct {
	Export struct {
		Templates []struct {
			Name  string `json:"name"`
			Items []struct {
				nameKey
				Triggers []struct {
					Name string `json:"name"`
				} `json:"triggers"`
			} `json:"items"`
			DiscoveryRules []struct {
				nameKey
				ItemPrototypes []struct {
					nameKey
					TriggerPrototypes []struct {
						Name string `json:"name"`
					} `json:"trigger_prototypes"`
				} `json:"item_prototypes"`
				TriggerPrototypes []struct {
					Name string `json:"name"`
				} `json:"trigger_prototypes"`
				GraphPrototypes []struct {
					Name string `json:"name"`
				} `json:"graph_prototypes"`
			} `json:"discovery_rules"`
			Macros []struct {
				Macro string `json:"macro"`
			} `json:"macros"`
			Dashboards []struct {
				Name string `json:"name"`
			} `json:"dashboards"`
			Valuemaps []struct {
				Name string `json:"name"`
			} `json:"valuemaps"`
		} `json:"templates"`
		Triggers []struct {
			Name string `json:"name"`
		} `json:"triggers"`
		Graphs []struct {
			Name string `json:"name"`
		} `json:"graphs"`
	} `json:"zabbix_export"`
}

// namesOfExport takes the names out of the export of one template.
// Triggers and graphs over several items are at the export's top level;
// the export holds that one template, so they are its own.
func namesOfExport(src []byte, name string) (*officialTemplate, error) {
	var d exportDoc
	if err := json.Unmarshal(src, &d); err != nil {
		return nil, err
	}
	if len(d.Export.Templates) != 1 || d.Export.Templates[0].Name != name {
		return nil, fmt.Errorf("export holds %d templates, want only %q", len(d.Export.Templates), name)
	}
	t := d.Export.Templates[0]
	o := &officialTemplate{}
	for _, i := range t.Items {
		o.Items = append(o.Items, i.nameKey)
		for _, tr := range i.Triggers {
			o.Triggers = append(o.Triggers, tr.Name)
		}
	}
	for _, r := range t.DiscoveryRules {
		o.DiscoveryRules = append(o.DiscoveryRules, r.nameKey)
		for _, ip := range r.ItemPrototypes {
			o.ItemPrototypes = append(o.ItemPrototypes, ip.nameKey)
			for _, tp := range ip.TriggerPrototypes {
				o.TriggerPrototypes = append(o.TriggerPrototypes, tp.Name)
			}
		}
		for _, tp := range r.TriggerPrototypes {
			o.TriggerPrototypes = append(o.TriggerPrototypes, tp.Name)
		}
		for _, gp := range r.GraphPrototypes {
			o.GraphPrototypes = append(o.GraphPrototypes, gp.Name)
		}
	}
	for _, tr := range d.Export.Triggers {
		o.Triggers = append(o.Triggers, tr.Name)
	}
	for _, g := range d.Export.Graphs {
		o.Graphs = append(o.Graphs, g.Name)
	}
	for _, m := range t.Macros {
		o.Macros = append(o.Macros, m.Macro)
	}
	for _, db := range t.Dashboards {
		o.Dashboards = append(o.Dashboards, db.Name)
	}
	for _, v := range t.Valuemaps {
		o.ValueMaps = append(o.ValueMaps, v.Name)
	}
	normalizeOfficial(o)
	return o, nil
}

// normalize sorts every list and makes empty ones [] rather than null.
func normalizeOfficial(o *officialTemplate) {
	for _, l := range []*[]nameKey{&o.Items, &o.ItemPrototypes, &o.DiscoveryRules} {
		if *l == nil {
			*l = []nameKey{}
		}
		sort.Slice(*l, func(i, j int) bool {
			a, b := (*l)[i], (*l)[j]
			return a.Key < b.Key || a.Key == b.Key && a.Name < b.Name
		})
	}
	for _, l := range []*[]string{&o.Triggers, &o.TriggerPrototypes, &o.Graphs, &o.GraphPrototypes, &o.ValueMaps, &o.Macros, &o.Dashboards} {
		if *l == nil {
			*l = []string{}
		}
		sort.Strings(*l)
	}
}

// encode is the stored form: indented JSON, maps in key order.
func (n *officialNames) encode() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeOfficial stores the names of one version under dir.
func writeOfficial(dir, version string, n *officialNames) error {
	b, err := n.encode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(officialFile(dir, version), b, 0o644)
}

// checkOfficial compares the server's names with the stored file: a
// different file means the stored names no longer describe the server the
// e2e runs (a new package version); -export-official rewrites them.
func checkOfficial(dir, version string, got *officialNames) error {
	want, err := os.ReadFile(officialFile(dir, version))
	if err != nil {
		return err
	}
	b, err := got.encode()
	if err != nil {
		return err
	}
	if !bytes.Equal(b, want) {
		return fmt.Errorf("%s no longer matches the server's official templates (Zabbix %s); regenerate with -export-official %s",
			officialFile(dir, version), got.Zabbix, dir)
	}
	return nil
}

// officialSummary counts the names, for the log.
func (n *officialNames) summary() string {
	var items, protos, triggers int
	for _, t := range n.Templates {
		items += len(t.Items)
		protos += len(t.ItemPrototypes)
		triggers += len(t.Triggers) + len(t.TriggerPrototypes)
	}
	names := sortedKeys(n.Templates)
	return fmt.Sprintf("%d templates (%s), %d items, %d item prototypes, %d triggers and prototypes",
		len(names), strings.Join(names, "; "), items, protos, triggers)
}
