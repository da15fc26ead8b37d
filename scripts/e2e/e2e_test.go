package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPointHelper: every UserParameter of the shipped file runs the helper
// under test after rewriting, and nothing else changes.
func TestPointHelper(t *testing.T) {
	src, err := os.ReadFile("../userparameter_tcpstatus.conf")
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
		if !strings.HasPrefix(name, "Linux TCP status by Zabbix agent") {
			t.Errorf("%s: technical name %q", f, name)
		}
	}
	if got := technicalName("<zabbix_export/>"); got != "" {
		t.Errorf("no template: %q", got)
	}
}

func TestImportRules(t *testing.T) {
	if _, ok := importRules("6.0.14")["groups"]; !ok {
		t.Error("6.0 rules without groups")
	}
	r7 := importRules("7.0.9")
	if _, ok := r7["groups"]; ok {
		t.Error("7.0 rules with groups (split into template_groups/host_groups since 6.2)")
	}
	if _, ok := r7["template_groups"]; !ok {
		t.Error("7.0 rules without template_groups")
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
