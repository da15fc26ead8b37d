package metrics

import (
	"context"
	"strconv"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

var (
	paramState  = Param{Name: "state", Default: "all", Description: "TCP state: a seed-script name (timewait, estab, ...), a kernel name (time_wait, SYN-RECV, ...) or all"}
	paramPort   = Param{Name: "local port", Description: "local port 1-65535; empty for any"}
	paramFamily = Param{Name: "family", Description: "4 or 6; empty for both"}
)

func (e *Exporter) tcpMetrics() []Metric {
	return []Metric{
		{
			Key:         "tcp.status",
			Description: "Number of TCP sockets in a state, optionally on one local port and address family.",
			Params:      []Param{paramState, paramPort, paramFamily},
			Handler:     e.tcpStatus,
		},
		{
			Key:         "tcp.status.get",
			Description: "JSON object with the number of TCP sockets in every state and their total.",
			Params:      []Param{paramPort, paramFamily},
			Handler:     e.tcpStatusGet,
		},
	}
}

// tcpQuery parses the <local port>,<family> pair starting at parameter i.
func tcpQuery(p Params, i int) (sockets.Query, error) {
	port, err := parsePortParam(i, p.Get(i))
	if err != nil {
		return sockets.Query{}, err
	}
	fam, err := parseFamilyParam(i+1, p.Get(i+1))
	if err != nil {
		return sockets.Query{}, err
	}
	return sockets.Query{Proto: sockets.TCP, LocalPort: port, Family: fam}, nil
}

// tcpStatus: tcp.status[<state>,<local port>,<family>] → integer.
func (e *Exporter) tcpStatus(ctx context.Context, p Params) (string, error) {
	mask, err := parseStateParam(0, p.Get(0))
	if err != nil {
		return "", err
	}
	q, err := tcpQuery(p, 1)
	if err != nil {
		return "", err
	}
	q.States = mask
	c, err := e.socketCounts(ctx, q)
	if err != nil {
		return "", err
	}
	var n uint64
	for _, s := range sockets.States() {
		if mask.Has(s) {
			n += c[s]
		}
	}
	return strconv.FormatUint(n, 10), nil
}

// tcpStatusGet: tcp.status.get[<local port>,<family>] → JSON object.
func (e *Exporter) tcpStatusGet(ctx context.Context, p Params) (string, error) {
	q, err := tcpQuery(p, 0)
	if err != nil {
		return "", err
	}
	c, err := e.socketCounts(ctx, q)
	if err != nil {
		return "", err
	}
	return string(appendStateCounts(nil, &c)) + "}", nil
}

// appendStateCounts appends `{"established":N,...,"total":N` (no closing
// brace, so callers can add fields) to b.
func appendStateCounts(b []byte, c *sockets.Counts) []byte {
	b = append(b, '{')
	for _, s := range sockets.States() {
		b = append(b, '"')
		b = append(b, s.String()...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, c[s], 10)
		b = append(b, ',')
	}
	b = append(b, `"total":`...)
	return strconv.AppendUint(b, c.Total(), 10)
}

// socketCounts reads counts through the snapshot cache and maps failures to
// the operator's error text.
func (e *Exporter) socketCounts(ctx context.Context, q sockets.Query) (sockets.Counts, error) {
	c, err := e.cache.counts(ctx, q)
	if err != nil {
		e.log.Debugf("socket table read %+v failed: %v", q, err)
		return c, operatorError(err, errSocketTable)
	}
	return c, nil
}
