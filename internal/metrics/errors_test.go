package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	long := strings.Repeat("a", 63) + "é" + "tail" // é straddles byte 64
	for in, want := range map[string]string{
		"timewait":                  `"timewait"`,
		"":                          `""`,
		`\u0000`:                    `"\u0000"`, // what the operator typed, not Go's "\\u0000"
		"\u200btimewait":            `"<U+200B>timewait"`,
		"a\x00b":                    `"a\x00b"`,
		"tab\there\nnl\x7f":         `"tab\x09here\x0Anl\x7F"`,
		"\xff\xfe":                  `"\xFF\xFE"`,
		"rtl\u202Eevil":             `"rtl<U+202E>evil"`,
		"nb\u00a0sp":                `"nb<U+00A0>sp"`,
		"c1\u0085":                  `"c1<U+0085>"`,
		"bom\ufeff":                 `"bom<U+FEFF>"`,
		`say "hi" \ ok`:             `"say \"hi\" \ ok"`,
		"ключ ✓ 端口":                 `"ключ ✓ 端口"`,
		"ws \u3000":                 `"ws <U+3000>"`,
		long:                        `"` + strings.Repeat("a", 63) + `..."`,
		strings.Repeat("\x80", 100): `"` + strings.Repeat(`\x80`, 61) + `..."`,
		strings.Repeat("\x00", 100): `"` + strings.Repeat(`\x00`, 64) + `..."`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	// clip(v) in an error format prints as Quote(v) with %q, unquoted
	// otherwise.
	if got := fmt.Sprintf("%q|%s|%v", clip("\u200bx"), clip("a\x01"), clip("b")); got != `"<U+200B>x"|a\x01|b` {
		t.Errorf("clip formats as %s", got)
	}
}

// TestParamErrorsQuoteReadably checks the operator's text in the errors of
// item parameters goes through Quote.
func TestParamErrorsQuoteReadably(t *testing.T) {
	e, err := New(DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key    string
		params []string
		want   string
	}{
		{"tcp.status", []string{"\u200btimewait"}, `Invalid first parameter: unknown state "<U+200B>timewait"; expected `},
		{"tcp.status", []string{`\u0000`}, `Invalid first parameter: unknown state "\u0000"; expected `},
		{"tcp.status", []string{"estab", "8\x00"}, `Invalid second parameter: port must be a number from 1 to 65535, got "8\x00".`},
		{"tcp.status.get", []string{"", "ipv4\u200b"}, `Invalid second parameter: unknown family "ipv4<U+200B>"; expected 4, 6 or empty for both.`},
		{"tcp.remote.top", []string{"1\u200b"}, `Invalid first parameter: expected a number from 1 to `},
		{"disk.get", []string{"sd\x1b[2Ja"}, `Invalid first parameter: device name must be 1 to 64 characters of A-Z a-z 0-9 . _ : + - / !, got "sd\x1B[2Ja".`},
	} {
		_, err := e.Export(context.Background(), tc.key, tc.params)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s%q: %v, want %s", tc.key, tc.params, err, tc.want)
		}
	}
}
