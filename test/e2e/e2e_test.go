package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPointHelper: every UserParameter of the shipped file runs the helper
// under test after rewriting, and nothing else changes.
func TestPointHelper(t *testing.T) {
	src, err := os.ReadFile("../../conf/userparameter_tcpstatus.conf")
	if err != nil {
		t.Skipf("no UserParameter file: %v", err)
	}
	out := pointHelper(string(src), "/tmp/x/bin/tcpstatus-discovery")
	in, got := strings.Split(string(src), "\n"), strings.Split(out, "\n")
	if len(in) != len(got) {
		t.Fatalf("line count changed: %d → %d", len(in), len(got))
	}
	n := 0
	for i := range in {
		if !strings.HasPrefix(in[i], "UserParameter=") {
			if in[i] != got[i] {
				t.Errorf("line %d changed: %q → %q", i+1, in[i], got[i])
			}
			continue
		}
		n++
		cmd := got[i][strings.Index(got[i], ",")+1:]
		if !strings.HasPrefix(cmd, "/tmp/x/bin/tcpstatus-discovery ") {
			t.Errorf("line %d does not run the helper under test: %q", i+1, got[i])
		}
		if strings.Split(in[i], ",")[0] != strings.Split(got[i], ",")[0] {
			t.Errorf("line %d: key changed", i+1)
		}
	}
	if n == 0 {
		t.Error("no UserParameter lines")
	}
}

func TestTechnicalName(t *testing.T) {
	files, _ := filepath.Glob("../../templates/*.xml")
	if len(files) == 0 {
		t.Fatal("no templates")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := technicalName(string(b))
		if !strings.HasPrefix(name, "Linux TCP status by Zabbix agent") && !strings.HasPrefix(name, "Linux disks by Zabbix agent") {
			t.Errorf("%s: technical name %q", f, name)
		}
	}
	if got := technicalName("<zabbix_export/>"); got != "" {
		t.Errorf("no template: %q", got)
	}
}

func TestImportRules(t *testing.T) {
	if _, ok := importRules("6.0.14", false)["groups"]; !ok {
		t.Error("6.0 rules without groups")
	}
	r7 := importRules("7.0.9", false)
	if _, ok := r7["groups"]; ok {
		t.Error("7.0 rules with groups (split into template_groups/host_groups since 6.2)")
	}
	if _, ok := r7["template_groups"]; !ok {
		t.Error("7.0 rules without template_groups")
	}
	// An upgrade deletes what the new file no longer has; a plain import
	// deletes nothing.
	for _, v := range []string{"6.0.14", "7.0.9"} {
		for _, del := range []bool{false, true} {
			for _, k := range []string{"items", "discoveryRules", "triggers", "graphs"} {
				if got := importRules(v, del)[k].(map[string]bool)["deleteMissing"]; got != del {
					t.Errorf("%s %s deleteMissing=%v, want %v", v, k, got, del)
				}
			}
		}
	}
}

// TestRunMainSkipsWithoutPrerequisites: with something missing (here the
// plugin binary) the run skips, unless TCPSTATUS_REQUIRE_AGENT=1 makes it
// fail.
func TestRunMainSkipsWithoutPrerequisites(t *testing.T) {
	args := []string{"-versions", "6.0", "-bin", t.TempDir()}
	var b strings.Builder
	t.Setenv("TCPSTATUS_REQUIRE_AGENT", "")
	if err := runMain(args, &b); !errors.Is(err, errSkip) {
		t.Errorf("missing plugin: %v, want a skip", err)
	}
	t.Setenv("TCPSTATUS_REQUIRE_AGENT", "1")
	if err := runMain(args, &b); err == nil || errors.Is(err, errSkip) {
		t.Errorf("missing plugin with TCPSTATUS_REQUIRE_AGENT=1: %v, want a failure", err)
	}
}

