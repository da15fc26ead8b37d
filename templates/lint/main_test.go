package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunGoodAndBroken(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("lint/testdata/good.xml")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile("lint/testdata/good.lock")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(dir, "t.xml")
	if err := os.WriteFile(tmpl, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uuids.lock"), lock, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{tmpl}, &out); err != nil {
		t.Fatalf("good template: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "no problems") {
		t.Errorf("output: %s", out.String())
	}

	broken := strings.Replace(string(good), "{$EX.NODATA})=1", "{$EX.NODATA})=1 and last(/Lint example/ex.nope)=0", 1)
	if err := os.WriteFile(tmpl, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run([]string{tmpl}, &out); err == nil {
		t.Fatal("broken template passed")
	}
	if !strings.Contains(out.String(), `[expression]`) || !strings.Contains(out.String(), `"ex.nope"`) {
		t.Errorf("output does not name the rule and key: %s", out.String())
	}
}

func TestRunUpdateRecordsNewObject(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile("lint/testdata/good.xml")
	tmpl := filepath.Join(dir, "t.xml")
	os.WriteFile(tmpl, good, 0o644)
	var out bytes.Buffer
	// No lock yet: every object is new, -update records them all.
	if err := run([]string{tmpl}, &out); err == nil {
		t.Fatal("template without a lock passed")
	}
	out.Reset()
	if err := run([]string{"-update", tmpl}, &out); err != nil {
		t.Fatalf("-update: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "uuids.lock")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run([]string{tmpl}, &out); err != nil {
		t.Fatalf("after -update: %v\n%s", err, out.String())
	}
}

func TestRunUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-help"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "usage: templatelint") || !strings.Contains(out.String(), "uuid-lock") {
		t.Errorf("help: %s", out.String())
	}
	if err := run(nil, &out); err == nil {
		t.Error("no files accepted")
	}
}
