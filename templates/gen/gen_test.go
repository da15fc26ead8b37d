package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/templates/lint/lint"
)

// TestCommittedFilesAreGenerated: the XML files, READMEs and the lock in
// templates/ are exactly what the generator writes from the committed
// lock, and the lock already records every object (no uuid is minted).
func TestCommittedFilesAreGenerated(t *testing.T) {
	lock, err := lint.ReadLock("../uuids.lock")
	if err != nil {
		t.Fatal(err)
	}
	files, newLock, err := generate(lock, func() string {
		t.Error("an object has no uuid in templates/uuids.lock; run go run ./templates/gen")
		return newUUID()
	})
	if err != nil {
		t.Fatal(err)
	}
	files["uuids.lock"] = newLock.Format()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(got) != want {
			t.Errorf("templates/%s is not what the generator writes; run go run ./templates/gen (and do not edit it by hand)", name)
		}
	}
}

// TestTemplatesHaveTheSameKeys: the four templates poll the same keys,
// because the UserParameter file maps the plugin's key names, and an
// active template asks for the same keys as a passive one.
func TestTemplatesHaveTheSameKeys(t *testing.T) {
	keys := func(tp *Template) string {
		var ks []string
		for _, it := range tp.Items {
			ks = append(ks, it.Key)
		}
		for _, r := range tp.Rules {
			ks = append(ks, r.Key)
			for _, it := range r.Items {
				ks = append(ks, it.Key)
			}
		}
		return strings.Join(ks, " ")
	}
	if len(variants) != 4 {
		t.Fatalf("%d templates, want agent 2, agent 2 active, agent, agent active", len(variants))
	}
	for _, b := range []func(variant) *Template{build, buildDisk} {
		first := keys(b(variants[0]))
		for _, v := range variants[1:] {
			if k := keys(b(v)); k != first {
				t.Errorf("%s: keys differ:\n%s\n%s", b(v).Name, first, k)
			}
		}
	}
}

// templatesOf lists the templates written for a variant: TCP, disks.
func templatesOf(v variant) []*Template { return []*Template{build(v), buildDisk(v)} }

// TestDisksApart: the TCP templates have no disk object and the disk
// templates nothing but disks, so that a host with Zabbix's own Linux
// template takes the TCP template without watching its disks twice.
func TestDisksApart(t *testing.T) {
	for _, v := range variants {
		tcp, disk := build(v), buildDisk(v)
		all := func(tp *Template) []string {
			var ks []string
			for _, it := range tp.Items {
				ks = append(ks, it.Key)
			}
			for _, r := range tp.Rules {
				ks = append(ks, r.Key)
				for _, it := range r.Items {
					ks = append(ks, it.Key)
				}
			}
			for _, m := range tp.Macros {
				ks = append(ks, m.Macro)
			}
			return ks
		}
		for _, k := range all(tcp) {
			if strings.HasPrefix(k, "disk.") || strings.HasPrefix(k, "{$DISK.") {
				t.Errorf("%s: disk object %s", tcp.Name, k)
			}
		}
		for _, k := range all(disk) {
			if !strings.HasPrefix(k, "disk.") && !strings.HasPrefix(k, "{$DISK.") {
				t.Errorf("%s: object %s that is not a disk's", disk.Name, k)
			}
		}
		if len(disk.Rules) != 1 || len(disk.Rules[0].Items) == 0 {
			t.Errorf("%s: no disk discovery", disk.Name)
		}
		// Zabbix's own defaults: 20 ms, no utilization trigger.
		for _, m := range disk.Macros {
			if strings.Contains(m.Macro, "AWAIT") && m.Value != "20" {
				t.Errorf("%s: %s = %s, want 20 as {$VFS.DEV.*.AWAIT.WARN}", disk.Name, m.Macro, m.Value)
			}
		}
		for _, tr := range disk.Rules[0].Triggers {
			if strings.Contains(tr.Expr, "disk.util[") {
				t.Errorf("%s: trigger %q on utilization", disk.Name, tr.Name)
			}
		}
	}
}

// polledObjects lists what the agent answers in a template: items that
// are not dependent or calculated, and discovery rules without a master.
func polledObjects(tp *Template) (items []*Item, rules []*Rule) {
	for _, it := range tp.Items {
		if it.Type != "DEPENDENT" && it.Type != "CALCULATED" {
			items = append(items, it)
		}
	}
	for _, r := range tp.Rules {
		if r.Master == "" {
			rules = append(rules, r)
		}
	}
	return items, rules
}

