package lint

import (
	"fmt"
	"regexp"
	"strings"
)

// itemRef is one item query of a 6.0 expression: /host/key. The host is
// empty in calculated item formulas that mean "this host" (//key).
type itemRef struct {
	host, key string
}

// itemRefs finds every item query in a trigger expression or a calculated
// item formula. Quoted strings are skipped; keys keep their parameters,
// which may hold quoted strings and nested brackets.
func itemRefs(expr string) ([]itemRef, error) {
	var refs []itemRef
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '"':
			end, err := skipQuoted(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case '(':
			j := i + 1
			for j < len(expr) && expr[j] == ' ' {
				j++
			}
			if j >= len(expr) || expr[j] != '/' {
				continue
			}
			ref, end, err := parseQuery(expr, j)
			if err != nil {
				return nil, err
			}
			refs = append(refs, ref)
			i = end - 1
		}
	}
	return refs, nil
}

// skipQuoted returns the index of the closing quote of the string opening
// at i.
func skipQuoted(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %q", s[i:])
}

var keyChar = func(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// parseQuery parses /host/key[params] starting at the first slash and
// returns the reference and the index after it.
func parseQuery(s string, i int) (itemRef, int, error) {
	j := strings.IndexByte(s[i+1:], '/')
	if j < 0 {
		return itemRef{}, 0, fmt.Errorf("item query without key at %q", s[i:])
	}
	host := s[i+1 : i+1+j]
	k := i + 1 + j + 1
	start := k
	for k < len(s) && keyChar(s[k]) {
		k++
	}
	if k == start {
		return itemRef{}, 0, fmt.Errorf("item query without key at %q", s[i:])
	}
	if k < len(s) && s[k] == '[' {
		depth := 0
	params:
		for ; k < len(s); k++ {
			switch s[k] {
			case '"':
				end, err := skipQuoted(s, k)
				if err != nil {
					return itemRef{}, 0, err
				}
				k = end
			case '[':
				depth++
			case ']':
				depth--
				if depth == 0 {
					k++
					break params
				}
			}
		}
		if depth != 0 {
			return itemRef{}, 0, fmt.Errorf("unbalanced brackets in key at %q", s[start:])
		}
	}
	return itemRef{host: host, key: s[start:k]}, k, nil
}

var (
	callRe    = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*\(`)
	macroRe   = regexp.MustCompile(`\{\$[^}]*\}|\{#[^}]*\}|\{[A-Z][A-Z0-9_.]*\}`)
	numberRe  = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.])(\d+(?:\.\d+)?[smhdwKMGT]?)(?:$|[^A-Za-z0-9_.])`)
	userMacro = regexp.MustCompile(`\{\$([A-Z0-9_.]+)(?::("(?:[^"\\]|\\.)*"|[^}]*))?\}`)
)

// literalConstants returns the numeric constants an expression compares
// against outside function arguments (thresholds written as numbers).
func literalConstants(expr string) []string {
	// Drop quoted strings, then whole function calls, then macros.
	var b strings.Builder
	for i := 0; i < len(expr); i++ {
		if expr[i] == '"' {
			end, err := skipQuoted(expr, i)
			if err != nil {
				return nil
			}
			i = end
			b.WriteString(`""`)
			continue
		}
		b.WriteByte(expr[i])
	}
	s := b.String()
	for {
		loc := callRe.FindStringIndex(s)
		if loc == nil {
			break
		}
		depth, end := 0, -1
		for k := loc[1] - 1; k < len(s); k++ {
			if s[k] == '(' {
				depth++
			} else if s[k] == ')' {
				depth--
				if depth == 0 {
					end = k
					break
				}
			}
		}
		if end < 0 {
			break
		}
		s = s[:loc[0]] + " F " + s[end+1:]
	}
	s = macroRe.ReplaceAllString(s, " M ")
	var out []string
	for _, m := range numberRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// userMacros returns the user macros a text uses, whole (with context) and
// by name ({$NAME}).
func userMacros(s string) (whole, names []string) {
	for _, m := range userMacro.FindAllStringSubmatch(s, -1) {
		whole = append(whole, m[0])
		names = append(names, "{$"+m[1]+"}")
	}
	return whole, names
}
