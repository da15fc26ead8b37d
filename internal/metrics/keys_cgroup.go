package metrics

import (
	"context"
	"errors"
	"slices"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// maxCgroupSlots bounds how many distinct cgroups one whole-table read
// counts apart; the sockets of further cgroups are counted as unresolved.
// The bound keeps a read's memory at about 150 bytes per slot whatever the
// host runs.
const maxCgroupSlots = 4096

// alwaysFull are the states only full sockets are in: a socket in one of
// them without a cgroup id means the source does not report ids. Time-wait
// mini-sockets report TIME_WAIT or FIN_WAIT2, request sockets SYN_RECV.
var alwaysFull = sockets.MaskOf(sockets.Established, sockets.SynSent, sockets.FinWait1, sockets.Close,
	sockets.CloseWait, sockets.LastAck, sockets.Listen, sockets.Closing)

// cgroupCounts holds the sockets of a whole-table read by cgroup id and
// state.
type cgroupCounts struct {
	slot   map[uint64]int // id → index into rows
	rows   []cgroupRow
	over   sockets.Counts // sockets of cgroups beyond maxCgroupSlots
	none   sockets.Counts // sockets without a cgroup id
	noID   bool           // a socket in an alwaysFull state had no id
	source string         // the source that read the table
	// last is the id of the previous socket that had a row, and lastRow
	// that row plus one: a service's sockets often follow each other in
	// the walk, and most hosts have few cgroups with sockets.
	last    uint64
	lastRow int
}

type cgroupRow struct {
	id     uint64
	counts sockets.Counts
}

func newCgroupCounts() *cgroupCounts { return &cgroupCounts{slot: map[uint64]int{}} }

// add counts one socket of cgroup id (0: none reported) in state st.
func (g *cgroupCounts) add(id uint64, st sockets.State) {
	if id == 0 {
		g.none[st]++
		if alwaysFull.Has(st) {
			g.noID = true
		}
		return
	}
	if id == g.last && g.lastRow != 0 {
		g.rows[g.lastRow-1].counts[st]++
		return
	}
	i, ok := g.slot[id]
	if !ok {
		if len(g.rows) >= maxCgroupSlots {
			g.over[st]++
			return
		}
		i = len(g.rows)
		g.slot[id] = i
		g.rows = append(g.rows, cgroupRow{id: id})
	}
	g.rows[i].counts[st]++
	g.last, g.lastRow = id, i+1
}

// cgroupMetrics declares the per-cgroup key.
func (e *Exporter) cgroupMetrics() []Metric {
	return []Metric{
		{
			Key: "tcp.cgroups.get",
			Description: "JSON object with the TCP sockets of every cgroup (service, container) by state, " +
				"and the sockets no cgroup owns, from the whole-table read of the socket table.",
			Handler: e.tcpCgroupsGet,
		},
	}
}

var (
	errCgroupProc = &ItemError{msg: "Cannot count sockets by cgroup: the /proc socket tables carry no cgroup; use the netlink source."}
	errCgroupIDs  = &ItemError{msg: "Cannot count sockets by cgroup: the kernel reports no socket cgroup ids (Linux 5.7 or later with cgroups is needed)."}
	errNoCgroup2  = &ItemError{msg: "Cannot count sockets by cgroup: no cgroup v2 hierarchy is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified."}
)

// tcpCgroupsGet: tcp.cgroups.get →
//
//	{"cgroups":[{"cgroup":"/system.slice/nginx.service",<states>,"total":N},...],
//	 "unattributed":{<states>,"total":N},"unresolved":{<states>,"total":N}}
//
// from the whole-table read tcp.sockets.get and tcp.status.get share (no
// walk of its own). cgroups are sorted by path; "unattributed" counts the
// sockets the kernel gives no cgroup (time-wait and request sockets, in
// TIME_WAIT, FIN_WAIT2 or SYN_RECV), "unresolved" those whose cgroup has no
// directory in the tree (removed while they live on, outside this cgroup
// namespace) or is beyond the maxCgroupSlots distinct cgroups one read
// counts. With the /proc source, a kernel that reports no cgroup ids, or no
// cgroup v2 tree, the key fails: it never reports a partial attribution.
func (e *Exporter) tcpCgroupsGet(ctx context.Context, _ Params) (string, error) {
	snap, err := e.cache.wholeSnapshot(ctx)
	if err != nil {
		e.log.Debugf("whole socket table read failed: %v", err)
		return "", operatorError(err, errSocketTable)
	}
	return e.cgroupsAnswer(snap.groups)
}

// cgroupsAnswer names the cgroups of a whole-table read and encodes the
// answer of tcp.cgroups.get, or says why it cannot.
func (e *Exporter) cgroupsAnswer(g *cgroupCounts) (string, error) {
	switch {
	case g.source == "proc":
		return "", errCgroupProc
	case g.noID:
		return "", errCgroupIDs
	}
	ids := make([]uint64, len(g.rows))
	for i, r := range g.rows {
		ids[i] = r.id
	}
	paths, err := e.cgroups.Resolve(ids)
	if err != nil {
		e.log.Debugf("cgroup paths: %v", err)
		if errors.Is(err, sockets.ErrNoCgroup2) {
			return "", errNoCgroup2
		}
		return "", operatorError(err, nil)
	}
	byPath := map[string]*sockets.Counts{}
	unresolved := g.over
	for i := range g.rows {
		r := &g.rows[i]
		p, ok := paths[r.id]
		if !ok {
			addCounts(&unresolved, &r.counts)
			continue
		}
		c := byPath[p]
		if c == nil {
			c = new(sockets.Counts)
			byPath[p] = c
		}
		addCounts(c, &r.counts)
	}
	order := make([]string, 0, len(byPath))
	for p := range byPath {
		order = append(order, p)
	}
	slices.Sort(order)
	return cgroupsJSON(order, byPath, &g.none, &unresolved), nil
}

// cgroupsJSON encodes the answer of tcp.cgroups.get.
func cgroupsJSON(order []string, byPath map[string]*sockets.Counts, none, unresolved *sockets.Counts) string {
	b := make([]byte, 0, 512+300*len(order))
	b = append(b, `{"cgroups":[`...)
	for i, p := range order {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"cgroup":`...)
		b = appendJSONString(b, p)
		b = append(b, ',')
		states := appendStateCounts(nil, byPath[p])
		b = append(b, states[1:]...) // without its opening brace
		b = append(b, '}')
	}
	b = append(b, `],"unattributed":`...)
	b = append(appendStateCounts(b, none), '}')
	b = append(b, `,"unresolved":`...)
	b = append(appendStateCounts(b, unresolved), '}')
	return string(append(b, '}'))
}

// addCounts adds c to sum.
func addCounts(sum, c *sockets.Counts) {
	for i := range c {
		sum[i] += c[i]
	}
}
