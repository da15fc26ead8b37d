package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// TestTCPStatusMatchesSS runs each agent 2 series inside a network namespace
// holding sockets in known states (IPv4, IPv6 and IPv4-mapped) and checks
// that tcp.status and tcp.status.get, through zabbix_get and -t, with and
// without the port and family filters, equal what ss counts.
//
// The agent's own sockets are in the namespace too: its listener and the
// TIME_WAIT left by earlier requests, which ss lists as well, and the
// connection of the zabbix_get request being answered, which is open while
// the plugin reads the table and gone when ss runs: two ESTABLISHED sockets
// (client and server side), IPv4. A -t run opens no TCP socket.
func TestTCPStatusMatchesSS(t *testing.T) {
	for _, v := range agenttest.Versions() {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			testMatchesSS(t, v)
		})
	}
}

func testMatchesSS(t *testing.T, v agenttest.Version) {
	ns := testnet.New(t)
	var held []testnet.Held
	add := func(h testnet.Held, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, h)
	}
	add(ns.Listen("127.0.0.1", 2))
	add(ns.Listen("::1", 1))
	add(ns.Established("127.0.0.1", 3))
	add(ns.Established("::1", 2))
	add(ns.Established("::ffff:127.0.0.1", 2))
	add(ns.CloseWait("127.0.0.1", 2))
	add(ns.LastAck("127.0.0.1", 3)) // TIME_WAIT + LAST_ACK, held as long as the test runs
	add(ns.LastAck("::1", 2))
	add(ns.SynRecv("127.0.0.1", 2))
	add(ns.SynSent("::1", 2))
	add(ns.FinWait1("127.0.0.1", 2))
	add(ns.Pending("::ffff:127.0.0.1", 8, 3))

	a := agenttest.Start(t, v, agenttest.InNetns(ns.Name), agenttest.WithConf("Plugins.TCPStatus.CacheTTL=0"))
	var ownConn sockets.Counts // the zabbix_get request's own connection
	ownConn[sockets.Established] = 2
	none := sockets.Counts{}
	all := func() (sockets.Counts, error) { return ns.SSCounts("-tan") }
	report := func(err error) {
		t.Helper()
		if err != nil {
			t.Error(err)
		}
	}

	// zabbix_get: the whole table, every state at once and one by one.
	report(compare("zabbix_get tcp.status.get vs ss -tanH", all, askCounts(a.Get, "tcp.status.get"), ownConn, sockets.AllStates))
	for _, s := range sockets.States() {
		report(compare(fmt.Sprintf("zabbix_get tcp.status[%s] vs ss -tanH state %s", s, testnet.SSState(s)),
			ssState(ns, s), askOne(a.Get, "tcp.status["+s.String()+"]", s), ownConn, sockets.MaskOf(s)))
	}
	report(compare("zabbix_get tcp.status[all] vs ss -tanH", func() (sockets.Counts, error) {
		c, err := all()
		return sumInto(c, sockets.Established), err
	}, askOne(a.Get, "tcp.status[all]", sockets.Established), ownConn, sockets.MaskOf(sockets.Established)))

	// Family filters: ss -4 / -6 (IPv4-mapped sockets are AF_INET6).
	families := []struct {
		param, flag string
		delta       sockets.Counts
	}{{"4", "-4", ownConn}, {"6", "-6", none}}
	for _, f := range families {
		report(compare("zabbix_get tcp.status.get[,"+f.param+"] vs ss -tanH "+f.flag, func() (sockets.Counts, error) {
			return ns.SSCounts("-tan", f.flag)
		}, askCounts(a.Get, "tcp.status.get[,"+f.param+"]"), f.delta, sockets.AllStates))
		for _, s := range []sockets.State{sockets.Established, sockets.TimeWait, sockets.Listen, sockets.SynRecv} {
			report(compare(fmt.Sprintf("zabbix_get tcp.status[%s,,%s] vs ss -tanH %s state %s", s, f.param, f.flag, testnet.SSState(s)),
				ssState(ns, s, f.flag), askOne(a.Get, fmt.Sprintf("tcp.status[%s,,%s]", s, f.param), s), f.delta, sockets.MaskOf(s)))
		}
	}

	// Port filters: exact, the agent's sockets are on another port.
	for _, h := range held {
		port := strconv.Itoa(int(h.Port))
		ss, err := ns.SSCounts("-tan", "sport", "=", ":"+port)
		if err != nil {
			t.Fatal(err)
		}
		if ss != h.Local {
			t.Fatalf("ss sport %s: %v; the builder made %v", port, ss, h.Local)
		}
		fam := h.Family().String()
		other := map[string]string{"4": "6", "6": "4"}[fam]
		report(checkCounts(a.Get, "tcp.status.get["+port+","+fam+"]", h.Local))
		report(checkCounts(a.Get, "tcp.status.get["+port+","+other+"]", sockets.Counts{}))
		// One state key per port: the state the builder made there (not
		// LISTEN when there is another), with the port alone and with the
		// port and the other family.
		s := sockets.Listen
		for _, st := range sockets.States() {
			if h.Local[st] > 0 && st != sockets.Listen {
				s = st
				break
			}
		}
		want := strconv.FormatUint(h.Local[s], 10)
		for _, c := range []struct{ key, want string }{
			{"tcp.status[" + s.String() + "," + port + "]", want},
			{"tcp.status[" + s.String() + "," + port + "," + other + "]", "0"},
		} {
			if got, err := a.Get(c.key); err != nil || got != c.want {
				t.Errorf("zabbix_get %s = %q, %v; ss and the builder count %s", c.key, got, err, c.want)
			}
		}
	}

	// tcp.sockets.get: its states as ss counts them, every held listening
	// port with the builder's counts, no port where nothing listens.
	report(compare("zabbix_get tcp.sockets.get states vs ss -tanH", all, askCounts(statesOf(a.Get), "tcp.sockets.get"), ownConn, sockets.AllStates))
	for _, h := range held {
		ask := portOf(a.Get, h.Port)
		if h.Local[sockets.Listen] == 0 {
			if _, err := ask("tcp.sockets.get"); !errors.Is(err, errNoPort) {
				t.Errorf("tcp.sockets.get lists port %d, where nothing listens (%v)", h.Port, err)
			}
			continue
		}
		report(checkCounts(ask, "tcp.sockets.get", h.Local))
	}
	checkDiskGetAll(t, a.Get)

	// -t: the same checks, several runs at a time (no TCP socket of their own).
	var checks []func() error
	checks = append(checks, func() error {
		return compare("-t tcp.status.get vs ss -tanH", all, askCounts(a.Test, "tcp.status.get"), none, sockets.AllStates)
	})
	for _, s := range sockets.States() {
		checks = append(checks, func() error {
			return compare(fmt.Sprintf("-t tcp.status[%s] vs ss -tanH state %s", s, testnet.SSState(s)),
				ssState(ns, s), askOne(a.Test, "tcp.status["+s.String()+"]", s), none, sockets.MaskOf(s))
		})
	}
	for _, f := range families {
		checks = append(checks, func() error {
			return compare("-t tcp.status.get[,"+f.param+"] vs ss -tanH "+f.flag, func() (sockets.Counts, error) {
				return ns.SSCounts("-tan", f.flag)
			}, askCounts(a.Test, "tcp.status.get[,"+f.param+"]"), none, sockets.AllStates)
		})
	}
	for _, h := range held {
		port := strconv.Itoa(int(h.Port))
		checks = append(checks, func() error {
			return checkCounts(a.Test, "tcp.status.get["+port+"]", h.Local)
		})
	}
	checks = append(checks, func() error {
		return compare("-t tcp.sockets.get states vs ss -tanH", all, askCounts(statesOf(a.Test), "tcp.sockets.get"), none, sockets.AllStates)
	})
	errs := make([]error, len(checks))
	sem := make(chan struct{}, testWorkers)
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = check()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		report(err)
	}
	if err := a.Alive(); err != nil {
		t.Fatal(err)
	}
}

