package agenttest

import (
	"fmt"
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
func parseTestOutput(key, out string) (string, error) {
	rest, ok := strings.CutPrefix(out, key)
	if !ok {
		return "", fmt.Errorf("agent -t %s: unexpected output %q", key, out)
	}
	rest = strings.TrimSuffix(strings.TrimLeft(rest, " "), "\n")
	if r, ok := strings.CutPrefix(rest, "[m|"+notSupported+"]"); ok {
		r = strings.TrimPrefix(r, " ")
		if r == "" {
			return "", &NotSupported{}
		}
		if len(r) >= 2 && r[0] == '[' && r[len(r)-1] == ']' {
			return "", &NotSupported{Text: r[1 : len(r)-1]}
		}
		return "", fmt.Errorf("agent -t %s: unexpected output %q", key, out)
	}
	if len(rest) < 4 || rest[0] != '[' || rest[2] != '|' || rest[len(rest)-1] != ']' || !strings.ContainsRune("sudtm", rune(rest[1])) {
		return "", fmt.Errorf("agent -t %s: unexpected output %q", key, out)
	}
	return rest[3 : len(rest)-1], nil
}
