package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// runAll starts the shared PostgreSQL cluster and tests each version in
// turn; a version's processes are stopped before the next one starts.
func runAll(ctx context.Context, o *options, ps *procs) error {
	t0 := time.Now()
	pg, err := startPostgres(ctx, ps, o.work)
	if err != nil {
		return err
	}
	logf("PostgreSQL 15 up (socket %s, port %d) in %.1fs", pg.sock, pg.port, time.Since(t0).Seconds())
	bin := ""
	if !o.importOnly && !o.exportOff {
		if bin, err = installBinaries(o); err != nil {
			return err
		}
	}
	files, err := filepath.Glob(filepath.Join(o.templates, "*.xml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no templates in %s", o.templates)
	}
	// Loading a schema takes most of a core for 15-50 s: load every
	// version's database now, in the background, while earlier versions run.
	dbs := map[string]chan error{}
	for _, v := range o.versions {
		ch := make(chan error, 1)
		dbs[v] = ch
		l := layoutFor(o, v)
		go func() {
			t := time.Now()
			err := pg.createDB(ctx, dbName(v), l.schema)
			if err == nil {
				logf("Zabbix %s: database %s loaded in %.1fs", v, dbName(v), time.Since(t).Seconds())
			}
			ch <- err
		}()
	}
	for _, v := range o.versions {
		tv := time.Now()
		if err := <-dbs[v]; err != nil {
			return fmt.Errorf("Zabbix %s: %w", v, err)
		}
		if err := runVersion(ctx, o, ps, pg, layoutFor(o, v), bin, files); err != nil {
			return fmt.Errorf("Zabbix %s: %w", v, err)
		}
		logf("Zabbix %s: PASS in %.0fs", v, time.Since(tv).Seconds())
		if o.serve {
			return nil
		}
	}
	logf("PASS: %d version(s) in %.0fs", len(o.versions), time.Since(t0).Seconds())
	return nil
}

func dbName(version string) string { return "zabbix" + strings.ReplaceAll(version, ".", "") }

// installBinaries copies the plugin and the helper where the zabbix user
// can run them (the work directory, mode 0755).
func installBinaries(o *options) (string, error) {
	bin := filepath.Join(o.work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"zabbix-agent2-plugin-tcpstatus", "tcpstatus-discovery"} {
		b, err := os.ReadFile(filepath.Join(o.bin, name))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(bin, name), b, 0o755); err != nil {
			return "", err
		}
	}
	return bin, nil
}

// target is one monitored host: an agent and the template linked to it.
type target struct {
	agent    *agent
	hostname string
	template string    // technical name of ours
	spec     *tmplSpec // what the template file defines
	// disk: the disk template linked beside it (nil: none).
	disk *tmplSpec
	// shared: the host also carries other templates (the official ones);
	// only the items of ours must have values.
	shared bool
	// triggers: the trigger cycles run on this host.
	triggers bool
	hostid   string
	items    map[string]item // by key
	// absent: items that cannot have data in the run's namespace
	// (nsabsent.go), by key, with the reason; logged once.
	absent       map[string]string
	absentLogged bool
}

