package metrics

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"zabbix-agent2-plugin-tcpstatus/internal/zbx"
)

// ItemError is an error whose text is shown to the operator as the reason an
// item is unsupported. Texts follow Zabbix style: capital first letter,
// final period, parameters named by position.
type ItemError struct{ msg string }

func (e *ItemError) Error() string { return e.msg }

func itemErrorf(format string, args ...any) error {
	return &ItemError{msg: fmt.Sprintf(format, args...)}
}

var ordinals = [...]string{"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"}

// invalidParam builds "Invalid <n-th> parameter: <why>." for the parameter at
// index i (0-based). A parameter value quoted in why goes through Quote.
func invalidParam(i int, why string, args ...any) error {
	pos := fmt.Sprintf("parameter #%d", i+1)
	if i < len(ordinals) {
		pos = ordinals[i] + " parameter"
	}
	if why == "" {
		return itemErrorf("Invalid %s.", pos)
	}
	return itemErrorf("Invalid %s: %s.", pos, fmt.Sprintf(why, args...))
}

// maxQuoted bounds how much of an operator's text an error repeats: an item
// parameter may be megabytes long, and the error travels back to the server.
const maxQuoted = 64

// Quote shows text an operator wrote (an item parameter, an option or flag
// value) in an error message, readably and safely: in double quotes, as a
// quoted item key parameter is written (a quote as \", every other
// backslash as it is), with what a terminal or the frontend would hide or
// act on spelled out: control characters and bytes that are not UTF-8 as
// \xNN, invisible or other unprintable characters (U+200B, U+202E, U+00A0,
// ...) as <U+200B>. Text longer than maxQuoted bytes is cut at a character
// boundary and marked with "...".
func Quote(v string) string { return quote(v, maxQuoted) }

// maxQuotedPath bounds a quoted file system path: PATH_MAX, so an
// administrator sees the whole path the configuration file gave.
const maxQuotedPath = 4096

// QuotePath is Quote for a path from the agent's configuration file, cut only
// beyond PATH_MAX: a path cut at 64 bytes would hide which directory failed.
func QuotePath(v string) string { return quote(v, maxQuotedPath) }

func quote(v string, max int) string {
	var b strings.Builder
	b.WriteByte('"')
	cut := len(v) > max
	if cut {
		n := max
		for n > max-utf8.UTFMax+1 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = v[:n]
	}
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r < 0x20, r == 0x7f:
			fmt.Fprintf(&b, "\\x%02X", v[i])
		case r != ' ' && !unicode.IsPrint(r), unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, "<U+%04X>", r)
		case r == '"':
			b.WriteString(`\"`)
		default:
			b.WriteString(v[i : i+size])
		}
		i += size
	}
	if cut {
		b.WriteString("...")
	}
	b.WriteByte('"')
	return b.String()
}

// operatorText is text an operator wrote, for an error format: %q prints
// it as Quote does, %s and %v the same without the quotes.
type operatorText string

// clip marks v as operator text for an error format ("got %q", clip(v)).
func clip(v string) operatorText { return operatorText(v) }

// Format implements fmt.Formatter.
func (t operatorText) Format(f fmt.State, verb rune) {
	q := Quote(string(t))
	if verb != 'q' {
		q = q[1 : len(q)-1]
	}
	io.WriteString(f, q)
}

var (
	errTooManyParams   = &ItemError{msg: "Too many parameters."}
	errUnsupported     = &ItemError{msg: "Unsupported metric."}
	errSocketTable     = &ItemError{msg: "Cannot obtain socket table."}
	errTimeout         = &ItemError{msg: zbx.TimeoutText}
	errInternalFailure = &ItemError{msg: zbx.InternalText}
)

// operatorError turns any error into the text shown on the item: an
// ItemError as it is, a timeout as errTimeout, anything else as fallback with
// the cause appended.
func operatorError(err error, fallback *ItemError) error {
	var ie *ItemError
	switch {
	case errors.As(err, &ie):
		return ie
	case isTimeout(err):
		return errTimeout
	case fallback != nil:
		return itemErrorf("%s %s", fallback.msg, zbx.Sentence(err.Error()))
	default:
		return itemErrorf("%s", zbx.Sentence(err.Error()))
	}
}
