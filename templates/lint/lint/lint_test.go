package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readGood(t *testing.T) (string, Lock) {
	t.Helper()
	data, err := os.ReadFile("testdata/good.xml")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := ReadLock("testdata/good.lock")
	if err != nil {
		t.Fatal(err)
	}
	if len(lock) == 0 {
		t.Fatal("empty testdata/good.lock")
	}
	return string(data), lock
}

func readOfficial(t *testing.T) []Official {
	t.Helper()
	o, err := ReadOfficial("testdata/official")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// edit is one change to good.xml: replace old (which must occur) by new.
type edit struct{ old, new string }

func apply(t *testing.T, src string, edits []edit) string {
	t.Helper()
	for _, e := range edits {
		if !strings.Contains(src, e.old) {
			t.Fatalf("edit does not apply: %q not in the template", e.old)
		}
		src = strings.Replace(src, e.old, e.new, 1)
	}
	return src
}

func rules(fs []Finding) map[string]bool {
	m := map[string]bool{}
	for _, f := range fs {
		m[f.Rule] = true
	}
	return m
}

// TestGoodTemplate: the fixture (which imports into Zabbix 6.0.14 and
// compares clean) passes every rule, so each broken variant below fails
// only because of its edit.
func TestGoodTemplate(t *testing.T) {
	src, lock := readGood(t)
	res := CheckWith([]File{{Name: "good.xml", Data: []byte(src)}}, lock, Options{Official: readOfficial(t)})
	for _, f := range res.Findings {
		t.Errorf("unexpected: %s", f)
	}
	if len(res.Objects) != len(lock)+1 { // + the template group
		t.Errorf("%d objects with uuids, lock has %d (+1 group)", len(res.Objects), len(lock))
	}
}

func TestBrokenTemplates(t *testing.T) {
	const exGetUUID = "<uuid>1a2b3c4d5e6f4a0b8c1d2e3f4a5b6c7d</uuid>"
	const newItem = `<item>
                    <uuid>7e8f9a0b1c2d4e3f8a0b1c2d3e4f5a6b</uuid>
                    <name>Ex: Extra</name>
                    <key>ex.extra</key>
                    <history>7d</history>
                    <description>Extra.</description>
                </item>
            </items>`
	cases := []struct {
		name  string
		edits []edit
		rule  string
	}{
		{"-malformed XML", []edit{{"</templates>", ""}}, "xml"},
		{"-trigger and graph prototype on an item prototype not discovered", []edit{{"<key>ex.used[{#NAME}]</key>", "<key>ex.used[{#NAME}]</key>\n                            <discover>NO_DISCOVER</discover>"}}, "discover"},
		{"-not an export", []edit{{"<zabbix_export>", "<export>"}, {"</zabbix_export>", "</export>"}}, "xml"},
		{"-version 7.0", []edit{{"<version>6.0</version>", "<version>7.0</version>"}}, "version"},
		{"-uuid missing", []edit{{exGetUUID, ""}}, "uuid"},
		{"-uuid not version 4", []edit{{exGetUUID, "<uuid>1a2b3c4d5e6f5a0b8c1d2e3f4a5b6c7d</uuid>"}}, "uuid"},
		{"-uuid with dashes", []edit{{exGetUUID, "<uuid>1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d</uuid>"}}, "uuid"},
		{"-uuid upper case", []edit{{exGetUUID, "<uuid>1A2B3C4D5E6F4A0B8C1D2E3F4A5B6C7D</uuid>"}}, "uuid"},
		{"-uuid twice", []edit{{"<uuid>3c4d5e6f7a8b4c2d8e3f4a5b6c7d8e9f</uuid>", exGetUUID}}, "uuid-unique"},
		{"-uuid changed", []edit{{exGetUUID, "<uuid>1a2b3c4d5e6f4a0b8c1d2e3f4a5b6c7e</uuid>"}}, "uuid-lock"},
		{"-new object not in lock", []edit{{"</items>", newItem}}, "uuid-lock"},
		{"-object removed", []edit{{"<graphs>", "<!--"}, {"</graphs>", "-->"}, {"<name>Ex: Open</name>\n                                            </value>", "<name>{#NAME}: Size and use</name>\n                                            </value>"}, {"<type>GRAPH</type>", "<type>GRAPH_PROTOTYPE</type>"}}, "uuid-lock"},
		{"-renamed object", []edit{{"<name>Ex: No data</name>", "<name>Ex: Nothing</name>"}, {"Ex: No data (for", "Ex: Nothing (for"}}, "uuid-lock"},
		{"-duplicate item key", []edit{{"<key>ex.open.pused</key>", "<key>ex.open</key>"}, {"last(//ex.open)/(last(//ex.open)+1)", "last(//ex.get)"}}, "name-unique"},
		{"-expression on another host", []edit{{"nodata(/Lint example/ex.get", "nodata(/Other template/ex.get"}}, "expression"},
		{"-expression with unknown key", []edit{{"last(/Lint example/ex.open.pused)=1", "last(/Lint example/ex.open.pct)=1"}}, "expression"},
		{"-prototype key outside its rule", []edit{{"last(/Lint example/ex.open.pused)=1", "last(/Lint example/ex.size[{#NAME}])=1"}}, "expression"},
		{"-trigger prototype without prototype", []edit{{"last(/Lint example/ex.used[{#NAME}])&gt;last(/Lint example/ex.size[{#NAME}]) and ", ""}}, "expression"},
		{"-trigger inside an item it does not use", []edit{{"min(/Lint example/ex.open,5m)&gt;{$EX.OPEN.MAX.WARN}</expression>", "min(/Lint example/ex.open.pused,5m)&gt;{$EX.OPEN.MAX.WARN}</expression>"}}, "expression"},
		{"-expression cut off", []edit{{"last(/Lint example/ex.size[{#NAME}])&gt;{$EX.SIZE", "last(/Lint example/ex.size[{#NAME})&gt;{$EX.SIZE"}}, "expression"},
		{"-threshold as a number", []edit{{"last(/Lint example/ex.open)&gt;{$EX.OPEN.MAX.WARN} and", "last(/Lint example/ex.open)&gt;40 and"}}, "threshold"},
		{"-threshold with a suffix", []edit{{"nodata(/Lint example/ex.get,{$EX.NODATA})=1", "nodata(/Lint example/ex.get,{$EX.NODATA})=1 and last(/Lint example/ex.open)&lt;5K"}}, "threshold"},
		{"-event name of another trigger", []edit{{"Ex: No data (for {$EX.NODATA})", "Ex: Data missing (for {$EX.NODATA})"}}, "event-name"},
		{"-event name shows another threshold", []edit{{"(over {$EX.SIZE.MAX:\"{#NAME}\"})", "(over {$EX.SIZE.MAX})"}}, "event-name"},
		{"-dependency without the recovery expression", []edit{{"                                    <recovery_expression>max(/Lint example/ex.open,10m)&lt;={$EX.OPEN.MAX.CRIT}</recovery_expression>\n", ""}}, "dependency"},
		{"-dependency on a missing trigger", []edit{{"<name>Ex: Critically many open</name>\n                                    <expression>", "<name>Ex: Critically many opened</name>\n                                    <expression>"}}, "dependency"},
		{"-unknown master item", []edit{{"<key>ex.get</key>\n                    </master_item>", "<key>ex.gets</key>\n                    </master_item>"}}, "master-item"},
		{"-calculated formula on unknown key", []edit{{"100*last(//ex.open)/", "100*last(//ex.closed)/"}}, "calculated"},
		{"-graph of unknown key", []edit{{"<key>ex.open</key>\n                    </item>\n                </graph_item>", "<key>ex.opens</key>\n                    </item>\n                </graph_item>"}}, "graph"},
		{"-graph prototype of another host", []edit{{"<host>Lint example</host>\n                                        <key>ex.used[{#NAME}]</key>", "<host>Other</host>\n                                        <key>ex.used[{#NAME}]</key>"}}, "graph"},
		{"-dashboard with unknown graph", []edit{{"<name>Ex: Open</name>\n                                            </value>", "<name>Ex: Opened</name>\n                                            </value>"}}, "dashboard"},
		{"-dashboard off the 24-column grid", []edit{{"<x>12</x>", "<x>20</x>"}}, "dashboard"},
		{"-unknown value map", []edit{{"<name>Ex::State</name>\n                    </valuemap>", "<name>Ex::States</name>\n                    </valuemap>"}}, "valuemap"},
		{"-macro used, not defined", []edit{{"<description>Open things.</description>", "<description>Open things, at most {$EX.OPEN.LIMIT}.</description>"}}, "macro-undefined"},
		{"-context macro used, not defined", []edit{{"{$EX.SIZE.MAX:\"{#NAME}\"})</event_name>", "{$EX.SIZE.MAX:\"{#NAME}\"})</event_name><opdata>{$EX.SIZE.MIN:\"{#NAME}\"}</opdata>"}}, "macro-undefined"},
		{"-macro without description", []edit{{"<description>No-data period.</description>", ""}}, "macro-description"},
		{"-macro defined, not used", []edit{{"</macros>", "<macro><macro>{$EX.SPARE}</macro><value>1</value><description>Spare.</description></macro></macros>"}}, "macro-unused"},
		{"-item without description", []edit{{"<description>Share.</description>", ""}}, "description"},
		{"-trigger without description", []edit{{"<description>Both.\n\nNo recovery expression: a state, not a level.</description>", ""}}, "description"},
		{"-trigger without recovery expression or reason", []edit{{"\n\nNo recovery expression: a state, not a level.", ""}}, "recovery"},
		{"-trigger with an empty reason", []edit{{"No recovery expression: a state, not a level.", "No recovery expression: "}}, "recovery"},
		{"-recovery expression equal to the problem", []edit{{"<recovery_expression>max(/Lint example/ex.open,10m)&lt;={$EX.OPEN.MAX.CRIT}</recovery_expression>", "<recovery_expression>min(/Lint example/ex.open,5m)&gt;{$EX.OPEN.MAX.CRIT}</recovery_expression>"}}, "recovery"},
		{"-counter change on one sample", []edit{{"sum(/Lint example/ex.errors.new,5m)&gt;", "last(/Lint example/ex.errors.new)&gt;"}}, "rate-window"},
		{"-counter change over a count of values", []edit{{"sum(/Lint example/ex.errors.new,5m)&gt;", "sum(/Lint example/ex.errors.new,#3)&gt;"}}, "rate-window"},
		{"-counter change without recovery", []edit{{"<recovery_mode>RECOVERY_EXPRESSION</recovery_mode>\n                            <recovery_expression>sum(/Lint example/ex.errors.new,15m)&lt;={$EX.ERRORS.MAX}</recovery_expression>\n", ""}}, "rate-window"},
		{"-manual close that reopens", []edit{{"<description>Too many.</description>", "<description>Too many.</description><manual_close>YES</manual_close>"}}, "manual-close"},
		{"-trigger without operational data", []edit{{"<opdata>Open: {ITEM.LASTVALUE1}</opdata>\n                            <priority>AVERAGE</priority>", "<priority>AVERAGE</priority>"}}, "opdata"},
		{"-event name without value", []edit{{"<event_name>Ex: Open and full ({ITEM.VALUE1} open)</event_name>", "<event_name>Ex: Open and full</event_name>"}}, "event-value"},
		{"-item without history", []edit{{"<history>7d</history>\n                    <value_type>FLOAT</value_type>", "<value_type>FLOAT</value_type>"}}, "history"},
		{"-text item with trends", []edit{{"<trends>0</trends>\n                    <value_type>TEXT</value_type>", "<value_type>TEXT</value_type>"}}, "history"},
		{"-discovery without lifetime", []edit{{"<lifetime>7d</lifetime>", ""}}, "lifetime"},
		{"-prototype key without LLD macro", []edit{{"<key>ex.used[{#NAME}]</key>\n", "<key>ex.used</key>\n"}}, "prototype-key"},
		{"-LLD macro in a plain item key", []edit{{"<key>ex.open.pused</key>", "<key>ex.open.pused[{#NAME}]</key>"}}, "prototype-key"},
		{"-polled item prototype", []edit{{"<type>DEPENDENT</type>\n                            <key>ex.used[{#NAME}]</key>", "<key>ex.used[{#NAME}]</key>"}}, "polled-prototype"},
		{"-JSONPath filter on an LLD macro without error handler", []edit{{"<error_handler>DISCARD_VALUE</error_handler>", ""}}, "error-handler"},
		{"-error handler on a JavaScript step", []edit{{"<type>JSONPATH</type>\n                                    <parameters>\n                                        <parameter>$.things[?(@.name==\"{#NAME}\")].size.first()</parameter>", "<type>JAVASCRIPT</type>\n                                    <parameters>\n                                        <parameter>return value;</parameter>"}}, "error-handler"},
		{"-JSONPath filter on an LLD macro failing the item", []edit{{"<error_handler>DISCARD_VALUE</error_handler>", "<error_handler>CUSTOM_ERROR</error_handler><error_handler_params>gone</error_handler_params>"}}, "error-handler"},
		{"-trigger on an item without history", []edit{{"<history>1h</history>", "<history>0</history>"}}, "master-history"},
		{"-master keeps history nobody reads", []edit{{"nodata(/Lint example/ex.get,", "nodata(/Lint example/ex.open,"}}, "master-history"},
		{"-dependent rule on unknown master", []edit{{"<key>ex.discovery</key>\n                    <delay>1h</delay>", "<type>DEPENDENT</type><key>ex.discovery</key><delay>0</delay><master_item><key>ex.nope</key></master_item>"}}, "master-item"},
		{"-dependency cycle", []edit{
			{"<key>ex.get</key>\n                            </master_item>", "<key>ex.used[{#NAME}]</key>\n                            </master_item>"},
			{"<key>ex.get</key>\n                            </master_item>", "<key>ex.size[{#NAME}]</key>\n                            </master_item>"}}, "master-item"},
		{"-graph prototype named like an official one", []edit{{"<name>{#NAME}: Size and use</name>", "<name>{#NAME}: Disk space usage</name>"}}, "official-names"},
		{"-graph named like an official prototype expands", []edit{{"<name>Ex: Open</name>\n            <graph_items>", "<name>Interface eth0: Network traffic</name>\n            <graph_items>"}}, "official-names"},
		{"-item key of an official template", []edit{{"<key>ex.open.pused</key>", "<key>system.uptime</key>"}}, "official-names"},
		{"-macro of an official template", []edit{{"<macro>{$EX.NAME.MATCHES}</macro>", "<macro>{$AGENT.TIMEOUT}</macro>"}}, "official-names"},
	}
	src, lock := readGood(t)
	official := readOfficial(t)
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			broken := apply(t, src, c.edits)
			res := CheckWith([]File{{Name: "broken.xml", Data: []byte(broken)}}, lock, Options{Official: official})
			if !rules(res.Findings)[c.rule] {
				t.Errorf("rule %s did not fire; findings: %v", c.rule, res.Findings)
			}
			for _, f := range res.Findings {
				t.Logf("%s", f)
			}
		})
		seen[c.rule] = true
	}
	for _, r := range Rules {
		if !seen[r] {
			t.Errorf("rule %s has no broken template that fires it", r)
		}
	}
}

