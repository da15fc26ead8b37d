package agenttest_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/agenttest"
	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the generated sections of README.md")

// readmeSections renders the README sections that come from the code: the
// key table (key table of internal/metrics, outputs from docs/DESIGN.md),
// the state names the parser accepts and the plugin options.
func readmeSections(t *testing.T, root string) map[string]string {
	t.Helper()
	e, err := metrics.New(metrics.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	outputs := designOutputs(t, filepath.Join(root, "docs", "DESIGN.md"))

	var keys strings.Builder
	keys.WriteString("| Key | Returns | Parameters |\n|---|---|---|\n")
	seen := map[string]bool{}
	for _, m := range e.Metrics() {
		seen[m.Key] = true
		returns := m.Description
		if out, ok := outputs[m.Key]; ok {
			returns += "<br>" + out
		}
		var params []string
		for _, p := range m.Params {
			s := "`" + p.Name + "`: " + p.Description
			switch {
			case p.Required:
				s += " (required)"
			case p.Default != "" && !strings.Contains(p.Description, "default"):
				s += " (default `" + p.Default + "`)"
			}
			params = append(params, s)
		}
		fmt.Fprintf(&keys, "| `%s` | %s | %s |\n", m.Synopsis(), cell(returns), cell(strings.Join(params, "<br>")))
	}
	for key := range outputs {
		if !seen[key] {
			t.Errorf("docs/DESIGN.md lists %s, the plugin does not declare it", key)
		}
	}

	var states strings.Builder
	states.WriteString("| State | Accepted names |\n|---|---|\n")
	candidates := []string{"estab", "established", "synsent", "syn_sent", "synrecv", "syn_recv", "synreceived",
		"finwait1", "fin_wait1", "finwait2", "fin_wait2", "timewait", "time_wait", "close", "closed",
		"closewait", "close_wait", "lastack", "last_ack", "listen", "listening", "closing"}
	for _, s := range sockets.States() {
		var names []string
		for _, c := range candidates {
			if got, ok := sockets.ParseState(c); ok && got == s {
				names = append(names, "`"+c+"`")
			}
		}
		fmt.Fprintf(&states, "| %s | %s |\n", strings.ToUpper(s.String()), strings.Join(names, ", "))
	}
	states.WriteString("| every state | `all` |\n")

	var opts strings.Builder
	opts.WriteString("| Option | Meaning |\n|---|---|\n")
	opts.WriteString("| `Plugins.TCPStatus.System.Path` | absolute path of the plugin executable (required; read by the agent) |\n")
	for _, o := range metrics.Options() {
		fmt.Fprintf(&opts, "| `Plugins.TCPStatus.%s` | %s |\n", o.Name, cell(o.Help))
	}
	return map[string]string{"keys": keys.String(), "states": states.String(), "options": opts.String()}
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// designOutputs reads the "key | output" table of docs/DESIGN.md, by bare
// key.
func designOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([a-z0-9._-]+)(\\[[^`]*\\])?` \\| (.*) \\|$")
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]] = m[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no key rows in %s", path)
	}
	return out
}

var generatedRe = regexp.MustCompile(`(?s)(<!-- generated: ([a-z]+)[^>]*-->\n)(.*?)(<!-- end generated -->)`)

// TestReadme: the generated sections of README.md (keys, state names,
// options) match the code. Run with -update-readme to rewrite them.
func TestReadme(t *testing.T) {
	root, err := agenttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := readmeSections(t, root)
	found := map[string]bool{}
	var stale []string
	updated := generatedRe.ReplaceAllStringFunc(string(b), func(m string) string {
		sm := generatedRe.FindStringSubmatch(m)
		name := sm[2]
		body, ok := want[name]
		if !ok {
			t.Errorf("README.md: unknown generated section %q", name)
			return m
		}
		found[name] = true
		if sm[3] != body {
			stale = append(stale, name)
		}
		return sm[1] + body + sm[4]
	})
	for name := range want {
		if !found[name] {
			t.Errorf("README.md has no generated section %q", name)
		}
	}
	if len(stale) == 0 {
		return
	}
	if *updateReadme {
		if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote README.md sections %v", stale)
		return
	}
	t.Errorf("README.md sections %v are out of date with the code; run\n\tgo test ./internal/agenttest -run TestReadme -update-readme", stale)
}
