package main

import (
	"fmt"
	"strings"
)

// variant is what differs between the templates: the agent that answers
// the keys (agent 2's plugin or the classic agent's helper) and whether the
// agent is polled (passive) or sends its values itself (active). The keys,
// and so every item, trigger and graph, are the same.
type variant struct {
	file     string // base name under templates/
	name     string
	agent    string // "Zabbix agent 2" or "Zabbix agent"
	source   string // what answers the keys, for descriptions
	setup    string // README setup section
	nodata   string // the no-data trigger's name
	active   bool   // polled items are ZABBIX_ACTIVE
	classic  bool   // the classic agent: errors arrive as "ZBX_NOTSUPPORTED: <reason>" text
	install  string // README setup step 1
	confPath string // where the agent's own configuration lives
}

// itemType is the type of the items the agent answers.
func (v variant) itemType() string {
	if v.active {
		return "ZABBIX_ACTIVE"
	}
	return ""
}

const (
	agent2Install = "1. Install the plugin as `/usr/libexec/zabbix-agent2-plugins/zabbix-agent2-plugin-tcpstatus` (mode 0755, runnable by the agent's user) and its configuration `conf/tcpstatus.conf` as `/etc/zabbix/zabbix_agent2.d/plugins.d/tcpstatus.conf`; it sets\n\n" +
		"   ```\n   Plugins.TCPStatus.System.Path=/usr/libexec/zabbix-agent2-plugins/zabbix-agent2-plugin-tcpstatus\n   ```\n\n" +
		"   (the project README, \"Install\", has the details; the Debian package does all of this).\n"
	agentInstall = "1. Install the helper as `/usr/bin/tcpstatus-discovery` (mode 0755) and `conf/userparameter_tcpstatus.conf` as `/etc/zabbix/zabbix_agentd.conf.d/userparameter_tcpstatus.conf`; it maps every key of this template to the helper (the Debian package does both). The helper stops at 2.5 s, inside the agent's default 3 s `Timeout`.\n"
)

var variants = func() []variant {
	var out []variant
	for _, a := range []struct {
		file, agent, source, nodata, install, conf string
		classic                                    bool
	}{
		{"tcpstatus_agent2", "Zabbix agent 2", "the TCPStatus plugin of Zabbix agent 2", "TCP: No data from the TCPStatus plugin", agent2Install, "/etc/zabbix/zabbix_agent2.conf", false},
		{"tcpstatus_agent", "Zabbix agent", "the tcpstatus-discovery helper run by the classic Zabbix agent through UserParameters", "TCP: No data from the tcpstatus-discovery helper", agentInstall, "/etc/zabbix/zabbix_agentd.conf", true},
	} {
		for _, active := range []bool{false, true} {
			v := variant{file: a.file, name: "Linux TCP status by " + a.agent, agent: a.agent, source: a.source, nodata: a.nodata,
				active: active, classic: a.classic, install: a.install, confPath: a.conf}
			if active {
				v.file += "_active"
				v.name += " active"
			}
			v.setup = setupText(v)
			out = append(out, v)
		}
	}
	return out
}()

func setupText(v variant) string {
	check := "2. Restart the agent and check a key: `zabbix_get -s <host> -k tcp.sockets.get`.\n"
	if v.active {
		check = "2. In `" + v.confPath + "` set `ServerActive=` to the server (or proxy) and `Hostname=` to the host's name in Zabbix exactly; restart the agent. The agent asks the server for its active checks and sends the values itself (no incoming connection to the agent is needed). Check a key locally with `" +
			map[bool]string{true: "zabbix_agentd", false: "zabbix_agent2"}[v.classic] + " -t tcp.sockets.get`.\n"
	}
	s := v.install + check +
		"3. Import `" + v.file + ".xml` (Configuration/Data collection → Templates → Import; the Debian package installs it as `/usr/share/zabbix-agent2-plugin-tcpstatus/templates/" + v.file + ".xml`) and link the template to the host. Over a host that has the 0.1.0 template, see \"Upgrading from 0.1.0\" below.\n" +
		"4. Adjust the macros below on the host (thresholds, discovery filters). Per-port thresholds go in context macros such as `{$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"8080\"}`; limit port discovery to the services you care about with `{$TCP.PORT.MATCHES}`, since a discovered port that stops listening for `{$TCP.PORT.DOWN.PERIOD}` raises \"Not listening\". Loopback-only listeners and listeners inside the ephemeral port range are left out unless `{$TCP.PORT.LOOPBACK.MATCHES}`/`{$TCP.PORT.EPHEMERAL.MATCHES}` say otherwise; set `{$TCP.PORT.EPHEMERAL.RANGE}` to the host's `net.ipv4.ip_local_port_range` if it is not the Linux default (the item TCP: Limit ip_local_port_range shows it)."
	if v.classic {
		s += " Process names in port discovery need the agent's user to read other users' /proc/<pid>/fd; without that `{#PROCESS}` is empty."
	}
	return s
}

// tcpStates are the socket states of tcp.status.get, in its order, with
// the names operators know from ss/netstat.
var tcpStates = [][2]string{
	{"established", "ESTABLISHED"}, {"syn_sent", "SYN_SENT"}, {"syn_recv", "SYN_RECV"},
	{"fin_wait1", "FIN_WAIT1"}, {"fin_wait2", "FIN_WAIT2"}, {"time_wait", "TIME_WAIT"},
	{"close", "CLOSE"}, {"close_wait", "CLOSE_WAIT"}, {"last_ack", "LAST_ACK"},
	{"listen", "LISTEN"}, {"closing", "CLOSING"},
}

var stateColors = []string{
	"1A7C11", "F63100", "2774A4", "A54F10", "FC6EA3", "6C59DC",
	"AC8C14", "611F27", "F230E0", "5CCD18", "BB2A02",
}

func jsonpath(p string) Step { return Step{Type: "JSONPATH", Params: []string{p}} }

var (
	perSecond = Step{Type: "CHANGE_PER_SECOND", Params: []string{""}}
	heartbeat = Step{Type: "DISCARD_UNCHANGED_HEARTBEAT", Params: []string{"1h"}}
)

// notListening is the object of a port that tcp.sockets.get does not list:
// nothing listens on it (the socket counts are unknown, so left out).
const notListening = `{"listening":0,"listeners":0,"accept_queue":0,"backlog":0,"accept_queue_pused":0}`

// ephemeralScript marks each discovered port inside the ephemeral range
// {$TCP.PORT.EPHEMERAL.RANGE} ("first-last") with {#EPHEMERAL} 1, others
// 0, for the discovery filter. A malformed range marks none. It also names
// who listens, {#OWNER}, for the texts: the process and the last part of
// its cgroup path ({#SERVICE}), whichever the agent could see, so that a
// text reads well when the agent cannot see the process (the agent runs
// as zabbix: {#PROCESS} is empty) or there is no cgroup.
const ephemeralScript = `var ports = JSON.parse(value);
var m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec('{$TCP.PORT.EPHEMERAL.RANGE}');
for (var i = 0; i < ports.length; i++) {
    var p = parseInt(ports[i]['{#PORT}'], 10);
    ports[i]['{#EPHEMERAL}'] = (m && p >= parseInt(m[1], 10) && p <= parseInt(m[2], 10)) ? '1' : '0';
    var proc = ports[i]['{#PROCESS}'] || '', svc = (ports[i]['{#SERVICE}'] || '').replace(/^.*\//, '');
    ports[i]['{#OWNER}'] = proc && svc ? proc + ' (' + svc + ')' : (proc || svc || 'a process the agent cannot see');
}
return JSON.stringify(ports);`

// conntrackScript computes the connection tracking table's fill in % from
// tcp.limits.get as {"pused":N}, and {} while nf_conntrack is not loaded;
// the JSONPath step after it discards the value then, so the item has no
// value, and is not made unsupported, on hosts without connection
// tracking. (Zabbix 6.0 refuses an error handler on a JavaScript step.)
const conntrackScript = `var o = JSON.parse(value);
if (o.nf_conntrack_count === undefined || !o.nf_conntrack_max) {
    return '{}';
}
return JSON.stringify({pused: 100 * o.nf_conntrack_count / o.nf_conntrack_max});`

// ephemeralBusiestScript names the destination with the most local ports
// in the "ephemeral" section of tcp.sockets.get, which a JSONPath step
// before it takes out (discarding the value when the section is absent:
// the port range could not be read); "none" when no socket holds one.
const ephemeralBusiestScript = `var e = JSON.parse(value);
if (!e.top.length) {
    return 'none';
}
var t = e.top[0];
var r = t.remote.indexOf(':') >= 0 ? '[' + t.remote + ']' : t.remote;
return t.local + ' -> ' + r + ':' + t.port + ': ' + t.count + ' of ' + e.usable + ' ports';`

// cgroupLLDScript turns the "cgroups" section of tcp.sockets.get into the
// services discovery: {#CGROUP} the path, {#CGROUP.JSON} the path as a
// JavaScript string literal (for the prototypes' scripts; a path may hold
// backslashes, as systemd's \x2d), for the cgroups holding at least
// {$TCP.CGROUP.MIN.SOCKETS} sockets. Without the section it fails with the
// reason tcp.sockets.get gives ("cgroups_error").
const cgroupLLDScript = `var o = JSON.parse(value);
if (!o.cgroups) {
    throw o.cgroups_error || 'tcp.sockets.get has no cgroups';
}
var min = parseInt('{$TCP.CGROUP.MIN.SOCKETS}', 10) || 0, out = [];
for (var i = 0; i < o.cgroups.cgroups.length; i++) {
    var g = o.cgroups.cgroups[i];
    if (g.total >= min) {
        out.push({'{#CGROUP}': g.cgroup, '{#CGROUP.JSON}': JSON.stringify(g.cgroup)});
    }
}
return JSON.stringify(out);`

// cgroupPickScript picks one discovered cgroup's object out of
// tcp.sockets.get; absent (no socket left, or no cgroups section), it
// gives {}, and the JSONPath steps of the service's items discard their
// value. (Zabbix 6.0 refuses an error handler on a JavaScript step.)
const cgroupPickScript = `var c = (JSON.parse(value).cgroups || {cgroups: []}).cgroups;
for (var i = 0; i < c.length; i++) {
    if (c[i].cgroup === {#CGROUP.JSON}) {
        return JSON.stringify(c[i]);
    }
}
return '{}';`

// notSupported turns the classic agent's "ZBX_NOTSUPPORTED: <reason>"
// text (what the helper prints when it fails; the agent passes a command's
// output on as the value) into an item error with the reason, so that the
// item is unsupported with it, its dependents say why, and the no-data
// trigger fires.
var notSupported = Step{Type: "CHECK_REGEX_ERROR", Params: []string{`^ZBX_NOTSUPPORTED: *(.*)`, `\1`}}

// notSupportedLLD does the same for a discovery rule, where the regex
// error check is not available.
var notSupportedLLD = Step{Type: "JAVASCRIPT", Params: []string{`if (value.lastIndexOf('ZBX_NOTSUPPORTED', 0) === 0) {
    throw value.replace(/^ZBX_NOTSUPPORTED: */, '') || 'tcpstatus-discovery failed';
}
return value;`}}

// polled is a master item the agent answers.
func polled(v variant, it *Item) *Item {
	it.Type = v.itemType()
	if v.classic {
		it.Pre = append([]Step{notSupported}, it.Pre...)
	}
	return it
}

