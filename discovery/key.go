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

// parseKey splits an item key as Zabbix writes it, key[p1,"p 2",,[a,b]],
// into the key name and its parameters:
//   - a parameter is unquoted (anything but ',' and ']', not starting with
//     '"' or '['), quoted ("..." where \" stands for a quote and other
//     backslashes are kept), or an array [..] of such parameters, given on
//     as its raw text;
//   - spaces before a parameter, and after a quoted one, are skipped;
//   - "key" has no parameters, "key[]" one empty parameter.
func parseKey(s string) (string, []string, error) {
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
	params, end, err := parseParams(s, i+1, false)
	if err != nil {
		return "", nil, err
	}
	if end != len(s) {
		return "", nil, errKeyFormat // text after the closing bracket
	}
	return name, params, nil
}

// parseParams parses parameters from s[i:] up to and including the closing
// ']' and returns them with the index just past it. Inside an array
// (nested), another '[' is an error: arrays do not nest.
func parseParams(s string, i int, nested bool) ([]string, int, error) {
	var params []string
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			return nil, 0, errKeyFormat
		}
		var p string
		switch s[i] {
		case '"':
			var b strings.Builder
			i++
			for {
				if i == len(s) {
					return nil, 0, errKeyFormat // unterminated quote
				}
				c := s[i]
				if c == '\\' && i+1 < len(s) && s[i+1] == '"' {
					b.WriteByte('"')
					i += 2
					continue
				}
				i++
				if c == '"' {
					break
				}
				b.WriteByte(c)
			}
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i == len(s) || (s[i] != ',' && s[i] != ']') {
				return nil, 0, errKeyFormat
			}
			p = b.String()
		case '[':
			if nested {
				return nil, 0, errKeyFormat
			}
			start := i
			_, end, err := parseParams(s, i+1, true)
			if err != nil {
				return nil, 0, err
			}
			i = end
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i == len(s) || (s[i] != ',' && s[i] != ']') {
				return nil, 0, errKeyFormat
			}
			p = s[start:end]
		default:
			start := i
			for i < len(s) && s[i] != ',' && s[i] != ']' {
				i++
			}
			if i == len(s) {
				return nil, 0, errKeyFormat
			}
			p = s[start:i]
		}
		params = append(params, p)
		if s[i] == ']' {
			return params, i + 1, nil
		}
		i++ // ','
	}
}