// TestActiveTemplates: an active template has only active checks where
// the passive one has agent checks, and is named as Zabbix names its own
// active templates.
func TestActiveTemplates(t *testing.T) {
	for _, v := range variants {
		var items []*Item
		var rules []*Rule
		for _, tp := range templatesOf(v) {
			i, r := polledObjects(tp)
			if len(i) == 0 {
				t.Fatalf("%s: no polled items", tp.Name)
			}
			items, rules = append(items, i...), append(rules, r...)
		}
		if len(rules) == 0 {
			t.Fatalf("%s: no polled rules", v.name)
		}
		want := ""
		if v.active {
			want = "ZABBIX_ACTIVE"
			if !strings.HasSuffix(v.name, " active") || !strings.HasSuffix(v.file, "_active") {
				t.Errorf("active template named %q in %s", v.name, v.file)
			}
		}
		for _, it := range items {
			if it.Type != want {
				t.Errorf("%s: item %s has type %q, want %q", v.name, it.Key, it.Type, want)
			}
		}
		for _, r := range rules {
			if r.Type != want {
				t.Errorf("%s: rule %s has type %q, want %q", v.name, r.Key, r.Type, want)
			}
		}
	}
}

// TestClassicAgentErrors: in the classic-agent templates every polled
// item and rule first turns the helper's "ZBX_NOTSUPPORTED: <reason>"
// output into an error, and the pattern takes the reason out of what the
// real helper prints for a failing key; the agent 2 templates have no
// such step (the plugin's errors arrive as errors).
func TestClassicAgentErrors(t *testing.T) {
	for _, v := range variants {
		var items []*Item
		var rules []*Rule
		for _, tp := range templatesOf(v) {
			i, r := polledObjects(tp)
			items, rules = append(items, i...), append(rules, r...)
		}
		for _, it := range items {
			has := len(it.Pre) > 0 && it.Pre[0].Type == notSupported.Type
			if has != v.classic {
				t.Errorf("%s: item %s: error check step %v, want %v", v.name, it.Key, has, v.classic)
			}
		}
		for _, r := range rules {
			has := len(r.Pre) > 0 && r.Pre[0].Type == "JAVASCRIPT" && strings.Contains(r.Pre[0].Params[0], "ZBX_NOTSUPPORTED")
			if has != v.classic {
				t.Errorf("%s: rule %s: error check step %v, want %v", v.name, r.Key, has, v.classic)
			}
		}
	}

	bin := filepath.Join(t.TempDir(), "tcpstatus-discovery")
	if out, err := exec.Command("go", "build", "-o", bin, "../../discovery").CombinedOutput(); err != nil {
		t.Fatalf("building the helper: %v\n%s", err, out)
	}
	// A parameter where the key takes none fails with the plugin's error.
	out, err := exec.Command(bin, "--", "tcp.sockets.get", "x").Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper with a bad key: %v, output %q", err, out)
	}
	value := strings.TrimRight(string(out), "\r\n") // the agent strips trailing newlines
	re := regexp.MustCompile(notSupported.Params[0])
	if !re.MatchString(value) {
		t.Fatalf("the error check %q does not match the helper's output %q", notSupported.Params[0], value)
	}
	reason := re.ReplaceAllString(value, strings.ReplaceAll(notSupported.Params[1], `\1`, "${1}"))
	if reason != "Too many parameters." {
		t.Errorf("reason %q, want the helper's %q", reason, "Too many parameters.")
	}
	// A good answer does not match.
	good, err := exec.Command(bin, "--", "tcp.sockets.get").Output()
	if err != nil {
		t.Skipf("helper cannot read the socket table here: %v", err)
	}
	if re.Match(good) {
		t.Errorf("the error check matches a good answer: %.80s", good)
	}
}

func TestNewUUIDIsVersion4(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u := newUUID()
		if len(u) != 32 || u[12] != '4' || !strings.ContainsRune("89ab", rune(u[16])) || strings.ToLower(u) != u {
			t.Fatalf("%s is not a lower-case v4 uuid", u)
		}
		if seen[u] {
			t.Fatalf("%s twice", u)
		}
		seen[u] = true
	}
}

// runJS runs a JavaScript preprocessing step on value as the server does
// (the script is a function body of value; user macros expanded first),
// with node standing in for the server's Duktape; the scripts keep to ES5.
func runJS(t *testing.T, script string, macros map[string]string, value string) (string, error) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node to run the JavaScript steps")
	}
	for m, v := range macros {
		script = strings.ReplaceAll(script, m, v)
	}
	prog := "function step(value) {\n" + script + "\n}\n" +
		"var input = require('fs').readFileSync(0, 'utf8');\n" +
		"try { process.stdout.write(String(step(input))); } catch (e) { process.stderr.write(String(e)); process.exit(3); }\n"
	cmd := exec.Command(node, "-e", prog)
	cmd.Stdin = strings.NewReader(value)
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", errors.New(stderr.String())
	}
	return out.String(), nil
}