// orDiscard makes a JSONPath step give no value when the field is absent.
func orDiscard(s Step) Step { s.ErrHandler = "DISCARD_VALUE"; return s }

// orValue makes a JSONPath step give v when the field is absent.
func orValue(s Step, v string) Step { s.ErrHandler = "CUSTOM_VALUE"; s.ErrHandlerArg = v; return s }

func multiplier(f string) Step { return Step{Type: "MULTIPLIER", Params: []string{f}} }

func tags(kv ...string) []Tag {
	var out []Tag
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Tag{kv[i], kv[i+1]})
	}
	return out
}

// dep makes a dependent item of master.
func dep(master, key, name, units, valueType, desc string, steps ...Step) *Item {
	return &Item{
		Name: name, Type: "DEPENDENT", Key: key, Delay: "0", History: "7d",
		ValueType: valueType, Units: units, Description: desc, Pre: steps, Master: master,
	}
}

// counter is a kernel counter from tcp.kernel.get as a rate.
type counter struct {
	group, name, label, desc string
}

var netstatRates = []counter{
	{"Tcp", "ActiveOpens", "Active opens", "Connections this host opened (SYN_SENT from CLOSED), per second."},
	{"Tcp", "PassiveOpens", "Passive opens", "Connections this host accepted (SYN_RECV from LISTEN), per second."},
	{"Tcp", "AttemptFails", "Failed connection attempts", "Connection attempts that failed (SYN_SENT/SYN_RECV back to CLOSED or LISTEN), per second."},
	{"Tcp", "EstabResets", "Resets of established connections", "Connections reset from ESTABLISHED or CLOSE_WAIT, per second."},
	{"Tcp", "InSegs", "Segments received", "TCP segments received, errors included, per second."},
	{"Tcp", "OutSegs", "Segments sent", "TCP segments sent, retransmissions excluded, per second."},
	{"Tcp", "RetransSegs", "Segments retransmitted", "TCP segments retransmitted, per second."},
	{"Tcp", "InErrs", "Segments received in error", "TCP segments received with errors (bad checksum, ...), per second."},
	{"Tcp", "OutRsts", "Resets sent", "TCP segments sent with the RST flag, per second."},
	{"TcpExt", "ListenOverflows", "Listen queue overflows", "Connections dropped because a listener's accept queue was full (TcpExt ListenOverflows), per second. The application does not accept fast enough or its backlog is too small."},
	{"TcpExt", "ListenDrops", "Listen drops", "Connection requests a listener dropped for any reason, overflows included (TcpExt ListenDrops), per second."},
	{"TcpExt", "SyncookiesSent", "SYN cookies sent", "SYN cookies sent because a SYN queue was full (TcpExt SyncookiesSent), per second. Sustained values mean a SYN flood or a listener that cannot keep up."},
	{"TcpExt", "SyncookiesRecv", "SYN cookies received", "Valid SYN cookies received back (TcpExt SyncookiesRecv), per second."},
	{"TcpExt", "SyncookiesFailed", "SYN cookies failed", "Invalid SYN cookies received (TcpExt SyncookiesFailed), per second."},
	{"TcpExt", "TCPTimeWaitOverflow", "TIME_WAIT overflows", "TIME_WAIT sockets the kernel could not create because tcp_max_tw_buckets was reached (TcpExt TCPTimeWaitOverflow), per second; the kernel logs \"time wait bucket table overflow\"."},
	{"TcpExt", "TW", "TIME_WAIT sockets finished", "TIME_WAIT sockets that completed their timeout (TcpExt TW), per second."},
	{"TcpExt", "TCPAbortOnMemory", "Aborts on memory pressure", "Connections aborted because of memory pressure or too many orphans (TcpExt TCPAbortOnMemory), per second."},
	{"TcpExt", "TCPAbortOnTimeout", "Aborts on timeout", "Connections aborted after too many retransmissions or keepalive probes (TcpExt TCPAbortOnTimeout), per second."},
	{"TcpExt", "TCPReqQFullDrop", "SYN queue full drops", "Connection requests dropped because the SYN queue was full and SYN cookies are off (TcpExt TCPReqQFullDrop), per second."},
}

// countedEvents are the counters triggers count over a window (events per
// check, summed): each is a connection or socket the kernel dropped or
// killed, or an entry into memory pressure.
var countedEvents = []counter{
	{"TcpExt", "ListenOverflows", "Listen queue overflows", "Connections dropped because a listener's accept queue was full (TcpExt ListenOverflows), since the previous check. Summed over a window by \"Accept queues are overflowing\"."},
	{"TcpExt", "SyncookiesSent", "SYN cookies sent", "SYN cookies sent because a SYN queue was full (TcpExt SyncookiesSent), since the previous check."},
	{"TcpExt", "TCPReqQFullDrop", "SYN queue full drops", "Connection requests dropped because a SYN queue was full and SYN cookies are off (TcpExt TCPReqQFullDrop), since the previous check."},
	{"TcpExt", "TCPTimeWaitOverflow", "TIME_WAIT overflows", "TIME_WAIT sockets not created because tcp_max_tw_buckets was reached (TcpExt TCPTimeWaitOverflow), since the previous check."},
	{"TcpExt", "TCPAbortOnMemory", "Aborts on memory pressure", "Connections reset because TCP memory was over its limit or there were too many orphans (TcpExt TCPAbortOnMemory), since the previous check."},
	{"TcpExt", "TCPMemoryPressures", "Entries into memory pressure", "Times TCP entered memory pressure, its memory crossing net.ipv4.tcp_mem's pressure value (TcpExt TCPMemoryPressures), since the previous check."},
}

type field struct {
	name, label, units, desc, valueMap string
}

var sockstatFields = []field{
	{"sockets_used", "Sockets in use, all protocols", "", "Sockets of all protocols in use (/proc/net/sockstat \"sockets: used\").", ""},
	{"tcp_inuse", "IPv4 sockets in use", "", "IPv4 TCP sockets in use, TIME_WAIT excluded (/proc/net/sockstat \"TCP: inuse\").", ""},
	{"tcp6_inuse", "IPv6 sockets in use", "", "IPv6 TCP sockets in use (/proc/net/sockstat6 \"TCP6: inuse\").", ""},
	{"tcp_orphan", "Orphaned sockets", "", "TCP sockets no longer attached to a process, still finishing their close (/proc/net/sockstat \"TCP: orphan\"). Limited by net.ipv4.tcp_max_orphans.", ""},
	{"tcp_tw", "Time-wait entries", "", "Time-wait entries the kernel holds: TIME_WAIT sockets plus orphaned FIN_WAIT2 ones kept in time-wait form (/proc/net/sockstat \"TCP: tw\"). This is what net.ipv4.tcp_max_tw_buckets limits; the socket count is TCP: Sockets in TIME_WAIT.", ""},
	{"tcp_alloc", "Allocated sockets", "", "TCP sockets allocated, including ones not yet or no longer in a table (/proc/net/sockstat \"TCP: alloc\").", ""},
	{"tcp_mem", "Memory in use", "!pages", "Memory TCP uses, in pages, to compare with net.ipv4.tcp_mem (/proc/net/sockstat \"TCP: mem\").", ""},
}

var limitFields = []field{
	{"tcp_max_tw_buckets", "tcp_max_tw_buckets", "", "net.ipv4.tcp_max_tw_buckets: most TIME_WAIT sockets the kernel keeps; beyond it they are destroyed early.", ""},
	{"tcp_max_orphans", "tcp_max_orphans", "", "net.ipv4.tcp_max_orphans: most orphaned sockets; beyond it they are reset.", ""},
	{"tcp_max_syn_backlog", "tcp_max_syn_backlog", "", "net.ipv4.tcp_max_syn_backlog: size of each listener's SYN queue.", ""},
	{"tcp_syncookies", "tcp_syncookies", "", "net.ipv4.tcp_syncookies: 0 off, 1 when a SYN queue overflows, 2 always.", "Linux::TCP syncookies"},
	{"tcp_fin_timeout", "tcp_fin_timeout", "s", "net.ipv4.tcp_fin_timeout: how long an orphaned connection stays in FIN_WAIT2.", ""},
	{"tcp_tw_reuse", "tcp_tw_reuse", "", "net.ipv4.tcp_tw_reuse: whether new outgoing connections may reuse TIME_WAIT sockets.", "Linux::TCP TIME_WAIT reuse"},
	{"tcp_keepalive_time", "tcp_keepalive_time", "s", "net.ipv4.tcp_keepalive_time: idle time before the first keepalive probe.", ""},
	{"tcp_keepalive_intvl", "tcp_keepalive_intvl", "s", "net.ipv4.tcp_keepalive_intvl: time between keepalive probes.", ""},
	{"tcp_keepalive_probes", "tcp_keepalive_probes", "", "net.ipv4.tcp_keepalive_probes: unanswered probes before a connection is dropped.", ""},
	{"ip_local_port_range_min", "ip_local_port_range, first port", "", "net.ipv4.ip_local_port_range: first port for outgoing connections.", ""},
	{"ip_local_port_range_max", "ip_local_port_range, last port", "", "net.ipv4.ip_local_port_range: last port for outgoing connections.", ""},
	{"tcp_mem_min", "tcp_mem, low", "!pages", "net.ipv4.tcp_mem, first value: below it TCP does not regulate its memory.", ""},
	{"tcp_mem_pressure", "tcp_mem, pressure", "!pages", "net.ipv4.tcp_mem, second value: above it TCP moderates its memory use.", ""},
	{"tcp_mem_max", "tcp_mem, high", "!pages", "net.ipv4.tcp_mem, third value: most pages TCP may use.", ""},
	{"somaxconn", "somaxconn", "", "net.core.somaxconn: largest accept queue (listen backlog) an application can ask for.", ""},
	{"nf_conntrack_count", "nf_conntrack_count", "", "net.netfilter.nf_conntrack_count: connections the connection tracking table of the agent's network namespace holds. No value while the nf_conntrack module is not loaded.", ""},
	{"nf_conntrack_max", "nf_conntrack_max", "", "net.netfilter.nf_conntrack_max: most entries of the connection tracking table; when it is full the kernel drops packets of new connections (\"nf_conntrack: table full, dropping packet\"). No value while the nf_conntrack module is not loaded.", ""},
}

