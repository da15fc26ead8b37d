package metrics

import (
	"fmt"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// newSource picks the socket-table source the configuration asks for. Auto
// uses netlink unless ProcRoot points elsewhere than /proc (netlink can only
// see the plugin's own network namespace), and falls back to the /proc
// parser for good, logging it once, if the kernel refuses netlink.
func newSource(cfg Config, log Logger) (sockets.Source, error) {
	proc := sockets.NewProc(cfg.NetDir())
	switch cfg.Source {
	case SourceProc:
		return proc, nil
	case SourceNetlink:
		return sockets.NewNetlink(), nil
	case SourceAuto, "":
		if cfg.ProcRoot != DefaultProcRoot {
			return proc, nil
		}
		return sockets.NewAuto(sockets.NewNetlink(), proc, func(err error) {
			log.Warningf("netlink sock_diag unavailable (%v); reading %s from now on", err, cfg.NetDir())
		}), nil
	}
	return nil, fmt.Errorf("unknown socket source %q", cfg.Source)
}
