// Package zbx holds the rules Zabbix sets for what a plugin shows it: the
// form of the texts an operator reads (item errors, configuration errors)
// and of the metrics a plugin registers. The agent protocol and the key
// table both follow them; they are written here once.
package zbx

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Item error texts of the agent's own, for the same causes.
const (
	// TimeoutText answers a request that ran out of time.
	TimeoutText = "Timeout occurred while gathering data."
	// InternalText answers a request whose code panicked.
	InternalText = "Internal error while gathering data."
)

// Sentence returns s as Zabbix writes operator texts: surrounding space
// trimmed, first letter upper case, final period.
func Sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	if r[len(r)-1] != '.' {
		r = append(r, '.')
	}
	return string(r)
}

var keyRe = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Registration checks a plugin's metrics, one Add each, against the rules
// agent 2 applies when the plugin registers them: agent 6.0 enforces them
// with a panic, 7.0 by hanging at start, so a plugin checks before it
// registers. The zero value is ready to use.
type Registration struct {
	seen map[string]bool
}

// Add checks one metric: a key of A-Z a-z 0-9 . _ - not declared before, a
// description starting with a capital letter and ending with a period.
func (r *Registration) Add(key, description string) error {
	d := description
	switch {
	case !keyRe.MatchString(key):
		return fmt.Errorf("metric key %q may only contain A-Z a-z 0-9 . _ -", key)
	case r.seen[key]:
		return fmt.Errorf("metric %s declared twice", key)
	case d == "" || unicode.IsLower([]rune(d)[0]) || !strings.HasSuffix(d, "."):
		return fmt.Errorf("description of metric %s must start with a capital letter and end with a period", key)
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[key] = true
	return nil
}