func build(v variant) *Template {
	T := v.name
	const sockets = "tcp.sockets.get"
	ref := func(key string) string { return "/" + T + "/" + key }
	t := &Template{
		Tech:  T,
		Name:  T,
		Group: "Templates/Operating systems",
		Description: "TCP socket states, listening ports and their accept queues, kernel TCP counters and limits of a Linux host, collected by " + v.source + ".\n\n" +
			"Replaces netstat/ss pipelines in UserParameters: one request per data family and interval (socket table, kernel counters, limits) returns JSON that dependent items split, however many ports are discovered. Disk I/O is in a template of its own, \"" + diskName(v) + "\".\n\n" +
			"Setup and macros: templates/" + v.file + ".README.md.",
		Tags: tags("class", "os", "target", "linux"),
	}

	// ---- socket states -------------------------------------------------
	// One master per data family and interval: tcp.sockets.get answers the
	// host's states and every listening port from one read of the socket
	// table, so per-port items add no request.
	t.Items = append(t.Items, polled(v, &Item{
		Name: "TCP: Get sockets", Key: sockets, Delay: "1m", History: "0", Trends: "0", ValueType: "TEXT",
		Description: "TCP sockets of the host by state, and every listening port with its listeners, accept queue, backlog and sockets by state, as JSON, from one read of the socket table by " + v.source + ". " +
			"Master item of the \"TCP: Sockets in ...\" items and of the discovered ports' items; no history of its own.",
		Tags: tags("component", "raw"),
	}))
	for _, s := range tcpStates {
		t.Items = append(t.Items, dep(sockets, "tcp.state["+s[0]+"]", "TCP: Sockets in "+s[1], "", "",
			"TCP sockets (IPv4 and IPv6) in the "+s[1]+" state.", jsonpath("$.states."+s[0])))
		t.Items[len(t.Items)-1].Tags = tags("component", "network")
	}
	t.Items = append(t.Items, dep(sockets, "tcp.state[total]", "TCP: Sockets, total", "", "",
		"TCP sockets (IPv4 and IPv6) in any state. The no-data trigger watches this item: it has a value every minute exactly when the socket table could be read.", jsonpath("$.states.total")))
	t.Items[len(t.Items)-1].Tags = tags("component", "network")

	// ---- ephemeral ports ------------------------------------------------
	// From the "ephemeral" section of the same tcp.sockets.get: no request
	// of their own. Absent when the port range cannot be read: no value.
	for _, it := range []*Item{
		dep(sockets, "tcp.ephemeral.pused", "TCP: Local ports in use toward the busiest destination, in %", "%", "FLOAT",
			"Local ports of the ephemeral range (net.ipv4.ip_local_port_range without ip_local_reserved_ports and listening ports) that sockets to one destination (local address, remote address, remote port) hold, for the destination holding most, in percent of the usable ports. "+
				"connect() shares a local port between destinations but not within one: at 100% new connections to that destination fail with EADDRNOTAVAIL (\"Cannot assign requested address\"). TIME_WAIT sockets hold their port as well.",
			orDiscard(jsonpath("$.ephemeral.pused"))),
		dep(sockets, "tcp.ephemeral.busiest", "TCP: Busiest destination of local ports", "", "TEXT",
			"The destination whose connections hold the most ephemeral local ports: local address -> remote address:port, and how many of the usable ports; none when no connection holds one.",
			orDiscard(jsonpath("$.ephemeral")), Step{Type: "JAVASCRIPT", Params: []string{ephemeralBusiestScript}}),
		dep(sockets, "tcp.ephemeral.top", "TCP: Top destinations of local ports", "", "TEXT",
			"The 10 destinations whose connections hold the most ephemeral local ports, as JSON [{\"local\":...,\"remote\":...,\"port\":...,\"count\":...,\"pused\":...}], most first.",
			orDiscard(jsonpath("$.ephemeral.top"))),
		dep(sockets, "tcp.ephemeral.usable", "TCP: Usable ephemeral ports", "", "",
			"Ports connect() can pick for an outgoing connection: net.ipv4.ip_local_port_range minus net.ipv4.ip_local_reserved_ports and the ports something listens on. Each destination can use each of them once.",
			orDiscard(jsonpath("$.ephemeral.usable")), heartbeat),
	} {
		it.Tags = tags("component", "network")
		if it.ValueType == "TEXT" {
			it.Trends = "0"
			it.History = "1d"
		}
		t.Items = append(t.Items, it)
	}

	// ---- kernel counters ----------------------------------------------
	t.Items = append(t.Items, polled(v, &Item{
		Name: "TCP: Get kernel counters", Key: "tcp.kernel.get", Delay: "1m", History: "0", Trends: "0", ValueType: "TEXT",
		Description: "Kernel socket statistics (/proc/net/sockstat, sockstat6) and TCP counters (/proc/net/snmp, /proc/net/netstat) as JSON. Master item of the sockstat and counter items; no history of its own.",
		Tags:        tags("component", "raw"),
	}))
	for _, f := range sockstatFields {
		step := jsonpath("$.sockstat." + f.name)
		if f.name == "tcp6_inuse" {
			// No sockstat6 when IPv6 is off: no IPv6 socket is in use.
			step = orValue(step, "0")
		}
		it := dep("tcp.kernel.get", "tcp.sockstat["+f.name+"]", "TCP: "+f.label, f.units, "", f.desc, step)
		it.Tags = tags("component", "network")
		t.Items = append(t.Items, it)
	}
	{
		it := dep("tcp.kernel.get", "tcp.netstat[Tcp.CurrEstab]", "TCP: Connections in ESTABLISHED or CLOSE_WAIT (kernel)", "", "",
			"Connections currently in ESTABLISHED or CLOSE_WAIT as the kernel counts them (Tcp CurrEstab).", jsonpath("$.Tcp.CurrEstab"))
		it.Tags = tags("component", "network")
		t.Items = append(t.Items, it)
	}
	for _, c := range netstatRates {
		// TcpExt is absent without /proc/net/netstat, and a counter
		// older kernels lack is absent: no value rather than an error.
		it := dep("tcp.kernel.get", "tcp.netstat.rate["+c.group+"."+c.name+"]", "TCP: "+c.label+" per second", "!/s", "FLOAT",
			c.desc, orDiscard(jsonpath("$."+c.group+"."+c.name)), perSecond)
		it.Tags = tags("component", "network")
		t.Items = append(t.Items, it)
	}
	// Counts per check of the counters triggers watch: sum() over a
	// window is then the number of events in it, whatever the interval.
	for _, c := range countedEvents {
		it := dep("tcp.kernel.get", "tcp.netstat.count["+c.group+"."+c.name+"]", "TCP: "+c.label+", new", "", "",
			c.desc, orDiscard(jsonpath("$."+c.group+"."+c.name)), Step{Type: "SIMPLE_CHANGE", Params: []string{""}})
		it.Tags = tags("component", "network")
		t.Items = append(t.Items, it)
	}

	// ---- kernel limits ------------------------------------------------
	t.Items = append(t.Items, polled(v, &Item{
		Name: "TCP: Get kernel limits", Key: "tcp.limits.get", Delay: "5m", History: "0", Trends: "0", ValueType: "TEXT",
		Description: "TCP sysctls (/proc/sys/net/ipv4, net.core.somaxconn) as JSON. Master item of the limit items; no history of its own.",
		Tags:        tags("component", "raw"),
	}))
	for _, f := range limitFields {
		// A sysctl the kernel (or the namespace) lacks is absent: no value.
		it := dep("tcp.limits.get", "tcp.limit["+f.name+"]", "TCP: Limit "+f.label, f.units, "", f.desc, orDiscard(jsonpath("$."+f.name)), heartbeat)
		it.ValueMap = f.valueMap
		it.Tags = tags("component", "system")
		t.Items = append(t.Items, it)
	}
	{
		it := dep("tcp.limits.get", "tcp.conntrack.pused", "TCP: Connection tracking table, in % of nf_conntrack_max", "%", "FLOAT",
			"Entries of the connection tracking table of the agent's network namespace in percent of net.netfilter.nf_conntrack_max. At 100% the kernel drops packets of new connections (\"nf_conntrack: table full, dropping packet\"). No value while the nf_conntrack module is not loaded.",
			Step{Type: "JAVASCRIPT", Params: []string{conntrackScript}}, orDiscard(jsonpath("$.pused")))
		it.Tags = tags("component", "network")
		t.Items = append(t.Items, it)
	}
	pct := func(num, den string) string {
		return fmt.Sprintf("100*last(//%s)/(last(//%s)+(last(//%s)=0))", num, den, den)
	}
	t.Items = append(t.Items,
		&Item{
			Name: "TCP: Time-wait entries, in % of tcp_max_tw_buckets", Type: "CALCULATED", Key: "tcp.time_wait.pused",
			Delay: "1m", History: "7d", ValueType: "FLOAT", Units: "%",
			Params:      pct("tcp.sockstat[tcp_tw]", "tcp.limit[tcp_max_tw_buckets]"),
			Description: "Time-wait entries (TIME_WAIT plus orphaned FIN_WAIT2, /proc/net/sockstat \"tw\") in percent of net.ipv4.tcp_max_tw_buckets. At 100% new ones are destroyed at once and TcpExt TCPTimeWaitOverflow grows.",
			Tags:        tags("component", "network"),
		},
		&Item{
			Name: "TCP: Memory in use, in % of tcp_mem high", Type: "CALCULATED", Key: "tcp.mem.pused",
			Delay: "1m", History: "7d", ValueType: "FLOAT", Units: "%",
			Params:      pct("tcp.sockstat[tcp_mem]", "tcp.limit[tcp_mem_max]"),
			Description: "TCP memory (/proc/net/sockstat \"mem\", pages) in percent of net.ipv4.tcp_mem's third value, above which the kernel refuses socket buffer memory.",
			Tags:        tags("component", "network"),
		},
		&Item{
			Name: "TCP: Orphaned sockets, in % of tcp_max_orphans", Type: "CALCULATED", Key: "tcp.orphan.pused",
			Delay: "1m", History: "7d", ValueType: "FLOAT", Units: "%",
			Params:      pct("tcp.sockstat[tcp_orphan]", "tcp.limit[tcp_max_orphans]"),
			Description: "Orphaned sockets in percent of net.ipv4.tcp_max_orphans. Near 100% the kernel resets connections and logs \"too many orphaned sockets\".",
			Tags:        tags("component", "network"),
		},
	)

	// ---- accept-queue threshold lines ------------------------------------
	// The per-port accept-queue fill graphs draw these as their 80/95 %
	// lines: host-wide, from the template-wide macros.
	for _, l := range []struct{ level, label, macro string }{
		{"warn", "warning", "{$TCP.PORT.ACCEPTQ.PUSED.MAX.WARN}"},
		{"crit", "critical", "{$TCP.PORT.ACCEPTQ.PUSED.MAX.CRIT}"},
	} {
		it := dep(sockets, acceptqLine(l.level), "Ports: Accept queue fill, "+l.label+" threshold", "%", "FLOAT",
			"The threshold of the ports' \"Accept queue "+map[string]string{"warn": "filling up", "crit": "almost full"}[l.level]+"\" triggers, "+l.macro+", every minute with tcp.sockets.get (no request of its own): the line the ports' accept-queue fill graphs draw. "+
				"A per-port context value ("+strings.TrimSuffix(l.macro, "}")+":\"<port>\"}) moves that port's trigger, not this line.",
			Step{Type: "JAVASCRIPT", Params: []string{"return '" + l.macro + "';"}})
		it.Tags = tags("component", "network")
		t.Items = append(t.Items, it)
	}

	// ---- top remote addresses -----------------------------------------
	t.Items = append(t.Items, polled(v, &Item{
		Name: "TCP: Top remote addresses", Key: "tcp.remote.top[{$TCP.REMOTE.TOP.COUNT},{$TCP.REMOTE.TOP.STATE}]",
		Delay: "{$TCP.REMOTE.TOP.INTERVAL}", History: "7d", Trends: "0", ValueType: "TEXT",
		Description: "The {$TCP.REMOTE.TOP.COUNT} remote addresses with the most TCP sockets in state {$TCP.REMOTE.TOP.STATE}, as JSON [{\"address\":...,\"count\":...}], most first, every {$TCP.REMOTE.TOP.INTERVAL}. Shows who holds the connections when a state count is high; during an incident, \"Execute now\" on this item gives the current list. Each request reads the socket table of its state on its own (about 2/3 of a full read when most sockets are established), so a shorter interval costs that much more per interval.",
		Tags:        tags("component", "network"),
	}))

	// ---- host triggers ------------------------------------------------
	// Severities: Information for a setting worth knowing, Warning for a
	// limit being approached or a sustained anomaly, Average when the
	// kernel is dropping connections or killing sockets now, when a
	// monitored port is down, or when data stops. Every problem has a
	// recovery expression that asks for more than "no longer true" (lower
	// value, longer window, or both), or says why not.
	count := func(name string) string { return ref("tcp.netstat.count[TcpExt." + name + "]") }
	// in5m is an expression macro: the count of the last 5 minutes, for
	// event names (the trigger's {ITEM.VALUE} is one check's count).
	in5m := func(name string) string { return "{?sum(" + count(name) + ",5m)}" }
	twpCrit := &Trigger{
		Expr:      "min(" + ref("tcp.time_wait.pused") + ",5m)>{$TCP.TIME_WAIT.PUSED.MAX.CRIT}",
		Recovery:  "max(" + ref("tcp.time_wait.pused") + ",5m)<{$TCP.TIME_WAIT.PUSED.MAX.CRIT}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: TIME_WAIT buckets almost exhausted",
		EventName: "TCP: TIME_WAIT buckets almost exhausted ({ITEM.VALUE1} of tcp_max_tw_buckets for 5m, over {$TCP.TIME_WAIT.PUSED.MAX.CRIT}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "Time-wait entries approach net.ipv4.tcp_max_tw_buckets. At the limit the kernel destroys new TIME_WAIT sockets at once (TcpExt TCPTimeWaitOverflow), and late segments of old connections can corrupt new ones. " +
			"Usually a client that opens a new connection per request: use keepalive/connection pools, or raise the limit.",
		Why:  "The limit is the kernel's own, so the threshold is a share of it: 20000 TIME_WAIT sockets are routine on a proxy and impossible where tcp_max_tw_buckets is lower. 95% leaves a few minutes' notice before overflows at typical close rates; recovery needs 5 minutes below the threshold minus {$TCP.PUSED.HYSTERESIS} points.",
		Tags: tags("scope", "capacity"),
	}
	twpWarn := &Trigger{
		Expr:      "min(" + ref("tcp.time_wait.pused") + ",5m)>{$TCP.TIME_WAIT.PUSED.MAX.WARN}",
		Recovery:  "max(" + ref("tcp.time_wait.pused") + ",5m)<{$TCP.TIME_WAIT.PUSED.MAX.WARN}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: TIME_WAIT buckets running low",
		EventName: "TCP: TIME_WAIT buckets running low ({ITEM.VALUE1} of tcp_max_tw_buckets for 5m, over {$TCP.TIME_WAIT.PUSED.MAX.WARN}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: twpCrit.Description, DependsOn: []*Trigger{twpCrit}, Tags: tags("scope", "capacity"),
		Why: "As the critical one, earlier: 80% of the kernel's limit.",
	}
	twOverflow := &Trigger{
		Expr:      "sum(" + count("TCPTimeWaitOverflow") + ",5m)>{$TCP.TW_OVERFLOW.MAX.WARN}",
		Recovery:  "sum(" + count("TCPTimeWaitOverflow") + ",15m)<={$TCP.TW_OVERFLOW.MAX.WARN}",
		Name:      "TCP: TIME_WAIT bucket table overflows",
		EventName: "TCP: TIME_WAIT bucket table overflows (" + in5m("TCPTimeWaitOverflow") + " in 5m, over {$TCP.TW_OVERFLOW.MAX.WARN})",
		Opdata:    "Last check: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "The kernel is destroying TIME_WAIT sockets because net.ipv4.tcp_max_tw_buckets is reached (it logs \"time wait bucket table overflow\"). Reduce short-lived connections or raise the limit.",
		Why:         "A count over 5 minutes, not a rate on one sample: a single overflow is noise, a stream of them is the table full. Recovery needs no more than the threshold over 15 minutes, a third of the rate that raised it.",
		Tags:        tags("scope", "capacity"),
	}
	cwCrit := &Trigger{
		Expr:      "min(" + ref("tcp.state[close_wait]") + ",5m)>{$TCP.CLOSE_WAIT.MAX.CRIT}",
		Recovery:  "max(" + ref("tcp.state[close_wait]") + ",10m)<={$TCP.CLOSE_WAIT.MAX.CRIT}",
		Name:      "TCP: Critically many CLOSE_WAIT sockets",
		EventName: "TCP: Critically many CLOSE_WAIT sockets ({ITEM.VALUE1} for 5m, over {$TCP.CLOSE_WAIT.MAX.CRIT})",
		Opdata:    "CLOSE_WAIT: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "The peers closed these connections but the local application has not closed its sockets: a descriptor leak or a stuck application. " +
			"CLOSE_WAIT never times out; the per-port items and the Top remote addresses item show which service.",
		Why:  "CLOSE_WAIT has no kernel limit: each socket holds a descriptor until the application closes it, so the threshold is a count. A healthy server closes within milliseconds and keeps few; 1000 held for 5 minutes is a leak at any scale. Recovery needs 10 minutes at or below it.",
		Tags: tags("scope", "performance"),
	}
	cwWarn := &Trigger{
		Expr:      "min(" + ref("tcp.state[close_wait]") + ",5m)>{$TCP.CLOSE_WAIT.MAX.WARN}",
		Recovery:  "max(" + ref("tcp.state[close_wait]") + ",10m)<={$TCP.CLOSE_WAIT.MAX.WARN}",
		Name:      "TCP: Too many CLOSE_WAIT sockets",
		EventName: "TCP: Too many CLOSE_WAIT sockets ({ITEM.VALUE1} for 5m, over {$TCP.CLOSE_WAIT.MAX.WARN})",
		Opdata:    "CLOSE_WAIT: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: cwCrit.Description, DependsOn: []*Trigger{cwCrit}, Tags: tags("scope", "performance"),
		Why: "As the critical one, at 100.",
	}
	cookies := &Trigger{
		Expr:      "sum(" + count("SyncookiesSent") + ",5m)>{$TCP.SYNCOOKIES.MAX.WARN}",
		Recovery:  "sum(" + count("SyncookiesSent") + ",15m)<={$TCP.SYNCOOKIES.MAX.WARN}",
		Name:      "TCP: SYN cookies are being sent",
		EventName: "TCP: SYN cookies are being sent (" + in5m("SyncookiesSent") + " in 5m, over {$TCP.SYNCOOKIES.MAX.WARN})",
		Opdata:    "Last check: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: "A listener's SYN queue overflowed and the kernel answers with SYN cookies (connections still succeed, without TCP options such as window scaling): a SYN flood, or more connection attempts than the SYN queue (net.ipv4.tcp_max_syn_backlog, the listen backlog) holds.",
		Why:         "Cookies keep connections working, so a burst is not worth a page: 100 in 5 minutes is a sustained overflow. Recovery needs no more than that over 15 minutes.",
		Tags:        tags("scope", "availability"),
	}
	overflows := &Trigger{
		Expr:      "sum(" + count("ListenOverflows") + ",5m)>{$TCP.LISTEN_OVERFLOWS.MAX.WARN}",
		Recovery:  "sum(" + count("ListenOverflows") + ",15m)<={$TCP.LISTEN_OVERFLOWS.MAX.WARN}",
		Name:      "TCP: Accept queues are overflowing",
		EventName: "TCP: Accept queues are overflowing (" + in5m("ListenOverflows") + " connections dropped in 5m, over {$TCP.LISTEN_OVERFLOWS.MAX.WARN})",
		Opdata:    "Last check: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: "Connections are dropped because an application does not accept() them fast enough or its listen backlog is too small (capped by net.core.somaxconn). Clients retry their SYN after 1, 3, 7 s: users see delays. The per-port accept queue items show which port.",
		Why:         "Each overflow is a handshake the client has to retry, so the default is low but not 0: 10 in 5 minutes is more than a momentary burst. Recovery needs no more than that over 15 minutes.",
		Tags:        tags("scope", "performance"),
	}
	synDrops := &Trigger{
		Expr:      "last(" + ref("tcp.limit[tcp_syncookies]") + ")=0 and sum(" + count("TCPReqQFullDrop") + ",5m)>{$TCP.SYN_DROPS.MAX.WARN}",
		Recovery:  "last(" + ref("tcp.limit[tcp_syncookies]") + ")<>0 or sum(" + count("TCPReqQFullDrop") + ",15m)<={$TCP.SYN_DROPS.MAX.WARN}",
		Name:      "TCP: SYN queue overflows drop connections (SYN cookies off)",
		EventName: "TCP: SYN queue overflows drop connections (SYN cookies off) (" + in5m("TCPReqQFullDrop") + " in 5m, over {$TCP.SYN_DROPS.MAX.WARN})",
		Opdata:    "Last check: {ITEM.LASTVALUE2}", Priority: "AVERAGE",
		Description: "A listener's SYN queue is full and, with net.ipv4.tcp_syncookies=0, the kernel drops new connection requests (TcpExt TCPReqQFullDrop) instead of answering with cookies: a SYN flood or a listener that cannot keep up makes the service unreachable. Turn SYN cookies on (1) or raise the backlog.",
		Why:         "Without cookies every such drop is a lost connection attempt, hence Average; 10 in 5 minutes is more than a momentary burst. Recovery: 15 minutes with no more than that, or cookies turned on.",
		Tags:        tags("scope", "availability"),
	}
	cookiesOff := &Trigger{
		Expr:      "last(" + ref("tcp.limit[tcp_syncookies]") + ")=0",
		Name:      "TCP: SYN cookies are disabled",
		EventName: "TCP: SYN cookies are disabled (net.ipv4.tcp_syncookies={ITEM.VALUE1})",
		Opdata:    "tcp_syncookies: {ITEM.LASTVALUE1}", Priority: "INFO",
		Description: "net.ipv4.tcp_syncookies is 0: when a listener's SYN queue overflows (a SYN flood), new connections are dropped instead of answered with SYN cookies. The kernel default is 1.",
		NoRecovery:  "a sysctl, which changes only when an administrator changes it; the problem ends when it is no longer 0.",
		Why:         "Information only: some hosts turn cookies off on purpose. The drops themselves raise \"SYN queue overflows drop connections\".",
		Tags:        tags("scope", "security"),
	}
	orphCrit := &Trigger{
		Expr:      "min(" + ref("tcp.orphan.pused") + ",5m)>{$TCP.ORPHAN.PUSED.MAX.CRIT}",
		Recovery:  "max(" + ref("tcp.orphan.pused") + ",5m)<{$TCP.ORPHAN.PUSED.MAX.CRIT}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: Orphaned sockets near the kernel's kill point",
		EventName: "TCP: Orphaned sockets near the kernel's kill point ({ITEM.VALUE1} of tcp_max_orphans for 5m, over {$TCP.ORPHAN.PUSED.MAX.CRIT}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "Sockets closed by applications but not finished yet approach the point where the kernel resets them (\"too many orphaned sockets\"). The kernel compares the orphan count, doubled or quadrupled for orphans it penalises, with net.ipv4.tcp_max_orphans: " +
			"an orphan whose peer has been silent for twice TCP_RTO_MAX (240 s) is reset from half the limit, one that also had an ICMP error from a quarter (tcp_out_of_resources, net/ipv4/tcp_timer.c).",
		Why:  "Percentages of tcp_max_orphans, set below the kernel's real kill points rather than at the limit: 45% warns before penalised orphans are reset at 50%; 20% warns before doubly penalised ones are reset at 25%. Recovery needs 5 minutes below the threshold minus {$TCP.PUSED.HYSTERESIS} points.",
		Tags: tags("scope", "capacity"),
	}
	orphWarn := &Trigger{
		Expr:      "min(" + ref("tcp.orphan.pused") + ",5m)>{$TCP.ORPHAN.PUSED.MAX.WARN}",
		Recovery:  "max(" + ref("tcp.orphan.pused") + ",5m)<{$TCP.ORPHAN.PUSED.MAX.WARN}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: Orphaned sockets running high",
		EventName: "TCP: Orphaned sockets running high ({ITEM.VALUE1} of tcp_max_orphans for 5m, over {$TCP.ORPHAN.PUSED.MAX.WARN}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: orphCrit.Description, DependsOn: []*Trigger{orphCrit}, Tags: tags("scope", "capacity"),
		Why: "See \"Orphaned sockets near the kernel's kill point\": 20% is below the quarter at which doubly penalised orphans are reset.",
	}
	memMax := &Trigger{
		Expr:      "min(" + ref("tcp.mem.pused") + ",5m)>{$TCP.MEM.PUSED.MAX.CRIT}",
		Recovery:  "max(" + ref("tcp.mem.pused") + ",5m)<{$TCP.MEM.PUSED.MAX.CRIT}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: Memory near tcp_mem's limit",
		EventName: "TCP: Memory near tcp_mem's limit ({ITEM.VALUE1} of the high value for 5m, over {$TCP.MEM.PUSED.MAX.CRIT}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "TCP memory (/proc/net/sockstat \"mem\") approaches net.ipv4.tcp_mem's third value. Above it the kernel refuses socket buffer memory: connections stall, and orphans are reset (\"out of memory -- consider tuning tcp_mem\", TcpExt TCPAbortOnMemory).",
		Why:         "A share of the kernel's own hard limit; 90% gives notice before allocations fail. Recovery needs 5 minutes below the threshold minus {$TCP.PUSED.HYSTERESIS} points.",
		Tags:        tags("scope", "capacity"),
	}
	memPressure := &Trigger{
		Expr: "min(" + ref("tcp.sockstat[tcp_mem]") + ",5m)>last(" + ref("tcp.limit[tcp_mem_pressure]") + ") or " +
			"sum(" + count("TCPMemoryPressures") + ",5m)>{$TCP.MEM.PRESSURES.MAX.WARN}",
		Recovery: "max(" + ref("tcp.sockstat[tcp_mem]") + ",5m)<=last(" + ref("tcp.limit[tcp_mem_min]") + ") and " +
			"sum(" + count("TCPMemoryPressures") + ",15m)<={$TCP.MEM.PRESSURES.MAX.WARN}",
		Name:      "TCP: Memory pressure",
		EventName: "TCP: Memory pressure ({ITEM.VALUE1} pages for 5m, pressure at {ITEM.VALUE2}; " + in5m("TCPMemoryPressures") + " entries in 5m)",
		Opdata:    "Memory: {ITEM.LASTVALUE1} pages, pressure at {ITEM.LASTVALUE2}", Priority: "WARNING",
		Description: "TCP memory has been above net.ipv4.tcp_mem's pressure value, or TCP entered memory pressure (TcpExt TCPMemoryPressures): the kernel shrinks socket buffers, so throughput drops, until usage falls below tcp_mem's low value.",
		Why:         "The thresholds are the kernel's own: it enters pressure above tcp_mem[1] and leaves it only at or below tcp_mem[0], and so does this trigger (plus no more than {$TCP.MEM.PRESSURES.MAX.WARN} new entries in 15 minutes). Entries are counted too, because a pressure shorter than a check leaves no trace in the sampled memory. Any entry counts by default (0): unlike per-connection counters, it happens only when TCP as a whole runs short.",
		Tags:        tags("scope", "capacity"),
	}
	aborts := &Trigger{
		Expr:      "sum(" + count("TCPAbortOnMemory") + ",5m)>{$TCP.ABORT_ON_MEMORY.MAX.WARN}",
		Recovery:  "sum(" + count("TCPAbortOnMemory") + ",15m)<={$TCP.ABORT_ON_MEMORY.MAX.WARN}",
		Name:      "TCP: Connections reset for lack of memory",
		EventName: "TCP: Connections reset for lack of memory (" + in5m("TCPAbortOnMemory") + " in 5m, over {$TCP.ABORT_ON_MEMORY.MAX.WARN})",
		Opdata:    "Last check: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "The kernel reset connections because TCP memory was over tcp_mem's high value or there were too many orphans (TcpExt TCPAbortOnMemory).",
		Why:         "Each is a connection lost, so the default is low; 10 in 5 minutes rules out a one-off. Recovery needs no more than that over 15 minutes.",
		Tags:        tags("scope", "capacity"),
	}
	ephCrit := &Trigger{
		Expr:      "last(" + ref("tcp.ephemeral.pused") + ")>{$TCP.EPHEMERAL.PUSED.MAX.CRIT}",
		Recovery:  "max(" + ref("tcp.ephemeral.pused") + ",5m)<{$TCP.EPHEMERAL.PUSED.MAX.CRIT}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: Local ports toward one destination almost exhausted",
		EventName: "TCP: Local ports toward one destination almost exhausted ({ITEM.VALUE1} of the usable ports, over {$TCP.EPHEMERAL.PUSED.MAX.CRIT}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "Connections to one destination (local address, remote address, remote port) hold nearly every usable ephemeral port; at 100% connect() to it fails with EADDRNOTAVAIL (\"Cannot assign requested address\"). TCP: Busiest destination of local ports names it. " +
			"Usually a client opening a connection per request to one upstream, its closed connections waiting in TIME_WAIT: use keepalive/connection pools, widen net.ipv4.ip_local_port_range, add local or upstream addresses, or let connect() take over TIME_WAIT ports with net.ipv4.tcp_tw_reuse=1.",
		Why:  "A share of the ports the kernel can give one destination, on one check: a connection storm can use the rest within minutes, and the first failed connect() is already an outage. 95% leaves the last few hundred ports of the default range. Recovery needs 5 minutes below the threshold minus {$TCP.PUSED.HYSTERESIS} points.",
		Tags: tags("scope", "capacity"),
	}
	ephWarn := &Trigger{
		Expr:      "last(" + ref("tcp.ephemeral.pused") + ")>{$TCP.EPHEMERAL.PUSED.MAX.WARN}",
		Recovery:  "max(" + ref("tcp.ephemeral.pused") + ",5m)<{$TCP.EPHEMERAL.PUSED.MAX.WARN}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: Local ports toward one destination running low",
		EventName: "TCP: Local ports toward one destination running low ({ITEM.VALUE1} of the usable ports, over {$TCP.EPHEMERAL.PUSED.MAX.WARN}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: ephCrit.Description, DependsOn: []*Trigger{ephCrit}, Tags: tags("scope", "capacity"),
		Why: "As the critical one, earlier: 80%.",
	}
	conntrack := &Trigger{
		Expr:      "last(" + ref("tcp.conntrack.pused") + ")>{$NF.CONNTRACK.PUSED.MAX.WARN}",
		Recovery:  "max(" + ref("tcp.conntrack.pused") + ",15m)<{$NF.CONNTRACK.PUSED.MAX.WARN}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "TCP: Connection tracking table filling up",
		EventName: "TCP: Connection tracking table filling up ({ITEM.VALUE1} of nf_conntrack_max, over {$NF.CONNTRACK.PUSED.MAX.WARN}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "The connection tracking table approaches net.netfilter.nf_conntrack_max. When it is full the kernel drops the packets of new connections of every protocol and logs \"nf_conntrack: table full, dropping packet\": new connections time out while established ones carry on. " +
			"Raise nf_conntrack_max (and the hash size), shorten the tracking timeouts, or exempt busy traffic from tracking (notrack).",
		Why:  "A share of the kernel's own limit, on one check, as the table is read every 5 minutes and fills as fast as connections arrive; 80% leaves room for a burst. Recovery needs 15 minutes (three checks) below the threshold minus {$TCP.PUSED.HYSTERESIS} points.",
		Tags: tags("scope", "capacity"),
	}
	nodata := &Trigger{
		Expr:      "nodata(" + ref("tcp.state[total]") + ",{$TCP.NODATA.TIMEOUT})=1",
		Name:      v.nodata,
		EventName: v.nodata + " (for {$TCP.NODATA.TIMEOUT})",
		Priority:  "AVERAGE",
		Description: "The socket counts (TCP: Sockets, total, from tcp.sockets.get) have had no value for {$TCP.NODATA.TIMEOUT}: the agent is down or unreachable, the key is not supported, or the socket table cannot be read (check the error of TCP: Get sockets). " +
			"All items of this template depend on the same source.",
		NoRecovery: "nodata() is true only after a whole period without values, so the first value after an outage is a real end of it.",
		Why:        "30 minutes: long enough not to double the agent's own unavailability alerts for short outages.",
		Tags:       tags("scope", "availability"),
	}
	t.Triggers = []*Trigger{twpWarn, twpCrit, twOverflow, cwWarn, cwCrit, cookies, overflows, synDrops, cookiesOff, orphWarn, orphCrit, memPressure, memMax, aborts, ephWarn, ephCrit, conntrack, nodata}

	// ---- host graphs ----------------------------------------------------
	// A stacked graph would draw each state's trigger thresholds over the
	// areas of the others: none on it.
	states := &Graph{Name: "TCP: Socket states", Type: "STACKED", NoTriggers: true}
	for i, s := range tcpStates {
		states.Items = append(states.Items, GraphItem{Key: "tcp.state[" + s[0] + "]", Color: stateColors[i], DrawType: "FILLED_REGION"})
	}
	// Readable apart: the two bulk states, and the states that mean
	// trouble when they grow, each as lines on a scale of their own.
	bulk := &Graph{Name: "TCP: Established and TIME_WAIT", Items: []GraphItem{
		{Key: "tcp.state[established]", Color: stateColors[0], DrawType: "BOLD_LINE"},
		{Key: "tcp.state[time_wait]", Color: stateColors[5]},
	}}
	trouble := &Graph{Name: "TCP: Trouble states"}
	for i, st := range tcpStates {
		switch st[0] {
		case "close_wait", "syn_recv", "syn_sent", "fin_wait1", "fin_wait2", "last_ack", "closing":
			trouble.Items = append(trouble.Items, GraphItem{Key: "tcp.state[" + st[0] + "]", Color: stateColors[i]})
		}
	}
	t.Graphs = []*Graph{
		states, bulk, trouble,
		{Name: "TCP: Connection rates", Items: []GraphItem{
			{Key: "tcp.netstat.rate[Tcp.ActiveOpens]", Color: "1A7C11"},
			{Key: "tcp.netstat.rate[Tcp.PassiveOpens]", Color: "2774A4"},
			{Key: "tcp.netstat.rate[Tcp.AttemptFails]", Color: "F63100"},
			{Key: "tcp.netstat.rate[Tcp.EstabResets]", Color: "A54F10"},
		}},
		{Name: "TCP: Queue overflows and SYN cookies", Items: []GraphItem{
			{Key: "tcp.netstat.rate[TcpExt.ListenOverflows]", Color: "F63100"},
			{Key: "tcp.netstat.rate[TcpExt.ListenDrops]", Color: "A54F10"},
			{Key: "tcp.netstat.rate[TcpExt.SyncookiesSent]", Color: "2774A4"},
			{Key: "tcp.netstat.rate[TcpExt.TCPReqQFullDrop]", Color: "FC6EA3"},
			{Key: "tcp.netstat.rate[TcpExt.TCPTimeWaitOverflow]", Color: "6C59DC"},
		}},
		{Name: "TCP: Segments", Items: []GraphItem{
			{Key: "tcp.netstat.rate[Tcp.InSegs]", Color: "1A7C11"},
			{Key: "tcp.netstat.rate[Tcp.OutSegs]", Color: "2774A4"},
			{Key: "tcp.netstat.rate[Tcp.RetransSegs]", Color: "F63100", Right: true},
			{Key: "tcp.netstat.rate[Tcp.InErrs]", Color: "A54F10", Right: true},
		}},
		{Name: "TCP: Usage of kernel limits", Items: []GraphItem{
			{Key: "tcp.time_wait.pused", Color: "6C59DC"},
			{Key: "tcp.orphan.pused", Color: "F63100"},
		}},
	}

	t.Rules = []*Rule{portRule(v, ref), cgroupRule(ref)}

	// The dashboard, for a wall screen at 1600 px: current values first,
	// then the graphs, every port's accept-queue fill at once.
	value := func(name, key string, x int) Widget { return Widget{Name: name, Item: key, X: x, W: 4, H: 3} }
	t.Dashboards = []*Dashboard{{
		Name: "TCP status",
		Pages: []Page{
			{Name: "Overview", Widgets: []Widget{
				value("ESTABLISHED", "tcp.state[established]", 0),
				value("TIME_WAIT", "tcp.state[time_wait]", 4),
				value("CLOSE_WAIT", "tcp.state[close_wait]", 8),
				value("SYN_RECV", "tcp.state[syn_recv]", 12),
				value("Listen overflows per second", "tcp.netstat.rate[TcpExt.ListenOverflows]", 16),
				value("Retransmits per second", "tcp.netstat.rate[Tcp.RetransSegs]", 20),
				{Graph: "TCP: Established and TIME_WAIT", Y: 3, W: 12, H: 6},
				{Graph: "TCP: Trouble states", X: 12, Y: 3, W: 12, H: 6},
				{Graph: "TCP: Connection rates", Y: 9, W: 12, H: 6},
				{Graph: "TCP: Queue overflows and SYN cookies", X: 12, Y: 9, W: 12, H: 6},
				// An item value widget: 7.0's converter fails on a plain
				// text widget in a 6.0 XML file.
				{Name: "Top remote addresses", Item: "tcp.remote.top[{$TCP.REMOTE.TOP.COUNT},{$TCP.REMOTE.TOP.STATE}]", Y: 15, W: 24, H: 3},
			}},
			{Name: "Ports", Widgets: []Widget{
				{Graph: "Port {#PORT}: Accept queue fill", Prototype: true, Columns: 4, Rows: 2, W: 24, H: 10},
				{Graph: "Port {#PORT}: Socket states", Prototype: true, Columns: 4, Rows: 2, Y: 10, W: 24, H: 10},
			}},
			{Name: "Kernel", Widgets: []Widget{
				{Graph: "TCP: Segments", W: 12, H: 7},
				{Graph: "TCP: Usage of kernel limits", X: 12, W: 12, H: 7},
				{Graph: "TCP: Socket states", Y: 7, W: 24, H: 8},
			}},
		},
	}}

	t.ValueMaps = []*ValueMap{
		{Name: "Linux::TCP TIME_WAIT reuse", Mappings: [][2]string{{"0", "Disabled"}, {"1", "Enabled"}, {"2", "Loopback only"}}},
		{Name: "Linux::TCP syncookies", Mappings: [][2]string{{"0", "Disabled"}, {"1", "When a SYN queue overflows"}, {"2", "Always"}}},
		{Name: "TCP::Port listening", Mappings: [][2]string{{"0", "Not listening"}, {"1", "Listening"}}},
	}

	t.Macros = macros()
	return t
}

func portRule(v variant, ref func(string) string) *Rule {
	r := &Rule{
		Name: "Listening TCP ports discovery", Type: v.itemType(), Key: "tcp.port.discovery", Delay: "1h", Lifetime: "{$TCP.PORT.LOST.LIFETIME}",
		Description: "Local TCP ports with a listener, with their addresses, families and process names. " +
			"By default listeners on loopback addresses only ({$TCP.PORT.LOOPBACK.MATCHES}) and ports inside the ephemeral range {$TCP.PORT.EPHEMERAL.RANGE} ({$TCP.PORT.EPHEMERAL.MATCHES}: short-lived listeners such as docker-proxy, rpc.statd or X11 forwarding) are left out. " +
			"Filter further with {$TCP.PORT.MATCHES}/{$TCP.PORT.NOT_MATCHES} (port number) and {$TCP.PORT.PROCESS.MATCHES}/{$TCP.PORT.PROCESS.NOT_MATCHES} (process name). " +
			"A port that stops listening keeps its items for {$TCP.PORT.LOST.LIFETIME} after discovery last found it, so that \"Not listening\" can fire and be seen; then they are deleted. " +
			"(The 6.0 format has no \"disable lost resources\"; on 7.0 and later it can be set on the host's rule.)",
		Filter: []Cond{
			{Macro: "{#EPHEMERAL}", Value: "{$TCP.PORT.EPHEMERAL.MATCHES}"},
			{Macro: "{#LOOPBACK}", Value: "{$TCP.PORT.LOOPBACK.MATCHES}"},
			{Macro: "{#PORT}", Value: "{$TCP.PORT.MATCHES}"},
			{Macro: "{#PORT}", Value: "{$TCP.PORT.NOT_MATCHES}", Operator: "NOT_MATCHES_REGEX"},
			{Macro: "{#PROCESS}", Value: "{$TCP.PORT.PROCESS.MATCHES}"},
			{Macro: "{#PROCESS}", Value: "{$TCP.PORT.PROCESS.NOT_MATCHES}", Operator: "NOT_MATCHES_REGEX"},
		},
		Pre: []Step{
			{Type: "JAVASCRIPT", Params: []string{ephemeralScript}},
			{Type: "DISCARD_UNCHANGED_HEARTBEAT", Params: []string{"1d"}},
		},
	}
	if v.classic {
		r.Pre = append([]Step{notSupportedLLD}, r.Pre...)
	}
	// Every per-port item is fed by the host's tcp.sockets.get, which lists
	// each listening port once: the requests per interval do not grow with
	// the ports. The discovery itself stays a polled key on its slow
	// schedule because it names processes, which the bulk key does not
	// carry.
	//
	// One dependent prototype per port picks the port's object out of the
	// bulk answer and the port's items split it: the server filters the
	// list once per port instead of once per item, and the prototype keeps
	// the uuid of 0.1.0's per-port master tcp.port.get[{#PORT}]. A 6.0
	// import deletes prototypes missing from the file, and deleting a
	// master deletes its dependents with their history; updated in place,
	// it keeps them.
	const master = "tcp.sockets.get.port[{#PORT}]"
	portTags := func(kv ...string) []Tag { return append(tags(kv...), Tag{"port", "{#PORT}"}) }
	add := func(it *Item) {
		it.Tags = portTags("component", "network")
		r.Items = append(r.Items, it)
	}
	// A port that stops listening is absent from tcp.sockets.get. For the
	// listener fields that means 0: no listener, no accept queue, no
	// backlog (what tcp.port.get answers for such a port). Its sockets by
	// state are not listed any more, so they are unknown: their items get
	// no value rather than a false 0 (CLOSE_WAIT sockets of a dead service
	// may well linger).
	r.Items = append(r.Items, &Item{
		Name: "Port {#PORT}: Get data", Type: "DEPENDENT", Key: master, Delay: "0", History: "0", Trends: "0", ValueType: "TEXT",
		Description: "Listener and socket states of local port {#PORT}, listening on {#ADDRESS} ({#OWNER}): its object in the answer of tcp.sockets.get (no agent request of its own). " +
			"When nothing listens on the port any more, an object with listening, listeners, accept queue, backlog and fill 0 and no socket counts. Master item of the port's items; no history of its own.",
		Pre:    []Step{{Type: "JSONPATH", Params: []string{"$.ports[?(@.port=={#PORT})].first()"}, ErrHandler: "CUSTOM_VALUE", ErrHandlerArg: notListening}},
		Master: "tcp.sockets.get",
		Tags:   portTags("component", "raw"),
	})
	// The not-listening object has the listener fields, as 0.
	field := func(f string) Step { return jsonpath("$." + f) }
	unknown := func(f string) Step {
		return Step{Type: "JSONPATH", Params: []string{"$." + f}, ErrHandler: "DISCARD_VALUE"}
	}
	add(dep(master, "tcp.port.listening[{#PORT}]", "Port {#PORT}: Listening", "", "",
		"Whether a socket listens on local port {#PORT}: 1 while tcp.sockets.get lists the port, 0 when it does not.", field("listening")))
	r.Items[len(r.Items)-1].ValueMap = "TCP::Port listening"
	add(dep(master, "tcp.port.listeners[{#PORT}]", "Port {#PORT}: Listeners", "", "",
		"Listening sockets on local port {#PORT} (one per address and family, more with SO_REUSEPORT); 0 when nothing listens.", field("listeners")))
	add(dep(master, "tcp.port.accept_queue[{#PORT}]", "Port {#PORT}: Accept queue", "", "",
		"Connections established but not yet accepted by the application, summed over the port's listeners; 0 when nothing listens.", field("accept_queue")))
	add(dep(master, "tcp.port.backlog[{#PORT}]", "Port {#PORT}: Accept queue limit", "", "",
		"Listen backlog (accept queue limit) of the port's listeners, summed: the application's listen() argument capped by net.core.somaxconn; 0 when nothing listens.", field("backlog")))
	add(dep(master, "tcp.port.accept_queue.pused[{#PORT}]", "Port {#PORT}: Accept queue fill", "%", "FLOAT",
		"Fill of the fullest listener's accept queue in percent of its backlog; 0 when nothing listens. At 100% new connections are dropped (TcpExt ListenOverflows).", field("accept_queue_pused")))
	for _, s := range tcpStates {
		// Short names: a graph legend beside a quarter of the screen
		// fits them with their last/min/avg/max columns.
		it := dep(master, "tcp.port.state[{#PORT},"+s[0]+"]", "Port {#PORT}: "+s[1], "", "",
			"TCP sockets with local port {#PORT} in the "+s[1]+" state. No value while nothing listens on the port (tcp.sockets.get lists listening ports only).", unknown(s[0]))
		if !portStatesRead[s[0]] {
			it.NoDiscover = true
			it.Description += " " + offByDefault
		}
		add(it)
	}
	total := dep(master, "tcp.port.state[{#PORT},total]", "Port {#PORT}: All sockets", "", "",
		"TCP sockets with local port {#PORT} in any state. No value while nothing listens on the port (tcp.sockets.get lists listening ports only). "+offByDefault, unknown("total"))
	total.NoDiscover = true
	add(total)

	aq := ref("tcp.port.accept_queue.pused[{#PORT}]")
	aqCrit := &Trigger{
		Expr:      "min(" + aq + ",5m)>{$TCP.PORT.ACCEPTQ.PUSED.MAX.CRIT:\"{#PORT}\"}",
		Recovery:  "max(" + aq + ",5m)<{$TCP.PORT.ACCEPTQ.PUSED.MAX.CRIT:\"{#PORT}\"}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "Port {#PORT}: Accept queue almost full",
		EventName: "Port {#PORT}: Accept queue almost full ({ITEM.VALUE1} of the backlog for 5m, over {$TCP.PORT.ACCEPTQ.PUSED.MAX.CRIT:\"{#PORT}\"}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "AVERAGE",
		Description: "The listener on port {#PORT}, {#OWNER}, does not accept connections as fast as they arrive; when the queue is full the kernel drops new ones (TcpExt ListenOverflows). Check the application, or raise its backlog (and net.core.somaxconn).",
		Why:         "A share of the port's own backlog, which is its kernel limit; a queue that stays 95% full for 5 minutes is about to drop connections. Recovery needs 5 minutes below the threshold minus {$TCP.PUSED.HYSTERESIS} points.",
		Tags:        tags("scope", "performance"),
	}
	aqWarn := &Trigger{
		Expr:      "min(" + aq + ",5m)>{$TCP.PORT.ACCEPTQ.PUSED.MAX.WARN:\"{#PORT}\"}",
		Recovery:  "max(" + aq + ",5m)<{$TCP.PORT.ACCEPTQ.PUSED.MAX.WARN:\"{#PORT}\"}-{$TCP.PUSED.HYSTERESIS}",
		Name:      "Port {#PORT}: Accept queue filling up",
		EventName: "Port {#PORT}: Accept queue filling up ({ITEM.VALUE1} of the backlog for 5m, over {$TCP.PORT.ACCEPTQ.PUSED.MAX.WARN:\"{#PORT}\"}%)",
		Opdata:    "Used: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: aqCrit.Description, DependsOn: []*Trigger{aqCrit}, Tags: tags("scope", "performance"),
		Why: "As the critical one, earlier: 80% of the backlog.",
	}
	cwp := ref("tcp.port.state[{#PORT},close_wait]")
	cw := &Trigger{
		Expr:      "min(" + cwp + ",5m)>{$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"{#PORT}\"}",
		Recovery:  "max(" + cwp + ",10m)<={$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"{#PORT}\"}",
		Name:      "Port {#PORT}: Too many CLOSE_WAIT sockets",
		EventName: "Port {#PORT}: Too many CLOSE_WAIT sockets ({ITEM.VALUE1} for 5m, over {$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"{#PORT}\"})",
		Opdata:    "CLOSE_WAIT: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: "Peers closed connections to port {#PORT} but the listener behind it, {#OWNER}, has not closed its sockets: a descriptor leak or stuck workers in the application.",
		Why:         "No kernel limit applies (see the host's CLOSE_WAIT triggers); 50 held for 5 minutes on one port is a leak for almost any service. Recovery needs 10 minutes at or below it.",
		Tags:        tags("scope", "performance"),
	}
	lis := ref("tcp.port.listening[{#PORT}]")
	down := "{$TCP.PORT.DOWN.PERIOD:\"{#PORT}\"}"
	gone := &Trigger{
		// True only in the period after the port has been down for the
		// whole of {$TCP.PORT.DOWN.PERIOD} while it listened in the period
		// before: a restart within the period raises nothing, and once
		// that second period is over a port that stays down does not make
		// the expression true again, so a problem closed by hand stays
		// closed. (The server sets a closed problem's trigger to OK and
		// evaluates it on each value: closed within the second period,
		// the problem opens again at the next check. An expression true on
		// one check only would avoid that, but a check late or failed at
		// that moment would lose the problem for good.)
		Expr:      "max(" + lis + "," + down + ")=0 and max(" + lis + "," + down + ":now-" + down + ")=1",
		Recovery:  "last(" + lis + ")=1",
		Name:      "Port {#PORT}: Not listening",
		EventName: "Port {#PORT}: Not listening (for over " + down + ")",
		Opdata:    "Listening: {ITEM.LASTVALUE1}",
		Priority:  "AVERAGE", ManualClose: true,
		Description: "Nothing listens on port {#PORT} any more (when it was discovered, {#OWNER} listened on {#ADDRESS}): the service stopped or moved. " +
			"The problem ends when the port listens again. If the service is gone for good, close the problem once the port has been down for twice {$TCP.PORT.DOWN.PERIOD} (closed earlier, it opens again at the next check): it then stays closed while the port stays down, and the port's items are deleted {$TCP.PORT.LOST.LIFETIME} after discovery stops finding it.",
		Why:  "A port is judged only after it was seen listening and has been down for the whole period: 5 minutes rides out a restart or a deploy, and a restart within one check never shows. The expression is true only in the period after that, so a manual close sticks from twice the period on (a close within the second period reopens at the next check: an expression true on one check only would be lost to a single late check); recovery is the first check that finds a listener.",
		Tags: tags("scope", "availability"),
	}
	r.Triggers = []*Trigger{aqWarn, aqCrit, cw, gone}

	// The discovered states as lines, each on the common scale: no
	// stacking (a thin CLOSE_WAIT band on top of ESTABLISHED reads as
	// nothing) and no trigger lines (the CLOSE_WAIT threshold would set
	// the scale of an idle port).
	st := &Graph{Name: "Port {#PORT}: Socket states", NoTriggers: true}
	for i, s := range tcpStates {
		if portStatesRead[s[0]] {
			gi := GraphItem{Key: "tcp.port.state[{#PORT}," + s[0] + "]", Color: stateColors[i]}
			if s[0] == "established" {
				gi.DrawType = "BOLD_LINE"
			}
			st.Items = append(st.Items, gi)
		}
	}
	r.Graphs = []*Graph{st,
		// In % of the backlog on a fixed 0-100 scale, with the lines of
		// the port's two accept-queue thresholds: a queue that fills
		// shows long before it overflows. The frontend draws a trigger's
		// line only for a trigger of one function, and these have a
		// recovery expression too: the lines are items of their own.
		{Name: "Port {#PORT}: Accept queue fill", Percent: true, Items: []GraphItem{
			{Key: "tcp.port.accept_queue.pused[{#PORT}]", Color: "F63100", DrawType: "BOLD_LINE"},
			{Key: acceptqLine("warn"), Color: "FFA059", DrawType: "DASHED_LINE"},
			{Key: acceptqLine("crit"), Color: "E45959", DrawType: "DASHED_LINE"},
		}},
		{Name: "Port {#PORT}: Accept queue", Items: []GraphItem{
			{Key: "tcp.port.accept_queue[{#PORT}]", Color: "F63100"},
			{Key: "tcp.port.backlog[{#PORT}]", Color: "2774A4"},
		}},
	}
	return r
}

// acceptqLine is the key of the item that carries an accept-queue
// threshold (level warn or crit) as a graph line.
func acceptqLine(level string) string { return "tcp.port.accept_queue.pused.threshold[" + level + "]" }

// portStatesRead are the per-port socket states discovered by default:
// what an operator reads off a service's port. ESTABLISHED is its load;
// SYN_RECV its handshakes in flight (a SYN flood, or a listener too slow to
// take its queue); CLOSE_WAIT sockets the application has not closed (a
// trigger watches them); TIME_WAIT connections it closed first (what
// holds ports and time-wait buckets). The other states are short steps of
// a close, or (SYN_SENT, LISTEN) not sockets of a server port; their
// prototypes stay in the template, not discovered.
var portStatesRead = map[string]bool{"established": true, "syn_recv": true, "close_wait": true, "time_wait": true}

// offByDefault ends the description of a prototype that is not
// discovered by default.
const offByDefault = "Not discovered by default (it would add one value per port and minute): to collect it, switch \"Discover\" on for this prototype in the template (an import of a later version of the file switches it off again)."

// cgroupStates are the states a socket with a cgroup can be in: time-wait
// and request sockets (TIME_WAIT, SYN_RECV) carry none.
var cgroupStates = [][2]string{
	{"established", "ESTABLISHED"}, {"syn_sent", "SYN_SENT"}, {"fin_wait1", "FIN_WAIT1"}, {"fin_wait2", "FIN_WAIT2"},
	{"close_wait", "CLOSE_WAIT"}, {"last_ack", "LAST_ACK"}, {"closing", "CLOSING"}, {"listen", "LISTEN"},
}

func cgroupRule(ref func(string) string) *Rule {
	const sockets = "tcp.sockets.get"
	r := &Rule{
		Name: "Services (cgroups) with TCP sockets discovery", Type: "DEPENDENT", Key: "tcp.cgroups.discovery", Master: sockets,
		Delay: "0", Lifetime: "{$TCP.CGROUP.LOST.LIFETIME}",
		Description: "The cgroups (systemd services and scopes, containers) whose processes hold TCP sockets, from the \"cgroups\" section of tcp.sockets.get: no request of its own. " +
			"The kernel names the cgroup of every full socket (Linux 5.7 or later, cgroup v2, the netlink source); without that the rule fails with the reason. " +
			"Discovers the cgroups holding at least {$TCP.CGROUP.MIN.SOCKETS} sockets whose path matches {$TCP.CGROUP.MATCHES} and not {$TCP.CGROUP.NOT_MATCHES}; " +
			"a cgroup no longer found keeps its items for {$TCP.CGROUP.LOST.LIFETIME}.",
		Filter: []Cond{
			{Macro: "{#CGROUP}", Value: "{$TCP.CGROUP.MATCHES}"},
			{Macro: "{#CGROUP}", Value: "{$TCP.CGROUP.NOT_MATCHES}", Operator: "NOT_MATCHES_REGEX"},
		},
		Pre: []Step{
			{Type: "JAVASCRIPT", Params: []string{cgroupLLDScript}},
			{Type: "DISCARD_UNCHANGED_HEARTBEAT", Params: []string{"1h"}},
		},
	}
	cgTags := func(kv ...string) []Tag { return append(tags(kv...), Tag{"service", "{#CGROUP}"}) }
	const master = "tcp.sockets.get.cgroup[\"{#CGROUP}\"]"
	r.Items = append(r.Items, &Item{
		Name: "Service {#CGROUP}: Get data", Type: "DEPENDENT", Key: master, Delay: "0", History: "0", Trends: "0", ValueType: "TEXT",
		Description: "TCP sockets of cgroup {#CGROUP} by state: its object in the answer of tcp.sockets.get (no agent request of its own); {} while the cgroup holds no socket, which gives its items no value. Master item of the service's items; no history of its own.",
		Pre:         []Step{{Type: "JAVASCRIPT", Params: []string{cgroupPickScript}}},
		Master:      sockets,
		Tags:        cgTags("component", "raw"),
	})
	for _, s := range append(cgroupStates, [2]string{"total", "any state"}) {
		name, desc := "Service {#CGROUP}: Sockets in "+s[1], "TCP sockets that processes of cgroup {#CGROUP} created (or accepted) in the "+s[1]+" state."
		if s[0] == "total" {
			name, desc = "Service {#CGROUP}: Sockets, total", "TCP sockets of cgroup {#CGROUP} in any state (TIME_WAIT and SYN_RECV sockets carry no cgroup and are not among them)."
		}
		it := dep(master, "tcp.cgroup.state[\"{#CGROUP}\","+s[0]+"]", name, "", "", desc, orDiscard(jsonpath("$."+s[0])))
		it.Tags = cgTags("component", "network")
		r.Items = append(r.Items, it)
	}
	cw := ref("tcp.cgroup.state[\"{#CGROUP}\",close_wait]")
	r.Triggers = []*Trigger{{
		Expr:      "min(" + cw + ",5m)>{$TCP.CGROUP.CLOSE_WAIT.MAX.WARN:\"{#CGROUP}\"}",
		Recovery:  "max(" + cw + ",10m)<={$TCP.CGROUP.CLOSE_WAIT.MAX.WARN:\"{#CGROUP}\"}",
		Name:      "Service {#CGROUP}: CLOSE_WAIT sockets are leaking",
		EventName: "Service {#CGROUP}: CLOSE_WAIT sockets are leaking ({ITEM.VALUE1} for 5m, over {$TCP.CGROUP.CLOSE_WAIT.MAX.WARN:\"{#CGROUP}\"})",
		Opdata:    "CLOSE_WAIT: {ITEM.LASTVALUE1}", Priority: "WARNING",
		Description: "Peers closed connections of {#CGROUP} but its processes have not closed their sockets: a descriptor leak or stuck workers in that service, whether it is the server or the client side (a pool towards a database whose connections the database closed).",
		Why:         "No kernel limit applies to CLOSE_WAIT (see the host's CLOSE_WAIT triggers); 50 held for 5 minutes by one service is a leak for almost any of them. Recovery needs 10 minutes at or below it.",
		Tags:        tags("scope", "performance"),
	}}
	st := &Graph{Name: "Service {#CGROUP}: Socket states", Type: "STACKED"}
	for i, s := range cgroupStates {
		if s[0] == "listen" {
			continue
		}
		st.Items = append(st.Items, GraphItem{Key: "tcp.cgroup.state[\"{#CGROUP}\"," + s[0] + "]", Color: stateColors[i], DrawType: "FILLED_REGION"})
	}
	r.Graphs = []*Graph{st}
	return r
}

func macros() []Macro {
	ms := []Macro{
		{"{$TCP.ABORT_ON_MEMORY.MAX.WARN}", "10", "Connections reset for lack of memory (TcpExt TCPAbortOnMemory) in 5 minutes above which \"Connections reset for lack of memory\" fires; it recovers at this many or fewer in 15 minutes."},
		{"{$NF.CONNTRACK.PUSED.MAX.WARN}", "80", "Connection tracking entries in % of nf_conntrack_max above which \"Connection tracking table filling up\" fires."},
		{"{$TCP.CGROUP.CLOSE_WAIT.MAX.WARN}", "50", "CLOSE_WAIT sockets of one discovered service (cgroup), for 5 minutes, above which its \"CLOSE_WAIT sockets are leaking\" fires; it recovers after 10 minutes at or below. Per service: {$TCP.CGROUP.CLOSE_WAIT.MAX.WARN:\"<cgroup path>\"}."},
		{"{$TCP.CGROUP.LOST.LIFETIME}", "1d", "Service discovery: how long a cgroup discovery no longer finds keeps its items before they are deleted."},
		{"{$TCP.CGROUP.MATCHES}", ".+", "Service discovery: discover cgroups whose path matches this regex, e.g. \\.service$ for systemd services only."},
		{"{$TCP.CGROUP.MIN.SOCKETS}", "10", "Service discovery: discover cgroups holding at least this many TCP sockets (TIME_WAIT and SYN_RECV not counted)."},
		{"{$TCP.CGROUP.NOT_MATCHES}", "CHANGE_IF_NEEDED", "Service discovery: skip cgroups whose path matches this regex."},
		{"{$TCP.CLOSE_WAIT.MAX.CRIT}", "1000", "CLOSE_WAIT sockets on the host, for 5 minutes, above which \"Critically many CLOSE_WAIT sockets\" fires; it recovers after 10 minutes at or below."},
		{"{$TCP.CLOSE_WAIT.MAX.WARN}", "100", "CLOSE_WAIT sockets on the host, for 5 minutes, above which \"Too many CLOSE_WAIT sockets\" fires; it recovers after 10 minutes at or below."},
		{"{$TCP.EPHEMERAL.PUSED.MAX.CRIT}", "95", "Local ports held toward the busiest destination in % of the usable ephemeral ports, on one check, above which \"Local ports toward one destination almost exhausted\" fires."},
		{"{$TCP.EPHEMERAL.PUSED.MAX.WARN}", "80", "Local ports held toward the busiest destination in % of the usable ephemeral ports, on one check, above which \"Local ports toward one destination running low\" fires."},
		{"{$TCP.LISTEN_OVERFLOWS.MAX.WARN}", "10", "Connections dropped on full accept queues (TcpExt ListenOverflows) in 5 minutes above which \"Accept queues are overflowing\" fires; it recovers at this many or fewer in 15 minutes."},
		{"{$TCP.MEM.PRESSURES.MAX.WARN}", "0", "Entries into TCP memory pressure (TcpExt TCPMemoryPressures) in 5 minutes above which \"Memory pressure\" fires; it recovers at this many or fewer in 15 minutes (and memory at or below tcp_mem's low value)."},
		{"{$TCP.MEM.PUSED.MAX.CRIT}", "90", "TCP memory in % of tcp_mem's high value, for 5 minutes, above which \"Memory near tcp_mem's limit\" fires."},
		{"{$TCP.NODATA.TIMEOUT}", "30m", "How long TCP: Sockets, total (from tcp.sockets.get) may have no value before the no-data trigger fires."},
		{"{$TCP.ORPHAN.PUSED.MAX.CRIT}", "45", "Orphaned sockets in % of tcp_max_orphans, for 5 minutes, above which \"Orphaned sockets near the kernel's kill point\" fires. The kernel resets penalised orphans from 50%."},
		{"{$TCP.ORPHAN.PUSED.MAX.WARN}", "20", "Orphaned sockets in % of tcp_max_orphans, for 5 minutes, above which \"Orphaned sockets running high\" fires. The kernel resets doubly penalised orphans from 25%."},
		{"{$TCP.PORT.ACCEPTQ.PUSED.MAX.CRIT}", "95", "Accept queue fill in % of the backlog, for 5 minutes, above which \"Accept queue almost full\" fires. Per port: {$TCP.PORT.ACCEPTQ.PUSED.MAX.CRIT:\"<port>\"}."},
		{"{$TCP.PORT.ACCEPTQ.PUSED.MAX.WARN}", "80", "Accept queue fill in % of the backlog, for 5 minutes, above which \"Accept queue filling up\" fires. Per port: {$TCP.PORT.ACCEPTQ.PUSED.MAX.WARN:\"<port>\"}."},
		{"{$TCP.PORT.CLOSE_WAIT.MAX.WARN}", "50", "CLOSE_WAIT sockets on one port, for 5 minutes, above which the port's \"Too many CLOSE_WAIT sockets\" fires; it recovers after 10 minutes at or below. Per port: {$TCP.PORT.CLOSE_WAIT.MAX.WARN:\"<port>\"}."},
		{"{$TCP.PORT.DOWN.PERIOD}", "5m", "How long a discovered port must have had no listener before \"Not listening\" fires (a restart within it raises nothing). Per port: {$TCP.PORT.DOWN.PERIOD:\"<port>\"}."},
		{"{$TCP.PORT.EPHEMERAL.MATCHES}", "^0$", "Port discovery: ports inside {$TCP.PORT.EPHEMERAL.RANGE} have {#EPHEMERAL} 1, others 0; discover those whose {#EPHEMERAL} matches this regex (^0$: leave ephemeral ports out; .* takes them in)."},
		{"{$TCP.PORT.EPHEMERAL.RANGE}", "32768-60999", "Port discovery: the ephemeral port range, first-last, as in net.ipv4.ip_local_port_range (the Linux default is 32768-60999; TCP: Limit ip_local_port_range shows the host's)."},
		{"{$TCP.PORT.LOOPBACK.MATCHES}", "^0$", "Port discovery: discover ports whose {#LOOPBACK} (1 when every listener is on a loopback address) matches this regex (^0$: leave loopback-only listeners out; .* takes them in)."},
		{"{$TCP.PORT.LOST.LIFETIME}", "1d", "Port discovery: how long a port discovery no longer finds keeps its items (and its \"Not listening\" problem) before they are deleted."},
		{"{$TCP.PORT.MATCHES}", ".+", "Port discovery: discover listening ports whose number matches this regex, e.g. ^(22|80|443)$."},
		{"{$TCP.PORT.NOT_MATCHES}", "CHANGE_IF_NEEDED", "Port discovery: skip listening ports whose number matches this regex."},
		{"{$TCP.PORT.PROCESS.MATCHES}", ".*", "Port discovery: discover listening ports whose process name matches this regex (the name is empty when the agent cannot see the process)."},
		{"{$TCP.PORT.PROCESS.NOT_MATCHES}", "CHANGE_IF_NEEDED", "Port discovery: skip listening ports whose process name matches this regex."},
		{"{$TCP.PUSED.HYSTERESIS}", "5", "Percentage points below its threshold that a percentage (of a kernel limit, of a backlog) must stay under, for the trigger's window, before the problem recovers."},
		{"{$TCP.REMOTE.TOP.COUNT}", "10", "How many remote addresses the Top remote addresses item lists."},
		{"{$TCP.REMOTE.TOP.INTERVAL}", "15m", "How often the Top remote addresses item is polled. Each poll reads the socket table of its state once more: at 15m the templates cost about 1.06 socket-table reads per minute at 100k sockets and 1.05 at 1M (about 1.15 at 5m); lower it on a host under investigation, or use \"Execute now\"."},
		{"{$TCP.REMOTE.TOP.STATE}", "established", "Which sockets the Top remote addresses item counts: a state name (established, close_wait, time_wait, ...) or all."},
		{"{$TCP.SYN_DROPS.MAX.WARN}", "10", "Connection requests dropped on full SYN queues with SYN cookies off (TcpExt TCPReqQFullDrop) in 5 minutes above which \"SYN queue overflows drop connections\" fires; it recovers at this many or fewer in 15 minutes."},
		{"{$TCP.SYNCOOKIES.MAX.WARN}", "100", "SYN cookies sent (TcpExt SyncookiesSent) in 5 minutes above which \"SYN cookies are being sent\" fires; it recovers at this many or fewer in 15 minutes."},
		{"{$TCP.TIME_WAIT.PUSED.MAX.CRIT}", "95", "Time-wait entries in % of tcp_max_tw_buckets, for 5 minutes, above which \"TIME_WAIT buckets almost exhausted\" fires."},
		{"{$TCP.TIME_WAIT.PUSED.MAX.WARN}", "80", "Time-wait entries in % of tcp_max_tw_buckets, for 5 minutes, above which \"TIME_WAIT buckets running low\" fires."},
		{"{$TCP.TW_OVERFLOW.MAX.WARN}", "10", "TIME_WAIT sockets not created because tcp_max_tw_buckets was full (TcpExt TCPTimeWaitOverflow) in 5 minutes above which \"TIME_WAIT bucket table overflows\" fires; it recovers at this many or fewer in 15 minutes."},
	}
	for _, m := range ms {
		if !strings.HasSuffix(m.Description, ".") {
			panic("macro description without final period: " + m.Macro)
		}
	}
	return ms
}
