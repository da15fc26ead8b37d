package agent

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
)

// confOptions reads conf/tcpstatus.conf: the active lines and the
// commented "# Plugins.TCPStatus.X=default" lines, by option name.
func confOptions(t *testing.T) (active, defaults map[string]string) {
	t.Helper()
	root, err := agenttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "conf", "tcpstatus.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^(# )?Plugins\.TCPStatus\.([A-Za-z.]+)=(.*)$`)
	active, defaults = map[string]string{}, map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		switch {
		case m == nil:
		case m[1] == "":
			active[m[2]] = m[3]
		default:
			defaults[m[2]] = m[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return active, defaults
}

// TestConfFile: conf/tcpstatus.conf sets only System.Path, to the packaged
// location, and documents every plugin option with its real default.
func TestConfFile(t *testing.T) {
	active, defaults := confOptions(t)
	want := map[string]string{"System.Path": "/usr/libexec/zabbix-agent2-plugins/zabbix-agent2-plugin-tcpstatus"}
	if len(active) != 1 || active["System.Path"] != want["System.Path"] {
		t.Errorf("active options %v; want only %v", active, want)
	}
	for _, o := range metrics.Options() {
		if _, ok := defaults[o.Name]; !ok {
			t.Errorf("option %s not documented as # Plugins.TCPStatus.%s=<default>", o.Name, o.Name)
		}
	}
	for name := range defaults {
		known := false
		for _, o := range metrics.Options() {
			known = known || o.Name == name
		}
		if !known {
			t.Errorf("documented option %s is not a plugin option", name)
		}
	}
	cfg, err := metrics.ParseConfig(defaults, 0)
	if err != nil {
		t.Fatalf("documented defaults do not parse: %v", err)
	}
	if d := metrics.DefaultConfig(); cfg != d {
		t.Errorf("documented defaults give %+v; the defaults are %+v", cfg, d)
	}
}

// TestConfFileInAgent: an agent 2 of each series runs with every documented
// default set explicitly.
func TestConfFileInAgent(t *testing.T) {
	_, defaults := confOptions(t)
	var lines []string
	for name, v := range defaults {
		lines = append(lines, "Plugins.TCPStatus."+name+"="+v)
	}
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			a := agenttest.Start(t, v, agenttest.WithConf(lines...))
			got, err := a.Get("tcp.status[listen]")
			if err != nil || !isUint(got) {
				t.Fatalf("tcp.status[listen] = %q, %v with %s", got, err, strings.Join(lines, " "))
			}
		})
	}
}