// TestPortDiscoverySteps: the discovery rule's steps mark ports inside
// {$TCP.PORT.EPHEMERAL.RANGE} (bounds included) and no others, and the
// classic agent's error text becomes the error.
func TestPortDiscoverySteps(t *testing.T) {
	defaults := map[string]string{}
	for _, m := range macros() {
		defaults[m.Macro] = m.Value
	}
	in := `[{"{#PORT}":"22","{#LOOPBACK}":"0"},{"{#PORT}":"32767","{#LOOPBACK}":"0"},{"{#PORT}":"32768","{#LOOPBACK}":"1"},{"{#PORT}":"60999","{#LOOPBACK}":"0"},{"{#PORT}":"61000","{#LOOPBACK}":"0"}]`
	out, err := runJS(t, ephemeralScript, defaults, in)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]string{"22": "0", "32767": "0", "32768": "1", "60999": "1", "61000": "0"}
	for _, p := range got {
		if p["{#EPHEMERAL}"] != want[p["{#PORT}"]] {
			t.Errorf("port %s: {#EPHEMERAL} %q, want %q", p["{#PORT}"], p["{#EPHEMERAL}"], want[p["{#PORT}"]])
		}
		if p["{#LOOPBACK}"] == "" {
			t.Errorf("port %s lost its other macros: %v", p["{#PORT}"], p)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d ports out, want %d", len(got), len(want))
	}
	// Another range, and a malformed one marks none.
	out, _ = runJS(t, ephemeralScript, map[string]string{"{$TCP.PORT.EPHEMERAL.RANGE}": "1024 - 40000"}, `[{"{#PORT}":"22"},{"{#PORT}":"8080"}]`)
	if !strings.Contains(out, `"{#PORT}":"22","{#EPHEMERAL}":"0"`) || !strings.Contains(out, `"{#PORT}":"8080","{#EPHEMERAL}":"1"`) {
		t.Errorf("range 1024 - 40000: %s", out)
	}
	out, _ = runJS(t, ephemeralScript, map[string]string{"{$TCP.PORT.EPHEMERAL.RANGE}": "{$TCP.PORT.EPHEMERAL.RANGE}"}, `[{"{#PORT}":"40000"}]`)
	if !strings.Contains(out, `"{#EPHEMERAL}":"0"`) {
		t.Errorf("undefined macro: %s", out)
	}

	// Who listens reads well whatever the agent could see.
	out, _ = runJS(t, ephemeralScript, defaults, `[{"{#PORT}":"80","{#PROCESS}":"nginx","{#SERVICE}":"/system.slice/nginx.service"},{"{#PORT}":"81","{#PROCESS}":"","{#SERVICE}":"/system.slice/app.service"},{"{#PORT}":"82","{#PROCESS}":"sshd"},{"{#PORT}":"83","{#PROCESS}":"","{#SERVICE}":""}]`)
	for _, w := range []string{`"{#OWNER}":"nginx (nginx.service)"`, `"{#OWNER}":"app.service"`, `"{#OWNER}":"sshd"`, `"{#OWNER}":"a process the agent cannot see"`} {
		if !strings.Contains(out, w) {
			t.Errorf("no %s in %s", w, out)
		}
	}

	if _, err := runJS(t, notSupportedLLD.Params[0], nil, "ZBX_NOTSUPPORTED: Cannot read /proc/net/tcp."); err == nil || !strings.Contains(err.Error(), "Cannot read /proc/net/tcp.") || strings.Contains(err.Error(), "ZBX_NOTSUPPORTED") {
		t.Errorf("error text not turned into the error: %v", err)
	}
	if out, err := runJS(t, notSupportedLLD.Params[0], nil, in); err != nil || out != in {
		t.Errorf("good discovery changed: %q, %v", out, err)
	}
}