// compare checks, for the states in mask, that what the plugin reports lies
// between what ss counted just before and just after, plus delta (the
// agent's own connection when asked through zabbix_get). On a steady table
// that is equality; the agent's own TIME_WAIT entries (one per earlier
// request) expire and appear meanwhile, so a count may move between the two
// ss runs, and a miss is tried again, up to 5 times.
func compare(what string, ss, plugin func() (sockets.Counts, error), delta sockets.Counts, mask sockets.StateMask) error {
	var last string
	for attempt := 1; attempt <= 5; attempt++ {
		before, err := ss()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		got, err := plugin()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		after, err := ss()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		var diffs []string
		for _, s := range sockets.States() {
			lo, hi := min(before[s], after[s])+delta[s], max(before[s], after[s])+delta[s]
			if mask.Has(s) && (got[s] < lo || got[s] > hi) {
				diffs = append(diffs, fmt.Sprintf("%s: plugin %d, ss %d before and %d after, + own %d", s, got[s], before[s], after[s], delta[s]))
			}
		}
		if len(diffs) == 0 {
			return nil
		}
		last = fmt.Sprintf("attempt %d: %s", attempt, strings.Join(diffs, "; "))
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: plugin and ss disagree (%s)", what, last)
}

// ssState returns a counter of `ss -tanH state <s> [flags]`, under s.
func ssState(ns *testnet.NS, s sockets.State, flags ...string) func() (sockets.Counts, error) {
	return func() (sockets.Counts, error) {
		var c sockets.Counts
		n, err := ns.SSCount(append([]string{"-tan", "state", testnet.SSState(s)}, flags...)...)
		c[s] = uint64(n)
		return c, err
	}
}

// sumInto returns counts holding the total of c under state s.
func sumInto(c sockets.Counts, s sockets.State) sockets.Counts {
	var out sockets.Counts
	out[s] = c.Total()
	return out
}

// askOne returns a reader of an integer key, returned under state s.
func askOne(ask func(string) (string, error), key string, s sockets.State) func() (sockets.Counts, error) {
	return func() (sockets.Counts, error) {
		var c sockets.Counts
		v, err := ask(key)
		if err != nil {
			return c, fmt.Errorf("%s: %w", key, err)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("%s = %q: not an integer", key, v)
		}
		c[s] = n
		return c, nil
	}
}

// askCounts returns a reader of a tcp.status.get key that decodes its JSON,
// checking that it has exactly the state fields and a total equal to their
// sum.
func askCounts(ask func(string) (string, error), key string) func() (sockets.Counts, error) {
	return func() (sockets.Counts, error) {
		var c sockets.Counts
		v, err := ask(key)
		if err != nil {
			return c, fmt.Errorf("%s: %w", key, err)
		}
		var m map[string]uint64
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return c, fmt.Errorf("%s = %q: %w", key, v, err)
		}
		if len(m) != len(sockets.States())+1 {
			return c, fmt.Errorf("%s = %s: want %d fields", key, v, len(sockets.States())+1)
		}
		for _, s := range sockets.States() {
			n, ok := m[s.String()]
			if !ok {
				return c, fmt.Errorf("%s = %s: no %q", key, v, s.String())
			}
			c[s] = n
		}
		if total, ok := m["total"]; !ok || total != c.Total() {
			return c, fmt.Errorf("%s = %s: total is not the sum of the states", key, v)
		}
		return c, nil
	}
}

