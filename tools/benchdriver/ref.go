package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/tools/loadgen/nlcount"
)

// The ref subcommand runs one in-process way of counting the current network
// namespace's TCP sockets reps times and reports the CPU time (getrusage of
// the process: every thread, the Go runtime included), wall time and value
// of each run, after one unmeasured warm-up run.

// refModes maps a mode name to a function returning the value the mode
// computes (a socket count).
func refModes(port uint16) map[string]func() (uint64, error) {
	var nl *nlcount.Counter
	nlc := func(f nlcount.Filter, st int) func() (uint64, error) {
		return func() (uint64, error) {
			if nl == nil {
				var err error
				if nl, err = nlcount.Open(); err != nil {
					return 0, err
				}
			}
			c, err := nl.Count(f)
			if st >= 0 {
				return c[st], err
			}
			return c.Total(), err
		}
	}
	core := func(src sockets.Source, q sockets.Query, st sockets.State) func() (uint64, error) {
		return func() (uint64, error) {
			c, err := sockets.Count(context.Background(), src, q)
			if st != 0 {
				return c[st], err
			}
			return c.Total(), err
		}
	}
	const tw = 6
	return map[string]func() (uint64, error){
		"nl-all":       nlc(nlcount.Filter{}, -1),
		"nl-state":     nlc(nlcount.Filter{States: 1 << tw}, tw),
		"nl-port":      nlc(nlcount.Filter{LocalPort: port}, -1),
		"nl-listen":    nlc(nlcount.Filter{States: 1 << 10}, -1),
		"nl-bare":      nlc(nlcount.Filter{States: 1}, -1), // state 0 does not exist: the walk alone
		"core-netlink": core(sockets.NewNetlink(), sockets.Query{}, 0),
		"core-netlink-state": core(sockets.NewNetlink(),
			sockets.Query{States: sockets.MaskOf(sockets.TimeWait)}, sockets.TimeWait),
		"core-netlink-port": core(sockets.NewNetlink(), sockets.Query{LocalPort: port}, 0),
		"core-proc":         core(sockets.NewProc("/proc/net"), sockets.Query{}, 0),
		"procfs": func() (uint64, error) {
			fs, err := procfs.NewFS("/proc")
			if err != nil {
				return 0, err
			}
			t4, err := fs.NetTCP()
			if err != nil {
				return 0, err
			}
			t6, err := fs.NetTCP6()
			if err != nil {
				return 0, err
			}
			return uint64(len(t4) + len(t6)), nil
		},
	}
}

type refRun struct {
	CPUNs  int64  `json:"cpu_ns"`
	UserNs int64  `json:"user_ns"`
	SysNs  int64  `json:"sys_ns"`
	WallNs int64  `json:"wall_ns"`
	Value  uint64 `json:"value"`
}

type refReport struct {
	Mode     string   `json:"mode"`
	Runs     []refRun `json:"runs"`
	MaxRSSkB int64    `json:"maxrss_kb"`
}

func rusageSelf() (user, sys int64) {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano(), ru.Stime.Nano()
}

func refMain(args []string) int {
	fs := flag.NewFlagSet("ref", flag.ExitOnError)
	mode := fs.String("mode", "nl-all", "what to run")
	port := fs.Uint("port", 22000, "local port of the port-filtered modes")
	reps := fs.Int("reps", 5, "measured runs")
	key := fs.String("key", "tcp.status.get", "item key of the export mode")
	cacheTTL := fs.Duration("cache-ttl", 0, "CacheTTL of the export mode")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the measured runs to this file")
	cold := fs.Bool("cold", false, "no warm-up run: the first measured run is the process's first call (e.g. port discovery with an empty owner cache)")
	fs.Parse(args)
	f, ok := refModes(uint16(*port))[*mode]
	if *mode == "export" {
		var err error
		if f, err = exportMode(*key, *cacheTTL); err != nil {
			fmt.Fprintf(os.Stderr, "benchdriver ref: %v\n", err)
			return 1
		}
		ok = true
	}
	if !ok {
		fmt.Fprintf(os.Stderr, "benchdriver ref: unknown mode %q\n", *mode)
		return 2
	}
	rep := refReport{Mode: *mode}
	if !*cold {
		if _, err := f(); err != nil { // warm-up
			fmt.Fprintf(os.Stderr, "benchdriver ref %s: %v\n", *mode, err)
			return 1
		}
	}
	if *profile != "" {
		pf, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchdriver ref: %v\n", err)
			return 1
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintf(os.Stderr, "benchdriver ref: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	for i := 0; i < *reps; i++ {
		u0, s0 := rusageSelf()
		t0 := time.Now()
		v, err := f()
		wall := time.Since(t0)
		u1, s1 := rusageSelf()
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchdriver ref %s: %v\n", *mode, err)
			return 1
		}
		rep.Runs = append(rep.Runs, refRun{CPUNs: u1 - u0 + s1 - s0, UserNs: u1 - u0, SysNs: s1 - s0, WallNs: wall.Nanoseconds(), Value: v})
	}
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	rep.MaxRSSkB = ru.Maxrss
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// exportMode runs the plugin's own key handler in process (the exporter the
// plugin serves, default configuration except CacheTTL), for profiles of the
// plugin path without the agent. The value is the length of the result.
func exportMode(key string, ttl time.Duration) (func() (uint64, error), error) {
	cfg := metrics.DefaultConfig()
	cfg.CacheTTL = ttl
	// As in the benchmark's agents (Timeout=30): discovery gives its process
	// name scan half of it, and a shorter budget would cut the scan short.
	cfg.Timeout = 30 * time.Second
	e, err := metrics.New(cfg, metrics.NopLogger{})
	if err != nil {
		return nil, err
	}
	name, params := key, []string(nil)
	if i := strings.IndexByte(key, '['); i >= 0 && strings.HasSuffix(key, "]") {
		name, params = key[:i], strings.Split(key[i+1:len(key)-1], ",")
	}
	return func() (uint64, error) {
		v, err := e.Export(context.Background(), name, params)
		return uint64(len(v)), err
	}, nil
}
