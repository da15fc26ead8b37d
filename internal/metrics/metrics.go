package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"zabbix-agent2-plugin-tcpstatus/internal/disks"
	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
	"zabbix-agent2-plugin-tcpstatus/internal/procnames"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/internal/zbx"
)

// PluginName is the name the agent knows the plugin by
// (Plugins.TCPStatus.System.Path).
const PluginName = "TCPStatus"

// Handler computes one item value. It returns the value as the agent sends
// it (a string; JSON for the .get and discovery keys) or an error whose text
// the operator sees.
type Handler func(ctx context.Context, p Params) (string, error)

// Metric declares one item key: its name, the description the agent
// registers, its parameters and its handler.
type Metric struct {
	Key         string
	Description string
	Params      []Param
	Handler     Handler
}

// Synopsis returns the key with its parameters, e.g.
// "tcp.status[<state>,<port>,<family>]".
func (m Metric) Synopsis() string {
	if len(m.Params) == 0 {
		return m.Key
	}
	names := make([]string, len(m.Params))
	for i, p := range m.Params {
		names[i] = "<" + p.Name + ">"
	}
	return m.Key + "[" + strings.Join(names, ",") + "]"
}

// Logger receives the exporter's log lines. The plugin sends them to the
// agent's log; the discovery helper writes them to stderr.
type Logger interface {
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
	Debugf(format string, args ...any)
}

// NopLogger discards everything.
type NopLogger struct{}

// Infof discards.
func (NopLogger) Infof(string, ...any) {}

// Warningf discards.
func (NopLogger) Warningf(string, ...any) {}

// Debugf discards.
func (NopLogger) Debugf(string, ...any) {}

// Exporter answers item keys. It is safe for concurrent use.
type Exporter struct {
	cfg     Config
	log     Logger
	src     sockets.Source
	cache   *snapshotCache
	owners  map[sockets.Proto]*procnames.Cache // socket owners for port discovery, per protocol
	cgroups *sockets.CgroupPaths               // cgroup ids to paths for tcp.cgroups.get
	service *sockets.CgroupPaths               // the same for port discovery, cached apart
	disks   *disks.Known                       // sysfs descriptions disk.get.all reuses
	metrics map[string]*Metric
	order   []*Metric
}

// New builds an exporter from a validated configuration. It opens nothing:
// sources connect on first use.
func New(cfg Config, log Logger) (*Exporter, error) {
	if log == nil {
		log = NopLogger{}
	}
	src, err := newSource(cfg, log)
	if err != nil {
		return nil, err
	}
	return newExporter(cfg, log, src)
}

// newExporter builds an exporter over a given socket source (tests pass
// fakes or fixture sources).
func newExporter(cfg Config, log Logger, src sockets.Source) (*Exporter, error) {
	e := &Exporter{cfg: cfg, log: log, src: src, metrics: map[string]*Metric{}, cgroups: sockets.NewCgroupPaths(), service: sockets.NewCgroupPaths(),
		disks: disks.NewKnown(diskDescriptionTTL)}
	e.owners = map[sockets.Proto]*procnames.Cache{
		sockets.TCP: procnames.NewCache(cfg.ProcRoot), sockets.UDP: procnames.NewCache(cfg.ProcRoot)}
	for _, c := range e.owners {
		c.SetLogger(log) // a scan cut short by its deadline is logged
	}
	e.cache = newSnapshotCache(src, cfg.CacheTTL, cfg.Timeout)
	e.cache.localPorts = func() (kernel.LocalPorts, error) { return kernel.ReadLocalPorts(cfg.ProcRoot) }
	var reg zbx.Registration
	for _, m := range e.table() {
		m := m
		if err := checkMetric(&reg, m); err != nil {
			return nil, err
		}
		e.metrics[m.Key] = &m
		e.order = append(e.order, &m)
	}
	return e, nil
}

// table declares every key of the plugin, grouped by concern.
func (e *Exporter) table() []Metric {
	return slices.Concat(e.tcpMetrics(), e.socketsMetrics(), e.cgroupMetrics(), e.portMetrics(), e.kernelMetrics(), e.remoteMetrics(), e.ephemeralMetrics(), e.diskMetrics())
}

// checkMetric applies the agent's registration rules (zbx.Registration:
// breaking them makes agent 2 6.0 panic and 7.0 hang) and asks for a
// handler.
func checkMetric(r *zbx.Registration, m Metric) error {
	if m.Handler == nil {
		return fmt.Errorf("metric %s: no handler", m.Key)
	}
	return r.Add(m.Key, m.Description)
}

// Metrics lists the declared keys in declaration order.
func (e *Exporter) Metrics() []Metric {
	out := make([]Metric, len(e.order))
	for i, m := range e.order {
		out[i] = *m
	}
	return out
}

// Export answers one request. The context bounds the request. A panic in a
// key's handler reaches the caller, whose boundary answers it as an item
// error (agentproto.Serve in the plugin, the command in
// tcpstatus-discovery); one in a shared read is that read's error.
func (e *Exporter) Export(ctx context.Context, key string, params []string) (value string, err error) {
	m, ok := e.metrics[key]
	if !ok {
		return "", errUnsupported
	}
	p, err := bind(m.Params, params)
	if err != nil {
		return "", err
	}
	v, err := m.Handler(ctx, p)
	if err != nil {
		e.log.Debugf("%s failed: %v", clip(key+fmt.Sprintf("%q", params)), err)
		return "", operatorError(err, nil)
	}
	return v, nil
}

// Config returns the configuration the exporter was built with.
func (e *Exporter) Config() Config { return e.cfg }

func panicError(r any) error { return fmt.Errorf("%w: %v", errInternalFailure, r) }

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}
