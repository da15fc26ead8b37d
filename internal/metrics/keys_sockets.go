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
				"its addresses, listeners, accept queue, backlog and sockets by state; the top 10 of tcp.ephemeral.get and " +
				"the answer of tcp.cgroups.get (or why there is none), from one read of the socket table.",
			Handler: e.tcpSocketsGet,
		},
	}
}

// tcpSocketsGet: tcp.sockets.get → {"states":{<tcp.status.get>},"ports":[{
// <tcp.port.get[<port>] with address, family and loopback>},...],
// "ephemeral":{<tcp.ephemeral.get[10]>},"cgroups":{<tcp.cgroups.get>}}, the
// ports sorted by number (the lowest maxPortSlots of them); "ephemeral" is
// left out when the local port range cannot be read, and "cgroups" is
// replaced by "cgroups_error" with the text tcp.cgroups.get would fail with. It is one whole-table read of the snapshot cache,
// the one tcp.status.get makes: listeners first, then every socket counted
// by state and by listening port.
func (e *Exporter) tcpSocketsGet(ctx context.Context, _ Params) (string, error) {
	snap, err := e.cache.wholeSnapshot(ctx)
	if err != nil {
		e.log.Debugf("whole socket table read failed: %v", err)
		return "", operatorError(err, errSocketTable)
	}
	total, pc := snap.counts, snap.ports
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
	b = append(b, ']')
	if snap.eph.err == nil {
		b = appendEphemeral(append(b, `,"ephemeral":`...), snap.eph, sectionTop)
	}
	if cg, err := e.cgroupsAnswer(snap.groups); err == nil {
		b = append(append(b, `,"cgroups":`...), cg...)
	} else {
		b = appendJSONString(append(b, `,"cgroups_error":`...), err.Error())
	}
	return string(append(b, '}')), nil
}

// sectionTop is how many destinations the "ephemeral" section of
// tcp.sockets.get lists.
const sectionTop = 10
