package main

import (
	"errors"
	"strings"
)

// errKeyFormat is what the agents answer for a key they cannot parse.
var errKeyFormat = errors.New("Invalid item key format.")

// isKeyChar reports whether c may appear in a key name (the agents' rule).
func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// paramKind is how a parameter was written in the key.
type paramKind int

const (
	unquotedParam paramKind = iota // a b
	quotedParam                    // "a b"
	arrayParam                     // [a, "b"]
)

// keyParam is one parameter of a key as parsed.
type keyParam struct {
	kind paramKind
	// value is what the agents hand on to the metric: the text of an
	// unquoted parameter, a quoted one without its quotes and with \"
	// unescaped, or an array's elements joined by ",".
	value string
	// elems are an array's elements as written, quotes and escapes kept,
	// without the spaces before them (nor after a quoted one).
	elems []string
}

// parseKey splits an item key as Zabbix writes it, key[p1,"p 2",,[a,b]],
// into the key name and the parameters the agents hand on to a metric. It
// follows agent 2's grammar, which the classic agent shares except where it
// is looser (see testdata/keys.json, captured from both):
//   - the key name is one or more of A-Z a-z 0-9 . _ -; "key" has no
//     parameters, "key[]" one empty parameter;
//   - spaces before a parameter are skipped (tabs are not);
//   - an unquoted parameter is anything up to the next ',' or ']' (its
//     trailing spaces kept); it may hold '"' and '[' after its first
//     character;
//   - a quoted parameter "..." ends at the first '"' not preceded by a
//     backslash; \" stands for '"', every other backslash is kept; only
//     spaces may follow it before ',' or ']';
//   - an array [e1, "e2"] holds unquoted or quoted elements (arrays do not
//     nest) and is handed on as the elements joined by ",", each as
//     written, quotes kept, spaces before it (and after a quoted one)
//     removed: k[[a, "b"]] gives a,"b"; k[[]] gives an empty parameter.
//     The closing ']' must be followed at once by ',' or ']'.
func parseKey(s string) (string, []string, error) {
	name, params, err := parseKeyParams(s)
	if err != nil || params == nil {
		return name, nil, err
	}
	values := make([]string, len(params))
	for i, p := range params {
		values[i] = p.value
	}
	return name, values, nil
}

// parseKeyParams is parseKey keeping how each parameter was written.
func parseKeyParams(s string) (string, []keyParam, error) {
	i := 0
	for i < len(s) && isKeyChar(s[i]) {
		i++
	}
	name := s[:i]
	if name == "" {
		return "", nil, errKeyFormat
	}
	if i == len(s) {
		return name, nil, nil
	}
	if s[i] != '[' {
		return "", nil, errKeyFormat
	}
	var params []keyParam
	i++
	for {
		p, next, err := parseParam(s, i)
		if err != nil {
			return "", nil, err
		}
		params = append(params, p)
		// parseParam leaves next on the ',' or ']' after the parameter.
		if s[next] == ']' {
			if next+1 != len(s) {
				return "", nil, errKeyFormat // text after the closing bracket
			}
			return name, params, nil
		}
		i = next + 1
	}
}

// skipSpaces returns the index of the first byte at or after i that is not
// a space.
func skipSpaces(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// parseParam parses the parameter starting at s[i] (spaces before it
// included) and returns it with the index of the ',' or ']' that ends it.
func parseParam(s string, i int) (keyParam, int, error) {
	i = skipSpaces(s, i)
	if i == len(s) {
		return keyParam{}, 0, errKeyFormat
	}
	switch s[i] {
	case '"':
		v, end, err := quotedEnd(s, i)
		if err != nil {
			return keyParam{}, 0, err
		}
		return keyParam{kind: quotedParam, value: unquote(v)}, end, nil
	case '[':
		var elems []string
		i++
		for {
			e, end, err := parseElem(s, i)
			if err != nil {
				return keyParam{}, 0, err
			}
			elems = append(elems, e)
			if s[end] == ']' {
				i = end + 1
				break
			}
			i = end + 1
		}
		// Agent 2 wants the separator right after the array (the classic
		// agent allows spaces there).
		if i == len(s) || s[i] != ',' && s[i] != ']' {
			return keyParam{}, 0, errKeyFormat
		}
		if len(elems) == 1 && elems[0] == "" {
			elems = nil // [] and [ ] are empty arrays
		}
		return keyParam{kind: arrayParam, value: strings.Join(elems, ","), elems: elems}, i, nil
	}
	end := unquotedEnd(s, i)
	if end == len(s) {
		return keyParam{}, 0, errKeyFormat
	}
	return keyParam{kind: unquotedParam, value: s[i:end]}, end, nil
}

// parseElem parses the array element starting at s[i] (spaces before it
// included) and returns it as written with the index of the ',' or ']'
// that ends it.
func parseElem(s string, i int) (string, int, error) {
	i = skipSpaces(s, i)
	if i == len(s) || s[i] == '[' {
		return "", 0, errKeyFormat // unterminated, or a nested array
	}
	if s[i] == '"' {
		return quotedEnd(s, i)
	}
	end := unquotedEnd(s, i)
	if end == len(s) {
		return "", 0, errKeyFormat
	}
	return s[i:end], end, nil
}

// unquotedEnd returns the index of the first ',' or ']' at or after i, or
// len(s).
func unquotedEnd(s string, i int) int {
	if n := strings.IndexAny(s[i:], ",]"); n >= 0 {
		return i + n
	}
	return len(s)
}

// quotedEnd reads the quoted text starting at s[i] == '"' and returns it as
// written, quotes included, with the index of the ',' or ']' after it and
// the spaces that may follow.
func quotedEnd(s string, i int) (string, int, error) {
	j := i + 1
	for {
		if j >= len(s) {
			return "", 0, errKeyFormat // unterminated quote
		}
		if s[j] == '\\' && j+1 < len(s) && s[j+1] == '"' {
			j += 2
			continue
		}
		if s[j] == '"' {
			break
		}
		j++
	}
	raw := s[i : j+1]
	j = skipSpaces(s, j+1)
	if j == len(s) || s[j] != ',' && s[j] != ']' {
		return "", 0, errKeyFormat
	}
	return raw, j, nil
}

// unquote turns a quoted parameter as written into its value: quotes off,
// \" unescaped, other backslashes kept.
func unquote(raw string) string {
	return strings.ReplaceAll(raw[1:len(raw)-1], `\"`, `"`)
}
