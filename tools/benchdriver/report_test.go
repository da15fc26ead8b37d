package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"zabbix-agent2-plugin-tcpstatus/tools/loadgen/ready"
)

func res(m string, cpu float64, value string) Result {
	return Result{Method: m, Label: m, Calls: 1, Reps: 1, CPUms: cpu, CPUMinMs: cpu, CPUMaxMs: cpu, RSSkB: 8 * 1024, Value: value}
}

func TestTargets(t *testing.T) {
	rs := []Result{
		res("nl-ref", 800, "1000000"), res("plugin", 900, "200000"), res("builtin-x11", 30000, "200000"),
		res("netstat-x11", 50000, "200000"), res("nl-ref-state", 250, "200000"), res("plugin-state", 300, "200000"),
	}
	out := targets(rs)
	for _, want := range []string{
		"| plugin interval CPU ≤ 1.15 × reference dump | 1.12× | yes |",
		"| built-in ×11 ≥ 40 × plugin interval | 33.33× | **no** |",
		"| netstat \\| awk ×11 ≥ 60 × plugin interval | 55.56× | **no** |",
		"| tcp.status[time_wait] ≤ 1.15 × state-mask dump | 1.20× | **no** |",
		"| plugin peak RSS ≤ 15 MB | 8.00 MB | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("targets lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "port-bytecode") {
		t.Errorf("a target without measurements was printed:\n%s", out)
	}
}

func TestCheckValues(t *testing.T) {
	run := Run{Load: ready.Report{Counts: map[string]uint64{"time_wait": 2000, "total": 10000}}}
	for _, m := range timeWaitMethods {
		run.Results = append(run.Results, res(m, 1, "2040"))
	}
	for _, m := range totalMethods {
		run.Results = append(run.Results, res(m, 1, "10040"))
	}
	if errs := checkValues(run); len(errs) != 0 {
		t.Fatalf("agreeing counts rejected: %v", errs)
	}
	run.Results[0].Value = "1500"
	run.Results = run.Results[:len(run.Results)-1]
	errs := checkValues(run)
	if len(errs) != 2 || !strings.Contains(errs[0], "plugin: reported \"1500\"") || !strings.Contains(errs[1], "procfs: not measured") {
		t.Fatalf("checkValues = %v", errs)
	}
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	rep := Report{Machine: map[string]string{"kernel": "6.18"}, Runs: []Run{
		{Nominal: 10000, Sockets: 9938, Results: []Result{res("nl-ref", 4, "9938"), res("plugin", 5, "2000")}},
		{Nominal: 100000, Sockets: 99056, Results: []Result{res("nl-ref", 60, "99056"), res("plugin", 66, "20000")}},
	}}
	if err := writeReport(dir, rep); err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(csv), "\n"); lines != 5 {
		t.Errorf("results.csv has %d lines, want header + 4", lines)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| `plugin` plugin | 1 | 5.00 | 66.0 | 1.10 | 1.00 |", "### 99056 sockets (nominal 100000)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
}
