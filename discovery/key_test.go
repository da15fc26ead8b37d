package main

import (
	"reflect"
	"slices"
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
		{`k[[a,b],c]`, "k", []string{"a,b", "c"}},
		{`k[[ "a]" , b ]]`, "k", []string{`"a]",b `}},
		{`k[[]]`, "k", []string{""}},
		{`k["[x]"]`, "k", []string{"[x]"}},
		{`k[[x]]`, "k", []string{"x"}},
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
		`k[["a]",b] ]`, "k[[a] ,b]",
	} {
		if key, params, err := parseKey(in); err != errKeyFormat {
			t.Errorf("parseKey(%q) = %q, %q, %v; want %v", in, key, params, err, errKeyFormat)
		}
	}
}

// FuzzParseKey checks that no input panics and that what parses has a valid
// key name and survives a round trip: written again in a canonical form
// (scalars quoted, or unquoted when they end with a backslash, which a
// quoted value never does; array elements as written, a space before
// each), it parses to the same parameters, arrays staying arrays. Seeds:
// the keys the real agents answered (testdata/keys.json) and every past
// finding (testdata/fuzz/FuzzParseKey).
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"tcp.status[timewait,80,4]", `k["a \"b\"",[c,"d]"],]`, "k[", "k[[[", `k["\`, "k[]", `0["["]`, `k[[x],"[x]"]`} {
		f.Add(s)
	}
	for _, c := range loadKeyGrammar(f).Cases {
		f.Add(c.Key)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, params, err := parseKeyParams(s)
		key1, values, err1 := parseKey(s)
		if err1 != err || key1 != key || len(values) != len(params) {
			t.Fatalf("parseKey(%q) = %q, %q, %v; parseKeyParams gave %q, %v", s, key1, values, err1, key, err)
		}
		if err != nil {
			return
		}
		for i := 0; i < len(key); i++ {
			if !isKeyChar(key[i]) {
				t.Fatalf("key %q from %q has a bad character", key, s)
			}
		}
		if params == nil {
			return
		}
		q := make([]string, len(params))
		for i, p := range params {
			if values[i] != p.value {
				t.Fatalf("%q: parameter %d: parseKey %q, parseKeyParams %q", s, i, values[i], p.value)
			}
			switch {
			case p.kind == arrayParam:
				if p.value != strings.Join(p.elems, ",") {
					t.Fatalf("%q: array %q is not its elements %q joined", s, p.value, p.elems)
				}
				e := make([]string, len(p.elems))
				for j, v := range p.elems {
					e[j] = " " + v
				}
				q[i] = "[" + strings.Join(e, ",") + "]"
			case strings.HasSuffix(p.value, `\`):
				if p.kind == quotedParam || strings.ContainsAny(p.value, ",]") || strings.HasPrefix(p.value, " ") {
					t.Fatalf("%q: parameter %d %q cannot be written again", s, i, p.value)
				}
				q[i] = p.value
			default:
				q[i] = `"` + strings.ReplaceAll(p.value, `"`, `\"`) + `"`
			}
		}
		again := key + "[" + strings.Join(q, ",") + "]"
		key2, params2, err := parseKeyParams(again)
		if err != nil || key2 != key || len(params2) != len(params) {
			t.Fatalf("round trip of %q as %q: %q %v %v", s, again, key2, params2, err)
		}
		for i, p := range params {
			p2 := params2[i]
			if p2.value != p.value || (p2.kind == arrayParam) != (p.kind == arrayParam) || !slices.Equal(p2.elems, p.elems) {
				t.Fatalf("round trip of %q as %q: parameter %d %+v, was %+v", s, again, i, p2, p)
			}
		}
	})
}
