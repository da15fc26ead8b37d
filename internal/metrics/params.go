package metrics

import (
	"strconv"
	"strings"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// Param describes one positional parameter of an item key.
type Param struct {
	Name        string // as shown in the key synopsis, e.g. "state"
	Description string
	Default     string // used when the parameter is absent or empty
	Required    bool
}

// Params gives a handler its parameters by position, defaults applied.
type Params struct {
	raw  []string
	defs []Param
}

// Len is the number of declared parameters.
func (p Params) Len() int { return len(p.defs) }

// Get returns parameter i with surrounding white space removed, or its
// default when absent or empty.
func (p Params) Get(i int) string {
	if i < len(p.raw) {
		if v := strings.TrimSpace(p.raw[i]); v != "" {
			return v
		}
	}
	if i < len(p.defs) {
		return p.defs[i].Default
	}
	return ""
}

// bind checks the raw parameters against the declaration: not more than
// declared, required ones present.
func bind(defs []Param, raw []string) (Params, error) {
	// "k[]" arrives as one empty parameter: accept it for keys without any.
	if len(raw) > len(defs) && !(len(defs) == 0 && len(raw) == 1 && raw[0] == "") {
		return Params{}, errTooManyParams
	}
	p := Params{raw: raw, defs: defs}
	for i, d := range defs {
		if d.Required && p.Get(i) == "" {
			return Params{}, invalidParam(i, "%s is required", d.Name)
		}
	}
	return p, nil
}

// stateNamesHelp lists the accepted state names for error texts.
const stateNamesHelp = "established (estab), syn_sent (synsent), syn_recv (synrecv), fin_wait1 (finwait1), " +
	"fin_wait2 (finwait2), time_wait (timewait), close (closed), close_wait (closewait), last_ack (lastack), " +
	"listen, closing or all"

// parseStateParam parses a state parameter; "all" (or allowAll and empty)
// gives the zero mask, meaning every state.
func parseStateParam(i int, v string) (sockets.StateMask, error) {
	if strings.EqualFold(v, "all") {
		return 0, nil
	}
	s, ok := sockets.ParseState(v)
	if !ok {
		return 0, invalidParam(i, "unknown state %s; expected %s", Quote(v), stateNamesHelp)
	}
	return sockets.MaskOf(s), nil
}

// parsePortParam parses a local port, 1-65535; empty gives 0 (any port).
func parsePortParam(i int, v string) (uint16, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, invalidParam(i, "port must be a number from 1 to 65535, got %s", Quote(v))
	}
	if n < 1 || n > 65535 {
		return 0, invalidParam(i, "port must be from 1 to 65535, got %d", n)
	}
	return uint16(n), nil
}

// parseFamilyParam parses an address family: 4/ipv4, 6/ipv6, empty or
// all for both.
func parseFamilyParam(i int, v string) (sockets.Family, error) {
	switch strings.ToLower(v) {
	case "", "all":
		return sockets.FamilyAll, nil
	case "4", "ipv4", "inet":
		return sockets.FamilyV4, nil
	case "6", "ipv6", "inet6":
		return sockets.FamilyV6, nil
	}
	return 0, invalidParam(i, "unknown family %s; expected 4, 6 or empty for both", Quote(v))
}

// parseCountParam parses a positive count up to max.
func parseCountParam(i int, v string, max int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, invalidParam(i, "expected a number from 1 to %d, got %s", max, Quote(v))
	}
	return n, nil
}
