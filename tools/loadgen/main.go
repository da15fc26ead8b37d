// Command loadgen creates and holds a mix of TCP sockets for benchmarks and
// tests: ESTABLISHED, TIME_WAIT (with as many LAST_ACK), CLOSE_WAIT (with as
// many FIN_WAIT2), SYN_RECV and LISTEN, a share of them over IPv6, all on
// loopback inside a network namespace it creates. It holds them for -hold,
// then cleans up (nftables table, `ss -K`, workers, namespace, the global
// sysctls it raised), also on SIGINT/SIGTERM or error. Needs root.
//
//	loadgen -n 100000 -hold 10m -ready-file /tmp/ready.json
//
// When the mix is built and verified it prints one JSON object (namespace,
// expected and measured counts per state, ports) on stdout and writes it to
// -ready-file. Only SIGKILL of the controller leaves anything behind: the
// workers exit when their stdin closes, but the namespace (and its sockets)
// stays until `ip netns del <name>`, and the raised global sysctls (listed
// in the ready report) keep their values.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-worker" {
		os.Exit(runWorker(os.Args[2]))
	}
	var (
		o   options
		m   mix
		err error
	)
	flag.IntVar(&o.N, "n", 10000, "total number of sockets (about)")
	flag.Float64Var(&m.Established, "established", 0.50, "share of ESTABLISHED (SYN_RECV clients included)")
	flag.Float64Var(&m.TimeWait, "time-wait", 0.20, "share of TIME_WAIT; as many LAST_ACK come with them")
	flag.Float64Var(&m.CloseWait, "close-wait", 0.04, "share of CLOSE_WAIT; as many FIN_WAIT2 come with them")
	flag.Float64Var(&m.SynRecv, "syn-recv", 0.01, "share of SYN_RECV")
	flag.Float64Var(&m.IPv6, "ipv6", 0.25, "share of every category built over IPv6")
	flag.IntVar(&m.Listeners, "listeners", 16, "extra listening ports (one IPv4 and one IPv6 listener each)")
	flag.IntVar(&m.Destinations, "destinations", 0, "IPv4 clients connect to this many loopback addresses in turn (127.0.0.1 up): distinct destinations; 0: 127.0.0.1 only")
	flag.DurationVar(&o.Hold, "hold", 5*time.Minute, "how long to hold the sockets once built (at most 2h)")
	flag.StringVar(&o.NS, "netns", fmt.Sprintf("tcpload-%d", os.Getpid()), "name of the network namespace to create (must not exist)")
	flag.StringVar(&o.ReadyFile, "ready-file", "", "write the ready report (JSON) to this file")
	flag.IntVar(&o.FDsPerWorker, "fds-per-worker", 16000, "descriptors held per worker process (RLIMIT_NOFILE)")
	flag.IntVar(&o.Parallel, "parallel", 2, "workers building at the same time")
	flag.DurationVar(&o.BuildTimeout, "build-timeout", 10*time.Minute, "give up when building takes longer")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if o.Hold <= 0 || o.Hold > 2*time.Hour {
		fmt.Fprintln(os.Stderr, "loadgen: -hold must be within (0, 2h]")
		os.Exit(2)
	}
	o.Plan, err = makePlan(o.N, m, o.FDsPerWorker)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}
