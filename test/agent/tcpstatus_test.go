package agent

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
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
			t.Parallel()
			a := agenttest.Start(t, v)
			var keys []string
			for _, name := range stateNames() {
				keys = append(keys, "tcp.status["+name+"]")
			}
			for _, key := range keys {
				if val, err := a.Get(key); err != nil || !isUint(val) {
					t.Errorf("zabbix_get %s = %q, %v; want an integer", key, val, err)
				}
			}
			for _, r := range testKeys(a, keys) {
				if r.err != nil || !isUint(r.val) {
					t.Errorf("-t %s = %q, %v; want an integer", r.key, r.val, r.err)
				}
			}
			if err := a.Alive(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// testWorkers is how many -t runs go at once: a run takes about a second,
// mostly waiting, but each starts two plugin processes that read the socket
// table.
const testWorkers = 4

// result is the answer to one key.
type result struct {
	key, val string
	err      error
}

// testKeys runs a.Test for every key, testWorkers at a time, and returns the
// results in the order of keys.
func testKeys(a *agenttest.Agent, keys []string) []result {
	out := make([]result, len(keys))
	sem := make(chan struct{}, testWorkers)
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			val, err := a.Test(key)
			out[i] = result{key, val, err}
		}()
	}
	wg.Wait()
	return out
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
	check := func(t *testing.T, how, key, prefix, has, val string, err error) {
		t.Helper()
		var ns *agenttest.NotSupported
		if !errors.As(err, &ns) {
			t.Errorf("%s %s = %q, %v; want ZBX_NOTSUPPORTED", how, key, val, err)
			return
		}
		if !strings.HasPrefix(ns.Text, prefix) || !strings.Contains(ns.Text, has) || !strings.HasSuffix(ns.Text, ".") {
			t.Errorf("%s %s: error %q; want %q..., naming %q, ending with a period", how, key, ns.Text, prefix, has)
		}
	}
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			a := agenttest.Start(t, v)
			keys := make([]string, len(tests))
			for i, tc := range tests {
				keys[i] = tc.key
				val, err := a.Get(tc.key)
				check(t, "zabbix_get", tc.key, tc.prefix, tc.has, val, err)
			}
			for i, r := range testKeys(a, keys) {
				check(t, "-t", r.key, tests[i].prefix, tests[i].has, r.val, r.err)
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
