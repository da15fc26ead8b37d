// Command readmegen writes the sections of README.md that come from the
// code: the key table (the key table of internal/metrics, outputs from
// docs/DESIGN.md), the state names the parser accepts and the plugin
// options. `go generate ./...` (make generate) runs it; with -check it only
// says which sections are out of date, and fails.
//
//go:generate go run . -readme ../../README.md -design ../../docs/DESIGN.md
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

func main() {
	readme := flag.String("readme", "README.md", "the README to rewrite")
	design := flag.String("design", "docs/DESIGN.md", "the design notes holding the key outputs")
	check := flag.Bool("check", false, "only check that the sections are up to date")
	flag.Parse()
	stale, err := run(*readme, *design, !*check)
	if err != nil {
		fmt.Fprintf(os.Stderr, "readmegen: %v\n", err)
		os.Exit(1)
	}
	switch {
	case len(stale) > 0 && *check:
		fmt.Fprintf(os.Stderr, "readmegen: %s sections %v are out of date with the code; run go generate ./tools/readmegen\n", *readme, stale)
		os.Exit(1)
	case len(stale) > 0:
		fmt.Printf("readmegen: rewrote %s sections %v\n", *readme, stale)
	}
}

// run renders the sections and returns the names of those README differs
// in, rewriting it when write is set.
func run(readme, design string, write bool) ([]string, error) {
	want, err := sections(design)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(readme)
	if err != nil {
		return nil, err
	}
	updated, stale, err := replace(string(b), want)
	if err != nil || len(stale) == 0 || !write {
		return stale, err
	}
	return stale, os.WriteFile(readme, []byte(updated), 0o644)
}

var generatedRe = regexp.MustCompile(`(?s)(<!-- generated: ([a-z]+)[^>]*-->\n)(.*?)(<!-- end generated -->)`)

// replace puts the sections want into the generated blocks of text and
// returns the result and the names of the blocks that changed.
func replace(text string, want map[string]string) (string, []string, error) {
	found := map[string]bool{}
	var stale []string
	var errs []error
	updated := generatedRe.ReplaceAllStringFunc(text, func(m string) string {
		sm := generatedRe.FindStringSubmatch(m)
		name := sm[2]
		body, ok := want[name]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown generated section %q", name))
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
			errs = append(errs, fmt.Errorf("no generated section %q", name))
		}
	}
	return updated, stale, errors.Join(errs...)
}

// sections renders the README sections that come from the code: the key
// table, the state names the parser accepts and the plugin options.
func sections(design string) (map[string]string, error) {
	e, err := metrics.New(metrics.DefaultConfig(), nil)
	if err != nil {
		return nil, err
	}
	outputs, err := designOutputs(design)
	if err != nil {
		return nil, err
	}

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
			return nil, fmt.Errorf("%s lists %s, the plugin does not declare it", design, key)
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
	return map[string]string{"keys": keys.String(), "states": states.String(), "options": opts.String()}, nil
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// designOutputs reads the "key | output" table of docs/DESIGN.md, by bare
// key.
func designOutputs(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no key rows in %s", path)
	}
	return out, nil
}