func TestUpdateLock(t *testing.T) {
	src, lock := readGood(t)
	check := func(s string, l Lock) Result { return Check([]File{{Name: "t.xml", Data: []byte(s)}}, l) }

	// A new object is recorded by Update; then the file is clean.
	added := apply(t, src, []edit{{"</items>", `<item>
                    <uuid>7e8f9a0b1c2d4e3f8a0b1c2d3e4f5a6b</uuid>
                    <name>Ex: Extra</name>
                    <key>ex.extra</key>
                    <history>7d</history>
                    <description>Extra.</description>
                </item>
            </items>`}})
	res := check(added, lock)
	if len(res.Findings) != 1 || !res.Findings[0].Lock {
		t.Fatalf("want one lock finding for the new item, got %v", res.Findings)
	}
	l, err := Update(res)
	if err != nil {
		t.Fatal(err)
	}
	if got := l["template:Lint example/item:ex.extra"]; got != "7e8f9a0b1c2d4e3f8a0b1c2d3e4f5a6b" {
		t.Errorf("lock after update records %q for the new item", got)
	}
	if res := check(added, l); len(res.Findings) != 0 {
		t.Errorf("findings after update: %v", res.Findings)
	}

	// A changed uuid is never recorded.
	changed := apply(t, src, []edit{{"<uuid>1a2b3c4d5e6f4a0b8c1d2e3f4a5b6c7d</uuid>", "<uuid>1a2b3c4d5e6f4a0b8c1d2e3f4a5b6c7e</uuid>"}})
	if _, err := Update(check(changed, lock)); err == nil {
		t.Error("Update accepted a changed uuid")
	}

	// A rename keeps the uuid: the lock moves it to the new path.
	renamed := apply(t, src, []edit{{"<name>Ex: No data</name>", "<name>Ex: Nothing</name>"}, {"Ex: No data (for", "Ex: Nothing (for"}})
	res = check(renamed, lock)
	var msgs []string
	for _, f := range res.Findings {
		msgs = append(msgs, f.Msg)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "renamed from template:Lint example/trigger:Ex: No data") {
		t.Errorf("rename not reported as such: %v", msgs)
	}
	l, err = Update(res)
	if err != nil {
		t.Fatal(err)
	}
	if _, old := l["template:Lint example/trigger:Ex: No data"]; old {
		t.Error("old path still in the lock after a rename")
	}
}