// checkCounts asks for a tcp.status.get key and compares every state.
func checkCounts(ask func(string) (string, error), key string, want sockets.Counts) error {
	got, err := askCounts(ask, key)()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s = %v; want %v", key, got, want)
	}
	return nil
}

// statesOf wraps ask so that it answers the "states" object of a
// tcp.sockets.get value.
func statesOf(ask func(string) (string, error)) func(string) (string, error) {
	return func(key string) (string, error) {
		v, err := ask(key)
		if err != nil {
			return v, err
		}
		var o struct {
			States json.RawMessage `json:"states"`
		}
		if err := json.Unmarshal([]byte(v), &o); err != nil || o.States == nil {
			return v, fmt.Errorf("%s = %.200q: no states object (%v)", key, v, err)
		}
		return string(o.States), nil
	}
}

// errNoPort: tcp.sockets.get does not list the port.
var errNoPort = errors.New("port not listed")

// portOf wraps ask so that it answers the state counts and total of one
// port of a tcp.sockets.get value, as a tcp.status.get object.
func portOf(ask func(string) (string, error), port uint16) func(string) (string, error) {
	return func(key string) (string, error) {
		v, err := ask(key)
		if err != nil {
			return v, err
		}
		var o struct {
			Ports []map[string]json.RawMessage `json:"ports"`
		}
		if err := json.Unmarshal([]byte(v), &o); err != nil {
			return v, fmt.Errorf("%s = %.200q: %w", key, v, err)
		}
		for _, p := range o.Ports {
			if string(p["port"]) != strconv.Itoa(int(port)) {
				continue
			}
			m := map[string]json.RawMessage{"total": p["total"]}
			for _, s := range sockets.States() {
				m[s.String()] = p[s.String()]
			}
			b, err := json.Marshal(m)
			return string(b), err
		}
		return "", fmt.Errorf("%s, port %d: %w", key, port, errNoPort)
	}
}

// checkDiskGetAll asks for disk.get.all and disk.discovery: the same
// devices in the same order, and each device disk.get knows with disk.get's
// fields.
func checkDiskGetAll(t *testing.T, ask func(string) (string, error)) {
	t.Helper()
	var all []map[string]any
	var disc []map[string]string
	for key, dst := range map[string]any{"disk.get.all": &all, "disk.discovery": &disc} {
		v, err := ask(key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if err := json.Unmarshal([]byte(v), dst); err != nil {
			t.Fatalf("%s = %.200q: %v", key, v, err)
		}
	}
	if len(all) != len(disc) || len(all) == 0 {
		t.Fatalf("disk.get.all lists %d devices, disk.discovery %d", len(all), len(disc))
	}
	for i, d := range disc {
		name := d["{#DEVNAME}"]
		if all[i]["devname"] != name {
			t.Errorf("device %d: disk.get.all %v, disk.discovery %s", i, all[i]["devname"], name)
			continue
		}
		v, err := ask("disk.get[" + name + "]")
		if err != nil {
			if len(all[i]) != 6 {
				t.Errorf("%s: disk.get fails (%v) but disk.get.all has counters", name, err)
			}
			continue
		}
		var one map[string]uint64
		if err := json.Unmarshal([]byte(v), &one); err != nil {
			t.Fatal(err)
		}
		if len(all[i]) != 6+len(one) {
			t.Errorf("%s: disk.get.all has %d fields, want 6 + the %d of disk.get", name, len(all[i]), len(one))
		}
		for f := range one {
			if _, ok := all[i][f]; !ok {
				t.Errorf("%s: disk.get.all lacks %s", name, f)
			}
		}
	}
}
