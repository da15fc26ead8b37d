package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in     string
		key    string
		params []string
	}{
		{"tcp.port.discovery", "tcp.port.discovery", nil},
		{"tcp.status[]", "tcp.status", []string{""}},
		{"tcp.status[timewait]", "tcp.status", []string{"timewait"}},
		{"tcp.status[timewait,80,4]", "tcp.status", []string{"timewait", "80", "4"}},
		{"tcp.status[timewait,,]", "tcp.status", []string{"timewait", "", ""}},
		{"tcp.status[,,]", "tcp.status", []string{"", "", ""}},
		{"k[a,\"b c\",,]", "k", []string{"a", "b c", "", ""}},
		{`k["say \"hi\""]`, "k", []string{`say "hi"`}},
		{`k["back\slash"]`, "k", []string{`back\slash`}},
		{`k["a,b]"]`, "k", []string{"a,b]"}},
		{`k[ "a" , b ]`, "k", []string{"a", "b "}},
		{`k[  x]`, "k", []string{"x"}},
		{`k[a"b]`, "k", []string{`a"b`}},
		{`k[[a,b],c]`, "k", []string{"[a,b]", "c"}},
		{`k[["a]",b] ]`, "k", []string{`["a]",b]`}},
		{"disk.get[cciss/c0d0]", "disk.get", []string{"cciss/c0d0"}},
		{"Key_1-x.y[1]", "Key_1-x.y", []string{"1"}},
	} {
		key, params, err := parseKey(tc.in)
		if err != nil || key != tc.key || !reflect.DeepEqual(params, tc.params) {
			t.Errorf("parseKey(%q) = %q, %q, %v; want %q, %q", tc.in, key, params, err, tc.key, tc.params)
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, in := range []string{
		"", "[a]", "k[", "k[a", "k[a,", `k["a]`, `k["a"b]`, "k[a]x", "k[a]]", "k a", "k{a}",
		"k[[a,[b]]]", "k[[a]b]", "k[[a", `k["a\"]`, "ключ", "k[a][b]",
	} {
		if key, params, err := parseKey(in); err != errKeyFormat {
			t.Errorf("parseKey(%q) = %q, %q, %v; want %v", in, key, params, err, errKeyFormat)
		}
	}
}

// FuzzParseKey checks that no input panics and that what parses has a valid
// key name and stable parameters when re-quoted.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"tcp.status[timewait,80,4]", `k["a \"b\"",[c,"d]"],]`, "k[", "k[[[", `k["\`, "k[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, params, err := parseKey(s)
		if err != nil {
			return
		}
		for i := 0; i < len(key); i++ {
			if !isKeyChar(key[i]) {
				t.Fatalf("key %q from %q has a bad character", key, s)
			}
		}
		// Quote every parameter that is not an array and parse again.
		if params == nil {
			return
		}
		q := make([]string, len(params))
		for i, p := range params {
			if strings.HasPrefix(p, "[") {
				q[i] = p
				continue
			}
			if strings.HasSuffix(p, `\`) {
				return // a trailing backslash before the closing quote reads as \"
			}
			q[i] = `"` + strings.ReplaceAll(p, `"`, `\"`) + `"`
		}
		key2, params2, err := parseKey(key + "[" + strings.Join(q, ",") + "]")
		if err != nil || key2 != key || !reflect.DeepEqual(params, params2) {
			t.Fatalf("round trip of %q: %q %q %v, want %q %q", s, key2, params2, err, key, params)
		}
	})
}