type item struct {
	ItemID        string `json:"itemid"`
	MasterItemID  string `json:"master_itemid"`
	History       string `json:"history"`
	Params        string `json:"params"`
	Preprocessing []struct {
		Type   string `json:"type"`
		Params string `json:"params"`
	} `json:"preprocessing"`
	Key       string `json:"key_"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	LastValue string `json:"lastvalue"`
	LastClock string `json:"lastclock"`
	State     string `json:"state"`
	Error     string `json:"error"`
	Flags     string `json:"flags"`
	Status    string `json:"status"`
}

// own reports whether a host item comes from our template.
func (tg *target) own(key string) bool {
	return !tg.shared || tg.spec.ownKey(key) || (tg.disk != nil && tg.disk.ownKey(key))
}

// leftover reports whether key is an instance of a prototype the templates
// keep but do not discover: only an older template's discovery made it
// (a lost resource until the rule's lifetime deletes it).
func (tg *target) leftover(key string) bool {
	return tg.spec.offKey(key) || (tg.disk != nil && tg.disk.offKey(key))
}

// expectedItems is how many items of ours the host should have for the
// discovered ports and disks.
func (tg *target) expectedItems(instances map[string][]string) int {
	n := tg.spec.expectedItems(instances)
	if tg.disk != nil {
		n += tg.disk.expectedItems(instances)
	}
	return n
}

func (i item) hasValue() bool { return i.LastClock != "" && i.LastClock != "0" }

// keepsHistory reports whether the item stores its values (a master that
// only feeds dependents may keep none: "0").
func (i item) keepsHistory() bool { return strings.TrimRight(i.History, "smhdw") != "0" }

// valued reports whether an item of the host has a value: its last value,
// or, for an item that keeps no history (the API then shows no last
// value), a value of one of its dependents, which the item's value fed.
func (tg *target) valued(i item) bool {
	if i.hasValue() {
		return true
	}
	if i.keepsHistory() || i.State != "0" {
		return false
	}
	for _, d := range tg.items {
		if d.MasterItemID == i.ItemID && d.ItemID != i.ItemID && tg.valued(d) {
			return true
		}
	}
	return false
}

// Item types that check-now accepts and the server polls.
func (i item) pollable() bool { return i.Type == "0" || i.Type == "15" }

type trigger struct {
	TriggerID   string `json:"triggerid"`
	Description string `json:"description"`
	Value       string `json:"value"`
	State       string `json:"state"`
	Error       string `json:"error"`
	Expression  string `json:"expression"`
}

func runVersion(ctx context.Context, o *options, ps *procs, pg *postgres, l layout, bin string, files []string) error {
	mark := ps.len()
	defer ps.stopAll(mark)
	work := filepath.Join(o.work, l.version)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	t := time.Now()
	z, err := startZabbix(ctx, ps, l, work, dbName(l.version), pg)
	if err != nil {
		return err
	}
	logf("Zabbix %s: server (trapper %d) and frontend %s up, API %s, in %.1fs", l.version, z.serverPort, z.api.url, z.api.version, time.Since(t).Seconds())
	defer func() {
		if out := grepLog(z.serverLog, "cannot", "error", "failed"); out != "" {
			logf("Zabbix %s: server log, lines with errors:\n%s", l.version, out)
		}
	}()
	// 7.0 takes item timeouts from the global settings (3 s by default)
	// instead of the server's Timeout; give agent checks the same 10 s the
	// 6.0 server configuration gives them.
	if strings.HasPrefix(z.api.version, "7.") {
		if err := z.api.call(ctx, "settings.update", map[string]any{"timeout_zabbix_agent": "10s"}, nil); err != nil {
			return err
		}
	}

	// The official Linux templates: write their names, or check the
	// stored ones still describe this server.
	official, err := exportOfficial(ctx, z)
	if err != nil {
		return err
	}
	if o.exportOff {
		if err := writeOfficial(o.official, l.version, official); err != nil {
			return err
		}
		logf("Zabbix %s: wrote %s: %s", l.version, officialFile(o.official, l.version), official.summary())
		return nil
	}
	if err := checkOfficial(o.official, l.version, official); err != nil {
		return err
	}
	logf("Zabbix %s: %s matches the server: %s", l.version, officialFile(o.official, l.version), official.summary())

	// What each template file defines, for the expectations.
	specs := map[string]*tmplSpec{} // by file name
	for _, f := range files {
		sp, err := readSpec(f)
		if err != nil {
			return err
		}
		specs[filepath.Base(f)] = sp
	}
	// With -upgrade-from, the hosts start on the old templates and the new
	// files are imported over them later.
	upgrade := o.upgradeFrom != "" && !o.importOnly
	first := files
	old := map[string]*tmplSpec{} // by technical name
	if upgrade {
		first = oldFiles(o.upgradeFrom, files)
		for _, f := range first {
			sp, err := readSpec(f)
			if err != nil {
				return err
			}
			old[sp.name] = sp
		}
	}
	for _, f := range first {
		if _, err := importTemplate(ctx, z, f, false); err != nil && o.serve {
			logf("%v", err)
		} else if err != nil {
			return err
		}
	}

	// The imports grew the item and trigger tables: new statistics again.
	if err := pg.analyze(ctx, dbName(l.version)); err != nil {
		return err
	}
	if o.importOnly && !o.serve {
		return nil
	}
	if o.importOnly {
		serveFrontend(ctx, z, o)
		return nil
	}
	zbx, err := lookupAccount("zabbix")
	if err != nil {
		return err
	}
	// The test's sockets exist before the agents start: active agents run
	// port discovery as soon as they get their checks (modes.go).
	socks, err := openTestSockets()
	if err != nil {
		return err
	}
	defer socks.close()
	logf("test sockets: app port %d with %d CLOSE_WAIT, port %d to close and reopen, port %d with a full accept queue (backlog %d)",
		socks.appPort(), closeWaitN, socks.gonePort, socks.fullPort, fullBacklog)
	lk, err := startLeak() // cgroupleak.go
	if err != nil {
		return err
	}
	defer lk.stop()
	// Before the agents start: the time-wait limit is low from the first
	// sample on (limits.go).
	lim, err := startLimits(ps, l, work, filepath.Join(bin, "zabbix-agent2-plugin-tcpstatus"), zbx)
	if err != nil {
		return err
	}
	defer lim.stop()
	actives, err := createActiveHosts(ctx, z, specs, socks)
	if err != nil {
		return err
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	trapper := fmt.Sprintf("127.0.0.1:%d", z.serverPort)
	a2, err := startAgent2(ctx, ps, l, work, filepath.Join(bin, "zabbix-agent2-plugin-tcpstatus"), zbx,
		agentOpts{name: "agent2", hostname: "tcpstatus-e2e-agent2", serverActive: trapper, activeHost: actives[0].hostname})
	if err != nil {
		return err
	}
	helper := filepath.Join(bin, "tcpstatus-discovery")
	ad, err := startAgentd(ctx, ps, l, work, o.userParams, helper, zbx,
		agentOpts{name: "agentd", hostname: "tcpstatus-e2e-agentd", serverActive: trapper, activeHost: actives[1].hostname})
	if err != nil {
		return err
	}
	failFlags, _, err := failingHelperFlags(work)
	if err != nil {
		return err
	}
	af, err := startAgentd(ctx, ps, l, work, o.userParams, helper, zbx,
		agentOpts{name: "agentd-failing", hostname: failingHost, helperFlags: failFlags})
	if err != nil {
		return err
	}
	logf("Zabbix %s: agent 2 on port %d (plugin %s), classic agent on port %d, both also active for %s and %s (trapper %s); classic agent with a failing helper on port %d",
		l.version, a2.port, filepath.Join(bin, "zabbix-agent2-plugin-tcpstatus"), ad.port, actives[0].hostname, actives[1].hostname, trapper, af.port)

	var targets []*target
	for _, t := range []struct {
		a    *agent
		file string
	}{{a2, "tcpstatus_agent2.xml"}, {ad, "tcpstatus_agent.xml"}} {
		sp, dsp := specs[t.file], specs[diskFileOf(t.file)]
		if sp == nil || dsp == nil {
			return fmt.Errorf("no %s or %s in %s", t.file, diskFileOf(t.file), o.templates)
		}
		tg := &target{agent: t.a, hostname: t.a.hostname, template: sp.name, spec: sp, disk: dsp, triggers: true}
		// Over the old TCP template, which had the disks, the disk template
		// is linked after the upgrade (upgrade.go).
		names := []string{sp.name, dsp.name}
		if upgrade {
			names = names[:1]
		}
		if err := createHost(ctx, z, tg, socks, names...); err != nil {
			return err
		}
		targets = append(targets, tg)
	}
	if upgrade {
		before, err := beforeUpgrade(ctx, z, targets, old)
		if err != nil {
			return err
		}
		for _, f := range files {
			if _, err := importTemplate(ctx, z, f, true); err != nil {
				return fmt.Errorf("over the old template: %w", err)
			}
		}
		if err := afterUpgrade(ctx, z, targets, before); err != nil {
			return err
		}
		if err := linkMoved(ctx, z, targets, old); err != nil {
			return err
		}
	}
	failing := &target{agent: af, hostname: failingHost, template: targets[1].template, spec: targets[1].spec, disk: targets[1].disk}
	if err := createHost(ctx, z, failing, socks, failing.template, failing.disk.name); err != nil {
		return err
	}
	if err := setMacros(ctx, z, failing, map[string]string{"{$TCP.NODATA.TIMEOUT}": failingNodata}); err != nil {
		return err
	}

	// A host on the official Linux template (already in the database)
	// takes ours as well.
	var shared *target
	if o.shared {
		shared = &target{agent: a2, hostname: "tcpstatus-e2e-shared", template: targets[0].template, spec: targets[0].spec, shared: true}
		if err := createHost(ctx, z, shared, socks, officialLinux); err != nil {
			return err
		}
		if err := linkTemplate(ctx, z, shared, shared.template); err != nil {
			return err
		}
		targets = append(targets, shared)
	}
	if o.serve {
		serveFrontend(ctx, z, o)
		return nil
	}
	if err := scenario(ctx, z, targets, socks, lk, lim); err != nil {
		return err
	}
	if err := checkActive(ctx, z, actives, socks); err != nil {
		return err
	}
	if err := checkFailing(ctx, z, failing, helper, failFlags); err != nil {
		return err
	}
	if shared != nil {
		if err := checkShared(ctx, z, shared); err != nil {
			return err
		}
	}
	if o.screenshots != "" && l.version == o.versions[0] {
		return takeScreenshots(ctx, z, targets[0], o.screenshots)
	}
	return nil
}

// importTemplate imports one file; any error fails the run. On 6.0 the
// file must then compare clean (importcompare gives no changes), which
// proves its layout is the one configuration.export writes.
//
// upgrade imports as a user upgrades a template: objects the file no
// longer has are deleted (deleteMissing).
func importTemplate(ctx context.Context, z *zabbix, file string, upgrade bool) (string, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	name := technicalName(string(src))
	t := time.Now()
	params := map[string]any{"format": "xml", "source": string(src), "rules": importRules(z.api.version, upgrade)}
	var ok bool
	if err := z.api.call(ctx, "configuration.import", params, &ok); err != nil {
		return "", fmt.Errorf("import %s: %w", filepath.Base(file), err)
	}
	logf("Zabbix %s: imported %s (%q) in %.1fs", z.l.version, filepath.Base(file), name, time.Since(t).Seconds())
	var diff json.RawMessage
	if err := z.api.call(ctx, "configuration.importcompare", params, &diff); err != nil {
		return "", fmt.Errorf("importcompare %s: %w", filepath.Base(file), err)
	}
	if s := string(diff); s != "[]" && s != "{}" {
		dump := filepath.Join(z.work, filepath.Base(file)+".importcompare.json")
		_ = os.WriteFile(dump, diff, 0o644)
		if z.l.version == "6.0" {
			return "", fmt.Errorf("%s differs from its import (not in export layout): %.3000s", filepath.Base(file), diff)
		}
		// The 7.0 converter rewrites widget coordinates (72-column grid),
		// preprocessing parameters and defaults, so a diff is expected there.
		logf("Zabbix %s: %s compares with %d bytes of conversion changes (6.0 → %s format)", z.l.version, filepath.Base(file), len(diff), z.l.version)
	} else {
		logf("Zabbix %s: %s compares clean after import", z.l.version, filepath.Base(file))
	}
	// Importing again must change nothing and fail on nothing.
	if err := z.api.call(ctx, "configuration.import", params, &ok); err != nil {
		return "", fmt.Errorf("re-import %s: %w", filepath.Base(file), err)
	}
	return name, nil
}

// serveFrontend prints where the frontend is (through the host listener
// handed over by the parent, see netns.go) and waits for Ctrl-C.
func serveFrontend(ctx context.Context, z *zabbix, o *options) {
	addr := hostProxy(fmt.Sprintf("127.0.0.1:%d", z.webPort))
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d (inside the run's network namespace)", z.webPort)
	}
	logf("serving: frontend http://%s/ (Admin/zabbix), work %s; Ctrl-C stops", addr, o.work)
	<-ctx.Done()
}

func technicalName(xml string) string {
	i := strings.Index(xml, "<template>")
	if i < 0 {
		return ""
	}
	rest := xml[i+len("<template>"):]
	j := strings.Index(rest, "<template>")
	k := strings.Index(rest, "</template>")
	if j < 0 || k < 0 || k < j {
		return ""
	}
	return rest[j+len("<template>") : k]
}

func importRules(version string, deleteMissing bool) map[string]any {
	both := map[string]bool{"createMissing": true, "updateExisting": true}
	all := both
	if deleteMissing {
		all = map[string]bool{"createMissing": true, "updateExisting": true, "deleteMissing": true}
	}
	rules := map[string]any{
		"templates":          both,
		"templateDashboards": all,
		"templateLinkage":    map[string]bool{"createMissing": true},
		"items":              all,
		"discoveryRules":     all,
		"triggers":           all,
		"graphs":             all,
		"httptests":          all,
		"valueMaps":          all,
	}
	if strings.HasPrefix(version, "6.0") {
		rules["groups"] = map[string]bool{"createMissing": true}
	} else {
		rules["template_groups"] = both
		rules["host_groups"] = both
	}
	return rules
}

// templateID finds a template by technical name.
func templateID(ctx context.Context, z *zabbix, name string) (string, error) {
	var tmpl []struct {
		TemplateID string `json:"templateid"`
	}
	if err := z.api.call(ctx, "template.get", map[string]any{"filter": map[string]any{"host": name}, "output": []string{"templateid"}}, &tmpl); err != nil {
		return "", err
	}
	if len(tmpl) != 1 {
		return "", fmt.Errorf("template %q: %d found", name, len(tmpl))
	}
	return tmpl[0].TemplateID, nil
}

// createHost creates the host of one target linked to the given templates
// (technical names), with the macros the scenario starts from: discovery
// limited to the test's ports, CLOSE_WAIT thresholds out of reach
// (lowered later).
func createHost(ctx context.Context, z *zabbix, tg *target, s *testSockets, templates ...string) error {
	var links []any
	for _, name := range templates {
		id, err := templateID(ctx, z, name)
		if err != nil {
			return err
		}
		links = append(links, map[string]string{"templateid": id})
	}
	var groups []struct {
		GroupID string `json:"groupid"`
	}
	if err := z.api.call(ctx, "hostgroup.get", map[string]any{"filter": map[string]any{"name": "Linux servers"}, "output": []string{"groupid"}}, &groups); err != nil {
		return err
	}
	if len(groups) != 1 {
		return fmt.Errorf("host group Linux servers: %d found", len(groups))
	}
	app := strconv.Itoa(s.appPort())
	// A host with active checks only needs no interface.
	interfaces := []any{}
	if tg.agent.port != 0 {
		interfaces = append(interfaces, map[string]any{"type": 1, "main": 1, "useip": 1, "ip": "127.0.0.1", "dns": "", "port": strconv.Itoa(tg.agent.port)})
	}
	var res struct {
		HostIDs []string `json:"hostids"`
	}
	err := z.api.call(ctx, "host.create", map[string]any{
		"host":       tg.hostname,
		"groups":     []any{map[string]string{"groupid": groups[0].GroupID}},
		"templates":  links,
		"interfaces": interfaces,
		"macros": append([]any{
			map[string]string{"macro": "{$TCP.PORT.MATCHES}", "value": "^(" + strings.Join(s.ports(), "|") + ")$"},
			map[string]string{"macro": "{$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"" + app + "\"}", "value": "100000"},
			map[string]string{"macro": "{$TCP.CLOSE_WAIT.MAX.WARN}", "value": "100000"},
			// The test's listeners are on 127.0.0.1 at ports the kernel
			// picked (inside the ephemeral range), which discovery leaves
			// out by default.
			map[string]string{"macro": "{$TCP.PORT.LOOPBACK.MATCHES}", "value": ".*"},
			map[string]string{"macro": "{$TCP.PORT.EPHEMERAL.MATCHES}", "value": ".*"},
			// Short enough for a CI run; a restart shorter than it raises
			// nothing.
			map[string]string{"macro": "{$TCP.PORT.DOWN.PERIOD}", "value": "1m"},
			// The test overflows the full listener 3 times.
			map[string]string{"macro": "{$TCP.LISTEN_OVERFLOWS.MAX.WARN}", "value": "0"},
		}, cgroupMacros(tg)...),
	}, &res)
	if err != nil {
		return fmt.Errorf("create host %s linked to %q: %w", tg.hostname, templates, err)
	}
	tg.hostid = res.HostIDs[0]
	logf("Zabbix %s: host %s (%s, port %d) linked to %q", z.l.version, tg.hostname, tg.agent.kind, tg.agent.port, templates)
	return nil
}

// linkTemplate links one more template (technical name) to a host.
func linkTemplate(ctx context.Context, z *zabbix, tg *target, name string) error {
	id, err := templateID(ctx, z, name)
	if err != nil {
		return err
	}
	t := time.Now()
	if err := z.api.call(ctx, "host.massadd", map[string]any{
		"hosts":     []any{map[string]string{"hostid": tg.hostid}},
		"templates": []any{map[string]string{"templateid": id}},
	}, nil); err != nil {
		return fmt.Errorf("link %q to %s: %w", name, tg.hostname, err)
	}
	logf("Zabbix %s: host %s also linked to %q in %.1fs", z.l.version, tg.hostname, name, time.Since(t).Seconds())
	return nil
}

func grepLog(path string, words ...string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		l := strings.ToLower(line)
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, line)
				break
			}
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("... %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