func TestLockFileRoundTrip(t *testing.T) {
	_, lock := readGood(t)
	path := filepath.Join(t.TempDir(), "uuids.lock")
	if err := lock.Write(path); err != nil {
		t.Fatal(err)
	}
	again, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Format() != lock.Format() || len(again) != len(lock) {
		t.Error("lock changed in a write/read round trip")
	}
	if _, err := ParseLock(strings.NewReader("nouuidpath\n")); err == nil {
		t.Error("a line without a path was accepted")
	}
	if _, err := ParseLock(strings.NewReader("a p\nb p\n")); err == nil {
		t.Error("a path recorded twice was accepted")
	}
}

// TestShippedTemplates lints templates/*.xml against templates/uuids.lock,
// so go test catches what CI's templatelint step would.
func TestShippedTemplates(t *testing.T) {
	files, err := filepath.Glob("../../../templates/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates found: %v", err)
	}
	lock, err := ReadLock("../../../templates/uuids.lock")
	if err != nil {
		t.Fatal(err)
	}
	var in []File
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, File{Name: filepath.Base(f), Data: data})
	}
	res := Check(in, lock)
	for _, f := range res.Findings {
		t.Errorf("%s", f)
	}
}

func TestItemRefs(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []itemRef
	}{
		{`last(/T/a.b)=0`, []itemRef{{"T", "a.b"}}},
		{`min(/My T/k[{#P},"x,]y"],5m)>{$M:"{#P}"} or max(/My T/k2[a,[b,c]],1h)<1`, []itemRef{{"My T", `k[{#P},"x,]y"]`}, {"My T", "k2[a,[b,c]]"}}},
		{`100*last(//a[x])/(last(//b)+(last(//b)=0))`, []itemRef{{"", "a[x]"}, {"", "b"}, {"", "b"}}},
		{`find(/T/log,,"like","a(/b/c)")=1`, []itemRef{{"T", "log"}}},
	} {
		got, err := itemRefs(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.expr, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: ref %d = %v, want %v", c.expr, i, got[i], c.want[i])
			}
		}
	}
	for _, bad := range []string{`last(/T/k[a)=0`, `last(/T/)=0`, `last(/T/k["a)=0`} {
		if _, err := itemRefs(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestLiteralConstants(t *testing.T) {
	for expr, want := range map[string]string{
		`min(/T/k,5m)>{$X}`:                               "",
		`last(/T/k)=0`:                                    "0",
		`avg(/T/k,15m)>80 or last(/T/k)<>1`:               "80 1",
		`last(/T/k[{#P}])>{$X:"{#P}"} and 2.5<last(/T/j)`: "2.5",
		`last(/T/k)>10K`:                                  "10K",
		`find(/T/k,,"eq","42")=1`:                         "1",
	} {
		if got := strings.Join(literalConstants(expr), " "); got != want {
			t.Errorf("literalConstants(%s) = %q, want %q", expr, got, want)
		}
	}
}

func TestFuncCalls(t *testing.T) {
	got := funcCalls(`max(/T/tcp.port.listening[{#PORT}],{$P:"{#PORT}"})=0 and max(/T/tcp.port.listening[{#PORT}],{$P:"{#PORT}"}:now-{$P:"{#PORT}"})=1 or sum(/T/k[a,"b,c"], 5m)>{$X} or last(/T/k2)>0 or count(/T/k3,10m,"regexp","^(a|b)$")>1`)
	want := []string{
		`max tcp.port.listening[{#PORT}] [{$P:"{#PORT}"}]`,
		`max tcp.port.listening[{#PORT}] [{$P:"{#PORT}"}:now-{$P:"{#PORT}"}]`,
		`sum k[a,"b,c"] [5m]`,
		`last k2 []`,
		`count k3 [10m "regexp" "^(a|b)$"]`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d calls, want %d: %v", len(got), len(want), got)
	}
	for i, f := range got {
		s := fmt.Sprintf("%s %s [%s]", f.name, f.ref.key, strings.Join(f.args, " "))
		if s != want[i] {
			t.Errorf("call %d: %s, want %s", i, s, want[i])
		}
	}
}
