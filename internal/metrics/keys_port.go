package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

var paramListenPort = Param{Name: "port", Description: "local TCP port 1-65535", Required: true}

// portMetrics declares the listening-port keys.
func (e *Exporter) portMetrics() []Metric {
	return []Metric{
		{
			Key:         "tcp.port.discovery",
			Description: "Discovery of listening TCP ports with their addresses, families and processes.",
			Handler:     func(ctx context.Context, _ Params) (string, error) { return e.portDiscovery(ctx, sockets.TCP) },
		},
		{
			Key:         "udp.port.discovery",
			Description: "Discovery of bound UDP ports with their addresses, families and processes.",
			Handler:     func(ctx context.Context, _ Params) (string, error) { return e.portDiscovery(ctx, sockets.UDP) },
		},
		{
			Key:         "tcp.port.get",
			Description: "JSON object with the listeners, accept queue and backlog of a TCP port and its sockets by state.",
			Params:      []Param{paramListenPort},
			Handler:     e.tcpPortGet,
		},
	}
}

// portRow is one port of a discovery: every socket on it folded together.
type portRow struct {
	port uint16
	portListeners
	inodes  []uint64
	cgroups []uint64 // distinct cgroup ids of the sockets (netlink)
}

// portListeners folds the listeners (bound sockets, for UDP) of one port:
// their distinct addresses and families, as discovery shows them, and their
// accept queues and backlogs, as tcp.port.get reports them.
type portListeners struct {
	addrs     []netip.Addr // distinct, unsorted until describe
	fams      [2]bool      // IPv4, IPv6
	listeners uint64
	queue     uint64  // accept queues, summed
	backlog   uint64  // backlogs, summed
	pused     float64 // fullest queue in % of its backlog
}

// addAddr folds in the address and family of s (a walk with
// FieldLocalAddr).
func (l *portListeners) addAddr(s *sockets.Socket) {
	if !slices.Contains(l.addrs, s.LocalAddr) {
		l.addrs = append(l.addrs, s.LocalAddr)
	}
	switch s.Family {
	case sockets.FamilyV4:
		l.fams[0] = true
	case sockets.FamilyV6:
		l.fams[1] = true
	}
}

// addQueues counts the listener s with its accept queue and backlog (a walk
// with FieldQueues).
func (l *portListeners) addQueues(s *sockets.Socket) {
	l.listeners++
	l.queue += uint64(s.RQueue)
	l.backlog += uint64(s.WQueue)
	// A listener's backlog is unknown (0) in the /proc tables: no ratio.
	if s.WQueue > 0 {
		l.pused = max(l.pused, 100*float64(s.RQueue)/float64(s.WQueue))
	}
}

// sortAddrs puts the addresses in the order describe lists them.
func (l *portListeners) sortAddrs() {
	slices.SortFunc(l.addrs, func(a, b netip.Addr) int { return a.Compare(b) })
}

// describe returns the port's addresses and families as discovery joins
// them ("0.0.0.0,::", "4,6"), and whether every address is a loopback one.
// The addresses are listed in their order: call sortAddrs first.
func (l *portListeners) describe() (address, family string, loopback bool) {
	addrs := make([]string, len(l.addrs))
	loopback = len(l.addrs) > 0
	for i, a := range l.addrs {
		addrs[i] = a.String()
		if !a.Unmap().IsLoopback() {
			loopback = false
		}
	}
	var fams []string
	if l.fams[0] {
		fams = append(fams, "4")
	}
	if l.fams[1] {
		fams = append(fams, "6")
	}
	return strings.Join(addrs, ","), strings.Join(fams, ","), loopback
}

// lldPort is the JSON form of one discovered port.
type lldPort struct {
	Port     string `json:"{#PORT}"`
	Address  string `json:"{#ADDRESS}"`
	Family   string `json:"{#FAMILY}"`
	Process  string `json:"{#PROCESS}"`
	Loopback string `json:"{#LOOPBACK}"`
	Service  string `json:"{#SERVICE}"`
}

