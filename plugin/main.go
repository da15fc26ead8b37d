// Command zabbix-agent2-plugin-tcpstatus is the TCPStatus loadable plugin of
// Zabbix agent 2. The agent starts it as
//
//	zabbix-agent2-plugin-tcpstatus <plugin socket> <true|false>
//
// (true: registration, false: operation); run by hand it prints its usage,
// -V its version, -h its keys and options.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/agentproto"
	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/version"
)

const progName = "zabbix-agent2-plugin-tcpstatus"

// dialTimeout is how long the plugin tries to reach the agent's socket; the
// agent waits PluginTimeout (3 s by default) for the connection.
const dialTimeout = 3 * time.Second

func main() {
	// The agent ends the plugin (Terminate or closing the socket); systemd's
	// SIGTERM to the whole unit must not kill it first.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	os.Exit(run(os.Args, os.Stdout, os.Stderr, dialUnix))
}

// dialer connects to the agent's socket, trying for up to the given time.
type dialer func(path string, within time.Duration) (io.ReadWriteCloser, error)

// run is the whole program: argv, then one session with the agent. Exit
// codes: 0 for help/version and whenever the agent ended the session, 1 if
// the agent's socket cannot be reached, 2 for bad arguments.
func run(args []string, stdout, stderr io.Writer, dial dialer) int {
	if len(args) < 2 {
		usage(stdout)
		return 0
	}
	switch args[1] {
	case "-V", "--version", "-version":
		fmt.Fprintf(stdout, "%s %s\n", progName, version.String())
		fmt.Fprintf(stdout, "Zabbix agent 2 loadable plugin %q; tested with agent 2 6.0 and 7.0, accepts any agent protocol version.\n", metrics.PluginName)
		return 0
	case "-h", "--help", "-help":
		help(stdout)
		return 0
	}
	registration := false
	var err error
	switch {
	case strings.HasPrefix(args[1], "-"):
		err = fmt.Errorf("unknown flag %s", args[1])
	case len(args) > 3:
		err = fmt.Errorf("too many arguments")
	case len(args) == 3:
		if registration, err = strconv.ParseBool(args[2]); err != nil {
			err = fmt.Errorf("second argument must be true or false, got %q", args[2])
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		usage(stderr)
		return 2
	}

	conn, err := dial(args[1], dialTimeout)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	defer conn.Close()
	c := agentproto.NewConn(conn)
	log := c.Logger()
	phase := "operational"
	if registration {
		phase = "registration"
	}
	log.Debugf("%s %s started, %s phase", progName, version.String(), phase)
	srv := &agentproto.Server{Name: metrics.PluginName, Handler: &handler{log: log}, DefaultTimeout: metrics.DefaultTimeout}
	if err := srv.Serve(c); err != nil {
		// The connection is broken, so the agent's log is out of reach;
		// agent 7.0 keeps stderr and logs it at trace level.
		fmt.Fprintf(stderr, "%s: %v\n", progName, err)
	}
	return 0
}

// dialUnix connects to the agent's Unix socket, retrying every 50 ms for up
// to within (the plugin may start before the socket accepts).
func dialUnix(path string, within time.Duration) (io.ReadWriteCloser, error) {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("unix", path, within)
		if err == nil {
			return c, nil
		}
		if time.Now().Add(50 * time.Millisecond).After(deadline) {
			return nil, fmt.Errorf("cannot connect to the agent's plugin socket within %v: %w", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %[1]s [-h|--help] [-V|--version]

Loadable plugin %[2]q of Zabbix agent 2: TCP socket states, ports, kernel
TCP counters and limits, disks. The agent starts it; enable it with
    Plugins.%[2]s.System.Path=/absolute/path/to/%[1]s
in the agent configuration (see conf/tcpstatus.conf). -h lists the keys and
options.
`, progName, metrics.PluginName)
}

func help(w io.Writer) {
	usage(w)
	e, err := metrics.New(metrics.DefaultConfig(), metrics.NopLogger{})
	if err != nil {
		fmt.Fprintf(w, "\nError: %v\n", err)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nKeys:\n")
	for _, m := range e.Metrics() {
		fmt.Fprintf(tw, "  %s\t%s\n", m.Synopsis(), m.Description)
		for _, p := range m.Params {
			if p.Description != "" {
				fmt.Fprintf(tw, "  \t  <%s>: %s\n", p.Name, p.Description)
			}
		}
	}
	fmt.Fprintf(tw, "\nOptions (Plugins.%s.<Option>=<value>):\n", metrics.PluginName)
	for _, o := range metrics.Options() {
		fmt.Fprintf(tw, "  %s\t%s\n", o.Name, o.Help)
	}
	tw.Flush()
}
