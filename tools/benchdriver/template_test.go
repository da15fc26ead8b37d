package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A template with every kind of item the cost counts: a polled master
// without history and its dependent items (one throttled), a 5-minute item
// with a user macro in its key, a calculated item, an hourly port discovery
// with a polled prototype and its dependent prototype, and a disk discovery
// dependent on a master, with a dependent prototype.
const costXML = `<?xml version="1.0" encoding="UTF-8"?>
<zabbix_export><version>6.0</version><templates><template><name>T</name>
<items>
 <item><key>m.get</key><history>0</history></item>
 <item><key>m.a</key><type>DEPENDENT</type><master_item><key>m.get</key></master_item></item>
 <item><key>m.b</key><type>DEPENDENT</type><master_item><key>m.get</key></master_item>
  <preprocessing><step><type>DISCARD_UNCHANGED_HEARTBEAT</type><parameters><parameter>{$HB}</parameter></parameters></step></preprocessing></item>
 <item><key>slow[{$N}]</key><delay>5m</delay></item>
 <item><key>calc</key><type>CALCULATED</type></item>
 <item><key>d.all</key><history>0</history></item>
</items>
<discovery_rules>
 <discovery_rule><key>p.discovery</key><delay>1h</delay><item_prototypes>
  <item_prototype><key>p.get[{#PORT}]</key></item_prototype>
  <item_prototype><key>p.x[{#PORT}]</key><type>DEPENDENT</type><master_item><key>p.get[{#PORT}]</key></master_item></item_prototype>
 </item_prototypes></discovery_rule>
 <discovery_rule><key>d.discovery</key><type>DEPENDENT</type><master_item><key>d.all</key></master_item><item_prototypes>
  <item_prototype><key>d.x[{#DEVNAME}]</key><type>DEPENDENT</type><master_item><key>d.all</key></master_item></item_prototype>
 </item_prototypes></discovery_rule>
</discovery_rules>
<macros><macro><macro>{$N}</macro><value>10</value></macro><macro><macro>{$HB}</macro><value>5m</value></macro></macros>
</template></templates></zabbix_export>`

func TestTemplateCost(t *testing.T) {
	c, err := templateCostOf("inline", []byte(costXML), []string{"22", "80", "443"}, []string{"sda", "sdb"})
	if err != nil {
		t.Fatal(err)
	}
	// Requests: m.get, d.all, slow/5, p.discovery/60, 3 × p.get.
	if want := 1 + 1 + 0.2 + 1.0/60 + 3; math.Abs(c.Requests-want) > 1e-9 {
		t.Errorf("requests %v, want %v", c.Requests, want)
	}
	// Values: m.a, m.b, slow/5, calc, 3 × p.get, 3 × p.x, 2 × d.x.
	if want := 1 + 1 + 0.2 + 1 + 3 + 3 + 2.0; math.Abs(c.Values-want) > 1e-9 {
		t.Errorf("values %v, want %v", c.Values, want)
	}
	if want := c.Values - 1 + 0.2; math.Abs(c.Steady-want) > 1e-9 {
		t.Errorf("steady values %v, want %v (m.b at its 5m heartbeat)", c.Steady, want)
	}
	var keys []string
	for _, p := range c.Polled {
		keys = append(keys, p.Key)
	}
	if got, want := strings.Join(keys, " "), "p.discovery m.get slow[10] d.all p.get[22] p.get[80] p.get[443]"; got != want {
		t.Errorf("polled %q, want %q", got, want)
	}
	if _, err := templateCostOf("bad", []byte(strings.Replace(costXML, "<key>m.get</key><history>", "<key>m.gone</key><history>", 1)), nil, nil); err == nil {
		t.Errorf("a dependent item whose master is missing was accepted")
	}
}

func TestIntervalTable(t *testing.T) {
	rs := []Result{res("nl-ref", 100, ""), res("core-proc", 200, ""), res("tmpl-new", 110, ""), res("tmpl-new-proc", 250, ""),
		res("tmpl-old-p30", 1000, ""), res("tmpl-old-p30-proc", 6000, "")}
	rs[2].Ports, rs[4].Ports, rs[5].Ports = 112, 30, 30
	out := intervalTable(rs)
	for _, want := range []string{"| 30 | 1000 | 10.00× | 110 | 1.10× | 6000 | 30.00× | 250 | 1.25× |", "112 listening ports"} {
		if !strings.Contains(out, want) {
			t.Errorf("interval table lacks %q:\n%s", want, out)
		}
	}
	tg := targets(rs)
	for _, want := range []string{"| new template interval ≤ 1.15 × reference dump | 1.10× | yes |", "| new template interval, Source=proc ≤ 1.15 × one /proc parse | 1.25× | **no** |"} {
		if !strings.Contains(tg, want) {
			t.Errorf("targets lack %q:\n%s", want, tg)
		}
	}
	if intervalTable([]Result{res("nl-ref", 1, "")}) != "" {
		t.Errorf("an interval table without template intervals")
	}
	// Paired with its own references, an interval is given by the median
	// of those ratios, not against the run's one reference.
	rs[2].PairedRatio = 1.04
	if out, want := intervalTable(rs), "| 110 | 1.04× |"; !strings.Contains(out, want) {
		t.Errorf("paired interval table lacks %q:\n%s", want, out)
	}
	if tg, want := targets(rs), "| new template interval ≤ 1.15 × reference dump | 1.04× | yes |"; !strings.Contains(tg, want) {
		t.Errorf("paired targets lack %q:\n%s", want, tg)
	}
}

// TestTemplateCostAddsUp: comma-separated exports (the templates of one
// host) add their requests, values and polled keys.
func TestTemplateCostAddsUp(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.xml"), filepath.Join(dir, "b.xml")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte(costXML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	one, err := templateCost(a, []string{"22", "80", "443"}, []string{"sda"})
	if err != nil {
		t.Fatal(err)
	}
	two, err := templateCost(a+","+b, []string{"22", "80", "443"}, []string{"sda"})
	if err != nil {
		t.Fatal(err)
	}
	if two.Requests != 2*one.Requests || two.Values != 2*one.Values || two.Steady != 2*one.Steady || len(two.Polled) != 2*len(one.Polled) {
		t.Errorf("two exports %+v, one %+v", two, one)
	}
	if two.Template != one.Template+" + "+one.Template {
		t.Errorf("template %q", two.Template)
	}
}
