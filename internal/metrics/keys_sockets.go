package metrics

import (
	"context"
)

// socketsMetrics declares the bulk key of the socket table: what a template
// needs from it per interval, from one whole-table read.
func (e *Exporter) socketsMetrics() []Metric {
	return []Metric{
		{
			Key: "tcp.sockets.get",
			Description: "JSON object with the number of TCP sockets in every state and, for every listening port, " +
				"its addresses, listeners, accept queue, backlog and sockets by state, from one read of the socket table.",
			Handler: e.tcpSocketsGet,
		},
	}
}

// tcpSocketsGet: tcp.sockets.get → {"states":{<tcp.status.get>},"ports":[{
// <tcp.port.get[<port>] with address, family and loopback>},...]}, the
// ports sorted by number (the lowest maxPortSlots of them). It is one whole-table read of the snapshot cache,
// the one tcp.status.get makes: listeners first, then every socket counted
// by state and by listening port.
func (e *Exporter) tcpSocketsGet(ctx context.Context, _ Params) (string, error) {
	total, pc, err := e.cache.whole(ctx)
	if err != nil {
		e.log.Debugf("whole socket table read failed: %v", err)
		return "", operatorError(err, errSocketTable)
	}
	b := make([]byte, 0, 256+400*len(pc.ports))
	b = append(b, `{"states":`...)
	b = append(appendStateCounts(b, &total), `},"ports":[`...)
	for i := range pc.ports {
		p := &pc.ports[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPortFields(append(b, '{'), p.port, &p.portListeners, &p.counts, true)
		b = append(b, '}')
	}
	return string(append(b, "]}"...)), nil
}
