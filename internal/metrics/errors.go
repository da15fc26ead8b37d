package metrics

import (
	"errors"
	"fmt"
	"unicode/utf8"
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
// index i (0-based). A parameter value quoted in why goes through clip.
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

// maxQuoted bounds how much of an item parameter an error text repeats: a
// parameter may be megabytes long, and the error travels back to the server.
const maxQuoted = 64

// clip shortens v to maxQuoted bytes at a character boundary, marking the
// cut with "...".
func clip(v string) string {
	if len(v) <= maxQuoted {
		return v
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "..."
}

var (
	errTooManyParams   = &ItemError{msg: "Too many parameters."}
	errUnsupported     = &ItemError{msg: "Unsupported metric."}
	errSocketTable     = &ItemError{msg: "Cannot obtain socket table."}
	errTimeout         = &ItemError{msg: "Timeout occurred while gathering data."}
	errInternalFailure = &ItemError{msg: "Internal error while gathering data."}
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
		return itemErrorf("%s %s", fallback.msg, sentence(err.Error()))
	default:
		return itemErrorf("%s", sentence(err.Error()))
	}
}

// sentence capitalises s and ends it with a period.
func sentence(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	if b[len(b)-1] != '.' {
		b = append(b, '.')
	}
	return string(b)
}
