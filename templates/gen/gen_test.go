package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/scripts/templatelint/lint"
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

// TestBothTemplatesHaveTheSameKeys: the classic-agent template polls the
// same keys as the agent 2 one, because the UserParameter file maps the
// same key names.
func TestBothTemplatesHaveTheSameKeys(t *testing.T) {
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
	a, b := build(variants[0]), build(variants[1])
	if keys(a) != keys(b) {
		t.Errorf("keys differ:\n%s\n%s", keys(a), keys(b))
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
