package agent

import (
	"fmt"
	"regexp"
	"strings"
)

// NotSupported is the error of a key the agent answered with
// ZBX_NOTSUPPORTED; Text is the agent's reason, e.g. "Invalid first
// parameter: ...".
type NotSupported struct{ Text string }

// Error returns the agent's reason as it is.
func (e *NotSupported) Error() string { return e.Text }

const notSupported = "ZBX_NOTSUPPORTED"

// parseGetOutput interprets what zabbix_get printed: the value followed by
// one newline, or "ZBX_NOTSUPPORTED: <reason>".
func parseGetOutput(out string) (string, error) {
	out = strings.TrimSuffix(out, "\n")
	if out == notSupported {
		return "", &NotSupported{}
	}
	if rest, ok := strings.CutPrefix(out, notSupported+": "); ok {
		return "", &NotSupported{Text: rest}
	}
	return out, nil
}

// parseTestOutput interprets the output of `zabbix_agent2 -t key` (and
// `zabbix_agentd -t key`): the key padded with spaces, then "[t|value]"
// where t is the value type, or "[m|ZBX_NOTSUPPORTED] [reason]".
//
// Agent 2 6.0 also prints its log lines there (after the plugin has ended:
// "failed to read response for plugin ..."); lines starting with a log
// timestamp before or after the result are skipped.
func parseTestOutput(key, out string) (string, error) {
	lines := strings.SplitAfter(out, "\n")
	start := -1
	for i, l := range lines {
		if r, ok := strings.CutPrefix(l, key); ok && strings.HasPrefix(strings.TrimLeft(r, " "), "[") {
			start = i
		}
	}
	if start < 0 {
		return "", fmt.Errorf("agent -t %s: unexpected output %q", key, shorten(out))
	}
	end := len(lines)
	for end > start+1 && (logLineRe.MatchString(lines[end-1]) || lines[end-1] == "") {
		end--
	}
	rest := strings.TrimPrefix(strings.Join(lines[start:end], ""), key)
	rest = strings.TrimSuffix(strings.TrimLeft(rest, " "), "\n")
	if r, ok := strings.CutPrefix(rest, "[m|"+notSupported+"]"); ok {
		r = strings.TrimPrefix(r, " ")
		if r == "" {
			return "", &NotSupported{}
		}
		if len(r) >= 2 && r[0] == '[' && r[len(r)-1] == ']' {
			return "", &NotSupported{Text: r[1 : len(r)-1]}
		}
		return "", fmt.Errorf("agent -t %s: unexpected output %q", key, shorten(out))
	}
	if len(rest) < 4 || rest[0] != '[' || rest[2] != '|' || rest[len(rest)-1] != ']' || !strings.ContainsRune("sudtm", rune(rest[1])) {
		return "", fmt.Errorf("agent -t %s: unexpected output %q", key, shorten(out))
	}
	return rest[3 : len(rest)-1], nil
}

// logLineRe matches a line of agent 2's log ("2026/11/22 21:55:34.103157 ...").
var logLineRe = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+ `)

// shorten keeps the first and last 1000 bytes of s.
func shorten(s string) string {
	if len(s) <= 2000 {
		return s
	}
	return s[:1000] + fmt.Sprintf(" ...[%d bytes]... ", len(s)-2000) + s[len(s)-1000:]
}