// TestNamesOfExport: names come from every place an export holds them
// (items and their triggers, discovery rules with item, trigger and graph
// prototypes, top-level triggers and graphs, macros, dashboards, value
// maps), sorted, and nothing else is kept.
func TestNamesOfExport(t *testing.T) {
	src := `{"zabbix_export":{"version":"6.0","templates":[{"template":"T","name":"Linux X by Zabbix agent",
	"items":[{"name":"b","key":"k.b","description":"not kept","triggers":[{"name":"tr1","expression":"x"}]},{"name":"a","key":"k.a"}],
	"discovery_rules":[{"name":"r","key":"r.k","item_prototypes":[{"name":"p","key":"p.k[{#X}]","trigger_prototypes":[{"name":"tp1"}]}],
	  "trigger_prototypes":[{"name":"tp0"}],"graph_prototypes":[{"name":"gp"}]}],
	"macros":[{"macro":"{$M}","value":"1"}],"dashboards":[{"name":"d"}],"valuemaps":[{"name":"v"}]}],
	"triggers":[{"name":"tr0"}],"graphs":[{"name":"g"}]}}`
	o, err := namesOfExport([]byte(src), "Linux X by Zabbix agent")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := (&officialNames{Zabbix: "6.0.0", Templates: map[string]*officialTemplate{"Linux X by Zabbix agent": o}}).encode()
	got := strings.Join(strings.Fields(string(b)), "")
	want := `{"zabbix":"6.0.0","templates":{"LinuxXbyZabbixagent":{"items":[{"name":"a","key":"k.a"},{"name":"b","key":"k.b"}],` +
		`"item_prototypes":[{"name":"p","key":"p.k[{#X}]"}],"discovery_rules":[{"name":"r","key":"r.k"}],"triggers":["tr0","tr1"],` +
		`"trigger_prototypes":["tp0","tp1"],"graphs":["g"],"graph_prototypes":["gp"],"valuemaps":["v"],"macros":["{$M}"],"dashboards":["d"]}}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := namesOfExport([]byte(src), "Other"); err == nil {
		t.Error("an export of another template was accepted")
	}
}

func TestOfficialRe(t *testing.T) {
	for name, want := range map[string]bool{
		"Linux by Zabbix agent":                           true,
		"Linux by Zabbix agent active":                    true,
		"Linux block devices by Zabbix agent":             true,
		"Linux network interfaces by Zabbix agent active": true,
		"Linux by Zabbix agent 2":                         false,
		"Linux by SNMP":                                   false,
		"Windows by Zabbix agent":                         false,
		"Linux by Prom":                                   false,
	} {
		if officialRe.MatchString(name) != want {
			t.Errorf("%q: match %v, want %v", name, !want, want)
		}
	}
}

// TestOfficialFiles: the stored names (written by -export-official from
// the real servers) hold the templates the collision check needs.
func TestOfficialFiles(t *testing.T) {
	for v, names := range map[string][]string{
		"6.0": {"Linux by Zabbix agent", "Linux by Zabbix agent active", "Linux block devices by Zabbix agent", "Linux network interfaces by Zabbix agent"},
		"7.0": {"Linux by Zabbix agent", "Linux by Zabbix agent active"},
	} {
		b, err := os.ReadFile(officialFile("../../testdata/official-templates", v))
		if err != nil {
			t.Fatal(err)
		}
		var n officialNames
		if err := json.Unmarshal(b, &n); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(n.Zabbix, v+".") {
			t.Errorf("%s: from Zabbix %q", v, n.Zabbix)
		}
		// The shared shape (templates/lint's) writes the stored file back
		// byte for byte, as checkOfficial compares it.
		if again, err := n.encode(); err != nil || !bytes.Equal(again, b) {
			t.Errorf("%s: the stored file does not encode back to itself (%v)", v, err)
		}
		for _, name := range names {
			tm := n.Templates[name]
			if tm == nil {
				t.Errorf("%s: no %q", v, name)
				continue
			}
			if len(tm.Items)+len(tm.ItemPrototypes) == 0 {
				t.Errorf("%s: %q has no items", v, name)
			}
		}
		for name := range n.Templates {
			if !officialRe.MatchString(name) || ownTemplateRe.MatchString(name) {
				t.Errorf("%s: %q is not an official Linux agent template", v, name)
			}
		}
		if again, _ := n.encode(); string(again) != string(b) {
			t.Errorf("%s: not in the stored form (sorted, indented)", v)
		}
	}
}

// TestSpec: the expectations read from the shipped templates find their
// items, prototypes and the macro of each discovery rule, and tell the
// host's keys apart.
func TestSpec(t *testing.T) {
	for _, f := range []string{"../../templates/tcpstatus_agent2.xml", "../../templates/tcpstatus_agent.xml"} {
		s, err := readSpec(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.items) == 0 || s.rule("{#PORT}") == nil || s.rule("{#DEVNAME}") != nil {
			t.Errorf("%s: %d items, rules %+v", f, len(s.items), s.rules)
		}
		d, err := readSpec(diskFileOf(f))
		if err != nil {
			t.Fatal(err)
		}
		if len(d.items) == 0 || d.rule("{#DEVNAME}") == nil || d.rule("{#PORT}") != nil {
			t.Errorf("%s: %d items, rules %+v", d.file, len(d.items), d.rules)
		}
		port := s.rule("{#PORT}")
		keys := map[string]item{}
		for _, p := range port.prototypes {
			keys[strings.ReplaceAll(p, "{#PORT}", "8080")] = item{}
		}
		keys[strings.ReplaceAll(port.prototypes[0], "{#PORT}", "22")] = item{}
		complete, partial := port.instances(keys)
		if strings.Join(complete, ",") != "8080" || (len(port.prototypes) > 1 && strings.Join(partial, ",") != "22") {
			t.Errorf("%s: complete %v partial %v", f, complete, partial)
		}
		if !s.ownKey(s.items[0]) || !s.ownKey(strings.ReplaceAll(port.prototypes[0], "{#PORT}", "22")) || s.ownKey("system.cpu.load[all,avg1]") {
			t.Errorf("%s: ownKey", f)
		}
		// Prototypes kept but not discovered are ours, and not expected.
		if len(port.off) == 0 || contains(port.prototypes, port.off[0]) || !s.ownKey(strings.ReplaceAll(port.off[0], "{#PORT}", "22")) ||
			s.expectedItems(map[string][]string{"{#PORT}": {"22"}}) != len(s.items)+len(port.prototypes) {
			t.Errorf("%s: not discovered %v, discovered %v", f, port.off, port.prototypes)
		}
	}
	m := protoRe("k[{#P},x,{#P},{#Q}]", "{#P}")
	if v := m.FindStringSubmatch("k[80,x,80,abc]"); v == nil || v[1] != "80" {
		t.Errorf("repeat: %v", v)
	}
	if m.MatchString("k[80,x,81,abc]") {
		t.Error("two values of one macro matched")
	}
}

// TestAbsentInNamespace: a dependent item of the sysctl master whose
// sysctl has no file here is tolerated, with the calculated items over it;
// one whose sysctl exists is not.
func TestAbsentInNamespace(t *testing.T) {
	dep := func(id, key, path string) item {
		i := item{ItemID: id, Key: key, Type: "18", MasterItemID: "1"}
		i.Preprocessing = append(i.Preprocessing, struct {
			Type   string `json:"type"`
			Params string `json:"params"`
		}{"12", path})
		return i
	}
	items := map[string]item{
		"tcp.limits.get":     {ItemID: "1", Key: "tcp.limits.get", Type: "0"},
		"tcp.limit[nope]":    dep("2", "tcp.limit[nope]", "$.tcp_no_such_sysctl_min"),
		"tcp.limit[backlog]": dep("3", "tcp.limit[backlog]", "$.tcp_max_syn_backlog"),
		"x.pused":            {ItemID: "4", Key: "x.pused", Type: "15", Params: "100*last(//y)/last(//tcp.limit[nope])"},
		"y":                  {ItemID: "5", Key: "y", Type: "15", Params: "last(//tcp.limit[backlog])"},
		"z":                  {ItemID: "6", Key: "z", Type: "15", Params: "last(//x.pused,#2)"},
	}
	got := absentInNamespace(items)
	if strings.Join(sortedKeys(got), " ") != "tcp.limit[nope] x.pused z" {
		t.Errorf("absent: %v", got)
	}
	if !overAbsent(&target{absent: got}, "min(/h/x.pused,5m)>1") || overAbsent(&target{absent: got}, "min(/h/y,5m)>1") {
		t.Error("overAbsent")
	}
}

// TestValued: an item without history counts as collected only through a
// dependent (or a dependent's dependent) that has a value.
func TestValued(t *testing.T) {
	tg := &target{items: map[string]item{
		"m":   {ItemID: "1", History: "0", State: "0"},
		"mid": {ItemID: "2", History: "0", State: "0", MasterItemID: "1"},
		"d":   {ItemID: "3", History: "7d", State: "0", MasterItemID: "2", LastClock: "1700000000"},
		"n":   {ItemID: "4", History: "0", State: "0"},
		"e":   {ItemID: "5", History: "7d", State: "0", MasterItemID: "4"},
		"h":   {ItemID: "6", History: "1h", State: "0"},
	}}
	for k, want := range map[string]bool{"m": true, "mid": true, "d": true, "n": false, "e": false, "h": false} {
		if got := tg.valued(tg.items[k]); got != want {
			t.Errorf("%s: valued %v, want %v", k, got, want)
		}
	}
}