// TestServiceAndHeadroomSteps runs the JavaScript steps of the services
// discovery, the per-service pick, the busiest destination and the
// connection tracking fill on answers shaped as the plugin gives them (the
// golden tcp.sockets.get of the ports fixture, with a cgroups section).
func TestServiceAndHeadroomSteps(t *testing.T) {
	defaults := map[string]string{}
	for _, m := range macros() {
		defaults[m.Macro] = m.Value
	}
	golden, err := os.ReadFile("../../testdata/golden/ports/tcp.sockets.get.txt")
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSpace(string(golden))
	i := strings.Index(base, `,"cgroups_error":`)
	if i < 0 {
		t.Fatalf("golden tcp.sockets.get has no cgroups_error: %s", base)
	}
	const escaped = `/system.slice/system-serial\\x2dgetty.slice` // JSON text of a path holding a backslash
	withCgroups := base[:i] + `,"cgroups":{"cgroups":[` +
		`{"cgroup":"/system.slice/nginx.service","established":10,"close_wait":2,"total":12},` +
		`{"cgroup":"` + escaped + `","established":9,"close_wait":1,"total":10},` +
		`{"cgroup":"/user.slice","established":3,"total":3}],"unattributed":{"total":2},"unresolved":{"total":0}}}`

	out, err := runJS(t, cgroupLLDScript, defaults, withCgroups)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(rows) != 2 || rows[0]["{#CGROUP}"] != "/system.slice/nginx.service" || rows[1]["{#CGROUP}"] != `/system.slice/system-serial\x2dgetty.slice` {
		t.Fatalf("discovery with {$TCP.CGROUP.MIN.SOCKETS} 10: %s", out)
	}
	for _, r := range rows {
		// The prototype's script gets the cgroup through {#CGROUP.JSON}.
		got, err := runJS(t, cgroupPickScript, map[string]string{"{#CGROUP.JSON}": r["{#CGROUP.JSON}"]}, withCgroups)
		if err != nil {
			t.Fatalf("pick %s: %v", r["{#CGROUP}"], err)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(got), &obj); err != nil || obj["cgroup"] != r["{#CGROUP}"] {
			t.Errorf("pick %s: %s", r["{#CGROUP}"], got)
		}
	}
	if out, err := runJS(t, cgroupPickScript, map[string]string{"{#CGROUP.JSON}": `"/gone.service"`}, withCgroups); err != nil || out != "{}" {
		t.Errorf("a cgroup no longer listed: %q, %v; want {}", out, err)
	}
	if out, err := runJS(t, cgroupPickScript, map[string]string{"{#CGROUP.JSON}": `"/gone.service"`}, base); err != nil || out != "{}" {
		t.Errorf("an answer without cgroups: %q, %v; want {}", out, err)
	}
	if _, err := runJS(t, cgroupLLDScript, defaults, base); err == nil || !strings.Contains(err.Error(), "carry no cgroup") {
		t.Errorf("discovery without cgroups: %v, want the reason of cgroups_error", err)
	}
	if out, err := runJS(t, cgroupLLDScript, map[string]string{"{$TCP.CGROUP.MIN.SOCKETS}": "0"}, withCgroups); err != nil || strings.Count(out, "{#CGROUP}") != 3 {
		t.Errorf("minimum 0: %s, %v", out, err)
	}

	// The busiest destination's script gets the "ephemeral" section (a
	// JSONPath step takes it out first).
	section := base[strings.Index(base, `"ephemeral":`)+len(`"ephemeral":`):]
	section = section[:strings.Index(section, `]}`)+2]
	if out, err := runJS(t, ephemeralBusiestScript, nil, section); err != nil || out != "10.0.0.1 -> 10.0.0.9:80: 1 of 28232 ports" {
		t.Errorf("busiest: %q, %v", out, err)
	}
	v6 := `{"usable":100,"top":[{"local":"2001:db8::1","remote":"2001:db8::2","port":443,"count":95,"pused":95.00}]}`
	if out, err := runJS(t, ephemeralBusiestScript, nil, v6); err != nil || out != "2001:db8::1 -> [2001:db8::2]:443: 95 of 100 ports" {
		t.Errorf("busiest IPv6: %q, %v", out, err)
	}
	if out, err := runJS(t, ephemeralBusiestScript, nil, `{"usable":100,"top":[]}`); err != nil || out != "none" {
		t.Errorf("busiest of none: %q, %v", out, err)
	}

	if out, err := runJS(t, conntrackScript, nil, `{"somaxconn":4096,"nf_conntrack_count":150,"nf_conntrack_max":200}`); err != nil || out != `{"pused":75}` {
		t.Errorf("conntrack: %q, %v", out, err)
	}
	for _, in := range []string{`{"somaxconn":4096}`, `{"nf_conntrack_count":0,"nf_conntrack_max":0}`} {
		if out, err := runJS(t, conntrackScript, nil, in); err != nil || out != "{}" {
			t.Errorf("conntrack of %s: %q, %v; want {} (its JSONPath step then discards)", in, out, err)
		}
	}
}
