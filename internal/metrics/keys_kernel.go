package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
)

var (
	errKernelCounters = &ItemError{msg: "Cannot obtain kernel TCP counters."}
	errKernelLimits   = &ItemError{msg: "Cannot obtain TCP sysctls."}
)

// kernelMetrics declares the keys reading the kernel's own TCP counters and
// limits. Both cost well under a millisecond whatever the number of sockets.
func (e *Exporter) kernelMetrics() []Metric {
	return []Metric{
		{
			Key: "tcp.kernel.get",
			Description: "JSON object with the kernel's TCP counters: /proc/net/sockstat and sockstat6 " +
				"(sockstat.tcp_tw counts every time-wait entry, orphaned FIN_WAIT2 included, so it is not the TIME_WAIT count), " +
				"the Tcp section of /proc/net/snmp (Tcp.CurrEstab is ESTABLISHED plus CLOSE_WAIT) " +
				"and the TcpExt section of /proc/net/netstat, under the kernel's names.",
			Handler: e.kernelGet,
		},
		{
			Key: "tcp.limits.get",
			Description: "JSON object with the TCP sysctls: tcp_max_tw_buckets, tcp_max_orphans, tcp_max_syn_backlog, " +
				"tcp_syncookies, tcp_fin_timeout, tcp_tw_reuse, tcp_keepalive_time/intvl/probes, ip_local_port_range_min/max, " +
				"tcp_mem_min/pressure/max (pages), somaxconn, and while nf_conntrack is loaded nf_conntrack_count and nf_conntrack_max; " +
				"a sysctl the kernel lacks is left out.",
			Handler: e.limitsGet,
		},
	}
}

// kernelNetFS opens the directory holding the network counters: the parent
// of NetDir, so the counters come from the same namespace as the /proc
// socket tables.
func (e *Exporter) kernelNetFS() (kernel.NetFS, error) {
	return kernel.NewNetFS(filepath.Dir(e.cfg.NetDir()))
}

// kernelGet: tcp.kernel.get → {"sockstat":{...},"Tcp":{...},"TcpExt":{...}}.
// sockstat and snmp must be readable; a missing sockstat6 (IPv6 off) leaves
// tcp6_inuse out and a missing netstat leaves TcpExt out.
func (e *Exporter) kernelGet(_ context.Context, _ Params) (string, error) {
	nfs, err := e.kernelNetFS()
	if err != nil {
		return "", e.kernelError(err, errKernelCounters)
	}
	st, err := nfs.Sockstat()
	if err != nil {
		return "", e.kernelError(err, errKernelCounters)
	}
	snmp, err := nfs.SNMP()
	if err != nil {
		return "", e.kernelError(err, errKernelCounters)
	}
	tcp, ok := snmp.Section("Tcp")
	if !ok {
		return "", itemErrorf("%s No Tcp section in %s.", errKernelCounters.msg, filepath.Join(e.cfg.NetDir(), "snmp"))
	}
	netstat, err := nfs.Netstat()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", e.kernelError(err, errKernelCounters)
	}

	b := make([]byte, 0, 4096)
	b = append(b, `{"sockstat":{`...)
	first := true
	for _, f := range []struct {
		name string
		v    *int
	}{
		{"sockets_used", st.SocketsUsed}, {"tcp_inuse", st.TCPInUse}, {"tcp_orphan", st.TCPOrphan}, {"tcp_tw", st.TCPTW},
		{"tcp_alloc", st.TCPAlloc}, {"tcp_mem", st.TCPMem}, {"tcp6_inuse", st.TCP6InUse},
	} {
		if f.v == nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, int64(*f.v), 10)
	}
	b = append(b, '}')
	b = appendSection(b, tcp)
	if ext, ok := netstat.Section("TcpExt"); ok {
		b = appendSection(b, ext)
	}
	return string(append(b, '}')), nil
}

// appendSection appends `,"<name>":{"<counter>":N,...}` to b. Values are
// the kernel's validated integer text, copied as JSON numbers.
func appendSection(b []byte, s kernel.Section) []byte {
	b = append(b, ',')
	b = appendJSONString(b, s.Name)
	b = append(b, ":{"...)
	for i, c := range s.Counters {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.Name)
		b = append(b, ':')
		b = append(b, c.Value...)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Kernel names are plain
// identifiers; encoding/json still escapes anything else.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// limitsGet: tcp.limits.get → {"tcp_max_tw_buckets":N,...}.
func (e *Exporter) limitsGet(_ context.Context, _ Params) (string, error) {
	limits, err := kernel.ReadLimits(e.cfg.ProcRoot)
	if err != nil {
		return "", e.kernelError(err, errKernelLimits)
	}
	b := make([]byte, 0, 512)
	b = append(b, '{')
	for i, l := range limits {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, l.Name)
		b = append(b, ':')
		b = strconv.AppendInt(b, l.Value, 10)
	}
	return string(append(b, '}')), nil
}

// kernelError logs the cause and returns the operator's text: fallback
// followed by the cause as a sentence.
func (e *Exporter) kernelError(err error, fallback *ItemError) error {
	e.log.Debugf("kernel counters: %v", err)
	return operatorError(err, fallback)
}