// portQuery is the walk behind a port discovery: listeners for TCP, bound
// unconnected sockets (state CLOSE, remote port 0) for UDP. Only the sockets
// asked for are dumped, so the cost follows their number.
func portQuery(proto sockets.Proto) sockets.Query {
	if proto == sockets.UDP {
		return sockets.Query{Proto: sockets.UDP, States: sockets.MaskOf(sockets.Close),
			Fields: sockets.FieldLocalAddr | sockets.FieldRemote | sockets.FieldInode | sockets.FieldCgroup}
	}
	return sockets.Query{Proto: sockets.TCP, States: sockets.MaskOf(sockets.Listen),
		Fields: sockets.FieldLocalAddr | sockets.FieldQueues | sockets.FieldInode | sockets.FieldCgroup}
}

// portDiscovery: tcp.port.discovery / udp.port.discovery → LLD JSON array.
func (e *Exporter) portDiscovery(ctx context.Context, proto sockets.Proto) (string, error) {
	q := portQuery(proto)
	rows := map[uint16]*portRow{}
	err := e.src.Walk(ctx, q, func(s *sockets.Socket) {
		if s.LocalPort == 0 || (proto == sockets.UDP && s.RemotePort != 0) {
			return
		}
		r := rows[s.LocalPort]
		if r == nil {
			r = &portRow{port: s.LocalPort}
			rows[s.LocalPort] = r
		}
		r.addAddr(s)
		if s.Inode != 0 {
			r.inodes = append(r.inodes, s.Inode)
		}
		if s.Cgroup != 0 && !slices.Contains(r.cgroups, s.Cgroup) {
			r.cgroups = append(r.cgroups, s.Cgroup)
		}
	})
	if err != nil {
		e.log.Debugf("port discovery walk %+v failed: %v", q, err)
		return "", operatorError(err, errSocketTable)
	}
	names := e.processNames(ctx, proto, rows)
	services := e.cgroupPaths(rows)

	ports := make([]uint16, 0, len(rows))
	for p := range rows {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	out := make([]lldPort, 0, len(ports))
	for _, p := range ports {
		r := rows[p]
		r.sortAddrs()
		address, family, loopback := r.describe()
		var procs []string
		for _, ino := range r.inodes {
			for _, n := range names[ino] {
				if !slices.Contains(procs, n) {
					procs = append(procs, n)
				}
			}
		}
		slices.Sort(procs)
		var svcs []string
		for _, id := range r.cgroups {
			if p, ok := services[id]; ok && !slices.Contains(svcs, p) {
				svcs = append(svcs, p)
			}
		}
		slices.Sort(svcs)
		out = append(out, lldPort{
			Port:     strconv.Itoa(int(p)),
			Address:  address,
			Family:   family,
			Process:  strings.Join(procs, ","),
			Loopback: boolDigit(loopback),
			Service:  strings.Join(svcs, ","),
		})
	}
	return marshalLLD(out)
}

// processNames maps the inodes of the rows to process names ({#PROCESS}),
// within a part of the request's time so the discovery itself still
// answers: a partial map is fine (the names of unscanned ports stay empty).
//
// The names are those of the processes holding the socket among their
// first procnames.FirstPass descriptors; only when some socket is still
// unnamed after that are all the descriptors of every process read. Owners
// are remembered per protocol for the exporter's lifetime (procnames.Cache):
// a later discovery takes a socket's names from there as long as one of its
// owners still runs (same pid and start time), and scans only for sockets
// it does not know. A socket no readable process holds (another user's
// process, for an agent without CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)
// stays unnamed without a new scan for procnames.UnresolvedFor or until the
// set of listeners changes.
func (e *Exporter) processNames(ctx context.Context, proto sockets.Proto, rows map[uint16]*portRow) map[uint64][]string {
	want := map[uint64]struct{}{}
	for _, r := range rows {
		for _, ino := range r.inodes {
			want[ino] = struct{}{}
		}
	}
	if len(want) == 0 {
		return nil
	}
	budget := e.cfg.Timeout / 2
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl) / 2
	}
	sctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	res, err := e.owners[proto].Lookup(sctx, want)
	if err != nil {
		e.log.Debugf("process names: %v", err)
		return res.Names
	}
	if res.Partial || res.Denied > 0 {
		e.log.Debugf("process names: %d sockets cached, %d unresolved kept, %d processes read (%d descriptors, second pass %v), %d denied, %d exited, partial=%v",
			res.Cached, res.Unresolved, res.Processes, res.Links, res.SecondPass, res.Denied, res.Vanished, res.Partial)
	}
	return res.Names
}

