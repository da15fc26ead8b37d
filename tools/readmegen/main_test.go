package main

import (
	"strings"
	"testing"
)

// TestReadme: the generated sections of README.md (keys, state names,
// options) match the code; go generate ./tools/readmegen rewrites them.
func TestReadme(t *testing.T) {
	stale, err := run("../../README.md", "../../docs/DESIGN.md", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("README.md sections %v are out of date with the code; run\n\tgo generate ./tools/readmegen", stale)
	}
}

func TestReplace(t *testing.T) {
	text := "a\n<!-- generated: keys (x) -->\nold\n<!-- end generated -->\nb\n"
	got, stale, err := replace(text, map[string]string{"keys": "new\n"})
	if err != nil || strings.Join(stale, ",") != "keys" || got != "a\n<!-- generated: keys (x) -->\nnew\n<!-- end generated -->\nb\n" {
		t.Errorf("replace = %q, %v, %v", got, stale, err)
	}
	if _, stale, err := replace(got, map[string]string{"keys": "new\n"}); err != nil || len(stale) != 0 {
		t.Errorf("second replace: %v, %v", stale, err)
	}
	if _, _, err := replace(text, map[string]string{"keys": "x", "states": "y"}); err == nil {
		t.Error("a missing section is not reported")
	}
	if _, _, err := replace(text, map[string]string{}); err == nil {
		t.Error("an unknown section is not reported")
	}
}
