package agenttest_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/agenttest"
)

// stateNames are the state names tcp.status accepts: the seed scripts'
// names, the kernel/Zabbix names with '_', with '-' and in upper case (as
// netstat prints them), and all.
func stateNames() []string {
	seed := []string{"estab", "listen", "timewait", "synrecv", "synsent", "finwait1", "finwait2",
		"closewait", "lastack", "closing", "closed"}
	kernel := []string{"established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
		"close", "close_wait", "last_ack", "listen", "closing"}
	names := append([]string{"all", "ALL"}, seed...)
	for _, k := range kernel {
		names = append(names, k, strings.ToUpper(k))
		if d := strings.ReplaceAll(k, "_", "-"); d != k {
			names = append(names, d, strings.ToUpper(d))
		}
	}
	// ss spells the FIN_WAIT states fin-wait-1 and fin-wait-2.
	return append(names, "fin-wait-1", "FIN-WAIT-2", "SYN_RECEIVED")
}

// TestTCPStatusStateNames: both agent 2 series answer tcp.status for every
// accepted state name with an integer, through zabbix_get and -t.
func TestTCPStatusStateNames(t *testing.T) {
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			a := agenttest.Start(t, v)
			names := stateNames()
			type result struct {
				key, how, val string
				err           error
			}
			results := make(chan result, 2*len(names))
			var wg sync.WaitGroup
			sem := make(chan struct{}, 2) // -t runs start two plugin processes each
			for _, name := range names {
				key := "tcp.status[" + name + "]"
				val, err := a.Get(key)
				results <- result{key, "zabbix_get", val, err}
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					val, err := a.Test(key)
					results <- result{key, "-t", val, err}
				}()
			}
			wg.Wait()
			close(results)
			n := 0
			for r := range results {
				n++
				if r.err != nil || !isUint(r.val) {
					t.Errorf("%s %s = %q, %v; want an integer", r.how, r.key, r.val, r.err)
				}
			}
			if n != 2*len(names) {
				t.Fatalf("%d results for %d names", n, len(names))
			}
			if err := a.Alive(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTCPStatusBadKeys: invalid parameters give the plugin's Zabbix-style
// errors through both paths, and the agent stays alive and answering.
func TestTCPStatusBadKeys(t *testing.T) {
	tests := []struct {
		key    string
		prefix string // the error starts with it
		has    string // and contains it
	}{
		{"tcp.status[bogus]", "Invalid first parameter: ", "bogus"},
		{"tcp.status[estab,70000]", "Invalid second parameter: ", "70000"},
		{"tcp.status[estab,0]", "Invalid second parameter: ", "0"},
		{"tcp.status[estab,http]", "Invalid second parameter: ", "http"},
		{"tcp.status[estab,,5]", "Invalid third parameter: ", "5"},
		{"tcp.status[a,b,c,d]", "Too many parameters.", ""},
		{"tcp.status.get[70000]", "Invalid first parameter: ", "70000"},
		{"tcp.status.get[,x]", "Invalid second parameter: ", "x"},
		{"tcp.status.get[1,2,3]", "Too many parameters.", ""},
	}
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			a := agenttest.Start(t, v)
			for _, tc := range tests {
				for _, how := range []struct {
					name string
					f    func(string) (string, error)
				}{{"zabbix_get", a.Get}, {"-t", a.Test}} {
					val, err := how.f(tc.key)
					var ns *agenttest.NotSupported
					if !errors.As(err, &ns) {
						t.Errorf("%s %s = %q, %v; want ZBX_NOTSUPPORTED", how.name, tc.key, val, err)
						continue
					}
					if !strings.HasPrefix(ns.Text, tc.prefix) || !strings.Contains(ns.Text, tc.has) || !strings.HasSuffix(ns.Text, ".") {
						t.Errorf("%s %s: error %q; want %q..., naming %q, ending with a period", how.name, tc.key, ns.Text, tc.prefix, tc.has)
					}
				}
			}
			if err := a.Alive(); err != nil {
				t.Fatal(err)
			}
			if got, err := a.Get(fmt.Sprintf("tcp.status[listen,%d]", a.Port())); err != nil || got != "1" {
				t.Fatalf("after the bad keys: tcp.status[listen,<agent port>] = %q, %v; want 1", got, err)
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not an integer: %q", s)
	}
	return n
}