// cgroupPaths names the cgroups of the rows' sockets ({#SERVICE}): the
// kernel reports each full socket's cgroup id, and the cgroup v2 tree names
// it, with no privilege. Without ids (the /proc source, an older kernel) or
// without a cgroup v2 tree the names stay empty.
func (e *Exporter) cgroupPaths(rows map[uint16]*portRow) map[uint64]string {
	var ids []uint64
	for _, r := range rows {
		for _, id := range r.cgroups {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	paths, err := e.service.Resolve(ids)
	if err != nil {
		e.log.Debugf("cgroup paths: %v", err)
	}
	return paths
}

// marshalLLD encodes discovery rows as a JSON array ("[]" when empty), HTML
// characters left as they are.
func marshalLLD(rows any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rows); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// tcpPortGet: tcp.port.get[<port>] → JSON object: the port's listeners with
// their accept queues and backlogs, then its sockets by state.
func (e *Exporter) tcpPortGet(ctx context.Context, p Params) (string, error) {
	port, err := parsePortParam(0, p.Get(0))
	if err != nil {
		return "", err
	}
	var l portListeners
	q := sockets.Query{Proto: sockets.TCP, States: sockets.MaskOf(sockets.Listen), LocalPort: port, Fields: sockets.FieldQueues}
	err = e.src.Walk(ctx, q, func(s *sockets.Socket) {
		if s.LocalPort == port {
			l.addQueues(s)
		}
	})
	if err != nil {
		e.log.Debugf("listener walk %+v failed: %v", q, err)
		return "", operatorError(err, errSocketTable)
	}
	c, err := e.socketCounts(ctx, sockets.Query{Proto: sockets.TCP, LocalPort: port})
	if err != nil {
		return "", err
	}
	b := appendPortFields(append(make([]byte, 0, 384), '{'), port, &l, &c, false)
	return string(append(b, '}')), nil
}

// appendPortFields appends the fields of one port as tcp.port.get and
// tcp.sockets.get give them, without braces: "port", then with withAddress
// "address", "family" and "loopback" (as discovery has them), then
// "listening", "listeners", "accept_queue", "backlog",
// "accept_queue_pused" and the 12 state fields of tcp.status.get.
func appendPortFields(b []byte, port uint16, l *portListeners, c *sockets.Counts, withAddress bool) []byte {
	b = append(b, `"port":`...)
	b = strconv.AppendUint(b, uint64(port), 10)
	if withAddress {
		address, family, loopback := l.describe()
		b = append(b, `,"address":`...)
		b = appendJSONString(b, address)
		b = append(b, `,"family":`...)
		b = appendJSONString(b, family)
		b = append(b, `,"loopback":`...)
		b = append(b, boolDigit(loopback)...)
	}
	b = append(b, `,"listening":`...)
	b = append(b, boolDigit(l.listeners > 0)...)
	b = append(b, `,"listeners":`...)
	b = strconv.AppendUint(b, l.listeners, 10)
	b = append(b, `,"accept_queue":`...)
	b = strconv.AppendUint(b, l.queue, 10)
	b = append(b, `,"backlog":`...)
	b = strconv.AppendUint(b, l.backlog, 10)
	b = append(b, `,"accept_queue_pused":`...)
	b = strconv.AppendFloat(b, l.pused, 'f', 2, 64)
	b = append(b, ',')
	// appendStateCounts opens its own object: take its fields only.
	return append(b, appendStateCounts(nil, c)[1:]...)
}
